"""Notebook 04 with answers a learner might write: store, then acknowledge, in other words than the reference.

The learner writes `accept` (a check at the door, then one transaction) and the receiver's view (204 once
stored, 204 for a re-delivery, 503 when Redis cannot store it). Correct answers pass in a real kernel and are
kept; the checks catch the simplest wrong answers, each with a message that names the problem: acknowledging
what was not stored, no de-duplication, writes outside one transaction, a Redis error swallowed, a 500.
"""
from __future__ import annotations

import json
import os
import threading
import time

import pytest
from flask import Flask, request
from redis import RedisError

from solutions.intake import PAYLOADS, PENDING, SEEN_TTL, enqueue, get_queue, new_delivery, seen_key
from solutions.payloads import BadPayload, from_request
from solutions.receiver import connect
from tests.learner import assert_learner_passes, errors, run_with_answers, slowest_cell, stream_text
from workshop import notebook
from workshop.checks import NotYet

STEM = "04-the-queue"

# A plain pipeline (no with-block), the job queued first, the seen mark last and without NX.
ACCEPT = '''
def accept(queue, delivery: dict, func: str = "solutions.jobs.process_message") -> bool:
    redis = queue.connection
    did = delivery["deliveryId"]
    if redis.exists(seen_key(did)) == 1:
        return False
    pipe = redis.pipeline()
    pipe.multi()
    enqueue(queue, delivery, func, pipeline=pipe)
    pipe.zadd(PENDING, {did: time.time()})
    pipe.hset(PAYLOADS, did, json.dumps({"func": func, "delivery": delivery}))
    pipe.set(seen_key(did), "yes", ex=SEEN_TTL)
    pipe.execute()
    return True
'''

# A dict body for the 503, the 204 at the end, the error kept in a variable.
RECEIVER = '''
def create_app(config: dict) -> Flask:
    app = Flask(__name__)
    queue = get_queue(connect(config["REDIS_URL"]))
    job = config["SMS_JOB"]

    @app.route("/webhooks/inbound-sms", methods=["GET", "POST"])
    def inbound_sms():
        try:
            payload = from_request(request)
        except BadPayload as error:
            return str(error), error.status
        delivery = new_delivery(payload)
        problem = None
        try:
            accept(queue, delivery, job)
        except RedisError as error:
            problem = error
        if problem is not None:
            return {"error": "could not store the message, please send it again"}, 503
        return "", 204

    return app
'''

# The simplest wrong answers, as (exercise, text in the answer, what a hurried learner writes instead).
NO_DOOR = ACCEPT.replace('''    if redis.exists(seen_key(did)) == 1:
        return False
''', "")
OUTSIDE = ACCEPT.replace('''    if redis.exists(seen_key(did)) == 1:
        return False
''', '''    if not redis.set(seen_key(did), 1, nx=True, ex=SEEN_TTL):
        return False
''').replace('''    pipe.set(seen_key(did), "yes", ex=SEEN_TTL)
''', "")
SEPARATE = '''
def accept(queue, delivery, func="solutions.jobs.process_message"):
    redis = queue.connection
    did = delivery["deliveryId"]
    if redis.exists(seen_key(did)):
        return False
    redis.set(seen_key(did), 1, ex=SEEN_TTL)
    redis.zadd(PENDING, {did: time.time()})
    redis.hset(PAYLOADS, did, json.dumps({"func": func, "delivery": delivery}))
    enqueue(queue, delivery, func)
    return True
'''
BEFORE_MULTI = ACCEPT.replace("    pipe.multi()\n    enqueue(queue, delivery, func, pipeline=pipe)\n", "").replace(
    "    pipe.execute()\n", "    enqueue(queue, delivery, func, pipeline=pipe)\n    pipe.execute()\n")
ACK_ANYWAY = RECEIVER.replace("            problem = error\n", "            print('could not store it')\n")


def test_the_wrong_answers_differ_from_the_right_ones_where_meant():
    for wrong in (NO_DOOR, OUTSIDE, SEPARATE, BEFORE_MULTI):
        assert wrong != ACCEPT
    assert ACK_ANYWAY != RECEIVER


@pytest.mark.notebook
def test_learner_answers_pass_and_are_kept():
    nb = run_with_answers(STEM, {"ex-accept": ACCEPT, "ex-receiver": RECEIVER})
    assert_learner_passes(nb)
    text = stream_text(nb)
    assert text.count("✓ Well done") == 2, text[-2000:]
    assert "Redis is stopped. Your receiver answered: 503" in text
    assert "The sender tried again and got: 204 | jobs in the queue: 1" in text
    assert "drained in" in text


@pytest.mark.notebook
def test_wrong_answers_get_a_not_yet_that_names_the_problem_and_the_reference_takes_over():
    nb = run_with_answers(STEM, {"ex-accept": NO_DOOR, "ex-receiver": ACK_ANYWAY})
    assert errors(nb) == []
    text = stream_text(nb)
    assert "a re-delivery should queue no second job" in text, text[-3000:]
    assert "Not yet: with Redis stopped, your receiver answered 204" in text and "it is lost" in text
    assert "Using the reference solution solutions.intake.accept." in text
    assert "Using the reference solution solutions.receiver.create_app." in text
    assert "Redis is stopped. Your receiver answered: 503" in text, "the reference took over"
    took, cell = slowest_cell(nb)
    assert took < 30, f"a cell ran {took:.0f} s: {cell!r}"


