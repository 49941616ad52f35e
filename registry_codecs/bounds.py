"""Bounds on what a hostile Avro body can make the decoder do, checked before fastavro reads it.

fastavro already refuses a string or bytes length longer than the bytes left (its read comes up short and
it raises EOFError without allocating), and an array or map whose items take at least one byte runs out of
bytes after at most one item per byte. Two shapes are not bounded by the body's size, and a body of a few
bytes turns them into an outage of the whole worker:

* an array whose items take no bytes (``null``, a ``fixed`` of size 0, a record of only those): a block
  count of 2**40 makes fastavro append 2**40 items, until the process runs out of memory;
* a recursive type (a record that reaches itself, e.g. a linked list through ``["null", "Node"]``): each
  level costs one byte, and fastavro's compiled reader recurses on the C stack without a limit, so ten
  thousand bytes crash the interpreter with a segmentation fault. Bodies nested up to `MAX_DEPTH`
  levels decode; deeper ones are refused with `BodyTooDeep`.

`BodyGuard.for_schema` tells, once per writer schema, whether it has either shape; only those bodies are
walked (`BodyGuard.check`), in pure Python, before fastavro sees them. The walk also refuses every length
or count claiming more than the bytes left, so the error says which claim lies. Schemas without these
shapes (the vast majority) cost nothing.

fastavro's writer recurses the same way, so `DepthGuard` does for records to encode what the walk does
for bodies: a record of a recursive schema nested deeper than `MAX_DEPTH` is refused with `RecordTooDeep`
before the writer sees it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from registry_codecs.errors import DecodeError, RecordDoesNotFitSchema

#: Deepest nesting a record may use, read or written: each record, array and map on the way down from the
#: top-level value counts one level (a union adds none), so a linked list of 2,000 records through
#: ``["null", "Node"]`` is the deepest allowed. fastavro's compiled reader and writer recurse on the C
#: stack, two frames per such level; measured on an 8 MiB thread stack (Linux's default), the writer
#: crashes at about 3,500 nodes and the reader at about 4,500, and the worker gives its codec threads
#: more (`workers.app`). Real records stay far below.
MAX_DEPTH: Final = 2000
#: Most array items that take no bytes (``null``, empty records) one body may claim in total.
MAX_EMPTY_ITEMS: Final = 1 << 16

_FIXED_WIDTH: Final = {"null": 0, "boolean": 1, "float": 4, "double": 8}
_VARINT: Final = frozenset({"int", "long", "enum"})
_NAMED: Final = frozenset({"record", "error", "enum", "fixed"})


class BodyOutOfBounds(DecodeError):
    """A body claims more than it holds (a length or count past its end) or nests deeper than allowed."""


class BodyTooDeep(BodyOutOfBounds):
    """A body nests records, arrays or maps deeper than `MAX_DEPTH`."""

    reason = "record_too_deep"


class RecordTooDeep(RecordDoesNotFitSchema):
    """A record to encode nests records, arrays or maps deeper than `MAX_DEPTH`."""

    reason = "record_too_deep"


class BodyGuard:
    """The walk of `check_body` for one parsed writer schema, with its named types and widths worked out
    once. `BodyGuard.for_schema` returns None for schemas that do not need it."""

    def __init__(self, schema: Any) -> None:
        self._schema = schema
        self._named = _named_types(schema)
        self._widths = _Widths(self._named)

    @classmethod
    def for_schema(cls, schema: Any) -> BodyGuard | None:
        """A guard for `schema` when its bodies can exhaust memory or the stack, else None."""
        guard = cls(schema)
        return guard if guard.needed else None

    @property
    def needed(self) -> bool:
        """Whether the schema has an array of items that take no bytes, or a type that contains itself."""
        return _has_empty_array(self._schema, self._named, self._widths, set()) or _is_recursive(self._named)

    def check(self, data: bytes, start: int = 0) -> None:
        """Walk the body ``data[start:]`` without building any value. Raises as `check_body` does."""
        _Walker(memoryview(data), start, self._named, self._widths).walk(self._schema, 0)


def needs_check(schema: Any) -> bool:
    """Whether bodies written with the parsed `schema` can exhaust memory or the stack unbounded.

    True when the schema has an array whose items take no bytes, or a named type that contains itself.
    """
    return BodyGuard(schema).needed


def check_body(schema: Any, data: bytes, start: int = 0) -> None:
    """Walk the body ``data[start:]`` written with the parsed `schema` without building any value.

    Raises:
        BodyOutOfBounds: a length or count claims more than the bytes left, a union or enum index is out
            of range, the nesting is deeper than `MAX_DEPTH`, or more than `MAX_EMPTY_ITEMS` empty items.
    """
    BodyGuard(schema).check(data, start)


def _named_types(schema: Any) -> dict[str, Any]:
    found: dict[str, Any] = {}
    if isinstance(schema, Mapping) and isinstance(schema.get("__named_schemas"), Mapping):
        found.update(schema["__named_schemas"])
    stack = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, Mapping):
            if node.get("type") in _NAMED and node.get("name") not in found:
                found[node["name"]] = node
            stack.extend(f["type"] for f in node.get("fields", ()))
            stack.extend(node[k] for k in ("items", "values") if k in node)
            if isinstance(node.get("type"), Mapping | list):
                stack.append(node["type"])
    return found


def _resolve(schema: Any, named: Mapping[str, Any]) -> Any:
    while isinstance(schema, str) and schema in named:
        schema = named[schema]
    while isinstance(schema, Mapping) and isinstance(schema.get("type"), Mapping | list):
        schema = schema["type"]  # {"type": {...}} wraps a type
    return schema


def _kind(schema: Any) -> str:
    if isinstance(schema, list):
        return "union"
    if isinstance(schema, Mapping):
        return str(schema["type"])
    return str(schema)


class _Widths:
    """The fewest bytes a value of each type can take (0 only for null, fixed(0) and records of those)."""

    def __init__(self, named: Mapping[str, Any]) -> None:
        self._named = named
        self._done: dict[str, int] = {}

    def of(self, schema: Any, visiting: frozenset[str] = frozenset()) -> int:
        name = schema if isinstance(schema, str) and schema in self._named else None
        if name is not None:
            if name in self._done:
                return self._done[name]
            if name in visiting:
                return 1  # a type inside itself needs at least a union index or an array count to stop
            visiting = visiting | {name}
        schema = _resolve(schema, self._named)
        width = self._width(schema, visiting)
        if name is not None:  # a width cut short by a cycle (records alone, no finite value) is still >= 1
            self._done[name] = width
        return width

    def _width(self, schema: Any, visiting: frozenset[str]) -> int:
        kind = _kind(schema)
        if kind in ("record", "error"):
            name = schema.get("name")
            inner = visiting | {name} if isinstance(name, str) else visiting
            return sum(self.of(f["type"], inner) for f in schema["fields"])
        if kind == "fixed":
            return int(schema["size"])
        return _FIXED_WIDTH.get(kind, 1)  # varints, lengths, counts and union indexes take >= 1 byte


def _has_empty_array(schema: Any, named: Mapping[str, Any], widths: _Widths, seen: set[str]) -> bool:
    if isinstance(schema, str) and schema in named:
        if schema in seen:
            return False
        seen.add(schema)
    schema = _resolve(schema, named)
    kind = _kind(schema)
    if kind == "union":
        children = list(schema)
    elif kind in ("record", "error"):
        children = [f["type"] for f in schema["fields"]]
    elif kind == "array":
        if widths.of(schema["items"]) == 0:
            return True
        children = [schema["items"]]
    elif kind == "map":
        children = [schema["values"]]
    else:
        children = []
    return any(_has_empty_array(child, named, widths, seen) for child in children)


def _is_recursive(named: Mapping[str, Any]) -> bool:
    """Whether some named type reaches itself."""
    edges = {name: _refs_inside(node) for name, node in named.items()}
    for start in edges:  # every named type of a parsed schema is reachable from it
        stack, seen = list(edges.get(start, ())), set()
        while stack:
            name = stack.pop()
            if name == start:
                return True
            if name not in seen:
                seen.add(name)
                stack.extend(edges.get(name, ()))
    return False


def _is_named(schema: Any) -> bool:
    return isinstance(schema, Mapping) and schema.get("type") in _NAMED and "name" in schema


def _refs_inside(schema: Any) -> set[str]:
    """The named types that `schema`'s own body uses (by name or defined inline), without going into them."""
    names: set[str] = set()
    if isinstance(schema, Mapping) and schema.get("type") in ("record", "error"):
        stack = [f["type"] for f in schema["fields"]]
    elif _is_named(schema):
        return names  # enum, fixed: nothing inside
    else:
        stack = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, str):
            names.add(node)
        elif isinstance(node, list):
            stack.extend(node)
        elif _is_named(node):
            names.add(node["name"])
        elif isinstance(node, Mapping):
            stack.extend(node[k] for k in ("type", "items", "values") if k in node)
    return names


