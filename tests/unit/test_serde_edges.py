"""The serializer's latest-schema recheck read just before, at and past its deadline (on a patched
clock), and the decoder's error messages: the body's size, the bytes left over, the reader schema named."""

from __future__ import annotations

import json
from typing import Any

import pytest

from registry_codecs import AvroDeserializer, AvroSerializer, DecodeError, RegisteredSchema, frame, serde

SCHEMA = json.dumps({"type": "record", "name": "R", "fields": [{"name": "n", "type": "long"}]})


class Lookup:
    def __init__(self) -> None:
        self.latest_calls = 0

    def get_schema(self, schema_id: int) -> RegisteredSchema:
        return RegisteredSchema(schema_id, SCHEMA)

    def get_latest(self, subject: str) -> RegisteredSchema:
        self.latest_calls += 1
        return RegisteredSchema(1, SCHEMA, subject=subject)

    def register(self, subject: str, schema_str: str, schema_type: str = "AVRO", references: Any = ()) -> int:
        raise NotImplementedError


class Clock:
    now = 1000.0

    def monotonic(self) -> float:
        return self.now


@pytest.mark.parametrize(("offset", "asks"), [(-1e-6, False), (0.0, True), (1e-6, True)])
def test_the_latest_schema_is_rechecked_from_its_deadline_on(
    offset: float, asks: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock()
    monkeypatch.setattr(serde, "_monotonic", clock.monotonic)
    monkeypatch.setattr(serde, "time", clock)
    lookup = Lookup()
    encoder = AvroSerializer(lookup, "s-value", latest_recheck_seconds=2.0)  # type: ignore[arg-type]
    encoder.encode({"n": 1})
    assert lookup.latest_calls == 1
    clock.now += 2.0 + offset
    encoder.encode({"n": 2})
    assert lookup.latest_calls == (2 if asks else 1)


def decode_error(data: bytes, *, reader: str | None = None) -> str:
    decoder = AvroDeserializer(Lookup(), reader_schema=reader)  # type: ignore[arg-type]
    with pytest.raises(DecodeError) as caught:
        decoder.decode(data)
    return str(caught.value)


def test_a_body_that_does_not_decode_is_described_by_its_size() -> None:
    message = decode_error(frame(1, b"\x80" * 6))  # a varint that never ends
    assert message.startswith("body of 6 bytes does not decode with writer schema id 1: ")
    assert "into the reader schema" not in message
    assert "into the reader schema" in decode_error(frame(1, b"\x80\x80"), reader=SCHEMA)


def test_bytes_left_over_are_counted() -> None:
    message = decode_error(frame(1, b"\x02" + b"\x00" * 7))
    assert message.startswith("7 bytes left over after decoding a record with writer schema id 1")


def test_by_default_the_latest_schema_is_rechecked_every_second(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock()
    monkeypatch.setattr(serde, "_monotonic", clock.monotonic)
    monkeypatch.setattr(serde, "time", clock)
    lookup = Lookup()
    encoder = AvroSerializer(lookup, "s-value")  # type: ignore[arg-type]
    encoder.encode({"n": 1})
    clock.now += 0.5
    encoder.encode({"n": 2})
    assert lookup.latest_calls == 1  # not asked on every record
    clock.now += 0.5  # workers/README.md: a new version is used within the TTL "plus at most a second"
    encoder.encode({"n": 3})
    assert lookup.latest_calls == 2


def test_the_schema_id_is_read_from_the_cache_within_the_recheck_interval(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = Clock()
    monkeypatch.setattr(serde, "_monotonic", clock.monotonic)
    monkeypatch.setattr(serde, "time", clock)
    lookup = Lookup()
    encoder = AvroSerializer(lookup, "s-value")  # type: ignore[arg-type]
    assert encoder.schema_id == 1 and encoder.schema_id == 1
    assert lookup.latest_calls == 1


def test_a_guarded_writer_schema_does_not_make_other_schemas_guarded() -> None:
    node = {
        "type": "record",
        "name": "Node",
        "fields": [{"name": "n", "type": "long"}, {"name": "next", "type": ["null", "Node"]}],
    }

    class Two(Lookup):
        def get_schema(self, schema_id: int) -> RegisteredSchema:
            return RegisteredSchema(schema_id, json.dumps(node) if schema_id == 2 else SCHEMA)

    decoder = AvroDeserializer(Two())  # type: ignore[arg-type]
    assert decoder.decode(frame(2, b"\x02\x00")) == {"n": 1, "next": None}  # recursive: walked first
    assert decoder.decode(frame(1, b"\x04")) == {"n": 2}  # not recursive: read as is


def test_a_local_schema_without_auto_register_is_never_registered() -> None:
    lookup = Lookup()  # its register raises
    encoder = AvroSerializer(lookup, "s-value", schema=SCHEMA)  # type: ignore[arg-type]
    assert encoder.subject == "s-value"
    assert encoder.encode({"n": 1}) == frame(1, b"\x02")
    assert lookup.latest_calls == 1


def test_a_misfit_names_the_schema_id_and_subject() -> None:
    encoder = AvroSerializer(Lookup(), "s-value")  # type: ignore[arg-type]
    with pytest.raises(serde.CodecError) as caught:
        encoder.encode({"n": "not a long"})
    assert str(caught.value).startswith("record does not fit schema id 1 of subject 's-value' at n")


def test_a_string_fastavro_cannot_write_is_refused_naming_its_schema_id() -> None:
    # A lone surrogate is a str, so it fits "string", but has no UTF-8 form: fastavro's writer refuses it.
    from registry_codecs import InMemorySchemaLookup, RecordDoesNotFitSchema

    lookup = InMemorySchemaLookup()
    lookup.register("other-value", SCHEMA)
    lookup.register(
        "s-value", json.dumps({"type": "record", "name": "S", "fields": [{"name": "s", "type": "string"}]})
    )
    encoder = AvroSerializer(lookup, "s-value")
    with pytest.raises(
        RecordDoesNotFitSchema, match="schema id 2 of subject 's-value': UnicodeEncodeError"
    ) as caught:
        encoder.encode({"s": "\ud800"})
    assert caught.value.schema_id == 2


def test_a_record_of_a_union_with_null_is_a_plain_dict_beside_a_union_of_records() -> None:
    # Only a union of several records says its branch (NamedRecord); ["null", R1] gives R1 as a plain dict.
    import io

    import fastavro

    from registry_codecs import InMemorySchemaLookup, NamedRecord

    r1 = {"type": "record", "name": "R1", "fields": [{"name": "x", "type": "long"}]}
    r2 = {"type": "record", "name": "R2", "fields": [{"name": "y", "type": "long"}]}
    schema = {
        "type": "record",
        "name": "Top",
        "namespace": "t",
        "fields": [{"name": "one", "type": ["null", r1]}, {"name": "two", "type": ["t.R1", r2]}],
    }
    lookup = InMemorySchemaLookup()
    lookup.register("t-value", json.dumps(schema))
    body = io.BytesIO()
    fastavro.schemaless_writer(
        body, fastavro.parse_schema(schema), {"one": {"x": 1}, "two": ("t.R2", {"y": 2})}
    )
    record = AvroDeserializer(lookup).decode(frame(1, body.getvalue()))
    assert record == {"one": {"x": 1}, "two": {"y": 2}}
    assert type(record["one"]) is dict
    assert isinstance(record["two"], NamedRecord) and record["two"].avro_name == "t.R2"


def test_a_record_too_deep_to_encode_names_the_schema_id_and_subject() -> None:
    from registry_codecs import InMemorySchemaLookup
    from registry_codecs.bounds import MAX_DEPTH, RecordTooDeep

    node = {"type": "record", "name": "N", "fields": [{"name": "next", "type": ["null", "N"]}]}
    lookup = InMemorySchemaLookup()
    lookup.register("n-value", json.dumps(node))
    record: dict[str, Any] = {"next": None}
    for _ in range(MAX_DEPTH):
        record = {"next": record}
    with pytest.raises(RecordTooDeep) as caught:
        AvroSerializer(lookup, "n-value").encode(record)
    assert str(caught.value).startswith("record does not fit schema id 1 of subject 'n-value': ")


def test_a_misfit_at_the_bottom_of_the_deepest_record_allowed_is_named_by_its_path() -> None:
    from registry_codecs import InMemorySchemaLookup, ValueDoesNotFit
    from registry_codecs.bounds import MAX_DEPTH

    node = {
        "type": "record",
        "name": "N",
        "fields": [{"name": "id", "type": "long"}, {"name": "next", "type": ["null", "N"]}],
    }
    lookup = InMemorySchemaLookup()
    lookup.register("n-value", json.dumps(node))
    record: dict[str, Any] = {"id": "not a long", "next": None}
    for i in range(MAX_DEPTH - 1):  # MAX_DEPTH records: within the depth bound, so checked field by field
        record = {"id": i, "next": record}
    with pytest.raises(ValueDoesNotFit) as caught:
        AvroSerializer(lookup, "n-value").encode(record)
    assert caught.value.field_path.endswith(".next.id")
    assert caught.value.field_path.count("next") == MAX_DEPTH - 1


def test_a_subject_that_moves_from_a_recursive_schema_to_a_flat_one_keeps_encoding(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from registry_codecs import InMemorySchemaLookup

    clock = Clock()
    monkeypatch.setattr(serde, "_monotonic", clock.monotonic)
    monkeypatch.setattr(serde, "time", clock)
    node = {
        "type": "record",
        "name": "N",
        "fields": [{"name": "n", "type": "long"}, {"name": "next", "type": ["null", "N"]}],
    }
    lookup = InMemorySchemaLookup()
    lookup.register("s-value", json.dumps(node))
    encoder = AvroSerializer(lookup, "s-value")
    assert encoder.encode({"n": 1, "next": None}) == frame(1, b"\x02\x00")
    lookup.register("s-value", SCHEMA)  # the new latest version: not recursive
    clock.now += 2
    assert encoder.encode({"n": 1}) == frame(2, b"\x02")


def test_loading_a_recursive_schema_never_lowers_a_higher_recursion_limit() -> None:
    import sys

    from registry_codecs import InMemorySchemaLookup

    node = {"type": "record", "name": "N", "fields": [{"name": "next", "type": ["null", "N"]}]}
    lookup = InMemorySchemaLookup()
    lookup.register("n-value", json.dumps(node))
    before = sys.getrecursionlimit()
    sys.setrecursionlimit(serde._DEEP_CHECK_FRAMES + 5000)  # the application's own, higher
    try:
        AvroSerializer(lookup, "n-value").encode({"next": None})
        assert sys.getrecursionlimit() == serde._DEEP_CHECK_FRAMES + 5000
    finally:
        sys.setrecursionlimit(before)
