"""Pipelines the worker's integration tests run (``AVROFLOW_PIPELINES=tests.pipelines_for_tests:PIPELINES``).

The topics come from ``TEST_SOURCE_TOPIC`` and ``TEST_SINK_TOPIC`` (not ``AVROFLOW_*``: the worker refuses
unknown settings), so every test uses its own topics. The transform is deliberately simple and reacts to a
``marker`` field, so a test can plant each kind of outcome: ``raise`` (the transform raises), ``drop``
(returns None), ``fanout`` (two records), ``misfit`` (an output that does not fit the sink schema) and
``not-a-dict`` (a result that is not a record), ``huge`` (an output too large for the broker) and
``channel`` (a field only `OUTPUT_SCHEMA_V2` has).
`PIPELINES_AVRO_KEYS` is the same pipeline with ``key_format="avro"``; `PIPELINES_DEEP` passes recursive
records (`CHAIN_SCHEMA`) through, and answers ``marker="grow"`` with a chain of 10,000 records.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

from workers.pipeline import Pipeline

_ORDER_FIELDS: list[dict[str, Any]] = [
    {"name": "id", "type": "long"},
    {"name": "name", "type": "string"},
    {"name": "amount", "type": "double"},
    {"name": "marker", "type": "string", "default": ""},
]


def _order(fields: list[dict[str, Any]]) -> str:
    return json.dumps({"type": "record", "name": "Order", "namespace": "avroflow.tests", "fields": fields})


INPUT_SCHEMA = _order(_ORDER_FIELDS)
#: A second writer version of the input: one more field, which the pipeline's reader schema ignores.
INPUT_SCHEMA_V2 = _order([*_ORDER_FIELDS, {"name": "coupon", "type": "string", "default": ""}])


def order(i: int, **extra: object) -> dict[str, object]:
    """Order number `i` as the input schema's record (`extra`: more fields, e.g. version 2's)."""
    return {"id": i, "name": f"name-{i}", "amount": float(i), "marker": "", **extra}


OUTPUT_SCHEMA = json.dumps(
    {
        "type": "record",
        "name": "OrderOut",
        "namespace": "avroflow.tests",
        "fields": [
            {"name": "id", "type": "long"},
            {"name": "name", "type": "string"},
            {"name": "amount_cents", "type": "long"},
        ],
    }
)

#: The output schema's second version: one more field with a default (backward compatible).
OUTPUT_SCHEMA_V2 = json.dumps(
    {
        "type": "record",
        "name": "OrderOut",
        "namespace": "avroflow.tests",
        "fields": [
            {"name": "id", "type": "long"},
            {"name": "name", "type": "string"},
            {"name": "amount_cents", "type": "long"},
            {"name": "channel", "type": "string", "default": "web"},
        ],
    }
)


def transform(order: dict[str, Any]) -> Any:
    """Upper-case the name and turn the amount into cents; obey the test marker."""
    marker = order.get("marker", "")
    out = {"id": order["id"], "name": order["name"].upper(), "amount_cents": round(order["amount"] * 100)}
    if marker == "raise":
        raise ValueError(f"order {order['id']} refused by the test transform")
    if marker == "drop":
        return None
    if marker == "fanout":
        return [out, {**out, "id": -order["id"]}]
    if marker == "misfit":
        return {**out, "amount_cents": "not a number"}
    if marker == "not-a-dict":
        return 42
    if marker == "channel":  # a field only OUTPUT_SCHEMA_V2 has: dead-lettered until that version exists
        return {**out, "channel": "app"}
    if marker == "huge":  # larger than the producer's 1 MB request limit: the broker never takes it
        return {**out, "name": "x" * 2_000_000}
    return out


PIPELINES = (
    Pipeline(
        name="orders",
        source=os.environ.get("TEST_SOURCE_TOPIC", "test-orders"),
        sink=os.environ.get("TEST_SINK_TOPIC", "test-orders-out"),
        transform=transform,
        reader_schema=INPUT_SCHEMA,
    ),
)

#: The same pipeline declaring its sink schema, for auto-registration at start.
PIPELINES_WITH_SINK_SCHEMA = (
    Pipeline(
        name="orders",
        source=PIPELINES[0].source,
        sink=PIPELINES[0].sink,
        transform=transform,
        reader_schema=INPUT_SCHEMA,
        sink_schema=OUTPUT_SCHEMA,
    ),
)

#: The same pipeline with keys that must be Avro (``<sink>-key`` must exist).
PIPELINES_AVRO_KEYS = (dataclasses.replace(PIPELINES[0], key_format="avro"),)

#: A recursive record: a linked list of records through ``["null", "Chain"]``.
CHAIN_SCHEMA = json.dumps(
    {
        "type": "record",
        "name": "Chain",
        "namespace": "avroflow.tests",
        "fields": [
            {"name": "id", "type": "long"},
            {"name": "marker", "type": "string", "default": ""},
            {"name": "next", "type": ["null", "Chain"], "default": None},
        ],
    }
)
#: How many records long the chain is that ``marker="grow"`` returns: deeper than any limit allows.
GROWN_CHAIN = 10_000


def chain_transform(chain: dict[str, Any]) -> Any:
    """Mark the head of the chain as seen; ``grow`` returns a chain of `GROWN_CHAIN` records instead."""
    if chain["marker"] == "grow":
        grown: dict[str, Any] | None = None
        for i in range(GROWN_CHAIN):  # built without recursion: the worker must survive writing it
            grown = {"id": i, "marker": "", "next": grown}
        return grown
    return {**chain, "marker": "seen"}


PIPELINES_DEEP = (
    Pipeline(name="deep", source=PIPELINES[0].source, sink=PIPELINES[0].sink, transform=chain_transform),
)
