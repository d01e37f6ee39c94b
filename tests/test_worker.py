"""solutions.worker: plain and secure job functions, idempotency, and RQ's worker classes."""
from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta, timezone

import pytest
from rq import SimpleWorker, Worker
from rq.exceptions import StopRequested
from rq.job import JobStatus
from rq.suspension import suspend

from solutions import intake, worker
from solutions.receiver import job_for
from solutions.store import read_messages
from tests.conftest import SECRET
from workshop.sender import forged, make_concat, make_sms, signed, stale


def _file(settings_env):
    return read_messages(settings_env["MESSAGES_FILE"])


def _accepted(redis, fields, func="solutions.worker.process_signed_message"):
    job = job_for(fields)
    intake.accept(intake.get_queue(redis), job, func)
    return job


def test_plain_worker_records_every_message_once(settings_env, redis):
    job = _accepted(redis, make_sms("unsigned hello"))
    assert worker.process_message(job) == "written"
    assert worker.process_message(job) == "duplicate"
    (record,) = _file(settings_env)
    assert {k: record[k] for k in ("messageId", "text")} == {"messageId": job["payload"]["messageId"],
                                                             "text": "unsigned hello"}
    assert record["msisdn"] and record["receivedAt"] == job["receivedAt"]
    assert redis.zcard(intake.PENDING) == 0
    assert redis.hgetall(worker.STATS) == {b"written": b"1", b"duplicate": b"1"}


def test_secure_worker_writes_good_messages_and_rejects_bad_ones_with_reasons(settings_env, redis, caplog):
    caplog.set_level(logging.WARNING, logger="solutions.worker")
    good = _accepted(redis, signed(make_sms("good"), SECRET, "sha256"))
    bad = [
        _accepted(redis, forged(signed(make_sms("forged"), SECRET, "sha256"))),
        _accepted(redis, stale(make_sms("stale"), SECRET, "sha256")),
        _accepted(redis, make_sms("unsigned")),
        _accepted(redis, signed(make_sms("wrong secret"), "not-the-secret", "sha256")),
    ]
    assert worker.process_signed_message(good) == "written"
    assert [worker.process_signed_message(job) for job in bad] == ["rejected"] * 4
    assert [m["text"] for m in _file(settings_env)] == ["good"]
    reasons = [r.decode() for r in redis.lrange(worker.REJECTED, 0, -1)]
    assert any("does not match" in r for r in reasons) and any("s old" in r for r in reasons)
    assert any("no sig field" in r for r in reasons)
    assert len(caplog.records) == 4 and "rejected message" in caplog.records[0].getMessage()
    assert SECRET not in caplog.text and all(SECRET not in r for r in reasons)
    assert redis.zcard(intake.PENDING) == 0


def test_freshness_is_judged_when_received_not_when_processed(settings_env, redis):
    fields = signed(make_sms("queued for a while"), SECRET, "sha256")
    job = job_for(fields)
    later = job_for(fields)
    later["receivedAt"] = (datetime.now(timezone.utc) + timedelta(hours=2)).isoformat()
    assert worker.process_signed_message(job) == "written"  # processed late is fine
    job2 = job_for(signed(make_sms("x"), SECRET, "sha256"))
    job2["receivedAt"] = later["receivedAt"]  # received two hours after signing: stale
    assert worker.process_signed_message(job2) == "rejected"


def test_a_replayed_nonce_is_rejected(settings_env, redis):
    first = signed(make_sms("first"), SECRET, "sha256")
    replay = signed(make_sms("second"), SECRET, "sha256")
    replay = signed({**replay, "nonce": first["nonce"]}, SECRET, "sha256")
    assert worker.process_signed_message(job_for(first)) == "written"
    assert worker.process_signed_message(job_for(first)) == "duplicate"  # a re-delivery, not a replay
    assert worker.process_signed_message(job_for(replay)) == "rejected"
    assert "nonce was already used" in redis.lindex(worker.REJECTED, 0).decode()


