"""The in-process `Broker` end to end, on a real store in a temp dir and a fake clock."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from omconnect import codec
from omconnect.broker.api import KvEvent, QueueInfo
from omconnect.broker.broker import Broker
from omconnect.broker.config import BrokerConfig
from omconnect.broker.store import StoreConfig
from omconnect.errors import (
    AlreadyExistsError,
    CompactedError,
    ConfigError,
    CorruptDataError,
    MessageTooLargeError,
    NotFoundError,
)
from omconnect.message import Message

START = 1_700_000_000_000


class FakeClock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> int:
        return self.now


def msg(body: bytes, **headers: Any) -> bytes:
    return codec.encode(Message(body, **headers))


def bodies(result: Any) -> list[bytes]:
    return [codec.decode(m.encoded).body for m in result.messages]


class Harness:
    """Opens brokers on one data dir with one clock; closes whatever it opened."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.clock = FakeClock()
        self.opened: list[Broker] = []
        self.overrides: dict[str, Any] = {}

    def open(self, **overrides: Any) -> Broker:
        self.overrides.update(overrides)
        settings: dict[str, Any] = {
            "data_dir": self.path,
            "store": StoreConfig(segment_bytes=1 << 20, max_message_bytes=64 << 10),
            "transaction_check_interval_ms": 1000,
            "scheduler_tick_ms": 20,
            "ttl_check_interval_ms": 20,
        }
        settings.update(self.overrides)
        broker = Broker(BrokerConfig(**settings), self.clock)
        self.opened.append(broker)
        return broker

    def reopen(self, broker: Broker) -> Broker:
        broker.close()
        return self.open()


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    h = Harness(tmp_path / "broker")
    yield h
    for broker in h.opened:
        broker.close()


@pytest.fixture
def broker(harness: Harness) -> Broker:
    b = harness.open()
    b.create_queue("ns", "q", 2)
    return b


# -- config and codec peek -------------------------------------------------------------


def test_config_from_mapping_converts_strings(tmp_path: Path) -> None:
    config = BrokerConfig.from_mapping(
        {
            "data_dir": str(tmp_path),
            "port": "1234",
            "flush_mode": "sync",
            "kv_compaction_factor": "3.5",
            "retention_ms": "0",
        }
    )
    assert config.port == 1234 and config.store.flush_mode == "sync"
    assert config.kv_compaction_factor == 3.5 and config.store.retention_ms == 0
    assert config.data_dir == tmp_path


@pytest.mark.parametrize(
    ("values", "key"),
    [
        ({"port": "1"}, "data_dir"),
        ({"data_dir": "/x", "nope": 1}, "nope"),
        ({"data_dir": "/x", "port": "abc"}, "port"),
        ({"data_dir": "/x", "port": 70000}, "port"),
        ({"data_dir": "/x", "transaction_check_interval_ms": 0}, "transaction_check_interval_ms"),
        ({"data_dir": "/x", "kv_compaction_factor": 0}, "kv_compaction_factor"),
        ({"data_dir": "/x", "segment_bytes": 1 << 20}, "segment_bytes"),
        ({"data_dir": "/x", "flush_mode": "never"}, "flush_mode"),
    ],
)
def test_config_errors_name_the_key(values: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as info:
        BrokerConfig.from_mapping(values)
    assert info.value.key == key


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (Message(b""), 0),
        (Message(b"x", expire_time=5), 5),
        (Message(b"x", properties={"a": "b" * 300}, priority=2, expire_time=START), START),
        (Message(b"x", properties={"a": "b"}, delay_time=9), 0),
    ],
)
def test_peek_expire_time(message: Message, expected: int) -> None:
    assert codec.peek_expire_time(codec.encode(message)) == expected


def test_peek_expire_time_rejects_garbage() -> None:
    encoded = codec.encode(Message(b"x", expire_time=5))
    with pytest.raises(CorruptDataError):
        codec.peek_expire_time(encoded[:5])
    with pytest.raises(CorruptDataError):
        codec.peek_expire_time(encoded[:15])


# -- resources -------------------------------------------------------------------------


