"""Talking to exchanges: ccxt clients and the engine's one retry/backoff policy."""
