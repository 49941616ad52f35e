"""Run Apicurio Registry 3.x on loopback, in memory: a second, real schema registry for the client's tests.

`ApicurioRegistry` starts the Quarkus fast-jar that `devstack.apicurio_runtime` fetched from Maven Central,
with its default storage (SQL on an in-memory H2 database: nothing survives a stop), on two free loopback
ports (the HTTP API and Quarkus' management interface). It counts the registry as started only when its
Confluent-compatible API answers ``GET /apis/ccompat/v7/subjects``; `url` is that API's base, the URL to hand
a Confluent client. Output goes to ``apicurio.log`` in the helper's data folder. Stopping sends SIGTERM,
then SIGKILL after a grace period, and removes the data folder the helper made. For tests and local runs only.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import IO

from devstack.apicurio_runtime import ApicurioRuntimeMissing, apicurio_home, java21_binary
from devstack.broker import free_port
from devstack.children import ChildService, preexec_for, stop_child

__all__ = ["CCOMPAT_PATH", "ApicurioRegistry", "ApicurioRuntimeMissing", "ApicurioStartError"]

CCOMPAT_PATH = "/apis/ccompat/v7"
_STOP_GRACE_SECONDS = 15.0
_LOG_TAIL_CHARS = 3000
_POLL_INTERVAL = 0.25
_PROBE_TIMEOUT = 2.0
_JVM_OPTIONS = ("-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-XX:+ExitOnOutOfMemoryError")


class ApicurioStartError(RuntimeError):
    """Apicurio exited early or did not answer in time; the message carries the tail of its log."""


class ApicurioRegistry(ChildService):
    """Apicurio Registry in a child process on loopback, with in-memory storage.

    Args:
        host: Loopback interface to listen on.
        data_dir: Folder for the log file and Apicurio's temporary files; None makes a temporary folder that
            `stop` removes.
        properties: Quarkus/Apicurio settings (``-Dname=value``) added to, or overriding, the helper's own.
        heap: The JVM's maximum heap.
        die_with_parent: On Linux, the kernel ends the registry when the thread that started it exits.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        data_dir: Path | None = None,
        properties: Mapping[str, str] | None = None,
        heap: str = "512m",
        die_with_parent: bool = True,
    ) -> None:
        self.host = host
        self.port = free_port(host)
        self.management_port = free_port(host)
        self._own_dir = data_dir is None
        self.data_dir = Path(tempfile.mkdtemp(prefix="avroflow-apicurio-")) if data_dir is None else data_dir
        self._properties = dict(properties or {})
        self._heap = heap
        self._die_with_parent = die_with_parent
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def __repr__(self) -> str:
        return f"ApicurioRegistry(url={self.url!r}, running={self.running})"

    @property
    def url(self) -> str:
        """Base URL of the Confluent-compatible API, ``http://host:port/apis/ccompat/v7``."""
        return f"http://{self.host}:{self.port}{CCOMPAT_PATH}"

    @property
    def running(self) -> bool:
        """True while the child process is alive."""
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        """Process id of the registry while it runs."""
        return self._proc.pid if self._proc is not None and self.running else None

    @property
    def log_path(self) -> Path:
        """The file that receives the registry's output."""
        return self.data_dir / "apicurio.log"

    def start(self, timeout: float = 180.0) -> None:
        """Start the registry and wait until its Confluent-compatible API answers.

        It takes 15 s on an idle 2-core machine and was seen to take 90 s on a loaded one, hence the timeout.

        Raises:
            ApicurioRuntimeMissing: No Java 21+ or no Maven, or the distribution could not be fetched.
            ApicurioStartError: The registry exited early or did not answer within `timeout` seconds.
        """
        if self.running:
            return
        home = apicurio_home()  # outside the deadline: the first call downloads 158 MB
        deadline = time.monotonic() + timeout
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        self._proc = subprocess.Popen(
            self._command(home),
            cwd=self.data_dir,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a terminal's Ctrl-C reaches the Python parent, which stops it
            preexec_fn=preexec_for(self._die_with_parent),
        )
        try:
            self._wait_until_answering(deadline)
        except BaseException:
            self._stop_child(grace=0)
            raise

    def stop(self) -> None:
        """Stop the registry (SIGTERM, SIGKILL after a grace period) and remove the folder the helper made."""
        self._stop_child(grace=_STOP_GRACE_SECONDS)
        if self._own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def log_tail(self, chars: int = _LOG_TAIL_CHARS) -> str:
        """The last `chars` characters of the registry's log."""
        with contextlib.suppress(OSError), self.log_path.open("rb") as log:
            size = log.seek(0, os.SEEK_END)
            log.seek(max(0, size - chars))
            return log.read().decode("utf-8", "replace")
        return ""

    def _settings(self) -> dict[str, str]:
        scratch = str(self.data_dir)
        settings = {
            "quarkus.http.host": self.host,
            "quarkus.http.port": str(self.port),
            "quarkus.management.host": self.host,
            "quarkus.management.port": str(self.management_port),
            "java.io.tmpdir": scratch,
            "apicurio.storage.snapshot.location": scratch,
            "apicurio.import.work-dir": scratch,
        }
        settings.update(self._properties)
        return settings

    def _command(self, home: Path) -> list[str]:
        defines = [f"-D{key}={value}" for key, value in self._settings().items()]
        jar = str(home / "quarkus-run.jar")
        return [java21_binary(), f"-Xmx{self._heap}", *_JVM_OPTIONS, *defines, "-jar", jar]

    def _wait_until_answering(self, deadline: float) -> None:
        probe = f"{self.url}/subjects"
        last_error = "no answer yet"
        while True:
            if not self.running:
                code = self._proc.returncode if self._proc is not None else None
                raise self._fail(f"exited with code {code} before answering")
            if time.monotonic() >= deadline:
                raise self._fail(f"did not answer GET {probe} in time (last: {last_error})")
            try:
                with urllib.request.urlopen(probe, timeout=_PROBE_TIMEOUT) as answer:  # noqa: S310 -- http on loopback
                    if answer.status == 200:
                        return
                    last_error = f"HTTP {answer.status}"
            except (urllib.error.URLError, OSError) as exc:
                last_error = str(exc)
            time.sleep(_POLL_INTERVAL)

    def _fail(self, why: str) -> ApicurioStartError:
        tail = self.log_tail().strip()
        return ApicurioStartError(f"Apicurio Registry {why}; log tail:\n{tail or '(empty)'}")

    def _stop_child(self, grace: float) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            stop_child(proc, grace)
        if self._log is not None:
            self._log.close()
            self._log = None
