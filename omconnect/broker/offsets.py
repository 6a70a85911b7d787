"""Consumer-group committed offsets, and the progress of the broker's internal relays.

Committed offsets live in ``<data_dir>/consumer_offsets.json`` (RocketMQ's
``consumerOffset.json``): an in-memory table, rewritten whole and atomically on a
short interval and at close. Why a file and not KV records: offsets are written
far more often than anything else (every consumer, every few hundred ms), are
last-writer-wins and need neither revisions, CAS nor watch; as KV records every
commit would add a record and feed compaction. The price is that a crash loses the
commits of the last interval, so those messages are delivered again: at-least-once,
which consumers must handle anyway.

`ProgressTracker` is the pure rule the delayed-delivery and transaction relays use to
know which offsets of their internal queues may be saved as a restart point.
"""

from __future__ import annotations

import heapq
import json
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from omconnect.broker.files import write_file_atomically
from omconnect.errors import ConfigError, CorruptDataError

_FORMAT_VERSION = 1
GroupKey = tuple[str, str, str]  # (namespace, group, queue)


def validate_offsets(offsets: object) -> dict[int, int]:
    """Return ``offsets`` if it maps partitions (>= 0) to offsets (>= 0), else `ConfigError`."""
    if not isinstance(offsets, dict):
        raise ConfigError("offsets", "must be a mapping of partition to offset")
    for partition, offset in offsets.items():
        for what, value in (("partition", partition), ("offset", offset)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigError("offsets", f"{what} {value!r} must be an integer >= 0")
    return offsets


class OffsetTable:
    """Committed offsets per (namespace, group, queue, partition). Pure, not thread-safe.
    ``version`` grows with every change, so a persister knows when it is behind."""

    def __init__(self) -> None:
        self._groups: dict[GroupKey, dict[int, int]] = {}
        self.version = 0

    def commit(self, namespace: str, group: str, queue: str, offsets: dict[int, int]) -> None:
        """Set the given partitions' offsets; other partitions keep theirs."""
        validate_offsets(offsets)
        if offsets:
            self._groups.setdefault((namespace, group, queue), {}).update(offsets)
            self.version += 1

    def committed(self, namespace: str, group: str, queue: str) -> dict[int, int]:
        """A copy of the group's offsets for the queue ({} if none)."""
        return dict(self._groups.get((namespace, group, queue), {}))

    def drop_queue(self, namespace: str, queue: str) -> None:
        """Forget every group's offsets for a queue (it was deleted)."""
        self._drop(lambda key: key[0] == namespace and key[2] == queue)

    def drop_namespace(self, namespace: str) -> None:
        """Forget every offset in a namespace."""
        self._drop(lambda key: key[0] == namespace)

    def _drop(self, match: Callable[[GroupKey], bool]) -> None:
        doomed = [key for key in self._groups if match(key)]
        for key in doomed:
            del self._groups[key]
        if doomed:
            self.version += 1

    def items(self) -> Iterator[tuple[GroupKey, dict[int, int]]]:
        """Every (namespace, group, queue) with a copy of its offsets."""
        for key, offsets in list(self._groups.items()):
            yield key, dict(offsets)

    def to_json(self) -> dict[str, object]:
        return {
            "version": _FORMAT_VERSION,
            "offsets": [
                {
                    "namespace": ns,
                    "group": group,
                    "queue": queue,
                    "partitions": {str(p): o for p, o in sorted(offsets.items())},
                }
                for (ns, group, queue), offsets in sorted(self._groups.items())
            ],
        }

    @classmethod
    def from_json(cls, data: object) -> OffsetTable:
        """Rebuild a table; `CorruptDataError` if ``data`` is not one `to_json` wrote."""
        table = cls()
        try:
            if not isinstance(data, dict) or data.get("version") != _FORMAT_VERSION:
                raise CorruptDataError("consumer offsets: unknown format version")
            for entry in data["offsets"]:
                key = (str(entry["namespace"]), str(entry["group"]), str(entry["queue"]))
                table._groups[key] = {int(p): int(o) for p, o in entry["partitions"].items()}
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise CorruptDataError(f"consumer offsets do not parse: {exc!r}") from exc
        return table


class OffsetStore:
    """An `OffsetTable` saved in ``<data_dir>/consumer_offsets.json``. Thread-safe.
    Changes are in memory until `persist` (the broker calls it on an interval and at
    close)."""

    FILE_NAME = "consumer_offsets.json"

    def __init__(self, data_dir: Path) -> None:
        self._path = data_dir / self.FILE_NAME
        self._lock = threading.Lock()
        self._persist_lock = threading.Lock()
        if self._path.exists():
            try:
                data = json.loads(self._path.read_bytes())
            except ValueError as exc:
                raise CorruptDataError(f"{self._path} is not valid JSON: {exc}") from exc
            self._table = OffsetTable.from_json(data)
        else:
            self._table = OffsetTable()
        self._persisted_version = self._table.version

    def commit(self, namespace: str, group: str, queue: str, offsets: dict[int, int]) -> None:
        with self._lock:
            self._table.commit(namespace, group, queue, offsets)

    def committed(self, namespace: str, group: str, queue: str) -> dict[int, int]:
        with self._lock:
            return self._table.committed(namespace, group, queue)

    def drop_queue(self, namespace: str, queue: str) -> None:
        with self._lock:
            self._table.drop_queue(namespace, queue)

    def drop_namespace(self, namespace: str) -> None:
        with self._lock:
            self._table.drop_namespace(namespace)

    def items(self) -> list[tuple[GroupKey, dict[int, int]]]:
        with self._lock:
            return list(self._table.items())

    def persist(self) -> bool:
        """Write the table if it changed since the last write; return whether it wrote."""
        with self._persist_lock:
            with self._lock:
                version = self._table.version
                if version == self._persisted_version:
                    return False
                body = json.dumps(self._table.to_json(), separators=(",", ":")).encode()
            write_file_atomically(self._path, body)
            self._persisted_version = version
            return True


class ProgressTracker:
    """Which offsets of a relay's source and op queues are safe restart points.

    A relay (delayed delivery, transactions) reads entries from a *source* queue
    (schedule, half messages) and settles them later, in any order, by writing an
    *op* record to an op queue that names the source offsets it settled. After a
    restart the relay must re-read every source entry that is not settled yet, and
    every op record that settles an entry it re-reads. So the restart point is:

    * source progress: the lowest pending source offset (all below are settled), or,
      with nothing pending, the end of what was seen;
    * op progress: the lowest op offset whose op settled an offset >= source progress
      (earlier ops only settle entries that will not be re-read), or the op end.

    Saving ``checkpoint()`` (both together) is always safe; an older checkpoint only
    means re-reading more. Pure, not thread-safe.
    """

    def __init__(self, source_start: int = 0, op_start: int = 0) -> None:
        self._pending: set[int] = set()
        self._heap: list[int] = []
        self._source_end = source_start
        self._op_end = op_start
        self._ops: deque[tuple[int, int]] = deque()  # (op offset, highest source offset settled)

    def add(self, source_offset: int) -> None:
        """A source entry is pending (seen, not settled)."""
        if source_offset not in self._pending:
            self._pending.add(source_offset)
            heapq.heappush(self._heap, source_offset)
        self._source_end = max(self._source_end, source_offset + 1)

    def advance_source(self, next_offset: int) -> None:
        """Every source offset below ``next_offset`` has been seen."""
        self._source_end = max(self._source_end, next_offset)

    def settle(self, op_offset: int, source_offsets: Iterable[int]) -> None:
        """The op record at ``op_offset`` settled these source entries."""
        highest = -1
        for offset in source_offsets:
            self._pending.discard(offset)
            highest = max(highest, offset)
        self._ops.append((op_offset, highest))
        self._op_end = max(self._op_end, op_offset + 1)

    def is_pending(self, source_offset: int) -> bool:
        return source_offset in self._pending

    @property
    def pending_count(self) -> int:
        return len(self._pending)

    def checkpoint(self) -> tuple[int, int]:
        """(source progress, op progress) to save as the restart point."""
        heap = self._heap
        while heap and heap[0] not in self._pending:
            heapq.heappop(heap)
        source = heap[0] if heap else self._source_end
        ops = self._ops
        while ops and ops[0][1] < source:
            ops.popleft()
        op = ops[0][0] if ops else self._op_end
        return source, op


class SavedProgress:
    """A relay's restart point — a `ProgressTracker` checkpoint of (source queue,
    op queue) — kept in the offset store under ``key`` as partitions 0 and 1, and
    persisted with it. Thread-safe."""

    def __init__(self, offsets: OffsetStore, key: tuple[str, str, str]) -> None:
        self._offsets = offsets
        self._key = key
        self._lock = threading.Lock()
        self._saved = (-1, -1)

    def load(self) -> tuple[int, int]:
        """The saved (source start, op start); (0, 0) if nothing was saved."""
        saved = self._offsets.committed(*self._key)
        return saved.get(0, 0), saved.get(1, 0)

    def save(self, checkpoint: tuple[int, int]) -> bool:
        """Record ``checkpoint``; return whether it moved since the last call."""
        with self._lock:
            if checkpoint == self._saved:
                return False
            self._saved = checkpoint
        self._offsets.commit(*self._key, {0: checkpoint[0], 1: checkpoint[1]})
        return True
