"""Committed offsets (table + file) and the relay progress rule."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from omconnect.broker.offsets import OffsetStore, OffsetTable, ProgressTracker
from omconnect.errors import ConfigError, CorruptDataError

# -- OffsetTable -----------------------------------------------------------------------


def test_commit_merges_partitions_and_returns_copies() -> None:
    table = OffsetTable()
    table.commit("ns", "g", "q", {0: 5, 1: 7})
    table.commit("ns", "g", "q", {1: 9, 2: 1})
    got = table.committed("ns", "g", "q")
    assert got == {0: 5, 1: 9, 2: 1}
    got[0] = 100
    assert table.committed("ns", "g", "q")[0] == 5
    assert table.committed("ns", "other", "q") == {}
    assert table.committed("other", "g", "q") == {}


def test_groups_are_independent() -> None:
    table = OffsetTable()
    table.commit("ns", "a", "q", {0: 1})
    table.commit("ns", "b", "q", {0: 2})
    assert table.committed("ns", "a", "q") == {0: 1}
    assert table.committed("ns", "b", "q") == {0: 2}


@pytest.mark.parametrize("offsets", [{0: -1}, {-1: 0}, {0: "1"}, {"0": 1}, {0: True}, [(0, 1)]])
def test_bad_offsets_are_rejected(offsets: object) -> None:
    table = OffsetTable()
    with pytest.raises(ConfigError):
        table.commit("ns", "g", "q", offsets)  # type: ignore[arg-type]
    assert table.version == 0


def test_version_counts_changes_only() -> None:
    table = OffsetTable()
    table.commit("ns", "g", "q", {})
    assert table.version == 0
    table.commit("ns", "g", "q", {0: 1})
    assert table.version == 1
    table.drop_queue("ns", "absent")
    assert table.version == 1
    table.drop_queue("ns", "q")
    assert table.version == 2


def test_drop_queue_and_namespace() -> None:
    table = OffsetTable()
    table.commit("ns", "g", "q", {0: 1})
    table.commit("ns", "h", "q", {0: 1})
    table.commit("ns", "g", "r", {0: 1})
    table.commit("other", "g", "q", {0: 1})
    table.drop_queue("ns", "q")
    assert [key for key, _ in table.items()] == [("ns", "g", "r"), ("other", "g", "q")]
    table.drop_namespace("ns")
    assert [key for key, _ in table.items()] == [("other", "g", "q")]


def test_json_round_trip() -> None:
    table = OffsetTable()
    table.commit("ns", "g", "q", {0: 5, 10: 7})
    table.commit("ns", "h", "r", {3: 0})
    copy = OffsetTable.from_json(json.loads(json.dumps(table.to_json())))
    assert dict(copy.items()) == dict(table.items())


@pytest.mark.parametrize(
    "data",
    [
        None,
        [],
        {"version": 9, "offsets": []},
        {"version": 1},
        {"version": 1, "offsets": [{"namespace": "n"}]},
        {
            "version": 1,
            "offsets": [{"namespace": "n", "group": "g", "queue": "q", "partitions": {"x": 1}}],
        },
    ],
)
def test_from_json_rejects_garbage(data: object) -> None:
    with pytest.raises(CorruptDataError):
        OffsetTable.from_json(data)


# -- OffsetStore -----------------------------------------------------------------------


def test_store_persists_only_when_changed_and_survives_reopen(tmp_path: Path) -> None:
    store = OffsetStore(tmp_path)
    assert store.persist() is False  # nothing to write
    store.commit("ns", "g", "q", {0: 42})
    assert OffsetStore(tmp_path).committed("ns", "g", "q") == {}  # not persisted yet
    assert store.persist() is True
    assert store.persist() is False
    assert OffsetStore(tmp_path).committed("ns", "g", "q") == {0: 42}
    store.drop_namespace("ns")
    assert store.persist() is True
    assert OffsetStore(tmp_path).committed("ns", "g", "q") == {}


def test_store_rejects_corrupt_file(tmp_path: Path) -> None:
    (tmp_path / OffsetStore.FILE_NAME).write_bytes(b"\x00garbage")
    with pytest.raises(CorruptDataError):
        OffsetStore(tmp_path)


# -- ProgressTracker -------------------------------------------------------------------


def test_empty_tracker_reports_its_starts() -> None:
    assert ProgressTracker().checkpoint() == (0, 0)
    assert ProgressTracker(10, 4).checkpoint() == (10, 4)


def test_source_progress_is_lowest_pending() -> None:
    tracker = ProgressTracker()
    for offset in range(5):
        tracker.add(offset)
    tracker.settle(0, [1, 3])
    assert tracker.checkpoint()[0] == 0
    tracker.settle(1, [0])
    assert tracker.checkpoint()[0] == 2
    tracker.settle(2, [2, 4])
    assert tracker.checkpoint() == (5, 3)  # nothing pending: both ends


def test_op_progress_keeps_ops_that_settled_entries_above_source_progress() -> None:
    tracker = ProgressTracker()
    for offset in range(4):
        tracker.add(offset)
    tracker.settle(0, [3])  # settles an entry above the pending 0: must be re-read
    tracker.settle(1, [1])
    assert tracker.checkpoint() == (0, 0)
    tracker.settle(2, [0])
    # pending {2}: op 0 settled 3 >= 2 so it must be re-read; ops 1, 2 are below
    assert tracker.checkpoint() == (2, 0)
    tracker.settle(3, [2])
    assert tracker.checkpoint() == (4, 4)


def test_op_settling_old_and_new_entries_is_kept() -> None:
    tracker = ProgressTracker()
    tracker.add(0)
    tracker.add(1)
    tracker.add(2)
    tracker.settle(7, [0, 2])
    assert tracker.checkpoint() == (1, 7)


def test_advance_source_moves_end_without_pending() -> None:
    tracker = ProgressTracker(3, 0)
    tracker.advance_source(9)
    assert tracker.checkpoint() == (9, 0)
    tracker.advance_source(5)  # never backwards
    assert tracker.checkpoint() == (9, 0)


def test_duplicate_add_and_settle_of_unknown_offsets() -> None:
    tracker = ProgressTracker()
    tracker.add(2)
    tracker.add(2)
    assert tracker.pending_count == 1
    tracker.settle(0, [99])  # settled elsewhere: harmless
    assert tracker.is_pending(2)
    tracker.settle(1, [2])
    assert not tracker.is_pending(2)
    assert tracker.checkpoint() == (3, 0)  # op 0 settled 99 >= 3: it must be re-read


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(st.integers(0, 30), max_size=4), max_size=25), st.integers(1, 31))
def test_checkpoint_matches_brute_force(ops: list[list[int]], entries: int) -> None:
    """Restarting from the checkpoint re-reads exactly what a brute force says it must."""
    tracker = ProgressTracker()
    for offset in range(entries):
        tracker.add(offset)
    settled: set[int] = set()
    history: list[list[int]] = []
    for op_offset, refs in enumerate(ops):
        refs = [r for r in refs if r < entries]
        tracker.settle(op_offset, refs)
        settled.update(refs)
        history.append(refs)
        source, op = tracker.checkpoint()
        pending = set(range(entries)) - settled
        assert source == (min(pending) if pending else entries)
        # every op that settled an entry at or above `source` is at or after `op`
        needed = [i for i, r in enumerate(history) if any(x >= source for x in r)]
        assert op == (needed[0] if needed else op_offset + 1)
