"""Task assignment: every unit exactly once, balanced, sticky, minimal movement."""

from __future__ import annotations

import itertools
from collections.abc import Mapping

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from omconnect.errors import ConfigError
from omconnect.runtime.assignment import (
    CONSISTENT_HASH,
    ROUND_ROBIN,
    WorkerAssignment,
    compute_assignment,
    moved_units,
    plan_rebalance,
    unit_order,
)


def tasks_of(**counts: int) -> dict[str, list[str]]:
    return {name: [f"{name}-{n}" for n in range(count)] for name, count in counts.items()}


def owners(assignment: Mapping[str, WorkerAssignment]) -> tuple[dict[str, str], dict[str, str]]:
    connectors: dict[str, str] = {}
    tasks: dict[str, str] = {}
    for worker, a in assignment.items():
        for c in a.connectors:
            assert c not in connectors, f"connector {c} assigned twice"
            connectors[c] = worker
        for t in a.tasks:
            assert t not in tasks, f"task {t} assigned twice"
            tasks[t] = worker
    return connectors, tasks


def spread(assignment: Mapping[str, WorkerAssignment]) -> tuple[int, int]:
    c = [len(a.connectors) for a in assignment.values()]
    t = [len(a.tasks) for a in assignment.values()]
    return max(c) - min(c), max(t) - min(t)


# -- examples ------------------------------------------------------------------------


def test_initial_assignment_spreads_each_connectors_tasks() -> None:
    result = compute_assignment(["w1", "w2", "w3"], tasks_of(a=3, b=3))
    assert result["w1"].connectors == ("a",)
    assert result["w2"].connectors == ("b",)
    assert result["w3"].tasks == ("a-0", "b-0")  # no connector: first pick of tasks
    for a in result.values():
        assert sorted(t[0] for t in a.tasks) == ["a", "b"]


def test_connector_load_breaks_task_ties() -> None:
    result = compute_assignment(["w1", "w2"], tasks_of(a=1))
    assert result["w1"].connectors == ("a",)
    assert result["w2"].tasks == ("a-0",)  # the worker without the connector takes the task


def test_task_ids_sort_naturally() -> None:
    assert sorted(["c-10", "c-2", "c-1"], key=unit_order) == ["c-1", "c-2", "c-10"]
    result = compute_assignment(["w"], tasks_of(c=11))
    assert result["w"].tasks[-1] == "c-10"


def test_no_workers_assigns_nothing() -> None:
    assert compute_assignment([], tasks_of(a=2)) == {}


def test_idle_workers_are_listed_with_nothing() -> None:
    result = compute_assignment(["w1", "w2", "w3"], tasks_of(a=0))
    assert sum(len(a) for a in result.values()) == 1
    assert set(result) == {"w1", "w2", "w3"}


def test_unknown_strategy_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="strategy"):
        compute_assignment(["w"], {}, strategy="random")


def test_joining_worker_takes_only_the_surplus() -> None:
    before = compute_assignment(["w1", "w2"], tasks_of(a=4, b=4))
    after = compute_assignment(["w1", "w2", "w3"], tasks_of(a=4, b=4), before)
    owners(after)
    assert len(after["w3"].tasks) == 2  # 8 tasks over 3: 3, 3, 2
    assert spread(after)[1] <= 1
    moved = moved_units(before, after, ["w1", "w2", "w3"])
    assert set(moved.tasks) == set(after["w3"].tasks)


def test_leaving_worker_tasks_go_to_the_least_loaded() -> None:
    before = {
        "w1": WorkerAssignment.of(["a"], ["a-0", "a-1"]),
        "w2": WorkerAssignment.of([], ["a-2", "a-3"]),
        "w3": WorkerAssignment.of([], ["a-4"]),
    }
    after = compute_assignment(["w1", "w3"], tasks_of(a=5), before)
    assert after["w1"].tasks == ("a-0", "a-1")
    assert after["w3"].tasks == ("a-2", "a-3", "a-4")
    assert moved_units(before, after, ["w1", "w3"]) == WorkerAssignment()


def test_overloaded_worker_sheds_only_the_surplus() -> None:
    before = {"w1": WorkerAssignment.of(["a"], [f"a-{n}" for n in range(6)])}
    after = compute_assignment(["w1", "w2"], tasks_of(a=6), before)
    assert after["w1"].tasks == ("a-0", "a-1", "a-2")
    assert after["w2"].tasks == ("a-3", "a-4", "a-5")
    assert after["w1"].connectors == ("a",)


