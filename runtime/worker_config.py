"""The worker's configuration (the ``worker.json`` of ``omconnect standalone``).

Keys follow Kafka Connect's worker config where one exists. The access point is
omconnect's own: ``access.point.url`` names the messaging backend; the default
runs the bundled broker in this process, keeping its data (and so the offsets of
standalone mode) under ``data.dir``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import Field

from omconnect.connect.config import PluginConfig, parse_config
from omconnect.errors import ConfigError


class WorkerConfig(PluginConfig):
    """Settings of one worker process."""

    access_point_url: str = Field(
        "",
        alias="access.point.url",
        description="oms: URL of the messaging backend; empty = the bundled broker in "
        "this process with its data in data.dir.",
    )
    data_dir: str = Field(
        "omconnect-data",
        alias="data.dir",
        description="Data directory of the in-process broker (queues and offsets).",
    )
    namespace: str = Field("connect", description="Namespace of the in-process broker.")
    group_id: str = Field(
        "connect-cluster",
        alias="group.id",
        description="Workers with one group id form one cluster.",
    )
    key_converter: str = Field(
        "json", alias="key.converter", description="Default converter of record keys."
    )
    value_converter: str = Field(
        "json", alias="value.converter", description="Default converter of record values."
    )
    offset_flush_interval_ms: int = Field(
        1000,
        alias="offset.flush.interval.ms",
        gt=0,
        description="How often source offsets and sink consumer offsets are committed.",
    )
    task_shutdown_graceful_timeout_ms: int = Field(
        5000,
        alias="task.shutdown.graceful.timeout.ms",
        ge=0,
        description="How long a stopping task may take to finish its in-flight records.",
    )
    task_restart_enable: bool = Field(
        True,
        alias="task.restart.enable",
        description="Restart failed tasks automatically, with backoff.",
    )
    task_restart_backoff_initial_ms: int = Field(
        1000,
        alias="task.restart.backoff.initial.ms",
        gt=0,
        description="Wait before the first automatic restart of a failed task.",
    )
    task_restart_backoff_max_ms: int = Field(
        60_000,
        alias="task.restart.backoff.max.ms",
        gt=0,
        description="Longest wait between automatic restarts (the wait doubles).",
    )
    metrics_port: int = Field(
        0,
        alias="metrics.port",
        ge=0,
        le=65535,
        description="Serve Prometheus /metrics on this port at rest.host (0: off).",
    )
    session_timeout_ms: int = Field(
        3000,
        alias="session.timeout.ms",
        gt=0,
        description="Distributed mode: a worker silent this long has left the group "
        "(its membership lease expires).",
    )
    heartbeat_interval_ms: int = Field(
        1000,
        alias="heartbeat.interval.ms",
        gt=0,
        description="Distributed mode: how often a worker renews its lease; keep it at a "
        "third of session.timeout.ms or less.",
    )
    scheduled_rebalance_max_delay_ms: int = Field(
        -1,
        alias="scheduled.rebalance.max.delay.ms",
        ge=-1,
        description="Distributed mode: how long a departed worker's connectors and tasks "
        "wait before moving to the others (-1: a third of session.timeout.ms). A graceful "
        "shutdown hands them over at once.",
    )
    assignment_strategy: str = Field(
        "round-robin",
        alias="assignment.strategy",
        pattern="^(round-robin|consistent-hash)$",
        description="Distributed mode: round-robin (balanced, sticky) or consistent-hash.",
    )
    worker_id: str = Field(
        "",
        alias="worker.id",
        description="Distributed mode: this worker's id in the group (empty: host:pid).",
    )
    rest_host: str = Field("127.0.0.1", alias="rest.host", description="REST API address.")
    rest_port: int = Field(
        8083, alias="rest.port", ge=0, le=65535, description="REST API port (0: any free)."
    )
    rest_advertised_url: str = Field(
        "",
        alias="rest.advertised.url",
        description="The REST URL other workers and tools reach this worker at "
        "(empty: http://rest.host:rest.port).",
    )
    raw: dict[str, Any] = Field(
        default_factory=dict, exclude=True, description="The whole map, for converter prefixes."
    )

    def url(self) -> str:
        """The access-point URL to open."""
        if self.access_point_url:
            return self.access_point_url
        data_dir = Path(self.data_dir).resolve()
        return f"oms:embedded://local/{self.namespace}?data_dir={data_dir}"


def load_json_config(path: Path) -> dict[str, Any]:
    """A JSON object from ``path``; `ConfigError` saying what is wrong with the file.

    Accepts a flat object, or Kafka Connect's ``{"name": ..., "config": {...}}``
    shape (the name is merged into the config)."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(str(path), "file not found") from None
    except ValueError as exc:
        raise ConfigError(str(path), f"is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(str(path), "must hold a JSON object")
    if isinstance(data.get("config"), dict):
        merged = dict(data["config"])
        if "name" in data:
            merged.setdefault("name", data["name"])
        data = merged
    return {
        str(k): v
        if isinstance(v, str)
        else json.dumps(v)
        if isinstance(v, dict | list)
        else str(v).lower()
        if isinstance(v, bool)
        else str(v)
        for k, v in data.items()
    }


def parse_worker_config(values: Mapping[str, Any]) -> WorkerConfig:
    """Validate a worker config map (`ConfigError` names the key)."""
    config = parse_config(WorkerConfig, values)
    return config.model_copy(update={"raw": dict(values)})
