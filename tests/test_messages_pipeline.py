"""Vonage's Messages API through the kit: POST /webhooks/inbound-message, the secure job, the sender (real Redis).

Stored then acknowledged like the SMS API's (same queue, same intake.accept, same store); the raw body and
the token travel to the worker unchanged; written once also when delivered twice; tampered, wrong-secret,
stale, hash-less and unsigned ones never written.
"""
from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone

import pytest
import requests
from rq import Queue

from solutions import intake, jobs, messages_api
from solutions.receiver import MESSAGES_PATH, create_app
from solutions.store import read_messages
from tests.conftest import SECRET
from tests.test_pipeline import wait_until_settled
from workshop import sender

URL = MESSAGES_PATH


def _post(client, request: dict[str, str], **headers: str):
    sent = {"Content-Type": "application/json", **headers}
    if request["token"]:
        sent.setdefault("Authorization", f"Bearer {request['token']}")
    return client.post(URL, data=request["body"].encode(), headers=sent)


def _signed(text: str = "Pizza at 8?", secret: str = SECRET, **options) -> dict[str, str]:
    return sender.messages_api_request(sender.make_inbound_message(text), secret, **options)


def _queued(redis) -> list[dict]:
    return [job.args[0] for job in Queue("sms", connection=redis).get_jobs()]


def _nothing_stored(redis) -> bool:
    return redis.zcard(intake.PENDING) == 0 and Queue("sms", connection=redis).count == 0


# The receiver ---------------------------------------------------------------------------------------------

def test_a_signed_message_is_stored_queued_then_acknowledged_with_its_raw_body_and_token(client, redis):
    request = _signed()
    request["body"] = request["body"].replace('", "', '",  "')  # spacing a re-serialization would lose
    request["token"] = messages_api.sign(request["body"].encode(), SECRET)
    response = _post(client, request)
    assert response.status_code == 204 and response.headers["X-Duplicate"] == "no"
    (delivery,) = _queued(redis)
    assert delivery["event"] == messages_api.EVENT == "inbound-message"
    assert delivery["payload"]["raw"] == request["body"] and delivery["payload"]["token"] == request["token"]
    message = json.loads(request["body"])
    assert {k: delivery["payload"][k] for k in ("messageId", "msisdn", "to", "text")} == {
        "messageId": message["message_uuid"], "msisdn": message["from"], "to": message["to"], "text": "Pizza at 8?"}
    assert delivery["deliveryId"] == response.headers["X-Delivery-Id"]
    assert redis.zcard(intake.PENDING) == 1 and redis.hexists(intake.PAYLOADS, delivery["deliveryId"])


def test_the_same_request_again_is_acknowledged_but_queued_once(client, redis):
    request = _signed()
    assert _post(client, request).status_code == 204
    again = _post(client, request)
    assert again.status_code == 204 and again.headers["X-Duplicate"] == "yes"
    assert len(_queued(redis)) == 1


def test_messages_and_sms_share_the_queue_and_its_job(client, redis):
    assert _post(client, _signed()).status_code == 204
    assert client.post("/webhooks/inbound-sms", data=sender.make_sms()).status_code == 204
    jobs_ = Queue("sms", connection=redis).get_jobs()
    assert [j.args[0]["event"] for j in jobs_] == ["inbound-message", "inbound-sms"]
    assert len({j.func_name for j in jobs_}) == 1


@pytest.mark.parametrize("authorization", [None, "", "Bearer", "Basic dXNlcjpwYXNz"])
def test_an_unsigned_callback_gets_503_so_vonage_retries_it_signed_and_nothing_is_stored(client, redis,
                                                                                       authorization):
    request = _signed(secret="")
    headers = {} if authorization is None else {"Authorization": authorization}
    response = _post(client, request, **headers)
    assert response.status_code == 503 and response.headers["Retry-After"] == "5"
    assert "unsigned" in response.get_json()["error"]
    assert _nothing_stored(redis)


