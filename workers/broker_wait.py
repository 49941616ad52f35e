"""Waiting for the Kafka broker before Faust starts.

Faust's producer gives up at once when it cannot bootstrap ("Unable to bootstrap from ..."), and the worker
exits 1: a worker started before its broker (a fresh cluster, a rolling restart, a network hiccup) would
crash-loop. `wait_for_broker` asks the broker for its metadata with the worker's own client settings
(addresses, TLS, SASL) until it answers, with jittered backoff and one log line per outage, or until
`stop` is set (SIGTERM while waiting exits 0). Once Faust runs, aiokafka itself reconnects and retries.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from aiokafka.client import AIOKafkaClient

from workers.deadletter import scrub
from workers.delivery import Backoff

log = logging.getLogger("avroflow.worker")


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
    """Return None when the broker answers a metadata request, else what went wrong."""
    failure: list[str] = []

    async def bootstrap() -> None:
        client = AIOKafkaClient(
            bootstrap_servers=list(servers), request_timeout_ms=int(timeout * 1000), **auth
        )
        try:
            await asyncio.wait_for(client.bootstrap(), timeout)
        finally:
            await client.close()

    def run() -> None:
        try:
            asyncio.run(bootstrap())
        # Whatever the client raises means "not reachable yet"; the message is logged, scrubbed.
        except Exception as exc:  # noqa: BLE001
            failure.append(f"{type(exc).__name__}: {exc}")

    # Its own thread and event loop: the main thread's loop is Faust's, created after this returns.
    thread = threading.Thread(target=run, name="broker-probe", daemon=True)
    thread.start()
    thread.join(timeout + 5)
    return failure[0] if failure else (None if not thread.is_alive() else "the probe did not finish")


__all__ = ["probe", "wait_for_broker"]
