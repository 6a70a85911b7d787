"""Batch records: one commit-log record per producer batch, one index entry per
message. Append/read, crash recovery at every byte, index rebuilds, corruption."""

from __future__ import annotations

import os
import shutil
import struct
from pathlib import Path

import crc32c
import pytest
from test_store_recovery import crash_copy, open_store, opened, small

from omconnect.broker.commitlog import (
    BATCH_HEADER_SIZE,
    BATCH_MAGIC,
    decode_header,
    encode_batch_record,
    segment_name,
)
from omconnect.broker.store import MessageStore
from omconnect.errors import CorruptDataError, MessageTooLargeError

__all__ = ["opened"]  # the fixture, used by name


def records(store: MessageStore, queue: int, partition: int, offset: int = 0, n: int = 10_000):
    """(offset, count, payload) of each record read from ``offset``."""
    return [
        (m.offset, m.count, m.encoded) for m in store.read(queue, partition, offset, n, 1 << 30)
    ]


# -- the record ------------------------------------------------------------------------


def test_batch_record_layout_is_the_documented_one():
    record = encode_batch_record(7, 3, 42, 1_700_000_000_000, b"batch", 5)
    size, crc, magic, queue_id, partition, offset, ts, count = struct.unpack_from(
        "<IIBIIQQI", record
    )
    assert (size, magic, queue_id, partition, offset, ts, count) == (
        BATCH_HEADER_SIZE + 5,
        BATCH_MAGIC,
        7,
        3,
        42,
        1_700_000_000_000,
        5,
    )
    assert crc == crc32c.crc32c(record[8:])
    header = decode_header(record)
    assert header is not None
    assert (header.count, header.header_size, header.queue_offset) == (5, BATCH_HEADER_SIZE, 42)


def test_every_flipped_byte_or_cut_of_a_batch_record_is_rejected():
    record = encode_batch_record(1, 2, 3, 4, b"some batch payload", 3)
    for i in range(len(record)):
        damaged = bytearray(record)
        damaged[i] ^= 0x40
        assert decode_header(bytes(damaged)) is None, f"flip at byte {i} accepted"
    for cut in range(len(record)):
        assert decode_header(record[:cut]) is None


def test_a_batch_record_of_no_messages_is_rejected():
    tail = struct.pack("<BIIQQI", BATCH_MAGIC, 1, 0, 0, 0, 0) + b"x"
    record = struct.pack("<II", 8 + len(tail), crc32c.crc32c(tail)) + tail
    assert decode_header(record) is None


# -- append / read ---------------------------------------------------------------------


def test_a_batch_takes_consecutive_offsets_and_is_read_whole(tmp_path: Path, opened):
    store = open_store(opened, tmp_path, small(segment_bytes=1 << 16))
    store.append(1, 0, [b"single-0", b"single-1"])
    result = store.append_batch(1, 0, b"batch of three", 3)
    assert result.first_offset == 2
    store.append(1, 0, [b"single-5"])
    assert store.offset_range(1, 0) == (0, 6)
    assert records(store, 1, 0) == [
        (0, 1, b"single-0"),
        (1, 1, b"single-1"),
        (2, 3, b"batch of three"),
        (5, 1, b"single-5"),
    ]
    # From inside the batch: the whole record, with its first offset.
    assert records(store, 1, 0, 3) == [(2, 3, b"batch of three"), (5, 1, b"single-5")]
    assert records(store, 1, 0, 4, 1) == [(2, 3, b"batch of three")]
    assert records(store, 1, 0, 1, 2) == [(1, 1, b"single-1"), (2, 3, b"batch of three")]
    assert records(store, 1, 0, 5) == [(5, 1, b"single-5")]


def test_max_bytes_counts_a_batch_record_once(tmp_path: Path, opened):
    store = open_store(opened, tmp_path, small(segment_bytes=1 << 16))
    store.append_batch(1, 0, b"a" * 100, 10)
    store.append_batch(1, 0, b"b" * 100, 10)
    assert [m.offset for m in store.read(1, 0, 0, 100, max_bytes=150)] == [0]
    assert [m.offset for m in store.read(1, 0, 0, 100, max_bytes=250)] == [0, 10]


def test_a_batch_rolls_to_the_next_segment_whole(tmp_path: Path, opened):
    store = open_store(opened, tmp_path, small(segment_bytes=200))
    store.append(1, 0, [b"x" * 100])  # 133 bytes
    result = store.append_batch(1, 0, b"y" * 100, 4)  # 137 bytes: does not fit
    assert result.end_position == 200 + BATCH_HEADER_SIZE + 100
    assert records(store, 1, 0) == [(0, 1, b"x" * 100), (1, 4, b"y" * 100)]
    with pytest.raises(MessageTooLargeError):
        store.append_batch(1, 0, b"z" * (200 - BATCH_HEADER_SIZE + 1), 2)
    assert store.offset_range(1, 0) == (0, 5)


# -- recovery --------------------------------------------------------------------------


