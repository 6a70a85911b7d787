"""The ``embedded`` driver: the bundled broker, in this process or over TCP.

* ``oms:embedded://local/<ns>`` runs the broker in this process. Its data directory
  is the ``data_dir`` attribute (default ``./omconnect-data``); its flush mode the
  ``flush_mode`` attribute (``async`` or ``sync``). Access points of one process
  that name the same directory share one broker, closed with the last of them.
* ``oms:embedded://host:port[,host2:port2]/<ns>`` talks to ``omconnect broker``
  servers over TCP (port 9876 if none is given), trying the hosts in order.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, cast

from omconnect.broker.api import BrokerApi
from omconnect.errors import ConfigError
from omconnect.url import AccessPointUrl

IN_PROCESS_HOST = "local"
DEFAULT_PORT = 9876


class EmbeddedDriver:
    """Opens an in-process `Broker` or a `BrokerClient` (see the module docstring)."""

    def open(self, url: AccessPointUrl) -> BrokerApi:
        """The backend ``url`` names."""
        hosts = url.hosts
        if any(h.host == IN_PROCESS_HOST for h in hosts):
            if len(hosts) != 1 or hosts[0].port is not None:
                raise ConfigError("url", "'local' (in-process) takes no port and no other hosts")
            return _open_in_process(url.attributes)
        from omconnect.broker.client import BrokerClient

        addresses = [f"{h.host}:{h.port or DEFAULT_PORT}" for h in hosts]
        return BrokerClient(addresses)


_lock = threading.Lock()
_shared: dict[Path, tuple[BrokerApi, int]] = {}


def _open_in_process(attributes: dict[str, str]) -> BrokerApi:
    from omconnect.broker.config import BrokerConfig, StoreConfig

    data_dir = Path(attributes.get("data_dir", "omconnect-data")).resolve()
    options: dict[str, Any] = {}
    if "flush_mode" in attributes:
        if attributes["flush_mode"] not in ("async", "sync"):
            raise ConfigError("flush_mode", "must be 'async' or 'sync'")
        options["flush_mode"] = attributes["flush_mode"]
    with _lock:
        entry = _shared.get(data_dir)
        if entry is None:
            from omconnect.broker.broker import Broker

            config = BrokerConfig(data_dir=data_dir, store=StoreConfig(**options))
            entry = (Broker(config), 0)
        broker, count = entry
        _shared[data_dir] = (broker, count + 1)
    return cast(BrokerApi, _SharedBroker(broker, data_dir))


class _SharedBroker:
    """A handle on a shared in-process broker: `close` closes it with the last handle."""

    def __init__(self, broker: BrokerApi, data_dir: Path) -> None:
        self._broker = broker
        self._data_dir = data_dir
        self._closed = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._broker, name)

    def close(self) -> None:
        with _lock:
            if self._closed:
                return
            self._closed = True
            broker, count = _shared[self._data_dir]
            if count <= 1:
                del _shared[self._data_dir]
                broker.close()
            else:
                _shared[self._data_dir] = (broker, count - 1)
