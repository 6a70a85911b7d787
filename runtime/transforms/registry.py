"""Names of the built-in transforms and predicates, and loading a class by name.

A connector config names a transform by

- its short alias: Kafka's simple class name, with ``$Key``/``$Value`` where Kafka
  has both forms: ``InsertField$Value``, ``RegexRouter``, ``TopicNameMatches``;
- Kafka's class name: ``org.apache.kafka.connect.transforms.InsertField$Value``,
  ``org.apache.kafka.connect.transforms.predicates.TopicNameMatches``;
- an entry point of the ``omconnect.transforms`` / ``omconnect.predicates`` group
  (third-party distributions), by entry-point name;
- a class path: ``mypkg.mod.MyTransform`` or ``mypkg.mod:MyTransform``.
"""

from __future__ import annotations

import inspect
from typing import Any

from omconnect.connect.plugins import load_class
from omconnect.errors import ConfigError
from omconnect.runtime.transforms.base import Predicate, Transformation

KAFKA_TRANSFORMS = "org.apache.kafka.connect.transforms."
KAFKA_PREDICATES = "org.apache.kafka.connect.transforms.predicates."
TRANSFORM_GROUP = "omconnect.transforms"
PREDICATE_GROUP = "omconnect.predicates"

_PACKAGE = "omconnect.runtime.transforms"
# Kafka name (without $Key/$Value) -> module:class prefix; sided ones get Key/Value.
_SIDED = {
    "InsertField": "fields:InsertField",
    "ReplaceField": "fields:ReplaceField",
    "MaskField": "fields:MaskField",
    "ExtractField": "reshape:ExtractField",
    "HoistField": "reshape:HoistField",
    "Flatten": "structure:Flatten",
    "SetSchemaMetadata": "structure:SetSchemaMetadata",
    "Cast": "cast:Cast",
    "TimestampConverter": "timestamps:TimestampConverter",
    "HeaderFrom": "headers:HeaderFrom",
}
_SINGLE = {
    "ValueToKey": "reshape:ValueToKey",
    "RegexRouter": "routing:RegexRouter",
    "TimestampRouter": "routing:TimestampRouter",
    "Filter": "filter:Filter",
    "InsertHeader": "headers:InsertHeader",
    "DropHeaders": "headers:DropHeaders",
}
_PREDICATES = {
    "TopicNameMatches": "predicates:TopicNameMatches",
    "HasHeaderKey": "predicates:HasHeaderKey",
    "RecordIsTombstone": "predicates:RecordIsTombstone",
}


def _short_names() -> dict[str, str]:
    names = {name: f"{_PACKAGE}.{target}" for name, target in _SINGLE.items()}
    for name, target in _SIDED.items():
        for side in ("Key", "Value"):
            names[f"{name}${side}"] = f"{_PACKAGE}.{target}{side}"
    return names


_TRANSFORM_SHORT = _short_names()
TRANSFORM_ALIASES: dict[str, str] = {
    **_TRANSFORM_SHORT,
    **{KAFKA_TRANSFORMS + name: target for name, target in _TRANSFORM_SHORT.items()},
}
PREDICATE_ALIASES: dict[str, str] = {
    **{name: f"{_PACKAGE}.{target}" for name, target in _PREDICATES.items()},
    **{KAFKA_PREDICATES + name: f"{_PACKAGE}.{target}" for name, target in _PREDICATES.items()},
}


def _check_plugin(cls: type, base: type, name: str, key: str, kind: str) -> None:
    if not issubclass(cls, base):
        raise ConfigError(key, f"{name!r} is not a {kind} (it does not subclass {base.__name__})")
    if inspect.isabstract(cls):
        raise ConfigError(key, f"{name!r} is abstract; name a concrete {kind}")


def load_transformation(name: str, key: str = "type") -> type[Transformation[Any]]:
    """The transformation class ``name`` refers to; `ConfigError` on ``key`` when it is
    unknown, not a `Transformation`, or a Kafka name missing its ``$Key``/``$Value``."""
    bare = name.strip().removeprefix(KAFKA_TRANSFORMS) if isinstance(name, str) else ""
    if bare in _SIDED:
        raise ConfigError(
            key, f"{name} needs a side: use {name.strip()}$Key or {name.strip()}$Value"
        )
    cls = load_class(name, TRANSFORM_ALIASES, TRANSFORM_GROUP, key)
    _check_plugin(cls, Transformation, name, key, "transformation")
    return cls


def load_predicate(name: str, key: str = "type") -> type[Predicate[Any]]:
    """The predicate class ``name`` refers to; `ConfigError` on ``key`` when it is
    unknown or not a `Predicate`."""
    cls = load_class(name, PREDICATE_ALIASES, PREDICATE_GROUP, key)
    _check_plugin(cls, Predicate, name, key, "predicate")
    return cls
