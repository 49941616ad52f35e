"""A Confluent-compatible schema-registry client: Confluent Schema Registry, Karapace, Redpanda, Apicurio.

`RegistryClient` is the production `SchemaLookup`. The codecs call `get_schema(id)` and
`get_latest(subject)` once per message, so on a cache hit both are a dict lookup, a clock compare and a
counter: schemas by id and by (subject, version) are immutable and cached without expiry in bounded LRUs;
the latest version of a subject is cached for `latest_ttl` seconds so a newly registered version is seen
without a restart, and while the registry is unreachable the last good one keeps serving (counted in
`stale_schema_served`, logged once per outage). An unknown id is asked again with backoff for
`unknown_id_grace` seconds (a registry warming up answers "not found" for ids it has not loaded yet),
then the final answer is remembered for `negative_ttl` seconds (`registry_unknown`).
Schema references are resolved, dependencies first, into `RegisteredSchema.resolved_references`.
HTTP, retries and fail-over live in `registry_http`, URLs and credentials in `registry_urls`, reading
answers and errors in `registry_answers`, reference resolution in `registry_references`, the caches
in `registry_cache`, unknown ids in `registry_unknown`, and the writes and checks (register, lookup,
compatibility, config) in `registry_writes`.

Example::

    with RegistryClient("https://sr-1:8081,https://sr-2:8081", basic_auth=(user, password),
                        ca_file="/etc/ssl/registry-ca.pem", metrics=CodecMetrics.create(registry)) as sr:
        schema_id = sr.register("orders-value", schema_text)
        writer = sr.get_schema(schema_id)          # cached for good
        latest = sr.get_latest("orders-value")     # cached for latest_ttl seconds
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

from registry_codecs.errors import (
    RegistryError,
    RegistryUnavailable,
    SchemaNotFound,
    SubjectNotFound,
)
from registry_codecs.metrics import CodecMetrics
from registry_codecs.registry_answers import parse_schema_answer
from registry_codecs.registry_cache import LatestEntry, LruCache, SingleFlight
from registry_codecs.registry_http import NULL_METRIC, Incrementable, Transport
from registry_codecs.registry_references import resolve_references
from registry_codecs.registry_unknown import UnknownIds
from registry_codecs.registry_urls import build_session, parse_base_urls, quote_subject
from registry_codecs.registry_writes import CompatibilityResult, RegistryWrites
from registry_codecs.schemas import RegisteredSchema, SchemaLookup, SchemaReference

logger = logging.getLogger(__name__)


class RegistryClient(RegistryWrites):
    """Confluent-compatible schema-registry client with caches; thread-safe. See the module docstring.

    Args:
        urls: one base URL, several, or a comma-separated string of them; tried in order with fail-over.
            User info (``http://user:pass@host``) is that URL's basic auth.
        basic_auth: ``(user, password)`` for URLs without user info.
        bearer_token: sent as ``Authorization: Bearer`` (not together with basic auth).
        ca_file: CA bundle to verify the registry's certificate; cert_file/key_file: client certificate.
        connect_timeout, read_timeout: seconds, on every HTTP call.
        max_retries: extra rounds over all URLs after the first fails; backoff_base/backoff_max shape the
            jittered exponential pause between rounds.
        latest_ttl: seconds a subject's latest version is cached.
        negative_ttl: seconds an unknown schema id is remembered as unknown (a final answer only).
        unknown_id_grace: seconds from an id's first "not found" during which it is asked again, with
            backoff, before the answer is final; meanwhile `get_schema` raises the retriable
            `SchemaNotFoundYet`. A registry that has just restarted may not have loaded every id yet
            (see `registry_unknown`). 0, the default, makes every "not found" final at once.
        cache_size: entries in each bounded cache.
        metrics: where to count requests, latency and cache hits; None counts nothing.
        clock: monotonic clock for the TTLs (tests inject their own).
    """

    def __init__(
        self,
        urls: str | Sequence[str],
        *,
        basic_auth: tuple[str, str] | None = None,
        bearer_token: str | None = None,
        ca_file: str | None = None,
        cert_file: str | None = None,
        key_file: str | None = None,
        connect_timeout: float = 5.0,
        read_timeout: float = 10.0,
        max_retries: int = 3,
        backoff_base: float = 0.2,
        backoff_max: float = 5.0,
        latest_ttl: float = 30.0,
        negative_ttl: float = 5.0,
        unknown_id_grace: float = 0.0,
        cache_size: int = 1000,
        metrics: CodecMetrics | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        bases = parse_base_urls(urls, basic_auth, bearer_token)
        session = build_session(ca_file=ca_file, cert_file=cert_file, key_file=key_file)
        self._http = Transport(
            bases,
            session,
            timeout=(connect_timeout, read_timeout),
            max_retries=max_retries,
            backoff_base=backoff_base,
            backoff_max=backoff_max,
            metrics=metrics,
        )
        self._clock = clock
        self._latest_ttl = latest_ttl
        # After a failed refresh, serve the stale value this long before trying the registry again, so an
        # outage costs one retry budget per subject per interval rather than one per message.
        self._stale_retry = min(latest_ttl, 5.0)
        self._metrics = metrics
        self._by_id: LruCache[int, RegisteredSchema] = LruCache(cache_size)
        self._versions: LruCache[tuple[str, int], RegisteredSchema] = LruCache(cache_size)
        self._registered: LruCache[tuple[Any, ...], int] = LruCache(cache_size)
        self._unknown_ids = UnknownIds(
            grace=unknown_id_grace,
            negative_ttl=negative_ttl,
            backoff=(backoff_base, backoff_max),
            maxsize=cache_size,
            clock=clock,
            retried=metrics.registry_not_found_retries.labels("schema_by_id") if metrics else NULL_METRIC,
        )
        self._latest: dict[str, LatestEntry[RegisteredSchema]] = {}
        self._flights: SingleFlight[tuple[str, Any], Any] = SingleFlight()
        self._hit_by_id, self._miss_by_id = self._cache_counters("by_id")
        self._hit_latest, self._miss_latest = self._cache_counters("latest")

    def _cache_counters(self, cache: str) -> tuple[Incrementable, Incrementable]:
        # Bound once: `.labels()` per call would cost more than the cache lookup it counts.
        if self._metrics is None:
            return NULL_METRIC, NULL_METRIC
        return self._metrics.schema_cache_hits.labels(cache), self._metrics.schema_cache_misses.labels(cache)

    def __repr__(self) -> str:
        urls = [base.url for base in self._http.bases]
        auth = {type(b.auth).__name__ for b in self._http.bases if b.auth is not None}
        kind = "bearer" if "BearerAuth" in auth else "basic" if auth else None
        return f"RegistryClient(urls={urls!r}, auth={kind!r})"

    # ----- schemas by id ------------------------------------------------------------------------------

    def get_schema(self, schema_id: int) -> RegisteredSchema:
        """Return the schema with global id `schema_id`, references resolved (cached, never expires).

        Raises:
            SchemaNotFound: no such id (40403, or a plain 404), and `unknown_id_grace` is over;
                remembered for `negative_ttl` seconds.
            SchemaNotFoundYet: "no such id" within `unknown_id_grace`; retriable, ask again later.
            RegistryUnavailable: the registry could not answer; retry later.
        """
        schema = self._by_id.get(schema_id)
        if schema is not None:
            self._hit_by_id.inc()
            return schema
        self._miss_by_id.inc()
        result: RegisteredSchema = self._flights.run(("id", schema_id), lambda: self._load_by_id(schema_id))
        return result

    def _load_by_id(self, schema_id: int) -> RegisteredSchema:
        cached = self._by_id.get(schema_id)  # a flight that just finished may have stored it
        if cached is not None:
            return cached
        self._unknown_ids.check(schema_id)
        try:
            answer = self._http.request("GET", f"/schemas/ids/{int(schema_id)}", endpoint="schema_by_id")
        except SchemaNotFound as exc:
            verdict = self._unknown_ids.not_found(schema_id, exc)
            if verdict is exc:
                raise
            raise verdict from exc
        self._unknown_ids.found(schema_id)
        schema = self._resolved(parse_schema_answer(answer, "schema_by_id", schema_id=schema_id))
        self._by_id.put(schema_id, schema)
        return schema

    # ----- subjects and versions ----------------------------------------------------------------------

    def get_latest(self, subject: str) -> RegisteredSchema:
        """Return the latest version under `subject`, cached for `latest_ttl` seconds.

        When a refresh fails with `RegistryUnavailable`, the last good value is returned instead.

        Raises:
            SubjectNotFound: no such subject.
            RegistryUnavailable: the registry could not answer and nothing was cached.
        """
        entry = self._latest.get(subject)
        if entry is not None and self._clock() < entry.expires_at:
            self._hit_latest.inc()
            if entry.stale:
                self._count_stale(subject)
            return entry.value
        self._miss_latest.inc()
        fetched: LatestEntry[RegisteredSchema] = self._flights.run(
            ("latest", subject), lambda: self._refresh_latest(subject)
        )
        if fetched.stale:
            self._count_stale(subject)
        return fetched.value

    def _refresh_latest(self, subject: str) -> LatestEntry[RegisteredSchema]:
        previous = self._latest.get(subject)
        if previous is not None and previous.fresh_at(self._clock()):
            return previous  # refreshed (or marked stale) by the flight that finished just before this one
        try:
            schema = self._fetch_version(subject, "latest")
        except RegistryUnavailable as exc:
            if previous is None:
                raise
            if not previous.stale:  # once per outage per subject, not once per call
                logger.warning(
                    "registry unavailable, serving the cached latest schema subject=%s id=%s version=%s: %s",
                    subject,
                    previous.value.schema_id,
                    previous.value.version,
                    exc,
                    extra={"subject": subject, "schema_id": previous.value.schema_id},
                )
            entry = LatestEntry(previous.value, self._clock() + self._stale_retry, stale=True)
        except SubjectNotFound:
            self._latest.pop(subject, None)
            raise
        else:
            if previous is not None and previous.stale:
                logger.info("registry reachable again, latest schema refreshed subject=%s", subject)
            entry = LatestEntry(schema, self._clock() + self._latest_ttl)
        self._latest[subject] = entry
        return entry

    def _count_stale(self, subject: str) -> None:
        if self._metrics is not None:
            self._metrics.stale_schema_served.labels(subject).inc()

    def get_version(self, subject: str, version: int | Literal["latest"]) -> RegisteredSchema:
        """Return one version of `subject`; a numbered version is cached, ``"latest"`` is always fetched.

        Raises:
            SubjectNotFound, VersionNotFound: no such subject or version.
            RegistryUnavailable: the registry could not answer.
        """
        if version == "latest":
            schema = self._fetch_version(subject, "latest")
            self._latest[subject] = LatestEntry(schema, self._clock() + self._latest_ttl)
            return schema
        return self._resolved(self._raw_version(subject, version))

    def _raw_version(self, subject: str, version: int) -> RegisteredSchema:
        cached = self._versions.get((subject, version))
        if cached is not None:
            return cached
        path = f"/subjects/{quote_subject(subject)}/versions/{int(version)}"
        answer = self._http.request("GET", path, endpoint="subject_version")
        schema = parse_schema_answer(answer, "subject_version", subject=subject)
        if version > 0:  # -1 means "latest" to some registries, which is not immutable
            self._versions.put((subject, version), schema)
        return schema

    def _fetch_version(self, subject: str, version: Literal["latest"]) -> RegisteredSchema:
        path = f"/subjects/{quote_subject(subject)}/versions/{version}"
        raw = parse_schema_answer(
            self._http.request("GET", path, endpoint="subject_version"), "subject_version", subject=subject
        )
        if raw.version is not None:
            self._versions.put((subject, raw.version), raw)
        schema = self._resolved(raw)
        self._by_id.put(schema.schema_id, dataclasses.replace(schema, subject=None, version=None))
        return schema

    def get_subjects(self) -> list[str]:
        """Return every subject name. Raises RegistryUnavailable or RegistryError."""
        answer = self._http.request("GET", "/subjects", endpoint="subjects")
        if not isinstance(answer, list) or not all(isinstance(s, str) for s in answer):
            raise RegistryError("registry answer to subjects is not a list of names")
        return list(answer)

    def get_versions(self, subject: str) -> list[int]:
        """Return the version numbers under `subject`. Raises SubjectNotFound, RegistryUnavailable."""
        answer = self._http.request(
            "GET", f"/subjects/{quote_subject(subject)}/versions", endpoint="versions"
        )
        if not isinstance(answer, list) or not all(type(v) is int for v in answer):
            raise RegistryError("registry answer to versions is not a list of numbers")
        return list(answer)

    # ----- references ---------------------------------------------------------------------------------

    def _resolved(self, schema: RegisteredSchema) -> RegisteredSchema:
        if not schema.references:
            return schema
        resolved = resolve_references(schema.references, self._fetch_reference)
        return dataclasses.replace(schema, resolved_references=resolved)

    def _fetch_reference(self, ref: SchemaReference) -> RegisteredSchema:
        # Version -1 means "latest" to some registries; every other version is immutable and cached.
        if ref.version > 0:
            return self._raw_version(ref.subject, ref.version)
        return self._fetch_version(ref.subject, "latest")

    def close(self) -> None:
        """Release pooled connections. The caches stay usable; HTTP calls afterwards reopen connections."""
        self._http.close()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


if TYPE_CHECKING:
    _IS_A_SCHEMA_LOOKUP: type[SchemaLookup] = RegistryClient  # mypy proves the protocol is implemented

__all__ = ["CompatibilityResult", "RegistryClient"]
