"""Distributed mode: several `DistributedHerder`s on one in-process broker, and three
``omconnect worker`` processes on one TCP broker with a kill -9.

Every in-process test watches the task threads of all herders (they share this
process) and fails if one task's thread is ever alive twice at once.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from omconnect.access_point import MessagingAccessPoint
from omconnect.broker.api import BrokerApi
from omconnect.errors import ConfigError, ConnectionLostError
from omconnect.runtime.distributed import DistributedHerder
from omconnect.runtime.group import GroupKeys
from omconnect.runtime.herder import RebalanceInProgressError
from omconnect.runtime.worker_config import parse_worker_config
from omconnect.testing.broker_process import start_broker

SESSION_MS, HEARTBEAT_MS = 1000, 200
TASK_THREADS = ("omconnect-source-", "omconnect-sink-")


def wait_until(check: Callable[[], bool], timeout_s: float = 10.0, what: str = "") -> float:
    """Seconds it took until ``check()``; fails the test after ``timeout_s``."""
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > timeout_s:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.02)
    return time.monotonic() - start


class Partitionable:
    """A broker connection that can be cut: every call raises `ConnectionLostError`
    while `cut` is set (what a network partition looks like to the worker)."""

    def __init__(self, backend: BrokerApi) -> None:
        self._backend = backend
        self.cut = False

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._backend, name)
        if not callable(attribute) or name == "close":
            return attribute

        def call(*args: Any, **kwargs: Any) -> Any:
            if self.cut:
                raise ConnectionLostError("partitioned (test)")
            return attribute(*args, **kwargs)

        return call


class Cluster:
    """Herders of one group on one in-process broker; a thread checks that no task
    thread is ever alive twice."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.url = f"oms:embedded://local/dist?data_dir={workdir / 'data'}"
        self.herders: dict[str, DistributedHerder] = {}
        self.links: dict[str, Partitionable] = {}
        self.doubles: list[str] = []
        self._stop = threading.Event()
        self._checker = threading.Thread(target=self._check, daemon=True)
        self._checker.start()
        self.admin = self.herder("admin", start=False)  # REST-like writes, no membership

    def herder(self, worker_id: str, start: bool = True, **settings: str) -> DistributedHerder:
        config = parse_worker_config(
            {
                "worker.id": worker_id,
                "session.timeout.ms": str(SESSION_MS),
                "heartbeat.interval.ms": str(HEARTBEAT_MS),
                "offset.flush.interval.ms": "200",
                "task.shutdown.graceful.timeout.ms": "500",
                "value.converter.schemas.enable": "false",
                **settings,
            }
        )
        opened = MessagingAccessPoint.open(self.url)
        link = Partitionable(opened.backend)
        ap = MessagingAccessPoint(opened.url, link)  # type: ignore[arg-type]
        herder = DistributedHerder(config, ap)
        if start:
            herder.start()
            self.herders[worker_id] = herder
            self.links[worker_id] = link
        return herder

    def pipeline(self, index: int, lines: int = 100) -> tuple[Path, Path]:
        """A file source and a file sink connector joined by queue ``t<index>``."""
        source, sink = self.workdir / f"in{index}.txt", self.workdir / f"out{index}.txt"
        source.write_text("".join(f"{index}:{n}\n" for n in range(lines)))
        self.admin.put_connector_config(
            f"src{index}",
            {"connector.class": "file-source", "file": str(source), "topic": f"t{index}"},
        )
        self.admin.put_connector_config(
            f"sink{index}",
            {"connector.class": "file-sink", "file": str(sink), "topics": f"t{index}"},
        )
        return source, sink

    def tasks_on(self, worker_id: str) -> set[str]:
        return set(self.herders[worker_id].running()[1])

    def task_owner(self) -> dict[str, str]:
        """Which worker each task reports RUNNING on."""
        owners: dict[str, str] = {}
        for name in self.admin.connectors():
            for task in self.admin.connector_status(name).tasks:
                if task.state == "RUNNING":
                    owners[f"{name}-{task.id}"] = task.worker_id
        return owners

    def settled(self, tasks: int) -> bool:
        """Every task RUNNING where the assignment puts it."""
        owners = self.task_owner()
        placed = {t: w for w in self.herders for t in self.tasks_on(w)}
        return len(placed) == tasks and owners == placed

    def _check(self) -> None:
        while not self._stop.wait(0.005):
            names = [t.name for t in threading.enumerate() if t.name.startswith(TASK_THREADS)]
            twice = [n for n, count in Counter(names).items() if count > 1]
            self.doubles.extend(twice)

    def close(self) -> None:
        for herder in self.herders.values():
            herder.stop()
        self._stop.set()
        self._checker.join()
        for herder in [*self.herders.values(), self.admin]:
            herder.access_point.close()


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    group = Cluster(tmp_path)
    try:
        yield group
    finally:
        group.close()
    assert group.doubles == [], f"tasks ran twice at once: {sorted(set(group.doubles))}"