class _Items:
    """Where the walk is inside an array or map: its item schema, the width of an item, items left."""

    __slots__ = ("item", "kind", "left", "width")

    def __init__(self, schema: Mapping[str, Any], kind: str, widths: _Widths) -> None:
        self.kind = kind
        self.item = schema["items"] if kind == "array" else schema["values"]
        self.width = widths.of(self.item) + (1 if kind == "map" else 0)  # a map key takes >= 1 byte
        self.left = 0


class _Walker:
    """Reads a body the way fastavro would, checking every length, count, index and level on the way.

    Iterative (an explicit stack, not Python recursion), so a body as deep as `MAX_DEPTH` allows never
    meets Python's recursion limit.
    """

    def __init__(self, data: memoryview, pos: int, named: Mapping[str, Any], widths: _Widths) -> None:
        self.data = data
        self.pos = pos
        self.named = named
        self.widths = widths
        self.empty_items = 0

    def fail(self, message: str, error: type[BodyOutOfBounds] = BodyOutOfBounds) -> BodyOutOfBounds:
        return error(f"{message} (at byte {self.pos} of {len(self.data)})")

    def varint(self) -> int:
        result = shift = 0
        while True:
            if self.pos >= len(self.data):
                raise self.fail("a number runs past the end of the body")
            byte = self.data[self.pos]
            self.pos += 1
            result |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return (result >> 1) ^ -(result & 1)
            shift += 7
            if shift > 63:
                raise self.fail("a number is longer than 10 bytes")

    def skip(self, size: int, what: str) -> None:
        left = len(self.data) - self.pos
        if size < 0 or size > left:
            raise self.fail(f"{what} claims {size} bytes, {left} left")
        self.pos += size

    def walk(self, schema: Any, depth: int) -> None:
        """Walk one value of `schema`, `depth` records, arrays and maps down (unions add no level)."""
        stack: list[tuple[Any, int]] = [(schema, depth)]
        while stack:
            node, depth = stack.pop()
            if isinstance(node, _Items):
                self.next_item(node, depth, stack)
            else:
                self.step(_resolve(node, self.named), depth, stack)

    def step(self, schema: Any, depth: int, stack: list[tuple[Any, int]]) -> None:
        kind = _kind(schema)
        if kind in _FIXED_WIDTH:
            self.skip(_FIXED_WIDTH[kind], kind)
        elif kind in _VARINT:
            index = self.varint()
            if kind == "enum" and not 0 <= index < len(schema["symbols"]):
                raise self.fail(f"enum index {index} out of range")
        elif kind in ("string", "bytes"):
            self.skip(self.varint(), kind)
        elif kind == "fixed":
            self.skip(int(schema["size"]), "fixed")
        elif kind == "union":
            index = self.varint()
            if not 0 <= index < len(schema):
                raise self.fail(f"union index {index} out of range")
            stack.append((schema[index], depth))
        elif depth >= MAX_DEPTH:
            raise self.fail(f"nesting deeper than {MAX_DEPTH} levels", BodyTooDeep)
        elif kind in ("record", "error"):
            stack.extend((field["type"], depth + 1) for field in reversed(schema["fields"]))
        elif kind in ("array", "map"):
            stack.append((_Items(schema, kind, self.widths), depth + 1))
        else:
            raise self.fail(f"unknown type {kind!r}")

    def next_item(self, items: _Items, depth: int, stack: list[tuple[Any, int]]) -> None:
        """Queue the next item of an array or map (reading the next block's count when one ends)."""
        if not items.left:
            items.left = self.block_count(items)
            if not items.left:
                return  # the closing zero count
        items.left -= 1
        stack.append((items, depth))  # come back for the item after this one
        if items.kind == "map":
            self.skip(self.varint(), "map key")
        stack.append((items.item, depth))

    def block_count(self, items: _Items) -> int:
        count = self.varint()
        kind, width = items.kind, items.width
        if count < 0:  # a negative count is followed by the block's size in bytes
            count = -count
            size, left = self.varint(), len(self.data) - self.pos
            if not 0 <= size <= left:
                raise self.fail(f"{kind} block claims {size} bytes, {left} left")
        left = len(self.data) - self.pos
        if width and count > left // width:
            raise self.fail(f"{kind} block claims {count} items of >= {width} bytes, {left} bytes left")
        if not width:
            self.empty_items += count
            if self.empty_items > MAX_EMPTY_ITEMS:
                raise self.fail(f"array claims {self.empty_items} empty items, over {MAX_EMPTY_ITEMS}")
        return count


