"""Processing one batch: outcomes per input, dead letters with reasons, retries that never skip, acks only
after delivery. The registry is an in-memory `SchemaLookup`; Kafka is replaced by recording functions (the
real broker path is covered by tests/integration/test_worker_*)."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any

import fastavro
import pytest
from aiokafka.errors import MessageSizeTooLargeError, OutOfOrderSequenceNumber
from pipelines_for_tests import INPUT_SCHEMA, OUTPUT_SCHEMA, OUTPUT_SCHEMA_V2, transform
from prometheus_client import CollectorRegistry

from registry_codecs import (
    RegisteredSchema,
    RegistryUnavailable,
    SchemaNotFound,
    SubjectNotFound,
    frame,
)
from workers.delivery import ProducerSequenceBroken
from workers.pipeline import Pipeline
from workers.processing import DEAD, DROPPED, OUT, Backoff, PipelineRunner, Send, claim, release
from workers.web import Readiness, WorkerMetrics


class MemoryRegistry:
    """An in-memory SchemaLookup; `down` makes every call fail as an unreachable registry would."""

    def __init__(self) -> None:
        self.by_id: dict[int, str] = {}
        self.subjects: dict[str, list[int]] = {}
        self.down = False
        self.calls = 0

    def _check(self) -> None:
        self.calls += 1
        if self.down:
            raise RegistryUnavailable("connection refused")

    def get_schema(self, schema_id: int) -> RegisteredSchema:
        self._check()
        if schema_id not in self.by_id:
            raise SchemaNotFound(f"schema {schema_id} not found", status_code=404, error_code=40403)
        return RegisteredSchema(schema_id, self.by_id[schema_id])

    def get_latest(self, subject: str) -> RegisteredSchema:
        self._check()
        if subject not in self.subjects:
            raise SubjectNotFound(f"subject {subject} not found", status_code=404, error_code=40401)
        schema_id = self.subjects[subject][-1]
        return RegisteredSchema(schema_id, self.by_id[schema_id], subject=subject)

    def register(self, subject: str, schema_str: str, schema_type: str = "AVRO", references: Any = ()) -> int:
        self._check()
        known = {text: schema_id for schema_id, text in self.by_id.items()}
        schema_id = known.get(schema_str, len(self.by_id) + 1)
        self.by_id[schema_id] = schema_str
        self.subjects.setdefault(subject, []).append(schema_id)
        return schema_id


@dataclass
class Message:
    """The attributes of a Faust message the runner reads, with Faust's ack bookkeeping."""

    value: bytes | None
    key: bytes | None = None
    offset: int = 0
    topic: str = "orders"
    partition: int = 0
    timestamp: float = 1_700_000_000.5
    headers: list[tuple[str, bytes]] = field(default_factory=list)
    acked: bool = False
    refcount: int = 1

    def decref(self) -> int:
        self.refcount = max(self.refcount - 1, 0)
        return self.refcount


def avro(schema: str, record: dict[str, Any]) -> bytes:
    out = io.BytesIO()
    fastavro.schemaless_writer(out, fastavro.parse_schema(json.loads(schema)), record)
    return out.getvalue()


def read(schema: str, data: bytes) -> Any:
    return fastavro.schemaless_reader(io.BytesIO(data[5:]), fastavro.parse_schema(json.loads(schema)))


@pytest.fixture
def registry() -> MemoryRegistry:
    registry = MemoryRegistry()
    registry.register("orders-value", INPUT_SCHEMA)
    registry.register("orders-out-value", OUTPUT_SCHEMA)
    return registry


@pytest.fixture
def collector() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def readiness() -> Readiness:
    return Readiness(registry_max_age=10)


@pytest.fixture
def runner(registry: MemoryRegistry, collector: CollectorRegistry, readiness: Readiness) -> PipelineRunner:
    pipeline = Pipeline("orders", "orders", "orders-out", transform, reader_schema=INPUT_SCHEMA)
    return PipelineRunner(
        pipeline,
        lookup=registry,
        dlq_topic="orders.dlq",
        metrics=WorkerMetrics.create(collector),
        readiness=readiness,
        backoff=Backoff(0.001, 0.002),
    )


def order(i: int, marker: str = "") -> bytes:
    return frame(1, avro(INPUT_SCHEMA, {"id": i, "name": f"n{i}", "amount": 1.5, "marker": marker}))


def test_a_good_record_is_transformed_and_encoded_with_the_latest_sink_schema(runner: PipelineRunner) -> None:
    outcome = runner.process(Message(order(7), key=b"user-7", headers=[("trace", b"abc")]))
    assert outcome.kind == OUT
    [send] = outcome.sends
    assert (send.topic, send.key, send.headers) == ("orders-out", b"user-7", [("trace", b"abc")])
    assert send.value is not None and send.value[:5] == frame(2, b"")
    assert read(OUTPUT_SCHEMA, send.value) == {"id": 7, "name": "N7", "amount_cents": 150}


