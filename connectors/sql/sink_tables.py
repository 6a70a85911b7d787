"""The target tables: reflected once and cached; created and evolved on demand.

`Tables.ensure` returns a table that has every column a batch writes, creating it
(``auto.create``) or adding columns (``auto.evolve``) first; each DDL statement runs
in its own transaction before the batch's writes (MySQL commits at every DDL), and
the table is reflected again afterwards. JSON columns are bound as text: the sink
writes JSON text, which PostgreSQL gets through a cast.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.type_api import TypeEngine

from omconnect.connectors.sql.dialects import DialectRules, column_type
from omconnect.connectors.sql.sink_changes import Column
from omconnect.connectors.sql.sink_config import SqlSinkConfig
from omconnect.errors import FatalError

log = logging.getLogger(__name__)


class JsonAsText(sa.types.TypeDecorator[str]):
    """Binds JSON text as is, cast to the column's JSON type (PostgreSQL needs the
    cast; SQLAlchemy's own JSON types would encode the text a second time)."""

    impl = sa.Text
    cache_ok = True

    def __init__(self, target: TypeEngine[Any]) -> None:
        super().__init__()
        self.target = target

    def bind_expression(self, bindvalue: Any) -> Any:
        return sa.cast(bindvalue, self.target)


class Tables:
    """Cache of reflected target tables of one engine."""

    def __init__(self, engine: sa.Engine, rules: DialectRules, config: SqlSinkConfig) -> None:
        self._engine = engine
        self._rules = rules
        self._config = config
        self._cache: dict[str, sa.Table] = {}

    def get(self, name: str) -> sa.Table | None:
        """The table called ``name``, or None if it does not exist."""
        table = self._cache.get(name)
        if table is None:
            table = self._reflect(name)
            if table is not None:
                self._cache[name] = table
        return table

    def ensure(self, name: str, columns: Sequence[Column] | None) -> sa.Table:
        """The table ``name`` with (at least) ``columns`` (None: unknown, schemaless
        records). `FatalError` if it is missing and cannot be created, or lacks
        columns that cannot be added; the message says what to change."""
        table = self.get(name)
        if table is None:
            self._create(name, columns)
        elif columns is not None:
            missing = [c for c in columns if c.name not in table.c]
            if not missing:
                return table
            self._evolve(table, missing)
        else:
            return table
        self._cache.pop(name, None)
        created = self.get(name)
        if created is None:  # pragma: no cover - dropped right after the DDL
            raise FatalError(f"table {name!r} vanished right after it was created or altered")
        return created

    def _reflect(self, name: str) -> sa.Table | None:
        with self._engine.connect() as connection:
            if not sa.inspect(connection).has_table(name):
                return None
            table = sa.Table(name, sa.MetaData(), autoload_with=connection)
        for column in table.columns:
            if isinstance(column.type, sa.JSON):
                postgres = self._rules.name == "postgresql"
                column.type = JsonAsText(column.type) if postgres else sa.Text()
        return table

    def _create(self, name: str, columns: Sequence[Column] | None) -> None:
        if not self._config.auto_create:
            raise FatalError(f"table {name!r} does not exist: create it, or set auto.create=true")
        if columns is None:
            raise FatalError(
                f"table {name!r} does not exist and auto.create needs records with schemas "
                "(e.g. value.converter.schemas.enable=true); create the table first"
            )
        table = sa.Table(name, sa.MetaData(), *(self._column(c) for c in columns))
        log.info("creating table %s with columns %s", name, [c.name for c in columns])
        table.create(self._engine, checkfirst=True)

    def _column(self, column: Column) -> sa.Column[Any]:
        return sa.Column(
            column.name,
            column_type(self._rules, column.schema, column.is_key),
            primary_key=column.is_key,
            nullable=column.schema.optional and not column.is_key,
            autoincrement=False,
        )

    def _evolve(self, table: sa.Table, missing: Sequence[Column]) -> None:
        names = [c.name for c in missing]
        if not self._config.auto_evolve:
            raise FatalError(
                f"table {table.name!r} has no columns {names}: add them, or set auto.evolve=true"
            )
        required = [c.name for c in missing if _required(c)]
        if required:
            raise FatalError(
                f"table {table.name!r} lacks columns {required} that are required and have "
                "no default: auto.evolve adds only optional columns or ones with a default; "
                "add them by hand"
            )
        dialect = self._engine.dialect
        quote = dialect.identifier_preparer
        for column in missing:
            sql_type = column_type(self._rules, column.schema).compile(dialect=dialect)
            statement = (
                f"ALTER TABLE {quote.format_table(table)} "
                f"ADD COLUMN {quote.quote(column.name)} {sql_type}"
            )
            log.info("auto.evolve: %s", statement)
            with self._engine.begin() as connection:
                connection.execute(sa.text(statement))


def _required(column: Column) -> bool:
    """A key column, or one that is neither optional nor has a default. (Added columns
    are nullable: the records carry the default value.)"""
    schema = column.schema
    return column.is_key or (not schema.optional and schema.default is None)
