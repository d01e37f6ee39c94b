"""solutions.sweeper: nothing acknowledged is lost, and nothing busy is taken for lost (real Redis, real workers)."""
from __future__ import annotations

import sys
import time
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from rq import SimpleWorker
from rq.job import Job, JobStatus
from rq.utils import utcformat

from solutions import intake, sweeper
from solutions.store import read_messages
from tests import slow_jobs
from workshop.redis_server import RedisServer
from workshop.sender import make_sms
from workshop.services import Service, start_worker

QUICK = "0.3,1.5,0.3,0.5"  # the test workers' sweeper: beat, grace, every, after (seconds)


@pytest.fixture()
def queue(redis):
    return intake.get_queue(redis)


def _accept(queue, func: str = intake.DEFAULT_JOB) -> str:
    delivery = intake.new_delivery(make_sms())
    assert intake.accept(queue, delivery, func)
    return delivery["deliveryId"]


def _worker(redis, name: str, beat_age: float | None) -> SimpleWorker:
    """A worker registered with RQ whose last heartbeat is `beat_age` seconds old (None: not registered)."""
    worker = SimpleWorker([intake.get_queue(redis)], connection=redis, name=name)
    if beat_age is not None:
        worker.register_birth()
        redis.hset(worker.key, "last_heartbeat", utcformat(datetime.now(timezone.utc) - timedelta(seconds=beat_age)))
    return worker


def _started_by(redis, queue, name: str) -> None:
    job = Job.fetch(queue.pop_job_id(), connection=redis)
    job.set_status(JobStatus.STARTED)
    job.worker_name = name
    job.save()


def test_sweep_leaves_queued_and_young_messages_alone(queue):
    _accept(queue)
    assert sweeper.sweep(queue, older_than=60).requeued == []
    report = sweeper.sweep(queue, older_than=0)
    assert report.requeued == [] and report.in_progress == 1


def test_sweep_requeues_a_job_lost_between_queue_and_worker(queue, redis):
    did = _accept(queue)
    redis.lmove(queue.key, queue.intermediate_queue_key)  # a worker took it, then died
    report = sweeper.sweep(queue, older_than=0)
    assert report.requeued == [did]
    assert queue.job_ids == [intake.job_id(did, 2)]
    assert Job.fetch(intake.job_id(did, 2), connection=redis).args[0]["deliveryId"] == did


@pytest.mark.parametrize("beat_age,alive", [(0, True), (sweeper.HEARTBEAT_GRACE - 2, True),
                                            (sweeper.HEARTBEAT_GRACE + 1, False), (None, False)])
def test_a_started_job_is_alive_exactly_while_its_worker_beats(queue, redis, beat_age, alive):
    did = _accept(queue)
    name = f"w-{uuid.uuid4().hex[:6]}"
    _worker(redis, name, beat_age)
    _started_by(redis, queue, name)
    report = sweeper.sweep(queue, older_than=0)
    assert (report.in_progress, report.requeued) == ((1, []) if alive else (0, [did]))


def test_a_job_waiting_for_rqs_retry_is_left_alone(queue, redis):
    _accept(queue)
    job = Job.fetch(queue.pop_job_id(), connection=redis)
    job.set_status(JobStatus.SCHEDULED)
    assert sweeper.sweep(queue, older_than=0).in_progress == 1


def test_settled_messages_are_not_swept(queue, redis):
    did = _accept(queue)
    queue.empty()
    with redis.pipeline() as pipe:
        intake.settle(pipe, did)
        pipe.execute()
    assert sweeper.sweep(queue, older_than=0).requeued == []
    assert redis.zcard(intake.PENDING) == 0


def test_after_max_attempts_a_message_goes_to_the_dead_letters(queue, redis):
    did = _accept(queue)
    for _ in range(2, 4):
        queue.empty()
        assert sweeper.sweep(queue, older_than=0, max_attempts=3).requeued == [did]
    queue.empty()
    report = sweeper.sweep(queue, older_than=0, max_attempts=3)
    assert report.dead == [did]
    assert redis.hexists(intake.DEAD, did) and redis.zcard(intake.PENDING) == 0
    assert redis.hgetall(intake.STATS) == {b"requeued": b"2", b"dead": b"1"}


