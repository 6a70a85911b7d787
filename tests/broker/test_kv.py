"""The key-value store: the pure state machine, then the durable compacted log."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from omconnect.broker.api import KvEvent
from omconnect.broker.kv import (
    DELETE,
    ENTRY,
    PUT,
    SNAPSHOT,
    KvRecord,
    KvState,
    KvStore,
    should_compact,
    validate_key,
)
from omconnect.broker.store import StoreConfig
from omconnect.errors import CompactedError, ConfigError, CorruptDataError


def put(state: KvState, key: str, value: bytes, ns: str = "ns", expires_at: int = 0) -> int:
    record = state.plan_put(ns, key, value, expires_at)
    state.apply(record)
    return record.revision


def apply_all(state: KvState, records: list[KvRecord]) -> None:
    for record in records:
        state.apply(record)


# -- records ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "record",
    [
        KvRecord(PUT, 1, "ns", "k", b"v", 0),
        KvRecord(PUT, 7, "ns", "k/\u00e9", b"\x00" * 10, 99),
        KvRecord(DELETE, 2, "ns", "k"),
        KvRecord(SNAPSHOT, 40),
        KvRecord(ENTRY, 3, "a", "b", b"c", 5, 2),
    ],
)
def test_record_round_trip(record: KvRecord) -> None:
    assert KvRecord.decode(record.encode()) == record


@pytest.mark.parametrize("payload", [b"", b"\xc1", b"\x93\x01\x02\x03", KvRecord(9, 1).encode()])
def test_record_decode_rejects_garbage(payload: bytes) -> None:
    with pytest.raises(CorruptDataError):
        KvRecord.decode(payload)


@pytest.mark.parametrize("key", ["", None, "x" * 1025, 5])
def test_bad_keys(key: object) -> None:
    with pytest.raises(ConfigError):
        validate_key(key)


# -- get / put / cas / delete ----------------------------------------------------------


def test_put_assigns_consecutive_revisions_and_keeps_create_revision() -> None:
    state = KvState()
    assert put(state, "a", b"1") == 1
    assert put(state, "b", b"2") == 2
    assert put(state, "a", b"3") == 3
    a = state.get("ns", "a")
    assert a is not None
    assert (a.value, a.revision, a.create_revision) == (b"3", 3, 1)
    assert state.revision == 3


def test_planning_changes_nothing() -> None:
    state = KvState()
    put(state, "a", b"1")
    state.plan_put("ns", "a", b"2")
    state.plan_delete("ns", "a")
    state.plan_delete_namespace("ns")
    assert state.get("ns", "a") is not None
    assert state.get("ns", "a").value == b"1"  # type: ignore[union-attr]
    assert state.revision == 1


def test_namespaces_are_separate_key_spaces() -> None:
    state = KvState()
    put(state, "k", b"in-a", ns="a")
    put(state, "k", b"in-b", ns="b")
    assert state.get("a", "k").value == b"in-a"  # type: ignore[union-attr]
    assert state.get("b", "k").value == b"in-b"  # type: ignore[union-attr]
    assert state.get("c", "k") is None
    apply_all(state, state.plan_delete_namespace("a"))
    assert state.get("a", "k") is None
    assert state.get("b", "k") is not None


def test_cas_zero_means_must_not_exist() -> None:
    state = KvState()
    record = state.plan_cas("ns", "k", b"v", 0)
    assert record is not None
    state.apply(record)
    assert state.plan_cas("ns", "k", b"w", 0) is None


def test_cas_on_revision() -> None:
    state = KvState()
    rev = put(state, "k", b"v")
    put(state, "other", b"x")
    assert state.plan_cas("ns", "k", b"w", rev + 1) is None
    assert state.plan_cas("ns", "k", b"w", rev - 1) is None
    record = state.plan_cas("ns", "k", b"w", rev)
    assert record is not None and record.revision == 3
    state.apply(record)
    assert state.get("ns", "k").value == b"w"  # type: ignore[union-attr]


def test_cas_after_delete_sees_absent_key() -> None:
    state = KvState()
    rev = put(state, "k", b"v")
    state.apply(state.plan_delete("ns", "k"))  # type: ignore[arg-type]
    assert state.plan_cas("ns", "k", b"w", rev) is None
    assert state.plan_cas("ns", "k", b"w", 0) is not None


def test_delete_unconditional_and_at_revision() -> None:
    state = KvState()
    rev = put(state, "k", b"v")
    assert state.plan_delete("ns", "missing") is None
    assert state.plan_delete("ns", "k", rev + 5) is None
    record = state.plan_delete("ns", "k", rev)
    assert record is not None
    state.apply(record)
    assert state.get("ns", "k") is None
    assert state.plan_delete("ns", "k") is None


def test_recreated_key_gets_new_create_revision() -> None:
    state = KvState()
    put(state, "k", b"1")
    state.apply(state.plan_delete("ns", "k"))  # type: ignore[arg-type]
    put(state, "k", b"2")
    assert state.get("ns", "k").create_revision == 3  # type: ignore[union-attr]


def test_list_by_prefix_sorted_within_namespace() -> None:
    state = KvState()
    for key in ["cfg/b", "cfg/a", "status/x", "cfg", "cfg/c"]:
        put(state, key, b"v")
    put(state, "cfg/z", b"v", ns="other")
    assert [kv.key for kv in state.list_prefix("ns", "cfg/")] == ["cfg/a", "cfg/b", "cfg/c"]
    assert [kv.key for kv in state.list_prefix("ns", "")] == [
        "cfg",
        "cfg/a",
        "cfg/b",
        "cfg/c",
        "status/x",
    ]
    assert state.list_prefix("ns", "nope") == []
    assert len(state) == 6


def test_apply_rejects_out_of_order_revisions() -> None:
    state = KvState()
    put(state, "a", b"1")
    with pytest.raises(CorruptDataError):
        state.apply(KvRecord(PUT, 5, "ns", "b", b""))
    with pytest.raises(CorruptDataError):
        state.apply(KvRecord(DELETE, 1, "ns", "a"))


# -- TTL -------------------------------------------------------------------------------


def test_expiry_deletes_due_keys_in_deadline_order() -> None:
    state = KvState()
    put(state, "late", b"", expires_at=300)
    put(state, "early", b"", expires_at=100)
    put(state, "forever", b"")
    put(state, "mid", b"", expires_at=200)
    assert state.plan_expiry(99) == []
    assert state.next_expiry() == 100
    records = state.plan_expiry(200)
    assert [(r.kind, r.key, r.revision) for r in records] == [
        (DELETE, "early", 5),
        (DELETE, "mid", 6),
    ]
    apply_all(state, records)
    assert state.get("ns", "early") is None and state.get("ns", "mid") is None
    assert state.get("ns", "late") is not None and state.get("ns", "forever") is not None
    assert state.plan_expiry(200) == []


def test_planned_expiry_is_planned_again_until_applied() -> None:
    state = KvState()
    put(state, "k", b"", expires_at=10)
    assert len(state.plan_expiry(10)) == 1
    assert len(state.plan_expiry(10)) == 1  # the first plan was never applied


def test_rewrite_replaces_ttl() -> None:
    state = KvState()
    put(state, "k", b"1", expires_at=100)
    put(state, "k", b"2")  # no TTL any more
    assert state.plan_expiry(1000) == []
    put(state, "j", b"1", expires_at=100)
    put(state, "j", b"2", expires_at=500)  # TTL extended
    assert state.plan_expiry(400) == []
    assert [r.key for r in state.plan_expiry(500)] == ["j"]


def test_deleted_key_does_not_expire() -> None:
    state = KvState()
    put(state, "k", b"", expires_at=10)
    state.apply(state.plan_delete("ns", "k"))  # type: ignore[arg-type]
    assert state.plan_expiry(100) == []


# -- watch -----------------------------------------------------------------------------


def test_watch_filters_namespace_and_prefix() -> None:
    state = KvState()
    put(state, "cfg/a", b"1")  # 1
    put(state, "other", b"x")  # 2
    put(state, "cfg/a", b"2", ns="ns2")  # 3
    state.apply(state.plan_delete("ns", "cfg/a"))  # type: ignore[arg-type]  # 4
    events, next_rev = state.watch("ns", "cfg/", 1)
    assert events == [KvEvent("put", "cfg/a", b"1", 1), KvEvent("delete", "cfg/a", b"", 4)]
    assert next_rev == 5
    events, next_rev = state.watch("ns", "cfg/", 2)
    assert events == [KvEvent("delete", "cfg/a", b"", 4)]
    assert state.watch("ns", "cfg/", 5) == ([], 5)
    assert state.watch("ns", "cfg/", 9) == ([], 9)  # a future revision stays


def test_watch_from_zero_means_from_now() -> None:
    state = KvState()
    put(state, "k", b"1")
    put(state, "k", b"2")
    assert state.watch("ns", "", 0) == ([], 3)
    assert state.watch("ns", "", -4) == ([], 3)


def test_watch_limit_resumes_where_it_stopped() -> None:
    state = KvState()
    for i in range(10):
        put(state, f"k{i}", b"")
    events, next_rev = state.watch("ns", "", 1, limit=4)
    assert [e.revision for e in events] == [1, 2, 3, 4] and next_rev == 5
    events, next_rev = state.watch("ns", "", next_rev, limit=4)
    assert [e.revision for e in events] == [5, 6, 7, 8] and next_rev == 9
    events, next_rev = state.watch("ns", "", next_rev, limit=4)
    assert [e.revision for e in events] == [9, 10] and next_rev == 11


def test_watch_raises_compacted_when_history_is_trimmed() -> None:
    state = KvState(history_limit=3)
    for i in range(7):  # trimmed once past 2 * limit
        put(state, "k", str(i).encode())
    assert state.history_floor == 5
    with pytest.raises(CompactedError):
        state.watch("ns", "", 4)
    events, _ = state.watch("ns", "", 5)
    assert [e.value for e in events] == [b"4", b"5", b"6"]


@pytest.mark.parametrize("limit", [0, -1])
def test_bad_history_limit(limit: int) -> None:
    with pytest.raises(ConfigError):
        KvState(history_limit=limit)


# -- snapshot / replay -----------------------------------------------------------------


def test_snapshot_replay_rebuilds_state_and_keeps_revisions_monotonic() -> None:
    state = KvState()
    put(state, "a", b"1")
    put(state, "b", b"2", expires_at=50)
    put(state, "a", b"3")
    put(state, "gone", b"x")
    state.apply(state.plan_delete("ns", "gone"))  # type: ignore[arg-type]  # revision 5
    replayed = KvState()
    apply_all(replayed, state.snapshot())
    assert replayed.revision == 5
    assert replayed.list_prefix("ns", "") == state.list_prefix("ns", "")
    assert replayed.history_floor == 6
    with pytest.raises(CompactedError):
        replayed.watch("ns", "", 5)
    assert replayed.watch("ns", "", 6) == ([], 6)
    assert put(replayed, "c", b"") == 6  # revisions continue after the delete
    assert [r.key for r in replayed.plan_expiry(50)] == ["b"]  # TTLs survive


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["put", "del", "cas", "exp"]),
            st.sampled_from(["a", "b", "c"]),
            st.integers(0, 6),
        ),
        max_size=30,
    )
)
def test_replay_of_the_log_equals_live_state(ops: list[tuple[str, str, int]]) -> None:
    """Whatever the ops, replaying their records (with or without a snapshot in the
    middle) gives the same keys and revision."""
    live = KvState()
    log: list[KvRecord] = []
    for i, (op, key, n) in enumerate(ops):
        records: list[KvRecord | None]
        if op == "put":
            records = [live.plan_put("ns", key, bytes([n]), expires_at=n * 10)]
        elif op == "del":
            records = [live.plan_delete("ns", key, -1 if n % 2 else n)]
        elif op == "cas":
            records = [live.plan_cas("ns", key, bytes([n]), n)]
        else:
            records = list(live.plan_expiry(n * 10))
        for record in records:
            if record is not None:
                live.apply(record)
                log.append(record)
        if i == len(ops) // 2:
            log = live.snapshot()
    replayed = KvState()
    apply_all(replayed, log)
    assert replayed.revision == live.revision
    assert replayed.list_prefix("ns", "") == live.list_prefix("ns", "")


# -- compaction rule -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("records", "live", "factor", "min_dead", "expected"),
    [
        (0, 0, 2.0, 1, False),
        (1, 0, 2.0, 1, False),  # a lone snapshot header
        (2, 0, 2.0, 1, True),
        (101, 100, 2.0, 1, False),  # no dead records
        (301, 100, 2.0, 1, False),  # 200 dead: not more than 2x
        (302, 100, 2.0, 1, True),
        (302, 100, 2.0, 500, False),  # too few to bother
        (1001, 0, 2.0, 1000, True),
        (1000, 0, 2.0, 1000, False),
    ],
)
def test_should_compact(
    records: int, live: int, factor: float, min_dead: int, expected: bool
) -> None:
    assert should_compact(records, live, factor, min_dead) is expected


# -- the durable store -----------------------------------------------------------------


class FakeClock:
    def __init__(self, now: int = 1_000_000) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


STORE_CONFIG = StoreConfig(segment_bytes=1 << 20)


def open_kv(path: Path, clock: FakeClock, **kwargs: Any) -> KvStore:
    return KvStore(path, STORE_CONFIG, clock, **kwargs)


def test_writes_survive_reopen_and_revisions_continue(tmp_path: Path) -> None:
    clock = FakeClock()
    kv = open_kv(tmp_path, clock)
    assert kv.put("ns", "a", b"1") == 1
    assert kv.cas("ns", "b", b"2", 0) == 2
    assert kv.cas("ns", "b", b"x", 0) is None
    assert kv.put("ns", "a", b"3") == 3
    assert kv.delete("ns", "b") is True
    assert kv.delete("ns", "b") is False
    kv.close()
    kv = open_kv(tmp_path, clock)
    assert kv.get("ns", "b") is None
    a = kv.get("ns", "a")
    assert a is not None and (a.value, a.revision, a.create_revision) == (b"3", 3, 1)
    assert kv.put("ns", "c", b"") == 5  # the delete took revision 4
    events, next_rev = kv.watch("ns", "", 1, 0)
    assert [(e.kind, e.key, e.revision) for e in events] == [
        ("put", "a", 1),
        ("put", "b", 2),
        ("put", "a", 3),
        ("delete", "b", 4),
        ("put", "c", 5),
    ]
    assert next_rev == 6
    kv.close()


def test_ttl_expires_on_the_clock_and_across_restart(tmp_path: Path) -> None:
    clock = FakeClock()
    kv = open_kv(tmp_path, clock)
    kv.put("ns", "lease", b"w1", ttl_ms=500)
    kv.put("ns", "long", b"w2", ttl_ms=5000)
    lease = kv.get("ns", "lease")
    assert lease is not None and lease.expires_at == clock.now + 500
    clock.now += 499
    assert kv.get("ns", "lease") is not None
    clock.now += 1
    assert kv.get("ns", "lease") is None
    assert kv.cas("ns", "lease", b"w3", 0) is not None  # expired means absent
    kv.close()
    kv = open_kv(tmp_path, clock)
    assert kv.get("ns", "long") is not None
    clock.now += 5000
    assert kv.expire() == 1  # "long"; the re-created "lease" has no TTL
    assert [k.key for k in kv.list_prefix("ns", "")] == ["lease"]
    events, _ = kv.watch("ns", "long", 1, 0)
    assert [e.kind for e in events] == ["put", "delete"]
    kv.close()


@pytest.mark.parametrize("ttl", [-1, True, 1.5])
def test_bad_ttl(tmp_path: Path, ttl: object) -> None:
    kv = open_kv(tmp_path, FakeClock())
    with pytest.raises(ConfigError):
        kv.put("ns", "k", b"", ttl_ms=ttl)  # type: ignore[arg-type]
    kv.close()


def test_value_size_limit(tmp_path: Path) -> None:
    kv = open_kv(tmp_path, FakeClock(), max_value_bytes=10)
    kv.put("ns", "k", b"x" * 10)
    with pytest.raises(ConfigError):
        kv.put("ns", "k", b"x" * 11)
    kv.close()


def test_compaction_keeps_state_and_revisions_and_bounds_the_log(tmp_path: Path) -> None:
    clock = FakeClock()
    kv = open_kv(tmp_path, clock, compaction_factor=1.0, compaction_min_records=10)
    kv.put("ns", "keep", b"k", ttl_ms=10_000)
    for i in range(100):
        kv.put("ns", "hot", str(i).encode())
    kv.put("ns", "doomed", b"")
    kv.delete("ns", "doomed")
    generations = [p.name for p in tmp_path.glob("gen-*")]
    assert len(generations) == 1 and generations != ["gen-00000001"]
    assert (tmp_path / "CURRENT").read_text() == generations[0]
    revision = kv.revision
    assert revision == 103
    # the watch history of this process survives compaction
    events, _ = kv.watch("ns", "hot", 2, 0)
    assert len(events) == 100
    kv.close()
    kv = open_kv(tmp_path, clock, compaction_factor=1.0, compaction_min_records=10)
    assert kv.revision == revision
    assert [(k.key, k.value) for k in kv.list_prefix("ns", "")] == [("hot", b"99"), ("keep", b"k")]
    keep = kv.get("ns", "keep")
    assert keep is not None and keep.revision == 1 and keep.expires_at == clock.now + 10_000
    with pytest.raises(CompactedError):
        kv.watch("ns", "", 2, 0)
    assert kv.put("ns", "new", b"") == revision + 1
    events, _ = kv.watch("ns", "", revision + 1, 0)
    assert [e.key for e in events] == ["new"]
    clock.now += 10_000
    assert kv.get("ns", "keep") is None
    kv.close()


def test_interrupted_compaction_leftovers_are_removed(tmp_path: Path) -> None:
    clock = FakeClock()
    kv = open_kv(tmp_path, clock)
    kv.put("ns", "k", b"v")
    kv.close()
    (tmp_path / "gen-00000002").mkdir()  # a compaction that never switched CURRENT
    (tmp_path / "gen-00000002" / "junk").write_bytes(b"x")
    kv = open_kv(tmp_path, clock)
    assert not (tmp_path / "gen-00000002").exists()
    assert kv.get("ns", "k") is not None
    kv.close()


def test_watch_long_poll_returns_when_a_write_arrives(tmp_path: Path) -> None:
    kv = open_kv(tmp_path, FakeClock())
    kv.put("ns", "other", b"")
    timer = threading.Timer(0.2, lambda: kv.put("ns", "cfg/x", b"v"))
    started = time.monotonic()
    timer.start()
    events, next_rev = kv.watch("ns", "cfg/", 0, 10_000)
    elapsed = time.monotonic() - started
    timer.join()
    assert [(e.key, e.value) for e in events] == [("cfg/x", b"v")]
    assert next_rev == 3
    assert 0.15 < elapsed < 5
    started = time.monotonic()
    assert kv.watch("ns", "cfg/", next_rev, 100) == ([], 3)  # times out empty
    assert time.monotonic() - started >= 0.09
    kv.close()


def test_sync_flush_mode(tmp_path: Path) -> None:
    kv = KvStore(tmp_path, StoreConfig(segment_bytes=1 << 20, flush_mode="sync"), FakeClock())
    assert kv.put("ns", "k", b"v") == 1
    kv.close()
    kv = KvStore(tmp_path, StoreConfig(segment_bytes=1 << 20, flush_mode="sync"), FakeClock())
    assert kv.get("ns", "k") is not None
    kv.close()


def test_corrupt_current_file(tmp_path: Path) -> None:
    (tmp_path / "CURRENT").write_text("gen-x")
    with pytest.raises(CorruptDataError):
        open_kv(tmp_path, FakeClock())
