"""`TableMonitor`: notices tables created or dropped while the SQL source runs.

Confluent's JDBC source does the same with ``table.poll.interval.ms``: a background
thread lists the tables again and again; when the selection differs from the one the
tasks were planned with, the connector asks the runtime to re-plan them.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from omconnect.connectors.sql.source_tables import TableId

log = logging.getLogger(__name__)


class TableMonitor:
    """Calls ``list_tables`` every ``interval_s`` on its own thread, and ``on_change``
    with the new selection whenever it differs from the previous one (starting from
    ``known``). A failed listing is logged and tried again at the next interval."""

    def __init__(
        self,
        list_tables: Callable[[], list[TableId]],
        known: list[TableId],
        interval_s: float,
        on_change: Callable[[list[TableId]], None],
    ) -> None:
        self._list_tables = list_tables
        self._known = sorted(known, key=lambda t: (t.schema or "", t.name))
        self._interval_s = interval_s
        self._on_change = on_change
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sql-source-tables", daemon=True)

    def start(self) -> None:
        """Start watching."""
        self._thread.start()

    def stop(self) -> None:
        """Stop watching; returns once the thread ended (or after a few seconds when a
        listing hangs: the thread is a daemon)."""
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5.0)

    def _run(self) -> None:
        while not self._stopping.wait(self._interval_s):
            try:
                tables = sorted(self._list_tables(), key=lambda t: (t.schema or "", t.name))
            except Exception as exc:  # the database may be down for a while: retry later
                log.warning("listing the tables failed (retrying): %s", exc)
                continue
            if tables != self._known and not self._stopping.is_set():
                log.info("the selected tables changed: %s", ", ".join(map(str, tables)))
                self._known = tables
                self._on_change(tables)
