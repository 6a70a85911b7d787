"""`Worker`: starts connectors and their tasks in this process and keeps them running.

For each connector it validates the config, starts the connector, asks it for task
configs (``tasks.max``) and runs each task in a `SourceTaskRunner` or
`SinkTaskRunner` thread with the connector's converters, transforms and error
handler. Task states go to the status store. A FAILED task is restarted after a
backoff (``task.restart.backoff.initial.ms``, doubling up to
``task.restart.backoff.max.ms``) unless ``task.restart.enable`` is false: Kafka
Connect leaves it FAILED.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import Field

from omconnect.access_point import MessagingAccessPoint
from omconnect.connect.config import PluginConfig, parse_config
from omconnect.connect.connector import Connector, SinkConnector, SourceConnector
from omconnect.connect.plugins import load_connector_class
from omconnect.errors import ConfigError
from omconnect.runtime.converters.base import (
    Converter,
    converter_class,
    converter_config,
    make_converter,
)
from omconnect.runtime.converters.schema_registry import SchemaRegistry
from omconnect.runtime.error_handling import build_operator
from omconnect.runtime.sink_runner import SinkTaskRunner
from omconnect.runtime.source_runner import SourceTaskRunner
from omconnect.runtime.stores import ConnectStores, State, Status
from omconnect.runtime.task_common import TaskId, TaskRunner, TopicCreator, dead_letter_sender
from omconnect.runtime.worker_config import WorkerConfig

log = logging.getLogger(__name__)


class ConnectorConfig(PluginConfig):
    """The runtime's own keys of a connector config (the connector declares the rest)."""

    name: str = Field(min_length=1, description="Unique name of the connector.")
    connector_class: str = Field(
        alias="connector.class", description="Alias or class path of the connector."
    )
    tasks_max: int = Field(1, alias="tasks.max", gt=0, description="Most tasks to run.")
    topics: list[str] = Field(
        default_factory=list, description="Sink connectors: the queues to consume."
    )
    key_converter: str | None = Field(
        None, alias="key.converter", description="Overrides the worker's key converter."
    )
    value_converter: str | None = Field(
        None, alias="value.converter", description="Overrides the worker's value converter."
    )
    topic_creation_partitions: int = Field(
        1,
        alias="topic.creation.default.partitions",
        gt=0,
        description="Partitions of the queues a source creates on first use.",
    )


def make_transform(config: Mapping[str, Any]) -> Callable[[Any], Any]:
    """The connector's transform chain as one function (identity without ``transforms``)."""
    if not str(config.get("transforms", "")).strip():
        return lambda record: record
    from omconnect.runtime.transforms import build_chain

    return build_chain(config).apply


@dataclass
class _Connector:
    config: dict[str, Any]
    parsed: ConnectorConfig
    instance: Connector
    runners: dict[int, TaskRunner] = field(default_factory=dict)
    restarts: dict[int, int] = field(default_factory=dict)
    task_configs: list[dict[str, str]] = field(default_factory=list)


