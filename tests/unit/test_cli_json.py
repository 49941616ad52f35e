"""JSON <-> Avro conversion of the console tools: natural JSON in, printable JSON out, round trips."""

from __future__ import annotations

import decimal
import io
import json
import uuid
from datetime import UTC, date, datetime, time, timedelta, timezone
from typing import Any

import fastavro
import pytest

from registry_codecs.unions import NamedRecord
from workers.avro_json import JsonConversionError, from_json, to_json_default

SCHEMA: dict[str, Any] = {
    "type": "record",
    "name": "Everything",
    "namespace": "t",
    "fields": [
        {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "at_us", "type": ["null", {"type": "long", "logicalType": "timestamp-micros"}]},
        {"name": "day", "type": {"type": "int", "logicalType": "date"}},
        {"name": "price", "type": {"type": "bytes", "logicalType": "decimal", "precision": 9, "scale": 2}},
        {"name": "blob", "type": "bytes"},
        {"name": "id", "type": {"type": "string", "logicalType": "uuid"}},
        {"name": "maybe", "type": ["null", "string"], "default": None},
        {"name": "kind", "type": {"type": "enum", "name": "Kind", "symbols": ["A", "B"]}},
        {"name": "again", "type": ["null", "Kind"], "default": None},
        {"name": "tags", "type": {"type": "array", "items": "string"}},
        {"name": "props", "type": {"type": "map", "values": ["null", "long"]}},
        {"name": "tick", "type": {"type": "int", "logicalType": "time-millis"}},
    ],
}


def _write_read(record: dict[str, Any]) -> Any:
    parsed = fastavro.parse_schema(SCHEMA)
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, parsed, record)
    buf.seek(0)
    return fastavro.schemaless_reader(buf, parsed)


NATURAL = {
    "at": "2024-05-01T12:30:00.250Z",
    "at_us": 1714566600000000,
    "day": "2024-05-01",
    "price": "19.90",
    "blob": "\u0000\u00ffab",
    "id": "7f1b6a52-54f7-4d33-9a3c-1c0a7a9c6f10",
    "maybe": "x",
    "kind": "B",
    "again": {"t.Kind": "A"},
    "tags": ["a", "b"],
    "props": {"n": 3, "none": None},
    "tick": "08:15:00.500",
}


def test_natural_json_is_converted_to_what_fastavro_writes() -> None:
    record = from_json(SCHEMA, NATURAL)
    assert record["at"] == datetime(2024, 5, 1, 12, 30, 0, 250000, tzinfo=UTC)
    assert record["day"] == date(2024, 5, 1)
    assert record["price"] == decimal.Decimal("19.90")
    assert record["blob"] == b"\x00\xffab"
    assert record["again"] == "A"
    assert record["tick"] == time(8, 15, 0, 500000)
    read = _write_read(record)
    assert read["at_us"] == datetime(2024, 5, 1, 12, 30, tzinfo=UTC)
    assert read["props"] == {"n": 3, "none": None}


def test_decoded_records_print_as_json_and_read_back_to_the_same_record() -> None:
    decoded = _write_read(from_json(SCHEMA, NATURAL))
    text = json.dumps(decoded, default=to_json_default)
    assert json.loads(text)["price"] == "19.90"
    assert json.loads(text)["id"] == NATURAL["id"]
    again = _write_read(from_json(SCHEMA, json.loads(text)))
    assert again == decoded


def test_offset_and_naive_timestamps() -> None:
    plus2 = from_json(SCHEMA, {**NATURAL, "at": "2024-05-01T14:30:00+02:00"})["at"]
    assert plus2 == datetime(2024, 5, 1, 12, 30, tzinfo=UTC)
    assert plus2.tzinfo == timezone(timedelta(hours=2))
    naive = from_json(SCHEMA, {**NATURAL, "at": "2024-05-01T12:30:00"})["at"]
    assert naive == datetime(2024, 5, 1, 12, 30, tzinfo=UTC)  # a timestamp without offset is UTC


def test_epoch_numbers_pass_through_and_null_stays_null() -> None:
    record = from_json(SCHEMA, {**NATURAL, "at": 1714566600000, "day": 19844, "maybe": None, "at_us": None})
    read = _write_read(record)
    assert read["at"] == datetime(2024, 5, 1, 12, 30, tzinfo=UTC)
    assert read["day"] == date(2024, 5, 1)
    assert (read["maybe"], read["at_us"]) == (None, None)


def test_avro_json_union_form_is_unwrapped() -> None:
    assert from_json(SCHEMA, {**NATURAL, "maybe": {"string": "y"}})["maybe"] == "y"


@pytest.mark.parametrize(
    ("field", "bad"),
    [("at", "yesterday"), ("day", "2024-13-01"), ("price", "cheap"), ("blob", "\u20ac")],
)
def test_bad_values_name_the_field(field: str, bad: str) -> None:
    with pytest.raises(JsonConversionError) as exc:
        from_json(SCHEMA, {**NATURAL, field: bad})
    assert exc.value.path == field
    assert field in str(exc.value)


def test_every_decoded_type_prints() -> None:
    value = {
        "b": b"\x01\xfe",
        "d": decimal.Decimal("1.50"),
        "u": uuid.UUID(int=1),
        "t": datetime(2024, 1, 1, tzinfo=UTC),
    }
    assert json.loads(json.dumps(value, default=to_json_default)) == {
        "b": "\u0001\u00fe",
        "d": "1.50",
        "u": "00000000-0000-0000-0000-000000000001",
        "t": "2024-01-01T00:00:00+00:00",
    }
    with pytest.raises(TypeError):
        to_json_default(object())


