"""Choosing dead letters by reason and time, and what `dlq inspect` shows of one."""

from __future__ import annotations

import pytest

from workers.dlq import DeadLetter, Selection, _when

HEADERS = (
    ("trace-id", b"t-1"),
    ("dlq.source.topic", b"orders"),
    ("dlq.source.partition", b"3"),
    ("dlq.source.offset", b"41"),
    ("dlq.schema.id", b"7"),
    ("dlq.error.reason", b"record_does_not_fit_schema"),
    ("dlq.error.field", b"value"),
    ("dlq.pipeline", b"orders"),
)


def letter(reason: str = "framing", timestamp: int = 1_700_000_000_000) -> DeadLetter:
    kept = [h for h in HEADERS if h[0] != "dlq.error.reason"]
    headers = (*kept, ("dlq.error.reason", reason.encode()))
    return DeadLetter(0, 5, timestamp, b"k", b"\x00\x00\x00\x00\x07\x02", headers)


def test_reasons_and_a_half_open_time_window_select() -> None:
    selection = Selection(frozenset({"framing"}), since_ms=1000, until_ms=2000)
    assert selection.matches(letter("framing", 1000))
    assert not selection.matches(letter("framing", 2000))  # until is exclusive
    assert not selection.matches(letter("framing", 999))
    assert not selection.matches(letter("unknown_schema", 1500))
    assert Selection().matches(letter("anything", 0))


def test_times_are_iso_8601_in_utc_unless_named_or_milliseconds() -> None:
    assert _when("1700000000000") == 1_700_000_000_000
    assert _when("2023-11-14T22:13:20") == 1_700_000_000_000
    assert _when("2023-11-14T23:13:20+01:00") == 1_700_000_000_000
    with pytest.raises(ValueError):
        _when("yesterday")


def test_the_view_names_reason_source_and_schema_and_the_original_headers_drop_dlq_ones() -> None:
    dead = letter("record_does_not_fit_schema")
    view = dead.view(replayed=False)
    assert view["source"] == {"topic": "orders", "partition": 3, "offset": 41}
    assert (view["reason"], view["schema_id"], view["field"], view["key"]) == (
        "record_does_not_fit_schema",
        7,
        "value",
        "k",
    )
    assert view["timestamp"] == "2023-11-14T22:13:20.000+00:00" and view["value_bytes"] == 6
    assert dead.original_headers() == [("trace-id", b"t-1")]
