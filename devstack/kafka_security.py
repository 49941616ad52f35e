"""A `KafkaBroker` with TLS and SASL listeners, and the CA, certificates and users it needs.

`secured_kafka(directory)` makes a certificate authority, a server certificate for ``localhost`` and
``127.0.0.1``, a client certificate, and returns a `SecuredKafka` (not started) whose broker has, beside its
plaintext ``CLIENT`` listener (what the helpers and tests use to create topics and read results):

| listener | protocol | clients prove who they are with |
|---|---|---|
| ``SASL_SSL`` | SASL_SSL, SCRAM-SHA-512 | a SCRAM user created when the storage is formatted |
| ``SSL`` | SSL, ``ssl.client.auth=required`` | a certificate signed by the CA (mutual TLS) |
| ``PLAIN_SSL`` | SASL_SSL, PLAIN | a user in the listener's JAAS configuration (the Confluent Cloud form) |

The broker reads its key, certificate and truststore as PEM files (``ssl.keystore.type=PEM``).
`SecuredKafka.client_env` gives the ``AVROFLOW_*`` settings that reach the broker through one listener.
For tests and local runs only: the passwords are written to the broker's config folder and command line.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from devstack.kafka import KafkaBroker
from devstack.registry.tls import CertificateAuthority, make_ca

__all__ = ["LISTENERS", "SecuredKafka", "secured_kafka"]

SCRAM: Final = "SASL_SSL"
MTLS: Final = "SSL"
PLAIN: Final = "PLAIN_SSL"
#: Listener name -> its security protocol.
LISTENERS: Final = {SCRAM: "SASL_SSL", MTLS: "SSL", PLAIN: "SASL_SSL"}
_MECHANISMS: Final = {SCRAM: "SCRAM-SHA-512", PLAIN: "PLAIN"}
_SAFE_CREDENTIAL = re.compile(r"[A-Za-z0-9._-]+")


@dataclass(frozen=True, slots=True)
class SecuredKafka:
    """A secured broker (start and stop it as any `KafkaBroker`) and what a client needs to reach it.

    Attributes:
        broker: the broker, with the three listeners above besides ``CLIENT``.
        ca: the CA that signed the server and client certificates (clients trust `ca.cert`).
        client_cert: a client certificate for the ``SSL`` listener, with `client_key`.
        username: the SCRAM-SHA-512 user and the PLAIN user.
        password: their password.
    """

    broker: KafkaBroker
    ca: CertificateAuthority
    client_cert: Path
    client_key: Path
    username: str
    password: str

    def bootstrap_for(self, listener: str) -> str:
        """``host:port`` of `listener` (``SASL_SSL``, ``SSL``, ``PLAIN_SSL`` or ``CLIENT``)."""
        return self.broker.bootstrap_for(listener)

    def client_env(self, listener: str, **overrides: str) -> dict[str, str]:
        """The ``AVROFLOW_KAFKA_*`` settings that reach the broker through `listener`, with `overrides`.

        Args:
            listener: ``SASL_SSL``, ``SSL`` or ``PLAIN_SSL``.
            overrides: settings to add or replace (a wrong password, another CA file ...).
        """
        env = {
            "AVROFLOW_KAFKA_BOOTSTRAP_SERVERS": self.bootstrap_for(listener),
            "AVROFLOW_KAFKA_SECURITY_PROTOCOL": LISTENERS[listener],
            "AVROFLOW_KAFKA_SSL_CAFILE": str(self.ca.cert),
        }
        if listener == MTLS:
            env["AVROFLOW_KAFKA_SSL_CERTFILE"] = str(self.client_cert)
            env["AVROFLOW_KAFKA_SSL_KEYFILE"] = str(self.client_key)
        else:
            env["AVROFLOW_KAFKA_SASL_MECHANISM"] = _MECHANISMS[listener]
            env["AVROFLOW_KAFKA_SASL_USERNAME"] = self.username
            env["AVROFLOW_KAFKA_SASL_PASSWORD"] = self.password
        env.update(overrides)
        return env


def secured_kafka(
    directory: Path,
    *,
    username: str = "avroflow",
    password: str = "avroflow-secret",  # noqa: S107 - a local test broker's default
    server_properties: Mapping[str, str] | None = None,
    **broker_options: object,
) -> SecuredKafka:
    """Make the CA and certificates in `directory` and a `KafkaBroker` (not started) that uses them.

    Args:
        directory: where the CA, the certificates and the broker's PEM keystore go.
        username: the SCRAM-SHA-512 user (created at format time) and the PLAIN user.
        password: their password (letters, digits, ``.``, ``_``, ``-``: it goes into a JAAS line).
        server_properties: more broker settings, applied after the security ones.
        broker_options: passed to `KafkaBroker` (``nodes``, ``heap`` ...).

    Raises:
        ValueError: the username or password has characters a JAAS line would need escaped.
        RuntimeError: the `cryptography` package is not installed.
    """
    for what, value in (("username", username), ("password", password)):
        if not _SAFE_CREDENTIAL.fullmatch(value):
            raise ValueError(f"the {what} must be letters, digits, '.', '_' or '-'")
    ca = make_ca(directory)
    server_cert, server_key = ca.issue(directory, "kafka-server")
    client_cert, client_key = ca.issue(directory, "avroflow-client", client=True)
    keystore = directory / "kafka-server.pem"  # Kafka's PEM keystore: the key, then the certificate
    keystore.write_bytes(server_key.read_bytes() + server_cert.read_bytes())
    properties = _security_properties(keystore, ca.cert, username, password)
    properties.update(server_properties or {})
    broker = KafkaBroker(
        extra_listeners=LISTENERS,
        server_properties=properties,
        scram_users={username: password},
        **broker_options,  # type: ignore[arg-type]  # KafkaBroker's own keyword arguments, checked there
    )
    return SecuredKafka(broker, ca, client_cert, client_key, username, password)


def _security_properties(keystore: Path, truststore: Path, username: str, password: str) -> dict[str, str]:
    scram, mtls, plain = (f"listener.name.{name.lower()}." for name in (SCRAM, MTLS, PLAIN))
    return {
        "ssl.keystore.type": "PEM",
        "ssl.keystore.location": str(keystore),
        "ssl.truststore.type": "PEM",
        "ssl.truststore.location": str(truststore),
        mtls + "ssl.client.auth": "required",
        scram + "sasl.enabled.mechanisms": "SCRAM-SHA-512",
        scram + "scram-sha-512.sasl.jaas.config": (
            "org.apache.kafka.common.security.scram.ScramLoginModule required;"
        ),
        plain + "sasl.enabled.mechanisms": "PLAIN",
        plain + "plain.sasl.jaas.config": (
            f'org.apache.kafka.common.security.plain.PlainLoginModule required user_{username}="{password}";'
        ),
    }
