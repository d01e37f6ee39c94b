"""Notebook 10, the capstone: a long SMS reassembled exactly once, whatever the order, by two real workers.

Learner-style answers (correct, in other words than the reference) pass in a real kernel, and their own
code is kept. The check is also shown to catch the simplest wrong answers, each with a message that says
what went wrong: counting deliveries instead of distinct parts, skipping a part already kept (the run after
a crash writes nothing), not settling the parts that wait, appending to the file without the write-once,
joining the parts in the order they came.
"""
from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

from tests.learner import assert_learner_passes, run_with_answers, stream_text
from workshop import notebook
from workshop.checks import NotYet

STEM = "10-capstone-any-order"
HEADER = '''%%writefile multipart_jobs.py
"""My multipart job. A worker process imports this module, so it lives in a file."""
import json

from rq import get_current_job

from solutions.multipart import part_of, settle_now, whole_record
from solutions.settings import load_settings
from solutions.store import MessageStore


def save_part(delivery: dict) -> str:
    redis = get_current_job().connection
    key, part, total = part_of(delivery["payload"])
    store = MessageStore(load_settings().messages_file, redis)
'''

# Keep, count the distinct parts, write once, settle: in a pipeline, with HLEN.
PIPELINED = HEADER + '''
    with redis.pipeline() as pipe:
        pipe.hsetnx(key, part, json.dumps(delivery))
        pipe.hlen(key)
        _, kept = pipe.execute()
    outcome = "waiting"
    if kept >= total:
        if store.add(whole_record(redis.hgetall(key))):
            outcome = "written"
    settle_now(redis, delivery, outcome)
    return outcome
'''

# The same idea with plain calls, an early return, and the store's `also` settling in its transaction.
PLAIN = HEADER + '''
    from solutions.intake import settle

    redis.hsetnx(key, part, json.dumps(delivery))
    everything = redis.hgetall(key)
    if len(everything) != total:
        settle_now(redis, delivery)
        return "waiting"
    if store.add(whole_record(everything), also=lambda pipe: settle(pipe, delivery["deliveryId"])):
        return "written"
    settle_now(redis, delivery, "duplicate")
    return "waiting"
'''


@pytest.mark.notebook
@pytest.mark.parametrize("answer", [PIPELINED, PLAIN], ids=["pipelined", "plain"])
def test_learner_answers_pass_and_are_kept(answer):
    nb = run_with_answers(STEM, {"ex-multipart": answer})
    assert_learner_passes(nb)
    text = stream_text(nb)
    assert text.count("written 1 time(s), whole and in order") == 5, text[-1500:]
    workers = [line for line in text.splitlines() if line.startswith("deliveries each worker processed:")]
    assert workers and all(int(n) > 0 for n in workers[0].split(":")[1].split(",")), "both workers took parts"


WRONG = {
    "counts deliveries": ('''
    redis.hset(key, part, json.dumps(delivery))
    if redis.incr(key + ":deliveries") >= total:
        store.add(whole_record(redis.hgetall(key)))
    settle_now(redis, delivery)
    return "waiting"
''', "Count the distinct parts kept"),
    "skips a part already kept": ('''
    if not redis.hsetnx(key, part, json.dumps(delivery)):
        settle_now(redis, delivery)
        return "waiting"
    if redis.hlen(key) == total:
        store.add(whole_record(redis.hgetall(key)))
    settle_now(redis, delivery)
    return "waiting"
''', "whole on every run"),
    "never settles a waiting part": ('''
    redis.hsetnx(key, part, json.dumps(delivery))
    if redis.hlen(key) < total:
        return "waiting"
    store.add(whole_record(redis.hgetall(key)))
    settle_now(redis, delivery)
    return "written"
''', "never settled"),
    "appends without the write-once": ('''
    redis.hsetnx(key, part, json.dumps(delivery))
    if redis.hlen(key) == total:
        with open(load_settings().messages_file, "a") as handle:
            handle.write(json.dumps(whole_record(redis.hgetall(key))) + "\\n")
    settle_now(redis, delivery)
    return "waiting"
''', "was written [0-9]+ times|came again after the message was written"),
    "joins in the order they came": ('''
    redis.rpush(key + ":list", delivery["text"])
    redis.hsetnx(key, part, json.dumps(delivery))
    if redis.hlen(key) == total:
        record = whole_record(redis.hgetall(key))
        record["text"] = "".join(t.decode() for t in redis.lrange(key + ":list", 0, -1))
        store.add(record)
    settle_now(redis, delivery)
    return "waiting"
''', "join the parts in the order of concat-part"),
}


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A Lab in this process (its settings go into os.environ: put them back after), modules in a folder of ours."""
    saved = dict(os.environ)
    folder = tmp_path_factory.mktemp("answers")
    os.environ["PYTHONPATH"] = str(folder)
    lab = notebook.Lab()
    yield lab, folder
    lab.stop()
    os.environ.clear()
    os.environ.update(saved)


@pytest.mark.parametrize("wrong", WRONG, ids=lambda w: w.replace(" ", "-"))
def test_the_check_catches_a_wrong_answer_and_says_what_is_wrong(lab, wrong):
    _, folder = lab
    body, phrase = WRONG[wrong]
    name = "wrong_" + wrong.replace(" ", "_").replace("-", "_")
    source = HEADER.split("\n", 1)[1] + textwrap.dedent(body).replace("\n", "\n    ").rstrip() + "\n"
    Path(folder, f"{name}.py").write_text(source)
    with pytest.raises(NotYet, match=phrase):
        notebook.check(f"{name}.save_part", "solutions.multipart:process_part")


def test_the_check_passes_the_reference_and_a_learner_answer(lab):
    _, folder = lab
    Path(folder, "right_plain.py").write_text(PLAIN.split("\n", 1)[1])
    notebook.check("solutions.multipart.process_part", "solutions.multipart:process_part")
    notebook.check("right_plain.save_part", "solutions.multipart:process_part")