@pytest.mark.parametrize("body,content_type,status,reason", [
    (b'{"message_uuid": "u", "from": "44", "text": "hi"}', "text/plain", 415, "JSON"),
    (b"{not json", "application/json", 400, "not valid JSON"),
    (b"[1, 2]", "application/json", 400, "object"),
    (b"\xff\xfe", "application/json", 400, "UTF-8"),
    (b'{"from": "44", "text": "hi"}', "application/json", 422, "message_uuid"),
    (b'{"message_uuid": "u", "text": "hi"}', "application/json", 422, "from"),
    (b'{"message_uuid": "u", "from": "44", "image": {"url": "x"}}', "application/json", 422, "text"),
    (b"[" * 50_000, "application/json", 400, "nested too deeply"),
    (b'{"text": "' + b"a" * 70_000 + b'"}', "application/json", 413, "too large"),
])
def test_a_malformed_request_gets_a_4xx_with_a_reason_and_stores_nothing(client, redis, body, content_type, status,
                                                                          reason):
    response = client.post(URL, data=body, headers={"Content-Type": content_type,
                                                    "Authorization": "Bearer a.b.c"})
    assert response.status_code == status and reason in response.get_json()["error"]
    assert _nothing_stored(redis)


def test_only_post(client):
    assert client.get(URL).status_code == 405


def test_redis_down_means_503_never_204(settings_env):
    app = create_app({"REDIS_URL": "redis://127.0.0.1:1/0"})
    response = _post(app.test_client(), _signed())
    assert response.status_code == 503 and response.headers["Retry-After"] == "5"


def test_the_inspector_keeps_the_request_and_masks_the_token(settings_env, redis):
    from workshop import inspector
    from workshop.apps import create_kit_app

    request = _signed()
    app = create_kit_app()
    assert _post(app.test_client(), request).status_code == 204
    inspector.flush()
    (entry,) = [e for e in inspector.recent(redis) if e["path"] == URL]
    assert request["token"] not in json.dumps(entry) and "masked" in entry["headers"]["Authorization"]
    assert entry["body"] == request["body"]
    assert inspector.replay(app, entry).status_code == 503  # the masked token is not sent again: unsigned


# The secure job -------------------------------------------------------------------------------------------

def _accepted(redis, request: dict[str, str], received: datetime | None = None) -> dict:
    fields = messages_api.inbound_fields(request["body"].encode())
    delivery = intake.new_delivery({**fields, "token": request["token"], "raw": request["body"]},
                                   event=messages_api.EVENT)
    if received is not None:
        delivery["receivedAt"] = received.isoformat(timespec="milliseconds")
    intake.accept(intake.get_queue(redis), delivery, "solutions.jobs.process_signed_message")
    return delivery


def _file(settings_env) -> list[dict]:
    return read_messages(settings_env["MESSAGES_FILE"])


def test_a_good_message_is_written_once_with_the_kits_fields(settings_env, redis):
    request = _signed("Pizza at 8?")
    delivery = _accepted(redis, request)
    assert jobs.process_signed_message(delivery) == "written"
    assert jobs.process_signed_message(delivery) == "duplicate"  # the same job run again: not a replay
    (record,) = _file(settings_env)
    message = json.loads(request["body"])
    assert {k: record[k] for k in ("messageId", "msisdn", "to", "text", "receivedAt", "api")} == {
        "messageId": message["message_uuid"], "msisdn": message["from"], "to": message["to"], "text": "Pizza at 8?",
        "receivedAt": delivery["receivedAt"], "api": "messages"}
    assert redis.zcard(intake.PENDING) == 0


def test_a_message_delivered_twice_with_two_tokens_is_written_once(settings_env, redis):
    message = sender.make_inbound_message("twice")
    first, second = (sender.messages_api_request(message, SECRET) for _ in range(2))
    assert first["token"] != second["token"] and first["body"] == second["body"]
    results = [jobs.process_signed_message(_accepted(redis, r)) for r in (first, second)]
    assert results == ["written", "duplicate"]
    assert [m["text"] for m in _file(settings_env)] == ["twice"]


