"""Run the local schema registry as a real subprocess, for tests and local runs.

`RegistryProcess` spawns ``python -m devstack.registry`` on loopback, learns the bound port from the JSON
line the server prints on stdout (so ``port=None`` can bind port 0 without a race), and then polls
``GET /subjects`` until the server answers. Secrets travel to the child through environment variables, never
on its command line, so they do not show in ``ps``. Stopping and starting again with the same data directory
reuses the port and keeps every schema id.
"""

from __future__ import annotations

import base64
import json
import os
import selectors
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import IO

from devstack.children import ChildService, preexec_for, stop_child

__all__ = ["RegistryProcess", "RegistryStartError"]

_STDERR_TAIL_CHARS = 2000
_POLL_INTERVAL = 0.05
_STOP_GRACE_SECONDS = 5.0


class RegistryStartError(RuntimeError):
    """The registry subprocess died or did not answer in time; the message carries its stderr tail."""


class RegistryProcess(ChildService):
    """A local Confluent-compatible schema registry running in a child process.

    Args:
        host: Interface to bind.
        port: Port to bind; None picks a free one (the chosen port is kept for restarts).
        data_dir: Directory where the registry persists its state; None keeps it in memory.
        basic_auth: ``(user, password)`` required on every request when set.
        bearer_token: A token accepted as ``Authorization: Bearer ...`` when set.
        certfile: PEM certificate chain; with `keyfile` the server speaks HTTPS.
        keyfile: PEM private key for `certfile`.
        log_level: The server's log level; INFO writes one access line per request to its stderr.
        warmup_seconds: For this long after each start, answer as a registry that has just restarted
            and not reloaded its store yet: ids and subjects that exist are "not found" (40403, 40401),
            as Karapace answers while it replays its topic. A plain attribute: set it between `stop()`
            and `start()` to make only a restart warm up.
        die_with_parent: On Linux, have the kernel kill the server when the starting thread exits, so a
            SIGKILLed test run leaves no registry behind. Pass False when starting from a short-lived thread.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        data_dir: Path | None = None,
        basic_auth: tuple[str, str] | None = None,
        bearer_token: str | None = None,
        certfile: Path | None = None,
        keyfile: Path | None = None,
        log_level: str = "WARNING",
        warmup_seconds: float = 0.0,
        die_with_parent: bool = True,
    ) -> None:
        if (certfile is None) != (keyfile is None):
            raise ValueError("certfile and keyfile go together")
        self.host = host
        self._port = port
        self.data_dir = data_dir
        self.basic_auth = basic_auth
        self.bearer_token = bearer_token
        self.certfile = certfile
        self.keyfile = keyfile
        self.log_level = log_level
        self.warmup_seconds = warmup_seconds
        self._die_with_parent = die_with_parent
        self._proc: subprocess.Popen[bytes] | None = None
        self._stderr: IO[bytes] | None = None

    def __repr__(self) -> str:
        return f"RegistryProcess(host={self.host!r}, port={self._port!r}, data_dir={self.data_dir!r})"

    @property
    def port(self) -> int:
        """The bound port (known once started)."""
        if self._port is None:
            raise RuntimeError("the registry has not been started yet, so it has no port")
        return self._port

    @property
    def url(self) -> str:
        """Base URL, ``http://host:port`` (``https://`` with TLS)."""
        scheme = "https" if self.certfile is not None else "http"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{host}:{self.port}"

    @property
    def running(self) -> bool:
        """True while the child process is alive."""
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = 15.0) -> None:
        """Spawn the server and wait until it answers ``GET /subjects``.

        Raises:
            RegistryStartError: The child exited or did not answer within `timeout` seconds.
        """
        if self.running:
            return
        self.stop()  # reap a child that died on its own, closing its pipes
        deadline = time.monotonic() + timeout
        self._stderr = tempfile.TemporaryFile()  # lives as long as the child
        self._proc = subprocess.Popen(
            self._command(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env=self._child_env(),
            preexec_fn=preexec_for(self._die_with_parent),
        )
        try:
            self._port = self._read_bound_port(deadline)
            self._wait_until_answering(deadline)
        except BaseException:
            self.stop()
            raise

    def stop(self, *, grace: float = _STOP_GRACE_SECONDS) -> None:
        """Terminate the child (SIGTERM, then SIGKILL after `grace` seconds). Safe to call twice.

        ``stop(grace=0)`` kills it outright, like a crash (for fault tests).
        """
        proc, self._proc = self._proc, None
        if proc is not None:
            stop_child(proc, grace)
            if proc.stdout is not None:
                proc.stdout.close()
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    def stderr_tail(self, max_chars: int = _STDERR_TAIL_CHARS) -> str:
        """The end of what the child wrote to stderr (its log; used in error messages)."""
        if self._stderr is None:
            return ""
        self._stderr.seek(0, os.SEEK_END)
        size = self._stderr.tell()
        self._stderr.seek(max(0, size - max_chars))
        return self._stderr.read().decode("utf-8", "replace")

    def _command(self) -> list[str]:
        cmd = [sys.executable, "-m", "devstack.registry", "--host", self.host, "--port", str(self._port or 0)]
        cmd += ["--log-level", self.log_level]
        if self.warmup_seconds > 0:
            cmd += ["--warmup-seconds", str(self.warmup_seconds)]
        if self.data_dir is not None:
            cmd += ["--data-dir", str(self.data_dir)]
        if self.certfile is not None and self.keyfile is not None:
            cmd += ["--certfile", str(self.certfile), "--keyfile", str(self.keyfile)]
        return cmd

    def _child_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.pop("DEVSTACK_REGISTRY_BASIC_AUTH", None)
        env.pop("DEVSTACK_REGISTRY_BEARER_TOKEN", None)
        if self.basic_auth is not None:
            env["DEVSTACK_REGISTRY_BASIC_AUTH"] = ":".join(self.basic_auth)
        if self.bearer_token is not None:
            env["DEVSTACK_REGISTRY_BEARER_TOKEN"] = self.bearer_token
        # The child must import this checkout's devstack even when started from another directory.
        root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
        return env

    def _fail(self, why: str) -> RegistryStartError:
        tail = self.stderr_tail().strip()
        return RegistryStartError(f"registry {why}; stderr tail:\n{tail or '(empty)'}")

    def _read_bound_port(self, deadline: float) -> int:
        if self._proc is None or self._proc.stdout is None:
            raise RuntimeError("_read_bound_port needs the child started with a stdout pipe")
        line = b""
        with selectors.DefaultSelector() as sel:
            sel.register(self._proc.stdout, selectors.EVENT_READ)
            while not line.endswith(b"\n"):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise self._fail("did not report its port in time")
                if not sel.select(timeout=min(remaining, 0.5)):
                    if self._proc.poll() is not None:
                        raise self._fail(f"exited with code {self._proc.returncode} before listening")
                    continue
                chunk = os.read(self._proc.stdout.fileno(), 4096)
                if not chunk:
                    self._proc.wait(timeout=_STOP_GRACE_SECONDS)
                    raise self._fail(f"exited with code {self._proc.returncode} before listening")
                line += chunk
        try:
            return int(json.loads(line.decode().splitlines()[0])["port"])
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise self._fail(f"printed an unexpected start line {line[:200]!r}") from exc

    def _wait_until_answering(self, deadline: float) -> None:
        # Our own http(s) URL, so urllib's other schemes (file:, ...) are not a concern (S310).
        request = urllib.request.Request(f"{self.url}/subjects", headers=self._auth_headers())  # noqa: S310
        # Readiness only: whether the certificate is trusted is the client's business, not the launcher's.
        context = ssl._create_unverified_context() if self.certfile is not None else None  # noqa: S323
        last_error = "no answer"
        while time.monotonic() < deadline:
            if self._proc is None or self._proc.poll() is not None:
                code = None if self._proc is None else self._proc.returncode
                raise self._fail(f"exited with code {code} while starting")
            try:
                with urllib.request.urlopen(request, timeout=1.0, context=context) as response:  # noqa: S310
                    if response.status == 200:
                        return
            except urllib.error.HTTPError as exc:
                last_error = f"HTTP {exc.code}"
            except (OSError, ssl.SSLError) as exc:
                last_error = str(exc)
            time.sleep(_POLL_INTERVAL)
        raise self._fail(f"did not answer GET /subjects in time (last: {last_error})")

    def _auth_headers(self) -> dict[str, str]:
        if self.basic_auth is not None:
            token = base64.b64encode(":".join(self.basic_auth).encode()).decode()
            return {"Authorization": f"Basic {token}"}
        if self.bearer_token is not None:
            return {"Authorization": f"Bearer {self.bearer_token}"}
        return {}
