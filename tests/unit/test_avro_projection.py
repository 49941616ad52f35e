"""Precomputed reader-schema projections give exactly what fastavro's own schema resolution gives."""

from __future__ import annotations

import copy
import io
import json
from typing import Any

import fastavro
import pytest
from hypothesis import given, settings
from test_avro_support import EVENT_SCHEMA, MemoryRegistry, event_records

from registry_codecs import AvroDeserializer, AvroSerializer
from registry_codecs.avro import parse_avro, read_plan, shape_key
from registry_codecs.projection import IDENTITY, compile_projection


def record(name: str, *fields: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"type": "record", "name": name, "fields": list(fields), **extra}


def field(name: str, schema: Any, **extra: Any) -> dict[str, Any]:
    return {"name": name, "type": schema, **extra}


ADDR_V1 = record("Addr", field("city", "string"))
ADDR_V2 = record("Addr", field("city", "string"), field("country", "string", default="NL"))
LINE_V1 = record("Line", field("qty", "int"), field("price", "float"))
LINE_V2 = record(
    "Line", field("qty", "long"), field("price", "double"), field("note", ["null", "string"], default=None)
)
COLOR_V1 = {"type": "enum", "name": "Color", "symbols": ["RED", "GREEN", "BLUE"]}
COLOR_V2 = {"type": "enum", "name": "Color", "symbols": ["RED", "GREEN"], "default": "RED"}

WRITER = record(
    "Order",
    field("id", "int"),
    field("name", "string"),
    field("legacy", "string"),
    field("ship_to", ["null", ADDR_V1]),
    field("lines", {"type": "array", "items": LINE_V1}),
    field("totals", {"type": "map", "values": "long"}),
    field("color", COLOR_V1),
    field("code", "string"),
    field("blob", "bytes"),
)
READER = record(
    "Order",
    field("id", "long"),
    field("title", "string", aliases=["name"]),
    field("ship_to", ["null", "Addr"], default=None),
    field("lines", {"type": "array", "items": LINE_V2}),
    field("totals", {"type": "map", "values": "double"}),
    field("color", COLOR_V2),
    field("code", ["null", "string"]),
    field("blob", "string"),
    field("tags", {"type": "array", "items": "string"}, default=["new"]),
    field("flag", "boolean", default=True),
)
READER["fields"][2]["type"][1] = ADDR_V2


def resolve_with_fastavro(writer: Any, reader: Any, body: bytes) -> Any:
    return fastavro.schemaless_reader(
        io.BytesIO(body),
        fastavro.parse_schema(copy.deepcopy(writer)),
        fastavro.parse_schema(copy.deepcopy(reader)),
    )


def encode(schema: Any, value: Any) -> bytes:
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, fastavro.parse_schema(copy.deepcopy(schema)), value)
    return buffer.getvalue()


ORDERS = [
    {
        "id": 1,
        "name": "first",
        "legacy": "x",
        "ship_to": {"city": "Delft"},
        "lines": [{"qty": 2, "price": 1.5}, {"qty": 1, "price": 0.25}],
        "totals": {"a": 3, "b": -4},
        "color": "BLUE",
        "code": "c1",
        "blob": b"raw",
    },
    {
        "id": -7,
        "name": "",
        "legacy": "",
        "ship_to": None,
        "lines": [],
        "totals": {},
        "color": "GREEN",
        "code": "",
        "blob": b"",
    },
]


@pytest.mark.parametrize("order", ORDERS)
def test_the_projection_equals_fastavro_resolution_key_order_included(order: dict[str, Any]) -> None:
    project = compile_projection(parse_avro(WRITER), parse_avro(READER))
    assert project is not None and project is not IDENTITY
    body = encode(WRITER, order)
    ours = project(fastavro.schemaless_reader(io.BytesIO(body), parse_avro(WRITER)))
    theirs = resolve_with_fastavro(WRITER, READER, body)
    assert ours == theirs
    assert list(ours) == list(theirs)
    assert ours["color"] == ("RED" if order["color"] == "BLUE" else order["color"])


