"""Assembles the components for each mode and runs them (replay, paper, live)."""
