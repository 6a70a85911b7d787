"""The commit-log record format and segment files."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import crc32c
import pytest
from hypothesis import given
from hypothesis import strategies as st

from omconnect.broker.commitlog import (
    HEADER_SIZE,
    MAGIC,
    CommitLog,
    decode_header,
    encode_batch,
    encode_record,
    segment_name,
)
from omconnect.errors import CorruptDataError

u32 = st.integers(0, 2**32 - 1)
u64 = st.integers(0, 2**64 - 1)


@given(u32, u32, u64, u64, st.binary(max_size=300))
def test_record_round_trips(queue_id: int, partition: int, offset: int, ts: int, payload: bytes):
    record = encode_record(queue_id, partition, offset, ts, payload)
    assert len(record) == HEADER_SIZE + len(payload)
    header = decode_header(record)
    assert header is not None
    assert (header.size, header.queue_id, header.partition) == (len(record), queue_id, partition)
    assert (header.queue_offset, header.store_timestamp) == (offset, ts)
    assert record[HEADER_SIZE:] == payload


def test_header_layout_is_the_documented_one():
    record = encode_record(7, 3, 42, 1_700_000_000_000, b"payload")
    size, crc, magic, queue_id, partition, offset, ts = struct.unpack_from("<IIBIIQQ", record)
    assert (size, magic, queue_id, partition) == (40, MAGIC, 7, 3)
    assert (offset, ts) == (42, 1_700_000_000_000)
    assert crc == crc32c.crc32c(record[8:])


def test_every_flipped_byte_or_cut_is_rejected():
    record = encode_record(1, 2, 3, 4, b"some payload bytes")
    for i in range(len(record)):
        damaged = bytearray(record)
        damaged[i] ^= 0x40
        assert decode_header(bytes(damaged)) is None, f"flip at byte {i} accepted"
    for cut in range(len(record)):
        assert decode_header(record[:cut]) is None


def test_decode_header_at_an_offset_inside_a_buffer():
    a = encode_record(1, 0, 0, 5, b"a" * 10)
    b = encode_record(1, 0, 1, 5, b"b" * 20)
    header = decode_header(a + b, len(a))
    assert header is not None and header.queue_offset == 1 and header.size == len(b)


def test_batch_rolls_whole_records_into_the_next_segment():
    payloads = [bytes([i]) * 30 for i in range(10)]  # records of 63 bytes
    writes, positions, sizes = encode_batch(5, 1, 100, 9, payloads, position=150, segment_bytes=200)
    assert sizes == [63] * 10
    # segment 0 has room for 0 records after 150+63>200? 150+63=213 > 200: roll at once
    assert positions[0] == 200
    assert [p for p, _ in writes] == [200, 400, 600, 800]
    for position, size in zip(positions, [63] * 10, strict=True):
        assert position // 200 == (position + size - 1) // 200, "a record spans segments"
    data = {p: d for p, d in writes}
    for i, position in enumerate(positions):
        chunk_start = max(p for p in data if p <= position)
        header = decode_header(data[chunk_start], position - chunk_start)
        assert header is not None and header.queue_offset == 100 + i
    assert sum(len(d) for _, d in writes) == 10 * 63


@given(
    st.lists(st.integers(0, 60), min_size=1, max_size=30),
    st.integers(0, 1000),
    st.integers(HEADER_SIZE + 60, 300),
)
def test_batch_matches_record_by_record_layout(lengths: list[int], start: int, segment: int):
    payloads = [bytes([n]) * n for n in lengths]
    writes, positions, sizes = encode_batch(3, 4, 10, 99, payloads, start, segment)
    expected: dict[int, bytearray] = {}  # segment start -> bytes from the first write
    position = start
    for i, payload in enumerate(payloads):
        record = encode_record(3, 4, 10 + i, 99, payload)
        if position // segment != (position + len(record) - 1) // segment:
            position = (position // segment + 1) * segment
        assert positions[i] == position and sizes[i] == len(record)
        seg = position - position % segment
        expected.setdefault(seg, bytearray()).extend(record)
        position += len(record)
    assert [len(d) for _, d in writes] == [len(b) for b in expected.values()]
    assert b"".join(d for _, d in writes) == b"".join(expected.values())
    assert writes[0][0] == positions[0] and all(p % segment == 0 for p, _ in writes[1:])


def test_batch_that_fits_is_one_write():
    writes, positions, _ = encode_batch(0, 0, 0, 0, [b"x"] * 100, position=0, segment_bytes=1 << 20)
    assert len(writes) == 1
    assert positions == [i * (HEADER_SIZE + 1) for i in range(100)]


def test_append_and_read_across_rolls_then_reopen(tmp_path: Path):
    log = CommitLog(tmp_path, segment_bytes=256)
    all_positions = []
    for batch in range(20):
        payloads = [bytes([batch, i]) * (1 + (batch * 7 + i) % 40) for i in range(3)]
        positions, _ = log.append_batch(2, 0, batch * 3, 1000 + batch, payloads)
        for position, payload in zip(positions, payloads, strict=True):
            all_positions.append((position, payload))
    assert len(os.listdir(tmp_path)) > 5
    for position, payload in all_positions:
        record = log.read_bytes(position, HEADER_SIZE + len(payload))
        assert record[HEADER_SIZE:] == payload
    end = log.end_position
    assert log.sync() == end
    log.close()

    reopened = CommitLog(tmp_path, segment_bytes=256)
    scanned = [(r.position, r.header.queue_offset) for r in reopened.scan(0)]
    assert scanned == [(p, i) for i, (p, _) in enumerate(all_positions)]
    assert reopened.end_position == end
    reopened.close()


def test_scan_truncates_garbage_and_drops_a_segment_that_is_not_a_roll(tmp_path: Path):
    log = CommitLog(tmp_path, segment_bytes=200)
    log.append_batch(0, 0, 0, 1, [b"a" * 50, b"b" * 50])  # 83 + 83 = 166 bytes in segment 0
    log.close()
    with open(tmp_path / segment_name(0), "ab") as f:
        f.write(b"\x00\x01garbage")
    # A next segment whose first record (43 bytes) would have fit in the 34 bytes left?
    # It would not, so this one is a genuine continuation...
    (tmp_path / segment_name(200)).write_bytes(encode_record(0, 0, 2, 1, b"c" * 10))
    log = CommitLog(tmp_path, segment_bytes=200)
    assert [r.header.queue_offset for r in log.scan(0)] == [0, 1]  # garbage ends the log
    assert log.end_position == 166
    assert sorted(os.listdir(tmp_path)) == [segment_name(0)]
    assert os.path.getsize(tmp_path / segment_name(0)) == 166
    log.close()


def test_scan_accepts_a_roll_and_rejects_a_segment_after_a_short_one(tmp_path: Path):
    log = CommitLog(tmp_path, segment_bytes=200)
    log.append_batch(0, 0, 0, 1, [b"a" * 50, b"b" * 50, b"c" * 50])  # third record rolls
    log.close()
    log = CommitLog(tmp_path, segment_bytes=200)
    assert [r.position for r in log.scan(0)] == [0, 83, 200]
    log.close()
    # Lose segment 0's second record (as if its page never reached the disk): segment 1
    # starts with a record that would have fit after the first, so it cannot follow it.
    os.truncate(tmp_path / segment_name(0), 83)
    log = CommitLog(tmp_path, segment_bytes=200)
    assert [r.position for r in log.scan(0)] == [0]
    assert log.end_position == 83
    assert sorted(os.listdir(tmp_path)) == [segment_name(0)]
    log.close()


def test_scan_from_a_checkpoint_past_the_file_end_rescans_that_segment(tmp_path: Path):
    log = CommitLog(tmp_path, segment_bytes=1000)
    log.append_batch(0, 0, 0, 1, [b"x" * 10] * 4)  # 43 bytes each
    log.close()
    os.truncate(tmp_path / segment_name(0), 100)
    log = CommitLog(tmp_path, segment_bytes=1000)
    assert [r.position for r in log.scan(172)] == [0, 43]
    assert log.end_position == 86
    log.close()


def test_truncate_to_an_empty_last_segment_removes_it(tmp_path: Path):
    log = CommitLog(tmp_path, segment_bytes=200)
    log.append_batch(0, 0, 0, 1, [b"x" * 100, b"y" * 100])  # 133 bytes each: two segments
    log.truncate(200)
    assert log.end_position == 133
    assert sorted(os.listdir(tmp_path)) == [segment_name(0)]
    # The next (small) record goes after the first, where a recovery scan looks for it.
    assert log.append_batch(0, 0, 1, 1, [b"z"]) == ([133], [34])
    log.close()
    log = CommitLog(tmp_path, segment_bytes=200)
    assert [r.header.queue_offset for r in log.scan(0)] == [0, 1]
    log.close()


def test_delete_oldest_never_deletes_the_active_segment(tmp_path: Path):
    log = CommitLog(tmp_path, segment_bytes=100)
    for i in range(4):
        log.append_batch(0, 0, i, 1, [b"x" * 40])  # one record per segment
    assert log.segment_starts() == [0, 100, 200, 300]
    log.delete_oldest(10)
    assert log.segment_starts() == [300]
    assert log.min_position == 300
    with pytest.raises(CorruptDataError, match="not retained"):
        log.read_bytes(0, 10)
    log.close()


def test_a_missing_middle_segment_is_reported(tmp_path: Path):
    log = CommitLog(tmp_path, segment_bytes=100)
    for i in range(3):
        log.append_batch(0, 0, i, 1, [b"x" * 40])
    log.close()
    (tmp_path / segment_name(100)).unlink()
    with pytest.raises(CorruptDataError, match=segment_name(100)):
        CommitLog(tmp_path, segment_bytes=100)
    (tmp_path / "00000000000000000050").write_bytes(b"")
    with pytest.raises(CorruptDataError, match="off a segment boundary"):
        CommitLog(tmp_path, segment_bytes=100)
