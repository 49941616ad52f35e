"""AvroSerializer and AvroDeserializer on an in-memory lookup: bytes, logical types, evolution, errors."""

from __future__ import annotations

import copy
import io
import json
from typing import Any

import fastavro
import pytest
from hypothesis import given, settings
from prometheus_client import CollectorRegistry
from test_avro_support import (
    ADDRESS,
    EVENT_SCHEMA,
    EVENT_SCHEMA_STR,
    MemoryRegistry,
    event_records,
    sample_event,
)

from registry_codecs import (
    AvroDeserializer,
    AvroSerializer,
    DecodeError,
    FramingError,
    RecordDoesNotFitSchema,
    RegisteredSchema,
    RegistryUnavailable,
    SchemaNotFound,
    SchemaParseError,
    SubjectNotFound,
)
from registry_codecs.avro import find_misfit, parse_avro, read_plan, shape_key
from registry_codecs.metrics import CodecMetrics

SMALL = {
    "type": "record",
    "name": "Small",
    "fields": [{"name": "name", "type": "string"}, {"name": "n", "type": "int"}],
}


@pytest.fixture
def registry() -> MemoryRegistry:
    return MemoryRegistry()


@pytest.fixture
def metrics_registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def metrics(metrics_registry: CollectorRegistry) -> CodecMetrics:
    return CodecMetrics.create(metrics_registry)


def sample(reg: CollectorRegistry, name: str, **labels: str) -> float:
    return reg.get_sample_value(f"avroflow_{name}_total", labels) or 0.0


def test_golden_bytes_for_a_small_record(registry: MemoryRegistry) -> None:
    registry.add("s-value", SMALL)
    frame = AvroSerializer(registry, "s-value").encode({"name": "a", "n": 1})
    # magic 0, id 1 big-endian, then string "a" (zigzag length 2, 0x61) and int 1 (zigzag 2)
    assert frame == bytes.fromhex("00 00000001 02 61 02")
    assert AvroDeserializer(registry).decode_with_id(frame) == (1, {"name": "a", "n": 1})


def test_the_sample_record_with_all_logical_types_round_trips(registry: MemoryRegistry) -> None:
    schema_id = registry.add("events-value", EVENT_SCHEMA)
    serializer = AvroSerializer(registry, "events-value")
    record = sample_event()
    frame = serializer.encode(record)
    assert serializer.schema_id == schema_id
    assert frame[:5] == b"\x00" + schema_id.to_bytes(4, "big")
    # The body is exactly what fastavro writes: no extra bytes, nothing reordered.
    body = io.BytesIO()
    fastavro.schemaless_writer(body, fastavro.parse_schema(copy.deepcopy(EVENT_SCHEMA)), record)
    assert frame[5:] == body.getvalue()
    assert AvroDeserializer(registry).decode(frame) == record


def test_encoding_follows_the_latest_version_of_the_subject(registry: MemoryRegistry) -> None:
    first = registry.add("s-value", SMALL)
    serializer = AvroSerializer(registry, "s-value", latest_recheck_seconds=0.0)
    assert serializer.encode({"name": "x", "n": 1})[1:5] == first.to_bytes(4, "big")
    evolved = copy.deepcopy(SMALL)
    evolved["fields"].append({"name": "extra", "type": "string", "default": "d"})
    second = registry.add("s-value", evolved)
    frame = serializer.encode({"name": "x", "n": 1, "extra": "e"})
    assert frame[1:5] == second.to_bytes(4, "big")
    assert AvroDeserializer(registry).decode(frame) == {"name": "x", "n": 1, "extra": "e"}


def test_steady_state_makes_no_lookup_calls_per_message(registry: MemoryRegistry) -> None:
    registry.add("events-value", EVENT_SCHEMA)
    serializer = AvroSerializer(registry, "events-value", latest_recheck_seconds=3600)
    deserializer = AvroDeserializer(registry)
    for _ in range(200):
        deserializer.decode(serializer.encode(sample_event()))
    assert registry.calls == {"get_schema": 1, "get_latest": 1, "register": 0}


def test_an_unknown_subject_is_a_typed_counted_error(
    registry: MemoryRegistry, metrics: CodecMetrics, metrics_registry: CollectorRegistry
) -> None:
    serializer = AvroSerializer(registry, "missing-value", metrics=metrics)
    with pytest.raises(SubjectNotFound):
        serializer.encode({"name": "a", "n": 1})
    assert (
        sample(metrics_registry, "encode_failures", subject="missing-value", reason="subject_not_found") == 1
    )


