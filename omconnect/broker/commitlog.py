"""The commit log: one append-only log of records shared by every queue, RocketMQ style.

The log is a run of segment files in one directory, each named by its 20-digit
starting physical position. Segment ``k`` starts at ``k * segment_bytes`` and holds
at most ``segment_bytes`` bytes, so finding a position's segment is arithmetic. A
record never spans two segments: when the next record does not fit, the log rolls to
the next segment and the rest of the old one stays unused (segment files are not
preallocated, so a file's length is the data it holds).

Two record kinds share one layout (little-endian). A *message record* (magic
``MAGIC``, ``HEADER_SIZE`` = 33 bytes + payload) holds one message; a *batch record*
(magic ``BATCH_MAGIC``, ``BATCH_HEADER_SIZE`` = 37 bytes + payload) holds the
``count`` messages of a producer's batch at consecutive queue offsets::

    offset  size  field
    0       4     total size of the record, header included
    4       4     CRC-32C of bytes [8, total)
    8       1     magic / record format version (``MAGIC`` or ``BATCH_MAGIC``)
    9       4     queue id
    13      4     partition
    17      8     queue offset (the record's offset in its partition; a batch
                  record's first message's)
    25      8     store timestamp, epoch ms
    33      4     batch records only: message count (at least 1)
    33/37   ...   payload: an `omconnect.codec` message encoding (message record) or
                  an `omconnect.batch_codec` batch encoding (batch record), stored
                  unchanged

Recovery rule: scanning a segment, the first record whose size, magic or CRC is
invalid, or that runs past the end of the file, is the end of the log. A later segment
is a valid continuation only if its first record would not have fit in the space left
in the previous one (the log only rolls then).

`CommitLog` is not thread-safe for appends (the store serializes them); `sync` may
run concurrently with appends and reads.
"""

from __future__ import annotations

import itertools
import os
import struct
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import crc32c

from omconnect.errors import CorruptDataError

MAGIC = 0xC1
BATCH_MAGIC = 0xC2
_U32 = struct.Struct("<I")
_PREFIX = struct.Struct("<II")
_TAIL = struct.Struct("<BIIQQ")
RECORD_HEADER = struct.Struct("<IIBIIQQ")  # size, crc, magic, queue, partition, offset, ts
_HEADER = RECORD_HEADER
HEADER_SIZE = _HEADER.size  # 33
BATCH_HEADER_SIZE = HEADER_SIZE + _U32.size  # 37
NAME_DIGITS = 20
_SCAN_WINDOW = 8 << 20
_crc = crc32c.crc32c


# -- pure: record encoding ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RecordHeader:
    """The decoded fixed header of one record."""

    size: int
    queue_id: int
    partition: int
    queue_offset: int
    store_timestamp: int
    count: int = 1  # messages in the record: more than 1 only in a batch record
    header_size: int = HEADER_SIZE  # where the payload starts


def encode_record(
    queue_id: int, partition: int, queue_offset: int, store_timestamp: int, payload: bytes
) -> bytes:
    """One record's bytes (header + payload)."""
    tail = _TAIL.pack(MAGIC, queue_id, partition, queue_offset, store_timestamp)
    crc = _crc(payload, _crc(tail))
    return _PREFIX.pack(HEADER_SIZE + len(payload), crc) + tail + payload


def decode_header(buf: bytes | memoryview, at: int = 0) -> RecordHeader | None:
    """Validate the record starting at ``buf[at:]``; None if it is not a whole valid record.

    Checks the size field (at least a header, within ``buf``), the magic, a batch
    record's count (at least 1) and the CRC.
    """
    if len(buf) - at < HEADER_SIZE:
        return None
    size, crc, magic, queue_id, partition, offset, ts = _HEADER.unpack_from(buf, at)
    if magic == MAGIC:
        count, header_size = 1, HEADER_SIZE
    elif magic == BATCH_MAGIC and size >= BATCH_HEADER_SIZE and at + size <= len(buf):
        count, header_size = _U32.unpack_from(buf, at + HEADER_SIZE)[0], BATCH_HEADER_SIZE
        if count < 1:
            return None
    else:
        return None
    if size < header_size or at + size > len(buf):
        return None
    if _crc(memoryview(buf)[at + 8 : at + size]) != crc:
        return None
    return RecordHeader(size, queue_id, partition, offset, ts, count, header_size)


