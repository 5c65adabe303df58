"""Talking to running engines: their pods as the operator sees them, and their HTTP API."""
