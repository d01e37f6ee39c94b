"""solutions.intake: the durable record, and the sweep that re-queues lost jobs (real Redis)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from redis import ConnectionError as RedisConnectionError
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


def test_a_failure_after_recording_is_recovered_by_the_sweep(queue, redis, monkeypatch):
    job = job_for(make_sms())

    def redis_dies(*args, **kwargs):
        raise RedisConnectionError("gone")
    monkeypatch.setattr(intake, "enqueue", redis_dies)
    with pytest.raises(RedisConnectionError):
        intake.accept(queue, job, FUNC)  # the receiver answers 503
    monkeypatch.undo()
    assert intake.accept(queue, job, FUNC) is False  # the retry is a duplicate...
    assert intake.sweep(queue, older_than=0).requeued == [job["deliveryId"]]  # ...and nothing is lost
