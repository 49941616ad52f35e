"""Avro schema compatibility: can a reader schema read data written with a writer schema?

Pure functions over fastavro-parsed schemas (`AvroSchema`), following the schema-resolution rules of the
Avro specification the way Avro's Java `SchemaCompatibility` (and so Confluent's registry) applies them:

- records: each reader field is read from the writer field of the same name (or one of the reader field's
  aliases); a reader field the writer lacks needs a default; writer fields the reader lacks are skipped;
- named types (records, enums, fixed) match when their unqualified names are equal or the writer's full
  name is one of the reader's aliases; fixed sizes must be equal;
- an enum symbol the writer has and the reader lacks breaks reading unless the reader declares a default;
- promotions: int to long, float or double; long to float or double; float to double; string and bytes
  both ways;
- a writer union is readable when every branch is; a reader union reads a non-union writer when one of
  its branches does; arrays and maps compare their items and values.

Every problem is reported as ``"ERROR_TYPE at '/path': description"``, the path naming where in the
reader schema it was found (``/fields/1/type/items``), which is what verbose compatibility answers show.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from devstack.registry.schemas import AvroSchema

__all__ = ["check_level", "reader_problems"]

_PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})
_PROMOTIONS = {
    ("int", "long"),
    ("int", "float"),
    ("int", "double"),
    ("long", "float"),
    ("long", "double"),
    ("float", "double"),
    ("string", "bytes"),
    ("bytes", "string"),
}


def check_level(level: str, new: AvroSchema, previous: Sequence[tuple[int, AvroSchema]]) -> list[str]:
    """Problems that make `new` break `level` against each ``(version, schema)`` in `previous`.

    The caller picks `previous`: the latest version for BACKWARD/FORWARD/FULL, every version for the
    transitive levels. BACKWARD means the new schema reads old data, FORWARD means old schemas read new
    data, FULL means both. NONE never has problems.
    """
    problems: list[str] = []
    backward = level.startswith(("BACKWARD", "FULL"))
    forward = level.startswith(("FORWARD", "FULL"))
    for version, old in previous:
        if backward:
            problems += [
                f"{p} (the new schema cannot read data written with version {version})"
                for p in reader_problems(new, old)
            ]
        if forward:
            problems += [
                f"{p} (version {version} cannot read data written with the new schema)"
                for p in reader_problems(old, new)
            ]
    return problems


def reader_problems(reader: AvroSchema, writer: AvroSchema) -> list[str]:
    """Why `reader` cannot read everything `writer` writes; empty when it can."""
    checker = _Checker(reader.named, writer.named)
    checker.check(reader.parsed, writer.parsed, "")
    return checker.problems


@dataclass
class _Checker:
    reader_named: Mapping[str, Any]
    writer_named: Mapping[str, Any]
    problems: list[str] = field(default_factory=list)
    # Pairs of named types being compared higher up the stack: recursive types are assumed compatible there.
    _in_progress: set[tuple[str, str]] = field(default_factory=set)

    def fail(self, error_type: str, path: str, description: str) -> None:
        self.problems.append(f"{error_type} at '{path or '/'}': {description}")

    def readable(self, reader: Any, writer: Any) -> bool:
        """Whether reader reads writer, without recording anything (used to pick union branches)."""
        probe = _Checker(self.reader_named, self.writer_named, [], set(self._in_progress))
        probe.check(reader, writer, "")
        return not probe.problems

    def check(self, reader: Any, writer: Any, path: str) -> None:
        reader = _resolve(reader, self.reader_named)
        writer = _resolve(writer, self.writer_named)
        r_kind, w_kind = _kind(reader), _kind(writer)
        if w_kind == "union":
            for index, branch in enumerate(writer):
                if r_kind == "union":
                    if not any(self.readable(rb, branch) for rb in reader):
                        self.fail(
                            "MISSING_UNION_BRANCH",
                            path,
                            f"no reader branch reads the writer's {_describe(branch)} (branch {index})",
                        )
                else:
                    self.check(reader, branch, path)
            return
        if r_kind == "union":
            if not any(self.readable(rb, writer) for rb in reader):
                self.fail(
                    "MISSING_UNION_BRANCH", path, f"no branch of the reader union reads {_describe(writer)}"
                )
            return
        if r_kind != w_kind:
            if (w_kind, r_kind) not in _PROMOTIONS:
                self.fail("TYPE_MISMATCH", path, f"reader type {r_kind} does not read writer type {w_kind}")
            return
        self._check_same_kind(r_kind, reader, writer, path)

    def _check_same_kind(self, kind: str, reader: Any, writer: Any, path: str) -> None:
        if kind == "array":
            self.check(reader["items"], writer["items"], f"{path}/items")
        elif kind == "map":
            self.check(reader["values"], writer["values"], f"{path}/values")
        elif kind in ("record", "enum", "fixed"):
            if not _names_match(reader, writer):
                self.fail(
                    "NAME_MISMATCH",
                    f"{path}/name",
                    f"expected {writer['name']!r} (or an alias of it), found {reader['name']!r}",
                )
                return
            if kind == "fixed" and reader["size"] != writer["size"]:
                self.fail(
                    "FIXED_SIZE_MISMATCH",
                    f"{path}/size",
                    f"expected size {writer['size']} as the writer's, found {reader['size']}",
                )
            elif kind == "enum":
                self._check_enum(reader, writer, path)
            elif kind == "record":
                self._check_record(reader, writer, path)

    def _check_enum(self, reader: Mapping[str, Any], writer: Mapping[str, Any], path: str) -> None:
        missing = [s for s in writer["symbols"] if s not in reader["symbols"]]
        if missing and "default" not in reader:
            self.fail(
                "MISSING_ENUM_SYMBOLS",
                f"{path}/symbols",
                f"the reader enum {reader['name']!r} lacks writer symbols {missing} and has no default",
            )

    def _check_record(self, reader: Mapping[str, Any], writer: Mapping[str, Any], path: str) -> None:
        key = (reader["name"], writer["name"])
        if key in self._in_progress:
            return
        self._in_progress.add(key)
        try:
            writer_fields = {f["name"]: f for f in writer["fields"]}
            for index, r_field in enumerate(reader["fields"]):
                field_path = f"{path}/fields/{index}"
                names = [r_field["name"], *r_field.get("aliases", ())]
                w_field = next((writer_fields[n] for n in names if n in writer_fields), None)
                if w_field is not None:
                    self.check(r_field["type"], w_field["type"], f"{field_path}/type")
                elif "default" not in r_field:
                    self.fail(
                        "READER_FIELD_MISSING_DEFAULT_VALUE",
                        field_path,
                        f"the reader field {r_field['name']!r} is not in the writer and has no default",
                    )
        finally:
            self._in_progress.discard(key)


def _resolve(node: Any, named: Mapping[str, Any]) -> Any:
    """Follow named-type references and unwrap ``{"type": "int"}``-style primitives."""
    for _ in range(64):  # a name can point at a name; bounded so a malformed map cannot loop forever
        if isinstance(node, str) and node not in _PRIMITIVES and node in named:
            node = named[node]
        elif isinstance(node, dict) and isinstance(node.get("type"), str) and node["type"] in _PRIMITIVES:
            node = node["type"]
        elif isinstance(node, dict) and isinstance(node.get("type"), str | dict | list) and _is_wrapper(node):
            node = node["type"]
        else:
            return node
    return node


def _is_wrapper(node: Mapping[str, Any]) -> bool:
    """``{"type": "some.Name"}`` or ``{"type": {...}}``: a schema wrapped in a type attribute."""
    inner = node["type"]
    return not (isinstance(inner, str) and inner in ("record", "enum", "fixed", "array", "map", "error"))


def _kind(node: Any) -> str:
    if isinstance(node, list):
        return "union"
    if isinstance(node, dict):
        kind = str(node["type"])
        return "record" if kind == "error" else kind
    return str(node)


def _names_match(reader: Mapping[str, Any], writer: Mapping[str, Any]) -> bool:
    r_full, w_full = str(reader["name"]), str(writer["name"])
    if _short(r_full) == _short(w_full):
        return True
    namespace = r_full.rpartition(".")[0]
    aliases = {a if "." in a or not namespace else f"{namespace}.{a}" for a in reader.get("aliases", ())}
    return w_full in aliases


def _short(full_name: str) -> str:
    return full_name.rpartition(".")[2]


def _describe(node: Any) -> str:
    kind = _kind(node)
    if isinstance(node, dict) and "name" in node:
        return f"{kind} {node['name']!r}"
    return kind
