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
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import Field, field_validator

from omconnect.access_point import MessagingAccessPoint
from omconnect.connect.config import PluginConfig, parse_config
from omconnect.connect.connector import Connector, SinkConnector, SourceConnector, TaskProgress
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
from omconnect.runtime.metrics import RebalanceStats
from omconnect.runtime.sink_runner import SinkTaskRunner
from omconnect.runtime.source_runner import SourceTaskRunner
from omconnect.runtime.stores import ConnectStores, State, Status
from omconnect.runtime.task_common import (
    TaskId,
    TaskRunner,
    TopicCreator,
    dead_letter_sender,
    trace_of,
)
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
    topics_regex: str = Field(
        "",
        alias="topics.regex",
        description="Sink connectors: consume every queue whose whole name matches this"
        " regular expression, including queues created later (instead of topics).",
    )

    @field_validator("topics_regex")
    @classmethod
    def _compiles(cls, value: str) -> str:
        if value:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"not a regular expression: {exc}") from None
        return value

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


@dataclass
class _Task:
    connector_config: dict[str, Any]
    parsed: ConnectorConfig
    task_config: dict[str, str]
    runner: TaskRunner
    restarts: int = 0


def check_connector_config(config: Mapping[str, Any]) -> tuple[ConnectorConfig, Connector]:
    """Validate a connector config (runtime keys, the connector's own, transforms);
    return it parsed with an unstarted connector instance. `ConfigError` names the
    first bad key."""
    raw = dict(config)
    parsed = parse_config(ConnectorConfig, raw)
    instance = load_connector_class(parsed.connector_class)()
    errors = instance.validate(raw)
    if errors:
        raise ConfigError(errors[0].key, errors[0].reason)
    if isinstance(instance, SinkConnector):
        if not parsed.topics and not parsed.topics_regex:
            raise ConfigError("topics", "a sink connector needs topics or topics.regex")
        if parsed.topics and parsed.topics_regex:
            raise ConfigError("topics.regex", "give either topics or topics.regex, not both")
    make_transform(raw)  # fail now on bad transforms, not in the task
    return parsed, instance


class _ConnectorContext:
    """The `ConnectorContext` a connector gets from the worker running it."""

    def __init__(self, worker: Worker, name: str) -> None:
        self._worker = worker
        self._name = name

    def request_task_reconfiguration(self) -> None:
        self._worker._request_reconfiguration(self._name)

    def raise_error(self, exc: Exception) -> None:
        self._worker._connector_failed(self._name, exc)


