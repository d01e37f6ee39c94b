"""Notebook 09, debugging a failing delivery: run as a learner runs it, with fixes in the learner's own words.

The three planted faults must show their evidence (RQ's failed job registry, the worker's log, the
receiver's log and the inspector), each check must pass the learner's fix and keep it, and each replay
must show the fix working. The checks are also shown to refuse the simplest wrong fixes, in this
process, on a Redis server of the test's own, with real worker processes.
"""
from __future__ import annotations

import time
from pathlib import Path

import nbformat
import pytest

from tests.learner import assert_learner_passes, run_with_answers, stream_text
from workshop import checks, debugging, inspector, sender
from workshop.checks import CHECKS, NotYet
from workshop.redis_server import RedisServer
from workshop.unprotected import create_ack_first_app

NOTEBOOK = Path(__file__).parent.parent / "notebooks" / "09-debugging.ipynb"

ANSWERS = {
    "ex-job": 'SMS_JOB = "desk_jobs.handle_sms"  # the module is desk_jobs.py',
    "ex-signing": '''%%writefile desk_signing.py
"""The help desk's signing string."""


def signing_string(params):
    pairs = sorted((key, str(value)) for key, value in params.items() if key != "sig")
    return "".join("&{}={}".format(key, value.replace("&", "_").replace("=", "_")) for key, value in pairs)
''',
    "ex-receiver": '''from flask import Flask, request
from redis import RedisError

from solutions import intake
from solutions.payloads import BadPayload, from_request
from solutions.receiver import connect


def create_desk_app(config):
    app = Flask("desk")
    queue = intake.get_queue(connect(config["REDIS_URL"]))
    app.extensions["sms_queue"] = queue

    @app.route("/webhooks/inbound-sms", methods=["GET", "POST"])
    def inbound_sms():
        try:
            payload = from_request(request)
        except BadPayload as error:
            return {"error": str(error)}, error.status
        try:
            intake.accept(queue, intake.new_delivery(payload), config["SMS_JOB"])
        except RedisError:
            return {"error": "could not store it, send it again"}, 503
        return "", 204

    return app
''',
}


def source(cell_id: str) -> str:
    """A cell's source as shipped, without a %%writefile line."""
    cell = next(c for c in nbformat.read(NOTEBOOK, as_version=4).cells if c.get("id") == cell_id)
    return "\n".join(line for line in cell.source.splitlines() if not line.startswith("%%writefile"))


def defined(code: str, name: str):
    namespace: dict = {}
    exec(code, namespace)
    return namespace[name]


@pytest.mark.notebook
def test_a_learner_finds_each_fault_fixes_it_in_their_own_words_and_sees_the_replay_work():
    nb = run_with_answers("09-debugging", ANSWERS)
    assert_learner_passes(nb)
    text = stream_text(nb)
    assert text.count("✓ Well done") == 3, text[-3000:]
    for evidence in (
        "desk_jbos.handle_sms -> ValueError: Invalid attribute name: desk_jbos.handle_sms",  # the failed registry
        ": the signature does not match",  # the worker's log, once the job imports
        "the keys in Vonage's order: api-key, keyword, message-timestamp, messageId, msisdn",  # the inspector
        "5 of 5 messages in the file, in 5 lines | failed jobs: 0",  # replayed after the fix and a new worker
        "5 lines for 5 messages",  # replayed once more: written once
        "acknowledged, never written: 4",  # answered 204 while Redis was down
        "could not queue message",  # the receiver's log
        "Redis down:   replayed -> 503",
        "Redis back:   replayed -> 204",
        "12 of 12 messages in the file",
    ):
        assert evidence in text, f"{evidence!r} not in:\n{text[-4000:]}"


