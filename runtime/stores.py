"""The runtime's typed stores over the access point's key-value store.

Workers of one group share connector configs, task configs, source offsets and
statuses through the KV store (`omconnect.access_point.KeyValueStore`, injected).
Every value is canonical JSON (sorted keys, no spaces), so equal content gives equal
bytes. Key layout, all under ``connect/<group>/``::

    configs/<connector>               {"config": {...}, "target_state": "RUNNING"}
    tasks/<connector>                 {"generation": 3, "tasks": [{...}, ...]}
    offsets/<connector>/<partition>   {"partition": {...}, "offset": {...}}
    status/connectors/<connector>     {"state": "RUNNING", "worker_id": "w1",
                                       "generation": 7, "trace": ""}
    status/tasks/<connector>/<task>   the same, per task number

``<partition>`` is the canonical JSON of the source partition map (a key longer than
the store allows is refused with `ConfigError`). Writes two
workers could race on use compare-and-set: connector and task configs take an
expected revision, and a status write is fenced by its generation, so a worker of an
older generation never overwrites a newer generation's status. Connector and group
names are non-empty and contain no ``/`` or control characters.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from omconnect.access_point import KeyValueStore
from omconnect.connect.records import (
    PartitionKey,
    SourceOffset,
    SourcePartition,
    check_source_map,
    partition_key,
)
from omconnect.errors import ConfigError, CorruptDataError, NotFoundError, RetriableError

MAX_CAS_ATTEMPTS = 64  # each failed attempt means another writer made progress


class TargetState(enum.StrEnum):
    """What the user asked a connector to be."""

    RUNNING = "RUNNING"
    PAUSED = "PAUSED"
    STOPPED = "STOPPED"


class State(enum.StrEnum):
    """What a connector or task is, as its worker reports it."""

    UNASSIGNED = "UNASSIGNED"
    RUNNING = "RUNNING"
    PAUSED = "PAUSED"
    STOPPED = "STOPPED"
    FAILED = "FAILED"
    RESTARTING = "RESTARTING"


@dataclass(frozen=True, slots=True)
class ConnectorConfigRecord:
    """A connector's config as stored; ``revision`` is the KV revision it was read at."""

    name: str
    config: Mapping[str, Any]
    target_state: TargetState = TargetState.RUNNING
    revision: int = 0


@dataclass(frozen=True, slots=True)
class TaskConfigsRecord:
    """A connector's task configs; ``generation`` grows by one with each write."""

    connector: str
    generation: int
    tasks: tuple[Mapping[str, Any], ...]
    revision: int = 0


@dataclass(frozen=True, slots=True)
class Status:
    """A connector's or task's state, the worker reporting it, the generation of the
    assignment it runs under, and the stack trace of a failure."""

    state: State
    worker_id: str
    generation: int
    trace: str = ""
    revision: int = 0
    progress: Mapping[str, Any] | None = None
    """A task's `TaskProgress.as_json`, while it reports one."""


def canonical_json(value: Any) -> str:
    """Sorted keys, no whitespace, no NaN: equal content gives the equal text."""
    try:
        return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ConfigError("value", f"not storable as JSON: {exc}") from None


def _check_name(kind: str, name: str) -> str:
    if not isinstance(name, str) or not name or "/" in name or not name.isprintable():
        raise ConfigError(kind, f"must be non-empty, without '/' or control characters: {name!r}")
    return name


def _decode(key: str, value: bytes) -> dict[str, Any]:
    try:
        decoded = json.loads(value)
    except ValueError as exc:
        raise CorruptDataError(f"key {key!r} does not hold JSON: {exc}") from None
    if not isinstance(decoded, dict):
        raise CorruptDataError(f"key {key!r} holds {type(decoded).__name__}, not an object")
    return decoded


class _Store:
    def __init__(self, kv: KeyValueStore, group: str) -> None:
        self._kv = kv
        self.prefix = f"connect/{_check_name('group', group)}/"


