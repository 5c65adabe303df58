"""Strategies: read market data and fills, emit order intents through a context."""
