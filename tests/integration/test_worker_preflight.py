"""Preflight, as a real subprocess: before joining its consumer group the worker resolves every sink
subject; a missing subject or refused credentials stop the start with a clear message and a non-zero exit,
an unreachable registry is waited for."""

from __future__ import annotations

import signal
from contextlib import ExitStack
from pathlib import Path

import pytest
from pipelines_for_tests import OUTPUT_SCHEMA
from worker_harness import (
    WorkerProcess,
    free_port,
    latest_id,
    pipeline_topics,
    register,
    restartable_registry,
    wait_for,
    worker_env,
)

from devstack.registry.process import RegistryProcess
from registry_codecs import RegistryClient
from workers.app import EXIT_PREFLIGHT

pytestmark = pytest.mark.integration


def run(env: dict[str, str], log: Path, stack: ExitStack) -> WorkerProcess:
    worker = WorkerProcess(env, log).start()
    stack.callback(worker.stop)
    return worker


def test_a_missing_sink_subject_stops_the_start_naming_it(
    bootstrap_servers: str, registry_url: str, unique_name: str, tmp_path: Path, stack: ExitStack
) -> None:
    source, sink = f"{unique_name}-in", f"{unique_name}-out"
    worker = run(
        worker_env(bootstrap_servers, registry_url, unique_name, source, sink), tmp_path / "w.log", stack
    )
    assert worker.wait(60) == EXIT_PREFLIGHT  # after AVROFLOW_SCHEMA_NOT_FOUND_RETRY_SECONDS (2 s here)
    assert f"sink subject {sink}-value does not exist" in worker.log()
    assert f"sink subject {sink}-value not found" in worker.log()  # asked again before giving up


def test_a_sink_subject_registered_within_the_retry_time_is_waited_for(
    bootstrap_servers: str, registry_url: str, unique_name: str, tmp_path: Path, stack: ExitStack
) -> None:
    # A registry that has just restarted may not know the subject yet: "does not exist" is asked again.
    source, sink = pipeline_topics(bootstrap_servers, unique_name)
    env = worker_env(
        bootstrap_servers,
        registry_url,
        unique_name,
        source,
        sink,
        AVROFLOW_SCHEMA_NOT_FOUND_RETRY_SECONDS="120",
    )
    worker = run(env, tmp_path / "w.log", stack)
    wait_for(lambda: f"sink subject {sink}-value not found" in worker.log(), 60, "the waiting line")
    worker.check_running()
    register(registry_url, f"{sink}-value", OUTPUT_SCHEMA)
    worker.wait_ready()
    assert "does not exist" not in worker.log()


def test_a_registry_warming_up_at_start_is_waited_for(
    bootstrap_servers: str, unique_name: str, tmp_path: Path, stack: ExitStack
) -> None:
    source, sink = pipeline_topics(bootstrap_servers, unique_name)
    registry = restartable_registry(tmp_path, stack, sink, OUTPUT_SCHEMA)
    registry.stop()
    env = worker_env(
        bootstrap_servers,
        registry.url,
        unique_name,
        source,
        sink,
        AVROFLOW_SCHEMA_NOT_FOUND_RETRY_SECONDS="60",
    )
    worker = run(env, tmp_path / "w.log", stack)
    wait_for(
        lambda: "waiting for it before joining the consumer group" in worker.log(), 60, "the waiting line"
    )
    registry.warmup_seconds = 5.0
    registry.start()  # the subject exists, but for 5 s the registry says it does not
    worker.wait_ready(timeout=90)
    assert f"sink subject {sink}-value not found" in worker.log()  # it met the warm-up and waited


