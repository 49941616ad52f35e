"""Read the worker's counters from its /metrics endpoint and print them as a short summary (for the demo).

The counters are the worker's (`workers.web.WorkerMetrics`) and the codec's
(`registry_codecs.metrics.CodecMetrics`), all under the ``avroflow_`` prefix. The summary shows the
balance the worker promises: every input is counted once as out, dropped or dead-lettered.
"""

from __future__ import annotations

import time
from collections import defaultdict

import requests
from prometheus_client.parser import text_string_to_metric_families

#: (label in the summary, counter family) in print order.
SUMMARY_ROWS = (
    ("records in", "avroflow_records_in"),
    ("records out", "avroflow_records_out"),
    ("dropped", "avroflow_records_dropped"),
    ("dead-lettered", "avroflow_records_dead_lettered"),
    ("decode failures", "avroflow_decode_failures"),
    ("encode failures", "avroflow_encode_failures"),
)

Counters = dict[str, dict[str, float]]  # family -> reason (or "") -> value


def read_counters(url: str, timeout: float = 5.0) -> Counters:
    """Return the counter totals of `url` by family and by ``reason`` label (summed over other labels).

    Raises:
        requests.RequestException: the endpoint did not answer.
    """
    response = requests.get(url, timeout=timeout)
    response.raise_for_status()
    return parse_counters(response.text)


def parse_counters(text: str) -> Counters:
    """Return the counter totals in Prometheus exposition `text` by family and ``reason`` label."""
    counters: Counters = defaultdict(lambda: defaultdict(float))
    for family in text_string_to_metric_families(text):
        if family.type != "counter":
            continue
        for sample in family.samples:
            if sample.name.endswith("_total"):
                counters[family.name][sample.labels.get("reason", "")] += sample.value
    return counters


def total(counters: Counters, family: str) -> int:
    """The sum of a family over all its labels (0 when absent)."""
    return int(sum(counters.get(family, {}).values()))


def balanced(counters: Counters, expected_in: int) -> bool:
    """Whether every expected input is counted in, and each input is out, dropped or dead-lettered."""
    settled = sum(total(counters, f) for f in ("avroflow_records_out", "avroflow_records_dropped"))
    settled += total(counters, "avroflow_records_dead_lettered")
    return total(counters, "avroflow_records_in") >= expected_in and settled == total(
        counters, "avroflow_records_in"
    )


def format_summary(counters: Counters) -> str:
    """Render the summary rows, with the reasons of dead letters and failures."""
    lines = []
    for label, family in SUMMARY_ROWS:
        by_reason = {r: int(v) for r, v in sorted(counters.get(family, {}).items()) if r and v}
        detail = ", ".join(f"{r} {v}" for r, v in by_reason.items())
        lines.append(f"  {label:<16}{total(counters, family):>5}   {detail}".rstrip())
    n_in, n_out, n_drop, n_dlq = (total(counters, f) for _, f in SUMMARY_ROWS[:4])
    verdict = "holds" if n_in == n_out + n_drop + n_dlq else "does NOT hold"
    lines.append(f"  in = out + dropped + dead-lettered: {n_in} = {n_out} + {n_drop} + {n_dlq} ({verdict})")
    return "\n".join(lines)


def scrape_summary(url: str, expected_in: int, settle_seconds: float = 10.0) -> str:
    """Read `url` until the counters balance for `expected_in` inputs (or `settle_seconds`); format them."""
    deadline = time.monotonic() + settle_seconds
    while True:
        try:
            counters = read_counters(url)
        except requests.RequestException as exc:
            if time.monotonic() >= deadline:
                return f"  could not read {url}: {exc}"
        else:
            if balanced(counters, expected_in) or time.monotonic() >= deadline:
                return format_summary(counters)
        time.sleep(0.25)


__all__ = [
    "SUMMARY_ROWS",
    "balanced",
    "format_summary",
    "parse_counters",
    "read_counters",
    "scrape_summary",
    "total",
]
