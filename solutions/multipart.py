"""Multipart SMS: put a long message back together exactly once, whatever the order of its parts.

A text too long for one SMS reaches the receiver as several webhooks that share a
`concat-ref`, each with its `concat-part` (1, 2, ...) and the `concat-total`. They
arrive in any order, some of them twice, and workers side by side process them at
the same moment. So:

1. each part is kept in a Redis hash, one per message, under its part number, with
   HSETNX (set if not there): a second copy of a part changes nothing;
2. every run counts the *distinct* parts kept (not the deliveries) and, when all
   are there, writes the whole message through the store's write-once: two jobs
   that both find it whole write it once;
3. every delivery is settled, the parts that only wait for the others too.

Every run checks whether the message is whole, a repeated part's run too: a worker
that died after keeping the last part, before writing, leaves the write to the run
that comes again.

    SMS_JOB=solutions.multipart.process_part python -m workshop receiver
"""
from __future__ import annotations

import json
from collections.abc import Mapping

from redis import Redis
from redis.client import Pipeline
from rq import get_current_job

from solutions import intake
from solutions.jobs import to_record
from solutions.settings import Settings, load_settings
from solutions.store import MessageStore

PARTS_TTL = intake.SEEN_TTL  # an unfinished message's parts wait as long as a re-delivery is remembered


def part_of(payload: Mapping[str, str]) -> tuple[str, str, int]:
    """Where a part belongs: the key of its message's hash, its part number, and the message's count of parts.

    A single SMS is part 1 of 1. A concat-ref is only unique per sender and comes back
    after a while, so the key names the sender and the number it was sent to as well.
    """
    if "concat-ref" not in payload:
        return f"sms:parts:{payload.get('messageId')}", "1", 1
    key = f"sms:parts:{payload.get('to')}:{payload.get('msisdn')}:{payload['concat-ref']}"
    return key, str(payload.get("concat-part")), int(payload.get("concat-total", 1))


def whole_record(parts: Mapping[bytes, bytes]) -> dict:
    """The line the messages file keeps for a whole message, from its kept parts (part number -> delivery JSON).

    The parts' texts are joined in the order of their numbers; part 1's messageId
    names the whole message, so writing it twice is writing it once.
    """
    deliveries = [json.loads(value) for _, value in sorted(parts.items(), key=lambda item: int(item[0]))]
    record = to_record(deliveries[0])
    record["text"] = "".join(d.get("text", "") for d in deliveries)
    if "concat" in record:
        record["concat"] = {"ref": record["concat"]["ref"], "total": len(deliveries)}
        record["parts"] = [d["payload"].get("messageId") for d in deliveries]
    return record


def keep_part(connection: Redis, delivery: dict) -> dict[bytes, bytes]:
    """Keep this part unless a copy is kept already; return every part of its message kept so far."""
    key, part, _ = part_of(delivery["payload"])
    with connection.pipeline() as pipe:  # one round trip, applied all at once
        pipe.hsetnx(key, part, json.dumps(delivery))
        pipe.expire(key, PARTS_TTL)
        pipe.hgetall(key)
        _, _, parts = pipe.execute()
    return parts


def settle_now(connection: Redis, delivery: dict, outcome: str = "waiting") -> None:
    """Count the outcome and settle the delivery at once: no sweep queues it again."""
    with connection.pipeline() as pipe:
        pipe.hincrby(intake.STATS, outcome, 1)
        intake.settle(pipe, delivery["deliveryId"])
        pipe.execute()


def _connection(settings: Settings) -> Redis:
    """The worker's own connection inside a job; a new one when called directly (tests)."""
    job = get_current_job()
    return job.connection if job else Redis.from_url(settings.redis_url)


def process_part(delivery: dict) -> str:
    """Keep one part of a message; write the whole message once, when every part is there.

    Returns 'written' (this run wrote the whole message), 'waiting' (parts are still
    missing) or 'duplicate' (the whole message was written already).
    """
    settings = load_settings()
    connection = _connection(settings)
    key, _, total = part_of(delivery["payload"])
    parts = keep_part(connection, delivery)
    if len(parts) < total:  # distinct parts: a part delivered twice is kept, and counted, once
        settle_now(connection, delivery)
        return "waiting"

    def finish(pipe: Pipeline) -> None:  # in the transaction that indexes the line, once it is safe
        pipe.hincrby(intake.STATS, "written", 1)
        pipe.delete(key)  # the ref may come back: a new message with it starts afresh
        intake.settle(pipe, delivery["deliveryId"])

    if MessageStore(settings.messages_file, connection).add(whole_record(parts), also=finish):
        return "written"
    connection.delete(key)
    settle_now(connection, delivery, "duplicate")
    return "duplicate"