def test_bad_messages_are_rejected_with_reasons_and_never_written(settings_env, redis):
    good = _signed("good")
    no_hash_body = sender.make_inbound_message("hash-less")
    no_hash = {"messageId": no_hash_body["message_uuid"], "body": json.dumps(no_hash_body),
               "token": messages_api.encode({"iat": int(time.time()), "jti": "j-1", "iss": "Vonage",
                                             "api_key": "abcd1234"}, SECRET)}
    bad = {
        "forged": _signed("forged", forged=True),
        "wrong secret": _signed("wrong secret", secret="not-the-secret"),
        "stale": _signed("stale", stale=True),
        "hash-less": no_hash,
        "unsigned": _signed("unsigned", secret=""),
        "alg none": {**good, "token": "eyJhbGciOiJub25lIn0." + good["token"].split(".")[1] + "."},
    }
    assert [jobs.process_signed_message(_accepted(redis, r)) for r in bad.values()] == ["rejected"] * len(bad)
    assert _file(settings_env) == []
    reasons = " | ".join(r.decode() for r in redis.lrange(jobs.REJECTED, 0, -1))
    for reason in ("payload_hash differs", "signature does not match", "s ago", "no payload_hash", "unsigned",
                   "'none'"):
        assert reason in reasons
    assert SECRET not in reasons and redis.zcard(intake.PENDING) == 0


def test_freshness_is_judged_when_received_not_when_processed(settings_env, redis, monkeypatch):
    on_time = _accepted(redis, _signed("queued for a while"))
    late = _accepted(redis, _signed("received late"), received=datetime.now(timezone.utc) + timedelta(hours=2))
    two_hours_on = time.time() + 2 * 3600
    monkeypatch.setattr(time, "time", lambda: two_hours_on)
    assert jobs.process_signed_message(on_time) == "written"
    assert jobs.process_signed_message(late) == "rejected"


def test_a_jti_seen_with_another_delivery_is_a_replay(settings_env, redis):
    request = _signed("replayed")
    first = _accepted(redis, request)
    copy = {**first, "deliveryId": first["deliveryId"] + "-copy"}  # as if its seen mark had expired
    assert jobs.process_signed_message(first) == "written"
    assert jobs.process_signed_message(copy) == "rejected"
    assert "used before" in redis.lindex(jobs.REJECTED, 0).decode()
    jti = json.loads(messages_api.b64url_decode(request["token"].split(".")[1]))["jti"]
    assert 0 < redis.ttl(f"sms:jti:{jti}") <= jobs.NONCE_TTL


def test_the_plain_job_records_messages_api_messages_too(settings_env, redis):
    delivery = _accepted(redis, _signed("plain"))
    assert jobs.process_message(delivery) == "written"
    assert [m["text"] for m in _file(settings_env)] == ["plain"]


# The sender ---------------------------------------------------------------------------------------------

def test_the_sender_signs_as_vonage_does():
    request = _signed("hello")
    claims = messages_api.verify(request["token"], request["body"].encode(), SECRET)
    assert claims["iss"] == "Vonage" and claims["payload_hash"] == messages_api.payload_hash(request["body"].encode())
    message = json.loads(request["body"])
    assert message["channel"] == "sms" and message["message_type"] == "text" and message["sms"]["num_messages"] == "1"
    with pytest.raises(messages_api.PayloadHashMismatch):
        forged = _signed("hello", forged=True)
        messages_api.verify(forged["token"], forged["body"].encode(), SECRET)
    with pytest.raises(messages_api.StaleTimestamp):
        stale = _signed("hello", stale=True)
        messages_api.verify(stale["token"], stale["body"].encode(), SECRET)
    assert _signed(secret="")["token"] == ""


