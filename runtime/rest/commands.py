"""What the ``omconnect connectors`` commands do besides HTTP: read connector files
and print answers as short tables. Pure functions; `omconnect.cli` wires them to
options and exit codes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from omconnect.errors import ConfigError


def load_connector_files(path: Path) -> list[tuple[str, dict[str, Any]]]:
    """``(name, config)`` for a JSON file, or for every ``*.json`` file of a directory
    (sorted by name). A file holds Kafka's ``{"name": ..., "config": {...}}`` or a flat
    config with a ``name`` key. Every file is read before any is applied, so one bad
    file applies nothing; `ConfigError` names the file and the problem."""
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix == ".json" and p.is_file())
        if not files:
            raise ConfigError(str(path), "holds no .json files")
    elif path.is_file():
        files = [path]
    else:
        raise ConfigError(str(path), "no such file or directory")
    out: list[tuple[str, dict[str, Any]]] = []
    seen: dict[str, Path] = {}
    for file in files:
        name, config = connector_from_json(file.read_text(encoding="utf-8"), str(file))
        if name in seen:
            raise ConfigError(str(file), f"connector {name!r} is also defined in {seen[name]}")
        seen[name] = file
        out.append((name, config))
    return out


def connector_from_json(text: str, source: str) -> tuple[str, dict[str, Any]]:
    """The name and config in one file's JSON text (``source`` names it in errors)."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise ConfigError(source, f"is not valid JSON ({error.msg}, line {error.lineno})") from None
    if not isinstance(data, dict):
        raise ConfigError(source, "must hold a JSON object")
    if "config" in data and isinstance(data["config"], dict):
        config = dict(data["config"])
        name = data.get("name", config.get("name"))
        if config.get("name", name) != name:
            raise ConfigError(source, f"name {name!r} differs from config name {config['name']!r}")
    else:
        config = dict(data)
        name = config.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(source, 'names no connector: add a "name"')
    config.pop("name", None)  # the URL names it; the server puts it back
    return name.strip(), config


def table(rows: list[list[str]]) -> str:
    """Left-aligned columns separated by two spaces."""
    if not rows:
        return ""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


def connectors_table(expanded: Mapping[str, Mapping[str, Any]]) -> str:
    """``GET /connectors?expand=status`` as NAME, TYPE, STATE, TASKS (running/total)."""
    rows = [["NAME", "TYPE", "STATE", "TASKS"]]
    for name in sorted(expanded):
        status = expanded[name].get("status") or {}
        tasks = status.get("tasks", [])
        running = sum(1 for t in tasks if t.get("state") == "RUNNING")
        failed = sum(1 for t in tasks if t.get("state") == "FAILED")
        count = f"{running}/{len(tasks)}" + (f" ({failed} FAILED)" if failed else "")
        state = status.get("connector", {}).get("state", "?")
        rows.append([name, status.get("type", "?"), state, count])
    return table(rows)


_BAR_WIDTH = 20


def progress_bar(progress: Mapping[str, Any]) -> str:
    """A task's ``progress`` as text: ``snapshot [#########-----------] 45% 4500/10000``,
    or ``snapshot 4500`` when the total is unknown. The percentage is capped at 100
    (totals are estimates)."""
    phase, done, total = (
        progress.get("phase", ""),
        int(progress.get("done", 0)),
        progress.get("total"),
    )
    if not total:
        return f"{phase} {done}"
    fraction = min(1.0, done / int(total))
    filled = round(fraction * _BAR_WIDTH)
    bar = "#" * filled + "-" * (_BAR_WIDTH - filled)
    return f"{phase} [{bar}] {fraction:.0%} {done}/{total}"


def has_progress(status: Mapping[str, Any]) -> bool:
    """True when a task of the status reports a progress (a long phase still runs)."""
    return any(task.get("progress") for task in status.get("tasks", []))


def status_table(status: Mapping[str, Any]) -> str:
    """``GET /connectors/{name}/status`` as one row for the connector and one per task
    (with its progress bar while it reports one); below a failed one, the last line of
    its trace (the error)."""
    connector = status.get("connector", {})
    show_progress = has_progress(status)
    header = ["", "STATE", "WORKER"] + (["PROGRESS"] if show_progress else [])
    rows = [header, ["connector", connector.get("state", "?"), connector.get("worker_id", "")]]
    if show_progress:
        rows[1].append("")
    traces: dict[int, str] = {}
    if connector.get("trace"):
        traces[1] = connector["trace"]
    for task in status.get("tasks", []):
        row = [f"task {task.get('id')}", task.get("state", "?"), task.get("worker_id", "")]
        if show_progress:
            row.append(progress_bar(task["progress"]) if task.get("progress") else "")
        rows.append(row)
        if task.get("trace"):
            traces[len(rows) - 1] = task["trace"]
    lines = table(rows).split("\n")
    out = [f"{status.get('name', '')} ({status.get('type', '?')})"]
    for index, line in enumerate(lines):
        out.append(line)
        if index in traces:
            trace_lines = traces[index].strip().splitlines()
            out.append(f"    {trace_lines[-1] if trace_lines else ''}")
    return "\n".join(out)
