"""The consume queue: the index of one (queue, partition) into the commit log.

Entries are fixed-size, so the entry of queue offset ``n`` is found by arithmetic.
They live in files of ``entries_per_file`` entries, named by the 20-digit queue
offset of their first entry, in ``consumequeue/<queue_id>/<partition>/``. Entry
layout (little-endian, ``ENTRY_SIZE`` = 16 bytes)::

    offset  size  field
    0       8     commit-log position of the record
    8       4     record size (header included); 0 marks a hole (no message)
    12      4     the message's index in its record: 0 in a message record, 0 .. count-1
                  in a batch record (whose entries all point at the record)

Holes appear only when an index is rebuilt from a commit log whose oldest records
of the partition were already deleted; a hole carries the position of the next real
entry so positions never decrease along the queue, which keeps them searchable.

The first retained offset (``min_offset``) moves forward as the commit log's oldest
segments are deleted; the last index file is always kept so ``next_offset`` survives
even when every entry has aged out.

Appends and reads are serialized by the store; `sync` may run concurrently.
"""

from __future__ import annotations

import bisect
import itertools
import os
import shutil
import struct
import threading
from collections.abc import Sequence
from pathlib import Path

from omconnect.broker.commitlog import list_segment_files, segment_name

ENTRY = struct.Struct("<QII")
ENTRY_SIZE = ENTRY.size  # 16


def file_base(offset: int, entries_per_file: int) -> int:
    """The first queue offset of the index file holding ``offset``."""
    return offset - offset % entries_per_file


def encode_entries(
    positions: Sequence[int], sizes: Sequence[int], indexes: Sequence[int] | None = None
) -> bytes:
    """Index entries for messages in records at ``positions`` of ``sizes``, at
    ``indexes`` in their records (all 0, message records, when None)."""
    if indexes is None:
        indexes = itertools.repeat(0, len(positions))  # type: ignore[assignment]
    return b"".join(map(ENTRY.pack, positions, sizes, indexes))  # type: ignore[arg-type]


class _File:
    __slots__ = ("base", "count", "fd", "path")

    def __init__(self, path: Path, base: int) -> None:
        self.path = path
        self.base = base
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        size = os.fstat(self.fd).st_size
        if size % ENTRY_SIZE:  # a torn entry at the end
            size -= size % ENTRY_SIZE
            os.ftruncate(self.fd, size)
        self.count = size // ENTRY_SIZE


