"""Job functions and workers: process later, at least once, in any order.

`process_message` is the plain worker: it records every message.
`process_signed_message` is the secure worker: it checks the signature first and
records only messages that pass, logging each rejection with its reason.
Both are idempotent: a message processed twice is written once.
"""
from __future__ import annotations

import itertools
import logging
import sys
import time
from datetime import datetime, timezone

from redis import Redis, RedisError
from rq import Queue, SimpleWorker, SpawnWorker, Worker, get_current_job

from solutions import intake
from solutions.intake import STATS
from solutions.settings import Settings, load_settings
from solutions.signatures import InvalidSignature, verify
from solutions.store import MessageStore

log = logging.getLogger("solutions.worker")

REJECTED = "sms:rejected"
NONCE_TTL = 3600


class ReplayedNonce(InvalidSignature):
    """The nonce was already used by another message."""


def to_record(job: dict) -> dict:
    """The line the messages file keeps for one processed message."""
    payload = job["payload"]
    record = {
        "messageId": payload.get("messageId"),
        "msisdn": payload.get("msisdn"),
        "to": payload.get("to"),
        "text": job.get("text", ""),
        "type": payload.get("type", "text"),
        "receivedAt": job["receivedAt"],
        "processedAt": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
    }
    if "concat-ref" in payload:
        record["concat"] = {k: payload.get(f"concat-{k}") for k in ("ref", "part", "total")}
    return record


def _connection() -> Redis:
    job = get_current_job()
    return job.connection if job else Redis.from_url(load_settings().redis_url)


def _write(connection: Redis, job: dict, settings: Settings) -> str:
    def done(pipe, outcome: str) -> None:  # count it, and take it off the record of pending messages
        pipe.hincrby(STATS, outcome, 1)
        intake.settle(pipe, job["deliveryId"])

    if MessageStore(settings.messages_file, connection).add(to_record(job), also=lambda pipe: done(pipe, "written")):
        return "written"
    with connection.pipeline() as pipe:
        done(pipe, "duplicate")
        pipe.execute()
    return "duplicate"


def process_message(job: dict) -> str:
    """Record every message once. Returns 'written' or 'duplicate'."""
    return _write(_connection(), job, load_settings())


def check_signature(job: dict, connection: Redis, settings: Settings | None = None) -> None:
    """Verify the message's signature, its age when received, and its nonce.

    Raises an InvalidSignature subclass that says what is wrong.
    """
    settings = settings or load_settings()
    if not settings.signature_secret:
        raise RuntimeError("SIGNATURE_SECRET is not set: the secure worker cannot check signatures")
    payload = job["payload"]
    received = datetime.fromisoformat(job["receivedAt"]).timestamp()
    verify(payload, settings.signature_secret, settings.signature_method, now=received)
    nonce = payload.get("nonce")
    if nonce:
        owner = str(payload.get("messageId"))
        key = f"sms:nonce:{nonce}"
        if not connection.set(key, owner, nx=True, ex=NONCE_TTL):
            used_by = connection.get(key)
            if used_by is not None and used_by.decode() != owner:
                raise ReplayedNonce("the nonce was already used by another message")


def process_signed_message(job: dict) -> str:
    """Record a message once if its signature is good. Returns 'written', 'duplicate' or 'rejected'."""
    connection = _connection()
    settings = load_settings()  # once per job: it reads .env
    try:
        check_signature(job, connection, settings)
    except InvalidSignature as error:
        message_id = job["payload"].get("messageId")
        log.warning("rejected message %s: %s", message_id, error)
        with connection.pipeline() as pipe:
            pipe.hincrby(STATS, "rejected", 1)
            pipe.lpush(REJECTED, f"{message_id}: {error}").ltrim(REJECTED, 0, 199)
            intake.settle(pipe, job["deliveryId"])
            pipe.execute()
        return "rejected"
    return _write(connection, job, settings)


WORKER_CLASSES = {"simple": SimpleWorker, "fork": Worker, "spawn": SpawnWorker}


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


class Sweeping:
    """Mixin for RQ's worker classes: every maintenance round also runs `intake.sweep`.

    RQ's own clean-up of abandoned jobs can take many minutes (see notebook 05);
    the sweep queues again any accepted message whose job was lost.
    """

    sweep_after: float = 20.0

    def run_maintenance_tasks(self) -> None:
        try:
            super().run_maintenance_tasks()  # type: ignore[misc]
        except RedisError as error:
            self.log.warning("maintenance skipped, Redis did not answer: %s", error)  # type: ignore[attr-defined]
        for queue in self.queues:  # type: ignore[attr-defined]
            try:
                if queue.connection.set("sms:sweep-lock", self.name, nx=True, ex=30):  # type: ignore[attr-defined]
                    report = intake.sweep(queue, older_than=self.sweep_after)
                    if report.requeued or report.dead:
                        self.log.warning(  # type: ignore[attr-defined]
                            "sweep: queued again %d lost message(s), gave up on %d",
                            len(report.requeued), len(report.dead),
                        )
                    queue.connection.delete("sms:sweep-lock")
            except RedisError as error:
                self.log.warning("sweep skipped, Redis did not answer: %s", error)  # type: ignore[attr-defined]
            except Exception:  # a sweep must never stop the worker
                self.log.exception("sweep failed")  # type: ignore[attr-defined]


