"""The worker's settings as Faust's and aiokafka's: broker URLs, credentials per security protocol, timeouts.

`faust_settings` is what the worker's own `faust.App` is built with; a Faust user building their own app
for `workers.agents.Avroflow` may pass it too (``faust.App(name, **faust_settings(settings))``) or choose
their own. `kafka_auth` gives the same credentials to every aiokafka client the project makes itself (the
worker's broker probe and readiness watch, `produce`, `consume`, the demo).
"""

from __future__ import annotations

import os
import ssl
from typing import Any

import faust

from workers import logs
from workers.faust.credentials import aiokafka_auth
from workers.settings import Settings


def faust_credentials(settings: Settings) -> Any:
    """Return the `faust` credentials for the settings' security protocol (None for PLAINTEXT)."""
    protocol = settings.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return None
    context: ssl.SSLContext | None = None
    if settings.kafka_uses_ssl:
        cafile = settings.kafka_ssl_cafile
        context = ssl.create_default_context(cafile=os.fspath(cafile) if cafile else None)
        if settings.kafka_ssl_certfile and settings.kafka_ssl_keyfile:
            context.load_cert_chain(settings.kafka_ssl_certfile, settings.kafka_ssl_keyfile)
    if protocol == "SSL":
        return faust.SSLCredentials(context)
    password = settings.kafka_sasl_password
    return faust.SASLCredentials(
        username=settings.kafka_sasl_username,
        password=password.reveal() if password else None,
        ssl_context=context,
        mechanism=settings.kafka_sasl_mechanism,
    )


def kafka_auth(settings: Settings) -> dict[str, Any]:
    """Return the aiokafka security keyword arguments Faust's clients get from these settings."""
    return aiokafka_auth(faust_credentials(settings))


def faust_settings(settings: Settings) -> dict[str, Any]:
    """Return the keyword arguments for `faust.App` derived from the settings."""
    session = settings.kafka_session_timeout_seconds
    return {
        "broker": [f"kafka://{server}" for server in settings.kafka_bootstrap_servers],
        "broker_credentials": faust_credentials(settings),
        "store": "memory://",
        "autodiscover": False,
        "web_enabled": True,
        "web_bind": settings.web_host,
        "web_port": settings.web_port,
        "topic_partitions": settings.topic_partitions,
        "consumer_auto_offset_reset": "earliest",
        "broker_session_timeout": session,
        "broker_heartbeat_interval": min(3.0, session / 3),
        "broker_commit_interval": settings.kafka_commit_interval_seconds,
        # acks=all: an output is acknowledged (and its input committable) once every in-sync replica has
        # it, so a leader that dies right after the ack cannot take it along (Faust's default, kept explicit).
        "producer_acks": -1,
        "producer_linger": settings.kafka_producer_linger_seconds,
        "producer_max_batch_size": settings.kafka_producer_max_batch_size,
        # A send the broker never acknowledges fails after this long and is retried (Faust's default: 20 min).
        "producer_request_timeout": max(30.0, session),
        "stream_buffer_maxsize": max(4096, 2 * settings.batch_size),
        # On stop, commit what is acknowledged and cancel the agents; do not wait for the streams to drain:
        # a pipeline stuck on a transient failure would never drain. Its batch is never acked
        # (workers.faust.acks.claim), so the next owner of the partitions reads that batch again.
        "stream_wait_empty": False,
        "logging_config": logs.logging_config(settings.log_level, settings.log_format),
    }


__all__ = ["faust_credentials", "faust_settings", "kafka_auth"]
