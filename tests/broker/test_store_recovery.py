"""`MessageStore`: reads across rolls, crash recovery, corruption, retention, flush."""

from __future__ import annotations

import os
import shutil
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from omconnect.broker.commitlog import HEADER_SIZE, segment_name
from omconnect.broker.store import Checkpoint, MessageStore, StoreConfig, segments_to_delete
from omconnect.errors import ConfigError, CorruptDataError, MessageTooLargeError, TimeoutError_

NO_TIMERS = {"checkpoint_interval_ms": 3_600_000, "flush_interval_ms": 3_600_000}


def small(**overrides: object) -> StoreConfig:
    """Tiny segments and index files; no background checkpoint during a test."""
    settings: dict[str, object] = {"segment_bytes": 400, "cq_entries_per_file": 4, **NO_TIMERS}
    settings.update(overrides)
    return StoreConfig(**settings)  # type: ignore[arg-type]


class Clock:
    def __init__(self, now: int = 1_000_000) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


@pytest.fixture
def opened(tmp_path: Path) -> Iterator[list[MessageStore]]:
    """Stores a test opened; closed at the end even if the test fails."""
    stores: list[MessageStore] = []
    yield stores
    for store in stores:
        store.close()


def open_store(stores: list[MessageStore], path: Path, config: StoreConfig, **kw: object):
    store = MessageStore(path, config, **kw)  # type: ignore[arg-type]
    stores.append(store)
    return store


def payload(queue: int, partition: int, offset: int, size: int = 20) -> bytes:
    return f"{queue}/{partition}/{offset}:".encode().ljust(size, b".")


def read_all(store: MessageStore, queue: int, partition: int) -> list[tuple[int, bytes]]:
    return [(m.offset, m.encoded) for m in store.read(queue, partition, 0, 10_000, 1 << 30)]


# -- append / read --------------------------------------------------------------------


def test_append_and_read_across_segment_rolls(tmp_path: Path, opened):
    store = open_store(opened, tmp_path, small(), clock=Clock())
    expected: dict[int, list[tuple[int, bytes]]] = {0: [], 1: []}
    for batch in range(30):
        partition = batch % 2
        first = len(expected[partition])
        payloads = [payload(7, partition, first + i, 10 + batch) for i in range(batch % 4 + 1)]
        result = store.append(7, partition, payloads)
        assert result.first_offset == first
        assert result.store_timestamp == 1_000_000
        expected[partition] += list(enumerate(payloads, first))
    assert len(os.listdir(tmp_path / "commitlog")) > 5
    for partition in (0, 1):
        assert read_all(store, 7, partition) == expected[partition]
        assert store.offset_range(7, partition) == (0, len(expected[partition]))
        # Every starting offset, small windows.
        for start in range(len(expected[partition])):
            got = store.read(7, partition, start, 3, 1 << 20)
            assert [(m.offset, m.encoded) for m in got] == expected[partition][start : start + 3]
    store.close()
    again = open_store(opened, tmp_path, small())
    for partition in (0, 1):
        assert read_all(again, 7, partition) == expected[partition]


def test_read_limits(tmp_path: Path, opened):
    store = open_store(opened, tmp_path, small(segment_bytes=1 << 16))
    store.append(1, 0, [b"a" * 100, b"b" * 100, b"c" * 100])
    assert [m.encoded for m in store.read(1, 0, 0, 10, max_bytes=10)] == [b"a" * 100]
    assert len(store.read(1, 0, 0, 10, max_bytes=200)) == 2
    assert len(store.read(1, 0, 1, 1, max_bytes=1 << 20)) == 1
    assert store.read(1, 0, 3, 10, 1 << 20) == []
    assert store.read(1, 1, 0, 10, 1 << 20) == []
    assert store.read(2, 0, 0, 10, 1 << 20) == []
    assert store.offset_range(2, 0) == (0, 0)


