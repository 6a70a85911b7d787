"""Parse OpenMessaging access-point URLs.

The form is the OpenMessaging specification's::

    oms:<driver>://[account@]host[:port][,host2[:port2]...]/<namespace>[?key=value&...]

``oms:embedded://127.0.0.1:9876/shop`` reaches a bundled broker over TCP;
``oms:embedded://local/shop`` runs one in this process (its data directory comes
from the ``data_dir`` attribute). Query parameters become string attributes that the
driver reads; attributes passed in code override them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

from omconnect.errors import ConfigError

_NAME = re.compile(r"^[A-Za-z0-9._-]{1,200}$")
_DRIVER = re.compile(r"^[a-z][a-z0-9_-]*$")
_HOST = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+)$")


@dataclass(frozen=True, slots=True)
class HostPort:
    """One server address; ``port`` is None when the URL gave none."""

    host: str
    port: int | None

    def __str__(self) -> str:
        return self.host if self.port is None else f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class AccessPointUrl:
    """A parsed ``oms:`` URL."""

    driver: str
    hosts: tuple[HostPort, ...]
    namespace: str
    account: str = ""
    attributes: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        account = f"{self.account}@" if self.account else ""
        hosts = ",".join(str(h) for h in self.hosts)
        query = "&".join(f"{k}={v}" for k, v in self.attributes.items())
        return f"oms:{self.driver}://{account}{hosts}/{self.namespace}" + (
            f"?{query}" if query else ""
        )


def parse_url(url: str) -> AccessPointUrl:
    """Parse and validate ``url``; `ConfigError` says which part is wrong and why."""
    if not isinstance(url, str) or not url.startswith("oms:"):
        raise ConfigError("url", f"{url!r} must start with 'oms:' (oms:<driver>://host:port/ns)")
    rest = url[4:]
    driver, sep, rest = rest.partition("://")
    if not sep:
        raise ConfigError("url", f"{url!r} lacks '://' after the driver name")
    if not _DRIVER.match(driver):
        raise ConfigError("url", f"driver name {driver!r} must be lower-case letters and digits")
    rest, _, query = rest.partition("?")
    authority, slash, namespace = rest.partition("/")
    if not slash or not namespace:
        raise ConfigError("url", f"{url!r} names no namespace (…/<namespace> at the end)")
    if not _NAME.match(namespace):
        raise ConfigError(
            "url", f"namespace {namespace!r} may hold only letters, digits, '.', '_' and '-'"
        )
    account, at, host_list = authority.rpartition("@")
    if not at:
        account, host_list = "", authority
    if not host_list:
        raise ConfigError("url", f"{url!r} names no host")
    hosts = tuple(_parse_host(part, url) for part in host_list.split(","))
    attributes = dict(parse_qsl(query, keep_blank_values=True, strict_parsing=False))
    return AccessPointUrl(driver, hosts, namespace, account, attributes)


def _parse_host(part: str, url: str) -> HostPort:
    if not part:
        raise ConfigError("url", f"{url!r} has an empty host in its host list")
    host, port_text = part, ""
    if part.startswith("["):  # [ipv6]:port
        end = part.find("]")
        host, port_text = part[: end + 1], part[end + 2 :] if end + 1 < len(part) else ""
    elif ":" in part:
        host, _, port_text = part.rpartition(":")
    if not _HOST.match(host):
        raise ConfigError("url", f"host {host!r} in {url!r} is not a valid host name or address")
    if not port_text:
        return HostPort(host, None)
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ConfigError("url", f"port {port_text!r} in {url!r} must be a number 1-65535")
    return HostPort(host, int(port_text))
