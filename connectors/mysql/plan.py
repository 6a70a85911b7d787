"""Where a starting task begins: snapshot or stream, and from which position. Pure:
decided from ``snapshot.mode``, the stored offset and the server's binlog files."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from omconnect.errors import FatalError

from .config import SnapshotMode
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


def decide_start(
    mode: SnapshotMode, stored: BinlogOffset | None, binary_logs: Sequence[str]
) -> StartPlan:
    """What to do given ``snapshot.mode``, the stored offset (None: none stored) and
    the binlog files the server still has (``SHOW BINARY LOGS``).

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
