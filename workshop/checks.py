"""The notebooks' exercise checks: specific, friendly feedback on the learner's code.

Each check takes the learner's solution and raises NotYet saying which input
failed, what was expected and what came back. `CHECKS` maps the path of the
reference solution (in `solutions/`) to its check.
"""
from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

from flask import Flask, request

CHECKS: dict[str, Callable[[Any], None]] = {}
context: dict[str, Any] = {}  # what a Lab provides: redis_url, start_worker


class NotYet(Exception):
    """An exercise check did not pass yet. Shown without a traceback."""


def expect(got: Any, want: Any, what: str) -> None:
    """Raise NotYet with the input, the expected and the actual value if they differ."""
    if got != want:
        raise NotYet(f"{what}\n  expected: {want!r}\n  got:      {got!r}")


def checks(path: str):
    """Decorator: register a check for the exercise whose reference is at `path`."""
    def register(fn: Callable[[Any], None]) -> Callable[[Any], None]:
        CHECKS[path] = fn
        return fn
    return register


@checks("solutions.hello_webhook:create_hello_app")
def _hello(create_hello_app) -> None:
    received: list = []
    client = create_hello_app(received).test_client()
    response = client.post("/hook", json={"event": "ping"})
    expect(response.status_code, 204, "POST /hook should answer 204 No Content")
    expect(received, [{"event": "ping"}], "POST /hook with {'event': 'ping'} should append the JSON body")


@checks("solutions.payloads:from_request")
def _fields(inbound_fields) -> None:
    app = Flask(__name__)
    sms = {"msisdn": "447700900001", "to": "447700900000", "messageId": "0A01", "text": "Hi & bye = 2"}
    styles = [("GET query", {"method": "GET", "query_string": sms}), ("POST form", {"method": "POST", "data": sms}),
              ("POST JSON", {"method": "POST", "json": sms})]
    for style, options in styles:
        with app.test_request_context("/sms", **options):
            try:
                got = inbound_fields(request)
            except NotImplementedError:
                raise
            except Exception as error:
                raise NotYet(f"{style}: your function raised {type(error).__name__}: {error}") from None
        expect(dict(got) if isinstance(got, dict) else got, sms, f"{style}: the fields should come back as a flat dict")


@checks("solutions.signatures:signing_string")
def _signing_string(signing_string) -> None:
    cases = [
        ({"b": "2", "a": "1"}, "&a=1&b=2", "keys sorted"),
        ({"text": "a&b=c", "sig": "abc"}, "&text=a_b_c", "sig dropped, & and = in values made _"),
        ({"Z": "", "a": "x"}, "&Z=&a=x", "sorted by code point: capitals first; empty values kept"),
    ]
    for params, want, what in cases:
        expect(signing_string(params), want, f"signing_string({params!r}): {what}")


@checks("solutions.signatures:sign")
def _sign(sign) -> None:
    params = {"message-timestamp": "2013-11-21 15:27:30", "messageId": "020000001B0FE827",
              "msisdn": "14843472194", "text": "Test again", "timestamp": "1385047698",
              "to": "13239877404", "type": "text"}
    vectors = {"md5hash": "d2e7b1dc968737c5998ad624e02f90b7",
               "sha256": "ddb8397c2b90aac7f3882d306475c9a5058c92322eef43c92b298b6e0fc0d330"}
    for method, want in vectors.items():
        got = sign(params, "my_secret_key_for_testing", method)
        expect(got.lower() if isinstance(got, str) else got, want,
               f"sign(Vonage's own test message, method={method!r}) (from Vonage's PHP SDK tests)")


@checks("solutions.signatures:verify")
def _verify(verify) -> None:
    from solutions.signatures import InvalidSignature, sign

    now = int(time.time())
    good = {"messageId": "1", "text": "hi", "timestamp": str(now)}
    good["sig"] = sign(good, "s3cret", "sha256")
    verify(good, "s3cret", "sha256")
    verify({**good, "sig": good["sig"].upper()}, "s3cret", "sha256")
    old = {"messageId": "1", "text": "hi", "timestamp": str(now - 3600)}
    old["sig"] = sign(old, "s3cret", "sha256")
    bad = [({**good, "text": "tampered"}, "a tampered text"), ({k: v for k, v in good.items() if k != "sig"},
           "a message without sig"), (old, "a message signed an hour ago")]
    for params, what in bad:
        try:
            verify(params, "s3cret", "sha256")
        except InvalidSignature:
            continue
        raise NotYet(f"verify() accepted {what}: it should raise an InvalidSignature subclass")


@checks("solutions.intake:enqueue")
def _enqueue(enqueue) -> None:
    from redis import Redis
    from rq import Queue

    queue = Queue(f"check-{uuid.uuid4().hex[:6]}", connection=Redis.from_url(context["redis_url"]))
    job_data = {"event": "inbound-sms", "text": "hi", "payload": {"messageId": "1", "text": "hi"},
                "receivedAt": "2026-01-01T00:00:00+00:00", "deliveryId": "1-check"}
    try:
        job = enqueue(queue, job_data)
        expect(queue.count, 1, "after enqueue(queue, job_data) the queue should hold one job")
        expect(job.func_name, "solutions.jobs.process_message", "the job should call the worker function")
        expect(job.args, (job_data,), "the job's one argument should be the job data")
    finally:
        queue.delete(delete_jobs=True)


@checks("solutions.jobs:process_message")
def _job_module(func: str) -> None:
    from redis import Redis
    from rq import Queue

    from solutions.store import read_messages

    redis = Redis.from_url(context["redis_url"])
    queue = Queue("sms", connection=redis)
    payloads = [{"messageId": f"CHECK-{n}", "msisdn": "44", "text": f"check {n}"} for n in (1, 2, 1)]
    jobs = [queue.enqueue(func, {"event": "inbound-sms", "text": p["text"], "payload": p,
                                 "receivedAt": "2026-01-01T00:00:00+00:00", "deliveryId": f"chk{i}"})
            for i, p in enumerate(payloads)]
    worker, messages_file = context["start_worker"]()
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not all(j.get_status() in ("finished", "failed") for j in jobs):
            time.sleep(0.2)
        for job in jobs:
            if job.get_status() == "failed":
                last = (job.latest_result().exc_string or "").strip().splitlines()[-1:]
                raise NotYet(f"the worker ran {func} and it failed: {' '.join(last)}")
        expect([j.return_value() for j in jobs], ["written", "written", "duplicate"],
               "three jobs (CHECK-1, CHECK-2, then CHECK-1 again) should return")
        expect(sorted(m["messageId"] for m in read_messages(messages_file)), ["CHECK-1", "CHECK-2"],
               "the messages file should hold each message once")
    finally:
        worker.stop()


@checks("solutions.other_schemes:verify_github")
def _github(verify_github) -> None:
    secret, body = "It's a Secret to Everybody", b"Hello, World!"
    header = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    expect(verify_github(body, header, secret), True, "GitHub's own example (from its docs) should pass")
    expect(verify_github(body + b"!", header, secret), False, "a changed body should fail")
    expect(verify_github(body, header.upper(), "wrong"), False, "a wrong secret should fail")