def test_message_too_large(tmp_path: Path, opened):
    store = open_store(opened, tmp_path, small(max_message_bytes=100))
    with pytest.raises(MessageTooLargeError):
        store.append(1, 0, [b"ok", b"x" * 101])
    assert store.offset_range(1, 0) == (0, 0)  # nothing of the batch was written
    # A message must also fit in a segment with its header.
    tiny = open_store(opened, tmp_path / "tiny", small(segment_bytes=100))
    tiny.append(1, 0, [b"x" * (100 - HEADER_SIZE)])
    with pytest.raises(MessageTooLargeError):
        tiny.append(1, 0, [b"x" * (101 - HEADER_SIZE)])


def test_append_listener_sees_each_append(tmp_path: Path, opened):
    store = open_store(opened, tmp_path, small())
    seen: list[tuple[int, int, int]] = []
    store.add_append_listener(lambda q, p, n: seen.append((q, p, n)))
    store.append(3, 1, [b"a", b"b"])
    store.append(3, 0, [b"c"])
    assert seen == [(3, 1, 2), (3, 0, 1)]


def test_concurrent_appends_keep_offsets_dense_and_ordered(tmp_path: Path, opened):
    store = open_store(opened, tmp_path, small(segment_bytes=4096, cq_entries_per_file=64))
    threads, rounds = 8, 60

    def work(thread: int) -> None:
        for seq in range(rounds):
            batch = [f"{thread}:{seq}:{i}".encode() for i in range(seq % 3 + 1)]
            store.append(5, seq % 3, batch)

    workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    store.close()
    store = open_store(opened, tmp_path, small(segment_bytes=4096, cq_entries_per_file=64))
    total = 0
    for partition in range(3):
        messages = read_all(store, 5, partition)
        assert [offset for offset, _ in messages] == list(range(len(messages)))
        last: dict[str, tuple[int, int]] = {}
        for _, body in messages:
            thread, seq, i = body.decode().split(":")
            key = (int(seq), int(i))
            assert last.get(thread, (-1, -1)) < key, "a thread's messages out of order"
            last[thread] = key
        total += len(messages)
    assert total == threads * sum(seq % 3 + 1 for seq in range(rounds))


# -- recovery -------------------------------------------------------------------------


def crash_copy(src: Path, dst: Path) -> Path:
    """What a crash leaves: the files as they are now, without close()'s final flush."""
    shutil.copytree(src, dst)
    return dst


