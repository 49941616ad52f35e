"""Pipelines: the small, explicit declaration of ``source topic -> transform -> sink topic``.

A transform is a plain function from one decoded record (a dict) to a record, `None` (drop the input),
`TOMBSTONE` (write a tombstone: the input's key with a null value) or an iterable of those (fan-out).
Records inside a union of several record types arrive as `registry_codecs.NamedRecord` (a dict that also
carries its branch's full name, ``avro_name``) and are written back as that branch; see workers/README.md.
`Pipeline` is a frozen value; the runtime (`workers.app`) turns each one into a Faust agent.
`load_pipelines("package.module:ATTRIBUTE")` imports the pipelines a worker runs, so users and tests plug
in their own without touching this package.
"""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Final

Record = dict[str, Any]


class Tombstone:
    """The type of `TOMBSTONE`: what a transform returns to write the input's key with a null value."""

    _instance: Tombstone | None = None

    def __new__(cls) -> Tombstone:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "TOMBSTONE"


#: Returned (or yielded) by a transform: write a tombstone (null value) with the input's key to the sink.
TOMBSTONE: Final = Tombstone()

Output = Record | Tombstone
Transform = Callable[[Record], Output | Iterable[Output] | None]


class KeyFormat(StrEnum):
    """What a pipeline does with keys (see `workers.keys`); a plain string of the same value works too."""

    AUTO = "auto"
    AVRO = "avro"
    RAW = "raw"


KEY_FORMATS: Final = tuple(k.value for k in KeyFormat)
#: What happens to a source message whose value is null (a tombstone, as compacted topics use them).
TOMBSTONE_MODES: Final = ("forward", "transform")
_TOPIC: Final = re.compile(r"^[A-Za-z0-9._-]{1,249}$")


class PipelineError(ValueError):
    """A pipeline declaration is invalid, or the pipelines named by a spec cannot be loaded."""


class TransformResultError(TypeError):
    """A transform returned something other than a dict, `None` or an iterable of dicts."""

    reason = "transform_result_invalid"


@dataclass(frozen=True, slots=True)
class Pipeline:
    """One stream: records from `source` go through `transform` and the results go to `sink`.

    Attributes:
        name: unique among the worker's pipelines; names the Faust agent and labels the metrics.
        source: the input topic (Avro in the Confluent wire format).
        sink: the output topic; its records are encoded with the latest schema of ``<sink>-value``.
        transform: record -> record, `None` (drop) or an iterable of records (fan-out). It runs in a
            worker thread, one batch at a time per pipeline; whatever it raises dead-letters the input.
        reader_schema: optional path to an ``.avsc`` file, or the schema's JSON text; inputs are
            decoded with their writer schema and resolved to this one (schema evolution).
        key_format: ``"auto"`` (re-encode keys that are Confluent frames with the latest schema of
            ``<sink>-key`` when that subject exists, carry other keys as they are), ``"avro"`` (keys must
            be frames and ``<sink>-key`` must exist: a key that does not convert is dead-lettered) or
            ``"raw"`` (carry keys as bytes, untouched).
        tombstones: what becomes of a source message whose value is null: ``"forward"`` (the default:
            written to the sink as a tombstone, the key converted as `key_format` says, without calling
            the transform) or ``"transform"`` (the transform is called with ``None`` instead of a record;
            it may return `TOMBSTONE`, records or ``None`` as usual).
        dlq_topic: dead-letter topic; defaults to the source plus the settings' suffix.
        sink_schema: optional path to an ``.avsc`` file, or the schema's JSON text, registered under
            ``<sink>-value`` at start when that subject does not exist yet and auto-registration is on
            (``AVROFLOW_AUTO_REGISTER_SCHEMAS``). Outputs are still encoded with the subject's latest.
    """

    name: str
    source: str
    sink: str
    transform: Transform
    reader_schema: str | None = None
    key_format: KeyFormat | str = KeyFormat.AUTO
    dlq_topic: str | None = None
    sink_schema: str | None = None
    tombstones: str = "forward"

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", self.name):
            raise PipelineError(f"pipeline name {self.name!r}: use letters, digits, '.', '_' or '-'")
        for role in ("source", "sink", "dlq_topic"):
            topic = getattr(self, role)
            if topic is not None and not _TOPIC.match(topic):
                raise PipelineError(f"pipeline {self.name}: {role} {topic!r} is not a valid topic name")
        if self.source == self.sink:
            raise PipelineError(f"pipeline {self.name}: source and sink are the same topic {self.source!r}")
        if self.key_format not in KEY_FORMATS:
            raise PipelineError(f"pipeline {self.name}: key_format must be one of {', '.join(KEY_FORMATS)}")
        object.__setattr__(self, "key_format", KeyFormat(self.key_format))  # typed once, here
        if self.tombstones not in TOMBSTONE_MODES:
            modes = ", ".join(TOMBSTONE_MODES)
            raise PipelineError(f"pipeline {self.name}: tombstones must be one of {modes}")
        if not callable(self.transform):
            raise PipelineError(f"pipeline {self.name}: transform is not callable")

    @property
    def sink_value_subject(self) -> str:
        """The subject whose latest schema encodes the output values (TopicNameStrategy)."""
        return f"{self.sink}-value"

    @property
    def sink_key_subject(self) -> str:
        """The subject whose latest schema re-encodes Avro keys, when it exists."""
        return f"{self.sink}-key"

    def dead_letter_topic(self, default_suffix: str) -> str:
        """Return the dead-letter topic: `dlq_topic`, or the source followed by `default_suffix`."""
        return self.dlq_topic or self.source + default_suffix

    def load_reader_schema(self) -> str | None:
        """Return the reader schema's JSON text (read from its file when it names one), or None.

        Raises:
            PipelineError: the file cannot be read or the text is not JSON.
        """
        return self._load_schema(self.reader_schema, "reader schema")

    def load_sink_schema(self) -> str | None:
        """Return the sink schema's JSON text (read from its file when it names one), or None.

        Raises:
            PipelineError: the file cannot be read or the text is not JSON.
        """
        return self._load_schema(self.sink_schema, "sink schema")

    def _load_schema(self, value: str | None, what: str) -> str | None:
        if value is None:
            return None
        text = value
        if not text.lstrip().startswith(("{", "[", '"')):
            try:
                text = Path(text).read_text(encoding="utf-8")
            except OSError as exc:
                raise PipelineError(f"pipeline {self.name}: cannot read {what}: {exc}") from exc
        try:
            json.loads(text)
        except ValueError as exc:
            raise PipelineError(f"pipeline {self.name}: {what} is not JSON: {exc}") from exc
        return text


