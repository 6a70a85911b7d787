"""`validate_connector_config`: Kafka's config/validate answer, key by key."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import pytest
from pydantic import Field, SecretStr

from omconnect.connect.config import KeyError_, PluginConfig
from omconnect.connect.connector import SourceConnector, SourceTask
from omconnect.errors import ConfigError
from omconnect.runtime.config_providers import EnvProvider
from omconnect.runtime.herder import ValidationResult
from omconnect.runtime.validation import (
    check_valid,
    errors_of,
    plugin_config_keys,
    validate_connector_config,
)


class SecretConfig(PluginConfig):
    host: str = Field(description="Where to connect.")
    password: SecretStr = Field(description="Never shown.")


class SecretSource(SourceConnector):
    """A source whose config has a SecretStr key (never started here)."""

    config_model: ClassVar[type[PluginConfig]] = SecretConfig

    def start(self, config: Mapping[str, str]) -> None:
        pass

    def task_configs(self, max_tasks: int) -> list[dict[str, str]]:
        return []

    def stop(self) -> None:
        pass

    def task_class(self) -> type[SourceTask]:
        raise NotImplementedError


class BrokenValidateSource(SecretSource):
    def validate(self, config: Mapping[str, str]) -> list[KeyError_]:
        raise RuntimeError("plugin bug")


SECRET_SOURCE = f"{__name__}:SecretSource"


def file_source(**changes: str | None) -> dict[str, str]:
    """A valid file source config with ``changes`` (None removes a key)."""
    config = {"name": "src", "connector.class": "file-source", "file": "in.txt", "topic": "t"}
    for key, value in changes.items():
        if value is None:
            config.pop(key, None)
        else:
            config[key] = value
    return config


def errors(result: ValidationResult) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for key, reason in errors_of(result):
        out.setdefault(key, []).append(reason)
    return out


def value_of(result: ValidationResult, key: str) -> object:
    return next(v.value for _, v in result.configs if v.name == key)


def test_valid_file_source_has_no_errors_and_every_group() -> None:
    result = validate_connector_config("file-source", file_source())
    assert result.error_count == 0 and errors(result) == {}
    assert result.name == "omconnect.connectors.file.source.FileSourceConnector"
    assert result.groups == ("Common", "Transforms", "Error Handling", "FileSourceConnector")
    groups = {d.name: d.group for d, _ in result.configs}
    assert groups["tasks.max"] == "Common" and groups["file"] == "FileSourceConnector"
    assert groups["errors.tolerance"] == "Error Handling" and groups["transforms"] == "Transforms"
    assert value_of(result, "file") == "in.txt"
    assert value_of(result, "batch.size") == "2000"  # the default, as Kafka shows it


def test_missing_required_key_is_an_error_on_it() -> None:
    result = validate_connector_config("file-source", file_source(file=None))
    assert errors(result) == {"file": ["is required and has no default"]}
    assert result.error_count == 1


@pytest.mark.parametrize("tasks_max", ["0", "-3", "many"])
def test_bad_tasks_max(tasks_max: str) -> None:
    result = validate_connector_config("file-source", file_source(**{"tasks.max": tasks_max}))
    assert list(errors(result)) == ["tasks.max"]


def test_unknown_connector_class() -> None:
    result = validate_connector_config("", file_source(**{"connector.class": "no.such.Thing"}))
    assert list(errors(result)) == ["connector.class"]
    assert "no.such.Thing" in errors(result)["connector.class"][0]
    assert "FileSourceConnector" not in result.groups


def test_plugin_must_match_connector_class() -> None:
    result = validate_connector_config("file-sink", file_source())
    assert list(errors(result)) == ["connector.class"]
    # Without connector.class the plugin fills it in.
    unnamed = file_source(**{"connector.class": None})
    assert validate_connector_config("file-source", unnamed).error_count == 0
    assert list(errors(validate_connector_config("", unnamed))) == ["connector.class"]


def test_converters_must_load_and_their_settings_are_checked() -> None:
    bad = validate_connector_config("file-source", file_source(**{"value.converter": "nope"}))
    assert list(errors(bad)) == ["value.converter"]
    settings = file_source(**{"key.converter": "json", "key.converter.schemas.enable": "maybe"})
    result = validate_connector_config("file-source", settings)
    assert list(errors(result)) == ["key.converter.schemas.enable"]
    assert value_of(result, "key.converter.schemas.enable") == "maybe"


def test_bad_error_tolerance_and_retry_timeout() -> None:
    config = file_source(**{"errors.tolerance": "some", "errors.retry.timeout": "-2"})
    result = validate_connector_config("file-source", config)
    assert set(errors(result)) == {"errors.tolerance", "errors.retry.timeout"}
    tolerance = next(v for _, v in result.configs if v.name == "errors.tolerance")
    assert tolerance.recommended_values == ("none", "all")
    assert result.error_count == 2


def test_transform_errors_name_the_full_key() -> None:
    config = file_source(
        transforms="route,mask,odd",
        **{
            "transforms.route.type": "RegexRouter",
            "transforms.route.regex": "(.*)",
            "transforms.mask.type": "MaskField$Value",
            "transforms.mask.fields": "ssn",
            "transforms.mask.predicate": "unknown",
            "transforms.odd.type": "NoSuchTransform",
        },
    )
    found = errors(validate_connector_config("file-source", config))
    assert set(found) == {"transforms.route.replacement", "transforms.odd.type"}
    fixed = {**config, "transforms": "mask"}  # only the whole chain sees the predicate
    assert list(errors(validate_connector_config("file-source", fixed))) == [
        "transforms.mask.predicate"
    ]


def test_sink_needs_topics() -> None:
    config = {"name": "out", "connector.class": "file-sink", "file": "out.txt"}
    assert list(errors(validate_connector_config("file-sink", config))) == ["topics"]
    assert validate_connector_config("file-sink", {**config, "topics": "a,b"}).error_count == 0


def test_secrets_are_hidden_and_typed_password() -> None:
    config = {"name": "s", "connector.class": SECRET_SOURCE, "host": "db", "password": "s3cret"}
    result = validate_connector_config("", config)
    assert result.error_count == 0
    assert value_of(result, "password") == "[hidden]" and value_of(result, "host") == "db"
    answer = next(c for c in result.as_json()["configs"] if c["value"]["name"] == "password")
    assert answer["definition"]["type"] == "PASSWORD"
    assert answer["definition"]["group"] == "SecretSource"
    assert "s3cret" not in repr(result.as_json())


def test_references_are_resolved_for_checking_but_shown_as_written() -> None:
    providers = {"env": EnvProvider({"PW": "from-env", "MAX": "x"})}
    config = {
        "name": "s",
        "connector.class": SECRET_SOURCE,
        "host": "${env:HOST}",
        "password": "${env:PW}",
        "tasks.max": "${env:MAX}",
    }
    result = validate_connector_config("", config, providers)
    found = errors(result)
    assert set(found) == {"host", "tasks.max"}
    assert len(found["host"]) == 1 and "'HOST' is not set" in found["host"][0]
    assert value_of(result, "tasks.max") == "${env:MAX}"
    assert value_of(result, "password") == "[hidden]"
    assert "from-env" not in repr(result.as_json())


def test_a_plugin_validate_bug_is_an_error_not_a_crash() -> None:
    config = {"name": "s", "connector.class": f"{__name__}:BrokenValidateSource"}
    assert "plugin bug" in errors(validate_connector_config("", config))["connector.class"][0]


def test_check_valid_names_the_first_bad_key() -> None:
    check_valid(validate_connector_config("file-source", file_source()))
    with pytest.raises(ConfigError) as error:
        bad = file_source(file=None, **{"tasks.max": "0"})
        check_valid(validate_connector_config("file-source", bad))
    assert error.value.key == "tasks.max" and "file: is required" in error.value.reason


def test_plugin_config_keys() -> None:
    own = plugin_config_keys("file-sink")
    assert [(k.name, k.type, k.required) for k in own] == [("file", "string", True)]
    every = plugin_config_keys("file-sink", include_common=True)
    assert {k.group for k in every} == {"Common", "Error Handling", "FileSinkConnector"}
    with pytest.raises(ConfigError):
        plugin_config_keys("no-such-plugin")
