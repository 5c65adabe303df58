"""Market data sources: recorded files (replay) and live public feeds (paper, live)."""
