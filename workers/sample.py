"""The sample pipeline: `app-events` -> `app-events-enriched`.

Input records are `avroflow.events.AppEvent` (schemas/avroflow.events.AppEvent.avsc; version 1 is kept in
schemas/versions/). The pipeline reads every input through the latest input schema (version 2), so
version 1 producers and version 2 producers are both understood: a version 1 event reads with
``session_id = None``. Each event is enriched into `avroflow.events.EnrichedAppEvent` with fields derived
from it; ``heartbeat`` events are keep-alives with no analytic value and are dropped (counted as dropped,
never dead-lettered). Keys are the user id as plain UTF-8 bytes and are carried over unchanged.

`enrich` is a plain function so it can be tested without Kafka; `PIPELINES` is what
``AVROFLOW_PIPELINES=workers.sample:PIPELINES`` (the default) hands to the worker.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from workers.pipeline import Pipeline

#: The data-only package pyproject.toml installs from the repository's top-level schemas/ folder.
SCHEMAS_PACKAGE = "avroflow_schemas"


def installed_schemas_dir(package: str = SCHEMAS_PACKAGE) -> Path:
    """Return the folder holding the sample pipeline's .avsc files and subjects.json.

    The package has no ``__init__.py`` (schemas/ holds only data), so it imports as a namespace package
    whose search locations name the folder: the repository's schemas/ for an editable install, the
    installed copy in site-packages for a wheel. `importlib.resources.files` is not used because on
    Python 3.11 it fails on an editable install's namespace path, which also holds setuptools' path-hook
    placeholder (not a directory); such entries are skipped here. A checkout that is importable without
    being installed falls back to its own schemas/ folder.

    Args:
        package: the package name to look up.

    Returns:
        The first existing folder of the package, else the checkout's schemas/ (which may not exist).
    """
    spec = importlib.util.find_spec(package)
    locations = spec.submodule_search_locations if spec is not None else None
    for location in locations or ():
        if Path(location).is_dir():
            return Path(location)
    return Path(__file__).resolve().parent.parent / "schemas"


#: Where the sample's schemas are, for editable and wheel installs alike (see schemas/README.md).
SCHEMAS_DIR = installed_schemas_dir()
INPUT_SCHEMA_FILE = SCHEMAS_DIR / "avroflow.events.AppEvent.avsc"
INPUT_SCHEMA_V1_FILE = SCHEMAS_DIR / "versions" / "avroflow.events.AppEvent.v1.avsc"
OUTPUT_SCHEMA_FILE = SCHEMAS_DIR / "avroflow.events.EnrichedAppEvent.avsc"

SOURCE_TOPIC = "app-events"
SINK_TOPIC = "app-events-enriched"

#: Event types that count as a conversion in the derived `is_conversion` field.
CONVERSION_TYPES = frozenset({"signup", "purchase"})
#: Event types the pipeline drops: keep-alives that say nothing about what the user did.
DROPPED_TYPES = frozenset({"heartbeat"})

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _utc_now() -> datetime:
    return datetime.now(UTC)


def as_utc_datetime(value: datetime | int) -> datetime:
    """Return a timestamp-millis value as an aware UTC datetime.

    fastavro hands timestamp-millis over as an aware datetime; a decoder configured without logical
    types hands over the raw epoch milliseconds. Both are accepted so the transform does not depend on it.
    """
    if isinstance(value, datetime):
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    return _EPOCH + timedelta(milliseconds=int(value))


def _truncate_to_millis(moment: datetime) -> datetime:
    # timestamp-millis cannot hold microseconds; truncating here keeps what is written equal to what is read.
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def enrich(event: Mapping[str, Any], *, now: Callable[[], datetime] = _utc_now) -> dict[str, Any] | None:
    """Derive the enriched record from one input event, or drop it.

    Args:
        event: an `AppEvent` as decoded through the latest input schema.
        now: the clock for `processed_at` (tests pass a fixed one).

    Returns:
        The `EnrichedAppEvent` record: the input fields plus `event_date` (UTC day), `hour_of_day` (UTC),
        `is_conversion` (signup or purchase), `property_count` and `processed_at`; or None for a
        ``heartbeat``, which the pipeline drops.
    """
    event_type = str(event["event_type"])
    if event_type in DROPPED_TYPES:
        return None
    occurred_at = as_utc_datetime(event["occurred_at"])
    properties = dict(event.get("properties") or {})
    event_date: date = occurred_at.date()
    return {
        "event_id": event["event_id"],
        "user_id": event["user_id"],
        "event_type": event_type,
        "occurred_at": occurred_at,
        "properties": properties,
        "referrer": event.get("referrer"),
        "session_id": event.get("session_id"),
        "event_date": event_date,
        "hour_of_day": occurred_at.hour,
        "is_conversion": event_type in CONVERSION_TYPES,
        "property_count": len(properties),
        "processed_at": _truncate_to_millis(as_utc_datetime(now())),
    }


APP_EVENTS = Pipeline(
    name="app-events-enrich",
    source=SOURCE_TOPIC,
    sink=SINK_TOPIC,
    transform=enrich,
    reader_schema=str(INPUT_SCHEMA_FILE),
    key_format="auto",
)

PIPELINES: tuple[Pipeline, ...] = (APP_EVENTS,)

__all__ = [
    "APP_EVENTS",
    "CONVERSION_TYPES",
    "DROPPED_TYPES",
    "INPUT_SCHEMA_FILE",
    "INPUT_SCHEMA_V1_FILE",
    "OUTPUT_SCHEMA_FILE",
    "PIPELINES",
    "SCHEMAS_DIR",
    "SCHEMAS_PACKAGE",
    "SINK_TOPIC",
    "SOURCE_TOPIC",
    "enrich",
    "installed_schemas_dir",
]
