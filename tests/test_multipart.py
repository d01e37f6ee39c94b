"""solutions.multipart: a long SMS reassembled exactly once, in any order, twice-delivered parts, workers side by side.

Real Redis throughout; the last test runs the real receiver and two real worker processes.
"""
from __future__ import annotations

import itertools
import json
import random
import threading
import time

import pytest
from redis import Redis
from rq.job import Job

from solutions import intake, multipart
from solutions.settings import load_settings
from solutions.store import read_messages
from workshop import sender
from workshop.services import start_receiver, start_worker

JOB = "solutions.multipart.process_part"
TEXT = "".join(f"[{n:03d}] part of a long message. " for n in range(40))  # 1,200 characters: 8 parts of 153


def _file(settings_env) -> list[dict]:
    return read_messages(settings_env["MESSAGES_FILE"])


def _resent(part: dict[str, str]) -> dict[str, str]:
    """The same part sent again, stamped again: the receiver sees a new delivery, the job sees the part twice."""
    return {**part, "message-timestamp": "2030-01-01 00:00:00"}


def _run(parts: list[dict[str, str]]) -> list[str]:
    """Accept each part as the receiver does (so it is pending), then run its job here."""
    outcomes = []
    for part in parts:
        delivery = intake.new_delivery(part)
        intake.accept(intake.get_queue(Redis.from_url(load_settings().redis_url)), delivery, JOB)
        outcomes.append(multipart.process_part(delivery))
    return outcomes


def test_parts_in_every_order_make_one_message_written_once(settings_env, redis):
    messages = []
    for order in itertools.permutations(range(3)):
        parts = sender.make_concat("first part, " * 13 + "second part, " * 12 + "the end.")
        assert len(parts) == 3
        assert _run([parts[i] for i in order]) == ["waiting", "waiting", "written"]
        messages.append((parts, order))
    records = _file(settings_env)
    assert len(records) == 6
    for record, (parts, order) in zip(records, messages, strict=True):
        assert record["text"] == "".join(p["text"] for p in parts), f"order {order}"
        assert record["messageId"] == parts[0]["messageId"] and record["parts"] == [p["messageId"] for p in parts]
        assert record["concat"] == {"ref": parts[0]["concat-ref"], "total": 3}
    assert redis.zcard(intake.PENDING) == 0


def test_a_part_delivered_twice_counts_once(settings_env, redis):
    """Counting deliveries instead of distinct parts would write the message before its last part came."""
    parts = sender.make_concat(TEXT)
    assert len(parts) == 8
    first_seven = parts[:7]
    outcomes = _run(first_seven + [_resent(p) for p in first_seven])  # 14 deliveries, 7 distinct parts
    assert outcomes == ["waiting"] * 14
    assert _file(settings_env) == []
    assert _run([parts[7]]) == ["written"]
    (record,) = _file(settings_env)
    assert record["text"] == TEXT
    assert redis.zcard(intake.PENDING) == 0, "every delivery is settled, the waiting ones too"


def test_shuffled_and_duplicated_parts_of_several_messages(settings_env, redis):
    texts = [f"message {n}: " + "lorem ipsum dolor sit amet " * (8 + 4 * n) for n in range(4)]
    messages = [sender.make_concat(t, msisdn="447700900001") for t in texts]  # one sender: refs must differ
    for n, parts in enumerate(messages):
        for part in parts:
            part["concat-ref"] = str(100 + n)
    deliveries = [p for parts in messages for p in parts]
    deliveries += [_resent(p) for p in random.Random(3).sample(deliveries, 8)]
    random.Random(5).shuffle(deliveries)
    outcomes = _run(deliveries)
    assert outcomes.count("written") == 4
    assert sorted(r["text"] for r in _file(settings_env)) == sorted(texts)
    assert redis.zcard(intake.PENDING) == 0


def test_a_part_resent_after_its_message_was_written_writes_nothing(settings_env, redis):
    parts = sender.make_concat(TEXT)
    _run(parts)
    assert set(_run([_resent(parts[3]), _resent(parts[7])])) <= {"waiting", "duplicate"}
    assert [r["text"] for r in _file(settings_env)] == [TEXT]


def test_the_run_after_a_crash_writes_what_the_crashed_run_kept(settings_env, redis):
    """A worker kept the last part and died before writing: the part's next run must write the message."""
    parts = sender.make_concat(TEXT)
    _run(parts[:-1])
    last = intake.new_delivery(parts[-1])
    intake.accept(intake.get_queue(redis), last, JOB)
    key, number, _ = multipart.part_of(last["payload"])
    redis.hset(key, number, json.dumps(last))  # what the crashed run had done
    assert _file(settings_env) == []
    assert multipart.process_part(last) == "written"
    assert [r["text"] for r in _file(settings_env)] == [TEXT]
    assert redis.zcard(intake.PENDING) == 0


