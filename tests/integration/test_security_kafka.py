"""Kafka security for real: the worker, `produce` and `consume` reach Apache Kafka through a SASL_SSL
listener (SCRAM-SHA-512), an SSL listener that requires client certificates, and SASL PLAIN over TLS (the
Confluent Cloud form), from ``AVROFLOW_*`` settings alone, with a CA and certificates the test made
(`devstack.kafka_security`). A wrong password or a certificate either side does not trust ends the start
with one clear line and exit code 3, after one attempt; the planted password shows nowhere. `schemas` never
connects to Kafka."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from contextlib import ExitStack
from pathlib import Path

import pytest
from confluent_kafka import Producer
from pipelines_for_tests import INPUT_SCHEMA, OUTPUT_SCHEMA, order
from worker_harness import (
    REPO,
    WorkerProcess,
    assert_nothing_leaks,
    pipeline_topics,
    register,
    wait_for,
    worker_env,
)

from devstack.kafka_security import MTLS, PLAIN, SCRAM, SecuredKafka
from devstack.registry.tls import make_ca
from workers.app import EXIT_PREFLIGHT

pytestmark = pytest.mark.integration

CONTENT = "kafka-record-content-3c7e"
WRONG_SECRET = "planted-WrongPa55-81f0"
#: What the broker logs for each refused client (org.apache.kafka.common.network.Selector, INFO).
FAILED_AUTHENTICATION = "Failed authentication with"


def cli(env: dict[str, str], *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "workers", *args],
        cwd=REPO,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )


def cli_env(secured: SecuredKafka, registry_url: str, listener: str, **overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AVROFLOW_")}
    env["AVROFLOW_SCHEMA_REGISTRY_URL"] = registry_url
    env.update(secured.client_env(listener, **overrides))
    return env


def secured_worker_env(
    secured: SecuredKafka, registry_url: str, name: str, listener: str, **overrides: str
) -> dict[str, str]:
    kafka = secured.client_env(listener, **overrides)
    servers = kafka.pop("AVROFLOW_KAFKA_BOOTSTRAP_SERVERS")
    return worker_env(servers, registry_url, name, f"{name}-in", f"{name}-out", **kafka)


def send_poison(bootstrap_servers: str, topic: str) -> None:
    """One input that is not a decodable frame (a dead letter), written through the plaintext listener."""
    producer = Producer({"bootstrap.servers": bootstrap_servers})
    producer.produce(topic, key=b"3", value=b"\x00\xff\xff\xff\xff" + CONTENT.encode())
    assert producer.flush(15) == 0


@pytest.mark.parametrize("listener", [SCRAM, MTLS, PLAIN])
def test_worker_produce_and_consume_reach_kafka_through_each_listener_and_leak_nothing(
    listener: str,
    secured_kafka: SecuredKafka,
    registry_url: str,
    unique_name: str,
    tmp_path: Path,
    stack: ExitStack,
) -> None:
    plaintext = secured_kafka.broker.bootstrap_servers  # the test's own view: topics and dead letters
    source, sink = pipeline_topics(plaintext, unique_name)
    register(registry_url, f"{sink}-value", OUTPUT_SCHEMA)
    register(registry_url, f"{source}-value", INPUT_SCHEMA)
    env = cli_env(secured_kafka, registry_url, listener)
    lines = [order(1, name=CONTENT), order(2, name=CONTENT, marker="raise")]
    produced = cli(
        env, "produce", source, "--key-field", "id", stdin="".join(json.dumps(r) + "\n" for r in lines)
    )
    assert produced.returncode == 0, produced.stderr
    assert "produced 2 record(s)" in produced.stderr
    send_poison(plaintext, source)

    worker_env_ = secured_worker_env(secured_kafka, registry_url, unique_name, listener)
    worker = WorkerProcess(worker_env_, tmp_path / "worker.log").start()
    stack.callback(worker.stop)
    worker.wait_ready(90)
    wait_for(lambda: worker.counter("avroflow_records_in_total") == 3, 60, "three inputs handled")
    wait_for(lambda: worker.counter("avroflow_records_out_total") == 1, 60, "the good input's output")
    assert worker.counter("avroflow_records_dead_lettered_total") == 2

    consumed = cli(env, "consume", sink, "--from-beginning", "--max-messages", "1", "--timeout", "60")
    assert consumed.returncode == 0, consumed.stderr
    [line] = [json.loads(text) for text in consumed.stdout.splitlines()]
    assert line["key"] == "1"
    assert line["value"] == {"id": 1, "name": CONTENT.upper(), "amount_cents": 100}

    assert_nothing_leaks(worker, plaintext, f"{source}.dlq", secured_kafka.password, content=CONTENT)
    for output in (produced.stdout, produced.stderr, consumed.stdout, consumed.stderr):
        assert secured_kafka.password not in output


REFUSALS = {
    # case: (listener, overrides, what the one line must name)
    "wrong SCRAM password": (SCRAM, {"AVROFLOW_KAFKA_SASL_PASSWORD": WRONG_SECRET}, "AVROFLOW_KAFKA_SASL_"),
    "wrong PLAIN password": (PLAIN, {"AVROFLOW_KAFKA_SASL_PASSWORD": WRONG_SECRET}, "AVROFLOW_KAFKA_SASL_"),
    "server CA not trusted": (
        SCRAM,
        {"AVROFLOW_KAFKA_SSL_CAFILE": "<other CA>"},
        "AVROFLOW_KAFKA_SSL_CAFILE",
    ),
    "no client certificate": (
        MTLS,
        {"AVROFLOW_KAFKA_SSL_CERTFILE": "", "AVROFLOW_KAFKA_SSL_KEYFILE": ""},
        "AVROFLOW_KAFKA_SSL_CERTFILE",
    ),
    "client certificate of an unknown CA": (
        MTLS,
        {"AVROFLOW_KAFKA_SSL_CERTFILE": "<stranger>", "AVROFLOW_KAFKA_SSL_KEYFILE": "<stranger key>"},
        "AVROFLOW_KAFKA_SSL_CERTFILE",
    ),
}


@pytest.fixture(scope="module")
def strangers(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A CA the broker does not know, and a client certificate it signed."""
    folder = tmp_path_factory.mktemp("strangers")
    other = make_ca(folder, "other-ca")
    cert, key = other.issue(folder, "stranger", client=True)
    return {"<other CA>": str(other.cert), "<stranger>": str(cert), "<stranger key>": str(key)}


