"""Under load, faults and hostile input: nothing acknowledged is lost (real Redis, workers, server)."""
from __future__ import annotations

import json
import random
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from solutions import intake
from workshop import chaos, sender
from workshop.stack import Stack


def assert_nothing_lost(outcome: chaos.Outcome) -> None:
    assert outcome.acknowledged == outcome.sent, outcome
    assert outcome.lost == 0 and outcome.written_twice == 0 and outcome.server_errors == 0, outcome
    assert outcome.processed == outcome.sent, outcome


@pytest.mark.slow
def test_workers_killed_mid_burst_lose_nothing_and_recover_within_90_s():
    outcome = chaos.worker_kills(count=400, kills=4)
    assert_nothing_lost(outcome)
    assert outcome.killed_mid_job >= 1, f"no kill landed in the middle of a job: {outcome}"
    assert outcome.recovered >= outcome.killed_mid_job, outcome
    assert outcome.recovery_seconds is not None and outcome.recovery_seconds <= 90, outcome


@pytest.mark.slow
def test_redis_killed_and_restarted_means_503s_then_everything_delivered():
    outcome = chaos.redis_kill(count=200, down_for=2.0)
    assert outcome.answered_503 > 0, "Redis was down, yet nobody got a 503"
    assert_nothing_lost(outcome)


def test_each_message_delivered_three_times_concurrently_is_written_once():
    outcome = chaos.duplicates(count=100, copies=3)
    assert_nothing_lost(outcome)
    assert outcome.duplicates >= 200


def test_hostile_requests_to_the_real_server_get_4xx_and_a_good_message_still_goes_through():
    outcome = chaos.hostile(count=200)
    assert outcome.not_4xx == 0 and outcome.server_errors == 0 and outcome.answered_503 == 0, outcome
    assert outcome.acknowledged == 1 and outcome.processed == 1 and outcome.lost == 0, outcome


def test_every_hostile_kind_gets_a_4xx_with_a_reason(client, redis):
    rng = random.Random(2)
    for method, path, headers, body in chaos.hostile_requests(200, rng):
        response = client.open(path, method=method, headers=headers, data=body)
        assert 400 <= response.status_code < 500, (method, headers, body[:80], response.status_code)
        assert response.get_json()["error"]
    assert intake.get_queue(redis).count == 0 and redis.zcard(intake.PENDING) == 0


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
                           max_leaves=10)


@settings(max_examples=1500, deadline=None, suppress_health_check=list(HealthCheck))
@given(method=st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD"]),
       content_type=st.sampled_from(["application/json", "application/x-www-form-urlencoded", "text/plain",
                                     "multipart/form-data", "", "application/json; charset=latin-1"]),
       body=st.one_of(st.binary(max_size=300), json_values.map(lambda v: json.dumps(v).encode()),
                      st.dictionaries(st.text(max_size=8), st.text(max_size=20), max_size=5).map(
                          lambda d: "&".join(f"{k}={v}" for k, v in d.items()).encode("utf-8", "surrogatepass"))),
       query=st.text(max_size=200))
def test_random_requests_never_get_a_5xx(client, redis, method, content_type, body, query):
    before = redis.zcard(intake.PENDING)
    path = "/webhooks/inbound-sms?" + quote(query, safe="=&%", errors="surrogatepass")
    response = client.open(path, method=method, data=body,
                           headers={"Content-Type": content_type} if content_type else {})
    assert response.status_code < 500
    stored = redis.zcard(intake.PENDING) > before
    assert stored == (response.status_code == 204 and response.headers.get("X-Duplicate") == "no")


def test_no_secret_in_any_log_line_or_error_message():
    secret = "kit-test-secret-do-not-log-7f3a"
    with Stack(1, secret=secret) as stack:
        messages = [sender.signed(sender.make_sms(), secret, "sha256") for _ in range(5)]
        bad = [sender.forged(messages[0]), sender.stale(sender.make_sms(), secret, "sha256"),
               sender.signed(sender.make_sms(), "other", "sha256")]
        assert all(d.ok for d in sender.send_many(stack.url, messages + bad, progress=False))
        stack.wait_settled(30)
        reasons = [r.decode() for r in stack.redis.lrange("sms:rejected", 0, -1)]
        logs = [service.log_path.read_text() for service in [stack.receiver, *stack.workers]]
    assert len(reasons) == 3
    assert "rejected message" in logs[1]
    assert all(secret not in text for text in reasons + logs)