def test_concat_parts_keep_their_place(settings_env, redis):
    parts = make_concat("x" * 400)
    for part in parts:
        worker.process_message(job_for(part))
    records = _file(settings_env)
    assert [r["concat"]["part"] for r in records] == ["1", "2", "3"]
    assert len({r["concat"]["ref"] for r in records}) == 1 and records[0]["concat"]["total"] == "3"


def test_secure_worker_without_a_secret_fails_loudly(settings_env, monkeypatch, redis):
    monkeypatch.setenv("SIGNATURE_SECRET", "")
    with pytest.raises(RuntimeError, match="SIGNATURE_SECRET is not set"):
        worker.process_signed_message(job_for(make_sms()))


@pytest.mark.parametrize("kind,cls", [("simple", SimpleWorker), ("fork", Worker)])
def test_a_real_rq_worker_drains_the_queue(settings_env, redis, kind, cls):
    for n in range(5):
        _accepted(redis, signed(make_sms(f"m{n}"), SECRET, "sha256"))
    w = worker.make_worker(redis, kind)
    assert isinstance(w, cls) and isinstance(w, worker.Sweeping)
    w.work(burst=True)
    assert sorted(m["text"] for m in _file(settings_env)) == [f"m{n}" for n in range(5)]
    assert redis.zcard(intake.PENDING) == 0


def test_a_failing_job_is_retried_by_rq(settings_env, monkeypatch, redis):
    monkeypatch.setenv("SIGNATURE_SECRET", "")
    job = _accepted(redis, make_sms())
    w = worker.make_worker(redis, "simple")
    w.work(burst=True)
    rq_job = intake.get_queue(redis).fetch_job(intake.job_id(job["deliveryId"], 1))
    assert rq_job.get_status() == JobStatus.SCHEDULED and rq_job.retries_left == 2


def test_the_sweep_runs_in_the_workers_maintenance(settings_env, redis):
    job = _accepted(redis, signed(make_sms("lost"), SECRET, "sha256"))
    queue = intake.get_queue(redis)
    queue.empty()  # the job is lost; only the record remains
    redis.zadd(intake.PENDING, {job["deliveryId"]: time.time() - 60})
    worker.make_worker(redis, "simple").work(burst=True)  # maintenance first: re-queue, then drain
    assert [m["text"] for m in _file(settings_env)] == ["lost"]


def test_heartbeats_come_at_most_once_a_second_unless_the_key_must_live_longer(redis):
    w = worker.make_worker(redis, "simple", name="steady")
    beat = lambda: redis.hget(w.key, "last_heartbeat")  # noqa: E731
    w.heartbeat()
    first = beat()
    time.sleep(0.01)
    w.heartbeat()
    assert beat() == first  # skipped: the key was refreshed a moment ago
    w.heartbeat(240)
    assert beat() != first and redis.ttl(w.key) > 200  # a longer timeout (a job starts) always goes out
    second = beat()
    w.heartbeat()
    assert beat() == second and redis.ttl(w.key) > 200  # the job just ended: the key lives long enough
    time.sleep(1.05)
    w.heartbeat()
    assert beat() != second and redis.ttl(w.key) <= w.worker_ttl + 60


def test_a_state_is_written_only_when_it_changes(redis):
    w = worker.make_worker(redis, "simple", name="states")
    w.set_state("idle")
    redis.hset(w.key, "state", "marker")
    w.set_state("idle")
    assert redis.hget(w.key, "state") == b"marker"  # the same state again: no write
    w.set_state("busy")
    w.set_state("idle")
    assert redis.hget(w.key, "state") == b"idle"


def test_suspension_is_asked_at_most_once_a_second(redis):
    w = worker.make_worker(redis, "simple", name="suspended")
    w.check_for_suspension(burst=True)
    suspend(redis)
    w.check_for_suspension(burst=True)  # asked a moment ago: not yet
    time.sleep(1.05)
    with pytest.raises(StopRequested):
        w.check_for_suspension(burst=True)
