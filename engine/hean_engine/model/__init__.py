"""Plain data shared by every component: the spec, market data, orders, errors.

This is the lowest layer: it imports nothing else from the engine.
"""
