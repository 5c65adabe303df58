"""Query-string parameters, checked the way Binance checks them.

Errors carry Binance's codes (-1102 missing, -1100 not a number, -1130 bad
value, -1121 unknown symbol) so that clients see the exceptions they would see
against the real exchange. Unknown parameters are ignored.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping

from hean_sim.exchange import errors

Query = Mapping[str, str]
_DIGITS = re.compile(r"^[0-9]{1,20}$")


def required(query: Query, name: str) -> str:
    value = query.get(name, "")
    if not value:
        raise errors.missing_param(name)
    return value


def optional_int(query: Query, name: str) -> int | None:
    value = query.get(name)
    if value is None or value == "":
        return None
    if not _DIGITS.match(value):
        raise errors.illegal_chars(name)
    return int(value)


def limit(query: Query, default: int, maximum: int, name: str = "limit") -> int:
    """Binance's `limit`: the default when absent, capped at the maximum, at least 1."""
    value = optional_int(query, name)
    if value is None:
        return default
    if value < 1:
        raise errors.invalid_value(name)
    return min(value, maximum)


def symbol_list(query: Query) -> list[str] | None:
    """`symbol=X` or `symbols=["X","Y"]` as a list; None when neither is sent."""
    single = query.get("symbol")
    several = query.get("symbols")
    if single and several:
        raise errors.bad_request(
            errors.BAD_PARAM_COMBINATION, "Combination of optional parameters invalid."
        )
    if single:
        return [single]
    if several:
        try:
            parsed = json.loads(several)
        except ValueError:
            raise errors.bad_request(
                errors.ILLEGAL_CHARS, "Illegal characters found in parameter 'symbols'."
            ) from None
        if (
            not isinstance(parsed, list)
            or not parsed
            or not all(isinstance(item, str) for item in parsed)
        ):
            raise errors.invalid_value("symbols")
        return [str(item) for item in parsed]
    return None


def symbol_count(query: Query) -> int | None:
    """How many symbols a request names (for its weight), without validating them."""
    if query.get("symbol"):
        return 1
    several = query.get("symbols")
    if several:
        return max(1, several.count(",") + 1)
    return None
