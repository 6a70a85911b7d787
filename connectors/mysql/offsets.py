"""Binlog positions, GTID sets and the transaction bookkeeping that makes a restart
exact: pure logic, no I/O.

The source partition is ``{"server": <topic.prefix>}``; the offset (`BinlogOffset`)
says where to restart and what to skip there:

- ``file``/``pos``: the binlog coordinates of the *start* of the transaction the
  last emitted record belongs to (its GTID or BEGIN event), or just after the last
  completed transaction when no transaction is open. A restart reads from there.
- ``gtids``: the GTIDs of the completed transactions (MySQL: a GTID set such as
  ``uuid:1-10``; MariaDB: one ``domain-server-seq`` per domain), up to the last one
  completed. GTID positioning resumes from this set (`plan.gtid_positioning`).
- ``transaction_gtid``: the GTID of the transaction at ``pos`` while its rows are
  partly emitted (empty otherwise). With GTID positioning the file and position
  may name another server's binlog, so the transaction whose rows are skipped is
  recognised by this GTID (by ``pos`` without one).
- ``event``: row events of the transaction at ``pos`` whose rows were all emitted;
  ``row``: rows of the next row event already emitted. A restart skips both.
- ``snapshot``: true while the snapshot runs (a restart redoes the snapshot).
- ``ts_sec``: the binlog time of the event (snapshot: the read time).

`TransactionTracker` follows the binlog event by event and gives each record its
offset, and on resume (or reconnect) says which row events and rows to skip.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from omconnect.errors import FatalError

_MYSQL_GTID = re.compile(r"^([0-9a-fA-F-]{36}(?::[A-Za-z0-9_]+)?):(\d+)$")
_MARIADB_GTID = re.compile(r"^(\d+)-(\d+)-(\d+)$")


@dataclass(frozen=True, slots=True)
class BinlogOffset:
    """One stored offset of the MySQL source; see the module docstring."""

    file: str
    pos: int
    gtids: str = ""
    event: int = 0
    row: int = 0
    snapshot: bool = False
    ts_sec: int = 0
    transaction_gtid: str = ""

    def as_offset(self) -> dict[str, str | int | bool]:
        """The flat map stored by the runtime."""
        return {
            "file": self.file,
            "pos": self.pos,
            "gtids": self.gtids,
            "transaction_gtid": self.transaction_gtid,
            "event": self.event,
            "row": self.row,
            "snapshot": self.snapshot,
            "ts_sec": self.ts_sec,
        }

    @property
    def mid_transaction(self) -> bool:
        """Whether a restart must skip rows of the transaction at ``pos``."""
        return self.event > 0 or self.row > 0

    @classmethod
    def from_offset(cls, stored: Mapping[str, Any]) -> BinlogOffset:
        """Parse a stored offset; `FatalError` naming the bad field if it is not one
        this connector wrote (e.g. an offset of another connector type)."""
        file = stored.get("file")
        if not isinstance(file, str) or not file:
            raise FatalError(f"stored offset {dict(stored)!r} has no binlog 'file'")
        values: dict[str, int] = {}
        for name in ("pos", "event", "row", "ts_sec"):
            value = stored.get(name, 0)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise FatalError(f"stored offset field {name!r} is not a count: {value!r}")
            values[name] = value
        gtids = stored.get("gtids") or ""
        return cls(
            file=file,
            pos=values["pos"],
            gtids=str(gtids),
            event=values["event"],
            row=values["row"],
            snapshot=stored.get("snapshot") is True,
            ts_sec=values["ts_sec"],
            transaction_gtid=str(stored.get("transaction_gtid") or ""),
        )


# --- GTIDs -----------------------------------------------------------------------------


def add_gtid(gtids: str, gtid: str) -> str:
    """``gtids`` with the completed transaction ``gtid`` added.

    MariaDB (``domain-server-seq``): the entry of the GTID's domain is replaced (a
    MariaDB GTID position holds the last GTID of each domain). MySQL
    (``uuid:number``): the number joins the intervals of its source UUID, merging
    adjacent ones (``uuid:1-5`` + ``uuid:6`` = ``uuid:1-6``). An empty ``gtid``
    leaves ``gtids`` unchanged."""
    if not gtid:
        return gtids
    if _MARIADB_GTID.match(gtid):
        return _add_mariadb(gtids, gtid)
    if _MYSQL_GTID.match(gtid):
        return _add_mysql(gtids, gtid)
    raise ValueError(f"{gtid!r} is neither a MySQL nor a MariaDB GTID")


def _add_mariadb(gtids: str, gtid: str) -> str:
    domain = gtid.split("-", 1)[0]
    entries = [e.strip() for e in gtids.split(",") if e.strip()]
    kept = [e for e in entries if e.split("-", 1)[0] != domain]
    return ",".join(sorted([*kept, gtid], key=lambda e: int(e.split("-", 1)[0])))


def parse_mysql_gtid_set(gtids: str) -> dict[str, list[tuple[int, int]]]:
    """``uuid:1-5:7,uuid2:3`` → ``{uuid: [(1, 5), (7, 7)], uuid2: [(3, 3)]}`` with
    the intervals sorted and merged; UUIDs lower-cased. `ValueError` if malformed."""
    out: dict[str, list[tuple[int, int]]] = {}
    for entry in (e.strip() for e in gtids.replace("\n", "").split(",")):
        if not entry:
            continue
        uuid, *ranges = entry.split(":")
        # A tagged GTID (MySQL 8.4: uuid:tag:1-5) keeps its tag in the source part.
        if ranges and not ranges[0][:1].isdigit():
            uuid, ranges = f"{uuid}:{ranges[0]}", ranges[1:]
        if len(uuid.split(":")[0]) != 36 or not ranges:
            raise ValueError(f"{entry!r} is not a MySQL GTID set entry")
        intervals = out.setdefault(uuid.lower(), [])
        for part in ranges:
            low, _, high = part.partition("-")
            intervals.append((int(low), int(high or low)))
    return {uuid: _merge(intervals) for uuid, intervals in out.items()}


def format_mysql_gtid_set(gtid_set: Mapping[str, list[tuple[int, int]]]) -> str:
    """The inverse of `parse_mysql_gtid_set` (UUIDs in sorted order)."""
    return ",".join(
        uuid + "".join(f":{lo}" if lo == hi else f":{lo}-{hi}" for lo, hi in gtid_set[uuid])
        for uuid in sorted(gtid_set)
    )


def _merge(intervals: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for low, high in sorted(intervals):
        if merged and low <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(high, merged[-1][1]))
        else:
            merged.append((low, high))
    return merged


def _add_mysql(gtids: str, gtid: str) -> str:
    source, _, number = gtid.rpartition(":")
    gtid_set = parse_mysql_gtid_set(gtids)
    key = source.lower()
    gtid_set[key] = _merge([*gtid_set.get(key, []), (int(number), int(number))])
    return format_mysql_gtid_set(gtid_set)


# --- the transaction tracker -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Skip:
    """What a (re)started reader must skip in its first transaction: ``events`` whole
    row events, then ``rows`` rows of the next one."""

    events: int = 0
    rows: int = 0


class TransactionTracker:
    """Follows the binlog and knows each record's offset. Feed it every event in
    order: `rotate`, `begin`, `row_event` + `row_emitted` + `row_event_done`,
    `statement`, `commit`.

    A transaction starts at its GTID event (or BEGIN without one) and ends at its XID
    or COMMIT event; a DDL statement is a transaction of its own. ``skip`` applies to
    the transaction whose rows the start offset says were partly emitted: the one
    with the offset's ``transaction_gtid`` when it has one (GTID positioning may
    read another server, with other positions), else the one starting at the
    offset's ``pos``.
    """

    def __init__(self, start: BinlogOffset) -> None:
        self.file = start.file
        self.restart_pos = start.pos
        self.gtids = start.gtids
        self.gtid = ""
        self.in_transaction = False
        self.single_statement: bool | None = None
        self.events_done = 0
        self.rows_done = 0
        self.ts_sec = start.ts_sec
        self._skip = Skip(start.event, start.row) if start.mid_transaction else Skip()
        self._skip_pos = start.pos
        self._skip_gtid = start.transaction_gtid if start.mid_transaction else ""
        self._skipping = False

    # -- events -------------------------------------------------------------------------
    def rotate(self, file: str, pos: int) -> None:
        """A RotateEvent: the binlog continues in ``file`` at ``pos``."""
        self.file = file
        if not self.in_transaction:
            self.restart_pos = pos

    def position(self, pos: int) -> None:
        """The binlog continues at ``pos`` in the current file (an event outside any
        transaction ended there, e.g. the GTID list a GTID-positioned reader starts
        with): a restart may begin there."""
        if not self.in_transaction:
            self.restart_pos = pos

    def begin(self, pos: int, gtid: str = "", single_statement: bool | None = None) -> None:
        """A transaction starts at ``pos`` (its GTID event, or BEGIN without GTID).
        ``single_statement``: MariaDB's standalone flag (a DDL follows and the
        transaction ends with it); None when unknown yet (MySQL: BEGIN or a DDL
        follows the GTID event)."""
        if self.in_transaction and not gtid and self.single_statement is None:
            # BEGIN after a MySQL GTID event: the same transaction.
            self.single_statement = False
            return
        self.in_transaction = True
        self.single_statement = single_statement
        self.restart_pos = pos
        self.gtid = gtid
        self.events_done = 0
        self.rows_done = 0
        self._skipping = bool(self._skip.events or self._skip.rows) and self._is_skipped(pos, gtid)

    def _is_skipped(self, pos: int, gtid: str) -> bool:
        if self._skip_gtid:
            return gtid == self._skip_gtid
        return pos == self._skip_pos

    def row_event(self, rows: int) -> range:
        """A row event of ``rows`` rows: the indexes of the rows to emit (the rest were
        emitted before a restart). Call `row_emitted` per emitted row, then
        `row_event_done`."""
        self.rows_done = 0
        if not self._skipping:
            return range(rows)
        if self.events_done < self._skip.events:
            self.rows_done = rows
            return range(rows, rows)
        first = min(self._skip.rows, rows)
        self.rows_done = first
        self._skipping = False
        return range(first, rows)

    def row_emitted(self) -> BinlogOffset:
        """The offset of the row just emitted: a restart skips it and all before."""
        self.rows_done += 1
        return self.offset()

    def row_event_done(self) -> None:
        """The row event ended (all its rows emitted or skipped)."""
        self.events_done += 1
        self.rows_done = 0

    def statement(self, pos: int) -> bool:
        """A query event (not BEGIN/COMMIT) starting at ``pos``; True if it is a
        transaction of its own (a DDL, or a statement outside a row transaction):
        the caller then calls `commit` with the event's end position."""
        if not self.in_transaction:
            self.begin(pos)
            self.single_statement = True
        return self.single_statement is not False

    def commit(self, end_pos: int) -> None:
        """The open transaction ended (XID or COMMIT/ROLLBACK) just before ``end_pos``."""
        if self.in_transaction:
            self.gtids = add_gtid(self.gtids, self.gtid)
        # Without a GTID to recognise it, the skipped transaction is the first one;
        # with one, other transactions (other MariaDB domains) may come first.
        if not self._skip_gtid or (self.in_transaction and self.gtid == self._skip_gtid):
            self._skip = Skip()
            self._skip_gtid = ""
        self.in_transaction = False
        self.single_statement = None
        self.restart_pos = end_pos
        self.events_done = 0
        self.rows_done = 0
        self._skipping = False

    def event_time(self, ts_sec: int) -> None:
        """The binlog time of the current event (0 from artificial events is ignored)."""
        if ts_sec:
            self.ts_sec = ts_sec

    # -- positions ----------------------------------------------------------------------
    def offset(self) -> BinlogOffset:
        """Where a restart must begin now, and what it must skip."""
        if self.in_transaction:
            event, row, gtid = self.events_done, self.rows_done, self.gtid
        else:  # before the resumed transaction began again, its skip still holds
            event, row, gtid = self._skip.events, self._skip.rows, self._skip_gtid
        gtid = gtid if event or row else ""
        return BinlogOffset(
            self.file, self.restart_pos, self.gtids, event, row, False, self.ts_sec, gtid
        )
