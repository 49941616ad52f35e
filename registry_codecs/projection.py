"""Precomputed Avro schema resolution: turn a record read with the writer schema into the reader's shape.

Placeholder until the compiler lands: returning None makes the caller use fastavro's own resolution.
"""

from __future__ import annotations

from typing import Any

from registry_codecs.avro import Projection


def compile_projection(writer: Any, reader: Any) -> Projection | None:
    """Return a function applying writer-to-reader resolution to decoded records, or None if unsupported."""
    return None


__all__ = ["compile_projection"]
