"""The intent journal and client order ids: what makes a restart safe."""

from __future__ import annotations

import json
import re
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine_support import FakeClock
from hean_engine.execution.client_ids import ClientOrderIds, engine_tag, valid
from hean_engine.execution.journal import FILE_NAME, Journal, JournalError
from hean_engine.net.venues import VENUES

D = Decimal
BINANCE_CLIENT_ID = re.compile(r"^[.A-Z:/a-z0-9_-]{1,36}$")
# OKX's clOrdId: 1 to 32 letters and digits.
OKX_CLIENT_ID = re.compile(r"^[A-Za-z0-9]{1,32}$")


def _okx_ids(namespace: str, name: str, run: str) -> ClientOrderIds:
    rule = VENUES["okx"].client_ids
    return ClientOrderIds(namespace, name, run, separator=rule.separator, allowed=rule.pattern)


def _journal(directory: Path, clock: FakeClock) -> Journal:
    return Journal(directory, clock)


def test_an_intent_is_on_disk_before_the_call_returns(tmp_path: Path) -> None:
    now = FakeClock(1.0)  # 1000 ms
    journal = _journal(tmp_path, now)
    assert journal.open("run1") == []
    journal.record_intent("hean-x-1", "buy", "limit", D("0.5"), D("100.25"), "mm:buy")
    # Read by another reader, as a crashed process's successor would.
    lines = [json.loads(line) for line in (tmp_path / FILE_NAME).read_text().splitlines()]
    assert lines[-1] == {
        "t": "intent",
        "cid": "hean-x-1",
        "side": "buy",
        "type": "limit",
        "qty": "0.5",
        "price": "100.25",
        "tag": "mm:buy",
        "ts": 1000,
    }


def test_a_restart_gets_back_exactly_the_unresolved_intents(tmp_path: Path) -> None:
    now = FakeClock(1.0)  # 1000 ms
    first = _journal(tmp_path, now)
    first.open("run1")
    first.record_intent("a", "buy", "market", D(1), None, "")
    first.record_intent("b", "sell", "limit", D(2), D(10), "")
    first.record_intent("c", "buy", "limit", D(3), D(9), "")
    first.record_outcome("a", "open", "11")
    first.record_outcome("a", "filled", "11")
    first.record_outcome("b", "open", "12")
    first.record_outcome("c", "absent")
    # no close(): the process was killed
    second = _journal(tmp_path, now)
    pending = second.open("run2")
    assert [(i.cid, i.status, i.exchange_id) for i in pending] == [("b", "open", "12")]
    assert pending[0].price == D(10) and pending[0].quantity == D(2)
    # Compacted: the resolved intents are gone from the file, the open one stays.
    second.close()
    third = _journal(tmp_path, now)
    assert [i.cid for i in third.open("run3")] == ["b"]
    text = (tmp_path / FILE_NAME).read_text()
    assert '"cid":"a"' not in text and '"cid":"c"' not in text


def test_a_torn_last_line_is_dropped_because_its_order_was_never_sent(tmp_path: Path) -> None:
    now = FakeClock(1.0)  # 1000 ms
    first = _journal(tmp_path, now)
    first.open("run1")
    first.record_intent("a", "buy", "market", D(1), None, "")
    first.close()
    with (tmp_path / FILE_NAME).open("a") as out:
        out.write('{"t":"intent","cid":"b","side":"bu')  # the crash hit mid-write
    second = _journal(tmp_path, now)
    assert [i.cid for i in second.open("run2")] == ["a"]
    assert second.torn_tail


def test_a_corrupt_line_in_the_middle_fails_closed(tmp_path: Path) -> None:
    (tmp_path / FILE_NAME).write_text('{"t":"run","run":"r","ts":1}\nnot json\n{"t":"run"}\n')
    with pytest.raises(JournalError, match="line 2 is corrupt"):
        _journal(tmp_path, [0]).open("run2")


def test_an_unwritable_journal_directory_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(JournalError, match="cannot create journal directory"):
        _journal(blocker / "journal", [0]).open("run1")


