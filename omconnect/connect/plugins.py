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
from collections.abc import Mapping
from importlib.metadata import entry_points

from omconnect.errors import ConfigError


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
