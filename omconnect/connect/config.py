"""Config definitions: one typed declaration per connector, transform or converter.

A plugin declares its configuration once, as a pydantic model subclassing
`PluginConfig`: each key a field with a type, a default (or none: required), a
description and, for dotted Kafka-style names, an alias::

    class FileSourceConfig(PluginConfig):
        file: str = Field(description="Path of the file to read.")
        batch_size: int = Field(2000, alias="batch.size", gt=0,
                                description="Lines per poll.")
        password: SecretStr | None = Field(None, description="Never logged.")

Raw configs are string maps: pydantic converts ``"2000"`` to int and ``"true"`` to
bool, and a string for a list-typed key is split at commas (Kafka's LIST type:
``topics=a, b`` is ``["a", "b"]``).

From that one declaration come: `parse_config` (validation with the failing key and
the reason in a `ConfigError`), `describe_config` (the REST ``config/validate`` and
``omconnect plugins describe`` answers), and docs. Secrets typed `SecretStr` print
as ``[hidden]``. A parsed config is frozen.
"""

from __future__ import annotations

import types
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, SecretStr, ValidationError, model_validator

from omconnect.errors import ConfigError

HIDDEN = "[hidden]"


class PluginConfig(BaseModel):
    """Base of every plugin's config model: frozen, keys by alias or field name,
    unknown keys ignored (the runtime's own keys share the same map)."""

    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="ignore")

    @model_validator(mode="before")
    @classmethod
    def _split_list_strings(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        out = dict(data)
        for name, field in cls.model_fields.items():
            if not _is_collection(field.annotation):
                continue
            for key in {field.alias or name, name}:
                if isinstance(out.get(key), str):
                    out[key] = split_list(out[key])
        return out


def split_list(value: str) -> list[str]:
    """Kafka's LIST parsing: items separated by commas, trimmed, empty ones dropped."""
    return [item.strip() for item in value.split(",") if item.strip()]


def _is_collection(annotation: Any) -> bool:
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        return any(_is_collection(arg) for arg in get_args(annotation))
    return annotation in (list, tuple, set, frozenset) or origin in (list, tuple, set, frozenset)


C = TypeVar("C", bound=PluginConfig)


@dataclass(frozen=True, slots=True)
class KeyError_:
    """One invalid key: its name (alias) and the reason."""

    key: str
    reason: str


def config_errors(model: type[PluginConfig], values: Mapping[str, Any]) -> list[KeyError_]:
    """Every invalid key of ``values`` for ``model`` (empty if valid)."""
    try:
        model.model_validate(dict(values))
    except ValidationError as exc:
        return [_key_error(model, error) for error in exc.errors()]
    return []


def parse_config(model: type[C], values: Mapping[str, Any]) -> C:
    """Validate ``values`` into a frozen ``model``; `ConfigError` names the first bad
    key (all of them in its message when there are several)."""
    try:
        return model.model_validate(dict(values))
    except ValidationError as exc:
        errors = [_key_error(model, e) for e in exc.errors()]
        first = errors[0]
        more = "; ".join(f"{e.key}: {e.reason}" for e in errors[1:])
        raise ConfigError(first.key, first.reason + (f" (also {more})" if more else "")) from None


def _key_error(model: type[PluginConfig], error: Any) -> KeyError_:
    location = [str(part) for part in error.get("loc", ())]
    name = location[0] if location else ""
    field = model.model_fields.get(name)
    key = field.alias if field is not None and field.alias else name
    key = ".".join([key, *location[1:]]) if key else "config"
    reason = str(error.get("msg", "invalid"))
    if error.get("type") == "missing":
        reason = "is required and has no default"
    return KeyError_(key, reason)


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """What `describe_config` says of one key."""

    name: str
    type: str
    required: bool
    default: Any
    documentation: str
    secret: bool


def describe_config(model: type[PluginConfig]) -> list[KeyInfo]:
    """Each key of ``model``: name (alias), type, default, documentation, secrecy."""
    out: list[KeyInfo] = []
    schema = model.model_json_schema(by_alias=True)
    properties = schema.get("properties", {})
    for name, field in model.model_fields.items():
        key = field.alias or name
        spec = properties.get(key, {})
        secret = "SecretStr" in str(field.annotation)
        default = None if field.is_required() else field.get_default(call_default_factory=True)
        if isinstance(default, SecretStr):
            default = HIDDEN
        out.append(
            KeyInfo(
                key, _type_name(spec), field.is_required(), default, field.description or "", secret
            )
        )
    return out


def _type_name(spec: Mapping[str, Any]) -> str:
    if "type" in spec:
        return str(spec["type"])
    options = [str(o.get("type", "")) for o in spec.get("anyOf", []) if o.get("type") != "null"]
    return "|".join(o for o in options if o) or "any"


def redact(
    config: Mapping[str, Any],
    model: type[PluginConfig] | None = None,
    secret_keys: set[str] | None = None,
) -> dict[str, Any]:
    """A copy of a raw config map with secret values replaced by ``[hidden]``: keys
    typed `SecretStr` in ``model``, keys in ``secret_keys`` (e.g. those resolved by a
    config provider), and any key whose name contains "password", "secret", "token"
    or "credential"."""
    secret = set(secret_keys or ())
    if model is not None:
        secret |= {i.name for i in describe_config(model) if i.secret}
    return {
        key: HIDDEN if key in secret or _looks_secret(key) else value
        for key, value in config.items()
    }


def _looks_secret(key: str) -> bool:
    lowered = key.lower()
    return any(word in lowered for word in ("password", "secret", "token", "credential"))
