"""The ``omconnect`` command line.

Exit codes (also in ``docs/cli.md``):

====  =====================================================================
0     success
1     an unexpected internal error (a bug: the traceback goes to the log)
2     usage error: unknown command or option, missing argument
3     invalid configuration or argument (`ConfigError`): the key and reason
4     not found (`NotFoundError`): an unknown namespace, queue or key
5     retriable: the broker could not be reached or timed out
6     fatal: corrupt data or another unrecoverable error
====  =====================================================================

Every user mistake prints one line to stderr, never a traceback.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from omconnect.errors import (
    ConfigError,
    FatalError,
    NotFoundError,
    OmConnectError,
    RetriableError,
)

EXIT_OK, EXIT_INTERNAL, EXIT_USAGE, EXIT_CONFIG, EXIT_NOT_FOUND, EXIT_RETRIABLE, EXIT_FATAL = range(
    7
)
DEFAULT_URL = "oms:embedded://127.0.0.1:9876/default"

log = logging.getLogger("omconnect.cli")
app = typer.Typer(
    help="omconnect: an OpenMessaging Connect runtime on a bundled broker.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
queues_app = typer.Typer(help="Create, list and delete queues.", no_args_is_help=True)
app.add_typer(queues_app, name="queues")
connectors_app = typer.Typer(
    help="Manage connectors through a worker's REST API (Kafka Connect's).",
    no_args_is_help=True,
)
app.add_typer(connectors_app, name="connectors")

UrlOption = Annotated[
    str,
    typer.Option(
        "--url",
        "-u",
        envvar="OMCONNECT_URL",
        help="Access point, oms:<driver>://host:port/<namespace>; "
        "oms:embedded://local/<ns>?data_dir=DIR runs the broker in this process.",
    ),
]


def exit_code_for(error: BaseException) -> int:
    """The documented exit code for an error."""
    if isinstance(error, ConfigError):
        return EXIT_CONFIG
    if isinstance(error, NotFoundError):
        return EXIT_NOT_FOUND
    if isinstance(error, RetriableError):
        return EXIT_RETRIABLE
    if isinstance(error, FatalError | OmConnectError):
        return EXIT_FATAL
    return EXIT_INTERNAL


@contextmanager
def _user_errors() -> Iterator[None]:
    try:
        yield
    except OmConnectError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(exit_code_for(exc)) from None
    except OSError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_RETRIABLE) from None


@contextmanager
def _access_point(url: str) -> Iterator[Any]:
    from omconnect.access_point import MessagingAccessPoint

    with _user_errors(), MessagingAccessPoint.open(url) as ap:
        yield ap


@app.command()
def broker(
    data_dir: Annotated[Path, typer.Option(help="Where the commit log and indexes live.")] = Path(
        "omconnect-data"
    ),
    host: Annotated[str, typer.Option(help="Address to bind; 0.0.0.0 for all.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port of the broker protocol.")] = 9876,
    flush_mode: Annotated[
        str, typer.Option(help="async (page cache + interval) or sync (fsync before ack).")
    ] = "async",
    metrics_port: Annotated[
        int, typer.Option(help="Serve Prometheus /metrics on this port (0: off).")
    ] = 0,
) -> None:
    """Run the bundled broker as a TCP server until SIGTERM or Ctrl-C."""
    from omconnect.broker.broker import Broker
    from omconnect.broker.config import BrokerConfig, StoreConfig
    from omconnect.broker.server import BrokerServer

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    with _user_errors():
        if flush_mode not in ("async", "sync"):
            raise ConfigError("--flush-mode", "must be 'async' or 'sync'")
        config = BrokerConfig(
            data_dir=data_dir,
            host=host,
            port=port,
            store=StoreConfig(flush_mode="sync" if flush_mode == "sync" else "async"),
        )
        the_broker = Broker(config)
        try:
            if metrics_port:
                from prometheus_client import start_http_server

                start_http_server(metrics_port, addr=host, registry=the_broker.metrics_registry)
            BrokerServer(
                the_broker, host=host, port=port, max_frame_bytes=config.max_frame_bytes
            ).run()
        finally:
            the_broker.close()


@app.command()
def standalone(
    worker_config: Annotated[Path, typer.Argument(help="Worker config (JSON).")],
    connector_configs: Annotated[
        list[Path], typer.Argument(help="Connector configs (JSON), one or more.")
    ],
) -> None:
    """Run connectors in this process until SIGTERM or Ctrl-C (offsets kept locally)."""
    from omconnect.runtime.standalone import run_standalone

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    with _user_errors():
        run_standalone(worker_config, connector_configs)


@app.command()
def worker(
    worker_config: Annotated[Path, typer.Argument(help="Worker config (JSON).")],
) -> None:
    """Run a distributed worker: join group.id on the access point, serve the REST API,
    run the connectors and tasks assigned to it, until SIGTERM or Ctrl-C."""
    from omconnect.runtime.distributed_main import run_distributed

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    with _user_errors():
        run_distributed(worker_config)


@queues_app.command("create")
def queues_create(
    name: str,
    partitions: Annotated[int, typer.Option("--partitions", "-p", min=1)] = 1,
    url: UrlOption = DEFAULT_URL,
) -> None:
    """Create a queue (idempotent)."""
    with _access_point(url) as ap:
        info = ap.resources.create_queue(name, partitions)
    typer.echo(f"{info.name}\t{info.partitions}")


@queues_app.command("list")
def queues_list(url: UrlOption = DEFAULT_URL) -> None:
    """List the namespace's queues with their partition counts."""
    with _access_point(url) as ap:
        for info in ap.resources.list_queues():
            typer.echo(f"{info.name}\t{info.partitions}")


