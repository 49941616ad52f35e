"""Confluent's producer with AvroSerializer to its consumer with AvroDeserializer, via both local servers."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from confluent_kafka import Consumer, KafkaError, Message, Producer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from devstack.brokers import Broker

pytestmark = pytest.mark.integration

_SCHEMA = json.dumps(
    {
        "type": "record",
        "name": "Reading",
        "namespace": "test.devstack",
        "fields": [
            {"name": "sensor", "type": "string"},
            {"name": "value", "type": "double"},
            {"name": "tags", "type": {"type": "array", "items": "string"}, "default": []},
        ],
    }
)


def test_avro_records_round_trip_through_broker_and_registry(
    broker: Broker, registry_url: str, unique_name: str
) -> None:
    broker.create_topics([unique_name])
    records = [{"sensor": f"s{i}", "value": i / 4, "tags": ["a"] * i} for i in range(4)]
    with SchemaRegistryClient({"url": registry_url}) as registry:
        serializer = AvroSerializer(registry, _SCHEMA)
        deserializer = AvroDeserializer(registry)
        _produce(broker.bootstrap_servers, unique_name, [serializer(r, _ctx(unique_name)) for r in records])
        frames = _consume_all(broker.bootstrap_servers, unique_name, len(records))

        # The serializer registered the schema under the topic's value subject, and the frames carry its id.
        registered = registry.get_latest_version(f"{unique_name}-value")
        assert {frame[1:5] for frame in frames} == {registered.schema_id.to_bytes(4, "big")}
        assert [deserializer(frame, _ctx(unique_name)) for frame in frames] == records


def _ctx(topic: str) -> SerializationContext:
    return SerializationContext(topic, MessageField.VALUE)


def _produce(bootstrap: str, topic: str, values: list[bytes | None]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap})
    errors: list[KafkaError] = []
    for value in values:
        producer.produce(topic, value=value, on_delivery=_collect_into(errors))
    assert producer.flush(15) == 0
    assert errors == []


def _consume_all(bootstrap: str, topic: str, want: int) -> list[bytes]:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": topic,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": 1000,  # Tansu holds a first assignment for about half of it (Kafka: none)
            "heartbeat.interval.ms": 300,
        }
    )
    consumer.subscribe([topic])
    got: list[bytes] = []
    try:
        for _ in range(150):  # polls of 0.2 s: up to 30 s on a busy machine
            message = consumer.poll(0.2)
            if message is not None and message.error() is None and message.value() is not None:
                got.append(bytes(message.value() or b""))
            if len(got) == want:
                break
    finally:
        consumer.close()
    return got


def _collect_into(errors: list[KafkaError]) -> Callable[[KafkaError | None, Message], None]:
    def on_delivery(error: KafkaError | None, _message: Message) -> None:
        if error is not None:
            errors.append(error)

    return on_delivery
