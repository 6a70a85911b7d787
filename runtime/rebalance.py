"""Distributed mode's rebalance protocol: the records and the leader's decision. Pure.

The leader publishes an assignment (`Published`) under ``connect/<group>/assignment``;
each generation is one higher than the last. Workers announce themselves with a
`Member` record under ``connect/<group>/workers/<id>`` (a TTL lease): its
*incarnation* is the key's create revision, so a worker whose lease expired and
that joins again is a new incarnation, and ``applied`` is the last generation it has
carried out (an acknowledgement).

`decide` is the leader's whole policy. Its guarantees, given that every worker stops
what its entry no longer lists before it acknowledges a generation:

- **No unit runs twice at once.** A unit is given to a worker only when no one else
  may still run it: not listed for another live worker, not revoked from a worker
  that has not yet acknowledged, and not held by a departed worker (its
  `Reservation`) until ``delay_ms`` after the leader saw it go. A departed worker
  stops its own work once it cannot renew its lease (see `fence_after_ms`), well
  before the reservation ends.
- **Cooperative.** A unit moving between two live workers is first revoked (one
  generation) and given to its new owner only after the old one acknowledged (the
  next); nothing else stops. The leader publishes nothing new until every live
  worker has acknowledged the current generation.
- **Sticky and balanced** through `omconnect.runtime.assignment.compute_assignment`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from omconnect.errors import CorruptDataError
from omconnect.runtime.assignment import WorkerAssignment, compute_assignment

Incarnation = tuple[str, int]  # (worker id, create revision of its member key)
EMPTY = WorkerAssignment()


@dataclass(frozen=True, slots=True)
class Member:
    """A live member key: who, which incarnation, what it has acknowledged."""

    worker_id: str
    incarnation: int
    applied: int = 0
    left: bool = False  # a graceful shutdown stopped all its work
    url: str = ""


@dataclass(frozen=True, slots=True)
class Entry:
    """One live worker's part of a generation: what it runs, and what this
    generation took away from it (still running until it acknowledges)."""

    incarnation: int
    units: WorkerAssignment = EMPTY
    revoked: WorkerAssignment = EMPTY


@dataclass(frozen=True, slots=True)
class Reservation:
    """Units a departed worker may still run: no one gets them for a while."""

    worker_id: str
    incarnation: int
    units: WorkerAssignment


@dataclass(frozen=True, slots=True)
class Published:
    """One generation of the assignment, as stored."""

    generation: int = 0
    leader: str = ""
    workers: Mapping[str, Entry] = field(default_factory=dict)
    reserved: tuple[Reservation, ...] = ()

    def entry_for(self, worker_id: str, incarnation: int) -> WorkerAssignment:
        """What that incarnation of a worker runs in this generation (nothing if the
        entry belongs to another incarnation)."""
        entry = self.workers.get(worker_id)
        return entry.units if entry is not None and entry.incarnation == incarnation else EMPTY

    def same_plan(self, other: Published) -> bool:
        """True if both assign the same units the same way (generation aside)."""
        return dict(self.workers) == dict(other.workers) and set(self.reserved) == set(
            other.reserved
        )

    def encode(self) -> bytes:
        """Canonical JSON."""
        return json.dumps(
            {
                "generation": self.generation,
                "leader": self.leader,
                "workers": {
                    w: {
                        "incarnation": e.incarnation,
                        **_units(e.units),
                        **_units(e.revoked, "revoked_"),
                    }
                    for w, e in sorted(self.workers.items())
                },
                "reserved": [
                    {"worker": r.worker_id, "incarnation": r.incarnation, **_units(r.units)}
                    for r in self.reserved
                ],
            },
            sort_keys=True,
            separators=(",", ":"),
        ).encode()

    @classmethod
    def decode(cls, data: bytes) -> Published:
        """Inverse of `encode`; `CorruptDataError` if it does not parse."""
        try:
            raw = json.loads(data)
            workers = {
                str(w): Entry(int(e["incarnation"]), _assignment(e), _assignment(e, "revoked_"))
                for w, e in raw["workers"].items()
            }
            reserved = tuple(
                Reservation(str(r["worker"]), int(r["incarnation"]), _assignment(r))
                for r in raw["reserved"]
            )
            return cls(int(raw["generation"]), str(raw["leader"]), workers, reserved)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise CorruptDataError(f"assignment record does not parse: {exc}") from None


def _entry(entry: Entry) -> dict[str, object]:
    return {
        "incarnation": entry.incarnation,
        **_units(entry.units),
        **_units(entry.revoked, "revoked_"),
    }


def _units(units: WorkerAssignment, prefix: str = "") -> dict[str, list[str]]:
    return {f"{prefix}connectors": list(units.connectors), f"{prefix}tasks": list(units.tasks)}


def _assignment(raw: Mapping[str, object], prefix: str = "") -> WorkerAssignment:
    connectors, tasks = raw.get(f"{prefix}connectors", []), raw.get(f"{prefix}tasks", [])
    if not isinstance(connectors, list) or not isinstance(tasks, list):
        raise TypeError("connectors and tasks must be lists")
    return WorkerAssignment.of(map(str, connectors), map(str, tasks))


def union(*parts: WorkerAssignment) -> WorkerAssignment:
    """Every connector and task of ``parts``."""
    return WorkerAssignment.of(
        (c for p in parts for c in p.connectors), (t for p in parts for t in p.tasks)
    )


def minus(left: WorkerAssignment, right: WorkerAssignment) -> WorkerAssignment:
    """The units of ``left`` not in ``right``."""
    return WorkerAssignment.of(
        set(left.connectors) - set(right.connectors), set(left.tasks) - set(right.tasks)
    )


def intersect(left: WorkerAssignment, right: WorkerAssignment) -> WorkerAssignment:
    """The units in both."""
    return WorkerAssignment.of(
        set(left.connectors) & set(right.connectors), set(left.tasks) & set(right.tasks)
    )


def fence_after_ms(session_timeout_ms: int, heartbeat_interval_ms: int) -> int:
    """How long a worker may go without renewing its lease before it stops all its
    work: one heartbeat short of the session timeout (at least half of it), so it has
    stopped by the time the lease can have expired on the store."""
    return max(session_timeout_ms - heartbeat_interval_ms, session_timeout_ms // 2)


def gone_incarnations(
    published: Published,
    members: Mapping[str, Member],
    seen_gone: Mapping[Incarnation, float],
    now: float,
) -> dict[Incarnation, float]:
    """When the leader first saw each incarnation of ``published`` gone (its lease
    expired or it came back as a new incarnation): kept from ``seen_gone``, ``now``
    for newly gone ones. Live or cleanly left incarnations are not listed."""
    named = [(w, e.incarnation) for w, e in published.workers.items()]
    named += [(r.worker_id, r.incarnation) for r in published.reserved]
    out: dict[Incarnation, float] = {}
    for worker_id, incarnation in named:
        member = members.get(worker_id)
        if member is None or member.incarnation != incarnation:
            out[(worker_id, incarnation)] = seen_gone.get((worker_id, incarnation), now)
    return out


@dataclass(frozen=True, slots=True)
class Decision:
    """What the leader does now: publish ``publish`` (None: nothing), and look again
    at ``wake_at`` (the clock's time) even if nothing changes; ``waiting_for`` names
    workers whose acknowledgement holds the rebalance up."""

    publish: Published | None
    wake_at: float | None = None
    waiting_for: tuple[str, ...] = ()


def decide(
    published: Published,
    members: Mapping[str, Member],
    connectors: Mapping[str, Sequence[str]],
    gone_since: Mapping[Incarnation, float],
    now: float,
    delay_ms: int,
    leader: str,
    strategy: str,
) -> Decision:
    """The next generation to publish, if any (see the module docstring).

    ``connectors`` maps each connector to its task ids; ``gone_since`` is
    `gone_incarnations`' answer; ``now`` and the result's ``wake_at`` are on the same
    clock, in seconds.
    """
    waiting = tuple(
        w
        for w, e in sorted(published.workers.items())
        if (m := members.get(w)) is not None
        and m.incarnation == e.incarnation
        and not m.left
        and m.applied < published.generation
    )
    if waiting:
        return Decision(None, None, waiting)
    active = {w: m for w, m in members.items() if not m.left}
    reserved = _reservations(published, members, gone_since, now, delay_ms)
    previous = {w: published.entry_for(w, m.incarnation) for w, m in active.items()}
    target = compute_assignment(active, connectors, previous, strategy)
    blocked = union(*previous.values(), *(r.units for r in reserved))
    workers: dict[str, Entry] = {}
    for worker_id, member in sorted(active.items()):
        current, wanted = previous[worker_id], target.get(worker_id, EMPTY)
        keep = intersect(current, wanted)
        add = minus(wanted, blocked)
        workers[worker_id] = Entry(member.incarnation, union(keep, add), minus(current, wanted))
    generation = max([published.generation, *(m.applied for m in members.values())]) + 1
    candidate = Published(generation, leader, workers, tuple(reserved))
    wake = [gone_since.get((r.worker_id, r.incarnation), now) + delay_ms / 1000 for r in reserved]
    wake_at = min(wake) if wake else None
    if candidate.same_plan(published):
        return Decision(None, wake_at)
    return Decision(candidate, wake_at)


def _reservations(
    published: Published,
    members: Mapping[str, Member],
    gone_since: Mapping[Incarnation, float],
    now: float,
    delay_ms: int,
) -> list[Reservation]:
    """The reservations still in force: old ones and the entries of workers gone
    since the last generation, until ``delay_ms`` after they were seen gone."""
    candidates = list(published.reserved)
    for worker_id, entry in published.workers.items():
        member = members.get(worker_id)
        if member is None or member.incarnation != entry.incarnation:
            held = union(entry.units, entry.revoked)
            if len(held):
                candidates.append(Reservation(worker_id, entry.incarnation, held))
    out: list[Reservation] = []
    for reservation in candidates:
        since = gone_since.get((reservation.worker_id, reservation.incarnation), now)
        if now - since < delay_ms / 1000:
            out.append(reservation)
    return sorted(out, key=lambda r: (r.worker_id, r.incarnation))


def task_unit(connector: str, task: int) -> str:
    """The assignment's id of a task (``TaskId``'s text form)."""
    return f"{connector}-{task}"


def parse_task_unit(unit: str) -> tuple[str, int]:
    """(connector, task number) of a task unit; `CorruptDataError` if malformed."""
    connector, _, number = unit.rpartition("-")
    if not connector or not number.isdigit():
        raise CorruptDataError(f"not a task id: {unit!r}")
    return connector, int(number)


def connector_units(task_counts: Mapping[str, int]) -> dict[str, list[str]]:
    """The assignment's input: each connector with its task ids."""
    return {name: [task_unit(name, i) for i in range(count)] for name, count in task_counts.items()}


def worker_changes(
    running: WorkerAssignment, wanted: WorkerAssignment
) -> tuple[WorkerAssignment, WorkerAssignment]:
    """(stop, start) that turn what runs here into what should: stop first."""
    return minus(running, wanted), minus(wanted, running)


def members_of(values: Iterable[Member]) -> dict[str, Member]:
    """Members by worker id."""
    return {m.worker_id: m for m in values}
