"""The broker's key-value store: revisions, compare-and-set, TTL and watch.

Two layers:

* `KvState`, a pure state machine. A write is first *planned* (`plan_put`,
  `plan_cas`, `plan_delete`, `plan_expiry`, ...), which returns the `KvRecord`\\ s
  to log without changing anything; the caller logs them and then `apply`\\ s
  them. Replaying a log through `apply` rebuilds the same state, revisions included.
* `KvStore` (in `omconnect.broker.kvstore`-style shell below): the records in a
  `MessageStore` of their own, compacted by snapshot.

Revisions are store-wide and consecutive: every put or delete takes the next one.
The watch history therefore holds consecutive revisions from ``history_floor`` on,
and a watch from an older revision raises `CompactedError`.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

import msgpack

from omconnect.broker.api import KeyValue, KvEvent
from omconnect.errors import CompactedError, ConfigError, CorruptDataError

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