def refusal_overrides(case: str, strangers: dict[str, str]) -> tuple[str, dict[str, str], str]:
    listener, overrides, names = REFUSALS[case]
    return listener, {k: strangers.get(v, v) for k, v in overrides.items()}, names


def failed_authentications(secured: SecuredKafka, since: int) -> int:
    return (
        secured.broker.log_path().read_bytes()[since:].decode(errors="replace").count(FAILED_AUTHENTICATION)
    )


@pytest.mark.parametrize("case", list(REFUSALS))
def test_a_refused_worker_start_is_one_clear_line_exit_3_and_one_attempt(
    case: str,
    secured_kafka: SecuredKafka,
    strangers: dict[str, str],
    registry_url: str,
    unique_name: str,
    tmp_path: Path,
    stack: ExitStack,
) -> None:
    listener, overrides, names = refusal_overrides(case, strangers)
    register(registry_url, f"{unique_name}-out-value", OUTPUT_SCHEMA)
    log_size = secured_kafka.broker.log_path().stat().st_size
    env = secured_worker_env(secured_kafka, registry_url, unique_name, listener, **overrides)
    worker = WorkerProcess(env, tmp_path / "worker.log").start()
    stack.callback(worker.stop)
    # Credentials and certificates do not fix themselves: exit 3 and let the orchestrator restart with its
    # own backoff (e.g. Kubernetes' CrashLoopBackOff), rather than retry inside the process.
    assert worker.wait(90) == EXIT_PREFLIGHT, worker.log()[-3000:]
    log = worker.log()
    refusals = [line for line in log.splitlines() if "refusing to start" in line]
    assert len(refusals) == 1, log
    assert names in refusals[0], refusals[0]
    assert "Kafka broker unreachable at start" not in log
    assert WRONG_SECRET not in log and secured_kafka.password not in log
    if case != "server CA not trusted":  # the client hung up before the broker could refuse anything
        assert failed_authentications(secured_kafka, log_size) == 1  # one attempt, no retry


@pytest.mark.parametrize("command", ["produce", "consume"])
@pytest.mark.parametrize("case", list(REFUSALS))
def test_a_refused_produce_or_consume_is_one_clear_line_and_exit_3(
    case: str,
    command: str,
    secured_kafka: SecuredKafka,
    strangers: dict[str, str],
    registry_url: str,
    unique_name: str,
) -> None:
    listener, overrides, names = refusal_overrides(case, strangers)
    topic = f"{unique_name}-in"
    secured_kafka.broker.create_topics([topic])
    register(registry_url, f"{topic}-value", INPUT_SCHEMA)
    env = cli_env(secured_kafka, registry_url, listener, **overrides)
    log_size = secured_kafka.broker.log_path().stat().st_size
    args = ["--from-beginning", "--max-messages", "1", "--timeout", "5"] if command == "consume" else []
    result = cli(env, command, topic, *args, stdin=json.dumps(order(1)) + "\n")
    assert result.returncode == 3, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"avroflow {command}: ") and names in lines[0], lines[0]
    for secret in (WRONG_SECRET, secured_kafka.password):
        assert secret not in result.stderr and secret not in result.stdout
    if case != "server CA not trusted":
        assert failed_authentications(secured_kafka, log_size) == 1  # one attempt, no retry


def test_schemas_commands_never_connect_to_kafka(
    secured_kafka: SecuredKafka, registry_url: str, unique_name: str, tmp_path: Path
) -> None:
    (tmp_path / "in.avsc").write_text(INPUT_SCHEMA)
    manifest = {"registrations": [{"subject": f"{unique_name}-value", "file": "in.avsc"}]}
    (tmp_path / "subjects.json").write_text(json.dumps(manifest))
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        port = listening.getsockname()[1]
        env = cli_env(
            secured_kafka,
            registry_url,
            SCRAM,
            AVROFLOW_KAFKA_BOOTSTRAP_SERVERS=f"127.0.0.1:{port}",
            AVROFLOW_KAFKA_SASL_PASSWORD=WRONG_SECRET,
        )
        for action in ("register", "check"):
            result = cli(env, "schemas", action, "--dir", str(tmp_path))
            assert result.returncode == 0, result.stderr
            assert f"{unique_name}-value" in result.stdout
        listening.setblocking(False)
        with pytest.raises(BlockingIOError):
            listening.accept()  # nobody connected to the "broker"
