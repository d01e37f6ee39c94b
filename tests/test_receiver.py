"""solutions.receiver on a real Redis: store then acknowledge, clear 4xx, 503 when Redis is down."""
from __future__ import annotations

import json
import socket
import threading
import time

import pytest
from rq import Queue

from solutions import intake
from solutions.receiver import create_app
from solutions.settings import env_flag
from workshop.sender import make_sms

URL = "/webhooks/inbound-sms"


def _queued(redis) -> list[dict]:
    queue = Queue("sms", connection=redis)
    return [job.args[0] for job in queue.get_jobs()]


@pytest.mark.parametrize("style", ["get", "form", "json"])
def test_each_style_is_stored_queued_then_acknowledged(client, redis, style):
    sms = make_sms("Hello & welcome = yes", msisdn="447700900123")
    if style == "get":
        response = client.get(URL, query_string=sms)
    elif style == "form":
        response = client.post(URL, data=sms)
    else:
        response = client.post(URL, json=sms)
    assert response.status_code == 204 and response.data == b""
    (job,) = _queued(redis)
    assert job["payload"] == sms
    assert job["event"] == "inbound-sms" and job["text"] == "Hello & welcome = yes"
    assert job["receivedAt"].endswith("+00:00")
    assert redis.zscore(intake.PENDING, job["deliveryId"]) is not None


def test_json_numbers_and_booleans_become_strings(client, redis):
    response = client.post(URL, json={"messageId": "A1", "text": "hi", "msisdn": 447700900001, "concat": True})
    assert response.status_code == 204
    assert _queued(redis)[0]["payload"] == {"messageId": "A1", "text": "hi", "msisdn": "447700900001",
                                           "concat": "true"}


def test_redelivery_is_acknowledged_but_queued_once(client, redis):
    sms = make_sms()
    first = client.post(URL, data=sms)
    again = client.get(URL, query_string=sms)
    assert (first.status_code, again.status_code) == (204, 204)
    assert (first.headers["X-Duplicate"], again.headers["X-Duplicate"]) == ("no", "yes")
    assert len(_queued(redis)) == 1


def test_forged_copy_with_a_real_message_id_does_not_crowd_out_the_real_one(client, redis):
    real = make_sms("real")
    fake = {**real, "text": "fake"}
    assert client.post(URL, data=fake).headers["X-Duplicate"] == "no"
    assert client.post(URL, data=real).headers["X-Duplicate"] == "no"
    assert sorted(j["text"] for j in _queued(redis)) == ["fake", "real"]


@pytest.mark.parametrize("kwargs,status,reason", [
    ({"data": b"{not json", "content_type": "application/json"}, 400, "not valid JSON"),
    ({"json": ["a", "list"]}, 400, "must be an object"),
    ({"json": {"messageId": "1", "text": {"nested": 1}}}, 400, "must be a string or a number"),
    ({"data": b'{"messageId":"1","messageId":"2","text":""}', "content_type": "application/json"}, 400,
     "more than once"),
    ({"data": b"messageId=1&text=a&text=b", "content_type": "application/x-www-form-urlencoded"}, 400,
     "more than once"),
    ({"data": b"messageId=1&text=%ff", "content_type": "application/x-www-form-urlencoded"}, 400,
     "not valid UTF-8"),
    ({"data": b"\xff\xfe", "content_type": "application/json"}, 400, "not valid UTF-8"),
    ({"data": "[" * 100000 + "]" * 100000, "content_type": "application/json"}, 413, "large"),
    ({"data": b"<sms/>", "content_type": "application/xml"}, 415, "unsupported content type"),
    ({"data": {"text": "no id"}}, 422, "missing field(s): messageId"),
    ({"data": {"messageId": "1"}}, 422, "missing field(s): text"),
    ({"data": {"messageId": "1", "text": "x" * 8001}}, 400, "longer than"),
])
def test_malformed_requests_get_a_4xx_with_a_reason_and_store_nothing(client, redis, kwargs, status, reason):
    response = client.post(URL, **kwargs)
    assert response.status_code == status
    assert reason in response.get_json()["error"]
    assert _queued(redis) == [] and redis.zcard(intake.PENDING) == 0


