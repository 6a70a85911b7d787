"""Config definitions: parse, errors naming keys, describe, redact."""

from __future__ import annotations

import pydantic
import pytest
from pydantic import Field, SecretStr

from omconnect.connect.config import (
    HIDDEN,
    KeyError_,
    PluginConfig,
    config_errors,
    describe_config,
    parse_config,
    redact,
    split_list,
)
from omconnect.errors import ConfigError


class SampleConfig(PluginConfig):
    file: str = Field(description="Path of the file to read.")
    batch_size: int = Field(2000, alias="batch.size", gt=0, description="Lines per poll.")
    topics: list[str] = Field(default_factory=list, description="Topics to write.")
    compress: bool = Field(False, description="Gzip the output.")
    password: SecretStr | None = Field(None, alias="db.password", description="Never logged.")
    api_key: SecretStr = Field(SecretStr("dflt"), alias="api.key", description="Key.")


def test_parse_converts_strings_and_applies_defaults() -> None:
    config = parse_config(
        SampleConfig,
        {"file": "/tmp/in", "batch.size": "10", "compress": "true", "name": "ignored"},
    )
    assert config.file == "/tmp/in"
    assert config.batch_size == 10
    assert config.compress is True
    assert config.topics == []
    assert config.password is None


def test_keys_by_alias_or_field_name() -> None:
    assert parse_config(SampleConfig, {"file": "f", "batch_size": 3}).batch_size == 3
    assert parse_config(SampleConfig, {"file": "f", "batch.size": 4}).batch_size == 4


def test_list_keys_accept_comma_separated_strings() -> None:
    config = parse_config(SampleConfig, {"file": "f", "topics": " a, b ,,c "})
    assert config.topics == ["a", "b", "c"]
    assert parse_config(SampleConfig, {"file": "f", "topics": ""}).topics == []
    assert parse_config(SampleConfig, {"file": "f", "topics": ["x,y"]}).topics == ["x,y"]
    assert split_list("a,b") == ["a", "b"]


def test_optional_list_with_alias_is_split() -> None:
    class Lists(PluginConfig):
        ids: tuple[int, ...] | None = Field(None, alias="task.ids")

    assert parse_config(Lists, {"task.ids": "1, 2"}).ids == (1, 2)
    assert parse_config(Lists, {}).ids is None


def test_required_key_missing_is_named() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(SampleConfig, {})
    assert caught.value.key == "file"
    assert caught.value.reason == "is required and has no default"


def test_invalid_value_names_the_alias_not_the_field_name() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(SampleConfig, {"file": "f", "batch.size": "0"})
    assert caught.value.key == "batch.size"
    assert "greater than 0" in caught.value.reason


def test_several_errors_are_all_reported() -> None:
    values = {"batch.size": "many", "compress": "maybe"}
    errors = config_errors(SampleConfig, values)
    assert {e.key for e in errors} == {"file", "batch.size", "compress"}
    assert KeyError_("file", "is required and has no default") in errors
    with pytest.raises(ConfigError) as caught:
        parse_config(SampleConfig, values)
    message = str(caught.value)
    assert message.startswith("file: is required")
    assert "batch.size:" in message and "compress:" in message


def test_valid_config_has_no_errors() -> None:
    assert config_errors(SampleConfig, {"file": "f"}) == []


def test_parsed_config_is_frozen() -> None:
    config = parse_config(SampleConfig, {"file": "f"})
    with pytest.raises(pydantic.ValidationError):
        config.file = "g"


def test_secrets_never_print() -> None:
    config = parse_config(SampleConfig, {"file": "f", "db.password": "hunter2"})
    assert config.password is not None
    assert config.password.get_secret_value() == "hunter2"
    assert "hunter2" not in repr(config) and "hunter2" not in str(config)


def test_describe_lists_every_key_with_type_default_docs_and_secrecy() -> None:
    info = {i.name: i for i in describe_config(SampleConfig)}
    assert list(info) == ["file", "batch.size", "topics", "compress", "db.password", "api.key"]
    assert info["file"].required and info["file"].default is None
    assert info["file"].documentation == "Path of the file to read."
    assert (info["batch.size"].type, info["batch.size"].default) == ("integer", 2000)
    assert not info["batch.size"].required
    assert info["topics"].type == "array" and info["topics"].default == []
    assert info["compress"].type == "boolean"
    assert info["db.password"].secret and info["db.password"].type == "string"
    assert info["api.key"].secret and info["api.key"].default == HIDDEN
    assert not info["file"].secret


def test_redact_hides_model_secrets_named_keys_and_secret_looking_keys() -> None:
    raw = {
        "file": "/tmp/in",
        "db.password": "p",
        "api.key": "k",
        "connection.url": "jdbc:x",
        "sasl.jaas.token": "t",
        "aws.secret.access": "s",
        "gcp.credentials": "c",
        "key.converter": "json",
    }
    shown = redact(raw, SampleConfig, secret_keys={"connection.url"})
    assert shown == {
        "file": "/tmp/in",
        "db.password": HIDDEN,
        "api.key": HIDDEN,
        "connection.url": HIDDEN,
        "sasl.jaas.token": HIDDEN,
        "aws.secret.access": HIDDEN,
        "gcp.credentials": HIDDEN,
        "key.converter": "json",
    }
    assert raw["db.password"] == "p"  # a copy


def test_redact_without_model_uses_names_only() -> None:
    assert redact({"api.key": "k", "PASSWORD": "p"}) == {"api.key": "k", "PASSWORD": HIDDEN}
