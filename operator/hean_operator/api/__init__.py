"""The operator's API types: the TradingEngine status (the spec is the engine's own model)."""
