"""``/``, ``/health``, ``/connector-plugins`` and ``/admin/loggers``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query
from fastapi.responses import JSONResponse, Response

import omconnect
from omconnect.runtime.herder import Herder
from omconnect.runtime.rest import models
from omconnect.runtime.rest.bodies import string_config
from omconnect.runtime.rest.errors import RestError
from omconnect.runtime.rest.loggers import LoggerAdmin
from omconnect.runtime.rest.plugins import connector_class, plugin_config, plugin_infos
from omconnect.runtime.rest.routes_connectors import ERRORS
from omconnect.runtime.rest.routing import HerderRoute

HEALTHY = "Worker has completed startup and is ready to handle requests."


def cluster_router(herder: Herder, loggers: LoggerAdmin, cluster_id: str, commit: str) -> APIRouter:
    """Server info, health, plugins and logger levels."""
    router = APIRouter(route_class=HerderRoute)

    @router.get(
        "/",
        tags=["cluster"],
        summary="Version and cluster id",
        responses={200: {"model": models.ServerInfo}},
    )
    def server_info() -> Response:
        return JSONResponse(
            {"version": omconnect.__version__, "commit": commit, "kafka_cluster_id": cluster_id}
        )

    @router.get(
        "/health",
        tags=["cluster"],
        summary="Whether the worker serves requests",
        responses={200: {"model": models.Health}},
    )
    def health() -> Response:
        return JSONResponse({"status": "healthy", "message": HEALTHY})

    @router.get(
        "/connector-plugins",
        tags=["plugins"],
        summary="Installed plugins",
        responses={200: {"model": list[models.PluginInfo]}},
    )
    def list_plugins(
        connectors_only: Annotated[bool, Query(alias="connectorsOnly")] = True,
    ) -> Response:
        return JSONResponse(plugin_infos(connectors_only))

    @router.get(
        "/connector-plugins/{plugin}/config",
        tags=["plugins"],
        summary="A plugin's config definition",
        responses={200: {"model": list[models.ConfigKeyInfo]}, **ERRORS},
    )
    def get_plugin_config(plugin: str) -> Response:
        return JSONResponse(plugin_config(plugin))

    @router.put(
        "/connector-plugins/{plugin}/config/validate",
        tags=["plugins"],
        summary="Validate a connector config without applying it",
        responses={200: {"model": models.ConfigInfos}, **ERRORS},
    )
    def validate(plugin: str, body: Annotated[dict[str, Any], Body()]) -> Response:
        config = string_config(body)
        included = config.get("connector.class")
        if included is not None:
            wanted, named = connector_class(plugin), connector_class(included)
            if wanted is not None and named is not None and wanted is not named:
                raise RestError(
                    400, f"Included connector type {included} does not match request type {plugin}"
                )
        return JSONResponse(herder.validate_config(plugin, config).as_json())

    @router.get(
        "/admin/loggers",
        tags=["loggers"],
        summary="Loggers with an explicit level, and root",
        responses={200: {"model": dict[str, models.LoggerLevel]}},
    )
    def list_loggers() -> Response:
        return JSONResponse(loggers.all_levels())

    @router.get(
        "/admin/loggers/{logger}",
        tags=["loggers"],
        summary="A logger's effective level",
        responses={200: {"model": models.LoggerLevel}, **ERRORS},
    )
    def get_logger(logger: str) -> Response:
        return JSONResponse(loggers.level(logger))

    @router.put(
        "/admin/loggers/{logger}",
        tags=["loggers"],
        summary="Set the level of a logger and the loggers below it (this worker)",
        responses={200: {"model": list[str], "description": "The loggers changed"}, **ERRORS},
    )
    def set_logger(
        logger: str,
        body: models.LevelRequest,
        scope: Annotated[str, Query(description="worker (cluster acts as worker)")] = "worker",
    ) -> Response:
        if body.level is None:
            raise RestError(400, "Desired 'level' parameter was not specified in request.")
        return JSONResponse(loggers.set_level(logger, body.level))

    return router
