"""The consume-queue index: entry arithmetic, files, holes, truncation, retention."""

from __future__ import annotations

import os
from pathlib import Path

from omconnect.broker.commitlog import segment_name
from omconnect.broker.consumequeue import (
    ENTRY,
    ENTRY_SIZE,
    ConsumeQueue,
    encode_entries,
    file_base,
)


def test_entry_arithmetic():
    assert ENTRY_SIZE == 16
    assert [file_base(n, 4) for n in (0, 3, 4, 7, 8, 1001)] == [0, 0, 4, 4, 8, 1000]
    data = encode_entries([10, 2**40], [50, 60])
    assert list(ENTRY.iter_unpack(data)) == [(10, 50, 0), (2**40, 60, 0)]


def fill(cq: ConsumeQueue, count: int, size: int = 50) -> list[int]:
    start = cq.next_offset
    positions = [(start + i) * 100 for i in range(count)]
    cq.append(positions, [size] * count)
    return positions


def test_append_spans_files_and_survives_reopen(tmp_path: Path):
    cq = ConsumeQueue(tmp_path, entries_per_file=4)
    fill(cq, 3)
    fill(cq, 7)  # crosses two file boundaries in one call
    assert cq.next_offset == 10
    assert sorted(os.listdir(tmp_path)) == [segment_name(0), segment_name(4), segment_name(8)]
    assert cq.entries(2, 5) == [(n * 100, 50) for n in range(2, 7)]
    assert cq.entries(8, 10) == [(800, 50), (900, 50)]  # clamped to next_offset
    cq.close()
    again = ConsumeQueue(tmp_path, entries_per_file=4)
    assert (again.min_offset, again.next_offset) == (0, 10)
    assert again.entries(0, 10) == [(n * 100, 50) for n in range(10)]
    again.close()


def test_a_torn_entry_is_cut_on_open(tmp_path: Path):
    cq = ConsumeQueue(tmp_path, entries_per_file=8)
    fill(cq, 5)
    cq.close()
    os.truncate(tmp_path / segment_name(0), 5 * ENTRY_SIZE - 3)
    again = ConsumeQueue(tmp_path, entries_per_file=8)
    assert again.next_offset == 4
    fill(again, 1)
    assert again.entries(4, 1) == [(400, 50)]
    again.close()


def test_skip_to_on_an_empty_queue_starts_it_there(tmp_path: Path):
    cq = ConsumeQueue(tmp_path, entries_per_file=4)
    cq.skip_to(10, position=5000)
    assert (cq.min_offset, cq.next_offset) == (10, 10)
    cq.append([5000], [70])
    assert cq.entries(10, 1) == [(5000, 70)]
    assert cq.entries(8, 3) == [(5000, 0), (5000, 0), (5000, 70)]  # holes point forward
    assert sorted(os.listdir(tmp_path)) == [segment_name(8)]  # no files for 0..7
    cq.close()
    again = ConsumeQueue(tmp_path, entries_per_file=4)
    again.advance_min(0)
    assert (again.min_offset, again.next_offset) == (10, 11)
    again.close()


def test_first_at_or_after_and_truncate_at_position(tmp_path: Path):
    cq = ConsumeQueue(tmp_path, entries_per_file=4)
    fill(cq, 10)  # positions 0, 100, ..., 900
    assert cq.first_at_or_after(0, skip_holes=True) == 0
    assert cq.first_at_or_after(450, skip_holes=True) == 5
    assert cq.first_at_or_after(500, skip_holes=True) == 5
    assert cq.first_at_or_after(10_000, skip_holes=True) == 10
    cq.truncate_at_position(10_000)  # nothing points there: no change
    assert cq.next_offset == 10
    cq.truncate_at_position(500)
    assert cq.next_offset == 5
    assert sorted(os.listdir(tmp_path)) == [segment_name(0), segment_name(4)]
    assert os.path.getsize(tmp_path / segment_name(4)) == ENTRY_SIZE
    fill(cq, 1)
    assert cq.entries(5, 1) == [(500, 50)]
    cq.close()


def test_truncate_to_a_file_boundary_deletes_later_files(tmp_path: Path):
    cq = ConsumeQueue(tmp_path, entries_per_file=4)
    fill(cq, 10)
    cq.truncate(4)
    assert cq.next_offset == 4
    assert sorted(os.listdir(tmp_path)) == [segment_name(0)]
    cq.truncate(7)  # beyond the end: no-op
    assert cq.next_offset == 4
    cq.close()


def test_advance_min_deletes_whole_files_but_keeps_the_last(tmp_path: Path):
    cq = ConsumeQueue(tmp_path, entries_per_file=4)
    fill(cq, 10)
    cq.advance_min(450)
    assert cq.min_offset == 5
    assert sorted(os.listdir(tmp_path)) == [segment_name(4), segment_name(8)]
    cq.advance_min(99_999)  # every entry aged out
    assert (cq.min_offset, cq.next_offset) == (10, 10)
    assert sorted(os.listdir(tmp_path)) == [segment_name(8)]
    cq.close()
    again = ConsumeQueue(tmp_path, entries_per_file=4)
    again.advance_min(99_999)
    assert (again.min_offset, again.next_offset) == (10, 10)
    again.close()


def test_sync_and_size(tmp_path: Path):
    cq = ConsumeQueue(tmp_path, entries_per_file=4)
    fill(cq, 6)
    assert cq.size_bytes() == 6 * ENTRY_SIZE
    cq.sync()
    cq.delete()
    assert not tmp_path.exists()
