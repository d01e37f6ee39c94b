"""`python -m workshop bench`: how fast is store-then-acknowledge, against what users would otherwise use.

Receivers on the same server (gunicorn, 2 processes x 8 threads), the same burst of
signed, form-encoded inbound SMS at concurrency 4 and 16: (a) a bare endpoint
answering 204, the upper bound; (b) one that only pushes the raw body onto a Redis
list, the limit for store-then-acknowledge; (n) the naive RQ receiver of a typical
tutorial, `queue.enqueue(job, request.form.to_dict())` then 204, the peer a user would
otherwise copy; (c) the kit's receiver, with and without its inspector; (d) one that
processes inline, the anti-pattern. All run at once and are measured in turns over
several rounds: each figure is the median round, and each ratio the median of the
rounds' ratios, so that two receivers are compared as measured seconds apart on a
machine whose speed drifts. Latency against inline processing is compared at
concurrency 4, a load the inline receiver still sustains (under saturation a median
measures only the queue in front of the server). Then the drain rate of each worker
class with the kit's secure job. wrk drives the load when it is installed (apt/brew
install wrk); otherwise a Python load generator does, which is slower and says so.
"""
from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from urllib.parse import urlencode

import requests
from redis import Redis

from solutions import intake
from solutions.store import read_messages
from workshop import sender
from workshop.plots import latency_figure, percentile
from workshop.redis_server import RedisServer
from workshop.server import PROCESSES, THREADS, default_server
from workshop.services import Service, start_receiver

SECRET = "bench-secret"
BARE, PUSH, NAIVE, KIT, KIT_ALONE, INLINE = (
    "(a) bare endpoint, 204", "(b) push to a Redis list", "(n) naive RQ receiver", "(c) the kit's receiver",
    "(c) without its inspector", "(d) inline processing")
RECEIVERS = [  # label, app, extra environment
    (BARE, "bare", {}), (PUSH, "push", {}), (NAIVE, "naive", {}), (KIT, "kit", {}),
    (KIT_ALONE, "kit", {"INSPECTOR": "0"}), (INLINE, "inline", {}),
]
CONCURRENCY = (4, 16)  # 4: a load the inline receiver sustains, for latency; 16: for throughput
# The targets: the kit against the naive receiver at c16, with and without its inspector; its median
# latency against inline processing at c4; the kit's worker against RQ's default (forking) worker.
MIN_OF_NAIVE, MIN_OF_NAIVE_ALONE, MIN_SOONER_THAN_INLINE, MIN_TIMES_FORKING = 0.9, 1.0, 10, 3

WRK_SCRIPT = """
local bodies, counter, threads = {}, 0, {}
function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end
function init(args)
  for line in io.lines(args[1]) do table.insert(bodies, line) end
  counter = id
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
end
function request()
  counter = counter + 2
  return wrk.format(nil, nil, nil, bodies[(counter % #bodies) + 1])
end
function done(summary, latency, requests)
  io.write("REQUESTS ", summary.requests, " ", summary.duration, " ", summary.errors.status, "\\n")
  for p = 1, 999 do io.write(string.format("P %.1f %d\\n", p / 10, latency:percentile(p / 10))) end
end
"""


@dataclass
class Run:
    """One receiver at one concurrency."""

    label: str
    concurrency: int
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int = 0
    latencies: list[float] = field(default_factory=list, repr=False)  # seconds, for the plot


def make_bodies(count: int, path: Path) -> Path:
    """`count` signed inbound SMS, form-encoded, one per line, each with its own messageId."""
    with open(path, "w") as handle:
        for _ in range(count):
            handle.write(urlencode(sender.signed(sender.make_sms(), SECRET, "sha256")) + "\n")
    return path


def load_wrk(url: str, bodies: Path, concurrency: int, seconds: float, folder: Path) -> tuple[float, list[float], int]:
    script = folder / "bench.lua"
    script.write_text(WRK_SCRIPT)
    out = subprocess.run(["wrk", "-t2", f"-c{concurrency}", f"-d{seconds:.0f}s", "--timeout", "10s", "-s",
                          str(script), url, "--", str(bodies)], capture_output=True, text=True, timeout=seconds + 60)
    rps, latencies, errors = 0.0, [], 0
    for line in out.stdout.splitlines():
        if line.startswith("REQUESTS "):
            requests_done, micros, errors = (int(x) for x in line.split()[1:])
            rps = requests_done / (micros / 1e6)
        elif line.startswith("P "):
            latencies.append(int(line.split()[2]) / 1e6)
    return rps, latencies, errors