class Worker:
    """Runs connectors on one access point. Thread-safe."""

    def __init__(
        self,
        worker_id: str,
        config: WorkerConfig,
        access_point: MessagingAccessPoint,
        stores: ConnectStores,
        generation: int = 0,
    ) -> None:
        self.worker_id = worker_id
        self.config = config
        self._ap = access_point
        self._stores = stores
        self._generation = generation
        self._lock = threading.RLock()
        self._connectors: dict[str, _Connector] = {}
        self._producer = access_point.create_producer()
        self._registry = SchemaRegistry(access_point.kv)  # Avro schemas, shared by tasks
        self._stopping = threading.Event()

    # -- connectors ------------------------------------------------------------------
    def start_connector(self, config: Mapping[str, Any]) -> str:
        """Validate and start a connector with all its tasks; returns its name.
        `ConfigError` (naming the key) if the config is invalid: nothing is started."""
        raw = dict(config)
        parsed = parse_config(ConnectorConfig, raw)
        cls = load_connector_class(parsed.connector_class)
        instance = cls()
        errors = instance.validate(raw)
        if errors:
            raise ConfigError(errors[0].key, errors[0].reason)
        if isinstance(instance, SinkConnector) and not parsed.topics:
            raise ConfigError("topics", "a sink connector needs at least one topic")
        make_transform(raw)  # fail now on bad transforms, not in the task
        with self._lock:
            if parsed.name in self._connectors:
                raise ConfigError("name", f"connector {parsed.name!r} is already running")
            instance.start(raw)
            entry = _Connector(raw, parsed, instance)
            self._connectors[parsed.name] = entry
            entry.task_configs = instance.task_configs(parsed.tasks_max)
            self._stores.statuses.put_connector(
                parsed.name, Status(State.RUNNING, self.worker_id, self._generation)
            )
            for number in range(len(entry.task_configs)):
                self._start_task(entry, number)
        return parsed.name

    def stop_connector(self, name: str) -> None:
        """Stop a connector's tasks (committing their offsets) and the connector."""
        with self._lock:
            entry = self._connectors.pop(name, None)
        if entry is None:
            return
        runners = list(entry.runners.values())
        for runner in runners:
            runner.stop()
        for runner in runners:
            runner.join(timeout=self.config.task_shutdown_graceful_timeout_ms / 1000 + 5)
        entry.instance.stop()
        self._stores.statuses.put_connector(
            name, Status(State.STOPPED, self.worker_id, self._generation)
        )

    def connectors(self) -> list[str]:
        """Names of the connectors running here."""
        with self._lock:
            return sorted(self._connectors)

    def runner(self, name: str, task: int) -> TaskRunner | None:
        """The runner of one task (for tests and metrics)."""
        with self._lock:
            entry = self._connectors.get(name)
            return None if entry is None else entry.runners.get(task)

    def stop(self) -> None:
        """Stop every connector, then the shared producer."""
        self._stopping.set()
        for name in self.connectors():
            self.stop_connector(name)
        self._producer.close()

    # -- tasks -----------------------------------------------------------------------
    def _converter(self, entry: _Connector, is_key: bool) -> Converter:
        name = (entry.parsed.key_converter if is_key else entry.parsed.value_converter) or (
            self.config.key_converter if is_key else self.config.value_converter
        )
        own = entry.parsed.key_converter if is_key else entry.parsed.value_converter
        settings = converter_config(entry.config if own else self.config.raw, is_key)
        registry = self._registry if converter_class(name).needs_registry else None
        return make_converter(name, settings, is_key, registry)

    def _start_task(self, entry: _Connector, number: int) -> None:
        name = entry.parsed.name
        task_id = TaskId(name, number)
        task_config = {**entry.config, **entry.task_configs[number]}
        task = entry.instance.task_class()()  # type: ignore[attr-defined]
        topics = TopicCreator(self._ap, entry.parsed.topic_creation_partitions)
        errors = build_operator(entry.config, name, number, dead_letter_sender(self._ap, topics))
        common: dict[str, Any] = {
            "key_converter": self._converter(entry, True),
            "value_converter": self._converter(entry, False),
            "transform": make_transform(entry.config),
            "errors": errors,
            "on_state": self._task_state,
            "commit_interval_ms": self.config.offset_flush_interval_ms,
        }
        runner: TaskRunner
        if isinstance(entry.instance, SourceConnector):
            runner = SourceTaskRunner(
                task_id,
                task,
                task_config,
                producer=self._producer,
                offsets=self._stores.offsets,
                topics=topics,
                graceful_timeout_ms=self.config.task_shutdown_graceful_timeout_ms,
                **common,
            )
        else:
            runner = SinkTaskRunner(
                task_id,
                task,
                task_config,
                access_point=self._ap,
                topics=entry.parsed.topics,
                **common,
            )
        entry.runners[number] = runner
        runner.start()

    def _task_state(self, task_id: TaskId, state: State, trace: str) -> None:
        self._stores.statuses.put_task(
            task_id.connector, task_id.task, Status(state, self.worker_id, self._generation, trace)
        )
        if state is State.FAILED:
            self._schedule_restart(task_id)

    def _schedule_restart(self, task_id: TaskId) -> None:
        if not self.config.task_restart_enable or self._stopping.is_set():
            return
        with self._lock:
            entry = self._connectors.get(task_id.connector)
            if entry is None:
                return
            count = entry.restarts.get(task_id.task, 0)
            entry.restarts[task_id.task] = count + 1
        delay_ms = min(
            self.config.task_restart_backoff_max_ms,
            self.config.task_restart_backoff_initial_ms * 2**count,
        )
        log.info("restarting task %s in %d ms (restart %d)", task_id, delay_ms, count + 1)
        timer = threading.Timer(delay_ms / 1000, self._restart, args=(task_id,))
        timer.daemon = True
        timer.start()

    def _restart(self, task_id: TaskId) -> None:
        with self._lock:
            entry = self._connectors.get(task_id.connector)
            if entry is None or self._stopping.is_set():
                return
            self._stores.statuses.put_task(
                task_id.connector,
                task_id.task,
                Status(State.RESTARTING, self.worker_id, self._generation),
            )
            self._start_task(entry, task_id.task)
