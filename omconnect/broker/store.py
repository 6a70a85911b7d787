"""`MessageStore`: the bundled broker's storage, a commit log plus consume queues.

Layout of ``data_dir``::

    commitlog/<20-digit start position>              record segments (`commitlog`)
    consumequeue/<queue_id>/<partition>/<20-digit>   index files (`consumequeue`)
    checkpoint                                       JSON, replaced atomically

The checkpoint records a commit-log position P, each consume queue's next offset as
of P, and dropped queues. It is written only after the commit log and every consume
queue have been fsynced, so everything it states is on disk. Recovery on open:

1. consume queues are cut back to the checkpoint's next offsets (later entries may be
   torn); queues unknown to the checkpoint are deleted and rebuilt;
2. the commit log is scanned from P (earlier for a consume queue found behind the
   checkpoint, e.g. deleted), validating each record's size and CRC; the first
   invalid record is a torn tail: the log is truncated there;
3. records past what each consume queue holds are indexed again, and entries that
   point past the truncated tail are dropped.

Without a checkpoint every consume queue is rebuilt from the whole commit log.

A batch record (a producer's batch, see `commitlog`) gets one index entry per
message, each pointing at the record with the message's index in it; recovery
re-indexes a batch record whose entries were only partly written, and reads return
the record whole (its first offset and message count), once.
"""

from __future__ import annotations

import json
import logging
import shutil
import struct
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import crc32c

from omconnect.broker.api import StoredMessage
from omconnect.broker.commitlog import (
    BATCH_HEADER_SIZE,
    BATCH_MAGIC,
    HEADER_SIZE,
    MAGIC,
    RECORD_HEADER,
    CommitLog,
    encode_batch_record,
)
from omconnect.broker.consumequeue import ConsumeQueue
from omconnect.broker.files import write_file_atomically
from omconnect.broker.flush import FlushService, PeriodicTask
from omconnect.errors import (
    ConfigError,
    CorruptDataError,
    FatalError,
    MessageTooLargeError,
    RetriableError,
)

logger = logging.getLogger(__name__)

AppendListener = Callable[[int, int, int], None]
_U32_MAX = 2**32 - 1
_COUNT = struct.Struct("<I")  # a batch record's message count, after the common header


@dataclass(frozen=True, slots=True)
class StoreConfig:
    """Storage settings. A message must also fit in one segment with its header, so
    the effective size limit is ``min(max_message_bytes, segment_bytes - 33)``."""

    segment_bytes: int = 256 * 1024 * 1024
    flush_mode: Literal["async", "sync"] = "async"
    flush_interval_ms: int = 200
    retention_ms: int = 7 * 24 * 3600 * 1000
    retention_bytes: int = 0
    max_message_bytes: int = 4 * 1024 * 1024
    checkpoint_interval_ms: int = 1000
    cq_entries_per_file: int = 300_000

    def __post_init__(self) -> None:
        if self.segment_bytes <= HEADER_SIZE:
            raise ConfigError("segment_bytes", f"must be more than {HEADER_SIZE}")
        if self.flush_mode not in ("async", "sync"):
            raise ConfigError("flush_mode", "must be 'async' or 'sync'")
        for name in ("flush_interval_ms", "checkpoint_interval_ms", "cq_entries_per_file"):
            if getattr(self, name) <= 0:
                raise ConfigError(name, "must be positive")
        for name in ("retention_ms", "retention_bytes", "max_message_bytes"):
            if getattr(self, name) < 0:
                raise ConfigError(name, "must not be negative")


DEFAULT_CONFIG = StoreConfig()


@dataclass(frozen=True, slots=True)
class AppendResult:
    """Where a batch went: its first queue offset, its store timestamp, and the
    commit-log position just past it (pass it to `MessageStore.wait_durable`)."""

    first_offset: int
    store_timestamp: int
    end_position: int


@dataclass(frozen=True, slots=True)
class StoreStats:
    """Counters for metrics."""

    bytes_written: int
    messages_written: int
    end_position: int
    durable_position: int
    flush_count: int
    flush_seconds_total: float
    recent_flush_seconds: tuple[float, ...]