def test_only_one_sweeps_at_a_time_and_only_the_holder_releases_the_lock(queue, redis, monkeypatch):
    other = redis.lock(sweeper.LOCK, timeout=60)
    assert other.acquire(blocking=False)
    assert sweeper.sweep_once(queue) is None  # another worker is sweeping
    assert other.owned()
    other.release()

    def outlived(queue, older_than=None):  # this sweep outlives its lock, and another worker takes it
        redis.delete(sweeper.LOCK)
        assert redis.lock(sweeper.LOCK, timeout=60).acquire(blocking=False)
        return sweeper.SweepReport()

    monkeypatch.setattr(sweeper, "sweep", outlived)
    assert sweeper.sweep_once(queue) is not None
    assert redis.exists(sweeper.LOCK), "a sweep released a lock another worker holds"


def test_the_sweeper_thread_beats_while_the_worker_is_busy_and_stops_with_it(redis):
    worker = _worker(redis, "busy", beat_age=60)  # registered, and silent for a minute
    with sweeper.Sweeper(worker, every=60, beat_every=0.05) as thread:
        time.sleep(0.3)  # the worker's own thread is busy with a job here
        assert sweeper.worker_is_alive(redis, "busy")
    assert not thread.is_alive()


def _test_worker(redis_url: str, env: dict, *extra: str) -> Service:
    name = f"t-{uuid.uuid4().hex[:6]}"
    return Service("worker", [sys.executable, "-m", "tests.fault_worker", name, *extra],
                   {**env, "REDIS_URL": redis_url, "TEST_SWEEP": QUICK})


@pytest.mark.slow
def test_a_long_job_on_the_default_worker_beside_an_idle_one_starts_once(settings_env, redis):
    """The job works for four times the grace: a busy SimpleWorker must never be taken for a dead one."""
    env = {**settings_env, "TEST_JOB_SECONDS": "6"}
    queue = intake.get_queue(redis)
    workers = [_test_worker(settings_env["REDIS_URL"], env) for _ in range(2)]
    try:
        did = _accept(queue, "tests.slow_jobs.work_for_a_while")
        deadline = time.monotonic() + 30
        while redis.zcard(intake.PENDING) and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        for service in workers:
            service.stop()
    assert [s.decode() for s in redis.lrange(slow_jobs.STARTS, 0, -1)] == [did]
    assert redis.hget(intake.STATS, "requeued") is None
    assert len(read_messages(settings_env["MESSAGES_FILE"])) == 1


@pytest.mark.slow
def test_a_worker_killed_between_taking_a_job_and_registering_it_loses_nothing(settings_env, redis):
    queue = intake.get_queue(redis)
    did = _accept(queue)
    doomed = _test_worker(settings_env["REDIS_URL"], settings_env, "die-before-registering")
    doomed.proc.wait(20)  # it took the job and died there
    assert queue.count == 0 and redis.lrange(queue.intermediate_queue_key, 0, -1) == [intake.job_id(did, 1).encode()]
    with _test_worker(settings_env["REDIS_URL"], settings_env):
        deadline = time.monotonic() + 30
        while redis.zcard(intake.PENDING) and time.monotonic() < deadline:
            time.sleep(0.2)
    assert [m["messageId"] for m in read_messages(settings_env["MESSAGES_FILE"])] == [did.rsplit("-", 1)[0]]
    assert redis.hget(intake.STATS, "requeued") == b"1"


@pytest.mark.slow
def test_redis_killed_with_messages_waiting_and_no_worker_loses_none_of_them(tmp_path):
    """Acknowledged means stored: Redis restarted from its append-only file still holds every message."""
    messages_file = tmp_path / "messages.jsonl"
    with RedisServer(directory=tmp_path / "redis") as server:
        from redis import Redis

        queue = intake.get_queue(Redis.from_url(server.url))
        ids = [_accept(queue) for _ in range(50)]
        server.kill()
        server.start()
        assert queue.count == 50
        with start_worker(server.url, env={"MESSAGES_FILE": str(messages_file)}):
            deadline = time.monotonic() + 30
            while queue.connection.zcard(intake.PENDING) and time.monotonic() < deadline:
                time.sleep(0.2)
    written = [m["messageId"] for m in read_messages(messages_file)]
    assert sorted(written) == sorted(did.rsplit("-", 1)[0] for did in ids)
