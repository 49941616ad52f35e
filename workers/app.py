"""The Faust app: one agent per pipeline over raw bytes, web views, and the worker process.

Source topics are consumed as raw bytes (``raw`` key and value serializers) and decoded inside the agent
by `workers.processing`: Faust acks a message before it calls its decode-error hooks, so decoding in a
Faust ``value_serializer`` would skip messages on a transient registry failure. Each agent takes batches
(`workers.faust.batches`: off its channel's queue on the fast path, through Faust's ``take_events`` with
``AVROFLOW_FAUST_FAST_PATH=false``) and acks a batch only after its outputs and dead letters are
acknowledged by the broker; Faust commits acked offsets periodically and on shutdown. This module uses
Faust's public API only; every reach into Faust's internals is in `workers.faust`, whose hooks are
checked before the worker connects to anything.

`run_worker` is the process: structured logging, preflight (`workers.runtime`: the registry answers,
every sink subject's latest schema and every reader schema load) before the consumer joins its group,
then Faust's Worker with a bounded shutdown on SIGTERM. Exit codes: 0 after a clean stop, 1 after a
crash, `EXIT_PREFLIGHT` when the start is refused (a missing subject, credentials or a certificate the
registry or the broker refused, an invalid schema, a Faust hook missing from the installed release).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Final

import faust

from registry_codecs import CodecError
from registry_codecs.faust_codec import UnknownSerializer, check_serializers
from workers import logs
from workers.broker_wait import BrokerWatch, KafkaAccessRefused, wait_for_broker
from workers.deadletter import scrub
from workers.delivery import Backoff
from workers.faust import compat, hooks
from workers.faust.batches import batches
from workers.faust.compat import HookMissing
from workers.faust.credentials import aiokafka_auth, broker_credentials
from workers.faust.worker import QuietWorker
from workers.gc_tuning import tune_gc
from workers.pipeline import Pipeline, PipelineError
from workers.processing import PipelineRunner, Send
from workers.runtime import PreflightError, Runtime, build_runtime, preflight, registry_client
from workers.settings import Settings
from workers.web import register_views

log = logging.getLogger("avroflow.worker")

EXIT_OK: Final = 0
EXIT_CRASH: Final = 1
#: The start was refused: a missing sink subject, credentials the registry or the Kafka broker refused, a
#: certificate either side does not trust, an invalid schema.
EXIT_PREFLIGHT: Final = 3
#: Stack of the threads created after start (the codec threads of `asyncio.to_thread`). fastavro recurses
#: on the C stack, two frames per level of a recursive record; registry_codecs.bounds caps records at
#: MAX_DEPTH levels, which an 8 MiB stack holds with less than a factor of two to spare. Reserved address
#: space, not memory: pages are committed only when touched.
CODEC_THREAD_STACK_BYTES: Final = 32 * 2**20


def kafka_auth(settings: Settings) -> dict[str, Any]:
    """Return the aiokafka security keyword arguments Faust's clients get from these settings."""
    return aiokafka_auth(settings)


def faust_settings(settings: Settings) -> dict[str, Any]:
    """Return the keyword arguments for `faust.App` derived from the settings."""
    session = settings.kafka_session_timeout_seconds
    return {
        "broker": [f"kafka://{server}" for server in settings.kafka_bootstrap_servers],
        "broker_credentials": broker_credentials(settings),
        "store": "memory://",
        "autodiscover": False,
        "web_enabled": True,
        "web_bind": settings.web_host,
        "web_port": settings.web_port,
        "topic_partitions": settings.topic_partitions,
        "consumer_auto_offset_reset": "earliest",
        "broker_session_timeout": session,
        "broker_heartbeat_interval": min(3.0, session / 3),
        "broker_commit_interval": settings.kafka_commit_interval_seconds,
        # acks=all: an output is acknowledged (and its input committable) once every in-sync replica has
        # it, so a leader that dies right after the ack cannot take it along (Faust's default, kept explicit).
        "producer_acks": -1,
        "producer_linger": settings.kafka_producer_linger_seconds,
        "producer_max_batch_size": settings.kafka_producer_max_batch_size,
        # A send the broker never acknowledges fails after this long and is retried (Faust's default: 20 min).
        "producer_request_timeout": max(30.0, session),
        "stream_buffer_maxsize": max(4096, 2 * settings.batch_size),
        # On stop, commit what is acknowledged and cancel the agents; do not wait for the streams to drain:
        # a pipeline stuck on a transient failure would never drain. Its batch is never acked
        # (workers.faust.acks.claim), so the next owner of the partitions reads that batch again.
        "stream_wait_empty": False,
        "logging_config": logs.logging_config(settings.log_level, settings.log_format),
    }


