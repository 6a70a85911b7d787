"""``/connectors``: Kafka Connect's connector endpoints over a `Herder`.

Status codes as Kafka Connect's: 201 for a created connector (with ``Location``),
200 for a replaced or patched config, 202 for pause, resume and a restart that
includes tasks or only failed instances (with the status), 204 for stop, delete,
a plain connector restart and a task restart.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Query
from fastapi.responses import JSONResponse, Response

from omconnect.errors import AlreadyExistsError, ConfigError, NotFoundError
from omconnect.runtime.herder import Herder
from omconnect.runtime.rest import models
from omconnect.runtime.rest.bodies import config_patch, string_config, with_url_name
from omconnect.runtime.rest.errors import RestError
from omconnect.runtime.rest.routing import HerderRoute

ConnectorName = Annotated[str, Path(description="The connector's name.")]
ConfigBody = Annotated[
    dict[str, Any],
    Body(description="Config keys to values; numbers and booleans are read as text."),
]

ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": models.ErrorMessage, "description": "Invalid request or config"},
    404: {"model": models.ErrorMessage, "description": "Unknown connector or task"},
    409: {"model": models.ErrorMessage, "description": "Conflict or rebalance in progress"},
    500: {"model": models.ErrorMessage, "description": "Unexpected failure"},
}
ALTERED = "The offsets for this connector have been altered successfully."
RESET = "The offsets for this connector have been reset successfully."


def _doc(code: int, model: Any = None, description: str = "OK") -> dict[int | str, Any]:
    answer: dict[str, Any] = {"description": description}
    if model is not None:
        answer["model"] = model
    return {code: answer, **ERRORS}


def connectors_router(herder: Herder) -> APIRouter:
    """The ``/connectors`` routes, each a thin call into ``herder``."""
    router = APIRouter(prefix="/connectors", tags=["connectors"], route_class=HerderRoute)

    @router.get(
        "",
        summary="List connectors",
        responses=_doc(
            200,
            list[str] | dict[str, models.ConnectorExpansions],
            "Names; with expand, name → {status, info}",
        ),
    )
    def list_connectors(
        expand: Annotated[list[str] | None, Query(description="status and/or info")] = None,
    ) -> Response:
        names = herder.connectors()
        if not expand:
            return JSONResponse(names)
        wanted = {part.strip() for item in expand for part in item.split(",")}
        out: dict[str, dict[str, Any]] = {}
        for name in names:
            try:
                entry: dict[str, Any] = {}
                if "status" in wanted:
                    entry["status"] = herder.connector_status(name).as_json()
                if "info" in wanted:
                    entry["info"] = herder.connector_info(name).as_json()
            except NotFoundError:  # deleted while we looked: leave it out, as Kafka does
                continue
            out[name] = entry
        return JSONResponse(out)

    @router.post(
        "",
        summary="Create a connector",
        status_code=201,
        responses=_doc(201, models.ConnectorInfo, "Created"),
    )
    def create_connector(request: models.CreateConnectorRequest) -> Response:
        name = (request.name or "").strip()
        if not name:
            raise ConfigError("name", "a connector needs a name")
        if request.initial_state is not None and request.initial_state.upper() != "RUNNING":
            raise RestError(400, f"initial_state {request.initial_state} is not supported")
        config = with_url_name(name, string_config(request.config))
        if name in herder.connectors():
            raise AlreadyExistsError(f"Connector {name} already exists")
        _, info = herder.put_connector_config(name, config)
        return JSONResponse(info.as_json(), 201, headers={"Location": f"/connectors/{name}"})

    @router.get(
        "/{name}",
        summary="A connector's config and tasks",
        responses=_doc(200, models.ConnectorInfo),
    )
    def get_connector(name: ConnectorName) -> Response:
        return JSONResponse(herder.connector_info(name).as_json())

    @router.delete("/{name}", summary="Delete a connector", status_code=204, responses=_doc(204))
    def delete_connector(name: ConnectorName) -> Response:
        herder.delete_connector(name)
        return Response(status_code=204)

    @router.get(
        "/{name}/config", summary="A connector's config", responses=_doc(200, dict[str, str])
    )
    def get_config(name: ConnectorName) -> Response:
        return JSONResponse(herder.connector_config(name))

    @router.put(
        "/{name}/config",
        summary="Create or replace a connector's config",
        responses={
            **_doc(200, models.ConnectorInfo, "Replaced"),
            201: {"model": models.ConnectorInfo, "description": "Created"},
        },
    )
    def put_config(name: ConnectorName, body: ConfigBody) -> Response:
        config = with_url_name(name, string_config(body))
        created, info = herder.put_connector_config(name, config)
        if created:
            return JSONResponse(info.as_json(), 201, headers={"Location": f"/connectors/{name}"})
        return JSONResponse(info.as_json())

    @router.patch(
        "/{name}/config",
        summary="Change some keys of a connector's config (null removes a key)",
        responses=_doc(200, models.ConnectorInfo),
    )
    def patch_config(name: ConnectorName, body: ConfigBody) -> Response:
        return JSONResponse(herder.patch_connector_config(name, config_patch(body)).as_json())

    @router.get(
        "/{name}/status",
        summary="Connector and task states",
        responses=_doc(200, models.ConnectorStatus),
    )
    def get_status(name: ConnectorName) -> Response:
        return JSONResponse(herder.connector_status(name).as_json())

    @router.get("/{name}/tasks", summary="Task configs", responses=_doc(200, list[models.TaskInfo]))
    def get_tasks(name: ConnectorName) -> Response:
        return JSONResponse(
            [
                {"id": {"connector": name, "task": task}, "config": config}
                for task, config in enumerate(herder.task_configs(name))
            ]
        )

    @router.get(
        "/{name}/tasks/{task}/status",
        summary="One task's state",
        responses=_doc(200, models.TaskState),
    )
    def get_task_status(name: ConnectorName, task: int) -> Response:
        for state in herder.connector_status(name).tasks:
            if state.id == task:
                return JSONResponse(state.as_json())
        raise NotFoundError(f"No status found for task {name}-{task}")

    @router.post(
        "/{name}/restart",
        summary="Restart a connector and, if asked, its (failed) tasks",
        responses={
            **_doc(202, models.ConnectorStatus, "Restart accepted"),
            204: {"description": "Connector restarted"},
        },
    )
    def restart_connector(
        name: ConnectorName,
        include_tasks: Annotated[bool, Query(alias="includeTasks")] = False,
        only_failed: Annotated[bool, Query(alias="onlyFailed")] = False,
    ) -> Response:
        status = herder.restart_connector(name, include_tasks, only_failed)
        if not include_tasks and not only_failed:
            return Response(status_code=204)
        return JSONResponse(status.as_json(), 202)

    @router.post(
        "/{name}/tasks/{task}/restart",
        summary="Restart one task",
        status_code=204,
        responses=_doc(204),
    )
    def restart_task(name: ConnectorName, task: int) -> Response:
        herder.restart_task(name, task)
        return Response(status_code=204)

    @router.put("/{name}/pause", summary="Pause a connector", status_code=202, responses=_doc(202))
    def pause(name: ConnectorName) -> Response:
        herder.pause_connector(name)
        return Response(status_code=202)

    @router.put(
        "/{name}/resume", summary="Resume a connector", status_code=202, responses=_doc(202)
    )
    def resume(name: ConnectorName) -> Response:
        herder.resume_connector(name)
        return Response(status_code=202)

    @router.put(
        "/{name}/stop",
        summary="Stop a connector, keep its config",
        status_code=204,
        responses=_doc(204),
    )
    def stop(name: ConnectorName) -> Response:
        herder.stop_connector(name)
        return Response(status_code=204)

    @router.get(
        "/{name}/offsets",
        summary="A connector's offsets",
        responses=_doc(200, models.ConnectorOffsets),
    )
    def get_offsets(name: ConnectorName) -> Response:
        return JSONResponse({"offsets": herder.connector_offsets(name)})

    @router.patch(
        "/{name}/offsets",
        summary="Alter offsets (connector must be STOPPED)",
        responses=_doc(200, models.Message),
    )
    def alter_offsets(name: ConnectorName, body: models.ConnectorOffsets) -> Response:
        if not body.offsets:
            raise RestError(
                400, "Partitions / offsets need to be provided for an alter offsets request"
            )
        herder.alter_connector_offsets(name, body.offsets)
        return JSONResponse({"message": ALTERED})

    @router.delete(
        "/{name}/offsets",
        summary="Reset offsets (connector must be STOPPED)",
        responses=_doc(200, models.Message),
    )
    def reset_offsets(name: ConnectorName) -> Response:
        herder.reset_connector_offsets(name)
        return JSONResponse({"message": RESET})

    return router
