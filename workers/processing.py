"""Processing one batch of raw input messages: decode, transform, encode, send or dead-letter, retry.

The agent hands each batch of raw Faust messages (`workers.faust.batches`) to `PipelineRunner.handle`. The
codec and transform work for the whole batch runs in one worker thread (`asyncio.to_thread`, once per
batch, not per record), so a registry call on a cache miss or a TTL refresh never blocks the event loop
that answers heartbeats and /healthz. Each input ends in one `Outcome`: outputs for the sink, nothing
(dropped), or a dead letter. A null value is a tombstone: forwarded to the sink with its key converted
(`workers.keys`), or handed to the transform as None (`Pipeline.tombstones`).

Failures are sorted by what retrying can do:

* permanent (not a frame, unknown schema id, an undecodable body, a key that does not convert, the
  transform raising or returning something that is not records, an output that does not fit the sink
  schema, or that the broker refuses as too large): the original message goes to the dead-letter topic
  with ``dlq.*`` headers (``dlq.error.field`` says whether the key or the value failed), and processing
  goes on;
* transient (registry unreachable or refusing our credentials, the sink subject missing, a send that the
  broker did not acknowledge, a schema id the registry does not know yet while the client's
  `unknown_id_grace` lasts, `SchemaNotFoundYet`): the batch waits with jittered exponential backoff and
  retries, forever or until shutdown, without moving past the failed input. The pipeline is reported
  stuck meanwhile, and one log line marks the start and one the end of each outage.

`handle` returns only after every output and dead letter of the batch is acknowledged by the broker; the
agent acks the batch's offsets after that, so Faust never commits past an input whose result is not
durable. The runner acks the batch itself (`claim`, `release` in `workers.faust.acks`): if `handle` is
interrupted (shutdown, crash), the batch is never acked, so a restart reprocesses it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final

from registry_codecs import (
    AvroDeserializer,
    AvroSerializer,
    CodecError,
    FramingError,
    RegistryAuthError,
    RegistryUnavailable,
    SchemaLookup,
    SchemaNotFoundYet,
    SubjectNotFound,
    schema_id_of,
)
from registry_codecs.metrics import CodecMetrics
from workers import deadletter
from workers.delivery import (
    DEAD,
    DROPPED,
    OUT,
    Backoff,
    Headers,
    Outcome,
    Send,
    SendFn,
    sort_failure,
)
from workers.faust.acks import claim, release
from workers.keys import key_codec
from workers.pipeline import TOMBSTONE, Pipeline, apply_transform
from workers.web import Readiness, WorkerMetrics

log = logging.getLogger("avroflow.processing")


#: Registry failures that say "wait", never "this record is bad". SubjectNotFound counts only when it
#: comes from the sink (or its key) subject: someone deleted the subject the worker writes with.
TRANSIENT: Final = (RegistryUnavailable, RegistryAuthError, SubjectNotFound)
BROKER_SEND_FAILED: Final = "broker_send_failed"


class PipelineRunner:
    """Runs one `Pipeline`'s batches. Created by the app, one per pipeline.

    Args:
        pipeline: what to run.
        lookup: the schema registry (a `RegistryClient`).
        dlq_topic: where permanent failures go.
        metrics: the worker's metrics; `codec_metrics`: the codecs' counters (optional).
        readiness: told when the pipeline is stuck and when it recovers.
        backoff: how long to wait between retries of a transient failure.
        sleep: waits between retries (``asyncio.sleep``; tests inject their own to see the delays).
        key_recheck_seconds: while the sink's key subject does not exist, how often to look for it again
            (``key_format="auto"``; the worker passes ``AVROFLOW_LATEST_SCHEMA_TTL_SECONDS``).
    """

    def __init__(
        self,
        pipeline: Pipeline,
        *,
        lookup: SchemaLookup,
        dlq_topic: str,
        metrics: WorkerMetrics,
        readiness: Readiness,
        backoff: Backoff,
        codec_metrics: CodecMetrics | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        key_recheck_seconds: float = 30.0,
    ) -> None:
        self.pipeline = pipeline
        self.dlq_topic = dlq_topic
        self.decoder = AvroDeserializer(
            lookup,
            reader_schema=pipeline.load_reader_schema(),
            subject=pipeline.source,
            metrics=codec_metrics,
        )
        self.encoder = AvroSerializer(lookup, pipeline.sink_value_subject, metrics=codec_metrics)
        self.keys = key_codec(pipeline, lookup, codec_metrics, key_recheck_seconds)
        self._lookup = lookup
        self._readiness = readiness
        self._backoff = backoff
        self._sleep = sleep
        self._send: SendFn | None = None
        self._ack: Callable[[Any], object] = _not_bound
        name = pipeline.name
        self._in = metrics.records_in.labels(name)
        self._counted = {
            OUT: metrics.records_out.labels(name),
            DROPPED: metrics.records_dropped.labels(name),
        }
        self._written = metrics.output_records.labels(name)
        self._dead = metrics.records_dead_lettered
        self._tombstones = metrics.tombstones.labels(name)
        self._latency = metrics.transform_seconds.labels(name)
        self._retries = metrics.transient_retries
        self._stuck_gauge = metrics.pipeline_stuck.labels(name)
        self._stuck_since: float | None = None
        self._retries_this_outage = 0

    def bind(self, send: SendFn, ack: Callable[[Any], object]) -> None:
        """Give the runner the producer's send and the consumer's ack (once the app exists)."""
        self._send = send
        self._ack = ack

    @property
    def stuck(self) -> bool:
        """Whether the pipeline is waiting on a transient failure now."""
        return self._stuck_since is not None

    # ----- the async side: one call per batch ----------------------------------------------------------

    async def handle(self, messages: Sequence[Any]) -> None:
        """Process a batch of raw Faust messages; return once every result is acknowledged by the broker.

        Raises:
            asyncio.CancelledError: shutdown; the batch is not acked (it will be read again).
        """
        claim(messages)
        self._in.inc(len(messages))
        outcomes = await self._compute_all(messages)
        await self._deliver(messages, outcomes)
        release(messages, self._ack)
        self._count(outcomes)
        self._recovered()

    async def _compute_all(self, messages: Sequence[Any]) -> list[Outcome]:
        outcomes: list[Outcome] = []
        attempt = 0
        while True:
            error = await asyncio.to_thread(self.compute, messages, outcomes)
            if error is None:
                return outcomes
            await self._wait_after(error, attempt)
            attempt += 1

    async def _deliver(self, messages: Sequence[Any], outcomes: list[Outcome]) -> None:
        sends = [send for outcome in outcomes for send in outcome.sends]
        attempt = 0
        while sends:
            sends, error, refused = await self._send_all(sends)
            for send, exc in refused:
                if send.topic == self.dlq_topic:
                    sends.append(send)  # nowhere else to put it: wait (stuck) rather than lose it
                    error = deadletter.DeadLetterTooLarge(str(exc))
                elif outcomes[send.origin].kind == OUT:  # dead-letter the input once, not per output
                    too_large = deadletter.OutputTooLarge(str(exc))
                    dead = self._dead_letter(messages[send.origin], too_large, None, send.origin)
                    dead.tombstone = outcomes[send.origin].tombstone
                    outcomes[send.origin] = dead
                    sends += dead.sends
            if error is not None:
                await self._wait_after(error, attempt)
                attempt += 1

    async def _send_all(
        self, sends: list[Send]
    ) -> tuple[list[Send], BaseException | None, list[tuple[Send, BaseException]]]:
        """Send and await every record; return the ones to retry, the last error, and the refused ones."""
        if self._send is None:
            raise RuntimeError("PipelineRunner.bind() was not called")
        pending: list[tuple[Send, Awaitable[Any]]] = []
        failed: list[Send] = []
        refused: list[tuple[Send, BaseException]] = []
        error: BaseException | None = None
        for send in sends:
            try:
                pending.append((send, await self._send(send)))
            # Whatever else the producer raises, the record is not durable: retry it, never skip it.
            except Exception as exc:  # noqa: BLE001
                error = sort_failure(send, exc, failed, refused) or error
        for send, delivery in pending:
            try:
                await delivery
            except Exception as exc:  # noqa: BLE001 - as above: a failed delivery is retried
                error = sort_failure(send, exc, failed, refused) or error
        return failed, error, refused

    async def _wait_after(self, error: BaseException, attempt: int) -> None:
        if isinstance(error, CodecError | deadletter.DeadLetterTooLarge):
            reason = error.reason
        else:
            reason = BROKER_SEND_FAILED
        self._retries.labels(self.pipeline.name, reason).inc()
        self._retries_this_outage += 1
        if self._stuck_since is None:
            self._stuck_since = time.monotonic()
            self._readiness.set_stuck(self.pipeline.name, reason)
            self._stuck_gauge.set(1)
            log.warning(
                "pipeline stuck on a transient failure; retrying with backoff until it clears",
                extra={
                    "pipeline": self.pipeline.name,
                    "reason": reason,
                    "error": deadletter.scrub(f"{type(error).__name__}: {error}"),
                },
            )
        await self._sleep(self._backoff.delay(attempt))

    def _recovered(self) -> None:
        if self._stuck_since is None:
            return
        log.warning(
            "pipeline recovered",
            extra={
                "pipeline": self.pipeline.name,
                "stuck_seconds": round(time.monotonic() - self._stuck_since, 3),
                "retries": self._retries_this_outage,
            },
        )
        self._stuck_since = None
        self._retries_this_outage = 0
        self._readiness.clear_stuck(self.pipeline.name)
        self._stuck_gauge.set(0)

    def _count(self, outcomes: list[Outcome]) -> None:
        written = 0
        for outcome in outcomes:
            if outcome.tombstone:
                self._tombstones.inc()
            if outcome.kind == DEAD:
                self._dead.labels(self.pipeline.name, outcome.reason).inc()
            else:
                self._counted[outcome.kind].inc()
                written += len(outcome.sends)
        self._written.inc(written)

    # ----- the thread side: codec and transform work ---------------------------------------------------

    def compute(self, messages: Sequence[Any], outcomes: list[Outcome]) -> BaseException | None:
        """Append the outcome of each message from ``len(outcomes)`` on; stop at a transient failure.

        Runs in a worker thread. Returns the transient error that stopped it, or None when done.
        """
        for index in range(len(outcomes), len(messages)):
            try:
                outcomes.append(self.process(messages[index], index))
            except TRANSIENT as exc:
                if isinstance(exc, SchemaNotFoundYet):
                    self._ask_ahead(messages, index + 1)
                return exc
        return None

    def _ask_ahead(self, messages: Sequence[Any], start: int) -> None:
        """Ask for the writer ids of the rest of the batch now, while the batch waits for one of them.

        An id the registry does not know is asked again for a while before its record is dead-lettered;
        asking for every such id of the batch at once makes the batch wait that while once, not once
        per unknown id. The answers are cached (or remembered as not found yet); errors are for later.
        """
        ids = {_frame_schema_id(message.value) for message in messages[start:]}
        for schema_id in ids:
            if schema_id is None:
                continue
            try:
                self._lookup.get_schema(schema_id)
            except CodecError:
                continue

    def process(self, message: Any, origin: int = -1) -> Outcome:
        """Return the outcome of one raw message (`origin`: its index in the batch).

        Raises only the `TRANSIENT` errors.
        """
        if message.value is None:
            outcome = self._tombstone(message, origin)
            outcome.tombstone = True
            return outcome
        try:
            schema_id, record = self.decoder.decode_with_id(message.value)
        except TRANSIENT:
            raise
        except CodecError as exc:
            return self._dead_letter(message, exc, None, origin, deadletter.VALUE)
        key = self._key_or_failure(message, schema_id, origin)
        if isinstance(key, Outcome):
            return key
        return self._transform(message, record, key, schema_id, origin)

    def _tombstone(self, message: Any, origin: int) -> Outcome:
        """A null value: forwarded as a tombstone, or handed to the transform as None (`tombstones`)."""
        key = self._key_or_failure(message, None, origin)
        if isinstance(key, Outcome):
            return key
        if self.pipeline.tombstones == "transform":
            return self._transform(message, None, key, None, origin)
        return Outcome(OUT, [Send(self.pipeline.sink, key, None, _headers(message.headers), origin)])

    def _key_or_failure(self, message: Any, schema_id: int | None, origin: int) -> bytes | Outcome | None:
        """The converted key, or the dead letter of a key that does not convert."""
        try:
            return self.keys.convert(message.key)
        except TRANSIENT:
            raise
        except CodecError as exc:
            return self._dead_letter(message, exc, schema_id, origin, deadletter.KEY)

    def _transform(
        self, message: Any, record: Any, key: bytes | None, schema_id: int | None, origin: int
    ) -> Outcome:
        started = time.perf_counter()
        try:
            results = apply_transform(self.pipeline.transform, record)
        # The transform is user code: whatever it raises makes this input a dead letter, by design.
        except Exception as exc:  # noqa: BLE001
            return self._dead_letter(message, exc, schema_id, origin)
        finally:
            self._latency.observe(time.perf_counter() - started)
        if not results:
            return Outcome(DROPPED)
        headers = _headers(message.headers)
        sink, encode = self.pipeline.sink, self.encoder.encode
        try:
            values = [None if r is TOMBSTONE else encode(r) for r in results]
        except TRANSIENT:
            raise
        except CodecError as exc:
            return self._dead_letter(message, exc, schema_id, origin, deadletter.VALUE)
        return Outcome(OUT, [Send(sink, key, value, headers, origin) for value in values])

    def _dead_letter(
        self, message: Any, error: BaseException, schema_id: int | None, origin: int, field: str | None = None
    ) -> Outcome:
        if schema_id is None:
            schema_id = _frame_schema_id(message.value)
        source = deadletter.SourceInfo(message.topic, message.partition, message.offset, message.timestamp)
        headers = deadletter.dead_letter_headers(
            _headers(message.headers),
            source,
            error,
            pipeline=self.pipeline.name,
            schema_id=schema_id,
            field=field,
        )
        send = Send(self.dlq_topic, message.key, message.value, headers, origin)
        return Outcome(DEAD, [send], deadletter.reason_of(error, field))


def _not_bound(message: Any) -> object:
    raise RuntimeError("PipelineRunner.bind() was not called")


def _frame_schema_id(value: Any) -> int | None:
    # An unknown id is still worth a header: it says which producer or registry to look at.
    try:
        return schema_id_of(value)
    except (FramingError, TypeError):
        return None


def _headers(headers: Any) -> Headers | None:
    if not headers:
        return None
    items = headers.items() if isinstance(headers, dict) else headers
    return [(str(k), bytes(v) if v is not None else b"") for k, v in items]


__all__ = [
    "BROKER_SEND_FAILED",
    "DEAD",
    "DROPPED",
    "OUT",
    "TRANSIENT",
    "Backoff",
    "Outcome",
    "PipelineRunner",
    "Send",
    "SendFn",
    "claim",
    "release",
]
