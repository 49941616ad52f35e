"""The worker's shared state and its preflight: what exists before Faust does.

`build_runtime` creates the metrics (on the process's own `CollectorRegistry`), the registry client and
one `PipelineRunner` per pipeline; loading each runner's reader schema is part of it, so an unreadable or
invalid reader schema stops the start. `preflight` then resolves the latest schema of every sink subject
before the consumer joins its group: an unreachable registry is waited for (one log line per outage, no
crash loop); a missing subject is asked for again, with backoff, for `schema_not_found_retry_seconds`
(a registry that has just restarted may not have reloaded it yet), then stops the start, as refused
credentials do, with a message saying what to fix.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from prometheus_client import CollectorRegistry

from registry_codecs import CodecError, CodecMetrics, RegistryAuthError, RegistryClient, RegistryUnavailable
from registry_codecs.errors import SubjectNotFound
from workers.clients import registry_client
from workers.deadletter import scrub
from workers.pipeline import Pipeline, PipelineError, validate_pipelines
from workers.processing import Backoff, PipelineRunner
from workers.settings import Settings
from workers.web import Readiness, WorkerMetrics

log = logging.getLogger("avroflow.worker")


class PreflightError(Exception):
    """The worker must not start; the message says what to fix."""


class _NotFoundYet(Exception):
    """A sink subject is missing, but the time to ask again for it is not over."""

    def __init__(self, subject: str, window: float, *, first: bool) -> None:
        super().__init__(subject, window)
        self.subject = subject
        self.window = window
        self.first = first  # the first time it was found missing (logged once)


@dataclass
class Runtime:
    """Everything the app's agents, timers and views share, built once per process."""

    settings: Settings
    pipelines: tuple[Pipeline, ...]
    collector: CollectorRegistry
    codec_metrics: CodecMetrics
    metrics: WorkerMetrics
    client: RegistryClient
    readiness: Readiness
    runners: dict[str, PipelineRunner]


def build_runtime(settings: Settings, pipelines: Sequence[Pipeline]) -> Runtime:
    """Create the metrics, the registry client and one runner per pipeline (no network yet).

    Raises:
        PipelineError: no pipelines, or two with the same name.
        PreflightError: a pipeline's reader schema cannot be read or is not a valid Avro schema.
    """
    runtime = new_runtime(settings)
    for pipeline in validate_pipelines(pipelines):
        add_pipeline(runtime, pipeline)
    return runtime


def new_runtime(settings: Settings) -> Runtime:
    """Create the metrics, the registry client and the readiness state, with no pipeline yet."""
    collector = CollectorRegistry()
    codec_metrics = CodecMetrics.create(collector)
    readiness = Readiness(
        # Three check intervals, plus the longest a ping may take before it answers (each URL's timeout):
        # a slow answer that comes is not "not heard from".
        registry_max_age=3 * settings.registry_check_interval_seconds
        + settings.schema_registry_timeout_seconds * len(settings.schema_registry_urls),
        broker_max_age=settings.readiness_broker_timeout_seconds,
    )
    client = registry_client(settings, codec_metrics)
    metrics = WorkerMetrics.create(collector)
    return Runtime(settings, (), collector, codec_metrics, metrics, client, readiness, {})


def add_pipeline(runtime: Runtime, pipeline: Pipeline) -> PipelineRunner:
    """Add `pipeline`'s runner to `runtime`; its sink subject is unresolved until `preflight` resolves it.

    Raises:
        PipelineError: a pipeline of that name is already there, or `pipeline` is not a `Pipeline`.
        PreflightError: the pipeline's reader schema cannot be read or is not a valid Avro schema.
    """
    validate_pipelines([*runtime.pipelines, pipeline])
    settings = runtime.settings
    try:
        runner = PipelineRunner(
            pipeline,
            lookup=runtime.client,
            dlq_topic=pipeline.dead_letter_topic(settings.dlq_suffix),
            metrics=runtime.metrics,
            readiness=runtime.readiness,
            backoff=Backoff(settings.retry_backoff_seconds, settings.retry_backoff_max_seconds),
            codec_metrics=runtime.codec_metrics,
            key_recheck_seconds=settings.latest_schema_ttl_seconds,
        )
    except (PipelineError, CodecError) as exc:
        raise PreflightError(f"pipeline {pipeline.name}: reader schema: {exc}") from exc
    runtime.pipelines = (*runtime.pipelines, pipeline)
    runtime.runners[pipeline.name] = runner
    runtime.readiness.unresolved_subjects.add(pipeline.sink_value_subject)
    runtime.metrics.pipeline_stuck.labels(pipeline.name).set(0)
    return runner


def preflight(
    runtime: Runtime, stop: threading.Event | None = None, runners: Sequence[PipelineRunner] | None = None
) -> bool:
    """Resolve every sink subject's latest schema before the consumer joins its group.

    Waits (with backoff and one log line per outage) while the registry is unreachable. A missing sink
    subject is registered from the pipeline's `sink_schema` when auto-registration is on; otherwise it
    is asked for again, with the same backoff, until `schema_not_found_retry_seconds` have passed since
    it was first missing, and then the start is refused. The sink's key subject is used for Avro keys
    when it exists; a pipeline with ``key_format="avro"`` waits for it the same way, then is refused.

    Args:
        runtime: the runners' shared state.
        stop: set to stop waiting (a signal, the app stopping).
        runners: the runners to resolve (default: all of them).

    Returns:
        True when every pipeline is ready to run, False when `stop` was set while waiting.

    Raises:
        PreflightError: a subject is missing, the registry refused the credentials, or a schema is invalid.
    """
    stop = stop or threading.Event()
    missing_since: dict[str, float] = {}
    for runner in runtime.runners.values() if runners is None else runners:
        step = functools.partial(_resolve_sink, runtime, runner, missing_since)
        if not _until_reachable(runtime, stop, step):
            return False
    runtime.readiness.registry_ok()
    return True