class ConfigStore(_Store):
    """Connector configs with their target state, and each connector's task configs."""

    def _key(self, name: str) -> str:
        return f"{self.prefix}configs/{_check_name('connector', name)}"

    def _tasks_key(self, name: str) -> str:
        return f"{self.prefix}tasks/{_check_name('connector', name)}"

    def get(self, name: str) -> ConnectorConfigRecord | None:
        """The connector's config, or None if there is no such connector."""
        entry = self._kv.get(self._key(name))
        return None if entry is None else self._record(name, entry.value, entry.revision)

    def list(self) -> list[ConnectorConfigRecord]:
        """Every connector's config, by name."""
        start = len(self.prefix + "configs/")
        return [
            self._record(e.key[start:], e.value, e.revision)
            for e in self._kv.list(self.prefix + "configs/")
        ]

    def _record(self, name: str, value: bytes, revision: int) -> ConnectorConfigRecord:
        data = _decode(name, value)
        return ConnectorConfigRecord(
            name, data["config"], TargetState(data["target_state"]), revision
        )

    def put(
        self,
        name: str,
        config: Mapping[str, Any],
        target_state: TargetState = TargetState.RUNNING,
        expected_revision: int | None = None,
    ) -> ConnectorConfigRecord | None:
        """Store a connector's config. With ``expected_revision`` (0: the connector
        must not exist yet) only if the stored one is still at that revision; None if
        another writer got there first. Without it, unconditionally."""
        key = self._key(name)
        data = canonical_json({"config": dict(config), "target_state": str(target_state)})
        if expected_revision is None:
            revision: int | None = self._kv.put(key, data.encode())
        else:
            revision = self._kv.compare_and_set(key, data.encode(), expected_revision)
        if revision is None:
            return None
        return self._record(name, data.encode(), revision)  # as `get` would read it

    def set_target_state(self, name: str, state: TargetState) -> ConnectorConfigRecord:
        """Change only the target state, keeping the config another worker may be
        rewriting at the same time. `NotFoundError` if the connector does not exist."""
        for _ in range(MAX_CAS_ATTEMPTS):
            current = self.get(name)
            if current is None:
                raise NotFoundError(f"connector {name!r} does not exist")
            stored = self.put(name, current.config, state, current.revision)
            if stored is not None:
                return stored
        raise RetriableError(f"connector {name!r}: too many concurrent config writes")

    def delete(self, name: str, expected_revision: int = -1) -> bool:
        """Delete the connector's config (at ``expected_revision`` unless -1) and then
        its task configs; True if the config was deleted."""
        if not self._kv.delete(self._key(name), expected_revision):
            return False
        self._kv.delete(self._tasks_key(name))
        return True

    def get_tasks(self, name: str) -> TaskConfigsRecord | None:
        """The connector's task configs, or None if none were written."""
        entry = self._kv.get(self._tasks_key(name))
        if entry is None:
            return None
        data = _decode(entry.key, entry.value)
        return TaskConfigsRecord(
            name, int(data["generation"]), tuple(data["tasks"]), entry.revision
        )

    def put_tasks(
        self,
        name: str,
        tasks: Sequence[Mapping[str, Any]],
        expected_revision: int | None = None,
    ) -> TaskConfigsRecord | None:
        """Replace the connector's task configs as one write, one generation up.
        With ``expected_revision`` (0: none written yet) only if the stored ones are
        still at it, None otherwise; without, retried until it lands."""
        key = self._tasks_key(name)
        copies = tuple(dict(t) for t in tasks)
        for _ in range(MAX_CAS_ATTEMPTS):
            current = self.get_tasks(name)
            revision = current.revision if current is not None else 0
            if expected_revision is not None and revision != expected_revision:
                return None
            generation = (current.generation if current is not None else 0) + 1
            data = canonical_json({"generation": generation, "tasks": list(copies)})
            written = self._kv.compare_and_set(key, data.encode(), revision)
            if written is not None:
                stored = tuple(json.loads(data)["tasks"])  # as `get_tasks` would read them
                return TaskConfigsRecord(name, generation, stored, written)
            if expected_revision is not None:
                return None
        raise RetriableError(f"connector {name!r}: too many concurrent task config writes")

    def connector_of(self, key: str) -> str | None:
        """The connector a watched config or task-config key belongs to, else None."""
        for part in ("configs/", "tasks/"):
            if key.startswith(self.prefix + part):
                return key[len(self.prefix + part) :] or None
        return None


class OffsetStore(_Store):
    """Source offsets per connector and source partition (the last one stored wins)."""

    def _connector_prefix(self, connector: str) -> str:
        return f"{self.prefix}offsets/{_check_name('connector', connector)}/"

    def _key(self, connector: str, partition: SourcePartition) -> str:
        return self._connector_prefix(connector) + canonical_json(dict(partition))

    def put(
        self, connector: str, offsets: Iterable[tuple[SourcePartition, SourceOffset | None]]
    ) -> None:
        """Store each partition's offset; an offset of None deletes the partition's
        (the next start begins afresh). Partitions are written one by one: a crash
        half-way leaves each partition either at its old or at its new offset."""
        for partition, offset in offsets:
            clean = check_source_map("source_partition", partition)
            key = self._key(connector, clean)
            if offset is None:
                self._kv.delete(key)
                continue
            value = {"partition": clean, "offset": check_source_map("source_offset", offset)}
            self._kv.put(key, canonical_json(value).encode())

    def get(self, connector: str, partition: SourcePartition) -> dict[str, Any] | None:
        """The stored offset of one partition, or None."""
        entry = self._kv.get(self._key(connector, partition))
        return None if entry is None else dict(_decode(entry.key, entry.value)["offset"])

    def list(self, connector: str) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        """Every (partition, offset) stored for ``connector``, by partition key."""
        entries = self._kv.list(self._connector_prefix(connector))
        decoded = [_decode(e.key, e.value) for e in entries]
        return [(dict(d["partition"]), dict(d["offset"])) for d in decoded]

    def delete_all(self, connector: str) -> int:
        """Forget every offset of ``connector``; returns how many partitions had one."""
        entries = self._kv.list(self._connector_prefix(connector))
        return sum(self._kv.delete(e.key) for e in entries)

    def reader(self, connector: str) -> StoredOffsetReader:
        """An `omconnect.connect.connector.OffsetReader` over this connector's offsets."""
        return StoredOffsetReader(self, connector)


