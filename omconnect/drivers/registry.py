"""Find the driver for an ``oms:<driver>://`` URL.

Built-in drivers are lazy ``"module:Class"`` strings; others come from the
``omconnect.drivers`` entry-point group of installed distributions. A driver is a
class whose instances have ``open(url) -> BrokerApi``.
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from typing import Protocol

from omconnect.broker.api import BrokerApi
from omconnect.errors import ConfigError
from omconnect.url import AccessPointUrl

BUILTIN_DRIVERS: dict[str, str] = {
    "embedded": "omconnect.drivers.embedded:EmbeddedDriver",
}


class Driver(Protocol):
    """Opens the backend behind an access-point URL.

    The backend implements `BrokerApi`: partitioned append/read with integer
    offsets, group offsets, delayed and half messages, and the key-value store
    with revisions. Producers, consumers and groups are built on it, the same
    for every driver; `omconnect.testing.conformance` checks a driver keeps it.
    """

    def open(self, url: AccessPointUrl) -> BrokerApi:
        """Connect (or start) what ``url`` names; raise ConfigError for a bad URL."""
        ...


def available_drivers() -> dict[str, str]:
    """Driver name → ``module:Class`` for the built-ins and every installed plugin."""
    found = dict(BUILTIN_DRIVERS)
    for ep in entry_points(group="omconnect.drivers"):
        found.setdefault(ep.name, ep.value)
    return found


def load_driver(name: str) -> Driver:
    """An instance of the driver called ``name``; `ConfigError` lists the known ones."""
    drivers = available_drivers()
    target = drivers.get(name)
    if target is None:
        known = ", ".join(sorted(drivers))
        raise ConfigError("url", f"unknown driver {name!r}; installed drivers: {known}")
    module_name, _, class_name = target.partition(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    driver: Driver = cls()
    return driver
