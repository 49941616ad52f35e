"""Waiting for the Kafka broker before Faust starts, and watching it while the worker runs.

Faust's producer gives up at once when it cannot bootstrap ("Unable to bootstrap from ..."), and the worker
exits 1: a worker started before its broker (a fresh cluster, a rolling restart, a network hiccup) would
crash-loop. `wait_for_broker` asks the broker for its metadata with the worker's own client settings
(addresses, TLS, SASL) until it answers, with jittered backoff and one log line per outage, or until
`stop` is set (SIGTERM while waiting exits 0). Once Faust runs, aiokafka itself reconnects and retries.

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
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import aiokafka.errors as kafka_errors
from aiokafka.client import AIOKafkaClient
from aiokafka.protocol.transaction import InitProducerIdRequest

from workers.deadletter import scrub
from workers.delivery import Backoff
from workers.runtime import PreflightError
from workers.web import Readiness

log = logging.getLogger("avroflow.worker")

#: InitProducerId answers that mean "ask again shortly" (the coordinator is moving or loading).
_PRODUCER_ID_RETRIABLE = (
    kafka_errors.CoordinatorNotAvailableError,
    kafka_errors.NotCoordinatorError,
    kafka_errors.CoordinatorLoadInProgressError,
    kafka_errors.ConcurrentTransactions,
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
    """Return None when the broker answers a metadata request (and, when `idempotent`, gives out a
    producer id), else what went wrong.

    Raises:
        IdempotenceRefused: `idempotent` and the broker refused a producer id.
    """
    failure: list[str] = []
    refused: list[IdempotenceRefused] = []

    async def bootstrap() -> None:
        client = AIOKafkaClient(
            bootstrap_servers=list(servers), request_timeout_ms=int(timeout * 1000), **auth
        )
        try:
            await asyncio.wait_for(client.bootstrap(), timeout)
            if idempotent:
                await asyncio.wait_for(_init_producer_id(client), timeout)
        finally:
            await client.close()

    def run() -> None:
        try:
            asyncio.run(bootstrap())
        except IdempotenceRefused as exc:
            refused.append(exc)
        # Whatever the client raises means "not reachable yet"; the message is logged, scrubbed.
        except Exception as exc:  # noqa: BLE001
            failure.append(f"{type(exc).__name__}: {exc}")

    # Its own thread and event loop: the main thread's loop is Faust's, created after this returns.
    thread = threading.Thread(target=run, name="broker-probe", daemon=True)
    thread.start()
    thread.join(2 * timeout + 5)
    if refused:
        raise refused[0]
    return failure[0] if failure else (None if not thread.is_alive() else "the probe did not finish")


async def _init_producer_id(client: AIOKafkaClient) -> None:
    """Ask a broker for a producer id, as aiokafka's idempotent producer does before its first send.

    A coordinator that is still loading (a freshly started Kafka answers so for a moment) is asked again
    until the caller's timeout.
    """
    request = InitProducerIdRequest(transactional_id=None, transaction_timeout_ms=2**31 - 1)
    while True:
        try:
            answer = await client.send(client.get_random_node(), request)
        except kafka_errors.IncompatibleBrokerVersion as exc:
            raise _refused(f"{type(exc).__name__}: {exc}") from exc
        error = kafka_errors.for_code(answer.error_code)
        if error is kafka_errors.NoError:
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


__all__ = ["BrokerWatch", "IdempotenceRefused", "probe", "wait_for_broker"]
