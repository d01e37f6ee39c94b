"""solutions.intake: the durable record, and the sweep that re-queues lost jobs (real Redis)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from redis import ResponseError as RedisResponseError
from rq.job import Job, JobStatus
from rq.utils import utcformat

from solutions import intake
from solutions.receiver import job_for
from workshop.sender import make_sms

FUNC = "solutions.worker.process_message"


@pytest.fixture()
def queue(redis):
    return intake.get_queue(redis)


def _accept(queue, **fields):
    job = job_for(make_sms(**fields))
    assert intake.accept(queue, job, FUNC) is True
    return job["deliveryId"]


def test_accept_records_then_queues_and_refuses_a_duplicate(queue, redis):
    job = job_for(make_sms("hi"))
    assert intake.accept(queue, job, FUNC) is True
    assert intake.accept(queue, job, FUNC) is False
    did = job["deliveryId"]
    assert queue.job_ids == [intake.job_id(did, 1)]
    assert redis.hexists(intake.PAYLOADS, did) and redis.zscore(intake.PENDING, did)
    assert 0 < redis.ttl(f"sms:seen:{did}") <= intake.SEEN_TTL


def test_delivery_id_is_stable_and_safe_for_rq():
    sms = make_sms(messageId="a.b/c d")
    assert intake.delivery_id(sms) == intake.delivery_id(dict(reversed(list(sms.items()))))
    assert intake.delivery_id(sms).startswith("a_b_c_d-")
    assert intake.delivery_id(sms) != intake.delivery_id({**sms, "text": "other"})


def test_sweep_leaves_queued_and_young_messages_alone(queue):
    _accept(queue)
    assert intake.sweep(queue, older_than=60).requeued == []
    report = intake.sweep(queue, older_than=0)
    assert report.requeued == [] and report.in_progress == 1


def test_sweep_requeues_a_job_lost_between_queue_and_worker(queue, redis):
    did = _accept(queue)
    redis.lmove(queue.key, "rq:intermediate:sms")  # a worker took it, then died
    report = intake.sweep(queue, older_than=0)
    assert report.requeued == [did]
    assert queue.job_ids == [intake.job_id(did, 2)]
    assert Job.fetch(intake.job_id(did, 2), connection=redis).args[0]["deliveryId"] == did


def _started_by(redis, queue, worker: str, beat_age: float) -> None:
    job = Job.fetch(queue.pop_job_id(), connection=redis)
    job.set_status(JobStatus.STARTED)
    job.worker_name = worker
    job.save()
    beat = datetime.now(timezone.utc) - timedelta(seconds=beat_age)
    redis.hset(f"rq:worker:{worker}", "last_heartbeat", utcformat(beat))


def test_sweep_leaves_a_job_running_on_a_live_worker_alone(queue, redis):
    _accept(queue)
    _started_by(redis, queue, "alive", beat_age=1)
    assert intake.sweep(queue, older_than=0).in_progress == 1


def test_sweep_requeues_a_job_whose_worker_died_mid_job(queue, redis):
    """RQ keeps a busy worker's key for the job's timeout: its last heartbeat tells."""
    did = _accept(queue)
    _started_by(redis, queue, "killed", beat_age=intake.HEARTBEAT_GRACE + 1)
    assert redis.exists("rq:worker:killed")
    assert intake.sweep(queue, older_than=0).requeued == [did]


def test_sweep_requeues_a_job_whose_worker_is_gone(queue, redis):
    did = _accept(queue)
    _started_by(redis, queue, "gone", beat_age=1)
    redis.delete("rq:worker:gone")
    assert intake.sweep(queue, older_than=0).requeued == [did]


def test_settled_messages_are_not_swept(queue, redis):
    did = _accept(queue)
    queue.empty()
    intake.settle(redis, did)
    assert intake.sweep(queue, older_than=0).requeued == []
    assert redis.zcard(intake.PENDING) == 0


def test_after_max_attempts_a_message_goes_to_the_dead_letters(queue, redis):
    did = _accept(queue)
    for attempt in range(2, 4):
        queue.empty()
        assert intake.sweep(queue, older_than=0, max_attempts=3).requeued == [did]
    queue.empty()
    report = intake.sweep(queue, older_than=0, max_attempts=3)
    assert report.dead == [did]
    assert redis.hexists(intake.DEAD, did) and redis.zcard(intake.PENDING) == 0


def test_accept_writes_the_job_as_rqs_own_enqueue_would(queue, redis):
    """The script writes RQ's job hash itself: RQ must read it as one of its own."""
    scripted, by_rq = job_for(make_sms("one")), job_for(make_sms("two"))
    intake.accept(queue, scripted, FUNC)
    intake.enqueue(queue, by_rq, FUNC)
    mine = redis.hgetall(Job.key_for(intake.job_id(scripted["deliveryId"], 1)))
    theirs = {k: v for k, v in redis.hgetall(Job.key_for(intake.job_id(by_rq["deliveryId"], 1))).items() if v != b""}
    assert mine.keys() == theirs.keys()
    per_job = {b"created_at", b"enqueued_at", b"data", b"description"}
    assert {k: v for k, v in mine.items() if k not in per_job} == {k: v for k, v in theirs.items() if k not in per_job}
    job = Job.fetch(intake.job_id(scripted["deliveryId"], 1), connection=redis)
    assert (job.func_name, job.args, job.kwargs) == (FUNC, (scripted,), {})
    assert job.get_status() == JobStatus.QUEUED and job.origin == "sms" and job.retries_left == 3
    assert job.description == f"SMS {scripted['payload']['messageId']}"
    assert queue.job_ids == [job.id, intake.job_id(by_rq["deliveryId"], 1)]


def test_a_failure_half_way_is_recovered_by_the_sweep(queue, redis):
    job = job_for(make_sms())
    redis.set(queue.key, "not a list")  # the queue push fails after the record is written
    with pytest.raises(RedisResponseError):
        intake.accept(queue, job, FUNC)  # the receiver answers 503
    redis.delete(queue.key)
    assert intake.accept(queue, job, FUNC) is False  # the retry is a duplicate...
    assert intake.sweep(queue, older_than=0).requeued == [job["deliveryId"]]  # ...and nothing is lost
    assert queue.job_ids == [intake.job_id(job["deliveryId"], 2)]