@queues_app.command("delete")
def queues_delete(name: str, url: UrlOption = DEFAULT_URL) -> None:
    """Delete a queue."""
    with _access_point(url) as ap:
        ap.resources.delete_queue(name)


@app.command()
def produce(
    queue: str,
    file: Annotated[
        Path | None, typer.Option("--file", "-f", help="Read lines from this file, not stdin.")
    ] = None,
    key: Annotated[str, typer.Option(help="Message key for every line (keeps order).")] = "",
    url: UrlOption = DEFAULT_URL,
) -> None:
    """Send each input line (without its newline) as one message."""
    from omconnect.message import Message

    with _access_point(url) as ap:
        ap.resources.queue_info(queue)  # fail before reading input
        producer = ap.create_producer()
        source = file.open("rb") if file is not None else sys.stdin.buffer
        sent = 0
        batch: list[Message] = []
        with source:
            for line in source:
                batch.append(Message(line.rstrip(b"\r\n"), destination=queue, message_key=key))
                if len(batch) >= 500:
                    sent += len(producer.send_batch(batch))
                    batch = []
            if batch:
                sent += len(producer.send_batch(batch))
    typer.echo(f"sent {sent} messages to {queue}", err=True)


@app.command()
def consume(
    queue: str,
    group: Annotated[str, typer.Option(help="Consumer group (offsets are kept per group).")] = (
        "omconnect-cli"
    ),
    from_beginning: Annotated[
        bool,
        typer.Option(
            "--from-beginning",
            help="Start at the oldest message if the group "
            "has no committed offset (else at the newest).",
        ),
    ] = False,
    max_messages: Annotated[int, typer.Option(help="Stop after this many (0: no limit).")] = 0,
    idle_timeout_ms: Annotated[
        int, typer.Option(help="Stop after this long without a message (0: never).")
    ] = 0,
    output: Annotated[str, typer.Option(help="raw (the body) or json (headers too).")] = "raw",
    url: UrlOption = DEFAULT_URL,
) -> None:
    """Print a queue's messages to stdout, one per line, acking each."""
    if output not in ("raw", "json"):
        typer.echo("error: --output: must be 'raw' or 'json'", err=True)
        raise typer.Exit(EXIT_CONFIG)
    with _access_point(url) as ap:
        start = "earliest" if from_beginning else "latest"
        consumer = ap.create_pull_consumer(group, [queue], start_from=start)
        count = 0
        idle_since = time.monotonic()
        try:
            while not max_messages or count < max_messages:
                want = 500 if not max_messages else min(500, max_messages - count)
                messages = consumer.batch_receive(want, timeout_ms=200)
                if not messages:
                    if (
                        idle_timeout_ms
                        and (time.monotonic() - idle_since) * 1000 >= idle_timeout_ms
                    ):
                        break
                    continue
                idle_since = time.monotonic()
                for message in messages:
                    _print_message(message, output)
                    consumer.ack(message)
                count += len(messages)
                sys.stdout.flush()
        except KeyboardInterrupt:
            pass


