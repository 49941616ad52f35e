"""Consumer lag on /metrics: how far behind each assigned partition is, and how old the oldest record in hand.

`LagWatch` asks Kafka every ``AVROFLOW_LAG_CHECK_INTERVAL_SECONDS`` for the consumer group's committed
offsets (the group coordinator, `AIOKafkaAdminClient.list_consumer_group_offsets`) and for the log-end
offsets of the partitions this member holds (the partition leaders, a consumer without a group), and
exports per partition the committed offset, the log-end offset and the lag in messages, the same numbers
``kafka-consumer-groups --describe`` prints. A partition with no committed offset yet counts from its
log-start offset (the worker reads from the earliest). The figures are as of the last check; a failed
check leaves them as they were and is counted.

`LagMetrics.batch_started`/`batch_done` (called by each agent around a batch) give the age of the oldest
record the pipeline holds and has not finished, in seconds: 0 when idle, growing while a batch waits on a
registry or broker outage. `rebalances` counts the completed rebalances of this member.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from prometheus_client import CollectorRegistry, Counter, Gauge

from workers.deadletter import scrub

log = logging.getLogger("avroflow.lag")


@dataclass
class LagMetrics:
    """The lag metric families, and the in-hand batch ages they are computed from."""

    committed: Gauge
    log_end: Gauge
    lag: Gauge
    oldest_age: Gauge
    rebalances: Counter
    checks_failed: Counter
    clock: Callable[[], float] = time.time
    _in_hand: dict[str, float] = field(default_factory=dict)

    @classmethod
    def create(cls, registry: CollectorRegistry, namespace: str = "avroflow") -> LagMetrics:
        """Create and register the lag metrics on `registry`."""

        def gauge(name: str, doc: str, labels: tuple[str, ...] = ("topic", "partition")) -> Gauge:
            return Gauge(name, doc, labels, namespace=namespace, registry=registry)

        return cls(
            committed=gauge(
                "consumer_committed_offset", "The group's committed offset, per assigned partition"
            ),
            log_end=gauge(
                "consumer_log_end_offset", "The partition's log-end offset, per assigned partition"
            ),
            lag=gauge(
                "consumer_lag_messages", "Records not yet committed by the group, per assigned partition"
            ),
            oldest_age=gauge(
                "oldest_unprocessed_record_age_seconds",
                "Age of the oldest record the pipeline holds and has not finished (0 when idle)",
                ("pipeline",),
            ),
            rebalances=Counter(
                "rebalances", "Completed rebalances of this member", namespace=namespace, registry=registry
            ),
            checks_failed=Counter(
                "lag_checks_failed", "Lag checks Kafka did not answer", namespace=namespace, registry=registry
            ),
        )

    def watch_pipeline(self, pipeline: str) -> None:
        """Export `pipeline`'s oldest in-hand record age (computed when /metrics is scraped)."""
        self.oldest_age.labels(pipeline).set_function(lambda: self.age_of(pipeline))

    def age_of(self, pipeline: str) -> float:
        """Seconds since the oldest record of `pipeline`'s unfinished batch was written (0 when idle)."""
        since = self._in_hand.get(pipeline)
        return 0.0 if since is None else max(0.0, self.clock() - since)

    def batch_started(self, pipeline: str, messages: Sequence[Any]) -> None:
        """`pipeline` holds `messages` (Faust messages: ``timestamp`` in seconds) until `batch_done`."""
        stamps = [m.timestamp for m in messages if m.timestamp]
        self._in_hand[pipeline] = min(stamps) if stamps else self.clock()

    def batch_done(self, pipeline: str) -> None:
        """`pipeline`'s batch is finished (acknowledged) or abandoned."""
        self._in_hand.pop(pipeline, None)

    def report(
        self,
        committed: Mapping[TopicPartition, int],
        log_end: Mapping[TopicPartition, int],
        gone: Iterable[Any],
    ) -> None:
        """Set the gauges of the partitions in `log_end`; drop those of the partitions in `gone`."""
        for tp, end in log_end.items():
            labels = (tp.topic, str(tp.partition))
            position = committed[tp]
            self.committed.labels(*labels).set(position)
            self.log_end.labels(*labels).set(end)
            self.lag.labels(*labels).set(max(0, end - position))
        for tp in gone:
            for gauge in (self.committed, self.log_end, self.lag):
                try:
                    gauge.remove(tp.topic, str(tp.partition))
                except KeyError:
                    pass


