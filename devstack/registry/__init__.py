"""A Confluent-compatible schema registry for tests and local runs (not for production).

It speaks enough of Confluent's REST API that Confluent's own client cannot tell the difference: global
schema ids, subjects and versions, soft and permanent deletes, compatibility levels checked with the Avro
specification's schema-resolution rules, optional persistence, basic auth, bearer tokens and TLS.
Run it with ``python -m devstack.registry`` or manage it from Python with :class:`RegistryProcess`.
"""

from __future__ import annotations

from devstack.registry.process import RegistryProcess, RegistryStartError

__all__ = ["RegistryProcess", "RegistryStartError"]
