"""The console's Avro JSON against Avro's own Java JsonEncoder and JsonDecoder (Avro 1.12, Jackson).

`tests/interop/AvroJsonOracle.java` runs as a single-file Java program on the jars `devstack.avro_java`
caches. For random bodies of the hard schemas, of schemas/ and of generated schemas:

* our text is Java's text byte for byte, with two known exceptions: Java prints a map's entries in its
  HashMap's order, we print them in the body's order (so that the text writes back the same bytes); and
  Java 17's ``Float.toString``/``Double.toString`` print some values with more digits than the shortest
  that reads back (Java 19+ prints the shortest, as we do). Where the texts differ, they must still hold
  the same string literals, escaped the same way (keys, branch names, strings, bytes), and the same values;
* Java's JsonDecoder reads our text to the same value, and we read Java's text to the same value.
"""

from __future__ import annotations

import io
import json
import math
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import fastavro
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from devstack.avro_java import avro_classpath
from devstack.kafka_runtime import java_binary
from workers.avro_json_encoding import AvroJsonCodec

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
from test_avro_json_encoding import HARD, REPO_SCHEMAS, _underlying, bodies
from test_avro_properties import schemas as generated_schemas

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ORACLE = Path(__file__).resolve().parents[1] / "interop" / "AvroJsonOracle.java"
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')

Oracle = Callable[[Any, str, list[str]], list[str]]


@pytest.fixture(scope="module")
def oracle(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Oracle]:
    classpath = avro_classpath()
    folder = tmp_path_factory.mktemp("avro-json-java")
    calls = iter(range(10**6))

    def run(schema: Any, mode: str, lines: list[str]) -> list[str]:
        path = folder / f"schema-{next(calls)}.avsc"
        path.write_text(json.dumps(schema))
        done = subprocess.run(
            [java_binary(), "-cp", classpath, str(ORACLE), str(path), mode],
            input="".join(line + "\n" for line in lines),
            capture_output=True,
            encoding="utf-8",
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        answers = done.stdout.split("\n")  # not splitlines(): a JSON string may hold U+2028
        assert answers[len(lines) :] == [""], done.stdout
        return answers[: len(lines)]

    yield run


def _same_literals(ours: str, java: str) -> bool:
    """The same JSON string literals, escaped alike, whatever their order (Java's map order)."""
    return sorted(_STRING.findall(ours)) == sorted(_STRING.findall(java))


def _value(plain: Any, body: bytes) -> Any:
    """The body as fastavro reads it, NaN made comparable (maps compare without order)."""
    return _comparable(fastavro.schemaless_reader(io.BytesIO(body), plain))


def _comparable(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return "NaN"
    if isinstance(value, dict):
        return {k: _comparable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_comparable(v) for v in value]
    return value


def _check(oracle: Oracle, schema: Any, batch: list[bytes]) -> int:
    """Compare with Java; return how many of our texts were Java's byte for byte."""
    codec = AvroJsonCodec(fastavro.parse_schema(schema))
    plain = fastavro.parse_schema(_underlying(schema))
    ours = [codec.to_json(body) for body in batch]
    java = oracle(schema, "to-json", [body.hex() for body in batch])
    for body, mine, theirs in zip(batch, ours, java, strict=True):
        assert mine == theirs or _same_literals(mine, theirs), (body.hex(), mine, theirs)
        assert _value(plain, codec.from_json(theirs)) == _value(plain, body), theirs
    read_by_java = oracle(schema, "from-json", ours)
    for body, hexed in zip(batch, read_by_java, strict=True):
        assert _value(plain, bytes.fromhex(hexed)) == _value(plain, body), hexed
    return sum(map(str.__eq__, ours, java))


CASES = [*sorted(HARD.items()), *((p.name, json.loads(p.read_text())) for p in REPO_SCHEMAS)]


def _drawn(strategy: st.SearchStrategy[Any], count: int) -> list[Any]:
    """`count` values hypothesis draws from `strategy`, to hand to one JVM together (not one per example)."""
    found: list[Any] = []

    @settings(
        max_examples=count,
        deadline=None,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def collect(value: Any) -> None:
        found.append(value)

    collect()
    return found


@pytest.mark.parametrize(("name", "schema"), CASES, ids=[name for name, _ in CASES])
def test_our_avro_json_is_javas(oracle: Oracle, name: str, schema: Any) -> None:
    batch = _drawn(bodies(schema), 150)
    same = _check(oracle, schema, batch)
    # Without maps and floating point numbers, nothing excuses a difference: every text must be Java's.
    text = json.dumps(schema)
    if not any(f'"{kind}"' in text for kind in ("map", "float", "double")):
        assert same == len(batch), f"{len(batch) - same} of {len(batch)} texts differ from Java's"


def test_our_avro_json_is_javas_for_generated_schemas(oracle: Oracle) -> None:
    records = generated_schemas().filter(lambda s: isinstance(s, dict) and s["type"] == "record")
    cases = records.flatmap(lambda s: st.tuples(st.just(s), st.lists(bodies(s), min_size=20, max_size=20)))
    for schema, batch in _drawn(cases, 3):
        _check(oracle, schema, batch)


def test_java_refuses_what_we_refuse(oracle: Oracle) -> None:
    schema = HARD["events"]
    lines = [
        '{"change":{"id":1},"maybe":null}',  # a union without its branch
        '{"change":{"Created":{"id":1}},"maybe":null}',  # a short name: Avro wants the full name
        '{"change":{"shop.Created":{"id":1.5}},"maybe":null}',  # a fraction for a long
    ]
    assert all(answer.startswith("ERROR ") for answer in oracle(schema, "from-json", lines))