def test_deleted_connector_tasks_disappear() -> None:
    before = compute_assignment(["w1", "w2"], tasks_of(a=2, b=2))
    after = compute_assignment(["w1", "w2"], tasks_of(a=2), before)
    assert {t for a in after.values() for t in a.tasks} == {"a-0", "a-1"}
    assert all("b" not in a.connectors for a in after.values())


def test_unit_claimed_by_two_workers_is_kept_once() -> None:
    before = {
        "w1": WorkerAssignment.of([], ["a-0"]),
        "w2": WorkerAssignment.of([], ["a-0", "a-1"]),
    }
    after = compute_assignment(["w1", "w2"], {"a": ["a-0", "a-1"]}, before)
    assert after["w1"].tasks == ("a-0",)
    assert after["w2"].tasks == ("a-1",)


def test_result_ignores_input_order() -> None:
    one = compute_assignment(["w2", "w1", "w3"], {"b": ["b-1", "b-0"], "a": ["a-0"]})
    two = compute_assignment(["w3", "w1", "w2"], {"a": ["a-0"], "b": ["b-0", "b-1"]})
    assert one == two


def test_consistent_hash_is_stable_and_moves_little() -> None:
    connectors = tasks_of(a=40, b=40)
    before = compute_assignment(["w1", "w2", "w3"], connectors, strategy=CONSISTENT_HASH)
    again = compute_assignment(["w3", "w2", "w1"], connectors, before, strategy=CONSISTENT_HASH)
    assert again == before
    after = compute_assignment(["w1", "w2", "w3", "w4"], connectors, strategy=CONSISTENT_HASH)
    moved = moved_units(before, after, ["w1", "w2", "w3", "w4"])
    assert set(moved.tasks) == set(after["w4"].tasks)  # only the newcomer gains
    assert 0 < len(after["w4"].tasks) < 40  # about a quarter of 80


def test_plan_rebalance_stops_only_moved_units() -> None:
    old = {
        "w1": WorkerAssignment.of(["a"], ["a-0", "a-1", "a-2"]),
        "w2": WorkerAssignment.of([], ["a-3"]),
    }
    new = {
        "w1": WorkerAssignment.of(["a"], ["a-0", "a-1"]),
        "w2": WorkerAssignment.of([], ["a-3"]),
        "w3": WorkerAssignment.of([], ["a-2"]),
    }
    plan = plan_rebalance(old, new)
    assert set(plan) == {"w1", "w3"}
    assert plan["w1"].stop == WorkerAssignment.of([], ["a-2"])
    assert plan["w1"].start == WorkerAssignment()
    assert plan["w3"].start == WorkerAssignment.of([], ["a-2"])
    assert plan["w3"].stop == WorkerAssignment()


def test_plan_rebalance_for_a_departed_worker_stops_everything() -> None:
    old = {"w1": WorkerAssignment.of(["a"], ["a-0"])}
    plan = plan_rebalance(old, {"w2": WorkerAssignment.of(["a"], ["a-0"])})
    assert plan["w1"].stop == WorkerAssignment.of(["a"], ["a-0"])
    assert plan["w2"].start == WorkerAssignment.of(["a"], ["a-0"])


# -- properties ----------------------------------------------------------------------

worker_ids = st.lists(st.sampled_from([f"w{n}" for n in range(8)]), min_size=1, unique=True)
connector_sets = st.dictionaries(
    st.sampled_from(list("abcdefg")), st.integers(min_value=0, max_value=9), max_size=6
).map(lambda counts: tasks_of(**counts))
strategies = st.sampled_from([ROUND_ROBIN, CONSISTENT_HASH])


@settings(max_examples=200, deadline=None)
@given(worker_ids, connector_sets, strategies)
def test_every_unit_exactly_once(
    workers: list[str], connectors: dict[str, list[str]], strategy: str
) -> None:
    result = compute_assignment(workers, connectors, strategy=strategy)
    assert set(result) == set(workers)
    connector_owner, task_owner = owners(result)
    assert set(connector_owner) == set(connectors)
    assert set(task_owner) == {t for ts in connectors.values() for t in ts}


@settings(max_examples=200, deadline=None)
@given(worker_ids, connector_sets, worker_ids, connector_sets)
def test_round_robin_balance_within_one(
    workers: list[str],
    connectors: dict[str, list[str]],
    old_workers: list[str],
    old: dict[str, list[str]],
) -> None:
    previous = compute_assignment(old_workers, old)
    result = compute_assignment(workers, connectors, previous)
    assert spread(result)[0] <= 1
    assert spread(result)[1] <= 1


