"""The benchmark command runs end to end at a tiny scale and prints every figure (no timing asserted)."""
from __future__ import annotations

import pytest

from workshop import bench
from workshop.plots import percentile


def test_percentile_is_nearest_rank():
    values = list(range(1, 101))
    assert (percentile(values, 50), percentile(values, 99), percentile(values, 100)) == (50, 99, 100)


def test_ratios_pair_the_receivers_round_by_round():
    run = lambda rps: bench.Run("x", 16, rps, 1.0, 2.0)  # noqa: E731
    measured = {("kit", 16): [run(700), run(1400), run(900)], ("push", 16): [run(1000), run(2000), run(1000)]}
    assert bench.paired_ratios(measured, "kit", "push", 16) == [0.7, 0.7, 0.9]
    assert bench.median_run(measured["push", 16]).rps == 1000


def test_each_round_measures_every_receiver_once_and_alternates_their_order():
    first, second = bench.run_order(0), bench.run_order(1)
    everything = {(c, r[0]) for c in bench.CONCURRENCY for r in bench.RECEIVERS}
    assert {(c, r[0]) for c, r in first} == {(c, r[0]) for c, r in second} == everything
    assert len(first) == len(everything)
    n = len(bench.RECEIVERS)
    assert {c for c, _ in first[:n]} == {bench.CONCURRENCY[0]}  # one concurrency's receivers back to back
    assert [r[0] for _, r in first[:n]] == [r[0] for r in bench.RECEIVERS]
    assert [r[0] for _, r in second[:n]] == [r[0] for r in reversed(bench.RECEIVERS)]


@pytest.mark.slow
def test_bench_prints_every_receiver_worker_and_target(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(bench.shutil, "which", lambda name: None)  # the Python load generator: no wrk needed
    monkeypatch.setattr(bench, "CONCURRENCY", (4,))
    plot = tmp_path / "latency.png"
    assert bench.run_bench(requests_per_run=60, drain_jobs=40, plot=str(plot), rounds=1) == 0
    out = capsys.readouterr().out
    for label in (bench.BARE, bench.PUSH, bench.NAIVE, bench.KIT, bench.KIT_ALONE, bench.INLINE,
                  "simple", "fork", "spawn", "kit / naive RQ receiver", "kit / push-only", "times sooner than inline",
                  "RQ's forking worker"):
        assert label in out
    targets = [line for line in out.splitlines() if "(target" in line]
    assert len(targets) == 3 and all(line.count(" met") + line.count(" missed") == (1 if "worker" in line else 2)
                                     for line in targets)  # each figure says how it stands
    assert plot.stat().st_size > 10_000


def test_the_latency_ratio_pairs_medians_round_by_round():
    run = lambda p50: bench.Run("x", 4, 100, p50, 2 * p50)  # noqa: E731
    measured = {("inline", 4): [run(60.0), run(90.0)], ("kit", 4): [run(2.0), run(3.0)]}
    assert bench.paired_latency_ratios(measured, "inline", "kit", 4) == [30.0, 30.0]
