"""The group leader's loop: read the group's state, `decide`, publish.

Only the worker holding the leader lease runs `Leader.step`; a step reads the
members, the connector configs and task counts and the published assignment,
and publishes the next generation with compare-and-set on the assignment key's
revision. That CAS keeps the history of generations linear even if two workers
believe they lead for a moment (a paused leader waking up): each generation is
computed from the one it replaces. The leader remembers when it first saw each
departed incarnation gone; a new leader starts those clocks afresh (later, never
sooner, so departed work is never given away early).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from omconnect.access_point import MessagingAccessPoint
from omconnect.errors import OmConnectError
from omconnect.runtime.group import GroupKeys, read_members, watch_for
from omconnect.runtime.rebalance import (
    Incarnation,
    Published,
    connector_units,
    decide,
    gone_incarnations,
    parse_task_unit,
)
from omconnect.runtime.stores import ConfigStore, State, Status, StatusStore

log = logging.getLogger(__name__)


def read_published(access_point: MessagingAccessPoint, keys: GroupKeys) -> tuple[Published, int]:
    """The published assignment and its KV revision ((empty, 0) before the first)."""
    entry = access_point.kv.get(keys.assignment)
    if entry is None:
        return Published(), 0
    return Published.decode(entry.value), entry.revision


class Leader:
    """The leader's decisions for one group, applied to the KV store."""

    def __init__(
        self,
        access_point: MessagingAccessPoint,
        keys: GroupKeys,
        configs: ConfigStore,
        statuses: StatusStore,
        worker_id: str,
        delay_ms: int,
        strategy: str,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ap = access_point
        self._keys = keys
        self._configs = configs
        self._statuses = statuses
        self._worker_id = worker_id
        self._delay_ms = delay_ms
        self._strategy = strategy
        self._clock = clock
        self._gone: dict[Incarnation, float] = {}
        self.rebalances = 0

    def reset(self) -> None:
        """Forget what this leader saw (it is no longer, or again, the leader)."""
        self._gone = {}

    def step(self) -> float | None:
        """Publish the next generation if one is due; return when to look again
        (clock time) even without any change, or None."""
        members = read_members(self._ap.kv, self._keys)
        published, revision = read_published(self._ap, self._keys)
        counts: dict[str, int] = {}
        for record in self._configs.list():
            tasks = self._configs.get_tasks(record.name)
            counts[record.name] = len(tasks.tasks) if tasks is not None else 0
        now = self._clock()
        self._gone = gone_incarnations(published, members, self._gone, now)
        decision = decide(
            published,
            members,
            connector_units(counts),
            self._gone,
            now,
            self._delay_ms,
            self._worker_id,
            self._strategy,
        )
        if decision.waiting_for:
            log.debug("rebalance waits for %s", ", ".join(decision.waiting_for))
        if decision.publish is not None:
            data = decision.publish.encode()
            if self._ap.kv.compare_and_set(self._keys.assignment, data, revision) is None:
                return now  # someone else published meanwhile: look again at once
            self.rebalances += 1
            self._mark_unassigned(published, decision.publish, set(counts))
            log.info(
                "published generation %d: %s",
                decision.publish.generation,
                {w: len(e.units) for w, e in decision.publish.workers.items()},
            )
        return decision.wake_at

    def _mark_unassigned(self, old: Published, new: Published, existing: set[str]) -> None:
        """Show the work of newly departed workers as UNASSIGNED until it runs again
        (at this generation, so the new owner's RUNNING, later, wins)."""
        before = set(old.reserved)
        for reservation in new.reserved:
            if reservation in before:
                continue
            status = Status(State.UNASSIGNED, reservation.worker_id, new.generation)
            for name in reservation.units.connectors:
                if name in existing:
                    self._statuses.put_connector(name, status)
            for unit in reservation.units.tasks:
                name, number = parse_task_unit(unit)
                if name in existing:
                    self._statuses.put_task(name, number, status)


class LeaderLoop:
    """Runs `Leader.step` whenever this worker leads and the group changes."""

    def __init__(
        self, leader: Leader, access_point: MessagingAccessPoint, keys: GroupKeys,
        is_leader: Callable[[], bool], poll_s: float,
    ) -> None:  # fmt: skip
        self._leader = leader
        self._ap = access_point
        self._keys = keys
        self._is_leader = is_leader
        self._poll_s = poll_s
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="omconnect-leader")

    def start(self) -> None:
        self._thread.start()

    def poke(self) -> None:
        """Look again now (leadership or membership changed)."""
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join()

    def _relevant(self, key: str) -> bool:
        rest = key[len(self._keys.prefix) :]
        return rest.startswith(("workers/", "configs/", "tasks/")) or rest == "assignment"

    def _run(self) -> None:
        revision = 0
        leading = False
        while not self._stop.is_set():
            timeout = self._poll_s
            try:
                if self._is_leader():
                    if not leading:
                        self._leader.reset()
                        leading = True
                    wake_at = self._leader.step()
                    if wake_at is not None:
                        timeout = min(timeout, max(0.01, wake_at - time.monotonic()))
                else:
                    leading = False
                if self._wake.is_set():
                    self._wake.clear()
                    continue
                if leading:
                    _, revision = watch_for(
                        self._ap.backend, self._ap.namespace, self._keys.prefix,
                        revision, timeout, self._relevant,
                    )  # fmt: skip
                else:
                    self._wake.wait(timeout)
            except OmConnectError as exc:
                log.warning("leader: %s; retrying", exc)
                self._stop.wait(self._poll_s)
