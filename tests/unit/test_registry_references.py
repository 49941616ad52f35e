"""Reference resolution as a pure walk over a fetch function: order, de-duplication, cycles, depth."""

from __future__ import annotations

import pytest

from registry_codecs.errors import RegistryError, SubjectNotFound
from registry_codecs.registry_references import resolve_references
from registry_codecs.schemas import RegisteredSchema, SchemaReference


def ref(name: str, version: int = 1) -> SchemaReference:
    return SchemaReference(name=name, subject=name.lower(), version=version)


class Registry:
    """Schemas by subject; counts fetches."""

    def __init__(self, graph: dict[str, list[str]]) -> None:
        self.graph = graph
        self.fetched: list[str] = []

    def fetch(self, reference: SchemaReference) -> RegisteredSchema:
        self.fetched.append(reference.subject)
        if reference.subject not in self.graph:
            raise SubjectNotFound(f"no subject {reference.subject}", status_code=404, error_code=40401)
        uses = tuple(ref(name) for name in self.graph[reference.subject])
        return RegisteredSchema(1, f"<{reference.subject}>", references=uses, subject=reference.subject)


def test_dependencies_come_first_and_each_once() -> None:
    registry = Registry(
        {"money": ["Currency"], "address": ["Country", "Currency"], "currency": [], "country": []}
    )
    resolved = resolve_references([ref("Money"), ref("Address")], registry.fetch)
    assert resolved == (
        ("Currency", "<currency>"),
        ("Money", "<money>"),
        ("Country", "<country>"),
        ("Address", "<address>"),
    )
    assert sorted(registry.fetched) == ["address", "country", "currency", "money"]


def test_no_references_resolve_to_nothing() -> None:
    assert resolve_references([], Registry({}).fetch) == ()


def test_cycles_end_the_walk() -> None:
    registry = Registry({"a": ["B"], "b": ["A"]})
    assert [name for name, _ in resolve_references([ref("A")], registry.fetch)] == ["B", "A"]
    assert registry.fetched == ["a", "b"]


def test_depth_is_bounded() -> None:
    chain = {f"t{i}": [f"T{i + 1}"] for i in range(10)} | {"t10": []}
    assert len(resolve_references([ref("T0")], Registry(chain).fetch)) == 11
    with pytest.raises(RegistryError, match="deeper than 5"):
        resolve_references([ref("T0")], Registry(chain).fetch, max_depth=5)


def test_a_missing_dependency_surfaces_typed() -> None:
    with pytest.raises(SubjectNotFound):
        resolve_references([ref("Money")], Registry({"money": ["Gone"]}).fetch)
