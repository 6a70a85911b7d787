"""Which worker runs which connector and task: pure, sticky, incremental assignment.

The distributed-mode leader calls `compute_assignment` with the workers alive, the
connectors with their task ids and the previous assignment, and publishes the
result; `plan_rebalance` then tells each worker what to stop and what to start, so a
rebalance stops only the work that moves (Kafka's incremental cooperative protocol).

Connectors and tasks are balanced as two separate pools, as Kafka does: a connector
instance is light, a task does the work. Two strategies:

- ``round-robin`` (`ROUND_ROBIN`): every worker holds within one of the even share
  of each pool. A unit stays on its worker while that worker is alive and the
  balance allows; only the fewest units needed to restore balance move; new and
  orphaned units go to the least loaded workers.
- ``consistent-hash`` (`CONSISTENT_HASH`): rendezvous hashing; each unit goes to the
  worker with the highest hash of (worker, unit). The previous assignment is not
  needed: a joining worker takes only the units it now wins, a leaving worker's
  units spread over the others, nothing else moves. Balance is statistical only.

Both are deterministic: the same inputs give the same output whatever the order of
workers, connectors or dict keys.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from omconnect.errors import ConfigError

ROUND_ROBIN = "round-robin"
CONSISTENT_HASH = "consistent-hash"
STRATEGIES = (ROUND_ROBIN, CONSISTENT_HASH)


@dataclass(frozen=True, slots=True)
class WorkerAssignment:
    """What one worker runs: connector names and task ids, each sorted."""

    connectors: tuple[str, ...] = ()
    tasks: tuple[str, ...] = ()

    @classmethod
    def of(cls, connectors: Iterable[str] = (), tasks: Iterable[str] = ()) -> WorkerAssignment:
        """An assignment with duplicates removed and both lists in canonical order."""
        return cls(
            tuple(sorted(set(connectors), key=unit_order)),
            tuple(sorted(set(tasks), key=unit_order)),
        )

    def __len__(self) -> int:
        return len(self.connectors) + len(self.tasks)


Assignment = Mapping[str, WorkerAssignment]


@dataclass(frozen=True, slots=True)
class WorkerChanges:
    """One worker's part of a rebalance: stop ``stop`` first, then start ``start``."""

    stop: WorkerAssignment
    start: WorkerAssignment


def unit_order(unit: str) -> tuple[str | int, ...]:
    """Sort key putting ``c-2`` before ``c-10``: digit runs compare as numbers."""
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", unit))


def compute_assignment(
    workers: Iterable[str],
    connectors: Mapping[str, Sequence[str]],
    previous: Assignment | None = None,
    strategy: str = ROUND_ROBIN,
) -> dict[str, WorkerAssignment]:
    """The new assignment: every alive worker maps to what it runs (maybe nothing).

    ``connectors`` maps each connector name to its task ids. ``previous`` is the last
    published assignment (workers no longer alive are ignored, as are units that no
    longer exist). Every connector and task is assigned to exactly one worker; with no
    workers the result is empty. `ConfigError` for an unknown ``strategy``.
    """
    alive = sorted(set(workers))
    names = sorted(set(connectors), key=unit_order)
    tasks = sorted({t for name in names for t in connectors[name]}, key=unit_order)
    if strategy not in STRATEGIES:
        raise ConfigError("strategy", f"must be one of {', '.join(STRATEGIES)}, got {strategy!r}")
    if not alive:
        return {}
    if strategy == CONSISTENT_HASH:
        connector_owner = _rendezvous(alive, names)
        task_owner = _rendezvous(alive, tasks)
    else:
        before = previous or {}
        connector_owner = _balance(alive, names, {w: a.connectors for w, a in before.items()}, {})
        connector_load = {w: 0 for w in alive}
        for owner in connector_owner.values():
            connector_load[owner] += 1
        task_owner = _balance(alive, tasks, {w: a.tasks for w, a in before.items()}, connector_load)
    return {
        worker: WorkerAssignment.of(
            (c for c, w in connector_owner.items() if w == worker),
            (t for t, w in task_owner.items() if w == worker),
        )
        for worker in alive
    }