@pytest.fixture(scope="module")
def lab():
    """A Lab in this process (its settings go into os.environ: put them back after)."""
    saved = dict(os.environ)
    lab = notebook.Lab()
    yield lab
    lab.stop()
    os.environ.clear()
    os.environ.update(saved)


def define(source: str, name: str):
    """The function `name` that `source` defines, in a namespace like the notebook's."""
    namespace = {"__name__": "__main__", "json": json, "time": time, "Flask": Flask, "request": request,
                 "RedisError": RedisError,
                 "PAYLOADS": PAYLOADS, "PENDING": PENDING, "SEEN_TTL": SEEN_TTL, "enqueue": enqueue,
                 "get_queue": get_queue, "new_delivery": new_delivery, "seen_key": seen_key,
                 "BadPayload": BadPayload, "from_request": from_request, "connect": connect,
                 "threading": threading}
    exec(ACCEPT, namespace)
    exec(source, namespace)
    return namespace[name]


def test_the_checks_pass_the_reference_and_the_learner_answers(lab):
    notebook.check(define(ACCEPT, "accept"), "solutions.intake:accept")
    notebook.check(define(RECEIVER, "create_app"), "solutions.receiver:create_app")
    from solutions import intake, receiver

    notebook.check(intake.accept, "solutions.intake:accept")
    notebook.check(receiver.create_app, "solutions.receiver:create_app")


WRONG_ACCEPT = {
    "no check at the door": (NO_DOOR, "a re-delivery should queue no second job"),
    "the seen mark outside the transaction": (OUTSIDE, "the seen mark was written outside the transaction"),
    "two transactions": (ACCEPT.replace("    pipe.set(seen_key(did)", "    pipe.execute()\n    pipe.multi()\n"
                                        "    pipe.set(seen_key(did)"), "2 separate transactions"),
    "no transaction at all": (SEPARATE, "written outside the transaction"),
    "commands before multi()": (BEFORE_MULTI, r"call pipe.multi\(\) right after"),
    "a seen mark that never expires": (ACCEPT.replace(', ex=SEEN_TTL)', ')'), "never expires"),
    "no pending record": (ACCEPT.replace("    pipe.zadd(PENDING, {did: time.time()})\n", ""), "pending"),
    "a Redis error swallowed": (ACCEPT.replace("    if redis.exists(seen_key(did)) == 1:", "    try:\n"
                                               "        seen = redis.exists(seen_key(did))\n    except RedisError:\n"
                                               "        return False\n    if seen:"),
                                "with Redis down, accept\\(...\\) returned False: let the RedisError through"),
}


@pytest.mark.parametrize("wrong", WRONG_ACCEPT, ids=lambda w: w.replace(" ", "-"))
def test_the_accept_check_catches_a_wrong_answer_and_says_what_is_wrong(lab, wrong):
    source, phrase = WRONG_ACCEPT[wrong]
    assert source != ACCEPT
    with pytest.raises(NotYet, match=phrase):
        notebook.check(define(source, "accept"), "solutions.intake:accept")


WRONG_RECEIVER = {
    "acknowledges what it could not store": (ACK_ANYWAY, "with Redis stopped, your receiver answered 204"),
    "lets the Redis error through (500)": (RECEIVER.replace("        except RedisError as error:\n"
                                                            "            problem = error\n",
                                                            "        except KeyError:\n            pass\n"),
                                           "answered 500: accept\\(...\\) raised redis.RedisError"),
    "stores in the background": (RECEIVER.replace("            accept(queue, delivery, job)\n",
                                                  "            threading.Thread(target=accept, args=(queue, delivery,"
                                                  " job)).start()\n"), "not stored and queued"),
    "answers a re-delivery with 409": (RECEIVER.replace("            accept(queue, delivery, job)\n",
                                                        "            if not accept(queue, delivery, job):\n"
                                                        "                return 'seen', 409\n"),
                                       "a re-delivery\\) should be answered 204 too"),
    "never stores": (RECEIVER.replace("            accept(queue, delivery, job)\n", "            pass\n"),
                     "not stored and queued"),
    "answers 500 for Redis down": (RECEIVER.replace("}, 503", "}, 500"), "the answer should be 503"),
}


@pytest.mark.parametrize("wrong", WRONG_RECEIVER, ids=lambda w: w.replace(" ", "-"))
def test_the_receiver_check_catches_a_wrong_answer_and_says_what_is_wrong(lab, wrong):
    source, phrase = WRONG_RECEIVER[wrong]
    assert source != RECEIVER
    with pytest.raises(NotYet, match=phrase):
        notebook.check(define(source, "create_app"), "solutions.receiver:create_app")
