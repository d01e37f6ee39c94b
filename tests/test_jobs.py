"""solutions.jobs: the plain and the secure job, idempotent, rejecting with reasons (real Redis)."""
from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta, timezone

import pytest

from solutions import intake, jobs
from solutions.store import read_messages
from tests.conftest import SECRET
from workshop.sender import forged, make_concat, make_sms, signed, stale


def _file(settings_env):
    return read_messages(settings_env["MESSAGES_FILE"])


def _accepted(redis, fields, func="solutions.jobs.process_signed_message"):
    delivery = intake.new_delivery(fields)
    intake.accept(intake.get_queue(redis), delivery, func)
    return delivery


def test_plain_worker_records_every_message_once(settings_env, redis):
    job = _accepted(redis, make_sms("unsigned hello"))
    assert jobs.process_message(job) == "written"
    assert jobs.process_message(job) == "duplicate"
    (record,) = _file(settings_env)
    assert {k: record[k] for k in ("messageId", "text")} == {"messageId": job["payload"]["messageId"],
                                                             "text": "unsigned hello"}
    assert record["msisdn"] and record["receivedAt"] == job["receivedAt"]
    assert redis.zcard(intake.PENDING) == 0
    assert redis.hgetall(intake.STATS) == {b"written": b"1", b"duplicate": b"1"}


def test_secure_worker_writes_good_messages_and_rejects_bad_ones_with_reasons(settings_env, redis, caplog):
    caplog.set_level(logging.WARNING, logger="solutions.jobs")
    good = _accepted(redis, signed(make_sms("good"), SECRET, "sha256"))
    bad = [
        _accepted(redis, forged(signed(make_sms("forged"), SECRET, "sha256"))),
        _accepted(redis, stale(make_sms("stale"), SECRET, "sha256")),
        _accepted(redis, make_sms("unsigned")),
        _accepted(redis, signed(make_sms("wrong secret"), "not-the-secret", "sha256")),
    ]
    assert jobs.process_signed_message(good) == "written"
    assert [jobs.process_signed_message(job) for job in bad] == ["rejected"] * 4
    assert [m["text"] for m in _file(settings_env)] == ["good"]
    reasons = [r.decode() for r in redis.lrange(jobs.REJECTED, 0, -1)]
    assert any("does not match" in r for r in reasons) and any("s old" in r for r in reasons)
    assert any("no sig field" in r for r in reasons)
    assert len(caplog.records) == 4 and "rejected message" in caplog.records[0].getMessage()
    assert SECRET not in caplog.text and all(SECRET not in r for r in reasons)
    assert redis.zcard(intake.PENDING) == 0


def test_freshness_is_judged_when_received_not_when_processed(settings_env, redis, monkeypatch):
    delivery = intake.new_delivery(signed(make_sms("queued for a while"), SECRET, "sha256"))
    late = intake.new_delivery(signed(make_sms("received late"), SECRET, "sha256"))
    late["receivedAt"] = (datetime.now(timezone.utc) + timedelta(hours=2)).isoformat()  # two hours after signing
    two_hours_on = time.time() + 2 * 3600
    monkeypatch.setattr(time, "time", lambda: two_hours_on)  # the worker gets to it two hours later
    assert jobs.process_signed_message(delivery) == "written"
    assert jobs.process_signed_message(late) == "rejected"


def test_a_replayed_nonce_is_rejected(settings_env, redis):
    first = signed(make_sms("first"), SECRET, "sha256")
    replay = signed(make_sms("second"), SECRET, "sha256")
    replay = signed({**replay, "nonce": first["nonce"]}, SECRET, "sha256")
    assert jobs.process_signed_message(intake.new_delivery(first)) == "written"
    assert jobs.process_signed_message(intake.new_delivery(first)) == "duplicate"  # a re-delivery, not a replay
    assert jobs.process_signed_message(intake.new_delivery(replay)) == "rejected"
    assert "nonce was already used" in redis.lindex(jobs.REJECTED, 0).decode()


def test_concat_parts_keep_their_place(settings_env, redis):
    parts = make_concat("x" * 400)
    for part in parts:
        jobs.process_message(intake.new_delivery(part))
    records = _file(settings_env)
    assert [r["concat"]["part"] for r in records] == ["1", "2", "3"]
    assert len({r["concat"]["ref"] for r in records}) == 1 and records[0]["concat"]["total"] == "3"


def test_secure_worker_without_a_secret_fails_loudly(settings_env, monkeypatch, redis):
    monkeypatch.setenv("SIGNATURE_SECRET", "")
    with pytest.raises(RuntimeError, match="SIGNATURE_SECRET is not set"):
        jobs.process_signed_message(intake.new_delivery(make_sms()))


