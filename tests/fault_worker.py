"""A kit worker for the tests: quicker sweeper timings, and optionally a fault planted in it.

    python -m tests.fault_worker NAME [die-before-registering]

TEST_SWEEP sets the sweeper's timings as "beat,grace,every,after" in seconds.
"""
from __future__ import annotations

import os
import signal
import sys

from redis import Redis
from rq import SimpleWorker

from solutions import intake, sweeper
from solutions.settings import load_settings
from solutions.worker import run_worker


class DiesBeforeRegistering(SimpleWorker):
    """Takes a job off the queue, then is killed before RQ registers it as started."""

    def prepare_execution(self, job):  # the fault: SIGKILL exactly between taking and registering
        os.kill(os.getpid(), signal.SIGKILL)


def main() -> None:
    name, fault = sys.argv[1], (sys.argv[2] if len(sys.argv) > 2 else "")
    if os.environ.get("TEST_SWEEP"):
        timings = [float(x) for x in os.environ["TEST_SWEEP"].split(",")]
        sweeper.BEAT_EVERY, sweeper.HEARTBEAT_GRACE, sweeper.SWEEP_EVERY, sweeper.SWEEP_AFTER = timings
    redis_url = load_settings().redis_url
    if fault == "die-before-registering":
        connection = Redis.from_url(redis_url)
        DiesBeforeRegistering([intake.get_queue(connection)], connection=connection, name=name).work()
        return
    run_worker(redis_url, name=name)


if __name__ == "__main__":
    main()
