"""The job functions workers run: process later, at least once, in any order.

`process_message` is the plain job: it records every message.
`process_signed_message` is the secure job: it checks the signature first (the
`sig` of the SMS API, the JWT of the Messages API) and records only messages
that pass, logging each rejection with its reason.
Both are idempotent: a message processed twice is written once. A job's one
argument is a *delivery* (see `solutions.intake.new_delivery`), not RQ's Job.
"""
from __future__ import annotations

import logging
from datetime import datetime, timezone

from redis import Redis
from redis.client import Pipeline
from rq import get_current_job

from solutions import intake, messages_api
from solutions.settings import Settings, load_settings
from solutions.signatures import InvalidSignature, verify
from solutions.store import MessageStore

log = logging.getLogger("solutions.jobs")

REJECTED = "sms:rejected"
NONCE_TTL = 3600


class ReplayedNonce(InvalidSignature):
    """The nonce was already used by another message."""


def to_record(delivery: dict) -> dict:
    """The line the messages file keeps for one processed message."""
    payload = delivery["payload"]
    record = {
        "messageId": payload.get("messageId"),
        "msisdn": payload.get("msisdn"),
        "to": payload.get("to"),
        "text": delivery.get("text", ""),
        "type": payload.get("type", "text"),
        "receivedAt": delivery["receivedAt"],
        "processedAt": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
    }
    if "concat-ref" in payload:
        record["concat"] = {k: payload.get(f"concat-{k}") for k in ("ref", "part", "total")}
    if delivery.get("event") == messages_api.EVENT:
        record["api"] = "messages"
    return record


def _connection(settings: Settings) -> Redis:
    """The worker's own connection inside a job; a new one when called directly (tests, notebooks)."""
    job = get_current_job()
    return job.connection if job else Redis.from_url(settings.redis_url)


def _done(pipe: Pipeline, delivery: dict, outcome: str) -> None:
    """Count the outcome, and settle the delivery: no sweep queues it again."""
    pipe.hincrby(intake.STATS, outcome, 1)
    intake.settle(pipe, delivery["deliveryId"])


def write_once(connection: Redis, delivery: dict, settings: Settings) -> str:
    """Append the message to the file unless it is there already. Returns 'written' or 'duplicate'.

    The delivery is settled in the same transaction that indexes the new line, so a
    crash before the line is safe leaves it pending, for the sweep to queue again.
    """
    store = MessageStore(settings.messages_file, connection)
    if store.add(to_record(delivery), also=lambda pipe: _done(pipe, delivery, "written")):
        return "written"
    with connection.pipeline() as pipe:
        _done(pipe, delivery, "duplicate")
        pipe.execute()
    return "duplicate"


def process_message(delivery: dict) -> str:
    """Record every message once. Returns 'written' or 'duplicate'."""
    settings = load_settings()
    return write_once(_connection(settings), delivery, settings)


def _secret(settings: Settings) -> str:
    if not settings.signature_secret:
        raise RuntimeError("SIGNATURE_SECRET is not set: the secure job cannot check signatures")
    return settings.signature_secret


def _received(delivery: dict) -> float:
    """When the receiver got the message: its age is judged then, however late it is processed."""
    return datetime.fromisoformat(delivery["receivedAt"]).timestamp()


def check_signature(delivery: dict, connection: Redis, settings: Settings) -> None:
    """Verify the message's signature, its age when received, and its nonce.

    Raises an InvalidSignature subclass that says what is wrong, or RuntimeError
    when there is no secret to check with.
    """
    payload = delivery["payload"]
    verify(payload, _secret(settings), settings.signature_method, now=_received(delivery))
    nonce = payload.get("nonce")
    if nonce:
        owner = str(payload.get("messageId"))
        key = f"sms:nonce:{nonce}"
        if not connection.set(key, owner, nx=True, ex=NONCE_TTL):
            used_by = connection.get(key)
            if used_by is not None and used_by.decode() != owner:  # the same message again is a re-delivery
                raise ReplayedNonce("the nonce was already used by another message")


def check_token(delivery: dict, connection: Redis, settings: Settings) -> None:
    """Verify a Messages API message: its JWT against the raw body, its age when received, its jti used once.

    Raises an InvalidSignature subclass that says what is wrong, or RuntimeError
    when there is no secret to check with.
    """
    secret, payload = _secret(settings), delivery["payload"]
    # The same delivery run again (a retry, a sweep) is not a replay of its jti.
    first_use = messages_api.first_use_in_redis(connection, NONCE_TTL, owner=delivery["deliveryId"])
    messages_api.verify(payload.get("token"), payload.get("raw", "").encode("utf-8"), secret,
                        now=_received(delivery), first_use=first_use)


def process_signed_message(delivery: dict) -> str:
    """Record a message once if its signature is good. Returns 'written', 'duplicate' or 'rejected'."""
    settings = load_settings()
    connection = _connection(settings)
    check = check_token if delivery.get("event") == messages_api.EVENT else check_signature
    try:
        check(delivery, connection, settings)
    except InvalidSignature as error:
        message_id = delivery["payload"].get("messageId")
        log.warning("rejected message %s: %s", message_id, error)
        with connection.pipeline() as pipe:
            pipe.lpush(REJECTED, f"{message_id}: {error}").ltrim(REJECTED, 0, 199)
            _done(pipe, delivery, "rejected")
            pipe.execute()
        return "rejected"
    return write_once(connection, delivery, settings)
