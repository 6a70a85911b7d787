"""`SqlSinkConfig`: the SQL sink's keys, with Confluent's JDBC sink names.

Rules that span keys are checked on the later key, so the error names it:
``insert.mode`` upsert/update and ``delete.enabled`` need a primary key
(``pk.mode`` other than none); deletes also need ``pk.mode=record_key`` (a tombstone
has no value to take the key from).
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationInfo, field_validator
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from omconnect.connect.config import PluginConfig

PLACEHOLDERS = ("topic", "db", "table")
_PLACEHOLDER = re.compile(r"\$\{([^}]*)\}")

InsertMode = Literal["insert", "upsert", "update"]
PkMode = Literal["none", "record_key", "record_value"]


class SqlSinkConfig(PluginConfig):
    """Keys of the SQL sink. Field order matters: cross-key checks see earlier keys."""

    connection_url: str = Field(
        alias="connection.url",
        description="SQLAlchemy URL of the target database, e.g. "
        "postgresql+psycopg://user@host/db, mysql+pymysql://user@host/db, sqlite:///path.",
    )
    connection_user: str | None = Field(
        None, alias="connection.user", description="User name; overrides the URL's."
    )
    connection_password: SecretStr | None = Field(
        None, alias="connection.password", description="Password; overrides the URL's."
    )
    table_name_format: str = Field(
        "${topic}",
        alias="table.name.format",
        description="Target table name: ${topic} (the record's topic), ${db} and ${table} "
        "(from a change event's source block, else the topic's last two dot-separated "
        "parts) are replaced, then every '.' becomes '_'.",
    )
    pk_mode: PkMode = Field(
        "record_key",
        alias="pk.mode",
        description="Where the primary key comes from: none, record_key (the record key) "
        "or record_value (fields of the value).",
    )
    pk_fields: list[str] = Field(
        default_factory=list,
        alias="pk.fields",
        description="Primary-key columns. record_key: a subset of the key struct's fields "
        "(default all), or the one column name for a primitive key; record_value: value "
        "fields (default all).",
    )
    insert_mode: InsertMode = Field(
        "upsert",
        alias="insert.mode",
        validate_default=True,
        description="insert (plain INSERT), upsert (insert or update by primary key) or "
        "update (UPDATE by primary key; missing rows are skipped).",
    )
    delete_enabled: bool = Field(
        True,
        alias="delete.enabled",
        validate_default=True,
        description="Delete the row for a delete event or a tombstone (null value). Needs "
        "pk.mode=record_key.",
    )
    auto_create: bool = Field(
        False,
        alias="auto.create",
        description="Create a missing table from the record schema (needs records with schemas).",
    )
    auto_evolve: bool = Field(
        False,
        alias="auto.evolve",
        description="Add columns for new optional fields with ALTER TABLE ADD COLUMN.",
    )
    batch_size: int = Field(
        3000,
        alias="batch.size",
        gt=0,
        description="Records buffered before they are written in one transaction; the "
        "rest is written at each offset commit.",
    )

    @field_validator("insert_mode", "pk_mode", mode="before")
    @classmethod
    def _lowercase(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("connection_url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        try:
            make_url(value)
        except ArgumentError:
            raise ValueError("is not an SQLAlchemy URL (dialect+driver://user@host/db)") from None
        return value

    @field_validator("table_name_format")
    @classmethod
    def _check_format(cls, value: str) -> str:
        unknown = [p for p in _PLACEHOLDER.findall(value) if p not in PLACEHOLDERS]
        if unknown:
            raise ValueError(
                f"unknown placeholder ${{{unknown[0]}}}; use ${{topic}}, ${{db}}, ${{table}}"
            )
        if not value.strip():
            raise ValueError("must not be empty")
        return value

    @field_validator("insert_mode")
    @classmethod
    def _key_for_upsert(cls, value: str, info: ValidationInfo) -> str:
        if value != "insert" and info.data.get("pk_mode") == "none":
            raise ValueError(
                f"{value} needs a primary key: set pk.mode to record_key or record_value"
            )
        return value

    @field_validator("delete_enabled")
    @classmethod
    def _key_for_delete(cls, value: bool, info: ValidationInfo) -> bool:
        if value and info.data.get("pk_mode", "record_key") != "record_key":
            raise ValueError("deletes need pk.mode=record_key; set delete.enabled=false")
        return value

    def url(self) -> URL:
        """The connection URL with ``connection.user``/``connection.password`` applied."""
        url = make_url(self.connection_url)
        if self.connection_user is not None:
            url = url.set(username=self.connection_user)
        if self.connection_password is not None:
            url = url.set(password=self.connection_password.get_secret_value())
        return url


def table_name(template: str, topic: str, db: str | None, table: str | None) -> str:
    """The table for a record: placeholders replaced, then dots made underscores (so a
    Debezium topic ``prefix.db.table`` gives ``prefix_db_table``). ``db``/``table`` come
    from a change event's source block; a record without one (a tombstone, a flat
    record) takes them from its topic's last two dot-separated parts. `ValueError`
    when ``${db}`` is used and the topic has no dot."""
    parts = topic.split(".")
    values = {
        "topic": topic,
        "db": db if db is not None else (parts[-2] if len(parts) > 1 else None),
        "table": table if table is not None else parts[-1],
    }

    def substitute(match: re.Match[str]) -> str:
        value = values[match.group(1)]
        if value is None:
            raise ValueError(
                f"table.name.format uses ${{{match.group(1)}}}, but the record has no source "
                f"block and its topic {topic!r} no '<db>.<table>' ending"
            )
        return value

    return _PLACEHOLDER.sub(substitute, template).replace(".", "_")