class DepthGuard:
    """Refuses records nested deeper than `MAX_DEPTH` before fastavro's writer recurses into them.

    fastavro's compiled writer recurses on the C stack like its reader: a transform that returns a linked
    list ten thousand records long crashes the process with a segmentation fault. Only schemas with a type
    that contains itself can take such a record, so `for_schema` returns a guard for those alone.
    """

    @classmethod
    def for_schema(cls, schema: Any) -> DepthGuard | None:
        """A guard for the parsed `schema` when it is recursive, else None."""
        return cls() if _is_recursive(_named_types(schema)) else None

    def check(self, datum: Any) -> None:
        """Raise `RecordTooDeep` when `datum` nests records, arrays or maps deeper than `MAX_DEPTH`.

        Counts containers (mappings for records and maps, lists and tuples for arrays) without Python
        recursion; ``(name, value)`` pairs naming a union branch add no level.
        """
        stack: list[tuple[Any, int]] = [(datum, 0)]
        while stack:
            node, depth = stack.pop()
            if isinstance(node, tuple) and len(node) == 2 and isinstance(node[0], str):
                stack.append((node[1], depth))
                continue
            if isinstance(node, Mapping):
                children: Any = node.values()
            elif isinstance(node, list | tuple):
                children = node
            else:
                continue
            if depth >= MAX_DEPTH:
                raise RecordTooDeep(
                    f"the record nests records, arrays or maps deeper than {MAX_DEPTH} levels "
                    "(fastavro's writer would overflow the C stack)"
                )
            stack.extend((child, depth + 1) for child in children)


__all__ = [
    "MAX_DEPTH",
    "MAX_EMPTY_ITEMS",
    "BodyGuard",
    "BodyOutOfBounds",
    "BodyTooDeep",
    "DepthGuard",
    "RecordTooDeep",
    "check_body",
    "needs_check",
]