def encode_batch_record(
    queue_id: int,
    partition: int,
    first_offset: int,
    store_timestamp: int,
    payload: bytes,
    count: int,
) -> bytes:
    """One batch record's bytes: ``count`` messages at ``first_offset`` on, whose
    batch encoding is ``payload``."""
    tail = _TAIL.pack(BATCH_MAGIC, queue_id, partition, first_offset, store_timestamp)
    tail += _U32.pack(count)
    crc = _crc(payload, _crc(tail))
    return _PREFIX.pack(BATCH_HEADER_SIZE + len(payload), crc) + tail + payload


def encode_batch(
    queue_id: int,
    partition: int,
    first_offset: int,
    store_timestamp: int,
    payloads: Sequence[bytes],
    position: int,
    segment_bytes: int,
) -> tuple[list[tuple[int, bytes]], list[int], list[int]]:
    """Lay ``payloads`` out as records from physical ``position`` on.

    Returns the writes ``[(position, bytes)]`` (one per segment touched, in order) and
    each record's position and size. A record that does not fit in the rest of its
    segment starts the next one. Every record must fit in an empty segment (the
    caller checks).
    """
    sizes = [HEADER_SIZE + len(p) for p in payloads]
    seg_end = position - position % segment_bytes + segment_bytes
    if position + sum(sizes) <= seg_end:  # the common case: one run, no roll
        positions = list(itertools.accumulate(sizes, initial=position))
        positions.pop()
        data = _encode_run(queue_id, partition, first_offset, store_timestamp, payloads, sizes)
        return [(position, data)], positions, sizes
    positions = []
    runs: list[tuple[int, int, int]] = []  # (first index, end index, start position)
    run_first, run_start = 0, position
    for i, size in enumerate(sizes):
        if position + size > seg_end:
            if i > run_first:
                runs.append((run_first, i, run_start))
            run_first, run_start = i, seg_end
            position = seg_end
            seg_end += segment_bytes
        positions.append(position)
        position += size
    runs.append((run_first, len(sizes), run_start))
    writes = [
        (
            start,
            _encode_run(
                queue_id, partition, first_offset + a, store_timestamp, payloads[a:b], sizes[a:b]
            ),
        )
        for a, b, start in runs
    ]
    return writes, positions, sizes


def _encode_run(
    queue_id: int,
    partition: int,
    first_offset: int,
    store_timestamp: int,
    payloads: Sequence[bytes],
    sizes: Sequence[int],
) -> bytes:
    """Consecutive records as one bytes object (built with C-level iteration)."""
    repeat = itertools.repeat
    n = len(payloads)
    tails = list(
        map(
            _TAIL.pack,
            repeat(MAGIC, n),
            repeat(queue_id, n),
            repeat(partition, n),
            range(first_offset, first_offset + n),
            repeat(store_timestamp, n),
        )
    )
    crcs = map(_crc, payloads, map(_crc, tails))
    prefixes = map(_PREFIX.pack, sizes, crcs)
    return b"".join(itertools.chain.from_iterable(zip(prefixes, tails, payloads, strict=True)))


def segment_name(start: int) -> str:
    """The file name of the segment starting at physical position ``start``."""
    return f"{start:0{NAME_DIGITS}d}"


def list_segment_files(directory: Path) -> list[tuple[int, Path]]:
    """(start position, path) of each segment-named file in ``directory``, sorted."""
    found = []
    for path in directory.iterdir():
        if len(path.name) == NAME_DIGITS and path.name.isdigit():
            found.append((int(path.name), path))
    return sorted(found)


# -- I/O ------------------------------------------------------------------------------


class _Segment:
    __slots__ = ("fd", "path", "size", "start")

    def __init__(self, path: Path, start: int) -> None:
        self.path = path
        self.start = start
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        self.size = os.fstat(self.fd).st_size


@dataclass(frozen=True, slots=True)
class ScannedRecord:
    """A valid record found by `CommitLog.scan`."""

    position: int
    header: RecordHeader


