"""The compiled check that runs before every encode: `compile_validator`, once per parsed schema.

`registry_codecs.fit` says what fits, but walks the schema for every value. Here the same rules are compiled
once per schema into generated Python functions (one per record type, the checks inline), so that a record
costs a few type identity tests and range comparisons per field, well under a tenth of fastavro's own work.
The compiled check is deliberately narrow: it checks in Python only what fastavro would coerce or write
without looking (numbers and their ranges, booleans, null, bytes, decimals' precision, uuid strings, dates,
timestamps, containers, missing and unknown fields, union branches), and leaves to fastavro what it refuses
itself (strings, enum symbols, fixed sizes, map keys). Anything the compiled check is unsure of (an int
subclass, a union it has no fast path for, a record omitting fields that have defaults) it hands to
`Fitter`, which decides and explains; when fastavro still refuses a datum, `Fitter` explains that too.

The validator returns what to write: the datum itself, or a copy in which union values carry fastavro's
tuple notation ``(branch, value)`` so that fastavro writes the branch chosen here.
"""

from __future__ import annotations

import datetime
import decimal
import sys
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from registry_codecs.fit import FLOAT32_OVERFLOW, INT_RANGE, LOGICAL_TYPES, LONG_RANGE, UUID_TEXT, Fitter
from registry_codecs.unions import NamedRecord

Validator = Callable[[Any], Any]

_LOGICAL_PYTHON = {
    "date": "_date",
    "time-millis": "_time",
    "time-micros": "_time",
    "timestamp-millis": "_datetime",
    "timestamp-micros": "_datetime",
    "timestamp-nanos": "_datetime",
    "local-timestamp-millis": "_datetime",
    "local-timestamp-micros": "_datetime",
    "local-timestamp-nanos": "_datetime",
}
_RANGES = {"int": INT_RANGE, "long": LONG_RANGE}


class _Slow(Exception):
    """The compiled check cannot accept this datum; the fitter decides."""


@dataclass(frozen=True, slots=True)
class CompiledCheck:
    """The compiled check of one schema and the fitter behind it.

    Attributes:
        fast: ``fast(datum) -> what to write``; raises (anything) when it is not sure the datum fits.
        prepare: the fitter's `Fitter.prepare`: decides, returns what to write or raises `Misfit`.
    """

    fast: Validator
    prepare: Validator

    def __call__(self, datum: Any) -> Any:
        """Return what to write for `datum`, or raise `registry_codecs.fit.Misfit`."""
        try:
            return self.fast(datum)
        # The compiled check only says yes or "not sure" (any exception: _Slow, KeyError, TypeError ...).
        except Exception:  # noqa: BLE001
            return self.prepare(datum)


def compile_validator(parsed: Any) -> CompiledCheck:
    """Compile the check of a parsed schema (once per schema; the serializer keeps it per schema id)."""
    fitter = Fitter(parsed)
    return CompiledCheck(_Generator(fitter).build(parsed), fitter.prepare)


