"""The Kafka TLS files are loaded when the settings are read: a file that is not what its variable says stops
the start naming the variable (exit 2), instead of a traceback when the first connection is made, and an
encrypted key is refused instead of OpenSSL prompting for its password on the terminal."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from devstack.registry.tls import CertificateAuthority, make_ca
from workers.settings import Settings, SettingsError

REQUIRED = {
    "AVROFLOW_KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9093",
    "AVROFLOW_SCHEMA_REGISTRY_URL": "http://127.0.0.1:8081",
    "AVROFLOW_KAFKA_SECURITY_PROTOCOL": "SSL",
}


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> CertificateAuthority:
    return make_ca(tmp_path_factory.mktemp("ca"))


def load(**extra: str) -> Settings:
    return Settings.from_env({**REQUIRED, **extra})


def test_a_certificate_and_its_key_load(ca: CertificateAuthority, tmp_path: Path) -> None:
    cert, key = ca.issue(tmp_path, "client", client=True)
    settings = load(
        AVROFLOW_KAFKA_SSL_CAFILE=str(ca.cert),
        AVROFLOW_KAFKA_SSL_CERTFILE=str(cert),
        AVROFLOW_KAFKA_SSL_KEYFILE=str(key),
    )
    assert (settings.kafka_ssl_certfile, settings.kafka_ssl_keyfile) == (cert, key)


def test_a_key_of_another_certificate_names_the_key_variable(
    ca: CertificateAuthority, tmp_path: Path
) -> None:
    cert, _ = ca.issue(tmp_path, "one", client=True)
    _, other_key = ca.issue(tmp_path, "two", client=True)
    with pytest.raises(SettingsError, match=r"AVROFLOW_KAFKA_SSL_KEYFILE: .*key values mismatch"):
        load(AVROFLOW_KAFKA_SSL_CERTFILE=str(cert), AVROFLOW_KAFKA_SSL_KEYFILE=str(other_key))


def test_an_encrypted_key_is_refused_not_prompted_for(ca: CertificateAuthority, tmp_path: Path) -> None:
    cert, key = ca.issue(tmp_path, "client", client=True)
    private = serialization.load_pem_private_key(key.read_bytes(), password=None)
    encrypted = tmp_path / "encrypted.key"
    encrypted.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"passphrase"),
        )
    )
    with pytest.raises(SettingsError, match=r"AVROFLOW_KAFKA_SSL_KEYFILE: .*unencrypted"):
        load(AVROFLOW_KAFKA_SSL_CERTFILE=str(cert), AVROFLOW_KAFKA_SSL_KEYFILE=str(encrypted))


def test_a_ca_file_that_holds_no_certificate_names_the_ca_variable(ca: CertificateAuthority) -> None:
    with pytest.raises(SettingsError, match="AVROFLOW_KAFKA_SSL_CAFILE: not a PEM CA file"):
        load(AVROFLOW_KAFKA_SSL_CAFILE=str(ca.key))


def test_the_key_error_gives_openssl_s_reason_in_words_not_its_code(
    ca: CertificateAuthority, tmp_path: Path
) -> None:
    cert, _ = ca.issue(tmp_path, "one", client=True)
    _, other_key = ca.issue(tmp_path, "two", client=True)
    with pytest.raises(SettingsError) as refused:
        load(AVROFLOW_KAFKA_SSL_CERTFILE=str(cert), AVROFLOW_KAFKA_SSL_KEYFILE=str(other_key))
    assert str(refused.value).endswith("private key: key values mismatch")
