"""The worker process at the edges (issue 13): keys that must be Avro, a key subject registered while it
runs (and a new version of it) used within the refresh interval, key failures dead-lettered as such,
tombstones forwarded, and records nested 1,000 deep going through while 10,000-deep ones are
dead-lettered and the worker stays up."""

from __future__ import annotations

import io
import json
import signal
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import fastavro
import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext
from pipelines_for_tests import CHAIN_SCHEMA, INPUT_SCHEMA, OUTPUT_SCHEMA, order
from worker_harness import (
    AvroProducer,
    WorkerProcess,
    consume,
    pipeline_topics,
    register,
    wait_for,
    worker_env,
)

from registry_codecs import frame, schema_id_of
from workers.app import EXIT_PREFLIGHT

pytestmark = pytest.mark.integration

KEY_SCHEMA = '{"type": "record", "name": "OrderKey", "fields": [{"name": "user", "type": "string"}]}'
SINK_KEY_SCHEMA = (
    '{"type": "record", "name": "OrderKey", "fields": [{"name": "user", "type": "string"}, '
    '{"name": "region", "type": "string", "default": "eu"}]}'
)
#: The sink key schema's second version (one more field with a default).
SINK_KEY_SCHEMA_V2 = SINK_KEY_SCHEMA.replace(
    "}]}", '}, {"name": "tier", "type": "string", "default": "basic"}]}'
)
#: A key the sink's key schema cannot take: it has no `user`.
OTHER_KEY_SCHEMA = '{"type": "record", "name": "OtherKey", "fields": [{"name": "n", "type": "long"}]}'


def start(env: dict[str, str], log: Path, stack: ExitStack) -> WorkerProcess:
    worker = WorkerProcess(env, log).start()
    stack.callback(worker.stop)
    return worker


def test_avro_keys_without_a_sink_key_subject_refuse_the_start_naming_it(
    bootstrap_servers: str, registry_url: str, unique_name: str, tmp_path: Path, stack: ExitStack
) -> None:
    source, sink = f"{unique_name}-in", f"{unique_name}-out"
    register(registry_url, f"{sink}-value", OUTPUT_SCHEMA)
    env = worker_env(
        bootstrap_servers,
        registry_url,
        unique_name,
        source,
        sink,
        AVROFLOW_PIPELINES="tests.pipelines_for_tests:PIPELINES_AVRO_KEYS",
    )
    worker = start(env, tmp_path / "w.log", stack)
    assert worker.wait(60) == EXIT_PREFLIGHT
    assert f"sink key subject {sink}-key does not exist" in worker.log()


def test_a_key_subject_registered_while_running_is_used_and_tombstones_are_forwarded(
    bootstrap_servers: str, registry_url: str, unique_name: str, tmp_path: Path, stack: ExitStack
) -> None:
    source, sink = pipeline_topics(bootstrap_servers, unique_name)
    register(registry_url, f"{sink}-value", OUTPUT_SCHEMA)
    registry = stack.enter_context(SchemaRegistryClient({"url": registry_url}))
    keys = AvroSerializer(registry, KEY_SCHEMA)

    def key(user: str) -> bytes:
        return bytes(keys({"user": user}, SerializationContext(source, MessageField.KEY)))

    worker = start(
        worker_env(bootstrap_servers, registry_url, unique_name, source, sink), tmp_path / "w.log", stack
    )
    worker.wait_ready()
    producer = stack.enter_context(AvroProducer(bootstrap_servers, registry_url, source, INPUT_SCHEMA))
    for i in range(3):
        producer.send(key(f"before-{i}"), order(i))
    producer.flush()
    before = consume(bootstrap_servers, sink, expected=3)
    assert sorted(r.key for r in before if r.key) == sorted(key(f"before-{i}") for i in range(3))  # carried

    sink_key_id = register(registry_url, f"{sink}-key", SINK_KEY_SCHEMA)
    time.sleep(float(worker.env["AVROFLOW_LATEST_SCHEMA_TTL_SECONDS"]) + 1.0)  # the refresh interval
    for i in range(3):
        producer.send(key(f"after-{i}"), order(10 + i))
    producer.send_raw(key("deleted"), None, headers=[("trace", b"t-1")])
    producer.send_raw(b"plain-key", None)
    misfit = frame(register(registry_url, f"{source}-other-key", OTHER_KEY_SCHEMA), b"\x02")  # {"n": 1}
    producer.send(misfit, order(20))
    producer.flush()

    outputs = consume(bootstrap_servers, sink, expected=8, timeout=60)
    dead = consume(bootstrap_servers, f"{source}.dlq", expected=1, timeout=30)
    decode = AvroDeserializer(registry)
    by_user = {
        decode(r.key, SerializationContext(sink, MessageField.KEY))["user"]: r
        for r in outputs
        if r.key and r.key != b"plain-key"
    }
    assert sorted(by_user) == sorted(
        [*(f"before-{i}" for i in range(3)), *(f"after-{i}" for i in range(3)), "deleted"]
    )
    source_key_id = schema_id_of(key("x"))
    for user, record in by_user.items():
        assert record.key is not None
        assert schema_id_of(record.key) == (source_key_id if user.startswith("before") else sink_key_id), user
    tombstone = by_user["deleted"]
    assert tombstone.value is None and tombstone.headers == {"trace": b"t-1"}
    assert [(r.key, r.value) for r in outputs if r.key == b"plain-key"] == [(b"plain-key", None)]

    [letter] = dead
    assert (letter.key, letter.headers["dlq.error.field"]) == (misfit, b"key")
    assert letter.headers["dlq.error.reason"] == b"key_record_does_not_fit_schema"
    # counted once the batch is acknowledged, a moment after its records are readable
    wait_for(lambda: worker.counter("avroflow_tombstones_total", pipeline="orders") == 2, 10, "the count")
    reason = "key_record_does_not_fit_schema"
    assert worker.counter("avroflow_records_dead_lettered_total", pipeline="orders", reason=reason) == 1
    assert worker.counter("avroflow_records_dead_lettered_total", pipeline="orders", reason="framing") == 0

    # a new version of the key subject is picked up like a new version of the value subject
    v2_id = register(registry_url, f"{sink}-key", SINK_KEY_SCHEMA_V2)
    time.sleep(float(worker.env["AVROFLOW_LATEST_SCHEMA_TTL_SECONDS"]) + 1.0)
    producer.send(key("v2"), order(30))
    producer.flush()
    seen = {r.key for r in outputs}
    [last] = [r for r in consume(bootstrap_servers, sink, expected=9, timeout=60) if r.key not in seen]
    assert last.key is not None and schema_id_of(last.key) == v2_id
    assert decode(last.key, SerializationContext(sink, MessageField.KEY))["tier"] == "basic"