def _balance(
    workers: list[str],
    units: list[str],
    previous: Mapping[str, Sequence[str]],
    tie_break: Mapping[str, int],
) -> dict[str, str]:
    """Owner of each unit: sticky, balanced within one, fewest moves.

    The ``extra`` workers allowed one unit over the even share are first those that
    already hold more than the share (so the fewest units leave a living worker), then
    those lightest by ``tie_break`` (the other pool's load), then by id.
    """
    existing = set(units)
    kept: dict[str, list[str]] = {w: [] for w in workers}
    owner: dict[str, str] = {}
    for worker in workers:  # sorted: a unit claimed twice stays with the first claimant
        for unit in sorted(set(previous.get(worker, ())), key=unit_order):
            if unit in existing and unit not in owner:
                owner[unit] = worker
                kept[worker].append(unit)
    base, extra = divmod(len(units), len(workers))
    by_holding = sorted(workers, key=lambda w: (len(kept[w]) <= base, tie_break.get(w, 0), w))
    capacity = {w: base + (1 if i < extra else 0) for i, w in enumerate(by_holding)}
    pool = [u for u in units if u not in owner]
    for worker in workers:
        for unit in kept[worker][capacity[worker] :]:  # shed the last ones in sort order
            del owner[unit]
            pool.append(unit)
        del kept[worker][capacity[worker] :]
    load = {w: len(kept[w]) for w in workers}
    for unit in sorted(pool, key=unit_order):
        open_workers = [w for w in workers if load[w] < capacity[w]]
        target = min(open_workers, key=lambda w: (load[w], tie_break.get(w, 0), w))
        owner[unit] = target
        load[target] += 1
    return owner


def _rendezvous(workers: list[str], units: list[str]) -> dict[str, str]:
    """Owner of each unit by highest-random-weight hashing (stable across processes)."""
    return {unit: max(workers, key=lambda w: (_weight(w, unit), w)) for unit in units}


def _weight(worker: str, unit: str) -> int:
    digest = hashlib.blake2b(f"{worker}\x00{unit}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def plan_rebalance(old: Assignment, new: Assignment) -> dict[str, WorkerChanges]:
    """Per worker of ``old`` or ``new``: which units to stop and which to start.

    Only units that leave a worker are stopped; units staying put appear in neither
    list and keep running. A worker must finish its ``stop`` list (and the leader must
    hear so) before any worker starts those units, so no unit ever runs twice at once.
    Workers with nothing to do are left out.
    """
    empty = WorkerAssignment()
    plan: dict[str, WorkerChanges] = {}
    for worker in sorted(set(old) | set(new)):
        before, after = old.get(worker, empty), new.get(worker, empty)
        stop = WorkerAssignment.of(
            set(before.connectors) - set(after.connectors), set(before.tasks) - set(after.tasks)
        )
        start = WorkerAssignment.of(
            set(after.connectors) - set(before.connectors), set(after.tasks) - set(before.tasks)
        )
        if len(stop) or len(start):
            plan[worker] = WorkerChanges(stop, start)
    return plan


def moved_units(old: Assignment, new: Assignment, alive: Iterable[str]) -> WorkerAssignment:
    """The connectors and tasks that ran on a worker still alive and now run on
    another: the ones a rebalance interrupts. Orphans of dead workers are not moved
    units (they stopped already), nor are units that no longer exist."""
    living = set(alive)
    connector_owner = {c: w for w, a in new.items() for c in a.connectors}
    task_owner = {t: w for w, a in new.items() for t in a.tasks}
    connectors: list[str] = []
    tasks: list[str] = []
    for worker, before in old.items():
        if worker not in living:
            continue
        connectors += [c for c in before.connectors if connector_owner.get(c, worker) != worker]
        tasks += [t for t in before.tasks if task_owner.get(t, worker) != worker]
    return WorkerAssignment.of(connectors, tasks)
