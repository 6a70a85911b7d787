"""What the server must offer before the source starts: binlog settings and the
user's privileges. `check_preconditions` decides (pure); `read_server_state` reads
what it needs (I/O). Each problem names the variable or privilege and the fix.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

VARIABLES = (
    "version",
    "log_bin",
    "binlog_format",
    "binlog_row_image",
    "binlog_row_metadata",
    "server_id",
    "log_bin_compress",
    "binlog_transaction_compression",
    "gtid_mode",
    "gtid_binlog_pos",
)

# The value each variable must have, the fix, and where to make it permanent.
_REQUIRED = (
    ("binlog_format", "ROW", "SET GLOBAL binlog_format=ROW"),
    ("binlog_row_image", "FULL", "SET GLOBAL binlog_row_image=FULL"),
    ("binlog_row_metadata", "FULL", "SET GLOBAL binlog_row_metadata=FULL"),
)
_GRANT = re.compile(r"^GRANT (.+?) ON (\S+) TO ", re.IGNORECASE)


def is_mariadb(version: str) -> bool:
    """Whether ``SELECT VERSION()`` names a MariaDB server."""
    return "mariadb" in version.lower()


def check_preconditions(
    variables: Mapping[str, str],
    grants: Sequence[str],
    *,
    replica_server_id: int | None = None,
    snapshot: bool = True,
) -> list[str]:
    """Every reason the source cannot run against a server with these global
    ``variables`` (name → value, names lower-case, as ``SHOW GLOBAL VARIABLES``)
    and ``grants`` (the ``SHOW GRANTS`` lines of the connector's user); empty when
    all is well. ``snapshot``: whether the snapshot's privileges are needed."""
    problems: list[str] = []
    mariadb = is_mariadb(variables.get("version", ""))
    if variables.get("log_bin", "").upper() not in ("ON", "1"):
        problems.append(
            "log_bin is OFF: the binary log is not written. Start the server with "
            "log-bin (my.cnf: log_bin=binlog) and a server_id"
        )
    for name, wanted, fix in _REQUIRED:
        value = variables.get(name)
        if value is None:
            problems.append(
                f"{name} does not exist on this server: it needs MySQL 8.0.14+ or "
                f"MariaDB 10.5+ with {name}={wanted}"
            )
        elif value.upper() != wanted:
            problems.append(
                f"{name} is {value}, it must be {wanted}: run `{fix}` (and set "
                f"{name}={wanted} in my.cnf so it survives a restart); sessions opened "
                "before keep the old value"
            )
    if variables.get("log_bin_compress", "OFF").upper() in ("ON", "1"):
        problems.append(
            "log_bin_compress is ON: compressed binlog events cannot be decoded. Run "
            "`SET GLOBAL log_bin_compress=OFF` (and in my.cnf)"
        )
    if variables.get("binlog_transaction_compression", "OFF").upper() in ("ON", "1"):
        problems.append(
            "binlog_transaction_compression is ON: compressed transaction payloads "
            "cannot be decoded. Run `SET GLOBAL binlog_transaction_compression=OFF` "
            "(and in my.cnf)"
        )
    if replica_server_id is not None and variables.get("server_id") == str(replica_server_id):
        problems.append(
            f"database.server.id {replica_server_id} is the server's own server_id: "
            "choose another, unique among its replicas"
        )
    problems.extend(_privilege_problems(parse_grants(grants), mariadb, snapshot))
    return problems


@dataclass(frozen=True, slots=True)
class Privileges:
    """What the ``SHOW GRANTS`` lines give: global privileges, and whether SELECT is
    granted anywhere."""

    global_privileges: frozenset[str]
    select_somewhere: bool


def parse_grants(grants: Sequence[str]) -> Privileges:
    """Read ``GRANT <privileges> ON <what> TO ...`` lines; ``ALL PRIVILEGES`` counts
    as every privilege. Roles and column grants are not resolved."""
    global_privileges: set[str] = set()
    select = False
    for line in grants:
        match = _GRANT.match(line.strip())
        if match is None:
            continue
        privileges = {_normal(p) for p in _split_privileges(match.group(1))}
        on_global = match.group(2).replace("`", "") == "*.*"
        if on_global:
            global_privileges |= privileges
        if "SELECT" in privileges or "ALL PRIVILEGES" in privileges:
            select = True
    return Privileges(frozenset(global_privileges), select)


def _split_privileges(text: str) -> list[str]:
    # Column lists "SELECT (a, b)" contain commas: split outside parentheses only.
    parts: list[str] = []
    current: list[str] = []
    depth = 0
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return [p.split("(")[0].strip() for p in parts if p.strip()]


def _normal(privilege: str) -> str:
    return " ".join(privilege.upper().split())


def _privilege_problems(privileges: Privileges, mariadb: bool, snapshot: bool) -> list[str]:
    have = privileges.global_privileges
    if "ALL PRIVILEGES" in have:
        return []
    problems = []
    replication = {"REPLICATION SLAVE", "REPLICATION REPLICA"}
    if not have & replication:
        problems.append(
            "the user lacks REPLICATION SLAVE: GRANT REPLICATION SLAVE ON *.* TO <user>"
        )
    monitor = {"REPLICATION CLIENT", "BINLOG MONITOR"}
    if not have & monitor:
        name = "BINLOG MONITOR" if mariadb else "REPLICATION CLIENT"
        problems.append(f"the user lacks {name}: GRANT {name} ON *.* TO <user>")
    if not privileges.select_somewhere:
        problems.append("the user lacks SELECT: GRANT SELECT ON <db>.* TO <user>")
    if snapshot and not mariadb and "RELOAD" not in have:
        problems.append(
            "the user lacks RELOAD, which the MySQL snapshot needs for FLUSH TABLES WITH "
            "READ LOCK: GRANT RELOAD ON *.* TO <user> (or snapshot.mode=no_data/never)"
        )
    return problems


def read_server_state(connection: Any) -> tuple[dict[str, str], list[str]]:
    """The global variables `check_preconditions` reads (absent ones left out) and
    the ``SHOW GRANTS`` lines of the current user."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT VERSION()")
        variables = {"version": str(cursor.fetchone()[0])}
        placeholders = ", ".join(["%s"] * len(VARIABLES))
        cursor.execute(f"SHOW GLOBAL VARIABLES WHERE Variable_name IN ({placeholders})", VARIABLES)
        for name, value in cursor.fetchall():
            variables[str(name).lower()] = str(value)
        cursor.execute("SHOW GRANTS")
        grants = [str(row[0]) for row in cursor.fetchall()]
    return variables, grants