def test_a_registry_outage_keeps_the_schema_in_use(
    registry: MemoryRegistry, metrics: CodecMetrics, metrics_registry: CollectorRegistry
) -> None:
    registry.add("s-value", SMALL)
    serializer = AvroSerializer(registry, "s-value", metrics=metrics, latest_recheck_seconds=0.0)
    before = serializer.encode({"name": "a", "n": 1})
    registry.unavailable = True
    assert serializer.encode({"name": "a", "n": 1}) == before
    cold = AvroSerializer(registry, "s-value", metrics=metrics)
    with pytest.raises(RegistryUnavailable) as caught:
        cold.encode({"name": "a", "n": 1})
    assert caught.value.retriable
    assert sample(metrics_registry, "encode_failures", subject="s-value", reason="registry_unavailable") == 1
    assert sample(metrics_registry, "messages_encoded", subject="s-value") == 2


@pytest.mark.parametrize(
    ("change", "path"),
    [
        ({"address": {"street": "s", "city": "c", "zip": 12345}}, "address.zip"),
        ({"address": {"street": "s", "city": "c"}}, "address.zip"),
        ({"tags": ["a", "b", 3]}, "tags[2]"),
        ({"attributes": {"k": None}}, "attributes['k']"),
        ({"kind": "UNKNOWN"}, "kind"),
        ({"count": "1"}, "count"),
        ({"user_id": "12"}, "user_id"),
        ({"referrer": 5}, "referrer"),
        ({"amount": __import__("decimal").Decimal("1.234")}, "amount"),
    ],
)
def test_a_record_that_does_not_fit_names_the_field_path(
    registry: MemoryRegistry,
    metrics: CodecMetrics,
    metrics_registry: CollectorRegistry,
    change: dict[str, Any],
    path: str,
) -> None:
    schema_id = registry.add("events-value", EVENT_SCHEMA)
    serializer = AvroSerializer(registry, "events-value", metrics=metrics)
    with pytest.raises(RecordDoesNotFitSchema) as caught:
        serializer.encode(sample_event(**change))
    assert caught.value.field_path == path
    assert caught.value.schema_id == schema_id
    assert path in str(caught.value)
    assert (
        sample(
            metrics_registry, "encode_failures", subject="events-value", reason="record_does_not_fit_schema"
        )
        == 1
    )


def test_a_missing_field_deep_in_an_array_of_records_is_named() -> None:
    item = {
        "type": "record",
        "name": "Item",
        "fields": [{"name": "sku", "type": "string"}, {"name": "price", "type": "double"}],
    }
    order = {
        "type": "record",
        "name": "Order",
        "fields": [
            {"name": "items", "type": {"type": "array", "items": item}},
            {"name": "buyer", "type": ["null", ADDRESS_REF]},
        ],
    }
    registry = MemoryRegistry()
    registry.add("orders-value", order)
    serializer = AvroSerializer(registry, "orders-value")
    items = [{"sku": "a", "price": 1.0}, {"sku": "b", "price": 2.0}, {"sku": "c"}]
    with pytest.raises(RecordDoesNotFitSchema) as caught:
        serializer.encode({"items": items, "buyer": None})
    assert caught.value.field_path == "items[2].price"
    with pytest.raises(RecordDoesNotFitSchema) as caught:
        serializer.encode({"items": [], "buyer": {"name": 7}})
    assert caught.value.field_path == "buyer.name"
    with pytest.raises(RecordDoesNotFitSchema) as caught:
        serializer.encode(["not", "a", "record"])  # type: ignore[arg-type]
    assert caught.value.field_path == "(record)"


ADDRESS_REF = {"type": "record", "name": "Buyer", "fields": [{"name": "name", "type": "string"}]}


@pytest.mark.parametrize(
    ("data", "found"),
    [(b"", "0 bytes"), (b"\x00\x00\x01", "3 bytes"), (b"\x01\x00\x00\x00\x01\x02", "0x01"), ("text", "str")],
)
def test_frames_that_are_not_confluent_frames_raise_framing_errors(
    registry: MemoryRegistry,
    metrics: CodecMetrics,
    metrics_registry: CollectorRegistry,
    data: Any,
    found: str,
) -> None:
    with pytest.raises(FramingError, match=found):
        AvroDeserializer(registry, subject="t", metrics=metrics).decode(data)
    assert sample(metrics_registry, "decode_failures", subject="t", reason="framing") == 1


