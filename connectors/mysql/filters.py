"""Which databases, tables and columns the MySQL source captures, and how it masks
them: Debezium's filter keys, parsed once into a pure `Filters` object (no I/O).

Patterns are regular expressions, comma-separated, matched case-insensitively against
the whole name (anchored): databases by name, tables by ``db.table``, columns by
``db.table.column``. An include list and an exclude list of the same level cannot be
set together. Keys with a parameter in their name (Debezium's)::

    column.mask.with.<n>.chars=db.t.ssn            value replaced by n '*'
    column.mask.hash.<algo>.with.salt.<salt>=...   hex digest of salt + value
    column.truncate.to.<n>.chars=db.t.note         value cut to n characters

apply to string columns only. ``message.key.columns=db.t:c1,c2;db2.t2:c`` names the
key columns of tables (the table part is a pattern too) instead of the primary key.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import Field, field_validator, model_validator

from omconnect.connect.config import PluginConfig, parse_config
from omconnect.errors import ConfigError

from .tables import Table

_LEVELS = ("database", "table", "column")
_MASK_CHARS = re.compile(r"column\.mask\.with\.(\d+)\.chars")
_MASK_HASH = re.compile(r"column\.mask\.hash\.([^.]+(?:\.[^.]+)*?)\.with\.salt\.(.*)")
_TRUNCATE = re.compile(r"column\.truncate\.to\.(\d+)\.chars")
_DYNAMIC_PREFIXES = ("column.mask.", "column.truncate.")

Transform = Callable[[str], str]


def _patterns_field(key: str, what: str) -> Any:
    return Field(None, alias=key, description=f"Regular expressions (comma-separated) {what}.")


class FilterConfig(PluginConfig):
    """Debezium's filter keys with fixed names. The mask and truncate keys carry a
    parameter in their name and are read by `parse_filters`."""

    database_include_list: list[str] | None = _patterns_field(
        "database.include.list", "matching the databases to capture (default: all)"
    )
    database_exclude_list: list[str] | None = _patterns_field(
        "database.exclude.list", "matching databases not to capture"
    )
    table_include_list: list[str] | None = _patterns_field(
        "table.include.list", "matching db.table of the tables to capture (default: all)"
    )
    table_exclude_list: list[str] | None = _patterns_field(
        "table.exclude.list", "matching db.table of tables not to capture"
    )
    column_include_list: list[str] | None = _patterns_field(
        "column.include.list", "matching db.table.column of the columns to emit (default: all)"
    )
    column_exclude_list: list[str] | None = _patterns_field(
        "column.exclude.list", "matching db.table.column of columns not to emit"
    )
    message_key_columns: str | None = Field(
        None,
        alias="message.key.columns",
        description="Key columns per table instead of the primary key: "
        "'db.table:col1,col2;db2.t2:col' (the table part is a regular expression).",
    )

    @field_validator(
        "database_include_list",
        "database_exclude_list",
        "table_include_list",
        "table_exclude_list",
        "column_include_list",
        "column_exclude_list",
    )
    @classmethod
    def _compiles(cls, patterns: list[str] | None) -> list[str] | None:
        for pattern in patterns or ():
            _check_pattern(pattern)
        return patterns

    @field_validator("message_key_columns")
    @classmethod
    def _key_columns_parse(cls, value: str | None) -> str | None:
        if value is not None:
            parse_key_columns(value)
        return value

    @model_validator(mode="after")
    def _not_both(self) -> FilterConfig:
        pair = _include_and_exclude(self)
        if pair is not None:
            raise ValueError(f"{pair[0]} and {pair[1]} cannot be used together")
        return self


def _check_pattern(pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern, re.IGNORECASE)
    except re.error as exc:
        raise ValueError(f"{pattern!r} is not a valid regular expression: {exc}") from None


def _include_and_exclude(config: FilterConfig) -> tuple[str, str] | None:
    for level in _LEVELS:
        if getattr(config, f"{level}_include_list") and getattr(config, f"{level}_exclude_list"):
            return f"{level}.include.list", f"{level}.exclude.list"
    return None


def parse_key_columns(value: str) -> list[tuple[str, tuple[str, ...]]]:
    """``db.t:c1,c2;db2.t2:c`` → ``[("db.t", ("c1", "c2")), ("db2.t2", ("c",))]``;
    `ValueError` on an entry without a table or without columns, or a bad pattern."""
    entries = []
    for entry in (e.strip() for e in value.split(";")):
        if not entry:
            continue
        table, sep, columns = entry.partition(":")
        names = tuple(c.strip() for c in columns.split(",") if c.strip())
        if not sep or not table.strip() or not names:
            raise ValueError(f"{entry!r} is not 'db.table:column1,column2'")
        _check_pattern(table.strip())
        entries.append((table.strip(), names))
    return entries


def parse_filters(config: Mapping[str, Any]) -> Filters:
    """The filters of a raw connector config. `ConfigError` names the failing key: a
    bad pattern, include and exclude lists of one level together, or a malformed
    ``column.mask.*`` / ``column.truncate.*`` key (bad length, unknown hash)."""
    for level in _LEVELS:
        include, exclude = f"{level}.include.list", f"{level}.exclude.list"
        if config.get(include) and config.get(exclude):
            raise ConfigError(exclude, f"cannot be used together with {include}")
    parsed = parse_config(FilterConfig, config)
    transforms = [_dynamic_rule(key, value) for key, value in config.items() if _is_dynamic(key)]
    return Filters(parsed, transforms)


def _is_dynamic(key: str) -> bool:
    return key.startswith(_DYNAMIC_PREFIXES)


@dataclass(frozen=True, slots=True)
class _Rule:
    """A column transformation and the columns (``db.table.column``) it applies to."""

    matcher: re.Pattern[str]
    transform: Transform


def _dynamic_rule(key: str, value: Any) -> _Rule:
    patterns = [p.strip() for p in str(value).split(",") if p.strip()]
    if not patterns:
        raise ConfigError(key, "needs a comma-separated list of column patterns")
    try:
        matcher = _any_of(patterns)
    except ValueError as exc:
        raise ConfigError(key, str(exc)) from None
    return _Rule(matcher, _transform_for(key))


def _transform_for(key: str) -> Transform:
    if m := _MASK_CHARS.fullmatch(key):
        return _mask_chars(_positive(key, m.group(1)))
    if m := _TRUNCATE.fullmatch(key):
        return _truncate(_positive(key, m.group(1)))
    if m := _MASK_HASH.fullmatch(key):
        return _hash(key, m.group(1), m.group(2))
    raise ConfigError(
        key,
        "unknown key; expected column.mask.with.<n>.chars, "
        "column.mask.hash.<algorithm>.with.salt.<salt> or column.truncate.to.<n>.chars",
    )


def _positive(key: str, digits: str) -> int:
    n = int(digits)
    if n <= 0:
        raise ConfigError(key, "the length must be a positive number")
    return n


def _mask_chars(n: int) -> Transform:
    masked = "*" * n
    return lambda _value: masked


def _truncate(n: int) -> Transform:
    return lambda value: value[:n]


def _hash(key: str, algorithm: str, salt: str) -> Transform:
    name = algorithm.lower().replace("-", "").replace("_", "")
    if name not in hashlib.algorithms_available:
        raise ConfigError(key, f"unknown hash algorithm {algorithm!r} (e.g. SHA-256, MD5)")
    salted = hashlib.new(name, salt.encode("utf-8"))

    def digest(value: str) -> str:
        h = salted.copy()
        h.update(value.encode("utf-8"))
        return h.hexdigest()

    return digest


def _any_of(patterns: Iterable[str]) -> re.Pattern[str]:
    parts = [_check_pattern(p).pattern for p in patterns]
    return re.compile("|".join(f"(?:{p})" for p in parts), re.IGNORECASE)


def _matcher(patterns: list[str] | None) -> re.Pattern[str] | None:
    return None if not patterns else _any_of(patterns)


def _allowed(name: str, include: re.Pattern[str] | None, exclude: re.Pattern[str] | None) -> bool:
    if include is not None:
        return include.fullmatch(name) is not None
    return exclude is None or exclude.fullmatch(name) is None


class Filters:
    """The parsed filters: pure decisions, cached per name (names are few)."""

    __slots__ = ("_columns", "_config", "_databases", "_key_columns", "_rules", "_tables")

    def __init__(self, config: FilterConfig, rules: Iterable[_Rule] = ()) -> None:
        self._config = config
        self._databases = (
            _matcher(config.database_include_list),
            _matcher(config.database_exclude_list),
        )
        self._tables = (_matcher(config.table_include_list), _matcher(config.table_exclude_list))
        self._columns = (
            _matcher(config.column_include_list),
            _matcher(config.column_exclude_list),
        )
        self._rules = tuple(rules)
        self._key_columns = [
            (re.compile(table, re.IGNORECASE), names)
            for table, names in parse_key_columns(config.message_key_columns or "")
        ]

    @classmethod
    def all(cls) -> Filters:
        """Filters that capture everything unchanged."""
        return cls(FilterConfig.model_validate({}))

    @property
    def config(self) -> FilterConfig:
        return self._config

    def include_database(self, database: str) -> bool:
        """Whether ``database`` passes the database include/exclude lists."""
        return _allowed(database, *self._databases)

    def include_table(self, database: str, table: str) -> bool:
        """Whether ``database.table`` is captured: its database and the table itself
        pass their include/exclude lists."""
        return self.include_database(database) and _allowed(f"{database}.{table}", *self._tables)

    def include_column(self, database: str, table: str, column: str) -> bool:
        """Whether ``database.table.column`` is emitted in the row values."""
        return _allowed(f"{database}.{table}.{column}", *self._columns)

    def column_transform(self, database: str, table: str, column: str) -> Transform | None:
        """The masks and truncations configured for a (string) column, composed in
        configuration order, or None when there are none."""
        name = f"{database}.{table}.{column}"
        found = [rule.transform for rule in self._rules if rule.matcher.fullmatch(name)]
        if not found:
            return None
        if len(found) == 1:
            return found[0]
        return _compose(found)

    def key_columns(self, table: Table) -> tuple[str, ...]:
        """The key columns of ``table``: those ``message.key.columns`` names for it (the
        first entry whose pattern matches ``db.table``; names the table lacks are
        skipped), else its primary key; empty: records without a key."""
        name = table.qualified_name
        present = {c.name for c in table.columns}
        for pattern, names in self._key_columns:
            if pattern.fullmatch(name):
                chosen = tuple(n for n in names if n in present)
                if chosen:
                    return chosen
        return table.primary_key


def _compose(transforms: list[Transform]) -> Transform:
    def apply(value: str) -> str:
        for transform in transforms:
            value = transform(value)
        return value

    return apply