class _Generator:
    def __init__(self, fitter: Fitter) -> None:
        self._fitter = fitter
        self._namespace: dict[str, Any] = {
            "_S": _Slow,
            "_NR": NamedRecord,
            "_M": object(),
            "_Dec": decimal.Decimal,
            "_UUID": uuid.UUID,
            "_uuid_text": UUID_TEXT.fullmatch,
            "_date": datetime.date,
            "_time": datetime.time,
            "_datetime": datetime.datetime,
            "_INF": (float("inf"), float("-inf")),
        }
        self._functions: list[str] = []
        self._records: dict[str, str] = {}
        self._counter = 0
        self._prep_memo: dict[str, bool] = {}

    def build(self, parsed: Any) -> Validator:
        node = self._fitter.resolve(parsed)
        if isinstance(node, dict) and node["type"] in ("record", "error"):
            top = self._record(node)  # a record returns what to write: no wrapper call per datum
        else:
            lines: list[str] = []
            expr = self._check(parsed, "v", lines, "    ")
            self._functions.append(f"def _top(v):\n{''.join(lines)}    return {expr or 'v'}\n")
            top = "_top"
        source = "\n".join(self._functions)
        # Generated from the schema's names (as repr() literals) and constants, never from data.
        exec(compile(source, "<avro validator>", "exec"), self._namespace)  # noqa: S102
        function: Validator = self._namespace[top]
        return function

    def _name(self, prefix: str) -> str:
        self._counter += 1
        return f"_{prefix}{self._counter}"

    def _const(self, value: Any) -> str:
        name = self._name("c")
        self._namespace[name] = value
        return name

    # ----- what may change on the way to fastavro ------------------------------------------------------

    def _needs_prepare(self, schema: Any, visiting: frozenset[str] = frozenset()) -> bool:
        node = self._fitter.resolve(schema)
        if isinstance(node, list):
            return self._union_kind(node) != "nullable" or any(self._needs_prepare(b, visiting) for b in node)
        if not isinstance(node, dict):
            return False
        kind = node["type"]
        if kind in ("record", "error"):
            name = node["name"]
            if name in self._prep_memo:
                return self._prep_memo[name]
            if name in visiting:
                return False
            result = any(self._needs_prepare(f["type"], visiting | {name}) for f in node["fields"])
            if not visiting:
                self._prep_memo[name] = result
            return result
        if kind == "array":
            return self._needs_prepare(node["items"], visiting)
        if kind == "map":
            return self._needs_prepare(node["values"], visiting)
        return False

    def _union_kind(self, branches: list[Any]) -> str:
        info = self._fitter.union_info(branches)
        others = [b for b in info.branches if b != "null"]
        if len(info.branches) == 2 and len(others) == 1 and not isinstance(others[0], list):
            return "nullable"
        records = [b for b in others if isinstance(b, dict) and b["type"] in ("record", "error")]
        if len(records) == len(others) and len(records) >= 2:
            return "records"
        return "general"

    # ----- code for one value --------------------------------------------------------------------------

    def _check(
        self, schema: Any, var: str, lines: list[str], ind: str, *, in_union: bool = False
    ) -> str | None:
        """Append lines checking `var`; return an expression for what to write when it may differ."""
        node = self._fitter.resolve(schema)
        if isinstance(node, list):
            return self._union(node, var, lines, ind)
        kind = node if isinstance(node, str) else node["type"]
        logical = node.get("logicalType") if isinstance(node, dict) else None
        if kind in ("record", "error"):
            if not self._needs_prepare(node) and not self._recursive(node["name"]):
                self._record_body(node, var, lines, ind, prepares=False)  # inline: no call per record
                return None
            function = self._record(node)
            if self._needs_prepare(node):
                return f"{function}({var})"
            lines.append(f"{ind}{function}({var})\n")
            return None
        if kind in ("array", "map"):
            return self._container(node, kind, var, lines, ind, in_union=in_union)
        if logical == "decimal":
            self._decimal(node, var, lines, ind)
        elif logical == "uuid" and kind == "string":
            uuid_ok = f"type({var}) is _UUID or (type({var}) is str and _uuid_text({var}) is not None)"
            lines.append(f"{ind}if not ({uuid_ok}): raise _S\n")
        elif logical in _LOGICAL_PYTHON and LOGICAL_TYPES[logical][0] == kind:
            python = _LOGICAL_PYTHON[logical]
            lines.append(
                f"{ind}if type({var}) is not {python} and not ({self._int_ok(kind, var)}): raise _S\n"
            )
        else:
            self._leaf(kind, var, lines, ind)
        return None

    @staticmethod
    def _int_ok(kind: str, var: str) -> str:
        if kind == "long":  # fastavro refuses ints past 64 bits itself (OverflowError); 32 bits it does not
            return f"type({var}) is int"
        low, high = _RANGES[kind]
        return f"type({var}) is int and {low} <= {var} <= {high}"

    def _leaf(self, kind: str, var: str, lines: list[str], ind: str) -> None:
        if kind in _RANGES:
            lines.append(f"{ind}if not ({self._int_ok(kind, var)}): raise _S\n")
        elif kind == "float":
            limit = repr(FLOAT32_OVERFLOW)
            lines.append(f"{ind}if type({var}) is float:\n")
            lines.append(
                f"{ind}    if ({var} >= {limit} or {var} <= -{limit}) and {var} not in _INF: raise _S\n"
            )
            lines.append(f"{ind}elif type({var}) is not int or not -{limit} < {var} < {limit}: raise _S\n")
        elif kind == "double":
            # An int past the largest double overflows float(): the fitter decides those near the edge.
            limit = repr(sys.float_info.max)
            lines.append(
                f"{ind}if type({var}) is not float and "
                f"(type({var}) is not int or not -{limit} <= {var} <= {limit}): raise _S\n"
            )
        elif kind == "boolean":
            lines.append(f"{ind}if {var} is not True and {var} is not False: raise _S\n")
        elif kind == "null":
            lines.append(f"{ind}if {var} is not None: raise _S\n")
        elif kind in ("bytes", "fixed"):
            lines.append(f"{ind}if type({var}) is not bytes and type({var}) is not bytearray: raise _S\n")
        # string and enum: fastavro refuses what is not a str, or not a symbol, by itself

    def _decimal(self, node: Mapping[str, Any], var: str, lines: list[str], ind: str) -> None:
        digits = int(node.get("precision", 0)) - int(node.get("scale", 0))
        lines.append(f"{ind}if type({var}) is _Dec:\n")
        # Scale and non-finite values: fastavro refuses them. Integer digits beyond the precision it writes.
        lines.append(f"{ind}    if {var}.adjusted() >= {digits} and {var}: raise _S\n")
        lines.append(f"{ind}elif type({var}) is not bytes and type({var}) is not bytearray: raise _S\n")

    def _container(
        self, node: Mapping[str, Any], kind: str, var: str, lines: list[str], ind: str, *, in_union: bool
    ) -> str | None:
        item = node["items"] if kind == "array" else node["values"]
        if kind == "array" and in_union:  # a tuple in a union would read as fastavro's tuple notation
            lines.append(f"{ind}if type({var}) is not list: raise _S\n")
        elif kind == "array":
            lines.append(f"{ind}if type({var}) is not list and type({var}) is not tuple: raise _S\n")
        else:
            lines.append(f"{ind}if type({var}) is not dict: raise _S\n")
        x = self._name("x")
        inner: list[str] = []
        expr = self._check(item, x, inner, ind + "    ")
        if expr is not None:
            function = self._name("item")
            self._functions.append(
                f"def {function}({x}):\n{''.join(i[len(ind) :] for i in inner)}    return {expr}\n"
            )
            if kind == "array":
                return f"[{function}({x}) for {x} in {var}]"
            return f"{{_k: {function}({x}) for _k, {x} in {var}.items()}}"
        if inner:
            values = var if kind == "array" else f"{var}.values()"
            lines.append(f"{ind}for {x} in {values}:\n")
            lines.extend(inner)
        return None

    def _union(self, branches: list[Any], var: str, lines: list[str], ind: str) -> str | None:
        shape = self._union_kind(branches)
        if shape == "nullable":
            other = next(b for b in branches if self._fitter.resolve(b) != "null")
            inner: list[str] = []
            expr = self._check(other, var, inner, ind + "    ", in_union=True)
            if expr is None:
                if inner:
                    lines.append(f"{ind}if {var} is not None:\n")
                    lines.extend(inner)
                return None
            function = self._name("opt")
            self._functions.append(
                f"def {function}({var}):\n{''.join(i[len(ind) :] for i in inner)}    return {expr}\n"
            )
            return f"(None if {var} is None else {function}({var}))"
        walker = self._const(lambda value, _b=branches: self._fitter.union(_b, value, ""))
        if shape == "general":
            return f"{walker}({var})"
        return self._record_union(branches, var, walker)

    def _record_union(self, branches: list[Any], var: str, walker: str) -> str:
        info = self._fitter.union_info(branches)
        table: dict[str, tuple[str, Any]] = {}
        for index, node in enumerate(info.branches):
            if not isinstance(node, dict):
                continue
            function = self._record(node)
            for alias in [node["name"], *node.get("aliases", ())]:
                table.setdefault(alias, (info.names[index], function))
        entries = ", ".join(
            f"{name!r}: ({notation!r}, {function})" for name, (notation, function) in table.items()
        )
        branch_table = self._name("branches")
        self._functions.append(f"{branch_table} = {{{entries}}}\n")
        function = self._name("union")
        has_null = "null" in info.branches
        none = f"    if {var} is None: return None\n" if has_null else ""
        self._functions.append(
            f"def {function}({var}):\n{none}"
            f"    if type({var}) is _NR and {var}.avro_name in {branch_table}:\n"
            f"        _n, _f = {branch_table}[{var}.avro_name]\n"
            f"        return (_n, _f({var}))\n"
            f"    return {walker}({var})\n"
        )
        return f"{function}({var})"

    def _takes_none(self, schema: Any) -> bool:
        node = self._fitter.resolve(schema)
        return node == "null" or (isinstance(node, list) and "null" in node)

    # ----- one function per record type ----------------------------------------------------------------

    def _recursive(self, name: str) -> bool:
        """Whether the named record `name` contains itself."""
        stack, seen = [self._fitter.resolve(name)], set()
        while stack:
            node = stack.pop()
            if isinstance(node, str):
                if node == name:
                    return True
                if node in seen:
                    continue
                seen.add(node)
                node = self._fitter.resolve(node)
            if isinstance(node, list):
                stack.extend(node)
            elif isinstance(node, dict):
                kind = node["type"]
                if kind in ("record", "error"):
                    stack.extend(f["type"] for f in node["fields"])
                elif kind == "array":
                    stack.append(node["items"])
                elif kind == "map":
                    stack.append(node["values"])
                elif isinstance(kind, dict | list):
                    stack.append(kind)
        return False

    def _record(self, node: Mapping[str, Any]) -> str:
        name = node["name"]
        if name in self._records:
            return self._records[name]
        function = self._name("record")
        self._records[name] = function  # before the fields: a recursive reference calls it by name
        prepares = self._needs_prepare(node)
        lines = [f"def {function}(d):\n"]
        self._record_body(node, "d", lines, "    ", prepares=prepares)
        lines.append("    return d if o is None else o\n" if prepares else "    return d\n")
        self._functions.append("".join(lines))
        return function

    def _record_body(
        self, node: Mapping[str, Any], d: str, lines: list[str], ind: str, *, prepares: bool
    ) -> None:
        names = self._const(frozenset([node["name"], *node.get("aliases", ())]))
        n = self._name("n")
        lines.append(
            f"{ind}if type({d}) is not dict and (type({d}) is not _NR or {d}.avro_name not in {names}):"
        )
        lines.append(" raise _S\n")
        lines.append(f"{ind}{n} = len({d})\n")
        if prepares:
            lines.append(f"{ind}o = None\n")
        for field in node["fields"]:
            self._field(field, d, n, lines, ind, prepares=prepares)
        lines.append(f"{ind}if {n} != {len(node['fields'])}: raise _S\n")

    def _field(
        self, field: Mapping[str, Any], d: str, n: str, lines: list[str], ind: str, *, prepares: bool
    ) -> None:
        key = repr(field["name"])
        v = self._name("v")
        check: list[str] = []
        has_default = "default" in field
        pad = ind + "    " if has_default else ind
        expr = self._check(field["type"], v, check, pad)
        if has_default:
            if check or expr:
                lines.append(f"{ind}if {key} in {d}:\n{pad}{v} = {d}[{key}]\n")
                lines.extend(check)
                self._prepared(expr, v, key, d, lines, pad)
                lines.append(f"{ind}else: {n} += 1\n")
            else:
                lines.append(f"{ind}if {key} not in {d}: {n} += 1\n")
            return
        if check or expr or self._takes_none(field["type"]):
            # Read even when nothing is checked: fastavro would write null for a missing nullable field.
            lines.append(f"{ind}{v} = {d}[{key}]\n")
        lines.extend(check)
        self._prepared(expr, v, key, d, lines, pad)

    @staticmethod
    def _prepared(expr: str | None, v: str, key: str, d: str, lines: list[str], pad: str) -> None:
        if expr is not None:
            lines.append(f"{pad}w = {expr}\n{pad}if w is not {v}:\n")
            lines.append(f"{pad}    if o is None: o = dict({d})\n{pad}    o[{key}] = w\n")


__all__ = ["CompiledCheck", "Validator", "compile_validator"]