@settings(max_examples=200, deadline=None)
@given(worker_ids, connector_sets, strategies)
def test_nothing_changed_nothing_moves(
    workers: list[str], connectors: dict[str, list[str]], strategy: str
) -> None:
    first = compute_assignment(workers, connectors, strategy=strategy)
    again = compute_assignment(list(reversed(workers)), connectors, first, strategy=strategy)
    assert again == first
    assert plan_rebalance(first, again) == {}


def minimal_task_moves(
    previous: Mapping[str, WorkerAssignment], workers: list[str], tasks: set[str]
) -> int:
    """Brute force: the fewest tasks that must leave a living worker for balance."""
    kept = {w: len(set(previous.get(w, WorkerAssignment()).tasks) & tasks) for w in workers}
    base, extra = divmod(len(tasks), len(workers))
    best = None
    for bigger in itertools.combinations(workers, extra):
        moves = sum(max(0, kept[w] - base - (1 if w in bigger else 0)) for w in workers)
        best = moves if best is None else min(best, moves)
    return best or 0


arbitrary_previous = st.dictionaries(
    st.sampled_from([f"w{n}" for n in range(8)]),
    st.lists(st.sampled_from([f"{c}-{n}" for c in "abcdefg" for n in range(10)]), unique=True),
    max_size=8,
)


@settings(max_examples=300, deadline=None)
@given(worker_ids, connector_sets, arbitrary_previous)
def test_round_robin_moves_the_minimum(
    workers: list[str], connectors: dict[str, list[str]], raw: dict[str, list[str]]
) -> None:
    # disjoint previous ownership (as a real previous assignment is)
    seen: set[str] = set()
    previous: dict[str, WorkerAssignment] = {}
    for worker in sorted(raw):
        mine = [t for t in raw[worker] if t not in seen]
        seen |= set(mine)
        previous[worker] = WorkerAssignment.of([], mine)
    result = compute_assignment(workers, connectors, previous)
    tasks = {t for ts in connectors.values() for t in ts}
    assert spread(result)[1] <= 1
    moved = moved_units(previous, result, workers)
    assert len(moved.tasks) == minimal_task_moves(previous, workers, tasks)
    # every unit that did not move stayed with its living previous owner
    for worker in workers:
        for task in set(previous.get(worker, WorkerAssignment()).tasks) & tasks:
            if task not in moved.tasks:
                assert task in result[worker].tasks


@settings(max_examples=200, deadline=None)
@given(worker_ids.filter(lambda ws: len(ws) >= 2), connector_sets, st.data(), strategies)
def test_leaving_worker_only_its_units_move(
    workers: list[str], connectors: dict[str, list[str]], data: st.DataObject, strategy: str
) -> None:
    before = compute_assignment(workers, connectors, strategy=strategy)
    leaving = data.draw(st.sampled_from(workers))
    remaining = [w for w in workers if w != leaving]
    after = compute_assignment(remaining, connectors, before, strategy=strategy)
    assert moved_units(before, after, remaining) == WorkerAssignment()
    for worker in remaining:
        assert set(before[worker].tasks) <= set(after[worker].tasks)
        assert set(before[worker].connectors) <= set(after[worker].connectors)


@settings(max_examples=200, deadline=None)
@given(worker_ids, connector_sets, st.sampled_from([f"w{n}" for n in range(8, 12)]))
def test_joining_worker_consistent_hash_only_gains(
    workers: list[str], connectors: dict[str, list[str]], newcomer: str
) -> None:
    before = compute_assignment(workers, connectors, strategy=CONSISTENT_HASH)
    after = compute_assignment([*workers, newcomer], connectors, before, strategy=CONSISTENT_HASH)
    moved = moved_units(before, after, [*workers, newcomer])
    assert set(moved.tasks) == set(after[newcomer].tasks)
    assert set(moved.connectors) == set(after[newcomer].connectors)


@settings(max_examples=200, deadline=None)
@given(worker_ids, connector_sets, worker_ids, connector_sets)
def test_plan_applied_to_old_gives_new(
    w1: list[str], c1: dict[str, list[str]], w2: list[str], c2: dict[str, list[str]]
) -> None:
    old = compute_assignment(w1, c1)
    new = compute_assignment(w2, c2, old)
    plan = plan_rebalance(old, new)
    for worker in set(old) | set(new):
        before = old.get(worker, WorkerAssignment())
        changes = plan.get(worker)
        running = set(before.tasks)
        if changes:
            assert not set(changes.start.tasks) & running
            running = (running - set(changes.stop.tasks)) | set(changes.start.tasks)
        assert running == set(new.get(worker, WorkerAssignment()).tasks)
