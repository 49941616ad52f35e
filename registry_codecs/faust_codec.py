"""A Faust codec for Avro in the Confluent wire format; the only module of registry_codecs that imports faust.

`ConfluentAvroCodec` is a `faust.Codec`: it decodes a frame with the writer schema named by its id (into a
reader schema when one is given) and encodes with the latest schema registered for its subject. The
subject follows Confluent's naming strategies (topic name by default, record name, topic-record name).
It chains (`codec | binary()`), clones, and is registered under a name by one call,
``register_codec("avro-orders", ConfluentAvroCodec(lookup=client, topic="orders"))``, after which
``value_serializer="avro-orders"`` works on topics and records. All registry traffic goes through the
`SchemaLookup`'s caches, so steady state costs no HTTP request per message.

**What it does not promise.** Faust decodes a message before the agent sees it and, when the codec
raises, calls its decode-error hooks and moves on: the message is acked and its offset committed with no
one having processed it, and no dead letter is written. So with this codec a poison message, an unknown
schema id or a registry outage loses that message (at most once, on failures). Faust calls the codec on
its event loop, so a cache miss makes at most one round of registry requests (one per registry URL, each
bounded by the client's timeouts) and never a retry round with backoff, which would stall every stream
and heartbeat; an outage raises `RegistryNotRetried` at once. For decode before the ack, retries without
acking, dead letters and acks after the broker's, use the worker's agents (`workers.agents.Avroflow`) or
pipelines (`workers.pipeline`), which read raw bytes and decode off the loop. `check_serializers`
(run at start by `check_serializers_at_start`) makes a serializer name that is not registered fail
before the app consumes, instead of a ``KeyError`` per message after which Faust commits anyway.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from enum import StrEnum
from typing import Any

import faust
from faust.serializers import codecs as faust_codecs
from faust.types import ModelT

from registry_codecs.avro import parse_avro
from registry_codecs.errors import CodecError
from registry_codecs.metrics import CodecMetrics
from registry_codecs.registry_http import one_round
from registry_codecs.schemas import RegisteredSchema, SchemaLookup, SchemaReference
from registry_codecs.serde import AvroDeserializer, AvroSerializer


class SubjectNameStrategy(StrEnum):
    """Confluent's subject name strategies."""

    TOPIC_NAME = "topic_name"  #: ``<topic>-key`` / ``<topic>-value`` (the default)
    RECORD_NAME = "record_name"  #: the record's full name
    TOPIC_RECORD_NAME = "topic_record_name"  #: ``<topic>-<record full name>``


def subject_name(
    strategy: SubjectNameStrategy | str,
    *,
    topic: str | None = None,
    is_key: bool = False,
    record_name: str | None = None,
) -> str:
    """Return the subject for a topic and/or record under a naming strategy.

    Raises:
        ValueError: the strategy needs a topic or a record name that was not given.
    """
    strategy = SubjectNameStrategy(strategy)
    if strategy is not SubjectNameStrategy.RECORD_NAME and not topic:
        raise ValueError(f"the {strategy.value} subject name strategy needs topic=...")
    if strategy is SubjectNameStrategy.TOPIC_NAME:
        return f"{topic}-{'key' if is_key else 'value'}"
    if not record_name:
        raise ValueError(f"the {strategy.value} subject name strategy needs record_name=... or schema=...")
    if strategy is SubjectNameStrategy.RECORD_NAME:
        return record_name
    return f"{topic}-{record_name}"


def record_full_name(schema: str | Mapping[str, Any]) -> str:
    """Return the full name (``namespace.Name``) of a record schema."""
    parsed = parse_avro(schema if isinstance(schema, str) else json.dumps(schema))
    if not isinstance(parsed, dict) or "name" not in parsed:
        raise ValueError("a record name strategy needs a named schema (a record)")
    return str(parsed["name"])


class ConfluentAvroCodec(faust.Codec):
    """Avro in the Confluent wire format, as a Faust codec.

    Args:
        children: codecs chained after this one (Faust's `|` builds them; leave empty).
        lookup: where schemas come from (a `RegistryClient`), shared by clones.
        subject: the subject to encode with; overrides the naming strategy.
        topic: the topic, for the topic-name and topic-record-name strategies.
        is_key: a key codec (``<topic>-key``) rather than a value codec.
        strategy: a :class:`SubjectNameStrategy` or its value.
        record_name: the record's full name, for the record strategies (else taken from `schema`).
        schema: a local writer schema; registered under the subject when `auto_register` is on.
        reader_schema: decode into this schema (Avro schema resolution); None reads as written.
        auto_register: register `schema` on first use and encode with it. Off by default.
        metrics: counters to update, or None.

    Raises:
        ValueError: the subject cannot be worked out from the arguments.
    """

    def __init__(
        self,
        children: tuple[Any, ...] | None = None,
        *,
        lookup: SchemaLookup,
        subject: str | None = None,
        topic: str | None = None,
        is_key: bool = False,
        strategy: SubjectNameStrategy | str = SubjectNameStrategy.TOPIC_NAME,
        record_name: str | None = None,
        schema: str | None = None,
        reader_schema: str | Mapping[str, Any] | None = None,
        auto_register: bool = False,
        metrics: CodecMetrics | None = None,
    ) -> None:
        super().__init__(
            children=children,
            lookup=lookup,
            subject=subject,
            topic=topic,
            is_key=is_key,
            strategy=strategy,
            record_name=record_name,
            schema=schema,
            reader_schema=reader_schema,
            auto_register=auto_register,
            metrics=metrics,
        )
        if subject is None:
            if record_name is None and schema is not None and strategy != SubjectNameStrategy.TOPIC_NAME:
                record_name = record_full_name(schema)
            subject = subject_name(strategy, topic=topic, is_key=is_key, record_name=record_name)
        self.subject = subject
        on_loop = _OneRound(lookup)
        self.serializer = AvroSerializer(
            on_loop, subject, metrics=metrics, schema=schema, auto_register=auto_register
        )
        self.deserializer = AvroDeserializer(
            on_loop, reader_schema=reader_schema, subject=subject, metrics=metrics
        )
        self._encode = self.serializer.encode
        self._decode = self.deserializer.decode
        if not self.children:
            # Faust calls codec.loads(bytes) per message; without chained codecs that is the decoder itself.
            self.loads = self._decode  # type: ignore[method-assign,assignment]  # per instance; clones build theirs

    def _dumps(self, obj: Any) -> bytes:
        if type(obj) is not dict and isinstance(obj, ModelT):
            obj = obj.to_representation()
        return self._encode(_without_faust_metadata(obj))

    def _loads(self, s: bytes) -> Any:
        return self._decode(s)

    def dumps(self, obj: Any) -> bytes:
        """Encode `obj` (a mapping or a Faust record), then pass it through any chained codecs."""
        if type(obj) is dict and not self.children:
            # What Faust hands over for records and plain values.
            return self._encode(obj if _FAUST_METADATA not in obj else _without_faust_metadata(obj))
        return super().dumps(obj)

    def loads(self, s: bytes) -> Any:
        """Undo any chained codecs, then decode the frame."""
        return super().loads(s)


