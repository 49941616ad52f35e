"""Keys and tombstones through one pipeline: Avro keys that must convert, a key subject that appears while
the worker runs, key failures dead-lettered as key failures, and null values forwarded as tombstones (or
handed to the transform) and counted. Registry in memory, Kafka replaced by recording functions (the real
worker process is covered by tests/integration/test_worker_edges.py)."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
from pipelines_for_tests import INPUT_SCHEMA, OUTPUT_SCHEMA, transform
from prometheus_client import CollectorRegistry
from test_processing import MemoryRegistry, Message, Producer, avro, counter, order

from registry_codecs import SubjectNotFound, frame
from workers.pipeline import TOMBSTONE, Pipeline, PipelineError
from workers.processing import DEAD, OUT, Backoff, PipelineRunner
from workers.runtime import PreflightError, _resolve_sink_key
from workers.web import Readiness, WorkerMetrics

KEY_SCHEMA = json.dumps({"type": "record", "name": "Key", "fields": [{"name": "user", "type": "string"}]})
#: A sink key schema the input keys do not fit (a required field they lack).
NARROW_KEY_SCHEMA = json.dumps(
    {
        "type": "record",
        "name": "Key",
        "fields": [{"name": "user", "type": "string"}, {"name": "tenant", "type": "string"}],
    }
)


def make_runner(
    registry: MemoryRegistry,
    collector: CollectorRegistry,
    *,
    key_format: str = "auto",
    tombstones: str = "forward",
    fn: Any = transform,
    key_recheck_seconds: float = 30.0,
) -> PipelineRunner:
    pipeline = Pipeline(
        "orders",
        "orders",
        "orders-out",
        fn,
        reader_schema=INPUT_SCHEMA,
        key_format=key_format,
        tombstones=tombstones,
    )
    return PipelineRunner(
        pipeline,
        lookup=registry,
        dlq_topic="orders.dlq",
        metrics=WorkerMetrics.create(collector),
        readiness=Readiness(registry_max_age=10),
        backoff=Backoff(0.001, 0.002),
        key_recheck_seconds=key_recheck_seconds,
    )


@pytest.fixture
def registry() -> MemoryRegistry:
    registry = MemoryRegistry()
    registry.register("orders-value", INPUT_SCHEMA)  # id 1
    registry.register("orders-out-value", OUTPUT_SCHEMA)  # id 2
    return registry


@pytest.fixture
def collector() -> CollectorRegistry:
    return CollectorRegistry()


def avro_key(registry: MemoryRegistry, user: str) -> bytes:
    key_id = registry.register("orders-key", KEY_SCHEMA)
    return frame(key_id, avro(KEY_SCHEMA, {"user": user}))


# ----- keys ------------------------------------------------------------------------------------------------


def test_avro_keys_without_a_sink_key_subject_refuse_the_start_naming_it(
    registry: MemoryRegistry, collector: CollectorRegistry
) -> None:
    runner = make_runner(registry, collector, key_format="avro")
    with pytest.raises(PreflightError, match="sink key subject orders-out-key does not exist"):
        _resolve_sink_key(runner)
    # without preflight (a library user), a batch is held back rather than keys carried through raw
    with pytest.raises(SubjectNotFound):
        runner.process(Message(order(1), key=avro_key(registry, "u1")))


def test_a_key_subject_registered_while_running_is_used_after_the_recheck_interval(
    registry: MemoryRegistry, collector: CollectorRegistry
) -> None:
    runner = make_runner(registry, collector, key_recheck_seconds=0.2)
    _resolve_sink_key(runner)  # auto: the missing subject is fine at start
    key = avro_key(registry, "u1")
    assert runner.process(Message(order(1), key=key)).sends[0].key == key  # carried as is
    sink_key_id = registry.register("orders-out-key", KEY_SCHEMA.replace('"Key"', '"OutKey"'))
    time.sleep(0.25)
    send = runner.process(Message(order(1), key=key)).sends[0]
    assert send.key == frame(sink_key_id, avro(KEY_SCHEMA, {"user": "u1"}))


@pytest.mark.parametrize(
    ("key", "reason"),
    [
        (b"plain-key", "key_framing"),
        (frame(999, b"\x02a"), "key_unknown_schema"),
        ("truncated", "key_body_does_not_decode"),
    ],
)
def test_avro_keys_that_do_not_decode_are_dead_lettered_as_key_failures(
    registry: MemoryRegistry, collector: CollectorRegistry, key: Any, reason: str
) -> None:
    registry.register("orders-out-key", KEY_SCHEMA)
    runner = make_runner(registry, collector, key_format="avro")
    _resolve_sink_key(runner)
    if key == "truncated":
        key = avro_key(registry, "someone")[:-3]
    outcome = runner.process(Message(order(1), key=key))
    assert (outcome.kind, outcome.reason) == (DEAD, reason)
    [send] = outcome.sends
    headers = dict(send.headers or [])
    assert (send.key, send.value) == (key, order(1))  # the original message
    assert headers["dlq.error.field"] == b"key"
    assert headers["dlq.error.reason"] == reason.encode()


def test_a_key_that_does_not_fit_the_sink_key_schema_is_a_key_failure_not_a_value_one(
    registry: MemoryRegistry, collector: CollectorRegistry
) -> None:
    registry.register("orders-out-key", NARROW_KEY_SCHEMA)
    runner = make_runner(registry, collector)
    _resolve_sink_key(runner)
    outcome = runner.process(Message(order(1), key=avro_key(registry, "u1")))
    assert (outcome.kind, outcome.reason) == (DEAD, "key_record_does_not_fit_schema")
    assert dict(outcome.sends[0].headers or [])["dlq.error.field"] == b"key"
    value_misfit = runner.process(Message(order(2, "misfit")))
    assert value_misfit.reason == "record_does_not_fit_schema"
    assert dict(value_misfit.sends[0].headers or [])["dlq.error.field"] == b"value"
    undecodable = runner.process(Message(frame(1, b"\x02")))
    assert dict(undecodable.sends[0].headers or [])["dlq.error.field"] == b"value"
    raised = runner.process(Message(order(3, "raise")))
    assert "dlq.error.field" not in dict(raised.sends[0].headers or [])


# ----- tombstones -----------------------------------------------------------------------------------------


def test_a_tombstone_is_forwarded_with_its_key_converted_without_calling_the_transform(
    registry: MemoryRegistry, collector: CollectorRegistry
) -> None:
    registry.register("orders-out-key", KEY_SCHEMA)
    calls: list[Any] = []
    runner = make_runner(registry, collector, fn=lambda r: calls.append(r) or r)
    _resolve_sink_key(runner)
    outcome = runner.process(Message(None, key=avro_key(registry, "u1"), headers=[("trace", b"t")]))
    assert outcome.kind == OUT and calls == []
    [send] = outcome.sends
    sink_key_id = registry.subjects["orders-out-key"][-1]
    assert (send.topic, send.value, send.headers) == ("orders-out", None, [("trace", b"t")])
    assert send.key == frame(sink_key_id, avro(KEY_SCHEMA, {"user": "u1"}))


def test_tombstones_are_counted_and_acked_like_any_output(
    registry: MemoryRegistry, collector: CollectorRegistry
) -> None:
    runner = make_runner(registry, collector)
    producer, acked = Producer(), []
    runner.bind(producer.send, acked.append)
    messages = [Message(order(0), key=b"a", offset=0), Message(None, key=b"a", offset=1)]
    asyncio.run(runner.handle(messages))
    assert [m.offset for m in acked] == [0, 1]
    assert [(s.key, s.value is None) for s in producer.delivered] == [(b"a", False), (b"a", True)]
    assert counter(collector, "avroflow_tombstones_total") == 1
    assert counter(collector, "avroflow_records_out_total") == 2
    assert counter(collector, "avroflow_records_dead_lettered_total", reason="framing") == 0


def test_a_tombstone_with_a_key_that_does_not_convert_is_a_key_dead_letter(
    registry: MemoryRegistry, collector: CollectorRegistry
) -> None:
    registry.register("orders-out-key", KEY_SCHEMA)
    runner = make_runner(registry, collector, key_format="avro")
    _resolve_sink_key(runner)
    outcome = runner.process(Message(None, key=b"not-a-frame"))
    assert (outcome.kind, outcome.reason) == (DEAD, "key_framing")
    assert outcome.sends[0].value is None and outcome.tombstone


def test_tombstones_handed_to_the_transform_get_none_and_may_return_a_tombstone_or_records(
    registry: MemoryRegistry, collector: CollectorRegistry
) -> None:
    def on_delete(record: dict[str, Any] | None) -> Any:
        if record is None:
            return [TOMBSTONE, {"id": 0, "name": "deleted", "amount_cents": 0}]
        return TOMBSTONE if record["marker"] == "delete" else transform(record)

    runner = make_runner(registry, collector, tombstones="transform", fn=on_delete)
    outcome = runner.process(Message(None, key=b"k"))
    assert outcome.kind == OUT
    assert outcome.sends[0].value is None
    assert outcome.sends[1].value is not None and outcome.sends[1].value[:5] == frame(2, b"")
    assert [s.key for s in outcome.sends] == [b"k", b"k"]
    deleted = runner.process(Message(order(1, "delete"), key=b"k"))
    assert [(s.key, s.value) for s in deleted.sends] == [(b"k", None)]


def test_tombstone_mode_is_checked() -> None:
    with pytest.raises(PipelineError, match="tombstones must be one of forward, transform"):
        Pipeline("p", "a", "b", transform, tombstones="drop")


def test_only_the_inputs_with_a_null_value_are_counted_as_tombstones(
    registry: MemoryRegistry, collector: CollectorRegistry
) -> None:
    runner = make_runner(registry, collector)
    producer, acked = Producer(), []
    runner.bind(producer.send, acked.append)
    messages = [Message(order(i), key=b"a", offset=i) for i in range(3)] + [Message(None, key=b"a", offset=3)]
    asyncio.run(runner.handle(messages))
    assert counter(collector, "avroflow_tombstones_total") == 1
    assert counter(collector, "avroflow_records_out_total") == 4
