"""Sample input for the demo: app events from version 1 and version 2 producers, and poison messages.

The events are deterministic (no randomness), so a run prints the same enriched records every time and
the demo knows in advance how many outputs to wait for: every event except heartbeats.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import fastavro

from registry_codecs.framing import frame
from workers.sample import DROPPED_TYPES, INPUT_SCHEMA_V1_FILE

_TYPES = ("page_view", "click", "page_view", "heartbeat", "click", "signup", "page_view", "purchase", "click")
_PROPERTIES: dict[str, dict[str, str]] = {
    "page_view": {"page": "/pricing"},
    "click": {"button": "start-trial", "page": "/pricing"},
    "signup": {"plan": "free"},
    "purchase": {"plan": "pro", "amount": "19.90", "currency": "EUR"},
    "heartbeat": {},
}
_START = datetime(2024, 5, 1, 8, 0, tzinfo=UTC)
#: An id no registry in the demo hands out: the frame is well formed but its schema is unknown (40403).
UNKNOWN_SCHEMA_ID = 2_000_000_000


@dataclass(frozen=True, slots=True)
class SampleMessage:
    """One message to produce: its key, its value bytes and how it was made (for the printout)."""

    key: bytes
    value: bytes
    kind: str  # "v1", "v2" or a poison description


def sample_events(count: int = 36) -> list[dict[str, Any]]:
    """Return `count` app events over six users; odd ones carry a session id (version 2 producers)."""
    events = []
    for i in range(count):
        user = f"u-{i % 6 + 1:02d}"
        event_type = _TYPES[i % len(_TYPES)]
        event: dict[str, Any] = {
            "event_id": f"evt-{i:04d}",
            "user_id": user,
            "event_type": event_type,
            "occurred_at": _START + timedelta(minutes=37 * i),
            "properties": dict(_PROPERTIES[event_type]),
            "referrer": "https://news.example.com" if i % 5 == 0 else None,
        }
        if i % 2:
            event["session_id"] = f"s-{user}-{i // 12}"
        events.append(event)
    return events


def is_v2(event: dict[str, Any]) -> bool:
    """Whether the event is produced by a version 2 producer (it has a session id)."""
    return "session_id" in event


def expected_outputs(events: list[dict[str, Any]]) -> int:
    """How many enriched records the pipeline makes from `events`: all but the dropped types."""
    return sum(1 for e in events if e["event_type"] not in DROPPED_TYPES)


def encode_v1(schema_id: int, event: dict[str, Any]) -> bytes:
    """Encode `event` the way a version 1 producer does: with the v1 schema, framed with its id."""
    parsed = fastavro.parse_schema(json.loads(INPUT_SCHEMA_V1_FILE.read_text(encoding="utf-8")))
    body = io.BytesIO()
    fastavro.schemaless_writer(body, parsed, event)
    return frame(schema_id, body.getvalue())


def poison_messages() -> list[SampleMessage]:
    """Messages the pipeline must dead-letter: not a Confluent frame, and a frame with an unknown id."""
    return [
        SampleMessage(b"u-99", b'{"event_type": "click"}', "poison: JSON, not a Confluent frame"),
        SampleMessage(b"u-99", frame(UNKNOWN_SCHEMA_ID, b"\x02"), "poison: unknown schema id"),
    ]


__all__ = [
    "UNKNOWN_SCHEMA_ID",
    "SampleMessage",
    "encode_v1",
    "expected_outputs",
    "is_v2",
    "poison_messages",
    "sample_events",
]
