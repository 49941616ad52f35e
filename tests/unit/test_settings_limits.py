"""Every numeric setting at and beyond each of its limits: the value at the limit is accepted as given, the
value just beyond is refused with a SettingsError naming the variable and the bound. So are NaN, infinity,
and values that are not numbers. A new numeric setting without a row in LIMITS fails the last test."""

from __future__ import annotations

import dataclasses

import pytest

from workers.settings import VARIABLES, Settings, SettingsError

REQUIRED = {
    "AVROFLOW_KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9092",
    "AVROFLOW_SCHEMA_REGISTRY_URL": "http://127.0.0.1:8081",
}

#: field -> (accepted at the limit, refused beyond it, words of the refusal), one row per limit.
LIMITS: dict[str, list[tuple[str, str, str]]] = {
    "kafka_session_timeout_seconds": [("1", "0.999", "at least 1.0")],
    "kafka_producer_linger_seconds": [("0", "-0.001", "at least 0.0")],
    "kafka_producer_max_batch_size": [("1", "0", "at least 1")],
    "kafka_commit_interval_seconds": [("0.1", "0.099", "at least 0.1")],
    "kafka_fetch_max_wait_seconds": [("0.001", "0.0009", "at least 0.001")],
    "topic_partitions": [("1", "0", "at least 1")],
    "schema_registry_timeout_seconds": [("0.1", "0.099", "at least 0.1")],
    "latest_schema_ttl_seconds": [("0", "-0.001", "at least 0.0")],
    "schema_not_found_retry_seconds": [("0", "-0.001", "at least 0.0")],
    "readiness_broker_timeout_seconds": [("1", "0.999", "at least 1.0")],
    "lag_check_interval_seconds": [("1", "0.999", "at least 1.0")],
    "batch_size": [("1", "0", "at least 1")],
    "batch_within_seconds": [("0.001", "0", "greater than 0")],
    "retry_backoff_seconds": [("0.001", "0", "greater than 0")],
    # The cap on the backoff is at least its base (0.2 by default): a cap of 0 would retry in a tight loop.
    "retry_backoff_max_seconds": [
        ("0.2", "0.199", "at least AVROFLOW_RETRY_BACKOFF_SECONDS"),
        ("0.2", "0", "at least"),
    ],
    "registry_check_interval_seconds": [("0.1", "0.099", "at least 0.1")],
    "web_port": [("1", "0", "between 1 and 65535"), ("65535", "65536", "between 1 and 65535")],
    "shutdown_timeout_seconds": [("1", "0.999", "at least 1.0")],
}


def load(**extra: str) -> Settings:
    return Settings.from_env({**REQUIRED, **extra})


ROWS = [(name, *row) for name, rows in LIMITS.items() for row in rows]


@pytest.mark.parametrize(
    ("name", "accepted", "refused", "words"), ROWS, ids=[f"{r[0]}<{r[2]}>" for r in ROWS]
)
def test_a_setting_at_its_limit_is_accepted_and_beyond_it_refused_naming_the_variable(
    name: str, accepted: str, refused: str, words: str
) -> None:
    variable = VARIABLES[name]
    assert getattr(load(**{variable: accepted}), name) == float(accepted)
    with pytest.raises(SettingsError) as caught:
        load(**{variable: refused})
    assert caught.value.variable == variable
    assert str(caught.value).startswith(f"{variable}: ") and words in str(caught.value)


NUMERIC = sorted(LIMITS)


@pytest.mark.parametrize("name", NUMERIC)
@pytest.mark.parametrize("raw", ["nan", "inf", "-inf", "ten", "1e400"])
def test_a_number_that_is_not_finite_or_not_a_number_is_refused(name: str, raw: str) -> None:
    variable = VARIABLES[name]
    with pytest.raises(SettingsError) as caught:
        load(**{variable: raw})
    assert caught.value.variable == variable and repr(raw) in str(caught.value)


@pytest.mark.parametrize("name", [n for n in NUMERIC if Settings.__dataclass_fields__[n].type == "int"])
def test_a_whole_number_setting_refuses_a_fraction(name: str) -> None:
    with pytest.raises(SettingsError, match=VARIABLES[name]):
        load(**{VARIABLES[name]: "2.5"})


def test_the_backoff_cap_may_equal_but_not_undercut_a_raised_base() -> None:
    settings = load(AVROFLOW_RETRY_BACKOFF_SECONDS="2", AVROFLOW_RETRY_BACKOFF_MAX_SECONDS="2")
    assert (settings.retry_backoff_seconds, settings.retry_backoff_max_seconds) == (2.0, 2.0)
    with pytest.raises(SettingsError, match="AVROFLOW_RETRY_BACKOFF_MAX_SECONDS: must be at least"):
        load(AVROFLOW_RETRY_BACKOFF_SECONDS="2", AVROFLOW_RETRY_BACKOFF_MAX_SECONDS="1.5")
    with pytest.raises(SettingsError, match="AVROFLOW_RETRY_BACKOFF_MAX_SECONDS"):
        load(AVROFLOW_RETRY_BACKOFF_SECONDS="11")  # above the default cap of 10


@pytest.mark.parametrize("server", ["h:0", "h:65536", "h:99999", "h:", ":9092", "h:-1", "h:9092x"])
def test_a_bootstrap_server_needs_a_host_and_a_port_from_1_to_65535(server: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load(AVROFLOW_KAFKA_BOOTSTRAP_SERVERS=f"ok:9092,{server}")
    assert caught.value.variable == "AVROFLOW_KAFKA_BOOTSTRAP_SERVERS" and repr(server) in str(caught.value)


@pytest.mark.parametrize("server", ["h:1", "h:65535", "kafka://h:9092", "[::1]:9092"])
def test_bootstrap_ports_at_the_limits_are_accepted(server: str) -> None:
    assert load(AVROFLOW_KAFKA_BOOTSTRAP_SERVERS=server).kafka_bootstrap_servers == (
        server.removeprefix("kafka://"),
    )


def test_every_numeric_setting_has_its_limits_tested() -> None:
    numeric = {f.name for f in dataclasses.fields(Settings) if f.type in ("int", "float")}
    missing = sorted(numeric - set(LIMITS))
    assert not missing, f"add the limits of {', '.join(VARIABLES[m] for m in missing)} to LIMITS"
