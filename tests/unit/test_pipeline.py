"""Pipelines are explicit values; transforms return a record, None or several records."""

from __future__ import annotations

import json
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from workers.pipeline import (
    Pipeline,
    PipelineError,
    TransformResultError,
    apply_transform,
    load_pipelines,
)


def identity(record: dict[str, Any]) -> dict[str, Any]:
    return record


def test_subjects_and_dead_letter_topic_follow_the_topics() -> None:
    pipeline = Pipeline("p", "orders", "orders-out", identity)
    assert pipeline.sink_value_subject == "orders-out-value"
    assert pipeline.sink_key_subject == "orders-out-key"
    assert pipeline.dead_letter_topic(".dlq") == "orders.dlq"
    assert Pipeline("p", "a", "b", identity, dlq_topic="dead").dead_letter_topic(".dlq") == "dead"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"name": "has space"},
        {"source": "bad topic"},
        {"sink": "x" * 250},
        {"sink": "orders"},
        {"key_format": "json"},
        {"transform": "not callable"},
        {"dlq_topic": "a/b"},
    ],
)
def test_invalid_declarations_are_refused(kwargs: dict[str, Any]) -> None:
    args: dict[str, Any] = {"name": "p", "source": "orders", "sink": "out", "transform": identity}
    with pytest.raises(PipelineError):
        Pipeline(**{**args, **kwargs})


def test_transform_results_are_normalized() -> None:
    assert apply_transform(identity, {"a": 1}) == [{"a": 1}]
    assert apply_transform(lambda r: None, {"a": 1}) == []
    assert apply_transform(lambda r: [r, {"b": 2}], {"a": 1}) == [{"a": 1}, {"b": 2}]

    def fan_out(record: dict[str, Any]) -> Iterator[dict[str, Any]]:
        for i in range(record["n"]):
            yield {"i": i}

    assert apply_transform(fan_out, {"n": 3}) == [{"i": 0}, {"i": 1}, {"i": 2}]
    assert apply_transform(fan_out, {"n": 0}) == []


@pytest.mark.parametrize("result", [42, "text", b"bytes", [1, 2], [{"a": 1}, "x"]])
def test_a_result_that_is_not_records_is_an_error(result: Any) -> None:
    with pytest.raises(TransformResultError):
        apply_transform(lambda r: result, {})


def test_transform_exceptions_pass_through_unchanged() -> None:
    def boom(record: dict[str, Any]) -> dict[str, Any]:
        raise KeyError("missing")

    with pytest.raises(KeyError):
        apply_transform(boom, {})


def test_reader_schema_from_text_or_file(tmp_path: Path) -> None:
    schema = json.dumps({"type": "record", "name": "R", "fields": []})
    assert Pipeline("p", "a", "b", identity, reader_schema=schema).load_reader_schema() == schema
    path = tmp_path / "r.avsc"
    path.write_text(schema)
    assert Pipeline("p", "a", "b", identity, reader_schema=str(path)).load_reader_schema() == schema
    assert Pipeline("p", "a", "b", identity).load_reader_schema() is None
    with pytest.raises(PipelineError, match="cannot read"):
        Pipeline("p", "a", "b", identity, reader_schema=str(tmp_path / "missing.avsc")).load_reader_schema()
    with pytest.raises(PipelineError, match="not JSON"):
        Pipeline("p", "a", "b", identity, reader_schema="{not json").load_reader_schema()


@pytest.fixture
def fake_module(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    module = types.ModuleType("fake_pipelines_mod")
    module.PIPELINES = (Pipeline("one", "a", "b", identity), Pipeline("two", "c", "d", identity))  # type: ignore[attr-defined]
    module.SINGLE = Pipeline("one", "a", "b", identity)  # type: ignore[attr-defined]
    module.DUPLICATES = [Pipeline("one", "a", "b", identity)] * 2  # type: ignore[attr-defined]
    module.WRONG = ["not a pipeline"]  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "fake_pipelines_mod", module)
    return module


def test_load_pipelines_by_spec(fake_module: types.ModuleType) -> None:
    assert [p.name for p in load_pipelines("fake_pipelines_mod:PIPELINES")] == ["one", "two"]
    assert [p.name for p in load_pipelines("fake_pipelines_mod:SINGLE")] == ["one"]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("fake_pipelines_mod", "expected"),
        ("no_such_module_xyz:P", "cannot import"),
        ("fake_pipelines_mod:MISSING", "has no MISSING"),
        ("fake_pipelines_mod:DUPLICATES", "two pipelines"),
        ("fake_pipelines_mod:WRONG", "Pipeline objects"),
    ],
)
def test_load_pipelines_errors_say_what_is_wrong(
    fake_module: types.ModuleType, spec: str, message: str
) -> None:
    with pytest.raises(PipelineError, match=message):
        load_pipelines(spec)
