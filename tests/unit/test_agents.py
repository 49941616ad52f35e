"""Agents on a Faust app of the user's own: what the decorator declares, and what it refuses at once."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import faust
import pytest

from workers.agent_bodies import AsyncBody
from workers.agents import Avroflow
from workers.app import create_app, load_app
from workers.pipeline import Pipeline, PipelineError
from workers.runtime import build_runtime
from workers.sample import PIPELINES
from workers.settings import Settings

SETTINGS = Settings.from_env(
    {"AVROFLOW_KAFKA_BOOTSTRAP_SERVERS": "localhost:9092", "AVROFLOW_SCHEMA_REGISTRY_URL": "http://r:8081"}
)


def new_flow() -> Avroflow:
    return Avroflow(faust.App("agents-test", broker="kafka://localhost:9092", autodiscover=False), SETTINGS)


def test_a_decorated_function_becomes_a_pipeline_agent_and_stays_callable() -> None:
    avro = new_flow()

    @avro.agent("orders", sink="orders-out", key_format="raw")
    def enrich(order: dict[str, Any]) -> dict[str, Any]:
        return {**order, "seen": True}

    assert enrich({"id": 1}) == {"id": 1, "seen": True}
    (pipeline,) = avro.runtime.pipelines
    assert (pipeline.name, pipeline.source, pipeline.sink, pipeline.key_format) == (
        "enrich",
        "orders",
        "orders-out",
        "raw",
    )
    assert "avroflow.pipeline.enrich" in avro.app.agents
    # not ready until its sink subject is resolved (by preflight, before or at the agent's start)
    assert "sink subject orders-out-value not resolved" in avro.runtime.readiness.reasons()


def test_an_async_generator_body_runs_as_an_async_body() -> None:
    avro = new_flow()

    @avro.agent("payments", sink="payments-out", name="checked")
    async def check(stream: AsyncIterator[dict[str, Any]]) -> AsyncIterator[dict[str, Any]]:
        async for payment in stream:
            yield payment

    assert isinstance(avro.runtime.runners["checked"].pipeline.transform.inner, AsyncBody)


def test_what_cannot_run_is_refused_when_declared() -> None:
    avro = new_flow()
    with pytest.raises(PipelineError, match="must yield its outputs"):

        @avro.agent("orders", sink="orders-out")
        async def no_yield(stream: Any) -> None:
            async for _ in stream:
                pass

    @avro.agent("orders", sink="orders-out")
    def twice(order: dict[str, Any]) -> dict[str, Any]:
        return order

    with pytest.raises(PipelineError, match="two pipelines are named 'twice'"):
        avro.agent("other", sink="other-out", name="twice")(twice)
    with pytest.raises(PipelineError, match="source and sink are the same topic"):
        avro.agent("orders", sink="orders")(twice)
    with pytest.raises(PipelineError, match="already has an Avroflow"):
        Avroflow(avro.app, SETTINGS)


def test_the_workers_own_app_is_built_on_the_same_machinery() -> None:
    runtime = build_runtime(SETTINGS, PIPELINES)
    app = create_app(SETTINGS, PIPELINES, runtime=runtime)
    assert app.avroflow.runtime is runtime
    assert sorted(app.agents) == sorted(f"avroflow.pipeline.{p.name}" for p in PIPELINES)


def test_an_app_spec_must_name_an_app_with_avroflow_agents() -> None:
    with pytest.raises(PipelineError, match="cannot import"):
        load_app("no_such_module_here:app")
    with pytest.raises(PipelineError, match=r"expected a faust\.App with agents"):
        load_app("workers.sample:PIPELINES")
    with pytest.raises(PipelineError, match=r"expected 'package\.module:ATTRIBUTE'"):
        load_app("workers.sample")


def test_pipeline_declarations_and_decorated_agents_share_one_runtime() -> None:
    avro = new_flow()
    avro.add(Pipeline("declared", "a", "b", lambda record: record))

    @avro.agent("c", sink="d")
    def decorated(record: dict[str, Any]) -> dict[str, Any]:
        return record

    assert sorted(avro.runtime.runners) == ["declared", "decorated"]
    assert sorted(avro.app.agents) == ["avroflow.pipeline.declared", "avroflow.pipeline.decorated"]