def test_auto_registration_registers_the_declared_sink_schema(
    bootstrap_servers: str, registry_url: str, unique_name: str, tmp_path: Path, stack: ExitStack
) -> None:
    source, sink = pipeline_topics(bootstrap_servers, unique_name)
    env = worker_env(
        bootstrap_servers,
        registry_url,
        unique_name,
        source,
        sink,
        AVROFLOW_AUTO_REGISTER_SCHEMAS="true",
        AVROFLOW_PIPELINES="tests.pipelines_for_tests:PIPELINES_WITH_SINK_SCHEMA",
    )
    run(env, tmp_path / "w.log", stack).wait_ready()
    with RegistryClient(registry_url) as client:
        assert (
            client.get_latest(f"{sink}-value").schema_id
            == client.lookup(f"{sink}-value", OUTPUT_SCHEMA).schema_id
        )


def test_refused_credentials_stop_the_start_without_showing_the_secret(
    bootstrap_servers: str, unique_name: str, tmp_path: Path, stack: ExitStack
) -> None:
    registry = RegistryProcess(basic_auth=("svc", "the-right-one"))
    registry.start()
    stack.callback(registry.stop)
    planted = "planted-wrong-s3cret"
    env = worker_env(
        bootstrap_servers,
        registry.url,
        unique_name,
        f"{unique_name}-in",
        f"{unique_name}-out",
        AVROFLOW_SCHEMA_REGISTRY_USERNAME="svc",
        AVROFLOW_SCHEMA_REGISTRY_PASSWORD=planted,
    )
    worker = run(env, tmp_path / "w.log", stack)
    assert worker.wait(60) == EXIT_PREFLIGHT
    log = worker.log()
    assert "refused the credentials" in log
    assert planted not in log


def test_an_unreachable_registry_is_waited_for_then_the_worker_starts(
    bootstrap_servers: str, unique_name: str, tmp_path: Path, stack: ExitStack
) -> None:
    source, sink = pipeline_topics(bootstrap_servers, unique_name)
    registry = restartable_registry(tmp_path, stack, sink, OUTPUT_SCHEMA)
    registry.stop()

    worker = run(
        worker_env(bootstrap_servers, registry.url, unique_name, source, sink), tmp_path / "w.log", stack
    )
    wait_for(
        lambda: "waiting for it before joining the consumer group" in worker.log(), 60, "the waiting line"
    )
    worker.check_running()
    assert worker.readyz()[0] != 200

    registry.start()
    worker.wait_ready()
    assert latest_id(registry.url, f"{sink}-value") >= 1
    assert worker.log().count("schema registry unreachable at start") == 1


def test_sigterm_while_waiting_for_the_registry_exits_zero(
    bootstrap_servers: str, unique_name: str, tmp_path: Path, stack: ExitStack
) -> None:
    unreachable = f"http://127.0.0.1:{free_port()}"
    env = worker_env(bootstrap_servers, unreachable, unique_name, f"{unique_name}-in", f"{unique_name}-out")
    worker = run(env, tmp_path / "w.log", stack)
    wait_for(
        lambda: "waiting for it before joining the consumer group" in worker.log(), 60, "the waiting line"
    )
    worker.signal(signal.SIGTERM)
    assert worker.wait(20) == 0


def test_not_ready_until_partitions_are_assigned(
    bootstrap_servers: str, registry_url: str, unique_name: str, tmp_path: Path, stack: ExitStack
) -> None:
    source, sink = pipeline_topics(bootstrap_servers, unique_name)
    register(registry_url, f"{sink}-value", OUTPUT_SCHEMA)
    # The worker answers /readyz before it has joined the group (a longer session makes Tansu hold the
    # first assignment back for a few seconds more; Kafka assigns as soon as the join round ends).
    env = worker_env(
        bootstrap_servers, registry_url, unique_name, source, sink, AVROFLOW_KAFKA_SESSION_TIMEOUT_SECONDS="4"
    )
    worker = run(env, tmp_path / "w.log", stack)
    status, body = wait_for(lambda: (answer := worker.readyz())[0] and answer, 60, "/readyz to answer")
    assert status == 503, body
    assert "no partitions assigned" in body["reasons"]
    assert worker.get("/healthz")[0] == 200
    worker.wait_ready()
