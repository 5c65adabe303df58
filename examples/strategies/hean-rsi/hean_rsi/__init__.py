"""RSI mean reversion for HEAN: an example of a user's strategy package."""

from hean_rsi.strategy import RsiMeanReversion, RsiParams

__all__ = ["RsiMeanReversion", "RsiParams"]
