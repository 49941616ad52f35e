"""Settings are read once from AVROFLOW_* variables, parsed strictly, and never show a secret."""

from __future__ import annotations

from pathlib import Path

import pytest

from devstack.registry.tls import make_ca
from workers.settings import VARIABLES, Secret, Settings, SettingsError

REQUIRED = {
    "AVROFLOW_KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9092",
    "AVROFLOW_SCHEMA_REGISTRY_URL": "http://127.0.0.1:8081",
}


def load(**extra: str) -> Settings:
    return Settings.from_env({**REQUIRED, **extra})


def test_defaults_with_only_the_required_variables() -> None:
    settings = load()
    assert settings.kafka_bootstrap_servers == ("127.0.0.1:9092",)
    assert settings.schema_registry_urls == ("http://127.0.0.1:8081",)
    assert settings.app_id == "avroflow"
    assert settings.dlq_suffix == ".dlq"
    assert settings.latest_schema_ttl_seconds == 30.0
    assert settings.schema_not_found_retry_seconds >= 30.0  # a registry warm-up takes seconds
    assert settings.web_port == 6066
    assert settings.log_level == "INFO"
    assert settings.auto_register_schemas is False
    assert settings.shutdown_timeout_seconds == 20.0
    assert settings.pipelines == "workers.sample:PIPELINES"
    assert settings.dlq_topic_for("orders") == "orders.dlq"
    assert settings.kafka_idempotent_producer is True
    assert settings.readiness_broker_timeout_seconds == 30.0


def test_the_idempotent_producer_and_the_readiness_timeout_are_read() -> None:
    settings = load(
        AVROFLOW_KAFKA_IDEMPOTENT_PRODUCER="false", AVROFLOW_READINESS_BROKER_TIMEOUT_SECONDS="4.5"
    )
    assert settings.kafka_idempotent_producer is False
    assert settings.readiness_broker_timeout_seconds == 4.5


def test_variables_outside_the_prefix_are_ignored() -> None:
    assert load(PATH="/bin", KAFKA_BOOTSTRAP_SERVERS="nope").app_id == "avroflow"


def test_lists_and_numbers_are_parsed() -> None:
    settings = load(
        AVROFLOW_KAFKA_BOOTSTRAP_SERVERS="kafka://a:9092, b:9093",
        AVROFLOW_SCHEMA_REGISTRY_URL="http://r1:8081,https://r2:8082",
        AVROFLOW_LATEST_SCHEMA_TTL_SECONDS="2.5",
        AVROFLOW_WEB_PORT="7000",
        AVROFLOW_KAFKA_SESSION_TIMEOUT_SECONDS="6",
        AVROFLOW_LOG_LEVEL="debug",
        AVROFLOW_DLQ_SUFFIX="-dead",
    )
    assert settings.kafka_bootstrap_servers == ("a:9092", "b:9093")
    assert settings.schema_registry_urls == ("http://r1:8081", "https://r2:8082")
    assert settings.latest_schema_ttl_seconds == 2.5
    assert settings.web_port == 7000
    assert settings.kafka_session_timeout_seconds == 6.0
    assert settings.log_level == "DEBUG"
    assert settings.dlq_topic_for("orders") == "orders-dead"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("1", True), ("true", True), ("YES", True), ("on", True), ("0", False), ("False", False), ("no", False)],
)
def test_booleans_are_spelled_out(raw: str, expected: bool) -> None:
    assert load(AVROFLOW_AUTO_REGISTER_SCHEMAS=raw).auto_register_schemas is expected


@pytest.mark.parametrize("missing", ["AVROFLOW_KAFKA_BOOTSTRAP_SERVERS", "AVROFLOW_SCHEMA_REGISTRY_URL"])
def test_a_missing_required_variable_is_named(missing: str) -> None:
    env = {k: v for k, v in REQUIRED.items() if k != missing}
    with pytest.raises(SettingsError, match=missing) as info:
        Settings.from_env(env)
    assert info.value.variable == missing


@pytest.mark.parametrize(
    ("variable", "raw"),
    [
        ("AVROFLOW_AUTO_REGISTER_SCHEMAS", "maybe"),
        ("AVROFLOW_WEB_PORT", "http"),
        ("AVROFLOW_WEB_PORT", "70000"),
        ("AVROFLOW_WEB_PORT", "6066.5"),
        ("AVROFLOW_LATEST_SCHEMA_TTL_SECONDS", "-1"),
        ("AVROFLOW_LATEST_SCHEMA_TTL_SECONDS", "nan"),
        ("AVROFLOW_SHUTDOWN_TIMEOUT_SECONDS", "inf"),
        ("AVROFLOW_KAFKA_SECURITY_PROTOCOL", "TLS"),
        ("AVROFLOW_KAFKA_SASL_MECHANISM", "GSSAPI"),
        ("AVROFLOW_KAFKA_BOOTSTRAP_SERVERS", "localhost"),
        ("AVROFLOW_SCHEMA_REGISTRY_URL", "registry:8081"),
        ("AVROFLOW_LOG_LEVEL", "loud"),
        ("AVROFLOW_PIPELINES", "workers.sample"),
        ("AVROFLOW_DLQ_SUFFIX", ".dlq/x"),
        ("AVROFLOW_SCHEMA_REGISTRY_CA_FILE", "/nonexistent/ca.pem"),
        ("AVROFLOW_KAFKA_IDEMPOTENT_PRODUCER", "sometimes"),
        ("AVROFLOW_READINESS_BROKER_TIMEOUT_SECONDS", "0.5"),
    ],
)
def test_a_malformed_value_is_named(variable: str, raw: str) -> None:
    with pytest.raises(SettingsError, match=variable):
        load(**{variable: raw})


