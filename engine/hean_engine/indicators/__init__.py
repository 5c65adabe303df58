"""Indicators: floats, O(1) per update, no dependencies."""
