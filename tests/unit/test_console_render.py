"""`avroflow consume` renders each message as one JSON-ready line: tombstones as such, not as errors."""

from __future__ import annotations

import json
from types import SimpleNamespace

from registry_codecs import AvroSerializer, InMemorySchemaLookup
from registry_codecs.serde import AvroDeserializer
from workers.console import render

SCHEMA = json.dumps({"type": "record", "name": "R", "fields": [{"name": "id", "type": "long"}]})


def message(key: bytes | None, value: bytes | None) -> SimpleNamespace:
    return SimpleNamespace(partition=0, offset=7, timestamp=1_700_000_000_000, key=key, value=value)


def test_a_tombstone_is_printed_as_a_null_value_with_its_key() -> None:
    lookup = InMemorySchemaLookup()
    lookup.register("t-value", SCHEMA)
    deserializer = AvroDeserializer(lookup, subject="t")
    line = render(deserializer, message(b"user-1", None))
    assert line == {
        "partition": 0,
        "offset": 7,
        "timestamp": 1_700_000_000_000,
        "key": "user-1",
        "schema_id": None,
        "value": None,
        "tombstone": True,
    }
    frame = AvroSerializer(lookup, "t-value").encode({"id": 1})
    assert render(deserializer, message(b"user-1", frame))["value"] == {"id": 1}
    assert "tombstone" not in render(deserializer, message(b"user-1", frame))
