"""Notebooks 01, 02, 03 and 06 with answers a learner might write, and with a learner's own .env beside them.

Each exercise cell gets an answer that is correct in other words than the reference; the notebook runs
as shipped (no autosolve) and every check must pass with the learner's code, which the catch-up keeps.
03's verify check is shown to catch the simplest wrong answers. And the notebooks take none of their
settings from a `.env` in their folder (a learner keeps a real SIGNATURE_SECRET there): run from a copy
of the notebooks folder holding one, they behave exactly as without it.
"""
from __future__ import annotations

import os
import re
import shutil
import sys
import time
from pathlib import Path

import nbformat
import pytest

from tests.learner import NOTEBOOKS, assert_learner_passes, errors, run_with_answers, stream_text
from workshop import notebook
from workshop.checks import NotYet

pytestmark = pytest.mark.notebook

HELLO = '''
from flask import Flask, request


def create_hello_app(received: list) -> Flask:
    app = Flask(__name__)

    @app.post("/hook")
    def hook():
        received.append(request.json)
        return "", 204

    return app
'''

MY_EVENTS = '''
for event in ({"event": "sms", "text": "hi"}, {"event": "call.answered", "id": 7}):
    print("provider got", requests.post(base_url + "/hook", json=event).status_code)
print(len(received), "events received")
'''


def test_01_with_a_learners_answers():
    nb = run_with_answers("01-webhooks-101", {"5f81eda5": HELLO, "f8ba3ab5": MY_EVENTS})
    assert_learner_passes(nb)
    text = stream_text(nb)
    assert text.count("provider got 204") == 2 and "3 events received" in text
    # The plot tells the truth: polling makes more requests than webhooks, and a webhook is late after an outage.
    assert "event at minute 32.0: polling 14.0 min late, webhook 21.2 min late" in text
    assert "event at minute  7.3: polling  0.7 min late, webhook  0.0 min late" in text


FIELDS = '''
from flask import Request


def inbound_fields(request: Request) -> dict:
    if request.method == "GET":
        return request.args.to_dict()
    if request.is_json:
        return dict(request.get_json())
    return {name: request.form[name] for name in request.form}
'''

BREAK_IT = '''
for odd in (dict(data=b""), dict(json=42), dict(data={"messageId": "1", "text": "x" * 100_000})):
    answer = requests.post(url, **odd)
    print("answered", answer.status_code, answer.json()["error"])
'''


def test_02_with_a_learners_answers():
    nb = run_with_answers("02-the-receiver", {"24650aaa": FIELDS, "2ad4519e": BREAK_IT})
    assert_learner_passes(nb)
    answers = [line.split()[1] for line in stream_text(nb).splitlines() if line.startswith("answered ")]
    assert len(answers) == 3 and all(code.startswith("4") for code in answers), answers


SIGNING_STRING = '''
def signing_string(params: dict) -> str:
    out = ""
    for key in sorted(params):
        if key == "sig":
            continue
        value = str(params[key])
        for special in "&=":
            value = value.replace(special, "_")
        out += "&" + key + "=" + value
    return out
'''

SIGN = '''
import hashlib
import hmac


def sign(params: dict, secret: str, method: str = "md5hash") -> str:
    message = signing_string(params).encode("utf-8")
    if method == "md5hash":
        return hashlib.md5(message + secret.encode()).hexdigest()
    return hmac.new(secret.encode(), message, getattr(hashlib, method)).hexdigest()
'''

VERIFY = '''
import time

from solutions.signatures import MissingSignature, MissingTimestamp, SignatureMismatch, StaleTimestamp


def verify(params, secret, method="md5hash", *, max_age=300, now=None):
    if not params.get("sig"):
        raise MissingSignature("no sig")
    if not hmac.compare_digest(sign(params, secret, method), str(params["sig"]).lower()):
        raise SignatureMismatch("the sig does not match")
    if "timestamp" not in params:
        raise MissingTimestamp("no timestamp")
    when = time.time() if now is None else now
    if abs(when - int(params["timestamp"])) > max_age:
        raise StaleTimestamp("too old, or from the future")
'''


def test_03_with_a_learners_answers():
    nb = run_with_answers("03-signatures", {"11e84888": SIGNING_STRING, "5d65ced3": SIGN, "5b397984": VERIFY})
    assert_learner_passes(nb)
    text = stream_text(nb)
    assert text.count("✓ Well done") == 3
    assert re.search(r"^signed +accepted$", text, re.M)
    assert re.search(r"^forged +rejected: SignatureMismatch", text, re.M)


