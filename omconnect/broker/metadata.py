"""Namespaces and queues, and the integer queue ids the storage core knows them by.

The idea is RocketMQ's ``topics.json``: a small catalog, rewritten whole and
atomically (temp file, fsync, rename, fsync of the directory) on every change, so a
crash leaves either the old or the new catalog and never half of one.

Queue ids are never reused: a deleted queue's records may still sit in the commit
log until retention removes them, and a new queue must not inherit them. Ids below
`FIRST_USER_QUEUE_ID` are reserved for the broker's internal queues, which belong to
no namespace.

`Catalog` is the pure state; `MetadataStore` adds the file and a lock.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass
from pathlib import Path

from omconnect.broker.api import QueueInfo
from omconnect.broker.files import write_file_atomically
from omconnect.errors import AlreadyExistsError, ConfigError, CorruptDataError, NotFoundError

# Internal queues of the broker (one partition each). Never renumber: they are on disk.
SCHEDULE_QUEUE_ID = 1  # delayed messages waiting for their time
SCHEDULE_OP_QUEUE_ID = 2  # which delayed messages were delivered
TRANS_HALF_QUEUE_ID = 3  # transactional half messages
TRANS_OP_QUEUE_ID = 4  # commit / rollback decisions
FIRST_USER_QUEUE_ID = 64

MAX_NAME_LENGTH = 200
MAX_PARTITIONS = 1024
_NAME_RE = re.compile(r"[A-Za-z0-9._%-]+")
_FORMAT_VERSION = 1


def validate_name(kind: str, name: object) -> str:
    """Return ``name`` if it is a valid namespace/queue/group name, else raise
    `ConfigError` naming ``kind``. Valid: 1 to 200 characters of ``[A-Za-z0-9._%-]``."""
    if not isinstance(name, str) or not name:
        raise ConfigError(kind, "must be a non-empty string")
    if len(name) > MAX_NAME_LENGTH:
        raise ConfigError(kind, f"must be at most {MAX_NAME_LENGTH} characters, got {len(name)}")
    if not _NAME_RE.fullmatch(name):
        raise ConfigError(kind, f"{name!r} may only contain letters, digits and . _ % -")
    return name


def validate_namespace(namespace: object) -> str:
    """Like `validate_name`; names starting with ``%`` are reserved for the broker."""
    name = validate_name("namespace", namespace)
    if name.startswith("%"):
        raise ConfigError("namespace", f"{name!r}: names starting with % are reserved")
    return name


@dataclass(frozen=True, slots=True)
class QueueMeta:
    """One queue: its names, its storage id and its partition count."""

    namespace: str
    name: str
    queue_id: int
    partitions: int

    def info(self) -> QueueInfo:
        """The public view of this queue."""
        return QueueInfo(self.namespace, self.name, self.partitions)


class Catalog:
    """The namespaces and queues. Pure: no files, no locks. Methods that change
    something return whether they did, so the caller knows when to persist."""

    def __init__(self) -> None:
        self._namespaces: dict[str, dict[str, QueueMeta]] = {}
        self._by_id: dict[int, QueueMeta] = {}
        self.next_queue_id = FIRST_USER_QUEUE_ID

    def create_namespace(self, namespace: str) -> bool:
        validate_namespace(namespace)
        if namespace in self._namespaces:
            return False
        self._namespaces[namespace] = {}
        return True

    def delete_namespace(self, namespace: str) -> list[QueueMeta]:
        """Remove a namespace; return its queues (the caller drops their data).
        `NotFoundError` if it does not exist."""
        queues = self._namespaces.pop(namespace, None)
        if queues is None:
            raise NotFoundError(f"namespace {namespace!r} does not exist")
        for meta in queues.values():
            del self._by_id[meta.queue_id]
        return sorted(queues.values(), key=lambda q: q.name)

    def namespaces(self) -> list[str]:
        return sorted(self._namespaces)

    def has_namespace(self, namespace: str) -> bool:
        return namespace in self._namespaces

    def create_queue(self, namespace: str, queue: str, partitions: int) -> tuple[QueueMeta, bool]:
        """Create or grow a queue (creating the namespace too); return it and whether
        anything changed. Fewer partitions than it has is an `AlreadyExistsError`."""
        validate_namespace(namespace)
        validate_name("queue", queue)
        if isinstance(partitions, bool) or not isinstance(partitions, int):
            raise ConfigError("partitions", "must be an integer")
        if not 1 <= partitions <= MAX_PARTITIONS:
            raise ConfigError("partitions", f"must be between 1 and {MAX_PARTITIONS}")
        queues = self._namespaces.setdefault(namespace, {})
        existing = queues.get(queue)
        if existing is not None:
            if partitions < existing.partitions:
                raise AlreadyExistsError(
                    f"queue {namespace}/{queue} exists with {existing.partitions} partitions; "
                    f"partitions cannot be removed (asked for {partitions})"
                )
            if partitions == existing.partitions:
                return existing, False
            meta = QueueMeta(namespace, queue, existing.queue_id, partitions)
        else:
            meta = QueueMeta(namespace, queue, self.next_queue_id, partitions)
            self.next_queue_id += 1
        queues[queue] = meta
        self._by_id[meta.queue_id] = meta
        return meta, True

    def delete_queue(self, namespace: str, queue: str) -> QueueMeta:
        """Remove a queue and return it; `NotFoundError` if it does not exist."""
        meta = self.queue(namespace, queue)
        del self._namespaces[namespace][queue]
        del self._by_id[meta.queue_id]
        return meta

    def queue(self, namespace: str, queue: str) -> QueueMeta:
        """One queue; `NotFoundError` naming what is missing."""
        queues = self._namespaces.get(namespace)
        if queues is None:
            raise NotFoundError(f"namespace {namespace!r} does not exist")
        meta = queues.get(queue)
        if meta is None:
            raise NotFoundError(f"queue {queue!r} does not exist in namespace {namespace!r}")
        return meta

    def queues(self, namespace: str) -> list[QueueMeta]:
        """The namespace's queues sorted by name; `NotFoundError` if it does not exist."""
        queues = self._namespaces.get(namespace)
        if queues is None:
            raise NotFoundError(f"namespace {namespace!r} does not exist")
        return [queues[name] for name in sorted(queues)]

    def all_queues(self) -> list[QueueMeta]:
        return sorted(self._by_id.values(), key=lambda q: (q.namespace, q.name))

    def by_id(self, queue_id: int) -> QueueMeta | None:
        """The live queue with this id, or None (never existed, or deleted)."""
        return self._by_id.get(queue_id)

    # -- serialization -------------------------------------------------------------
    def to_json(self) -> dict[str, object]:
        return {
            "version": _FORMAT_VERSION,
            "next_queue_id": self.next_queue_id,
            "namespaces": {
                ns: {
                    q.name: {"id": q.queue_id, "partitions": q.partitions} for q in queues.values()
                }
                for ns, queues in self._namespaces.items()
            },
        }

    @classmethod
    def from_json(cls, data: object) -> Catalog:
        """Rebuild a catalog; `CorruptDataError` if ``data`` is not one `to_json` wrote."""
        try:
            if not isinstance(data, dict) or data.get("version") != _FORMAT_VERSION:
                raise CorruptDataError("metadata: unknown format version")
            catalog = cls()
            catalog.next_queue_id = int(data["next_queue_id"])
            for ns, queues in data["namespaces"].items():
                catalog._namespaces[ns] = {}
                for name, entry in queues.items():
                    meta = QueueMeta(ns, name, int(entry["id"]), int(entry["partitions"]))
                    catalog._namespaces[ns][name] = meta
                    catalog._by_id[meta.queue_id] = meta
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise CorruptDataError(f"metadata does not parse: {exc!r}") from exc
        return catalog


