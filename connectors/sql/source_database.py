"""The SQL source's database I/O helpers: engine, table listing, reflection, errors.

Every function here talks to the database (or builds what does); the decisions they
need live in the pure modules (`source_tables`, `source_query`, ...).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc as saexc
from sqlalchemy.engine import make_url

from omconnect.connectors.sql.source_config import Mode, SqlSourceConfig
from omconnect.connectors.sql.source_tables import TableId, schemas_named, select_tables
from omconnect.errors import ConfigError, FatalError, OmConnectError, RetriableError


def create_source_engine(config: SqlSourceConfig) -> sa.Engine:
    """An engine for ``connection.url`` (with ``connection.user``/``password`` applied);
    `ConfigError` on ``connection.url`` if its driver is not installed. Connects
    lazily."""
    url = make_url(config.connection_url)
    if config.connection_user:
        url = url.set(username=config.connection_user)
    if config.connection_password is not None:
        url = url.set(password=config.connection_password.get_secret_value())
    try:
        return sa.create_engine(url, pool_pre_ping=True)
    except (saexc.NoSuchModuleError, ModuleNotFoundError, ImportError) as exc:
        raise ConfigError(
            "connection.url", f"no SQLAlchemy driver for {url.drivername!r}: {exc}"
        ) from None


def safe_url(config: SqlSourceConfig) -> str:
    """``connection.url`` with any password hidden, for logs and errors."""
    return make_url(config.connection_url).render_as_string(hide_password=True)


@contextmanager
def database_errors(what: str) -> Iterator[None]:
    """Turn SQLAlchemy errors raised inside into the runtime's error classes: a lost or
    refused connection is a `RetriableError`, any other database error (bad SQL, a
    missing table or column, no permission) a `FatalError`; ``what`` says what was
    being done."""
    try:
        yield
    except OmConnectError:
        raise
    except (saexc.OperationalError, saexc.InterfaceError, saexc.DisconnectionError) as exc:
        raise RetriableError(f"{what}: {_reason(exc)}") from exc
    except saexc.TimeoutError as exc:  # no pooled connection in time
        raise RetriableError(f"{what}: {exc}") from exc
    except saexc.NoSuchTableError as exc:
        raise FatalError(f"{what}: table {exc} does not exist (any more)") from exc
    except saexc.SQLAlchemyError as exc:
        raise FatalError(f"{what}: {_reason(exc)}") from exc


def _reason(exc: saexc.SQLAlchemyError) -> str:
    original = getattr(exc, "orig", None)
    return str(original if original is not None else exc).strip().splitlines()[0]


def list_tables(connection: sa.Connection, config: SqlSourceConfig) -> list[TableId]:
    """The tables (and views, per ``table.types``) the config selects: those of the
    default schema and of every schema named by a ``schema.name`` entry."""
    inspector = sa.inspect(connection)
    default = inspector.default_schema_name
    found: list[TableId] = []
    entries = [*config.include_tables, *config.exclude_tables]
    for schema in [None, *sorted(schemas_named(entries) - {default or ""})]:
        try:
            names = _names(inspector, schema, config.table_types)
        except saexc.NoSuchTableError:
            continue
        found.extend(TableId(schema, name) for name in names)
    return select_tables(found, config.include_tables, config.exclude_tables, default)


def _names(inspector: Any, schema: str | None, types: list[str]) -> list[str]:
    names: list[str] = []
    if "TABLE" in types:
        names.extend(inspector.get_table_names(schema=schema))
    if "VIEW" in types:
        names.extend(inspector.get_view_names(schema=schema))
    return names


def reflect_table(connection: sa.Connection, table: TableId) -> sa.Table:
    """The table's current columns and types (read again each time: they may change)."""
    return sa.Table(table.name, sa.MetaData(), schema=table.schema, autoload_with=connection)


def mode_column_problem(table: sa.Table, config: SqlSourceConfig) -> ConfigError | None:
    """Why ``table`` cannot be read in the config's mode (a mode column is missing, or
    nullable while ``validate.non.null`` is on), naming the key; None if it can."""
    mode = config.mode
    if mode is Mode.BULK:
        return None
    if mode.uses_incrementing:
        name = config.incrementing_column_name or ""
        if name not in table.c:
            return ConfigError(
                "incrementing.column.name", f"{table.fullname} has no column {name!r}"
            )
        if config.validate_non_null and table.c[name].nullable:
            return ConfigError(
                "incrementing.column.name",
                f"{table.fullname}.{name} allows NULL; make it NOT NULL or set "
                "validate.non.null=false",
            )
    if mode.uses_timestamp:
        missing = [n for n in config.timestamp_column_names if n not in table.c]
        if missing:
            return ConfigError(
                "timestamp.column.name", f"{table.fullname} has no column {missing[0]!r}"
            )
        if config.validate_non_null and all(
            table.c[n].nullable for n in config.timestamp_column_names
        ):
            return ConfigError(
                "timestamp.column.name",
                f"every timestamp column of {table.fullname} allows NULL; make one NOT "
                "NULL or set validate.non.null=false",
            )
    return None
