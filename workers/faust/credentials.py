"""The worker's Kafka security settings as Faust credentials, and as the aiokafka arguments Faust makes.

`broker_credentials` builds Faust's public `SSLCredentials` / `SASLCredentials` from the settings.
`aiokafka_auth` turns them into aiokafka's keyword arguments with Faust's own function
(``credentials_to_aiokafka_auth``, internal to Faust's aiokafka driver and checked at start by
`workers.faust.compat`), so the worker's own connections (the start's broker probe, the readiness
watch) use exactly what Faust's consumer and producer use.
"""

from __future__ import annotations

import os
import ssl
from typing import Any

import faust
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

from workers.settings import Settings


def broker_credentials(settings: Settings) -> Any:
    """Return Faust's ``broker_credentials`` for the settings (None for PLAINTEXT)."""
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


def aiokafka_auth(settings: Settings) -> dict[str, Any]:
    """Return the aiokafka security keyword arguments Faust's clients get from these settings."""
    return dict(credentials_to_aiokafka_auth(broker_credentials(settings)))


__all__ = ["aiokafka_auth", "broker_credentials"]
