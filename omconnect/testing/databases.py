"""Private MariaDB and PostgreSQL servers for tests and benchmarks.

`start_mariadb` runs ``mariadbd`` with binary logging set up the way a CDC source needs
it (ROW format, FULL row image, FULL row metadata, utf8mb4, a server id); `options`
override any of those, e.g. ``{"binlog-row-metadata": "MINIMAL"}`` for a server the
source must refuse. `start_postgres` runs ``postgres`` with trust authentication and
fsync off. Both listen on a free loopback port, keep every file under the caller's
directory and are stopped with `stop()`. The initialised data directory is made once
per process and copied for every further server, so a new server costs well under a
second.

Like `omconnect.testing.services`, this module must not import pytest.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omconnect.testing.services import (
    LOOPBACK,
    Served,
    ServerProcess,
    ServiceStartError,
    find_binary,
    start_server,
    tcp_ready,
)

# Debian installs PostgreSQL's server programs outside PATH, under a versioned directory.
_POSTGRES_BIN_GLOB = "/usr/lib/postgresql/*/bin"

_templates: dict[str, Path] = {}
_templates_lock = threading.Lock()


def _template(kind: str, make: Callable[[Path], None]) -> Path:
    """The initialised data directory for `kind`, made by `make(dir)` once per process."""
    with _templates_lock:
        if kind not in _templates:
            root = Path(tempfile.mkdtemp(prefix=f"omconnect-{kind}-template-"))
            make(root / "data")
            _templates[kind] = root / "data"
        return _templates[kind]


def _run(argv: list[str], what: str, **kwargs: object) -> None:
    """Run a setup command; raise `ServiceStartError` with its output when it fails."""
    result = subprocess.run(argv, capture_output=True, text=True, check=False, **kwargs)  # type: ignore[call-overload]
    if result.returncode != 0:
        raise ServiceStartError(
            f"{what} failed with code {result.returncode}\ncommand: {' '.join(argv)}\n"
            f"output:\n{result.stdout}{result.stderr}"
        )


# --- MariaDB -----------------------------------------------------------------------

MARIADB_HINT = "apt-get install mariadb-server"

# The settings a binlog CDC source needs; `start_mariadb(options=...)` overrides them.
MARIADB_CDC_OPTIONS: Mapping[str, str] = {
    "server-id": "1",
    "log-bin": "binlog",
    "binlog-format": "ROW",
    "binlog-row-image": "FULL",
    "binlog-row-metadata": "FULL",
    "character-set-server": "utf8mb4",
    "collation-server": "utf8mb4_general_ci",
}


@dataclass
class MariaDBServer(Served):
    """A private mariadbd. `root` (no password) may connect over TCP from loopback.

    `url(database)` is an SQLAlchemy URL (``mysql+pymysql://...``). `restart()` stops
    the server and starts it again on the same port and data directory, binlogs kept.
    """

    datadir: Path
    options: dict[str, str] = field(default_factory=dict)

    @property
    def user(self) -> str:
        return "root"

    @property
    def password(self) -> str:
        return ""

    def url(self, database: str = "") -> str:
        """SQLAlchemy URL for `database` (none: the server only)."""
        return f"mysql+pymysql://root@{self.host}:{self.port}/{database}?charset=utf8mb4"

    def connect(self, database: str | None = None, **kwargs: Any) -> Any:
        """A new autocommit PyMySQL connection as root (utf8mb4)."""
        import pymysql

        return pymysql.connect(
            host=self.host,
            port=self.port,
            user="root",
            password="",
            database=database,
            charset="utf8mb4",
            autocommit=True,
            **kwargs,
        )

    def execute(self, *statements: str, database: str | None = None) -> None:
        """Run `statements` in one autocommit session."""
        connection = self.connect(database)
        try:
            with connection.cursor() as cursor:
                for statement in statements:
                    cursor.execute(statement)
        finally:
            connection.close()

    def purge_binlogs_until_gone(self, file: str, timeout_s: float = 30.0) -> None:
        """``PURGE BINARY LOGS TO`` the newest file until binlog ``file`` is gone.
        MariaDB keeps a file until its binlog checkpoint moved on (InnoDB flushed), so
        this retries; `ServiceStartError` if ``file`` is still there after
        ``timeout_s``."""
        connection = self.connect()
        deadline = time.monotonic() + timeout_s
        try:
            with connection.cursor() as cursor:
                while time.monotonic() < deadline:
                    cursor.execute("SHOW BINARY LOGS")
                    files = [row[0] for row in cursor.fetchall()]
                    if file not in files:
                        return
                    cursor.execute(f"PURGE BINARY LOGS TO '{files[-1]}'")
                    time.sleep(0.2)
        finally:
            connection.close()
        raise ServiceStartError(f"binlog {file} could not be purged in {timeout_s:.0f}s")

    def stop(self) -> None:
        """End the server; the data directory stays for `restart()`."""
        self.server.stop(timeout=30.0)

    def kill(self) -> None:
        """SIGKILL the server (a crash); `restart()` brings it back with crash recovery."""
        self.server.process.kill()
        self.server.process.wait()

    def restart(self) -> None:
        """Stop (if running) and start again on the same port and data directory."""
        self.stop()
        self.server = _start_mariadbd(
            self.datadir, self.server.workdir, self.options, port=self.server.port
        )


def _mariadb_install(datadir: Path) -> None:
    binary = find_binary("mariadb-install-db", MARIADB_HINT)
    _run(
        [
            binary,
            "--no-defaults",
            f"--datadir={datadir}",
            f"--user={_current_user()}",
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
        ],
        "mariadb-install-db",
    )


def _mariadbd_argv(
    binary: str, datadir: Path, workdir: Path, options: Mapping[str, str], port: int
) -> list[str]:
    argv = [
        binary,
        "--no-defaults",
        f"--datadir={datadir}",
        f"--socket={workdir / 'mariadb.sock'}",
        f"--pid-file={workdir / 'mariadb.pid'}",
        f"--port={port}",
        f"--bind-address={LOOPBACK}",
        f"--user={_current_user()}",
        "--skip-name-resolve",
        "--innodb-buffer-pool-size=64M",
        "--innodb-log-file-size=16M",
        "--innodb-flush-log-at-trx-commit=2",
    ]
    for name, value in options.items():
        argv.append(f"--{name}={value}" if value != "" else f"--{name}")
    return argv


def _start_mariadbd(
    datadir: Path, workdir: Path, options: Mapping[str, str], *, port: int | None = None
) -> ServerProcess:
    binary = find_binary("mariadbd", MARIADB_HINT)
    # log-bin is relative to the data directory unless given as a path.
    return start_server(
        "mariadb",
        lambda p: _mariadbd_argv(binary, datadir, workdir, options, p),
        workdir,
        port=port,
        timeout=60.0,
    )


def start_mariadb(workdir: Path, *, options: Mapping[str, str] | None = None) -> MariaDBServer:
    """Start a private mariadbd with binary logging for CDC on a free loopback port.

    `options` are mariadbd long options without the dashes (value "" for a flag),
    merged over `MARIADB_CDC_OPTIONS`. Raises `ServiceNotInstalled` (hint: apt-get
    install mariadb-server) or `ServiceStartError`.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    datadir = workdir / "data"
    shutil.copytree(_template("mariadb", _mariadb_install), datadir)
    merged = {**MARIADB_CDC_OPTIONS, **(options or {})}
    return MariaDBServer(_start_mariadbd(datadir, workdir, merged), datadir, merged)


# --- PostgreSQL --------------------------------------------------------------------

POSTGRES_HINT = "apt-get install postgresql"


def _current_user() -> str:
    return pwd.getpwuid(os.getuid()).pw_name


def _postgres_binary(name: str) -> str:
    import glob

    for directory in sorted(glob.glob(_POSTGRES_BIN_GLOB), reverse=True):
        candidate = Path(directory) / name
        if candidate.exists():
            return str(candidate)
    return find_binary(name, POSTGRES_HINT)


def _postgres_user() -> str | None:
    """PostgreSQL refuses to run as root: as root, run it as the `postgres` user that the
    Debian package creates. None: run as the current user."""
    if os.getuid() != 0:
        return None
    try:
        pwd.getpwnam("postgres")
    except KeyError as error:
        raise ServiceStartError(
            f"running as root and there is no 'postgres' user to run the server as: {POSTGRES_HINT}"
        ) from error
    return "postgres"


def _chown_tree(path: Path, user: str | None) -> None:
    if user is None:
        return
    shutil.chown(path, user, user)
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            shutil.chown(os.path.join(root, name), user, user)


def _postgres_initdb(datadir: Path) -> None:
    user = _postgres_user()
    datadir.parent.mkdir(parents=True, exist_ok=True)
    _chown_tree(datadir.parent, user)
    _run(
        [
            _postgres_binary("initdb"),
            "-D", str(datadir),
            "-U", "postgres",
            "--auth=trust",
            "-E", "UTF8",
            "--no-locale",
            "--no-sync",
        ],
        "initdb",
        user=user,
    )  # fmt: skip


def _postgres_ready(host: str, port: int) -> bool:
    # The port opens before recovery ends ("the database system is starting up"):
    # ready means a session can log in.
    if not tcp_ready(host, port):
        return False
    import psycopg

    try:
        psycopg.connect(host=host, port=port, user="postgres", dbname="postgres").close()
    except psycopg.OperationalError:
        return False
    return True


@dataclass
class PostgresServer(Served):
    """A private PostgreSQL; superuser `postgres`, trust authentication, database
    `postgres`. `url(database)` is an SQLAlchemy URL (``postgresql+psycopg://...``)."""

    root: Path

    def url(self, database: str = "postgres") -> str:
        """SQLAlchemy URL for `database`."""
        return f"postgresql+psycopg://postgres@{self.host}:{self.port}/{database}"

    def stop(self) -> None:
        """End the server and remove its files."""
        self.server.stop(timeout=30.0)
        shutil.rmtree(self.root, ignore_errors=True)


def start_postgres(workdir: Path) -> PostgresServer:
    """Start a private PostgreSQL on a free loopback port (fsync off: test data only).

    As root the server runs as the `postgres` user, with its files in a private
    directory under the system temp dir (a pytest temp dir is closed to other users);
    `workdir` then holds only the log. Raises `ServiceNotInstalled` or
    `ServiceStartError`.
    """
    user = _postgres_user()
    binary = _postgres_binary("postgres")
    root = Path(tempfile.mkdtemp(prefix="omconnect-postgres-"))
    datadir = root / "data"
    shutil.copytree(_template("postgres", _postgres_initdb), datadir)
    os.chmod(datadir, 0o700)
    _chown_tree(root, user)

    def argv(port: int) -> list[str]:
        return [
            binary,
            "-D", str(datadir),
            "-h", LOOPBACK,
            "-p", str(port),
            "-k", str(root),
            "-c", "fsync=off",
            "-c", "synchronous_commit=off",
            "-c", "full_page_writes=off",
            "-c", "max_connections=200",
        ]  # fmt: skip

    server = start_server("postgres", argv, workdir, cwd=root, user=user, ready=_postgres_ready)
    return PostgresServer(server, root)
