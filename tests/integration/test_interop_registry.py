"""Our codec and confluent-kafka's serde on one real local registry.

Same bytes, cross-decoding, no registry request per message, a new version used without a restart.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer as ConfluentDeserializer
from confluent_kafka.schema_registry.avro import AvroSerializer as ConfluentSerializer
from confluent_kafka.serialization import MessageField, SerializationContext
from prometheus_client import CollectorRegistry

from registry_codecs import CodecMetrics, RegistryClient, ValueDoesNotFit
from registry_codecs.faust_codec import ConfluentAvroCodec

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
from test_avro_support import EVENT_SCHEMA, EVENT_SCHEMA_STR, sample_event

pytestmark = pytest.mark.integration


@pytest.fixture
def topic(unique_name: str) -> str:
    return unique_name


@pytest.fixture
def metrics_registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def client(registry_url: str, metrics_registry: CollectorRegistry) -> Iterator[RegistryClient]:
    metrics = CodecMetrics.create(metrics_registry)
    with RegistryClient(registry_url, read_timeout=5, metrics=metrics) as made:
        yield made


def requests_made(metrics_registry: CollectorRegistry) -> float:
    return sum(
        sample.value
        for family in metrics_registry.collect()
        if family.name == "avroflow_registry_requests"
        for sample in family.samples
        if sample.name.endswith("_total")
    )


def test_confluent_and_our_codec_agree_on_one_real_registry(
    registry_url: str, client: RegistryClient, topic: str
) -> None:
    with SchemaRegistryClient({"url": registry_url}) as confluent:
        check_against_confluent(confluent, client, topic)


def check_against_confluent(confluent: SchemaRegistryClient, client: RegistryClient, topic: str) -> None:
    context = SerializationContext(topic, MessageField.VALUE)
    their_serializer = ConfluentSerializer(confluent, EVENT_SCHEMA_STR)  # auto-registers <topic>-value
    their_frame = their_serializer(sample_event(), context)
    codec = ConfluentAvroCodec(lookup=client, topic=topic)
    our_frame = codec.dumps(sample_event())
    assert our_frame == their_frame
    assert codec.loads(their_frame) == sample_event()
    assert ConfluentDeserializer(confluent)(our_frame, context) == sample_event()
    key_codec = ConfluentAvroCodec(
        lookup=client, topic=topic, is_key=True, schema='"string"', auto_register=True
    )
    key_frame = key_codec.dumps("user-1")
    their_key = ConfluentDeserializer(confluent)(key_frame, SerializationContext(topic, MessageField.KEY))
    assert their_key == "user-1"
    assert client.get_latest(f"{topic}-key").schema_id == int.from_bytes(key_frame[1:5], "big")


def test_steady_state_sends_no_registry_request_per_message(
    client: RegistryClient, metrics_registry: CollectorRegistry, topic: str
) -> None:
    client.register(f"{topic}-value", EVENT_SCHEMA_STR)
    codec = ConfluentAvroCodec(lookup=client, topic=topic)
    codec.loads(codec.dumps(sample_event()))
    before = requests_made(metrics_registry)
    assert before > 0  # the metric does count this client's requests
    for _ in range(500):
        assert codec.loads(codec.dumps(sample_event())) == sample_event()
    assert requests_made(metrics_registry) == before


def test_a_new_version_is_used_without_a_restart(registry_url: str, topic: str) -> None:
    client = RegistryClient(registry_url, latest_ttl=0.3, read_timeout=5)
    subject = f"{topic}-value"
    first = client.register(subject, EVENT_SCHEMA_STR)
    codec = ConfluentAvroCodec(lookup=client, topic=topic)
    assert codec.dumps(sample_event())[1:5] == first.to_bytes(4, "big")
    evolved: dict[str, Any] = json.loads(EVENT_SCHEMA_STR)
    evolved["fields"].append({"name": "channel", "type": "string", "default": "web"})
    second = client.register(subject, json.dumps(evolved))
    deadline = time.monotonic() + 10

    def with_channel() -> bytes:
        try:
            return codec.dumps(sample_event(channel="app"))
        except ValueDoesNotFit as exc:  # version 1 has no channel: refused (never dropped) until 2 is seen
            assert exc.field_path == "channel"
            return b""

    frame = with_channel()
    while frame[1:5] != second.to_bytes(4, "big") and time.monotonic() < deadline:
        time.sleep(0.1)
        frame = with_channel()
    assert frame[1:5] == second.to_bytes(4, "big")
    assert codec.loads(frame) == sample_event(channel="app")
    old_reader = ConfluentAvroCodec(lookup=client, topic=topic, reader_schema=EVENT_SCHEMA)
    assert old_reader.loads(frame) == sample_event()
    client.close()