def test_client_ids_are_deterministic_short_and_legal_on_binance() -> None:
    ids = ClientOrderIds("trading", "btc-momentum", "0f3a9c2b1d4e")
    first = [ids.next() for _ in range(3)]
    again = ClientOrderIds("trading", "btc-momentum", "0f3a9c2b1d4e")
    assert [again.next() for _ in range(3)] == first
    tag = engine_tag("trading", "btc-momentum")
    assert first == [f"hean-{tag}-0f3a9c2b-1", f"hean-{tag}-0f3a9c2b-2", f"hean-{tag}-0f3a9c2b-3"]
    assert all(BINANCE_CLIENT_ID.match(cid) and valid(cid) for cid in first)


@given(
    namespace=st.from_regex(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", fullmatch=True),
    name=st.from_regex(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", fullmatch=True),
    run=st.text(alphabet="0123456789abcdef", min_size=12, max_size=12),
    seq=st.integers(min_value=1, max_value=36**7 - 1),
)
def test_client_ids_stay_within_binances_limit(
    namespace: str, name: str, run: str, seq: int
) -> None:
    ids = ClientOrderIds(namespace, name, run)
    ids.seq = seq - 1
    cid = ids.next()
    assert BINANCE_CLIENT_ID.match(cid), cid
    assert ids.is_ours(cid)


def test_runs_never_share_ids_and_other_engines_orders_are_foreign() -> None:
    one = ClientOrderIds("ns", "a", "aaaaaaaa1111")
    two = ClientOrderIds("ns", "a", "bbbbbbbb2222")
    other = ClientOrderIds("ns", "b", "aaaaaaaa1111")
    assert one.next() != two.next()
    assert one.is_ours(two.next())  # an earlier run of the same engine: ours
    assert not one.is_ours(other.next())
    assert not one.is_ours("web_3f6286480b194b079870ac75fb6978b7")
    assert not one.is_ours(None)


def test_client_ids_are_deterministic_and_legal_on_okx() -> None:
    ids = _okx_ids("trading", "btc-momentum", "0f3a9c2b1d4e")
    first = [ids.next() for _ in range(3)]
    again = _okx_ids("trading", "btc-momentum", "0f3a9c2b1d4e")
    assert [again.next() for _ in range(3)] == first
    tag = engine_tag("trading", "btc-momentum")
    assert first == [f"hean{tag}0f3a9c2b1", f"hean{tag}0f3a9c2b2", f"hean{tag}0f3a9c2b3"]
    assert all(OKX_CLIENT_ID.match(cid) for cid in first)
    # Binance's format has dashes, which OKX refuses: the venue's pattern says so.
    with pytest.raises(ValueError, match="not one the exchange accepts"):
        ClientOrderIds("a", "b", "run1", allowed=VENUES["okx"].client_ids.pattern).next()


def test_without_separators_a_short_run_part_is_padded_so_runs_never_collide() -> None:
    # Unpadded, run "ab" with sequence number 36*1+12 ("1c") and run "ab1" with
    # sequence number 12 ("c") would both end "ab1c".
    short, longer = _okx_ids("ns", "e", "ab"), _okx_ids("ns", "e", "ab1")
    short.seq, longer.seq = 36 + 11, 11
    assert short.next() != longer.next()
    assert short.run_prefix.endswith("ab000000")


@given(
    namespace=st.from_regex(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", fullmatch=True),
    name=st.from_regex(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", fullmatch=True),
    run=st.text(alphabet="0123456789abcdef", min_size=1, max_size=12),
    seq=st.integers(min_value=1, max_value=36**8 - 1),
)
def test_client_ids_stay_within_okxs_limit(namespace: str, name: str, run: str, seq: int) -> None:
    ids = _okx_ids(namespace, name, run)
    ids.seq = seq - 1
    cid = ids.next()
    assert OKX_CLIENT_ID.match(cid), cid
    assert ids.is_ours(cid)
    assert not _okx_ids(namespace, name + "x", run).is_ours(cid)
