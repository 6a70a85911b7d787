"""The broker's key-value store: revisions, compare-and-set, TTL and watch.

Two layers:

* `KvState`, a pure state machine. A write is first *planned* (`plan_put`,
  `plan_cas`, `plan_delete`, `plan_expiry`, ...), which returns the `KvRecord`\\ s
  to log without changing anything; the caller logs them and then `apply`\\ s
  them. Replaying a log through `apply` rebuilds the same state, revisions included.
* `KvStore`: the shell. Records go to a `MessageStore` of their own (the storage
  core's record format, CRC and recovery; no second format), one queue, one
  partition. Replaying it on open rebuilds the state. When dead records outnumber
  live keys by the configured factor, the live keys are written as a snapshot into a
  fresh store directory (a new *generation*), fsynced, and a ``CURRENT`` file naming
  it is replaced atomically; then the old generation is deleted. A crash at any
  point leaves ``CURRENT`` naming a complete generation.

Revisions are store-wide and consecutive: every put or delete takes the next one.
The watch history therefore holds consecutive revisions from ``history_floor`` on,
and a watch from an older revision raises `CompactedError`.
"""

from __future__ import annotations

import heapq
import logging
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import msgpack

from omconnect.broker.api import KeyValue, KvEvent
from omconnect.broker.files import write_file_atomically
from omconnect.broker.store import MessageStore, StoreConfig
from omconnect.errors import CompactedError, ConfigError, CorruptDataError, FatalError

log = logging.getLogger(__name__)

PUT = 1
DELETE = 2
SNAPSHOT = 3  # first record of a compacted log: the revision at snapshot time
ENTRY = 4  # a live key inside a snapshot (no event, keeps its own revisions)

MAX_KEY_LENGTH = 1024
DEFAULT_WATCH_LIMIT = 1000


@dataclass(frozen=True, slots=True)
class KvRecord:
    """One logged operation. ``revision`` is the store revision it creates (`PUT`,
    `DELETE`), the store revision at snapshot time (`SNAPSHOT`), or the key's last
    write (`ENTRY`, with ``create_revision``)."""

    kind: int
    revision: int
    namespace: str = ""
    key: str = ""
    value: bytes = b""
    expires_at: int = 0
    create_revision: int = 0

    def encode(self) -> bytes:
        """The record as a commit-log payload (msgpack; no pickle)."""
        return msgpack.packb(
            [
                self.kind,
                self.revision,
                self.namespace,
                self.key,
                self.value,
                self.expires_at,
                self.create_revision,
            ],
            use_bin_type=True,
        )

    @classmethod
    def decode(cls, payload: bytes) -> KvRecord:
        """Inverse of `encode`; `CorruptDataError` if it does not parse."""
        try:
            kind, revision, namespace, key, value, expires_at, create_revision = msgpack.unpackb(
                payload, use_list=True
            )
            if kind not in (PUT, DELETE, SNAPSHOT, ENTRY):
                raise ValueError(f"unknown record kind {kind}")
            return cls(
                int(kind),
                int(revision),
                str(namespace),
                str(key),
                bytes(value),
                int(expires_at),
                int(create_revision),
            )
        except (ValueError, TypeError, msgpack.UnpackException) as exc:
            raise CorruptDataError(f"kv record does not parse: {exc}") from exc


def validate_key(key: object) -> str:
    """Return ``key`` if it is a non-empty string of at most 1024 characters."""
    if not isinstance(key, str) or not key:
        raise ConfigError("key", "must be a non-empty string")
    if len(key) > MAX_KEY_LENGTH:
        raise ConfigError("key", f"must be at most {MAX_KEY_LENGTH} characters")
    return key


def should_compact(log_records: int, live_keys: int, factor: float, min_dead: int) -> bool:
    """True when the log's dead records (all but the live keys and one snapshot
    header) number at least ``min_dead`` and more than ``factor`` times the live keys."""
    dead = log_records - live_keys - 1
    return dead >= min_dead and dead > factor * live_keys


