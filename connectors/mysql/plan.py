"""Where a starting task begins: snapshot or stream, and from which position, and
whether a reader is positioned by GTID or by file. Pure: decided from the config,
the stored offset and what the server reports."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from omconnect.errors import FatalError

from .config import Positioning, SnapshotMode
from .offsets import BinlogOffset


class Start(StrEnum):
    """How the task begins."""

    SNAPSHOT = "snapshot"
    """Snapshot the tables, then stream from the snapshot's position."""
    STORED = "stored"
    """Stream from the stored offset (skipping what it says was emitted)."""
    CURRENT = "current"
    """Stream from the server's current position (no rows read)."""
    OLDEST = "oldest"
    """Stream from the start of the oldest binlog file the server has."""


@dataclass(frozen=True, slots=True)
class StartPlan:
    """The decision, and why (for the log)."""

    start: Start
    reason: str


def server_has_gtids(variables: Mapping[str, str], mariadb: bool) -> bool:
    """Whether the server's binlog can be read by GTID: MariaDB once it has written
    a GTID (``gtid_binlog_pos`` non-empty), MySQL with ``gtid_mode=ON``."""
    if mariadb:
        return bool(variables.get("gtid_binlog_pos", "").strip())
    return variables.get("gtid_mode", "").upper() == "ON"


def gtid_positioning(
    positioning: Positioning, offset: BinlogOffset, server_gtids: bool
) -> tuple[bool, str]:
    """Whether a reader starting at ``offset`` is positioned by GTID (the offset's
    ``gtids``: the server sends the transactions not in it) rather than by
    ``file``/``pos``, and why.

    GTID positioning needs a server with GTIDs, a GTID set in the offset, and, when
    the offset is inside a transaction, that transaction's GTID (offsets written
    before GTID positioning existed lack it: they resume by file once). With
    ``binlog.positioning=gtid`` a server without GTIDs is a `FatalError`; an offset
    without a GTID set yet (a new server's snapshot) falls back to the file."""
    if positioning is Positioning.FILE:
        return False, "binlog.positioning=file"
    if not server_gtids:
        if positioning is Positioning.GTID:
            raise FatalError(
                "binlog.positioning=gtid but the server has no GTIDs: on MySQL set "
                "gtid_mode=ON and enforce_gtid_consistency=ON; on MariaDB GTIDs appear "
                "with the first transaction. Or set binlog.positioning=auto or file"
            )
        return False, "the server has no GTIDs"
    if not offset.gtids:
        return False, "the offset holds no GTID set yet"
    if offset.mid_transaction and not offset.transaction_gtid:
        return False, "the offset is inside a transaction whose GTID it does not name"
    return True, f"by GTID set {offset.gtids}"


def decide_start(
    mode: SnapshotMode,
    stored: BinlogOffset | None,
    binary_logs: Sequence[str],
    by_gtid: bool = False,
) -> StartPlan:
    """What to do given ``snapshot.mode``, the stored offset (None: none stored),
    the binlog files the server still has (``SHOW BINARY LOGS``) and whether the
    stored offset resumes by GTID (`gtid_positioning`: then its file may be gone or
    another server's, and the server decides when the reader starts).

    `FatalError` when the stored position was purged and the mode does not allow a
    new snapshot: the message names both ways out."""
    snapshots = mode in (SnapshotMode.INITIAL, SnapshotMode.WHEN_NEEDED)
    if stored is None:
        if snapshots:
            return StartPlan(Start.SNAPSHOT, "no offset is stored")
        if mode is SnapshotMode.NO_DATA:
            return StartPlan(Start.CURRENT, "no offset is stored; snapshot.mode=no_data")
        return StartPlan(Start.OLDEST, "no offset is stored; snapshot.mode=never")
    if stored.snapshot and snapshots:
        return StartPlan(Start.SNAPSHOT, "the stored offset is from an unfinished snapshot")
    if by_gtid:
        return StartPlan(Start.STORED, f"resuming after GTIDs {stored.gtids}")
    if stored.file not in binary_logs:
        if mode is SnapshotMode.WHEN_NEEDED:
            return StartPlan(
                Start.SNAPSHOT, f"the stored binlog file {stored.file} was purged from the server"
            )
        oldest = binary_logs[0] if binary_logs else "none"
        raise FatalError(
            f"the stored binlog position {stored.file}:{stored.pos} is no longer on the "
            f"server (oldest binlog: {oldest}); changes since then are lost to the binlog. "
            "Set snapshot.mode=when_needed to take a new snapshot, or delete this "
            "connector's offsets; keep binlogs longer (binlog_expire_logs_seconds / "
            "expire_logs_days) to avoid this"
        )
    return StartPlan(Start.STORED, f"resuming at {stored.file}:{stored.pos}")


def position_gone(offset: BinlogOffset, by_gtid: bool, detail: str) -> str:
    """The error message when the server cannot send the binlog from ``offset``
    (error 1236), naming both ways out."""
    where = f"after GTIDs {offset.gtids}" if by_gtid else f"from {offset.file}:{offset.pos}"
    return (
        f"the server cannot send the binlog {where} ({detail}); changes since then are "
        "lost to the binlog. Set snapshot.mode=when_needed to take a new snapshot, or "
        "delete this connector's offsets"
    )
