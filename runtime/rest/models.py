"""Kafka Connect's JSON entities as pydantic models, for the OpenAPI document.

Answers are written by the herder's ``as_json`` methods, not through these models;
the models only describe the shapes (and parse the few structured request bodies).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class ErrorMessage(BaseModel):
    error_code: int = Field(description="The HTTP status code.")
    message: str


class ServerInfo(BaseModel):
    version: str
    commit: str
    kafka_cluster_id: str = Field(description="The cluster (group) id.")


class Health(BaseModel):
    status: str = Field(description="healthy | starting | unhealthy")
    message: str


class ConnectorState(BaseModel):
    state: str = Field(description="UNASSIGNED | RUNNING | PAUSED | STOPPED | FAILED")
    worker_id: str
    trace: str | None = Field(None, description="The failure's stack trace, when FAILED.")


class TaskState(BaseModel):
    id: int
    state: str = Field(description="UNASSIGNED | RUNNING | PAUSED | FAILED | RESTARTING")
    worker_id: str
    trace: str | None = None


class ConnectorStatus(BaseModel):
    name: str
    connector: ConnectorState
    tasks: list[TaskState]
    type: str = Field(description="source | sink")


class ConnectorTaskId(BaseModel):
    connector: str
    task: int


class ConnectorInfo(BaseModel):
    name: str
    config: dict[str, str] = Field(description="The config; secrets shown as [hidden].")
    tasks: list[ConnectorTaskId]
    type: str


class TaskInfo(BaseModel):
    id: ConnectorTaskId
    config: dict[str, str]


class ConnectorExpansions(BaseModel):
    status: ConnectorStatus | None = None
    info: ConnectorInfo | None = None


class CreateConnectorRequest(BaseModel):
    """``POST /connectors``."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = None
    config: dict[str, Any] = Field(default_factory=dict)
    initial_state: str | None = Field(
        None, description="RUNNING only; PAUSED and STOPPED are not supported yet."
    )


class ConnectorOffsets(BaseModel):
    """``GET`` and ``PATCH /connectors/{name}/offsets``."""

    offsets: list[dict[str, Any]] | None = Field(
        None, description='[{"partition": {...}, "offset": {...}}]'
    )


class Message(BaseModel):
    message: str


class PluginInfo(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    class_: str = Field(alias="class")
    type: str = Field(description="source | sink | transformation | predicate | converter")
    version: str


class ConfigKeyInfo(BaseModel):
    name: str
    type: str
    required: bool
    default_value: str | None
    importance: str
    documentation: str
    group: str | None
    order_in_group: int
    width: str
    display_name: str
    dependents: list[str]


class ConfigInfos(BaseModel):
    name: str
    error_count: int
    groups: list[str]
    configs: list[dict[str, Any]] = Field(description='[{"definition": {...}, "value": {...}}]')


class LoggerLevel(BaseModel):
    level: str = Field(description="OFF | FATAL | ERROR | WARN | INFO | DEBUG | TRACE")
    last_modified: int | None = Field(
        None, description="When the API last set it (ms since the epoch), else null."
    )


class LevelRequest(BaseModel):
    level: str | None = None