def create_app(settings: Settings, pipelines: Sequence[Pipeline], *, runtime: Runtime | None = None) -> Any:
    """Return the `faust.App` that runs `pipelines`: one agent each, plus /metrics, /healthz, /readyz.

    Args:
        settings: the worker's settings.
        pipelines: what to run.
        runtime: shared state from `build_runtime` (built here when not given; `run_worker` passes the
            one its preflight warmed up).
    """
    runtime = runtime or build_runtime(settings, pipelines)
    app = faust.App(settings.app_id, **faust_settings(settings))
    hooks.install(
        app,
        fast_path=settings.faust_fast_path,
        fetch_max_wait=settings.kafka_fetch_max_wait_seconds,
        idempotent=settings.kafka_idempotent_producer,
    )

    _watch_broker(app, settings, runtime)
    register_views(app, runtime.collector, runtime.readiness, runtime.metrics)
    declared = _TopicDeclarer(app, runtime)
    for runner in runtime.runners.values():
        _add_agent(app, runner, settings, declared)
    check_serializers(app)  # an unregistered codec name stops the start, not every message after it

    async def check_registry() -> None:
        try:
            await asyncio.to_thread(runtime.client.ping)
        except CodecError as exc:
            runtime.readiness.registry_failed(scrub(str(exc)))
        else:
            runtime.readiness.registry_ok()

    app.timer(settings.registry_check_interval_seconds)(check_registry)
    return app


def _watch_broker(app: Any, settings: Settings, runtime: Runtime) -> None:
    """Keep `runtime.readiness` told of the group assignment and of the brokers' answers."""
    readiness = runtime.readiness
    readiness.rebalancing = lambda: bool(app.rebalancing)

    async def assigned(sender: Any, *args: Any, **kwargs: Any) -> None:
        # Sent after every completed rebalance, with this member's partitions: none is an answer too.
        readiness.assignment_received()

    app.on_partitions_assigned.connect(assigned)
    interval = BrokerWatch.interval_for(settings.readiness_broker_timeout_seconds)
    watch = BrokerWatch(settings.kafka_bootstrap_servers, kafka_auth(settings), readiness, interval)
    app.task(watch.run)


class _TopicDeclarer:
    """Creates the sink and dead-letter topics once, when missing (the consumer never creates them)."""

    def __init__(self, app: Any, runtime: Runtime) -> None:
        self._app = app
        self._topics = sorted(
            {r.pipeline.sink for r in runtime.runners.values()}
            | {r.dlq_topic for r in runtime.runners.values()}
        )
        self._done: asyncio.Future[None] | None = None

    async def ensure(self) -> None:
        if self._done is None:
            self._done = asyncio.get_running_loop().create_future()
            for name in self._topics:
                try:
                    await self._app.topic(name).maybe_declare()
                # Creating is a convenience; without the right (ACL) the topic may still exist: go on.
                except Exception as exc:  # noqa: BLE001
                    log.warning("could not create topic", extra={"topic": name, "error": scrub(str(exc))})
            self._done.set_result(None)
        await self._done


def _add_agent(app: Any, runner: PipelineRunner, settings: Settings, declared: _TopicDeclarer) -> None:
    source = app.topic(
        runner.pipeline.source, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"
    )
    producer_send = _sender(app)
    runner.bind(producer_send, lambda message: app.consumer.ack(message))
    batch, within = settings.batch_size, settings.batch_within_seconds

    async def run_pipeline(stream: Any) -> None:
        await declared.ensure()
        reader = batches(app, stream, batch, within, fast_path=settings.faust_fast_path)
        try:
            async for messages in reader:
                await runner.handle(messages)
        except Exception as exc:
            # A bug, not a record problem (those are dead-lettered): stop the worker rather than run
            # on with a batch whose offsets can never be committed.
            log.critical(
                "pipeline crashed; stopping the worker",
                exc_info=True,
                extra={"pipeline": runner.pipeline.name},
            )
            await app.crash(exc)
            raise

    run_pipeline.__name__ = run_pipeline.__qualname__ = f"pipeline_{runner.pipeline.name.replace('-', '_')}"
    app.agent(source, name=f"avroflow.pipeline.{runner.pipeline.name}")(run_pipeline)


