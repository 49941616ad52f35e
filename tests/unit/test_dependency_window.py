"""The tested dependency window: pyproject's bounds, the installed releases and constraints.txt agree."""

from __future__ import annotations

import re
import tomllib
from importlib.metadata import version
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
FAUST_STACK = ("faust-streaming", "mode-streaming", "aiokafka")


def _declared() -> dict[str, Requirement]:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    requirements = (Requirement(line) for line in pyproject["project"]["dependencies"])
    return {canonicalize_name(r.name): r for r in requirements}


def _pins() -> dict[str, Version]:
    pins = {}
    for raw in (ROOT / "constraints.txt").read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        name, sep, pinned = line.partition("==")
        assert sep, f"constraints.txt: {line!r} is not an exact pin (name==version)"
        pins[canonicalize_name(name)] = Version(pinned)
    return pins


def test_faust_and_the_libraries_whose_internals_the_worker_uses_are_declared_with_both_bounds() -> None:
    declared = _declared()
    assert str(declared["faust-streaming"].specifier) == "<0.16,>=0.15.3"
    for name in FAUST_STACK:
        operators = {spec.operator for spec in declared[name].specifier}
        assert operators == {">=", "<"}, f"{name} needs a lower and an upper bound, has {operators}"


def test_the_installed_releases_are_inside_the_declared_window() -> None:
    declared = _declared()
    for name in FAUST_STACK:
        installed = version(name)
        assert declared[name].specifier.contains(installed), f"{name} {installed} is outside {declared[name]}"


def test_the_constraints_file_pins_every_runtime_dependency_inside_pyprojects_bounds() -> None:
    pins = _pins()
    for name, requirement in _declared().items():
        assert name in pins, f"constraints.txt does not pin {name}"
        assert requirement.specifier.contains(pins[name]), (
            f"constraints.txt pins {name} {pins[name]}, {requirement}"
        )


def test_the_image_installs_with_the_constraints_file() -> None:
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    assert re.search(r"COPY [^\n]*\bconstraints\.txt\b", dockerfile)
    assert re.search(r"pip install -c constraints\.txt \.", dockerfile)
