"""The eager per-message dispatch (workers.faust.fastpath) does what mode's wait_first does, minus tasks."""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import pytest
from faust.transport.drivers.aiokafka import Consumer as AiokafkaConsumer
from faust.types import TP
from mode import Service
from mode.utils.locks import Event

from workers.app import create_app
from workers.faust.fastpath import EagerDispatch, PromptResume, eager_dispatch
from workers.gc_tuning import GC_GEN0_THRESHOLD, tune_gc
from workers.sample import PIPELINES
from workers.settings import Settings


class Plain(Service):
    """A mode service, as Faust's consumer is one."""


class Eager(EagerDispatch, Plain):
    pass


def run(coro: Any) -> Any:
    return asyncio.run(coro)


#: Every behaviour below holds for mode's own wait_first (Plain) and the eager one alike.
both = pytest.mark.parametrize("kind", [Plain, Eager], ids=["mode", "eager"])


def test_a_callback_that_never_waits_completes_in_place_without_tasks() -> None:
    async def scenario() -> tuple[Any, int]:
        service, flow = Eager(), Event()
        delivered: list[int] = []

        async def callback(n: int) -> int:
            delivered.append(n)
            return n * 2

        before = len(asyncio.all_tasks())
        result = await service.wait_first(callback(21), flow.wait())
        after = len(asyncio.all_tasks())
        assert delivered == [21]
        return result, after - before

    result, new_tasks = run(scenario())
    assert result.results == [42]
    assert not result.stopped
    assert new_tasks == 0


@both
def test_a_callback_that_waits_finishes_once_what_it_waits_for_is_done(kind: type[Service]) -> None:
    async def scenario() -> list[str]:
        service, flow = kind(), Event()
        gate = asyncio.Event()
        steps: list[str] = []

        async def callback() -> str:
            steps.append("start")
            await gate.wait()
            await asyncio.sleep(0)  # a bare yield too
            steps.append("end")
            return "done"

        asyncio.get_running_loop().call_later(0.01, gate.set)
        result = await service.wait_first(callback(), flow.wait())
        assert result.results == ["done"]
        return steps

    assert run(scenario()) == ["start", "end"]


@both
def test_a_waiting_callback_is_abandoned_when_the_flow_is_suspended(kind: type[Service]) -> None:
    """A rebalance (suspend_flow set) cancels a callback stuck on a full buffer, as in Faust."""

    async def scenario() -> tuple[bool, list[str]]:
        service, flow = kind(), Event()
        never = asyncio.Event()
        seen: list[str] = []

        async def callback() -> None:
            try:
                await never.wait()
            except asyncio.CancelledError:
                seen.append("cancelled")
                raise

        asyncio.get_running_loop().call_later(0.01, flow.set)
        result = await service.wait_first(callback(), flow.wait())
        await asyncio.sleep(0.01)
        return result.results == [True] and len(result.done) == 1, seen  # the flow wait alone

    only_the_flow_finished, seen = run(scenario())
    assert only_the_flow_finished
    assert seen == ["cancelled"]


@both
def test_an_error_in_the_first_step_propagates_and_leaves_no_unawaited_coroutine(kind: type[Service]) -> None:
    async def scenario() -> None:
        service, flow = kind(), Event()

        async def callback() -> None:
            raise ValueError("bad message")

        await service.wait_first(callback(), flow.wait())

    # pytest turns "coroutine ... was never awaited" warnings into errors: none may be left behind.
    with pytest.raises(ValueError, match="bad message"):
        run(scenario())


@both
def test_an_error_after_waiting_propagates(kind: type[Service]) -> None:
    async def scenario() -> None:
        service, flow = kind(), Event()

        async def callback() -> None:
            await asyncio.sleep(0.001)
            raise KeyError("late")

        await service.wait_first(callback(), flow.wait())

    with pytest.raises(KeyError, match="late"):
        run(scenario())


@both
def test_other_waits_are_modes_own(kind: type[Service]) -> None:
    async def scenario() -> tuple[Any, Any]:
        service = kind()

        async def slow() -> str:
            await asyncio.sleep(1)
            return "late"

        timed_out = await service.wait_first(slow(), timeout=0.01)
        ready = Event()
        ready.set()
        single = await service.wait_first(ready)
        return timed_out, single

    timed_out, single = run(scenario())
    assert timed_out.done == []  # mode reports a timeout as "stopped"
    assert len(single.done) == 1 and not single.stopped


@both
def test_a_stopped_service_reports_stopped_as_mode_does(kind: type[Service]) -> None:
    async def scenario() -> Any:
        service, flow = kind(), Event()
        service._stopped.set()

        async def callback() -> int:
            return 1

        return await service.wait_first(callback(), flow.wait())

    assert run(scenario()).stopped


