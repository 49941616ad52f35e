"""Keys: how a pipeline turns an input's key into its output's key (`Pipeline.key_format`).

``raw`` carries keys as bytes. ``auto`` re-encodes keys that are Confluent frames with the latest schema
of ``<sink>-key`` when that subject exists, and carries every other key as it is; while the subject does
not exist it is looked for again every `recheck_seconds` (the worker passes
``AVROFLOW_LATEST_SCHEMA_TTL_SECONDS``, the same interval in which a new value version is picked up), so a
key subject registered while the worker runs is used without a restart. ``avro`` requires the subject
(preflight refuses to start without it) and every non-null key to be a frame that decodes: a key that
does not convert raises the codec's error, which the runner dead-letters as a key failure.
"""

from __future__ import annotations

import time
from typing import Final

from registry_codecs import (
    HEADER_SIZE,
    MAGIC_BYTE,
    AvroDeserializer,
    AvroSerializer,
    CodecError,
    RegistryAuthError,
    RegistryUnavailable,
    SchemaLookup,
    SubjectNotFound,
)
from registry_codecs.metrics import CodecMetrics
from workers.pipeline import Pipeline

#: Failures that say "wait" rather than "this key is bad" (as in `workers.processing.TRANSIENT`).
_TRANSIENT: Final = (RegistryUnavailable, RegistryAuthError, SubjectNotFound)


class KeyConverter:
    """Converts one pipeline's keys. Not thread-safe: a pipeline computes one batch at a time."""

    def __init__(
        self,
        pipeline: Pipeline,
        lookup: SchemaLookup,
        codec_metrics: CodecMetrics | None = None,
        recheck_seconds: float = 30.0,
    ) -> None:
        self._pipeline = pipeline
        self._lookup = lookup
        self._metrics = codec_metrics
        self._recheck = recheck_seconds
        self._next_check = 0.0
        self.decoder = AvroDeserializer(lookup, subject=f"{pipeline.source}-key", metrics=codec_metrics)
        #: Set once the sink's key subject exists (preflight or a later look).
        self.encoder: AvroSerializer | None = None

    def resolve(self) -> AvroSerializer:
        """Resolve the sink key subject's latest schema now and use it from now on (preflight).

        Raises:
            SubjectNotFound: the subject does not exist (``auto`` looks again after `recheck_seconds`).
            RegistryUnavailable, RegistryAuthError, SchemaParseError: as the registry answers.
        """
        self._next_check = time.monotonic() + self._recheck
        encoder = AvroSerializer(self._lookup, self._pipeline.sink_key_subject, metrics=self._metrics)
        _ = encoder.schema_id  # fetch and parse it now: a missing subject or an invalid schema shows here
        self.encoder = encoder
        return encoder

    def convert(self, key: bytes | None) -> bytes | None:
        """Return the output key for an input key.

        Raises:
            CodecError: with ``avro``, a key that is not a frame, has an unknown id, does not decode, or
                does not fit the sink key schema (with ``auto``, only the last: other keys are carried).
            SubjectNotFound, RegistryUnavailable, RegistryAuthError: wait and retry.
        """
        fmt = self._pipeline.key_format
        if key is None or fmt == "raw":
            return key
        if fmt == "auto" and not (len(key) >= HEADER_SIZE and key[0] == MAGIC_BYTE):
            return key
        encoder = self._encoder()
        if encoder is None:  # auto, and the sink has no key subject (yet): carried as is
            return key
        try:
            decoded = self.decoder.decode(key)
        except _TRANSIENT:
            raise
        except CodecError:
            if fmt == "auto":  # looked like a frame but is not one: a plain binary key, carried as is
                return key
            raise
        return encoder.encode(decoded)

    def _encoder(self) -> AvroSerializer | None:
        if self.encoder is not None:
            return self.encoder
        if self._pipeline.key_format == "avro":
            return self.resolve()  # preflight resolved it in the worker; SubjectNotFound holds the batch
        if time.monotonic() < self._next_check:
            return None
        try:
            return self.resolve()
        # Keys stay as they are until the next look (values keep their schema while the registry is down).
        except (SubjectNotFound, RegistryUnavailable):
            return None


__all__ = ["KeyConverter"]
