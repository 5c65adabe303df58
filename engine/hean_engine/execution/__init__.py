"""Venues that execute orders: simulated (replay, paper) and live (through the LiveGate)."""
