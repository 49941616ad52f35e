"""Typed records for agents: Avro records as dataclasses or `faust.Record` subclasses, and back.

An agent that names a ``value_type`` gets each decoded record as an instance of it, fields mapped by name
(fastavro already turns logical types into `datetime`, `date`, `Decimal` and `UUID`); record fields the
type does not declare are not passed (as with a reader schema that leaves them out). Whatever the agent
returns that is a dataclass or a `faust.Record` is written as the dict of its fields, checked against the
sink schema like any output. Declared types are held to the schemas at start: every field the input type
requires must be a field of the reader schema (when the pipeline has one), and an ``output_type``'s fields
must be the sink schema's (each sink field without a default present, no field the sink lacks).
"""

from __future__ import annotations

import dataclasses
import json
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import faust
from faust.models.fields import FieldDescriptor

from workers.pipeline import PipelineError, Tombstone


class RecordTypeMismatch(TypeError):
    """A decoded record lacks a field its declared type requires (it is dead-lettered)."""

    reason = "record_type_mismatch"


@dataclass(frozen=True, slots=True)
class RecordType:
    """The fields of a record type: all of them, and those without a default."""

    cls: type
    fields: tuple[str, ...]
    required: frozenset[str]
    names: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        object.__setattr__(self, "names", frozenset(self.fields))

    @classmethod
    def of(cls, value_type: Any) -> RecordType:
        """Describe `value_type` (a dataclass or a `faust.Record` subclass).

        Raises:
            PipelineError: it is neither.
        """
        if isinstance(value_type, type) and dataclasses.is_dataclass(value_type):
            fields = dataclasses.fields(value_type)
            required = {
                f.name
                for f in fields
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
            }
            return cls(value_type, tuple(f.name for f in fields), frozenset(required))
        if isinstance(value_type, type) and issubclass(value_type, faust.Record):
            names = [
                n
                for n in typing.get_type_hints(value_type)
                if isinstance(getattr(value_type, n, None), FieldDescriptor)
            ]
            required = {n for n in names if getattr(value_type, n).required}
            return cls(value_type, tuple(names), frozenset(required))
        raise PipelineError(f"record type {value_type!r}: expected a dataclass or a faust.Record subclass")

    def build(self, record: Mapping[str, Any]) -> Any:
        """Return `record` as an instance of the type.

        Raises:
            RecordTypeMismatch: a field the type requires is not in the record.
        """
        try:
            if record.keys() == self.names:  # the usual case: the reader schema is the type's
                return self.cls(**record)
            return self.cls(**{name: record[name] for name in self.fields if name in record})
        except TypeError:
            missing = self.required - record.keys()
            if not missing:
                raise
        raise RecordTypeMismatch(
            f"{self.cls.__name__} requires {', '.join(sorted(missing))}, not in the decoded record"
        )

    def problems_with(self, schema_text: str, *, output: bool) -> list[str]:
        """What keeps this type from matching the record schema `schema_text` (empty: it matches).

        For input, every required field must be a schema field; for output, every field must be a schema
        field and every schema field without a default a field of the type.
        """
        schema = json.loads(schema_text)
        if not isinstance(schema, dict) or schema.get("type") != "record":
            return ["the schema is not a record schema"]
        schema_fields = {f["name"]: f for f in schema["fields"]}
        name = self.cls.__name__
        problems = []
        wanted = set(self.fields) if output else set(self.required)
        problems += [
            f"{name}.{f} is not a field of {schema['name']}" for f in sorted(wanted - schema_fields.keys())
        ]
        if output:
            needed = {n for n, f in schema_fields.items() if "default" not in f}
            problems += [
                f"{schema['name']}.{f} (no default) is not a field of {name}"
                for f in sorted(needed - set(self.fields))
            ]
        return problems


#: The field names of each dataclass met (`dataclasses.fields` is slow for once per record).
_DATACLASS_FIELDS: dict[type, tuple[str, ...]] = {}


def untyped(value: Any) -> Any:
    """`value` with dataclass and `faust.Record` instances turned into the dicts of their fields."""
    cls = type(value)
    names = _DATACLASS_FIELDS.get(cls)
    if names is None:
        if isinstance(value, faust.Record):
            return value.asdict()
        if not dataclasses.is_dataclass(value) or isinstance(value, type):
            return value
        names = _DATACLASS_FIELDS[cls] = tuple(f.name for f in dataclasses.fields(value))
    return {name: getattr(value, name) for name in names}


class TypedTransform:
    """`inner` given typed records, its typed results written as dicts.

    Args:
        inner: the agent's transform (a function, or an `AsyncBody`).
        value_type: the inputs' type, or None for dicts.
    """

    def __init__(self, inner: Callable[[Any], Any], value_type: RecordType | None) -> None:
        self.inner = inner
        self.value_type = value_type
        self.__name__ = getattr(inner, "__name__", "transform")

    def __call__(self, record: Mapping[str, Any] | None) -> Any:
        value = record if record is None or self.value_type is None else self.value_type.build(record)
        result = self.inner(value)
        if result is None or isinstance(result, Tombstone | Mapping):
            return result
        if isinstance(result, faust.Record) or dataclasses.is_dataclass(result):
            return untyped(result)
        if isinstance(result, Iterable) and not isinstance(result, str | bytes):
            return [untyped(item) for item in result]
        return result


__all__ = ["RecordType", "RecordTypeMismatch", "TypedTransform", "untyped"]
