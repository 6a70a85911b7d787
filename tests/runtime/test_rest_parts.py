"""The REST layer's pure parts: the error table, request bodies, level names, auth
settings and forwarding URLs."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from omconnect.errors import AlreadyExistsError, ConfigError, NotFoundError
from omconnect.runtime.herder import RebalanceInProgressError
from omconnect.runtime.rest import AuthConfig, LoggerAdmin
from omconnect.runtime.rest.auth import parse_basic_users
from omconnect.runtime.rest.bodies import config_patch, string_config, with_url_name
from omconnect.runtime.rest.errors import RestError, status_for
from omconnect.runtime.rest.forwarding import leader_url_for, may_forward
from omconnect.runtime.rest.loggers import kafka_level_name, python_level


def test_error_status_table() -> None:
    assert status_for(ConfigError("k", "r")) == 400
    assert status_for(NotFoundError("x")) == 404
    assert status_for(AlreadyExistsError("x")) == 409
    assert status_for(RebalanceInProgressError("x")) == 409
    assert status_for(RestError(418, "teapot")) == 418
    assert status_for(ValueError("x")) == 500


def test_config_bodies_are_string_maps() -> None:
    assert string_config({"a": 1, "b": True, "c": "x", "d": 1.5}) == {
        "a": "1",
        "b": "true",
        "c": "x",
        "d": "1.5",
    }
    with pytest.raises(ConfigError, match=r"^k:"):
        string_config({"k": None})
    with pytest.raises(ConfigError, match=r"^k:"):
        string_config({"k": {"nested": 1}})
    with pytest.raises(RestError):
        string_config([1, 2])
    assert config_patch({"a": None, "b": 2}) == {"a": None, "b": "2"}
    assert with_url_name("n", {"x": "1"}) == {"x": "1", "name": "n"}
    assert with_url_name("n", {"name": "n"}) == {"name": "n"}
    with pytest.raises(RestError):
        with_url_name("n", {"name": "m"})


def test_level_names_map_both_ways() -> None:
    names = ("OFF", "FATAL", "ERROR", "WARN", "INFO", "DEBUG", "TRACE")
    assert [python_level(n) for n in names] == [60, 50, 40, 30, 20, 10, 5]
    assert python_level("warning") == python_level("Warn") == logging.WARNING
    levels = (60, 50, 45, 40, 30, 20, 15, 10, 5, 1)
    assert [kafka_level_name(n) for n in levels] == [
        "OFF",
        "FATAL",
        "ERROR",
        "ERROR",
        "WARN",
        "INFO",
        "DEBUG",
        "DEBUG",
        "TRACE",
        "TRACE",
    ]
    with pytest.raises(NotFoundError):
        python_level("LOUD")


@pytest.fixture
def scratch_logger() -> Iterator[str]:
    name = "omconnect.test_rest_parts_scratch"
    yield name
    logging.getLogger(name).setLevel(logging.NOTSET)


def test_logger_admin_records_when_the_api_set_a_level(scratch_logger: str) -> None:
    admin = LoggerAdmin(clock=lambda: 1234.5)
    assert admin.set_level(scratch_logger, "DEBUG") == [scratch_logger]
    assert admin.level(scratch_logger) == {"level": "DEBUG", "last_modified": 1234500}
    assert admin.all_levels()[scratch_logger] == {"level": "DEBUG", "last_modified": 1234500}
    with pytest.raises(ConfigError):
        admin.set_level(" ", "DEBUG")


def test_auth_config_from_worker_config() -> None:
    assert AuthConfig.from_worker_config({}) is None
    config = AuthConfig.from_worker_config(
        {"rest.auth.bearer.token": "t0k3n", "rest.auth.basic.users": "a:1, b:2"}
    )
    assert config is not None
    assert config.bearer_token == "t0k3n"
    assert dict(config.basic_users) == {"a": "1", "b": "2"}
    assert "t0k3n" not in repr(config)
    assert config.allows("Bearer t0k3n") and not config.allows("Bearer t0k3")
    assert parse_basic_users('{"a": "x"}') == {"a": "x"}
    with pytest.raises(ConfigError, match=r"rest\.auth\.basic\.users: entry 2"):
        parse_basic_users("a:1,nocolon")
    with pytest.raises(ConfigError, match=r"rest\.auth\.basic\.users"):
        parse_basic_users("{not json")
    with pytest.raises(ConfigError, match=r"rest\.auth\.bearer\.token"):
        AuthConfig(bearer_token=" ")


def test_leader_url_and_forward_flag() -> None:
    assert leader_url_for("http://l:1/", "/connectors/x", "expand=status&forward=true") == (
        "http://l:1/connectors/x?expand=status&forward=false"
    )
    assert may_forward("") and may_forward("forward=true")
    assert not may_forward("a=1&forward=false")
