"""The one factory of the clients the worker and the command line make from `Settings`.

`registry_client` builds the schema-registry client (URLs, basic auth or bearer token, TLS files, connect
and read timeouts, the latest-schema TTL, the unknown-id grace). The Kafka side is
`workers.kafka_config`: `faust_credentials` for Faust's clients and `kafka_auth` for every aiokafka
client the project makes itself (the worker's broker probe and watch, `produce`, `consume`, the demo),
derived from the same credentials so they cannot disagree. Nothing here imports Faust, so the `schemas`
commands stay quick.
"""

from __future__ import annotations

import os

from registry_codecs import CodecMetrics, RegistryClient
from workers.settings import Settings


def registry_client(
    settings: Settings, metrics: CodecMetrics | None = None, *, unknown_id_grace: float | None = None
) -> RegistryClient:
    """Return a `RegistryClient` configured from the settings.

    Args:
        settings: URLs, credentials, TLS files, timeouts and TTLs.
        metrics: the codec metrics to count requests in (the worker's), or None.
        unknown_id_grace: how long an unknown schema id is asked for again (default: the settings'
            ``AVROFLOW_SCHEMA_NOT_FOUND_RETRY_SECONDS``; the console tools pass 0 to answer at once).
    """
    username = settings.schema_registry_username
    password = settings.schema_registry_password
    token = settings.schema_registry_bearer_token

    def path(value: os.PathLike[str] | None) -> str | None:
        return os.fspath(value) if value is not None else None

    grace = settings.schema_not_found_retry_seconds if unknown_id_grace is None else unknown_id_grace
    return RegistryClient(
        list(settings.schema_registry_urls),
        basic_auth=(username, password.reveal() if password else "") if username else None,
        bearer_token=token.reveal() if token else None,
        ca_file=path(settings.schema_registry_ca_file),
        cert_file=path(settings.schema_registry_cert_file),
        key_file=path(settings.schema_registry_key_file),
        connect_timeout=min(5.0, settings.schema_registry_timeout_seconds),
        read_timeout=settings.schema_registry_timeout_seconds,
        latest_ttl=settings.latest_schema_ttl_seconds,
        unknown_id_grace=grace,
        metrics=metrics,
    )


__all__ = ["registry_client"]