def zigzag(n: int) -> bytes:
    value, out = (n << 1) ^ (n >> 63), bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        if not value:
            return bytes(out + bytes([byte]))
        out.append(byte | 0x80)


def chain_body(levels: int, marker: str = "") -> bytes:
    """A chain of `levels` records written by hand (the head carries `marker`)."""
    head = marker.encode()
    nodes = [
        zigzag(i) + zigzag(len(head) if i == 0 else 0) + (head if i == 0 else b"") for i in range(levels)
    ]
    return b"\x02".join(nodes) + b"\x00"


def chain_ids(record: dict[str, Any]) -> list[int]:
    ids, node = [], record
    while node is not None:  # no recursion: == or repr on such a dict recurses past Python's limit
        ids.append(node["id"])
        node = node["next"]
    return ids


@pytest.mark.slow
def test_records_1000_deep_go_through_and_10000_deep_ones_are_dead_lettered_without_a_crash(
    bootstrap_servers: str, registry_url: str, unique_name: str, tmp_path: Path, stack: ExitStack
) -> None:
    source, sink = pipeline_topics(bootstrap_servers, unique_name)
    chain_id = register(registry_url, f"{source}-value", CHAIN_SCHEMA)
    assert register(registry_url, f"{sink}-value", CHAIN_SCHEMA) == chain_id
    env = worker_env(
        bootstrap_servers,
        registry_url,
        unique_name,
        source,
        sink,
        AVROFLOW_PIPELINES="tests.pipelines_for_tests:PIPELINES_DEEP",
    )
    worker = start(env, tmp_path / "w.log", stack)
    worker.wait_ready()
    inputs = {
        b"deep-1000": chain_body(1000),
        b"deep-10000-input": chain_body(10_000),
        b"grow-10000-output": chain_body(1, "grow"),
        **{f"after-{i}".encode(): chain_body(1) for i in range(3)},
    }
    producer = stack.enter_context(AvroProducer(bootstrap_servers, registry_url, source, CHAIN_SCHEMA))
    for key, body in inputs.items():
        producer.send_raw(key, frame(chain_id, body))
    producer.flush()

    def handled() -> bool:
        worker.check_running()  # a segmentation fault fails here, with the log
        names = ("avroflow_records_out_total", "avroflow_records_dead_lettered_total")
        return sum(worker.counter(name, pipeline="deep") for name in names) >= len(inputs)

    wait_for(handled, 180, "every input to be handled")
    outputs = {r.key: r for r in consume(bootstrap_servers, sink, expected=4, timeout=60)}
    assert sorted(k for k in outputs if k) == [b"after-0", b"after-1", b"after-2", b"deep-1000"]
    value = outputs[b"deep-1000"].value
    assert value is not None and schema_id_of(value) == chain_id
    parsed = fastavro.parse_schema(json.loads(CHAIN_SCHEMA))
    deep = fastavro.schemaless_reader(io.BytesIO(value[5:]), parsed)
    assert chain_ids(deep) == list(range(1000)) and deep["marker"] == "seen"

    dead = {r.key: r.headers for r in consume(bootstrap_servers, f"{source}.dlq", expected=2, timeout=30)}
    assert sorted(k for k in dead if k) == [b"deep-10000-input", b"grow-10000-output"]
    for headers in dead.values():
        assert headers["dlq.error.reason"] == b"record_too_deep"
        assert headers["dlq.error.field"] == b"value"
        assert b"deeper than 2000 levels" in headers["dlq.error.message"]
    assert worker.readyz()[0] == 200
    worker.signal(signal.SIGTERM)
    assert worker.wait(30) == 0
