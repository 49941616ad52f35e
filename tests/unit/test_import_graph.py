"""The library's modules import each other without cycles (lazy imports inside functions included)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "registry_codecs"


def imports_of(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("registry_codecs"):
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names if a.name.startswith("registry_codecs"))
    return names


def graph() -> dict[str, set[str]]:
    modules = {f"registry_codecs.{p.stem}": p for p in PACKAGE.glob("*.py") if p.stem != "__init__"}
    # "from registry_codecs import serde" names a module; "from registry_codecs import X" the package
    return {
        name: {i for i in imports_of(path) if i in modules and i != name} for name, path in modules.items()
    }


def test_no_module_of_the_library_imports_one_that_imports_it_back() -> None:
    edges = graph()
    cycles = []

    def visit(node: str, trail: list[str]) -> None:
        for target in sorted(edges[node]):
            if target in trail:
                cycles.append(" -> ".join([*trail[trail.index(target) :], target]))
            elif len(trail) < len(edges):
                visit(target, [*trail, target])

    for start in sorted(edges):
        visit(start, [start])
    assert not cycles, sorted(set(cycles))[:5]
