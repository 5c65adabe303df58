"""The operator's one message length limit (`hean_operator.api.messages`)."""

from __future__ import annotations

from hean_operator.api.messages import MESSAGE_LIMIT, truncate_message


def test_truncate_message_keeps_short_messages_and_cuts_long_ones() -> None:
    assert truncate_message("short") == "short"
    assert truncate_message("x" * MESSAGE_LIMIT) == "x" * MESSAGE_LIMIT
    assert truncate_message("x" * (MESSAGE_LIMIT + 5)) == "x" * MESSAGE_LIMIT
    assert MESSAGE_LIMIT == 1024
