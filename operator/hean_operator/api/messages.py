"""The one length limit on messages the operator writes for a person to read.

A status message, a condition message, a LiveApproval's status message and an
Event's message are all cut to `MESSAGE_LIMIT` characters: a verdict or an API
error can quote a whole object, and an object's status is no place for that.
"""

from __future__ import annotations

MESSAGE_LIMIT = 1024


def truncate_message(message: str) -> str:
    """`message`, cut to at most `MESSAGE_LIMIT` characters."""
    return message[:MESSAGE_LIMIT]