class StoredOffsetReader:
    """What a source task reads its committed offsets through (the `OffsetReader`
    protocol): each call reads the store afresh."""

    def __init__(self, store: OffsetStore, connector: str) -> None:
        self._store = store
        self._connector = connector

    def offset(self, partition: SourcePartition) -> SourceOffset | None:
        """The last committed offset of ``partition``, or None."""
        return self._store.get(self._connector, partition)

    def offsets(self, partitions: Iterable[SourcePartition]) -> dict[PartitionKey, SourceOffset]:
        """The committed offsets of ``partitions`` by `partition_key` (one listing)."""
        wanted = {partition_key(p) for p in partitions}
        stored = ((partition_key(p), o) for p, o in self._store.list(self._connector))
        return {key: offset for key, offset in stored if key in wanted}


class StatusStore(_Store):
    """Connector and task statuses, fenced by generation."""

    def _connector_key(self, connector: str) -> str:
        return f"{self.prefix}status/connectors/{_check_name('connector', connector)}"

    def _tasks_prefix(self, connector: str) -> str:
        return f"{self.prefix}status/tasks/{_check_name('connector', connector)}/"

    def put_connector(self, connector: str, status: Status) -> bool:
        """Store a connector's status unless a newer generation's is stored; True if
        written."""
        return self._put_fenced(self._connector_key(connector), status)

    def put_task(self, connector: str, task: int, status: Status) -> bool:
        """Store task number ``task``'s status unless a newer generation's is stored;
        True if written."""
        if task < 0:
            raise ConfigError("task", f"must be >= 0, got {task}")
        return self._put_fenced(f"{self._tasks_prefix(connector)}{task}", status)

    def get_connector(self, connector: str) -> Status | None:
        """The connector's status, or None."""
        return self._get(self._connector_key(connector))

    def get_task(self, connector: str, task: int) -> Status | None:
        """Task number ``task``'s status, or None."""
        return self._get(f"{self._tasks_prefix(connector)}{task}")

    def list_tasks(self, connector: str) -> dict[int, Status]:
        """Every task status of ``connector`` by task number, in task order."""
        prefix = self._tasks_prefix(connector)
        found = {int(e.key[len(prefix) :]): self._status(e.key, e.value, e.revision)
                 for e in self._kv.list(prefix)}  # fmt: skip
        return dict(sorted(found.items()))

    def delete(self, connector: str) -> None:
        """Remove the connector's status and all its task statuses."""
        for entry in self._kv.list(self._tasks_prefix(connector)):
            self._kv.delete(entry.key)
        self._kv.delete(self._connector_key(connector))

    def _get(self, key: str) -> Status | None:
        entry = self._kv.get(key)
        return None if entry is None else self._status(key, entry.value, entry.revision)

    @staticmethod
    def _status(key: str, value: bytes, revision: int) -> Status:
        data = _decode(key, value)
        return Status(
            State(data["state"]),
            str(data["worker_id"]),
            int(data["generation"]),
            str(data.get("trace", "")),
            revision,
            data.get("progress"),
        )

    def _put_fenced(self, key: str, status: Status) -> bool:
        value = {
            "state": str(status.state),
            "worker_id": status.worker_id,
            "generation": status.generation,
            "trace": status.trace,
        }
        if status.progress is not None:
            value["progress"] = dict(status.progress)
        data = canonical_json(value).encode()
        for _ in range(MAX_CAS_ATTEMPTS):
            current = self._get(key)
            if current is not None and current.generation > status.generation:
                return False
            revision = current.revision if current is not None else 0
            if self._kv.compare_and_set(key, data, revision) is not None:
                return True
        raise RetriableError(f"{key}: too many concurrent status writes")


@dataclass(frozen=True, slots=True)
class ConnectStores:
    """The three stores of one worker group, over one key-value store."""

    configs: ConfigStore
    offsets: OffsetStore
    statuses: StatusStore

    @classmethod
    def open(cls, kv: KeyValueStore, group: str) -> ConnectStores:
        """The stores of ``group`` (no I/O happens until they are used)."""
        return cls(ConfigStore(kv, group), OffsetStore(kv, group), StatusStore(kv, group))
