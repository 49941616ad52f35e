"""The settings parsers case by case: empty values mean unset, lists need an item, choices are
case-insensitive, files are checked, security combinations, secrets compare by value, the SSL flag."""

from __future__ import annotations

from pathlib import Path

import pytest

from devstack.registry.tls import make_self_signed_cert
from workers.settings import Secret, Settings, SettingsError, mask_url

REQUIRED = {
    "AVROFLOW_KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9092",
    "AVROFLOW_SCHEMA_REGISTRY_URL": "http://127.0.0.1:8081",
}


def load(**extra: str) -> Settings:
    return Settings.from_env({**REQUIRED, **extra})


def refused(variable: str, words: str, **extra: str) -> SettingsError:
    with pytest.raises(SettingsError) as caught:
        load(**extra)
    assert caught.value.variable == variable and str(caught.value).startswith(f"{variable}: ")
    assert words in str(caught.value), str(caught.value)
    return caught.value


@pytest.mark.parametrize("blank", ["", "   "])
def test_a_blank_value_is_unset(blank: str) -> None:
    assert load(AVROFLOW_WEB_PORT=blank, AVROFLOW_APP_ID=blank).web_port == 6066
    refused(
        "AVROFLOW_KAFKA_BOOTSTRAP_SERVERS", "required but not set", AVROFLOW_KAFKA_BOOTSTRAP_SERVERS=blank
    )
    refused("AVROFLOW_SCHEMA_REGISTRY_URL", "required but not set", AVROFLOW_SCHEMA_REGISTRY_URL=blank)


def test_values_are_stripped_before_parsing() -> None:
    settings = load(AVROFLOW_WEB_PORT=" 7000 ", AVROFLOW_APP_ID="  app  ")
    assert (settings.web_port, settings.app_id) == (7000, "app")


def test_a_list_needs_at_least_one_item() -> None:
    refused(
        "AVROFLOW_KAFKA_BOOTSTRAP_SERVERS",
        "expected a comma-separated list",
        AVROFLOW_KAFKA_BOOTSTRAP_SERVERS=" , ,",
    )
    assert load(AVROFLOW_KAFKA_BOOTSTRAP_SERVERS="a:1,,b:2,").kafka_bootstrap_servers == ("a:1", "b:2")


def test_registry_urls_must_be_http_and_are_masked_in_the_error() -> None:
    error = refused(
        "AVROFLOW_SCHEMA_REGISTRY_URL", "http:// or https://", AVROFLOW_SCHEMA_REGISTRY_URL="ftp://u:pw@r"
    )
    assert "pw" not in str(error) and "***@r" in str(error)
    assert load(AVROFLOW_SCHEMA_REGISTRY_URL="https://r").schema_registry_urls == ("https://r",)


@pytest.mark.parametrize(("raw", "expected"), [("json", "json"), ("JSON", "json"), ("Logfmt", "logfmt")])
def test_the_log_format_is_lower_cased(raw: str, expected: str) -> None:
    assert load(AVROFLOW_LOG_FORMAT=raw).log_format == expected


def test_a_choice_lists_the_options() -> None:
    refused("AVROFLOW_LOG_FORMAT", "expected one of logfmt, json, got 'xml'", AVROFLOW_LOG_FORMAT="xml")
    refused(
        "AVROFLOW_KAFKA_SECURITY_PROTOCOL",
        "expected one of PLAINTEXT, SSL",
        AVROFLOW_KAFKA_SECURITY_PROTOCOL="tls",
    )


@pytest.mark.parametrize(
    ("protocol", "ssl"), [("PLAINTEXT", False), ("SSL", True), ("ssl", True), ("SASL_SSL", True)]
)
def test_the_ssl_flag_follows_the_protocol(protocol: str, ssl: bool) -> None:
    extra = {"AVROFLOW_KAFKA_SASL_USERNAME": "u", "AVROFLOW_KAFKA_SASL_PASSWORD": "p"}
    assert load(AVROFLOW_KAFKA_SECURITY_PROTOCOL=protocol, **extra).kafka_uses_ssl is ssl