class _OneRound:
    """A `SchemaLookup` whose registry requests make one round, no retries (`registry_http.one_round`).

    Faust calls a codec on its event loop, which answers heartbeats and every other stream; a retry round
    there (a backoff sleep, then the requests again) would stop all of it for as long as the registry
    is down. Only the codec's cache misses come here, so a cache hit costs nothing more.
    """

    __slots__ = ("_lookup",)

    def __init__(self, lookup: SchemaLookup) -> None:
        self._lookup = lookup

    def get_schema(self, schema_id: int) -> RegisteredSchema:
        with one_round():
            return self._lookup.get_schema(schema_id)

    def get_latest(self, subject: str) -> RegisteredSchema:
        with one_round():
            return self._lookup.get_latest(subject)

    def register(
        self,
        subject: str,
        schema_str: str,
        schema_type: str = "AVRO",
        references: tuple[SchemaReference, ...] = (),
    ) -> int:
        with one_round():
            return self._lookup.register(subject, schema_str, schema_type, references)


#: The key under which a Faust record's representation carries Faust's own metadata (its model's name).
_FAUST_METADATA = "__faust"


def _without_faust_metadata(obj: Any) -> Any:
    # Faust's metadata is not a field of the Avro record; the serializer refuses fields the schema lacks.
    if isinstance(obj, dict) and _FAUST_METADATA in obj:
        return {key: value for key, value in obj.items() if key != _FAUST_METADATA}
    return obj


def register_codec(name: str, codec: ConfluentAvroCodec) -> ConfluentAvroCodec:
    """Register `codec` under `name` in Faust's codec registry and return it.

    Afterwards ``value_serializer=name`` (or ``key_serializer``) on a topic, and ``serializer=name`` on a
    `faust.Record`, use it.
    """
    faust_codecs.register(name, codec)
    return codec


class UnknownSerializer(CodecError, LookupError):
    """A topic of the app names a serializer (codec) that is not registered with Faust."""


def check_serializers(app: Any, *topics: Any) -> None:
    """Check that every serializer the app uses is registered with Faust's codec registry.

    Looks at the app's default key and value serializers, the topic of every agent, and `topics` (topics
    the app only sends to). A chain (``"avro-orders|binary"``) must resolve link by link.

    Raises:
        UnknownSerializer: naming the topic, the serializer and how to register it.
    """
    conf = app.conf
    _resolve("the app's key_serializer", conf.key_serializer)
    _resolve("the app's value_serializer", conf.value_serializer)
    channels = [agent.channel for agent in app.agents.values()]
    for topic in (*channels, *topics):
        names = ",".join(getattr(topic, "topics", None) or ()) or repr(topic)
        for part in ("key", "value"):
            serializer = getattr(topic, f"{part}_serializer", None)
            if serializer is not None:
                _resolve(f"topic {names} {part}_serializer", serializer)


def check_serializers_at_start(app: Any) -> None:
    """Run `check_serializers` when the app's worker starts, before it consumes anything.

    Connected to Faust's ``on_worker_init`` signal, which ``app.main()`` and ``faust -A app worker`` send
    once the app's agents are declared: an unregistered name stops the start with `UnknownSerializer`.
    """

    def at_start(sender: Any, **kwargs: Any) -> None:
        check_serializers(sender)

    app.on_worker_init.connect(at_start, weak=False)


def _resolve(where: str, serializer: Any) -> None:
    if serializer is None or not isinstance(serializer, str):
        return  # Faust's default, or a codec object given directly
    try:
        codec = faust_codecs.get_codec(serializer)
    except (KeyError, TypeError):  # Faust's chains raise TypeError for an unknown link after the first
        codec = None
    if not isinstance(codec, faust_codecs.Codec):
        known = ", ".join(sorted(faust_codecs.codecs))
        raise UnknownSerializer(
            f"{where} is {serializer!r}, which is not a registered Faust codec (registered: {known}); "
            "register it first: registry_codecs.register_codec(name, ConfluentAvroCodec(...))"
        )


__all__ = [
    "ConfluentAvroCodec",
    "SubjectNameStrategy",
    "UnknownSerializer",
    "check_serializers",
    "check_serializers_at_start",
    "record_full_name",
    "register_codec",
    "subject_name",
]
