"""solutions.intake: store, then acknowledge, through RQ's public API (real Redis)."""
from __future__ import annotations

import re

import pytest
from redis import ResponseError as RedisResponseError
from rq.job import Job, JobStatus

from solutions import intake, sweeper
from workshop.sender import make_sms


@pytest.fixture()
def queue(redis):
    return intake.get_queue(redis)


def test_accept_records_then_queues_and_refuses_a_duplicate(queue, redis):
    delivery = intake.new_delivery(make_sms("hi"))
    assert intake.accept(queue, delivery) is True
    assert intake.accept(queue, delivery) is False
    did = delivery["deliveryId"]
    assert queue.job_ids == [intake.job_id(did, 1)]
    assert redis.hexists(intake.PAYLOADS, did) and redis.zscore(intake.PENDING, did)
    # Vonage re-sends for 24 h: the mark must outlive that, and not by chance.
    assert intake.SEEN_TTL - 5 < redis.ttl(intake.seen_key(did)) <= intake.SEEN_TTL
    assert intake.SEEN_TTL >= 24 * 3600


def test_the_job_is_rqs_own_with_its_retry_timeout_and_data(queue, redis):
    delivery = intake.new_delivery(make_sms("one"))
    intake.accept(queue, delivery, "solutions.jobs.process_signed_message")
    job = Job.fetch(intake.job_id(delivery["deliveryId"], 1), connection=redis)
    assert (job.func_name, job.args, job.kwargs) == ("solutions.jobs.process_signed_message", (delivery,), {})
    assert job.get_status() == JobStatus.QUEUED and job.origin == "sms"
    assert job.retries_left == 3 and job.retry_intervals == [1, 5, 15] and job.timeout == intake.JOB_TIMEOUT
    assert job.description == f"SMS {delivery['payload']['messageId']}"


def test_a_new_delivery_keeps_the_fields_and_when_they_came():
    sms = make_sms("when")
    delivery = intake.new_delivery(sms)
    assert delivery["payload"] == sms and delivery["text"] == "when" and delivery["event"] == "inbound-sms"
    assert delivery["deliveryId"] == intake.delivery_id(sms) and delivery["receivedAt"].endswith("+00:00")


def test_delivery_id_is_stable_and_safe_for_rq():
    sms = make_sms(messageId="a.b/c d")
    assert intake.delivery_id(sms) == intake.delivery_id(dict(reversed(list(sms.items()))))
    assert intake.delivery_id(sms).startswith("a_b_c_d-")
    assert intake.delivery_id(sms) != intake.delivery_id({**sms, "text": "other"})


def test_a_failure_half_way_is_recovered_by_the_sweep(queue, redis):
    """A command that fails inside EXEC does not undo the others: the record stays, and the sweep finds it."""
    delivery = intake.new_delivery(make_sms())
    redis.set(queue.key, "not a list")  # the queue push fails after the record is written
    with pytest.raises(RedisResponseError):
        intake.accept(queue, delivery)  # the receiver answers 503
    redis.delete(queue.key)
    assert intake.accept(queue, delivery) is False  # the retry is a duplicate...
    assert sweeper.sweep(queue, older_than=0).requeued == [delivery["deliveryId"]]  # ...and nothing is lost
    assert queue.job_ids == [intake.job_id(delivery["deliveryId"], 2)]


def test_settle_removes_the_delivery_from_the_record(queue, redis):
    delivery = intake.new_delivery(make_sms())
    intake.accept(queue, delivery)
    redis.hset(intake.ATTEMPTS, delivery["deliveryId"], 2)
    with redis.pipeline() as pipe:
        intake.settle(pipe, delivery["deliveryId"])
        pipe.execute()
    assert redis.zcard(intake.PENDING) == 0 and redis.hlen(intake.PAYLOADS) == 0 and redis.hlen(intake.ATTEMPTS) == 0


def test_delivery_id_keeps_a_readable_message_id_and_a_short_digest():
    assert re.fullmatch(r"AB_c9-[0-9a-f]{12}", intake.delivery_id({"messageId": "AB.c9", "text": "x"}))
    assert intake.delivery_id({"messageId": "M" * 60, "text": "x"}).rsplit("-", 1)[0] == "M" * 40
    assert intake.delivery_id({"text": "no id"}).startswith("none-")


def test_a_delivery_without_a_text_has_an_empty_one():
    assert intake.new_delivery({"messageId": "1"})["text"] == ""


def test_the_job_keeps_its_result_ten_minutes_and_its_failure_a_day(queue, redis):
    delivery = intake.new_delivery({"text": "no id"})
    intake.accept(queue, delivery)
    job = Job.fetch(intake.job_id(delivery["deliveryId"], 1), connection=redis)
    assert (job.result_ttl, job.failure_ttl, job.description) == (600, 24 * 3600, "SMS ?")


def test_a_copy_that_passed_the_door_check_at_the_same_moment_is_told_apart(queue, redis, monkeypatch):
    """Two copies checked at the door before either was stored: the transaction's SET NX says which came second."""
    delivery = intake.new_delivery(make_sms("twice at once"))
    assert intake.accept(queue, delivery) is True
    monkeypatch.setattr(redis, "exists", lambda *keys: 0)  # this copy was checked before the first was stored
    assert intake.accept(queue, delivery) is False
    assert intake.SEEN_TTL - 5 < redis.ttl(intake.seen_key(delivery["deliveryId"])) <= intake.SEEN_TTL