def runner_of(herder: DistributedHerder, task: str) -> object:
    connector, number = task.rsplit("-", 1)
    assert herder.worker is not None
    runner = herder.worker.runner(connector, int(number))
    assert runner is not None
    return runner


def lines_of(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def test_tasks_spread_over_the_workers_and_deliver_every_line(cluster: Cluster) -> None:
    for worker_id in ("w1", "w2", "w3"):
        cluster.herder(worker_id)
    files = [cluster.pipeline(i) for i in range(3)]
    wait_until(lambda: cluster.settled(6), what="6 tasks running")
    assert sorted(len(cluster.tasks_on(w)) for w in cluster.herders) == [2, 2, 2]
    assert sorted(len(cluster.herders[w].running()[0]) for w in cluster.herders) == [2, 2, 2]
    assert sum(h.is_leader for h in cluster.herders.values()) == 1
    for source, sink in files:
        wait_until(lambda s=source, o=sink: lines_of(o) == lines_of(s), what=f"{sink} complete")


def test_a_graceful_stop_hands_the_tasks_over_at_once(cluster: Cluster) -> None:
    slow = {"session.timeout.ms": "6000", "heartbeat.interval.ms": "500"}  # expiry: far off
    cluster.herder("w1", **slow)
    cluster.herder("w2", **slow)
    for i in range(2):
        cluster.pipeline(i)
    wait_until(lambda: cluster.settled(4), what="4 tasks running")
    leaving = cluster.herders.pop("w1")
    moved = set(leaving.running()[1])
    started = time.monotonic()
    leaving.stop()
    took = wait_until(lambda: cluster.settled(4), what="tasks running on w2")
    elapsed = time.monotonic() - started
    assert moved and moved <= cluster.tasks_on("w2")
    assert elapsed < 3.0, f"handover took {elapsed:.2f} s (stop) + {took:.2f} s"
    member_keys = cluster.admin.access_point.kv.list(GroupKeys.of("connect-cluster").members)
    assert [e.key.rsplit("/", 1)[1] for e in member_keys] == ["w2"]
    cluster.herders["w1"] = leaving  # closed by the fixture (stop is idempotent enough)


def test_a_joining_worker_takes_only_its_share(cluster: Cluster) -> None:
    cluster.herder("w1")
    cluster.herder("w2")
    for i in range(3):
        cluster.pipeline(i)
    wait_until(lambda: cluster.settled(6), what="6 tasks running")
    runners = {
        t: runner_of(cluster.herders[w], t) for w in ("w1", "w2") for t in cluster.tasks_on(w)
    }
    before = {w: cluster.tasks_on(w) for w in ("w1", "w2")}
    cluster.herder("w3")
    wait_until(lambda: len(cluster.tasks_on("w3")) == 2 and cluster.settled(6), what="w3 share")
    for worker_id in ("w1", "w2"):
        kept = cluster.tasks_on(worker_id)
        assert len(kept) == 2 and kept <= before[worker_id]  # each gave up exactly one
        for task in kept:  # and the tasks it kept were never restarted
            assert runner_of(cluster.herders[worker_id], task) is runners[task]


def test_a_partitioned_worker_stops_its_tasks_before_others_start_them(
    cluster: Cluster,
) -> None:
    cluster.herder("w1")
    cluster.herder("w2")
    for i in range(2):
        cluster.pipeline(i)
    wait_until(lambda: cluster.settled(4), what="4 tasks running")
    lost = cluster.tasks_on("w2")
    worker = cluster.herders["w2"].worker
    assert worker is not None
    cluster.links["w2"].cut = True
    cut = time.monotonic()
    fenced = wait_until(lambda: worker.tasks() == [], what="w2 fencing itself")

    def shown(state: str) -> bool:
        tasks = {f"{n}-{t.id}": t.state for n in ("src0", "src1", "sink0", "sink1")
                 for t in cluster.admin.connector_status(n).tasks}  # fmt: skip
        return all(tasks.get(t) == state for t in lost)

    wait_until(lambda: shown("UNASSIGNED"), what="w2's tasks UNASSIGNED while they wait")
    wait_until(
        lambda: all(cluster.task_owner().get(t) == "w1" for t in lost), what="w2's tasks on w1"
    )
    took = time.monotonic() - cut
    print(f"partition → fenced in {fenced:.2f} s, tasks RUNNING on w1 after {took:.2f} s")
    assert fenced < SESSION_MS / 1000  # stopped before its lease could expire
    delay_ms = SESSION_MS // 3  # the default scheduled.rebalance.max.delay.ms
    assert took >= (SESSION_MS + delay_ms - HEARTBEAT_MS) / 1000  # expiry + delay, not sooner
    cluster.links["w2"].cut = False  # healed: w2 joins again as a new incarnation
    wait_until(lambda: len(cluster.tasks_on("w2")) == 2 and cluster.settled(4), what="rebalance")
    assert cluster.doubles == []


def test_pause_resume_stop_restart_and_offsets(cluster: Cluster) -> None:
    cluster.herder("w1")
    cluster.herder("w2")
    source, sink = cluster.pipeline(0)
    admin = cluster.admin
    wait_until(lambda: cluster.settled(2), what="2 tasks running")
    wait_until(lambda: lines_of(sink) == lines_of(source), what="first lines")

    def states(name: str) -> list[str]:
        status = admin.connector_status(name)
        return [status.state, *(t.state for t in status.tasks)]

    admin.pause_connector("src0")
    wait_until(lambda: states("src0") == ["PAUSED", "PAUSED"], what="src0 paused")
    with source.open("a") as f:
        f.write("while paused\n")
    time.sleep(0.6)
    assert "while paused" not in lines_of(sink)
    admin.resume_connector("src0")
    wait_until(lambda: "while paused" in lines_of(sink), what="resumed delivery")
    assert states("src0") == ["RUNNING", "RUNNING"]

    owner = admin.connector_status("src0").tasks[0].worker_id
    worker = cluster.herders[owner].worker
    assert worker is not None
    runner = worker.runner("src0", 0)
    admin.restart_task("src0", 0)
    wait_until(lambda: worker.runner("src0", 0) not in (None, runner), what="task restarted")
    runner = worker.runner("src0", 0)
    answer = admin.restart_connector("src0", include_tasks=True, only_failed=False)
    assert [answer.state, *(t.state for t in answer.tasks)] == ["RESTARTING", "RESTARTING"]
    wait_until(lambda: worker.runner("src0", 0) not in (None, runner), what="restarted again")
    wait_until(lambda: states("src0") == ["RUNNING", "RUNNING"], what="running after restart")
    answer = admin.restart_connector("src0", include_tasks=True, only_failed=True)
    assert [answer.state, *(t.state for t in answer.tasks)] == ["RUNNING", "RUNNING"]

    with pytest.raises(ConfigError):
        admin.reset_connector_offsets("src0")  # only while STOPPED
    admin.stop_connector("src0")
    wait_until(lambda: states("src0") == ["STOPPED"], what="src0 stopped, no tasks")
    wait_until(lambda: _offsets_changeable(admin, "src0"), what="stopped everywhere", timeout_s=5)
    admin.reset_connector_offsets("src0")
    assert admin.connector_offsets("src0") == []
    admin.resume_connector("src0")  # starts from the beginning again: every line twice
    wait_until(lambda: len(lines_of(sink)) == 2 * len(lines_of(source)), what="re-read")
    wait_until(lambda: cluster.settled(2), what="2 tasks running again")


def _offsets_changeable(herder: DistributedHerder, name: str) -> bool:
    try:
        herder.alter_connector_offsets(name, [])
    except RebalanceInProgressError:
        return False
    return True


def test_config_change_restarts_the_task_and_delete_stops_it(cluster: Cluster) -> None:
    cluster.herder("w1")
    cluster.herder("w2")
    source, sink = cluster.pipeline(0)
    wait_until(lambda: lines_of(sink) == lines_of(source), what="first file")
    other = cluster.workdir / "other.txt"
    other.write_text("other 1\nother 2\n")
    config = cluster.admin.connector_config("src0")
    created, info = cluster.admin.put_connector_config("src0", {**config, "file": str(other)})
    assert not created and info.config["file"] == str(other)
    wait_until(lambda: lines_of(sink)[-2:] == ["other 1", "other 2"], what="new file read")
    cluster.admin.delete_connector("src0")
    wait_until(lambda: all("src0-0" not in cluster.tasks_on(w) for w in cluster.herders))
    assert cluster.admin.connectors() == ["sink0"]


# -- three worker processes, kill -9 ------------------------------------------------------


def test_worker_command_rejects_a_bad_config_with_exit_code_3(tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_text(json.dumps({"session.timeout.ms": "0"}))
    for name in ("bad.json", "missing.json"):
        done = subprocess.run(
            [sys.executable, "-m", "omconnect.cli", "worker", name],
            cwd=tmp_path, capture_output=True, timeout=60,
        )  # fmt: skip
        assert done.returncode == 3, done.stderr
        assert done.stderr.decode().strip().count("\n") == 0  # one line, no traceback


E2E_SESSION_MS, E2E_HEARTBEAT_MS = 2000, 500
PIPELINES = 4  # 4 file sources + 4 file sinks: 8 tasks over 3 workers


def start_worker(workdir: Path, worker_id: str, url: str) -> subprocess.Popen[bytes]:
    config = {
        "access.point.url": url,
        "group.id": "e2e",
        "worker.id": worker_id,
        "session.timeout.ms": str(E2E_SESSION_MS),
        "heartbeat.interval.ms": str(E2E_HEARTBEAT_MS),
        "rest.port": "0",
        "offset.flush.interval.ms": "300",
        "value.converter.schemas.enable": "false",
    }
    path = workdir / f"{worker_id}.json"
    path.write_text(json.dumps(config))
    return subprocess.Popen(
        [sys.executable, "-m", "omconnect.cli", "worker", str(path)],
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=(workdir / f"{worker_id}.log").open("ab"),
    )


def test_three_worker_processes_survive_a_kill_9(tmp_path: Path) -> None:
    broker = start_broker(tmp_path / "broker")
    url = f"oms:embedded://{broker.host}:{broker.port}/e2e"
    workers = {w: start_worker(tmp_path, w, url) for w in ("w1", "w2", "w3")}
    admin_ap = MessagingAccessPoint.open(url)
    admin = DistributedHerder(parse_worker_config({"group.id": "e2e"}), admin_ap)
    try:
        _run_kill_9_scenario(tmp_path, workers, admin)
    finally:
        for process in workers.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for worker_id, process in workers.items():
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                pytest.fail(f"{worker_id} did not stop on SIGTERM")
        admin_ap.close()
        broker.stop()
    for worker_id, process in workers.items():
        log = (tmp_path / f"{worker_id}.log").read_text()[-3000:]
        assert process.returncode in (0, -signal.SIGKILL), log


def _run_kill_9_scenario(
    workdir: Path, workers: dict[str, subprocess.Popen[bytes]], admin: DistributedHerder
) -> None:
    keys = GroupKeys.of("e2e")
    wait_until(
        lambda: len(admin.access_point.kv.list(keys.members)) == 3, timeout_s=20, what="3 workers"
    )
    sources = [workdir / f"in{i}.txt" for i in range(PIPELINES)]
    sinks = [workdir / f"out{i}.txt" for i in range(PIPELINES)]
    batch = 3000
    for i, source in enumerate(sources):
        source.write_text("".join(f"{i}:{n}\n" for n in range(batch)))
        admin.put_connector_config(
            f"src{i}", {"connector.class": "file-source", "file": str(source), "topic": f"q{i}"}
        )
        admin.put_connector_config(
            f"sink{i}", {"connector.class": "file-sink", "file": str(sinks[i]), "topics": f"q{i}"}
        )

    def owners() -> dict[str, str]:
        found: dict[str, str] = {}
        for name in admin.connectors():
            for task in admin.connector_status(name).tasks:
                if task.state == "RUNNING":
                    found[f"{name}-{task.id}"] = task.worker_id
        return found

    def spread() -> bool:
        now = owners()
        return len(now) == 2 * PIPELINES and set(now.values()) == {"w1", "w2", "w3"}

    wait_until(spread, timeout_s=20, what="8 tasks RUNNING on the three workers")
    leader_entry = admin.access_point.kv.get(keys.leader)
    assert leader_entry is not None
    victim = json.loads(leader_entry.value)["worker_id"]  # the hardest case: the leader
    victim_tasks = {t for t, w in owners().items() if w == victim}
    assert victim_tasks

    for i, source in enumerate(sources):  # more input while the worker dies
        with source.open("a") as f:
            f.writelines(f"{i}:{n}\n" for n in range(batch, 2 * batch))
    workers[victim].send_signal(signal.SIGKILL)
    killed = time.monotonic()
    workers[victim].wait()
    for i, source in enumerate(sources):
        with source.open("a") as f:
            f.writelines(f"{i}:{n}\n" for n in range(2 * batch, 3 * batch))

    def moved() -> bool:
        now = owners()
        return all(now.get(t) not in (None, victim) for t in victim_tasks)

    took = wait_until(moved, timeout_s=15, what=f"{victim}'s tasks RUNNING elsewhere")
    print(f"kill -9 of {victim} (leader): its {len(victim_tasks)} tasks RUNNING elsewhere "
          f"after {took:.2f} s (session {E2E_SESSION_MS} ms, delay = session/3)")  # fmt: skip
    bound = (E2E_SESSION_MS + E2E_SESSION_MS // 3 + E2E_HEARTBEAT_MS) / 1000 + 1.5
    assert took <= bound, f"took {took:.2f} s, more than {bound:.2f} s"
    assert took >= E2E_SESSION_MS / 1000  # nothing moved before the lease could expire

    expected = [{f"{i}:{n}" for n in range(3 * batch)} for i in range(PIPELINES)]
    wait_until(
        lambda: all(expected[i] <= set(lines_of(sinks[i])) for i in range(PIPELINES)),
        timeout_s=15,
        what="every line in the sink files",
    )
    duplicates = 0
    for i in range(PIPELINES):
        counts = Counter(lines_of(sinks[i]))
        assert set(counts) == expected[i]  # nothing lost, nothing invented
        duplicates += sum(c - 1 for c in counts.values())
    print(f"{PIPELINES * 3 * batch} lines in, {duplicates} duplicates after kill -9 "
          f"(at-least-once)")  # fmt: skip
    assert time.monotonic() - killed < 30
