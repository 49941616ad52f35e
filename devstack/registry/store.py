"""The registry's state: global schema ids, subjects and their versions, compatibility levels.

One re-entrant lock guards everything, so concurrent requests see a consistent store and ids are handed out
exactly once. With a data file every change is written atomically (temporary file, fsync, `os.replace`)
before the request is answered, so a restart on the same directory serves the same ids.

Deletes follow Confluent: a soft delete hides versions but keeps their ids readable (deserializers still
need them); a permanent delete is only allowed after a soft one. Schema ids are never reused: a schema
registered again after a permanent delete gets back the id it had.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devstack.registry.contracts import contract_state, stored_object
from devstack.registry.errors import ApiError, subject_not_found, version_not_found
from devstack.registry.schemas import Reference, SchemaDoc

__all__ = ["LEVELS", "RegistryStore", "VersionEntry"]

LEVELS = (
    "BACKWARD",
    "BACKWARD_TRANSITIVE",
    "FORWARD",
    "FORWARD_TRANSITIVE",
    "FULL",
    "FULL_TRANSITIVE",
    "NONE",
)
DEFAULT_LEVEL = "BACKWARD"
_FORMAT = 1


@dataclass(slots=True)
class VersionEntry:
    """One version of a subject."""

    subject: str
    version: int
    schema_id: int
    deleted: bool = False


class RegistryStore:
    """Thread-safe, optionally persistent registry state.

    Args:
        data_file: JSON file holding the state; None keeps everything in memory.
    """

    def __init__(self, data_file: Path | None = None) -> None:
        self.lock = threading.RLock()
        self._data_file = data_file
        self._schemas: dict[int, SchemaDoc] = {}
        self._ids: dict[str, int] = {}
        self._subjects: dict[str, list[VersionEntry]] = {}
        self._global_level = DEFAULT_LEVEL
        self._subject_levels: dict[str, str] = {}
        if data_file is not None and data_file.exists():
            self._load(data_file)

    # -- reads -------------------------------------------------------------------------------------------

    def schema(self, schema_id: int) -> SchemaDoc:
        """The schema with this id, while any version (even soft-deleted) still uses it.

        Raises:
            ApiError: 40403 when no such schema is stored.
        """
        with self.lock:
            doc = self._schemas.get(schema_id)
            if doc is None or not self.usages(schema_id, include_deleted=True):
                raise ApiError(404, 40403, f"Schema {schema_id} not found")
            return doc

    def usages(self, schema_id: int, *, include_deleted: bool) -> list[VersionEntry]:
        """Every (subject, version) registered with this id."""
        with self.lock:
            return [
                entry
                for entries in self._subjects.values()
                for entry in entries
                if entry.schema_id == schema_id and (include_deleted or not entry.deleted)
            ]

    def subjects(self, *, include_deleted: bool = False, deleted_only: bool = False) -> list[str]:
        """Subject names, sorted; by default only those with a live version."""
        with self.lock:
            names = []
            for name, entries in self._subjects.items():
                live = any(not e.deleted for e in entries)
                if (deleted_only and not live) or (not deleted_only and (live or include_deleted)):
                    names.append(name)
            return sorted(names)

    def versions(self, subject: str, *, include_deleted: bool = False) -> list[VersionEntry]:
        """The subject's versions in order (live ones unless `include_deleted`).

        Raises:
            ApiError: 40401 when the subject has no such versions.
        """
        with self.lock:
            entries = [e for e in self._subjects.get(subject, ()) if include_deleted or not e.deleted]
            if not entries:
                raise subject_not_found(subject)
            return list(entries)

    def version(self, subject: str, version: int | None, *, include_deleted: bool = False) -> VersionEntry:
        """One version; `version` None means the latest (live one, unless `include_deleted`).

        Raises:
            ApiError: 40401 unknown subject, 40402 unknown (or soft-deleted) version.
        """
        with self.lock:
            if version is None:
                return self.versions(subject, include_deleted=include_deleted)[-1]
            entries = self.versions(subject, include_deleted=True)
            for entry in entries:
                if entry.version == version and (include_deleted or not entry.deleted):
                    return entry
            if not include_deleted and all(e.deleted for e in entries):
                raise subject_not_found(subject)
            raise version_not_found(subject, version)

    def resolve_reference(self, ref: Reference) -> SchemaDoc:
        """The schema a reference points at (soft-deleted versions still resolve, as in Confluent).

        Raises:
            ApiError: 42201 when the referenced subject or version does not exist.
        """
        with self.lock:
            for entry in self._subjects.get(ref.subject, ()):
                if entry.version == ref.version:
                    return self._schemas[entry.schema_id]
        raise ApiError(
            422, 42201, f"Invalid schema: reference {ref.name!r} ({ref.subject} v{ref.version}) not found"
        )

    def referenced_by(self, subject: str, version: int) -> list[int]:
        """Ids of live schemas whose references point at this subject version."""
        with self.lock:
            live_ids = {e.schema_id for entries in self._subjects.values() for e in entries if not e.deleted}
            return sorted(
                schema_id
                for schema_id, doc in self._schemas.items()
                if schema_id in live_ids
                and any(r.subject == subject and r.version == version for r in doc.references)
            )

    def find(self, subject: str, doc: SchemaDoc, *, include_deleted: bool = False) -> VersionEntry | None:
        """The subject's version holding this schema, if any (the newest such)."""
        with self.lock:
            schema_id = self._ids.get(doc.identity)
            if schema_id is None:
                return None
            matches = [
                e
                for e in self._subjects.get(subject, ())
                if e.schema_id == schema_id and (include_deleted or not e.deleted)
            ]
            return matches[-1] if matches else None

    def find_schema(
        self, subject: str, doc: SchemaDoc, *, include_deleted: bool = False
    ) -> VersionEntry | None:
        """The subject's newest version holding this schema with any contract (a lookup that sends none)."""
        with self.lock:
            matches = [
                e
                for e in self._subjects.get(subject, ())
                if self._schemas[e.schema_id].schema_identity == doc.schema_identity
                and (include_deleted or not e.deleted)
            ]
            return matches[-1] if matches else None

    def latest_doc(self, subject: str) -> SchemaDoc | None:
        """The schema of the subject's latest live version, or None (a new or fully deleted subject)."""
        with self.lock:
            live = [e for e in self._subjects.get(subject, ()) if not e.deleted]
            return self._schemas[live[-1].schema_id] if live else None

    # -- writes ------------------------------------------------------------------------------------------

    def add_version(self, subject: str, doc: SchemaDoc) -> VersionEntry:
        """Append `doc` as the subject's next version, reusing its global id when known."""
        with self.lock:
            schema_id = self._ids.get(doc.identity)
            if schema_id is None:
                schema_id = max(self._schemas, default=0) + 1
                self._ids[doc.identity] = schema_id
                self._schemas[schema_id] = doc
            entries = self._subjects.setdefault(subject, [])
            entry = VersionEntry(subject, max((e.version for e in entries), default=0) + 1, schema_id)
            entries.append(entry)
            self._save()
            return entry

    def delete_subject(self, subject: str, *, permanent: bool) -> list[int]:
        """Soft-delete every live version, or (permanent) drop an already soft-deleted subject.

        Raises:
            ApiError: 40401 unknown subject, 40404 already soft-deleted, 40405 permanent before soft,
                42206 a live schema still references one of its versions.
        """
        with self.lock:
            entries = self._subjects.get(subject)
            if not entries:
                raise subject_not_found(subject)
            live = [e for e in entries if not e.deleted]
            for entry in entries:
                self._refuse_if_referenced(entry)
            if permanent:
                if live:
                    raise ApiError(
                        404,
                        40405,
                        f"Subject '{subject}' was not deleted first before being permanently deleted",
                    )
                del self._subjects[subject]
                self._subject_levels.pop(subject, None)
                self._save()
                return [e.version for e in entries]
            if not live:
                raise ApiError(
                    404,
                    40404,
                    f"Subject '{subject}' was soft deleted. Set permanent=true to delete permanently",
                )
            for entry in live:
                entry.deleted = True
            self._save()
            return [e.version for e in live]

    def delete_version(self, subject: str, version: int | None, *, permanent: bool) -> int:
        """Soft-delete one version, or (permanent) drop an already soft-deleted one; None is the latest.

        Raises:
            ApiError: 40401, 40402, 40406 already soft-deleted, 40407 permanent before soft, 42206 still
                referenced by a live schema.
        """
        with self.lock:
            # "latest" means the latest live version; a number may name a soft-deleted one (40406 below).
            entry = self.version(subject, version, include_deleted=version is not None)
            self._refuse_if_referenced(entry)
            if permanent:
                if not entry.deleted:
                    raise ApiError(
                        404,
                        40407,
                        f"Subject '{subject}' Version {entry.version} was not deleted first before being "
                        "permanently deleted",
                    )
                entries = self._subjects[subject]
                entries.remove(entry)
                if not entries:
                    del self._subjects[subject]
            elif entry.deleted:
                raise ApiError(
                    404,
                    40406,
                    f"Subject '{subject}' Version {entry.version} was soft deleted. "
                    "Set permanent=true to delete permanently",
                )
            else:
                entry.deleted = True
            self._save()
            return entry.version

    def _refuse_if_referenced(self, entry: VersionEntry) -> None:
        if self.referenced_by(entry.subject, entry.version):
            raise ApiError(
                422,
                42206,
                "One or more references exist to the schema "
                f"{{subject={entry.subject}, version={entry.version}}}",
            )

    # -- configuration -----------------------------------------------------------------------------------

    def global_level(self) -> str:
        """The registry-wide compatibility level."""
        with self.lock:
            return self._global_level

    def subject_level(self, subject: str) -> str | None:
        """The subject's own level, or None when it falls back to the global one."""
        with self.lock:
            return self._subject_levels.get(subject)

    def effective_level(self, subject: str) -> str:
        """The level that applies to `subject`."""
        with self.lock:
            return self._subject_levels.get(subject, self._global_level)

    def set_level(self, level: str, subject: str | None = None) -> None:
        """Set the global level (subject None) or one subject's."""
        with self.lock:
            if subject is None:
                self._global_level = level
            else:
                self._subject_levels[subject] = level
            self._save()

    def delete_level(self, subject: str | None) -> str | None:
        """Drop a subject's level (or reset the global one); answers the level it had."""
        with self.lock:
            if subject is None:
                old: str | None = self._global_level
                self._global_level = DEFAULT_LEVEL
            else:
                old = self._subject_levels.pop(subject, None)
            self._save()
            return old

    # -- persistence -------------------------------------------------------------------------------------

    def _save(self) -> None:
        if self._data_file is None:
            return
        state = {
            "format": _FORMAT,
            "schemas": [
                {
                    "id": schema_id,
                    "schemaType": doc.schema_type,
                    "schema": doc.text,
                    "references": [ref.to_json() for ref in doc.references],
                    "identity": doc.identity,
                    **contract_state(doc),
                }
                for schema_id, doc in sorted(self._schemas.items())
            ],
            "subjects": {
                name: [{"version": e.version, "id": e.schema_id, "deleted": e.deleted} for e in entries]
                for name, entries in self._subjects.items()
            },
            "config": {"global": self._global_level, "subjects": self._subject_levels},
        }
        _write_atomically(self._data_file, json.dumps(state, indent=1))

    def _load(self, data_file: Path) -> None:
        try:
            state = json.loads(data_file.read_text(encoding="utf-8"))
            _check_format(state)
            for item in state["schemas"]:
                refs = tuple(
                    Reference(r["name"], r["subject"], int(r["version"])) for r in item["references"]
                )
                doc = SchemaDoc(
                    item["schemaType"],
                    item["schema"],
                    refs,
                    item["identity"],
                    metadata=stored_object(item.get("metadata")),
                    rule_set=stored_object(item.get("ruleSet")),
                    base_identity=str(item.get("baseIdentity", "")),
                )
                self._schemas[int(item["id"])] = doc
                self._ids[doc.identity] = int(item["id"])
            for name, entries in state["subjects"].items():
                self._subjects[name] = [
                    VersionEntry(name, int(e["version"]), int(e["id"]), bool(e["deleted"])) for e in entries
                ]
            self._global_level = _checked_level(state["config"]["global"])
            self._subject_levels = {k: _checked_level(v) for k, v in state["config"]["subjects"].items()}
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise RuntimeError(f"cannot load registry state from {data_file}: {exc}") from exc


def _check_format(state: Any) -> None:
    if not isinstance(state, dict) or state.get("format") != _FORMAT:
        raise ValueError("not a devstack registry state file (format 1)")


def _checked_level(level: Any) -> str:
    if level not in LEVELS:
        raise ValueError(f"unknown compatibility level {level!r}")
    return str(level)


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
