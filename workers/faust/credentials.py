"""Faust's credentials as aiokafka's keyword arguments, with Faust's own (internal) conversion.

`aiokafka_auth` turns the `faust.SSLCredentials` / `faust.SASLCredentials` the worker builds
(`workers.kafka_config.faust_credentials`) into aiokafka's keyword arguments with
``credentials_to_aiokafka_auth``, a function internal to Faust's aiokafka driver and checked at start by
`workers.faust.compat`, so the worker's own connections (the start's broker probe, the readiness watch,
the command line's clients) use exactly what Faust's consumer and producer use.
"""

from __future__ import annotations

from typing import Any

from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth


def aiokafka_auth(credentials: Any) -> dict[str, Any]:
    """Return the aiokafka security keyword arguments for Faust `credentials` (None for PLAINTEXT)."""
    return dict(credentials_to_aiokafka_auth(credentials))


__all__ = ["aiokafka_auth"]