class Worker:
    """Runs connector instances and task runners in this process. Thread-safe.

    Connectors and tasks are separate, as in Kafka Connect's distributed mode: a
    connector instance computes task configs; each task runs wherever it is
    assigned (`start_task`), with the connector config it was started with.
    `run_connector` does both for standalone mode.
    """

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
        self.generation = generation
        self._ap = access_point
        self._stores = stores
        self._lock = threading.RLock()
        self._connectors: dict[str, _Connector] = {}
        self._tasks: dict[TaskId, _Task] = {}
        self._producer = access_point.create_producer()
        self._registry = SchemaRegistry(access_point.kv)  # Avro schemas, shared by tasks
        self._stopping = threading.Event()
        self.rebalances = RebalanceStats()  # the distributed herder reports to it
        # Set by the herder: what to do when a connector asks for new task configs
        # (both herders restart the connector instance, which restarts the tasks if
        # their configs changed).
        self.on_reconfiguration: Callable[[str], object] | None = None

    @property
    def access_point(self) -> MessagingAccessPoint:
        """The access point the tasks use (read-only; for metrics)."""
        return self._ap

    @property
    def stores(self) -> ConnectStores:
        """The config, offset and status stores (read-only; for metrics)."""
        return self._stores

    # -- connectors ------------------------------------------------------------------
    def start_connector(self, config: Mapping[str, Any]) -> list[dict[str, str]]:
        """Validate and start a connector instance; return its task configs.
        `ConfigError` (naming the key) if the config is invalid: nothing is started."""
        parsed, instance = check_connector_config(config)
        with self._lock:
            if parsed.name in self._connectors:
                raise ConfigError("name", f"connector {parsed.name!r} is already running")
            instance.initialize(_ConnectorContext(self, parsed.name))
            instance.start(dict(config))
            self._connectors[parsed.name] = _Connector(dict(config), parsed, instance)
            task_configs = instance.task_configs(parsed.tasks_max)
        self._stores.statuses.put_connector(
            parsed.name, Status(State.RUNNING, self.worker_id, self.generation)
        )
        return task_configs

    def stop_connector(self, name: str) -> None:
        """Stop a connector instance (its tasks are stopped with `stop_tasks`)."""
        with self._lock:
            entry = self._connectors.pop(name, None)
        if entry is not None:
            entry.instance.stop()

    def run_connector(self, config: Mapping[str, Any]) -> str:
        """Standalone: start a connector and all its tasks here; returns its name."""
        task_configs = self.start_connector(config)
        name = str(config["name"])
        for number, task_config in enumerate(task_configs):
            self.start_task(TaskId(name, number), config, task_config)
        return name

    def remove_connector(self, name: str) -> None:
        """Stop a connector's tasks here (committing offsets), then the connector."""
        self.stop_tasks([t for t in self.tasks() if t.connector == name])
        self.stop_connector(name)
        self._stores.statuses.put_connector(
            name, Status(State.STOPPED, self.worker_id, self.generation)
        )

    def connectors(self) -> list[str]:
        """Names of the connector instances running here."""
        with self._lock:
            return sorted(self._connectors)

    def _request_reconfiguration(self, name: str) -> None:
        listener = self.on_reconfiguration
        if listener is None:
            log.warning("connector %s asked for task reconfiguration; nobody listens", name)
            return
        # Off the connector's thread: the restart stops the connector that asked.
        threading.Thread(
            target=listener, args=(name,), daemon=True, name=f"omconnect-reconfigure-{name}"
        ).start()

    def _connector_failed(self, name: str, error: BaseException) -> None:
        log.error("connector %s failed: %s", name, error)
        self._stores.statuses.put_connector(
            name, Status(State.FAILED, self.worker_id, self.generation, trace_of(error))
        )

    # -- tasks -----------------------------------------------------------------------
    def start_task(
        self, task_id: TaskId, connector_config: Mapping[str, Any], task_config: Mapping[str, str]
    ) -> None:
        """Start one task here (a no-op if it already runs here)."""
        parsed = parse_config(ConnectorConfig, connector_config)
        with self._lock:
            if task_id in self._tasks:
                return
            runner = self._make_runner(task_id, parsed, dict(connector_config), dict(task_config))
            self._tasks[task_id] = _Task(dict(connector_config), parsed, dict(task_config), runner)
        runner.start()

    def stop_tasks(self, task_ids: list[TaskId]) -> None:
        """Stop tasks gracefully, all at once, and wait for them."""
        with self._lock:
            stopping = [self._tasks.pop(t) for t in task_ids if t in self._tasks]
        for task in stopping:
            task.runner.stop()
        timeout = self.config.task_shutdown_graceful_timeout_ms / 1000 + 5
        for task in stopping:
            task.runner.join(timeout=timeout)

    def tasks(self) -> list[TaskId]:
        """The tasks running here."""
        with self._lock:
            return sorted(self._tasks)

    def runner(self, name: str, task: int) -> TaskRunner | None:
        """The runner of one task (for tests and metrics)."""
        with self._lock:
            entry = self._tasks.get(TaskId(name, task))
            return None if entry is None else entry.runner

    def pause(self, name: str) -> None:
        """Pause every task of ``name`` here."""
        for task_id in self.tasks():
            runner = self.runner(task_id.connector, task_id.task)
            if task_id.connector == name and runner is not None:
                runner.pause()

    def resume(self, name: str) -> None:
        """Resume every task of ``name`` here."""
        for task_id in self.tasks():
            runner = self.runner(task_id.connector, task_id.task)
            if task_id.connector == name and runner is not None:
                runner.resume()

    def stop(self) -> None:
        """Stop every task and connector, then the shared producer."""
        self._stopping.set()
        self.stop_tasks(self.tasks())
        for name in self.connectors():
            self.stop_connector(name)
        self._producer.close()

    def _converter(
        self, parsed: ConnectorConfig, raw: Mapping[str, Any], is_key: bool
    ) -> Converter:
        own = parsed.key_converter if is_key else parsed.value_converter
        name = own or (self.config.key_converter if is_key else self.config.value_converter)
        settings = converter_config(raw if own else self.config.raw, is_key)
        registry = self._registry if converter_class(name).needs_registry else None
        return make_converter(name, settings, is_key, registry)

    def _make_runner(
        self,
        task_id: TaskId,
        parsed: ConnectorConfig,
        raw: dict[str, Any],
        task_config: dict[str, str],
    ) -> TaskRunner:
        connector_class = load_connector_class(parsed.connector_class)
        task = connector_class().task_class()()  # type: ignore[attr-defined]
        topics = TopicCreator(self._ap, parsed.topic_creation_partitions)
        errors = build_operator(
            raw, parsed.name, task_id.task, dead_letter_sender(self._ap, topics)
        )
        common: dict[str, Any] = {
            "key_converter": self._converter(parsed, raw, True),
            "value_converter": self._converter(parsed, raw, False),
            "transform": make_transform(raw),
            "errors": errors,
            "on_state": self._task_state,
            "commit_interval_ms": self.config.offset_flush_interval_ms,
        }
        config = {**raw, **task_config}
        if issubclass(connector_class, SourceConnector):
            return SourceTaskRunner(
                task_id,
                task,
                config,
                producer=self._producer,
                offsets=self._stores.offsets,
                topics=topics,
                graceful_timeout_ms=self.config.task_shutdown_graceful_timeout_ms,
                **common,
            )
        return SinkTaskRunner(
            task_id,
            task,
            config,
            access_point=self._ap,
            topics=parsed.topics,
            topics_regex=parsed.topics_regex,
            **common,
        )

    def _task_state(
        self, task_id: TaskId, state: State, trace: str, progress: TaskProgress | None
    ) -> None:
        status = Status(
            state,
            self.worker_id,
            self.generation,
            trace,
            progress=progress.as_json() if progress is not None else None,
        )
        self._stores.statuses.put_task(task_id.connector, task_id.task, status)
        if state is State.FAILED:
            self._schedule_restart(task_id)

    def _schedule_restart(self, task_id: TaskId) -> None:
        if not self.config.task_restart_enable or self._stopping.is_set():
            return
        with self._lock:
            entry = self._tasks.get(task_id)
            if entry is None:
                return
            count = entry.restarts
            failed = entry.runner
        delay_ms = min(
            self.config.task_restart_backoff_max_ms,
            self.config.task_restart_backoff_initial_ms * 2**count,
        )
        log.info("restarting task %s in %d ms (restart %d)", task_id, delay_ms, count + 1)
        timer = threading.Timer(delay_ms / 1000, self._restart, args=(task_id, count + 1, failed))
        timer.daemon = True
        timer.start()

    def _restart(self, task_id: TaskId, restarts: int, failed: TaskRunner) -> None:
        with self._lock:
            entry = self._tasks.get(task_id)
            # Gone, or restarted meanwhile by hand: this automatic restart is moot.
            if entry is None or entry.runner is not failed or self._stopping.is_set():
                return
            del self._tasks[task_id]
            self._stores.statuses.put_task(
                task_id.connector,
                task_id.task,
                Status(State.RESTARTING, self.worker_id, self.generation),
            )
            runner = self._make_runner(
                task_id, entry.parsed, entry.connector_config, entry.task_config
            )
            self._tasks[task_id] = _Task(
                entry.connector_config, entry.parsed, entry.task_config, runner, restarts
            )
        runner.start()
