"""Helpers of the REST tests: `call` (one HTTP request, any status) and
`InMemoryHerder`, a small `Herder` for the error paths that a real worker reaches only
with difficulty (a rebalance, a non-leader, a crash).

`InMemoryHerder` keeps configs in a dict, validates like the real herder where the
REST layer cares (``connector.class`` known, ``tasks.max`` a positive integer,
secrets shown as ``[hidden]``) and raises ``fail_with`` from every call while that is
set.
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from omconnect.connect.plugins import load_connector_class
from omconnect.errors import ConfigError, NotFoundError
from omconnect.runtime.herder import (
    ConnectorInfo,
    ConnectorStatus,
    TaskState,
    ValidationResult,
)

WORKER = "127.0.0.1:8083"


@dataclass
class Answer:
    """An HTTP answer: status, body parsed as JSON (None if empty), lower-case headers."""

    status: int
    body: Any
    headers: dict[str, str]


def call(
    base: str,
    method: str,
    path: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
    raw: bytes | None = None,
) -> Answer:
    """One request with a JSON ``body`` (or ``raw`` bytes); the answer whatever its
    status."""
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    request = urllib.request.Request(base + path, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            status, text, got = response.status, response.read(), response.headers
    except urllib.error.HTTPError as error:
        status, text, got = error.code, error.read(), error.headers
    parsed = json.loads(text) if text else None
    return Answer(status, parsed, {k.lower(): v for k, v in got.items()})


def assert_error(answer: Answer, status: int, *words: str) -> None:
    """``answer`` is Kafka's error body with ``status`` and a message holding ``words``."""
    assert answer.status == status, answer
    assert set(answer.body) == {"error_code", "message"}, answer.body
    assert answer.body["error_code"] == status
    for word in words:
        assert word in answer.body["message"], answer.body


class InMemoryHerder:
    """Connectors as dicts; states follow pause/resume/stop/restart at once."""

    worker_id = WORKER

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        """Forget every connector, restart and injected failure."""
        self.configs: dict[str, dict[str, str]] = {}
        self.states: dict[str, str] = {}
        self.offsets: dict[str, list[dict[str, Any]]] = {}
        self.restarts: list[tuple[str, object]] = []
        self.fail_with: Exception | None = None

    def _check(self, name: str | None = None) -> None:
        if self.fail_with is not None:
            raise self.fail_with
        if name is not None and name not in self.configs:
            raise NotFoundError(f"Connector {name} not found")

    def _type(self, config: Mapping[str, str]) -> str:
        cls = load_connector_class(config["connector.class"])
        return "source" if "Source" in cls.__name__ else "sink"

    def _tasks(self, name: str) -> int:
        return int(self.configs[name].get("tasks.max", "1"))

    def _validate(self, config: Mapping[str, str]) -> None:
        if "connector.class" not in config:
            raise ConfigError("connector.class", "is required and has no default")
        load_connector_class(config["connector.class"])
        tasks = config.get("tasks.max", "1")
        if not tasks.isdigit() or int(tasks) < 1:
            raise ConfigError("tasks.max", f"must be a positive integer, not {tasks!r}")

    @staticmethod
    def _redacted(config: Mapping[str, str]) -> dict[str, str]:
        return {k: "[hidden]" if "password" in k else v for k, v in config.items()}

    def connectors(self) -> list[str]:
        self._check()
        return sorted(self.configs)

    def connector_info(self, name: str) -> ConnectorInfo:
        self._check(name)
        config = self.configs[name]
        return ConnectorInfo(
            name,
            self._redacted(config),
            tuple(range(self._tasks(name))),
            self._type(config),
        )

    def connector_config(self, name: str) -> dict[str, str]:
        self._check(name)
        return self._redacted(self.configs[name])

    def put_connector_config(
        self, name: str, config: Mapping[str, str]
    ) -> tuple[bool, ConnectorInfo]:
        self._check()
        self._validate(config)
        with self._lock:
            created = name not in self.configs
            self.configs[name] = dict(config)
            self.states.setdefault(name, "RUNNING")
            self.offsets.setdefault(name, [])
        return created, self.connector_info(name)

    def patch_connector_config(self, name: str, changes: Mapping[str, str | None]) -> ConnectorInfo:
        self._check(name)
        merged = dict(self.configs[name])
        for key, value in changes.items():
            if value is None:
                merged.pop(key, None)
            else:
                merged[key] = value
        self._validate(merged)
        self.configs[name] = merged
        return self.connector_info(name)

    def delete_connector(self, name: str) -> None:
        self._check(name)
        del self.configs[name]
        del self.states[name]

    def connector_status(self, name: str) -> ConnectorStatus:
        self._check(name)
        state = self.states[name]
        tasks = tuple(
            TaskState(i, "STOPPED" if state == "STOPPED" else state, WORKER)
            for i in range(self._tasks(name))
            if state != "STOPPED"
        )
        return ConnectorStatus(name, state, WORKER, self._type(self.configs[name]), tasks)

    def task_configs(self, name: str) -> list[dict[str, str]]:
        self._check(name)
        return [
            {**self._redacted(self.configs[name]), "task.id": str(i)}
            for i in range(self._tasks(name))
        ]

    def restart_connector(
        self, name: str, include_tasks: bool, only_failed: bool
    ) -> ConnectorStatus:
        self._check(name)
        self.restarts.append((name, (include_tasks, only_failed)))
        return self.connector_status(name)

    def restart_task(self, name: str, task: int) -> None:
        self._check(name)
        if not 0 <= task < self._tasks(name):
            raise NotFoundError(f"Task {name}-{task} not found")
        self.restarts.append((name, task))

    def pause_connector(self, name: str) -> None:
        self._check(name)
        self.states[name] = "PAUSED"

    def resume_connector(self, name: str) -> None:
        self._check(name)
        self.states[name] = "RUNNING"

    def stop_connector(self, name: str) -> None:
        self._check(name)
        self.states[name] = "STOPPED"

    def connector_offsets(self, name: str) -> list[dict[str, Any]]:
        self._check(name)
        return list(self.offsets.get(name, []))

    def _require_stopped(self, name: str) -> None:
        if self.states[name] != "STOPPED":
            raise ConfigError(
                "", "Connectors must be in the STOPPED state before their offsets can be modified"
            )

    def alter_connector_offsets(self, name: str, offsets: list[dict[str, Any]]) -> None:
        self._check(name)
        self._require_stopped(name)
        self.offsets[name] = list(offsets)

    def reset_connector_offsets(self, name: str) -> None:
        self._check(name)
        self._require_stopped(name)
        self.offsets[name] = []

    def validate_config(self, plugin: str, config: Mapping[str, str]) -> ValidationResult:
        self._check()
        load_connector_class(plugin)
        return ValidationResult(plugin, 0, ("Common",))