def test_namespaces_and_queues(broker: Broker) -> None:
    assert broker.list_namespaces() == ["ns"]
    assert broker.create_queue("ns", "q", 3) == QueueInfo("ns", "q", 3)
    with pytest.raises(AlreadyExistsError):
        broker.create_queue("ns", "q", 1)
    broker.create_queue("ns", "%RETRY%g", 1)
    assert [q.name for q in broker.list_queues("ns")] == ["%RETRY%g", "q"]
    assert broker.queue_info("ns", "q").partitions == 3
    broker.delete_queue("ns", "%RETRY%g")
    with pytest.raises(NotFoundError):
        broker.queue_info("ns", "%RETRY%g")
    with pytest.raises(NotFoundError):
        broker.list_queues("nope")
    with pytest.raises(ConfigError):
        broker.create_namespace("bad name")


def test_unknown_queue_and_namespace_are_not_found(broker: Broker) -> None:
    calls = [
        lambda: broker.append("ns", "nope", 0, [msg(b"x")]),
        lambda: broker.append("nope", "q", 0, [msg(b"x")]),
        lambda: broker.read("ns", "nope", 0, 0, 10, 0),
        lambda: broker.offset_range("ns", "nope", 0),
        lambda: broker.append_delayed("ns", "nope", 0, [msg(b"x")], [START + 1]),
        lambda: broker.prepare("ns", "pg", "t", "nope", 0, [msg(b"x")]),
        lambda: broker.commit_offsets("ns", "g", "nope", {0: 1}),
        lambda: broker.kv_put("nope", "k", b"v"),
        lambda: broker.kv_get("nope", "k"),
        lambda: broker.transaction_checks("nope", "pg", 0),
        lambda: broker.delete_namespace("nope"),
    ]
    for call in calls:
        with pytest.raises(NotFoundError):
            call()


def test_bad_arguments_are_config_errors(broker: Broker) -> None:
    calls = [
        lambda: broker.append("ns", "q", 2, [msg(b"x")]),  # partitions are 0 and 1
        lambda: broker.append("ns", "q", -1, [msg(b"x")]),
        lambda: broker.append("ns", "q", 0, msg(b"x")),  # not a sequence of messages
        lambda: broker.read("ns", "q", 0, -1, 10, 0),
        lambda: broker.read("ns", "q", 0, 0, 0, 0),
        lambda: broker.read("ns", "q", 0, 0, 10, -5),
        lambda: broker.append_delayed("ns", "q", 0, [msg(b"x")], []),
        lambda: broker.prepare("ns", "pg", "", "q", 0, [msg(b"x")]),
        lambda: broker.commit_offsets("ns", "g", "q", {5: 1}),
        lambda: broker.commit_offsets("ns", "g", "q", {0: -1}),
        lambda: broker.kv_put("ns", "", b"v"),
    ]
    for call in calls:
        with pytest.raises(ConfigError):
            call()


# -- append / read ---------------------------------------------------------------------


def test_append_and_read(broker: Broker) -> None:
    assert broker.append("ns", "q", 1, [msg(b"a"), msg(b"b")]) == [0, 1]
    assert broker.append("ns", "q", 1, [msg(b"c")]) == [2]
    assert broker.append("ns", "q", 1, []) == []
    assert broker.offset_range("ns", "q", 1) == (0, 3)
    assert broker.offset_range("ns", "q", 0) == (0, 0)
    result = broker.read("ns", "q", 1, 0, 2, 0)
    assert bodies(result) == [b"a", b"b"] and result.next_offset == 2
    assert [m.offset for m in result.messages] == [0, 1]
    assert all(m.partition == 1 and m.store_timestamp == START for m in result.messages)
    result = broker.read("ns", "q", 1, result.next_offset, 10, 0)
    assert bodies(result) == [b"c"] and result.next_offset == 3
    result = broker.read("ns", "q", 1, 3, 10, 0)
    assert result.messages == [] and result.next_offset == 3
    assert bodies(broker.read("ns", "q", 0, 0, 10, 0)) == []