def _verify_answer(body: str):
    """A verify() as a learner would write it in 03, using the reference's sign."""
    space: dict = {}
    exec("import hmac, time\nfrom solutions.signatures import *\n" + body, space)
    return space["verify"]


WRONG_VERIFY = {
    "no check of the future": ('''
def verify(params, secret, method="md5hash", *, max_age=300, now=None):
    if "sig" not in params:
        raise MissingSignature("no sig")
    if not hmac.compare_digest(sign(params, secret, method), params["sig"].lower()):
        raise SignatureMismatch("no match")
    if "timestamp" not in params:
        raise MissingTimestamp("no timestamp")
    if (now or time.time()) - int(params["timestamp"]) > max_age:
        raise StaleTimestamp("too old")
''', "an hour in the future was accepted"),
    "no timestamp needed": ('''
def verify(params, secret, method="md5hash", *, max_age=300, now=None):
    if "sig" not in params:
        raise MissingSignature("no sig")
    if not hmac.compare_digest(sign(params, secret, method), params["sig"].lower()):
        raise SignatureMismatch("no match")
    if "timestamp" in params and abs((now or time.time()) - int(params["timestamp"])) > max_age:
        raise StaleTimestamp("too old")
''', "without a timestamp was accepted: it should raise MissingTimestamp"),
    "now ignored": ('''
def verify(params, secret, method="md5hash", *, max_age=300, now=None):
    if "sig" not in params:
        raise MissingSignature("no sig")
    if not hmac.compare_digest(sign(params, secret, method), params["sig"].lower()):
        raise SignatureMismatch("no match")
    if "timestamp" not in params:
        raise MissingTimestamp("no timestamp")
    if abs(time.time() - int(params["timestamp"])) > max_age:
        raise StaleTimestamp("too old")
''', "now= is the time of receipt"),
    "one class for everything": ('''
def verify(params, secret, method="md5hash", *, max_age=300, now=None):
    if params.get("sig", "").lower() != sign(params, secret, method):
        raise SignatureMismatch("bad")
    if abs((now or time.time()) - int(params.get("timestamp", 0))) > max_age:
        raise SignatureMismatch("bad")
''', "should raise MissingSignature, not SignatureMismatch"),
    "returns False": ('''
def verify(params, secret, method="md5hash", *, max_age=300, now=None):
    return "sig" in params and hmac.compare_digest(sign(params, secret, method), params["sig"].lower())
''', "refuse by raising, not by returning False"),
    "max_age ignored": ('''
def verify(params, secret, method="md5hash", *, max_age=300, now=None):
    if "sig" not in params:
        raise MissingSignature("no sig")
    if not hmac.compare_digest(sign(params, secret, method), params["sig"].lower()):
        raise SignatureMismatch("no match")
    if "timestamp" not in params:
        raise MissingTimestamp("no timestamp")
    if abs((now or time.time()) - int(params["timestamp"])) > 300:
        raise StaleTimestamp("too old")
''', "max_age=60 was accepted"),
}


@pytest.mark.parametrize("wrong", WRONG_VERIFY, ids=lambda w: w.replace(" ", "-"))
def test_the_verify_check_catches_a_wrong_answer(wrong):
    body, phrase = WRONG_VERIFY[wrong]
    with pytest.raises(NotYet, match=phrase):
        notebook.check(_verify_answer(body), "solutions.signatures:verify")


def test_the_verify_check_passes_the_reference_and_the_learners_answer(capsys):
    from solutions.signatures import verify

    notebook.check(verify, "solutions.signatures:verify")
    notebook.check(_verify_answer(VERIFY), "solutions.signatures:verify")
    assert capsys.readouterr().out.count("✓ Well done") == 2


FORGE = '''
from solutions.jobs import REJECTED
from solutions.store import read_messages

print("forged one answered", sender.deliver(endpoint.webhook_url, sender.forged(good[1])).status)
deadline = time.monotonic() + 10
while not redis.llen(REJECTED) and time.monotonic() < deadline:
    time.sleep(0.1)
print("rejected:", [reason.decode() for reason in redis.lrange(REJECTED, 0, 4)])
print("lines in the file:", len(read_messages(lab.settings["MESSAGES_FILE"])))
'''


def test_06_a_learners_forged_message_is_rejected_by_the_worker_with_its_reason():
    nb = run_with_answers("06-going-live", {"439a5e6e": FORGE})
    assert errors(nb) == []
    text = stream_text(nb)
    assert "the file holds 3 lines, 3 different" in text
    assert "forged one answered 204" in text, "the receiver stores everything: it is the worker that checks"
    assert f"rejected: ['{nb_message_id(text)}: the signature does not match the message']" in text
    assert "lines in the file: 3" in text