class FewerRoundTrips:
    """Mixin for RQ's worker classes: skips the round trips around each job that change nothing.

    Around every job RQ beats its heartbeat several times (two round trips each),
    marks the worker idle twice in a row and asks whether workers are suspended.
    Here a heartbeat goes out at most once a second unless it must keep the worker's
    key longer than the last one did (a job starts; idle, the key lives 85 s and the
    sweep allows 30 s), a state only when it changes, and the suspension question
    (`rq suspend`) at most once a second.
    """

    _beat: tuple[int, float] = (0, 0.0)
    _suspension_asked: float = 0.0

    def heartbeat(self, timeout: int | None = None, pipeline=None) -> None:
        timeout = timeout or self.worker_ttl + 60  # type: ignore[attr-defined]
        if pipeline is None and self._beat[0] >= timeout and time.monotonic() - self._beat[1] < 1.0:
            return
        super().heartbeat(timeout, pipeline)  # type: ignore[misc]
        self._beat = (timeout, time.monotonic())

    def set_state(self, state: str, pipeline=None) -> None:
        if pipeline is None and state == self._state:  # type: ignore[attr-defined]
            return
        super().set_state(state, pipeline)  # type: ignore[misc]

    def check_for_suspension(self, burst: bool) -> None:
        if time.monotonic() - self._suspension_asked < 1.0:
            return
        super().check_for_suspension(burst)  # type: ignore[misc]
        self._suspension_asked = time.monotonic()


def make_worker(connection: Redis, kind: str = "simple", *, name: str | None = None,
                maintenance_interval: int = 10) -> Worker:
    """An RQ worker of class `kind` on the `sms` queue that sweeps every few seconds.

    A short worker_ttl lets a dead worker's jobs be noticed within a minute, and
    lets an idle worker wake up for maintenance every few seconds.
    """
    base = WORKER_CLASSES[kind]
    cls = type(f"Sweeping{base.__name__}", (Sweeping, FewerRoundTrips, base), {})
    return cls(
        [Queue(intake.QUEUE_NAME, connection=connection)],
        connection=connection,
        name=name,
        worker_ttl=25,
        job_monitoring_interval=10,  # a forking worker's heartbeat during a job
        maintenance_interval=maintenance_interval,
    )


def wait_for_redis(connection: Redis) -> None:
    """Block until Redis answers, saying once that we are waiting."""
    told = False
    while True:
        try:
            connection.ping()
            return
        except RedisError:
            if not told:
                print("worker: waiting for Redis to answer...", file=sys.stderr, flush=True)
                told = True
            time.sleep(1)


def run_worker(redis_url: str, kind: str | None = None, *, name: str | None = None, burst: bool = False) -> None:
    """Run a sweeping worker until Ctrl+C (or, with `burst`, until the queue is empty).

    If Redis goes away, or the worker stops on an error, it waits for Redis and
    starts again, under a new name (the old one may still be registered).
    """
    kind, why = (kind, "asked for") if kind else choose_worker_class()
    connection = Redis.from_url(redis_url)
    worker = None
    for run in itertools.count():
        wait_for_redis(connection)
        if worker is not None:  # say the last one is gone, so the sweep need not wait for it
            try:
                worker.register_death()
            except Exception:
                pass
        try:
            worker = make_worker(connection, kind, name=name if run == 0 or not name else f"{name}-{run}")
            print(f"worker: {type(worker).__name__} on queue '{intake.QUEUE_NAME}' ({why}); Ctrl+C stops it",
                  file=sys.stderr, flush=True)
            worker.work(burst=burst, with_scheduler=True, logging_level="WARNING")
        except Exception as error:  # keep going: a worker that dies quietly loses nothing, but helps nobody
            print(f"worker: stopped on {type(error).__name__}: {error}; starting again", file=sys.stderr, flush=True)
            time.sleep(1)
            continue
        if burst or worker._shutdown_requested_date is not None:  # Ctrl+C or SIGTERM
            return
        print("worker: stopped unexpectedly; starting again", file=sys.stderr, flush=True)
        time.sleep(1)
