"""`python -m workers produce` and `consume` as subprocesses through the real broker and registry."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import fastavro
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from worker_harness import cli_env

from registry_codecs.registry import RegistryClient
from workers.sample import INPUT_SCHEMA_FILE

pytestmark = pytest.mark.integration

EVENTS = [
    {"event_id": "e1", "user_id": "u1", "event_type": "click", "occurred_at": "2024-05-01T12:00:00Z"},
    {
        "event_id": "e2",
        "user_id": "u2",
        "event_type": "purchase",
        "occurred_at": 1714566600000,
        "properties": {"plan": "pro"},
        "referrer": {"string": "https://ref.example"},
        "session_id": "s-1",
    },
]

MONEY = {
    "type": "record",
    "name": "Payment",
    "namespace": "t",
    "fields": [
        {"name": "amount", "type": {"type": "bytes", "logicalType": "decimal", "precision": 9, "scale": 2}},
        {"name": "signature", "type": "bytes"},
        {"name": "paid_on", "type": ["null", {"type": "int", "logicalType": "date"}], "default": None},
        {"name": "at", "type": {"type": "long", "logicalType": "timestamp-micros"}},
    ],
}


@pytest.fixture
def client(registry_url: str) -> Iterator[RegistryClient]:
    registry = RegistryClient(registry_url)
    yield registry
    registry.close()


@pytest.fixture
def topic(unique_name: str, broker: Any) -> str:
    broker.create_topics([unique_name], partitions=1)
    return unique_name


def _cli(
    bootstrap_servers: str, registry_url: str, *args: str, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    env = cli_env(bootstrap_servers, registry_url)
    return subprocess.run(
        [sys.executable, "-m", "workers", *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _lines(records: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(r) + "\n" for r in records)


def test_produce_then_consume_round_trips_records_keys_and_schema_id(
    bootstrap_servers: str, registry_url: str, client: RegistryClient, topic: str
) -> None:
    schema_id = client.register(f"{topic}-value", INPUT_SCHEMA_FILE.read_text())
    produced = _cli(
        bootstrap_servers, registry_url, "produce", topic, "--key-field", "user_id", stdin=_lines(EVENTS)
    )
    assert produced.returncode == 0, produced.stderr
    assert f"produced 2 record(s) to {topic} with schema id {schema_id}" in produced.stderr

    consumed = _cli(
        bootstrap_servers,
        registry_url,
        "consume",
        topic,
        "--from-beginning",
        "--max-messages",
        "2",
        "--timeout",
        "20",
    )
    assert consumed.returncode == 0, consumed.stderr
    out = [json.loads(line) for line in consumed.stdout.splitlines()]
    assert [(m["partition"], m["offset"], m["key"], m["schema_id"]) for m in out] == [
        (0, 0, "u1", schema_id),
        (0, 1, "u2", schema_id),
    ]
    assert out[0]["value"] == {
        "event_id": "e1",
        "user_id": "u1",
        "event_type": "click",
        "occurred_at": "2024-05-01T12:00:00+00:00",
        "properties": {},
        "referrer": None,
        "session_id": None,
    }
    assert out[1]["value"]["occurred_at"] == "2024-05-01T12:30:00+00:00"
    assert (out[1]["value"]["referrer"], out[1]["value"]["session_id"]) == ("https://ref.example", "s-1")


def test_bytes_decimal_and_dates_print_and_read_back(
    bootstrap_servers: str, registry_url: str, client: RegistryClient, topic: str
) -> None:
    client.register(f"{topic}-value", json.dumps(MONEY))
    record = {
        "amount": "1234.50",
        "signature": "\u0000\u00ff",
        "paid_on": "2024-02-29",
        "at": "2024-02-29T23:59:59.123456+00:00",
    }
    assert _cli(bootstrap_servers, registry_url, "produce", topic, stdin=_lines([record])).returncode == 0
    consumed = _cli(
        bootstrap_servers, registry_url, "consume", topic, "--from-beginning", "--max-messages", "1"
    )
    assert consumed.returncode == 0, consumed.stderr
    [line] = [json.loads(x) for x in consumed.stdout.splitlines()]
    assert line["key"] is None
    assert line["value"] == record
    assert Decimal(line["value"]["amount"]) == Decimal("1234.50")
    # What consume prints is what produce accepts: feed it back.
    again = _cli(bootstrap_servers, registry_url, "produce", topic, stdin=_lines([line["value"]]))
    assert again.returncode == 0, again.stderr


def test_consume_shows_a_poison_message_and_goes_on(
    bootstrap_servers: str, registry_url: str, client: RegistryClient, topic: str
) -> None:
    client.register(f"{topic}-value", INPUT_SCHEMA_FILE.read_text())
    producer = Producer({"bootstrap.servers": bootstrap_servers})
    producer.produce(topic, value=b"not a frame", key=b"k")
    producer.flush(10)
    assert _cli(bootstrap_servers, registry_url, "produce", topic, stdin=_lines(EVENTS[:1])).returncode == 0
    consumed = _cli(
        bootstrap_servers, registry_url, "consume", topic, "--from-beginning", "--max-messages", "2"
    )
    assert consumed.returncode == 0, consumed.stderr
    poison, good = (json.loads(x) for x in consumed.stdout.splitlines())
    assert poison["schema_id"] is None and poison["error"].startswith("framing")
    assert poison["raw"] == "not a frame" and poison["key"] == "k"
    assert good["value"]["event_id"] == "e1"


def test_a_line_that_does_not_fit_stops_produce_naming_line_and_field(
    bootstrap_servers: str, registry_url: str, client: RegistryClient, topic: str
) -> None:
    client.register(f"{topic}-value", INPUT_SCHEMA_FILE.read_text())
    bad = {**EVENTS[0], "event_type": "teleport"}
    result = _cli(bootstrap_servers, registry_url, "produce", topic, stdin=_lines([EVENTS[0], bad]))
    assert result.returncode == 1
    assert "line 2" in result.stderr and "event_type" in result.stderr
    not_json = _cli(bootstrap_servers, registry_url, "produce", topic, stdin="{oops\n")
    assert not_json.returncode == 1 and "line 1" in not_json.stderr


def test_produce_to_a_topic_without_a_subject_says_to_register_first(
    bootstrap_servers: str, registry_url: str, topic: str
) -> None:
    result = _cli(bootstrap_servers, registry_url, "produce", topic, stdin=_lines(EVENTS[:1]))
    assert result.returncode == 1
    assert f"{topic}-value" in result.stderr and "schemas register" in result.stderr


def test_consume_with_a_timeout_ends_on_an_empty_topic(
    bootstrap_servers: str, registry_url: str, topic: str
) -> None:
    result = _cli(bootstrap_servers, registry_url, "consume", topic, "--from-beginning", "--timeout", "1")
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    assert f"consumed 0 message(s) from {topic}" in result.stderr


# -- --format avro-json ------------------------------------------------------------------------------------

CREATED = {"type": "record", "name": "Created", "fields": [{"name": "id", "type": "long"}]}
DELETED = {"type": "record", "name": "Deleted", "fields": [{"name": "id", "type": "long"}]}
HARD = {
    "type": "record",
    "name": "Hard",
    "namespace": "t",
    "fields": [
        {"name": "change", "type": [CREATED, DELETED]},
        {"name": "number", "type": ["int", "long"]},
        {"name": "kind", "type": {"type": "enum", "name": "Kind", "symbols": ["A", "B"]}},
        {"name": "md5", "type": {"type": "fixed", "name": "Md5", "size": 2}},
        {"name": "price", "type": {"type": "bytes", "logicalType": "decimal", "precision": 9, "scale": 2}},
        {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "props", "type": {"type": "map", "values": ["null", "double"]}},
        {"name": "tags", "type": {"type": "array", "items": "string"}},
        {
            "name": "tree",
            "type": {
                "type": "record",
                "name": "Node",
                "fields": [{"name": "label", "type": "string"}, {"name": "next", "type": ["null", "Node"]}],
            },
        },
    ],
}
HARD_RECORDS = [
    {
        "change": ("t.Deleted", {"id": 7}),
        "number": ("long", 5),
        "kind": "B",
        "md5": b"\x00\xff",
        "price": Decimal("-12.34"),
        "at": 1714566600123,
        "props": {"nan": ("double", float("nan")), "none": None, "x": ("double", 1e-7)},
        "tags": ["é", '"\n'],
        "tree": {"label": "a", "next": ("t.Node", {"label": "b", "next": None})},
    },
    {
        "change": ("t.Created", {"id": 8}),
        "number": ("int", 5),
        "kind": "A",
        "md5": b"ab",
        "price": Decimal("0.00"),
        "at": 0,
        "props": {},
        "tags": [],
        "tree": {"label": "😀", "next": None},
    },
]
HARD_FIRST_LINE = (
    '{"change":{"t.Deleted":{"id":7}},"number":{"long":5},"kind":"B","md5":"\\u0000\xff",'
    '"price":"\xfb.","at":1714566600123,"props":{"nan":{"double":"NaN"},"none":null,"x":{"double":1.0E-7}},'
    '"tags":["\xe9","\\"\\n"],"tree":{"label":"a","next":{"t.Node":{"label":"b","next":null}}}}'
)


def _frame(schema_id: int, record: dict[str, Any]) -> bytes:
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, fastavro.parse_schema(HARD), record)
    return b"\x00" + schema_id.to_bytes(4, "big") + buf.getvalue()


def _raw_values(bootstrap_servers: str, topic: str, count: int) -> list[bytes | None]:
    consumer = Consumer(
        {"bootstrap.servers": bootstrap_servers, "group.id": f"{topic}-raw", "auto.offset.reset": "earliest"}
    )
    consumer.subscribe([topic])
    values: list[bytes | None] = []
    try:
        deadline = time.monotonic() + 30
        while len(values) < count and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                values.append(message.value())
    finally:
        consumer.close()
    return values


def _message_count(bootstrap_servers: str, topic: str) -> int:
    consumer = Consumer({"bootstrap.servers": bootstrap_servers, "group.id": f"{topic}-count"})
    try:
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
    finally:
        consumer.close()
    return int(high - low)


def test_avro_json_consume_piped_into_produce_reproduces_the_frames(
    bootstrap_servers: str, registry_url: str, client: RegistryClient, topic: str
) -> None:
    schema_id = client.register(f"{topic}-value", json.dumps(HARD))
    frames = [_frame(schema_id, r) for r in HARD_RECORDS]
    producer = Producer({"bootstrap.servers": bootstrap_servers})
    for value in frames:
        producer.produce(topic, value=value)
    producer.flush(10)

    # consume --format avro-json | tee | produce --format avro-json, both real processes on one pipe
    env = cli_env(bootstrap_servers, registry_url)
    command = [sys.executable, "-m", "workers"]
    consume = subprocess.Popen(
        [*command, "consume", topic, "--from-beginning", "--max-messages", "2", "--format", "avro-json"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    produce = subprocess.Popen(
        [*command, "produce", topic, "--format", "avro-json"],
        env=env,
        stdin=consume.stdout,
        stderr=subprocess.PIPE,
    )
    assert consume.stdout is not None
    consume.stdout.close()  # the pipe is produce's now
    produce_err = produce.communicate(timeout=60)[1].decode()
    consume_err = consume.communicate(timeout=60)[1].decode()
    assert (consume.returncode, produce.returncode) == (0, 0), (consume_err, produce_err)
    assert f"produced 2 record(s) to {topic} with schema id {schema_id}" in produce_err

    # the two frames written back are the originals, byte for byte
    assert _raw_values(bootstrap_servers, topic, 4) == frames + frames


def test_avro_json_consume_prints_what_confluent_prints(
    bootstrap_servers: str, registry_url: str, client: RegistryClient, topic: str
) -> None:
    schema_id = client.register(f"{topic}-value", json.dumps(HARD))
    producer = Producer({"bootstrap.servers": bootstrap_servers})
    producer.produce(topic, value=_frame(schema_id, HARD_RECORDS[0]), key=b"k")
    producer.produce(topic, value=None, key=b"gone")  # a tombstone
    producer.produce(topic, value=b"not a frame")
    producer.produce(topic, value=_frame(schema_id, HARD_RECORDS[1]))
    producer.flush(10)
    consumed = _cli(
        bootstrap_servers,
        registry_url,
        "consume",
        topic,
        "--from-beginning",
        "--max-messages",
        "4",
        "--format",
        "avro-json",
    )
    lines = consumed.stdout.split("\n")  # not splitlines(): a string may hold U+2028
    assert lines[0] == HARD_FIRST_LINE
    assert lines[1] == "null"
    assert len(lines) == 4 and lines[3] == ""  # the poison message is not printed ...
    assert "partition 0 offset 2: skipped, framing" in consumed.stderr  # ... but said, and the exit is 1
    assert consumed.returncode == 1
    assert "consumed 3 message(s)" in consumed.stderr and "1 skipped" in consumed.stderr


@pytest.mark.parametrize(
    ("bad", "path", "words"),
    [
        ({"change": {"id": 1}}, "change", "unknown union branch 'id'"),  # a union without its wrapper
        ({"change": {"Deleted": {"id": 1}}}, "change", "the branches are [t.Created, t.Deleted]"),
        ({"md5": "\u20ac\u20ac"}, "md5", "code points 0-255"),
        ({"number": {"int": "5"}}, "number", "expected an int"),
        (
            {"tree": {"label": "a", "next": {"t.Node": {"label": 1, "next": None}}}},
            "tree.next.label",
            "string",
        ),
    ],
)
def test_avro_json_produce_refuses_a_bad_line_naming_line_and_field(
    bootstrap_servers: str,
    registry_url: str,
    client: RegistryClient,
    topic: str,
    bad: dict[str, Any],
    path: str,
    words: str,
) -> None:
    client.register(f"{topic}-value", json.dumps(HARD))
    good = json.loads(HARD_FIRST_LINE)
    stdin = f"{HARD_FIRST_LINE}\n{json.dumps({**good, **bad})}\n{HARD_FIRST_LINE}\n"
    result = _cli(bootstrap_servers, registry_url, "produce", topic, "--format", "avro-json", stdin=stdin)
    assert result.returncode == 1
    [message] = result.stderr.strip().splitlines()
    assert message.startswith(f"avroflow produce: line 2: {path}: ") and words in message, message
    assert _message_count(bootstrap_servers, topic) == 1  # line 1 only: not the bad line, nor what follows
