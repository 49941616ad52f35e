"""Prometheus counters for the codecs and the registry client.

`CodecMetrics.create(registry)` registers every metric on the `CollectorRegistry` it is given; nothing is
registered on the global registry at import time, so tests read values back from a fresh registry and an
application can create one set per process. Labels are low-cardinality (subject, reason, endpoint,
outcome, cache): never a schema id or an offset.
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram

#: The reasons an encode or decode can fail; each is a `reason` label value and a `CodecError.reason`.
FAILURE_REASONS = (
    "framing",
    "unknown_schema",
    "body_does_not_decode",
    "record_does_not_fit_schema",
    "registry_unavailable",
)


@dataclass(frozen=True, slots=True)
class CodecMetrics:
    """The metric families of registry_codecs. Build with :meth:`create`."""

    decode_failures: Counter
    encode_failures: Counter
    messages_decoded: Counter
    messages_encoded: Counter
    registry_requests: Counter
    registry_request_seconds: Histogram
    schema_cache_hits: Counter
    schema_cache_misses: Counter
    stale_schema_served: Counter

    @classmethod
    def create(cls, registry: CollectorRegistry, namespace: str = "avroflow") -> CodecMetrics:
        """Create and register the metrics on `registry`.

        Args:
            registry: where to register; pass a fresh `CollectorRegistry()` in tests.
            namespace: metric name prefix.
        """

        def counter(name: str, doc: str, labels: tuple[str, ...]) -> Counter:
            return Counter(name, doc, labels, namespace=namespace, registry=registry)

        return cls(
            decode_failures=counter(
                "decode_failures",
                "Messages that could not be decoded, by subject and reason",
                ("subject", "reason"),
            ),
            encode_failures=counter(
                "encode_failures",
                "Records that could not be encoded, by subject and reason",
                ("subject", "reason"),
            ),
            messages_decoded=counter("messages_decoded", "Messages decoded", ("subject",)),
            messages_encoded=counter("messages_encoded", "Records encoded", ("subject",)),
            registry_requests=counter(
                "registry_requests",
                "Schema-registry HTTP requests by endpoint and outcome (ok, not_found, client_error, "
                "server_error, unavailable)",
                ("endpoint", "outcome"),
            ),
            registry_request_seconds=Histogram(
                "registry_request_duration_seconds",
                "Schema-registry HTTP request latency in seconds, retries included",
                ("endpoint",),
                namespace=namespace,
                registry=registry,
            ),
            schema_cache_hits=counter("schema_cache_hits", "Schema cache hits", ("cache",)),
            schema_cache_misses=counter("schema_cache_misses", "Schema cache misses", ("cache",)),
            stale_schema_served=counter(
                "stale_schema_served",
                "Times a cached latest schema was served because its refresh failed",
                ("subject",),
            ),
        )


__all__ = ["FAILURE_REASONS", "CodecMetrics"]
