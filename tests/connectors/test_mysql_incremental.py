"""Pure logic of the incremental snapshot: signals, the offset state, and the DBLog
window: whatever the interleaving of binlog changes and chunk reads, applying the
records in order gives the table's final state."""

from __future__ import annotations

import itertools
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from omconnect.connectors.mysql.chunks import bounded_chunk_query
from omconnect.connectors.mysql.incremental import (
    COLLECTIONS,
    EXECUTE,
    MAXIMUM_KEY,
    PRIMARY_KEY,
    IncrementalSnapshot,
    decode_key,
    encode_key,
    parse_signal,
)
from omconnect.connectors.mysql.tables import Column, Table
from omconnect.errors import FatalError

T = ("shop", "items")
U = ("shop", "other")


def _ids() -> Any:
    counter = itertools.count()
    return lambda: f"w{next(counter)}"


def test_signals_are_parsed_with_their_collections() -> None:
    signal = parse_signal(
        {
            "id": "s1",
            "type": "execute-snapshot",
            "data": '{"data-collections": ["shop.items"], "type": "INCREMENTAL"}',
        }
    )
    assert (signal.type, signal.collections, signal.snapshot_type) == (
        EXECUTE,
        ("shop.items",),
        "incremental",
    )
    assert parse_signal({"id": "s2", "type": "stop-snapshot", "data": None}).collections == ()
    assert parse_signal({"id": "w", "type": "snapshot-window-open"}).type == "snapshot-window-open"
    for data in ("{", "[]", '{"data-collections": "shop.items"}', '{"data-collections": []}'):
        with pytest.raises(ValueError):
            parse_signal({"id": "bad", "type": "execute-snapshot", "data": data})


def test_keys_round_trip_through_json_text() -> None:
    key = (1, "a", Decimal("1.50"), b"\x00\xff", None)
    assert decode_key(encode_key(key)) == key
    assert encode_key(None) == "" and decode_key("") is None


def test_the_state_round_trips_through_the_offset() -> None:
    snapshot = IncrementalSnapshot([T, U], (5,), (99,))
    stored = snapshot.as_offset()
    assert stored == {
        COLLECTIONS: '["shop.items", "shop.other"]',
        PRIMARY_KEY: "[5]",
        MAXIMUM_KEY: "[99]",
    }
    again = IncrementalSnapshot.from_offset(stored)
    assert (again.collections, again.last_key, again.maximum_key) == ([T, U], (5,), (99,))
    assert IncrementalSnapshot().as_offset() == {COLLECTIONS: "", PRIMARY_KEY: "", MAXIMUM_KEY: ""}
    assert not IncrementalSnapshot.from_offset({}).active
    with pytest.raises(FatalError):
        IncrementalSnapshot.from_offset({COLLECTIONS: '["nodot"]'})


def _rows(*keys: int) -> list[tuple[Any, Any, dict[str, Any]]]:
    return [((k,), (k,), {"id": k}) for k in keys]


def test_a_window_drops_keys_changed_while_open_and_emits_the_rest() -> None:
    snapshot = IncrementalSnapshot(new_id=_ids())
    assert snapshot.execute([T, T]) == [T]
    first = snapshot.next_window()
    assert first is not None and first.needs_maximum
    snapshot.set_maximum((5,), estimated_rows=5)
    request = snapshot.next_window()
    assert request is not None and (request.after, request.maximum) == (None, (5,))
    assert snapshot.next_window() is None, "one window at a time"
    snapshot.chunk_read(_rows(1, 2, 3), chunk_size=3)
    snapshot.changed(T, (1,))  # before the low watermark: the chunk is newer
    assert snapshot.watermark("stale-close") == []
    snapshot.watermark(request.open_id)
    snapshot.changed(T, (2,))
    snapshot.changed(U, (3,))  # another table
    emitted = snapshot.watermark(request.close_id)
    assert [r.row["id"] for r in emitted] == [1, 3]
    assert [r.offset[PRIMARY_KEY] for r in emitted] == ["[1]", "[3]"]
    assert snapshot.last_key == (3,) and snapshot.rows_emitted == 2
    following = snapshot.next_window()
    assert following is not None and following.after == (3,)
    snapshot.chunk_read(_rows(4), chunk_size=3)  # short chunk: the table ends
    snapshot.watermark(following.open_id)
    assert [r.row["id"] for r in snapshot.watermark(following.close_id)] == [4]
    assert not snapshot.active and snapshot.as_offset()[COLLECTIONS] == ""


def test_stop_drops_the_current_window_and_tables() -> None:
    snapshot = IncrementalSnapshot([T, U], None, (9,), new_id=_ids())
    request = snapshot.next_window()
    assert request is not None
    snapshot.chunk_read(_rows(1), chunk_size=5)
    snapshot.stop([T])
    assert snapshot.watermark(request.open_id) == [] and snapshot.current == U
    snapshot.stop()
    assert not snapshot.active


