"""The key format is typed once, and every place that asks "is this key a frame?" asks framing."""

from __future__ import annotations

import json

import pytest

from registry_codecs import AvroDeserializer, AvroSerializer, InMemorySchemaLookup
from registry_codecs.framing import looks_framed
from workers.console import _key
from workers.keys import AutoKeys, AvroKeys, RawKeys, key_codec
from workers.pipeline import KeyFormat, Pipeline, PipelineError

EMPTY = json.dumps({"type": "record", "name": "Nothing", "fields": []})


def pipeline(key_format: str) -> Pipeline:
    return Pipeline("p", "in", "out", lambda record: record, key_format=key_format)


@pytest.mark.parametrize(
    ("text", "policy", "codec"),
    [("raw", KeyFormat.RAW, RawKeys), ("avro", KeyFormat.AVRO, AvroKeys), ("auto", KeyFormat.AUTO, AutoKeys)],
)
def test_each_key_format_is_one_codec_chosen_when_the_pipeline_is_declared(
    text: str, policy: KeyFormat, codec: type
) -> None:
    declared = pipeline(text)
    assert declared.key_format is policy
    assert type(key_codec(declared, InMemorySchemaLookup())) is codec


def test_an_unknown_key_format_is_refused_naming_the_choices() -> None:
    with pytest.raises(PipelineError, match="key_format must be one of auto, avro, raw"):
        pipeline("json")


def test_a_five_byte_frame_is_a_frame_everywhere() -> None:
    # A record with no fields encodes to an empty body: the whole frame is its 5-byte header.
    lookup = InMemorySchemaLookup()
    lookup.register("in-key", EMPTY)
    frame = AvroSerializer(lookup, "in-key").encode({})
    assert len(frame) == 5 and looks_framed(frame)
    assert not looks_framed(frame[:4]) and not looks_framed(b"\x01" + frame[1:])
    assert _key(AvroDeserializer(lookup), frame) == {}  # consume prints it decoded, not as raw bytes
