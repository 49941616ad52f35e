"""The worker's own metrics, its readiness state, and the /metrics, /healthz and /readyz views.

The views live on Faust's web server. `/metrics` renders the app's own `CollectorRegistry` (the codec
counters plus `WorkerMetrics`), `/healthz` answers as long as the event loop does, and `/readyz` is 200
only when the consumer holds an assignment (an empty one included) and has not been rebalancing or
without a broker answer for longer than its timeout, the registry answered recently, every sink subject's
schema is resolved and no pipeline is stuck on a transient failure; otherwise 503 with the reasons as
JSON. Nothing
here ever shows record content, keys or secrets.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

#: Transform latency buckets, in seconds: a transform is usually tens of microseconds.
TRANSFORM_BUCKETS = (0.00001, 0.00005, 0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0)


@dataclass(frozen=True, slots=True)
class WorkerMetrics:
    """The worker's metric families. Build with :meth:`create`.

    Every input is counted once in `records_in` and, when its outcome is acknowledged by the broker,
    once in exactly one of `records_out` (it produced at least one output), `records_dropped` (the
    transform returned nothing) or `records_dead_lettered`; so in = out + dropped + dead-lettered once
    the worker is idle. `output_records` counts the records written to the sink (more than `records_out`
    when a transform fans out). `tombstones` counts the inputs whose value is null, whatever their outcome.
    """

    records_in: Counter
    records_out: Counter
    output_records: Counter
    records_dropped: Counter
    records_dead_lettered: Counter
    tombstones: Counter
    transform_seconds: Histogram
    transient_retries: Counter
    pipeline_stuck: Gauge
    ready: Gauge

    @classmethod
    def create(cls, registry: CollectorRegistry, namespace: str = "avroflow") -> WorkerMetrics:
        """Create and register the worker's metrics on `registry` (never the global one)."""

        def counter(name: str, doc: str, labels: tuple[str, ...] = ("pipeline",)) -> Counter:
            return Counter(name, doc, labels, namespace=namespace, registry=registry)

        def gauge(name: str, doc: str, labels: tuple[str, ...]) -> Gauge:
            return Gauge(name, doc, labels, namespace=namespace, registry=registry)

        return cls(
            records_in=counter("records_in", "Input records received, by pipeline"),
            records_out=counter("records_out", "Input records that produced output (acknowledged)"),
            output_records=counter("output_records", "Records written to the sink (acknowledged)"),
            records_dropped=counter("records_dropped", "Input records the transform dropped (returned None)"),
            records_dead_lettered=counter(
                "records_dead_lettered",
                "Input records written to the dead-letter topic, by pipeline and reason",
                ("pipeline", "reason"),
            ),
            tombstones=counter(
                "tombstones",
                "Input records whose value is null (tombstones), by pipeline; also counted in their outcome",
            ),
            transform_seconds=Histogram(
                "transform_duration_seconds",
                "Time spent in the pipeline's transform per record, in seconds",
                ("pipeline",),
                namespace=namespace,
                registry=registry,
                buckets=TRANSFORM_BUCKETS,
            ),
            transient_retries=counter(
                "transient_retries",
                "Retries after a transient failure (registry unreachable, broker send failed), by reason",
                ("pipeline", "reason"),
            ),
            pipeline_stuck=gauge(
                "pipeline_stuck", "1 while a pipeline waits on a transient failure", ("pipeline",)
            ),
            ready=gauge("ready", "1 when the worker is ready (the /readyz answer)", ()),
        )


