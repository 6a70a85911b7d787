"""Checks on request bodies, as Kafka Connect makes them (pure functions).

Config maps are strings to strings; like Kafka's JSON reader, numbers and booleans
are accepted and turned into their text (``1`` → ``"1"``, ``true`` → ``"true"``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from omconnect.errors import ConfigError
from omconnect.runtime.rest.errors import RestError

NAME_KEY = "name"


def string_config(body: Any) -> dict[str, str]:
    """A full config: every value a string. `ConfigError` naming a null, list or
    object value; `RestError` 400 if the body is not a JSON object."""
    return {
        key: value for key, value in _scalars(body, allow_null=False).items() if value is not None
    }


def config_patch(body: Any) -> dict[str, str | None]:
    """A config patch: null removes a key, other values are set."""
    return _scalars(body, allow_null=True)


def with_url_name(url_name: str, config: dict[str, str]) -> dict[str, str]:
    """``config`` with ``name`` set to the connector name in the URL; `RestError` 400
    if the config names another connector."""
    included = config.get(NAME_KEY)
    if included is not None and included != url_name:
        raise RestError(
            400,
            f"Connector name configuration ({included}) doesn't match connector name "
            f"in the URL ({url_name})",
        )
    return {**config, NAME_KEY: url_name}


def _scalars(body: Any, allow_null: bool) -> dict[str, str | None]:
    if not isinstance(body, Mapping):
        raise RestError(400, "The request body must be a JSON object of config keys to values.")
    out: dict[str, str | None] = {}
    for key, value in body.items():
        if value is None:
            if not allow_null:
                raise ConfigError(key, "must be a string, not null")
            out[key] = None
        elif isinstance(value, bool):
            out[key] = "true" if value else "false"
        elif isinstance(value, int | float | str):
            out[key] = str(value)
        else:
            raise ConfigError(key, "must be a string, number or boolean, not a list or object")
    return out
