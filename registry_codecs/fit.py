"""Whether a value fits its Avro type exactly, and the value fastavro must be handed to write it as such.

fastavro coerces where Avro cannot hold a value: it writes 2**31 + 5 into an ``int`` (Java reads it back
wrong), 1.5 as 1, ``True`` as 1, 1e39 into a ``float`` as infinity, any truthy value as ``true``, a decimal
with more integer digits than its precision, any string as a ``uuid``; it ignores fields the schema does not
have, and it picks a union branch by its own guess (the branch with most matching fields). `Fitter` is the
authority on what fits: :meth:`Fitter.prepare` walks a datum against a parsed schema and returns what to
write, or raises :class:`Misfit` naming the first value that does not fit, its path, its Avro type and its
Python type. What it returns is the datum itself, except where a union must be told its branch: there the
value becomes fastavro's tuple notation ``(branch full name, value)``, so fastavro writes the branch chosen
here. The rules, in short:

* ``int``/``long``: a Python int (not a bool) in the type's range; ``float``/``double``: an int or float (not
  a bool), and a float32 must not overflow to infinity; ``boolean``: True or False; ``null``: None;
  ``string``: str; ``bytes``: bytes, bytearray or memoryview; ``enum``: one of its symbols; ``fixed``: bytes
  of its size; arrays: lists or tuples; maps: mappings with str keys.
* Logical types take their Python type (Decimal, UUID, date, time, datetime) or their underlying Avro
  type's values: a decimal must fit the scale and the precision, a uuid string must be the canonical form, a
  date must not be a datetime (the time would be lost). Sub-millisecond parts of a datetime written as
  ``timestamp-millis`` are truncated, as Java's conversion does.
* A record: every field without a default is present, and no key is a field the schema lacks.
* A union: a `NamedRecord` or a ``(name, value)`` tuple takes the branch it names (or is refused if the
  union has no such branch); anything else takes the one branch that holds it. Of several, an int goes to
  the first int/long branch (else double, else float), a float to double before float, a string, bytes or
  other value to the first one in order; a mapping that several record or map branches would hold is
  refused as ambiguous rather than guessed.

The walk is interpretive and slow; the serializer runs it only when the compiled check
(`registry_codecs.validation`) turns a datum down, to explain why (or to prepare a datum it does not
handle).
"""

from __future__ import annotations

import datetime
import decimal
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, NoReturn

from registry_codecs.kinds import (
    LOGICAL_TYPES,
    accepts_name,
    kind_of_node,
    kind_of_value,
    names_of,
    notation_name,
    python_kind,
    type_name,
)
from registry_codecs.unions import NamedRecord

INT_RANGE: Final = (-(2**31), 2**31 - 1)
LONG_RANGE: Final = (-(2**63), 2**63 - 1)
#: The smallest double that rounds to infinity as a float32 (FLT_MAX plus half a unit in the last place).
FLOAT32_OVERFLOW: Final = 3.4028235677973366e38
UUID_TEXT: Final = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")

_INTEGERS: Final = ("int", "long")
_FLOATS: Final = ("double", "float")


class Misfit(Exception):
    """A value does not fit: where, the Avro type, the Python type and what is wrong."""

    def __init__(self, path: str, avro_type: str, python_type: str, problem: str, *, union: bool = False):
        super().__init__(f"{path or '(record)'}: {problem}")
        self.path = path or "(record)"
        self.avro_type = avro_type
        self.python_type = python_type
        self.problem = problem
        self.union = union


def _fail(path: str, avro_type: str, datum: Any, problem: str, *, union: bool = False) -> NoReturn:
    raise Misfit(path, avro_type, type(datum).__name__, problem, union=union)


@dataclass(frozen=True, slots=True)
class _Union:
    branches: tuple[Any, ...]  # resolved
    names: tuple[str, ...]  # what fastavro's tuple notation calls each branch
    by_name: Mapping[str, int]  # full names, aliases and type names -> branch index
    notation: bool  # two branches could hold the same Python value: tell fastavro which one