def test_corrupt_and_oversize_messages_are_rejected_whole(broker: Broker) -> None:
    good = msg(b"ok")
    flipped = bytearray(msg(b"payload"))
    flipped[-1] ^= 0xFF
    with pytest.raises(CorruptDataError):
        broker.append("ns", "q", 0, [good, bytes(flipped)])
    with pytest.raises(CorruptDataError):
        broker.append("ns", "q", 0, [good + b"trailing"])
    with pytest.raises(CorruptDataError):
        broker.append("ns", "q", 0, [b"\x00\x01"])
    with pytest.raises(MessageTooLargeError):
        broker.append("ns", "q", 0, [good, msg(b"x" * (64 << 10))])
    with pytest.raises(MessageTooLargeError):
        broker.prepare("ns", "pg", "t", "q", 0, [msg(b"x" * (64 << 10))])
    assert broker.offset_range("ns", "q", 0) == (0, 0)  # nothing of a bad batch was stored
    limit = (64 << 10) - len(msg(b""))
    assert broker.append("ns", "q", 0, [msg(b"x" * (limit - 8))]) == [0]


def test_read_long_poll_returns_as_soon_as_data_arrives(broker: Broker) -> None:
    broker.append("ns", "q", 0, [msg(b"old")])
    timer = threading.Timer(0.3, lambda: broker.append("ns", "q", 0, [msg(b"new")]))
    started = time.monotonic()
    timer.start()
    result = broker.read("ns", "q", 0, 1, 10, 10_000)
    elapsed = time.monotonic() - started
    timer.join()
    assert bodies(result) == [b"new"]
    assert 0.25 < elapsed < 5
    started = time.monotonic()
    result = broker.read("ns", "q", 0, 2, 10, 200)
    assert result.messages == [] and result.next_offset == 2
    assert time.monotonic() - started >= 0.19


def test_other_partitions_do_not_end_a_long_poll(broker: Broker) -> None:
    timer = threading.Timer(0.1, lambda: broker.append("ns", "q", 1, [msg(b"other")]))
    timer.start()
    started = time.monotonic()
    result = broker.read("ns", "q", 0, 0, 10, 400)
    timer.join()
    assert result.messages == []
    assert time.monotonic() - started >= 0.39


def test_expired_messages_are_skipped(harness: Harness, broker: Broker) -> None:
    now = harness.clock.now
    broker.append(
        "ns",
        "q",
        0,
        [
            msg(b"expired", expire_time=now - 1),
            msg(b"live"),
            msg(b"soon", expire_time=now + 100),
            msg(b"expired2", expire_time=now - 50),
        ],
    )
    result = broker.read("ns", "q", 0, 0, 10, 0)
    assert bodies(result) == [b"live", b"soon"] and result.next_offset == 4
    harness.clock.now += 101
    result = broker.read("ns", "q", 0, 0, 10, 0)
    assert bodies(result) == [b"live"]
    result = broker.read("ns", "q", 0, 2, 10, 0)  # only expired ones left: skipped to the end
    assert result.messages == [] and result.next_offset == 4


def test_read_skips_a_run_of_expired_messages_to_the_next_live_one(
    harness: Harness, broker: Broker
) -> None:
    dead = [msg(b"dead", expire_time=harness.clock.now - 1)] * 5
    broker.append("ns", "q", 0, [*dead, msg(b"alive")])
    result = broker.read("ns", "q", 0, 0, 2, 0)
    assert bodies(result) == [b"alive"] and result.next_offset == 6


# -- delayed delivery ------------------------------------------------------------------


def wait_for_messages(broker: Broker, partition: int, count: int, offset: int = 0) -> list[bytes]:
    got: list[bytes] = []
    deadline = time.monotonic() + 5
    while len(got) < count and time.monotonic() < deadline:
        result = broker.read("ns", "q", partition, offset, 100, 500)
        got += bodies(result)
        offset = result.next_offset
    return got


def test_delayed_message_appears_after_its_time_and_not_before(
    harness: Harness, broker: Broker
) -> None:
    now = harness.clock.now
    broker.append_delayed("ns", "q", 0, [msg(b"later"), msg(b"now")], [now + 10_000, now])
    assert bodies(broker.read("ns", "q", 0, 0, 10, 0)) == [b"now"]  # due: appended at once
    assert broker.read("ns", "q", 0, 1, 10, 300).messages == []  # not before its time
    harness.clock.now += 9_999
    assert broker.read("ns", "q", 0, 1, 10, 200).messages == []
    harness.clock.now += 1
    assert wait_for_messages(broker, 0, 1, offset=1) == [b"later"]
    assert broker.read("ns", "q", 0, 2, 10, 200).messages == []  # exactly once


