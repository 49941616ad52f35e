"""Confluent's REST API on top of the store: routing and the request handlers, free of HTTP plumbing.

`RegistryApi.handle(method, path, query, body)` answers ``(status, payload)``; the HTTP layer only parses the
request and writes the answer, so every route here is reachable from a test without a socket. Unknown paths
answer 404 and known paths with the wrong method 405, both in Confluent's error body.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from devstack.registry import compatibility
from devstack.registry.contracts import contract_from_body, with_contract
from devstack.registry.errors import ApiError, invalid_version, schema_not_found, version_not_found
from devstack.registry.schemas import (
    SCHEMA_TYPES,
    SchemaDoc,
    parse_avro,
    prepare_schema,
    references_from_json,
)
from devstack.registry.store import LEVELS, RegistryStore, VersionEntry
from devstack.registry.warmup import WarmUp

__all__ = ["RawText", "RegistryApi", "Request"]

_MAX_VERSION = 2**31 - 1


@dataclass(frozen=True, slots=True)
class Request:
    """A parsed request: path parameters (URL-decoded), query (last value wins) and JSON body."""

    params: tuple[str, ...]
    query: Mapping[str, str]
    body: Any

    def flag(self, name: str) -> bool:
        """A boolean query parameter (clients send true, True, false, False)."""
        return self.query.get(name, "false").strip().lower() == "true"


Handler = Callable[[Request], tuple[int, Any]]


class RegistryApi:
    """Routes Confluent Schema Registry requests to the store.

    Args:
        store: The registry state.
        warmup: Answers as a registry that has not reloaded its store yet, while it lasts.
    """

    def __init__(self, store: RegistryStore, warmup: WarmUp | None = None) -> None:
        self.store = store
        self.warmup = warmup
        seg = r"([^/]+)"
        self._routes: list[tuple[re.Pattern[str], dict[str, Handler]]] = [
            (re.compile(r"/?"), {"GET": lambda r: (200, {})}),
            (re.compile(r"/subjects"), {"GET": self._list_subjects}),
            (re.compile(rf"/subjects/{seg}"), {"POST": self._lookup, "DELETE": self._delete_subject}),
            (re.compile(rf"/subjects/{seg}/versions"), {"GET": self._list_versions, "POST": self._register}),
            (
                re.compile(rf"/subjects/{seg}/versions/{seg}"),
                {"GET": self._get_version, "DELETE": self._delete_version},
            ),
            (re.compile(rf"/subjects/{seg}/versions/{seg}/schema"), {"GET": self._get_version_schema}),
            (re.compile(rf"/subjects/{seg}/versions/{seg}/referencedby"), {"GET": self._referenced_by}),
            (re.compile(r"/schemas/types"), {"GET": lambda r: (200, list(SCHEMA_TYPES))}),
            (re.compile(rf"/schemas/ids/{seg}"), {"GET": self._get_schema}),
            (re.compile(rf"/schemas/ids/{seg}/schema"), {"GET": self._get_raw_schema}),
            (re.compile(rf"/schemas/ids/{seg}/versions"), {"GET": self._schema_versions}),
            (re.compile(rf"/schemas/ids/{seg}/subjects"), {"GET": self._schema_subjects}),
            (
                re.compile(r"/config"),
                {"GET": self._get_config, "PUT": self._put_config, "DELETE": self._del_config},
            ),
            (
                re.compile(rf"/config/{seg}"),
                {"GET": self._get_config, "PUT": self._put_config, "DELETE": self._del_config},
            ),
            (re.compile(rf"/compatibility/subjects/{seg}/versions"), {"POST": self._test_against_all}),
            (re.compile(rf"/compatibility/subjects/{seg}/versions/{seg}"), {"POST": self._test_against_one}),
            (re.compile(r"/mode"), {"GET": lambda r: (200, {"mode": "READWRITE"})}),
            (re.compile(rf"/mode/{seg}"), {"GET": lambda r: (200, {"mode": "READWRITE"})}),
        ]

    def handle(self, method: str, path: str, query: Mapping[str, str], body: Any) -> tuple[int, Any]:
        """Answer one request with ``(status, JSON payload)``; refusals are raised as ApiError.

        Raises:
            ApiError: Any refusal, with Confluent's status and error code.
        """
        path = path.rstrip("/") or "/"
        if self.warmup is not None:
            early = self.warmup.answer(method, path)
            if early is not None:
                return early
        for pattern, methods in self._routes:
            match = pattern.fullmatch(path)
            if match is None:
                continue
            handler = methods.get(method)
            if handler is None:
                raise ApiError(405, 405, f"HTTP {method} is not supported on {path}")
            params = tuple(urllib.parse.unquote(p) for p in match.groups())
            return handler(Request(params, query, body))
        raise ApiError(404, 404, "HTTP 404 Not Found")

    # -- subjects and versions ---------------------------------------------------------------------------

    def _list_subjects(self, req: Request) -> tuple[int, Any]:
        names = self.store.subjects(
            include_deleted=req.flag("deleted"), deleted_only=req.flag("deleted_only")
        )
        prefix = req.query.get("subjectPrefix", "")
        return 200, _page([n for n in names if n.startswith(prefix)], req)

    def _list_versions(self, req: Request) -> tuple[int, Any]:
        (subject,) = req.params
        entries = self.store.versions(
            subject, include_deleted=req.flag("deleted") or req.flag("deleted_only")
        )
        if req.flag("deleted_only"):
            entries = [e for e in entries if e.deleted]
        return 200, _page([e.version for e in entries], req)

    def _register(self, req: Request) -> tuple[int, Any]:
        (subject,) = req.params
        doc = self._schema_from_body(req.body)
        contract = contract_from_body(req.body)
        with self.store.lock:
            # As Confluent: what the body does not say about the contract is the latest version's.
            doc = with_contract(doc, contract, self.store.latest_doc(subject))
            existing = self.store.find(subject, doc)
            if existing is not None:
                return 200, {"id": existing.schema_id}
            problems = self._problems(self.store.effective_level(subject), doc, self._against(subject))
            if problems:
                raise ApiError(
                    409,
                    409,
                    f"Schema being registered is incompatible with an earlier schema for subject "
                    f'"{subject}", details: [{"; ".join(problems)}]',
                )
            entry = self.store.add_version(subject, doc)
        return 200, {"id": entry.schema_id}

    def _lookup(self, req: Request) -> tuple[int, Any]:
        (subject,) = req.params
        doc = self._schema_from_body(req.body)
        contract = contract_from_body(req.body)
        deleted = req.flag("deleted")
        with self.store.lock:
            self.store.versions(subject, include_deleted=deleted)  # 40401 when the subject is unknown
            entry = self.store.find(subject, with_contract(doc, contract), include_deleted=deleted)
            if entry is None and not contract.given:  # no contract sent: the schema with any contract
                entry = self.store.find_schema(subject, doc, include_deleted=deleted)
            if entry is None:
                raise schema_not_found()
            return 200, self._version_body(entry)

    def _get_version(self, req: Request) -> tuple[int, Any]:
        subject, version = req.params
        entry = self.store.version(subject, _parse_version(version), include_deleted=req.flag("deleted"))
        return 200, self._version_body(entry)

    def _get_version_schema(self, req: Request) -> tuple[int, Any]:
        subject, version = req.params
        entry = self.store.version(subject, _parse_version(version), include_deleted=req.flag("deleted"))
        return 200, RawText(self.store.schema(entry.schema_id).text)

    def _referenced_by(self, req: Request) -> tuple[int, Any]:
        subject, version = req.params
        entry = self.store.version(subject, _parse_version(version))
        return 200, self.store.referenced_by(subject, entry.version)

    def _delete_subject(self, req: Request) -> tuple[int, Any]:
        (subject,) = req.params
        return 200, self.store.delete_subject(subject, permanent=req.flag("permanent"))

    def _delete_version(self, req: Request) -> tuple[int, Any]:
        subject, version = req.params
        return 200, self.store.delete_version(
            subject, _parse_version(version), permanent=req.flag("permanent")
        )

    # -- schemas by id -----------------------------------------------------------------------------------

    def _get_schema(self, req: Request) -> tuple[int, Any]:
        return 200, self.store.schema(_parse_id(req.params[0])).to_json()

    def _get_raw_schema(self, req: Request) -> tuple[int, Any]:
        return 200, RawText(self.store.schema(_parse_id(req.params[0])).text)

    def _schema_versions(self, req: Request) -> tuple[int, Any]:
        schema_id = _parse_id(req.params[0])
        with self.store.lock:
            self.store.schema(schema_id)
            entries = self.store.usages(schema_id, include_deleted=req.flag("deleted"))
        return 200, [{"subject": e.subject, "version": e.version} for e in entries]

    def _schema_subjects(self, req: Request) -> tuple[int, Any]:
        schema_id = _parse_id(req.params[0])
        with self.store.lock:
            self.store.schema(schema_id)
            entries = self.store.usages(schema_id, include_deleted=req.flag("deleted"))
        return 200, sorted({e.subject for e in entries})

    # -- configuration -----------------------------------------------------------------------------------

    def _get_config(self, req: Request) -> tuple[int, Any]:
        if not req.params:
            return 200, {"compatibilityLevel": self.store.global_level()}
        (subject,) = req.params
        level = self.store.subject_level(subject)
        if level is None:
            if not req.flag("defaultToGlobal"):
                raise _no_subject_config(subject)
            level = self.store.global_level()
        return 200, {"compatibilityLevel": level}

    def _put_config(self, req: Request) -> tuple[int, Any]:
        body = req.body if isinstance(req.body, dict) else {}
        raw = body.get("compatibility", body.get("compatibilityLevel"))
        level = raw.strip().upper() if isinstance(raw, str) else None
        if level not in LEVELS:
            raise ApiError(
                422,
                42203,
                "Invalid compatibility level. Valid values are " + ", ".join(lvl.lower() for lvl in LEVELS),
            )
        self.store.set_level(level, req.params[0] if req.params else None)
        return 200, {"compatibility": level}

    def _del_config(self, req: Request) -> tuple[int, Any]:
        subject = req.params[0] if req.params else None
        old = self.store.delete_level(subject)
        if old is None and subject is not None:
            raise _no_subject_config(subject)
        return 200, {"compatibilityLevel": old}

    # -- compatibility -----------------------------------------------------------------------------------

    def _test_against_one(self, req: Request) -> tuple[int, Any]:
        subject, version = req.params
        number = _parse_version(version)
        doc = self._schema_from_body(req.body)
        with self.store.lock:
            try:
                against = [self.store.version(subject, number)]
            except ApiError as exc:
                # As Confluent 7.x: "latest" of a subject without live versions is checked against
                # nothing (compatible); a numbered version of it is 40402, never 40401.
                if exc.error_code != 40401:
                    raise
                if number is not None:
                    raise version_not_found(subject, number) from exc
                against = []
            problems = self._problems(self.store.effective_level(subject), doc, against)
        return 200, _compat_body(problems, req.flag("verbose"))

    def _test_against_all(self, req: Request) -> tuple[int, Any]:
        (subject,) = req.params
        doc = self._schema_from_body(req.body)
        with self.store.lock:
            problems = self._problems(self.store.effective_level(subject), doc, self._against(subject))
        return 200, _compat_body(problems, req.flag("verbose"))

    # -- helpers -----------------------------------------------------------------------------------------

    def _against(self, subject: str) -> list[VersionEntry]:
        """The versions a new schema is checked against: the latest, or all for transitive levels."""
        try:
            live = self.store.versions(subject)
        except ApiError as exc:
            if exc.error_code == 40401:  # a new subject: nothing to be compatible with
                return []
            raise
        return live if self.store.effective_level(subject).endswith("_TRANSITIVE") else live[-1:]

    def _schema_from_body(self, body: Any) -> SchemaDoc:
        if not isinstance(body, dict):
            raise ApiError(422, 422, "The request body must be a JSON object")
        text = body.get("schema")
        if not isinstance(text, str) or not text.strip():
            raise ApiError(422, 42201, "Invalid schema: the request has no (or an empty) `schema` string")
        schema_type = body.get("schemaType") or "AVRO"
        if schema_type not in SCHEMA_TYPES:
            raise ApiError(422, 422, f"Unknown schemaType {schema_type!r}; known: {', '.join(SCHEMA_TYPES)}")
        refs = references_from_json(body.get("references"))
        return prepare_schema(schema_type, text, refs, self.store.resolve_reference)

    def _problems(self, level: str, new: SchemaDoc, previous: list[VersionEntry]) -> list[str]:
        """Why `new` breaks `level` against the `previous` versions (oldest first); only Avro is checked."""
        if level == "NONE" or new.schema_type != "AVRO":
            return []
        olds = [(e.version, self.store.schema(e.schema_id)) for e in previous]
        parsed = [
            (v, parse_avro(doc, self.store.resolve_reference)) for v, doc in olds if doc.schema_type == "AVRO"
        ]
        return compatibility.check_level(level, parse_avro(new, self.store.resolve_reference), parsed)

    def _version_body(self, entry: VersionEntry) -> dict[str, Any]:
        body: dict[str, Any] = {"subject": entry.subject, "version": entry.version, "id": entry.schema_id}
        body.update(self.store.schema(entry.schema_id).to_json())
        return body


class RawText(str):
    """A payload served as it is (already JSON text), not JSON-encoded again."""

    __slots__ = ()


def _compat_body(problems: list[str], verbose: bool) -> dict[str, Any]:
    body: dict[str, Any] = {"is_compatible": not problems}
    if verbose:
        body["messages"] = problems
    return body


def _no_subject_config(subject: str) -> ApiError:
    return ApiError(404, 40408, f"Subject '{subject}' does not have subject-level compatibility configured")


def _parse_version(text: str) -> int | None:
    if text in ("latest", "-1"):
        return None
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= _MAX_VERSION:
        raise invalid_version(text)
    return int(text)


def _parse_id(text: str) -> int:
    if not (text.isascii() and text.isdigit()):
        raise ApiError(404, 404, f"HTTP 404 Not Found: schema id {text!r} is not a number")
    return int(text)


def _page(items: list[Any], req: Request) -> list[Any]:
    try:
        offset = max(0, int(req.query.get("offset", "0")))
        limit = int(req.query.get("limit", "-1"))
    except ValueError as exc:
        raise ApiError(422, 422, "offset and limit must be integers") from exc
    items = items[offset:]
    return items if limit < 0 else items[:limit]