class ConsumeQueue:
    """The index of one partition. Offsets ``[min_offset, next_offset)`` are readable."""

    def __init__(self, directory: Path, entries_per_file: int) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.entries_per_file = entries_per_file
        self._files = [_File(path, base) for base, path in list_segment_files(directory)]
        self._bases = [f.base for f in self._files]
        self._dirty: set[_File] = set()
        self._io_lock = threading.Lock()  # held while fsyncing or deleting files
        last = self._files[-1] if self._files else None
        self.next_offset = last.base + last.count if last else 0
        self.min_offset = self._files[0].base if self._files else 0

    # -- write -----------------------------------------------------------------------

    def append(
        self, positions: Sequence[int], sizes: Sequence[int], indexes: Sequence[int] | None = None
    ) -> None:
        """Index messages at ``next_offset``, ``next_offset + 1``, ... (page cache only);
        ``indexes`` are their places in their records (None: message records)."""
        data = encode_entries(positions, sizes, indexes)
        offset = self.next_offset
        done = 0
        while done < len(data):
            f = self._file_for(offset)
            room = (f.base + self.entries_per_file - offset) * ENTRY_SIZE
            chunk = data[done : done + room]
            os.pwrite(f.fd, chunk, (offset - f.base) * ENTRY_SIZE)
            f.count = offset - f.base + len(chunk) // ENTRY_SIZE
            self._dirty.add(f)
            offset += len(chunk) // ENTRY_SIZE
            done += len(chunk)
        self.next_offset = offset

    def skip_to(self, offset: int, position: int) -> None:
        """Move ``next_offset`` forward to ``offset``, leaving holes that point at
        ``position`` (the next record's); an empty queue starts at ``offset``."""
        if offset <= self.next_offset:
            return
        was_empty = self.min_offset >= self.next_offset
        start = max(self.next_offset, file_base(offset, self.entries_per_file))
        self.next_offset = start
        self.append([position] * (offset - start), [0] * (offset - start))
        if was_empty:
            self.min_offset = offset

    def _file_for(self, offset: int) -> _File:
        base = file_base(offset, self.entries_per_file)
        if self._files and self._files[-1].base == base:
            return self._files[-1]
        f = _File(self.directory / segment_name(base), base)
        self._files.append(f)
        self._bases.append(base)
        return f

    # -- read ------------------------------------------------------------------------

    def entries(self, offset: int, count: int) -> list[tuple[int, int]]:
        """(position, size) of offsets ``offset .. offset + count - 1`` that exist
        (clamped to ``next_offset``); size 0 is a hole."""
        return [(position, size) for position, size, _ in self.indexed_entries(offset, count)]

    def indexed_entries(self, offset: int, count: int) -> list[tuple[int, int, int]]:
        """Like `entries`, with each message's index in its record:
        (position, size, index); a hole is (position, 0, 0)."""
        end = min(offset + count, self.next_offset)
        out: list[tuple[int, int, int]] = []
        while offset < end:
            base = file_base(offset, self.entries_per_file)
            stop = min(end, base + self.entries_per_file)
            i = bisect.bisect_left(self._bases, base)
            have = 0
            if i < len(self._files) and self._bases[i] == base:
                f = self._files[i]
                n = max(0, min(stop, base + f.count) - offset)
                data = os.pread(f.fd, n * ENTRY_SIZE, (offset - base) * ENTRY_SIZE)
                out.extend(ENTRY.iter_unpack(data))
                have = len(data) // ENTRY_SIZE
            out.extend([(0, 0, 0)] * (stop - offset - have))
            offset = stop
        return out

    def _all_entries(self, f: _File) -> list[tuple[int, int]]:
        data = os.pread(f.fd, f.count * ENTRY_SIZE, 0)
        return [(pos, size) for pos, size, _ in ENTRY.iter_unpack(data)]

    def first_at_or_after(self, position: int, *, skip_holes: bool) -> int:
        """The first offset whose entry points at or past commit-log ``position``
        (with ``skip_holes``, the first real entry), or ``next_offset`` if none."""
        for f in self._files:
            last = os.pread(f.fd, ENTRY_SIZE, (f.count - 1) * ENTRY_SIZE) if f.count else b""
            if len(last) < ENTRY_SIZE or ENTRY.unpack(last)[0] < position:
                continue
            entries = self._all_entries(f)
            i = bisect.bisect_left(entries, position, key=lambda e: e[0])
            while skip_holes and i < len(entries) and entries[i][1] == 0:
                i += 1
            if i < len(entries):
                return f.base + i
        return self.next_offset

    # -- truncate / retention --------------------------------------------------------

    def truncate(self, next_offset: int) -> None:
        """Forget the entries from ``next_offset`` on."""
        if next_offset >= self.next_offset:
            return
        with self._io_lock:
            while self._files and self._files[-1].base >= next_offset and len(self._files) > 1:
                self._delete(self._files[-1])
            if self._files:
                f = self._files[-1]
                f.count = max(0, min(f.count, next_offset - f.base))
                os.ftruncate(f.fd, f.count * ENTRY_SIZE)
                self._dirty.add(f)
            self.next_offset = max(next_offset, self._files[0].base) if self._files else 0
            self.min_offset = min(self.min_offset, self.next_offset)

    def truncate_at_position(self, end: int) -> None:
        """Forget entries that point at or past commit-log position ``end``."""
        last = self.entries(self.next_offset - 1, 1) if self.next_offset > self.min_offset else []
        if last and last[0][0] >= end:
            self.truncate(self.first_at_or_after(end, skip_holes=False))

    def advance_min(self, position: int) -> None:
        """Make the first real entry at or past commit-log ``position`` the first
        retained offset, and delete index files wholly before it (never the last)."""
        self.min_offset = max(self.min_offset, self.first_at_or_after(position, skip_holes=True))
        with self._io_lock:
            while len(self._files) > 1 and self._files[1].base <= self.min_offset:
                self._delete(self._files[0])

    def _delete(self, f: _File) -> None:
        os.close(f.fd)
        f.path.unlink(missing_ok=True)
        self._dirty.discard(f)
        index = self._files.index(f)
        del self._files[index]
        del self._bases[index]

    # -- lifecycle -------------------------------------------------------------------

    def size_bytes(self) -> int:
        """Bytes of index files."""
        return sum(f.count for f in self._files) * ENTRY_SIZE

    def sync(self) -> None:
        """fsync the index files written since the last sync."""
        with self._io_lock:
            dirty = list(self._dirty)
            self._dirty.clear()
            for f in dirty:
                os.fsync(f.fd)

    def close(self) -> None:
        """fsync and close the index files."""
        self.sync()
        with self._io_lock:
            for f in self._files:
                os.close(f.fd)
            self._files.clear()
            self._bases.clear()

    def delete(self) -> None:
        """Close and delete this index with its directory."""
        with self._io_lock:
            for f in self._files:
                os.close(f.fd)
            self._files.clear()
            self._bases.clear()
            self._dirty.clear()
        shutil.rmtree(self.directory, ignore_errors=True)
