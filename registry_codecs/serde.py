"""Avro in the Confluent wire format: `AvroSerializer` and `AvroDeserializer`.

Both sit on a `SchemaLookup` (the registry client in production) and keep, per schema id, what the hot
path needs in a plain dict: the 5-byte header and the parsed schema for encoding, a `ReadPlan` for
decoding. A message therefore costs one dict lookup plus fastavro's own work; everything slower (fetching
a schema, parsing it, comparing it with the reader schema, explaining a record that does not fit) runs
once per schema id or only on the failure path. Every failure is a `registry_codecs.errors` type and is
counted by subject and reason when metrics are given.
"""

from __future__ import annotations

import itertools
import struct
import threading
import time
from collections.abc import Mapping
from io import BytesIO
from typing import Any

from fastavro import schemaless_reader, schemaless_writer

from registry_codecs.avro import (
    ReadPlan,
    find_misfit,
    parse_avro,
    parse_registered,
    read_plan,
    shape_key,
)
from registry_codecs.bounds import BodyGuard, BodyTooDeep, DepthGuard, RecordTooDeep
from registry_codecs.errors import (
    CodecError,
    DecodeError,
    FramingError,
    RecordDoesNotFitSchema,
    RegistryUnavailable,
)
from registry_codecs.framing import HEADER_SIZE, header, schema_id_of
from registry_codecs.metrics import CodecMetrics
from registry_codecs.schemas import RegisteredSchema, SchemaLookup

_unpack_header = struct.Struct(">BI").unpack_from
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
        self._parsed: dict[int, tuple[bytes, Any]] = {}
        # Recursive schemas, whose records could overflow fastavro's C stack (registry_codecs.bounds): their
        # records are measured before fastavro writes them. Usually empty: the common path pays one test.
        self._deep: dict[int, DepthGuard] = {}
        # (header, parsed schema, schema id) of the schema in use; swapped as one tuple so readers
        # on other threads never see a header from one schema with the body of another.
        self._current: tuple[bytes, Any, int] | None = None
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

        Raises:
            RecordDoesNotFitSchema: the record does not fit the schema; `field_path` says where.
            SubjectNotFound, RegistryUnavailable, SchemaParseError: no usable schema for the subject.
        """
        current = self._current
        if current is None or _monotonic() >= self._next_check:
            current = self._ensure_current()
        if self._deep and current[2] in self._deep:
            self._check_depth(record, current)
        buffer = BytesIO()
        buffer.write(current[0])
        try:
            schemaless_writer(buffer, current[1], record)
        # fastavro reports misfits as TypeError, ValueError, KeyError, struct.error, OverflowError ...
        except Exception as exc:
            raise self._does_not_fit(record, current, exc) from exc
        next(self._ticks)
        return buffer.getvalue()

    def _ensure_current(self) -> tuple[bytes, Any, int]:
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

    def _refresh(self, current: tuple[bytes, Any, int] | None) -> tuple[bytes, Any, int]:
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

    def _load(self, registered: RegisteredSchema) -> tuple[bytes, Any, int]:
        cached = self._parsed.get(registered.schema_id)
        if cached is None:
            cached = (header(registered.schema_id), parse_registered(registered))
            guard = DepthGuard.for_schema(cached[1])
            if guard is not None:
                self._deep[registered.schema_id] = guard
            self._parsed[registered.schema_id] = cached
        return cached[0], cached[1], registered.schema_id

    def _check_depth(self, record: Any, current: tuple[bytes, Any, int]) -> None:
        try:
            self._deep[current[2]].check(record)
        except RecordTooDeep as exc:
            error = RecordTooDeep(
                f"record does not fit schema id {current[2]} of subject {self._subject!r}: {exc}",
                schema_id=current[2],
            )
            self._count(error)
            raise error from None

    def _does_not_fit(
        self, record: Any, current: tuple[bytes, Any, int], exc: Exception
    ) -> RecordDoesNotFitSchema:
        try:
            found = find_misfit(current[1], record)
        except RecursionError:  # a deep record of a recursive schema: the explanation walk gives up
            found = None
        path, problem = found if found else ("", f"{type(exc).__name__}: {exc}")
        where = f" at {path}" if path else ""
        error = RecordDoesNotFitSchema(
            f"record does not fit schema id {current[2]} of subject {self._subject!r}{where}: {problem}",
            field_path=path,
            schema_id=current[2],
        )
        self._count(error)
        return error

    def _count(self, error: CodecError) -> CodecError:
        if self._metrics is not None:
            self._metrics.encode_failures.labels(self._subject, error.reason).inc()
        return error


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
            record = schemaless_reader(buffer, plan.writer, plan.reader)
            if plan.project is not None:
                record = plan.project(record)
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
