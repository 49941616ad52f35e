"""Settings become Faust's: broker URLs, credentials per security protocol, timeouts, no secrets shown."""

from __future__ import annotations

import asyncio
import ssl
import subprocess
import sys
from pathlib import Path

import aiokafka
import faust
import pytest
from faust.transport.drivers import aiokafka as faust_aiokafka

from workers.app import create_app, faust_settings
from workers.faust.compat import HookMissing
from workers.runtime import build_runtime
from workers.sample import PIPELINES
from workers.settings import Settings

REQUIRED = {
    "AVROFLOW_KAFKA_BOOTSTRAP_SERVERS": "b1:9092,b2:9093",
    "AVROFLOW_SCHEMA_REGISTRY_URL": "http://registry:8081",
}


def settings(**extra: str) -> Settings:
    return Settings.from_env({**REQUIRED, **extra})


@pytest.fixture(scope="module")
def ca_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("tls")
    key, cert = directory / "ca.key", directory / "ca.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            key,
            "-out",
            cert,
            "-days",
            "1",
            "-subj",
            "/CN=test-ca",
        ],
        check=True,
        capture_output=True,
    )
    return cert


def test_plaintext_defaults() -> None:
    conf = faust_settings(settings(AVROFLOW_KAFKA_SESSION_TIMEOUT_SECONDS="1.5", AVROFLOW_WEB_PORT="7001"))
    assert conf["broker"] == ["kafka://b1:9092", "kafka://b2:9093"]
    assert conf["broker_credentials"] is None
    assert conf["store"] == "memory://"
    assert conf["consumer_auto_offset_reset"] == "earliest"
    assert conf["broker_session_timeout"] == 1.5
    assert conf["broker_heartbeat_interval"] == 0.5
    assert conf["web_port"] == 7001
    assert conf["stream_wait_empty"] is False


def test_the_producer_waits_for_every_in_sync_replica() -> None:
    # acks=all: an output counts as acknowledged (and its input's offset as committable) only once
    # min.insync.replicas brokers hold it, so a leader killed right after the ack loses nothing.
    app = faust.App("acks-test", **faust_settings(settings()))
    assert app.conf.producer_acks == -1


def test_sasl_plaintext_and_sasl_ssl(ca_file: Path) -> None:
    planted = "planted-kafka-secret"
    sasl = {
        "AVROFLOW_KAFKA_SASL_MECHANISM": "SCRAM-SHA-256",
        "AVROFLOW_KAFKA_SASL_USERNAME": "svc",
        "AVROFLOW_KAFKA_SASL_PASSWORD": planted,
    }
    plain = faust_settings(settings(AVROFLOW_KAFKA_SECURITY_PROTOCOL="SASL_PLAINTEXT", **sasl))[
        "broker_credentials"
    ]
    assert isinstance(plain, faust.SASLCredentials)
    assert plain.protocol.value == "SASL_PLAINTEXT"
    assert plain.mechanism.value == "SCRAM-SHA-256"
    assert (plain.username, plain.password) == ("svc", planted)
    assert planted not in repr(plain)
    secure = faust_settings(
        settings(AVROFLOW_KAFKA_SECURITY_PROTOCOL="SASL_SSL", AVROFLOW_KAFKA_SSL_CAFILE=str(ca_file), **sasl)
    )["broker_credentials"]
    assert secure.protocol.value == "SASL_SSL"
    assert isinstance(secure.ssl_context, ssl.SSLContext)


def test_ssl_with_a_private_ca(ca_file: Path) -> None:
    credentials = faust_settings(
        settings(AVROFLOW_KAFKA_SECURITY_PROTOCOL="SSL", AVROFLOW_KAFKA_SSL_CAFILE=str(ca_file))
    )["broker_credentials"]
    assert isinstance(credentials, faust.SSLCredentials)
    assert credentials.protocol.value == "SSL"
    assert any(
        c.get("subject") == ((("commonName", "test-ca"),),) for c in credentials.context.get_ca_certs()
    )


def test_the_worker_module_imports_without_side_effects() -> None:
    # Importing the app module must not configure logging or touch the network (the CLI imports it lazily).
    code = "import logging, workers.app; assert not logging.getLogger().handlers"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


async def _built_producer(conf: Settings) -> aiokafka.AIOKafkaProducer:
    # Faust's own path from its producer service to aiokafka's producer (no network until started).
    app = create_app(conf, PIPELINES)
    producer = app.producer._new_producer()
    await producer.stop()
    return producer


@pytest.mark.parametrize(("raw", "idempotent"), [(None, True), ("false", False)])
def test_the_producer_is_idempotent_with_acks_all_unless_switched_off(
    raw: str | None, idempotent: bool
) -> None:
    extra = {} if raw is None else {"AVROFLOW_KAFKA_IDEMPOTENT_PRODUCER": raw}
    producer = asyncio.run(_built_producer(settings(**extra)))
    # aiokafka keeps a producer id and sequence numbers (its transaction manager) only when idempotent
    assert (producer._txn_manager is not None) is idempotent
    assert producer._sender._acks == -1  # acks=all either way


def test_the_start_stops_naming_the_producer_hook_when_faust_loses_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delattr(faust_aiokafka.Producer, "_settings_extra")
    with pytest.raises(
        HookMissing, match=r"aiokafka\.Producer\._settings_extra is missing \(faust-streaming \d"
    ):
        create_app(settings(), PIPELINES)


def test_readiness_follows_fausts_assignment_signal_and_rebalancing_flag() -> None:
    conf = settings()

    async def scenario() -> None:
        runtime = build_runtime(conf, PIPELINES)
        app = create_app(conf, PIPELINES, runtime=runtime)
        assert "no partitions assigned" in runtime.readiness.reasons()
        await app.on_partitions_assigned.send(set())  # an empty assignment: more workers than partitions
        assert "no partitions assigned" not in runtime.readiness.reasons()
        app.rebalancing = True
        assert runtime.readiness.rebalancing()

    asyncio.run(scenario())


@pytest.mark.parametrize("urls", ["http://r1:8081", "http://r1:8081,http://r2:8081"])
def test_a_registry_ping_still_in_flight_within_its_timeout_keeps_the_worker_ready(urls: str) -> None:
    # The readiness ping runs every interval and may take the registry timeout on each URL before it
    # answers: a slow answer that does come in time is not "not heard from". Seen in CI: interval 0.5 s,
    # timeout 2 s, a busy machine, an idle worker turned 503 for 2 s between two successful pings.
    conf = settings(
        AVROFLOW_SCHEMA_REGISTRY_URL=urls,
        AVROFLOW_REGISTRY_CHECK_INTERVAL_SECONDS="0.5",
        AVROFLOW_SCHEMA_REGISTRY_TIMEOUT_SECONDS="2",
    )
    now = [100.0]
    readiness = build_runtime(conf, PIPELINES).readiness
    readiness.clock = lambda: now[0]
    readiness.unresolved_subjects.clear()
    readiness.assignment_received()
    readiness.broker_ok()
    readiness.registry_ok()
    # three check intervals, then each URL taking its whole timeout
    slowest_answer = 3 * 0.5 + 2 * len(conf.schema_registry_urls)
    now[0] += slowest_answer - 0.01
    readiness.broker_ok()
    assert readiness.reasons() == []
    now[0] += 0.02
    assert readiness.reasons() == [f"schema registry not heard from for {slowest_answer:.0f}s"]