def test_deeply_nested_json_within_the_size_limit_is_a_400(client):
    response = client.post(URL, data="[" * 30000 + "]" * 30000, content_type="application/json")
    assert response.status_code == 400


def test_wrong_method_and_long_query_string(client):
    assert client.put(URL, data={"messageId": "1", "text": "x"}).status_code == 405
    long = client.get(URL + "?messageId=1&text=" + "a" * 20000)
    assert long.status_code == 414 and "too long" in long.get_json()["error"]


def test_redis_down_means_503_quickly_never_204(settings_env):
    app = create_app({"REDIS_URL": "redis://127.0.0.1:1/0"})
    started = time.monotonic()
    response = app.test_client().post(URL, data=make_sms())
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    assert time.monotonic() - started < 2.5
    assert app.test_client().get("/healthz").status_code == 503


def test_a_redis_that_accepts_but_never_answers_means_503_within_its_bound(settings_env):
    """Not only a refused connection: a Redis that hangs must not hold the sender, nor get a 204."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)  # connections complete in the backlog; nothing ever reads or answers
        app = create_app({"REDIS_URL": f"redis://127.0.0.1:{silent.getsockname()[1]}/0"})
        answer: dict = {}
        started = time.monotonic()
        thread = threading.Thread(target=lambda: answer.update(r=app.test_client().post(URL, data=make_sms())),
                                  daemon=True)
        thread.start()
        thread.join(5)
        took = time.monotonic() - started
    assert "r" in answer, "the receiver waited on a silent Redis for more than 5 s"
    assert answer["r"].status_code == 503 and took < 2.5


def test_healthz_reports_redis_and_queue_length(client, redis):
    client.post(URL, data=make_sms())
    assert client.get("/healthz").get_json() == {"redis": "ok", "queued": 1}


@pytest.mark.parametrize("secret,override,job", [
    ("", None, "solutions.jobs.process_message"),
    ("a-secret", None, "solutions.jobs.process_signed_message"),
    ("a-secret", "tests.slow_jobs.work_for_a_while", "tests.slow_jobs.work_for_a_while"),
    ("", "solutions.jobs.process_signed_message", "solutions.jobs.process_signed_message"),
])
def test_the_job_is_chosen_by_the_secret_unless_sms_job_says(monkeypatch, settings_env, secret, override, job):
    monkeypatch.setenv("SIGNATURE_SECRET", secret)
    if override:
        monkeypatch.setenv("SMS_JOB", override)
    else:
        monkeypatch.delenv("SMS_JOB", raising=False)
    assert create_app().config["SMS_JOB"] == job
    assert create_app({"SMS_JOB": "x.y"}).config["SMS_JOB"] == "x.y"


def test_the_receiver_never_answers_500(client, redis, monkeypatch):
    def explode(*args, **kwargs):
        raise RuntimeError("bug")
    monkeypatch.setattr(intake, "accept", explode)
    response = client.post(URL, data=make_sms())
    assert response.status_code == 503
    assert json.loads(response.data)["error"] == "the receiver failed; try again"


@pytest.mark.parametrize("value, default, expected", [
    (None, True, True), ("", False, False), ("1", False, True), ("yes", False, True),
    ("0", True, False), ("off", True, False), (" False ", True, False), ("no", True, False),
])
def test_on_off_settings_read_alike(monkeypatch, value, default, expected):
    if value is None:
        monkeypatch.delenv("SOME_SWITCH", raising=False)
    else:
        monkeypatch.setenv("SOME_SWITCH", value)
    assert env_flag("SOME_SWITCH", default) is expected
