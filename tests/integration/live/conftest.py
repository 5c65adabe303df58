"""The protocol fixture: the live tests that trade run once per simulated exchange."""

from __future__ import annotations

import pytest
from live_support import PROTOCOLS, PROTOS, Proto


@pytest.fixture(params=PROTOCOLS)
def proto(request: pytest.FixtureRequest) -> Proto:
    """Binance's or OKX's protocol (simulator, ccxt client, venue entry)."""
    return PROTOS[str(request.param)]