@pytest.mark.parametrize("rolled", [False, True], ids=["same-segment", "rolled"])
@pytest.mark.parametrize("how", ["crash", "closed"])
def test_torn_last_record_at_every_byte(tmp_path: Path, opened, how: str, rolled: bool):
    config = small(segment_bytes=200)
    source = open_store(opened, tmp_path / "src", config)
    early = [payload(1, 0, i, 20) for i in range(3)]  # 53-byte records: 3 fit in a segment
    source.append(1, 0, early)
    source.append(2, 0, [b"other queue"])  # 44 bytes -> 203 bytes: rolls to segment 1
    if rolled:
        source.append(1, 0, [payload(1, 0, 3, 120)])  # 153 bytes: rolls to segment 2
    source.flush()  # checkpoint before the last record
    last = source.append(1, 0, [payload(1, 0, 4 - (not rolled), 10)])
    last_size = HEADER_SIZE + 10
    last_start = last.end_position - last_size
    assert (last_start // 200 != (last_start - 1) // 200) == rolled  # first in its segment
    keep = read_all(source, 1, 0)[:-1]
    if how == "closed":
        source.close()
    template = crash_copy(tmp_path / "src", tmp_path / "template")
    segment = template / "commitlog" / segment_name(last_start - last_start % 200)

    for cut in range(last_size):
        trial = tmp_path / f"cut{cut}"
        shutil.copytree(template, trial)
        os.truncate(trial / "commitlog" / segment.name, last_start % 200 + cut)
        store = MessageStore(trial, config)
        try:
            assert read_all(store, 1, 0) == keep, f"cut at {cut}"
            assert read_all(store, 2, 0) == [(0, b"other queue")]
            assert store.append(1, 0, [b"next"]).first_offset == len(keep)
            store.close()
            store = MessageStore(trial, config)
            assert read_all(store, 1, 0) == [*keep, (len(keep), b"next")], f"cut at {cut}"
        finally:
            store.close()
        shutil.rmtree(trial)


@pytest.mark.parametrize("garbage", [b"\x00" * 100, os.urandom(300), b"\xff" * 7])
def test_garbage_at_the_tail_is_cut(tmp_path: Path, opened, garbage: bytes):
    store = open_store(opened, tmp_path, small(segment_bytes=1 << 16))
    store.append(1, 0, [b"a", b"b"])
    end = store.append(1, 1, [b"c"]).end_position
    store.close()
    with open(tmp_path / "commitlog" / segment_name(0), "ab") as f:
        f.write(garbage)
    store = open_store(opened, tmp_path, small(segment_bytes=1 << 16))
    assert read_all(store, 1, 0) == [(0, b"a"), (1, b"b")]
    assert os.path.getsize(tmp_path / "commitlog" / segment_name(0)) == end
    assert store.append(1, 1, [b"d"]).first_offset == 1
    assert read_all(store, 1, 1) == [(0, b"c"), (1, b"d")]


def test_a_flipped_byte_anywhere_in_a_record_fails_the_read(tmp_path: Path, opened):
    store = open_store(opened, tmp_path, small(segment_bytes=1 << 16))
    store.append(1, 0, [b"first"])
    start = store.append(1, 0, [b"second record"]).end_position - HEADER_SIZE - 13
    store.append(1, 0, [b"third"])
    path = tmp_path / "commitlog" / segment_name(0)
    original = path.read_bytes()
    for i in range(start, start + HEADER_SIZE + 13):
        damaged = bytearray(original)
        damaged[i] ^= 0x01
        path.write_bytes(damaged)
        with pytest.raises(CorruptDataError, match=f"position {start}"):
            store.read(1, 0, 0, 10, 1 << 20)
        assert store.read(1, 0, 0, 1, 1 << 20)[0].encoded == b"first"
        assert store.read(1, 0, 2, 1, 1 << 20)[0].encoded == b"third"
    path.write_bytes(original)
    assert len(store.read(1, 0, 0, 10, 1 << 20)) == 3


def make_history(store: MessageStore) -> dict[tuple[int, int], list[tuple[int, bytes]]]:
    history: dict[tuple[int, int], list[tuple[int, bytes]]] = {}
    for n in range(25):
        queue, partition = 1 + n % 2, n % 3
        batch = [payload(queue, partition, n * 10 + i) for i in range(n % 3 + 1)]
        first = store.append(queue, partition, batch).first_offset
        history.setdefault((queue, partition), []).extend(enumerate(batch, first))
    return history


def assert_history(store: MessageStore, history: dict) -> None:
    for (queue, partition), messages in history.items():
        assert read_all(store, queue, partition) == messages
        assert store.offset_range(queue, partition) == (0, len(messages))


@pytest.mark.parametrize("damage", ["index-deleted", "index-behind", "no-checkpoint"])
def test_consume_queues_are_rebuilt(tmp_path: Path, opened, damage: str):
    store = open_store(opened, tmp_path, small())
    history = make_history(store)
    store.close()
    if damage == "index-deleted":
        shutil.rmtree(tmp_path / "consumequeue" / "2")
    elif damage == "index-behind":
        index_dir = tmp_path / "consumequeue" / "1" / "0"
        files = sorted(index_dir.iterdir())
        for extra in files[1:]:
            extra.unlink()
        os.truncate(files[0], 16)  # one entry left of many
    else:
        (tmp_path / "checkpoint").unlink()
    store = open_store(opened, tmp_path, small())
    assert_history(store, history)
    assert store.append(1, 0, [b"more"]).first_offset == len(history[(1, 0)])


def test_index_entries_past_the_checkpoint_are_rebuilt_after_a_crash(tmp_path: Path, opened):
    store = open_store(opened, tmp_path / "src", small())
    first = make_history(store)
    store.flush()
    second = make_history(store)  # indexed in the page cache, after the checkpoint
    crashed = crash_copy(tmp_path / "src", tmp_path / "crashed")
    # Index entries past the checkpoint may be torn: garble each queue's last one and
    # leave half an entry after it.
    for key in first:
        last_file = sorted((crashed / "consumequeue" / str(key[0]) / str(key[1])).iterdir())[-1]
        with open(last_file, "r+b") as f:
            f.seek(-16, os.SEEK_END)
            f.write(b"\xee" * 24)
    recovered = open_store(opened, crashed, small())
    for key, messages in first.items():
        assert read_all(recovered, *key) == messages + [
            (len(messages) + i, body) for i, (_, body) in enumerate(second[key])
        ]


def test_a_corrupt_index_entry_fails_the_read_loudly(tmp_path: Path, opened):
    store = open_store(opened, tmp_path, small())
    store.append(1, 0, [b"a", b"b", b"c"])
    store.close()
    with open(tmp_path / "consumequeue" / "1" / "0" / segment_name(0), "r+b") as f:
        f.seek(16)
        f.write(b"\xee" * 16)
    store = open_store(opened, tmp_path, small())
    assert store.read(1, 0, 0, 1, 1 << 20)[0].encoded == b"a"
    with pytest.raises(CorruptDataError, match="entry 1 "):
        store.read(1, 0, 1, 10, 1 << 20)
    with open(tmp_path / "consumequeue" / "1" / "0" / segment_name(0), "r+b") as f:
        f.seek(16)
        f.write(struct.pack("<QII", 0, HEADER_SIZE + 1, 0))  # a valid record, but offset 0's
    with pytest.raises(CorruptDataError, match="position 0 "):
        store.read(1, 0, 1, 10, 1 << 20)


def test_store_timestamps_never_go_backwards(tmp_path: Path, opened):
    clock = Clock(5_000)
    store = open_store(opened, tmp_path, small(), clock=clock)
    assert store.append(1, 0, [b"a"]).store_timestamp == 5_000
    clock.now = 4_000
    assert store.append(1, 0, [b"b"]).store_timestamp == 5_000
    store.close()
    again = open_store(opened, tmp_path, small(), clock=clock)
    assert again.append(1, 0, [b"c"]).store_timestamp == 5_000
    clock.now = 6_000
    assert again.append(1, 0, [b"d"]).store_timestamp == 6_000


def test_reopening_with_another_segment_size_is_refused(tmp_path: Path, opened):
    store = open_store(opened, tmp_path, small(segment_bytes=400))
    store.append(1, 0, [b"a"])
    store.close()
    with pytest.raises(ConfigError, match="segment_bytes=400"):
        MessageStore(tmp_path, small(segment_bytes=800))


def test_checkpoint_encoding():
    checkpoint = Checkpoint(1234, {(1, 0): 5, (2, 3): 7}, {9: 100}, 4096, 1_700_000_000_000)
    assert Checkpoint.decode(checkpoint.encode()) == checkpoint
    for bad in (b"", b"{", b'{"version": 2}', b'{"version": 1, "position": "x"}', b"[1]"):
        assert Checkpoint.decode(bad) is None


def test_a_dropped_queue_stays_dropped(tmp_path: Path, opened):
    store = open_store(opened, tmp_path / "src", small())
    store.append(1, 0, [b"keep"])
    store.append(2, 0, [b"gone", b"gone too"])
    store.drop_queue(2)
    assert store.offset_range(2, 0) == (0, 0)
    assert store.append(2, 0, [b"new life"]).first_offset == 0
    crashed = crash_copy(tmp_path / "src", tmp_path / "crashed")
    store.close()
    # Rebuilding another queue's index rescans the whole log: still not resurrected.
    rescanned = crash_copy(tmp_path / "src", tmp_path / "rescanned")
    shutil.rmtree(rescanned / "consumequeue" / "1")
    for path in (tmp_path / "src", crashed, rescanned):
        again = open_store(opened, path, small())
        assert read_all(again, 2, 0) == [(0, b"new life")]
        assert read_all(again, 1, 0) == [(0, b"keep")]


# -- retention ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sizes", "newest", "now", "retention_ms", "retention_bytes", "expected"),
    [
        ([100, 100, 50], [10, 20, None], 1000, 0, 0, 0),  # no limits
        ([100, 100, 50], [10, 20, None], 1000, 985, 0, 1),  # only the first is older
        ([100, 100, 50], [10, 20, None], 1000, 990, 0, 0),  # exactly at the limit stays
        ([100, 100, 50], [10, 20, None], 1000, 1, 0, 2),  # never the active one
        ([100, 100, 50], [None, 20, None], 1000, 1, 0, 0),  # unknown age: kept
        ([100, 100, 50], [10, 20, None], 0, 0, 250, 0),  # within the size limit
        ([100, 100, 50], [10, 20, None], 0, 0, 249, 1),
        ([100, 100, 50], [10, 20, None], 0, 0, 1, 2),
        ([100], [None], 10**9, 1, 1, 0),
    ],
)
def test_segments_to_delete(sizes, newest, now, retention_ms, retention_bytes, expected):
    assert segments_to_delete(sizes, newest, now, retention_ms, retention_bytes) == expected


