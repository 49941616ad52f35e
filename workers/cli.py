"""The `avroflow` command line (also `python -m workers`).

Subcommands: ``worker`` runs the Faust worker; ``schemas register`` and ``schemas check`` manage the
.avsc files in schemas/; ``produce`` and ``consume`` are Avro console tools in the spirit of Confluent's
kafka-avro-console-producer/consumer; ``demo`` runs everything on a local broker and registry.
Every command reads the ``AVROFLOW_*`` environment variables the worker reads; `--bootstrap-servers`
and `--registry-url` override the two most often changed ones.

Exit codes: 0 success, 1 the command ran but failed (incompatible schema, undeliverable record, the
broker unreachable ...), 2 bad usage or settings, 3 the Kafka broker refused the credentials or the client
certificate, or its certificate is not trusted (as the worker's refused start), 130 interrupted.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from workers.sample import SCHEMAS_DIR

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_REFUSED = 3
EXIT_INTERRUPTED = 130

Handler = Callable[[argparse.Namespace], int]

_EPILOG = """\
environment:
  AVROFLOW_KAFKA_BOOTSTRAP_SERVERS   host:port[,host:port...] (required by worker, produce, consume)
  AVROFLOW_SCHEMA_REGISTRY_URL       http(s)://host:port[,...] (required)
  AVROFLOW_SCHEMA_REGISTRY_USERNAME / _PASSWORD / _BEARER_TOKEN, AVROFLOW_KAFKA_SECURITY_PROTOCOL,
  AVROFLOW_KAFKA_SASL_* and AVROFLOW_KAFKA_SSL_* as for the worker (see workers/settings.py).

examples:
  avroflow schemas register
  echo '{"event_id":"e1","user_id":"u1","event_type":"click","occurred_at":"2024-05-01T12:00:00Z"}' \\
    | avroflow produce app-events --key-field user_id
  avroflow consume app-events-enriched --from-beginning --max-messages 10
  avroflow consume app-events --from-beginning --timeout 5 --format avro-json \
    | avroflow produce app-events-copy --format avro-json
"""

_FORMATS = ("json", "avro-json")
_FORMAT_HELP = (
    "json (default): natural JSON, as described above. avro-json: Avro's JSON encoding, the form "
    "kafka-avro-console-producer reads and kafka-avro-console-consumer prints: the value only, unions as "
    '{"<branch full name>": value} (null bare), bytes, fixed and decimals as strings of code points '
    "0-255 (\\u00XX), timestamps and dates as their long/int, enums as their symbol, every field "
    'present, NaN and infinities as "NaN", "Infinity", "-Infinity". What consume --format avro-json '
    "prints, produce --format avro-json writes back as the same bytes."
)


def _connection_options() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("connection (override the environment)")
    group.add_argument("--bootstrap-servers", metavar="HOST:PORT", help="Kafka bootstrap servers")
    group.add_argument("--registry-url", metavar="URL", help="schema registry URL(s), comma-separated")
    return parent


def _add_schemas(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    conn = _connection_options()
    schemas = subparsers.add_parser(
        "schemas",
        help="register or check the .avsc files against the registry",
        description="Manage the schemas listed in <dir>/subjects.json (see schemas/README.md).",
    )
    actions = schemas.add_subparsers(dest="schemas_command", metavar="ACTION", required=True)
    for name, text in (
        ("register", "register each file under its subject, in order; print subject, id and version"),
        ("check", "test each file against its subject's latest version; non-zero exit when incompatible"),
    ):
        action = actions.add_parser(name, parents=[conn], help=text, description=text)
        action.add_argument(
            "--dir",
            type=Path,
            default=SCHEMAS_DIR,
            help="folder holding subjects.json and the .avsc files (default: the sample pipeline's, "
            "installed with the package)",
        )
        action.set_defaults(handler=_lazy("workers.cli_schemas", f"cmd_{name}"))


def _add_produce(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    produce = subparsers.add_parser(
        "produce",
        parents=[_connection_options()],
        help="read JSON lines from stdin, encode as Avro with the subject's latest schema, produce",
        description=(
            "Read one JSON object per line from stdin, encode it with the latest schema registered "
            "under SUBJECT (default TOPIC-value) in the Confluent wire format, and produce it to TOPIC. "
            'Accepted JSON: null or the plain value for a nullable union (Avro\'s {"type": value} '
            "form too); epoch milliseconds or an ISO-8601 string for timestamp-millis/micros; an "
            "ISO date or days since the epoch for date; a number or numeric string for decimal; a "
            "string of code points 0-255 for bytes and fixed. For a union of several record types, a "
            "plain object is written as the one record type whose fields it matches (every key a field, "
            "every field without default present), and refused naming the candidates when none or "
            "several match. A line that cannot be encoded stops produce with its line number and field "
            "path (exit 1); the lines before it are produced."
        ),
    )
    produce.add_argument("--format", choices=_FORMATS, default="json", help=_FORMAT_HELP)
    produce.add_argument("topic", metavar="TOPIC")
    produce.add_argument("--subject", help="value subject (default: TOPIC-value)")
    produce.add_argument("--key-field", metavar="FIELD", help="use this field's value (as UTF-8) as the key")
    produce.set_defaults(handler=_lazy("workers.console", "cmd_produce"))


def _add_consume(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    consume = subparsers.add_parser(
        "consume",
        parents=[_connection_options()],
        help="consume Avro messages and print them as JSON lines with their schema id",
        description=(
            'Print one JSON line per message: {"partition", "offset", "timestamp", "key", "schema_id", '
            '"value"}. Timestamps and dates print as ISO-8601 strings, decimals as strings, bytes as '
            "strings of code points 0-255. A message that is not an Avro frame prints with "
            '"error" and its raw value instead of stopping the tool. With --format avro-json, each '
            "line is the value alone in Avro's JSON encoding, as kafka-avro-console-consumer prints it "
            "(a tombstone prints as null); a message that is not an Avro frame is skipped and said on "
            "stderr, and the exit code is then 1."
        ),
    )
    consume.add_argument("--format", choices=_FORMATS, default="json", help=_FORMAT_HELP)
    consume.add_argument("topic", metavar="TOPIC")
    consume.add_argument("--from-beginning", action="store_true", help="start at the earliest offset")
    consume.add_argument("--max-messages", type=_positive_int, metavar="N", help="stop after N messages")
    consume.add_argument(
        "--timeout", type=float, metavar="S", help="stop when no message arrived for S seconds"
    )
    consume.add_argument("--group", help="consumer group to join and commit to (default: none)")
    consume.set_defaults(handler=_lazy("workers.console", "cmd_consume"))


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of the `avroflow` command."""
    parser = argparse.ArgumentParser(
        prog="avroflow",
        description="Faust stream workers over Avro topics in the Confluent wire format.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    worker = subparsers.add_parser(
        "worker",
        help="run the stream worker (settings from AVROFLOW_* variables)",
        description=(
            "Run the Faust worker until SIGTERM: the pipelines named by AVROFLOW_PIPELINES, or the agents "
            "of a Faust app of your own (--app)."
        ),
    )
    worker.add_argument(
        "--app",
        metavar="MODULE:ATTRIBUTE",
        help="a faust.App whose agents workers.agents.Avroflow declared, e.g. myproject.streams:app",
    )
    worker.set_defaults(handler=_lazy("workers.cli", "cmd_worker"))
    _add_schemas(subparsers)
    _add_produce(subparsers)
    _add_consume(subparsers)
    _add_dlq(subparsers)
    demo = subparsers.add_parser(
        "demo",
        help="run the sample pipeline end to end on a local broker and registry",
        description=(
            "Start a local broker and registry, register the schemas, produce sample events (v1 and v2 "
            "producers and poison messages), run the worker, print the enriched events and a summary "
            "of the worker's counters, then stop everything."
        ),
    )
    demo.add_argument("--timeout", type=float, default=90.0, metavar="S", help="give up after S seconds")
    demo.add_argument("--keep-running", action="store_true", help="keep the stack up until Ctrl-C")
    demo.set_defaults(handler=_lazy("workers.demo", "cmd_demo"))
    return parser