@dataclass
class Readiness:
    """What /readyz decides on. Updated by the runtime; read by the views.

    Not ready until the consumer has joined its group and received an assignment (an empty one counts:
    with more workers than partitions, a member with none is ready and idle); then not ready while a
    rebalance, or a Kafka broker that does not answer, has lasted longer than `broker_max_age`.

    Args:
        registry_max_age: how long a successful registry answer counts as "recent", in seconds.
        broker_max_age: how long the worker may go without a broker answer, or stay in a rebalance,
            before it is not ready, in seconds.
        rebalancing: returns whether the consumer is rebalancing now.
        clock: monotonic clock (injected by tests).
    """

    registry_max_age: float
    broker_max_age: float = 30.0
    rebalancing: Callable[[], bool] = lambda: False
    clock: Callable[[], float] = time.monotonic
    unresolved_subjects: set[str] = field(default_factory=set)
    stuck: dict[str, str] = field(default_factory=dict)
    _registry_ok_at: float | None = None
    _registry_error: str = "registry not checked yet"
    _joined: bool = False
    _rebalancing_since: float | None = None
    _broker_ok_at: float | None = None
    _broker_error: str = "not checked yet"

    def registry_ok(self) -> None:
        """Record that the registry answered just now."""
        self._registry_ok_at = self.clock()

    def registry_failed(self, error: str) -> None:
        """Record that the registry could not be reached (the error says how, without secrets)."""
        self._registry_ok_at = None
        self._registry_error = error

    def assignment_received(self) -> None:
        """Record that the consumer completed a rebalance with an assignment (possibly empty)."""
        self._joined = True

    def broker_ok(self) -> None:
        """Record that the Kafka broker answered just now."""
        self._broker_ok_at = self.clock()

    def broker_failed(self, error: str) -> None:
        """Record that the Kafka broker did not answer (the error says how, without secrets)."""
        self._broker_error = error

    def observe(self) -> None:
        """Note when a rebalance began (called on every check and every /readyz)."""
        if not self.rebalancing():
            self._rebalancing_since = None
        elif self._rebalancing_since is None:
            self._rebalancing_since = self.clock()

    def set_stuck(self, pipeline: str, reason: str) -> None:
        """Mark `pipeline` as waiting on a transient failure."""
        self.stuck[pipeline] = reason

    def clear_stuck(self, pipeline: str) -> None:
        """Mark `pipeline` as making progress again."""
        self.stuck.pop(pipeline, None)

    def reasons(self) -> list[str]:
        """Return why the worker is not ready; empty when it is."""
        self.observe()
        now = self.clock()
        reasons = []
        since = self._rebalancing_since
        if not self._joined:
            reasons.append("no partitions assigned")
        elif since is not None and now - since > self.broker_max_age:
            reasons.append(f"no partitions assigned for {now - since:.0f}s (rebalancing)")
        ok_at = self._registry_ok_at
        if ok_at is None:
            reasons.append(f"schema registry not answering: {self._registry_error}")
        elif now - ok_at > self.registry_max_age:
            reasons.append(f"schema registry not heard from for {now - ok_at:.0f}s")
        broker_at = self._broker_ok_at
        if broker_at is None:
            reasons.append(f"Kafka broker not answering: {self._broker_error}")
        elif now - broker_at > self.broker_max_age:
            reasons.append(f"Kafka broker not answering for {now - broker_at:.0f}s: {self._broker_error}")
        reasons += [f"sink subject {s} not resolved" for s in sorted(self.unresolved_subjects)]
        reasons += [f"pipeline {p} stuck: {why}" for p, why in sorted(self.stuck.items())]
        return reasons


def render_metrics(registry: CollectorRegistry) -> tuple[bytes, str]:
    """Return the Prometheus text exposition of `registry` and its content type."""
    return generate_latest(registry), CONTENT_TYPE_LATEST


def register_views(
    app: Any, registry: CollectorRegistry, readiness: Readiness, metrics: WorkerMetrics
) -> None:
    """Add /metrics, /healthz and /readyz to the Faust `app`'s web server.

    Args:
        app: the `faust.App`.
        registry: the collector registry /metrics renders.
        readiness: the state /readyz reports.
        metrics: the worker metrics (the `ready` gauge is refreshed on every /readyz and /metrics).
    """

    def refresh_ready() -> list[str]:
        reasons = readiness.reasons()
        metrics.ready.set(0 if reasons else 1)
        return reasons

    async def metrics_view(web: Any, request: Any) -> Any:
        refresh_ready()
        body, content_type = render_metrics(registry)
        return web.bytes(body, content_type=content_type.split(";")[0], headers=_no_cache())

    async def healthz_view(web: Any, request: Any) -> Any:
        return web.json({"status": "ok"}, headers=_no_cache())

    async def readyz_view(web: Any, request: Any) -> Any:
        reasons = refresh_ready()
        if reasons:
            return web.json({"status": "not ready", "reasons": reasons}, status=503, headers=_no_cache())
        return web.json({"status": "ready"}, headers=_no_cache())

    for path, view in (("/metrics", metrics_view), ("/healthz", healthz_view), ("/readyz", readyz_view)):
        app.page(path, name=f"avroflow{path.replace('/', '-')}")(view)


def _no_cache() -> dict[str, str]:
    return {"Cache-Control": "no-store"}


__all__ = ["TRANSFORM_BUCKETS", "Readiness", "WorkerMetrics", "register_views", "render_metrics"]
