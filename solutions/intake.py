"""Store, then acknowledge: the durable record of every accepted message.

The receiver calls `accept()`: one Redis script, run atomically in one round trip,
marks the delivery as seen, records the message, and puts its RQ job on the
queue. Only then may the receiver answer 2xx. A job removes its message from the
record with `settle()` once the work is done; `sweep()`, which the kit's workers
run every few seconds, queues again any recorded message whose job was lost.

Keys: sms:seen:<id> (a delivery already accepted, kept 48 h because Vonage
re-sends for 24 h), sms:pending (sorted set: id -> when last queued),
sms:payloads (hash: id -> job data), sms:attempts (jobs queued so far, when more
than one), and sms:dead (gave up).
"""
from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import dataclass, field

from redis import Redis
from redis.client import Pipeline
from redis.commands.core import Script
from rq import Queue, Retry
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from rq.utils import now, utcformat, utcparse

QUEUE_NAME = "sms"
SEEN_TTL = 48 * 3600
PENDING = "sms:pending"
PAYLOADS = "sms:payloads"
ATTEMPTS = "sms:attempts"
DEAD = "sms:dead"
STATS = "sms:stats"
RETRY = Retry(max=3, interval=[1, 5, 15])
HEARTBEAT_GRACE = 30.0  # the kit's workers beat at least every 10 s, and before each job
JOB_TIMEOUT = 180  # seconds a worker may spend on one job

# Unless the delivery was seen already: mark it seen, record it, and queue its RQ
# job (a hash plus its id on the queue's list, as RQ's own Lua enqueue writes it).
_ACCEPT = """
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[4]) then
  return 0
end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[1])
redis.call('HSET', KEYS[4], unpack(ARGV, 6))
redis.call('SADD', KEYS[6], KEYS[5])
redis.call('RPUSH', KEYS[5], ARGV[5])
return 1
"""


_script: Script | None = None


def _accept_script(redis: Redis) -> Script:
    """The accept script, registered once per process (then sent by its SHA, EVALSHA)."""
    global _script
    if _script is None:
        _script = redis.register_script(_ACCEPT)
    return _script


def delivery_id(payload: dict[str, str]) -> str:
    """A stable id for one delivery: the messageId plus a digest of all its fields.

    A re-sent copy gets the same id. A forged copy that reuses a real messageId
    gets another, so it cannot crowd out the real message.
    """
    digest = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:12]
    message_id = re.sub(r"[^A-Za-z0-9_-]", "_", str(payload.get("messageId", "none")))[:40]
    return f"{message_id}-{digest}"


def get_queue(connection: Redis) -> Queue:
    """The `sms` queue on this connection."""
    return Queue(QUEUE_NAME, connection=connection)


def job_id(did: str, attempt: int) -> str:
    """The RQ job id of a delivery's `attempt`-th job."""
    return f"{did}_{attempt}"


def _description(job_data: dict) -> str:
    return f"SMS {job_data['payload'].get('messageId', '?')}"


def _job_options(job_data: dict, attempt: int) -> dict:
    """Everything RQ keeps about one delivery's job, apart from its data."""
    return dict(
        job_id=job_id(job_data["deliveryId"], attempt),
        retry=RETRY,  # RQ's own retries, for transient failures
        timeout=JOB_TIMEOUT,
        result_ttl=600,
        failure_ttl=24 * 3600,
        description=_description(job_data),
    )


def enqueue(queue: Queue, job_data: dict, func: str = "solutions.worker.process_message", attempt: int = 1) -> Job:
    """Put one job on the queue through RQ's API (the sweep queues lost messages this way)."""
    return queue.enqueue_call(func, args=(job_data,), **_job_options(job_data, attempt))


_templates: dict[tuple[str, str], list] = {}


def _job_template(queue: Queue, func: str) -> list:
    """RQ's own hash fields for a queued job of `func`, but for each job's own, made by RQ once per process."""
    if (queue.name, func) not in _templates:
        job = queue.create_job(func, args=(None,), **_job_options({"deliveryId": "-", "payload": {}}, 1))
        own = ("created_at", "enqueued_at", "description", "data")  # each job's, added by job_fields
        fields = {name: value for name, value in job.to_dict().items()
                  if value != "" and name not in own}  # RQ reads an absent field as empty
        fields["status"] = JobStatus.QUEUED.value
        _templates[queue.name, func] = [item for pair in fields.items() for item in pair]
    return _templates[queue.name, func]


