"""`RestServer`: the REST app served by uvicorn from a background thread."""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from types import TracebackType

import uvicorn

from omconnect.errors import TimeoutError_
from omconnect.runtime.herder import Herder
from omconnect.runtime.rest.app import create_app
from omconnect.runtime.rest.auth import AuthConfig
from omconnect.runtime.rest.forwarding import Forwarder
from omconnect.runtime.rest.loggers import LoggerAdmin

log = logging.getLogger(__name__)


class RestServer:
    """Serves ``herder`` on ``host:port`` (127.0.0.1:8083 by default; port 0 picks a
    free port, readable from `port` after `start`).

    `start` returns once the socket accepts connections; `stop` lets requests in
    progress finish (up to ``graceful_timeout`` seconds) and joins the thread. Usable
    as a context manager."""

    def __init__(
        self,
        herder: Herder,
        host: str = "127.0.0.1",
        port: int = 8083,
        *,
        auth: AuthConfig | None = None,
        loggers: LoggerAdmin | None = None,
        forward: Forwarder | None = None,
        cluster_id: str = "",
        graceful_timeout: float = 5.0,
    ) -> None:
        self.host = host
        self.app = create_app(
            herder,
            auth=auth,
            loggers=loggers or LoggerAdmin(),
            forward=forward,
            cluster_id=cluster_id,
        )
        self._requested_port = port
        self._graceful_timeout = graceful_timeout
        self._socket: socket.socket | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The bound port (the requested one until `start`)."""
        if self._socket is None:
            return self._requested_port
        return int(self._socket.getsockname()[1])

    @property
    def url(self) -> str:
        """``http://host:port``, the base URL clients and other workers use."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self, timeout: float = 10.0) -> None:
        """Bind and serve. `OSError` if the port is taken; `TimeoutError_` if the
        server does not come up within ``timeout`` seconds."""
        if self._thread is not None:
            raise RuntimeError("RestServer already started")
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self._requested_port))
            sock.listen(128)
        except OSError:
            sock.close()
            raise
        self._socket = sock
        config = uvicorn.Config(
            self.app,
            log_config=None,  # leave the process's logging as the worker set it up
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=int(self._graceful_timeout) or 1,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._serve, args=(self._server, sock), name="rest-server", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive():
                raise RuntimeError("the REST server stopped while starting (see the log)")
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError_(f"the REST server did not start within {timeout} s")
            time.sleep(0.01)
        log.info("REST API listening on %s", self.url)

    @staticmethod
    def _serve(server: uvicorn.Server, sock: socket.socket) -> None:
        asyncio.run(server.serve(sockets=[sock]))

    def stop(self) -> None:
        """Stop serving and release the port. Safe to call twice."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(self._graceful_timeout + 5)
            self._thread = None
        if self._socket is not None:
            self._socket.close()
        self._server = None

    def __enter__(self) -> RestServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
