"""Talking to running engines: the control client and the status they report."""
