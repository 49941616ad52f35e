"""Security through the worker: the registry over TLS (a CA made in the test) with basic auth and with a
bearer token; refused credentials stop the start once, with a clear message; a planted secret appears
nowhere (logs, /metrics, health answers, dead-letter headers, reprs); the endpoints show no record content;
Kafka TLS/SASL settings reach the Kafka clients Faust builds."""

from __future__ import annotations

import ssl
import time
from contextlib import ExitStack
from pathlib import Path

import pytest
from confluent_kafka import Producer
from pipelines_for_tests import INPUT_SCHEMA, OUTPUT_SCHEMA, PIPELINES
from worker_harness import (
    WorkerProcess,
    assert_nothing_leaks,
    free_port,
    pipeline_topics,
    wait_for,
    worker_env,
)

from devstack.registry.process import RegistryProcess
from devstack.registry.tls import make_self_signed_cert
from registry_codecs import AvroSerializer, RegistryClient
from workers.app import EXIT_PREFLIGHT, build_runtime, create_app, kafka_auth
from workers.settings import Settings

pytestmark = pytest.mark.integration

SECRET = "planted-S3cret-7f3a9c"
CONTENT = "record-content-b41d"


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_self_signed_cert(tmp_path_factory.mktemp("tls"))


def secure_registry(stack: ExitStack, tls: tuple[Path, Path], **auth: object) -> RegistryProcess:
    cert, key = tls
    registry = RegistryProcess(certfile=cert, keyfile=key, **auth)  # type: ignore[arg-type]
    registry.start()
    stack.callback(registry.stop)
    assert registry.url.startswith("https://")
    return registry


def run_through(
    registry: RegistryProcess,
    client: RegistryClient,
    bootstrap_servers: str,
    name: str,
    tmp_path: Path,
    stack: ExitStack,
    **credentials: str,
) -> WorkerProcess:
    """Register the schemas, write one good and one poison input, run the worker until both are done."""
    source, sink = pipeline_topics(bootstrap_servers, name)
    client.register(f"{sink}-value", OUTPUT_SCHEMA)
    client.register(f"{source}-value", INPUT_SCHEMA)
    good = AvroSerializer(client, f"{source}-value").encode(
        {"id": 1, "name": CONTENT, "amount": 1.5, "marker": ""}
    )
    raising = AvroSerializer(client, f"{source}-value").encode(
        {"id": 2, "name": CONTENT, "amount": 1.5, "marker": "raise"}
    )
    producer = Producer({"bootstrap.servers": bootstrap_servers})
    for value in (good, raising, b"\x00\xff\xff\xff\xff" + CONTENT.encode()):
        producer.produce(source, key=CONTENT.encode(), value=value)
    assert producer.flush(15) == 0
    env = worker_env(bootstrap_servers, registry.url, name, source, sink, **credentials)
    worker = WorkerProcess(env, tmp_path / f"{name}.log").start()
    stack.callback(worker.stop)
    worker.wait_ready()
    wait_for(lambda: worker.counter("avroflow_records_in_total") == 3, 60, "three inputs handled")
    wait_for(lambda: worker.counter("avroflow_records_out_total") == 1, 60, "the good input's output")
    assert worker.counter("avroflow_records_dead_lettered_total") == 2
    return worker


def test_tls_and_basic_auth_through_the_worker_leak_nothing(
    bootstrap_servers: str, unique_name: str, tls: tuple[Path, Path], tmp_path: Path, stack: ExitStack
) -> None:
    registry = secure_registry(stack, tls, basic_auth=("svc", SECRET))
    client = stack.enter_context(
        RegistryClient(registry.url, basic_auth=("svc", SECRET), ca_file=str(tls[0]))
    )
    worker = run_through(
        registry,
        client,
        bootstrap_servers,
        unique_name,
        tmp_path,
        stack,
        AVROFLOW_SCHEMA_REGISTRY_CA_FILE=str(tls[0]),
        AVROFLOW_SCHEMA_REGISTRY_USERNAME="svc",
        AVROFLOW_SCHEMA_REGISTRY_PASSWORD=SECRET,
    )
    assert_nothing_leaks(worker, bootstrap_servers, f"{unique_name}-in.dlq", SECRET, content=CONTENT)


def test_tls_and_bearer_token_through_the_worker_leak_nothing(
    bootstrap_servers: str, unique_name: str, tls: tuple[Path, Path], tmp_path: Path, stack: ExitStack
) -> None:
    registry = secure_registry(stack, tls, bearer_token=SECRET)
    client = stack.enter_context(RegistryClient(registry.url, bearer_token=SECRET, ca_file=str(tls[0])))
    worker = run_through(
        registry,
        client,
        bootstrap_servers,
        unique_name,
        tmp_path,
        stack,
        AVROFLOW_SCHEMA_REGISTRY_CA_FILE=str(tls[0]),
        AVROFLOW_SCHEMA_REGISTRY_BEARER_TOKEN=SECRET,
    )
    assert_nothing_leaks(worker, bootstrap_servers, f"{unique_name}-in.dlq", SECRET, content=CONTENT)