class Fitter:
    """The fit rules for one parsed schema (`fastavro.parse_schema`'s result)."""

    def __init__(self, parsed: Any) -> None:
        self._root = parsed
        self._named: Mapping[str, Any] = parsed.get("__named_schemas", {}) if isinstance(parsed, dict) else {}
        self._unions: dict[int, _Union] = {}

    def prepare(self, datum: Any) -> Any:
        """Return what fastavro must write for `datum`. Raises :class:`Misfit` for the first misfit."""
        return self.value(self._root, datum, "")

    def resolve(self, schema: Any) -> Any:
        """Follow named references and ``{"type": {...}}`` wrappers to the schema node itself."""
        while True:
            if isinstance(schema, str) and schema in self._named:
                schema = self._named[schema]
            elif isinstance(schema, dict) and isinstance(schema.get("type"), dict | list):
                schema = schema["type"]
            else:
                return schema

    def value(self, schema: Any, datum: Any, path: str) -> Any:
        """Check `datum` against `schema` at `path`; return what to write."""
        node = self.resolve(schema)
        if isinstance(node, list):
            return self.union(node, datum, path)
        kind = node if isinstance(node, str) else node["type"]
        logical = node.get("logicalType") if isinstance(node, dict) else None
        if logical == "decimal" and isinstance(datum, decimal.Decimal):
            return _decimal(node, datum, path)
        if logical == "uuid" and kind == "string":
            return _uuid(datum, path)
        if logical in LOGICAL_TYPES and kind == LOGICAL_TYPES[logical][0]:
            python_type = LOGICAL_TYPES[logical][1]
            if isinstance(datum, python_type) and not (
                logical == "date" and isinstance(datum, datetime.datetime)
            ):
                return datum
        if kind in ("record", "error"):
            return self._record(node, datum, path)
        if kind == "array":
            return self._array(node, datum, path)
        if kind == "map":
            return self._map(node, datum, path)
        _leaf(kind, node, datum, path, logical)
        return datum

    def _record(self, node: Mapping[str, Any], datum: Any, path: str) -> Any:
        what = f"record {node['name']}"
        if not isinstance(datum, Mapping):
            _fail(path, what, datum, f"expected a {what}")
        if isinstance(datum, NamedRecord) and not accepts_name(node, datum.avro_name):
            _fail(path, what, datum, f"a NamedRecord of type {datum.avro_name} where the schema has {what}")
        names = set()
        out: dict[str, Any] | None = None
        for field in node["fields"]:
            name = field["name"]
            names.add(name)
            where = f"{path}.{name}" if path else name
            if name not in datum:
                if "default" in field:
                    continue
                raise Misfit(
                    where, type_name(self.resolve(field["type"])), "missing", "missing field (no default)"
                )
            item = datum[name]
            prepared = self.value(field["type"], item, where)
            if prepared is not item:
                out = out if out is not None else dict(datum)
                out[name] = prepared
        for key in datum:
            if key not in names:
                where = f"{path}.{key}" if path else str(key)
                _fail(where, what, datum[key], f"{key!r} is not a field of {what} (fields are not dropped)")
        return datum if out is None else out

    def union_info(self, branches: list[Any]) -> _Union:
        """The branches of a union, resolved, with their names and whether they need tuple notation."""
        return self._union_info(branches)

    def _array(self, node: Mapping[str, Any], datum: Any, path: str) -> Any:
        if not isinstance(datum, list | tuple):
            _fail(path, "array", datum, "expected an array (a list or tuple)")
        items = node["items"]
        out = [self.value(items, item, f"{path}[{index}]") for index, item in enumerate(datum)]
        if type(datum) is list and all(a is b for a, b in zip(out, datum, strict=True)):
            return datum
        return out

    def _map(self, node: Mapping[str, Any], datum: Any, path: str) -> Any:
        if not isinstance(datum, Mapping):
            _fail(path, "map", datum, "expected a map (a mapping with string keys)")
        out: dict[str, Any] | None = None
        for key, item in datum.items():
            where = f"{path}[{key!r}]"
            if not isinstance(key, str):
                _fail(where, "map", key, f"map keys must be strings, got {type(key).__name__}")
            prepared = self.value(node["values"], item, where)
            if prepared is not item:
                out = out if out is not None else dict(datum)
                out[key] = prepared
        return datum if out is None else out

    def union(self, branches: list[Any], datum: Any, path: str) -> Any:
        """Check `datum` against a union (its branches as parsed); return what to write."""
        info = self._union_info(branches)
        name, inner = _named_choice(datum, info)
        if name is not None:
            index = info.by_name.get(name)
            if index is None:
                _fail(
                    path,
                    _union_name(info),
                    inner,
                    f"the value names the branch {name!r}, which the union {list(info.names)} does not have",
                    union=True,
                )
            prepared = self.value(info.branches[index], inner, path)
            return (info.names[index], prepared) if info.notation else prepared
        fits: list[tuple[int, Any]] = []
        misfits: list[Misfit] = []
        for index, branch in enumerate(info.branches):
            try:
                fits.append((index, self.value(branch, datum, path)))
            except Misfit as exc:
                misfits.append(exc)
        if not fits:
            _no_branch(info, datum, path, misfits)
        index, prepared = fits[0] if len(fits) == 1 else _preferred(info, datum, path, fits)
        return (info.names[index], prepared) if info.notation else prepared

    def _union_info(self, branches: list[Any]) -> _Union:
        info = self._unions.get(id(branches))
        if info is None:
            resolved = tuple(self.resolve(b) for b in branches)
            names = tuple(notation_name(b) for b in resolved)
            by_name: dict[str, int] = {}
            for index, node in enumerate(resolved):
                for alias in names_of(node):
                    by_name.setdefault(alias, index)
            kinds = [python_kind(b) for b in resolved]
            logical = any(k.startswith("logical:") for k in kinds) and len(kinds) - kinds.count("none") > 1
            notation = len(set(kinds)) < len(kinds) or logical
            info = _Union(resolved, names, by_name, notation)
            self._unions[id(branches)] = info
        return info