def test_delayed_messages_survive_restart(harness: Harness, broker: Broker) -> None:
    now = harness.clock.now
    broker.append_delayed("ns", "q", 1, [msg(b"a"), msg(b"b")], [now + 1000, now + 2000])
    harness.clock.now += 1000
    assert wait_for_messages(broker, 1, 1) == [b"a"]
    broker = harness.reopen(broker)
    assert broker.read("ns", "q", 1, 1, 10, 200).messages == []
    harness.clock.now += 1000
    assert wait_for_messages(broker, 1, 1, offset=1) == [b"b"]
    broker = harness.reopen(broker)
    harness.clock.now += 10_000
    assert bodies(broker.read("ns", "q", 1, 0, 10, 300)) == [b"a", b"b"]  # none delivered twice


def test_delay_past_retention_is_rejected(harness: Harness, broker: Broker) -> None:
    retention = broker.config.store.retention_ms
    with pytest.raises(ConfigError):
        broker.append_delayed("ns", "q", 0, [msg(b"x")], [harness.clock.now + retention])


# -- transactions ----------------------------------------------------------------------


def test_commit_rollback_and_check_back(harness: Harness, broker: Broker) -> None:
    broker.prepare("ns", "pg", "t-commit", "q", 0, [msg(b"c1"), msg(b"c2")])
    broker.prepare("ns", "pg", "t-rollback", "q", 0, [msg(b"r")])
    broker.prepare("ns", "pg", "t-open", "q", 1, [msg(b"o")])
    assert broker.read("ns", "q", 0, 0, 10, 0).messages == []  # invisible until commit
    broker.end_transaction("ns", "t-commit", True)
    broker.end_transaction("ns", "t-rollback", False)
    broker.end_transaction("ns", "t-rollback", True)  # already ended: no-op
    broker.end_transaction("ns", "unknown", True)
    assert bodies(broker.read("ns", "q", 0, 0, 10, 0)) == [b"c1", b"c2"]
    assert broker.transaction_checks("ns", "pg", 0) == []  # not old enough yet
    harness.clock.now += 1000
    checks = broker.transaction_checks("ns", "pg", 0)
    assert [(c.transaction_id, c.queue, c.partition, c.prepared_at) for c in checks] == [
        ("t-open", "q", 1, START)
    ]
    assert codec.decode(checks[0].encoded).body == b"o"
    assert broker.transaction_checks("ns", "pg", 0) == []  # offered again only later
    assert broker.transaction_checks("ns", "other", 0) == []
    harness.clock.now += 1000
    assert len(broker.transaction_checks("ns", "pg", 0)) == 1


def test_transaction_checks_long_poll_returns_when_one_falls_due(
    harness: Harness, broker: Broker
) -> None:
    broker.prepare("ns", "pg", "t", "q", 0, [msg(b"x")])
    timer = threading.Timer(0.2, lambda: setattr(harness.clock, "now", harness.clock.now + 1000))
    started = time.monotonic()
    timer.start()
    checks = broker.transaction_checks("ns", "pg", 10_000)
    timer.join()
    assert [c.transaction_id for c in checks] == ["t"]
    assert time.monotonic() - started < 5


def test_transactions_across_restart(harness: Harness, broker: Broker) -> None:
    broker.prepare("ns", "pg", "t1", "q", 0, [msg(b"one")])
    broker.prepare("ns", "pg", "t2", "q", 0, [msg(b"two")])
    broker.prepare("ns", "pg", "t3", "q", 0, [msg(b"three")])
    broker.end_transaction("ns", "t1", True)
    broker.end_transaction("ns", "t3", False)
    broker = harness.reopen(broker)
    assert bodies(broker.read("ns", "q", 0, 0, 10, 0)) == [b"one"]
    harness.clock.now += 1000
    assert [c.transaction_id for c in broker.transaction_checks("ns", "pg", 0)] == ["t2"]
    broker.end_transaction("ns", "t2", True)
    broker = harness.reopen(broker)
    harness.clock.now += 10_000
    assert broker.transaction_checks("ns", "pg", 0) == []
    assert bodies(broker.read("ns", "q", 0, 0, 10, 0)) == [b"one", b"two"]


