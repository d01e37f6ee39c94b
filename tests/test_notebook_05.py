"""Notebook 05 with answers a learner might write: an idempotent job, in other words than the reference.

The learner's `save_message` claims each messageId once (a Redis set, or SET NX) and settles every delivery.
Correct answers pass in a real kernel, with real workers behind a real receiver, and are kept. The check
catches the simplest wrong answers, each with a message that names the problem: no de-duplication, a claim
on the deliveryId (which a changed copy does not share), a check and a mark in two steps, never settling,
settling only what was written, the wrong return value. A job that never settles no longer makes any cell wait:
the check says so at once, the reference takes over, and no cell runs 30 s. A SIGNATURE_SECRET that a
learner's .env would give changes nothing: the lab's workers have none.
"""
from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

from tests.learner import assert_learner_passes, errors, run_with_answers, slowest_cell, stream_text
from workshop import notebook
from workshop.checks import NotYet

STEM = "05-the-worker"
HEADER = '''%%writefile sms_jobs.py
"""My job functions. A worker process imports this module, so it lives in a file."""
import json

from rq import get_current_job

from solutions import intake
from solutions.jobs import to_record
from solutions.settings import load_settings


def append(record: dict) -> None:
    with open(load_settings().messages_file, "a", encoding="utf-8") as file:
        file.write(json.dumps(record) + "\\n")


def save_message(delivery: dict) -> str:
    redis = get_current_job().connection
    record = to_record(delivery)
'''

# A set of written ids (SADD), the settle in a with-block, one return at the end.
WITH_A_SET = HEADER + '''
    is_new = redis.sadd("written-ids", record["messageId"]) == 1
    if is_new:
        append(record)
    with redis.pipeline() as pipe:
        intake.settle(pipe, delivery["deliveryId"])
        pipe.execute()
    if is_new:
        return "written"
    return "duplicate"
'''

# SET NX on a key of its own naming, an early return that settles first.
WITH_SET_NX = HEADER + '''
    key = "seen-message:" + str(record["messageId"])
    if not redis.set(key, "yes", nx=True):
        p = redis.pipeline()
        intake.settle(p, delivery["deliveryId"])
        p.execute()
        return "duplicate"
    append(record)
    p = redis.pipeline()
    intake.settle(p, delivery["deliveryId"])
    p.execute()
    return "written"
'''

SETTLE = '''
    pipe = redis.pipeline()
    intake.settle(pipe, delivery["deliveryId"])
    pipe.execute()
'''

# The simplest wrong answers: (the body after HEADER, a phrase the check's message must hold).
WRONG = {
    "no de-duplication": (SETTLE + '''
    append(record)
    return "written"
''', "is in the file [0-9]+ times: it reached your job"),
    "claims the deliveryId": ('''
    first = redis.set("done:" + delivery["deliveryId"], 1, nx=True)
    if first:
        append(record)
''' + SETTLE + '''
    return "written" if first else "duplicate"
''', "is in the file [0-9]+ times.*key it on the messageId"),
    "never settles": ('''
    if redis.sadd("written-ids", record["messageId"]) == 0:
        return "duplicate"
    append(record)
    return "written"
''', "your job does not settle the pending record\\. After every job finished"),
    "settles only what it writes": ('''
    if redis.sadd("written-ids", record["messageId"]) == 0:
        return "duplicate"
    append(record)
''' + SETTLE + '''
    return "written"
''', "does not settle the pending record: it settles the deliveries it writes, not the duplicates"),
    "returns nothing": ('''
    if redis.sadd("written-ids", record["messageId"]):
        append(record)
''' + SETTLE, "your job returned None"),
    "says written for a duplicate": ('''
    if redis.sadd("written-ids", record["messageId"]):
        append(record)
''' + SETTLE + '''
    return "written"
''', "is in the file once, but your job returned"),
}


def answer(body: str) -> str:
    return HEADER + textwrap.dedent(body).replace("\n", "\n    ").rstrip() + "\n"


@pytest.mark.notebook
@pytest.mark.parametrize("source", [WITH_A_SET, WITH_SET_NX], ids=["a-set", "set-nx"])
def test_learner_answers_pass_and_are_kept(source, monkeypatch):
    monkeypatch.setenv("SIGNATURE_SECRET", "what-a-learner-keeps-in-dotenv")  # as python-dotenv would set it
    nb = run_with_answers(STEM, {"d3053b4b": source})
    assert_learner_passes(nb)
    text = stream_text(nb)
    assert "one message, two runs of its job: the file holds 2 lines" in text, "the naive job writes twice"
    assert "the door turned away 10" in text
    assert "the file holds 30 lines, 30 different; still pending: 0" in text, text[-2000:]
    assert "why: RuntimeError: SIGNATURE_SECRET is not set" in text, "the failing job does not read the .env"
    assert "written, and settled: I was lost, and found" in text


@pytest.mark.notebook
def test_a_job_that_never_settles_is_told_so_and_no_cell_waits():
    nb = run_with_answers(STEM, {"d3053b4b": answer(WRONG["never settles"][0])})
    assert errors(nb) == []
    text = stream_text(nb)
    assert "Not yet: your job does not settle the pending record" in text, text[-3000:]
    assert "written, and settled: I was lost, and found" in text, "the reference took over"
    took, cell = slowest_cell(nb)
    assert took < 30, f"a cell ran {took:.0f} s: {cell!r}"


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A Lab in this process (its settings go into os.environ: put them back after), modules in a folder of ours."""
    saved = dict(os.environ)
    folder = tmp_path_factory.mktemp("answers")
    os.environ["PYTHONPATH"] = os.pathsep.join([str(folder), os.environ.get("PYTHONPATH", "")])
    lab = notebook.Lab()
    yield lab, folder
    lab.stop()
    os.environ.clear()
    os.environ.update(saved)


def module(folder: Path, name: str, source: str) -> str:
    """Write an answer cell's module (without its %%writefile line) as `name`.py; return its job's dotted name."""
    Path(folder, f"{name}.py").write_text(source.split("\n", 1)[1])
    return f"{name}.save_message"


@pytest.mark.parametrize("wrong", WRONG, ids=lambda w: w.replace(" ", "-"))
def test_the_check_catches_a_wrong_answer_and_says_what_is_wrong(lab, wrong):
    _, folder = lab
    body, phrase = WRONG[wrong]
    job = module(folder, "wrong_" + wrong.replace(" ", "_").replace("-", "_"), answer(body))
    with pytest.raises(NotYet, match=phrase):
        notebook.check(job, "solutions.jobs:process_message")


def test_the_check_passes_the_reference_and_a_learner_answer(lab):
    _, folder = lab
    notebook.check("solutions.jobs.process_message", "solutions.jobs:process_message")
    notebook.check(module(folder, "right_with_a_set", WITH_A_SET), "solutions.jobs:process_message")