def test_drop_and_fan_out(runner: PipelineRunner) -> None:
    assert runner.process(Message(order(1, "drop"))).kind == DROPPED
    outcome = runner.process(Message(order(2, "fanout")))
    assert outcome.kind == OUT and len(outcome.sends) == 2


@pytest.mark.parametrize(
    ("value", "reason", "schema_id"),
    [
        (b"\x01\x00\x00\x00\x01\x02", "framing", None),
        (b"\x00\x00", "framing", None),
        (frame(999, b"\x02"), "unknown_schema", b"999"),
        (frame(1, b"\x02"), "body_does_not_decode", b"1"),
        (order(1, "raise"), "transform_failed", b"1"),
        (order(1, "misfit"), "record_does_not_fit_schema", b"1"),
        (order(1, "not-a-dict"), "transform_result_invalid", b"1"),
    ],
)
def test_permanent_failures_become_dead_letters_of_the_original_message(
    runner: PipelineRunner, value: bytes | None, reason: str, schema_id: bytes | None
) -> None:
    message = Message(value, key=b"k", offset=42, partition=3, headers=[("trace", b"abc")])
    outcome = runner.process(message)
    assert (outcome.kind, outcome.reason) == (DEAD, reason)
    [send] = outcome.sends
    assert (send.topic, send.key, send.value) == ("orders.dlq", b"k", value)
    headers = dict(send.headers or [])
    assert send.headers is not None and send.headers[0] == ("trace", b"abc")
    assert headers["dlq.source.topic"] == b"orders"
    assert headers["dlq.source.partition"] == b"3"
    assert headers["dlq.source.offset"] == b"42"
    assert headers["dlq.source.timestamp"] == b"1700000000500"
    assert headers["dlq.error.reason"] == reason.encode()
    assert headers["dlq.pipeline"] == b"orders"
    assert headers.get("dlq.schema.id") == schema_id


def test_an_unreachable_registry_is_transient_not_a_dead_letter(
    runner: PipelineRunner, registry: MemoryRegistry
) -> None:
    registry.down = True
    with pytest.raises(RegistryUnavailable):
        runner.process(Message(order(1)))


def test_avro_keys_are_reencoded_with_the_sink_key_subject(
    runner: PipelineRunner, registry: MemoryRegistry
) -> None:
    key_schema = json.dumps({"type": "record", "name": "Key", "fields": [{"name": "user", "type": "string"}]})
    key_id = registry.register("orders-key", key_schema)
    plain = runner.process(Message(order(1), key=frame(key_id, avro(key_schema, {"user": "u1"})))).sends[0]
    assert plain.key == frame(key_id, avro(key_schema, {"user": "u1"}))  # no key subject yet: carried as is
    sink_key_id = registry.register("orders-out-key", key_schema.replace('"Key"', '"OutKey"'))
    runner.keys.resolve()  # what preflight does, or a look after the recheck interval
    send = runner.process(Message(order(1), key=frame(key_id, avro(key_schema, {"user": "u1"})))).sends[0]
    assert send.key == frame(sink_key_id, avro(key_schema, {"user": "u1"}))
    assert runner.process(Message(order(1), key=b"plain-key")).sends[0].key == b"plain-key"


class Producer:
    """Records sends; the first `failures` deliveries fail as an unreachable broker would."""

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.delivered: list[Send] = []

    async def send(self, record: Send) -> Awaitable[None]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.failures:
            self.failures -= 1
            future.set_exception(ConnectionError("broker unreachable"))
        else:
            self.delivered.append(record)
            future.set_result(None)
        return future


def counter(collector: CollectorRegistry, name: str, **labels: str) -> float:
    return collector.get_sample_value(name, {"pipeline": "orders", **labels}) or 0.0


def test_a_batch_is_acked_only_after_delivery_and_counted(
    runner: PipelineRunner, collector: CollectorRegistry
) -> None:
    producer, acked = Producer(failures=2), []
    runner.bind(producer.send, acked.append)
    messages = [Message(order(i), offset=i) for i in range(3)] + [Message(b"junk", offset=3)]
    messages.append(Message(order(9, "drop"), offset=4))
    asyncio.run(runner.handle(messages))
    assert [m.offset for m in acked] == [0, 1, 2, 3, 4]
    assert sorted(s.topic for s in producer.delivered) == ["orders-out"] * 3 + ["orders.dlq"]
    assert counter(collector, "avroflow_records_in_total") == 5
    assert counter(collector, "avroflow_records_out_total") == 3
    assert counter(collector, "avroflow_records_dropped_total") == 1
    assert counter(collector, "avroflow_records_dead_lettered_total", reason="framing") == 1
    assert counter(collector, "avroflow_transient_retries_total", reason="broker_send_failed") == 1
    assert not runner.stuck


def watch_stuck(readiness: Readiness) -> asyncio.Event:
    """An event set when the runner reports itself stuck (wraps `Readiness.set_stuck`)."""
    event = asyncio.Event()
    report = Readiness.set_stuck.__get__(readiness)

    def set_stuck(pipeline: str, reason: str) -> None:
        report(pipeline, reason)
        event.set()

    readiness.set_stuck = set_stuck  # type: ignore[method-assign]
    return event