def _add_dlq(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    dlq = subparsers.add_parser(
        "dlq",
        help="inspect dead letters, or replay them to their source topic",
        description="Read a dead-letter topic (<source>.dlq): print its records, or send chosen ones back.",
    )
    actions = dlq.add_subparsers(dest="dlq_command", metavar="ACTION", required=True)
    for name, text in (
        ("inspect", "print each dead letter as a JSON line: reason, source partition and offset, schema id"),
        ("replay", "send dead letters back to their source topic (or --to) with their key, bytes, headers"),
    ):
        action = actions.add_parser(name, parents=[_connection_options()], help=text, description=text)
        action.add_argument("topic", metavar="TOPIC", help="the dead-letter topic")
        action.add_argument("--reason", action="append", help="only this dlq.error.reason (repeatable)")
        action.add_argument(
            "--since", help="only dead-lettered at or after (ISO-8601, UTC by default, or ms)"
        )
        action.add_argument("--until", help="only dead-lettered before (ISO-8601 or ms)")
        if name == "replay":
            action.add_argument("--to", metavar="TOPIC", help="send to this topic instead of the source")
            action.add_argument("--dry-run", action="store_true", help="count what would be replayed")
        action.set_defaults(handler=_lazy("workers.dlq", f"cmd_{name}"))


def cmd_worker(args: argparse.Namespace) -> int:
    """Run the worker with the settings and pipelines from the environment."""
    from workers.app import EXIT_PREFLIGHT, load_app, run_worker
    from workers.faust.compat import HookMissing
    from workers.pipeline import PipelineError, load_pipelines
    from workers.settings import Settings, SettingsError

    try:
        settings = Settings.from_env()
        if args.app:
            try:
                app = load_app(args.app)  # its Avroflow checks the Faust hooks as it installs them
            except HookMissing as exc:
                print(f"avroflow worker: refusing to start: {exc}", file=sys.stderr)
                return EXIT_PREFLIGHT
            return run_worker(app.avroflow.settings, app=app)
        pipelines = load_pipelines(settings.pipelines)
    except (SettingsError, PipelineError) as exc:
        print(f"avroflow worker: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return run_worker(settings, pipelines)


def main(argv: Sequence[str] | None = None) -> int:
    """Parse `argv` (default: sys.argv[1:]), run the command and return its exit code."""
    args = build_parser().parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def _lazy(module: str, name: str) -> Handler:
    # Commands import their dependencies when they run, so `--help` and `schemas` stay fast and do not
    # import faust.
    def handler(args: argparse.Namespace) -> int:
        import importlib

        target: Handler = getattr(importlib.import_module(module), name)
        return target(args)

    handler.__qualname__ = f"{module}.{name}"
    return handler


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text}")
    return value


__all__ = [
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_REFUSED",
    "EXIT_USAGE",
    "build_parser",
    "cmd_worker",
    "main",
]