def job_fields(queue: Queue, job_data: dict, func: str) -> list:
    """The hash of one delivery's first job, flat: RQ's fields, with this job's data and times."""
    stamp = utcformat(now())
    return [*_job_template(queue, func), "created_at", stamp, "enqueued_at", stamp,
            "description", _description(job_data),
            "data", queue.serializer.dumps((func, None, (job_data,), {}))]  # RQ reads it uncompressed too


def accept(queue: Queue, job_data: dict, func: str) -> bool:
    """Record a message durably and queue its job, in one step. False for a duplicate delivery.

    Raises redis.RedisError when Redis could not record it: answer 503 then.
    """
    did, first = job_data["deliveryId"], job_id(job_data["deliveryId"], 1)
    keys = [f"sms:seen:{did}", PAYLOADS, PENDING, Job.key_for(first), queue.key, queue.redis_queues_keys]
    record = json.dumps({"func": func, "job": job_data})
    args = [did, record, time.time(), SEEN_TTL, first, *job_fields(queue, job_data, func)]
    return bool(_accept_script(queue.connection)(keys, args, client=queue.connection))


def settle(connection: Redis, did: str) -> None:
    """Remove a finished message from the record, so that no sweep queues it again.

    `connection` may be a pipeline: then the removal runs when the pipeline does.
    """
    if isinstance(connection, Pipeline):
        connection.zrem(PENDING, did).hdel(PAYLOADS, did).hdel(ATTEMPTS, did)
        return
    with connection.pipeline() as pipe:
        settle(pipe, did)
        pipe.execute()


@dataclass
class SweepReport:
    """What one sweep did."""

    requeued: list[str] = field(default_factory=list)
    dead: list[str] = field(default_factory=list)
    in_progress: int = 0


def _job_is_alive(queue: Queue, job_id: str, queued: set[str]) -> bool:
    """True while the job waits in the queue or runs on a worker that is still alive."""
    try:
        job = Job.fetch(job_id, connection=queue.connection)
    except NoSuchJobError:
        return False
    status = job.get_status(refresh=False)
    if status == JobStatus.QUEUED:  # or taken by a worker that died before starting it
        return job_id in queued
    if status == JobStatus.SCHEDULED:
        return True
    if status == JobStatus.STARTED and job.worker_name:
        return _worker_is_alive(queue.connection, job.worker_name)
    return False


def _worker_is_alive(connection: Redis, name: str) -> bool:
    """True if the worker sent a heartbeat within HEARTBEAT_GRACE seconds.

    Not the worker's key alone: while it runs a job RQ keeps that key for the job's
    whole timeout plus a minute, so a worker killed mid-job looks alive for minutes.
    """
    beat = connection.hget(f"rq:worker:{name}", "last_heartbeat")
    if beat is None:
        return False
    return time.time() - utcparse(beat.decode()).timestamp() < HEARTBEAT_GRACE


def sweep(queue: Queue, older_than: float = 20.0, max_attempts: int = 5) -> SweepReport:
    """Queue again every recorded message whose job was lost or gave up.

    A message counts once it has waited `older_than` seconds since it was last queued.
    After `max_attempts` it moves to `sms:dead` for a person to look at.
    """
    redis = queue.connection
    report = SweepReport()
    due = redis.zrangebyscore(PENDING, 0, time.time() - older_than)
    queued = set(queue.get_job_ids()) if due else set()
    for raw in due:
        did = raw.decode()
        attempt = int(redis.hget(ATTEMPTS, did) or 1)
        if _job_is_alive(queue, job_id(did, attempt), queued):
            report.in_progress += 1
            continue
        data = redis.hget(PAYLOADS, did)
        if data is None:  # settled meanwhile
            redis.zrem(PENDING, did)
            continue
        if attempt >= max_attempts:
            with redis.pipeline() as pipe:
                pipe.hset(DEAD, did, data).zrem(PENDING, did).hdel(PAYLOADS, did).execute()
            report.dead.append(did)
            continue
        with redis.pipeline() as pipe:
            pipe.hset(ATTEMPTS, did, attempt + 1).zadd(PENDING, {did: time.time()}).execute()
        record = json.loads(data)
        enqueue(queue, record["job"], record["func"], attempt + 1)
        report.requeued.append(did)
    if report.requeued or report.dead:
        with redis.pipeline() as pipe:
            pipe.hincrby(STATS, "requeued", len(report.requeued)).hincrby(STATS, "dead", len(report.dead)).execute()
    return report
