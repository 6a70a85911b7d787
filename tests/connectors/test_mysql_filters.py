"""The MySQL source's filters: Debezium's include/exclude lists, masks, truncation
and message key columns (pure: no server)."""

from __future__ import annotations

import hashlib

import pytest

from omconnect.connectors.mysql.filters import Filters, parse_filters
from omconnect.connectors.mysql.tables import Column, Table
from omconnect.errors import ConfigError


def _table(database: str, name: str, *columns: str, pk: tuple[str, ...] = ()) -> Table:
    cols = tuple(
        Column(c, i + 1, "varchar", "varchar(10)", False, True) for i, c in enumerate(columns)
    )
    return Table(database, name, cols, pk)


def test_everything_is_captured_by_default() -> None:
    filters = Filters.all()
    assert filters.include_table("shop", "orders")
    assert filters.include_column("shop", "orders", "id")
    assert filters.column_transform("shop", "orders", "id") is None


def test_database_lists_match_whole_names_case_insensitively() -> None:
    included = parse_filters({"database.include.list": "shop, inv.*"})
    assert included.include_table("shop", "orders")
    assert included.include_table("SHOP", "orders")
    assert included.include_table("inventory", "items")
    assert not included.include_table("shop2", "orders")  # anchored: no prefix match
    assert not included.include_table("myshop", "orders")
    excluded = parse_filters({"database.exclude.list": "shop"})
    assert not excluded.include_table("shop", "orders")
    assert excluded.include_table("shop2", "orders")


def test_table_lists_match_schema_qualified_names() -> None:
    included = parse_filters({"table.include.list": r"shop\.orders,shop\.line_.*"})
    assert included.include_table("shop", "orders")
    assert included.include_table("shop", "line_items")
    assert not included.include_table("other", "orders")
    assert not included.include_table("shop", "orders_archive")
    excluded = parse_filters({"table.exclude.list": r".*\.tmp_.*"})
    assert not excluded.include_table("shop", "tmp_x")
    assert excluded.include_table("shop", "orders")


def test_database_and_table_levels_both_apply() -> None:
    filters = parse_filters({"database.include.list": "shop", "table.exclude.list": r"shop\.a"})
    assert filters.include_table("shop", "b")
    assert not filters.include_table("shop", "a")
    assert not filters.include_table("other", "b")


def test_column_lists_match_fully_qualified_column_names() -> None:
    included = parse_filters({"column.include.list": r"shop\.orders\.(id|total)"})
    assert included.include_column("shop", "orders", "id")
    assert not included.include_column("shop", "orders", "secret")
    assert not included.include_column("shop", "other", "id")
    excluded = parse_filters({"column.exclude.list": r"shop\.orders\.secret"})
    assert not excluded.include_column("shop", "orders", "secret")
    assert excluded.include_column("shop", "orders", "id")


@pytest.mark.parametrize("level", ["database", "table", "column"])
def test_include_and_exclude_of_one_level_are_rejected_naming_both(level: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_filters({f"{level}.include.list": "a", f"{level}.exclude.list": "b"})
    assert caught.value.key == f"{level}.exclude.list"
    assert f"{level}.include.list" in str(caught.value)


def test_include_and_exclude_of_different_levels_combine() -> None:
    parse_filters({"database.include.list": "a", "table.exclude.list": r"a\.b"})


@pytest.mark.parametrize(
    "key", ["database.include.list", "table.exclude.list", "column.include.list"]
)
def test_a_bad_pattern_is_rejected_naming_its_key(key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_filters({key: "ok, (unclosed"})
    assert caught.value.key.startswith(key)


def test_mask_with_chars_replaces_the_value() -> None:
    filters = parse_filters({"column.mask.with.4.chars": r"shop\.users\.(ssn|card)"})
    mask = filters.column_transform("shop", "users", "ssn")
    assert mask is not None and mask("123-45-6789") == "****"
    assert filters.column_transform("shop", "users", "name") is None


def test_mask_hash_is_the_hex_digest_of_salt_and_value() -> None:
    filters = parse_filters({"column.mask.hash.SHA-256.with.salt.pepper": r"shop\.users\.email"})
    mask = filters.column_transform("shop", "users", "email")
    assert mask is not None
    assert mask("a@b.c") == hashlib.sha256(b"peppera@b.c").hexdigest()
    assert mask("a@b.c") == mask("a@b.c") != mask("x@b.c")


def test_truncate_cuts_the_value_and_composes_with_masks() -> None:
    filters = parse_filters(
        {
            "column.truncate.to.3.chars": r"shop\.t\.(note|both)",
            "column.mask.hash.MD5.with.salt.s": r"shop\.t\.both",
        }
    )
    truncate = filters.column_transform("shop", "t", "note")
    both = filters.column_transform("shop", "t", "both")
    assert truncate is not None and both is not None
    assert truncate("abcdef") == "abc" and truncate("ab") == "ab"
    assert both("abcdef") == hashlib.md5(b"sabc").hexdigest()


@pytest.mark.parametrize(
    "key",
    [
        "column.mask.with.x.chars",
        "column.mask.with.0.chars",
        "column.mask.hash.NOSUCHHASH.with.salt.s",
        "column.truncate.to.chars",
        "column.truncate.to.-1.chars",
        "column.mask.something",
    ],
)
def test_a_malformed_parameterised_key_is_rejected_naming_it(key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_filters({key: r"db\.t\.c"})
    assert caught.value.key == key


def test_a_parameterised_key_needs_patterns() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_filters({"column.mask.with.2.chars": " , "})
    assert caught.value.key == "column.mask.with.2.chars"


def test_key_columns_default_to_the_primary_key() -> None:
    assert Filters.all().key_columns(_table("db", "t", "a", "b", pk=("b",))) == ("b",)
    assert Filters.all().key_columns(_table("db", "t", "a", "b")) == ()


def test_message_key_columns_override_the_primary_key_per_table() -> None:
    filters = parse_filters({"message.key.columns": r"db\.t:b,a; db2\..*:c ; db\.u:zz"})
    assert filters.key_columns(_table("db", "t", "a", "b", pk=("a",))) == ("b", "a")
    assert filters.key_columns(_table("db2", "anything", "c", "d")) == ("c",)
    assert filters.key_columns(_table("db", "other", "a", pk=("a",))) == ("a",)
    # Names the table lacks fall back to the primary key.
    assert filters.key_columns(_table("db", "u", "a", pk=("a",))) == ("a",)


@pytest.mark.parametrize("value", ["db.t", "db.t:", ":a", "db.(t:a"])
def test_malformed_message_key_columns_are_rejected(value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_filters({"message.key.columns": value})
    assert caught.value.key == "message.key.columns"


def test_unrelated_keys_are_ignored() -> None:
    filters = parse_filters({"topic.prefix": "srv", "column.propagate.source.type": ".*"})
    assert filters.include_table("a", "b")
