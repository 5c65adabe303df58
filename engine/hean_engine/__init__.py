"""HEAN's trading engine: one market, one account, the same code in replay, paper and live."""

__version__ = "0.1.0"
