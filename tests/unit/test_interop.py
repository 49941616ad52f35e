"""Interoperability with confluent-kafka's AvroSerializer and AvroDeserializer, on its mock:// registry.

Both sides share one registry (ours reads it through a SchemaLookup adapter), so for the same schema id
and record the frames must be byte-identical, and each side must decode the other's frames.
"""

from __future__ import annotations

from typing import Any

import pytest
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer as ConfluentDeserializer
from confluent_kafka.schema_registry.avro import AvroSerializer as ConfluentSerializer
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.serialization import MessageField, SerializationContext
from hypothesis import HealthCheck, given, settings
from test_avro_support import EVENT_SCHEMA_STR, event_records, sample_event

from registry_codecs import (
    AvroDeserializer,
    AvroSerializer,
    RegisteredSchema,
    SchemaNotFound,
    SubjectNotFound,
)
from registry_codecs.schemas import SchemaReference

TOPIC = "events"
CONTEXT = SerializationContext(TOPIC, MessageField.VALUE)


class ConfluentLookup:
    """SchemaLookup over confluent-kafka's SchemaRegistryClient (here its mock:// implementation)."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def get_schema(self, schema_id: int) -> RegisteredSchema:
        try:
            schema = self._client.get_schema(schema_id)
        except SchemaRegistryError as exc:
            raise SchemaNotFound(str(exc), status_code=404, error_code=40403) from exc
        return RegisteredSchema(schema_id, schema.schema_str, schema.schema_type or "AVRO")

    def get_latest(self, subject: str) -> RegisteredSchema:
        try:
            latest = self._client.get_latest_version(subject)
        except SchemaRegistryError as exc:
            raise SubjectNotFound(str(exc), status_code=404, error_code=40401) from exc
        return RegisteredSchema(
            latest.schema_id, latest.schema.schema_str, subject=subject, version=latest.version
        )

    def register(
        self,
        subject: str,
        schema_str: str,
        schema_type: str = "AVRO",
        references: tuple[SchemaReference, ...] = (),
    ) -> int:
        return int(self._client.register_schema(subject, Schema(schema_str, schema_type)))


class Pair:
    """Confluent's and our serializer and deserializer on one mock registry."""

    def __init__(self) -> None:
        client = SchemaRegistryClient.new_client({"url": "mock://interop"})
        client.register_schema("decoy-value", Schema('{"type": "string"}', "AVRO"))  # ids are not 1 by luck
        self.schema_id = client.register_schema(f"{TOPIC}-value", Schema(EVENT_SCHEMA_STR, "AVRO"))
        lookup = ConfluentLookup(client)
        self.theirs = ConfluentSerializer(client, EVENT_SCHEMA_STR, conf={"auto.register.schemas": False})
        self.their_reader = ConfluentDeserializer(client)
        self.ours = AvroSerializer(lookup, f"{TOPIC}-value")
        self.our_reader = AvroDeserializer(lookup, subject=f"{TOPIC}-value")

    def check(self, record: dict[str, Any]) -> None:
        their_frame = self.theirs(record, CONTEXT)
        our_frame = self.ours.encode(record)
        assert our_frame == their_frame
        assert our_frame[1:5] == self.schema_id.to_bytes(4, "big")
        assert self.their_reader(our_frame, CONTEXT) == record
        assert self.our_reader.decode(their_frame) == record


@pytest.fixture(scope="module")
def pair() -> Pair:
    return Pair()


def test_frames_are_byte_identical_and_cross_decode(pair: Pair) -> None:
    pair.check(sample_event())
    pair.check(sample_event(referrer=None, tags=[], attributes={}, kind="BUY", session=""))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(record=event_records())
def test_generated_records_are_byte_identical_and_cross_decode(pair: Pair, record: dict[str, Any]) -> None:
    pair.check(record)
