"""Avro JSON text as Avro's Java JsonEncoder (Jackson) writes it: string literals and numbers.

`quote` escapes as Jackson does by default: ``"``, ``\\``, ``\\b \\t \\n \\f \\r`` short, other
characters below U+0020 as ``\\u00XX`` (upper-case hex), characters beyond U+FFFF as their escaped UTF-16
surrogate pair, everything else raw (UTF-8 in the output). `java_float` and `java_double` are Java's
``Float.toString`` and ``Double.toString`` (Java 19+), with NaN and the infinities quoted, as Jackson writes
them unless told otherwise.
"""

from __future__ import annotations

import decimal
import math
import re
import struct

_SHORT_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}
_ESCAPED = re.compile('["\\\\\x00-\x1f\U00010000-\U0010ffff]')
_pack_float = struct.Struct("<f").pack
_unpack_float = struct.Struct("<f").unpack_from


def java_float(value: float) -> str:
    """Java's ``Float.toString`` of a float32 value (Java 19+), as Jackson writes it (non-finite quoted)."""
    if not math.isfinite(value):
        return quote(_java_non_finite(value))
    for precision in range(1, 10):
        text = f"{value:.{precision - 1}e}"
        try:
            if _unpack_float(_pack_float(float(text)))[0] == value:
                break
        except OverflowError:  # rounded up past the largest float
            continue
    if precision == 1:
        text = f"{value:.1e}"
    return _java_layout(text)


def java_double(value: float) -> str:
    """Java's ``Double.toString`` (Java 19+), as Jackson writes it (non-finite quoted)."""
    if not math.isfinite(value):
        return quote(_java_non_finite(value))
    text = repr(value)
    digits = "".join(map(str, decimal.Decimal(text).as_tuple().digits)).rstrip("0")
    if len(digits) <= 1:
        text = f"{value:.1e}"
    return _java_layout(text)


def _java_non_finite(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    return "Infinity" if value > 0 else "-Infinity"


def _java_layout(text: str) -> str:
    """Lay out a decimal as Java does: plain for 1e-3 <= |x| < 1e7, else d.dddEn; always a fraction digit."""
    sign, digit_tuple, exponent = decimal.Decimal(text).as_tuple()
    digits = "".join(map(str, digit_tuple)).rstrip("0") or "0"
    assert isinstance(exponent, int)  # noqa: S101 - finite values only reach here
    # the power of ten of the first digit: value = d.ddd x 10**point
    point = exponent + len(digit_tuple) - 1 if any(digit_tuple) else 0
    negative = "-" if sign else ""
    if digits == "0":
        return f"{negative}0.0"
    if -3 <= point < 7:
        if point >= 0:
            whole = digits[: point + 1].ljust(point + 1, "0")
            return f"{negative}{whole}.{digits[point + 1 :] or '0'}"
        return f"{negative}0.{'0' * (-point - 1)}{digits}"
    return f"{negative}{digits[0]}.{digits[1:] or '0'}E{point}"


def quote(text: str) -> str:
    return f'"{_ESCAPED.sub(_escape, text)}"'


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    short = _SHORT_ESCAPES.get(char)
    if short is not None:
        return short
    code = ord(char)
    if code < 0x10000:
        return f"\\u{code:04X}"
    code -= 0x10000
    return f"\\u{0xD800 + (code >> 10):04X}\\u{0xDC00 + (code & 0x3FF):04X}"


__all__ = ["java_double", "java_float", "quote"]