def _leaf(kind: str, node: Any, datum: Any, path: str, logical: str | None) -> None:
    what = type_name(node)
    if kind in _INTEGERS:
        if not isinstance(datum, int) or isinstance(datum, bool):
            _fail(path, what, datum, f"expected {what}, got {type(datum).__name__}")
        low, high = INT_RANGE if kind == "int" else LONG_RANGE
        if not low <= datum <= high:
            _fail(path, what, datum, f"{datum} is out of the {kind} range [{low}, {high}]")
    elif kind in _FLOATS:
        if not isinstance(datum, int | float) or isinstance(datum, bool):
            _fail(path, what, datum, f"expected {what}, got {type(datum).__name__}")
        finite = datum == datum and datum not in (float("inf"), float("-inf"))
        if kind == "float" and finite and abs(datum) >= FLOAT32_OVERFLOW:
            _fail(path, what, datum, f"{datum!r} overflows a float32 (it would be written as infinity)")
        if isinstance(datum, int) and not _converts_to_float(datum):
            _fail(path, what, datum, f"the int is too large for a {kind}")
    elif kind == "boolean":
        if datum is not True and datum is not False:
            _fail(path, what, datum, f"expected a bool, got {type(datum).__name__}")
    elif kind == "null":
        if datum is not None:
            _fail(path, what, datum, f"expected None, got {type(datum).__name__}")
    elif kind == "string":
        if not isinstance(datum, str):
            _fail(path, what, datum, f"expected a str, got {type(datum).__name__}")
    elif kind == "bytes":
        if not isinstance(datum, bytes | bytearray | memoryview):
            _fail(path, what, datum, f"expected bytes, got {type(datum).__name__}")
    elif kind == "enum":
        if not isinstance(datum, str) or datum not in node["symbols"]:
            shown = repr(datum) if isinstance(datum, str) else type(datum).__name__
            _fail(path, what, datum, f"{shown} is not a symbol of {what} {node['symbols']}")
    elif kind == "fixed":
        if not isinstance(datum, bytes | bytearray) or len(datum) != node["size"]:
            got = f"{len(datum)} bytes" if isinstance(datum, bytes | bytearray) else type(datum).__name__
            _fail(path, what, datum, f"expected exactly {node['size']} bytes, got {got}")
    else:
        _fail(path, what, datum, f"unknown type {kind!r}")


