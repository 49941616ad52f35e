"""A Faust app of a user's own, with one avroflow agent, the way the README's first example writes it.

Run with ``python -m workers worker --app tests.agents_for_tests:app`` (or ``faust -A``). The agent's form
comes from ``TEST_AGENT_FORM``: ``function`` (a plain function of one record, `pipelines_for_tests`'
transform) or ``stream`` (an async body over the stream doing the same, written the way Faust agents are).
``typed`` is the function with typed records (`Order` in, `OrderOut` out, checked against the schemas);
``typed-wrong`` declares an output type with a field the sink schema does not have (refused at start).
The topics come from ``TEST_SOURCE_TOPIC`` and ``TEST_SINK_TOPIC``, as for `pipelines_for_tests`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
from collections.abc import AsyncIterator
from typing import Any

import faust

from tests.pipelines_for_tests import INPUT_SCHEMA, transform
from workers.agents import Avroflow
from workers.kafka_config import faust_settings
from workers.settings import Settings

settings = Settings.from_env()
app = faust.App(settings.app_id, **faust_settings(settings))
avro = Avroflow(app, settings)
SOURCE = os.environ.get("TEST_SOURCE_TOPIC", "test-orders")
SINK = os.environ.get("TEST_SINK_TOPIC", "test-orders-out")

FORM = os.environ.get("TEST_AGENT_FORM", "function")


@dataclasses.dataclass
class Order:
    id: int
    name: str
    amount: float
    marker: str = ""


@dataclasses.dataclass
class OrderOut:
    id: int
    name: str
    amount_cents: int


@dataclasses.dataclass
class OrderOutWrong:
    id: int
    name: str
    amount_cents: int
    currency: str  # not a field of the sink schema


if FORM == "function":

    @avro.agent(SOURCE, sink=SINK, name="orders", reader_schema=INPUT_SCHEMA)
    def orders(order: dict[str, Any]) -> Any:
        return transform(order)

elif FORM in ("typed", "typed-wrong"):

    @avro.agent(
        SOURCE,
        sink=SINK,
        name="orders",
        reader_schema=INPUT_SCHEMA,
        value_type=Order,
        output_type=OrderOut if FORM == "typed" else OrderOutWrong,
    )
    def orders_typed(order: Order) -> OrderOut:
        if order.marker == "raise":
            raise ValueError(f"order {order.id} refused by the test transform")
        return OrderOut(order.id, order.name.upper(), round(order.amount * 100))

else:

    @avro.agent(SOURCE, sink=SINK, name="orders", reader_schema=INPUT_SCHEMA)
    async def orders_stream(stream: AsyncIterator[dict[str, Any]]) -> AsyncIterator[Any]:
        async for order in stream:
            await asyncio.sleep(0)  # the body runs on the app's event loop: it may await
            result = transform(order)  # raises for marker="raise": that record is dead-lettered
            for output in [] if result is None else result if isinstance(result, list) else [result]:
                yield output
