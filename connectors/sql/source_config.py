"""The SQL source's config: Confluent JDBC source key names, one typed declaration.

`SqlSourceConfig` checks each key by itself (types, ranges, a parsable URL and cron
expression); `cross_key_errors` checks the rules that span keys (a mode needs its
columns, ``query`` excludes the table lists, ...). `load_source_config` runs both and
raises `ConfigError` naming the first bad key.
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from pydantic import Field, SecretStr, field_validator

from omconnect.connect.config import KeyError_, PluginConfig, config_errors, parse_config
from omconnect.errors import ConfigError


class Mode(StrEnum):
    """How each poll finds new rows (Confluent's ``mode`` values)."""

    BULK = "bulk"
    INCREMENTING = "incrementing"
    TIMESTAMP = "timestamp"
    TIMESTAMP_INCREMENTING = "timestamp+incrementing"

    @property
    def uses_incrementing(self) -> bool:
        """Rows are ordered and resumed by the incrementing column."""
        return self in (Mode.INCREMENTING, Mode.TIMESTAMP_INCREMENTING)

    @property
    def uses_timestamp(self) -> bool:
        """Rows are ordered and resumed by the timestamp column(s)."""
        return self in (Mode.TIMESTAMP, Mode.TIMESTAMP_INCREMENTING)


class SqlSourceConfig(PluginConfig):
    """Keys of the query-based SQL source (Confluent JDBC source connector's names)."""

    connection_url: str = Field(
        alias="connection.url",
        description="SQLAlchemy database URL, e.g. postgresql+psycopg://user@host/db, "
        "mysql+pymysql://user@host/db or sqlite:///path.db.",
    )
    connection_user: str | None = Field(
        None, alias="connection.user", description="User name; overrides the URL's."
    )
    connection_password: SecretStr | None = Field(
        None, alias="connection.password", description="Password; overrides the URL's."
    )
    mode: Mode = Field(
        description="bulk (whole table each poll), incrementing (rows with a larger "
        "incrementing column), timestamp (rows with a later timestamp) or "
        "timestamp+incrementing (both: the only mode that sees updates without gaps)."
    )
    incrementing_column_name: str | None = Field(
        None,
        alias="incrementing.column.name",
        description="Strictly increasing integer column (incrementing modes).",
    )
    timestamp_column_names: list[str] = Field(
        default_factory=list,
        alias="timestamp.column.name",
        description="Timestamp column(s) (timestamp modes); several are COALESCEd in order.",
    )
    table_whitelist: list[str] = Field(
        default_factory=list,
        alias="table.whitelist",
        description="Tables to read (names or schema.name); default all. Old name of "
        "table.include.list.",
    )
    table_include_list: list[str] = Field(
        default_factory=list,
        alias="table.include.list",
        description="Tables to read (names or schema.name); default all.",
    )
    table_blacklist: list[str] = Field(
        default_factory=list,
        alias="table.blacklist",
        description="Tables not to read. Old name of table.exclude.list.",
    )
    table_exclude_list: list[str] = Field(
        default_factory=list,
        alias="table.exclude.list",
        description="Tables not to read (names or schema.name).",
    )
    table_types: list[str] = Field(
        default_factory=lambda: ["TABLE"],
        alias="table.types",
        description="Kinds of table read when listing tables: TABLE, VIEW or both.",
    )
    query: str | None = Field(
        None,
        description="Custom SELECT read instead of tables; mode conditions are added "
        "around it. Then topic.prefix is the whole topic name.",
    )
    topic_prefix: str = Field(
        alias="topic.prefix",
        description="Topic of a table's rows is topic.prefix + table name; with query, "
        "the topic itself.",
    )
    table_poll_interval_ms: int = Field(
        60000,
        alias="table.poll.interval.ms",
        ge=0,
        description="How often the connector lists the tables again and, when the "
        "selection changed, re-plans the tasks; 0: never.",
    )
    poll_interval_ms: int = Field(
        5000, alias="poll.interval.ms", gt=0, description="Wait between polls of a table."
    )
    poll_cron: str | None = Field(
        None,
        alias="poll.cron",
        description="Crontab expression (5 fields, UTC) of the poll times; replaces "
        "poll.interval.ms.",
    )
    batch_max_rows: int = Field(
        100, alias="batch.max.rows", gt=0, description="Most rows returned by one task poll."
    )
    timestamp_delay_interval_ms: int = Field(
        0,
        alias="timestamp.delay.interval.ms",
        ge=0,
        description="Rows are read only once their timestamp is this much older than the "
        "database's current time (lets transactions with earlier timestamps commit).",
    )
    validate_non_null: bool = Field(
        True,
        alias="validate.non.null",
        description="Refuse incrementing/timestamp columns that allow NULL (all of the "
        "timestamp columns nullable, for several).",
    )
    db_timezone: str = Field(
        "UTC",
        alias="db.timezone",
        description="Time zone of timestamps stored without one (IANA name).",
    )

    @field_validator("connection_url")
    @classmethod
    def _parsable_url(cls, value: str) -> str:
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            make_url(value)
        except ArgumentError as exc:
            raise ValueError(f"not an SQLAlchemy URL: {exc}") from None
        return value

    @field_validator("poll_cron")
    @classmethod
    def _parsable_cron(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        from apscheduler.triggers.cron import CronTrigger

        try:
            CronTrigger.from_crontab(value, timezone="UTC")
        except ValueError as exc:
            raise ValueError(
                f"not a crontab expression (minute hour day month weekday): {exc}"
            ) from None
        return value.strip()

    @field_validator("db_timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value

    @field_validator("table_types")
    @classmethod
    def _known_table_types(cls, value: list[str]) -> list[str]:
        types = [t.upper() for t in value]
        unknown = set(types) - {"TABLE", "VIEW"}
        if unknown or not types:
            raise ValueError("must list TABLE, VIEW or both")
        return types

    @property
    def include_tables(self) -> list[str]:
        """table.include.list, or its old name table.whitelist."""
        return self.table_include_list or self.table_whitelist

    @property
    def exclude_tables(self) -> list[str]:
        """table.exclude.list, or its old name table.blacklist."""
        return self.table_exclude_list or self.table_blacklist

    @property
    def timezone(self) -> zoneinfo.ZoneInfo:
        """db.timezone as a time zone."""
        return zoneinfo.ZoneInfo(self.db_timezone)


def cross_key_errors(config: SqlSourceConfig) -> list[KeyError_]:
    """The problems spanning several keys of a config whose keys are each valid."""
    errors: list[KeyError_] = []
    if config.mode.uses_incrementing and not config.incrementing_column_name:
        errors.append(
            KeyError_("incrementing.column.name", f"is required in mode {config.mode.value!r}")
        )
    if config.mode.uses_timestamp and not config.timestamp_column_names:
        errors.append(
            KeyError_("timestamp.column.name", f"is required in mode {config.mode.value!r}")
        )
    if config.table_whitelist and config.table_include_list:
        errors.append(KeyError_("table.whitelist", "set table.include.list or it, not both"))
    if config.table_blacklist and config.table_exclude_list:
        errors.append(KeyError_("table.blacklist", "set table.exclude.list or it, not both"))
    if config.include_tables and config.exclude_tables:
        errors.append(KeyError_("table.exclude.list", "cannot be combined with table.include.list"))
    if config.query is not None:
        errors.extend(_query_errors(config))
    return errors


def _query_errors(config: SqlSourceConfig) -> list[KeyError_]:
    errors: list[KeyError_] = []
    if not config.query or not config.query.strip():
        errors.append(KeyError_("query", "must not be empty"))
    if config.include_tables or config.exclude_tables:
        errors.append(KeyError_("query", "cannot be combined with table include/exclude lists"))
    if not config.topic_prefix:
        errors.append(KeyError_("topic.prefix", "is the topic of the query's rows: set it"))
    return errors


def source_config_errors(values: Mapping[str, Any]) -> list[KeyError_]:
    """Every problem of the raw ``values``: each key, then the cross-key rules."""
    errors = config_errors(SqlSourceConfig, values)
    if errors:
        return errors
    return cross_key_errors(parse_config(SqlSourceConfig, values))


def load_source_config(values: Mapping[str, Any]) -> SqlSourceConfig:
    """The parsed config; `ConfigError` naming the first bad key otherwise."""
    config = parse_config(SqlSourceConfig, values)
    errors = cross_key_errors(config)
    if errors:
        raise ConfigError(errors[0].key, errors[0].reason)
    return config