def nb_message_id(text: str) -> str:
    """The messageId of the second of the three SMS 06 sends, from what it printed."""
    sent = [line.split(" -> ")[0] for line in text.splitlines() if line.endswith(" -> 204")]
    return sent[1]


LEARNERS_ENV = """# a learner's own .env, as .env.example suggests, filled in
REDIS_URL=redis://127.0.0.1:1/0
SIGNATURE_SECRET=my-real-vonage-signature-secret
SIGNATURE_METHOD=sha512
MESSAGES_FILE={folder}/my-messages.jsonl
SMS_JOB=solutions.jobs.process_signed_message
INSPECTOR=0
"""


@pytest.fixture(scope="module")
def with_env(tmp_path_factory) -> Path:
    """A copy of the notebooks folder with a learner's .env in it (the repository itself never gets one)."""
    folder = tmp_path_factory.mktemp("course") / "notebooks"
    shutil.copytree(NOTEBOOKS, folder, ignore=shutil.ignore_patterns(".env", "*.jsonl*", ".ipynb_checkpoints"))
    (folder / ".env").write_text(LEARNERS_ENV.format(folder=folder))
    return folder


def _run_in(folder: Path, stem: str, solved: bool = True) -> str:
    nb = nbformat.read(folder / f"{stem}.ipynb", as_version=4)
    started = time.monotonic()
    notebook.execute(nb, folder, solved=solved)
    assert errors(nb) == [], (stem, errors(nb))
    assert time.monotonic() - started < 120
    return stream_text(nb)


@pytest.mark.parametrize("stem", ["01-webhooks-101", "02-the-receiver", "03-signatures"])
def test_a_learners_env_changes_nothing_in(with_env, stem):
    text = _run_in(with_env, stem)
    assert "Not yet" not in text and "✓ Well done" in text
    if stem == "02-the-receiver":
        assert re.search(r"GET query +-> 204 +duplicate: no", text) and "median" in text
    assert not (with_env / "my-messages.jsonl").exists()


def test_a_learners_env_changes_nothing_in_06(with_env):
    text = _run_in(with_env, "06-going-live")
    assert "the file holds 3 lines, 3 different" in text
    assert re.search(r"(GET|POST) +/webhooks/inbound-sms +204", text), "INSPECTOR=0 in .env must not turn it off"
    assert not (with_env / "my-messages.jsonl").exists()


def test_a_learners_env_changes_nothing_in_10(with_env):
    text = _run_in(with_env, "10-capstone-any-order")
    assert text.count("written 1 time(s), whole and in order") == 5
    assert not (with_env / "my-messages.jsonl").exists()


def test_the_labs_tunnel_takes_the_ngrok_token_from_the_learners_env_and_nothing_else(tmp_path, monkeypatch):
    """06's tunnel: NGROK_AUTHTOKEN is the one setting a lab reads from .env (here one the agent refuses)."""
    from pyngrok import conf, ngrok

    from tests.test_tunnel import STANDIN
    from workshop import tunnel

    agent = tmp_path / "ngrok"
    agent.write_text(f"#!/bin/sh\nexec {sys.executable} {STANDIN} \"$@\"\n")
    agent.chmod(0o755)
    (tmp_path / "ngrok.yml").write_text('version: "3"\nagent:\n  authtoken: ""\n')
    monkeypatch.setattr(conf, "_default_pyngrok_config", conf.PyngrokConfig(
        ngrok_path=str(agent), config_path=str(tmp_path / "ngrok.yml"), startup_timeout=10))
    (tmp_path / ".env").write_text("NGROK_AUTHTOKEN=invalid-from-dotenv\nSIGNATURE_SECRET=not-for-the-lab\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("NGROK_AUTHTOKEN", raising=False)
    for name in ("REDIS_URL", "SIGNATURE_SECRET", "SIGNATURE_METHOD", "MESSAGES_FILE", "SMS_JOB", "INSPECTOR"):
        monkeypatch.setenv(name, "")  # the Lab sets them: monkeypatch puts them back afterwards
    lab = notebook.Lab(redis=False)
    try:
        endpoint = lab.tunnel("http://127.0.0.1:5050/webhooks/inbound-sms")
    finally:
        lab.stop()
        tunnel.close_tunnels()
        ngrok.kill()
    assert endpoint.public_url is None and endpoint.reason == "the ngrok authtoken is not valid"
    assert os.environ["SIGNATURE_SECRET"] == "", "the lab's own settings, not the learner's"
