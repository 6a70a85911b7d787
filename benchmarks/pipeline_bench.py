"""The pipeline benchmark: file source → broker → file sink, end to end, in records/s.

Each run lays out ``--pipelines`` independent pipelines (``input-P.txt`` → file
source ``src-P`` → queue ``lines-P`` → file sink ``sink-P`` → ``output-P.txt``), starts
the worker process(es), waits until one warm-up line went through every pipeline (so
start-up and assignment are not measured), then appends ``--records`` lines to every
input at once and times until every output holds all of them. The rate is all
records over that time; afterwards the outputs are checked for missing and
duplicate lines. Scenarios:

- ``standalone``: one ``omconnect standalone`` process, the broker in that process;
- ``distributed-1`` / ``distributed-2``: one or two ``omconnect worker`` processes of
  one group on an ``omconnect broker`` TCP server, connectors created through the
  REST API (``PUT /connectors/NAME/config``); the scaling ratio is distributed-2 over
  distributed-1 (target ≥ 1.6 on 2 cores);
- ``failover``: two workers run the pipelines; the one running the most tasks is
  killed with SIGKILL and the time until each of its tasks is RUNNING on the other
  worker (polled through the survivor's REST API) is compared with the configured
  ``session.timeout.ms`` (target ≤ 2 times).

    python benchmarks/pipeline_bench.py --records 100000 --repeat 3

prints one table row per run on stderr, then the medians and ratios, and a JSON
document with every run on stdout. Distributed scenarios are skipped (and say so)
when ``omconnect worker`` does not exist. The machine is shared and noisy: compare
medians.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from omconnect.testing.broker_process import start_broker
from omconnect.testing.services import free_port

_START_TIMEOUT_S = 60.0
_RUN_TIMEOUT_S = 600.0
_WORKER_CONFIG = {
    "key.converter": "json",
    "value.converter": "json",
    "value.converter.schemas.enable": "false",
    "offset.flush.interval.ms": "200",
}


@dataclass(frozen=True)
class PipelineRun:
    """One throughput run: ``records`` lines through every pipeline in ``seconds``."""

    scenario: str
    workers: int
    pipelines: int
    records: int  # over all pipelines
    seconds: float
    rate: float  # records/s
    startup_seconds: float  # first process start until the warm-up went through
    missing: int
    duplicates: int
    load_1m: float  # the machine's load average when the run ended (it is shared)


@dataclass(frozen=True)
class FailoverRun:
    """One kill -9: how long until the killed worker's tasks ran elsewhere."""

    session_timeout_ms: int
    rebalance_delay_ms: int  # scheduled.rebalance.max.delay.ms; -1: the worker's default
    moved_tasks: int
    seconds: float
    ratio_to_session_timeout: float


# -- files and configs ---------------------------------------------------------------


def line(pipeline: int, number: int, width: int) -> bytes:
    """One input line of ``width`` bytes including its newline, unique per pipeline."""
    text = f"p{pipeline}-{number:010d}-"
    return (text + "x" * max(0, width - 1 - len(text)))[: width - 1].encode() + b"\n"


def connector_configs(workdir: Path, pipeline: int) -> list[dict[str, Any]]:
    """The source and sink connector configs of one pipeline (Kafka's REST shape)."""
    topic = f"lines-{pipeline}"
    return [
        {
            "name": f"src-{pipeline}",
            "config": {
                "connector.class": "file-source",
                "file": str(workdir / f"input-{pipeline}.txt"),
                "topic": topic,
            },
        },
        {
            "name": f"sink-{pipeline}",
            "config": {
                "connector.class": "file-sink",
                "file": str(workdir / f"output-{pipeline}.txt"),
                "topics": topic,
            },
        },
    ]


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


# -- processes -------------------------------------------------------------------------


def _spawn(args: Sequence[str], workdir: Path, log_name: str) -> subprocess.Popen[bytes]:
    log = (workdir / log_name).open("ab")
    return subprocess.Popen(
        [sys.executable, "-m", "omconnect.cli", *args],
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=log,
    )


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def _processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    try:
        yield started
    finally:
        for process in started:
            _stop(process)


def _wait(
    done: Callable[[], bool],
    what: str,
    processes: Sequence[subprocess.Popen[bytes]],
    workdir: Path,
    timeout_s: float,
) -> None:
    """Poll ``done`` until true; `RuntimeError` (with the logs' tails) when a process
    exits or ``timeout_s`` passes."""
    deadline = time.monotonic() + timeout_s
    while not done():
        dead = [p for p in processes if p.poll() is not None]
        if dead or time.monotonic() > deadline:
            reason = f"process exited with {dead[0].returncode}" if dead else "timed out"
            logs = "".join(p.read_text()[-2000:] for p in sorted(workdir.glob("*.log")))
            raise RuntimeError(f"waiting for {what}: {reason}\n{logs}")
        time.sleep(0.01)