@pytest.mark.parametrize("how", ["wrong token", "no CA"])
def test_refused_start_is_clear_exits_once_and_shows_no_secret(
    how: str,
    bootstrap_servers: str,
    unique_name: str,
    tls: tuple[Path, Path],
    tmp_path: Path,
    stack: ExitStack,
) -> None:
    registry = secure_registry(stack, tls, bearer_token="the-right-token")
    with RegistryClient(registry.url, bearer_token="the-right-token", ca_file=str(tls[0])) as client:
        client.register(f"{unique_name}-out-value", OUTPUT_SCHEMA)
    extra = {"AVROFLOW_SCHEMA_REGISTRY_BEARER_TOKEN": SECRET if how == "wrong token" else "the-right-token"}
    if how == "wrong token":
        extra["AVROFLOW_SCHEMA_REGISTRY_CA_FILE"] = str(tls[0])
    env = worker_env(
        bootstrap_servers, registry.url, unique_name, f"{unique_name}-in", f"{unique_name}-out", **extra
    )
    worker = WorkerProcess(env, tmp_path / "w.log").start()
    stack.callback(worker.stop)
    if how == "wrong token":
        # Credentials do not fix themselves: one clear refusal and exit 3 (the orchestrator restarts it
        # with its own backoff, e.g. Kubernetes' CrashLoopBackOff), no retry loop inside the process.
        assert worker.wait(60) == EXIT_PREFLIGHT
        log = worker.log()
        assert "refused the credentials" in log and "AVROFLOW_SCHEMA_REGISTRY" in log
        assert log.count("refusing to start") == 1
    else:
        # An unverifiable certificate is treated as the registry being unreachable: waited for, one line.
        wait_for(lambda: "schema registry unreachable at start" in worker.log(), 60, "the waiting line")
        time.sleep(3)
        worker.check_running()
        assert worker.log().count("schema registry unreachable at start") == 1
        assert "CERTIFICATE_VERIFY_FAILED" in worker.log() or "certificate" in worker.log().lower()
    assert SECRET not in worker.log()


def test_credentials_in_the_registry_url_never_show_in_logs(
    bootstrap_servers: str, unique_name: str, tmp_path: Path, stack: ExitStack
) -> None:
    url = f"http://svc:{SECRET}@127.0.0.1:{free_port()}"  # nothing listens: every error names the URL
    env = worker_env(bootstrap_servers, url, unique_name, f"{unique_name}-in", f"{unique_name}-out")
    worker = WorkerProcess(env, tmp_path / "w.log").start()
    stack.callback(worker.stop)
    wait_for(lambda: "schema registry unreachable at start" in worker.log(), 60, "the waiting line")
    time.sleep(2)
    worker.check_running()
    assert SECRET not in worker.log()


def test_settings_client_and_app_reprs_hide_secrets(bootstrap_servers: str, tmp_path: Path) -> None:
    env = worker_env(
        bootstrap_servers,
        f"https://svc:{SECRET}@registry.example:8081",
        "repr",
        "in",
        "out",
        AVROFLOW_SCHEMA_REGISTRY_BEARER_TOKEN=SECRET,
        AVROFLOW_KAFKA_SECURITY_PROTOCOL="SASL_PLAINTEXT",
        AVROFLOW_KAFKA_SASL_USERNAME="svc",
        AVROFLOW_KAFKA_SASL_PASSWORD=SECRET,
    )
    settings = Settings.from_env(env)
    runtime = build_runtime(settings, PIPELINES)
    for shown in (repr(settings), str(settings), repr(runtime.client), str(runtime.client)):
        assert SECRET not in shown, shown


def test_kafka_tls_and_sasl_settings_reach_the_kafka_clients(
    bootstrap_servers: str, tls: tuple[Path, Path]
) -> None:
    env = worker_env(
        bootstrap_servers,
        "http://registry.example:8081",
        "kafka-auth",
        "in",
        "out",
        AVROFLOW_KAFKA_SECURITY_PROTOCOL="SASL_SSL",
        AVROFLOW_KAFKA_SASL_MECHANISM="SCRAM-SHA-512",
        AVROFLOW_KAFKA_SASL_USERNAME="svc",
        AVROFLOW_KAFKA_SASL_PASSWORD=SECRET,
        AVROFLOW_KAFKA_SSL_CAFILE=str(tls[0]),
    )
    settings = Settings.from_env(env)
    app = create_app(settings, PIPELINES)
    # What Faust's aiokafka producer passes to AIOKafkaProducer, and what the start-up broker probe uses.
    for auth in (dict(app.producer._settings_auth()), kafka_auth(settings)):
        assert auth["security_protocol"] == "SASL_SSL"
        assert auth["sasl_mechanism"] == "SCRAM-SHA-512"
        assert (auth["sasl_plain_username"], auth["sasl_plain_password"]) == ("svc", SECRET)
        context = auth["ssl_context"]
        assert isinstance(context, ssl.SSLContext)
        assert context.verify_mode == ssl.CERT_REQUIRED
        assert any("localhost" in str(cert.get("subject")) for cert in context.get_ca_certs())
