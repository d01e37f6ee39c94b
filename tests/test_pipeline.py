"""End to end: a real receiver (waitress on 127.0.0.1), real worker processes, a real Redis."""
from __future__ import annotations

import threading
import time

import pytest
import requests

from solutions import intake
from solutions.store import read_messages
from tests.conftest import SECRET
from workshop import sender


def wait_until_settled(redis, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if redis.zcard(intake.PENDING) == 0 and intake.get_queue(redis).count == 0:
            return
        time.sleep(0.2)
    raise AssertionError(f"still pending after {timeout} s: {redis.zcard(intake.PENDING)}")


@pytest.mark.slow
def test_200_signed_messages_in_three_styles_are_each_written_once(live, redis):
    good = [sender.signed(sender.make_sms(), SECRET, "sha256") for _ in range(200)]
    bad = [sender.forged(good[0]), sender.stale(sender.make_sms(), SECRET, "sha256"),
           sender.make_sms("unsigned"), sender.signed(sender.make_sms(), "wrong", "sha256")]
    results = sender.send_many(live["url"], good + bad, concurrency=16, style="mixed", progress=False)
    assert all(r.ok for r in results)
    # Duplicates: some messages three more times, concurrently, and in another style.
    again = good[:30] * 3
    results = sender.send_many(live["url"], again, concurrency=16, style="json", progress=False)
    assert all(r.ok and r.duplicate for r in results)
    wait_until_settled(redis)
    ids = [m["messageId"] for m in read_messages(live["env"]["MESSAGES_FILE"])]
    assert sorted(ids) == sorted(m["messageId"] for m in good)
    assert int(redis.hget("sms:stats", "rejected")) == len(bad)


@pytest.mark.slow
def test_a_lost_job_is_recovered_by_a_live_workers_sweep(live, redis):
    fields = sender.signed(sender.make_sms("recover me"), SECRET, "sha256")
    for service in live["workers"]:
        service.stop()
    assert sender.deliver(live["url"], fields).ok
    queue = intake.get_queue(redis)
    queue.empty()  # as if a worker had taken the job and died
    did = redis.zrange(intake.PENDING, 0, 0)[0]
    redis.zadd(intake.PENDING, {did: time.time() - 60})
    from workshop.services import start_worker
    with start_worker(live["env"]["REDIS_URL"], env=live["env"]):
        wait_until_settled(redis, 30)
    assert [m["text"] for m in read_messages(live["env"]["MESSAGES_FILE"])] == ["recover me"]


def test_sender_retries_until_acknowledged(live, redis, redis_server):
    """Redis down: 503s, never 204; Redis back: the sender's retries deliver."""
    fields = sender.signed(sender.make_sms("retry me"), SECRET, "sha256")
    redis_server.stop()
    try:
        assert requests.post(live["url"], data=fields, timeout=5).status_code == 503
        result = {}
        thread = threading.Thread(target=lambda: result.update(d=sender.deliver(
            live["url"], fields, backoff=0.3, max_attempts=12)))
        thread.start()
        time.sleep(1.5)
    finally:
        redis_server.start()
    thread.join(30)
    delivery = result["d"]
    assert delivery.ok and delivery.attempts > 1
    wait_until_settled(redis, 30)
    assert [m["text"] for m in read_messages(live["env"]["MESSAGES_FILE"])] == ["retry me"]
