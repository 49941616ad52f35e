"""Waiting for the Kafka broker before Faust starts, refusing to start when waiting cannot help, and
watching the broker while the worker runs.

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

With the idempotent producer on (the default), the probe also asks for a producer id (``InitProducerId``,
what aiokafka's idempotent producer sends before its first record). A broker that answers but refuses it
(Tansu answers ``UnknownError``; brokers before Kafka 0.11 do not know the request) stops the start with
`IdempotenceRefused`, naming ``AVROFLOW_KAFKA_IDEMPOTENT_PRODUCER``: otherwise aiokafka would wait for a
producer id forever and no record would ever be sent.

`BrokerWatch` then asks the brokers for their metadata every few seconds, with a client of its own built
from the same settings (public aiokafka API, no reach into Faust's clients), and tells `Readiness` when
they answered: /readyz turns not ready once they have not for ``AVROFLOW_READINESS_BROKER_TIMEOUT_SECONDS``.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Final

from aiokafka import errors
from aiokafka.client import AIOKafkaClient
from aiokafka.conn import create_conn
from aiokafka.protocol.metadata import MetadataRequest
from aiokafka.protocol.transaction import InitProducerIdRequest

from workers.deadletter import scrub
from workers.delivery import Backoff
from workers.runtime import PreflightError
from workers.web import Readiness

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


#: InitProducerId answers that mean "ask again shortly" (the coordinator is moving or loading).
_PRODUCER_ID_RETRIABLE = (
    errors.CoordinatorNotAvailableError,
    errors.NotCoordinatorError,
    errors.CoordinatorLoadInProgressError,
    errors.ConcurrentTransactions,
)


class IdempotenceRefused(PreflightError):
    """The broker answers but will not give the idempotent producer a producer id."""


def wait_for_broker(
    servers: Sequence[str],
    auth: Mapping[str, Any],
    stop: threading.Event,
    backoff: Backoff,
    timeout: float = 10.0,
    *,
    idempotent: bool = False,
) -> bool:
    """Block until the broker answers a metadata request; return False when `stop` was set first.

    Args:
        servers: the bootstrap ``host:port`` addresses.
        auth: aiokafka security keyword arguments (``security_protocol``, ``ssl_context``, ``sasl_*``).
        stop: set by SIGTERM/SIGINT while waiting.
        backoff: delays between attempts.
        timeout: seconds one attempt may take.
        idempotent: also check that the broker gives out producer ids (``InitProducerId``).

    Raises:
        KafkaAccessRefused: the credentials or a certificate were refused (see `probe`).
        IdempotenceRefused: `idempotent` and the broker refused a producer id.
    """
    attempt = 0
    while not stop.is_set():
        error = probe(servers, auth, timeout, idempotent=idempotent)
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


def probe(
    servers: Sequence[str], auth: Mapping[str, Any], timeout: float, *, idempotent: bool = False
) -> str | None:
    """Ask the bootstrap servers, in order, for metadata until one answers (and, when `idempotent`, ask
    for a producer id).

    Returns:
        None when a broker answered, else what went wrong with each server (scrubbed of credentials).

    Raises:
        KafkaAccessRefused: a broker refused the SASL credentials or the client certificate, or its
            certificate is not trusted.
        IdempotenceRefused: `idempotent` and the broker refused a producer id.
    """
    outcome: list[str | KafkaAccessRefused | IdempotenceRefused | None] = []

    async def ask() -> str | None:
        failed = await _ask(servers, auth, timeout)
        if failed is None and idempotent:
            return await _producer_id(servers, auth, timeout)
        return failed

    def run() -> None:
        try:
            outcome.append(asyncio.run(ask()))
        except (KafkaAccessRefused, IdempotenceRefused) as exc:
            outcome.append(exc)

    # Its own thread and event loop: the main thread's loop is Faust's, created after this returns.
    thread = threading.Thread(target=run, name="broker-probe", daemon=True)
    thread.start()
    thread.join((len(servers) + 2) * timeout + 5)
    if not outcome:
        return "the probe did not finish"
    if isinstance(outcome[0], KafkaAccessRefused | IdempotenceRefused):
        raise outcome[0]
    return outcome[0]


async def _producer_id(servers: Sequence[str], auth: Mapping[str, Any], seconds: float) -> str | None:
    client = AIOKafkaClient(bootstrap_servers=list(servers), request_timeout_ms=int(seconds * 1000), **auth)
    try:
        await asyncio.wait_for(client.bootstrap(), seconds)
        await asyncio.wait_for(_init_producer_id(client), seconds)
    except IdempotenceRefused:
        raise
    # Whatever else the client raises means "not reachable yet"; the message is logged, scrubbed.
    except Exception as exc:  # noqa: BLE001
        return scrub(_describe(exc))
    finally:
        await client.close()
    return None


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


async def _init_producer_id(client: AIOKafkaClient) -> None:
    """Ask a broker for a producer id, as aiokafka's idempotent producer does before its first send.

    A coordinator that is still loading (a freshly started Kafka answers so for a moment) is asked again
    until the caller's timeout.
    """
    request = InitProducerIdRequest(transactional_id=None, transaction_timeout_ms=2**31 - 1)
    while True:
        try:
            answer = await client.send(client.get_random_node(), request)
        except errors.IncompatibleBrokerVersion as exc:
            raise _refused(f"{type(exc).__name__}: {exc}") from exc
        error = errors.for_code(answer.error_code)
        if error is errors.NoError:
            return
        if not issubclass(error, _PRODUCER_ID_RETRIABLE):
            raise _refused(error.__name__)
        await asyncio.sleep(0.1)


def _refused(answer: str) -> IdempotenceRefused:
    return IdempotenceRefused(
        f"the Kafka broker refuses the idempotent producer a producer id (InitProducerId: {answer}); "
        "set AVROFLOW_KAFKA_IDEMPOTENT_PRODUCER=false for a broker without it (a retried send may then "
        "be written twice or out of order)"
    )


class BrokerWatch:
    """Asks the brokers for their metadata every `interval` seconds and reports to `readiness`.

    Args:
        servers: the bootstrap ``host:port`` addresses.
        auth: aiokafka security keyword arguments (as for `wait_for_broker`).
        readiness: told `broker_ok` after each answer and `broker_failed` after each failure.
        interval: seconds between checks, and how long one check may take.
    """

    def __init__(
        self, servers: Sequence[str], auth: Mapping[str, Any], readiness: Readiness, interval: float
    ) -> None:
        self._servers = list(servers)
        self._auth = dict(auth)
        self._readiness = readiness
        self.interval = interval
        self._client: AIOKafkaClient | None = None

    @staticmethod
    def interval_for(timeout: float) -> float:
        """The check interval for a readiness timeout: three checks per timeout, at most one per 5 s."""
        return min(5.0, timeout / 3)

    async def check(self) -> None:
        """Ask for metadata once (bootstrapping the client first when it has none) and report."""
        try:
            if self._client is None:
                client = AIOKafkaClient(
                    bootstrap_servers=self._servers,
                    request_timeout_ms=int(self.interval * 1000),
                    **self._auth,
                )
                try:
                    await asyncio.wait_for(client.bootstrap(), self.interval)
                except BaseException:
                    await client.close()
                    raise
                self._client = client
            await asyncio.wait_for(self._client.fetch_all_metadata(), self.interval)
        # Whatever the client raises means "no answer"; the message is shown on /readyz, scrubbed.
        except Exception as exc:  # noqa: BLE001
            self._readiness.broker_failed(scrub(f"{type(exc).__name__}: {exc}"))
        else:
            self._readiness.broker_ok()
        self._readiness.observe()

    async def run(self) -> None:
        """Check now and every `interval` until cancelled (the worker stopping); then close the client."""
        try:
            while True:
                await self.check()
                await asyncio.sleep(self.interval)
        finally:
            if self._client is not None:
                await self._client.close()


__all__ = ["BrokerWatch", "IdempotenceRefused", "KafkaAccessRefused", "probe", "refusal", "wait_for_broker"]
