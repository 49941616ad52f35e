"""The Faust adapter's start check: each hook exists with its shape, or one line names it and the versions."""

from __future__ import annotations

import dataclasses
import re
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
from faust.transport.consumer import Consumer
from faust.transport.drivers import aiokafka as faust_aiokafka

from workers.app import EXIT_PREFLIGHT, create_app, run_worker
from workers.faust import compat, hooks
from workers.faust.compat import HookMissing
from workers.faust.fastpath import EagerDispatch, PromptResume
from workers.sample import PIPELINES
from workers.settings import Settings

#: Nothing listens on port 9 of loopback: a worker that got past the check would wait there, not exit.
UNREACHABLE = {
    "AVROFLOW_KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9",
    "AVROFLOW_SCHEMA_REGISTRY_URL": "http://127.0.0.1:9",
}
VERSIONS = (
    f"faust-streaming {version('faust-streaming')}, mode-streaming {version('mode-streaming')}, "
    f"aiokafka {version('aiokafka')}"
)


def _hook(name: str) -> compat.Hook:
    return next(hook for hook in compat.HOOKS if hook.name == name)


def _with(name: str, owner: Any) -> tuple[compat.Hook, ...]:
    """HOOKS with the named hook looked up on `owner` instead (a copy or subclass made by the test)."""
    return tuple(
        dataclasses.replace(hook, owner=lambda: owner) if hook.name == name else hook for hook in compat.HOOKS
    )


def _copy_without(cls: type[Any], attribute: str) -> type[Any]:
    """A copy of `cls` (same bases, same namespace) without `attribute`: a release that removed it."""
    namespace = {k: v for k, v in vars(cls).items() if k not in {attribute, "__dict__", "__weakref__"}}
    return type(cls.__name__, cls.__bases__, namespace)


def test_every_hook_is_there_on_the_installed_releases() -> None:
    compat.check()  # the fast path's hooks and the always-needed ones
    assert len({hook.name for hook in compat.HOOKS}) == len(compat.HOOKS) >= 20


def test_the_worker_refuses_to_start_naming_a_removed_hook_and_the_versions(
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    name = "faust.transport.drivers.aiokafka.Producer._settings_extra"
    without = _copy_without(faust_aiokafka.Producer, "_settings_extra")
    monkeypatch.setattr(compat, "HOOKS", _with(name, without))
    # Refused before connecting: with the broker and the registry unreachable, a worker past the check
    # would wait for them instead of returning.
    assert run_worker(Settings.from_env(UNREACHABLE), PIPELINES) == EXIT_PREFLIGHT
    refusals = [line for line in capfd.readouterr().err.splitlines() if "refusing to start" in line]
    assert len(refusals) == 1
    assert f"Faust hook {name} is missing ({VERSIONS})" in refusals[0]
    assert "idempotent producer" in refusals[0]


def test_a_hook_whose_signature_changed_is_named_with_what_it_takes_now() -> None:
    class Renamed(Consumer):  # a release that renamed _wait_next_records's parameter
        async def _wait_next_records(self, wait: float) -> Any:  # type: ignore[override]  # the point
            return None

    name = "faust.transport.consumer.Consumer._wait_next_records"
    with pytest.raises(HookMissing) as caught:
        compat.check(_with(name, Renamed))
    message = str(caught.value)
    assert re.search(
        rf"{re.escape(name)} no longer takes timeout \(takes self, wait\) \(faust-streaming", message
    )
    assert "AVROFLOW_FAUST_FAST_PATH=false runs without it" in message
    assert "\n" not in message


def test_an_instance_attribute_no_longer_set_in_init_is_named() -> None:
    class Forgetful(Consumer):  # a release whose consumer keeps its paused partitions elsewhere
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            self.paused_elsewhere = set()

    name = "faust.transport.consumer.Consumer._buffered_partitions"
    with pytest.raises(HookMissing, match=re.escape(f"{name} is no longer set or read by __init__")):
        compat.check(_with(name, Forgetful))


def test_a_module_that_moved_is_reported_as_the_hook_not_an_import_error() -> None:
    moved = dataclasses.replace(
        _hook("faust.Worker._on_sigterm"), owner=compat._load("faust.worker_moved_in_1_0", "Worker")
    )
    with pytest.raises(
        HookMissing, match=r"faust\.Worker\._on_sigterm cannot be loaded \(ModuleNotFoundError"
    ):
        compat.check((moved,))


def test_with_the_fast_path_off_its_hooks_are_neither_checked_nor_installed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    name = "faust.transport.consumer.Consumer.on_buffer_drop"
    # A release where it is no longer a method (shadowed by a subclass here: a base class still has one).
    monkeypatch.setattr(compat, "HOOKS", _with(name, type("Consumer", (Consumer,), {"on_buffer_drop": None})))
    with pytest.raises(HookMissing, match=re.escape(f"{name} is no longer callable")):
        create_app(Settings.from_env(UNREACHABLE), PIPELINES)
    app = create_app(Settings.from_env({**UNREACHABLE, "AVROFLOW_FAUST_FAST_PATH": "false"}), PIPELINES)
    assert app.transport.Consumer is faust_aiokafka.Consumer
    assert not issubclass(app.transport.Consumer, EagerDispatch | PromptResume)
    assert hooks.installed(app) == ("idempotent_producer",)
    app.consumer._thread.thread_loop.close()  # never started


def test_with_the_fast_path_on_its_hooks_are_installed() -> None:
    app = create_app(Settings.from_env(UNREACHABLE), PIPELINES)
    assert hooks.installed(app) == (
        "eager_dispatch",
        "prompt_resume",
        "fetch_max_wait",
        "idempotent_producer",
    )
    app.consumer._thread.thread_loop.close()


def test_a_users_app_whose_avroflow_meets_a_missing_hook_is_refused_with_the_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from workers import cli

    (tmp_path / "hookless_user_app.py").write_text(
        "import faust\n"
        "from workers.agents import Avroflow\n"
        "from workers.kafka_config import faust_settings\n"
        "from workers.settings import Settings\n"
        "settings = Settings.from_env()\n"
        "app = faust.App('hookless', **faust_settings(settings))\n"
        "Avroflow(app, settings)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    for variable, value in UNREACHABLE.items():
        monkeypatch.setenv(variable, value)
    name = "faust.transport.drivers.aiokafka.Producer._settings_extra"
    monkeypatch.setattr(
        compat, "HOOKS", _with(name, _copy_without(faust_aiokafka.Producer, "_settings_extra"))
    )
    assert cli.main(["worker", "--app", "hookless_user_app:app"]) == EXIT_PREFLIGHT
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"avroflow worker: refusing to start: Faust hook {name} is missing ({VERSIONS})")
