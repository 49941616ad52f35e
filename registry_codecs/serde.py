"""Avro in the Confluent wire format: `AvroSerializer` and `AvroDeserializer`.

Both sit on a `SchemaLookup` (the registry client in production) and keep, per schema id, what the hot
path needs in a plain dict: the 5-byte header, the parsed schema and its compiled validator
(`registry_codecs.validation`) for encoding, a `ReadPlan` for decoding. A message therefore costs one dict
lookup, on encode the validator's type checks (about 5% of fastavro's write), plus fastavro's own work;
everything slower (fetching a schema, parsing it, compiling its validator, comparing it with the reader
schema, explaining a record that does not fit) runs once per schema id or only on the failure path.
Every failure is a `registry_codecs.errors` type and is counted by subject and reason when metrics are
given.
"""

from __future__ import annotations

import dataclasses
import itertools
import struct
import sys
import threading
import time
from collections.abc import Mapping
from io import BytesIO
from typing import Any

from fastavro import schemaless_reader, schemaless_writer

from registry_codecs.avro import (
    ReadPlan,
    parse_avro,
    parse_registered,
    read_plan,
    shape_key,
)
from registry_codecs.bounds import MAX_DEPTH, BodyGuard, BodyTooDeep, DepthGuard, RecordTooDeep
from registry_codecs.errors import (
    CodecError,
    DecodeError,
    FramingError,
    RecordDoesNotFitSchema,
    RegistryUnavailable,
    UnionBranchUnresolved,
    ValueDoesNotFit,
)
from registry_codecs.fit import Fitter, Misfit
from registry_codecs.framing import HEADER_SIZE, header, schema_id_of
from registry_codecs.metrics import CodecMetrics
from registry_codecs.schemas import RegisteredSchema, SchemaLookup
from registry_codecs.unions import compile_marker
from registry_codecs.validation import CompiledCheck, Validator, compile_validator

_unpack_header = struct.Struct(">BI").unpack_from
#: (header, parsed schema, schema id, compiled check, fitter's prepare) of the schema a serializer uses.
_Current = tuple[bytes, Any, int, Validator, Validator]
_monotonic = time.monotonic

#: How often the serializer asks its lookup for the subject's latest schema. The lookup caches with its
#: own TTL; asking it on every record would add a lock and a clock read per record for nothing.
LATEST_RECHECK_SECONDS = 1.0


