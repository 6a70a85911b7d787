"""Collapse a batch of changes into what to write, per table (pure).

Within one batch, the changes of one key are reduced to their net effect, so each
table needs at most: a truncate, then one executemany of deletes, then upserts:

* the last change of a key wins: a delete after an upsert deletes;
* an upsert after a delete of the same key (in the batch) becomes delete + upsert, so
  columns the new row leaves out are not kept from the old one (and ``insert`` mode
  can insert again);
* consecutive upserts of a key merge their rows (later values win), as applying them
  one by one would;
* a truncate drops the table's earlier changes of the batch and is applied first.

Changes without a key (``pk.mode=none``) are all kept, in order. Tables are
independent: no order between tables is kept (foreign keys between target tables
are not supported).
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field, replace

from omconnect.connectors.sql.sink_changes import Change, Column, Op


@dataclass
class TablePlan:
    """What to write to one table, in this order: truncate, deletes, upserts."""

    table: str
    truncate: bool = False
    deletes: list[Change] = field(default_factory=list)
    upserts: list[Change] = field(default_factory=list)


@dataclass
class _KeyState:
    deleted: Change | None = None  # a delete earlier in the batch
    upsert: Change | None = None  # the merged upserts after it


@dataclass
class _Table:
    truncate: bool = False
    keys: dict[Hashable, _KeyState] = field(default_factory=dict)
    unkeyed: list[Change] = field(default_factory=list)


def plan_batch(changes: Iterable[Change]) -> list[TablePlan]:
    """The net writes of ``changes`` (in batch order), one plan per table in order of
    first appearance."""
    tables: dict[str, _Table] = {}
    for change in changes:
        state = tables.setdefault(change.table, _Table())
        if change.op is Op.TRUNCATE:
            tables[change.table] = _Table(truncate=True)
        elif not change.key:
            state.unkeyed.append(change)
        else:
            _apply(state.keys.setdefault(_hashable(change), _KeyState()), change)
    return [_table_plan(name, state) for name, state in tables.items()]


def _apply(state: _KeyState, change: Change) -> None:
    if change.op is Op.DELETE:
        state.deleted, state.upsert = change, None
    elif state.upsert is None:
        state.upsert = change
    else:
        state.upsert = _merge(state.upsert, change)


def _merge(earlier: Change, later: Change) -> Change:
    columns: tuple[Column, ...] | None = None
    if earlier.columns is not None and later.columns is not None:
        by_name = {c.name: c for c in earlier.columns} | {c.name: c for c in later.columns}
        columns = tuple(by_name.values())
    return replace(later, row={**earlier.row, **later.row}, columns=columns)


def _table_plan(name: str, state: _Table) -> TablePlan:
    plan = TablePlan(name, truncate=state.truncate)
    for key_state in state.keys.values():
        if key_state.deleted is not None:
            plan.deletes.append(key_state.deleted)
        if key_state.upsert is not None:
            plan.upserts.append(key_state.upsert)
    plan.upserts.extend(state.unkeyed)
    return plan


def _hashable(change: Change) -> Hashable:
    values = tuple(change.key.values())
    try:
        hash(values)
    except TypeError:  # schemaless keys may hold lists or dicts
        return repr(values)
    return values