def _converts_to_float(value: int) -> bool:
    try:
        float(value)
    except OverflowError:
        return False
    return True


def _decimal(node: Mapping[str, Any], value: decimal.Decimal, path: str) -> decimal.Decimal:
    what = type_name(node)
    exponent = value.as_tuple().exponent
    if not isinstance(exponent, int):
        _fail(path, what, value, f"decimal {value} is not finite")
    scale = int(node.get("scale", 0))
    precision = int(node.get("precision", 0))
    if -exponent > scale:
        _fail(path, what, value, f"decimal {value} has {-exponent} fraction digits, over the scale {scale}")
    if value and value.adjusted() >= precision - scale:
        _fail(path, what, value, f"decimal {value} has more integer digits than {what} holds")
    return value


def _uuid(datum: Any, path: str) -> Any:
    if isinstance(datum, uuid.UUID):
        return datum
    if not isinstance(datum, str):
        _fail(path, "string (uuid)", datum, f"expected a UUID or its string, got {type(datum).__name__}")
    if UUID_TEXT.fullmatch(datum) is None:
        _fail(path, "string (uuid)", datum, "the string is not a UUID (8-4-4-4-12 hex digits)")
    return datum


def _named_choice(datum: Any, info: _Union) -> tuple[str | None, Any]:
    if isinstance(datum, NamedRecord):
        return datum.avro_name, datum
    if type(datum) is tuple and len(datum) == 2 and isinstance(datum[0], str) and datum[0] in info.by_name:
        return datum[0], datum[1]
    return None, datum


def _preferred(info: _Union, datum: Any, path: str, fits: list[tuple[int, Any]]) -> tuple[int, Any]:
    kinds = {index: kind_of_node(info.branches[index]) for index, _ in fits}
    if isinstance(datum, Mapping):
        candidates = [info.names[index] for index, _ in fits]
        _fail(
            path,
            _union_name(info),
            datum,
            f"a plain dict that branches {candidates} would all hold: say which (NamedRecord or "
            "(name, value))",
            union=True,
        )
    order = (*_INTEGERS, *_FLOATS) if isinstance(datum, int) else _FLOATS
    for wanted in order:
        for index, prepared in fits:
            if kinds[index] == wanted:
                return index, prepared
    return fits[0]


def _no_branch(info: _Union, datum: Any, path: str, misfits: list[Misfit]) -> NoReturn:
    same_kind = [
        m for m, b in zip(misfits, info.branches, strict=True) if python_kind(b) == kind_of_value(datum)
    ]
    if len(same_kind) == 1:
        raise same_kind[0]  # the branch it was meant for: its deeper path says more
    _fail(path, _union_name(info), datum, f"{type(datum).__name__} fits no branch of {_union_name(info)}")


def _union_name(info: _Union) -> str:
    return "union [" + ", ".join(info.names) + "]"


__all__ = [
    "FLOAT32_OVERFLOW",
    "INT_RANGE",
    "LOGICAL_TYPES",
    "LONG_RANGE",
    "UUID_TEXT",
    "Fitter",
    "Misfit",
    "accepts_name",
    "type_name",
]
