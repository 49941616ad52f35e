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
from workers import clients
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
    """The registry client of `workers.clients` (the worker's), answering an unknown id at once."""
    return clients.registry_client(settings, unknown_id_grace=0.0)


def kafka_options(settings: Settings) -> dict[str, Any]:
    """Return the keyword arguments aiokafka's producer and consumer take for connection and security."""
    return {
        "bootstrap_servers": list(settings.kafka_bootstrap_servers),
        "client_id": f"{settings.app_id}-cli",
        **kafka_security_options(settings),
    }


def kafka_security_options(settings: Settings) -> dict[str, Any]:
    """Return aiokafka's security keyword arguments: `workers.kafka_config.kafka_auth`, the worker's own."""
    from workers.kafka_config import kafka_auth  # imports Faust: only the commands that talk to Kafka

    return kafka_auth(settings)


__all__ = ["kafka_options", "kafka_security_options", "load_settings", "registry_client"]
