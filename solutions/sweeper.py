"""Nothing acknowledged is lost: queue again every pending message whose job was lost.

RQ alone can lose a job when a worker dies at the wrong moment: between taking it
off the queue and registering it, or in the middle of it. RQ cleans up after such
deaths itself, but only after many minutes. So beside every kit worker runs a
`Sweeper` thread. It beats the worker's heartbeat every few seconds (RQ's
`SimpleWorker` sends none while it runs a job, so without it a long job would look
like a dead worker) and, every few seconds, sweeps: a message pending for a while
whose job is neither waiting in the queue nor running on a worker with a recent
heartbeat is queued again. Processing is idempotent, so that is always safe.
"""
from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone

from redis import Redis, RedisError
from redis.exceptions import LockError
from rq import Queue, Worker
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from rq.worker import BaseWorker

from solutions import intake

log = logging.getLogger("solutions.sweeper")

BEAT_EVERY = 2.0  # seconds between the thread's heartbeats
HEARTBEAT_GRACE = 10.0  # a worker whose last heartbeat is older than this is dead
SWEEP_EVERY = 5.0  # seconds between sweeps
SWEEP_AFTER = 10.0  # a message pending this long is looked at
MAX_ATTEMPTS = 5  # jobs queued for one message before it goes to sms:dead
LOCK = "sms:sweep-lock"


@dataclass
class SweepReport:
    """What one sweep did."""

    requeued: list[str] = field(default_factory=list)
    dead: list[str] = field(default_factory=list)
    in_progress: int = 0


def worker_is_alive(connection: Redis, name: str, grace: float | None = None) -> bool:
    """True if the worker called `name` sent a heartbeat within `grace` seconds."""
    worker = Worker.find_by_key(Worker.redis_worker_namespace_prefix + name, connection=connection)
    if worker is None or worker.last_heartbeat is None:
        return False
    age = datetime.now(timezone.utc) - worker.last_heartbeat
    return age.total_seconds() < (HEARTBEAT_GRACE if grace is None else grace)


def job_is_alive(queue: Queue, job_id: str, queued: set[str]) -> bool:
    """True while the job waits in the queue, waits for a retry, or runs on a live worker."""
    try:
        job = Job.fetch(job_id, connection=queue.connection)
    except NoSuchJobError:
        return False
    status = job.get_status(refresh=False)
    if status == JobStatus.QUEUED:  # or taken by a worker that died before starting it
        return job_id in queued
    if status in (JobStatus.SCHEDULED, JobStatus.DEFERRED):  # RQ will queue it again itself
        return True
    if status == JobStatus.STARTED and job.worker_name:
        return worker_is_alive(queue.connection, job.worker_name)
    return False


def sweep(queue: Queue, older_than: float | None = None, max_attempts: int = MAX_ATTEMPTS) -> SweepReport:
    """Queue again every pending message whose job was lost or gave up.

    A message counts once it has waited `older_than` seconds (default SWEEP_AFTER) since
    it was last queued. After `max_attempts` it moves to `sms:dead` for a person to look at.
    """
    redis = queue.connection
    report = SweepReport()
    due = redis.zrangebyscore(intake.PENDING, 0, time.time() - (SWEEP_AFTER if older_than is None else older_than))
    queued = set(queue.get_job_ids()) if due else set()
    for raw in due:
        did = raw.decode()
        attempt = int(redis.hget(intake.ATTEMPTS, did) or 1)
        if job_is_alive(queue, intake.job_id(did, attempt), queued):
            report.in_progress += 1
            continue
        data = redis.hget(intake.PAYLOADS, did)
        if data is None:  # settled meanwhile
            redis.zrem(intake.PENDING, did)
            continue
        if attempt >= max_attempts:
            with redis.pipeline() as pipe:
                pipe.hset(intake.DEAD, did, data).zrem(intake.PENDING, did).hdel(intake.PAYLOADS, did).execute()
            report.dead.append(did)
            continue
        saved = json.loads(data)
        with redis.pipeline() as pipe:
            pipe.multi()
            pipe.hset(intake.ATTEMPTS, did, attempt + 1).zadd(intake.PENDING, {did: time.time()})
            intake.enqueue(queue, saved["delivery"], saved["func"], attempt + 1, pipeline=pipe)
            pipe.execute()
        report.requeued.append(did)
    if report.requeued or report.dead:
        with redis.pipeline() as pipe:
            pipe.hincrby(intake.STATS, "requeued", len(report.requeued))
            pipe.hincrby(intake.STATS, "dead", len(report.dead)).execute()
    return report


def sweep_once(queue: Queue, older_than: float | None = None) -> SweepReport | None:
    """Sweep, unless another worker is sweeping right now (then None). Only the holder releases the lock."""
    lock = queue.connection.lock(LOCK, timeout=60, blocking=False)
    if not lock.acquire():
        return None
    try:
        return sweep(queue, older_than)
    finally:
        with contextlib.suppress(LockError):  # it outlived its timeout and another worker took it: not ours
            lock.release()


class Sweeper(threading.Thread):
    """Beside one RQ worker: its heartbeat every `beat_every` seconds, a sweep every `every` seconds.

    Use it around `worker.work()`: `with Sweeper(worker): worker.work()`.
    """

    def __init__(self, worker: BaseWorker, every: float | None = None, beat_every: float | None = None) -> None:
        super().__init__(name="sweeper", daemon=True)
        self.worker = worker
        self.every = SWEEP_EVERY if every is None else every
        self.beat_every = BEAT_EVERY if beat_every is None else beat_every
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.worker.connection.exists(self.worker.key):  # a beat must not come before RQ registers it
            if self.stopping.wait(0.05):
                return
        next_sweep = time.monotonic()  # sweep at once: a restarted worker recovers what its predecessor lost
        while not self.stopping.is_set():
            try:
                self.worker.heartbeat()
                if time.monotonic() >= next_sweep:
                    next_sweep = time.monotonic() + self.every
                    for queue in self.worker.queues:
                        report = sweep_once(queue)
                        if report and (report.requeued or report.dead):
                            log.warning("sweep: queued again %d lost message(s), gave up on %d",
                                        len(report.requeued), len(report.dead))
            except RedisError as error:
                log.warning("sweep skipped, Redis did not answer: %s", error)
            except Exception:  # the thread must go on beating whatever one sweep met
                log.exception("sweep failed")
            self.stopping.wait(self.beat_every)

    def __enter__(self) -> Sweeper:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        self.join(timeout=5)
