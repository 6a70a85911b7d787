"""Private instances of real servers (Redis, NATS, Prometheus) for tests and benchmarks.

Each `start_*` function starts one server process bound to loopback on a free port,
with all its files under a directory the caller owns, waits until the server answers
(or raises `ServiceStartError` carrying the server's log), and returns a handle whose
`stop()` ends the process. Nothing here is global: two calls give two servers.

The pytest fixtures in `tests/conftest.py` wrap these; benchmarks call them directly.
This module must not import pytest.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omconnect.errors import OmConnectError

LOOPBACK = "127.0.0.1"

# Debian puts some servers in sbin (nats-server, mariadbd), which is not on every PATH.
_EXTRA_BIN_DIRS = ("/usr/sbin", "/usr/local/sbin", "/sbin")

# How often a start is retried with a new port when the server dies before it is ready:
# free_port() cannot reserve the port, so another process may take it in between.
_START_ATTEMPTS = 3


class ServiceNotInstalled(OmConnectError, RuntimeError):
    """The server's binary is not on this machine; `install_hint` says how to get it."""

    def __init__(self, binary: str, install_hint: str) -> None:
        self.binary = binary
        self.install_hint = install_hint
        super().__init__(f"{binary} not found on PATH; install it with: {install_hint}")


class ServiceStartError(OmConnectError, RuntimeError):
    """A server did not become ready in time, or exited while starting.

    The message includes the command line and the tail of the server's output.
    """


def free_port(host: str = LOOPBACK) -> int:
    """Return a TCP port on `host` that was free a moment ago.

    The port is not reserved: start the server soon, and be ready to retry with another
    port (as `start_server` does) if something else took it.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def find_binary(name: str, install_hint: str) -> str:
    """Return the absolute path of executable `name` (PATH, then the sbin directories).

    Raises `ServiceNotInstalled` with `install_hint` when it is nowhere.
    """
    found = shutil.which(name)
    if found is None:
        found = shutil.which(name, path=os.pathsep.join(_EXTRA_BIN_DIRS))
    if found is None:
        raise ServiceNotInstalled(name, install_hint)
    return found


def tcp_ready(host: str, port: int) -> bool:
    """Readiness probe: true when a TCP connection to host:port succeeds."""
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def http_ok(url: str) -> bool:
    """Readiness probe: true when GET `url` answers 200."""
    try:
        with urllib.request.urlopen(url, timeout=1.0) as response:
            return bool(response.status == 200)
    except (OSError, urllib.error.URLError):
        return False


@dataclass
class ServerProcess:
    """A running server started by `start_server`.

    `host` and `port` are where it listens; `workdir` holds its data and its output log
    (`log_path`, stdout and stderr together). Call `stop()` when done; it is idempotent.
    """

    name: str
    host: str
    port: int
    workdir: Path
    log_path: Path
    argv: list[str]
    process: subprocess.Popen[bytes] = field(repr=False)

    @property
    def running(self) -> bool:
        """True while the server process has not exited."""
        return self.process.poll() is None

    def log_tail(self, max_chars: int = 4000) -> str:
        """The last `max_chars` characters the server printed (for error messages)."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return text[-max_chars:]

    def stop(self, timeout: float = 10.0) -> None:
        """End the server: SIGTERM, then SIGKILL if it has not exited after `timeout` s."""
        if self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=timeout)

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _die_with_parent_hook() -> Callable[[], None] | None:
    """A preexec function that makes the child get SIGTERM when the thread that started
    it dies (Linux's PR_SET_PDEATHSIG), so a killed test run leaves no servers behind.

    libc is loaded here, in the parent: the hook that runs in the forked child only
    makes the system call (no imports, no locks). None where prctl is unavailable.
    """
    if sys.platform != "linux":
        return None
    import ctypes

    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    pr_set_pdeathsig = 1
    sigterm = int(signal.SIGTERM)

    def hook() -> None:
        prctl(pr_set_pdeathsig, sigterm)

    return hook


def start_server(
    name: str,
    make_argv: Callable[[int], Sequence[str]],
    workdir: Path,
    *,
    host: str = LOOPBACK,
    ready: Callable[[str, int], bool] = tcp_ready,
    timeout: float = 30.0,
    port: int | None = None,
    cwd: Path | None = None,
    user: str | None = None,
) -> ServerProcess:
    """Start a server on a free port of `host` and wait until `ready(host, port)` is true.

    `make_argv(port)` returns the full command line for a given port. The server runs
    in `workdir` (created if missing) with its output in `workdir/<name>.log`. If the
    process exits before it is ready, the start is retried on a new port (the port may
    have been taken meanwhile) up to three times. Raises `ServiceStartError` with the
    server's output when it never becomes ready within `timeout` seconds per attempt.

    On Linux the server is killed when the thread that started it dies, so start
    servers from a thread that outlives them (normally the main thread).

    `port` pins the port (a restart on the same address; no retry on another port);
    `cwd` is the process's directory (default `workdir`); `user` runs it as that user
    (the caller must be root).
    """
    workdir.mkdir(parents=True, exist_ok=True)
    log_path = workdir / f"{name}.log"
    preexec = _die_with_parent_hook()
    last_error = ""
    for _attempt in range(_START_ATTEMPTS if port is None else 1):
        listen_port = free_port(host) if port is None else port
        argv = [str(arg) for arg in make_argv(listen_port)]
        with log_path.open("ab") as log:
            process = subprocess.Popen(
                argv,
                cwd=cwd or workdir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=preexec,  # runs after the switch to `user`
                user=user,
                group=user,
            )
        server = ServerProcess(name, host, listen_port, workdir, log_path, argv, process)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not server.running:
                break
            if ready(host, listen_port):
                return server
            time.sleep(0.05)
        exited = not server.running
        server.stop()
        last_error = (
            f"{name} {'exited with code ' + str(process.returncode) if exited else 'not ready'}"
            f" after start (port {listen_port}, {timeout:.0f}s limit)\n"
            f"command: {' '.join(argv)}\n"
            f"output ({log_path}):\n{server.log_tail()}"
        )
        if not exited:
            break  # it ran but never answered: a new port will not help
    raise ServiceStartError(last_error)


