"""Distributed mode: `DistributedHerder`, one worker of a group sharing a KV store.

Workers with the same ``group.id`` on one access point form a group (see
`omconnect.runtime.group` for the keys and leases, `omconnect.runtime.rebalance`
for the assignment protocol). Each worker runs three loops: heartbeats and the
lease watchdog (`GroupMember`), the leader's (`LeaderLoop`, active only on the
worker holding the leader lease), and its own (`AssignedWork.apply` on every change
to the assignment, the configs, the task configs or the restart requests).

Writes need no leader and no forwarding: any worker writes connector configs and
target states straight to the config store, where compare-and-set orders them; the
worker running a connector sees the change and acts, and the leader reassigns
when the set of tasks changes. Restarts are requests under
``connect/<group>/restarts/`` that the workers running the connector or its tasks
carry out. Offsets can be changed only once the connector is STOPPED and no task of
it is assigned or still stopping anywhere (`RebalanceInProgressError` until then).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Mapping
from typing import Any

from omconnect.access_point import MessagingAccessPoint
from omconnect.errors import NotFoundError, OmConnectError
from omconnect.runtime import herder_common as common
from omconnect.runtime.config_providers import ConfigProvider, default_providers
from omconnect.runtime.distributed_worker import AssignedWork, PauseHoldingStatuses
from omconnect.runtime.group import RESTART_TTL_MS, GroupKeys, GroupMember, read_members, watch_for
from omconnect.runtime.herder import (
    ConnectorInfo,
    ConnectorStatus,
    RebalanceInProgressError,
    TaskState,
)
from omconnect.runtime.leader import Leader, LeaderLoop, read_published
from omconnect.runtime.rebalance import parse_task_unit, union
from omconnect.runtime.stores import (
    ConfigStore,
    ConnectorConfigRecord,
    ConnectStores,
    OffsetStore,
    State,
    TargetState,
)
from omconnect.runtime.validation import check_valid
from omconnect.runtime.worker import Worker
from omconnect.runtime.worker_config import WorkerConfig

log = logging.getLogger(__name__)

MAX_WRITE_ATTEMPTS = 32


def rebalance_delay_ms(config: WorkerConfig) -> int:
    """``scheduled.rebalance.max.delay.ms``, -1 meaning a third of the session timeout.

    The delay lets a worker that restarts at once take its tasks back without a move;
    kept short so that a dead worker's tasks run again within 2x the session
    timeout (lease expiry + delay), where Kafka waits five minutes."""
    delay = config.scheduled_rebalance_max_delay_ms
    return config.session_timeout_ms // 3 if delay < 0 else delay


def restart_answer(status: ConnectorStatus, plan: common.RestartPlan) -> ConnectorStatus:
    """The status a restart request answers with: what ``plan`` restarts shown as
    RESTARTING (the workers restart them shortly after)."""
    restarting = str(State.RESTARTING)
    tasks = tuple(
        TaskState(t.id, restarting, t.worker_id) if t.id in plan.tasks else t for t in status.tasks
    )
    state = restarting if plan.connector else status.state
    return ConnectorStatus(status.name, state, status.worker_id, status.type, tasks, status.trace)


class DistributedHerder(common.StoredConnectorReads):
    """One worker of a distributed group and the `Herder` its REST API uses.

    Construct, then `start` (joins the group); `stop` leaves gracefully: its work
    stops, its member record says so, and the others take over at once. The herder
    methods only read and write the stores, so they work before `start` too.
    Thread-safe.
    """

    def __init__(
        self,
        worker_config: WorkerConfig,
        access_point: MessagingAccessPoint,
        providers: Mapping[str, ConfigProvider] | None = None,
        url: str = "",
    ) -> None:
        config = worker_config
        self.config = config
        self.worker_id = config.worker_id or f"{socket.gethostname()}:{os.getpid()}"
        self.url = url or config.rest_advertised_url
        self.access_point = access_point
        kv, group = access_point.kv, config.group_id
        self._statuses = PauseHoldingStatuses(kv, group)
        self.stores = ConnectStores(ConfigStore(kv, group), OffsetStore(kv, group), self._statuses)
        self.keys = GroupKeys.of(config.group_id)
        self._providers = default_providers() if providers is None else providers
        self._poll_s = min(0.5, config.heartbeat_interval_ms / 1000)
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="omconnect-herder")
        self.worker: Worker | None = None
        self.member: GroupMember | None = None
        self._work: AssignedWork | None = None
        self._leader_loop: LeaderLoop | None = None

    # -- lifecycle -------------------------------------------------------------------
    def start(self) -> DistributedHerder:
        """Join the group and start following the assignment."""
        config, ap = self.config, self.access_point
        self.worker = Worker(self.worker_id, config, ap, self.stores)
        self.worker.on_reconfiguration = self._reconfigure
        self.member = GroupMember(
            ap.kv, self.keys, self.worker_id, self.url, config.session_timeout_ms,
            config.heartbeat_interval_ms, on_lost=self._on_lost, on_change=self._poke,
        )  # fmt: skip
        self._work = AssignedWork(
            self.worker, self.stores, ap.kv, self.keys, self.member, self._providers
        )
        self._statuses.hold = self._work.hold_paused
        leader = Leader(
            ap, self.keys, self.stores.configs, self._statuses, self.worker_id,
            rebalance_delay_ms(config), config.assignment_strategy,
        )  # fmt: skip
        self._leader_loop = LeaderLoop(
            leader, ap, self.keys, lambda: self.member is not None and self.member.is_leader,
            self._poll_s,
        )  # fmt: skip
        self.member.start()
        self._leader_loop.start()
        self._thread.start()
        return self

    def stop(self) -> None:
        """Leave the group gracefully: stop this worker's work (committing offsets),
        mark it left so its units move at once, wait (up to the session timeout) for
        a generation without it, then delete its keys."""
        if self._stop.is_set():
            return
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join()
        if self.worker is not None:
            self.worker.stop()
        if self.member is None or self._leader_loop is None:
            return
        self.member.leave()
        deadline = time.monotonic() + self.config.session_timeout_ms / 1000
        while time.monotonic() < deadline:
            try:
                published, _ = read_published(self.access_point, self.keys)
            except OmConnectError:
                break
            if self.worker_id not in published.workers or not self._others_alive():
                break
            time.sleep(0.05)
        self._leader_loop.stop()
        self.member.release()

    def _others_alive(self) -> bool:
        """True if another worker is in the group to take this one's work over."""
        members = read_members(self.access_point.kv, self.keys)
        return any(m.worker_id != self.worker_id and not m.left for m in members.values())

    def _on_lost(self) -> None:
        if self._work is not None:
            self._work.fence()

    def _poke(self) -> None:
        self._wake.set()
        if self._leader_loop is not None:
            self._leader_loop.poke()

    def _relevant(self, key: str) -> bool:
        rest = key[len(self.keys.prefix) :]
        return rest in ("assignment", "leader") or rest.startswith(
            ("configs/", "tasks/", "restarts/")
        )

    def _run(self) -> None:
        revision = 0
        while not self._stop.is_set():
            try:
                self._wake.clear()
                published, _ = read_published(self.access_point, self.keys)
                if self._work is not None:
                    self._work.apply(published)
                if self.member is not None:
                    self.member.try_lead()
                if not self._wake.is_set():
                    _, revision = watch_for(
                        self.access_point.backend, self.access_point.namespace,
                        self.keys.prefix, revision, self._poll_s, self._relevant,
                    )  # fmt: skip
            except OmConnectError as exc:
                log.warning("worker %s: %s; retrying", self.worker_id, exc)
                self._stop.wait(self._poll_s)

    # -- what tests and metrics look at ----------------------------------------------
    @property
    def is_leader(self) -> bool:
        """True while this worker holds the leader lease."""
        return self.member is not None and self.member.is_leader

    def running(self) -> tuple[list[str], list[str]]:
        """(connectors, task ids) this worker runs."""
        if self._work is None:
            return [], []
        units = self._work.running()
        return list(units.connectors), list(units.tasks)

    # -- Herder: configs -------------------------------------------------------------

    def connector_info(self, name: str) -> ConnectorInfo:
        """Config (secrets hidden) and task ids."""
        record = self._record(name)
        shown = common.redact_config(record.config)
        kind = common.connector_type(record.config)
        return ConnectorInfo(name, shown, tuple(range(self._task_count(name))), kind)

    def put_connector_config(
        self, name: str, config: Mapping[str, str]
    ) -> tuple[bool, ConnectorInfo]:
        """Validate and store; an existing connector keeps its target state. The
        write is a compare-and-set, retried if another worker wrote meanwhile."""
        for _ in range(MAX_WRITE_ATTEMPTS):
            existing = self.stores.configs.get(name)
            merged = common.keep_hidden_secrets(config, existing.config if existing else None)
            merged = common.with_name(name, merged)
            check_valid(self.validate_config(str(merged.get("connector.class", "")), merged))
            target = existing.target_state if existing else TargetState.RUNNING
            revision = existing.revision if existing else 0
            if self.stores.configs.put(name, merged, target, revision) is not None:
                return existing is None, self.connector_info(name)
        raise RebalanceInProgressError(f"connector {name!r}: too many concurrent writes")

    def patch_connector_config(self, name: str, changes: Mapping[str, str | None]) -> ConnectorInfo:
        """Apply ``changes`` (None removes a key) to the stored config, as a put."""
        config = dict(self._record(name).config)
        for key, value in changes.items():
            if value is None:
                config.pop(key, None)
            else:
                config[key] = value
        return self.put_connector_config(name, config)[1]

    def delete_connector(self, name: str) -> None:
        """Remove the connector; its workers stop it. Offsets stay."""
        record = self._record(name)
        if not self.stores.configs.delete(name, record.revision):
            self.delete_connector(name)  # changed meanwhile: NotFoundError if gone
            return
        self.stores.statuses.delete(name)

    # -- Herder: states --------------------------------------------------------------
    def connector_status(self, name: str) -> ConnectorStatus:
        """Connector and task states as their workers reported them."""
        record = self._record(name)
        count = self._task_count(name)
        return common.build_status(name, record.config, self.stores.statuses, count)

    def restart_connector(
        self, name: str, include_tasks: bool, only_failed: bool
    ) -> ConnectorStatus:
        """Ask the connector's worker (and with ``include_tasks`` the tasks' workers)
        to restart it; the answer shows what will restart as RESTARTING. A STOPPED
        connector stays stopped."""
        record = self._record(name)
        status = self.connector_status(name)
        if record.target_state is TargetState.STOPPED:
            return status
        plan = common.restart_plan(status, include_tasks, only_failed)
        self._request_restart(name, plan.connector, list(plan.tasks))
        return restart_answer(status, plan)

    def _reconfigure(self, name: str) -> None:
        """A connector asked for new task configs: restart its instance (tasks
        restart when their configs changed)."""
        try:
            self.restart_connector(name, include_tasks=False, only_failed=False)
        except Exception:
            log.exception("task reconfiguration of %s failed", name)

    def restart_task(self, name: str, task: int) -> None:
        """Ask the worker running task ``task`` to restart it."""
        self._record(name)
        if not 0 <= task < self._task_count(name):
            raise NotFoundError(f"connector {name!r} has no task {task}")
        self._request_restart(name, False, [task])

    def pause_connector(self, name: str) -> None:
        """Target state PAUSED: every task pauses where it runs."""
        self.stores.configs.set_target_state(name, TargetState.PAUSED)

    def resume_connector(self, name: str) -> None:
        """Target state RUNNING."""
        self.stores.configs.set_target_state(name, TargetState.RUNNING)

    def stop_connector(self, name: str) -> None:
        """Target state STOPPED: the connector's worker empties its task configs."""
        self.stores.configs.set_target_state(name, TargetState.STOPPED)

    # -- Herder: offsets -------------------------------------------------------------

    def alter_connector_offsets(self, name: str, offsets: list[dict[str, Any]]) -> None:
        """Set offsets; only once the connector has stopped everywhere."""
        record = self._stopped_everywhere(name)
        ap = self.access_point
        common.alter_offsets(name, record.config, offsets, self.stores.offsets, ap)

    def reset_connector_offsets(self, name: str) -> None:
        """Forget every offset; only once the connector has stopped everywhere."""
        record = self._stopped_everywhere(name)
        common.reset_offsets(name, record.config, self.stores.offsets, self.access_point)

    # -- internals -------------------------------------------------------------------

    def _task_count(self, name: str) -> int:
        tasks = self.stores.configs.get_tasks(name)
        return len(tasks.tasks) if tasks is not None else 0

    def _request_restart(self, name: str, connector: bool, tasks: list[int]) -> None:
        """A request the workers running the connector or those tasks carry out."""
        request = {"connector": name, "restart_connector": connector, "tasks": tasks}
        key = f"{self.keys.restarts}{name}/{uuid.uuid4().hex}"
        self.access_point.kv.put(key, json.dumps(request).encode(), RESTART_TTL_MS)

    def _stopped_everywhere(self, name: str) -> ConnectorConfigRecord:
        """The record, if STOPPED (`ConfigError` otherwise) and no task of it may
        still run (`RebalanceInProgressError` while one may)."""
        record = self._record(name)
        common.require_stopped(name, record.target_state)
        status = self.stores.statuses.get_connector(name)
        published, _ = read_published(self.access_point, self.keys)
        members = read_members(self.access_point.kv, self.keys)
        held = union(
            *(union(e.units, e.revoked) for e in published.workers.values()),
            *(r.units for r in published.reserved),
        )
        busy = any(parse_task_unit(t)[0] == name for t in held.tasks)
        pending = any(m.applied < published.generation for m in members.values() if not m.left)
        if status is None or status.state is not State.STOPPED or busy or pending:
            raise RebalanceInProgressError(
                f"connector {name!r} is still stopping on its workers; retry shortly"
            )
        return record
