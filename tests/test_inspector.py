"""The request inspector on a real receiver and Redis: kept, masked, listed, replayed."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from urllib.parse import parse_qs

import pytest
import requests

from solutions.receiver import create_app
from tests.conftest import SECRET
from tests.test_pipeline import wait_until_settled
from workshop import inspector
from workshop.apps import create_kit_app
from workshop.sender import make_sms, signed


@pytest.fixture()
def client(settings_env):
    """The kit's served app: the reference receiver with the inspector around it."""
    return create_kit_app().test_client()


def test_the_reference_receiver_has_no_inspector_of_its_own(settings_env, redis):
    assert create_app().test_client().get("/inspect").status_code == 404


def test_masking_hides_secrets_but_keeps_a_hint():
    headers = inspector.masked_headers({"Authorization": "Bearer abcdefghijkl", "X-Api-Key": "k",
                                        "Content-Type": "application/json"})
    assert headers == {"Authorization": "Bear…(masked)", "X-Api-Key": "(masked)",
                       "Content-Type": "application/json"}
    form = inspector.masked_body(b"text=hi&api_secret=supersecretvalue&api-key=abcd1234", "")
    assert "supersecretvalue" not in form and form == "text=hi&api_secret=supe…(masked)&api-key=abcd1234"
    body = json.loads(inspector.masked_body(b'{"password": "hunter2hunter2", "text": "x"}', "application/json"))
    assert body == {"password": "hunt…(masked)", "text": "x"}
    nested = inspector.masked_body(b'{"auth": {"api_token": "t0k3n-t0k3n"}, "l": [{"pass\\u0077ord": "p4ssw0rd!"}]}',
                                   "application/json")
    assert "t0k3n-t0k3n" not in nested and "p4ssw0rd!" not in nested and nested.count("(masked)") == 2
    assert "hunter2hunter2" not in inspector.masked_body(b'{"password": "hunter2hunter2", ', "application/json")
    query = inspector.masked_fields("messageId=1&api_secret=s3cr3t-s3cr3t&api%5Ftoken=t0k3n-t0k3n&text=a+b")
    assert query == "messageId=1&api_secret=s3cr…(masked)&api%5Ftoken=t0k3…(masked)&text=a+b"


def test_a_get_webhook_with_secrets_in_its_url_is_shown_masked_everywhere(client, redis):
    """Some providers put a secret in the URL itself: it must not be shown in the page, the JSON, nor `inspect`."""
    secrets_ = {"api_secret": "s3cr3t-in-the-url", "token": "t0k3n-in-the-url"}
    assert client.get("/webhooks/inbound-sms", query_string={**make_sms("get me"), **secrets_}).status_code == 204
    entry = inspector.recent(redis)[0]
    assert "api_secret=s3cr…(masked)" in entry["query"] and "token=t0k3…(masked)" in entry["query"]
    assert "text=get+me" in entry["query"]
    shown = [json.dumps(entry), client.get("/inspect").get_data(as_text=True),
             client.get(f"/inspect/{entry['id']}").get_data(as_text=True),
             client.get(f"/inspect/{entry['id']}?format=json").get_data(as_text=True)]
    assert "(masked)" in shown[2]
    for text in shown:
        assert all(value not in text for value in secrets_.values()), text


def test_a_burst_keeps_the_newest_requests_in_a_few_round_trips(client, redis):
    lpushes = lambda: int(redis.info("commandstats").get("cmdstat_lpush", {}).get("calls", 0))  # noqa: E731
    inspector.flush()
    before = lpushes()
    for n in range(inspector.KEEP + 100):
        client.post("/webhooks/inbound-sms", data=make_sms(f"burst {n}"))
    kept = inspector.recent(redis)
    texts = [parse_qs(k["body"])["text"][0] for k in kept]
    assert texts == [f"burst {n}" for n in reversed(range(100, inspector.KEEP + 100))]
    assert lpushes() - before <= 10  # 300 requests, stored a few times a second


def test_inspector_0_in_the_environment_turns_it_off(settings_env, monkeypatch, redis):
    monkeypatch.setenv("INSPECTOR", "0")
    client = create_kit_app().test_client()
    assert client.post("/webhooks/inbound-sms", data=make_sms()).status_code == 204
    assert client.get("/inspect").status_code == 404
    assert inspector.recent(redis) == []


