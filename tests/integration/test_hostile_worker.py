"""Hostile input through the worker: random bytes, bad magic, truncated bodies, huge length prefixes,
arrays of 2**40 nulls, recursion deeper than the C stack, unknown ids, valid ids with the wrong body, flipped
bytes. The worker never crashes or stalls, its memory stays bounded, and every input ends as an output or a
dead letter (each input carries an ``x-test-id`` header, which the worker copies to what it writes)."""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

import pytest
from confluent_kafka import Producer
from faults_harness import Tally, counter_once_up, rss_bytes
from pipelines_for_tests import INPUT_SCHEMA, INPUT_SCHEMA_V2, OUTPUT_SCHEMA
from worker_harness import WorkerProcess, consume, pipeline_topics, register, wait_for, worker_env

from registry_codecs import AvroSerializer, RegistryClient, frame

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SEED = 20261201
COUNT = 400
NODE = {
    "type": "record",
    "name": "Node",
    "fields": [{"name": "next", "type": ["null", "Node"]}],
}
#: A writer schema the pipeline's reader accepts (it ignores the extra fields), with the two shapes a tiny
#: body can blow up: a recursive type and an array of items that take no bytes.
HOSTILE_WRITER = json.dumps(
    {
        **json.loads(INPUT_SCHEMA),
        "fields": [
            *json.loads(INPUT_SCHEMA)["fields"],
            {"name": "tree", "type": ["null", NODE], "default": None},
            {"name": "nulls", "type": {"type": "array", "items": "null"}, "default": []},
        ],
    }
)


def zigzag(n: int) -> bytes:
    value, out = (n << 1) ^ (n >> 63), bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        if not value:
            return bytes(out + bytes([byte]))
        out.append(byte | 0x80)


def order_body(i: int) -> bytes:
    """The Avro body of an Order (id, name, amount, marker) written by hand."""
    return zigzag(i) + zigzag(4) + b"name" + b"\x00" * 8 + zigzag(0)


def hostile_inputs(ids: dict[str, int], good: Callable[[int], bytes]) -> list[tuple[str, bytes | None]]:
    """`COUNT` seeded inputs of every kind, each with its kind's name."""
    rng = random.Random(SEED)
    hostile = ids["hostile"]

    def mutate(data: bytes) -> bytes:
        out = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            out[rng.randrange(len(out))] = rng.randrange(256)
        return bytes(out)

    makers: list[tuple[str, Callable[[int], bytes | None]]] = [
        ("valid", good),
        ("random bytes", lambda i: rng.randbytes(rng.randint(0, 64))),
        ("bad magic", lambda i: bytes([rng.randint(1, 255)]) + good(i)[1:]),
        ("truncated", lambda i: good(i)[: rng.randint(1, len(good(i)) - 1)]),
        ("huge string length", lambda i: frame(ids["v1"], zigzag(i) + zigzag(2**40) + b"abc")),
        ("unknown id", lambda i: frame(rng.randint(10**6, 2**31 - 1), order_body(i))),
        ("wrong body for id", lambda i: frame(ids["output"], rng.randbytes(rng.randint(1, 40)))),
        ("flipped bytes", lambda i: mutate(good(i))),
        (
            "array of 2**40 nulls",
            lambda i: frame(hostile, order_body(i) + zigzag(0) + zigzag(2**40) + zigzag(0)),
        ),
        ("recursion 20000 deep", lambda i: frame(hostile, order_body(i) + b"\x02" * 20000 + b"\x00\x00")),
        ("null value", lambda i: None),
    ]
    return [(name, make(i)) for i in range(COUNT) for name, make in [makers[i % len(makers)]]]


def test_hostile_frames_are_all_accounted_for_and_the_worker_survives(
    bootstrap_servers: str, registry_url: str, unique_name: str, tmp_path: Path, stack: ExitStack
) -> None:
    source, sink = pipeline_topics(bootstrap_servers, unique_name)
    register(registry_url, f"{sink}-value", OUTPUT_SCHEMA)
    with RegistryClient(registry_url) as client:
        ids = {
            "v1": client.register(f"{source}-value", INPUT_SCHEMA),
            "v2": client.register(f"{source}-v2-value", INPUT_SCHEMA_V2),
            "hostile": client.register(f"{source}-hostile-value", HOSTILE_WRITER),
            "output": client.get_latest(f"{sink}-value").schema_id,
        }
        encoder = AvroSerializer(client, f"{source}-value")

        def good(i: int) -> bytes:
            return encoder.encode({"id": i, "name": f"n{i}", "amount": float(i), "marker": ""})

        inputs = hostile_inputs(ids, good)
    env = worker_env(bootstrap_servers, registry_url, unique_name, source, sink)
    worker = WorkerProcess(env, tmp_path / "worker.log").start()
    stack.callback(worker.stop)
    worker.wait_ready()
    assert worker.proc is not None
    rss_before = rss_bytes(worker.proc.pid)

    producer = Producer({"bootstrap.servers": bootstrap_servers})
    for i, (_, value) in enumerate(inputs):
        producer.produce(source, key=f"k{i}".encode(), value=value, headers=[("x-test-id", str(i).encode())])
    assert producer.flush(30) == 0

    def handled() -> bool:
        worker.check_running()  # a crash (segfault, out of memory) fails here, with the log
        done = (
            "avroflow_records_out_total",
            "avroflow_records_dead_lettered_total",
            "avroflow_records_dropped_total",
        )
        return sum(counter_once_up(worker, name) for name in done) >= len(inputs)

    wait_for(handled, 120, "every hostile input to be handled")
    rss_after = rss_bytes(worker.proc.pid)
    out_n = worker.counter("avroflow_records_out_total")
    dead_n = worker.counter("avroflow_records_dead_lettered_total")
    dropped = worker.counter("avroflow_records_dropped_total")
    assert out_n + dead_n + dropped == len(inputs) == worker.counter("avroflow_records_in_total")

    outputs = Counter(
        int(r.headers["x-test-id"]) for r in consume(bootstrap_servers, sink, expected=int(out_n), timeout=60)
    )
    dead = Counter(
        int(r.headers["x-test-id"])
        for r in consume(bootstrap_servers, f"{source}.dlq", expected=int(dead_n), timeout=60)
    )
    kinds = {i: kind for i, (kind, _) in enumerate(inputs)}
    lost = set(kinds) - set(outputs) - set(dead)
    Tally(
        "hostile input",
        records_in=len(inputs),
        out=len(outputs),
        dead_lettered=len(dead),
        duplicated=sum(n - 1 for n in (outputs + dead).values()),
        lost=len(lost),
    ).report()
    assert not lost, sorted((i, kinds[i]) for i in lost)
    assert all(i in outputs for i, kind in kinds.items() if kind == "valid")
    for kind in (
        "bad magic",
        "huge string length",
        "unknown id",
        "array of 2**40 nulls",
        "recursion 20000 deep",
    ):
        assert all(i in dead for i, k in kinds.items() if k == kind), kind
    assert rss_after - rss_before < 100 * 2**20, f"RSS grew by {(rss_after - rss_before) / 2**20:.0f} MB"
    assert worker.readyz()[0] == 200  # not stuck: an unknown id is a dead letter, not a wait
