"""The registry goes away (stopped for longer than the client's retry budget) or turns slow (a proxy in
front of it stops forwarding, so every request runs into the read timeout). Records whose schemas are
cached keep flowing; the others are held back with readiness false; after recovery everything comes out,
nothing is dead-lettered and nothing is lost."""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path

import pytest
from faults_harness import TcpProxy, tally
from pipelines_for_tests import INPUT_SCHEMA, INPUT_SCHEMA_V2, OUTPUT_SCHEMA, order
from worker_harness import (
    AvroProducer,
    WorkerProcess,
    consume,
    free_port,
    pipeline_topics,
    register,
    restartable_registry,
    wait_for,
    worker_env,
)

from devstack.registry.process import RegistryProcess

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def stuck(worker: WorkerProcess) -> bool:
    status, body = worker.readyz()
    return status == 503 and any("stuck" in reason for reason in body.get("reasons", []))


def test_outage_longer_than_the_retry_budget_cached_schemas_keep_flowing(
    bootstrap_servers: str, unique_name: str, tmp_path: Path, stack: ExitStack
) -> None:
    source, sink = pipeline_topics(bootstrap_servers, unique_name)
    registry = restartable_registry(tmp_path, stack, sink, OUTPUT_SCHEMA)
    v1 = stack.enter_context(AvroProducer(bootstrap_servers, registry.url, source, INPUT_SCHEMA))
    v2 = stack.enter_context(AvroProducer(bootstrap_servers, registry.url, source, INPUT_SCHEMA_V2))
    cached = [v1.encode(order(i)) for i in range(60)]
    uncached = [v2.encode(order(i, coupon="c")) for i in range(60, 80)]
    worker = WorkerProcess(
        worker_env(bootstrap_servers, registry.url, unique_name, source, sink), tmp_path / "worker.log"
    ).start()
    stack.callback(worker.stop)
    worker.wait_ready()
    for i in range(20):
        v1.send_raw(f"k{i}".encode(), cached[i])
    v1.flush()
    wait_for(lambda: worker.counter("avroflow_records_out_total") == 20, 60, "the first outputs")

    registry.stop()
    # The writer id and the sink's latest schema are cached: these need no registry.
    for i in range(20, 40):
        v1.send_raw(f"k{i}".encode(), cached[i])
    v1.flush()
    wait_for(
        lambda: worker.counter("avroflow_records_out_total") == 40, 60, "cached records during the outage"
    )
    assert worker.counter("avroflow_records_dead_lettered_total") == 0

    # An unknown writer id needs the registry: held back, the pipeline stuck, not ready.
    for i, value in enumerate(uncached, start=60):
        v2.send_raw(f"k{i}".encode(), value)
    v2.flush()
    wait_for(lambda: stuck(worker), 60, "/readyz to report the pipeline stuck")
    # Well past the client's own retries (3 per request) and many backoff rounds of the worker.
    wait_for(
        lambda: worker.counter("avroflow_transient_retries_total", reason="registry_unavailable") >= 8,
        90,
        "retries past the client's budget",
    )
    assert worker.counter("avroflow_records_out_total") == 40
    assert worker.counter("avroflow_records_dead_lettered_total") == 0
    worker.check_running()

    registry.start()  # same port, same data: the same ids
    for i in range(40, 60):
        v1.send_raw(f"k{i}".encode(), cached[i])
    v1.flush()
    wanted = set(range(80))
    result = tally("registry outage", bootstrap_servers, registry.url, sink, "", wanted)
    assert (result.lost, result.out, result.dead_lettered) == (0, 80, 0), result
    wait_for(lambda: worker.readyz()[0] == 200, 30, "/readyz to recover")
    assert worker.counter("avroflow_records_dead_lettered_total") == 0
    assert consume(bootstrap_servers, f"{source}.dlq", expected=1, timeout=2) == []


def test_slow_registry_is_an_outage_held_back_then_processed(
    bootstrap_servers: str, unique_name: str, tmp_path: Path, stack: ExitStack
) -> None:
    source, sink = pipeline_topics(bootstrap_servers, unique_name)
    registry = RegistryProcess(port=free_port())
    registry.start()
    stack.callback(registry.stop)
    proxy = TcpProxy(registry.port)
    stack.callback(proxy.close)
    register(registry.url, f"{sink}-value", OUTPUT_SCHEMA)
    v1 = stack.enter_context(AvroProducer(bootstrap_servers, registry.url, source, INPUT_SCHEMA))
    v2 = stack.enter_context(AvroProducer(bootstrap_servers, registry.url, source, INPUT_SCHEMA_V2))
    env = worker_env(
        bootstrap_servers,
        f"http://127.0.0.1:{proxy.port}",
        unique_name,
        source,
        sink,
        AVROFLOW_SCHEMA_REGISTRY_TIMEOUT_SECONDS="1",
    )
    worker = WorkerProcess(env, tmp_path / "worker.log").start()
    stack.callback(worker.stop)
    worker.wait_ready()
    for i in range(20):
        v1.send(f"k{i}".encode(), order(i))
    v1.flush()
    wait_for(lambda: worker.counter("avroflow_records_out_total") == 20, 60, "the first outputs")

    proxy.stall()  # connections open, requests sent, no answer: every read runs into the timeout
    for i in range(20, 40):
        v2.send(f"k{i}".encode(), order(i, coupon="c"))
    v2.flush()
    wait_for(lambda: stuck(worker), 90, "/readyz to report the pipeline stuck")
    wait_for(
        lambda: worker.counter("avroflow_transient_retries_total", reason="registry_unavailable") >= 3,
        90,
        "several retries on timeouts",
    )
    assert worker.counter("avroflow_records_out_total") == 20
    assert worker.counter("avroflow_records_dead_lettered_total") == 0

    proxy.restore()
    result = tally("slow registry", bootstrap_servers, registry.url, sink, "", set(range(40)))
    assert (result.lost, result.out, result.dead_lettered) == (0, 40, 0), result
    wait_for(lambda: worker.readyz()[0] == 200, 30, "/readyz to recover")
    assert worker.counter("avroflow_records_dead_lettered_total") == 0
