"""Backtest reports: statistics computed exactly from fills and marks, and an HTML page.

Nothing here runs during a replay. The replay (app/replay.py) records the
market prices it marked the books at (one per candle close or trade) only when
statistics are asked for; afterwards `equity.equity_path` rebuilds the equity
series from those marks and the fills, `trades.round_trips` pairs the fills
into round trips, `stats.compute_stats` derives the statistics and
`html.render_report` draws the page. docs/backtesting.md defines every figure.
"""
