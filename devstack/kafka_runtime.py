"""Apache Kafka's jars for devstack: fetched from Maven Central once, into a cache outside the repository.

`kafka_classpath()` returns the class path of the Kafka broker named by ``devstack/maven/pom.xml``. The
first call runs ``mvn dependency:copy-dependencies`` on it into ``<cache>/kafka-<version>/libs`` (45 MB);
later calls find the folder complete (a marker file written last) and return at once. The cache is
``$AVROFLOW_KAFKA_CACHE`` when set, else ``$XDG_CACHE_HOME/avroflow`` or ``~/.cache/avroflow``. Concurrent
callers (two test sessions) take a file lock, so one downloads and the other waits and reuses. A missing
``java`` or ``mvn`` is one `KafkaRuntimeMissing` line saying what to install.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
from pathlib import Path

from devstack.maven_fetch import run_maven

__all__ = ["KAFKA_VERSION", "KafkaRuntimeMissing", "cache_root", "java_binary", "kafka_classpath"]

KAFKA_VERSION = "4.4.0"
_POM = Path(__file__).with_name("maven") / "pom.xml"
_COMPLETE = ".complete"
_MAVEN_TIMEOUT = 600.0
_INSTALL_HINT = "install a Java 17+ runtime and Maven (Debian: apt-get install openjdk-17-jre-headless maven)"


class KafkaRuntimeMissing(RuntimeError):
    """Java or Maven is missing, or Maven could not fetch Kafka's jars; the message says what to do."""


def cache_root() -> Path:
    """The folder that holds the fetched Kafka jars (created on first use)."""
    explicit = os.environ.get("AVROFLOW_KAFKA_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "avroflow"


def java_binary() -> str:
    """The ``java`` to run Kafka with: ``$JAVA_HOME/bin/java`` when set, else the one on PATH.

    Raises:
        KafkaRuntimeMissing: No Java was found.
    """
    home = os.environ.get("JAVA_HOME")
    if home and os.access(Path(home) / "bin" / "java", os.X_OK):
        return str(Path(home) / "bin" / "java")
    found = shutil.which("java")
    if found is None:
        raise KafkaRuntimeMissing(f"Apache Kafka needs Java, and no 'java' is on PATH: {_INSTALL_HINT}")
    return found


def kafka_classpath(version: str = KAFKA_VERSION) -> str:
    """The Java class path (``<libs>/*``) of Kafka `version`, fetching its jars on first use.

    Raises:
        KafkaRuntimeMissing: Java or Maven is not installed, or Maven failed (its output's tail is included).
    """
    java_binary()  # fail on a missing Java before a download that could not be used
    libs = cache_root() / f"kafka-{version}" / "libs"
    if not (libs / _COMPLETE).exists():
        _fetch(version, libs)
    return f"{libs}{os.sep}*"


def _fetch(version: str, libs: Path) -> None:
    mvn = shutil.which("mvn")
    if mvn is None:
        raise KafkaRuntimeMissing(
            f"Apache Kafka's jars come from Maven Central through Maven; no 'mvn' is on PATH: {_INSTALL_HINT}"
        )
    libs.parent.mkdir(parents=True, exist_ok=True)
    with (libs.parent / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be fetching the same version right now
        if (libs / _COMPLETE).exists():
            return
        staging = Path(tempfile.mkdtemp(prefix="libs-", dir=libs.parent))
        try:
            _copy_dependencies(mvn, version, staging)
            (staging / _COMPLETE).write_text(version + "\n")
            shutil.rmtree(libs, ignore_errors=True)
            staging.rename(libs)
        finally:
            shutil.rmtree(staging, ignore_errors=True)


def _copy_dependencies(mvn: str, version: str, into: Path) -> None:
    command = [
        mvn,
        "--batch-mode",
        "--quiet",
        "--file",
        str(_POM),
        f"-Dkafka.version={version}",
        "dependency:copy-dependencies",
        f"-DoutputDirectory={into}",
        "-DincludeScope=runtime",
    ]
    run_maven(command, f"Kafka {version}", KafkaRuntimeMissing, timeout=_MAVEN_TIMEOUT)
    if not any(into.glob("kafka_2.13-*.jar")):
        raise KafkaRuntimeMissing(f"Maven ran but copied no kafka_2.13 jar into {into}")