@pytest.mark.parametrize("rolled", [False, True], ids=["same-segment", "rolled"])
@pytest.mark.parametrize("how", ["crash", "closed"])
def test_torn_last_batch_record_at_every_byte(tmp_path: Path, opened, how: str, rolled: bool):
    config = small(segment_bytes=200)
    source = open_store(opened, tmp_path / "src", config)
    source.append(1, 0, [b"m" * 20, b"n" * 20])  # 2 x 53 bytes
    source.append_batch(1, 0, b"first batch", 3)  # 48 bytes -> 154
    source.append(2, 0, [b"other queue".ljust(50)])  # 83 bytes: rolls to segment 1
    if rolled:
        source.append(1, 0, [b"o" * 120])  # 153 bytes: rolls to segment 2 (and the
        # last batch, 55 bytes, to segment 3)
    source.flush()  # checkpoint before the last record
    body = b"last batch payload"
    last = source.append_batch(1, 0, body, 4)
    last_size = BATCH_HEADER_SIZE + len(body)
    last_start = last.end_position - last_size
    assert (last_start // 200 != (last_start - 1) // 200) == rolled  # first in its segment
    keep = records(source, 1, 0)[:-1]
    next_offset = last.first_offset
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
            assert records(store, 1, 0) == keep, f"cut at {cut}"
            assert store.offset_range(1, 0) == (0, next_offset), f"cut at {cut}"
            assert records(store, 2, 0) == [(0, 1, b"other queue".ljust(50))]
            assert store.append_batch(1, 0, b"next", 2).first_offset == next_offset
            store.close()
            store = MessageStore(trial, config)
            assert records(store, 1, 0) == [*keep, (next_offset, 2, b"next")], f"cut at {cut}"
        finally:
            store.close()
        shutil.rmtree(trial)


def make_batches(store: MessageStore) -> dict[tuple[int, int], list[tuple[int, int, bytes]]]:
    history: dict[tuple[int, int], list[tuple[int, int, bytes]]] = {}
    for n in range(20):
        queue, partition = 1 + n % 2, n % 3
        payload = f"{queue}/{partition}/{n}".encode()
        if n % 4 == 3:
            first = store.append(queue, partition, [payload]).first_offset
            history.setdefault((queue, partition), []).append((first, 1, payload))
        else:
            count = n % 5 + 2
            first = store.append_batch(queue, partition, payload, count).first_offset
            history.setdefault((queue, partition), []).append((first, count, payload))
    return history


def assert_batches(store: MessageStore, history: dict) -> None:
    for (queue, partition), expected in history.items():
        assert records(store, queue, partition) == expected
        end = expected[-1][0] + expected[-1][1]
        assert store.offset_range(queue, partition) == (0, end)
        for offset in range(end):  # every message's entry leads to its record
            got = store.read(queue, partition, offset, 1, 1 << 20)[0]
            assert got.offset <= offset < got.offset + got.count


@pytest.mark.parametrize(
    "damage", ["index-deleted", "index-behind", "index-mid-batch", "no-checkpoint"]
)
def test_consume_queues_of_batches_are_rebuilt(tmp_path: Path, opened, damage: str):
    store = open_store(opened, tmp_path, small())
    history = make_batches(store)
    store.close()
    index_dir = tmp_path / "consumequeue" / "1" / "0"
    if damage == "index-deleted":
        shutil.rmtree(tmp_path / "consumequeue" / "2")
    elif damage in ("index-behind", "index-mid-batch"):
        files = sorted(index_dir.iterdir())
        for extra in files[1:]:
            extra.unlink()
        # Queue 1 partition 0's first record is a batch of 2: keep one of its entries.
        entries = 1 if damage == "index-mid-batch" else 2
        assert history[(1, 0)][0][1] == 2
        os.truncate(files[0], 16 * entries)
    else:
        (tmp_path / "checkpoint").unlink()
    store = open_store(opened, tmp_path, small())
    assert_batches(store, history)
    end = sum(count for _, count, _ in history[(1, 0)])
    assert store.append_batch(1, 0, b"more", 2).first_offset == end


def test_a_flipped_byte_anywhere_in_a_batch_record_fails_the_read(tmp_path: Path, opened):
    store = open_store(opened, tmp_path, small(segment_bytes=1 << 16))
    store.append(1, 0, [b"first"])
    body = b"the batch"
    start = store.append_batch(1, 0, body, 3).end_position - BATCH_HEADER_SIZE - len(body)
    store.append(1, 0, [b"last"])
    path = tmp_path / "commitlog" / segment_name(0)
    original = path.read_bytes()
    for i in range(start, start + BATCH_HEADER_SIZE + len(body)):
        damaged = bytearray(original)
        damaged[i] ^= 0x01
        path.write_bytes(damaged)
        for offset in (1, 2, 3):
            with pytest.raises(CorruptDataError, match=f"position {start}"):
                store.read(1, 0, offset, 10, 1 << 20)
        assert store.read(1, 0, 0, 1, 1 << 20)[0].encoded == b"first"
        assert store.read(1, 0, 4, 1, 1 << 20)[0].encoded == b"last"
    path.write_bytes(original)
    assert len(store.read(1, 0, 0, 10, 1 << 20)) == 3