def _print_message(message: Any, output: str) -> None:
    if output == "raw":
        sys.stdout.buffer.write(message.body + b"\n")
        return
    record = {
        **message.header_dict(),
        "properties": message.properties,
        "body": message.body.decode("utf-8", "backslashreplace"),
    }
    sys.stdout.write(json.dumps(record) + "\n")


# --- omconnect connectors: the REST API from the command line -------------------------

DEFAULT_REST_URL = "http://127.0.0.1:8083"
RestUrlOption = Annotated[
    str,
    typer.Option(
        "--rest-url", envvar="OMCONNECT_REST_URL", help="A worker's REST API (any worker)."
    ),
]
TokenOption = Annotated[
    str | None,
    typer.Option(
        "--token",
        envvar="OMCONNECT_REST_TOKEN",
        help="Bearer token (rest.auth.bearer.token).",
        show_default=False,
    ),
]
UserOption = Annotated[
    str | None,
    typer.Option(
        "--user",
        envvar="OMCONNECT_REST_USER",
        help="user:password for basic auth (rest.auth.basic.users).",
        show_default=False,
    ),
]
OutputOption = Annotated[
    str, typer.Option("--output", "-o", help="table (short) or json (Kafka Connect's JSON).")
]


def exit_code_for_http(status: int) -> int:
    """The exit code for an HTTP error answer: 400 and other client errors → 3,
    404 → 4, 409 (conflict, rebalance in progress) → 5, server errors → 6."""
    if status == 404:
        return EXIT_NOT_FOUND
    if status == 409:
        return EXIT_RETRIABLE
    if status >= 500:
        return EXIT_FATAL
    return EXIT_CONFIG


@contextmanager
def _rest_client(rest_url: str, token: str | None, user: str | None) -> Iterator[Any]:
    from omconnect.runtime.rest.client import RestClient, RestClientError

    with _user_errors():
        try:
            yield RestClient(rest_url, token=token, basic=user)
        except RestClientError as exc:
            typer.echo(f"error: {exc.message}", err=True)
            raise typer.Exit(exit_code_for_http(exc.status)) from None


def _check_output(output: str) -> None:
    if output not in ("table", "json"):
        typer.echo("error: --output: must be 'table' or 'json'", err=True)
        raise typer.Exit(EXIT_CONFIG)


def _echo_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2, sort_keys=False))


@connectors_app.command("list")
def connectors_list(
    output: OutputOption = "table",
    rest_url: RestUrlOption = DEFAULT_REST_URL,
    token: TokenOption = None,
    user: UserOption = None,
) -> None:
    """List connectors with their type, state and running tasks."""
    from omconnect.runtime.rest.commands import connectors_table

    _check_output(output)
    with _rest_client(rest_url, token, user) as client:
        expanded = client.connectors(expand=["status"])
    if output == "json":
        _echo_json(expanded)
    elif expanded:
        typer.echo(connectors_table(expanded))


@connectors_app.command("get")
def connectors_get(
    name: str,
    rest_url: RestUrlOption = DEFAULT_REST_URL,
    token: TokenOption = None,
    user: UserOption = None,
) -> None:
    """Print a connector's config (secrets hidden) and tasks as JSON."""
    with _rest_client(rest_url, token, user) as client:
        _echo_json(client.connector(name))


