"""Field types every model of the contract shares: exact decimals, counts, camelCase.

They sit below both the spec (`hean_contract.spec`) and the strategy registry
(`hean_contract.strategies`), which the spec validates against, so that
neither of those two imports the other's module for them.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, PlainSerializer, WithJsonSchema
from pydantic.alias_generators import to_camel

_DECIMAL_RE = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)$")
# Any decimal with this many significant digits survives a trip through a double.
_FLOAT_DIGITS = 15


def _to_decimal(value: Any) -> Any:
    """Accept decimal strings, integers and decimals; a float only when it is exact.

    The engine's YAML reader turns an unquoted `0.01` into the exact `Decimal`
    of its text. A float (from JSON) is accepted when its shortest repr has at
    most 15 significant digits, since then that repr is the text that was
    written; a longer one may already have lost digits and is refused (write
    it as a string). Exponents in strings, NaN and infinities are refused: a
    money amount is a plain decimal.
    """
    if isinstance(value, bool):
        raise ValueError('expected a decimal string such as "0.01", got a boolean')
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        # The shortest repr is the number as written, but small and large values
        # come out with an exponent (0.00001 -> '1e-05'): convert it, not the text.
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError(f'expected a plain decimal string such as "0.01", got {value!r}')
        exact = Decimal(repr(value))
        if len(exact.as_tuple().digits) > _FLOAT_DIGITS:
            raise ValueError(
                f"{value!r} has more significant digits than a float holds exactly: "
                "write it as a string"
            )
        return exact
    if isinstance(value, str):
        text = value.strip()
        if not _DECIMAL_RE.match(text):
            raise ValueError(f'expected a plain decimal string such as "0.01", got {value!r}')
        return Decimal(text)
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError("expected a finite decimal")
        return value
    raise ValueError(f"expected a decimal string, got {type(value).__name__}")


# Decimals travel as strings (in YAML, JSON, the CRD and /status) so that no
# client ever parses money into a binary float. The JSON Schema patterns let
# the CRD refuse a sign or a zero before the model sees the object. Whole
# numbers may be written bare (`maxOpenOrders`-style `slippageBps: 0`): the CRD
# marks decimals int-or-string, and the model reads ints exactly.
DECIMAL_PATTERN = r"^[+-]?(\d+(\.\d*)?|\.\d+)$"
NON_NEGATIVE_PATTERN = r"^(\d+(\.\d*)?|\.\d+)$"
POSITIVE_PATTERN = r"^0*([1-9]\d*(\.\d*)?|0?\.\d*[1-9]\d*)$"


def _int_or_string(pattern: str, minimum: int | None = None) -> dict[str, Any]:
    """A pattern checks the string form only; `minimum` the bare-integer form (the API
    server applies each to the values of its type), so `-5` is refused like "-5"."""
    schema: dict[str, Any] = {"x-kubernetes-int-or-string": True, "pattern": pattern}
    if minimum is not None:
        schema["minimum"] = minimum
    return schema


_as_decimal = BeforeValidator(_to_decimal)
_as_string = PlainSerializer(
    lambda d: format(d, "f"), return_type=str, when_used="json-unless-none"
)
DecimalStr = Annotated[
    Decimal, _as_decimal, _as_string, WithJsonSchema(_int_or_string(DECIMAL_PATTERN))
]
NonNegativeDecimal = Annotated[
    Decimal,
    _as_decimal,
    _as_string,
    WithJsonSchema(_int_or_string(NON_NEGATIVE_PATTERN, minimum=0)),
]
PositiveDecimal = Annotated[
    Decimal,
    _as_decimal,
    _as_string,
    WithJsonSchema(_int_or_string(POSITIVE_PATTERN, minimum=1)),
]


def _no_boolean(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("Input should be a valid integer, got a boolean")
    return value


# An integer that a YAML `true` or `yes` does not silently turn into 1.
Count = Annotated[int, BeforeValidator(_no_boolean)]


class CamelModel(BaseModel):
    """Strict about unknown fields, camelCase on the wire, snake_case in Python."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
        use_attribute_docstrings=False,
    )


# A validator that checks a nested model prefixes its message with this mark
# and joins `relative.path: problem` parts with "; ", so that the spec's error
# formatter (`hean_contract.spec`) can report each part under its full field path.
NESTED_MARK = "field errors: "
