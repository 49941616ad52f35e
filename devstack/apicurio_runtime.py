"""Apicurio Registry for devstack: its distribution, fetched from Maven Central once into a cache.

Apicurio Registry 3.x is a Quarkus application. Its plain ``apicurio-registry-app`` jar cannot be started on
its own, and most of the modules it depends on are not served by the Maven Central this project reaches, so it
cannot be rebuilt from a pom here either. What is served is the release's own distribution: the Quarkus
fast-jar (``quarkus-run.jar``, ``lib/``, ``app/``, ``quarkus/``; a 158 MB tarball, 168 MB unpacked) as the
``all`` classifier of ``io.apicurio:apicurio-registry-app``. `apicurio_home()` fetches it with
``mvn dependency:copy`` and unpacks it into ``<cache>/apicurio-<version>`` (the cache of Kafka's jars,
`devstack.kafka_runtime.cache_root`); later calls find the folder complete (a marker file written last) and
return at once. Concurrent callers take a file lock.

The 3.x classes are compiled for Java 21, so `java21_binary()` looks for a Java 21 or newer: in
``$AVROFLOW_APICURIO_JAVA_HOME``, ``$JAVA_HOME``, the ``java`` on PATH, then every JDK under ``/usr/lib/jvm``.
A missing Java or Maven is one `ApicurioRuntimeMissing` line saying what to install.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path

from devstack.kafka_runtime import cache_root
from devstack.maven_fetch import run_maven

__all__ = ["APICURIO_VERSION", "ApicurioRuntimeMissing", "apicurio_home", "java21_binary"]

APICURIO_VERSION = "3.3.3"
JAVA_HOME_ENV = "AVROFLOW_APICURIO_JAVA_HOME"
MIN_JAVA = 21
_COORDINATES = "io.apicurio:apicurio-registry-app:{version}:tar.gz:all"
_COMPLETE = ".complete"
_MAVEN_TIMEOUT = 900.0
_JVM_ROOT = Path("/usr/lib/jvm")
_VERSION_LINE = re.compile(r'^JAVA_VERSION="(\d+)', re.MULTILINE)
_INSTALL_HINT = (
    f"install a Java {MIN_JAVA}+ runtime (a Temurin or OpenJDK {MIN_JAVA} or 25) and Maven, "
    f"or point ${JAVA_HOME_ENV} at one"
)


class ApicurioRuntimeMissing(RuntimeError):
    """No Java 21+ or no Maven, or Maven could not fetch the distribution; the message says what to do."""


def _java_major(home: Path) -> int | None:
    """The major version a JDK/JRE home declares in its ``release`` file, or None."""
    try:
        found = _VERSION_LINE.search((home / "release").read_text(errors="replace"))
    except OSError:
        return None
    return int(found.group(1)) if found else None


def _candidate_homes() -> Iterator[Path]:
    for name in (JAVA_HOME_ENV, "JAVA_HOME"):
        value = os.environ.get(name)
        if value:
            yield Path(value)
    on_path = shutil.which("java")
    if on_path is not None:
        yield Path(os.path.realpath(on_path)).parent.parent
    if _JVM_ROOT.is_dir():
        yield from sorted(_JVM_ROOT.iterdir(), reverse=True)


def java21_binary() -> str:
    """The ``java`` of the first Java 21+ found (see the module docstring for where it looks).

    Raises:
        ApicurioRuntimeMissing: No Java 21 or newer was found.
    """
    seen: list[str] = []
    for home in _candidate_homes():
        major, binary = _java_major(home), home / "bin" / "java"
        if major is None or not os.access(binary, os.X_OK):
            continue
        if major >= MIN_JAVA:
            return str(binary)
        seen.append(f"Java {major} at {home}")
    found = f"found only {', '.join(seen)}" if seen else "found no Java"
    raise ApicurioRuntimeMissing(
        f"Apicurio Registry {APICURIO_VERSION} needs Java {MIN_JAVA}+; {found}: {_INSTALL_HINT}"
    )


def apicurio_home(version: str = APICURIO_VERSION) -> Path:
    """The folder holding ``quarkus-run.jar`` of Apicurio Registry `version`, fetching it on first use.

    Raises:
        ApicurioRuntimeMissing: No Java 21+ or no Maven, or Maven failed (its output's tail is included).
    """
    java21_binary()  # fail on a missing Java before a 158 MB download that could not be used
    home = cache_root() / f"apicurio-{version}"
    if not (home / _COMPLETE).exists():
        _fetch(version, home)
    return home


def _fetch(version: str, home: Path) -> None:
    mvn = shutil.which("mvn")
    if mvn is None:
        raise ApicurioRuntimeMissing(
            f"Apicurio Registry comes from Maven Central through Maven; no 'mvn' is on PATH: {_INSTALL_HINT}"
        )
    home.parent.mkdir(parents=True, exist_ok=True)
    with (home.parent / f".apicurio-{version}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be fetching the same version right now
        if (home / _COMPLETE).exists():
            return
        staging = Path(tempfile.mkdtemp(prefix=f"apicurio-{version}-", dir=home.parent))
        try:
            archive = _download(mvn, version, staging / "download")
            with tarfile.open(archive) as tar:
                tar.extractall(staging / "dist", filter="data")
            archive.unlink()  # Maven's local repository keeps its own copy
            if not (staging / "dist" / "quarkus-run.jar").is_file():
                raise ApicurioRuntimeMissing(f"the Apicurio {version} distribution has no quarkus-run.jar")
            (staging / "dist" / _COMPLETE).write_text(version + "\n")
            shutil.rmtree(home, ignore_errors=True)
            (staging / "dist").rename(home)
        finally:
            shutil.rmtree(staging, ignore_errors=True)


def _download(mvn: str, version: str, into: Path) -> Path:
    command = [
        mvn,
        "--batch-mode",
        "--quiet",
        "dependency:copy",
        f"-Dartifact={_COORDINATES.format(version=version)}",
        f"-DoutputDirectory={into}",
    ]
    what = f"Apicurio Registry {version}"
    run_maven(command, what, ApicurioRuntimeMissing, timeout=_MAVEN_TIMEOUT, cwd=into.parent)
    archives = sorted(into.glob("*.tar.gz"))
    if not archives:
        raise ApicurioRuntimeMissing(f"Maven ran but copied no Apicurio {version} tarball into {into}")
    return archives[0]