# -- offsets ---------------------------------------------------------------------------


def test_committed_offsets_survive_restart(harness: Harness, broker: Broker) -> None:
    broker.commit_offsets("ns", "g", "q", {0: 5, 1: 7})
    broker.commit_offsets("ns", "g", "q", {1: 8})
    broker.commit_offsets("ns", "h", "q", {0: 1})
    assert broker.committed_offsets("ns", "g", "q") == {0: 5, 1: 8}
    broker = harness.reopen(broker)
    assert broker.committed_offsets("ns", "g", "q") == {0: 5, 1: 8}
    assert broker.committed_offsets("ns", "h", "q") == {0: 1}
    assert broker.committed_offsets("ns", "new", "q") == {}
    broker.delete_queue("ns", "q")
    broker.create_queue("ns", "q", 2)
    assert broker.committed_offsets("ns", "g", "q") == {}  # a new queue starts clean


def test_offsets_are_persisted_on_the_interval(harness: Harness) -> None:
    broker = harness.open(offsets_persist_interval_ms=20)
    broker.create_queue("ns", "q", 1)
    broker.commit_offsets("ns", "g", "q", {0: 3})
    deadline = time.monotonic() + 5
    path = harness.path / "consumer_offsets.json"
    while time.monotonic() < deadline and (not path.exists() or b'"0":3' not in path.read_bytes()):
        time.sleep(0.02)
    assert b'"0":3' in path.read_bytes()


# -- key-value store -------------------------------------------------------------------


def test_kv_cas_ttl_watch_across_restart_and_compaction(harness: Harness) -> None:
    broker = harness.open(kv_compaction_min_records=20, kv_compaction_factor=1.0)
    broker.create_namespace("ns")
    rev = broker.kv_put("ns", "config/a", b"1")
    assert broker.kv_cas("ns", "config/a", b"2", rev + 1) is None
    rev2 = broker.kv_cas("ns", "config/a", b"2", rev)
    assert rev2 == rev + 1
    assert broker.kv_cas("ns", "leases/w1", b"w1", 0, ttl_ms=1000) is not None
    assert broker.kv_cas("ns", "leases/w1", b"w2", 0) is None
    events, next_rev = broker.kv_watch("ns", "config/", rev, 0)
    assert [(e.kind, e.value) for e in events] == [("put", b"1"), ("put", b"2")]
    # the TTL thread deletes the lease on the clock, and a watcher hears of it
    harness.clock.now += 1000
    events, next_rev = broker.kv_watch("ns", "leases/", next_rev, 5000)
    assert events == [KvEvent("delete", "leases/w1", b"", events[0].revision)]
    assert broker.kv_get("ns", "leases/w1") is None
    for i in range(60):  # enough dead records to compact
        broker.kv_put("ns", "status/x", str(i).encode())
    assert broker.kv_delete("ns", "status/x", expected_revision=1) is False
    assert broker.kv_delete("ns", "status/x") is True
    last = broker.kv_put("ns", "config/b", b"b")
    broker = harness.reopen(broker)
    assert [(kv.key, kv.value) for kv in broker.kv_list("ns", "config/")] == [
        ("config/a", b"2"),
        ("config/b", b"b"),
    ]
    a = broker.kv_get("ns", "config/a")
    assert a is not None and a.revision == rev2 and a.create_revision == rev
    with pytest.raises(CompactedError):
        broker.kv_watch("ns", "", rev, 0)
    assert broker.kv_put("ns", "config/c", b"c") == last + 1  # revisions keep growing
    assert len(list((harness.path / "kv").glob("gen-*"))) == 1
    assert (harness.path / "kv" / "CURRENT").read_text() != "gen-00000001"


def test_kv_watch_long_poll(broker: Broker) -> None:
    timer = threading.Timer(0.2, lambda: broker.kv_put("ns", "k", b"v"))
    started = time.monotonic()
    timer.start()
    events, _ = broker.kv_watch("ns", "", 0, 10_000)
    timer.join()
    assert [e.key for e in events] == ["k"]
    assert time.monotonic() - started < 5


