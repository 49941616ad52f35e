"""Typed records for agents: dataclasses and faust.Records in, dicts out, held to the schemas at start."""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import io
import json
from typing import Any

import fastavro
import faust
import pytest

from workers.agents import Avroflow
from workers.pipeline import TOMBSTONE, PipelineError
from workers.settings import Settings
from workers.typed import RecordType, RecordTypeMismatch, TypedTransform

SETTINGS = Settings.from_env(
    {"AVROFLOW_KAFKA_BOOTSTRAP_SERVERS": "localhost:9092", "AVROFLOW_SCHEMA_REGISTRY_URL": "http://r:8081"}
)
ORDER_SCHEMA = {
    "type": "record",
    "name": "Order",
    "fields": [
        {"name": "id", "type": "long"},
        {"name": "placed", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {
            "name": "total",
            "type": {"type": "bytes", "logicalType": "decimal", "precision": 9, "scale": 2},
        },
        {"name": "note", "type": "string", "default": ""},
    ],
}


@dataclasses.dataclass
class Order:
    id: int
    placed: dt.datetime
    total: decimal.Decimal
    note: str = ""


class OrderRecord(faust.Record):
    id: int
    placed: dt.datetime
    total: decimal.Decimal
    note: str = ""


@dataclasses.dataclass
class Shipped:
    id: int
    label: str


def decoded(record: dict[str, Any]) -> dict[str, Any]:
    """`record` written and read back by fastavro: logical types as fastavro hands them to the worker."""
    parsed = fastavro.parse_schema(ORDER_SCHEMA)
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, parsed, record)
    buffer.seek(0)
    result: dict[str, Any] = fastavro.schemaless_reader(buffer, parsed, parsed)
    return result


PLACED = dt.datetime(2026, 12, 3, 10, 30, tzinfo=dt.UTC)


@pytest.mark.parametrize("value_type", [Order, OrderRecord])
def test_records_arrive_typed_with_logical_types_and_typed_results_are_written_as_dicts(
    value_type: type,
) -> None:
    seen = []

    def ship(order: Any) -> Shipped:
        seen.append(order)
        return Shipped(order.id, f"{order.total} on {order.placed:%Y-%m-%d}")

    transform = TypedTransform(ship, RecordType.of(value_type))
    result = transform(decoded({"id": 7, "placed": PLACED, "total": decimal.Decimal("12.50")}))
    assert result == {"id": 7, "label": "12.50 on 2026-12-03"}
    (order,) = seen
    assert isinstance(order, value_type)
    assert (order.placed, order.total, order.note) == (PLACED, decimal.Decimal("12.50"), "")


def test_fan_out_of_typed_records_tombstones_and_drops_pass_through() -> None:
    transform = TypedTransform(
        lambda order: [Shipped(order.id, "a"), OrderRecord(id=2, placed=PLACED, total=1)],
        RecordType.of(Order),
    )
    record = {"id": 1, "placed": PLACED, "total": decimal.Decimal("1")}
    assert transform(record) == [{"id": 1, "label": "a"}, {"id": 2, "placed": PLACED, "total": 1, "note": ""}]
    assert TypedTransform(lambda order: TOMBSTONE, RecordType.of(Order))(record) is TOMBSTONE
    assert TypedTransform(lambda order: None, RecordType.of(Order))(record) is None
    assert TypedTransform(lambda order: order, None)(None) is None  # a tombstone handed to the transform


def test_a_record_without_a_field_its_type_requires_is_refused_with_a_reason() -> None:
    transform = TypedTransform(lambda order: order, RecordType.of(Order))
    with pytest.raises(RecordTypeMismatch, match="Order requires placed, total") as caught:
        transform({"id": 1})
    assert caught.value.reason == "record_type_mismatch"


def test_an_input_type_the_reader_schema_cannot_fill_is_refused_when_declared() -> None:
    @dataclasses.dataclass
    class Wrong:
        id: int
        customer: str  # not in the schema, no default
        note: str = ""

    avro = Avroflow(faust.App("typed-test", broker="kafka://localhost:9092"), SETTINGS)
    with pytest.raises(PipelineError, match=r"value_type: Wrong\.customer is not a field of Order"):
        avro.agent(
            "orders", sink="out", name="wrong", value_type=Wrong, reader_schema=json.dumps(ORDER_SCHEMA)
        )(lambda o: o)
    avro.agent("orders", sink="out", name="fits", value_type=Order, reader_schema=json.dumps(ORDER_SCHEMA))(
        lambda o: o
    )


def test_an_output_type_is_held_to_the_sink_schema_both_ways() -> None:
    sink = json.dumps(
        {
            "type": "record",
            "name": "ShippedV2",
            "fields": [
                {"name": "id", "type": "long"},
                {"name": "carrier", "type": "string"},
                {"name": "weight", "type": "double", "default": 0.0},
            ],
        }
    )
    assert RecordType.of(Shipped).problems_with(sink, output=True) == [
        "Shipped.label is not a field of ShippedV2",
        "ShippedV2.carrier (no default) is not a field of Shipped",
    ]
    fits = json.dumps(
        {
            "type": "record",
            "name": "S",
            "fields": [
                {"name": "id", "type": "long"},
                {"name": "label", "type": "string"},
                {"name": "x", "type": "int", "default": 0},
            ],
        }
    )
    assert RecordType.of(Shipped).problems_with(fits, output=True) == []


def test_only_dataclasses_and_faust_records_are_record_types() -> None:
    with pytest.raises(PipelineError, match=r"expected a dataclass or a faust\.Record subclass"):
        RecordType.of(dict)