@connectors_app.command("status")
def connectors_status(
    name: str,
    output: OutputOption = "table",
    watch: Annotated[
        float,
        typer.Option(
            "--watch",
            "-w",
            help="Redraw every this many seconds while a task reports progress (e.g. a"
            " snapshot), then print the final status. 0: print once.",
            min=0,
        ),
    ] = 0,
    rest_url: RestUrlOption = DEFAULT_REST_URL,
    token: TokenOption = None,
    user: UserOption = None,
) -> None:
    """Show the state of a connector and each of its tasks, with a progress bar for a
    task in a long phase (a CDC source's snapshot: rows done of the estimate)."""
    from omconnect.runtime.rest.commands import has_progress, status_table

    _check_output(output)
    with _rest_client(rest_url, token, user) as client:
        status = client.status(name)
        while watch and output == "table" and has_progress(status):
            typer.echo(status_table(status))
            time.sleep(watch)
            status = client.status(name)
    if output == "json":
        _echo_json(status)
    else:
        typer.echo(status_table(status))


@connectors_app.command("apply")
def connectors_apply(
    file: Annotated[
        Path,
        typer.Option(
            "--file", "-f", help="A connector JSON file, or a directory of them (*.json)."
        ),
    ],
    output: OutputOption = "table",
    rest_url: RestUrlOption = DEFAULT_REST_URL,
    token: TokenOption = None,
    user: UserOption = None,
) -> None:
    """Create or update connectors from JSON files (PUT /connectors/NAME/config).

    Every file is read first: one bad file applies nothing."""
    from omconnect.runtime.rest.commands import load_connector_files

    _check_output(output)
    with _user_errors():
        connectors = load_connector_files(file)
    infos = []
    with _rest_client(rest_url, token, user) as client:
        for name, config in connectors:
            created, info = client.put_config(name, config)
            infos.append(info)
            if output == "table":
                typer.echo(f"{name} {'created' if created else 'configured'}")
    if output == "json":
        _echo_json(infos)


def _connector_action(
    verb: str, done: str, name: str, url: str, token: str | None, user: str | None
) -> None:
    with _rest_client(url, token, user) as client:
        if verb == "delete":
            client.delete(name)
        else:
            client.action(name, verb)
    typer.echo(f"{name} {done}")


@connectors_app.command("pause")
def connectors_pause(
    name: str,
    rest_url: RestUrlOption = DEFAULT_REST_URL,
    token: TokenOption = None,
    user: UserOption = None,
) -> None:
    """Pause a connector's tasks (they keep their place)."""
    _connector_action("pause", "paused", name, rest_url, token, user)


@connectors_app.command("resume")
def connectors_resume(
    name: str,
    rest_url: RestUrlOption = DEFAULT_REST_URL,
    token: TokenOption = None,
    user: UserOption = None,
) -> None:
    """Resume a paused or stopped connector."""
    _connector_action("resume", "resumed", name, rest_url, token, user)


@connectors_app.command("stop")
def connectors_stop(
    name: str,
    rest_url: RestUrlOption = DEFAULT_REST_URL,
    token: TokenOption = None,
    user: UserOption = None,
) -> None:
    """Stop a connector and its tasks; the config stays (resume starts it again)."""
    _connector_action("stop", "stopped", name, rest_url, token, user)


@connectors_app.command("delete")
def connectors_delete(
    name: str,
    rest_url: RestUrlOption = DEFAULT_REST_URL,
    token: TokenOption = None,
    user: UserOption = None,
) -> None:
    """Stop and remove a connector (its offsets stay)."""
    _connector_action("delete", "deleted", name, rest_url, token, user)


@connectors_app.command("restart")
def connectors_restart(
    name: str,
    include_tasks: Annotated[
        bool, typer.Option("--include-tasks", help="Restart the tasks too.")
    ] = False,
    only_failed: Annotated[
        bool, typer.Option("--only-failed", help="Restart only FAILED instances.")
    ] = False,
    output: OutputOption = "table",
    rest_url: RestUrlOption = DEFAULT_REST_URL,
    token: TokenOption = None,
    user: UserOption = None,
) -> None:
    """Restart a connector and, if asked, its (failed) tasks; prints the status then."""
    from omconnect.runtime.rest.commands import status_table

    _check_output(output)
    with _rest_client(rest_url, token, user) as client:
        status = client.restart(name, include_tasks, only_failed)
    if status is None:
        typer.echo(f"{name} restarted")
    elif output == "json":
        _echo_json(status)
    else:
        typer.echo(status_table(status))