def test_an_unknown_schema_id_is_schema_not_found(
    registry: MemoryRegistry, metrics: CodecMetrics, metrics_registry: CollectorRegistry
) -> None:
    with pytest.raises(SchemaNotFound):
        AvroDeserializer(registry, subject="t", metrics=metrics).decode(b"\x00\x00\x00\x00\x63\x02")
    assert sample(metrics_registry, "decode_failures", subject="t", reason="unknown_schema") == 1


def _frame_of(registry: MemoryRegistry) -> bytes:
    registry.add("events-value", EVENT_SCHEMA)
    return AvroSerializer(registry, "events-value").encode(sample_event())


@pytest.mark.parametrize(
    ("mangle", "what"),
    [
        (lambda f: f[:-3], "truncated"),
        (lambda f: f[:6], "cut after one byte"),
        (lambda f: f + b"\x00", "trailing byte"),
        (lambda f: f[:5] + b"\xff" * 40, "garbage body"),
        (lambda f: f[:5] + b"\x7f" + f[6:], "string length beyond the body"),
    ],
)
def test_bodies_that_do_not_decode_raise_decode_error_with_the_schema_id(
    registry: MemoryRegistry,
    metrics: CodecMetrics,
    metrics_registry: CollectorRegistry,
    mangle: Any,
    what: str,
) -> None:
    frame = mangle(_frame_of(registry))
    with pytest.raises(DecodeError) as caught:
        AvroDeserializer(registry, subject="t", metrics=metrics).decode(frame)
    assert caught.value.schema_id == 1, what
    assert sample(metrics_registry, "decode_failures", subject="t", reason="body_does_not_decode") == 1


def test_messages_are_counted(
    registry: MemoryRegistry, metrics: CodecMetrics, metrics_registry: CollectorRegistry
) -> None:
    frame = _frame_of(registry)
    serializer = AvroSerializer(registry, "events-value", metrics=metrics)
    deserializer = AvroDeserializer(registry, subject="events-value", metrics=metrics)
    for _ in range(3):
        deserializer.decode(serializer.encode(sample_event()))
    deserializer.decode(frame)
    assert sample(metrics_registry, "messages_encoded", subject="events-value") == 3
    assert sample(metrics_registry, "messages_decoded", subject="events-value") == 4


def test_the_writer_schema_is_fetched_and_parsed_once_per_id(registry: MemoryRegistry) -> None:
    frame = _frame_of(registry)
    deserializer = AvroDeserializer(registry)
    for _ in range(50):
        deserializer.decode(frame)
    assert registry.calls["get_schema"] == 1


def test_a_schema_with_references_parses_and_round_trips(registry: MemoryRegistry) -> None:
    address = json.dumps({**ADDRESS, "namespace": "com.example.common"})
    person = {
        "type": "record",
        "name": "Person",
        "namespace": "com.example",
        "fields": [
            {"name": "name", "type": "string"},
            {"name": "home", "type": "com.example.common.Address"},
        ],
    }
    registry.add("people-value", person, references=(("com.example.common.Address", address),))
    record = {"name": "Ann", "home": {"street": "s", "city": "c", "zip": "z"}}
    frame = AvroSerializer(registry, "people-value").encode(record)
    assert AvroDeserializer(registry).decode(frame) == record


def test_a_non_avro_or_broken_schema_is_a_schema_parse_error() -> None:
    class JsonSchemaLookup(MemoryRegistry):
        def get_schema(self, schema_id: int) -> RegisteredSchema:
            return RegisteredSchema(schema_id, "{}", schema_type="JSON")

    with pytest.raises(SchemaParseError, match="JSON schema, not Avro"):
        AvroDeserializer(JsonSchemaLookup()).decode(b"\x00\x00\x00\x00\x01\x00")
    with pytest.raises(SchemaParseError):
        AvroDeserializer(MemoryRegistry(), reader_schema='{"type": "nonsense"}')
    with pytest.raises(ValueError, match="auto_register"):
        AvroSerializer(MemoryRegistry(), "s", auto_register=True)