def test_the_worker_uses_it_for_fausts_kafka_consumer() -> None:
    eager = eager_dispatch(AiokafkaConsumer)
    assert issubclass(eager, AiokafkaConsumer)
    assert eager.wait_first is EagerDispatch.wait_first
    settings = Settings.from_env(
        {
            "AVROFLOW_KAFKA_BOOTSTRAP_SERVERS": "b1:9092",
            "AVROFLOW_SCHEMA_REGISTRY_URL": "http://registry:8081",
        }
    )
    app = create_app(settings, PIPELINES)
    assert issubclass(app.transport.Consumer, EagerDispatch)
    assert issubclass(app.transport.Consumer, AiokafkaConsumer)


def test_tune_gc_freezes_what_exists_and_collects_the_young_generation_less_often() -> None:
    before = gc.get_threshold()
    try:
        tune_gc()
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold()[0] == GC_GEN0_THRESHOLD > before[0]
        assert gc.get_threshold()[1:] == before[1:]
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


def test_the_worker_consumer_lets_the_broker_hold_a_fetch_only_as_long_as_the_setting_says() -> None:
    environ = {
        "AVROFLOW_KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9",
        "AVROFLOW_SCHEMA_REGISTRY_URL": "http://127.0.0.1:9",
        "AVROFLOW_KAFKA_FETCH_MAX_WAIT_SECONDS": "0.25",
    }

    async def created_wait(environ: dict[str, str]) -> int:
        app = create_app(Settings.from_env(environ), PIPELINES)
        thread = app.consumer._thread  # the consumer thread Faust creates with the consumer
        consumer = thread._create_consumer(asyncio.get_running_loop())  # aiokafka's, not started
        try:
            return int(consumer._fetch_max_wait_ms)  # what AIOKafkaConsumer.start() gives its fetcher
        finally:
            await consumer.stop()
            thread.thread_loop.close()

    assert asyncio.run(created_wait(environ)) == 250
    del environ["AVROFLOW_KAFKA_FETCH_MAX_WAIT_SECONDS"]
    assert asyncio.run(created_wait(environ)) == 100  # the default; Faust's own would be 1,500


def _worker_consumer() -> Any:
    settings = Settings.from_env(
        {
            "AVROFLOW_KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9",
            "AVROFLOW_SCHEMA_REGISTRY_URL": "http://127.0.0.1:9",
        }
    )
    consumer = create_app(settings, PIPELINES).consumer
    consumer._thread.thread_loop.close()  # never started: the aiokafka thread's own loop is not needed
    return consumer


def test_with_every_partition_paused_for_a_full_buffer_fetching_resumes_when_one_drains() -> None:
    tp = TP("orders", 0)

    async def scenario() -> tuple[bool, bool, Any]:
        consumer = _worker_consumer()
        consumer._active_partitions = {tp}
        consumer.on_buffer_full(tp)  # the conductor found the agent's buffer full: tp paused
        assert not consumer._get_active_partitions()
        waiting = asyncio.create_task(consumer._wait_next_records(1.0))
        await asyncio.sleep(0.05)
        waited = not waiting.done()  # nothing to fetch from: it waits
        consumer.on_buffer_drop(tp)  # the agent drained the buffer below the low-water mark
        for _ in range(3):
            await asyncio.sleep(0)
        resumed = waiting.done()  # Faust's own loop would sleep out the rest of its second
        result = await waiting
        return waited, resumed, result

    waited, resumed, result = asyncio.run(scenario())
    assert waited and resumed
    assert result == ({}, {tp})  # no records yet; the next call fetches from tp


def test_with_nothing_assigned_the_fetch_loop_keeps_fausts_idle_sleep() -> None:
    async def scenario() -> bool:
        consumer = _worker_consumer()
        consumer._active_partitions = set()
        waiting = asyncio.create_task(consumer._wait_next_records(1.0))
        consumer.on_buffer_drop(TP("orders", 0))  # not a paused partition: no reason to wake up
        for _ in range(3):
            await asyncio.sleep(0)
        done = waiting.done()
        waiting.cancel()
        return done

    assert not asyncio.run(scenario())


def test_while_a_partition_is_paused_a_fetch_from_the_others_waits_only_briefly() -> None:
    paused, running = TP("orders", 0), TP("orders", 1)

    async def fetch_timeouts() -> list[float]:
        consumer = _worker_consumer()
        asked: list[float] = []

        async def getmany(active_partitions: Any, timeout: float) -> dict[Any, Any]:  # noqa: ASYNC109
            asked.append(timeout)
            return {}

        consumer._getmany = getmany  # what Faust's fetch loop calls, with the timeout it chose
        consumer._active_partitions = {paused, running}
        await consumer._wait_next_records(1.0)  # nothing paused: Faust's own wait
        consumer.on_buffer_full(paused)
        await consumer._wait_next_records(1.0)  # `paused` may resume any moment: it is not in this fetch
        return asked

    assert asyncio.run(fetch_timeouts()) == [1.0, PromptResume.RECHECK_SECONDS]