# -- pure: retention decision and checkpoint encoding --------------------------------


def segments_to_delete(
    sizes: Sequence[int],
    newest_timestamps: Sequence[int | None],
    now: int,
    retention_ms: int,
    retention_bytes: int,
) -> int:
    """How many of the oldest segments to delete; never the last (active) one.

    ``newest_timestamps[i]`` is an upper bound of segment i's newest record time (None:
    unknown, never expires). A segment goes when it is older than ``retention_ms`` (0:
    no time limit) or while the total exceeds ``retention_bytes`` (0: no size limit).
    """
    total = sum(sizes)
    count = 0
    while count < len(sizes) - 1:
        newest = newest_timestamps[count]
        expired = retention_ms > 0 and newest is not None and now - newest > retention_ms
        oversize = retention_bytes > 0 and total > retention_bytes
        if not (expired or oversize):
            break
        total -= sizes[count]
        count += 1
    return count


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """What is known complete and on disk: see the module docstring."""

    position: int
    queues: dict[tuple[int, int], int] = field(default_factory=dict)
    dropped: dict[int, int] = field(default_factory=dict)
    segment_bytes: int = 0  # the commit log's segment size; 0 if unknown
    timestamp: int = 0  # the newest store timestamp (they never go backwards)

    def encode(self) -> bytes:
        """JSON bytes."""
        body = {
            "version": 1,
            "position": self.position,
            "queues": [[q, p, n] for (q, p), n in sorted(self.queues.items())],
            "dropped": [[q, pos] for q, pos in sorted(self.dropped.items())],
            "segment_bytes": self.segment_bytes,
            "timestamp": self.timestamp,
        }
        return json.dumps(body, separators=(",", ":")).encode()

    @staticmethod
    def decode(data: bytes) -> Checkpoint | None:
        """The checkpoint in ``data``, or None if it does not parse."""
        try:
            body = json.loads(data)
            if body["version"] != 1:
                return None
            return Checkpoint(
                int(body["position"]),
                {(int(q), int(p)): int(n) for q, p, n in body["queues"]},
                {int(q): int(pos) for q, pos in body["dropped"]},
                int(body.get("segment_bytes", 0)),
                int(body.get("timestamp", 0)),
            )
        except (ValueError, KeyError, TypeError):
            return None


def _epoch_ms() -> int:
    return time.time_ns() // 1_000_000


# -- the store ------------------------------------------------------------------------


