"""Store, then acknowledge: the durable record of every accepted message.

The receiver calls `accept()`. It asks Redis whether this delivery was seen
before (a fast path for re-deliveries), then, in one transaction (MULTI ... EXEC:
one round trip, which no other client sees half done, and which a dropped
connection or a crash applies not at all), marks the delivery as seen, records
the message as pending and puts its job on the queue with RQ's own
`enqueue_call`. Only then may the receiver answer 2xx.

Two copies of one message that arrive at the same moment can both pass the
check at the door and both be queued (the transaction's SET NX tells which came
second). That is fine: processing is idempotent (`solutions/jobs.py` writes each
message once). The check at the door saves work; idempotent processing is the
guarantee.

A job settles its message with `settle()` once the work is done, and
`solutions/sweeper.py` queues again any pending message whose job was lost.

Keys: sms:seen:<id> (a delivery already accepted, kept 48 h because Vonage
re-sends for 24 h), sms:pending (sorted set: id -> when last queued),
sms:payloads (hash: id -> what to queue again), sms:attempts (jobs queued so
far, when more than one), sms:dead (gave up) and sms:stats (counters).
"""
from __future__ import annotations

import hashlib
import json
import re
import time
from datetime import datetime, timezone

from redis import Redis
from redis.client import Pipeline
from rq import Queue, Retry
from rq.job import Job

QUEUE_NAME = "sms"
SEEN_TTL = 48 * 3600
PENDING = "sms:pending"
PAYLOADS = "sms:payloads"
ATTEMPTS = "sms:attempts"
DEAD = "sms:dead"
STATS = "sms:stats"
RETRY = Retry(max=3, interval=[1, 5, 15])  # RQ's own retries, for a job that raises
JOB_TIMEOUT = 180  # seconds a worker may spend on one job
DEFAULT_JOB = "solutions.jobs.process_message"


def delivery_id(payload: dict[str, str]) -> str:
    """A stable id for one delivery: the messageId plus a digest of all its fields.

    A re-sent copy gets the same id. A forged copy that reuses a real messageId
    gets another, so it cannot crowd out the real message.
    """
    digest = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:12]
    message_id = re.sub(r"[^A-Za-z0-9_-]", "_", str(payload.get("messageId", "none")))[:40]
    return f"{message_id}-{digest}"


def new_delivery(payload: dict[str, str], event: str = "inbound-sms") -> dict:
    """What a job needs about one received message: its fields, when it came, and its delivery id."""
    return {
        "event": event,
        "text": payload.get("text", ""),
        "receivedAt": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
        "payload": payload,
        "deliveryId": delivery_id(payload),
    }


def get_queue(connection: Redis) -> Queue:
    """The `sms` queue on this connection."""
    return Queue(QUEUE_NAME, connection=connection)


def job_id(did: str, attempt: int) -> str:
    """The RQ job id of a delivery's `attempt`-th job."""
    return f"{did}_{attempt}"


def seen_key(did: str) -> str:
    """The key that marks a delivery as accepted."""
    return f"sms:seen:{did}"


def enqueue(queue: Queue, delivery: dict, func: str = DEFAULT_JOB, attempt: int = 1,
            pipeline: Pipeline | None = None) -> Job:
    """Put one delivery's job on the queue, through RQ's API; with `pipeline`, when the pipeline runs."""
    return queue.enqueue_call(
        func,
        args=(delivery,),
        job_id=job_id(delivery["deliveryId"], attempt),
        retry=RETRY,
        timeout=JOB_TIMEOUT,
        result_ttl=600,
        failure_ttl=24 * 3600,
        description=f"SMS {delivery['payload'].get('messageId', '?')}",
        pipeline=pipeline,
    )


def accept(queue: Queue, delivery: dict, func: str = DEFAULT_JOB) -> bool:
    """Record a delivery durably and queue its job. False if it was accepted before.

    Raises redis.RedisError when Redis could not record it: answer 503 then.
    """
    redis = queue.connection
    did = delivery["deliveryId"]
    if redis.exists(seen_key(did)):
        return False
    with redis.pipeline(transaction=True) as pipe:
        pipe.multi()
        pipe.set(seen_key(did), 1, nx=True, ex=SEEN_TTL)  # None if a copy got here a moment before
        pipe.hset(PAYLOADS, did, json.dumps({"func": func, "delivery": delivery}))
        pipe.zadd(PENDING, {did: time.time()})
        enqueue(queue, delivery, func, pipeline=pipe)
        first, *_ = pipe.execute()
    return bool(first)


def settle(pipe: Pipeline, did: str) -> None:
    """Add to `pipe` the removal of a finished delivery from the pending record, so no sweep queues it again."""
    pipe.zrem(PENDING, did).hdel(PAYLOADS, did).hdel(ATTEMPTS, did)
