"""Exponential moving average, seeded with the first value.

`value = alpha * x + (1 - alpha) * value`, alpha = 2 / (length + 1). The exact
float expression is part of the strategy's documented semantics
(docs/strategies.md), so that an independent computation gives identical
crossings, bit for bit.
"""

from __future__ import annotations


class Ema:
    __slots__ = ("alpha", "count", "keep", "value")

    def __init__(self, length: int) -> None:
        if length < 1:
            raise ValueError("EMA length must be at least 1")
        self.alpha = 2.0 / (length + 1)
        self.keep = 1.0 - self.alpha
        self.value = 0.0
        self.count = 0

    def update(self, x: float) -> float:
        self.value = x if self.count == 0 else self.alpha * x + self.keep * self.value
        self.count += 1
        return self.value
