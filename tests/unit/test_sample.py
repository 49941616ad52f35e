"""The sample pipeline's transform: derived fields, the drop rule, and a v1/v2 -> output round trip."""

from __future__ import annotations

import io
import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import fastavro

from workers import sample
from workers.pipeline import apply_transform, load_pipelines

FIXED_NOW = datetime(2024, 6, 2, 8, 15, 30, 123456, tzinfo=UTC)


def _now() -> datetime:
    return FIXED_NOW


def _event(**overrides: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "event_id": "e-1",
        "user_id": "u-42",
        "event_type": "purchase",
        "occurred_at": datetime(2024, 5, 31, 23, 59, 59, 999000, tzinfo=UTC),
        "properties": {"plan": "pro", "amount": "19.90"},
        "referrer": None,
        "session_id": "s-7",
    }
    event.update(overrides)
    return event


def _schema(path: Path) -> Any:
    return fastavro.parse_schema(json.loads(path.read_text()))


def test_enrich_derives_date_hour_conversion_count_and_processing_time() -> None:
    out = sample.enrich(_event(), now=_now)
    assert out is not None
    assert out["event_date"] == date(2024, 5, 31)
    assert out["hour_of_day"] == 23
    assert out["is_conversion"] is True
    assert out["property_count"] == 2
    assert out["processed_at"] == FIXED_NOW.replace(microsecond=123000)
    assert {k: out[k] for k in ("event_id", "user_id", "event_type", "session_id")} == {
        "event_id": "e-1",
        "user_id": "u-42",
        "event_type": "purchase",
        "session_id": "s-7",
    }


def test_enrich_uses_utc_for_day_and_hour_of_an_offset_timestamp() -> None:
    from datetime import timedelta, timezone

    # 01:30 in UTC+2 is 23:30 of the previous day in UTC.
    local = datetime(2024, 3, 10, 1, 30, tzinfo=timezone(timedelta(hours=2)))
    out = sample.enrich(_event(occurred_at=local), now=_now)
    assert out is not None
    assert (out["event_date"], out["hour_of_day"]) == (date(2024, 3, 9), 23)


def test_enrich_accepts_epoch_millis_and_counts_no_properties() -> None:
    millis = int(datetime(2024, 1, 1, 7, 0, tzinfo=UTC).timestamp() * 1000)
    out = sample.enrich(_event(event_type="page_view", occurred_at=millis, properties={}), now=_now)
    assert out is not None
    assert (out["event_date"], out["hour_of_day"], out["is_conversion"], out["property_count"]) == (
        date(2024, 1, 1),
        7,
        False,
        0,
    )


def test_signup_is_a_conversion_and_click_is_not() -> None:
    assert sample.enrich(_event(event_type="signup"), now=_now)["is_conversion"] is True
    assert sample.enrich(_event(event_type="click"), now=_now)["is_conversion"] is False


def test_heartbeats_are_dropped() -> None:
    assert sample.enrich(_event(event_type="heartbeat"), now=_now) is None
    assert apply_transform(sample.APP_EVENTS.transform, _event(event_type="heartbeat")) == []


def test_v1_and_v2_events_enrich_into_records_that_fit_the_output_schema() -> None:
    v1, v2, out = (
        _schema(sample.INPUT_SCHEMA_V1_FILE),
        _schema(sample.INPUT_SCHEMA_FILE),
        _schema(sample.OUTPUT_SCHEMA_FILE),
    )
    v1_event = {k: v for k, v in _event(referrer="https://ref.example").items() if k != "session_id"}
    for writer, event in ((v1, v1_event), (v2, _event())):
        buf = io.BytesIO()
        fastavro.schemaless_writer(buf, writer, event)
        buf.seek(0)
        decoded = fastavro.schemaless_reader(buf, writer, v2)  # what the worker does with its reader schema
        [enriched] = apply_transform(sample.APP_EVENTS.transform, decoded)
        buf = io.BytesIO()
        fastavro.schemaless_writer(buf, out, enriched)
        buf.seek(0)
        written = fastavro.schemaless_reader(buf, out)
        assert written["session_id"] == event.get("session_id")
        assert written["referrer"] == event["referrer"]
        assert written["event_date"] == date(2024, 5, 31)
        assert written["occurred_at"] == event["occurred_at"]


def test_the_default_pipelines_spec_loads_the_sample_pipeline() -> None:
    assert load_pipelines("workers.sample:PIPELINES") == (sample.APP_EVENTS,)
    pipeline = sample.APP_EVENTS
    assert (pipeline.source, pipeline.sink, pipeline.sink_value_subject) == (
        "app-events",
        "app-events-enriched",
        "app-events-enriched-value",
    )
    assert pipeline.dead_letter_topic(".dlq") == "app-events.dlq"
    reader = pipeline.load_reader_schema()
    assert reader is not None and "session_id" in json.loads(reader)["fields"][-1]["name"]