def test_an_abandoned_window_is_read_again_with_new_watermarks() -> None:
    snapshot = IncrementalSnapshot([T], (2,), (9,), new_id=_ids())
    request = snapshot.next_window()
    assert request is not None
    snapshot.chunk_read(_rows(3), chunk_size=5)
    snapshot.abandon()
    again = snapshot.next_window()
    assert again is not None and again.after == (2,) and again.open_id != request.open_id


def test_an_empty_table_is_done_at_once() -> None:
    snapshot = IncrementalSnapshot([T, U])
    snapshot.set_maximum(None)
    assert snapshot.current == U


def test_the_chunk_query_is_bounded_by_the_maximum_key() -> None:
    column = Column("a", 1, "int", "int", False, False)
    table = Table("d", "t", (column, Column("b", 2, "int", "int", False, False)), ("a", "b"))
    assert bounded_chunk_query(table, 10, after=True) == (
        "SELECT * FROM `d`.`t` WHERE (`a`, `b`) > (%s, %s) AND (`a`, `b`) <= (%s, %s)"
        " ORDER BY `a`, `b` LIMIT 10"
    )
    single = Table("d", "t", (column,), ("a",))
    assert bounded_chunk_query(single, 5, after=False) == (
        "SELECT * FROM `d`.`t` WHERE `a` <= %s ORDER BY `a` LIMIT 5"
    )


# --- the property: the records applied in order equal the table -----------------------

_change = st.tuples(st.integers(0, 15), st.one_of(st.none(), st.integers(0, 99)))
_action = st.one_of(
    st.tuples(st.just("change"), _change),
    st.tuples(st.just("tick"), st.just(None)),
    st.tuples(
        st.just("window"),
        st.tuples(st.lists(_change, max_size=3), st.lists(_change, max_size=3)),
    ),
)


class _Model:
    """A table, its binlog, and the task: windows, the streamer and a sink applying
    the records in order."""

    def __init__(self, initial: dict[int, int], chunk_size: int) -> None:
        self.table = dict(initial)
        self.binlog: list[tuple[str, Any]] = []
        self.read = 0
        self.sink: dict[int, int] = {}
        self.chunk_size = chunk_size
        self.snapshot = IncrementalSnapshot(new_id=_ids())
        self.snapshot.execute([T])

    def change(self, key: int, value: int | None) -> None:
        if value is None:
            self.table.pop(key, None)
        else:
            self.table[key] = value
        self.binlog.append(("row", (key, value)))

    def window(self, before_select: list[Any], after_select: list[Any]) -> None:
        request = self.snapshot.next_window()
        if request is not None and request.needs_maximum:
            self.snapshot.set_maximum((max(self.table),) if self.table else None)
            request = self.snapshot.next_window()
        if request is None:
            return
        self.binlog.append(("wm", request.open_id))
        for key, value in before_select:
            self.change(key, value)
        low = request.after[0] if request.after else -1
        keys = sorted(k for k in self.table if low < k <= request.maximum[0])  # type: ignore[index]
        chunk = [((k,), (k,), {"id": k, "v": self.table[k]}) for k in keys[: self.chunk_size]]
        for key, value in after_select:
            self.change(key, value)
        self.binlog.append(("wm", request.close_id))
        self.snapshot.chunk_read(chunk, self.chunk_size)

    def tick(self) -> None:
        if self.read == len(self.binlog):
            return
        kind, item = self.binlog[self.read]
        self.read += 1
        if kind == "wm":
            for row in self.snapshot.watermark(item):
                self.sink[row.row["id"]] = row.row["v"]
            return
        key, value = item
        self.snapshot.changed(T, (key,))
        if value is None:
            self.sink.pop(key, None)
        else:
            self.sink[key] = value

    def drain(self) -> None:
        while self.read < len(self.binlog):
            self.tick()


@settings(max_examples=300, deadline=None)
@given(
    initial=st.dictionaries(st.integers(0, 15), st.integers(0, 99), max_size=12),
    actions=st.lists(_action, max_size=40),
    chunk_size=st.integers(1, 4),
)
def test_the_records_applied_in_order_equal_the_table(
    initial: dict[int, int], actions: list[tuple[str, Any]], chunk_size: int
) -> None:
    model = _Model(initial, chunk_size)
    for kind, arg in actions:
        if kind == "change":
            model.change(*arg)
        elif kind == "tick":
            model.tick()
        elif model.read == len(model.binlog):  # the task runs a window when caught up
            model.window(*arg)
    model.drain()
    while model.snapshot.active:
        model.window([], [])
        model.drain()
    assert model.sink == model.table