class CommitLog:
    """The segment files of one directory; see the module docstring for the format."""

    def __init__(self, directory: Path, segment_bytes: int) -> None:
        if segment_bytes <= HEADER_SIZE:
            raise ValueError(f"segment_bytes must exceed {HEADER_SIZE}")
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.segment_bytes = segment_bytes
        self._segments: list[_Segment] = []
        self._unsynced: list[_Segment] = []
        self._sync_lock = threading.Lock()  # held while fsyncing or deleting segments
        try:
            for start, path in list_segment_files(directory):
                if start % segment_bytes:
                    raise CorruptDataError(f"commit-log segment {path} is off a segment boundary")
                if self._segments and start != self._segments[-1].start + segment_bytes:
                    missing = directory / segment_name(self._segments[-1].start + segment_bytes)
                    raise CorruptDataError(f"commit-log segment {missing} is missing")
                self._segments.append(_Segment(path, start))
        except BaseException:
            for segment in self._segments:
                os.close(segment.fd)
            raise
        if not self._segments:
            self._segments.append(_Segment(directory / segment_name(0), 0))
        self._end = self._segments[-1].start + self._segments[-1].size
        self.bytes_written = 0

    @property
    def min_position(self) -> int:
        """The first retained physical position."""
        return self._segments[0].start

    @property
    def end_position(self) -> int:
        """The physical position just past the last record."""
        return self._end

    def segment_starts(self) -> list[int]:
        """Start positions of the segments, oldest first; the last is the active one."""
        return [s.start for s in self._segments]

    def segment_sizes(self) -> list[int]:
        """Bytes held by each segment, oldest first."""
        return [s.size for s in self._segments]

    def size_bytes(self) -> int:
        """Total bytes of all segment files."""
        return sum(s.size for s in self._segments)

    # -- append ----------------------------------------------------------------------

    def append_batch(
        self,
        queue_id: int,
        partition: int,
        first_offset: int,
        store_timestamp: int,
        payloads: Sequence[bytes],
    ) -> tuple[list[int], list[int]]:
        """Write one record per payload at the end of the log; return their positions
        and sizes.

        The bytes are in the page cache when this returns (not fsynced). On a write
        error the log's end does not move, so the next append overwrites the partial
        bytes.
        """
        writes, positions, sizes = encode_batch(
            queue_id,
            partition,
            first_offset,
            store_timestamp,
            payloads,
            self._end,
            self.segment_bytes,
        )
        for position, data in writes:
            segment = self._segments[-1]
            if position >= segment.start + self.segment_bytes:
                segment = self._roll(position)
            _pwrite_all(segment.fd, data, position - segment.start)
            segment.size = position - segment.start + len(data)
            self._end = position + len(data)
            self.bytes_written += len(data)
        return positions, sizes

    def append_record(self, data: bytes) -> int:
        """Write one encoded record (`encode_batch_record`) at the end of the log,
        rolling to the next segment if it does not fit in this one; return its
        position. It must fit in an empty segment (the caller checks). Page cache
        only, like `append_batch`; on a write error the log's end does not move."""
        position = self._end
        seg_end = position - position % self.segment_bytes + self.segment_bytes
        if position + len(data) > seg_end:
            position = seg_end
        segment = self._segments[-1]
        if position >= segment.start + self.segment_bytes:
            segment = self._roll(position)
        _pwrite_all(segment.fd, data, position - segment.start)
        segment.size = position - segment.start + len(data)
        self._end = position + len(data)
        self.bytes_written += len(data)
        return position

    def _roll(self, start: int) -> _Segment:
        segment = _Segment(self.directory / segment_name(start), start)
        with self._sync_lock:
            self._unsynced.append(self._segments[-1])
            self._segments.append(segment)
        return segment

    def sync(self) -> int:
        """fsync everything written so far; return the position now durable."""
        with self._sync_lock:
            target = self._end
            pending = [*self._unsynced, self._segments[-1]]
            self._unsynced.clear()
            for segment in pending:
                os.fsync(segment.fd)
        return target

    # -- read ------------------------------------------------------------------------

    def read_bytes(self, position: int, length: int) -> bytes:
        """Raw bytes ``[position, position + length)``, which must lie in one segment."""
        index = self._segment_index(position)
        if index is None:
            raise CorruptDataError(f"commit-log position {position} is not retained")
        segment = self._segments[index]
        data = os.pread(segment.fd, length, position - segment.start)
        if len(data) != length:
            raise CorruptDataError(
                f"commit log ends before position {position + length} (read at {position})"
            )
        return data

    def _segment_index(self, position: int) -> int | None:
        index = position // self.segment_bytes - self._segments[0].start // self.segment_bytes
        if 0 <= index < len(self._segments):
            return index
        return None

    # -- recovery --------------------------------------------------------------------

    def scan(self, start: int) -> Iterator[ScannedRecord]:
        """Yield every valid record from ``start`` on, in order, up to the first invalid
        one; then `truncate` there. ``start`` must be a record boundary (or a segment's
        used end)."""
        index = self._segment_index(start)
        if index is None and start == self._end:  # a full last segment's end
            index = len(self._segments) - 1
        if index is None:
            index, start = 0, self.min_position
        if start - self._segments[index].start > self._segments[index].size:
            start = self._segments[index].start  # the file is shorter than promised
        end = start
        pos = start - self._segments[index].start
        while index < len(self._segments):
            segment = self._segments[index]
            for position, header in _scan_file(segment.fd, pos, segment.size):
                yield ScannedRecord(segment.start + position, header)
                end = segment.start + position + header.size
            if end != segment.start + segment.size or index + 1 == len(self._segments):
                break
            index += 1
            pos = 0
            head = os.pread(self._segments[index].fd, 4, 0)
            space_left = self.segment_bytes - (end - segment.start)
            if len(head) < 4 or _U32.unpack(head)[0] <= space_left:
                break  # not a roll continuation: the log ended before this segment
        self.truncate(end)

    def truncate(self, end: int) -> None:
        """Make ``end`` the end of the log: cut its segment there and delete later ones."""
        with self._sync_lock:
            index = self._segment_index(end)
            if index is None:
                index = 0 if end < self.min_position else len(self._segments) - 1
            keep = self._segments[index]
            for segment in self._segments[index + 1 :]:
                _delete(segment)
            del self._segments[index + 1 :]
            self._unsynced = [s for s in self._unsynced if s in self._segments]
            cut = max(0, min(end - keep.start, keep.size))
            if keep.size != cut:
                os.ftruncate(keep.fd, cut)
                os.fsync(keep.fd)
                keep.size = cut
            if cut == 0 and len(self._segments) > 1:
                # An empty last segment would let the next record start there even
                # if it fits in the previous one, breaking the roll rule `scan` checks.
                _delete(self._segments.pop())
                keep = self._segments[-1]
                cut = keep.size
            self._end = keep.start + cut

    def first_timestamp(self, index: int) -> int | None:
        """The store timestamp of segment ``index``'s first record, if it has one."""
        segment = self._segments[index]
        head = os.pread(segment.fd, HEADER_SIZE, 0)
        if len(head) < HEADER_SIZE:
            return None
        return int(_HEADER.unpack_from(head)[6])

    # -- retention / lifecycle -------------------------------------------------------

    def delete_oldest(self, count: int) -> None:
        """Delete the ``count`` oldest segments; never the active (last) one."""
        with self._sync_lock:
            count = min(count, len(self._segments) - 1)
            for segment in self._segments[:count]:
                _delete(segment)
            del self._segments[:count]
            self._unsynced = [s for s in self._unsynced if s in self._segments]

    def close(self) -> None:
        """fsync and close every segment file."""
        with self._sync_lock:
            for segment in self._segments:
                os.fsync(segment.fd)
                os.close(segment.fd)
            self._segments.clear()
            self._unsynced.clear()


def _scan_file(fd: int, pos: int, file_size: int) -> Iterator[tuple[int, RecordHeader]]:
    """Valid records of one segment file from ``pos`` on, read in large windows."""
    window = b""
    base = pos
    while file_size - pos >= HEADER_SIZE:
        at = pos - base
        if len(window) - at < HEADER_SIZE:
            window, base, at = os.pread(fd, min(_SCAN_WINDOW, file_size - pos), pos), pos, 0
        size = _PREFIX.unpack_from(window, at)[0]
        if len(window) - at < size <= file_size - pos:
            length = max(size, min(_SCAN_WINDOW, file_size - pos))
            window, base, at = os.pread(fd, length, pos), pos, 0
        header = decode_header(window, at)
        if header is None:
            return
        yield pos, header
        pos += header.size


def _pwrite_all(fd: int, data: bytes, offset: int) -> None:
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view = view[written:]
        offset += written


def _delete(segment: _Segment) -> None:
    os.close(segment.fd)
    segment.path.unlink(missing_ok=True)