def test_retention_by_time(tmp_path: Path, opened):
    clock = Clock(10_000)
    config = small(segment_bytes=200, retention_ms=5_000)
    store = open_store(opened, tmp_path, config, clock=clock)
    for i in range(12):  # 53-byte records: 3 per segment, 4 segments
        clock.now = 10_000 + i * 1_000
        store.append(1, 0, [payload(1, 0, i)])
    assert len(os.listdir(tmp_path / "commitlog")) == 4
    # Segment 0's newest record is bounded by segment 1's first (t=13_000).
    clock.now = 18_000
    assert store.enforce_retention() == 0  # exactly retention_ms old: kept
    clock.now = 18_001
    assert store.enforce_retention() == 1  # segment 1 is bounded by t=16_000: kept
    assert store.offset_range(1, 0) == (3, 12)
    assert [m.offset for m in store.read(1, 0, 0, 2, 1 << 20)] == [3, 4]  # below min reads min
    clock.now = 10**9
    assert store.enforce_retention() == 2  # never the active segment
    assert store.offset_range(1, 0) == (9, 12)
    assert sorted(os.listdir(tmp_path / "consumequeue" / "1" / "0")) == [
        segment_name(8)
    ]  # index files before offset 8 went too
    store.close()
    again = open_store(opened, tmp_path, config, clock=clock)
    assert again.offset_range(1, 0) == (9, 12)
    assert again.append(1, 0, [b"x"]).first_offset == 12


