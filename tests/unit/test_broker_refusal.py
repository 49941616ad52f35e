"""Which connection failures end the start (`workers.broker_wait.refusal`) and which are waited for.

The real broker's answers are in tests/integration/test_security_kafka.py; these pin the classification of
errors shaped as aiokafka and the ssl module raise them, including the transient look-alikes."""

from __future__ import annotations

import asyncio
import ssl

import pytest
from aiokafka import errors

from workers.broker_wait import refusal


def alert(reason: str) -> ssl.SSLError:
    exc = ssl.SSLError(1, f"[SSL: {reason}] alert")
    exc.reason = reason  # set by the ssl module from OpenSSL's error
    return exc


def closed_because(cause: BaseException) -> errors.KafkaConnectionError:
    """How aiokafka reports a connection the peer closed: the cause chained."""
    try:
        raise errors.KafkaConnectionError("Connection at 127.0.0.1:9093 closed") from cause
    except errors.KafkaConnectionError as exc:
        return exc


@pytest.mark.parametrize(
    ("error", "names"),
    [
        (errors.SaslAuthenticationFailed("invalid credentials"), "AVROFLOW_KAFKA_SASL_PASSWORD"),
        (errors.UnsupportedSaslMechanismError("<conn>"), "SASL mechanism SCRAM-SHA-512"),
        (ssl.SSLCertVerificationError(1, "certificate verify failed"), "AVROFLOW_KAFKA_SSL_CAFILE"),
        (closed_because(alert("SSLV3_ALERT_BAD_CERTIFICATE")), "AVROFLOW_KAFKA_SSL_CERTFILE"),
        (closed_because(alert("TLSV13_ALERT_CERTIFICATE_REQUIRED")), "AVROFLOW_KAFKA_SSL_CERTFILE"),
    ],
)
def test_refusals_end_the_start_naming_the_settings(error: BaseException, names: str) -> None:
    refused = refusal(error, "SCRAM-SHA-512")
    assert refused is not None
    assert names in str(refused)


@pytest.mark.parametrize(
    "error",
    [
        ConnectionRefusedError(111, "Connection refused"),
        ConnectionResetError(),  # a TLS client on a plaintext listener, or a broker going down
        closed_because(asyncio.IncompleteReadError(b"abc", 100)),  # plaintext on a TLS listener
        closed_because(alert("UNEXPECTED_EOF_WHILE_READING")),
        TimeoutError(),
        errors.KafkaConnectionError("Unable to bootstrap"),
    ],
)
def test_other_failures_are_waited_for(error: BaseException) -> None:
    assert refusal(error) is None
