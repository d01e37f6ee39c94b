"""Pictures the notebooks and the benchmark share."""
from __future__ import annotations

import matplotlib.pyplot as plt
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter, ScalarFormatter


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) of `values`, nearest rank."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


def latency_figure(series: dict[str, list[float]], title: str = "Time to acknowledge") -> Figure:
    """One cumulative curve per receiver: what share of requests were answered within x ms."""
    fig, ax = plt.subplots(figsize=(8, 4.6))
    for name, seconds in series.items():
        ms = sorted(s * 1000 for s in seconds)
        share = [(i + 1) / len(ms) for i in range(len(ms))]
        ax.step(ms, share, where="post",
                label=f"{name}: p50 {percentile(ms, 50):.0f} ms, p99 {percentile(ms, 99):.0f} ms")
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("milliseconds until the sender got its answer (log scale)")
    ax.set_ylabel("share of requests answered")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), frameon=False)
    fig.tight_layout()
    return fig


def depth_figure(times: list[float], depths: list[int],
                 title: str = "Queue depth while a worker drains a burst") -> Figure:
    """Jobs waiting in the queue over time."""
    fig, ax = plt.subplots(figsize=(8, 3.5))
    ax.plot(times, depths, drawstyle="steps-post")
    ax.fill_between(times, depths, step="post", alpha=0.2)
    ax.set_xlabel("seconds since the worker started")
    ax.set_ylabel("jobs waiting")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    return fig