def test_retention_by_size(tmp_path: Path, opened):
    config = small(segment_bytes=200, retention_bytes=450, retention_ms=0)
    store = open_store(opened, tmp_path, config)
    for i in range(15):  # 5 segments of 159 bytes
        store.append(1, i % 2, [payload(1, i % 2, i)])
    before = store.size_bytes()
    assert store.enforce_retention() == 3  # 795 -> 636 -> 477 -> 318 <= 450
    assert store.size_bytes() < before
    assert len(os.listdir(tmp_path / "commitlog")) == 2
    assert store.offset_range(1, 0)[0] > 0 and store.offset_range(1, 1)[0] > 0
    assert store.enforce_retention() == 0


def test_partition_whose_records_all_aged_out_keeps_its_next_offset(tmp_path: Path, opened):
    clock = Clock()
    config = small(segment_bytes=200, retention_ms=1)
    store = open_store(opened, tmp_path, config, clock=clock)
    store.append(1, 0, [payload(1, 0, i) for i in range(5)])
    clock.now += 10
    store.append(1, 1, [payload(1, 1, i) for i in range(4)])  # later segments
    clock.now += 10
    store.enforce_retention()
    assert store.offset_range(1, 0) == (5, 5)
    store.close()
    shutil.rmtree(tmp_path / "consumequeue" / "1" / "0")  # even without its index
    again = open_store(opened, tmp_path, config, clock=clock)
    assert again.offset_range(1, 0) == (5, 5)
    assert again.append(1, 0, [b"x"]).first_offset == 5


