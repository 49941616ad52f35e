"""Clients for the command line: a registry client and aiokafka connection options from `Settings`.

The command-line tools (`schemas`, `produce`, `consume`, `demo`) read the same ``AVROFLOW_*`` variables as
the worker, so a shell that runs the worker can run them too. The `schemas` commands need no broker, so
they may run without ``AVROFLOW_KAFKA_BOOTSTRAP_SERVERS`` (see `load_settings`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from registry_codecs.registry import RegistryClient
from workers.settings import VARIABLES, Settings

#: Stands in for the bootstrap servers when a command never talks to Kafka; never connected to.
_NO_BROKER = "unused.invalid:9092"


def load_settings(
    environ: Mapping[str, str] | None = None,
    *,
    bootstrap_servers: str | None = None,
    registry_url: str | None = None,
    needs_broker: bool = True,
) -> Settings:
    """Read `Settings` from the environment, with command-line overrides applied first.

    Args:
        environ: the environment (the process environment by default).
        bootstrap_servers: overrides ``AVROFLOW_KAFKA_BOOTSTRAP_SERVERS`` when given.
        registry_url: overrides ``AVROFLOW_SCHEMA_REGISTRY_URL`` when given.
        needs_broker: False for commands that only talk to the registry; a missing bootstrap setting is
            then not an error.

    Raises:
        SettingsError: naming the variable that is missing or malformed.
    """
    env = dict(os.environ if environ is None else environ)
    if bootstrap_servers:
        env[VARIABLES["kafka_bootstrap_servers"]] = bootstrap_servers
    if registry_url:
        env[VARIABLES["schema_registry_urls"]] = registry_url
    if not needs_broker:
        env.setdefault(VARIABLES["kafka_bootstrap_servers"], _NO_BROKER)
    return Settings.from_env(env)


def registry_client(settings: Settings) -> RegistryClient:
    """Return a registry client configured with the settings' URLs, credentials and TLS files."""
    basic_auth = None
    if settings.schema_registry_username is not None and settings.schema_registry_password is not None:
        basic_auth = (settings.schema_registry_username, settings.schema_registry_password.reveal())
    token = settings.schema_registry_bearer_token
    return RegistryClient(
        list(settings.schema_registry_urls),
        basic_auth=basic_auth,
        bearer_token=token.reveal() if token is not None else None,
        ca_file=_str_or_none(settings.schema_registry_ca_file),
        cert_file=_str_or_none(settings.schema_registry_cert_file),
        key_file=_str_or_none(settings.schema_registry_key_file),
        read_timeout=settings.schema_registry_timeout_seconds,
        latest_ttl=settings.latest_schema_ttl_seconds,
    )


def kafka_options(settings: Settings) -> dict[str, Any]:
    """Return the keyword arguments aiokafka's producer and consumer take for connection and security."""
    return {
        "bootstrap_servers": list(settings.kafka_bootstrap_servers),
        "client_id": f"{settings.app_id}-cli",
        **kafka_security_options(settings),
    }


def kafka_security_options(settings: Settings) -> dict[str, Any]:
    """Return aiokafka's security keyword arguments (``security_protocol``, ``sasl_*``, ``ssl_context``)."""
    options: dict[str, Any] = {"security_protocol": settings.kafka_security_protocol}
    if settings.kafka_security_protocol.startswith("SASL_"):
        password = settings.kafka_sasl_password
        options.update(
            sasl_mechanism=settings.kafka_sasl_mechanism,
            sasl_plain_username=settings.kafka_sasl_username,
            sasl_plain_password=password.reveal() if password is not None else None,
        )
    if settings.kafka_uses_ssl:
        from aiokafka.helpers import create_ssl_context

        options["ssl_context"] = create_ssl_context(
            cafile=_str_or_none(settings.kafka_ssl_cafile),
            certfile=_str_or_none(settings.kafka_ssl_certfile),
            keyfile=_str_or_none(settings.kafka_ssl_keyfile),
        )
    return options


def _str_or_none(value: object | None) -> str | None:
    return None if value is None else str(value)


__all__ = ["kafka_options", "kafka_security_options", "load_settings", "registry_client"]