class LagWatch:
    """Asks Kafka for the group's committed and the partitions' log-end offsets every `interval` seconds.

    Args:
        servers: the bootstrap ``host:port`` addresses.
        auth: aiokafka security keyword arguments.
        group_id: the consumer group (the Faust app's id).
        assignment: returns the partitions this member holds now.
        metrics: where the figures go.
        interval: seconds between checks, and how long one check may take.
    """

    def __init__(
        self,
        servers: Sequence[str],
        auth: Mapping[str, Any],
        group_id: str,
        assignment: Callable[[], Iterable[Any]],
        metrics: LagMetrics,
        interval: float,
    ) -> None:
        self._servers = list(servers)
        self._auth = dict(auth)
        self._group = group_id
        self._assignment = assignment
        self._metrics = metrics
        self.interval = interval
        self._admin: AIOKafkaAdminClient | None = None
        self._offsets: AIOKafkaConsumer | None = None
        self._reported: set[TopicPartition] = set()

    async def check(self) -> None:
        """Ask once and report; a failure is logged at debug level and counted (the gauges stay)."""
        try:
            partitions = {TopicPartition(tp.topic, tp.partition) for tp in self._assignment()}
            committed, log_end = await asyncio.wait_for(self._ask(partitions), self.interval)
        # Whatever the clients raise means "no answer this time"; the next check asks again.
        except Exception as exc:  # noqa: BLE001
            self._metrics.checks_failed.inc()
            log.debug("lag check failed", extra={"error": scrub(f"{type(exc).__name__}: {exc}")})
            return
        self._metrics.report(committed, log_end, self._reported - partitions)
        self._reported = partitions

    async def _ask(
        self, partitions: set[TopicPartition]
    ) -> tuple[dict[TopicPartition, int], dict[TopicPartition, int]]:
        if not partitions:
            return {}, {}
        admin, offsets = await self._clients()
        answer = await admin.list_consumer_group_offsets(self._group, partitions=sorted(partitions))
        committed = {tp: meta.offset for tp, meta in answer.items() if meta is not None and meta.offset >= 0}
        log_end = await offsets.end_offsets(sorted(partitions))
        uncommitted = sorted(partitions - committed.keys())
        if uncommitted:  # no commit yet: the group reads from the log start
            committed.update(await offsets.beginning_offsets(uncommitted))
        return committed, dict(log_end)

    async def _clients(self) -> tuple[AIOKafkaAdminClient, AIOKafkaConsumer]:
        if self._admin is None or self._offsets is None:
            timeout_ms = int(self.interval * 1000)
            admin = AIOKafkaAdminClient(
                bootstrap_servers=self._servers, request_timeout_ms=timeout_ms, **self._auth
            )
            offsets = AIOKafkaConsumer(
                bootstrap_servers=self._servers,
                group_id=None,
                enable_auto_commit=False,
                request_timeout_ms=timeout_ms,
                **self._auth,
            )
            try:
                await admin.start()
                await offsets.start()
            except BaseException:
                await asyncio.gather(admin.close(), offsets.stop(), return_exceptions=True)
                raise
            self._admin, self._offsets = admin, offsets
        return self._admin, self._offsets

    async def run(self) -> None:
        """Check every `interval` until cancelled (the worker stopping); then close the clients."""
        try:
            while True:
                await asyncio.sleep(self.interval)
                await self.check()
        finally:
            if self._admin is not None:
                await self._admin.close()
            if self._offsets is not None:
                await self._offsets.stop()


__all__ = ["LagMetrics", "LagWatch"]
