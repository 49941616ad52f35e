"""The library's in-memory SchemaLookup behaves as a registry does for the codecs."""

from __future__ import annotations

import pytest

from registry_codecs import (
    AvroDeserializer,
    AvroSerializer,
    InMemorySchemaLookup,
    SchemaLookup,
    SchemaNotFound,
    SubjectNotFound,
)

V1 = '{"type": "record", "name": "R", "fields": [{"name": "a", "type": "int"}]}'
V2 = (
    '{"type": "record", "name": "R", "fields": [{"name": "a", "type": "int"},'
    ' {"name": "b", "type": "string", "default": ""}]}'
)


def test_ids_are_global_and_registering_again_adds_no_version() -> None:
    lookup = InMemorySchemaLookup(first_id=100)
    assert lookup.register("a-value", V1) == 100
    assert lookup.register("b-value", V1) == 100
    assert lookup.register("a-value", V1) == 100
    assert lookup.register("a-value", V2) == 101
    latest = lookup.get_latest("a-value")
    assert (latest.schema_id, latest.version, latest.subject) == (101, 2, "a-value")
    assert lookup.get_latest("b-value").version == 1
    assert lookup.get_schema(100).schema_str == V1


def test_unknown_id_and_subject_are_the_registry_errors() -> None:
    lookup = InMemorySchemaLookup()
    with pytest.raises(SchemaNotFound) as missing_id:
        lookup.get_schema(7)
    assert missing_id.value.error_code == 40403
    with pytest.raises(SubjectNotFound) as missing_subject:
        lookup.get_latest("nope-value")
    assert missing_subject.value.error_code == 40401


def test_the_codecs_run_on_it_with_the_latest_schema() -> None:
    lookup = InMemorySchemaLookup()
    assert isinstance(lookup, SchemaLookup)
    lookup.register("t-value", V1)
    lookup.register("t-value", V2)
    frame = AvroSerializer(lookup, "t-value").encode({"a": 1, "b": "x"})
    assert frame[:5] == b"\x00\x00\x00\x00\x02"
    assert AvroDeserializer(lookup).decode(frame) == {"a": 1, "b": "x"}
