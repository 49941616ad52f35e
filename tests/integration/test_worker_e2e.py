"""The worker end to end on the real broker and registry: confluent-kafka writes, the worker transforms,
confluent-kafka reads; poison messages land in the dead-letter topic with their reasons; counters add up."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext
from pipelines_for_tests import INPUT_SCHEMA, OUTPUT_SCHEMA, OUTPUT_SCHEMA_V2
from worker_harness import (
    AvroProducer,
    WorkerProcess,
    consume,
    latest_id,
    pipeline_topics,
    register,
    wait_for,
    worker_env,
)

from registry_codecs import schema_id_of

pytestmark = pytest.mark.integration


@pytest.fixture
def topics(bootstrap_servers: str, registry_url: str, unique_name: str) -> tuple[str, str]:
    source, sink = pipeline_topics(bootstrap_servers, unique_name)
    register(registry_url, f"{sink}-value", OUTPUT_SCHEMA)
    return source, sink


@pytest.fixture
def worker(
    bootstrap_servers: str, registry_url: str, unique_name: str, topics: tuple[str, str], tmp_path: Path
) -> Iterator[WorkerProcess]:
    source, sink = topics
    process = WorkerProcess(
        worker_env(bootstrap_servers, registry_url, unique_name, source, sink), tmp_path / "worker.log"
    )
    yield process
    process.stop()


def order(i: int, marker: str = "") -> dict[str, object]:
    return {"id": i, "name": f"name-{i}", "amount": i + 0.25, "marker": marker}


def test_outputs_decode_with_confluent_and_follow_the_latest_sink_schema(
    bootstrap_servers: str,
    registry_url: str,
    topics: tuple[str, str],
    worker: WorkerProcess,
    stack: ExitStack,
) -> None:
    source, sink = topics
    producer = stack.enter_context(AvroProducer(bootstrap_servers, registry_url, source, INPUT_SCHEMA))
    for i in range(30):
        producer.send(f"user-{i}".encode(), order(i))
    producer.flush()
    worker.start().wait_ready()
    assert worker.get("/healthz")[0] == 200

    outputs = consume(bootstrap_servers, sink, expected=30)
    deserializer = AvroDeserializer(stack.enter_context(SchemaRegistryClient({"url": registry_url})))
    v1_id = latest_id(registry_url, f"{sink}-value")
    decoded = {}
    for record in outputs:
        assert record.value is not None
        assert schema_id_of(record.value) == v1_id
        value = deserializer(record.value, SerializationContext(sink, MessageField.VALUE))
        decoded[value["id"]] = (record.key, value)
    assert sorted(decoded) == list(range(30))
    for i, (key, value) in decoded.items():
        assert key == f"user-{i}".encode()
        assert value == {"id": i, "name": f"NAME-{i}", "amount_cents": round((i + 0.25) * 100)}

    # A version registered while the worker runs is picked up without a restart.
    v2_id = register(registry_url, f"{sink}-value", OUTPUT_SCHEMA_V2)
    assert v2_id != v1_id
    sent = [30]

    def an_output_uses_v2() -> bool:
        producer.send(b"late", order(sent[0]))
        producer.flush()
        sent[0] += 1
        records = consume(bootstrap_servers, sink, expected=sent[0], timeout=5)
        return any(r.value is not None and schema_id_of(r.value) == v2_id for r in records)

    wait_for(an_output_uses_v2, timeout=30, what="an output encoded with the new sink schema", interval=0.5)
    newest = [
        r for r in consume(bootstrap_servers, sink, expected=sent[0]) if schema_id_of(r.value or b"") == v2_id
    ]
    value = deserializer(newest[0].value, SerializationContext(sink, MessageField.VALUE))
    assert value["channel"] == "web"  # the new field's default, written by the worker with version 2


def test_poison_messages_are_dead_lettered_with_reasons_while_the_pipeline_goes_on(
    bootstrap_servers: str,
    registry_url: str,
    topics: tuple[str, str],
    worker: WorkerProcess,
    stack: ExitStack,
) -> None:
    source, sink = topics
    producer = stack.enter_context(AvroProducer(bootstrap_servers, registry_url, source, INPUT_SCHEMA))
    good = producer.encode(order(1000))
    input_id = schema_id_of(good)
    poison: dict[str, tuple[bytes, str, str]] = {  # key -> (value, reason, error class suffix)
        "bad-magic": (b"\x01" + good[1:], "framing", "FramingError"),
        "short-frame": (b"\x00\x00\x01", "framing", "FramingError"),
        "unknown-id": (b"\x00" + (987654).to_bytes(4, "big") + good[5:], "unknown_schema", "SchemaNotFound"),
        "undecodable": (good[:8], "body_does_not_decode", "DecodeError"),
        "raise": (producer.encode(order(2000, "raise")), "transform_failed", "ValueError"),
        "misfit": (
            producer.encode(order(2001, "misfit")),
            "record_does_not_fit_schema",
            "ValueDoesNotFit",  # a RecordDoesNotFitSchema naming the field, its Avro and Python types
        ),
        "not-a-dict": (
            producer.encode(order(2002, "not-a-dict")),
            "transform_result_invalid",
            "TransformResultError",
        ),
        "huge": (producer.encode(order(2003, "huge")), "output_too_large", "OutputTooLarge"),
    }
    for i in range(10):
        producer.send(f"good-{i}".encode(), order(i))
    for key, (value, _, _) in poison.items():
        producer.send_raw(key.encode(), value, headers=[("trace-id", f"trace-{key}".encode())])
    producer.send(b"drop", order(3000, "drop"))
    producer.send(b"fanout", order(3001, "fanout"))
    for i in range(10, 20):
        producer.send(f"good-{i}".encode(), order(i))
    producer.flush()
    total = 20 + len(poison) + 2
    worker.start().wait_ready()

    def all_accounted() -> bool:
        counted = sum(
            worker.counter(name, pipeline="orders")
            for name in ("avroflow_records_out_total", "avroflow_records_dropped_total")
        ) + worker.counter("avroflow_records_dead_lettered_total", pipeline="orders")
        return counted == total

    wait_for(all_accounted, timeout=60, what="every input to be accounted for")
    status, metrics_text = worker.get("/metrics")
    assert status == 200
    for content in (b"name-", b"NAME-", b"trace-", b"good-"):  # no record content, keys or headers
        assert content.decode() not in metrics_text
    assert worker.counter("avroflow_records_in_total", pipeline="orders") == total
    assert worker.counter("avroflow_records_out_total", pipeline="orders") == 21
    assert worker.counter("avroflow_output_records_total", pipeline="orders") == 22
    assert worker.counter("avroflow_records_dropped_total", pipeline="orders") == 1
    for reason in {r for _, r, _ in poison.values()}:
        expected = sum(1 for _, r, _ in poison.values() if r == reason)
        assert (
            worker.counter("avroflow_records_dead_lettered_total", pipeline="orders", reason=reason)
            == expected
        )
    assert worker.counter("avroflow_decode_failures_total", reason="framing") == 2
    assert worker.counter("avroflow_encode_failures_total", reason="record_does_not_fit_schema") >= 1

    outputs = consume(bootstrap_servers, sink, expected=22)
    assert sorted(r.key for r in outputs if r.key and r.key.startswith(b"good-")) == sorted(
        f"good-{i}".encode() for i in range(20)
    )
    assert sorted(r.key for r in outputs if r.key == b"fanout") == [b"fanout", b"fanout"]

    sources = {r.key: r for r in consume(bootstrap_servers, source, expected=total)}
    dead = consume(bootstrap_servers, f"{source}.dlq", expected=len(poison))
    assert sorted(r.key.decode() for r in dead if r.key) == sorted(poison)
    for record in dead:
        assert record.key is not None
        value, reason, error_class = poison[record.key.decode()]
        original = sources[record.key]
        assert record.value == value  # the original bytes, untouched
        headers = record.headers
        assert headers["trace-id"] == f"trace-{record.key.decode()}".encode()  # existing headers kept
        assert headers["dlq.source.topic"] == source.encode()
        assert headers["dlq.source.partition"] == str(original.partition).encode()
        assert headers["dlq.source.offset"] == str(original.offset).encode()
        assert int(headers["dlq.source.timestamp"]) > 0
        assert headers["dlq.error.reason"] == reason.encode()
        assert headers["dlq.error.class"].decode().endswith(error_class)
        assert 0 < len(headers["dlq.error.message"]) <= 600
        assert headers["dlq.pipeline"] == b"orders"
        if reason == "framing":
            assert "dlq.schema.id" not in headers
        elif reason == "unknown_schema":
            assert headers["dlq.schema.id"] == b"987654"
        else:
            assert headers["dlq.schema.id"] == str(input_id).encode()


KEY_SCHEMA = '{"type": "record", "name": "OrderKey", "fields": [{"name": "user", "type": "string"}]}'
#: The sink's key schema: one more field with a default, so re-encoded keys differ from the input keys.
SINK_KEY_SCHEMA = (
    '{"type": "record", "name": "OrderKey", "fields": [{"name": "user", "type": "string"}, '
    '{"name": "region", "type": "string", "default": "eu"}]}'
)


def test_avro_keys_are_reencoded_with_the_sink_key_subject(
    bootstrap_servers: str,
    registry_url: str,
    topics: tuple[str, str],
    worker: WorkerProcess,
    stack: ExitStack,
) -> None:
    source, sink = topics
    sink_key_id = register(registry_url, f"{sink}-key", SINK_KEY_SCHEMA)
    registry = stack.enter_context(SchemaRegistryClient({"url": registry_url}))
    key_serializer = AvroSerializer(registry, KEY_SCHEMA)
    producer = stack.enter_context(AvroProducer(bootstrap_servers, registry_url, source, INPUT_SCHEMA))
    for i in range(10):
        key = key_serializer({"user": f"u{i}"}, SerializationContext(source, MessageField.KEY))
        producer.send(key, order(i))
    producer.send(b"plain-bytes-key", order(10))
    producer.flush()
    worker.start().wait_ready()

    outputs = consume(bootstrap_servers, sink, expected=11)
    assert len(outputs) == 11
    key_deserializer = AvroDeserializer(registry)
    keys = set()
    for record in outputs:
        assert record.key is not None
        if record.key == b"plain-bytes-key":
            continue
        assert schema_id_of(record.key) == sink_key_id
        key = key_deserializer(record.key, SerializationContext(sink, MessageField.KEY))
        keys.add((key["user"], key["region"]))
    assert keys == {(f"u{i}", "eu") for i in range(10)}


#: The test output schema with `amount_cents` as a 32-bit int: the transform's cents overflow it.
OUTPUT_INT_SCHEMA = json.dumps(
    {
        **json.loads(OUTPUT_SCHEMA),
        "fields": [
            {"name": "id", "type": "long"},
            {"name": "name", "type": "string"},
            {"name": "amount_cents", "type": "int"},
        ],
    }
)


def test_an_output_int_out_of_range_is_dead_lettered_not_written(
    bootstrap_servers: str, registry_url: str, unique_name: str, tmp_path: Path, stack: ExitStack
) -> None:
    source, sink = pipeline_topics(bootstrap_servers, unique_name)
    register(registry_url, f"{sink}-value", OUTPUT_INT_SCHEMA)
    worker = WorkerProcess(
        worker_env(bootstrap_servers, registry_url, unique_name, source, sink), tmp_path / "worker.log"
    )
    stack.callback(worker.stop)
    producer = stack.enter_context(AvroProducer(bootstrap_servers, registry_url, source, INPUT_SCHEMA))
    too_many_cents = {"id": 2, "name": "big", "amount": 30_000_000.0, "marker": ""}  # 3e9 cents > 2**31 - 1
    producer.send(b"fits", order(1))
    producer.send(b"overflows", too_many_cents)
    producer.send(b"fits-too", order(3))
    producer.flush()
    worker.start().wait_ready()

    def accounted() -> bool:
        return worker.counter("avroflow_records_in_total", pipeline="orders") == 3 and (
            worker.counter("avroflow_records_out_total", pipeline="orders")
            + worker.counter("avroflow_records_dead_lettered_total", pipeline="orders")
            == 3
        )

    wait_for(accounted, timeout=60, what="the three inputs to be accounted for")
    assert (
        worker.counter(
            "avroflow_records_dead_lettered_total", pipeline="orders", reason="record_does_not_fit_schema"
        )
        == 1
    )
    outputs = consume(bootstrap_servers, sink, expected=2)
    assert sorted(r.key for r in outputs if r.key) == [b"fits", b"fits-too"]  # nothing written for it
    [dead] = consume(bootstrap_servers, f"{source}.dlq", expected=1)
    assert dead.key == b"overflows"
    assert dead.headers["dlq.error.reason"] == b"record_does_not_fit_schema"
    assert dead.headers["dlq.error.class"].decode().endswith("ValueDoesNotFit")
    message = dead.headers["dlq.error.message"].decode()
    assert "at amount_cents" in message and "int" in message and "3000000000" in message