class AvroSerializer:
    """Encode records with the latest schema registered for a subject, in the Confluent wire format.

    Args:
        lookup: where schemas come from (a `RegistryClient`).
        subject: the subject whose latest schema encodes the records.
        metrics: counters to update, or None.
        schema: a local schema (text); used with `auto_register`.
        auto_register: register `schema` under `subject` on first use and encode with it, as
            confluent-kafka does with ``auto.register.schemas``. Off by default.
        latest_recheck_seconds: how often to ask `lookup` whether a newer version was registered.

    Raises:
        ValueError: `auto_register` without a `schema`.
        SchemaParseError: `schema` is not a valid Avro schema.
    """

    def __init__(
        self,
        lookup: SchemaLookup,
        subject: str,
        *,
        metrics: CodecMetrics | None = None,
        schema: str | None = None,
        auto_register: bool = False,
        latest_recheck_seconds: float = LATEST_RECHECK_SECONDS,
    ) -> None:
        if auto_register and schema is None:
            raise ValueError("auto_register needs the local schema to register (schema=...)")
        if schema is not None:
            parse_avro(schema)  # fail at construction, not on the first record
        self._lookup = lookup
        self._subject = subject
        self._schema = schema
        self._auto_register = auto_register
        self._recheck = latest_recheck_seconds
        self._metrics = metrics
        # Without metrics the ticks go to a private counter: one code path, no per-record branch.
        self._ticks = metrics.messages_encoded.labels(subject).ticks if metrics else itertools.count()
        self._parsed: dict[int, tuple[bytes, Any, CompiledCheck]] = {}
        # Recursive schemas, whose records could overflow fastavro's C stack (registry_codecs.bounds): their
        # records are measured before fastavro writes them. Usually empty: the common path pays one test.
        self._deep: dict[int, DepthGuard] = {}
        # (header, parsed schema, schema id, check, prepare) of the schema in use; swapped as one tuple
        # so readers on other threads never see a header from one schema with the body of another.
        self._current: _Current | None = None
        self._next_check = 0.0
        self._lock = threading.Lock()

    @property
    def subject(self) -> str:
        """The subject this serializer encodes for."""
        return self._subject

    @property
    def schema_id(self) -> int:
        """The id of the schema records are encoded with now (fetched on first use)."""
        return self._ensure_current()[2]

    def encode(self, record: Any) -> bytes:
        """Return `record` (a mapping, or any value a non-record schema takes) encoded and framed.

        The schema is the subject's latest version (or the registered local schema with auto_register).

        Nothing is written that the schema cannot hold exactly (`registry_codecs.fit` has the rules): no
        int out of range, float for an int, bool for a number, float32 overflow, unknown field, missing
        field without a default. A `NamedRecord` (or a ``(name, value)`` tuple) in a union is written as
        the branch it names.

        Raises:
            ValueDoesNotFit: a value does not fit its Avro type; `field_path`, `avro_type` and
                `python_type` say where and what (`UnionBranchUnresolved` for a union value that does not
                say which of several branches it is, or names one the union lacks).
            RecordDoesNotFitSchema: the record does not fit the schema for another reason.
            SubjectNotFound, RegistryUnavailable, SchemaParseError: no usable schema for the subject.
        """
        current = self._current
        if current is None or _monotonic() >= self._next_check:
            current = self._ensure_current()
        if self._deep and current[2] in self._deep:
            self._check_depth(record, current)
        try:
            datum = current[3](record)
        # The compiled check raises (anything) when it is not sure; the fitter then decides.
        except Exception:  # noqa: BLE001
            datum = self._prepare(record, current)
        buffer = BytesIO()
        buffer.write(current[0])
        try:
            schemaless_writer(buffer, current[1], datum)
        # fastavro reports misfits as TypeError, ValueError, KeyError, struct.error, OverflowError ...
        except Exception as exc:
            raise self._does_not_fit(record, current, exc) from exc
        next(self._ticks)
        return buffer.getvalue()

    def _ensure_current(self) -> _Current:
        with self._lock:
            current = self._current
            if current is not None and time.monotonic() < self._next_check:
                return current
            try:
                current = self._refresh(current)
            except CodecError as exc:
                self._count(exc)
                raise
            self._current = current
            # A registered local schema keeps its id: only the latest-version mode needs rechecks.
            self._next_check = float("inf") if self._auto_register else time.monotonic() + self._recheck
            return current

    def _refresh(self, current: _Current | None) -> _Current:
        if self._auto_register and self._schema is not None:
            schema_id = self._lookup.register(self._subject, self._schema)
            return self._load(RegisteredSchema(schema_id, self._schema, subject=self._subject))
        try:
            registered = self._lookup.get_latest(self._subject)
        except RegistryUnavailable:
            if current is None:
                raise
            return current  # keep encoding with the schema we have; ask again after the recheck interval
        if current is not None and registered.schema_id == current[2]:
            return current
        return self._load(registered)

    def _load(self, registered: RegisteredSchema) -> _Current:
        cached = self._parsed.get(registered.schema_id)
        if cached is None:
            parsed = parse_registered(registered)
            cached = (header(registered.schema_id), parsed, compile_validator(parsed))
            guard = DepthGuard.for_schema(parsed)
            if guard is not None:
                self._deep[registered.schema_id] = guard
                _room_for_deep_checks()
            self._parsed[registered.schema_id] = cached
        return cached[0], cached[1], registered.schema_id, cached[2].fast, cached[2].prepare

    def _check_depth(self, record: Any, current: _Current) -> None:
        try:
            self._deep[current[2]].check(record)
        except RecordTooDeep as exc:
            error = RecordTooDeep(
                f"record does not fit schema id {current[2]} of subject {self._subject!r}: {exc}",
                schema_id=current[2],
            )
            self._count(error)
            raise error from None

    def _prepare(self, record: Any, current: _Current) -> Any:
        try:
            return current[4](record)
        except (Misfit, RecursionError) as exc:
            raise self._does_not_fit(record, current, exc) from None

    def _does_not_fit(self, record: Any, current: _Current, exc: BaseException) -> RecordDoesNotFitSchema:
        misfit = exc if isinstance(exc, Misfit) else _explain(current[1], record)
        prefix = f"record does not fit schema id {current[2]} of subject {self._subject!r}"
        error: RecordDoesNotFitSchema
        if isinstance(exc, RecursionError):
            error = RecordDoesNotFitSchema(f"{prefix}: nested too deeply to check", schema_id=current[2])
        elif misfit is not None:
            kind = UnionBranchUnresolved if misfit.union else ValueDoesNotFit
            error = kind(
                f"{prefix} at {misfit.path}: {misfit.problem} (Avro type {misfit.avro_type}, "
                f"Python type {misfit.python_type})",
                field_path=misfit.path,
                avro_type=misfit.avro_type,
                python_type=misfit.python_type,
                schema_id=current[2],
            )
        else:
            error = RecordDoesNotFitSchema(f"{prefix}: {type(exc).__name__}: {exc}", schema_id=current[2])
        self._count(error)
        return error

    def _count(self, error: CodecError) -> CodecError:
        if self._metrics is not None:
            self._metrics.encode_failures.labels(self._subject, error.reason).inc()
        return error


