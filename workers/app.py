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
registry or the broker refused, an invalid schema, a Faust hook missing from the installed release, a
serializer name no codec is registered under).
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Final

import faust

from registry_codecs.faust_codec import UnknownSerializer, check_serializers
from workers import logs
from workers.agents import Avroflow
from workers.broker_wait import KafkaAccessRefused, wait_for_broker
from workers.delivery import Backoff
from workers.faust import compat, hooks
from workers.faust.compat import HookMissing
from workers.faust.worker import QuietWorker
from workers.gc_tuning import tune_gc
from workers.kafka_config import faust_settings, kafka_auth
from workers.pipeline import Pipeline, PipelineError, load_object
from workers.runtime import PreflightError, Runtime, build_runtime, preflight, registry_client
from workers.settings import Settings

log = logging.getLogger("avroflow.worker")

EXIT_OK: Final = 0
EXIT_CRASH: Final = 1
#: The start was refused: a missing sink subject, credentials the registry or the Kafka broker refused, a
#: certificate either side does not trust, an invalid schema.
EXIT_PREFLIGHT: Final = 3


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
    Avroflow(app, settings, runtime=runtime)
    return app


def load_app(spec: str) -> Any:
    """Import the `faust.App` named by ``"package.module:ATTRIBUTE"``, whose agents an `Avroflow` declared.

    Raises:
        PipelineError: the module or attribute does not exist, or is not an app with avroflow agents.
    """
    value: Any = load_object(spec, "app spec")
    flow = getattr(value, "avroflow", None)
    if not isinstance(value, faust.App) or not isinstance(flow, Avroflow):
        raise PipelineError(
            f"app spec {spec!r}: expected a faust.App with agents from workers.agents.Avroflow"
        )
    if not flow.runtime.runners:
        raise PipelineError(f"app spec {spec!r}: the app has no avroflow agents")
    return value


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


def run_worker(settings: Settings, pipelines: Sequence[Pipeline] = (), *, app: Any = None) -> int:
    """Run the worker process until SIGTERM/SIGINT; return the exit code.

    Args:
        settings: the worker's settings.
        pipelines: the pipelines to run on an app of the worker's own.
        app: instead, a `faust.App` of the user's whose agents an `Avroflow` declared (`load_app`).

    Returns:
        0 after a clean stop, 1 after a crash, `EXIT_PREFLIGHT` when the start was refused.
    """
    logs.configure(settings.log_level, settings.log_format)
    names = app.avroflow.runtime.runners if app is not None else [p.name for p in pipelines]
    log.info("starting", extra={"app_id": settings.app_id, "pipelines": ",".join(names)})
    refused: Exception | None = None
    try:
        # Before connecting to anything: a Faust release that moved a hook fails here, in one line.
        compat.check(
            features=hooks.features(
                fast_path=settings.faust_fast_path, idempotent=settings.kafka_idempotent_producer
            )
        )
        runtime = app.avroflow.runtime if app is not None else build_runtime(settings, pipelines)
        if not _preflight_until_signal(runtime):
            log.info("stopped before start")
            return EXIT_OK
        runtime.readiness.broker_ok()  # the broker has just answered the preflight probe
        if app is None:
            app = create_app(settings, pipelines, runtime=runtime)
        else:
            app.avroflow.check_output_types()
        check_serializers(app)  # an unregistered codec name stops the start, not every message after it
        _log_adapter(app, settings)
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
    started = time.monotonic()
    try:
        worker.execute_from_commandline()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else EXIT_CRASH
    finally:
        runtime.client.close()
    log.info("stopped", extra={"exit_code": code, "uptime_seconds": round(time.monotonic() - started, 1)})
    return code


def _log_adapter(app: Any, settings: Settings) -> None:
    log.info(
        "faust adapter",
        extra={
            "fast_path": settings.faust_fast_path,
            "hooks": ",".join(hooks.installed(app)) or "none",
            "versions": compat.installed_versions(),
        },
    )


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
    "load_app",
    "preflight",
    "registry_client",
    "run_worker",
]
