"""The distributed rebalance protocol's pure decisions: `decide`, fencing, records.

The last test drives `decide` through random histories of joins, crashes, slow
self-fencing, graceful leaves, rejoins, config changes and leader changes, and
checks after every event that no unit is running on two workers at once, and at the
end that every unit runs exactly once.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from omconnect.errors import CorruptDataError
from omconnect.runtime.assignment import CONSISTENT_HASH, ROUND_ROBIN, WorkerAssignment
from omconnect.runtime.distributed import restart_answer
from omconnect.runtime.herder import ConnectorStatus, TaskState
from omconnect.runtime.herder_common import restart_plan
from omconnect.runtime.rebalance import (
    Entry,
    Incarnation,
    Member,
    Published,
    Reservation,
    connector_units,
    decide,
    fence_after_ms,
    gone_incarnations,
    parse_task_unit,
    task_unit,
    union,
)

DELAY_MS = 3000


def members(*specs: tuple[str, int, int]) -> dict[str, Member]:
    return {w: Member(w, inc, applied) for w, inc, applied in specs}


def step(
    published: Published,
    alive: Mapping[str, Member],
    counts: Mapping[str, int],
    gone: dict[Incarnation, float] | None = None,
    now: float = 0.0,
) -> tuple[Published | None, float | None, tuple[str, ...]]:
    seen = gone_incarnations(published, alive, gone or {}, now)
    units = connector_units(counts)
    d = decide(published, alive, units, seen, now, DELAY_MS, "leader", ROUND_ROBIN)
    return d.publish, d.wake_at, d.waiting_for


def all_units(published: Published) -> WorkerAssignment:
    return union(*(e.units for e in published.workers.values()))


def test_first_generation_spreads_connectors_and_tasks_evenly() -> None:
    new, _, _ = step(Published(), members(("a", 1, 0), ("b", 2, 0)), {"x": 2, "y": 2})
    assert new is not None and new.generation == 1
    assert {w: len(e.units.tasks) for w, e in new.workers.items()} == {"a": 2, "b": 2}
    assert {w: len(e.units.connectors) for w, e in new.workers.items()} == {"a": 1, "b": 1}
    assert all_units(new) == WorkerAssignment.of(["x", "y"], ["x-0", "x-1", "y-0", "y-1"])


def test_consistent_hash_strategy_assigns_every_unit_once() -> None:
    alive = members(("a", 1, 0), ("b", 2, 0), ("c", 3, 0))
    units = connector_units({"x": 4, "y": 3})
    d = decide(Published(), alive, units, {}, 0.0, DELAY_MS, "a", CONSISTENT_HASH)
    assert d.publish is not None
    per_worker = [e.units for e in d.publish.workers.values()]
    assert sum(len(u.tasks) for u in per_worker) == 7
    assert union(*per_worker) == WorkerAssignment.of(
        ["x", "y"], [t for ts in units.values() for t in ts]
    )


def test_nothing_is_published_while_a_worker_has_not_acknowledged() -> None:
    first, _, _ = step(Published(), members(("a", 1, 0)), {"x": 1})
    assert first is not None
    new, _, waiting = step(first, members(("a", 1, 0), ("b", 2, 0)), {"x": 1})
    assert new is None and waiting == ("a",)


def test_nothing_is_published_when_nothing_changed() -> None:
    first, _, _ = step(Published(), members(("a", 1, 0)), {"x": 1})
    assert first is not None
    assert step(first, members(("a", 1, 1)), {"x": 1})[0] is None


def test_a_unit_moves_between_live_workers_in_two_generations() -> None:
    first, _, _ = step(Published(), members(("a", 1, 0)), {"x": 1, "y": 1})
    assert first is not None and len(first.workers["a"].units) == 4
    # b joins: a gives up half (revoked), b gets nothing yet
    second, _, _ = step(first, members(("a", 1, 1), ("b", 2, 0)), {"x": 1, "y": 1})
    assert second is not None
    assert len(second.workers["a"].units) == 2 and len(second.workers["a"].revoked) == 2
    assert len(second.workers["b"].units) == 0
    # a acknowledged: now b gets what a gave up
    third, _, _ = step(second, members(("a", 1, 2), ("b", 2, 2)), {"x": 1, "y": 1})
    assert third is not None
    assert third.workers["b"].units == second.workers["a"].revoked
    assert third.workers["a"].units == second.workers["a"].units  # nothing else moved
    assert third.generation == second.generation + 1


def test_a_departed_workers_units_wait_for_the_delay() -> None:
    first, _, _ = step(Published(), members(("a", 1, 0), ("b", 2, 0)), {"x": 1, "y": 1})
    assert first is not None
    held_by_b = first.workers["b"].units
    alive = members(("a", 1, 1))  # b's lease expired
    second, wake_at, _ = step(first, alive, {"x": 1, "y": 1}, {}, now=10.0)
    assert second is not None and "b" not in second.workers
    assert second.reserved == (Reservation("b", 2, held_by_b),)
    assert second.workers["a"].units == first.workers["a"].units  # a gets none yet
    assert wake_at == pytest.approx(10.0 + DELAY_MS / 1000)
    gone = {("b", 2): 10.0}
    alive = members(("a", 1, second.generation))
    assert step(second, alive, {"x": 1, "y": 1}, gone, now=12.9)[0] is None
    third, wake_at, _ = step(second, alive, {"x": 1, "y": 1}, gone, now=13.0)
    assert third is not None and third.reserved == () and wake_at is None
    assert third.workers["a"].units == all_units(first)


def test_a_gracefully_left_workers_units_move_at_once() -> None:
    first, _, _ = step(Published(), members(("a", 1, 0), ("b", 2, 0)), {"x": 1, "y": 1})
    assert first is not None
    alive = {"a": Member("a", 1, 1), "b": Member("b", 2, 1, left=True)}
    second, wake_at, _ = step(first, alive, {"x": 1, "y": 1}, {}, now=10.0)
    assert second is not None and second.reserved == () and wake_at is None
    assert second.workers["a"].units == all_units(first)


def test_a_rejoined_worker_is_a_new_incarnation_and_waits_like_the_others() -> None:
    first, _, _ = step(Published(), members(("a", 1, 0), ("b", 2, 0)), {"x": 1, "y": 1})
    assert first is not None
    alive = members(("a", 1, 1), ("b", 9, 0))  # b's key expired and b joined again
    second, _, _ = step(first, alive, {"x": 1, "y": 1}, {}, now=5.0)
    assert second is not None
    assert second.workers["b"] == Entry(9, WorkerAssignment(), WorkerAssignment())
    assert second.entry_for("b", 2) == WorkerAssignment()  # the old incarnation has nothing
    assert [(r.worker_id, r.incarnation) for r in second.reserved] == [("b", 2)]


def test_generations_only_grow_even_if_the_assignment_record_was_lost() -> None:
    new, _, _ = step(Published(), members(("a", 1, 41)), {"x": 1})
    assert new is not None and new.generation == 42


def test_deleted_connectors_are_revoked_and_then_forgotten() -> None:
    first, _, _ = step(Published(), members(("a", 1, 0)), {"x": 1, "y": 1})
    assert first is not None
    second, _, _ = step(first, members(("a", 1, 1)), {"y": 1})
    assert second is not None
    assert second.workers["a"].revoked == WorkerAssignment.of(["x"], ["x-0"])
    third, _, _ = step(second, members(("a", 1, 2)), {"y": 1})
    assert third is not None and third.workers["a"].revoked == WorkerAssignment()
    assert step(third, members(("a", 1, 3)), {"y": 1})[0] is None


def test_gone_incarnations_keep_the_first_time_seen() -> None:
    published = Published(
        3, "a", {"a": Entry(1), "b": Entry(2)}, (Reservation("c", 5, WorkerAssignment()),)
    )
    alive = members(("a", 1, 3), ("b", 7, 0))
    first = gone_incarnations(published, alive, {}, now=1.0)
    assert first == {("b", 2): 1.0, ("c", 5): 1.0}
    assert gone_incarnations(published, alive, first, now=2.0) == first


def test_records_round_trip_and_reject_garbage() -> None:
    published = Published(
        7,
        "w1",
        {"w1": Entry(3, WorkerAssignment.of(["c"], ["c-0"]), WorkerAssignment.of([], ["d-1"]))},
        (Reservation("w2", 4, WorkerAssignment.of(["d"], ["d-0"])),),
    )
    assert Published.decode(published.encode()) == published
    with pytest.raises(CorruptDataError):
        Published.decode(b'{"generation": 1}')
    with pytest.raises(CorruptDataError):
        Published.decode(b"not json")


def test_task_units_round_trip_even_with_dashes_and_digits_in_names() -> None:
    for name in ("c", "a-1", "x-2-3", "file-source"):
        assert parse_task_unit(task_unit(name, 12)) == (name, 12)
    with pytest.raises(CorruptDataError):
        parse_task_unit("no-number-")


def test_a_worker_fences_itself_before_its_lease_can_expire() -> None:
    assert fence_after_ms(3000, 1000) == 2000
    assert fence_after_ms(3000, 3000) == 1500  # a too-long heartbeat still leaves margin
    assert all(fence_after_ms(s, h) < s for s in (100, 3000, 60000) for h in (1, 100, 5000))


def test_restart_answer_marks_what_restarts() -> None:
    status = ConnectorStatus(
        "c",
        "RUNNING",
        "w1",
        "source",
        (TaskState(0, "RUNNING", "w1"), TaskState(1, "FAILED", "w2", "trace")),
    )

    def answer(include_tasks: bool, only_failed: bool) -> list[str]:
        shown = restart_answer(status, restart_plan(status, include_tasks, only_failed))
        return [shown.state, *(t.state for t in shown.tasks)]

    assert answer(False, False) == ["RESTARTING", "RUNNING", "FAILED"]
    assert answer(True, True) == ["RUNNING", "RUNNING", "RESTARTING"]
    assert answer(True, False) == ["RESTARTING", "RESTARTING", "RESTARTING"]


# -- random histories ---------------------------------------------------------------------


@dataclass
class SimWorker:
    incarnation: int
    running: set[str] = field(default_factory=set)
    applied: int = 0
    key: bool = True  # the member key exists
    left: bool = False
    fences_at: float | None = None  # a crashed worker still runs its units until then


@dataclass
class Sim:
    rng: random.Random
    now: float = 0.0
    next_incarnation: int = 1
    workers: dict[str, SimWorker] = field(default_factory=dict)
    published: Published = field(default_factory=Published)
    gone: dict[Incarnation, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=lambda: {"a": 2, "b": 1})

    def members(self) -> dict[str, Member]:
        return {
            w: Member(w, s.incarnation, s.applied, s.left) for w, s in self.workers.items() if s.key
        }

    def join(self, worker_id: str) -> None:
        old = self.workers.get(worker_id)
        if old is not None and (old.key or old.running):
            return  # still a member, or not yet fenced
        self.workers[worker_id] = SimWorker(self.next_incarnation)
        self.next_incarnation += 1

    def crash(self, worker_id: str) -> None:
        worker = self.workers.get(worker_id)
        if worker is not None and worker.key and not worker.left:
            worker.key = False  # the lease expired; the process stops later, by itself
            worker.fences_at = self.now + self.rng.uniform(0, DELAY_MS / 1000 * 0.99)

    def leave(self, worker_id: str) -> None:
        worker = self.workers.get(worker_id)
        if worker is not None and worker.key:
            worker.running.clear()
            worker.left = True

    def delete_left(self, worker_id: str) -> None:
        worker = self.workers.get(worker_id)
        if worker is not None and worker.left:
            worker.key = False

    def apply(self, worker_id: str) -> None:
        worker = self.workers.get(worker_id)
        if worker is None or not worker.key or worker.left:
            return  # only a member holding its lease follows the assignment
        entry = self.published.entry_for(worker_id, worker.incarnation)
        wanted = set(entry.connectors) | set(entry.tasks)
        worker.running &= wanted  # stop first ...
        worker.applied = self.published.generation  # ... acknowledge ...
        worker.running |= wanted  # ... then start

    def lead(self) -> None:
        alive = self.members()
        self.gone = gone_incarnations(self.published, alive, self.gone, self.now)
        units = connector_units(self.counts)
        d = decide(self.published, alive, units, self.gone, self.now, DELAY_MS, "l", ROUND_ROBIN)
        if d.publish is not None:
            assert d.publish.generation > self.published.generation
            self.published = d.publish

    def tick(self, seconds: float) -> None:
        self.now += seconds
        for worker in self.workers.values():
            if worker.fences_at is not None and worker.fences_at <= self.now:
                worker.running.clear()
                worker.fences_at = None

    def check_no_unit_twice(self) -> None:
        seen: dict[str, str] = {}
        for worker_id, worker in self.workers.items():
            for unit in worker.running:
                assert unit not in seen, f"{unit} runs on {seen[unit]} and {worker_id} at once"
                seen[unit] = worker_id


@settings(max_examples=150, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_random_histories_never_run_a_unit_twice_and_converge(seed: int) -> None:
    rng = random.Random(seed)
    sim = Sim(rng)
    ids = ["w1", "w2", "w3", "w4"]
    for _ in range(120):
        action = rng.choice(["join", "crash", "leave", "delete", "apply", "apply", "lead",
                             "lead", "tick", "config", "new-leader"])  # fmt: skip
        worker_id = rng.choice(ids)
        if action == "join":
            sim.join(worker_id)
        elif action == "crash":
            sim.crash(worker_id)
        elif action == "leave":
            sim.leave(worker_id)
        elif action == "delete":
            sim.delete_left(worker_id)
        elif action == "apply":
            sim.apply(worker_id)
        elif action == "lead":
            sim.lead()
        elif action == "tick":
            sim.tick(rng.choice([0.1, 0.5, 1.0, 2.0]))
        elif action == "config":
            sim.counts = {n: rng.randint(0, 3) for n in rng.sample(["a", "b", "c"], 2)}
        else:
            sim.gone = {}  # a new leader remembers nothing
        sim.check_no_unit_twice()
    # Quiet period: the survivors settle and every unit runs exactly once.
    if not any(w.key and not w.left for w in sim.workers.values()):
        sim.join("w9")
    for _ in range(12):
        sim.tick(1.0)
        sim.lead()
        for worker_id in list(sim.workers):
            sim.apply(worker_id)
        sim.check_no_unit_twice()
    expected = set(connector_units(sim.counts)) | {
        t for tasks in connector_units(sim.counts).values() for t in tasks
    }
    running = [u for w in sim.workers.values() for u in w.running]
    assert sorted(running) == sorted(expected)
