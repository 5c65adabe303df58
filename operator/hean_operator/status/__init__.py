"""`TradingEngine.status`: derived from observations (pure), and written by one writer."""