def test_auto_register_registers_the_local_schema_once(registry: MemoryRegistry) -> None:
    serializer = AvroSerializer(registry, "new-value", schema=json.dumps(SMALL), auto_register=True)
    frames = [serializer.encode({"name": "a", "n": i}) for i in range(5)]
    assert registry.calls["register"] == 1
    assert registry.get_latest("new-value").schema_id == serializer.schema_id
    assert [AvroDeserializer(registry).decode(f)["n"] for f in frames] == [0, 1, 2, 3, 4]


# --- schema evolution -------------------------------------------------------------------------------------

WRITER_V1 = {
    "type": "record",
    "name": "User",
    "fields": [
        {"name": "id", "type": "int"},
        {"name": "name", "type": "string"},
        {"name": "dropped", "type": "string"},
        {"name": "ratio", "type": "float"},
        {"name": "level", "type": {"type": "enum", "name": "Level", "symbols": ["LOW", "HIGH", "MID"]}},
    ],
}
READER_V2 = {
    "type": "record",
    "name": "User",
    "fields": [
        {"name": "id", "type": "long"},
        {"name": "full_name", "type": "string", "aliases": ["name"]},
        {"name": "ratio", "type": "double"},
        {"name": "email", "type": ["null", "string"], "default": None},
        {"name": "score", "type": "double", "default": 1.5},
        {
            "name": "level",
            "type": {"type": "enum", "name": "Level", "symbols": ["LOW", "HIGH"], "default": "LOW"},
        },
    ],
}


def test_decoding_into_an_evolved_reader_schema_applies_avro_resolution(registry: MemoryRegistry) -> None:
    registry.add("users-value", WRITER_V1)
    frame = AvroSerializer(registry, "users-value").encode(
        {"id": 7, "name": "Ann", "dropped": "x", "ratio": 0.5, "level": "MID"}
    )
    ours = AvroDeserializer(registry, reader_schema=json.dumps(READER_V2)).decode(frame)
    theirs = fastavro.schemaless_reader(
        io.BytesIO(frame[5:]),
        fastavro.parse_schema(copy.deepcopy(WRITER_V1)),
        fastavro.parse_schema(copy.deepcopy(READER_V2)),
    )
    assert (
        ours
        == theirs
        == {"id": 7, "full_name": "Ann", "ratio": 0.5, "email": None, "score": 1.5, "level": "LOW"}
    )


def test_a_reader_schema_that_cannot_read_the_writer_is_a_decode_error(registry: MemoryRegistry) -> None:
    registry.add("users-value", WRITER_V1)
    frame = AvroSerializer(registry, "users-value").encode(
        {"id": 7, "name": "Ann", "dropped": "x", "ratio": 0.5, "level": "LOW"}
    )
    reader = {"type": "record", "name": "User", "fields": [{"name": "required_new", "type": "string"}]}
    with pytest.raises(DecodeError) as caught:
        AvroDeserializer(registry, reader_schema=reader).decode(frame)
    assert caught.value.schema_id == 1


def test_resolution_is_skipped_when_reader_and_writer_have_the_same_shape() -> None:
    writer = parse_avro(EVENT_SCHEMA_STR)
    documented = copy.deepcopy(EVENT_SCHEMA)
    documented["doc"] = "same shape, different words"
    documented["fields"][0]["aliases"] = ["id"]
    reader = parse_avro(documented)
    plan = read_plan(writer, reader, shape_key(reader))
    assert plan.reader is None and plan.project is None
    evolved = parse_avro(READER_V2)
    plan = read_plan(parse_avro(WRITER_V1), evolved, shape_key(evolved))
    assert plan.reader is not None or plan.project is not None
    # A logical type changes what the reader returns, so it is part of the shape.
    plain = copy.deepcopy(EVENT_SCHEMA)
    plain["fields"][11]["type"] = "long"
    assert shape_key(parse_avro(plain)) != shape_key(writer)


def test_a_same_shape_reader_schema_decodes_like_no_reader_schema(registry: MemoryRegistry) -> None:
    frame = _frame_of(registry)
    assert AvroDeserializer(registry, reader_schema=EVENT_SCHEMA).decode(frame) == sample_event()


@settings(max_examples=60, deadline=None)
@given(record=event_records())
def test_the_misfit_walk_accepts_every_record_fastavro_accepts(record: dict[str, Any]) -> None:
    # The walk only runs after fastavro refused a record; on a good record it must find nothing, or it
    # would blame an innocent field when something else failed.
    assert find_misfit(parse_avro(EVENT_SCHEMA_STR), record) is None
