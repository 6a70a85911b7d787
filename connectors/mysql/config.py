"""`MySqlSourceConfig`: the MySQL/MariaDB source's keys, with Debezium's names.

Filter, mask and key keys come from `FilterConfig` (``filters.py``). Parsed once at
start; frozen afterwards.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import Field, SecretStr, field_validator, model_validator

from .filters import FilterConfig


class SnapshotMode(StrEnum):
    """When the task reads the tables' current rows before streaming the binlog."""

    INITIAL = "initial"
    """Snapshot when no offset is stored (or the stored snapshot did not finish)."""
    WHEN_NEEDED = "when_needed"
    """As ``initial``, and also when the stored binlog position was purged."""
    NO_DATA = "no_data"
    """Never read rows: stream from the current binlog position (Debezium's old
    ``schema_only``)."""
    NEVER = "never"
    """Never read rows: stream from the start of the oldest binlog when no offset is
    stored."""


class Flavor(StrEnum):
    """Which server the source talks to; ``auto`` asks ``SELECT VERSION()``."""

    AUTO = "auto"
    MYSQL = "mysql"
    MARIADB = "mariadb"


class Positioning(StrEnum):
    """How a reader is positioned in the binlog on (re)start."""

    AUTO = "auto"
    """By GTID when the server has GTIDs and the offset a GTID set, else by file."""
    GTID = "gtid"
    """By GTID; the task fails if the server has no GTIDs."""
    FILE = "file"
    """By binlog file and position only (one server, no failover)."""


_SNAPSHOT_ALIASES = {"schema_only": "no_data", "schema_only_recovery": "when_needed"}


class MySqlSourceConfig(FilterConfig):
    """Every key of the MySQL/MariaDB CDC source."""

    hostname: str = Field(alias="database.hostname", description="Host of the MySQL server.")
    port: int = Field(3306, alias="database.port", gt=0, lt=65536, description="Its port.")
    user: str = Field(
        alias="database.user",
        description="User with REPLICATION SLAVE, REPLICATION CLIENT (MariaDB: BINLOG "
        "MONITOR) and SELECT; on MySQL also RELOAD for the snapshot.",
    )
    password: SecretStr = Field(
        SecretStr(""), alias="database.password", description="The user's password."
    )
    server_id: int = Field(
        alias="database.server.id",
        gt=0,
        lt=2**32,
        description="Replica server id the connector registers with; must differ from "
        "the server's and from every other replica's.",
    )
    topic_prefix: str = Field(
        alias="topic.prefix",
        min_length=1,
        description="Prefix of the topics (<prefix>.<db>.<table>) and the source "
        "partition's name; never change it once records were written.",
    )
    snapshot_mode: SnapshotMode = Field(
        SnapshotMode.INITIAL,
        alias="snapshot.mode",
        description="initial, when_needed, no_data (old name schema_only) or never.",
    )
    snapshot_fetch_size: int = Field(
        10000,
        alias="snapshot.fetch.size",
        gt=0,
        description="Rows read per snapshot query (a chunk in primary-key order).",
    )
    tombstones_on_delete: bool = Field(
        True,
        alias="tombstones.on.delete",
        description="Follow each delete with a tombstone (same key, null value).",
    )
    include_schema_changes: bool = Field(
        True,
        alias="include.schema.changes",
        description="Write DDL statements to the topic named by topic.prefix.",
    )
    provide_transaction_metadata: bool = Field(
        False,
        alias="provide.transaction.metadata",
        description="Write BEGIN/END records to <topic.prefix>.transaction and a "
        "transaction block into each change event.",
    )
    heartbeat_interval_ms: int = Field(
        0,
        alias="heartbeat.interval.ms",
        ge=0,
        description="Write a heartbeat record (with the current offset) at this "
        "interval; 0 turns heartbeats off.",
    )
    max_batch_size: int = Field(
        2048, alias="max.batch.size", gt=0, description="Most records returned by one poll."
    )
    poll_interval_ms: int = Field(
        500,
        alias="poll.interval.ms",
        gt=0,
        description="How long a poll waits for binlog events when there are none (the "
        "server's heartbeat period).",
    )
    connect_timeout_ms: int = Field(
        30000,
        alias="connect.timeout.ms",
        gt=0,
        description="Timeout of connecting, and of a binlog read that gets nothing (not "
        "even a heartbeat) before the connection counts as lost.",
    )
    backoff_initial_ms: int = Field(
        300,
        alias="connect.backoff.initial.delay.ms",
        gt=0,
        description="First wait before reconnecting after a lost connection.",
    )
    backoff_max_ms: int = Field(
        10000,
        alias="connect.backoff.max.delay.ms",
        gt=0,
        description="Longest wait between reconnection attempts (doubling from the initial delay).",
    )
    flavor: Flavor = Field(
        Flavor.AUTO,
        alias="database.flavor",
        description="mysql, mariadb, or auto (detected from SELECT VERSION()).",
    )
    positioning: Positioning = Field(
        Positioning.AUTO,
        alias="binlog.positioning",
        description="auto, gtid or file: resume by GTID set (survives a failover to "
        "another server of the replication topology, and a purged binlog file whose "
        "transactions were all captured) or by binlog file and position. auto uses "
        "GTIDs when the server has them (MySQL gtid_mode=ON; MariaDB: a non-empty "
        "gtid_binlog_pos) and the stored offset holds a GTID set.",
    )
    signal_data_collection: str = Field(
        "",
        alias="signal.data.collection",
        description="The signal table, <db>.<table> with columns id VARCHAR(42) PRIMARY "
        "KEY, type VARCHAR(32), data TEXT (Debezium's layout). An execute-snapshot row "
        "starts an incremental snapshot; the connector writes its watermark rows there "
        "(needs INSERT on it). Empty: no signals.",
    )
    incremental_snapshot_chunk_size: int = Field(
        1024,
        alias="incremental.snapshot.chunk.size",
        gt=0,
        description="Rows read per chunk (window) of an incremental snapshot.",
    )
    tasks_max: int = Field(
        1,
        alias="tasks.max",
        ge=1,
        description="Ignored beyond 1: one task reads the binlog.",
    )

    @field_validator("snapshot_mode", mode="before")
    @classmethod
    def _old_names(cls, value: Any) -> Any:
        if isinstance(value, str):
            lowered = value.strip().lower()
            return _SNAPSHOT_ALIASES.get(lowered, lowered)
        return value

    @field_validator("signal_data_collection")
    @classmethod
    def _signal_name(cls, value: str) -> str:
        database, dot, table = value.strip().partition(".")
        if value.strip() and (not dot or not database or not table):
            raise ValueError("signal.data.collection must be <database>.<table>")
        return value.strip()

    @property
    def signal_table(self) -> tuple[str, str] | None:
        """The signal table as (database, table), or None."""
        if not self.signal_data_collection:
            return None
        database, _, table = self.signal_data_collection.partition(".")
        return database, table

    @model_validator(mode="after")
    def _backoff_order(self) -> MySqlSourceConfig:
        if self.backoff_max_ms < self.backoff_initial_ms:
            raise ValueError(
                "connect.backoff.max.delay.ms must not be below connect.backoff.initial.delay.ms"
            )
        return self

    def connection_settings(self, **extra: Any) -> dict[str, Any]:
        """PyMySQL ``connect`` keyword arguments (utf8mb4, the connect timeout)."""
        return {
            "host": self.hostname,
            "port": self.port,
            "user": self.user,
            "password": self.password.get_secret_value(),
            "charset": "utf8mb4",
            "connect_timeout": max(1, self.connect_timeout_ms // 1000),
            **extra,
        }
