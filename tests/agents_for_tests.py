"""A Faust app of a user's own, with one avroflow agent, the way the README's first example writes it.

Run with ``python -m workers worker --app tests.agents_for_tests:app`` (or ``faust -A``). The agent's form
comes from ``TEST_AGENT_FORM``: ``function`` (a plain function of one record, `pipelines_for_tests`'
transform) or ``stream`` (an async body over the stream doing the same, written the way Faust agents are).
The topics come from ``TEST_SOURCE_TOPIC`` and ``TEST_SINK_TOPIC``, as for `pipelines_for_tests`.
"""

from __future__ import annotations

import asyncio
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

if os.environ.get("TEST_AGENT_FORM", "function") == "function":

    @avro.agent(SOURCE, sink=SINK, name="orders", reader_schema=INPUT_SCHEMA)
    def orders(order: dict[str, Any]) -> Any:
        return transform(order)

else:

    @avro.agent(SOURCE, sink=SINK, name="orders", reader_schema=INPUT_SCHEMA)
    async def orders_stream(stream: AsyncIterator[dict[str, Any]]) -> AsyncIterator[Any]:
        async for order in stream:
            await asyncio.sleep(0)  # the body runs on the app's event loop: it may await
            result = transform(order)  # raises for marker="raise": that record is dead-lettered
            for output in [] if result is None else result if isinstance(result, list) else [result]:
                yield output
