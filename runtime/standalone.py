"""Standalone mode: one process, one worker, and the `Herder` the REST API uses.

``omconnect standalone worker.json connector.json...`` opens the worker's access
point (by default the bundled broker in this process, data under ``data.dir``) and
runs until SIGTERM or Ctrl-C, then stops the tasks gracefully (in-flight records
finish, offsets are committed).

Connector configs live in the config store (the access point's key-value store) as
written, ``${env:...}``/``${file:...}`` references unresolved, with their target
state (RUNNING, PAUSED or STOPPED); offsets and statuses live there too. At start
the command-line files are validated and stored, replacing a stored config of the
same name but keeping its target state (a connector the user stopped stays
stopped); then every stored connector starts as its target state says, so those
created through the herder survive a restart until deleted. References are resolved
only to start a connector, and resolved values are never stored: a connector
restart picks up a rotated secret.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omconnect.access_point import MessagingAccessPoint
from omconnect.errors import ConfigError, NotFoundError
from omconnect.runtime import herder_common as common
from omconnect.runtime.config_providers import ConfigProvider, default_providers, resolve_config
from omconnect.runtime.herder import ConnectorInfo, ConnectorStatus
from omconnect.runtime.metrics import MetricsServer, start_metrics_server
from omconnect.runtime.rest import AuthConfig, RestServer
from omconnect.runtime.stores import (
    ConfigStore,
    ConnectorConfigRecord,
    ConnectStores,
    OffsetStore,
    State,
    Status,
    TargetState,
)
from omconnect.runtime.task_common import TaskId, trace_of
from omconnect.runtime.validation import check_valid
from omconnect.runtime.worker import Worker
from omconnect.runtime.worker_config import load_json_config, parse_worker_config

if TYPE_CHECKING:
    from omconnect.runtime.herder import Herder

log = logging.getLogger(__name__)


@dataclass
class _Started:
    """A connector started here: its resolved config (memory only) and task configs."""

    resolved: dict[str, Any]
    task_configs: list[dict[str, str]]


class Standalone(common.StoredConnectorReads):
    """A started standalone worker and its `Herder`; `stop` ends it. Thread-safe.

    ``worker_config`` is a JSON file or the map itself; ``providers`` resolve config
    references (default: ``env`` and ``file``). `ConfigError` if a command-line
    connector config is invalid: then nothing keeps running.
    """

    def __init__(
        self,
        worker_config: Path | Mapping[str, Any],
        connector_configs: Sequence[Path] = (),
        providers: Mapping[str, ConfigProvider] | None = None,
    ) -> None:
        if isinstance(worker_config, Mapping):
            config = parse_worker_config(worker_config)
        else:
            config = parse_worker_config(load_json_config(worker_config))
        files = [(path, load_json_config(path)) for path in connector_configs]
        self._providers = default_providers() if providers is None else providers
        self._lock = threading.RLock()
        self._targets: dict[str, TargetState] = {}
        self._started: dict[str, _Started] = {}
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}"
        self.access_point = MessagingAccessPoint.open(config.url())
        self.metrics_server: MetricsServer | None = None
        try:
            kv, group = self.access_point.kv, config.group_id
            statuses = common.PauseHoldingStatusStore(kv, group, self._hold_paused)
            self.stores = ConnectStores(ConfigStore(kv, group), OffsetStore(kv, group), statuses)
            self.worker = Worker(self.worker_id, config, self.access_point, self.stores)
            self.worker.on_reconfiguration = self._reconfigure
            self.metrics_server = start_metrics_server(self.worker)  # metrics.port
            with self._lock:
                for path, connector in files:
                    self._store_file_config(path, connector)
                for record in self.stores.configs.list():
                    self._start(record.name)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop the connectors gracefully and close the access point."""
        if self.metrics_server is not None:
            self.metrics_server.stop()
            self.metrics_server = None
        worker = getattr(self, "worker", None)
        if worker is not None:
            worker.stop()
        self.access_point.close()

    # -- Herder: configs -----------------------------------------------------------------

    def connector_info(self, name: str) -> ConnectorInfo:
        """Config (secrets hidden) and task ids."""
        record = self._record(name)
        tasks = self.stores.configs.get_tasks(name)
        count = len(tasks.tasks) if tasks is not None else 0
        shown = common.redact_config(record.config)
        kind = common.connector_type(record.config)
        return ConnectorInfo(name, shown, tuple(range(count)), kind)

    def put_connector_config(
        self, name: str, config: Mapping[str, str]
    ) -> tuple[bool, ConnectorInfo]:
        """Validate, store and (re)start; the target state of an existing connector is
        kept. `ConfigError` names the first bad key; then nothing changes."""
        with self._lock:
            existing = self.stores.configs.get(name)
            merged = common.keep_hidden_secrets(config, existing.config if existing else None)
            merged = common.with_name(name, merged)
            check_valid(self.validate_config(str(merged.get("connector.class", "")), merged))
            self._halt(name)
            target = existing.target_state if existing else TargetState.RUNNING
            self.stores.configs.put(name, merged, target)
            self._start(name)
            return existing is None, self.connector_info(name)

    def patch_connector_config(self, name: str, changes: Mapping[str, str | None]) -> ConnectorInfo:
        """Apply ``changes`` (None removes a key) to the stored config, as a put."""
        with self._lock:
            config = dict(self._record(name).config)
            for key, value in changes.items():
                if value is None:
                    config.pop(key, None)
                else:
                    config[key] = value
            return self.put_connector_config(name, config)[1]

    def delete_connector(self, name: str) -> None:
        """Stop and forget the connector; its offsets stay."""
        with self._lock:
            self._record(name)
            self._halt(name)
            self.stores.configs.delete(name)
            self.stores.statuses.delete(name)
            self._targets.pop(name, None)

    # -- Herder: states --------------------------------------------------------------------
    def connector_status(self, name: str) -> ConnectorStatus:
        """Connector and task states from the status store, with failure traces."""
        record = self._record(name)
        tasks = self.stores.configs.get_tasks(name)
        count = len(tasks.tasks) if tasks is not None else 0
        return common.build_status(name, record.config, self.stores.statuses, count)

    def restart_connector(
        self, name: str, include_tasks: bool, only_failed: bool
    ) -> ConnectorStatus:
        """Restart the connector instance (re-resolving its references) unless
        ``only_failed`` and it has not failed, and with ``include_tasks`` its tasks
        (only the FAILED ones with ``only_failed``). A connector whose task configs
        change restarts all its tasks. A STOPPED connector stays stopped."""
        with self._lock:
            record = self._record(name)
            before = self.connector_status(name)
            plan = common.restart_plan(before, include_tasks, only_failed)
            if record.target_state is TargetState.STOPPED:
                return before
            if name not in self._started:  # never got going: start it afresh
                if plan.connector:
                    self._halt(name)
                    self._start(name)
            elif not (plan.connector and self._restart_instance(record)):
                self._restart_tasks(name, plan.tasks)  # (a reconfiguration restarted all)
            return self.connector_status(name)

    def _reconfigure(self, name: str) -> None:
        """A connector asked for new task configs: restart its instance (tasks
        restart when their configs changed)."""
        try:
            self.restart_connector(name, include_tasks=False, only_failed=False)
        except Exception:
            log.exception("task reconfiguration of %s failed", name)

    def restart_task(self, name: str, task: int) -> None:
        """Restart one task with its current config."""
        with self._lock:
            self._record(name)
            started = self._started.get(name)
            if started is None or not 0 <= task < len(started.task_configs):
                raise NotFoundError(f"connector {name!r} has no running task {task}")
            self._restart_tasks(name, [task])

    def pause_connector(self, name: str) -> None:
        """Pause the tasks (a STOPPED connector starts, paused)."""
        with self._lock:
            self._set_target(name, TargetState.PAUSED)
            if name not in self._started:
                self._start(name)
                return
            self.worker.pause(name)
            self._connector_state(name, State.PAUSED)

    def resume_connector(self, name: str) -> None:
        """Run again after pause or stop."""
        with self._lock:
            self._set_target(name, TargetState.RUNNING)
            if name not in self._started:
                self._start(name)
                return
            self.worker.resume(name)
            self._connector_state(name, State.RUNNING)

    def stop_connector(self, name: str) -> None:
        """Stop the connector and its tasks (committing offsets); keep the config."""
        with self._lock:
            self._set_target(name, TargetState.STOPPED)
            self._halt(name)
            self._start(name)  # records STOPPED and empty task configs

    # -- Herder: offsets -------------------------------------------------------------------

    def alter_connector_offsets(self, name: str, offsets: list[dict[str, Any]]) -> None:
        """Set offsets; `ConfigError` unless the connector is STOPPED."""
        with self._lock:
            record = self._record(name)
            common.require_stopped(name, record.target_state)
            ap = self.access_point
            common.alter_offsets(name, record.config, offsets, self.stores.offsets, ap)

    def reset_connector_offsets(self, name: str) -> None:
        """Forget every offset; `ConfigError` unless the connector is STOPPED."""
        with self._lock:
            record = self._record(name)
            common.require_stopped(name, record.target_state)
            common.reset_offsets(name, record.config, self.stores.offsets, self.access_point)

    # -- internals -------------------------------------------------------------------------

    def _store_file_config(self, path: Path, config: dict[str, Any]) -> None:
        name = config.get("name")
        if not isinstance(name, str) or not name:
            raise ConfigError(str(path), "has no connector 'name'")
        check_valid(self.validate_config(str(config.get("connector.class", "")), config))
        existing = self.stores.configs.get(name)
        target = existing.target_state if existing else TargetState.RUNNING
        self.stores.configs.put(name, config, target)

    def _set_target(self, name: str, state: TargetState) -> None:
        self.stores.configs.set_target_state(name, state)  # NotFoundError if unknown
        self._targets[name] = state

    def _hold_paused(self, connector: str, task: int) -> bool:
        if self._targets.get(connector) is not TargetState.PAUSED:
            return False
        runner = self.worker.runner(connector, task)
        if runner is None:
            return False
        runner.pause()
        return True

    def _connector_state(self, name: str, state: State, trace: str = "") -> None:
        self.stores.statuses.put_connector(name, Status(state, self.worker_id, 0, trace))

    def _halt(self, name: str) -> None:
        """Stop the connector and its tasks here (`_start` replaces their statuses)."""
        if name in self._started or name in self.worker.connectors():
            self.worker.remove_connector(name)
        self._started.pop(name, None)

    def _start(self, name: str) -> None:
        """Start a stored connector as its target state says; a failure to start is
        recorded as a FAILED status with its trace, not raised."""
        record = self.stores.configs.get(name)
        if record is None:
            return
        self._targets[name] = record.target_state
        self.stores.statuses.delete(name)  # a previous run's statuses are stale
        if record.target_state is TargetState.STOPPED:
            self.stores.configs.put_tasks(name, [])
            self._connector_state(name, State.STOPPED)
            return
        try:
            resolved = resolve_config(record.config, self._providers)
            task_configs = self.worker.start_connector(resolved.values)
        except Exception as exc:
            log.error("connector %s failed to start: %s", name, exc)
            self._connector_state(name, State.FAILED, trace_of(exc))
            return
        self._started[name] = _Started(resolved.values, task_configs)
        stored = common.unresolve_task_configs(task_configs, record.config, resolved)
        self.stores.configs.put_tasks(name, stored)
        if record.target_state is TargetState.PAUSED:
            self._connector_state(name, State.PAUSED)
        for number in range(len(task_configs)):
            self._start_task(name, number)

    def _start_task(self, name: str, number: int) -> None:
        started = self._started[name]
        try:
            self.worker.start_task(
                TaskId(name, number), started.resolved, started.task_configs[number]
            )
        except Exception as exc:
            log.error("task %s-%d failed to start: %s", name, number, exc)
            status = Status(State.FAILED, self.worker_id, 0, trace_of(exc))
            self.stores.statuses.put_task(name, number, status)

    def _restart_tasks(self, name: str, numbers: Sequence[int]) -> None:
        count = len(self._started[name].task_configs)
        numbers = [n for n in numbers if 0 <= n < count]
        self.worker.stop_tasks([TaskId(name, n) for n in numbers])
        for number in numbers:
            status = Status(State.RESTARTING, self.worker_id, 0)
            self.stores.statuses.put_task(name, number, status)
            self._start_task(name, number)

    def _restart_instance(self, record: ConnectorConfigRecord) -> bool:
        """Restart the connector instance; True if its task configs changed, in which
        case every task was restarted with the new ones."""
        name, old = record.name, self._started[record.name]
        self.worker.stop_connector(name)
        try:
            resolved = resolve_config(record.config, self._providers)
            task_configs = self.worker.start_connector(resolved.values)
        except Exception as exc:  # its tasks keep running, as in Kafka
            log.error("connector %s failed to restart: %s", name, exc)
            self._connector_state(name, State.FAILED, trace_of(exc))
            return False
        if record.target_state is TargetState.PAUSED:
            self._connector_state(name, State.PAUSED)
        if task_configs == old.task_configs and resolved.values == old.resolved:
            return False
        self.worker.stop_tasks([TaskId(name, n) for n in range(len(old.task_configs))])
        self.stores.statuses.delete(name)
        self._connector_state(name, State(str(record.target_state)))
        self._started[name] = _Started(resolved.values, task_configs)
        stored = common.unresolve_task_configs(task_configs, record.config, resolved)
        self.stores.configs.put_tasks(name, stored)
        for number in range(len(task_configs)):
            self._start_task(name, number)
        return True


if TYPE_CHECKING:

    def _is_a_herder(standalone: Standalone) -> Herder:
        return standalone  # mypy checks that Standalone implements the protocol


def run_standalone(worker_config: Path, connector_configs: Sequence[Path]) -> None:
    """Run until SIGTERM or SIGINT (main thread only)."""
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    standalone = Standalone(worker_config, connector_configs)
    try:
        config = standalone.worker.config
        rest = RestServer(
            standalone,
            config.rest_host,
            config.rest_port,
            auth=AuthConfig.from_worker_config(config.raw),
            cluster_id=config.group_id,
        )
        rest.start()
    except BaseException:
        standalone.stop()
        raise
    log.info("REST API on %s", rest.url)
    try:
        stop.wait()
    finally:
        log.info("stopping")
        rest.stop()
        standalone.stop()
