"""The demo's sample input: v1 and v2 events the pipeline reads, heartbeats it drops, poison it refuses."""

from __future__ import annotations

import json

import pytest

from registry_codecs.errors import FramingError, SchemaNotFound
from registry_codecs.schemas import RegisteredSchema
from registry_codecs.serde import AvroDeserializer, AvroSerializer
from workers import demo_data
from workers.sample import INPUT_SCHEMA_FILE, INPUT_SCHEMA_V1_FILE, enrich


class Schemas:
    """An in-memory SchemaLookup with v1 as id 1 and v2 (latest) as id 2."""

    def __init__(self) -> None:
        self.by_id = {
            1: RegisteredSchema(1, INPUT_SCHEMA_V1_FILE.read_text(), subject="app-events-value", version=1),
            2: RegisteredSchema(2, INPUT_SCHEMA_FILE.read_text(), subject="app-events-value", version=2),
        }

    def get_schema(self, schema_id: int) -> RegisteredSchema:
        if schema_id not in self.by_id:
            raise SchemaNotFound(f"no schema {schema_id}", status_code=404, error_code=40403)
        return self.by_id[schema_id]

    def get_latest(self, subject: str) -> RegisteredSchema:
        return self.by_id[2]

    def register(
        self, subject: str, schema_str: str, schema_type: str = "AVRO", references: tuple = ()
    ) -> int:
        raise NotImplementedError


def test_events_come_from_v1_and_v2_producers_and_all_are_read_through_v2() -> None:
    schemas = Schemas()
    reader = AvroDeserializer(schemas, reader_schema=INPUT_SCHEMA_FILE.read_text())
    v2 = AvroSerializer(schemas, "app-events-value")
    events = demo_data.sample_events()
    kinds = {demo_data.is_v2(e) for e in events}
    assert kinds == {True, False}
    for event in events:
        frame = v2.encode(event) if demo_data.is_v2(event) else demo_data.encode_v1(1, event)
        schema_id, read = reader.decode_with_id(frame)
        assert schema_id == (2 if demo_data.is_v2(event) else 1)
        assert read == {**event, "session_id": event.get("session_id")}


def test_expected_outputs_are_the_events_the_transform_keeps() -> None:
    events = demo_data.sample_events()
    kept = [e for e in events if enrich(e) is not None]
    assert demo_data.expected_outputs(events) == len(kept)
    assert 0 < len(kept) < len(events)  # some heartbeats are dropped
    assert {e["event_type"] for e in kept} == {"page_view", "click", "signup", "purchase"}


def test_poison_messages_fail_to_decode_permanently() -> None:
    reader = AvroDeserializer(Schemas())
    framing, unknown = demo_data.poison_messages()
    with pytest.raises(FramingError):
        reader.decode(framing.value)
    with pytest.raises(SchemaNotFound):
        reader.decode(unknown.value)
    assert json.loads(framing.value)  # looks like data, but is not a Confluent frame