def load_python(url: str, bodies: Path, concurrency: int, count: int) -> tuple[float, list[float], int]:
    lines = bodies.read_text().splitlines()[:count]
    local = threading.local()

    def one(body: str) -> tuple[float, bool]:
        if not hasattr(local, "http"):
            local.http = requests.Session()
        started = time.perf_counter()
        ok = local.http.post(url, data=body, headers={"Content-Type": "application/x-www-form-urlencoded"},
                             timeout=10).status_code < 300
        return time.perf_counter() - started, ok

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        results = list(pool.map(one, lines))
    elapsed = time.perf_counter() - started
    return len(results) / elapsed, [r[0] for r in results], sum(not r[1] for r in results)


Rounds = dict[tuple[str, int], list[Run]]  # (label, concurrency) -> one run per round, in order


def measure_receivers(redis_url: str, folder: Path, requests_per_run: int, use_wrk: bool, rounds: int) -> Rounds:
    """Every receiver at every concurrency, `rounds` times in turn; prints the median round of each."""
    bodies = make_bodies(requests_per_run * 2, folder / "bodies.txt")
    env = {"SIGNATURE_SECRET": SECRET, "SIGNATURE_METHOD": "sha256", "MESSAGES_FILE": str(folder / "inline.jsonl")}
    connection = Redis.from_url(redis_url)
    services, urls = [], {}
    try:
        for label, app, extra in RECEIVERS:
            service, base = start_receiver(redis_url, env={**env, **extra}, app=app)
            services.append(service)
            urls[label] = base + "/webhooks/inbound-sms"
            load_python(urls[label], bodies, 8, 200)  # warm up: every process and connection ready
        measured: Rounds = {}
        for turn in range(rounds):
            print(f"  round {turn + 1} of {rounds}...", flush=True)
            for concurrency, (label, app, _) in run_order(turn):
                connection.flushall()
                if use_wrk:
                    rps, latencies, errors = load_wrk(urls[label], bodies, concurrency, 4, folder)
                else:
                    count = requests_per_run if app != "inline" else max(100, requests_per_run // 10)
                    rps, latencies, errors = load_python(urls[label], bodies, concurrency, count)
                measured.setdefault((label, concurrency), []).append(Run(
                    label, concurrency, rps, percentile(latencies, 50) * 1000,
                    percentile(latencies, 99) * 1000, errors, latencies))
    finally:
        for service in services:
            service.stop()
    for (label, concurrency), tries in measured.items():
        run = median_run(tries)
        spread = f"{min(r.rps for r in tries):.0f}-{max(r.rps for r in tries):.0f}"
        print(f"  {label:<28} c{concurrency:<3} {run.rps:>8.0f} req/s ({spread:>11})  p50 {run.p50_ms:>6.1f} ms  "
              f"p99 {run.p99_ms:>6.1f} ms{f'  {run.errors} errors' if run.errors else ''}", flush=True)
    return measured


def run_order(turn: int) -> list[tuple[int, tuple[str, str, dict]]]:
    """Round `turn`'s measurements: each concurrency's receivers back to back, so that the
    receivers compared are measured seconds apart, in reverse order every other round, so that
    a steady drift favours none of them."""
    receivers = RECEIVERS if turn % 2 == 0 else RECEIVERS[::-1]
    return [(concurrency, receiver) for concurrency in CONCURRENCY for receiver in receivers]


def median_run(tries: list[Run]) -> Run:
    """The round with the median throughput."""
    return sorted(tries, key=lambda r: r.rps)[len(tries) // 2]


def paired_ratios(measured: Rounds, top: str, bottom: str, concurrency: int) -> list[float]:
    """`top`'s throughput over `bottom`'s, round by round: each pair measured seconds apart, so
    that a machine whose speed drifts from minute to minute moves both alike."""
    return sorted(a.rps / b.rps for a, b in zip(measured[top, concurrency], measured[bottom, concurrency], strict=True))


def paired_latency_ratios(measured: Rounds, slow: str, fast: str, concurrency: int) -> list[float]:
    """`slow`'s median latency over `fast`'s, round by round (how many times sooner `fast` answers)."""
    return sorted(a.p50_ms / b.p50_ms for a, b in zip(measured[slow, concurrency], measured[fast, concurrency],
                                                       strict=True))


def verdict(met: bool) -> str:
    """How a figure stands against its target, as the summary prints it."""
    return " met" if met else " missed"


def drain_rate(redis_url: str, kind: str, jobs: int, folder: Path) -> float:
    """Jobs per second one worker process of class `kind` processes (the kit's secure job)."""
    connection = Redis.from_url(redis_url)
    connection.flushall()
    messages_file = folder / f"drain-{kind}.jsonl"
    queue = intake.get_queue(connection)
    for _ in range(jobs):
        intake.accept(queue, intake.new_delivery(sender.signed(sender.make_sms(), SECRET, "sha256")),
                      "solutions.jobs.process_signed_message")
    env = {"REDIS_URL": redis_url, "SIGNATURE_SECRET": SECRET, "SIGNATURE_METHOD": "sha256",
           "MESSAGES_FILE": str(messages_file)}
    worker = Service("bench-worker", [sys.executable, "-m", "workshop", "worker", "--burst", "--class", kind], env)
    worker.proc.wait(timeout=600)
    worker.stop()
    stamps = sorted(_epoch(m["processedAt"]) for m in read_messages(messages_file))
    return (len(stamps) - 1) / (stamps[-1] - stamps[0]) if len(stamps) > 1 else 0.0


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


def run_bench(requests_per_run: int = 3000, drain_jobs: int = 1000, plot: str | None = "bench-latency.png",
              rounds: int = 5) -> int:
    """Measure, print the figures and the targets, save the plot; return 0."""
    use_wrk = shutil.which("wrk") is not None
    folder = Path(tempfile.mkdtemp(prefix="workshop-bench-"))
    load = "wrk (4 s per run)" if use_wrk else "Python threads (install wrk for truer figures)"
    print(f"Receivers on {default_server()} ({PROCESSES} processes x {THREADS} threads), signed form-encoded "
          f"inbound SMS, load from {load}; each figure is the median of {rounds} rounds (their range in brackets):",
          flush=True)
    with RedisServer() as server:
        runs = measure_receivers(server.url, folder, requests_per_run, use_wrk, rounds)
    with RedisServer() as server:  # a fresh one, not one still busy with the receivers' bursts
        print("\nWorker drain rates (one process, the kit's secure job):", flush=True)
        rates = {}
        for kind, jobs in [("simple", drain_jobs), ("fork", max(50, drain_jobs // 4)),
                           ("spawn", max(20, drain_jobs // 20))]:
            rates[kind] = drain_rate(server.url, kind, jobs, folder)
            print(f"  {kind:<7} {rates[kind]:>7.0f} jobs/s", flush=True)
    low, high = min(CONCURRENCY), max(CONCURRENCY)

    def summary(ratios: list[float], form: str, target: float | None) -> str:
        median = statistics.median_high(ratios)  # a measured round's ratio, as median_run picks a round
        spread = f" ({form.format(ratios[0])}-{form.format(ratios[-1])})" if len(ratios) > 1 else ""
        return form.format(median) + spread + ("" if target is None else verdict(median >= target))

    def share(top: str, bottom: str, target: float | None) -> str:
        return summary(paired_ratios(runs, top, bottom, high), "{:.0%}", target)

    def sooner(fast: str) -> str:
        return summary(paired_latency_ratios(runs, INLINE, fast, low), "{:.1f}x", MIN_SOONER_THAN_INLINE)

    print("\nEach figure the median over the rounds of two receivers measured side by side (range in brackets); "
          "the kit's receiver as the workshop runs it, then without its inspector (INSPECTOR=0):")
    print(f"  kit / naive RQ receiver, c{high}      {share(KIT, NAIVE, MIN_OF_NAIVE)}; "
          f"{share(KIT_ALONE, NAIVE, MIN_OF_NAIVE_ALONE)}  "
          f"(target at least {MIN_OF_NAIVE:.0%} with the inspector, {MIN_OF_NAIVE_ALONE:.0%} without)")
    print(f"  kit / push-only, c{high}              {share(KIT, PUSH, None)}; {share(KIT_ALONE, PUSH, None)}  "
          "(the limit for store-then-acknowledge; no target)")
    print(f"  median answer, times sooner than inline, c{low}  {sooner(KIT)}; {sooner(KIT_ALONE)}  "
          f"(target at least {MIN_SOONER_THAN_INLINE}x)")
    times_forking = rates["simple"] / rates["fork"] if rates["fork"] else float("inf")
    print(f"  the kit's worker / RQ's forking worker  {times_forking:.1f}x{verdict(times_forking >= MIN_TIMES_FORKING)}"
          f"  (target at least {MIN_TIMES_FORKING}x)")
    if plot:
        figure = latency_figure({label: median_run(tries).latencies for (label, c), tries in runs.items() if c == low},
                                f"Time to acknowledge at concurrency {low} (python -m workshop bench)")
        figure.savefig(plot, dpi=110)
        print(f"\nSaved the latency plot to {plot}")
    return 0
