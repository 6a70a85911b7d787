"""`Herder`: what the REST API and the CLI ask of a worker cluster.

Standalone (`omconnect.runtime.standalone`) and distributed mode
(`omconnect.runtime.distributed`) both implement it, so one REST layer serves both.
The data shapes mirror Kafka Connect's REST JSON (see each ``as_json``), which is
how existing tools read them.

Errors: `NotFoundError` for an unknown connector or task (REST 404), `ConfigError`
for an invalid config (400), `RebalanceInProgressError` while the cluster is
rebalancing or a write reached a non-leader that cannot forward it (409),
`AlreadyExistsError` for creating a connector that exists (409).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from omconnect.errors import OmConnectError


class RebalanceInProgressError(OmConnectError):
    """The cluster is rebalancing; retry shortly (REST 409)."""


@dataclass(frozen=True, slots=True)
class TaskState:
    """One task's status."""

    id: int
    state: str  # UNASSIGNED | RUNNING | PAUSED | STOPPED | FAILED | RESTARTING
    worker_id: str
    trace: str = ""
    progress: Mapping[str, Any] | None = None
    """`TaskProgress.as_json` of a task in a long phase (an omconnect addition)."""

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "state": self.state, "worker_id": self.worker_id}
        if self.trace:
            out["trace"] = self.trace
        if self.progress is not None:
            out["progress"] = dict(self.progress)
        return out


@dataclass(frozen=True, slots=True)
class ConnectorStatus:
    """GET /connectors/{name}/status."""

    name: str
    state: str
    worker_id: str
    type: str  # source | sink
    tasks: tuple[TaskState, ...] = ()
    trace: str = ""

    def as_json(self) -> dict[str, Any]:
        connector: dict[str, Any] = {"state": self.state, "worker_id": self.worker_id}
        if self.trace:
            connector["trace"] = self.trace
        return {
            "name": self.name,
            "connector": connector,
            "tasks": [t.as_json() for t in self.tasks],
            "type": self.type,
        }


@dataclass(frozen=True, slots=True)
class ConnectorInfo:
    """GET /connectors/{name}: the config (secrets hidden) and the task ids."""

    name: str
    config: Mapping[str, str]
    tasks: tuple[int, ...]
    type: str

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "config": dict(self.config),
            "tasks": [{"connector": self.name, "task": t} for t in self.tasks],
            "type": self.type,
        }


@dataclass(frozen=True, slots=True)
class ConfigValueInfo:
    """One key of a validation answer (Kafka's ConfigValueInfo)."""

    name: str
    value: Any
    errors: tuple[str, ...] = ()
    recommended_values: tuple[str, ...] = ()
    visible: bool = True


@dataclass(frozen=True, slots=True)
class ConfigKeyInfo:
    """One key's definition in a validation answer (Kafka's ConfigKeyInfo)."""

    name: str
    type: str
    required: bool
    default_value: Any
    documentation: str
    group: str = ""
    order: int = 0


@dataclass(frozen=True, slots=True)
class ValidationResult:
    """PUT /connector-plugins/{plugin}/config/validate."""

    name: str
    error_count: int
    groups: tuple[str, ...]
    configs: tuple[tuple[ConfigKeyInfo, ConfigValueInfo], ...] = field(default=())

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "error_count": self.error_count,
            "groups": list(self.groups),
            "configs": [
                {
                    "definition": {
                        "name": d.name,
                        "type": d.type.upper(),
                        "required": d.required,
                        "default_value": d.default_value,
                        "documentation": d.documentation,
                        "group": d.group,
                        "order_in_group": d.order,
                        "importance": "MEDIUM",
                        "width": "NONE",
                        "display_name": d.name,
                        "dependents": [],
                    },
                    "value": {
                        "name": v.name,
                        "value": v.value,
                        "errors": list(v.errors),
                        "recommended_values": list(v.recommended_values),
                        "visible": v.visible,
                    },
                }
                for d, v in self.configs
            ],
        }


class Herder(Protocol):
    """The cluster as the REST API sees it. Thread-safe; methods may block briefly
    (a write waits until the change is stored, not until tasks have restarted)."""

    worker_id: str

    def connectors(self) -> list[str]:
        """Names of every connector in the cluster."""
        ...

    def connector_info(self, name: str) -> ConnectorInfo:
        """Config (secrets shown as ``[hidden]``) and task ids."""
        ...

    def connector_config(self, name: str) -> dict[str, str]:
        """The stored config (secrets shown as ``[hidden]``)."""
        ...

    def put_connector_config(
        self, name: str, config: Mapping[str, str]
    ) -> tuple[bool, ConnectorInfo]:
        """Create or replace a connector's config (validated first); True if created."""
        ...

    def patch_connector_config(self, name: str, changes: Mapping[str, str | None]) -> ConnectorInfo:
        """Change some keys (None removes one) and apply the result."""
        ...

    def delete_connector(self, name: str) -> None:
        """Stop and remove a connector (its offsets stay, as in Kafka)."""
        ...

    def connector_status(self, name: str) -> ConnectorStatus:
        """Connector and task states."""
        ...

    def task_configs(self, name: str) -> list[dict[str, str]]:
        """The task configs (secrets hidden)."""
        ...

    def restart_connector(
        self, name: str, include_tasks: bool, only_failed: bool
    ) -> ConnectorStatus:
        """Restart the connector and, if asked, its (failed) tasks."""
        ...

    def restart_task(self, name: str, task: int) -> None:
        """Restart one task."""
        ...

    def pause_connector(self, name: str) -> None:
        """Pause the connector's tasks (they keep their partitions)."""
        ...

    def resume_connector(self, name: str) -> None:
        """Resume after pause or stop."""
        ...

    def stop_connector(self, name: str) -> None:
        """Stop the connector and its tasks, keep the config (target state STOPPED)."""
        ...

    def connector_offsets(self, name: str) -> list[dict[str, Any]]:
        """Source: ``[{"partition": {...}, "offset": {...}}]``; sink: the consumer
        group's ``[{"partition": {"kafka_topic": t, "kafka_partition": p},
        "offset": {"kafka_offset": o}}]``."""
        ...

    def alter_connector_offsets(self, name: str, offsets: list[dict[str, Any]]) -> None:
        """Set offsets (only while the connector is STOPPED)."""
        ...

    def reset_connector_offsets(self, name: str) -> None:
        """Forget every offset (only while the connector is STOPPED)."""
        ...

    def validate_config(self, plugin: str, config: Mapping[str, str]) -> ValidationResult:
        """Validate a config for a connector plugin without applying it."""
        ...
