"""solutions.worker and workshop.supervisor: RQ's own worker classes, exiting on what they cannot handle, restarted."""
from __future__ import annotations

import time

import pytest
from redis import Redis, RedisError
from rq import SimpleWorker, SpawnWorker, Worker
from rq.job import JobStatus

from solutions import intake, sweeper, worker
from solutions.store import read_messages
from tests.conftest import SECRET
from workshop.sender import make_sms, signed
from workshop.services import free_port, start_worker
from workshop.supervisor import Supervisor


def _accepted(redis, fields, func="solutions.jobs.process_signed_message"):
    delivery = intake.new_delivery(fields)
    intake.accept(intake.get_queue(redis), delivery, func)
    return delivery


@pytest.mark.parametrize("kind,cls", [("simple", SimpleWorker), ("fork", Worker), ("spawn", SpawnWorker)])
def test_each_kind_is_rqs_own_class_on_the_sms_queue(redis, kind, cls):
    w = worker.make_worker(redis, kind)
    assert type(w) is cls and w.queue_names() == [intake.QUEUE_NAME]


def test_the_default_is_the_simple_worker_and_the_reason_is_given():
    kind, why = worker.choose_worker_class()
    assert kind == "simple" and "fork" in why


@pytest.mark.parametrize("kind", ["simple", "fork"])
def test_a_real_rq_worker_with_its_sweeper_drains_the_queue(settings_env, redis, kind):
    for n in range(5):
        _accepted(redis, signed(make_sms(f"m{n}"), SECRET, "sha256"))
    w = worker.make_worker(redis, kind)
    with sweeper.Sweeper(w):
        w.work(burst=True)
    assert sorted(m["text"] for m in read_messages(settings_env["MESSAGES_FILE"])) == [f"m{n}" for n in range(5)]
    assert redis.zcard(intake.PENDING) == 0


def test_a_failing_job_is_retried_by_rq(settings_env, monkeypatch, redis):
    monkeypatch.setenv("SIGNATURE_SECRET", "")  # the secure job raises: no secret to check with
    delivery = _accepted(redis, make_sms())
    worker.make_worker(redis, "simple").work(burst=True)
    job = intake.get_queue(redis).fetch_job(intake.job_id(delivery["deliveryId"], 1))
    assert job.get_status() == JobStatus.SCHEDULED and job.retries_left == 2


def test_run_worker_stops_at_once_when_redis_does_not_answer():
    started = time.monotonic()
    with pytest.raises(RedisError):
        worker.run_worker(f"redis://127.0.0.1:{free_port()}/0", burst=True)
    assert time.monotonic() - started < 5


def test_the_supervisor_starts_a_killed_worker_again(redis_url):
    supervisor = Supervisor(lambda wait: start_worker(redis_url, wait=wait), 2)
    try:
        first = supervisor.services[0]
        first.kill()
        assert supervisor.wait_for_restarts(1)
        assert len(supervisor.services) == 2 and first not in supervisor.services
        replacement = supervisor.services[0]
        connection = Redis.from_url(redis_url)
        deadline = time.monotonic() + 20
        while not connection.exists(f"rq:worker:{replacement.worker_name}") and time.monotonic() < deadline:
            time.sleep(0.1)
        assert connection.exists(f"rq:worker:{replacement.worker_name}")
    finally:
        supervisor.stop()
    assert not any(service.running for service in supervisor.services)