@connectors_app.command("offsets")
def connectors_offsets(
    name: str,
    rest_url: RestUrlOption = DEFAULT_REST_URL,
    token: TokenOption = None,
    user: UserOption = None,
) -> None:
    """Print a connector's committed offsets as Kafka Connect's JSON."""
    with _rest_client(rest_url, token, user) as client:
        _echo_json(client.offsets(name))


# -- offline connector tools: validate, plugins -------------------------------------------
plugins_app = typer.Typer(
    help="List and describe the installed connector plugins.", no_args_is_help=True
)
app.add_typer(plugins_app, name="plugins")


@app.command()
def validate(
    file: Annotated[Path, typer.Argument(help="Connector config: flat JSON or {name, config}.")],
    output: OutputOption = "table",
) -> None:
    """Check a connector config offline (no worker needed): print each invalid key and
    why. Exit 0 if valid, 3 if not. ${env:...} and ${file:...} resolve on this machine."""
    from omconnect.runtime.validation import errors_of, validate_connector_config
    from omconnect.runtime.worker_config import load_json_config

    _check_output(output)
    with _user_errors():
        result = validate_connector_config("", load_json_config(file))
    if output == "json":
        _echo_json(result.as_json())
    else:
        for key, reason in errors_of(result):
            typer.echo(f"{key}: {reason}")
    if result.error_count:
        typer.echo(f"error: {file}: {result.error_count} invalid setting(s)", err=True)
        raise typer.Exit(EXIT_CONFIG)
    if output != "json":
        typer.echo(f"{file}: valid ({result.name})")


@plugins_app.command("list")
def plugins_list(output: OutputOption = "table") -> None:
    """List connector plugins: class, type, version and the aliases that name them."""
    from omconnect.connect.plugins import list_connector_plugins
    from omconnect.runtime.rest.commands import table

    _check_output(output)
    plugins = list_connector_plugins()
    if output == "json":
        _echo_json(
            [
                {"class": p.class_name, "type": p.type, "version": p.version,
                 "aliases": list(p.aliases)}
                for p in plugins
            ]
        )  # fmt: skip
        return
    rows = [[p.class_name, p.type, p.version, ", ".join(p.aliases)] for p in plugins]
    typer.echo(table([["CLASS", "TYPE", "VERSION", "ALIASES"], *rows]))


@plugins_app.command("describe")
def plugins_describe(
    name: Annotated[str, typer.Argument(help="Alias or class path of the plugin.")],
    all_keys: Annotated[
        bool, typer.Option("--all", help="Also the runtime's common and errors.* keys.")
    ] = False,
    output: OutputOption = "table",
) -> None:
    """Each config key of a connector plugin: name, type, default, required, docs."""
    from omconnect.runtime.rest.commands import table
    from omconnect.runtime.validation import plugin_config_keys

    _check_output(output)
    with _user_errors():
        try:
            keys = plugin_config_keys(name, include_common=all_keys)
        except ConfigError as exc:
            raise NotFoundError(f"no connector plugin {name!r}: {exc.reason}") from None
    if output == "json":
        fields = ("name", "type", "required", "default_value", "documentation", "group")
        _echo_json([{f: getattr(k, f) for f in fields} for k in keys])
        return
    rows = [
        [k.name, k.type.upper(), "-" if k.default_value is None else str(k.default_value),
         "yes" if k.required else "no", k.documentation]
        for k in keys
    ]  # fmt: skip
    typer.echo(table([["NAME", "TYPE", "DEFAULT", "REQUIRED", "DOCUMENTATION"], *rows]))


def main() -> None:
    """Entry point of the ``omconnect`` script."""
    try:
        app()
    except Exception:  # a bug: keep the traceback for the log, one line for the user
        log.exception("internal error")
        typer.echo("error: internal error (see the log above); please report it", err=True)
        sys.exit(EXIT_INTERNAL)


if __name__ == "__main__":
    main()
