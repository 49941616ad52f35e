"""A plain wheel install carries the sample pipeline's schemas and finds them.

pyproject.toml ships the top-level schemas/ folder as the data-only package `avroflow_schemas`. These
tests build the wheel the way `pip install .` (and deploy/Dockerfile) does, look inside it, install it
into a bare target folder and import the project from there, outside the repository, so an editable
install of the checkout cannot stand in for the wheel. No network: `--no-index`, no build isolation.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
CODE_PACKAGES = ("registry_codecs", "workers", "devstack")
SCHEMA_FILES = sorted(
    path.relative_to(ROOT / "schemas").as_posix()
    for path in (ROOT / "schemas").rglob("*")
    if path.suffix in {".avsc", ".json"}
)

# Run by the installed copy: what a user of `pip install avroflow` gets for the sample and the CLI default.
_PROBE = """
import json, sys
import fastavro
import workers.cli, workers.sample
from workers.cli_schemas import load_manifest
args = workers.cli.build_parser().parse_args(["schemas", "check"])
reader = workers.sample.APP_EVENTS.load_reader_schema()
json.dump({
    "sample_module": workers.sample.__file__,
    "cli_module": workers.cli.__file__,
    "reader_schema_file": str(workers.sample.INPUT_SCHEMA_FILE),
    "reader_schema_name": fastavro.parse_schema(json.loads(reader))["name"],
    "cli_default_dir": str(args.dir),
    "manifest": [(r.subject, str(r.path), r.schema_text() != "") for r in load_manifest(args.dir)],
}, sys.stdout)
"""


def _build_sources() -> list[str]:
    """What the build reads: pyproject.toml, the readme and each top-level package's folder."""
    setuptools = PYPROJECT["tool"]["setuptools"]
    tops = {name.split(".")[0] for name in setuptools["packages"]}
    folders = {setuptools.get("package-dir", {}).get(top, top) for top in tops}
    return sorted(folders | {"pyproject.toml", PYPROJECT["project"]["readme"]})


def _pip(*args: str, cwd: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pip", *args, "--no-deps", "--no-index", "--disable-pip-version-check"],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, f"pip {args[0]} failed:\n{done.stdout}\n{done.stderr}"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Built from a copy of the sources: setuptools reuses the checkout's build/ folder, and a stale
    # build/lib/avroflow_schemas there would still land in the wheel after the mapping broke.
    work = tmp_path_factory.mktemp("wheel")
    source = work / "src"
    for name in _build_sources():
        origin = ROOT / name
        if origin.is_dir():
            shutil.copytree(origin, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            source.mkdir(exist_ok=True)
            shutil.copy2(origin, source / name)
    _pip("wheel", "--no-build-isolation", "-w", str(work / "dist"), str(source), cwd=work)
    (built,) = (work / "dist").glob("avroflow-*.whl")
    return built


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("site")
    _pip("install", "--target", str(target), str(wheel), cwd=target)
    return target


@pytest.mark.slow
def test_the_wheel_holds_every_schema_file_and_every_module(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"subjects.json", "avroflow.events.AppEvent.avsc"} <= set(SCHEMA_FILES)
    assert any(name.startswith("versions/") for name in SCHEMA_FILES)
    missing = {f"avroflow_schemas/{name}" for name in SCHEMA_FILES} - names
    assert not missing, f"schema files left out of the wheel: {sorted(missing)}"
    # The packages are listed by hand in pyproject.toml; a module in an unlisted subpackage would be lost.
    modules = {
        path.relative_to(ROOT).as_posix()
        for package in CODE_PACKAGES
        for path in (ROOT / package).rglob("*.py")
        if "__pycache__" not in path.parts
    }
    assert not modules - names, f"modules left out of the wheel: {sorted(modules - names)}"


@pytest.mark.slow
def test_a_wheel_install_finds_the_sample_and_cli_schemas(installed: Path, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(installed)}
    done = subprocess.run(
        [sys.executable, "-c", _PROBE],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    # Imported from the wheel install, not through the checkout's editable finder.
    for key in ("sample_module", "cli_module", "reader_schema_file", "cli_default_dir"):
        assert Path(seen[key]).is_relative_to(installed), f"{key}: {seen[key]} is not under {installed}"
    assert Path(seen["reader_schema_file"]).is_file()
    assert seen["reader_schema_name"] == "avroflow.events.AppEvent"
    assert Path(seen["cli_default_dir"], "subjects.json").is_file()
    # The installed manifest is the repository's, and every file it names is there and parses.
    expected = json.loads((ROOT / "schemas" / "subjects.json").read_text())["registrations"]
    listed = [
        (subject, Path(path).relative_to(seen["cli_default_dir"]).as_posix(), parsed)
        for subject, path, parsed in seen["manifest"]
    ]
    assert listed == [(entry["subject"], entry["file"], True) for entry in expected]


def test_the_image_installs_the_project_as_a_wheel_would() -> None:
    # The tests above prove a plain install finds the schemas; the image relies on that and carries no
    # source tree, so an editable install there would point at code that is not in the runtime stage.
    dockerfile = re.sub(r"\\\n\s*", " ", (ROOT / "deploy" / "Dockerfile").read_text())
    installs = re.findall(r"pip install (?!--upgrade)(.*?)(?: &&|$)", dockerfile, re.MULTILINE)
    # `-c constraints.txt`: the tested versions of the dependencies (tests/unit/test_dependency_window.py)
    assert [args.strip() for args in installs] == ["-c constraints.txt ."]
    from_builder = re.findall(r"^COPY --from=builder (\S+) ", dockerfile, re.MULTILINE)
    assert set(from_builder) == {"/opt/venv", "/app/schemas"}
