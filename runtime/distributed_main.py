"""``omconnect worker worker.json``: one distributed worker process.

Opens the worker's access point (``access.point.url``; for a group spanning
processes, the TCP broker: ``oms:embedded://host:port/namespace``), serves the REST
API on ``rest.host:rest.port`` (port 0: any free port), joins the group, and runs
until SIGTERM or Ctrl-C; then it leaves gracefully, so its connectors and tasks move
to the other workers at once. A kill -9 instead makes them move after the
session timeout plus ``scheduled.rebalance.max.delay.ms``.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from omconnect.access_point import MessagingAccessPoint
from omconnect.runtime.distributed import DistributedHerder
from omconnect.runtime.metrics import start_metrics_server
from omconnect.runtime.worker_config import load_json_config, parse_worker_config

log = logging.getLogger(__name__)


class DistributedProcess:
    """A started worker: access point, REST server, herder. `stop` ends all three."""

    def __init__(self, worker_config: Path | Mapping[str, Any]) -> None:
        values = (
            worker_config if isinstance(worker_config, Mapping) else load_json_config(worker_config)
        )
        config = parse_worker_config(values)
        self.access_point = MessagingAccessPoint.open(config.url())
        self.rest: Any = None
        self.metrics: Any = None
        try:
            self.herder = DistributedHerder(config, self.access_point)
            self.rest = _start_rest(self.herder, config.raw, config.rest_host, config.rest_port)
            if self.rest is not None and not config.rest_advertised_url:
                self.herder.url = self.rest.url
            self.herder.start()
            if self.herder.worker is not None:
                self.metrics = start_metrics_server(self.herder.worker)
            log.info("worker %s joined group %s", self.herder.worker_id, config.group_id)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Leave the group gracefully, then stop serving and close the access point."""
        herder = getattr(self, "herder", None)
        if herder is not None:
            herder.stop()
        for server in (self.metrics, self.rest):
            if server is not None:
                server.stop()
        self.access_point.close()


def _start_rest(herder: DistributedHerder, raw: Mapping[str, Any], host: str, port: int) -> Any:
    """The started REST server, or None when the REST package is not installed."""
    try:
        from omconnect.runtime.rest import AuthConfig, RestServer
    except ImportError as exc:  # the web server extras are optional
        log.warning("REST API not started: %s", exc)
        return None
    server = RestServer(herder, host, port, auth=AuthConfig.from_worker_config(raw))
    server.start()
    return server


def run_distributed(worker_config: Path) -> None:
    """Run one worker until SIGTERM or SIGINT (main thread only)."""
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    process = DistributedProcess(worker_config)
    try:
        stop.wait()
    finally:
        log.info("leaving the group")
        process.stop()