def _sender(app: Any) -> Callable[[Send], Any]:
    async def send(record: Send) -> Any:
        return await app.producer.send(record.topic, record.key, record.value, None, None, record.headers)

    return send


def _deadline_arm(shutdown_timeout: float) -> Callable[[str], None]:
    """What the worker does on SIGTERM/SIGINT before Faust's own stop: arm a hard deadline on it."""

    def arm(signal_name: str) -> None:
        log.info(
            "stopping: no new records, flushing the producer, committing",
            extra={"signal": signal_name, "deadline_seconds": shutdown_timeout},
        )
        timer = threading.Timer(shutdown_timeout, _give_up, args=(shutdown_timeout,))
        timer.daemon = True
        timer.start()

    return arm


def _give_up(timeout: float) -> None:
    log.error("shutdown did not finish in time; exiting without waiting further", extra={"timeout": timeout})
    logging.shutdown()
    os._exit(EXIT_CRASH)


def run_worker(settings: Settings, pipelines: Sequence[Pipeline]) -> int:
    """Run the worker process until SIGTERM/SIGINT; return the exit code.

    Returns:
        0 after a clean stop, 1 after a crash, `EXIT_PREFLIGHT` when the start was refused.
    """
    logs.configure(settings.log_level, settings.log_format)
    log.info("starting", extra={"app_id": settings.app_id, "pipelines": ",".join(p.name for p in pipelines)})
    refused: Exception | None = None
    try:
        # Before connecting to anything: a Faust release that moved a hook fails here, in one line.
        compat.check(
            features=hooks.features(
                fast_path=settings.faust_fast_path, idempotent=settings.kafka_idempotent_producer
            )
        )
        runtime = build_runtime(settings, pipelines)
        if not _preflight_until_signal(runtime):
            log.info("stopped before start")
            return EXIT_OK
        runtime.readiness.broker_ok()  # the broker has just answered the preflight probe
        app = create_app(settings, pipelines, runtime=runtime)
        log.info(
            "faust adapter",
            extra={
                "fast_path": settings.faust_fast_path,
                "hooks": ",".join(hooks.installed(app)) or "none",
                "versions": compat.installed_versions(),
            },
        )
    except (PreflightError, PipelineError, KafkaAccessRefused, HookMissing, UnknownSerializer) as exc:
        refused = exc
    if refused is not None:
        log.error("refusing to start: %s", refused)
        return EXIT_PREFLIGHT
    worker = QuietWorker(
        app,
        on_stop_signal=_deadline_arm(settings.shutdown_timeout_seconds),
        loglevel=settings.log_level.lower(),
        quiet=True,
        redirect_stdouts=False,
        logging_config=logs.logging_config(settings.log_level, settings.log_format),
    )
    tune_gc()  # after start-up: the app and the imports are never collected again
    threading.stack_size(CODEC_THREAD_STACK_BYTES)  # before the event loop's executor makes its threads
    started = time.monotonic()
    try:
        worker.execute_from_commandline()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else EXIT_CRASH
    finally:
        runtime.client.close()
    log.info("stopped", extra={"exit_code": code, "uptime_seconds": round(time.monotonic() - started, 1)})
    return code


def _preflight_until_signal(runtime: Runtime) -> bool:
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
    settings = runtime.settings
    backoff = Backoff(settings.retry_backoff_seconds, settings.retry_backoff_max_seconds)
    try:
        # Faust exits at once when it cannot bootstrap: wait for the broker here instead of crash-looping.
        return preflight(runtime, stop) and wait_for_broker(
            settings.kafka_bootstrap_servers,
            kafka_auth(settings),
            stop,
            backoff,
            idempotent=settings.kafka_idempotent_producer,
        )
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


__all__ = [
    "EXIT_CRASH",
    "EXIT_OK",
    "EXIT_PREFLIGHT",
    "PreflightError",
    "Runtime",
    "build_runtime",
    "create_app",
    "faust_settings",
    "kafka_auth",
    "preflight",
    "registry_client",
    "run_worker",
]
