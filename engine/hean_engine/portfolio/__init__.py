"""The ledger: balances, position, equity, PnL and drawdown, in exact decimals."""