# End to end ---------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_end_to_end_each_good_message_written_once_and_no_bad_one(live, redis):
    url = live["base"] + MESSAGES_PATH
    good = [_signed() for _ in range(40)]
    bad = [_signed("forged", forged=True), _signed("stale", stale=True), _signed("wrong", secret="not-the-secret")]
    body = sender.make_inbound_message("hash-less")
    bad.append({"messageId": body["message_uuid"], "body": json.dumps(body), "token": messages_api.encode(
        {"iat": int(time.time()), "jti": "hash-less", "iss": "Vonage", "api_key": "abcd1234"}, SECRET)})
    results = sender.send_many(url, good + bad, concurrency=8, style="messages", progress=False)
    assert all(r.ok for r in results)
    # Delivered twice: the same requests again, and the same messages re-signed (a new token each).
    again = sender.send_many(url, good[:10], concurrency=8, style="messages", progress=False)
    assert all(r.ok and r.duplicate for r in again)
    resigned = [sender.messages_api_request(json.loads(r["body"]), SECRET) for r in good[10:20]]
    assert all(r.ok for r in sender.send_many(url, resigned, concurrency=8, style="messages", progress=False))
    unsigned = sender.deliver(url, _signed("unsigned", secret=""), "messages", max_attempts=2, backoff=0.05)
    assert unsigned.status == 503 and unsigned.history == [503, 503]
    sms = sender.signed(sender.make_sms("an SMS API message too"), SECRET, "sha256")
    assert sender.deliver(live["url"], sms).ok
    wait_until_settled(redis)
    records = read_messages(live["env"]["MESSAGES_FILE"])
    ids = [m["messageId"] for m in records if m.get("api") == "messages"]
    assert sorted(ids) == sorted(json.loads(r["body"])["message_uuid"] for r in good)
    assert [m["text"] for m in records if m.get("api") != "messages"] == ["an SMS API message too"]
    assert int(redis.hget(intake.STATS, "rejected")) == len(bad)
    assert int(redis.hget(intake.STATS, "duplicate")) == len(resigned)


@pytest.mark.slow
def test_the_send_command_speaks_the_messages_api(live, redis):
    import subprocess
    import sys

    url = live["base"] + MESSAGES_PATH
    env = {**live["env"], "PYTHONPATH": "."}
    run = lambda *extra: subprocess.run(  # noqa: E731
        [sys.executable, "-m", "workshop", "send", "--api", "messages", "--url", url, *extra],
        env={**__import__("os").environ, **env}, capture_output=True, text=True, timeout=120)
    assert run("--count", "3", "--duplicate", "2").returncode == 0
    assert run("--forged").returncode == 0 and run("--stale").returncode == 0
    unsigned = run("--unsigned", "--max-attempts", "1")
    assert unsigned.returncode == 1 and "503" in unsigned.stdout
    wait_until_settled(redis)
    assert len(read_messages(live["env"]["MESSAGES_FILE"])) == 3
    assert int(redis.hget(intake.STATS, "rejected")) == 2
    assert requests.get(live["base"] + "/healthz", timeout=5).json()["redis"] == "ok"


@pytest.mark.slow
def test_a_lost_messages_api_job_is_recovered_by_the_sweep_and_still_verifies(live, redis):
    """Swept again a while after receipt: the token is judged at receipt, and its jti is this delivery's own."""
    from workshop.services import start_worker

    request = _signed("recover me")
    for service in live["workers"]:
        service.stop()
    assert sender.deliver(live["base"] + MESSAGES_PATH, request, "messages").ok
    intake.get_queue(redis).empty()  # as if a worker had taken the job and died
    did = redis.zrange(intake.PENDING, 0, 0)[0]
    redis.zadd(intake.PENDING, {did: time.time() - 60})
    with start_worker(live["env"]["REDIS_URL"], env=live["env"]):
        wait_until_settled(redis, 30)
    assert [m["text"] for m in read_messages(live["env"]["MESSAGES_FILE"])] == ["recover me"]
