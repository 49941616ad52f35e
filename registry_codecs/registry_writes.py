"""The schema-registry client's writes and checks: register, lookup, compatibility, config, ping.

`RegistryWrites` is a part of `RegistryClient` (its base class), kept in a module of its own so that the
client's reading side (caches, TTLs, unknown ids, references) and its writing side each stay readable.
It relies on the client's transport, its cache of registered ids, its latest-version table (a
registration makes the next read of "latest" refresh) and its reference resolution.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from registry_codecs.errors import RegistryError, SubjectNotFound, VersionNotFound
from registry_codecs.registry_answers import (
    compatibility_level,
    compatibility_verdict,
    field_of,
    parse_schema_answer,
    schema_body,
)
from registry_codecs.registry_cache import LatestEntry, LruCache
from registry_codecs.registry_http import Transport
from registry_codecs.registry_urls import quote_subject
from registry_codecs.schemas import RegisteredSchema, SchemaReference


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


class RegistryWrites:
    """Register, look up, check compatibility, read and set config, ping; see `RegistryClient`."""

    _http: Transport
    _registered: LruCache[tuple[Any, ...], int]
    _latest: dict[str, LatestEntry[RegisteredSchema]]

    def _resolved(self, schema: RegisteredSchema) -> RegisteredSchema:
        raise NotImplementedError  # RegistryClient resolves references

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
            "POST", f"/subjects/{quote_subject(subject)}/versions", endpoint="register", body=body
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
        answer = self._http.request(
            "POST", f"/subjects/{quote_subject(subject)}", endpoint="lookup", body=body
        )
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
        Karapace's 40402) for that case are read the same way. Apicurio's Confluent API differs
        (devstack/README.md, "Apicurio"): a verbose answer has no messages, and a subject that does not
        exist is answered as compatible.

        Raises:
            SubjectNotFound, VersionNotFound: a numbered version that does not exist.
            InvalidSchema: the candidate is not a valid schema.
            RegistryUnavailable: the registry could not answer.
        """
        path = f"/compatibility/subjects/{quote_subject(subject)}/versions/{version}"
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
                "GET",
                f"/config/{quote_subject(subject)}",
                endpoint="config",
                params={"defaultToGlobal": "true"},
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
        path = "/config" if subject is None else f"/config/{quote_subject(subject)}"
        body = {"compatibility": level.upper()}
        return compatibility_level(self._http.request("PUT", path, endpoint="config", body=body))

    def ping(self) -> None:
        """Check that a registry URL answers (one pass over the URLs, no backoff rounds).

        Raises:
            RegistryUnavailable: no URL answered.
            RegistryAuthError: the credentials were refused.
        """
        self._http.request("GET", "/config", endpoint="config", retries=0)


__all__ = ["CompatibilityResult", "RegistryWrites"]