# -- the measurement shared by all throughput scenarios ------------------------------


def _measure(
    scenario: str,
    workers: int,
    workdir: Path,
    pipelines: int,
    records: int,
    width: int,
    processes: Sequence[subprocess.Popen[bytes]],
    started_at: float,
) -> PipelineRun:
    """Warm up every pipeline with one line, then time ``records`` lines through each."""
    outputs = [workdir / f"output-{p}.txt" for p in range(pipelines)]
    for p in range(pipelines):
        with (workdir / f"input-{p}.txt").open("ab") as f:
            f.write(line(p, -1, width))

    def holds(lines: int) -> Callable[[], bool]:
        return lambda: all(_size(out) >= lines * width for out in outputs)

    _wait(holds(1), "the warm-up lines", processes, workdir, _START_TIMEOUT_S)
    startup = time.perf_counter() - started_at
    batches = [b"".join(line(p, i, width) for i in range(records)) for p in range(pipelines)]
    begin = time.perf_counter()
    for p, batch in enumerate(batches):
        with (workdir / f"input-{p}.txt").open("ab") as f:
            f.write(batch)
    _wait(holds(records + 1), "all records", processes, workdir, _RUN_TIMEOUT_S)
    seconds = time.perf_counter() - begin
    missing = duplicates = 0
    for p, out in enumerate(outputs):
        got = out.read_bytes().splitlines(keepends=True)[1:]  # after the warm-up line
        unique = set(got)
        duplicates += len(got) - len(unique)
        missing += sum(1 for i in range(records) if line(p, i, width) not in unique)
    total = records * pipelines
    rate = total / seconds
    load = os.getloadavg()[0]
    return PipelineRun(
        scenario, workers, pipelines, total, seconds, rate, startup, missing, duplicates, load
    )


def run_standalone(pipelines: int, records: int, width: int) -> PipelineRun:
    """One ``omconnect standalone`` process with the broker in it."""
    with tempfile.TemporaryDirectory(prefix="omconnect-pipeline-") as tmp, _processes() as procs:
        workdir = Path(tmp)
        worker = {**_WORKER_CONFIG, "data.dir": str(workdir / "data")}
        (workdir / "worker.json").write_text(json.dumps(worker))
        names = []
        for p in range(pipelines):
            (workdir / f"input-{p}.txt").touch()
            for config in connector_configs(workdir, p):
                names.append(f"{config['name']}.json")
                (workdir / names[-1]).write_text(json.dumps(config))
        started = time.perf_counter()
        procs.append(_spawn(["standalone", "worker.json", *names], workdir, "standalone.log"))
        return _measure("standalone", 1, workdir, pipelines, records, width, procs, started)


# -- distributed mode ------------------------------------------------------------------


def distributed_available() -> bool:
    """True if this installation has ``omconnect worker``."""
    probe = subprocess.run(
        [sys.executable, "-m", "omconnect.cli", "worker", "--help"],
        capture_output=True,
        check=False,
    )
    return probe.returncode == 0


