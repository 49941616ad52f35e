"""Keys: how a pipeline turns an input's key into its output's key (`Pipeline.key_format`).

The key format is a `KeyFormat`, turned once, when the pipeline's runner is built, into one of three key
codecs, each with a single meaning:

* `RawKeys` (``raw``) carries keys as bytes.
* `AutoKeys` (``auto``) re-encodes keys that are Confluent frames with the latest schema of ``<sink>-key``
  when that subject exists, and carries every other key as it is; while the subject does not exist it is
  looked for again every `recheck_seconds` (the worker passes ``AVROFLOW_LATEST_SCHEMA_TTL_SECONDS``, the
  interval in which a new value version is picked up), so a key subject registered while the worker runs
  is used without a restart.
* `AvroKeys` (``avro``) requires the subject (preflight refuses to start without it) and every non-null
  key to be a frame that decodes: a key that does not convert raises the codec's error, which the runner
  dead-letters as a key failure.
"""

from __future__ import annotations

import time
from typing import Final

from registry_codecs import (
    AvroDeserializer,
    AvroSerializer,
    CodecError,
    RegistryAuthError,
    RegistryUnavailable,
    SchemaLookup,
    SubjectNotFound,
)
from registry_codecs.framing import looks_framed
from registry_codecs.metrics import CodecMetrics
from workers.pipeline import KeyFormat, Pipeline

#: Failures that say "wait" rather than "this key is bad" (as in `workers.processing.TRANSIENT`).
_TRANSIENT: Final = (RegistryUnavailable, RegistryAuthError, SubjectNotFound)


class RawKeys:
    """Keys carried as bytes, untouched."""

    #: Whether preflight must find the sink's key subject (or refuse to start).
    requires_subject: Final = False
    #: Whether the sink's key subject is looked up at all.
    uses_subject: Final = False

    def resolve(self) -> None:
        """Nothing to resolve."""

    def convert(self, key: bytes | None) -> bytes | None:
        """Return `key` as it is."""
        return key


class AvroKeys:
    """Every non-null key a frame, re-encoded with the latest schema of the sink's key subject.

    Not thread-safe: a pipeline computes one batch at a time.
    """

    requires_subject: Final = True
    uses_subject: Final = True

    def __init__(
        self, pipeline: Pipeline, lookup: SchemaLookup, codec_metrics: CodecMetrics | None = None
    ) -> None:
        self._subject = pipeline.sink_key_subject
        self._lookup = lookup
        self._metrics = codec_metrics
        self.decoder = AvroDeserializer(lookup, subject=f"{pipeline.source}-key", metrics=codec_metrics)
        #: Set once the sink's key subject exists (preflight or a later look).
        self.encoder: AvroSerializer | None = None

    def resolve(self) -> AvroSerializer:
        """Resolve the sink key subject's latest schema now and use it from now on (preflight).

        Raises:
            SubjectNotFound: the subject does not exist.
            RegistryUnavailable, RegistryAuthError, SchemaParseError: as the registry answers.
        """
        encoder = AvroSerializer(self._lookup, self._subject, metrics=self._metrics)
        _ = encoder.schema_id  # fetch and parse it now: a missing subject or an invalid schema shows here
        self.encoder = encoder
        return encoder

    def convert(self, key: bytes | None) -> bytes | None:
        """Return the output key for an input key.

        Raises:
            CodecError: a key that is not a frame, has an unknown id, does not decode, or does not fit the
                sink key schema.
            SubjectNotFound, RegistryUnavailable, RegistryAuthError: wait and retry.
        """
        if key is None:
            return None
        encoder = self.encoder or self.resolve()  # preflight resolved it; SubjectNotFound holds the batch
        return encoder.encode(self.decoder.decode(key))


class AutoKeys(AvroKeys):
    """Frames re-encoded when the sink has a key subject; every other key carried as it is."""

    requires_subject: Final = False  # type: ignore[misc]

    def __init__(
        self,
        pipeline: Pipeline,
        lookup: SchemaLookup,
        codec_metrics: CodecMetrics | None = None,
        recheck_seconds: float = 30.0,
    ) -> None:
        super().__init__(pipeline, lookup, codec_metrics)
        self._recheck = recheck_seconds
        self._next_check = 0.0

    def resolve(self) -> AvroSerializer:
        """As `AvroKeys.resolve`; a missing subject is looked for again after `recheck_seconds`."""
        self._next_check = time.monotonic() + self._recheck
        return super().resolve()

    def convert(self, key: bytes | None) -> bytes | None:
        """Return the output key for an input key.

        Raises:
            CodecError: a frame that decodes but does not fit the sink key schema (other keys are carried).
            SubjectNotFound, RegistryUnavailable, RegistryAuthError: wait and retry.
        """
        if key is None or not looks_framed(key):
            return key
        encoder = self._encoder()
        if encoder is None:  # the sink has no key subject (yet): carried as is
            return key
        try:
            decoded = self.decoder.decode(key)
        except _TRANSIENT:
            raise
        except CodecError:  # looked like a frame but is not one: a plain binary key, carried as is
            return key
        return encoder.encode(decoded)

    def _encoder(self) -> AvroSerializer | None:
        if self.encoder is not None:
            return self.encoder
        if time.monotonic() < self._next_check:
            return None
        try:
            return self.resolve()
        # Keys stay as they are until the next look (values keep their schema while the registry is down).
        except (SubjectNotFound, RegistryUnavailable):
            return None


KeyCodec = RawKeys | AvroKeys | AutoKeys


def key_codec(
    pipeline: Pipeline,
    lookup: SchemaLookup,
    codec_metrics: CodecMetrics | None = None,
    recheck_seconds: float = 30.0,
) -> KeyCodec:
    """Return the key codec of `pipeline`'s key format."""
    if pipeline.key_format is KeyFormat.RAW:
        return RawKeys()
    if pipeline.key_format is KeyFormat.AVRO:
        return AvroKeys(pipeline, lookup, codec_metrics)
    return AutoKeys(pipeline, lookup, codec_metrics, recheck_seconds)


__all__ = ["AutoKeys", "AvroKeys", "KeyCodec", "RawKeys", "key_codec"]
