"""Events on the operator's objects, through kopf's poster (its queue, its reporting name).

`normal` and `warning` take the object as read (kopf's body, or a manifest from
kopf's index: anything with apiVersion, kind and metadata), and cut the message
to the one limit (`MESSAGE_LIMIT`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

import kopf

from hean_operator.api.messages import truncate_message


def normal(obj: Mapping[str, Any], reason: str, message: str) -> None:
    kopf.info(cast(kopf.Body, obj), reason=reason, message=truncate_message(message))


def warning(obj: Mapping[str, Any], reason: str, message: str) -> None:
    kopf.warn(cast(kopf.Body, obj), reason=reason, message=truncate_message(message))