class MessageStore:
    """Thread-safe storage of every partition's messages. Opening recovers."""

    def __init__(
        self,
        data_dir: Path,
        config: StoreConfig = DEFAULT_CONFIG,
        clock: Callable[[], int] = _epoch_ms,
    ) -> None:
        self._config = config
        self._clock = clock
        self._dir = Path(data_dir)
        self._cq_root = self._dir / "consumequeue"
        self._checkpoint_path = self._dir / "checkpoint"
        self._max_payload = min(config.max_message_bytes, config.segment_bytes - HEADER_SIZE)
        self._lock = threading.Lock()
        self._checkpoint_lock = threading.Lock()
        self._queues: dict[tuple[int, int], ConsumeQueue] = {}
        self._dropped: dict[int, int] = {}
        self._listeners: tuple[AppendListener, ...] = ()
        self._last_timestamp = 0
        self._messages_written = 0
        self._closed = False
        self._dir.mkdir(parents=True, exist_ok=True)
        checkpoint = None
        if self._checkpoint_path.exists():
            checkpoint = Checkpoint.decode(self._checkpoint_path.read_bytes())
        if checkpoint and checkpoint.segment_bytes not in (0, config.segment_bytes):
            raise ConfigError(
                "segment_bytes",
                f"the data in {self._dir} was written with segment_bytes="
                f"{checkpoint.segment_bytes}; open it with that value",
            )
        self._log = CommitLog(self._dir / "commitlog", config.segment_bytes)
        try:
            self._recover(checkpoint)
        except BaseException:
            for cq in self._queues.values():
                cq.close()
            self._log.close()
            raise
        self._flusher = FlushService(
            self._log.sync,
            lambda: self._log.end_position,
            self._log.end_position,
            config.flush_mode,
            config.flush_interval_ms,
        )
        self._checkpoint()
        self._checkpointer = PeriodicTask(
            self._checkpoint, config.checkpoint_interval_ms, "omconnect-checkpoint"
        )

    # -- recovery --------------------------------------------------------------------

    def _recover(self, checkpoint: Checkpoint | None) -> None:
        log = self._log
        if checkpoint is None:  # nothing known complete: rebuild every index
            shutil.rmtree(self._cq_root, ignore_errors=True)
            checkpoint = Checkpoint(log.min_position)
        self._dropped = {q: p for q, p in checkpoint.dropped.items() if p > log.min_position}
        self._last_timestamp = checkpoint.timestamp
        scan_start = max(checkpoint.position, log.min_position)
        for key in self._queue_dirs():
            expected = checkpoint.queues.get(key)
            if expected is None:
                shutil.rmtree(self._cq_dir(*key), ignore_errors=True)
                continue
            cq = self._consume_queue(*key)
            cq.truncate(expected)
        for key, expected in checkpoint.queues.items():
            cq = self._consume_queue(*key)
            cq.advance_min(log.min_position)
            if cq.next_offset < expected:  # behind the checkpoint: re-index its records
                scan_start = min(scan_start, self._last_record_position(cq))
        for record in log.scan(scan_start):
            header = record.header
            dropped_at = self._dropped.get(header.queue_id)
            if dropped_at is not None and record.position < dropped_at:
                continue
            cq = self._consume_queue(header.queue_id, header.partition)
            if header.queue_offset + header.count <= cq.next_offset:
                continue  # indexed already
            cq.skip_to(header.queue_offset, record.position)
            # A batch record's entries may be indexed in part (a torn index file).
            first_index = cq.next_offset - header.queue_offset
            missing = header.count - first_index
            cq.append(
                [record.position] * missing,
                [header.size] * missing,
                range(first_index, header.count),
            )
            self._last_timestamp = max(self._last_timestamp, header.store_timestamp)
        end = log.end_position
        for key, cq in self._queues.items():
            if checkpoint.position > end:  # the log lost bytes the checkpoint covered
                cq.truncate_at_position(end)
            expected = checkpoint.queues.get(key, 0)
            if cq.next_offset < expected and checkpoint.position <= end:
                # Its records are older than the commit log's oldest segment.
                cq.skip_to(expected, end)

    def _last_record_position(self, cq: ConsumeQueue) -> int:
        """Where to rescan an index that is behind: its last record's start (that
        record is scanned again, as a batch record's entries may be indexed in part)."""
        if cq.next_offset > cq.min_offset:
            position, size = cq.entries(cq.next_offset - 1, 1)[0]
            if size:
                return max(position, self._log.min_position)
        return self._log.min_position

    def _queue_dirs(self) -> list[tuple[int, int]]:
        found = []
        if self._cq_root.is_dir():
            for qdir in self._cq_root.iterdir():
                if qdir.name.isdigit() and qdir.is_dir():
                    found += [
                        (int(qdir.name), int(p.name))
                        for p in qdir.iterdir()
                        if p.name.isdigit() and p.is_dir()
                    ]
        return sorted(found)

    def _cq_dir(self, queue_id: int, partition: int) -> Path:
        return self._cq_root / str(queue_id) / str(partition)

    def _consume_queue(self, queue_id: int, partition: int) -> ConsumeQueue:
        cq = self._queues.get((queue_id, partition))
        if cq is None:
            cq = ConsumeQueue(self._cq_dir(queue_id, partition), self._config.cq_entries_per_file)
            self._queues[(queue_id, partition)] = cq
        return cq

    # -- append ----------------------------------------------------------------------

    def append(self, queue_id: int, partition: int, payloads: Sequence[bytes]) -> AppendResult:
        """Append ``payloads`` (message encodings, stored unchanged) to one partition,
        in order, at consecutive offsets, one message record each. Thread-safe.
        Returns once the bytes are in the page cache; call `wait_durable` with
        ``end_position`` for fsync.

        Raises `MessageTooLargeError` (nothing is written), `RetriableError` on a
        write error (nothing is written), `FatalError` after an fsync failure.
        """
        if payloads and max(map(len, payloads)) > self._max_payload:
            raise MessageTooLargeError(
                f"message of {max(map(len, payloads))} bytes exceeds the limit of "
                f"{self._max_payload} bytes"
            )

        def write(first: int, timestamp: int) -> tuple[list[int], list[int], None]:
            positions, sizes = self._log.append_batch(
                queue_id, partition, first, timestamp, payloads
            )
            return positions, sizes, None

        return self._write(queue_id, partition, len(payloads), write)

    def append_batch(
        self, queue_id: int, partition: int, payload: bytes, count: int
    ) -> AppendResult:
        """Append one batch record: ``count`` messages whose batch encoding is
        ``payload`` (stored unchanged), at consecutive offsets of one partition; each
        offset gets its own index entry. Durability and errors as `append`; the
        record must fit in a segment with its header (`MessageTooLargeError`)."""
        if count < 1:
            raise ConfigError("count", "a batch record holds at least one message")
        limit = self._config.segment_bytes - BATCH_HEADER_SIZE
        if len(payload) > limit:
            raise MessageTooLargeError(
                f"batch of {len(payload)} bytes exceeds the limit of {limit} bytes"
            )

        def write(first: int, timestamp: int) -> tuple[list[int], list[int], range]:
            data = encode_batch_record(queue_id, partition, first, timestamp, payload, count)
            position = self._log.append_record(data)
            return [position] * count, [len(data)] * count, range(count)

        return self._write(queue_id, partition, count, write)

    def _write(
        self,
        queue_id: int,
        partition: int,
        count: int,
        write: Callable[[int, int], tuple[list[int], list[int], Sequence[int] | None]],
    ) -> AppendResult:
        """Run ``write(first_offset, store_timestamp)`` (which writes ``count``
        messages to the commit log and returns their index entries) under the lock,
        index them, then tell the listeners. A write error undoes both."""
        if not (0 <= queue_id <= _U32_MAX and 0 <= partition <= _U32_MAX):
            raise ConfigError("queue_id/partition", "must be in 0 .. 2**32-1")
        if self._flusher.error is not None:
            raise FatalError(f"store stopped after an fsync failure: {self._flusher.error}")
        with self._lock:
            if self._closed:
                raise FatalError("store is closed")
            cq = self._consume_queue(queue_id, partition)
            first = cq.next_offset
            timestamp = max(self._clock(), self._last_timestamp)
            if not count:
                return AppendResult(first, timestamp, self._log.end_position)
            self._last_timestamp = timestamp
            start = self._log.end_position
            try:
                cq.append(*write(first, timestamp))
            except OSError as exc:
                cq.truncate(first)
                self._log.truncate(start)
                raise RetriableError(f"commit-log write failed: {exc}") from exc
            end = self._log.end_position
            next_offset = cq.next_offset
            self._messages_written += count
        for listener in self._listeners:
            try:
                listener(queue_id, partition, next_offset)
            except Exception:  # the append succeeded: a listener's bug must not hide that
                logger.exception("append listener failed")
        return AppendResult(first, timestamp, end)

    def add_append_listener(self, listener: AppendListener) -> None:
        """Call ``listener(queue_id, partition, next_offset)`` after each append, on
        the appending thread, outside the store's lock. It must be quick; an exception
        it raises is logged, not passed to the appender."""
        with self._lock:
            self._listeners = (*self._listeners, listener)

    def wait_durable(self, position: int, timeout_s: float | None = None) -> None:
        """Sync mode: block until the commit log is fsynced past ``position``
        (`TimeoutError_` after ``timeout_s``). Async mode: return at once."""
        self._flusher.wait_durable(position, timeout_s)

    def on_durable(
        self,
        position: int,
        callback: Callable[[], None],
        on_error: Callable[[BaseException], None] | None = None,
    ) -> None:
        """Like `wait_durable`, but call ``callback`` from the flush thread (or at once
        if already durable, or in async mode). On an fsync failure ``on_error`` is
        called with the error instead."""
        self._flusher.on_durable(position, callback, on_error)

    # -- read ------------------------------------------------------------------------

    def read(
        self, queue_id: int, partition: int, offset: int, max_messages: int, max_bytes: int
    ) -> list[StoredMessage]:
        """The records holding the next ``max_messages`` messages from ``offset`` on,
        within ``max_bytes`` of payload but at least one if any exists. An offset below
        the first retained one reads from there. A batch record comes whole, once (its
        `StoredMessage.count` > 1 or its offset below ``offset``: the caller skips the
        messages it does not want). Every record's CRC and header are checked: a bad
        one raises `CorruptDataError` naming its commit-log position."""
        chosen: list[tuple[int, int, int]] = []  # (record's offset, position, size)
        blobs: list[tuple[int, bytes]] = []
        with self._lock:
            cq = self._queues.get((queue_id, partition))
            if cq is None or max_messages <= 0:
                return []
            offset = max(offset, cq.min_offset)
            total = 0
            while not chosen and offset < cq.next_offset:
                entries = cq.indexed_entries(offset, max_messages)
                previous = -1
                for i, (position, size, index) in enumerate(entries):
                    if size == 0 or position == previous:
                        continue  # a hole, or the rest of a batch record already chosen
                    if not HEADER_SIZE <= size <= self._config.segment_bytes:
                        raise CorruptDataError(
                            f"index entry {offset + i} of queue {queue_id} partition "
                            f"{partition} is corrupt (record size {size})"
                        )
                    if chosen and total + size - HEADER_SIZE > max_bytes:
                        break
                    chosen.append((offset + i - index, position, size))
                    previous = position
                    total += size - HEADER_SIZE
                offset += len(entries)
            blobs = self._read_runs(chosen)
        return _verify(queue_id, partition, chosen, blobs)

    def _read_runs(self, chosen: list[tuple[int, int, int]]) -> list[tuple[int, bytes]]:
        """Commit-log bytes of the chosen records, one read per contiguous run."""
        runs: list[tuple[int, bytes]] = []
        segment_bytes = self._config.segment_bytes
        i = 0
        while i < len(chosen):
            start = chosen[i][1]
            end = start + chosen[i][2]
            j = i + 1
            while (
                j < len(chosen)
                and chosen[j][1] == end
                and chosen[j][1] // segment_bytes == start // segment_bytes
            ):
                end += chosen[j][2]
                j += 1
            runs.append((start, self._log.read_bytes(start, end - start)))
            i = j
        return runs

    def offset_range(self, queue_id: int, partition: int) -> tuple[int, int]:
        """(first retained offset, next offset to write); (0, 0) for an unknown one."""
        with self._lock:
            cq = self._queues.get((queue_id, partition))
            return (cq.min_offset, cq.next_offset) if cq else (0, 0)

    # -- maintenance -----------------------------------------------------------------

    def drop_queue(self, queue_id: int) -> None:
        """Delete every consume queue of ``queue_id``; its records stay in the commit
        log until retention removes them and are never indexed again. A later append
        to the same id starts again at offset 0. Writes a checkpoint."""
        with self._lock:
            for key in [k for k in self._queues if k[0] == queue_id]:
                self._queues.pop(key).delete()
            shutil.rmtree(self._cq_root / str(queue_id), ignore_errors=True)
            self._dropped[queue_id] = self._log.end_position
        self.flush()

    def enforce_retention(self) -> int:
        """Delete the oldest commit-log segments past ``retention_ms`` or beyond
        ``retention_bytes`` (never the active one); move consume queues' first offsets
        past the deleted data. Returns how many segments were deleted."""
        config = self._config
        with self._lock:
            log = self._log
            count = len(log.segment_starts())
            bounds = [log.first_timestamp(i + 1) for i in range(count - 1)] + [None]
            doomed = segments_to_delete(
                log.segment_sizes(),
                bounds,
                self._clock(),
                config.retention_ms,
                config.retention_bytes,
            )
            if doomed:
                log.delete_oldest(doomed)
                for cq in self._queues.values():
                    cq.advance_min(log.min_position)
                self._dropped = {q: p for q, p in self._dropped.items() if p > log.min_position}
        return doomed

    def size_bytes(self) -> int:
        """Bytes on disk: commit-log segments plus consume-queue files."""
        with self._lock:
            return self._log.size_bytes() + sum(q.size_bytes() for q in self._queues.values())

    def stats(self) -> StoreStats:
        """Counters for metrics (bytes and messages appended since open, flushes)."""
        flush = self._flusher.stats()
        return StoreStats(
            self._log.bytes_written,
            self._messages_written,
            self._log.end_position,
            flush.durable_position,
            flush.flush_count,
            flush.flush_seconds_total,
            flush.recent_flush_seconds,
        )

    @property
    def durable_position(self) -> int:
        """Every commit-log byte below this position has been fsynced."""
        return self._flusher.durable_position

    def flush(self) -> None:
        """fsync the commit log and consume queues, then write the checkpoint."""
        self._checkpoint()

    def _checkpoint(self) -> None:
        with self._checkpoint_lock:
            if self._closed:
                return
            with self._lock:
                checkpoint = Checkpoint(
                    self._log.end_position,
                    {key: cq.next_offset for key, cq in self._queues.items()},
                    dict(self._dropped),
                    self._config.segment_bytes,
                    self._last_timestamp,
                )
                queues = list(self._queues.values())
            self._flusher.flush()
            for cq in queues:
                cq.sync()
            write_file_atomically(self._checkpoint_path, checkpoint.encode())

    def close(self) -> None:
        """Flush, write a final checkpoint and close every file. Idempotent."""
        if self._closed:
            return
        self._checkpointer.close()
        self._checkpoint()
        self._flusher.close()
        with self._checkpoint_lock, self._lock:
            self._closed = True
            for cq in self._queues.values():
                cq.close()
            self._log.close()


