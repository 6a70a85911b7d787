"""Standalone mode: one process runs the connectors named on the command line.

``omconnect standalone worker.json connector.json...`` opens the worker's access
point (by default the bundled broker in this process, data under ``data.dir``),
starts every connector, and runs until SIGTERM or Ctrl-C, then stops the tasks
gracefully (in-flight records finish, offsets are committed). Offsets live in the
access point's key-value store, so a restart resumes where the last run stopped.
``${env:VAR}`` and ``${file:path:key}`` references in connector configs are resolved
at start; their values are treated as secrets.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
from collections.abc import Sequence
from pathlib import Path

from omconnect.access_point import MessagingAccessPoint
from omconnect.runtime.config_providers import default_providers, resolve_config
from omconnect.runtime.metrics import MetricsServer, start_metrics_server
from omconnect.runtime.stores import ConnectStores
from omconnect.runtime.worker import Worker
from omconnect.runtime.worker_config import load_json_config, parse_worker_config

log = logging.getLogger(__name__)


class Standalone:
    """A started standalone worker; `stop` ends it. Usable from tests and the CLI."""

    def __init__(self, worker_config: Path, connector_configs: Sequence[Path]) -> None:
        config = parse_worker_config(load_json_config(worker_config))
        connectors = [
            resolve_config(load_json_config(path), default_providers()).values
            for path in connector_configs
        ]
        self.access_point = MessagingAccessPoint.open(config.url())
        self.metrics_server: MetricsServer | None = None
        try:
            stores = ConnectStores.open(self.access_point.kv, config.group_id)
            worker_id = f"{socket.gethostname()}:{os.getpid()}"
            self.worker = Worker(worker_id, config, self.access_point, stores)
            self.metrics_server = start_metrics_server(self.worker)  # metrics.port
            for connector in connectors:
                name = self.worker.run_connector(connector)
                log.info("started connector %s", name)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop the connectors gracefully and close the access point."""
        if self.metrics_server is not None:
            self.metrics_server.stop()
            self.metrics_server = None
        worker = getattr(self, "worker", None)
        if worker is not None:
            worker.stop()
        self.access_point.close()


def run_standalone(worker_config: Path, connector_configs: Sequence[Path]) -> None:
    """Run until SIGTERM or SIGINT (main thread only)."""
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    standalone = Standalone(worker_config, connector_configs)
    try:
        stop.wait()
    finally:
        log.info("stopping")
        standalone.stop()