class MetadataStore:
    """A `Catalog` kept in ``<data_dir>/metadata.json``, rewritten on every change.
    Thread-safe: every method holds one lock."""

    FILE_NAME = "metadata.json"

    def __init__(self, data_dir: Path) -> None:
        self._path = data_dir / self.FILE_NAME
        self._lock = threading.Lock()
        if self._path.exists():
            try:
                data = json.loads(self._path.read_bytes())
            except ValueError as exc:
                raise CorruptDataError(f"{self._path} is not valid JSON: {exc}") from exc
            self._catalog = Catalog.from_json(data)
        else:
            self._catalog = Catalog()

    def _save(self) -> None:
        body = json.dumps(self._catalog.to_json(), indent=1, sort_keys=True).encode()
        write_file_atomically(self._path, body)

    def create_namespace(self, namespace: str) -> None:
        with self._lock:
            if self._catalog.create_namespace(namespace):
                self._save()

    def delete_namespace(self, namespace: str) -> list[QueueMeta]:
        with self._lock:
            removed = self._catalog.delete_namespace(namespace)
            self._save()
            return removed

    def create_queue(self, namespace: str, queue: str, partitions: int) -> QueueMeta:
        with self._lock:
            meta, changed = self._catalog.create_queue(namespace, queue, partitions)
            if changed:
                self._save()
            return meta

    def delete_queue(self, namespace: str, queue: str) -> QueueMeta:
        with self._lock:
            meta = self._catalog.delete_queue(namespace, queue)
            self._save()
            return meta

    def namespaces(self) -> list[str]:
        with self._lock:
            return self._catalog.namespaces()

    def require_namespace(self, namespace: str) -> None:
        """`NotFoundError` unless ``namespace`` exists."""
        with self._lock:
            if not self._catalog.has_namespace(namespace):
                raise NotFoundError(f"namespace {namespace!r} does not exist")

    def queue(self, namespace: str, queue: str) -> QueueMeta:
        with self._lock:
            return self._catalog.queue(namespace, queue)

    def queues(self, namespace: str) -> list[QueueMeta]:
        with self._lock:
            return self._catalog.queues(namespace)

    def all_queues(self) -> list[QueueMeta]:
        with self._lock:
            return self._catalog.all_queues()

    def by_id(self, queue_id: int) -> QueueMeta | None:
        with self._lock:
            return self._catalog.by_id(queue_id)
