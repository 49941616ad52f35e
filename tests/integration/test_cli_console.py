"""`python -m workers produce` and `consume` as subprocesses through the real broker and registry."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from confluent_kafka import Producer

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
    env = {k: v for k, v in os.environ.items() if not k.startswith("AVROFLOW_")}
    env.update(AVROFLOW_KAFKA_BOOTSTRAP_SERVERS=bootstrap_servers, AVROFLOW_SCHEMA_REGISTRY_URL=registry_url)
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
