"""Start ``omconnect broker`` as a separate process (for tests and benchmarks)."""

from __future__ import annotations

import sys
from pathlib import Path

from omconnect.testing.services import ServerProcess, start_server


def start_broker(
    workdir: Path,
    *,
    flush_mode: str = "async",
    data_dir: Path | None = None,
    extra_args: tuple[str, ...] = (),
) -> ServerProcess:
    """Run ``omconnect broker`` on a free loopback port with its data in
    ``data_dir`` (default ``workdir/data``); returns once it accepts connections."""
    data = data_dir or workdir / "data"
    return start_server(
        "omconnect-broker",
        lambda port: [
            sys.executable,
            "-m",
            "omconnect.cli",
            "broker",
            "--data-dir",
            str(data),
            "--port",
            str(port),
            "--flush-mode",
            flush_mode,
            *extra_args,
        ],
        workdir,
    )
