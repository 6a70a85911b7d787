"""`AssignedWork`: makes one distributed worker run what the assignment gives it.

`AssignedWork.apply` takes the published assignment and, for this worker's entry
(only if it names this worker's current incarnation and the lease is held):

1. stops the tasks and connectors no longer listed (before acknowledging, so the
   leader never hands them on while they run here);
2. starts listed connectors: the connector's worker resolves its config, starts it,
   and writes its task configs when they differ from the stored ones (or always
   after a config change, so every task restarts with the new config); target
   state STOPPED writes an empty task list, as Kafka Connect does;
3. starts listed tasks with the stored task configs, restarts a task whose task
   configs changed generation, pauses and resumes per the target state;
4. carries out restart requests it has not seen yet;
5. acknowledges the generation in its member record.

Statuses are written with the assignment's generation (`Worker.generation`), so a
worker of an older generation cannot overwrite a newer owner's status. Stored configs
keep ``${provider:...}`` references; they are resolved only here, and a task config
value equal to a resolved secret is stored as its reference again.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from omconnect.access_point import KeyValueStore
from omconnect.errors import OmConnectError
from omconnect.runtime import herder_common as common
from omconnect.runtime.assignment import WorkerAssignment
from omconnect.runtime.config_providers import ConfigProvider, resolve_config
from omconnect.runtime.group import GroupKeys, GroupMember
from omconnect.runtime.rebalance import Published, parse_task_unit, worker_changes
from omconnect.runtime.stores import (
    ConnectorConfigRecord,
    ConnectStores,
    State,
    Status,
    TargetState,
    TaskConfigsRecord,
)
from omconnect.runtime.task_common import TaskId, trace_of
from omconnect.runtime.worker import Worker

log = logging.getLogger(__name__)


@dataclass
class _OwnedConnector:
    config: Mapping[str, Any]  # as stored, references unresolved
    target: TargetState
    started: bool = False
    failed: bool = False


@dataclass
class _OwnedTask:
    task_id: TaskId
    generation: int  # of the task configs it runs with
    paused: bool = False


class PauseHoldingStatuses(common.PauseHoldingStatusStore):
    """The status store a distributed worker writes through: PAUSED wins over task
    start-up (`common.PauseHoldingStatusStore`, with ``hold`` set once the worker's
    `AssignedWork` exists), and a write the store cannot take (the broker is
    unreachable) is logged and dropped, returning False: task threads report through
    here, and a status must not kill them; the next state change writes again."""

    def __init__(self, kv: KeyValueStore, group: str) -> None:
        super().__init__(kv, group, lambda connector, task: self.hold(connector, task))
        self.hold: Callable[[str, int], bool] = lambda connector, task: False

    def put_task(self, connector: str, task: int, status: Status) -> bool:
        try:
            return super().put_task(connector, task, status)
        except OmConnectError as exc:
            log.warning("status of task %s-%d not written: %s", connector, task, exc)
            return False

    def put_connector(self, connector: str, status: Status) -> bool:
        try:
            return super().put_connector(connector, status)
        except OmConnectError as exc:
            log.warning("status of connector %s not written: %s", connector, exc)
            return False


class AssignedWork:
    """This worker's share of the group's work. `apply` runs on one thread;
    `fence` may run on another at any time (it only stops things)."""

    def __init__(
        self,
        worker: Worker,
        stores: ConnectStores,
        kv: KeyValueStore,
        keys: GroupKeys,
        member: GroupMember,
        providers: Mapping[str, ConfigProvider],
    ) -> None:
        self._worker = worker
        self._stores = stores
        self._kv = kv
        self._keys = keys
        self._member = member
        self._providers = providers
        self._connectors: dict[str, _OwnedConnector] = {}
        self._tasks: dict[str, _OwnedTask] = {}
        self._paused: set[str] = set()  # connectors whose tasks are paused here
        self._fenced = threading.Event()
        self._acked = (0, -1)
        self._incarnation = 0
        self._seen_restarts = {e.key for e in kv.list(keys.restarts)}

    def fence(self) -> None:
        """Stop everything at once (the lease is lost); `apply` forgets it next time."""
        self._fenced.set()
        self._worker.stop_tasks(self._worker.tasks())
        for name in self._worker.connectors():
            self._worker.stop_connector(name)

    def hold_paused(self, connector: str, task: int) -> bool:
        """Pause the task again if its connector is paused here; True if it was."""
        runner = self._worker.runner(connector, task)
        if connector not in self._paused or runner is None:
            return False
        runner.pause()
        return True

    def running(self) -> WorkerAssignment:
        """The connectors and tasks this worker runs (as far as `apply` knows)."""
        return WorkerAssignment.of(self._connectors, self._tasks)

    def apply(self, published: Published) -> None:
        """Bring this worker in line with ``published`` (see the module docstring)."""
        if self._fenced.is_set():
            self._fenced.clear()
            self._connectors.clear()
            self._tasks.clear()
        with self._member.fence_lock:
            held, incarnation = self._member.held, self._member.incarnation
        self._incarnation = incarnation  # what this pass may start work for
        wanted = published.entry_for(self._worker.worker_id, incarnation) if held else None
        wanted = wanted or WorkerAssignment()
        stop, _ = worker_changes(self.running(), wanted)
        new_generation = published.generation > self._worker.generation
        if new_generation:
            self._worker.rebalances.begin()
            self._worker.generation = published.generation
        self._stop(stop)
        if held and self._acked != (incarnation, published.generation):
            self._member.acknowledge(incarnation, published.generation)
            self._acked = (incarnation, published.generation)
        configs = {r.name: r for r in self._stores.configs.list()}
        task_records = {name: self._stores.configs.get_tasks(name) for name in configs}
        self._restarts(configs)
        for name in wanted.connectors:
            self._sync_connector(name, configs.get(name), task_records.get(name))
        for unit in wanted.tasks:
            name, number = parse_task_unit(unit)
            self._sync_task(unit, number, configs.get(name), task_records.get(name))
        if new_generation:
            self._worker.rebalances.end()

    def _stop(self, units: WorkerAssignment) -> None:
        tasks = [self._tasks.pop(unit).task_id for unit in units.tasks if unit in self._tasks]
        self._worker.stop_tasks(tasks)
        for name in units.connectors:
            self._connectors.pop(name, None)
            self._worker.stop_connector(name)
        gone = {t.connector for t in tasks} | set(units.connectors)
        for name in gone:
            if self._stores.configs.get(name) is None:  # deleted: no status left behind
                self._stores.statuses.delete(name)

    # -- connectors ------------------------------------------------------------------
    def _sync_connector(
        self, name: str, record: ConnectorConfigRecord | None, tasks: TaskConfigsRecord | None
    ) -> None:
        own = self._connectors.get(name)
        if record is None:
            if own is not None:
                self._stop(WorkerAssignment.of([name]))
            return
        if own is None or dict(own.config) != dict(record.config):
            if own is not None and own.started:
                self._worker.stop_connector(name)
            changed = own is not None
            own = self._connectors[name] = _OwnedConnector(record.config, record.target_state)
            self._start_connector(name, own, tasks, rewrite=changed)
        elif own.target is not record.target_state:
            own.target = record.target_state
            if own.started and own.target is TargetState.STOPPED:
                self._worker.stop_connector(name)
                own.started = False
            if own.started:
                self._put_status(name, own)
            else:
                self._start_connector(name, own, tasks, rewrite=False)

    def _start_connector(
        self, name: str, own: _OwnedConnector, tasks: TaskConfigsRecord | None, rewrite: bool
    ) -> None:
        if own.target is TargetState.STOPPED:
            if tasks is None or tasks.tasks:
                self._stores.configs.put_tasks(name, [])
            self._put_status(name, own)
            return
        try:
            resolved = resolve_config(own.config, self._providers)
            with self._member.fence_lock:
                if not self._member.holds(self._incarnation):
                    return
                task_configs = self._worker.start_connector(resolved.values)
            own.started, own.failed = True, False
        except Exception as exc:  # a connector's own code failed: keep the trace
            log.error("connector %s failed to start: %s", name, exc)
            own.failed = True
            trace = trace_of(exc)
            self._put_status(name, own, State.FAILED, trace)
            return
        stored = common.unresolve_task_configs(task_configs, own.config, resolved)
        if rewrite or tasks is None or [dict(t) for t in tasks.tasks] != stored:
            self._stores.configs.put_tasks(name, stored)
        if own.target is TargetState.PAUSED:
            self._put_status(name, own)

    def _put_status(
        self, name: str, own: _OwnedConnector, state: State | None = None, trace: str = ""
    ) -> None:
        state = state or State(str(own.target))
        status = Status(state, self._worker.worker_id, self._worker.generation, trace)
        self._stores.statuses.put_connector(name, status)

    # -- tasks -----------------------------------------------------------------------
    def _sync_task(
        self,
        unit: str,
        number: int,
        record: ConnectorConfigRecord | None,
        tasks: TaskConfigsRecord | None,
    ) -> None:
        own = self._tasks.get(unit)
        usable = (
            record is not None
            and tasks is not None
            and number < len(tasks.tasks)
            and record.target_state is not TargetState.STOPPED
        )
        if own is not None and (not usable or tasks is None or own.generation != tasks.generation):
            self._stop(WorkerAssignment.of(tasks=[unit]))  # gone, or new task configs
            own = None
        if not usable or record is None or tasks is None:
            return
        if own is None:
            own = self._start_task(unit, TaskId(record.name, number), record, tasks)
            if own is None:
                return
        paused = record.target_state is TargetState.PAUSED
        if paused:
            self._paused.add(record.name)
        else:
            self._paused.discard(record.name)
        runner = self._worker.runner(own.task_id.connector, own.task_id.task)
        if runner is not None and paused != own.paused:
            runner.pause() if paused else runner.resume()
            own.paused = paused

    def _start_task(
        self, unit: str, task_id: TaskId, record: ConnectorConfigRecord, tasks: TaskConfigsRecord
    ) -> _OwnedTask | None:
        try:
            connector_config = resolve_config(record.config, self._providers).values
            task_config = resolve_config(tasks.tasks[task_id.task], self._providers).values
            with self._member.fence_lock:
                if not self._member.holds(self._incarnation):
                    return None
                self._worker.start_task(task_id, connector_config, task_config)
        except Exception as exc:  # a bad config or a task class that does not load
            log.error("task %s failed to start: %s", task_id, exc)
            status = Status(
                State.FAILED, self._worker.worker_id, self._worker.generation, trace_of(exc)
            )
            self._stores.statuses.put_task(task_id.connector, task_id.task, status)
        own = self._tasks[unit] = _OwnedTask(task_id, tasks.generation)
        return own

    # -- restarts --------------------------------------------------------------------
    def _restarts(self, configs: Mapping[str, ConnectorConfigRecord]) -> None:
        entries = self._kv.list(self._keys.restarts)
        fresh = [e for e in entries if e.key not in self._seen_restarts]
        self._seen_restarts = {e.key for e in entries}
        for entry in fresh:
            try:
                request = json.loads(entry.value)
                name, tasks = str(request["connector"]), [int(t) for t in request["tasks"]]
            except (ValueError, KeyError, TypeError) as exc:
                log.warning("ignoring restart request %s: %s", entry.key, exc)
                continue
            if request.get("restart_connector") and name in self._connectors:
                log.info("restarting connector %s on request", name)
                if self._connectors.pop(name).started:
                    self._worker.stop_connector(name)  # `apply` starts it again
            for unit, own in list(self._tasks.items()):
                if own.task_id.connector == name and own.task_id.task in tasks:
                    log.info("restarting task %s on request", own.task_id)
                    self._stop(WorkerAssignment.of(tasks=[unit]))  # `apply` starts it again