@dataclass
class Served:
    """A handle on one running `ServerProcess`: where it listens (`host`, `port`)."""

    server: ServerProcess

    @property
    def host(self) -> str:
        return self.server.host

    @property
    def port(self) -> int:
        return self.server.port


# --- Redis -------------------------------------------------------------------------


@dataclass
class RedisServer(Served):
    """A private redis-server without persistence; `url` is `redis://host:port/0`."""

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    def stop(self) -> None:
        """End the server; its data is gone (nothing is saved)."""
        self.server.stop()


def _redis_ready(host: str, port: int) -> bool:
    # Redis accepts connections while it loads; PING answers +PONG only once loaded.
    try:
        with socket.create_connection((host, port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def start_redis(workdir: Path, *, timeout: float = 30.0) -> RedisServer:
    """Start redis-server on a free loopback port, keeping nothing on disk.

    Raises `ServiceNotInstalled` (hint: apt-get install redis-server) or
    `ServiceStartError`.
    """
    binary = find_binary("redis-server", "apt-get install redis-server")

    def argv(port: int) -> list[str]:
        return [
            binary,
            "--port", str(port),
            "--bind", LOOPBACK,
            "--save", "",
            "--appendonly", "no",
            "--dir", str(workdir),
            "--daemonize", "no",
        ]  # fmt: skip

    return RedisServer(start_server("redis", argv, workdir, ready=_redis_ready, timeout=timeout))


# --- NATS --------------------------------------------------------------------------


@dataclass
class NatsServer(Served):
    """A private nats-server with JetStream (file storage in its workdir).

    `url` is `nats://host:port`.
    """

    @property
    def url(self) -> str:
        return f"nats://{self.host}:{self.port}"

    def stop(self) -> None:
        """End the server. Its JetStream files stay in the workdir until the caller
        removes it."""
        self.server.stop()


def start_nats(workdir: Path, *, timeout: float = 30.0) -> NatsServer:
    """Start nats-server with JetStream on a free loopback port.

    JetStream's store is `workdir/jetstream`. Raises `ServiceNotInstalled` (hint:
    apt-get install nats-server) or `ServiceStartError`.
    """
    binary = find_binary("nats-server", "apt-get install nats-server")
    store = workdir / "jetstream"

    def argv(port: int) -> list[str]:
        return [binary, "-js", "-a", LOOPBACK, "-p", str(port), "-sd", str(store)]

    return NatsServer(start_server("nats", argv, workdir, timeout=timeout))


# --- Prometheus --------------------------------------------------------------------


@dataclass
class PrometheusServer(Served):
    """A private Prometheus scraping fixed targets; `url` is `http://host:port`."""

    targets: list[str]

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def query(self, expr: str) -> list[dict[str, Any]]:
        """Run an instant PromQL query; return `data.result` of the HTTP API's answer.

        Raises `RuntimeError` when Prometheus answers with an error status.
        """
        url = f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        with urllib.request.urlopen(url, timeout=10.0) as response:
            body = json.load(response)
        if body.get("status") != "success":
            raise RuntimeError(f"prometheus query {expr!r} failed: {body}")
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def stop(self) -> None:
        """End the server; its TSDB stays in the workdir until the caller removes it."""
        self.server.stop()


def prometheus_config(targets: Sequence[str], scrape_interval: str = "1s") -> str:
    """The prometheus.yml text for one job `omconnect` scraping `targets` ("host:port").

    JSON is valid YAML, so no YAML library is needed.
    """
    config = {
        "global": {"scrape_interval": scrape_interval, "evaluation_interval": scrape_interval},
        "scrape_configs": [
            {"job_name": "omconnect", "static_configs": [{"targets": list(targets)}]}
        ],
    }
    return json.dumps(config, indent=2) + "\n"


def start_prometheus(
    workdir: Path,
    targets: Sequence[str] = (),
    *,
    scrape_interval: str = "1s",
    timeout: float = 60.0,
) -> PrometheusServer:
    """Start Prometheus on a free loopback port, scraping `targets` every `scrape_interval`.

    Returns once `/-/ready` answers 200. Config and TSDB live under `workdir`.
    Raises `ServiceNotInstalled` (hint: apt-get install prometheus) or `ServiceStartError`.
    """
    binary = find_binary("prometheus", "apt-get install prometheus")
    config_path = workdir / "prometheus.yml"
    workdir.mkdir(parents=True, exist_ok=True)
    config_path.write_text(prometheus_config(targets, scrape_interval))

    def argv(port: int) -> list[str]:
        return [
            binary,
            f"--config.file={config_path}",
            f"--storage.tsdb.path={workdir / 'tsdb'}",
            f"--web.listen-address={LOOPBACK}:{port}",
            "--web.enable-lifecycle",
            "--log.level=warn",
        ]

    def ready(host: str, port: int) -> bool:
        return http_ok(f"http://{host}:{port}/-/ready")

    server = start_server("prometheus", argv, workdir, ready=ready, timeout=timeout)
    return PrometheusServer(server, list(targets))