def test_requests_are_kept_newest_first_and_capped(client, redis):
    for n in range(3):
        client.post("/webhooks/inbound-sms", data=make_sms(f"n{n}"), headers={"Authorization": "Basic c2VjcmV0cw=="})
    client.get("/healthz")
    client.post("/webhooks/inbound-sms", data=b"{bad", content_type="application/json")
    kept = inspector.recent(redis)
    assert [k["status"] for k in kept] == [400, 204, 204, 204]  # /healthz is not kept
    assert "text=n2" in kept[1]["body"] and kept[1]["headers"]["Authorization"] == "Basi…(masked)"
    assert all(0 < k["ms"] < 5000 for k in kept)
    for n in range(inspector.KEEP + 5):
        redis.lpush(inspector.KEY, json.dumps({"id": str(n)}))
    client.post("/webhooks/inbound-sms", data=make_sms())
    inspector.flush()
    assert redis.llen(inspector.KEY) == inspector.KEEP


def test_the_time_kept_is_from_the_requests_arrival_to_its_answer(client, redis):
    """Redis paused for 0.6 s: the request waits for it, and the time kept says so."""
    redis.client_pause(600)  # every client's next command waits (less than the receiver's 0.8 s time-out)
    started = time.perf_counter()
    assert client.post("/webhooks/inbound-sms", data=make_sms("slow")).status_code == 204
    took = (time.perf_counter() - started) * 1000
    assert took > 200, "Redis was not paused"
    (entry,) = inspector.recent(redis)
    assert took / 2 < entry["ms"] <= took


def test_a_json_request_keeps_its_headers_and_has_its_secret_fields_masked(client, redis):
    fields = {**make_sms("json"), "password": "hunter2hunter2"}
    assert client.post("/webhooks/inbound-sms?x=1", json=fields, headers={"X-Trace": "t1"}).status_code == 204
    entry = inspector.recent(redis)[0]
    assert entry["headers"]["Content-Type"] == "application/json" and entry["headers"]["X-Trace"] == "t1"
    assert entry["query"] == "x=1" and entry["method"] == "POST" and entry["path"] == "/webhooks/inbound-sms"
    assert json.loads(entry["body"])["password"] == "hunt…(masked)"


def test_the_page_lists_and_shows_a_request_and_replays_it_as_a_duplicate(client, redis):
    sms = make_sms("look at me")
    client.post("/webhooks/inbound-sms", data=sms, headers={"X-Api-Key": "do-not-show-this"})
    entry = inspector.recent(redis)[0]
    page = client.get("/inspect").get_data(as_text=True)
    assert entry["id"] in page and "204" in page
    detail = client.get(f"/inspect/{entry['id']}").get_data(as_text=True)
    assert "look+at+me" in detail and "do-not-show-this" not in detail and "(masked)" in detail
    answer = client.post(f"/inspect/{entry['id']}/replay", follow_redirects=True).get_data(as_text=True)
    assert "Replayed: the receiver answered 204 (duplicate: stored once)" in answer
    replayed = inspector.recent(redis)[0]
    assert replayed["replay_of"] == entry["id"] and replayed["duplicate"] is True
    assert client.get("/inspect/nope").status_code == 404


def test_the_inspector_answers_only_on_this_machine(client):
    client.post("/webhooks/inbound-sms", data=make_sms())
    assert client.get("/inspect").status_code == 200
    tunneled = client.get("/inspect", headers={"X-Forwarded-For": "203.0.113.9"})  # as ngrok forwards it
    remote = client.post("/inspect/x/replay", environ_base={"REMOTE_ADDR": "203.0.113.9"})
    for answer in (tunneled, remote):
        assert answer.status_code == 403 and "only on this machine" in answer.get_json()["error"]
    assert client.post("/webhooks/inbound-sms", data=make_sms(),
                       headers={"X-Forwarded-For": "203.0.113.9"}).status_code == 204  # webhooks still arrive


def test_inspect_and_replay_commands_on_a_live_receiver(live, redis):
    env = {**os.environ, **live["env"]}
    sms = signed(make_sms("replay me"), SECRET, "sha256")
    assert requests.post(live["url"], data=sms, timeout=5).status_code == 204
    listing = subprocess.run([sys.executable, "-m", "workshop", "inspect"], env=env, capture_output=True,
                             text=True, timeout=60)
    assert listing.returncode == 0, listing.stderr
    first = listing.stdout.splitlines()[0]
    assert "POST /webhooks/inbound-sms  204" in first
    request_id = first.split()[0]
    shown = subprocess.run([sys.executable, "-m", "workshop", "inspect", request_id], env=env,
                           capture_output=True, text=True, timeout=60)
    assert json.loads(shown.stdout)["id"] == request_id
    replay = subprocess.run([sys.executable, "-m", "workshop", "replay", request_id], env=env,
                            capture_output=True, text=True, timeout=60)
    assert replay.returncode == 0, replay.stderr
    assert "answered 204, a duplicate: acknowledged, stored once" in replay.stdout
    wait_until_settled(redis)
    assert int(redis.hget("sms:stats", "written")) == 1
