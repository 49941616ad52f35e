"""Shared test material for the codec tests: a call-counting in-memory lookup and a 17-field sample schema.

No tests live here; the module is named test_* only so that it falls under the codec tests' file names.
"""

from __future__ import annotations

import datetime
import decimal
import json
import uuid
from typing import Any

from registry_codecs.errors import RegistryUnavailable
from registry_codecs.memory import InMemorySchemaLookup
from registry_codecs.schemas import RegisteredSchema, SchemaReference

ADDRESS = {
    "type": "record",
    "name": "Address",
    "fields": [
        {"name": "street", "type": "string"},
        {"name": "city", "type": "string"},
        {"name": "zip", "type": "string"},
    ],
}

#: 17 fields: every primitive, an enum, a nullable union, an array, a map, a nested record, logical types.
EVENT_SCHEMA: dict[str, Any] = {
    "type": "record",
    "name": "Event",
    "namespace": "com.example.avroflow",
    "fields": [
        {"name": "event_id", "type": {"type": "string", "logicalType": "uuid"}},
        {"name": "user_id", "type": "long"},
        {"name": "session", "type": "string"},
        {"name": "count", "type": "int"},
        {"name": "score", "type": "double"},
        {"name": "active", "type": "boolean"},
        {"name": "kind", "type": {"type": "enum", "name": "Kind", "symbols": ["CLICK", "VIEW", "BUY"]}},
        {"name": "referrer", "type": ["null", "string"], "default": None},
        {"name": "tags", "type": {"type": "array", "items": "string"}},
        {"name": "attributes", "type": {"type": "map", "values": "string"}},
        {"name": "address", "type": ADDRESS},
        {"name": "created_at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "updated_at", "type": {"type": "long", "logicalType": "timestamp-micros"}},
        {"name": "birth_date", "type": {"type": "int", "logicalType": "date"}},
        {"name": "open_time", "type": {"type": "int", "logicalType": "time-millis"}},
        {
            "name": "amount",
            "type": {"type": "bytes", "logicalType": "decimal", "precision": 10, "scale": 2},
        },
        {
            "name": "price",
            "type": {
                "type": "fixed",
                "name": "Price",
                "size": 8,
                "logicalType": "decimal",
                "precision": 12,
                "scale": 4,
            },
        },
    ],
}
EVENT_SCHEMA_STR = json.dumps(EVENT_SCHEMA)


def sample_event(**overrides: Any) -> dict[str, Any]:
    """Return a record that fits EVENT_SCHEMA, with `overrides` applied."""
    utc = datetime.UTC
    record: dict[str, Any] = {
        "event_id": uuid.UUID("12345678-1234-5678-1234-567812345678"),
        "user_id": 2**40 + 7,
        "session": "sess-ä-1",
        "count": -42,
        "score": 3.25,
        "active": True,
        "kind": "VIEW",
        "referrer": "https://example.com/",
        "tags": ["a", "bb", "ccc"],
        "attributes": {"k1": "v1", "k2": ""},
        "address": {"street": "1 Main St", "city": "Springfield", "zip": "12345"},
        "created_at": datetime.datetime(2024, 5, 1, 12, 0, 0, 123000, tzinfo=utc),
        "updated_at": datetime.datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=utc),
        "birth_date": datetime.date(1990, 1, 2),
        "open_time": datetime.time(9, 30, 0, 500000),
        "amount": decimal.Decimal("1234.56"),
        "price": decimal.Decimal("-99.9900"),
    }
    record.update(overrides)
    return record


class MemoryRegistry(InMemorySchemaLookup):
    """The library's in-memory lookup, counting calls and able to play a registry that is down."""

    def __init__(self, first_id: int = 1) -> None:
        super().__init__(first_id)
        self.calls: dict[str, int] = {"get_schema": 0, "get_latest": 0, "register": 0}
        self.unavailable = False

    def _check(self, method: str) -> None:
        self.calls[method] += 1
        if self.unavailable:
            raise RegistryUnavailable("registry down (test)", status_code=503)

    def get_schema(self, schema_id: int) -> RegisteredSchema:
        self._check("get_schema")
        return super().get_schema(schema_id)

    def get_latest(self, subject: str) -> RegisteredSchema:
        self._check("get_latest")
        return super().get_latest(subject)

    def register(
        self,
        subject: str,
        schema_str: str,
        schema_type: str = "AVRO",
        references: tuple[SchemaReference, ...] = (),
    ) -> int:
        self._check("register")
        return super().register(subject, schema_str, schema_type, references)


def event_records() -> Any:
    """A hypothesis strategy of records that fit EVENT_SCHEMA, edge values included."""
    from hypothesis import strategies as st

    utc = datetime.UTC
    millis = st.integers(0, 999).map(lambda ms: ms * 1000)
    moments = st.datetimes(datetime.datetime(1900, 1, 1), datetime.datetime(2200, 1, 1))
    address = st.fixed_dictionaries({"street": st.text(), "city": st.text(), "zip": st.text(max_size=10)})
    return st.fixed_dictionaries(
        {
            "event_id": st.uuids(),
            "user_id": st.integers(-(2**63), 2**63 - 1),
            "session": st.text(),
            "count": st.integers(-(2**31), 2**31 - 1),
            "score": st.floats(allow_nan=False),
            "active": st.booleans(),
            "kind": st.sampled_from(["CLICK", "VIEW", "BUY"]),
            "referrer": st.none() | st.text(),
            "tags": st.lists(st.text(), max_size=5),
            "attributes": st.dictionaries(st.text(), st.text(), max_size=5),
            "address": address,
            "created_at": st.builds(lambda m, ms: m.replace(microsecond=ms, tzinfo=utc), moments, millis),
            "updated_at": moments.map(lambda m: m.replace(tzinfo=utc)),
            "birth_date": st.dates(),
            "open_time": st.builds(lambda t, ms: t.replace(microsecond=ms), st.times(), millis),
            "amount": st.decimals(
                min_value=decimal.Decimal("-99999999.99"),
                max_value=decimal.Decimal("99999999.99"),
                places=2,
            ),
            "price": st.decimals(
                min_value=decimal.Decimal("-99999999.9999"),
                max_value=decimal.Decimal("99999999.9999"),
                places=4,
            ),
        }
    )