def test_two_jobs_that_both_find_the_message_whole_write_it_once(settings_env, redis, monkeypatch):
    """Both copies of the last part are kept before either job writes: the store's write-once decides."""
    parts = sender.make_concat(TEXT)
    _run(parts[:-1])
    both_kept = threading.Barrier(2, timeout=10)
    real_keep = multipart.keep_part

    def keep_then_wait(connection, delivery):
        kept = real_keep(connection, delivery)
        both_kept.wait()
        return kept

    monkeypatch.setattr(multipart, "keep_part", keep_then_wait)
    copies = [intake.new_delivery(parts[-1]), intake.new_delivery(_resent(parts[-1]))]
    for copy in copies:
        assert intake.accept(intake.get_queue(redis), copy, JOB)
    outcomes: list[str] = []
    threads = [threading.Thread(target=lambda d=d: outcomes.append(multipart.process_part(d))) for d in copies]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    assert sorted(outcomes) == ["duplicate", "written"]
    assert [r["text"] for r in _file(settings_env)] == [TEXT]
    assert redis.zcard(intake.PENDING) == 0


def test_a_single_sms_is_a_message_of_one_part(settings_env, redis):
    sms = sender.make_sms("short and sweet")
    assert _run([sms, _resent(sms)]) == ["written", "duplicate"]
    (record,) = _file(settings_env)
    assert record["messageId"] == sms["messageId"] and record["text"] == "short and sweet"
    assert "concat" not in record


def test_refs_are_per_sender_and_may_come_back(settings_env, redis):
    one, other = (sender.make_concat(f"{who}: " + "x" * 300, msisdn=who) for who in ("447700900001", "447700900002"))
    for part in other:
        part["concat-ref"] = one[0]["concat-ref"]  # two senders, the same ref, at the same time
    _run([one[0], other[0], one[1], other[1], one[2], other[2]])
    again = sender.make_concat("later: " + "y" * 300, msisdn="447700900001")
    for part in again:
        part["concat-ref"] = one[0]["concat-ref"]  # the first sender's ref, used again for a new message
    _run(again)
    texts = [r["text"] for r in _file(settings_env)]
    assert texts == ["447700900001: " + "x" * 300, "447700900002: " + "x" * 300, "later: " + "y" * 300]


def _wait_for(jobs: list[Job], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(j.get_status(refresh=True) in ("finished", "failed") for j in jobs):
            return
        time.sleep(0.1)
    raise AssertionError(f"jobs not done after {timeout} s: {[j.get_status() for j in jobs]}")


@pytest.mark.slow
def test_shuffled_duplicated_parts_through_the_real_receiver_and_two_workers(settings_env, redis):
    env = {**settings_env, "SMS_JOB": JOB, "SIGNATURE_SECRET": ""}
    texts = [f"long message {n}: " + "the quick brown fox jumps over the lazy dog. " * (10 + 3 * n) for n in range(5)]
    messages = [sender.make_concat(t) for t in texts]
    deliveries = [p for parts in messages for p in parts]
    deliveries += deliveries[::3] + [_resent(p) for p in deliveries[1::2]]  # exact copies, and re-stamped ones
    random.Random(11).shuffle(deliveries)
    receiver, base = start_receiver(env["REDIS_URL"], env=env)
    workers = [start_worker(env["REDIS_URL"], env=env) for _ in range(2)]
    try:
        results = sender.send_many(base + "/webhooks/inbound-sms", deliveries, concurrency=8, style="mixed",
                                   progress=False)
        assert all(r.ok for r in results)
        jobs = [Job.fetch(intake.job_id(intake.delivery_id(d), 1), connection=redis)
                for d in {intake.delivery_id(d): d for d in deliveries}.values()]
        _wait_for(jobs)
    finally:
        for service in [receiver, *workers]:
            service.stop()
    for job in jobs:
        job.refresh()
    assert [j.get_status() for j in jobs].count("finished") == len(jobs)
    assert len({j.worker_name for j in jobs}) == 2, "both workers took parts"
    records = _file(settings_env)
    assert sorted(r["text"] for r in records) == sorted(texts)
    # A copy delivered at the same moment runs the same job again: count every run's result, not the latest.
    assert [r.return_value for j in jobs for r in j.results()].count("written") == len(texts)
    assert redis.zcard(intake.PENDING) == 0


def test_the_key_names_sender_number_and_ref():
    part = {"to": "447700900000", "msisdn": "447700900001", "concat-ref": "7", "concat-part": "2",
            "concat-total": "3", "messageId": "A"}
    assert multipart.part_of(part) == ("sms:parts:447700900000:447700900001:7", "2", 3)
    assert multipart.part_of({"messageId": "B"}) == ("sms:parts:B", "1", 1)