def _verify(
    queue_id: int,
    partition: int,
    chosen: list[tuple[int, int, int]],
    blobs: list[tuple[int, bytes]],
) -> list[StoredMessage]:
    """Check each chosen record against its index entry and CRC; build the results.

    The hot path of every read: the header check is inlined (no `decode_header`
    object per record) because it runs once per message served."""
    out: list[StoredMessage] = []
    append = out.append
    unpack_from = RECORD_HEADER.unpack_from
    crc = crc32c.crc32c
    runs = iter(blobs)
    run_start, run_end, run = -1, -1, memoryview(b"")
    for offset, position, size in chosen:
        if not run_start <= position < run_end:
            run_start, data = next(runs)
            run = memoryview(data)
            run_end = run_start + len(run)
        at = position - run_start
        fields = unpack_from(run, at) if at + HEADER_SIZE <= len(run) else None
        count, header_size = 1, HEADER_SIZE
        if fields is not None and fields[2] == BATCH_MAGIC and size >= BATCH_HEADER_SIZE:
            count, header_size = _COUNT.unpack_from(run, at + HEADER_SIZE)[0], BATCH_HEADER_SIZE
        elif fields is not None and fields[2] != MAGIC:
            fields = None
        if (
            fields is None
            or fields[0] != size
            or fields[3] != queue_id
            or fields[4] != partition
            or fields[5] != offset
            or count < 1
            or at + size > len(run)
            or crc(run[at + 8 : at + size]) != fields[1]
        ):
            raise CorruptDataError(
                f"commit-log record at position {position} (queue {queue_id} partition "
                f"{partition} offset {offset}) fails its CRC or does not match its index"
            )
        append(
            StoredMessage(
                partition, offset, fields[6], bytes(run[at + header_size : at + size]), count
            )
        )
    return out
