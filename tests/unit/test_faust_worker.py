"""The process's Faust Worker (workers.faust.worker): no spinner, the app's hook before Faust's stop."""

from __future__ import annotations

import faust
import pytest

from workers.faust.worker import QuietWorker


@pytest.mark.parametrize(("handler", "signal_name"), [("_on_sigterm", "SIGTERM"), ("_on_sigint", "SIGINT")])
def test_a_stop_signal_reaches_the_app_before_fausts_own_stop(
    monkeypatch: pytest.MonkeyPatch, handler: str, signal_name: str
) -> None:
    calls: list[str] = []
    monkeypatch.setattr(faust.Worker, handler, lambda self: calls.append("faust stops"))
    app = faust.App("quiet-worker-test", broker="kafka://127.0.0.1:9", web_enabled=False, autodiscover=False)
    worker = QuietWorker(
        app, on_stop_signal=calls.append, quiet=True, redirect_stdouts=False, loglevel="info"
    )
    assert worker.spinner is None
    getattr(worker, handler)()
    assert calls == [signal_name, "faust stops"]