def _until_reachable(runtime: Runtime, stop: threading.Event, step: Callable[[], None]) -> bool:
    backoff = Backoff(runtime.settings.retry_backoff_seconds, runtime.settings.retry_backoff_max_seconds)
    attempt = 0
    unreachable = False
    while not stop.is_set():
        try:
            step()
        except _NotFoundYet as exc:
            _count_not_found(runtime, exc)
        except RegistryUnavailable as exc:
            if not unreachable:
                unreachable = True
                log.warning(
                    "schema registry unreachable at start; waiting for it before joining the consumer group",
                    extra={"error": scrub(str(exc))},
                )
            runtime.readiness.registry_failed(scrub(str(exc)))
        except RegistryAuthError as exc:
            raise PreflightError(
                f"the schema registry refused the credentials (check AVROFLOW_SCHEMA_REGISTRY_USERNAME, "
                f"_PASSWORD or _BEARER_TOKEN): {scrub(str(exc))}"
            ) from exc
        else:
            if unreachable:
                log.info("schema registry reachable again; continuing the start")
            return True
        stop.wait(backoff.delay(attempt))
        attempt += 1
    return False


def _count_not_found(runtime: Runtime, exc: _NotFoundYet) -> None:
    runtime.codec_metrics.registry_not_found_retries.labels("subject_version").inc()
    if exc.first:
        log.warning(
            "sink subject %s not found; asking again for up to %g s before refusing to start "
            "(a registry that has just started may not have loaded it yet)",
            exc.subject,
            exc.window,
            extra={"subject": exc.subject},
        )


def _resolve_sink(runtime: Runtime, runner: PipelineRunner, missing_since: dict[str, float]) -> None:
    pipeline = runner.pipeline
    subject = pipeline.sink_value_subject
    try:
        schema_id = runner.encoder.schema_id
    except SubjectNotFound:
        schema_text = pipeline.load_sink_schema()
        if not (runtime.settings.auto_register_schemas and schema_text):
            raise _missing_sink_subject(runtime.settings, subject, missing_since) from None
        runtime.client.register(subject, schema_text)
        log.info("registered the sink schema", extra={"subject": subject})
        schema_id = runner.encoder.schema_id
    except CodecError as exc:
        if exc.retriable or isinstance(exc, RegistryAuthError):
            raise
        raise PreflightError(f"sink subject {subject}: {exc}") from exc
    _resolve_sink_key(runner, runtime.settings, missing_since)
    runtime.readiness.unresolved_subjects.discard(subject)
    log.info(
        "sink schema resolved", extra={"pipeline": pipeline.name, "subject": subject, "schema_id": schema_id}
    )


def _missing_sink_subject(
    settings: Settings | None, subject: str, missing_since: dict[str, float], *, key: bool = False
) -> Exception:
    """`_NotFoundYet` while the sink (key) subject may still appear, then the `PreflightError` saying so.

    Without `settings` (a caller outside the worker's preflight) there is no wait.
    """
    window = settings.schema_not_found_retry_seconds if settings is not None else 0.0
    now = time.monotonic()
    since = missing_since.setdefault(subject, now)
    if now - since < window:
        return _NotFoundYet(subject, window, first=since == now)
    if key:
        what = "sink key subject"
        hint = "key_format='avro' re-encodes every key with its latest schema: register it, or use auto/raw"
    else:
        what = "sink subject"
        hint = (
            "set the pipeline's sink_schema to register it automatically"
            if settings is not None and settings.auto_register_schemas
            else "register it (python -m workers schemas register) or set AVROFLOW_AUTO_REGISTER_SCHEMAS"
        )
    return PreflightError(f"{what} {subject} does not exist (still missing after {window:g} s; {hint})")


def _resolve_sink_key(
    runner: PipelineRunner, settings: Settings | None = None, missing_since: dict[str, float] | None = None
) -> None:
    """Use the sink's key subject when it exists; with ``key_format="avro"`` it must (waited for a while)."""
    pipeline = runner.pipeline
    if not runner.keys.uses_subject:
        return
    subject = pipeline.sink_key_subject
    try:
        runner.keys.resolve()
    except SubjectNotFound:
        if runner.keys.requires_subject:
            raise _missing_sink_subject(
                settings, subject, {} if missing_since is None else missing_since, key=True
            ) from None
    except CodecError as exc:
        if exc.retriable or isinstance(exc, RegistryAuthError):
            raise
        raise PreflightError(f"sink key subject {subject}: {exc}") from exc


__all__ = [
    "PreflightError",
    "Runtime",
    "add_pipeline",
    "build_runtime",
    "new_runtime",
    "preflight",
    "registry_client",
]
