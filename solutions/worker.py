"""The worker process: one of RQ's own worker classes on the `sms` queue, with a Sweeper beside it.

    python -m workshop worker        # or: rq worker sms (without the sweeper)

As the talk says of workers: if things go wrong, exit; a separate tool monitors
and restarts. A kit worker does not catch what it cannot handle: it stops, and a
supervisor (`workshop/supervisor.py`, or systemd, or `rq worker-pool`) starts a
new one. RQ itself waits out a Redis that is briefly away.
"""
from __future__ import annotations

import sys
from contextlib import nullcontext

from redis import Redis
from rq import SimpleWorker, SpawnWorker, Worker
from rq.worker import BaseWorker

import solutions.jobs  # noqa: F401  imported once here, so that a forking worker's every job need not import it
from solutions import intake
from solutions.sweeper import Sweeper

WORKER_CLASSES: dict[str, type[BaseWorker]] = {"simple": SimpleWorker, "fork": Worker, "spawn": SpawnWorker}


def choose_worker_class() -> tuple[str, str]:
    """The RQ worker class for this system, and why: SimpleWorker (no fork) everywhere.

    It drains fastest, and it avoids macOS's fork-safety crashes; RQ's forking
    Worker gives each job its own process, at a cost (`python -m workshop bench`).
    """
    if sys.platform == "darwin":
        return "simple", "no fork, so no macOS fork-safety crash"
    if sys.platform == "win32":
        return "simple", "Windows cannot fork; run workers in WSL"
    return "simple", "no fork: the fastest of RQ's worker classes"


def make_worker(connection: Redis, kind: str = "simple", *, name: str | None = None) -> BaseWorker:
    """An RQ worker of class `kind` on the `sms` queue.

    A short worker_ttl lets RQ's own tools (`rq info`) forget a dead worker within
    a minute and a half; the Sweeper's heartbeats keep a live one registered.
    """
    return WORKER_CLASSES[kind](
        [intake.get_queue(connection)],
        connection=connection,
        name=name,
        worker_ttl=25,
        job_monitoring_interval=10,  # a forking worker's heartbeat during a job
    )


def run_worker(redis_url: str, kind: str | None = None, *, name: str | None = None, burst: bool = False,
               sweep: bool = True) -> None:
    """Run a worker and its Sweeper until Ctrl+C or SIGTERM (with `burst`, until the queue is empty).

    `sweep=False` runs it without the Sweeper, to watch what that loses (`python -m workshop chaos`).
    Raises redis.RedisError if Redis does not answer at the start.
    """
    kind, why = (kind, "asked for") if kind else choose_worker_class()
    connection = Redis.from_url(redis_url)
    worker = make_worker(connection, kind, name=name)
    # Only now: RQ has set the socket timeout for the connections made from here on above its blocking
    # wait for a job. One made before (redis-py's default is 5 s) would time out that wait, and the worker quit.
    connection.ping()
    print(f"worker: {type(worker).__name__} on queue '{intake.QUEUE_NAME}' ({why})"
          f"{'' if sweep else ', without the Sweeper'}; Ctrl+C stops it", file=sys.stderr, flush=True)
    with Sweeper(worker) if sweep else nullcontext():
        worker.work(burst=burst, with_scheduler=True, logging_level="WARNING")