def test_a_named_type_is_known_even_when_its_defining_field_is_absent() -> None:
    schema = {
        "type": "record",
        "name": "Outer",
        "namespace": "ns",
        "fields": [
            {
                "name": "first",
                "type": [
                    "null",
                    {
                        "type": "record",
                        "name": "When",
                        "fields": [
                            {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}}
                        ],
                    },
                ],
                "default": None,
            },
            {"name": "second", "type": {"type": "array", "items": "When"}},
            {"name": "third", "type": ["null", "ns.When"], "default": None},
        ],
    }
    record = from_json(schema, {"second": [{"at": "2024-01-01T00:00:00Z"}], "third": {"ns.When": {"at": 0}}})
    assert record["second"] == [{"at": datetime(2024, 1, 1, tzinfo=UTC)}]
    assert record["third"] == {"at": 0}


def test_avro_json_union_form_naming_a_record_keeps_the_branch() -> None:
    created = {"type": "record", "name": "Created", "fields": [{"name": "id", "type": "long"}]}
    deleted = {"type": "record", "name": "Deleted", "fields": [{"name": "id", "type": "long"}]}
    schema = {
        "type": "record",
        "name": "Event",
        "namespace": "shop",
        "fields": [{"name": "change", "type": [created, deleted]}],
    }
    change = from_json(schema, {"change": {"shop.Deleted": {"id": 3}}})["change"]
    assert isinstance(change, NamedRecord) and change.avro_name == "shop.Deleted" and change == {"id": 3}
    assert from_json(schema, {"change": {"Created": {"id": 4}}})["change"].avro_name == "shop.Created"


def _records(*branches: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "record",
        "name": "Event",
        "namespace": "shop",
        "fields": [{"name": "change", "type": list(branches)}],
    }


WIDE = {
    "type": "record",
    "name": "Created",
    "fields": [{"name": "id", "type": "long"}, {"name": "name", "type": "string"}],
}
NARROW = {"type": "record", "name": "Deleted", "fields": [{"name": "id", "type": "long"}]}
NOTED = {
    "type": "record",
    "name": "Noted",
    "fields": [{"name": "id", "type": "long"}, {"name": "note", "type": ["null", "string"], "default": None}],
}


def test_a_plain_object_for_a_union_of_records_takes_the_branch_whose_fields_it_matches() -> None:
    schema = _records(WIDE, NARROW)
    narrow = from_json(schema, {"change": {"id": 3}})["change"]
    assert isinstance(narrow, NamedRecord) and narrow.avro_name == "shop.Deleted" and narrow == {"id": 3}
    wide = from_json(schema, {"change": {"id": 4, "name": "x"}})["change"]
    assert (
        isinstance(wide, NamedRecord) and wide.avro_name == "shop.Created" and wide == {"id": 4, "name": "x"}
    )
    # the narrow branch first in the union: the wide object still keeps its name (nothing dropped)
    wide = from_json(_records(NARROW, WIDE), {"change": {"id": 4, "name": "x"}})["change"]
    assert wide.avro_name == "shop.Created" and wide == {"id": 4, "name": "x"}


def test_the_chosen_branch_is_the_one_written() -> None:
    from registry_codecs import AvroSerializer, InMemorySchemaLookup
    from registry_codecs.serde import AvroDeserializer

    schema = _records(WIDE, NARROW)
    lookup = InMemorySchemaLookup()
    lookup.register("t-value", json.dumps(schema))
    frame = AvroSerializer(lookup, "t-value").encode(from_json(schema, {"change": {"id": 3}}))
    change = AvroDeserializer(lookup).decode(frame)["change"]
    assert change.avro_name == "shop.Deleted"


@pytest.mark.parametrize(
    ("branches", "value", "matched"),
    [
        ((NARROW, NOTED), {"id": 1}, "shop.Deleted, shop.Noted"),  # a default makes Noted fit too
        ((WIDE, NARROW), {"id": 1, "colour": "red"}, "none"),
        ((WIDE, NOTED), {"name": "x"}, "none"),
    ],
)
def test_a_plain_object_matching_no_branch_or_several_is_refused_naming_the_candidates(
    branches: tuple[dict[str, Any], ...], value: dict[str, Any], matched: str
) -> None:
    with pytest.raises(JsonConversionError) as exc:
        from_json(_records(*branches), {"change": value})
    assert exc.value.path == "change"
    message = str(exc.value)
    candidates = ", ".join(f"shop.{b['name']}" for b in branches)
    assert f"matches {matched} of [{candidates}]" in message
    assert '{"<full name>": {...}}' in message


def test_a_field_the_record_does_not_have_is_kept_for_the_encoder_to_refuse() -> None:
    from registry_codecs import AvroSerializer, InMemorySchemaLookup
    from registry_codecs.errors import ValueDoesNotFit

    schema = {"type": "record", "name": "R", "fields": [{"name": "id", "type": "long"}]}
    record = from_json(schema, {"id": 1, "colour": "red"})
    assert record == {"id": 1, "colour": "red"}
    lookup = InMemorySchemaLookup()
    lookup.register("t-value", json.dumps(schema))
    with pytest.raises(ValueDoesNotFit) as exc:
        AvroSerializer(lookup, "t-value").encode(record)
    assert "colour" in exc.value.field_path
