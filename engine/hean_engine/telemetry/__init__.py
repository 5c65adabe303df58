"""Logs: structured JSON with the engine's identity, and secrets redacted."""