# A record of a recursive schema may nest up to bounds.MAX_DEPTH levels; the compiled check and the fitter
# walk it with Python recursion, a few frames a level. The limit is raised once (never lowered) when the
# first such schema is loaded, so a record the depth guard lets through is never refused as too deep to check.
_DEEP_CHECK_FRAMES = MAX_DEPTH * 4 + 1000


def _room_for_deep_checks() -> None:
    if sys.getrecursionlimit() < _DEEP_CHECK_FRAMES:
        sys.setrecursionlimit(_DEEP_CHECK_FRAMES)


def _explain(parsed: Any, record: Any) -> Misfit | None:
    """Why fastavro refused a record that the compiled check let through (None: no misfit found)."""
    try:
        Fitter(parsed).prepare(record)
    except Misfit as misfit:
        return misfit
    except RecursionError:
        return None
    return None


class AvroDeserializer:
    """Decode Confluent wire-format frames, optionally into a reader schema.

    Args:
        lookup: where writer schemas come from, by the id in each frame.
        reader_schema: the schema the application wants records in (text or loaded JSON); None reads
            each record as it was written. Writer-to-reader resolution follows the Avro rules.
        subject: the subject (or topic) the frames belong to, used as the metrics label.
        metrics: counters to update, or None.

    Raises:
        SchemaParseError: `reader_schema` is not a valid Avro schema.
    """

    def __init__(
        self,
        lookup: SchemaLookup,
        *,
        reader_schema: str | Mapping[str, Any] | None = None,
        subject: str = "",
        metrics: CodecMetrics | None = None,
    ) -> None:
        self._lookup = lookup
        self._subject = subject
        self._reader = parse_avro(reader_schema) if reader_schema is not None else None
        self._reader_key = shape_key(self._reader) if self._reader is not None else None
        self._metrics = metrics
        self._ticks = metrics.messages_decoded.labels(subject).ticks if metrics else itertools.count()
        self._plans: dict[int, ReadPlan] = {}
        # Writer schemas whose bodies could exhaust memory or the stack (registry_codecs.bounds): walked
        # before fastavro reads them. Usually empty, so the common path pays one truth test.
        self._guarded: dict[int, BodyGuard] = {}

    def decode(self, data: bytes) -> Any:
        """Return the record in a frame.

        Raises:
            FramingError: not a Confluent frame.
            SchemaNotFound, RegistryUnavailable: the writer schema cannot be fetched.
            DecodeError: the body does not decode with its writer schema, or into the reader schema.
        """
        return self.decode_with_id(data)[1]

    def decode_with_id(self, data: bytes) -> tuple[int, Any]:
        """Return the schema id and the record of a frame. Raises as :meth:`decode` does."""
        try:
            magic, schema_id = _unpack_header(data)
        except (struct.error, TypeError):
            magic, schema_id = -1, -1
        if magic != 0:
            raise self._count(self._framing_error(data))
        try:
            plan = self._plans[schema_id]
        except KeyError:
            plan = self._plan(schema_id)
        buffer = BytesIO(data)
        buffer.seek(HEADER_SIZE)
        try:
            if self._guarded and schema_id in self._guarded:
                self._guarded[schema_id].check(data, HEADER_SIZE)
            if plan.mark is None:
                record = schemaless_reader(buffer, plan.writer, plan.reader)
            else:  # the union of several records in this schema: ask fastavro for the branches' names
                record = schemaless_reader(buffer, plan.writer, plan.reader, True, True)
            if plan.project is not None:
                record = plan.project(record)
            if plan.mark is not None:
                record = plan.mark(record)
        except BodyTooDeep as exc:  # valid perhaps, but deeper than fastavro's reader can go: its own reason
            raise self._count(
                BodyTooDeep(f"writer schema id {schema_id}: {exc}", schema_id=schema_id)
            ) from exc
        # A corrupt body surfaces as EOFError, UnicodeDecodeError, IndexError, ValueError, MemoryError ...
        except Exception as exc:
            raise self._count(self._decode_error(schema_id, data, exc)) from exc
        if buffer.tell() != len(data):
            raise self._count(self._trailing(schema_id, data, buffer.tell()))
        next(self._ticks)
        return schema_id, record

    def _plan(self, schema_id: int) -> ReadPlan:
        try:
            writer = parse_registered(self._lookup.get_schema(schema_id))
            plan = read_plan(writer, self._reader, self._reader_key)
            plan = dataclasses.replace(plan, mark=compile_marker(self._reader or writer))
        except CodecError as exc:
            self._count(exc)
            raise
        guard = BodyGuard.for_schema(writer)
        if guard is not None:
            self._guarded[schema_id] = guard
        self._plans[schema_id] = plan
        return plan

    def _framing_error(self, data: Any) -> CodecError:
        if not isinstance(data, bytes | bytearray | memoryview):
            return FramingError(f"expected bytes, got {type(data).__name__}")
        try:
            schema_id_of(data)
        except FramingError as exc:
            return exc
        return FramingError("not a Confluent frame")  # unreachable: schema_id_of raised for magic != 0

    def _decode_error(self, schema_id: int, data: bytes, exc: Exception) -> DecodeError:
        into = " into the reader schema" if self._reader is not None else ""
        return DecodeError(
            f"body of {len(data) - HEADER_SIZE} bytes does not decode with writer schema id "
            f"{schema_id}{into}: {type(exc).__name__}: {exc}",
            schema_id=schema_id,
        )

    def _trailing(self, schema_id: int, data: bytes, end: int) -> DecodeError:
        return DecodeError(
            f"{len(data) - end} bytes left over after decoding a record with writer schema id "
            f"{schema_id}: the body was not written with that schema",
            schema_id=schema_id,
        )

    def _count(self, error: CodecError) -> CodecError:
        if self._metrics is not None:
            self._metrics.decode_failures.labels(self._subject, error.reason).inc()
        return error


__all__ = ["LATEST_RECHECK_SECONDS", "AvroDeserializer", "AvroSerializer"]
