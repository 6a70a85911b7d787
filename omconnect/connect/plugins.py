"""Find plugin classes (connectors, converters, transforms, predicates) by name.

A config names a plugin by short alias (``file-source``, ``json``), by Kafka
Connect's class name where omconnect has an equivalent
(``org.apache.kafka.connect.json.JsonConverter``), or by its own class path
(``mypkg.mymod.MyConnector`` or ``mypkg.mymod:MyConnector``). Built-ins are lazy
``"module:Class"`` strings, imported only when used; other distributions add
plugins through entry-point groups (``omconnect.connectors`` ...).
"""

from __future__ import annotations

import importlib
import inspect
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import Literal

from omconnect.connect.connector import Connector, SinkConnector, SourceConnector
from omconnect.errors import ConfigError

log = logging.getLogger(__name__)

CONNECTORS_GROUP = "omconnect.connectors"
"""Entry-point group through which other distributions add connectors."""


@dataclass(frozen=True, slots=True)
class BuiltinPlugin:
    """A plugin shipped with omconnect: where it lives and the names that find it."""

    target: str
    """``"module:Class"``, imported only when used."""
    aliases: tuple[str, ...]


BUILTIN_CONNECTORS: tuple[BuiltinPlugin, ...] = (
    BuiltinPlugin(
        "omconnect.connectors.file.source:FileSourceConnector",
        (
            "file-source",
            "FileSourceConnector",
            "FileStreamSource",
            "FileStreamSourceConnector",
            "org.apache.kafka.connect.file.FileStreamSourceConnector",
        ),
    ),
    BuiltinPlugin(
        "omconnect.connectors.file.sink:FileSinkConnector",
        (
            "file-sink",
            "FileSinkConnector",
            "FileStreamSink",
            "FileStreamSinkConnector",
            "org.apache.kafka.connect.file.FileStreamSinkConnector",
        ),
    ),
    BuiltinPlugin(
        "omconnect.connectors.mysql.source:MySqlSourceConnector",
        (
            "mysql-source",
            "mariadb-source",
            "MySqlSourceConnector",
            "MySqlConnector",
            "io.debezium.connector.mysql.MySqlConnector",
            "io.debezium.connector.mariadb.MariaDbConnector",
        ),
    ),
    BuiltinPlugin(
        "omconnect.connectors.sql.sink:SqlSinkConnector",
        (
            "sql-sink",
            "jdbc-sink",
            "SqlSinkConnector",
            "JdbcSinkConnector",
            "io.confluent.connect.jdbc.JdbcSinkConnector",
            "io.debezium.connector.jdbc.JdbcSinkConnector",
        ),
    ),
    BuiltinPlugin(
        "omconnect.connectors.sql.source:SqlSourceConnector",
        (
            "sql-source",
            "jdbc-source",
            "SqlSourceConnector",
            "JdbcSourceConnector",
            "io.confluent.connect.jdbc.JdbcSourceConnector",
        ),
    ),
)


def alias_map(plugins: Iterable[BuiltinPlugin]) -> dict[str, str]:
    """Alias → ``"module:Class"`` for ``plugins`` (the shape `load_class` takes)."""
    return {alias: plugin.target for plugin in plugins for alias in plugin.aliases}


CONNECTOR_ALIASES: Mapping[str, str] = alias_map(BUILTIN_CONNECTORS)


def load_class(
    name: str, aliases: Mapping[str, str], group: str | None = None, key: str = "class"
) -> type:
    """The class ``name`` refers to: an alias, an entry point of ``group``, or a class
    path. `ConfigError` on ``key`` when it cannot be found or imported."""
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(key, "names no plugin class")
    name = name.strip()
    target = aliases.get(name)
    if target is None and group is not None:
        for ep in entry_points(group=group):
            if ep.name == name or ep.value == name:
                target = ep.value
                break
    if target is None:
        target = name
    module_name, sep, class_name = target.partition(":")
    if not sep:
        module_name, _, class_name = target.rpartition(".")
    if not module_name or not class_name:
        known = ", ".join(sorted(aliases))
        raise ConfigError(key, f"unknown plugin {name!r}; known aliases: {known}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        known = ", ".join(sorted(aliases))
        raise ConfigError(key, f"cannot load {name!r} ({exc}); known aliases: {known}") from None
    cls = getattr(module, class_name, None)
    if not isinstance(cls, type):
        raise ConfigError(key, f"{target!r} is not a class")
    return cls


def load_connector_class(name: str, key: str = "connector.class") -> type[Connector]:
    """The connector class ``name`` refers to: a built-in alias (``file-source``), a
    Kafka class name with an omconnect equivalent, an entry point of
    ``omconnect.connectors`` (by name or value), or a class path. `ConfigError` on
    ``key`` if it cannot be found or is not a concrete source or sink connector."""
    cls = load_class(name, CONNECTOR_ALIASES, group=CONNECTORS_GROUP, key=key)
    if not issubclass(cls, SourceConnector | SinkConnector):
        raise ConfigError(
            key, f"{name!r} is {_class_path(cls)}, not a SourceConnector or SinkConnector"
        )
    if inspect.isabstract(cls):
        missing = ", ".join(sorted(getattr(cls, "__abstractmethods__", ())))
        raise ConfigError(key, f"{name!r} is abstract (it does not implement {missing})")
    return cls


@dataclass(frozen=True, slots=True)
class PluginInfo:
    """One installed connector plugin, as ``GET /connector-plugins`` and
    ``omconnect plugins list`` show it."""

    class_name: str
    """Dotted class path, e.g. ``omconnect.connectors.file.source.FileSourceConnector``."""
    type: Literal["source", "sink"]
    version: str
    aliases: tuple[str, ...]


def list_connector_plugins() -> list[PluginInfo]:
    """Every connector plugin that can be loaded: the built-ins and the entry points
    of ``omconnect.connectors``, sorted by class path. A plugin that fails to import or
    is not a connector is logged and left out; its version is ``"unknown"`` if
    ``version()`` fails."""
    names: dict[str, list[str]] = {}  # "module:Class" -> aliases, in discovery order
    for plugin in BUILTIN_CONNECTORS:
        names.setdefault(plugin.target, []).extend(plugin.aliases)
    for ep in _connector_entry_points():
        names.setdefault(ep.value, []).append(ep.name)
    found: dict[str, PluginInfo] = {}
    for target, aliases in names.items():
        info = _describe(target, aliases)
        if info is None:
            continue
        if info.class_name in found:  # two targets spelling the same class
            merged = found[info.class_name].aliases + info.aliases
            info = PluginInfo(info.class_name, info.type, info.version, _unique(merged))
        found[info.class_name] = info
    return [found[name] for name in sorted(found)]


def _describe(target: str, aliases: list[str]) -> PluginInfo | None:
    try:
        cls = load_connector_class(target)
    except ConfigError as exc:
        log.warning("skipping connector plugin %s: %s", target, exc.reason)
        return None
    except Exception:  # a plugin's import-time bug must not break the listing
        log.warning("skipping connector plugin %s: import failed", target, exc_info=True)
        return None
    kind: Literal["source", "sink"] = "source" if issubclass(cls, SourceConnector) else "sink"
    try:
        version = str(cls().version())
    except Exception:
        log.warning("connector plugin %s: version() failed", target, exc_info=True)
        version = "unknown"
    return PluginInfo(_class_path(cls), kind, version, _unique(aliases))


def _connector_entry_points() -> list[EntryPoint]:
    return list(entry_points(group=CONNECTORS_GROUP))


def _class_path(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _unique(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))
