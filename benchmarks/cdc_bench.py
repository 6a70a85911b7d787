"""The CDC benchmark: MySQL/MariaDB binlog → omconnect → SQL, against the raw decoder.

One run starts a private MariaDB (binlog ROW, FULL image, FULL metadata), writes a
workload into its binlog, and then measures, side by side on that same binlog:

- ``raw``: pymysql-replication's `BinLogStreamReader` alone, reading every row event
  from the first binlog to the end (the decode rate nothing built on it can beat);
- ``e2e-<target>``: ``omconnect standalone`` with the MySQL source
  (``snapshot.mode=never``: stream the same binlog from its start) → the bundled
  broker → the SQL sink into SQLite or PostgreSQL, timed from the first row in the
  target until the target holds every change (count and column sum equal the
  source's); the start-up before that first row is reported apart;
- ``snapshot``: the MySQL source's snapshot of the six-column table alone (records
  returned by the task's poll, no broker), in rows/s.

Workloads: ``two`` (INSERTs into a two-column table), ``six`` (INSERTs into a
six-column table), ``update`` (UPDATEs of every row of the six-column table).

    python benchmarks/cdc_bench.py --rows 100000 --repeat 3

prints a table row per run on stderr, then medians and the ratios the CDC issue
sets targets for (end to end ≥ 0.8 x raw decode; snapshot ≥ 50k rows/s), and a JSON
document with every run on stdout. The machine is shared and noisy: compare medians.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from omconnect.testing.databases import MariaDBServer, start_mariadb

_DB = "bench"
_INSERT_CHUNK = 5000
_DATETIME = "2026-11-22 05:54:21.123456"

TABLES = {
    "two": "CREATE TABLE two (id INT PRIMARY KEY, v INT NOT NULL)",
    "six": (
        "CREATE TABLE six (id INT PRIMARY KEY, name VARCHAR(64) NOT NULL, qty INT NOT NULL,"
        " price DECIMAL(10,2) NOT NULL, ratio DOUBLE, updated DATETIME(6) NOT NULL)"
    ),
}


@dataclass
class Run:
    """One measurement: `rows` row changes handled in `seconds`."""

    scenario: str
    workload: str
    rows: int
    seconds: float
    startup_s: float = 0.0
    """e2e: from the process start until the first row reached the target (not in
    ``seconds``, nor its rows in ``rows``)."""

    @property
    def rate(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else float("nan")


def _rows(workload: str, start: int, count: int) -> list[tuple[Any, ...]]:
    if workload == "two":
        return [(i, i * 7) for i in range(start, start + count)]
    return [
        (
            i,
            f"item-{i}",
            i % 1000,
            f"{i % 100000}.{i % 100:02d}",
            i / 3,
            "2026-11-22 05:54:21.123456",
        )
        for i in range(start, start + count)
    ]


def write_workload(server: MariaDBServer, workload: str, rows: int) -> None:
    """Create table `two` or `six` in database `bench` and fill it with `rows` rows
    (multi-row INSERTs of 5,000 rows per transaction); for ``update``, then update
    every row of `six` once (one UPDATE per 5,000 rows)."""
    table = "two" if workload == "two" else "six"
    server.execute(f"CREATE DATABASE IF NOT EXISTS {_DB}", f"DROP TABLE IF EXISTS {_DB}.{table}")
    server.execute(TABLES[table], database=_DB)
    connection = server.connect(_DB)
    try:
        with connection.cursor() as cursor:
            width = len(_rows(workload if table == "two" else "six", 0, 1)[0])
            marks = "(" + ",".join(["%s"] * width) + ")"
            for start in range(0, rows, _INSERT_CHUNK):
                count = min(_INSERT_CHUNK, rows - start)
                cursor.executemany(
                    f"INSERT INTO {table} VALUES {marks}", _rows(table, start, count)
                )
            if workload == "update":
                for start in range(0, rows, _INSERT_CHUNK):
                    cursor.execute(
                        "UPDATE six SET qty = qty + 1, updated = NOW(6) WHERE id >= %s AND id < %s",
                        (start, start + _INSERT_CHUNK),
                    )
    finally:
        connection.close()


def row_events(workload: str, rows: int) -> int:
    """Row changes in the binlog of `workload`: the inserts, plus the updates."""
    return 2 * rows if workload == "update" else rows


def run_raw(server: MariaDBServer, workload: str, rows: int) -> Run:
    """Decode every row event of the binlog with BinLogStreamReader alone and count the
    row changes (inserts and updates)."""
    from pymysqlreplication import BinLogStreamReader
    from pymysqlreplication.row_event import UpdateRowsEvent, WriteRowsEvent

    table = "two" if workload == "two" else "six"
    started = time.perf_counter()
    reader = BinLogStreamReader(
        connection_settings={
            "host": server.host,
            "port": server.port,
            "user": "root",
            "passwd": "",
        },
        server_id=9001,
        blocking=False,
        resume_stream=False,
        only_events=[WriteRowsEvent, UpdateRowsEvent],
        only_tables=[table],
        only_schemas=[_DB],
    )
    seen = 0
    try:
        for event in reader:
            for row in event.rows:
                # Touch the decoded values, as a consumer of the library would.
                seen += 1 if (row.get("after_values") or row.get("values")) else 0
    finally:
        reader.close()
    seconds = time.perf_counter() - started
    if seen != row_events(workload, rows):
        raise RuntimeError(f"raw decoder saw {seen} rows, expected {row_events(workload, rows)}")
    return Run("raw", workload, seen, seconds)


def format_row(run: Run) -> str:
    return (
        f"{run.scenario:<16} {run.workload:<8} {run.rows:>9} {run.seconds:>9.2f} {run.rate:>11.0f}"
    )


def _median(runs: Sequence[Run], scenario: str, workload: str) -> float:
    rates = [r.rate for r in runs if r.scenario == scenario and r.workload == workload]
    return statistics.median(rates) if rates else float("nan")


def summary(runs: Sequence[Run]) -> dict[str, float]:
    """Median rates per (scenario, workload) and the target ratios."""
    out: dict[str, float] = {}
    for scenario, workload in sorted({(r.scenario, r.workload) for r in runs}):
        out[f"{scenario}_{workload}_rows_per_s"] = _median(runs, scenario, workload)
    for scenario in sorted({r.scenario for r in runs if r.scenario.startswith("e2e-")}):
        for workload in sorted({r.workload for r in runs}):
            raw = _median(runs, "raw", workload)
            e2e = _median(runs, scenario, workload)
            out[f"ratio_{scenario}_vs_raw_{workload} (target >= 0.8)"] = e2e / raw
    return out


Scenario = Callable[[MariaDBServer, str, int, Path], Run]


# --- omconnect end to end ---------------------------------------------------------------


def _source_config(server: MariaDBServer, snapshot_mode: str) -> dict[str, str]:
    return {
        "connector.class": "mysql-source",
        "database.hostname": server.host,
        "database.port": str(server.port),
        "database.user": server.user,
        "database.password": server.password,
        "database.server.id": "9002",
        "topic.prefix": "bench",
        "database.include.list": _DB,
        "snapshot.mode": snapshot_mode,
    }


def _target(target: str, workdir: Path) -> tuple[str, Callable[[], None]]:
    """(SQLAlchemy URL, cleanup) of a fresh target database."""
    if target == "sqlite":
        return f"sqlite:///{workdir / 'target.db'}", lambda: None
    from omconnect.testing.databases import start_postgres

    server = start_postgres(workdir / "postgres")
    return server.url(), server.stop


def _target_state(url: str, table: str) -> tuple[int, int]:
    """(row count, sum of the changed column) of the target table; (0, 0) before it
    exists."""
    import sqlalchemy as sa

    column = "v" if table == "two" else "qty"
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            row = connection.execute(sa.text(f"SELECT COUNT(*), SUM({column}) FROM {table}")).one()
            return int(row[0]), int(row[1] or 0)
    except sa.exc.SQLAlchemyError:
        return 0, 0
    finally:
        engine.dispose()


def _source_state(server: MariaDBServer, table: str) -> tuple[int, int]:
    column = "v" if table == "two" else "qty"
    connection = server.connect(_DB)
    try:
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT COUNT(*), SUM({column}) FROM {table}")
            count, total = cursor.fetchone()
            return int(count), int(total or 0)
    finally:
        connection.close()


def run_e2e(server: MariaDBServer, workload: str, rows: int, workdir: Path, target: str) -> Run:
    """``omconnect standalone``: MySQL source (streaming the whole binlog from its
    start) → broker → SQL sink into `target`; timed from the first row in the target
    until the target table's row count and column sum equal the source's (start-up,
    until that first row, is reported apart)."""
    import os
    import subprocess

    workdir.mkdir(parents=True)
    table = "two" if workload == "two" else "six"
    url, cleanup = _target(target, workdir)
    worker = {
        "data.dir": str(workdir / "data"),
        "key.converter": "json",
        "value.converter": "json",
        "offset.flush.interval.ms": "1000",
        "rest.port": "0",
    }
    sink = {
        "connector.class": "sql-sink",
        "topics.regex": f"bench\\.{_DB}\\..*",
        "connection.url": url,
        "table.name.format": "${table}",
        "auto.create": "true",
    }
    configs = {
        "worker": worker,
        "source": {"name": "cdc", "config": _source_config(server, "never")},
        "sink": {"name": "sink", "config": sink},
    }
    for name, config in configs.items():
        (workdir / f"{name}.json").write_text(json.dumps(config))
    expected = _source_state(server, table)
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "omconnect.cli", "standalone", "worker.json", "source.json",
         "sink.json"],
        cwd=workdir, stdout=subprocess.DEVNULL, stderr=(workdir / "worker.log").open("wb"),
    )  # fmt: skip
    first: tuple[float, int] | None = None  # (time, rows there) when rows first arrived
    try:
        deadline = started + 600
        while (state := _target_state(url, table)) != expected:
            if first is None and state[0]:
                first = (time.perf_counter(), state[0])
            if process.poll() is not None or time.perf_counter() > deadline:
                log = (workdir / "worker.log").read_text(errors="replace")[-3000:]
                raise RuntimeError(f"e2e-{target} did not finish:\n{log}")
            time.sleep(0.05)
        ended = time.perf_counter()
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, 9)
        cleanup()
    first_at, first_rows = first or (started, 0)
    done = row_events(workload, rows) - first_rows
    return Run(f"e2e-{target}", workload, done, ended - first_at, first_at - started)


def run_snapshot(server: MariaDBServer, workload: str, rows: int, workdir: Path) -> Run:
    """The MySQL source task alone (no broker): snapshot of the six-column table,
    timed from `start` until its polls returned every row."""
    from omconnect.connectors.mysql.source import MySqlSourceConnector
    from omconnect.testing.connectors import SourceHarness

    config = _source_config(server, "initial")
    started = time.perf_counter()
    harness = SourceHarness(MySqlSourceConnector, config)
    try:
        got = 0
        deadline = started + 600
        while got < rows:
            if time.perf_counter() > deadline:
                raise RuntimeError(f"snapshot returned {got} of {rows} rows")
            records = harness.task.poll() or []
            got += sum(1 for r in records if r.topic.endswith(".six") and r.value is not None)
        seconds = time.perf_counter() - started
    finally:
        harness.stop()
    return Run("snapshot", workload, got, seconds)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workloads", default="two,six,update")
    parser.add_argument("--scenarios", default="raw,e2e-sqlite,e2e-postgres,snapshot")
    args = parser.parse_args(argv)
    scenarios = SCENARIOS
    wanted = args.scenarios.split(",")
    runs: list[Run] = []
    print(
        f"{'scenario':<16} {'workload':<8} {'rows':>9} {'seconds':>9} {'rows/s':>11}",
        file=sys.stderr,
    )
    for _ in range(args.repeat):
        for workload in args.workloads.split(","):
            with tempfile.TemporaryDirectory(prefix="cdc-bench-") as tmp:
                workdir = Path(tmp)
                server = start_mariadb(workdir / "mariadb")
                try:
                    write_workload(server, workload, args.rows)
                    for name in wanted:
                        if name == "snapshot" and workload != "six":
                            continue
                        run = scenarios[name](server, workload, args.rows, workdir / name)
                        runs.append(run)
                        print(format_row(run), file=sys.stderr, flush=True)
                finally:
                    server.stop()
    result = {"runs": [asdict(r) | {"rate": r.rate} for r in runs], "summary": summary(runs)}
    for key, value in result["summary"].items():
        print(f"{key:<56} {value:>12.2f}", file=sys.stderr)
    json.dump(result, sys.stdout, indent=2)
    print()
    return 0


SCENARIOS: dict[str, Scenario] = {
    "raw": lambda server, workload, rows, _dir: run_raw(server, workload, rows),
    "e2e-sqlite": lambda server, workload, rows, d: run_e2e(server, workload, rows, d, "sqlite"),
    "e2e-postgres": lambda server, workload, rows, d: run_e2e(
        server, workload, rows, d, "postgres"
    ),
    "snapshot": run_snapshot,
}


if __name__ == "__main__":
    sys.exit(main())
