"""A Confluent-compatible schema-registry client: Confluent Schema Registry, Karapace, Redpanda, Apicurio.

`RegistryClient` is the production `SchemaLookup`. The codecs call `get_schema(id)` and
`get_latest(subject)` once per message, so on a cache hit both are a dict lookup, a clock compare and a
counter: schemas by id and by (subject, version) are immutable and cached without expiry in bounded LRUs;
the latest version of a subject is cached for `latest_ttl` seconds so a newly registered version is seen
without a restart, and while the registry is unreachable the last good one keeps serving (counted in
`stale_schema_served`, logged once per outage). Unknown ids are remembered for `negative_ttl` seconds.
Schema references are resolved, dependencies first, into `RegisteredSchema.resolved_references`.
HTTP, retries and fail-over live in `registry_http`, URLs and credentials in `registry_urls`, reading
answers and errors in `registry_answers`, reference resolution in `registry_references`, the caches
in `registry_cache`.

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
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import quote

from registry_codecs.errors import (
    RegistryError,
    RegistryUnavailable,
    SchemaNotFound,
    SubjectNotFound,
    VersionNotFound,
)
from registry_codecs.metrics import CodecMetrics
from registry_codecs.registry_answers import (
    compatibility_level,
    compatibility_verdict,
    field_of,
    parse_schema_answer,
    schema_body,
)
from registry_codecs.registry_cache import ExpiringCache, LatestEntry, LruCache, SingleFlight
from registry_codecs.registry_http import NULL_METRIC, Incrementable, Transport
from registry_codecs.registry_references import resolve_references
from registry_codecs.registry_urls import build_session, parse_base_urls
from registry_codecs.schemas import RegisteredSchema, SchemaLookup, SchemaReference

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CompatibilityResult:
    """The registry's verdict on a candidate schema; truthy when compatible.

    Attributes:
        is_compatible: whether the schema may be registered under the subject.
        messages: the reasons it is not (only filled when asked for with ``verbose=True``).
    """

    is_compatible: bool
    messages: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return self.is_compatible


def _q(subject: str) -> str:
    # Subjects may hold "/", ":" or spaces (record-name strategies); all must stay one path segment.
    return quote(subject, safe="")


class RegistryClient:
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
        negative_ttl: seconds an unknown schema id is remembered as unknown.
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
        self._negative_ttl = negative_ttl
        # After a failed refresh, serve the stale value this long before trying the registry again, so an
        # outage costs one retry budget per subject per interval rather than one per message.
        self._stale_retry = min(latest_ttl, 5.0)
        self._metrics = metrics
        self._by_id: LruCache[int, RegisteredSchema] = LruCache(cache_size)
        self._versions: LruCache[tuple[str, int], RegisteredSchema] = LruCache(cache_size)
        self._registered: LruCache[tuple[Any, ...], int] = LruCache(cache_size)
        self._unknown_ids: ExpiringCache[int, SchemaNotFound] = ExpiringCache(cache_size, clock)
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
            SchemaNotFound: no such id (40403, or a plain 404); remembered for `negative_ttl` seconds.
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
        unknown = self._unknown_ids.get(schema_id)
        if unknown is not None:
            raise SchemaNotFound(
                str(unknown.args[0]), status_code=unknown.status_code, error_code=unknown.error_code
            )
        try:
            answer = self._http.request("GET", f"/schemas/ids/{int(schema_id)}", endpoint="schema_by_id")
        except SchemaNotFound as exc:
            self._unknown_ids.put(schema_id, exc, self._negative_ttl)
            raise
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
        path = f"/subjects/{_q(subject)}/versions/{int(version)}"
        answer = self._http.request("GET", path, endpoint="subject_version")
        schema = parse_schema_answer(answer, "subject_version", subject=subject)
        if version > 0:  # -1 means "latest" to some registries, which is not immutable
            self._versions.put((subject, version), schema)
        return schema

    def _fetch_version(self, subject: str, version: Literal["latest"]) -> RegisteredSchema:
        path = f"/subjects/{_q(subject)}/versions/{version}"
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
        answer = self._http.request("GET", f"/subjects/{_q(subject)}/versions", endpoint="versions")
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

    # ----- writes and checks --------------------------------------------------------------------------

    def register(
        self,
        subject: str,
        schema_str: str,
        schema_type: str = "AVRO",
        references: Sequence[SchemaReference] = (),
    ) -> int:
        """Register `schema_str` under `subject` (idempotent) and return its global id (cached).

        Raises:
            IncompatibleSchema: it breaks the subject's compatibility level (409).
            InvalidSchema: the registry refused the schema text (42201, 422).
            RegistryUnavailable: the registry could not answer.
        """
        key = (subject, schema_str, schema_type.upper(), tuple(references))
        known = self._registered.get(key)
        if known is not None:
            return known
        body = schema_body(schema_str, schema_type, references)
        answer = self._http.request(
            "POST", f"/subjects/{_q(subject)}/versions", endpoint="register", body=body
        )
        schema_id: int = field_of(answer, "id", int, "register")
        self._registered.put(key, schema_id)
        previous = self._latest.get(subject)
        if previous is not None:  # a new version may now be the latest: refresh on the next read
            self._latest[subject] = LatestEntry(previous.value, float("-inf"), previous.stale)
        return schema_id

    def lookup(
        self,
        subject: str,
        schema_str: str,
        schema_type: str = "AVRO",
        references: Sequence[SchemaReference] = (),
    ) -> RegisteredSchema:
        """Find `schema_str` among the versions of `subject` (not cached).

        The schema found is the one asked about: when the registry's answer leaves out the references
        (some do), the ones given here are kept, and resolved.

        Raises:
            SubjectNotFound: no such subject (40401).
            SchemaNotFound: the subject exists but does not hold this schema (40403).
            RegistryUnavailable: the registry could not answer.
        """
        body = schema_body(schema_str, schema_type, references)
        answer = self._http.request("POST", f"/subjects/{_q(subject)}", endpoint="lookup", body=body)
        found = parse_schema_answer(answer, "lookup", subject=subject)
        if references and not found.references:
            found = dataclasses.replace(found, references=tuple(references))
        return self._resolved(found)

    def test_compatibility(
        self,
        subject: str,
        schema_str: str,
        version: int | Literal["latest"] = "latest",
        schema_type: str = "AVRO",
        references: Sequence[SchemaReference] = (),
        verbose: bool = False,
    ) -> CompatibilityResult:
        """Ask whether `schema_str` could be registered under `subject`, checked against `version`.

        Against ``"latest"`` of a subject that does not exist the answer is compatible, as Confluent
        Schema Registry 7.x answers (nothing registered can conflict); older registries' 40401 (and
        Karapace's 40402) for that case are read the same way.

        Raises:
            SubjectNotFound, VersionNotFound: a numbered version that does not exist.
            InvalidSchema: the candidate is not a valid schema.
            RegistryUnavailable: the registry could not answer.
        """
        path = f"/compatibility/subjects/{_q(subject)}/versions/{version}"
        try:
            answer = self._http.request(
                "POST",
                path,
                endpoint="compatibility",
                body=schema_body(schema_str, schema_type, references),
                params={"verbose": "true" if verbose else "false"},
            )
        except (SubjectNotFound, VersionNotFound):
            if version != "latest":
                raise
            return CompatibilityResult(True)
        return CompatibilityResult(*compatibility_verdict(answer))

    def get_compatibility(self, subject: str | None = None) -> str:
        """Return the compatibility level in force: global, or for `subject` (falling back to global).

        Raises:
            RegistryUnavailable: the registry could not answer.
        """
        if subject is None:
            return compatibility_level(self._http.request("GET", "/config", endpoint="config"))
        try:
            answer = self._http.request(
                "GET", f"/config/{_q(subject)}", endpoint="config", params={"defaultToGlobal": "true"}
            )
        except RegistryError as exc:
            # 40408 "no subject-level config", or an older registry's 404 for it: the global level rules.
            if exc.status_code != 404:
                raise
            answer = self._http.request("GET", "/config", endpoint="config")
        return compatibility_level(answer)

    def set_compatibility(self, level: str, subject: str | None = None) -> str:
        """Set the compatibility level globally or for `subject`; return the level the registry stored.

        Raises:
            InvalidSchema: the registry rejected the level (42203).
            RegistryUnavailable: the registry could not answer.
        """
        path = "/config" if subject is None else f"/config/{_q(subject)}"
        body = {"compatibility": level.upper()}
        return compatibility_level(self._http.request("PUT", path, endpoint="config", body=body))

    def ping(self) -> None:
        """Check that a registry URL answers (one pass over the URLs, no backoff rounds).

        Raises:
            RegistryUnavailable: no URL answered.
            RegistryAuthError: the credentials were refused.
        """
        self._http.request("GET", "/config", endpoint="config", retries=0)

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