def test_an_unknown_avroflow_variable_is_an_error_that_suggests_the_setting_meant() -> None:
    with pytest.raises(SettingsError, match="AVROFLOW_SCHEMA_REGISTRY_URLS") as raised:
        load(AVROFLOW_SCHEMA_REGISTRY_URLS="http://typo:8081")
    assert "did you mean AVROFLOW_SCHEMA_REGISTRY_URL?" in str(raised.value)


def test_an_unknown_variable_like_no_setting_lists_the_known_ones() -> None:
    with pytest.raises(SettingsError, match="known: AVROFLOW_APP_ID, "):
        load(AVROFLOW_QQQQQQQQQQQQQQQQQQQQQQQQQQQQQQ="1")


def test_every_field_has_a_distinct_variable() -> None:
    assert len(set(VARIABLES.values())) == len(VARIABLES)
    assert VARIABLES["schema_registry_urls"] == "AVROFLOW_SCHEMA_REGISTRY_URL"


def test_sasl_needs_credentials() -> None:
    with pytest.raises(SettingsError, match="AVROFLOW_KAFKA_SASL_USERNAME"):
        load(AVROFLOW_KAFKA_SECURITY_PROTOCOL="SASL_SSL")
    settings = load(
        AVROFLOW_KAFKA_SECURITY_PROTOCOL="sasl_ssl",
        AVROFLOW_KAFKA_SASL_MECHANISM="scram-sha-512",
        AVROFLOW_KAFKA_SASL_USERNAME="svc",
        AVROFLOW_KAFKA_SASL_PASSWORD="pw",
    )
    assert settings.kafka_sasl_mechanism == "SCRAM-SHA-512"
    assert settings.kafka_uses_ssl
    assert settings.kafka_sasl_password == Secret("pw")


def test_a_client_certificate_needs_its_key(tmp_path: Path) -> None:
    cert = tmp_path / "client.pem"
    cert.write_text("cert")
    with pytest.raises(SettingsError, match="AVROFLOW_KAFKA_SSL_KEYFILE"):
        load(AVROFLOW_KAFKA_SSL_CERTFILE=str(cert))
    with pytest.raises(SettingsError, match="AVROFLOW_SCHEMA_REGISTRY_CERT_FILE"):
        load(AVROFLOW_SCHEMA_REGISTRY_KEY_FILE=str(cert))
    real_cert, real_key = make_ca(tmp_path).issue(tmp_path, "client", client=True)
    settings = load(AVROFLOW_KAFKA_SSL_CERTFILE=str(real_cert), AVROFLOW_KAFKA_SSL_KEYFILE=str(real_key))
    assert settings.kafka_ssl_certfile == real_cert


def test_secrets_never_show_in_repr_str_or_errors() -> None:
    planted = "s3cr3t-planted-value"
    settings = load(
        AVROFLOW_SCHEMA_REGISTRY_URL=f"http://svc:{planted}@registry:8081",
        AVROFLOW_SCHEMA_REGISTRY_USERNAME="svc",
        AVROFLOW_SCHEMA_REGISTRY_PASSWORD=planted,
        AVROFLOW_SCHEMA_REGISTRY_BEARER_TOKEN=planted,
        AVROFLOW_KAFKA_SECURITY_PROTOCOL="SASL_PLAINTEXT",
        AVROFLOW_KAFKA_SASL_USERNAME="svc",
        AVROFLOW_KAFKA_SASL_PASSWORD=planted,
    )
    for text in (repr(settings), str(settings), f"{settings}", f"{settings.kafka_sasl_password}"):
        assert planted not in text
    assert "registry:8081" in repr(settings)
    assert settings.schema_registry_password is not None
    assert settings.schema_registry_password.reveal() == planted
    with pytest.raises(SettingsError) as info:
        load(AVROFLOW_SCHEMA_REGISTRY_URL=f"ftp://svc:{planted}@registry")
    assert planted not in str(info.value)


def test_settings_are_frozen() -> None:
    settings = load()
    with pytest.raises(AttributeError):
        settings.web_port = 1  # type: ignore[misc]
