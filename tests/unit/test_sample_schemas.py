"""The .avsc files of the sample pipeline: they parse, their names match, and v2 reads v1 data."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import fastavro
import pytest

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"
V1 = SCHEMAS / "versions" / "avroflow.events.AppEvent.v1.avsc"
V2 = SCHEMAS / "avroflow.events.AppEvent.avsc"
OUT = SCHEMAS / "avroflow.events.EnrichedAppEvent.avsc"


def _load(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(path.read_text())
    return loaded


def _roundtrip(record: dict[str, Any], writer: dict[str, Any], reader: dict[str, Any]) -> Any:
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, fastavro.parse_schema(writer), record)
    buf.seek(0)
    return fastavro.schemaless_reader(buf, fastavro.parse_schema(writer), fastavro.parse_schema(reader))


@pytest.mark.parametrize("path", sorted(SCHEMAS.rglob("*.avsc")), ids=lambda p: p.name)
def test_every_schema_file_parses_and_is_named_after_its_full_name(path: Path) -> None:
    schema = _load(path)
    fastavro.parse_schema(schema)
    full_name = f"{schema['namespace']}.{schema['name']}"
    assert path.name.removesuffix(".avsc").split(".v")[0] == full_name


def test_subjects_manifest_lists_every_file_once_in_v1_then_v2_order() -> None:
    manifest = json.loads((SCHEMAS / "subjects.json").read_text())["registrations"]
    files = [entry["file"] for entry in manifest]
    on_disk = sorted(str(p.relative_to(SCHEMAS)) for p in SCHEMAS.rglob("*.avsc"))
    assert sorted(files) == on_disk
    input_files = [e["file"] for e in manifest if e["subject"] == "app-events-value"]
    assert input_files == [str(V1.relative_to(SCHEMAS)), str(V2.relative_to(SCHEMAS))]
    assert {e["subject"] for e in manifest} == {"app-events-value", "app-events-enriched-value"}


def test_v1_event_reads_through_v2_with_null_session_id() -> None:
    event = {
        "event_id": "e1",
        "user_id": "u1",
        "event_type": "click",
        "occurred_at": datetime(2024, 5, 1, 12, 30, tzinfo=UTC),
        "properties": {"button": "buy"},
        "referrer": None,
    }
    read = _roundtrip(event, _load(V1), _load(V2))
    assert read == {**event, "session_id": None}


def test_v2_event_keeps_its_session_id_and_v2_only_adds_defaulted_fields() -> None:
    event = {
        "event_id": "e2",
        "user_id": "u2",
        "event_type": "purchase",
        "occurred_at": datetime(2024, 5, 1, 12, 30, tzinfo=UTC),
        "properties": {},
        "referrer": "https://example.com",
        "session_id": "s-9",
    }
    assert _roundtrip(event, _load(V2), _load(V2)) == event
    v1_fields = {f["name"] for f in _load(V1)["fields"]}
    added = [f for f in _load(V2)["fields"] if f["name"] not in v1_fields]
    assert added and all("default" in f for f in added)


def test_output_schema_holds_every_input_field_plus_the_derived_ones() -> None:
    out_fields = {f["name"] for f in _load(OUT)["fields"]}
    in_fields = {f["name"] for f in _load(V2)["fields"]}
    derived = {"event_date", "hour_of_day", "is_conversion", "property_count", "processed_at"}
    assert out_fields == in_fields | derived
