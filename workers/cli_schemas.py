"""`avroflow schemas register` and `avroflow schemas check`: the .avsc files against the registry.

Which file goes under which subject is written down in ``<dir>/subjects.json`` (see schemas/README.md):
a list of ``{"subject": ..., "file": ...}`` in registration order, so version 1 of a subject is
registered before version 2. `register` stops at the first refusal, printing the registry's reason and
exiting 1; `check` tests every file and exits 1 when any is incompatible, for CI.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import fastavro

from registry_codecs.errors import (
    IncompatibleSchema,
    InvalidSchema,
    RegistryError,
    SchemaNotFound,
    SubjectNotFound,
)
from registry_codecs.registry import RegistryClient
from workers.cli import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from workers.cli_clients import load_settings, registry_client
from workers.settings import SettingsError

MANIFEST = "subjects.json"


class ManifestError(ValueError):
    """subjects.json is missing, malformed, or names a file that does not exist or does not parse."""


@dataclass(frozen=True, slots=True)
class Registration:
    """One schema file and the subject it is registered under."""

    subject: str
    path: Path
    name: str  # the path as written in the manifest, for messages

    def schema_text(self) -> str:
        """Return the file's text after checking that it is a valid Avro schema.

        Raises:
            ManifestError: the file cannot be read or is not a valid Avro schema.
        """
        try:
            text = self.path.read_text(encoding="utf-8")
            fastavro.parse_schema(json.loads(text))
        except (OSError, ValueError, fastavro.schema.SchemaParseException) as exc:
            raise ManifestError(f"{self.name}: not a valid Avro schema file: {exc}") from exc
        return text


def load_manifest(directory: Path) -> list[Registration]:
    """Read ``<directory>/subjects.json`` into registrations, in file order.

    Raises:
        ManifestError: the manifest is missing or malformed, or an entry is incomplete.
    """
    manifest = directory / MANIFEST
    try:
        entries = json.loads(manifest.read_text(encoding="utf-8"))["registrations"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ManifestError(
            f"{manifest}: expected a JSON object with a 'registrations' list ({exc})"
        ) from exc
    registrations = []
    for position, entry in enumerate(entries, start=1):
        if not isinstance(entry, dict) or not entry.get("subject") or not entry.get("file"):
            raise ManifestError(f"{manifest}: entry {position} needs a 'subject' and a 'file'")
        registrations.append(Registration(entry["subject"], directory / entry["file"], entry["file"]))
    if not registrations:
        raise ManifestError(f"{manifest}: no registrations")
    return registrations


def register_all(client: RegistryClient, registrations: list[Registration], out: TextIO, err: TextIO) -> int:
    """Register each file under its subject, in order; print one line each. Return the exit code."""
    for reg in registrations:
        text = reg.schema_text()
        try:
            schema_id = client.register(reg.subject, text)
        except IncompatibleSchema as exc:
            print(f"{reg.subject}: {reg.name}: refused as incompatible: {exc}", file=err)
            for reason in _incompatibility_reasons(client, reg.subject, text):
                if reason not in str(exc):
                    print(f"  {reason}", file=err)
            return EXIT_FAILED
        except InvalidSchema as exc:
            print(f"{reg.subject}: {reg.name}: refused as invalid: {exc}", file=err)
            return EXIT_FAILED
        version = client.lookup(reg.subject, text).version
        print(f"{reg.subject}\tversion {version}\tid {schema_id}\t{reg.name}", file=out)
    return EXIT_OK


def check_all(client: RegistryClient, registrations: list[Registration], out: TextIO) -> int:
    """Test each file against the latest version of its subject; print a verdict each. Return the code."""
    failed = 0
    for reg in registrations:
        text = reg.schema_text()
        try:
            known = client.lookup(reg.subject, text)
        except SubjectNotFound:
            print(f"{reg.subject}\tnew\t{reg.name}", file=out)
            continue
        except SchemaNotFound:
            known = None
        if known is not None:
            print(
                f"{reg.subject}\tregistered (version {known.version}, id {known.schema_id})\t{reg.name}",
                file=out,
            )
            continue
        result = client.test_compatibility(reg.subject, text, verbose=True)
        if result.is_compatible:
            print(f"{reg.subject}\tcompatible\t{reg.name}", file=out)
            continue
        failed += 1
        print(f"{reg.subject}\tINCOMPATIBLE\t{reg.name}", file=out)
        for message in result.messages:
            print(f"  {message}", file=out)
    if failed:
        print(f"{failed} schema file(s) incompatible with their subject's latest version", file=out)
        return EXIT_FAILED
    return EXIT_OK


def _incompatibility_reasons(client: RegistryClient, subject: str, text: str) -> tuple[str, ...]:
    # The 409 message is terse on some registries; the verbose compatibility check says which rule broke.
    try:
        return client.test_compatibility(subject, text, verbose=True).messages
    except RegistryError:
        return ()


def _run(args: argparse.Namespace, action: str) -> int:
    try:
        settings = load_settings(registry_url=args.registry_url, needs_broker=False)
        registrations = load_manifest(args.dir)
        for reg in registrations:
            reg.schema_text()
    except (SettingsError, ManifestError) as exc:
        print(f"avroflow schemas {action}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    client = registry_client(settings)
    try:
        if action == "register":
            return register_all(client, registrations, sys.stdout, sys.stderr)
        return check_all(client, registrations, sys.stdout)
    except RegistryError as exc:
        print(f"avroflow schemas {action}: registry error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        client.close()


def cmd_register(args: argparse.Namespace) -> int:
    """`schemas register`: register the files of ``--dir`` under their subjects."""
    return _run(args, "register")


def cmd_check(args: argparse.Namespace) -> int:
    """`schemas check`: compatibility of the files of ``--dir`` against the registry."""
    return _run(args, "check")


__all__ = [
    "ManifestError",
    "Registration",
    "check_all",
    "cmd_check",
    "cmd_register",
    "load_manifest",
    "register_all",
]