# -- flush ----------------------------------------------------------------------------


class FsyncGate:
    """Replaces os.fsync: counts calls and blocks them while closed."""

    def __init__(self, real) -> None:
        self.real = real
        self.open = threading.Event()
        self.open.set()
        self.calls = 0

    def __call__(self, fd: int) -> None:
        self.open.wait()
        self.calls += 1
        self.real(fd)


def test_sync_mode_waits_for_the_group_commit(tmp_path: Path, opened, monkeypatch):
    gate = FsyncGate(os.fsync)
    monkeypatch.setattr(os, "fsync", gate)
    store = open_store(opened, tmp_path, small(segment_bytes=1 << 20, flush_mode="sync"))
    gate.open.clear()
    returned: list[tuple[int, bool, int]] = []
    waiting = threading.Semaphore(0)

    def producer(i: int) -> None:
        end = store.append(1, i, [b"m" * 100]).end_position
        waiting.release()
        store.wait_durable(end)
        returned.append((end, gate.open.is_set(), store.durable_position))

    flushes_before = store.stats().flush_count
    threads = [threading.Thread(target=producer, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for _ in threads:
        waiting.acquire()
    time.sleep(0.2)  # every producer is inside wait_durable; fsync is blocked
    assert returned == []
    with pytest.raises(TimeoutError_):
        store.wait_durable(store.stats().end_position, timeout_s=0.05)
    callbacks: list[bool] = []
    store.on_durable(store.stats().end_position, lambda: callbacks.append(gate.open.is_set()))
    gate.open.set()
    for t in threads:
        t.join()
    assert len(returned) == 8
    assert all(opened_ and durable >= end for end, opened_, durable in returned)
    # One fsync round for the first waiter, at most one more for all the others.
    assert store.stats().flush_count - flushes_before <= 2
    deadline = time.monotonic() + 5
    while not callbacks and time.monotonic() < deadline:
        time.sleep(0.01)
    assert callbacks == [True]
    store.on_durable(0, lambda: callbacks.append(True))  # already durable: at once
    assert callbacks == [True, True]


def test_async_mode_does_not_wait(tmp_path: Path, opened, monkeypatch):
    gate = FsyncGate(os.fsync)
    monkeypatch.setattr(os, "fsync", gate)
    store = open_store(opened, tmp_path, small(flush_interval_ms=20, checkpoint_interval_ms=10**6))
    gate.open.clear()
    end = store.append(1, 0, [b"x"]).end_position
    store.wait_durable(end, timeout_s=0.01)  # returns although nothing is fsynced
    called: list[int] = []
    store.on_durable(end, lambda: called.append(1))
    assert called == [1]
    assert store.durable_position < end
    gate.open.set()
    deadline = time.monotonic() + 5
    while store.durable_position < end and time.monotonic() < deadline:
        time.sleep(0.01)
    assert store.durable_position >= end  # the interval flush got there


def test_flush_writes_a_checkpoint_covering_everything(tmp_path: Path, opened):
    store = open_store(opened, tmp_path, small(), clock=Clock())
    store.append(1, 0, [b"a", b"b"])
    end = store.append(1, 1, [b"c"]).end_position
    store.flush()
    checkpoint = Checkpoint.decode((tmp_path / "checkpoint").read_bytes())
    assert checkpoint == Checkpoint(end, {(1, 0): 2, (1, 1): 1}, {}, 400, 1_000_000)
    assert store.durable_position == end
    stats = store.stats()
    assert stats.messages_written == 3 and stats.bytes_written == end
    assert stats.flush_count >= 1 and len(stats.recent_flush_seconds) == stats.flush_count