def test_delete_namespace_removes_everything(harness: Harness, broker: Broker) -> None:
    broker.append("ns", "q", 0, [msg(b"x")])
    broker.kv_put("ns", "k", b"v")
    broker.commit_offsets("ns", "g", "q", {0: 1})
    broker.prepare("ns", "pg", "t", "q", 0, [msg(b"half")])
    broker.create_queue("keep", "q", 1)
    broker.kv_put("keep", "k", b"v")
    broker.delete_namespace("ns")
    assert broker.list_namespaces() == ["keep"]
    broker.create_queue("ns", "q", 2)
    assert broker.read("ns", "q", 0, 0, 10, 0).messages == []
    assert broker.kv_get("ns", "k") is None
    assert broker.committed_offsets("ns", "g", "q") == {}
    harness.clock.now += 10_000
    assert broker.transaction_checks("ns", "pg", 0) == []
    assert broker.kv_get("keep", "k") is not None


# -- metrics ---------------------------------------------------------------------------


def test_metrics(broker: Broker) -> None:
    registry = broker.metrics_registry
    broker.append("ns", "q", 0, [msg(b"a"), msg(b"b"), msg(b"c")])
    broker.read("ns", "q", 0, 0, 2, 0)
    broker.commit_offsets("ns", "g", "q", {0: 1})
    broker.kv_put("ns", "k", b"v")
    labels = {"namespace": "ns", "queue": "q"}
    assert registry.get_sample_value("omconnect_broker_messages_in_total", labels) == 3
    assert registry.get_sample_value("omconnect_broker_messages_out_total", labels) == 2
    assert registry.get_sample_value("omconnect_broker_bytes_in_total", labels) == sum(
        len(msg(b)) for b in (b"a", b"b", b"c")
    )
    lag = registry.get_sample_value(
        "omconnect_broker_consumer_lag_messages", {"namespace": "ns", "group": "g", "queue": "q"}
    )
    assert lag == 2
    assert registry.get_sample_value("omconnect_broker_kv_keys") == 1
    assert (registry.get_sample_value("omconnect_broker_store_size_bytes") or 0) > 0
    assert registry.get_sample_value("omconnect_broker_flushes_total") is not None


def test_a_failed_open_reports_corruption_and_releases_the_store(harness: Harness) -> None:
    broker = harness.open()
    broker.create_queue("ns", "q", 1)
    broker.append("ns", "q", 0, [msg(b"kept")])
    broker.close()
    current = harness.path / "kv" / "CURRENT"
    good = current.read_bytes()
    current.write_text("garbage")
    with pytest.raises(CorruptDataError):
        harness.open()
    current.write_bytes(good)
    broker = harness.open()
    assert bodies(broker.read("ns", "q", 0, 0, 10, 0)) == [b"kept"]


def test_retention_thread_removes_old_segments(harness: Harness) -> None:
    store = StoreConfig(
        segment_bytes=(64 << 10) + 8192, max_message_bytes=64 << 10, retention_ms=1000
    )
    broker = harness.open(store=store, retention_check_interval_ms=20)
    broker.create_queue("ns", "q", 1)
    big = b"x" * (40 << 10)
    broker.append("ns", "q", 0, [msg(big + b"0")])
    broker.append("ns", "q", 0, [msg(big + b"1")])  # rolls to a second segment
    broker.append("ns", "q", 0, [msg(big + b"2")])  # and a third
    harness.clock.now += 1001
    deadline = time.monotonic() + 5
    while broker.offset_range("ns", "q", 0)[0] == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    first, end = broker.offset_range("ns", "q", 0)
    assert 0 < first < end == 3
    result = broker.read("ns", "q", 0, 0, 10, 0)  # below the first retained: reads from it
    assert result.messages[0].offset == first


def test_a_second_broker_on_the_same_directory_is_refused(tmp_path: Path) -> None:
    first = Broker(BrokerConfig(data_dir=tmp_path))
    try:
        with pytest.raises(ConfigError, match="in use by another broker"):
            Broker(BrokerConfig(data_dir=tmp_path))
    finally:
        first.close()
    Broker(BrokerConfig(data_dir=tmp_path)).close()  # free again once closed