class KvState:
    """Keys of all namespaces, their revisions, TTLs and the recent change history.

    Pure and not thread-safe. Planned records must be applied in the order returned
    before anything else is planned.
    """

    def __init__(self, history_limit: int = 10_000) -> None:
        if history_limit < 1:
            raise ConfigError("kv_history_limit", "must be at least 1")
        self.revision = 0
        self._entries: dict[tuple[str, str], KeyValue] = {}
        self._history: list[tuple[str, KvEvent]] = []
        self.history_floor = 1  # every revision >= this is in the history
        self._history_limit = history_limit
        self._expiry: list[tuple[int, int, str, str]] = []  # (expires_at, revision, ns, key)

    # -- reads -----------------------------------------------------------------------
    def get(self, namespace: str, key: str) -> KeyValue | None:
        return self._entries.get((namespace, key))

    def list_prefix(self, namespace: str, prefix: str) -> list[KeyValue]:
        """Live keys of the namespace starting with ``prefix``, sorted by key."""
        found = [
            kv
            for (ns, key), kv in self._entries.items()
            if ns == namespace and key.startswith(prefix)
        ]
        found.sort(key=lambda kv: kv.key)
        return found

    def __len__(self) -> int:
        return len(self._entries)

    def namespace_keys(self, namespace: str) -> list[str]:
        return sorted(key for ns, key in self._entries if ns == namespace)

    # -- planning writes -------------------------------------------------------------
    def plan_put(self, namespace: str, key: str, value: bytes, expires_at: int = 0) -> KvRecord:
        """The record that sets ``key`` (TTL until ``expires_at`` epoch ms if > 0)."""
        return KvRecord(
            PUT, self.revision + 1, namespace, validate_key(key), bytes(value), expires_at
        )

    def plan_cas(
        self, namespace: str, key: str, value: bytes, expected_revision: int, expires_at: int = 0
    ) -> KvRecord | None:
        """`plan_put` if the key's revision is ``expected_revision`` (0: it must not
        exist), else None."""
        current = self._entries.get((namespace, validate_key(key)))
        current_revision = current.revision if current is not None else 0
        if current_revision != expected_revision:
            return None
        return self.plan_put(namespace, key, value, expires_at)

    def plan_delete(self, namespace: str, key: str, expected_revision: int = -1) -> KvRecord | None:
        """The record that deletes ``key``, or None if it does not exist or (when
        ``expected_revision`` is not -1) is at another revision."""
        current = self._entries.get((namespace, key))
        if current is None or expected_revision not in (-1, current.revision):
            return None
        return KvRecord(DELETE, self.revision + 1, namespace, key)

    def plan_delete_namespace(self, namespace: str) -> list[KvRecord]:
        """Records deleting every key of a namespace, in key order."""
        keys = self.namespace_keys(namespace)
        return [
            KvRecord(DELETE, self.revision + 1 + i, namespace, key) for i, key in enumerate(keys)
        ]

    def plan_expiry(self, now: int) -> list[KvRecord]:
        """Records deleting every key whose TTL ran out (``expires_at`` <= ``now``),
        earliest deadline first."""
        heap = self._expiry
        due: list[tuple[int, int, str, str]] = []
        while heap and heap[0][0] <= now:
            item = heapq.heappop(heap)
            current = self._entries.get((item[2], item[3]))
            if current is not None and current.revision == item[1]:
                due.append(item)
        for item in due:  # keep them until the deletes are applied: planning changes nothing
            heapq.heappush(heap, item)
        return [
            KvRecord(DELETE, self.revision + 1 + i, ns, key)
            for i, (_, _, ns, key) in enumerate(due)
        ]

    def next_expiry(self) -> int | None:
        """The earliest ``expires_at`` that may still be pending (or None)."""
        return self._expiry[0][0] if self._expiry else None

    # -- applying --------------------------------------------------------------------
    def apply(self, record: KvRecord) -> None:
        """Apply one logged record. `CorruptDataError` if a put/delete does not carry
        the next revision (a log out of order)."""
        if record.kind == SNAPSHOT:
            self._entries.clear()
            self._expiry.clear()
            self._history.clear()
            self.revision = record.revision
            self.history_floor = record.revision + 1
            return
        if record.kind == ENTRY:
            self._set(
                KeyValue(
                    record.key,
                    record.value,
                    record.revision,
                    record.create_revision,
                    record.expires_at,
                ),
                record.namespace,
            )
            return
        if record.revision != self.revision + 1:
            raise CorruptDataError(
                f"kv log out of order: revision {record.revision} after {self.revision}"
            )
        self.revision = record.revision
        slot = (record.namespace, record.key)
        if record.kind == PUT:
            previous = self._entries.get(slot)
            created = previous.create_revision if previous is not None else record.revision
            self._set(
                KeyValue(record.key, record.value, record.revision, created, record.expires_at),
                record.namespace,
            )
            event = KvEvent("put", record.key, record.value, record.revision)
        else:
            self._entries.pop(slot, None)
            event = KvEvent("delete", record.key, b"", record.revision)
        self._history.append((record.namespace, event))
        if len(self._history) > 2 * self._history_limit:  # trim in batches: amortized O(1)
            drop = len(self._history) - self._history_limit
            del self._history[:drop]
            self.history_floor += drop

    def _set(self, kv: KeyValue, namespace: str) -> None:
        self._entries[(namespace, kv.key)] = kv
        if kv.expires_at > 0:
            heapq.heappush(self._expiry, (kv.expires_at, kv.revision, namespace, kv.key))

    # -- watch -----------------------------------------------------------------------
    def watch(
        self, namespace: str, prefix: str, from_revision: int, limit: int = DEFAULT_WATCH_LIMIT
    ) -> tuple[list[KvEvent], int]:
        """Events of ``namespace`` under ``prefix`` with revision >= ``from_revision``
        (at most ``limit``), and the revision to watch from next. ``from_revision``
        <= 0 means from the next write on. `CompactedError` if revisions at or after
        ``from_revision`` have left the history."""
        if from_revision <= 0:
            return [], self.revision + 1
        if from_revision < self.history_floor:
            raise CompactedError(
                f"kv history starts at revision {self.history_floor}; "
                f"revision {from_revision} was compacted: list the keys again"
            )
        events: list[KvEvent] = []
        start = from_revision - self.history_floor
        for ns, event in self._history[start:]:
            if ns == namespace and event.key.startswith(prefix):
                events.append(event)
                if len(events) >= limit:
                    return events, event.revision + 1
        return events, max(from_revision, self.revision + 1)

    # -- compaction ------------------------------------------------------------------
    def snapshot(self) -> list[KvRecord]:
        """Records that rebuild the live state (not the history) when replayed."""
        records = [KvRecord(SNAPSHOT, self.revision)]
        for (ns, _), kv in sorted(self._entries.items()):
            records.append(
                KvRecord(
                    ENTRY, kv.revision, ns, kv.key, kv.value, kv.expires_at, kv.create_revision
                )
            )
        return records