def test_a_stuck_batch_waits_then_recovers_and_an_abandoned_one_is_never_acked(
    runner: PipelineRunner, registry: MemoryRegistry, readiness: Readiness, collector: CollectorRegistry
) -> None:
    producer, acked = Producer(), []
    runner.bind(producer.send, acked.append)
    registry.down = True

    async def scenario() -> None:
        stuck = watch_stuck(readiness)
        task = asyncio.create_task(runner.handle([Message(order(1))]))
        await stuck.wait()
        assert "orders" in readiness.stuck
        assert counter(collector, "avroflow_pipeline_stuck") == 1
        registry.down = False
        await task

    asyncio.run(scenario())
    assert len(acked) == 1 and len(producer.delivered) == 1
    assert not runner.stuck and not readiness.stuck
    assert counter(collector, "avroflow_pipeline_stuck") == 0
    assert counter(collector, "avroflow_records_dead_lettered_total", reason="registry_unavailable") == 0

    registry.down = True
    abandoned = Message(frame(2, b""), offset=9)  # a new writer id: needs the registry

    async def shutdown_mid_retry() -> None:
        stuck = watch_stuck(readiness)
        task = asyncio.create_task(runner.handle([abandoned]))
        await stuck.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(shutdown_mid_retry())
    assert abandoned not in acked
    assert abandoned.acked  # any ack of Faust's (e.g. a stream's finally) is now a no-op


def test_a_message_read_by_two_pipelines_is_acked_after_both() -> None:
    message, acked = Message(b"", refcount=2), []
    claim([message])
    release([message], acked.append)
    assert acked == []
    release([message], acked.append)
    assert acked == [message] and message.acked is False  # Faust's consumer sets it when it records the ack


def test_the_latest_sink_version_is_used_after_it_is_registered(
    runner: PipelineRunner, registry: MemoryRegistry
) -> None:
    before = runner.process(Message(order(1))).sends[0].value
    new_id = registry.register("orders-out-value", OUTPUT_SCHEMA_V2)
    runner.encoder = type(runner.encoder)(registry, "orders-out-value", latest_recheck_seconds=0)
    after = runner.process(Message(order(1))).sends[0].value
    assert before is not None and after is not None
    assert before[:5] == frame(2, b"") and after[:5] == frame(new_id, b"")
    assert read(OUTPUT_SCHEMA_V2, after)["channel"] == "web"


def test_backoff_grows_jittered_and_capped() -> None:
    backoff = Backoff(0.1, 1.0)
    for attempt in range(10):
        ceiling = min(1.0, 0.1 * 2**attempt)
        assert ceiling / 2 <= backoff.delay(attempt) <= ceiling
    assert backoff.delay(10_000) <= 1.0


class RefusingProducer(Producer):
    """Refuses records over `limit` bytes the way aiokafka does (through Faust's wrapper)."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    async def send(self, record: Send) -> Awaitable[None]:
        if len(record.value or b"") > self.limit:
            try:
                raise MessageSizeTooLargeError("the message is 2000100 bytes when serialized")
            except MessageSizeTooLargeError as exc:
                raise RuntimeError("Error while sending") from exc
        return await super().send(record)


def test_an_output_the_broker_refuses_as_too_large_dead_letters_its_input(
    runner: PipelineRunner, collector: CollectorRegistry
) -> None:
    producer, acked = RefusingProducer(limit=10_000), []
    runner.bind(producer.send, acked.append)
    huge = Message(order(1, "huge"), key=b"big", offset=1)
    asyncio.run(runner.handle([Message(order(0), offset=0), huge]))
    assert [m.offset for m in acked] == [0, 1]
    assert [s.topic for s in producer.delivered] == ["orders-out", "orders.dlq"]
    dead = producer.delivered[1]
    assert (dead.key, dead.value) == (b"big", huge.value)
    assert dict(dead.headers or [])["dlq.error.reason"] == b"output_too_large"
    assert counter(collector, "avroflow_records_dead_lettered_total", reason="output_too_large") == 1
    assert counter(collector, "avroflow_records_out_total") == 1
    assert not runner.stuck


class GappedProducer(Producer):
    """Fails every delivery the way the broker answers an idempotent producer with a sequence gap."""

    async def send(self, record: Send) -> Awaitable[None]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        future.set_exception(OutOfOrderSequenceNumber())
        return future


def test_a_sequence_gap_the_broker_never_accepts_stops_the_pipeline_unacked(runner: PipelineRunner) -> None:
    # aiokafka fails a batch that waited for a leader longer than its timeout after numbering it: every
    # later batch of that partition is refused. Retrying cannot help; a new producer (a restart) does.
    acked: list[Message] = []
    runner.bind(GappedProducer().send, acked.append)
    with pytest.raises(ProducerSequenceBroken, match="restart"):
        asyncio.run(asyncio.wait_for(runner.handle([Message(order(0), offset=0)]), 10))
    assert acked == []