@pytest.fixture()
def lab_context(tmp_path, monkeypatch):
    """What a Lab gives the checks (a Redis server they may stop), and the desk's modules in the folder."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "desk_jobs.py").write_text(source("desk-jobs"))
    debugging.plant(tmp_path)
    with RedisServer() as server:
        saved = dict(checks.context)
        checks.context.update(redis_url=server.url, redis_server=server)
        try:
            yield server
        finally:
            checks.context.clear()
            checks.context.update(saved)


@pytest.mark.parametrize("job, says", [
    ("desk_jbos.handle_sms", "could not import desk_jbos.handle_sms (RQ says: ValueError: Invalid attribute name"),
    ("desk_jobs.handel_sms", "could not import desk_jobs.handel_sms"),
    ("solutions.jobs.process_message", "the desk's job is handle_sms in desk_jobs.py"),
    ("desk_jobs", "SMS_JOB should be a job's dotted name"),
])
def test_the_job_check_refuses_a_name_a_worker_cannot_import_or_another_job(lab_context, job, says):
    with pytest.raises(NotYet, match=None) as refused:
        CHECKS["desk_jobs:handle_sms"](job)
    assert says in str(refused.value)


def test_the_job_check_passes_the_desks_job_in_a_real_worker(lab_context):
    CHECKS["desk_jobs:handle_sms"]("desk_jobs.handle_sms")


@pytest.mark.parametrize("wrong", [
    "sorted(params, reverse=True)",  # as planted
    "sorted(params, key=str.lower)",  # case-insensitive
    "list(params)",  # not sorted at all
])
def test_the_signing_check_refuses_the_wrong_orders(wrong):
    planted = source("ex-signing")
    assert "sorted(params, reverse=True)" in planted
    with pytest.raises(NotYet):
        CHECKS["solutions.signatures:signing_string"](defined(planted.replace("sorted(params, reverse=True)", wrong),
                                                               "signing_string"))
    CHECKS["solutions.signatures:signing_string"](defined(ANSWERS["ex-signing"].split("\n", 1)[1], "signing_string"))


def test_the_receiver_check_refuses_the_desks_receiver_and_one_that_lets_redis_errors_through(lab_context):
    with pytest.raises(NotYet, match="answered 204, but by then the message was not stored"):
        CHECKS["solutions.receiver:create_app"](defined(source("ex-receiver"), "create_desk_app"))
    careless = ANSWERS["ex-receiver"].replace('''        try:
            intake.accept(queue, intake.new_delivery(payload), config["SMS_JOB"])
        except RedisError:
            return {"error": "could not store it, send it again"}, 503
''', '''        intake.accept(queue, intake.new_delivery(payload), config["SMS_JOB"])
''')
    assert careless != ANSWERS["ex-receiver"]
    with pytest.raises(NotYet, match="answered 500"):
        CHECKS["solutions.receiver:create_app"](defined(careless, "create_desk_app"))
    CHECKS["solutions.receiver:create_app"](defined(ANSWERS["ex-receiver"], "create_desk_app"))


def test_a_replay_runs_what_a_receiver_does_after_answering(lab_context):
    """The inspector's replay closes the answer as a server does: the ack-first receiver queues the replay."""
    from redis import Redis
    from rq import Queue

    app = create_ack_first_app({"REDIS_URL": lab_context.url, "SMS_JOB": "desk_jobs.handle_sms"})
    inspector.init_app(app)
    queue = Queue("sms", connection=Redis.from_url(lab_context.url))
    with app.test_client() as client:
        client.post("/webhooks/inbound-sms", data=sender.make_sms("kept"), buffered=True)
    assert queue.count == 1
    entry = inspector.recent(queue.connection)[0]
    assert inspector.replay(app, entry).status_code == 204
    assert queue.count == 2, "the replay was answered, but what the receiver does after answering never ran"


def test_an_idle_worker_outlives_redis_pys_default_socket_timeout(lab_context):
    """redis-py 8 reads with a 5 s socket timeout by default; a worker waits 10 s for a job at a time."""
    from workshop.services import start_worker

    worker = start_worker(lab_context.url)
    try:
        deadline = time.monotonic() + 12
        while worker.running and time.monotonic() < deadline:
            time.sleep(0.2)
        assert worker.running, f"the idle worker quit:\n{worker.log_tail()}"
    finally:
        worker.stop()