def test_sasl_plaintext_is_not_ssl_and_needs_the_password_too() -> None:
    refused(
        "AVROFLOW_KAFKA_SASL_PASSWORD",
        "required with security protocol SASL_PLAINTEXT",
        AVROFLOW_KAFKA_SECURITY_PROTOCOL="SASL_PLAINTEXT",
        AVROFLOW_KAFKA_SASL_USERNAME="u",
    )
    settings = load(
        AVROFLOW_KAFKA_SECURITY_PROTOCOL="SASL_PLAINTEXT",
        AVROFLOW_KAFKA_SASL_USERNAME="u",
        AVROFLOW_KAFKA_SASL_PASSWORD="p",
    )
    assert not settings.kafka_uses_ssl
    assert load(AVROFLOW_KAFKA_SECURITY_PROTOCOL="SSL").kafka_sasl_username is None  # SSL needs no SASL


def test_a_registry_password_needs_a_username() -> None:
    refused(
        "AVROFLOW_SCHEMA_REGISTRY_USERNAME",
        "required with a registry password",
        AVROFLOW_SCHEMA_REGISTRY_PASSWORD="p",
    )
    settings = load(AVROFLOW_SCHEMA_REGISTRY_PASSWORD="p", AVROFLOW_SCHEMA_REGISTRY_USERNAME="u")
    assert settings.schema_registry_username == "u"
    assert load(AVROFLOW_SCHEMA_REGISTRY_USERNAME="u").schema_registry_password is None


def test_a_key_needs_its_certificate(tmp_path: Path) -> None:
    pem = tmp_path / "k.pem"
    pem.write_text("k")
    error = refused(
        "AVROFLOW_KAFKA_SSL_CERTFILE", "required together with", AVROFLOW_KAFKA_SSL_KEYFILE=str(pem)
    )
    assert "AVROFLOW_KAFKA_SSL_CERTFILE" in str(error).split(":", 1)[1]
    refused(
        "AVROFLOW_SCHEMA_REGISTRY_KEY_FILE",
        "required together with",
        AVROFLOW_SCHEMA_REGISTRY_CERT_FILE=str(pem),
    )


def test_a_file_setting_names_a_file_that_exists(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    refused("AVROFLOW_KAFKA_SSL_CAFILE", "no such file", AVROFLOW_KAFKA_SSL_CAFILE=str(tmp_path))  # a folder
    monkeypatch.setenv("HOME", str(tmp_path))
    cert, _ = make_self_signed_cert(tmp_path / "made")  # the CA file is read as PEM when settings load
    (tmp_path / "ca.pem").write_bytes(cert.read_bytes())
    assert load(AVROFLOW_KAFKA_SSL_CAFILE="~/ca.pem").kafka_ssl_cafile == tmp_path / "ca.pem"


@pytest.mark.parametrize("spec", ["pkg.mod:ATTR", "_p:_a", "a.b.c:D.E"])
def test_pipelines_spec_accepted(spec: str) -> None:
    assert load(AVROFLOW_PIPELINES=spec).pipelines == spec


@pytest.mark.parametrize("spec", ["pkg.mod", ":ATTR", "pkg:", "1pkg:A", "pkg:A:B", "pkg mod:A"])
def test_pipelines_spec_refused(spec: str) -> None:
    refused("AVROFLOW_PIPELINES", "expected 'package.module:ATTRIBUTE'", AVROFLOW_PIPELINES=spec)


@pytest.mark.parametrize("suffix", ["x/y", "a b", "!"])
def test_a_dlq_suffix_is_a_topic_name_part(suffix: str) -> None:
    refused("AVROFLOW_DLQ_SUFFIX", "expected letters, digits", AVROFLOW_DLQ_SUFFIX=suffix)


def test_secrets_compare_and_hash_by_value() -> None:
    assert Secret("a") == Secret("a") and hash(Secret("a")) == hash(Secret("a"))
    assert Secret("a") != Secret("b")
    assert Secret("a") != "a"
    assert str(Secret("a")) == repr(Secret("a")) == "Secret('***')"


def test_mask_url_hides_user_info_only() -> None:
    assert mask_url("http://u:p@h:1/x") == "http://***@h:1/x"
    assert mask_url("http://h:1/x@y") == "http://h:1/x@y"


def test_the_repr_masks_registry_urls_and_names_every_field() -> None:
    text = repr(load(AVROFLOW_SCHEMA_REGISTRY_URL="http://u:pw@r:1"))
    assert text.startswith("Settings(kafka_bootstrap_servers=('127.0.0.1:9092',), ")
    assert "schema_registry_urls=('http://***@r:1',)" in text and "pw" not in text
    assert text.endswith("shutdown_timeout_seconds=20.0)")