def apply_transform(transform: Transform, record: Record | None) -> list[Output]:
    """Run `transform` on `record` (None for a tombstone handed to the transform) and normalize the
    result to a list of records and `TOMBSTONE`s (empty: dropped).

    Raises:
        TransformResultError: the result is neither a dict, `TOMBSTONE`, `None`, nor an iterable of those.
        Exception: whatever the transform raises, unchanged (the caller dead-letters it).
    """
    # A tombstone reaches the transform only when its pipeline asks for it (tombstones="transform").
    result = transform(record)  # type: ignore[arg-type]
    if result is None:
        return []
    if isinstance(result, Tombstone):
        return [result]
    if isinstance(result, Mapping):
        return [dict(result)] if not isinstance(result, dict) else [result]
    if isinstance(result, str | bytes) or not isinstance(result, Iterable):
        raise TransformResultError(f"transform returned {type(result).__name__}, expected a dict or None")
    records = list(result)
    for item in records:
        if not isinstance(item, dict | Tombstone):
            raise TransformResultError(f"transform yielded {type(item).__name__}, expected dicts")
    return records


def validate_pipelines(pipelines: Sequence[Pipeline]) -> tuple[Pipeline, ...]:
    """Check that names are unique and no pipeline reads another's dead-letter topic by accident.

    Raises:
        PipelineError: no pipelines, a duplicate name, or a value that is not a `Pipeline`.
    """
    if not pipelines:
        raise PipelineError("no pipelines to run")
    seen: set[str] = set()
    for pipeline in pipelines:
        if not isinstance(pipeline, Pipeline):
            raise PipelineError(f"expected Pipeline objects, got {type(pipeline).__name__}")
        if pipeline.name in seen:
            raise PipelineError(f"two pipelines are named {pipeline.name!r}")
        seen.add(pipeline.name)
    return tuple(pipelines)


def load_object(spec: str, what: str) -> Any:
    """Import the object named by ``"package.module:ATTRIBUTE"`` (`what` names the spec in errors).

    Raises:
        PipelineError: the spec is malformed, the module cannot be imported, or has no such attribute.
    """
    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        raise PipelineError(f"{what} {spec!r}: expected 'package.module:ATTRIBUTE'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise PipelineError(f"{what} {spec!r}: cannot import {module_name}: {exc}") from exc
    value: Any = module
    for part in attribute.split("."):
        try:
            value = getattr(value, part)
        except AttributeError:
            raise PipelineError(f"{what} {spec!r}: {module_name} has no {attribute}") from None
    return value


def load_pipelines(spec: str) -> tuple[Pipeline, ...]:
    """Import the pipelines named by ``"package.module:ATTRIBUTE"`` (a sequence of `Pipeline`).

    Raises:
        PipelineError: the module or attribute does not exist, or holds something else.
    """
    value = load_object(spec, "pipelines spec")
    if isinstance(value, Pipeline):
        value = (value,)
    if not isinstance(value, Sequence):
        raise PipelineError(f"pipelines spec {spec!r}: expected a sequence of Pipeline objects")
    return validate_pipelines(value)


__all__ = [
    "KEY_FORMATS",
    "TOMBSTONE",
    "TOMBSTONE_MODES",
    "KeyFormat",
    "Output",
    "Pipeline",
    "PipelineError",
    "Record",
    "Tombstone",
    "Transform",
    "TransformResultError",
    "apply_transform",
    "load_object",
    "load_pipelines",
    "validate_pipelines",
]