def test_the_deserializer_uses_the_projection_and_matches_fastavro() -> None:
    registry = MemoryRegistry()
    registry.add("orders-value", WRITER)
    serializer = AvroSerializer(registry, "orders-value")
    deserializer = AvroDeserializer(registry, reader_schema=json.dumps(READER))
    for order in ORDERS:
        frame = serializer.encode(order)
        assert deserializer.decode(frame) == resolve_with_fastavro(WRITER, READER, frame[5:])
    first, second = (deserializer.decode(serializer.encode(ORDERS[0])) for _ in range(2))
    first["tags"].append("mutated")
    assert second["tags"] == ["new"]  # a list default is not shared between records


@pytest.mark.parametrize(
    ("writer", "reader"),
    [
        ({"type": "enum", "name": "Color", "symbols": ["RED", "GREEN"]}, COLOR_V1),  # symbols added
        (record("R", field("a", ["null", "int"])), record("R", field("a", ["null", "int", "string"]))),
        (record("R", field("a", "int"), doc="words"), record("R", field("a", "int", doc="other words"))),
    ],
)
def test_evolutions_that_change_nothing_read_with_the_writer_schema_alone(writer: Any, reader: Any) -> None:
    parsed = parse_avro(reader)
    assert compile_projection(parse_avro(writer), parsed) is IDENTITY
    plan = read_plan(parse_avro(writer), parsed, shape_key(parsed))
    assert plan.reader is None and plan.project is None


@pytest.mark.parametrize(
    ("writer", "reader", "value"),
    [
        (record("R", field("a", ["int", "string"])), record("R", field("a", ["long", "bytes"])), {"a": "s"}),
        (
            record("R", field("t", {"type": "long", "logicalType": "timestamp-millis"})),
            record("R", field("t", "long")),
            {"t": 5},
        ),
        (record("R", field("a", ["null", "string"])), record("R", field("a", "string")), {"a": "s"}),
        (COLOR_V1, {"type": "enum", "name": "Color", "symbols": ["RED"]}, "RED"),
    ],
)
def test_cases_it_cannot_prove_fall_back_to_fastavro(writer: Any, reader: Any, value: Any) -> None:
    parsed = parse_avro(reader)
    assert compile_projection(parse_avro(writer), parsed) is None
    plan = read_plan(parse_avro(writer), parsed, shape_key(parsed))
    assert plan.reader is not None
    registry = MemoryRegistry()
    registry.add("s", writer)
    frame = AvroSerializer(registry, "s").encode(value)
    assert AvroDeserializer(registry, reader_schema=reader).decode(frame) == resolve_with_fastavro(
        writer, reader, frame[5:]
    )


def evolved_event_schema() -> dict[str, Any]:
    reader = copy.deepcopy(EVENT_SCHEMA)
    fields = [f for f in reader["fields"] if f["name"] not in ("session", "tags")]
    for f in fields:
        if f["name"] == "count":
            f["type"] = "double"
        if f["name"] == "address":
            f["type"]["fields"].append({"name": "country", "type": "string", "default": "NL"})
    fields.append({"name": "channel", "type": "string", "default": "web"})
    reader["fields"] = fields
    return reader


EVOLVED = evolved_event_schema()
REGISTRY = MemoryRegistry()
REGISTRY.add("events-value", EVENT_SCHEMA)
EVENTS_OUT = AvroSerializer(REGISTRY, "events-value")
EVENTS_IN = AvroDeserializer(REGISTRY, reader_schema=EVOLVED)


@settings(max_examples=60, deadline=None)
@given(value=event_records())
def test_generated_events_project_like_fastavro_resolves(value: dict[str, Any]) -> None:
    frame = EVENTS_OUT.encode(value)
    assert EVENTS_IN.decode(frame) == resolve_with_fastavro(EVENT_SCHEMA, EVOLVED, frame[5:])
