"""The pipeline `bench/worker.py` runs in the real worker: the sample pipeline on the bench's own topics.

``AVROFLOW_PIPELINES=bench_pipelines:PIPELINES`` with ``bench/`` on ``PYTHONPATH``; the topics come from
``BENCH_SOURCE_TOPIC`` and ``BENCH_SINK_TOPIC`` (not ``AVROFLOW_*``: the worker refuses unknown settings),
so every variant reads and writes its own topics. The transform, reader schema and key handling are the
sample pipeline's (`workers.sample.APP_EVENTS`).
"""

from __future__ import annotations

import dataclasses
import os

from workers.pipeline import Pipeline
from workers.sample import APP_EVENTS

PIPELINES: tuple[Pipeline, ...] = (
    dataclasses.replace(
        APP_EVENTS,
        name="bench-enrich",
        source=os.environ.get("BENCH_SOURCE_TOPIC", "bench-in"),
        sink=os.environ.get("BENCH_SINK_TOPIC", "bench-out"),
    ),
)
