"""``/connector-plugins``: the installed plugins and their config definitions, in
Kafka Connect's JSON shapes.

A plugin is named as in a connector config: short alias, Kafka class name, entry
point or class path.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import omconnect
from omconnect.connect.config import PluginConfig, describe_config
from omconnect.connect.connector import Connector
from omconnect.connect.plugins import list_connector_plugins, load_connector_class
from omconnect.errors import ConfigError, NotFoundError
from omconnect.runtime.converters.base import CONVERTER_ALIASES, converter_class
from omconnect.runtime.transforms.registry import (
    PREDICATE_ALIASES,
    TRANSFORM_ALIASES,
    load_predicate,
    load_transformation,
)

# JSON-schema type of a config key -> Kafka's ConfigDef type name.
_KAFKA_TYPES = {
    "string": "STRING",
    "integer": "INT",
    "number": "DOUBLE",
    "boolean": "BOOLEAN",
    "array": "LIST",
    "object": "STRING",
}


def plugin_infos(connectors_only: bool = True) -> list[dict[str, Any]]:
    """``GET /connector-plugins``: ``[{"class", "type", "version"}]``; with
    ``connectors_only`` False also the transformations, predicates and converters."""
    out: list[dict[str, Any]] = [
        {"class": p.class_name, "type": p.type, "version": p.version}
        for p in list_connector_plugins()
    ]
    if not connectors_only:
        for kind, aliases in _OTHER_KINDS:
            for class_path in sorted(set(map(_class_path, aliases.values()))):
                out.append({"class": class_path, "type": kind, "version": omconnect.__version__})
    return out


def connector_class(name: str) -> type[Connector] | None:
    """The connector class ``name`` names (alias, Kafka class name, entry point or
    class path, as in a connector config), None if it names none."""
    try:
        return load_connector_class(name)
    except ConfigError:
        return None


def plugin_config(name: str) -> list[dict[str, Any]]:
    """``GET /connector-plugins/{name}/config``: Kafka's ConfigKeyInfo for each key of
    the plugin's config model. `NotFoundError` for an unknown plugin."""
    return [
        _config_key_json(info, order)
        for order, info in enumerate(describe_config(_config_model(name)), start=1)
    ]


def _config_model(name: str) -> type[PluginConfig]:
    connector = connector_class(name)
    if connector is not None:
        return connector.config_model
    for kind, _ in _OTHER_KINDS:
        try:
            return cast(type[PluginConfig], _LOADERS[kind](name).config_model)
        except ConfigError:
            continue
    raise NotFoundError(f"Unknown plugin {name}.")


def _config_key_json(info: Any, order: int) -> dict[str, Any]:
    kafka_type = "PASSWORD" if info.secret else _kafka_type(info.type)
    default = info.default
    if isinstance(default, list | tuple):
        default = ",".join(map(str, default))
    elif isinstance(default, bool):
        default = str(default).lower()
    elif default is not None:
        default = str(default)
    return {
        "name": info.name,
        "type": kafka_type,
        "required": info.required,
        "default_value": default,
        "importance": "HIGH" if info.required else "MEDIUM",
        "documentation": info.documentation,
        "group": None,
        "order_in_group": order,
        "width": "NONE",
        "display_name": info.name,
        "dependents": [],
    }


def _kafka_type(json_type: str) -> str:
    first = json_type.split("|", 1)[0]
    return _KAFKA_TYPES.get(first, first.upper() or "STRING")


def _class_path(target: str) -> str:
    return target.replace(":", ".")


_OTHER_KINDS: tuple[tuple[str, dict[str, str]], ...] = (
    ("transformation", TRANSFORM_ALIASES),
    ("predicate", PREDICATE_ALIASES),
    ("converter", CONVERTER_ALIASES),
)
_LOADERS: dict[str, Callable[[str], Any]] = {
    "transformation": load_transformation,
    "predicate": load_predicate,
    "converter": converter_class,
}
