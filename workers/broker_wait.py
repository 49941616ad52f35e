"""Waiting for the Kafka broker before Faust starts, and refusing to start when waiting cannot help.

Faust's producer gives up at once when it cannot bootstrap ("Unable to bootstrap from ..."), and the worker
exits 1: a worker started before its broker (a fresh cluster, a rolling restart, a network hiccup) would
crash-loop. `wait_for_broker` asks the broker for its metadata with the worker's own client settings
(addresses, TLS, SASL) until it answers, with jittered backoff and one log line per outage, or until
`stop` is set (SIGTERM while waiting exits 0). Once Faust runs, aiokafka itself reconnects and retries.

Some answers do not change by waiting: the broker refused the SASL credentials or the client certificate,
or the client does not trust the broker's certificate. `probe` raises `KafkaAccessRefused` for those, naming
the settings to check; the worker and the command-line tools stop on it (exit 3) instead of retrying.
aiokafka's own bootstrap hides why a connection failed ("Unable to bootstrap from ..."), so `probe` opens
the connections itself.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Final

from aiokafka import errors
from aiokafka.conn import create_conn
from aiokafka.protocol.metadata import MetadataRequest

from workers.deadletter import scrub
from workers.delivery import Backoff

log = logging.getLogger("avroflow.worker")

_SASL_REFUSALS: Final = (
    errors.SaslAuthenticationFailed,
    errors.AuthenticationFailedError,
    errors.IllegalSaslStateError,
)
#: TLS alerts a broker sends when it does not accept the client's certificate (or got none).
_CLIENT_CERT_ALERTS: Final = frozenset(
    {
        "SSLV3_ALERT_BAD_CERTIFICATE",
        "SSLV3_ALERT_CERTIFICATE_UNKNOWN",
        "SSLV3_ALERT_CERTIFICATE_EXPIRED",
        "SSLV3_ALERT_CERTIFICATE_REVOKED",
        "SSLV3_ALERT_UNSUPPORTED_CERTIFICATE",
        "TLSV13_ALERT_CERTIFICATE_REQUIRED",
        "TLSV1_ALERT_UNKNOWN_CA",
        "TLSV1_ALERT_ACCESS_DENIED",
    }
)


class KafkaAccessRefused(Exception):
    """The broker refused the credentials or the client certificate, or the client does not trust the
    broker's certificate: retrying with the same settings cannot succeed. The message names the settings."""


def wait_for_broker(
    servers: Sequence[str],
    auth: Mapping[str, Any],
    stop: threading.Event,
    backoff: Backoff,
    timeout: float = 10.0,
) -> bool:
    """Block until the broker answers a metadata request; return False when `stop` was set first.

    Args:
        servers: the bootstrap ``host:port`` addresses.
        auth: aiokafka security keyword arguments (``security_protocol``, ``ssl_context``, ``sasl_*``).
        stop: set by SIGTERM/SIGINT while waiting.
        backoff: delays between attempts.
        timeout: seconds one attempt may take.

    Raises:
        KafkaAccessRefused: the credentials or a certificate were refused (see `probe`).
    """
    attempt = 0
    while not stop.is_set():
        error = probe(servers, auth, timeout)
        if error is None:
            if attempt:
                log.info("Kafka broker reachable again; continuing the start")
            return True
        if attempt == 0:
            log.warning(
                "Kafka broker unreachable at start; waiting for it before joining the consumer group",
                extra={"bootstrap_servers": ",".join(servers), "error": scrub(error)},
            )
        stop.wait(backoff.delay(attempt))
        attempt += 1
    return False


def probe(servers: Sequence[str], auth: Mapping[str, Any], timeout: float) -> str | None:
    """Ask the bootstrap servers, in order, for metadata until one answers.

    Returns:
        None when a broker answered, else what went wrong with each server (scrubbed of credentials).

    Raises:
        KafkaAccessRefused: a broker refused the SASL credentials or the client certificate, or its
            certificate is not trusted.
    """
    outcome: list[str | KafkaAccessRefused | None] = []

    def run() -> None:
        try:
            outcome.append(asyncio.run(_ask(servers, auth, timeout)))
        except KafkaAccessRefused as exc:
            outcome.append(exc)

    # Its own thread and event loop: the main thread's loop is Faust's, created after this returns.
    thread = threading.Thread(target=run, name="broker-probe", daemon=True)
    thread.start()
    thread.join(len(servers) * timeout + 5)
    if not outcome:
        return "the probe did not finish"
    if isinstance(outcome[0], KafkaAccessRefused):
        raise outcome[0]
    return outcome[0]


async def _ask(servers: Sequence[str], auth: Mapping[str, Any], seconds: float) -> str | None:
    failures = []
    for server in servers:
        host, _, port = server.rpartition(":")
        try:
            conn = await asyncio.wait_for(
                create_conn(host.strip("[]"), int(port), request_timeout_ms=int(seconds * 1000), **auth),
                seconds,
            )
            try:
                await asyncio.wait_for(conn.send(MetadataRequest([])), seconds)
            finally:
                conn.close()
        # Whatever else the client raises means "not reachable yet"; the message is logged, scrubbed.
        except Exception as exc:
            refused = refusal(exc, auth.get("sasl_mechanism"))
            if refused is not None:
                raise refused from exc
            failures.append(f"{server}: {_describe(exc)}")
        else:
            return None
    return scrub("; ".join(failures))


def refusal(error: BaseException, mechanism: str | None = None) -> KafkaAccessRefused | None:
    """Return the `KafkaAccessRefused` that `error` (or its cause) amounts to; None when waiting may help.

    Args:
        error: what connecting raised.
        mechanism: the SASL mechanism the client asked for, named when the broker does not offer it.
    """
    for exc in _chain(error):
        if isinstance(exc, errors.UnsupportedSaslMechanismError):
            return KafkaAccessRefused(
                f"the Kafka broker does not offer SASL mechanism {mechanism} on this listener "
                "(check AVROFLOW_KAFKA_SASL_MECHANISM and AVROFLOW_KAFKA_BOOTSTRAP_SERVERS)"
            )
        if isinstance(exc, _SASL_REFUSALS):
            return KafkaAccessRefused(
                "the Kafka broker refused the SASL credentials (check AVROFLOW_KAFKA_SASL_USERNAME, "
                f"AVROFLOW_KAFKA_SASL_PASSWORD and AVROFLOW_KAFKA_SASL_MECHANISM): {_describe(exc)}"
            )
        if isinstance(exc, ssl.SSLCertVerificationError):
            return KafkaAccessRefused(
                "the Kafka broker's certificate is not trusted (check AVROFLOW_KAFKA_SSL_CAFILE): "
                f"{getattr(exc, 'verify_message', None) or exc}"
            )
        if isinstance(exc, ssl.SSLError) and exc.reason in _CLIENT_CERT_ALERTS:
            return KafkaAccessRefused(
                "the Kafka broker refused the client certificate (check AVROFLOW_KAFKA_SSL_CERTFILE and "
                f"AVROFLOW_KAFKA_SSL_KEYFILE: missing, or not signed by a CA the broker trusts): {exc.reason}"
            )
    return None


def _chain(error: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _describe(exc: BaseException) -> str:
    text = str(exc)  # aiokafka's errors name their class already
    described = text if type(exc).__name__ in text else f"{type(exc).__name__}: {text}"
    return scrub(described.strip().rstrip(":"))


__all__ = ["KafkaAccessRefused", "probe", "refusal", "wait_for_broker"]
