"""The soak's report: a JSON document for machines and a PNG for a person (throughput and latency of the
acknowledged writes over time, each fault's window shaded from its injection to its recovery)."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tests.soak.checker import FaultWindow
from tests.soak.ops import OK, Op

COLOURS = {"kill-node": "#f4a261", "kill-writer": "#e76f51", "stop-node": "#e9c46a", "kill-agent": "#8ab17d",
           "partition-node": "#2a9d8f", "partition-writer": "#264653", "full-outage": "#9d4edd",
           "pause-dcs": "#adb5bd", "kill-dcs": "#6c757d"}


def per_second(ops: Sequence[Op], start: float, end: float) -> tuple[list[float], list[int], list[float], list[float]]:
    """Seconds since `start`; acknowledged writes per second; their median and p99 latency (ms) per second."""
    seconds = max(1, math.ceil(end - start))
    buckets: list[list[float]] = [[] for _ in range(seconds)]
    for op in ops:
        if op.kind in ("transfer", "append") and op.outcome == OK and start <= op.end < start + seconds:
            buckets[int(op.end - start)].append((op.end - op.start) * 1000)
    xs = [float(i) for i in range(seconds)]
    counts = [len(b) for b in buckets]
    p50 = [sorted(b)[len(b) // 2] if b else math.nan for b in buckets]
    p99 = [sorted(b)[min(len(b) - 1, int(len(b) * 0.99))] if b else math.nan for b in buckets]
    return xs, counts, p50, p99


def plot(path: Path, ops: Sequence[Op], windows: Sequence[FaultWindow], start: float, end: float,
         title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs, counts, p50, p99 = per_second(ops, start, end)
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(14, 7), sharex=True)
    top.plot(xs, counts, linewidth=0.8, color="#1d3557")
    top.set_ylabel("acknowledged writes / s")
    bottom.plot(xs, p50, linewidth=0.8, color="#1d3557", label="median")
    bottom.plot(xs, p99, linewidth=0.8, color="#e63946", label="p99")
    bottom.set_yscale("log")
    bottom.set_ylabel("latency (ms)")
    bottom.set_xlabel("seconds since the soak began")
    bottom.legend(loc="upper right")
    seen: set[str] = set()
    for window in windows:
        until = (window.recovered if window.recovered is not None else window.healed) - start
        for axis in (top, bottom):
            axis.axvspan(window.start - start, until, color=COLOURS.get(window.kind, "#999999"), alpha=0.3,
                         label=window.kind if axis is top and window.kind not in seen else None)
        seen.add(window.kind)
    if seen:
        top.legend(loc="upper right", fontsize=8, ncol=4)
    top.set_title(title)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def write(path: Path, report: dict[str, Any]) -> None:
    path.write_text(json.dumps(report, indent=2, sort_keys=False) + "\n")
