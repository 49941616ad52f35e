"""The pytest plugin's processes end with the session: after a failure, on Ctrl-C, and on SIGKILL.

Each case runs a real inner pytest session in a scratch directory that loads only the plugin; its test
writes the pids of the broker and registry it was given, and this test checks them after the session ends.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

_SESSION_TIMEOUT = 90.0

_INNER_TEST = """
import json, os, time
from pathlib import Path


def test_uses_both(broker, registry_process, bootstrap_servers, registry_url):
    pids = {"broker": broker.pid, "registry": registry_process._proc.pid}
    Path(os.environ["PIDS_FILE"]).write_text(json.dumps(pids))
    if os.environ["BEHAVIOUR"] == "hang":
        time.sleep(120)
    assert os.environ["BEHAVIOUR"] == "pass"
"""


@pytest.fixture
def inner_session(tmp_path: Path) -> Iterator[tuple[Path, list[subprocess.Popen[str]]]]:
    (tmp_path / "pytest.ini").write_text("[pytest]\n")  # keep the project's config out of the inner run
    (tmp_path / "conftest.py").write_text('pytest_plugins = ["devstack.pytest_plugin"]\n')
    (tmp_path / "test_inner.py").write_text(textwrap.dedent(_INNER_TEST))
    procs: list[subprocess.Popen[str]] = []
    yield tmp_path, procs
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _start(directory: Path, procs: list[subprocess.Popen[str]], behaviour: str) -> subprocess.Popen[str]:
    env = dict(os.environ, PIDS_FILE=str(directory / "pids.json"), BEHAVIOUR=behaviour)
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_inner.py"],
        cwd=directory,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    procs.append(proc)
    return proc


def _pids_when_written(directory: Path, proc: subprocess.Popen[str]) -> dict[str, int]:
    pids_file = directory / "pids.json"
    deadline = time.monotonic() + _SESSION_TIMEOUT
    while not pids_file.exists() or not pids_file.read_text():
        assert proc.poll() is None, proc.communicate()[0]
        assert time.monotonic() < deadline, "the inner test never ran"
        time.sleep(0.1)
    return {name: int(pid) for name, pid in json.loads(pids_file.read_text()).items()}


def _alive(pid: int) -> bool:
    status = Path(f"/proc/{pid}/status")
    return status.exists() and "\nState:\tZ" not in status.read_text()


@pytest.mark.parametrize(("behaviour", "exit_code"), [("pass", 0), ("fail", 1)])
def test_the_session_stops_both_processes_when_it_ends(
    inner_session: tuple[Path, list[subprocess.Popen[str]]], behaviour: str, exit_code: int
) -> None:
    directory, procs = inner_session
    proc = _start(directory, procs, behaviour)
    output, _ = proc.communicate(timeout=_SESSION_TIMEOUT)
    assert proc.returncode == exit_code, output
    pids = _pids_when_written(directory, proc)
    assert not [name for name, pid in pids.items() if _alive(pid)]


def test_ctrl_c_during_a_test_stops_both_processes(
    inner_session: tuple[Path, list[subprocess.Popen[str]]],
) -> None:
    directory, procs = inner_session
    proc = _start(directory, procs, "hang")
    pids = _pids_when_written(directory, proc)
    assert all(_alive(pid) for pid in pids.values())

    proc.send_signal(signal.SIGINT)
    output, _ = proc.communicate(timeout=_SESSION_TIMEOUT)
    assert proc.returncode == pytest.ExitCode.INTERRUPTED, output
    assert not [name for name, pid in pids.items() if _alive(pid)]


def test_a_killed_session_takes_its_broker_and_registry_with_it(
    inner_session: tuple[Path, list[subprocess.Popen[str]]],
) -> None:
    directory, procs = inner_session
    proc = _start(directory, procs, "hang")
    pids = _pids_when_written(directory, proc)
    try:
        proc.kill()  # no finalizer, no atexit: only the kernel's parent-death signal can stop the children
        proc.communicate(timeout=_SESSION_TIMEOUT)
        deadline = time.monotonic() + 10
        while any(_alive(pid) for pid in pids.values()) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not [name for name, pid in pids.items() if _alive(pid)]
    finally:
        for pid in pids.values():  # never leave an orphan behind, even when the assertion failed
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
