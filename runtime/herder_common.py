"""What every herder answers the same way: statuses, offsets, redaction, secrets.

Plain functions over the stores and the access point, so that the standalone herder
(`omconnect.runtime.standalone`) and the distributed one give identical answers.
None of them locks: the caller serialises writes to one connector.

Secrets. Configs are stored as the user wrote them, with ``${provider:arg}``
references *unresolved*; they are resolved only to start a connector or task, and
resolved values are never stored (`unresolve_task_configs`). What a herder shows
goes through `redact_config`: SecretStr keys of the connector's and converters'
models, and keys whose names look secret, read ``[hidden]``; a reference is shown
as written (it names where the secret lives, not the secret, as in Kafka). A
``[hidden]`` sent back in a new config keeps the stored value
(`keep_hidden_secrets`), so GET-then-PUT round trips do not erase a password.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from omconnect.access_point import KeyValueStore, MessagingAccessPoint
from omconnect.connect.config import HIDDEN, describe_config, redact, split_list
from omconnect.connect.connector import Connector, SinkConnector
from omconnect.connect.plugins import load_connector_class
from omconnect.connect.records import check_source_map
from omconnect.errors import ConfigError, NotFoundError
from omconnect.runtime.config_providers import ConfigProvider, ResolvedConfig
from omconnect.runtime.converters.base import converter_class
from omconnect.runtime.herder import ConnectorStatus, TaskState, ValidationResult
from omconnect.runtime.stores import (
    ConnectorConfigRecord,
    ConnectStores,
    OffsetStore,
    State,
    Status,
    StatusStore,
    TargetState,
)
from omconnect.runtime.validation import validate_connector_config


def connector_class_of(config: Mapping[str, Any]) -> type[Connector] | None:
    """The class ``connector.class`` names, or None if it cannot be loaded."""
    try:
        return load_connector_class(str(config.get("connector.class", "")))
    except ConfigError:
        return None


def connector_type(config: Mapping[str, Any]) -> str:
    """``"source"``, ``"sink"``, or ``"unknown"`` when the class cannot be loaded."""
    cls = connector_class_of(config)
    if cls is None:
        return "unknown"
    return "sink" if issubclass(cls, SinkConnector) else "source"


def secret_keys(config: Mapping[str, Any]) -> set[str]:
    """Keys of ``config`` typed `SecretStr` by the connector's model or by a converter
    it names (``key.converter.X``); name-based secrets are added by `redact`."""
    keys: set[str] = set()
    cls = connector_class_of(config)
    if cls is not None:
        keys |= {info.name for info in describe_config(cls.config_model) if info.secret}
    for side in ("key.converter", "value.converter"):
        name = config.get(side)
        if not name:
            continue
        try:
            model = converter_class(str(name), side).config_model
        except ConfigError:
            continue
        keys |= {f"{side}.{info.name}" for info in describe_config(model) if info.secret}
    return keys


def redact_config(
    config: Mapping[str, Any], shape_of: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """``config`` as a herder shows it: secrets ``[hidden]``. ``shape_of`` is the
    connector config whose models decide (default ``config`` itself; pass it for task
    configs, which may lack ``connector.class``)."""
    return redact(config, secret_keys=secret_keys(shape_of if shape_of is not None else config))


def keep_hidden_secrets(new: Mapping[str, Any], stored: Mapping[str, Any] | None) -> dict[str, Any]:
    """``new`` with each ``[hidden]`` value of a key that `redact_config` hides in
    ``stored`` replaced by the stored value (the user sent back what a GET showed).
    Any other ``[hidden]`` stays as it is, and fails validation if it must not."""
    old = dict(stored or {})
    hidden = {k for k, v in redact_config(old).items() if v == HIDDEN and old[k] != HIDDEN}
    return {k: old[k] if v == HIDDEN and k in hidden else v for k, v in new.items()}


def with_name(name: str, config: Mapping[str, Any]) -> dict[str, Any]:
    """``config`` with ``name`` set; `ConfigError` if it names another connector."""
    given = config.get("name")
    if given not in (None, "", name):
        raise ConfigError("name", f"is {given!r} but the request is for connector {name!r}")
    return {**config, "name": name}


def unresolve_task_configs(
    task_configs: Sequence[Mapping[str, Any]], raw: Mapping[str, Any], resolved: ResolvedConfig
) -> list[dict[str, Any]]:
    """Task configs fit to store: a value equal to the resolved value of a key that
    used a config provider goes back to that key's ``${...}`` reference, so no
    resolved secret reaches the store (resolve again at task start). A connector
    that derives new values from a secret defeats this; such values stay."""
    references = {str(resolved.values[k]): raw[k] for k in resolved.secret_keys if k in raw}
    return [
        {k: references.get(v, v) if isinstance(v, str) else v for k, v in task.items()}
        for task in task_configs
    ]


def build_status(
    name: str, config: Mapping[str, Any], statuses: StatusStore, task_count: int | None = None
) -> ConnectorStatus:
    """The connector's status from the status store: UNASSIGNED (no worker) if none
    is stored. Task statuses numbered ``task_count`` or above (left over from a
    configuration with more tasks) are left out when ``task_count`` is given."""
    stored = statuses.get_connector(name)
    tasks = tuple(
        TaskState(number, str(s.state), s.worker_id, s.trace, s.progress)
        for number, s in statuses.list_tasks(name).items()
        if task_count is None or number < task_count
    )
    if stored is None:
        return ConnectorStatus(name, str(State.UNASSIGNED), "", connector_type(config), tasks)
    return ConnectorStatus(
        name, str(stored.state), stored.worker_id, connector_type(config), tasks, stored.trace
    )


@dataclass(frozen=True, slots=True)
class RestartPlan:
    """What ``POST /connectors/{name}/restart`` restarts (Kafka's RestartPlan)."""

    connector: bool
    tasks: tuple[int, ...]


def restart_plan(status: ConnectorStatus, include_tasks: bool, only_failed: bool) -> RestartPlan:
    """The connector instance unless ``only_failed`` and it is not FAILED; with
    ``include_tasks`` the tasks too, only the FAILED ones with ``only_failed``."""
    failed = str(State.FAILED)
    tasks = tuple(
        t.id for t in status.tasks if include_tasks and (not only_failed or t.state == failed)
    )
    return RestartPlan(not only_failed or status.state == failed, tasks)


class PauseHoldingStatusStore(StatusStore):
    """The status store a worker writes through, so that a PAUSED target state wins
    over task start-up. A runner reports RUNNING once its task has started, even
    when it was paused before (a connector started paused, a task restarted
    automatically while paused). Here a RUNNING report for which ``hold(connector,
    task)`` returns True is dropped: ``hold`` has paused that task, which reports
    PAUSED. ``hold`` returns False for every task it does not pause."""

    def __init__(self, kv: KeyValueStore, group: str, hold: Callable[[str, int], bool]) -> None:
        super().__init__(kv, group)
        self._hold = hold

    def put_task(self, connector: str, task: int, status: Status) -> bool:
        """As `StatusStore.put_task`, but see the class docstring."""
        if status.state is State.RUNNING and self._hold(connector, task):
            return True
        return super().put_task(connector, task, status)


# -- offsets ------------------------------------------------------------------------


def sink_group(name: str) -> str:
    """The consumer group of a sink connector's tasks."""
    return f"connect-{name}"


def require_stopped(name: str, target_state: TargetState) -> None:
    """`ConfigError` unless the connector's target state is STOPPED (offsets may only
    change while no task of it runs, as in Kafka)."""
    if target_state is not TargetState.STOPPED:
        raise ConfigError(
            "state",
            f"connector {name!r} is {target_state}; its offsets can be changed only while "
            f"it is STOPPED (PUT /connectors/{name}/stop first)",
        )


def read_offsets(
    name: str, config: Mapping[str, Any], offsets: OffsetStore, ap: MessagingAccessPoint
) -> list[dict[str, Any]]:
    """The connector's committed offsets in Kafka's shape (see `Herder.connector_offsets`):
    source partitions from the offset store; for a sink, the committed offsets of
    its consumer group on each of its ``topics`` that exists."""
    if connector_type(config) != "sink":
        return [{"partition": p, "offset": o} for p, o in offsets.list(name)]
    out: list[dict[str, Any]] = []
    for topic in _topics(config):
        try:
            committed = ap.backend.committed_offsets(ap.namespace, sink_group(name), topic)
        except NotFoundError:
            continue
        out.extend(
            {
                "partition": {"kafka_topic": topic, "kafka_partition": partition},
                "offset": {"kafka_offset": offset},
            }
            for partition, offset in sorted(committed.items())
        )
    return out


def alter_offsets(
    name: str,
    config: Mapping[str, Any],
    entries: Sequence[Mapping[str, Any]],
    offsets: OffsetStore,
    ap: MessagingAccessPoint,
) -> None:
    """Set offsets: each entry ``{"partition": ..., "offset": ... | None}`` in the
    shape `read_offsets` returns; a None offset forgets the partition's (a sink
    partition goes back to its first retained message). Every entry is checked before
    any is written; `ConfigError` names the bad one. Call only while STOPPED."""
    if not isinstance(entries, Sequence) or isinstance(entries, str | bytes):
        raise ConfigError("offsets", "must be a list of {partition, offset} objects")
    if connector_type(config) != "sink":
        pairs = [_source_entry(i, e) for i, e in enumerate(entries)]
        offsets.put(name, pairs)
        return
    by_topic: dict[str, dict[int, int]] = {}
    for i, entry in enumerate(entries):
        topic, partition, offset = _sink_entry(i, entry)
        if offset is None:
            offset = _first_offset(ap, topic, partition)
        by_topic.setdefault(topic, {})[partition] = offset
    for topic, committed in by_topic.items():
        _commit(ap, name, topic, committed)


def reset_offsets(
    name: str, config: Mapping[str, Any], offsets: OffsetStore, ap: MessagingAccessPoint
) -> None:
    """Forget every offset: a source's stored offsets are deleted; a sink's group is
    set back to the first retained message of every partition of its topics (what
    Kafka's deleted group offsets mean for a sink). Call only while STOPPED."""
    if connector_type(config) != "sink":
        offsets.delete_all(name)
        return
    for topic in _topics(config):
        try:
            count = ap.resources.queue_info(topic).partitions
        except NotFoundError:
            continue
        _commit(ap, name, topic, {p: _first_offset(ap, topic, p) for p in range(count)})


def _topics(config: Mapping[str, Any]) -> list[str]:
    topics = config.get("topics", "")
    return split_list(topics) if isinstance(topics, str) else [str(t) for t in topics]


def _first_offset(ap: MessagingAccessPoint, topic: str, partition: int) -> int:
    try:
        return ap.backend.offset_range(ap.namespace, topic, partition)[0]
    except NotFoundError:
        raise ConfigError(
            "offsets", f"queue {topic!r} partition {partition} does not exist"
        ) from None


def _commit(ap: MessagingAccessPoint, name: str, topic: str, committed: dict[int, int]) -> None:
    try:
        ap.backend.commit_offsets(ap.namespace, sink_group(name), topic, committed)
    except NotFoundError:
        raise ConfigError("offsets", f"queue {topic!r} does not exist") from None


def _source_entry(index: int, entry: Any) -> tuple[dict[str, Any], dict[str, Any] | None]:
    key = f"offsets[{index}]"
    if not isinstance(entry, Mapping) or not isinstance(entry.get("partition"), Mapping):
        raise ConfigError(key, "must be an object with a 'partition' object")
    offset = entry.get("offset")
    if offset is not None and not isinstance(offset, Mapping):
        raise ConfigError(f"{key}.offset", "must be an object or null")
    partition = check_source_map(f"{key}.partition", entry["partition"])
    stored = None if offset is None else dict(check_source_map(f"{key}.offset", offset))
    return dict(partition), stored


def _sink_entry(index: int, entry: Any) -> tuple[str, int, int | None]:
    key = f"offsets[{index}]"
    partition = entry.get("partition") if isinstance(entry, Mapping) else None
    if not isinstance(partition, Mapping):
        raise ConfigError(key, "must be an object with a 'partition' object")
    topic, number = partition.get("kafka_topic"), partition.get("kafka_partition")
    if not isinstance(topic, str) or not topic:
        raise ConfigError(f"{key}.partition.kafka_topic", "must be a queue name")
    if not isinstance(number, int) or isinstance(number, bool) or number < 0:
        raise ConfigError(f"{key}.partition.kafka_partition", "must be an integer >= 0")
    offset = entry.get("offset")
    if offset is None:
        return topic, number, None
    value = offset.get("kafka_offset") if isinstance(offset, Mapping) else None
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ConfigError(f"{key}.offset.kafka_offset", "must be an integer >= 0 (or offset null)")
    return topic, number, value


class StoredConnectorReads:
    """The `Herder` reads that only look at the stores, shared by the standalone and
    the distributed herder. Subclasses set ``stores``, ``access_point`` and
    ``_providers``."""

    stores: ConnectStores
    access_point: MessagingAccessPoint
    _providers: Mapping[str, ConfigProvider]

    def connectors(self) -> list[str]:
        """Names of every stored connector."""
        return sorted(record.name for record in self.stores.configs.list())

    def connector_config(self, name: str) -> dict[str, str]:
        """The stored config, references unresolved, secrets ``[hidden]``."""
        return redact_config(self._record(name).config)

    def task_configs(self, name: str) -> list[dict[str, str]]:
        """The stored task configs (references unresolved, secrets hidden)."""
        record = self._record(name)
        tasks = self.stores.configs.get_tasks(name)
        stored = tasks.tasks if tasks is not None else ()
        return [redact_config(task, record.config) for task in stored]

    def validate_config(self, plugin: str, config: Mapping[str, str]) -> ValidationResult:
        """Kafka's ``config/validate`` answer, with this worker's config providers."""
        return validate_connector_config(plugin, config, self._providers)

    def connector_offsets(self, name: str) -> list[dict[str, Any]]:
        """Committed offsets in Kafka's shape (see `Herder.connector_offsets`)."""
        record = self._record(name)
        return read_offsets(name, record.config, self.stores.offsets, self.access_point)

    def _record(self, name: str) -> ConnectorConfigRecord:
        record = self.stores.configs.get(name)
        if record is None:
            raise NotFoundError(f"connector {name!r} does not exist")
        return record