def _rest(url: str, method: str = "GET", body: Any = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        url, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        raw = response.read()
    return json.loads(raw) if raw else None


def _rest_ok(url: str, method: str = "GET", body: Any = None) -> Any:
    """The answer, or None while the worker cannot answer (starting, rebalancing)."""
    try:
        return _rest(url, method, body)
    except (urllib.error.URLError, ConnectionError, TimeoutError, ValueError):
        return None


def _answers(url: str, method: str = "GET", body: Any = None) -> Callable[[], bool]:
    """A `_wait` condition: the request got an answer."""
    return lambda: _rest_ok(url, method, body) is not None


@dataclass
class _Cluster:
    workdir: Path
    processes: list[subprocess.Popen[bytes]]
    rest_urls: list[str]
    worker_ids: list[str]
    pipelines: int

    def connectors(self) -> list[str]:
        return [f"{kind}-{p}" for p in range(self.pipelines) for kind in ("src", "sink")]

    def task_owners(self, via: int = 0) -> dict[str, str] | None:
        """Task ("connector-N") → worker id of every RUNNING task, asked of worker
        ``via``; None if it cannot answer now."""
        owners: dict[str, str] = {}
        for name in self.connectors():
            status = _rest_ok(f"{self.rest_urls[via]}/connectors/{name}/status")
            if not isinstance(status, dict):
                return None
            for task in status.get("tasks", []):
                if task.get("state") == "RUNNING":
                    owners[f"{name}-{task['id']}"] = str(task["worker_id"])
        return owners


def _start_cluster(
    workdir: Path,
    broker_port: int,
    workers: int,
    pipelines: int,
    session_timeout_ms: int,
    procs: list[subprocess.Popen[bytes]],
    rebalance_delay_ms: int = -1,
) -> _Cluster:
    """Start ``workers`` worker processes and create the connectors through REST;
    returns once every task is RUNNING and, with two or more workers, spread over
    more than one of them."""
    cluster = _Cluster(workdir, procs, [], [], pipelines)
    for k in range(workers):
        port = free_port()
        worker_id = f"bench-w{k}"
        config = {
            **_WORKER_CONFIG,
            "access.point.url": f"oms:embedded://127.0.0.1:{broker_port}/connect",
            "group.id": "bench",
            "worker.id": worker_id,
            "rest.host": "127.0.0.1",
            "rest.port": str(port),
            "session.timeout.ms": str(session_timeout_ms),
            "heartbeat.interval.ms": str(max(100, session_timeout_ms // 3)),
            "scheduled.rebalance.max.delay.ms": str(rebalance_delay_ms),
        }
        (workdir / f"worker-{k}.json").write_text(json.dumps(config))
        procs.append(_spawn(["worker", f"worker-{k}.json"], workdir, f"worker-{k}.log"))
        cluster.rest_urls.append(f"http://127.0.0.1:{port}")
        cluster.worker_ids.append(worker_id)
    for url in cluster.rest_urls:
        _wait(_answers(url + "/"), "REST", procs, workdir, 60)
    for p in range(pipelines):
        (workdir / f"input-{p}.txt").touch()
        for config in connector_configs(workdir, p):
            # PUT .../config creates or updates: safe to repeat after a 409 (rebalance)
            url = f"{cluster.rest_urls[0]}/connectors/{config['name']}/config"
            create = _answers(url, "PUT", config["config"])
            _wait(create, f"creating {config['name']}", procs, workdir, 60)

    def settled() -> bool:
        owners = cluster.task_owners()
        if owners is None or len(owners) < 2 * pipelines:
            return False
        return workers == 1 or len(set(owners.values())) > 1

    _wait(settled, "every task RUNNING", procs, workdir, _START_TIMEOUT_S)
    return cluster


def run_distributed(workers: int, pipelines: int, records: int, width: int) -> PipelineRun:
    """``workers`` ``omconnect worker`` processes on one TCP broker."""
    with tempfile.TemporaryDirectory(prefix="omconnect-pipeline-") as tmp, _processes() as procs:
        workdir = Path(tmp)
        broker = start_broker(workdir)
        try:
            started = time.perf_counter()
            _start_cluster(workdir, broker.port, workers, pipelines, 3000, procs)
            scenario = f"distributed-{workers}"
            return _measure(scenario, workers, workdir, pipelines, records, width, procs, started)
        finally:
            for process in procs:
                _stop(process)
            broker.stop()


def run_failover(pipelines: int, session_timeout_ms: int, rebalance_delay_ms: int) -> FailoverRun:
    """Two workers; kill -9 the busier one; time until its tasks RUN on the other."""
    with tempfile.TemporaryDirectory(prefix="omconnect-failover-") as tmp, _processes() as procs:
        workdir = Path(tmp)
        broker = start_broker(workdir)
        try:
            cluster = _start_cluster(
                workdir, broker.port, 2, pipelines, session_timeout_ms, procs, rebalance_delay_ms
            )
            owners = cluster.task_owners() or {}
            counts = {w: list(owners.values()).count(w) for w in cluster.worker_ids}
            victim = max(cluster.worker_ids, key=lambda w: counts[w])
            survivor = 1 - cluster.worker_ids.index(victim)
            moved = [task for task, owner in owners.items() if owner == victim]
            killed_at = time.perf_counter()
            os.kill(procs[cluster.worker_ids.index(victim)].pid, signal.SIGKILL)

            def moved_over() -> bool:
                now = cluster.task_owners(via=survivor)
                return now is not None and all(
                    now.get(task) == cluster.worker_ids[survivor] for task in moved
                )

            _wait(moved_over, "the tasks to move", [procs[survivor]], workdir, 120)
            seconds = time.perf_counter() - killed_at
            return FailoverRun(
                session_timeout_ms,
                rebalance_delay_ms,
                len(moved),
                seconds,
                seconds * 1000 / session_timeout_ms,
            )
        finally:
            for process in procs:
                _stop(process)
            broker.stop()


# -- the report ------------------------------------------------------------------------


def format_row(run: PipelineRun | FailoverRun) -> str:
    if isinstance(run, FailoverRun):
        return (
            f"{'failover':<15}{2:>8}{run.moved_tasks:>8} tasks moved in {run.seconds:7.2f} s"
            f" = {run.ratio_to_session_timeout:.2f}x session.timeout.ms"
            f" ({run.session_timeout_ms} ms, rebalance delay {run.rebalance_delay_ms} ms)"
        )
    return (
        f"{run.scenario:<15}{run.workers:>8}{run.pipelines:>10}{run.records:>10}"
        f"{run.seconds:>10.2f}{run.rate:>12.0f}{run.startup_seconds:>10.2f}"
        f"{run.missing:>9}{run.duplicates:>6}{run.load_1m:>7.1f}"
    )


HEADER = (
    f"{'scenario':<15}{'workers':>8}{'pipelines':>10}{'records':>10}{'seconds':>10}"
    f"{'records/s':>12}{'startup':>10}{'missing':>9}{'dups':>6}{'load':>7}"
)


def summary(runs: Sequence[PipelineRun], failovers: Sequence[FailoverRun]) -> dict[str, float]:
    """Median rate per scenario, the scaling ratio, the median failover time."""
    out: dict[str, float] = {}
    for scenario in sorted({r.scenario for r in runs}):
        out[f"records_per_s_{scenario}"] = statistics.median(
            r.rate for r in runs if r.scenario == scenario
        )
    one, two = out.get("records_per_s_distributed-1"), out.get("records_per_s_distributed-2")
    if one and two:
        out["scaling_2_vs_1 (target >= 1.6)"] = two / one
    if failovers:
        out["failover_seconds"] = statistics.median(f.seconds for f in failovers)
        out["failover_vs_session_timeout (target <= 2)"] = statistics.median(
            f.ratio_to_session_timeout for f in failovers
        )
    return out


def main(argv: list[str] | None = None) -> int:
    """Run the scenarios ``--repeat`` times, interleaved; print the results."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--records", type=int, default=100_000, help="lines per pipeline")
    parser.add_argument("--pipelines", type=int, default=2, help="file→file pipelines")
    parser.add_argument("--line-bytes", type=int, default=100, help="bytes per line (>= 16)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per scenario")
    parser.add_argument(
        "--scenarios",
        default="standalone,distributed-1,distributed-2,failover",
        help="comma list of standalone, distributed-1, distributed-2, failover",
    )
    parser.add_argument("--session-timeout-ms", type=int, default=3000)
    parser.add_argument(
        "--rebalance-delay-ms",
        type=int,
        default=-1,
        help="scheduled.rebalance.max.delay.ms of the workers (-1: their default)",
    )
    args = parser.parse_args(argv)
    if args.line_bytes < 16 or args.records < 1 or args.pipelines < 1:
        parser.error("need --line-bytes >= 16, --records >= 1, --pipelines >= 1")
    scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    skipped: list[str] = []
    if any(s != "standalone" for s in scenarios) and not distributed_available():
        skipped = [s for s in scenarios if s != "standalone"]
        scenarios = [s for s in scenarios if s == "standalone"]
        print(f"'omconnect worker' does not exist: skipping {skipped}", file=sys.stderr)
    runs: list[PipelineRun] = []
    failovers: list[FailoverRun] = []
    print(HEADER, file=sys.stderr, flush=True)
    for _ in range(args.repeat):
        for scenario in scenarios:
            result: PipelineRun | FailoverRun
            if scenario == "failover":
                result = run_failover(
                    args.pipelines, args.session_timeout_ms, args.rebalance_delay_ms
                )
                failovers.append(result)
            elif scenario == "standalone":
                result = run_standalone(args.pipelines, args.records, args.line_bytes)
                runs.append(result)
            else:
                workers = int(scenario.rsplit("-", 1)[1])
                result = run_distributed(workers, args.pipelines, args.records, args.line_bytes)
                runs.append(result)
            print(format_row(result), file=sys.stderr, flush=True)
    medians = summary(runs, failovers)
    for key, value in medians.items():
        print(f"{key:<48}{value:>14.2f}", file=sys.stderr)
    document = {
        "command": " ".join([Path(sys.argv[0]).name, *(argv or sys.argv[1:])]),
        "cpus": os.cpu_count(),
        "runs": [asdict(r) for r in runs],
        "failovers": [asdict(f) for f in failovers],
        "skipped": skipped,
        "summary": medians,
    }
    print(json.dumps(document, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