# -- the durable shell -----------------------------------------------------------------

_LOG_QUEUE = 0
_CURRENT = "CURRENT"
_REPLAY_BATCH = 1024


def _generation_name(number: int) -> str:
    return f"gen-{number:08d}"


class KvStore:
    """The key-value store of every namespace, durable in ``directory``. Thread-safe.

    Writes are logged before they are applied and, in sync flush mode, fsynced before
    they return. TTLs run on ``clock``: every call first deletes the keys whose TTL
    ran out (logged like any delete, so watchers see them); `expire` does it alone.
    Namespace existence is the caller's business.
    """

    def __init__(
        self,
        directory: Path,
        store_config: StoreConfig,
        clock: Callable[[], int],
        history_limit: int = 10_000,
        compaction_factor: float = 2.0,
        compaction_min_records: int = 1000,
        max_value_bytes: int = 1 << 20,
    ) -> None:
        self._dir = directory
        self._config = store_config
        self._clock = clock
        self._history_limit = history_limit
        self._factor = compaction_factor
        self._min_dead = compaction_min_records
        self._max_value = max_value_bytes
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._closed = False
        directory.mkdir(parents=True, exist_ok=True)
        current = directory / _CURRENT
        if current.exists():
            name = current.read_text().strip()
            if not name.startswith("gen-") or not name[4:].isdigit():
                raise CorruptDataError(f"{current} does not name a kv generation: {name!r}")
            self._generation = int(name[4:])
        else:
            self._generation = 1
            write_file_atomically(current, _generation_name(1).encode())
        for leftover in directory.glob("gen-*"):  # an interrupted compaction's
            if leftover.name != _generation_name(self._generation):
                shutil.rmtree(leftover, ignore_errors=True)
        self._store = MessageStore(self._gen_dir(self._generation), store_config, clock)
        self._state = KvState(history_limit)
        self._records = 0
        self._replay()

    def _gen_dir(self, number: int) -> Path:
        return self._dir / _generation_name(number)

    def _replay(self) -> None:
        offset = self._store.offset_range(_LOG_QUEUE, 0)[0]
        while True:
            batch = self._store.read(_LOG_QUEUE, 0, offset, _REPLAY_BATCH, 8 << 20)
            if not batch:
                break
            for stored in batch:
                self._state.apply(KvRecord.decode(stored.encoded))
            self._records += len(batch)
            offset = batch[-1].offset + 1
        log.info(
            "kv store replayed %d records: %d keys at revision %d",
            self._records,
            len(self._state),
            self._state.revision,
        )

    # -- reads -----------------------------------------------------------------------
    def get(self, namespace: str, key: str) -> KeyValue | None:
        """The key's value, or None (a key whose TTL ran out is gone)."""
        with self._lock:
            self._expire_locked()
            return self._state.get(namespace, key)

    def list_prefix(self, namespace: str, prefix: str) -> list[KeyValue]:
        """Live keys starting with ``prefix``, sorted by key."""
        with self._lock:
            self._expire_locked()
            return self._state.list_prefix(namespace, prefix)

    def key_count(self) -> int:
        with self._lock:
            return len(self._state)

    @property
    def revision(self) -> int:
        with self._lock:
            return self._state.revision

    def watch(
        self, namespace: str, prefix: str, from_revision: int, max_wait_ms: int
    ) -> tuple[list[KvEvent], int]:
        """`KvState.watch`, waiting up to ``max_wait_ms`` for a matching event. A
        ``from_revision`` <= 0 waits for changes after the current revision."""
        deadline = time.monotonic() + max(0, max_wait_ms) / 1000
        with self._lock:
            self._expire_locked()
            if from_revision <= 0:
                from_revision = self._state.revision + 1
            while True:
                events, next_revision = self._state.watch(namespace, prefix, from_revision)
                remaining = deadline - time.monotonic()
                if events or remaining <= 0 or self._closed:
                    return events, next_revision
                from_revision = next_revision
                self._changed.wait(remaining)

    # -- writes ----------------------------------------------------------------------
    def put(self, namespace: str, key: str, value: bytes, ttl_ms: int = 0) -> int:
        """Set a key; return its new revision."""
        expires_at = self._expires_at(ttl_ms)
        self._check_value(value)
        with self._lock:
            self._expire_locked()
            record = self._state.plan_put(namespace, key, value, expires_at)
            store, position = self._write([record])
        store.wait_durable(position)
        return record.revision

    def cas(
        self, namespace: str, key: str, value: bytes, expected_revision: int, ttl_ms: int = 0
    ) -> int | None:
        """Set a key only at ``expected_revision`` (0: absent); new revision or None."""
        expires_at = self._expires_at(ttl_ms)
        self._check_value(value)
        if isinstance(expected_revision, bool) or not isinstance(expected_revision, int):
            raise ConfigError("expected_revision", "must be an integer")
        with self._lock:
            self._expire_locked()
            record = self._state.plan_cas(namespace, key, value, expected_revision, expires_at)
            if record is None:
                return None
            store, position = self._write([record])
        store.wait_durable(position)
        return record.revision

    def delete(self, namespace: str, key: str, expected_revision: int = -1) -> bool:
        """Delete a key (only at ``expected_revision`` unless -1); True if deleted."""
        validate_key(key)
        with self._lock:
            self._expire_locked()
            record = self._state.plan_delete(namespace, key, expected_revision)
            if record is None:
                return False
            store, position = self._write([record])
        store.wait_durable(position)
        return True

    def delete_namespace(self, namespace: str) -> int:
        """Delete every key of a namespace; return how many."""
        with self._lock:
            records = self._state.plan_delete_namespace(namespace)
            if not records:
                return 0
            store, position = self._write(records)
        store.wait_durable(position)
        return len(records)

    def expire(self) -> int:
        """Delete the keys whose TTL ran out; return how many (the broker calls this
        every ~100 ms so watchers hear of expiries without anyone reading)."""
        with self._lock:
            return self._expire_locked()

    def _expire_locked(self) -> int:
        if self._state.next_expiry() is None or self._closed:
            return 0
        records = self._state.plan_expiry(self._clock())
        if records:
            self._write(records)  # not waited on: a lost expiry is redone after restart
        return len(records)

    def _expires_at(self, ttl_ms: int) -> int:
        if isinstance(ttl_ms, bool) or not isinstance(ttl_ms, int) or ttl_ms < 0:
            raise ConfigError("ttl_ms", "must be an integer >= 0")
        return self._clock() + ttl_ms if ttl_ms else 0

    def _check_value(self, value: bytes) -> None:
        if not isinstance(value, bytes | bytearray | memoryview):
            raise ConfigError("value", "must be bytes")
        if len(value) > self._max_value:
            raise ConfigError("value", f"{len(value)} bytes exceeds the limit of {self._max_value}")

    def _write(self, records: list[KvRecord]) -> tuple[MessageStore, int]:
        """Log then apply ``records`` (lock held); return the store and position to
        wait on for durability."""
        if self._closed:
            raise FatalError("kv store is closed")
        store = self._store
        result = store.append(_LOG_QUEUE, 0, [r.encode() for r in records])
        for record in records:
            self._state.apply(record)
        self._records += len(records)
        self._changed.notify_all()
        if should_compact(self._records, len(self._state), self._factor, self._min_dead):
            self._compact()
        return store, result.end_position

    # -- compaction ------------------------------------------------------------------
    def compact(self) -> None:
        """Rewrite the log as a snapshot of the live keys now."""
        with self._lock:
            self._compact()

    def _compact(self) -> None:
        number = self._generation + 1
        new_dir = self._gen_dir(number)
        shutil.rmtree(new_dir, ignore_errors=True)
        snapshot = self._state.snapshot()
        fresh = MessageStore(new_dir, self._config, self._clock)
        try:
            batch: list[bytes] = []
            size = 0
            for record in snapshot:
                payload = record.encode()
                if batch and size + len(payload) > 1 << 20:
                    fresh.append(_LOG_QUEUE, 0, batch)
                    batch, size = [], 0
                batch.append(payload)
                size += len(payload)
            fresh.append(_LOG_QUEUE, 0, batch)
            fresh.flush()
        except BaseException:
            fresh.close()
            shutil.rmtree(new_dir, ignore_errors=True)
            raise
        write_file_atomically(self._dir / _CURRENT, _generation_name(number).encode())
        old, old_dir = self._store, self._gen_dir(self._generation)
        self._store, self._generation, self._records = fresh, number, len(snapshot)
        old.close()
        shutil.rmtree(old_dir, ignore_errors=True)
        log.info("kv store compacted to %d keys (generation %d)", len(self._state), number)

    def flush(self) -> None:
        with self._lock:
            self._store.flush()

    def close(self) -> None:
        """Flush and close; wakes watchers. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._changed.notify_all()
            self._store.close()
