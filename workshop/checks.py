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
context: dict[str, Any] = {}  # what a Lab provides: redis_url, redis_server, start_worker, start_pipeline


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
    from solutions.signatures import MissingSignature, MissingTimestamp, SignatureMismatch, StaleTimestamp, sign

    secret, method, now = "s3cret", "sha256", int(time.time())

    def signed(**fields: str) -> dict[str, str]:
        params = {"messageId": "1", "text": "hi", **fields}
        return {**params, "sig": sign(params, secret, method)}

    good = signed(timestamp=str(now))
    accepts(lambda: verify(good, secret, method), "a message signed just now")
    accepts(lambda: verify({**good, "sig": good["sig"].upper()}, secret, method), "the same, its sig in capitals")
    accepts(lambda: verify(signed(timestamp=str(now - 7200)), secret, method, now=now - 7140),
            "a message signed two hours ago and received a minute later (now= is the time of receipt)")
    refuses(lambda: verify({**good, "text": "tampered"}, secret, method), SignatureMismatch, "a tampered text")
    refuses(lambda: verify(good, "guessed", method), SignatureMismatch, "a good message checked with another secret")
    refuses(lambda: verify({k: v for k, v in good.items() if k != "sig"}, secret, method), MissingSignature,
            "a message without sig")
    refuses(lambda: verify(signed(), secret, method), MissingTimestamp, "a signed message without a timestamp")
    refuses(lambda: verify(signed(timestamp=str(now - 3600)), secret, method), StaleTimestamp,
            "a message signed an hour ago")
    refuses(lambda: verify(signed(timestamp=str(now + 3600)), secret, method), StaleTimestamp,
            "a message whose timestamp is an hour in the future")
    refuses(lambda: verify(signed(timestamp=str(now - 120)), secret, method, max_age=60), StaleTimestamp,
            "a message two minutes old, with max_age=60")


def _check_url() -> str:
    """The checks' own Redis database (1) on the lab's server: the lesson's queue never sees a check's jobs."""
    return context["redis_url"].rsplit("/", 1)[0] + "/1"


def _commands_during(url: str, call: Callable[[], Any]) -> tuple[Any, list[list[str]]]:
    """Run `call()`; return what it returned and the commands Redis ran on `url`'s database meanwhile (MONITOR)."""
    from redis import Redis

    client = Redis.from_url(url, socket_timeout=5)
    database = client.connection_pool.connection_kwargs.get("db", 0)
    marker = f"check-done-{uuid.uuid4().hex}"
    commands: list[list[str]] = []
    with client.monitor() as monitor:
        result = call()
        client.echo(marker)
        while True:
            seen = monitor.next_command()
            if marker in seen["command"]:
                return result, commands
            if seen.get("db") == database:
                commands.append(seen["command"].split(" "))


def _one_transaction(commands: list[list[str]]) -> None:
    """Raise NotYet unless the seen mark, the pending record and the job were written in one MULTI ... EXEC."""
    from solutions import intake

    writes = {
        "the seen mark": lambda c: c[0] in ("SET", "SETEX", "SETNX") and c[1].startswith(intake.seen_key("")),
        "the pending record": lambda c: c[0] == "ZADD" and c[1] == intake.PENDING,
        "the saved delivery": lambda c: c[0] in ("HSET", "HSETNX", "HMSET") and c[1] == intake.PAYLOADS,
        "the job": lambda c: c[0] in ("RPUSH", "LPUSH") and c[1] == f"rq:queue:{intake.QUEUE_NAME}",
    }
    found: dict[str, int | None] = {}
    transaction, count = None, 0
    for command in commands:
        name = command[0].upper()
        if name == "MULTI":
            count += 1
            transaction = count
        elif name in ("EXEC", "DISCARD"):
            transaction = None
        for what, matches in writes.items():
            if len(command) > 1 and what not in found and matches([name, *command[1:]]):
                found[what] = transaction
    outside = [what for what in writes if found.get(what) is None]
    if outside:
        raise NotYet(f"{' and '.join(outside)} {'was' if len(outside) == 1 else 'were'} written outside the "
                     "transaction: write the seen mark, the pending record and the job in ONE transaction "
                     "(pipe = redis.pipeline(); pipe.multi(); ...; pipe.execute()), so that a crash between two "
                     "of them cannot leave a message marked seen that has no job: its re-deliveries would be "
                     "turned away, and it would never be processed")
    if len(set(found.values())) > 1:
        raise NotYet(f"the seen mark, the pending record and the job were written in {len(set(found.values()))} "
                     "separate transactions: put them all in one, with one pipe.execute()")


@checks("solutions.intake:accept")
def _accept(accept) -> None:
    import json

    from redis import Redis, RedisError

    from solutions import intake
    from solutions.receiver import connect
    from workshop.services import free_port

    url = _check_url()
    redis = Redis.from_url(url)
    redis.flushdb()
    queue = intake.get_queue(redis)
    func = "solutions.jobs.process_message"
    delivery = intake.new_delivery({"messageId": "CHECK-1", "msisdn": "447700900001", "text": "hello"})
    did = delivery["deliveryId"]
    try:
        try:
            first, commands = _commands_during(url, lambda: accept(queue, delivery, func))
        except RedisError as error:
            if "WATCH" not in str(error):
                raise
            raise NotYet("RQ's enqueue joins a transaction only once it has started: call pipe.multi() right "
                         "after pipe = redis.pipeline(), before the first command") from None
        expect(first, True, "accept(queue, a new delivery, func) should return True")
        seen = intake.seen_key(did)
        if not redis.exists(seen):
            raise NotYet(f"accept(queue, a new delivery, func) should mark the delivery as seen: {seen} is not set "
                         "(pipe.set(seen_key(did), 1, nx=True, ex=SEEN_TTL))")
        ttl = redis.ttl(seen)
        if ttl < 24 * 3600:
            raise NotYet("the seen mark should expire, but not before Vonage stops re-sending (24 h): set it with "
                         f"ex=SEEN_TTL (48 h); yours {'never expires' if ttl < 0 else f'expires in {ttl} s'}")
        if redis.zscore(intake.PENDING, did) is None:
            raise NotYet("accept(...) should record the delivery as pending: its deliveryId is not in "
                         f"{intake.PENDING} (pipe.zadd(PENDING, {{did: time.time()}}))")
        saved = redis.hget(intake.PAYLOADS, did)
        if saved is None or json.loads(saved) != {"func": func, "delivery": delivery}:
            raise NotYet(f"{intake.PAYLOADS} should keep what to queue again if the job is lost, under the deliveryId: "
                         "json.dumps({'func': func, 'delivery': delivery}); it holds "
                         f"{saved.decode()[:80] if saved else None!r}")
        expect(queue.count, 1, "accept(queue, a new delivery, func) should queue one job: jobs in the queue")
        job = queue.jobs[0]
        expect(job.func_name, func, "the job should call `func`")
        expect(tuple(job.args), (delivery,), "the job's one argument should be the delivery")
        expect(job.id, intake.job_id(did, 1), "the job's id (queue it with enqueue(queue, delivery, func, "
               "pipeline=pipe): it gives the job the id the sweep looks for)")
        _one_transaction(commands)
        again = accept(queue, delivery, func)
        expect(queue.count, 1, "accept(queue, the same delivery again, func): a re-delivery should queue no second "
               "job (ask whether it was seen first): jobs in the queue")
        expect(again, False, "accept(queue, the same delivery again, func) should return False: it was seen before")
        down = intake.get_queue(connect(f"redis://127.0.0.1:{free_port()}/1", timeout=0.5))
        try:
            got = accept(down, intake.new_delivery({"messageId": "CHECK-2", "text": "hi"}), func)
        except RedisError:
            return
        raise NotYet(f"with Redis down, accept(...) returned {got!r}: let the RedisError through (do not catch it), "
                     "so that the receiver answers 503 and the sender tries again")
    finally:
        redis.flushdb()


@checks("solutions.receiver:create_app")
def _receiver(create_app) -> None:
    import threading

    import requests
    from flask import got_request_exception
    from redis import Redis, RedisError
    from werkzeug.serving import WSGIRequestHandler, make_server

    from solutions import intake
    from workshop import sender
    from workshop.services import free_port

    class Quiet(WSGIRequestHandler):
        def log_request(self, *args: Any) -> None:  # no line per request in the notebook
            pass

    print("Checking: your receiver on a real HTTP server, with this lab's Redis, which the check stops for a "
          "moment and starts again...", flush=True)
    url = _check_url()
    redis = Redis.from_url(url)
    redis.flushdb()
    queue = intake.get_queue(redis)
    app = create_app({"REDIS_URL": url, "SMS_JOB": "solutions.jobs.process_message"})
    app.logger.disabled = True  # a 500's traceback is summed up in the check's message
    raised: list[BaseException] = []
    got_request_exception.connect(lambda sender, exception, **extra: raised.append(exception), app, weak=False)
    http = make_server("127.0.0.1", free_port(), app, threaded=True, request_handler=Quiet)
    threading.Thread(target=http.serve_forever, daemon=True).start()
    hook = f"http://127.0.0.1:{http.server_port}/webhooks/inbound-sms"

    def post(sms: dict[str, str]) -> requests.Response:
        return requests.post(hook, data=sms, timeout=10)

    sms = sender.make_sms("check: store, then acknowledge")
    did = intake.delivery_id(sms)
    try:
        answer = post(sms)
        if answer.status_code == 500 and raised and not isinstance(raised[0], RedisError):
            if isinstance(raised[0], NotImplementedError):
                raise NotImplementedError
            raise NotYet(f"a good SMS (POST form) got 500: your view raised {type(raised[0]).__name__}: {raised[0]}")
        if answer.status_code != 204:
            raise NotYet(f"a good SMS (POST form) should be answered 204, got {answer.status_code} "
                         f"{answer.text[:120]!r}")
        stored = {"jobs queued": queue.count, "marked seen": bool(redis.exists(intake.seen_key(did))),
                  "pending": redis.zscore(intake.PENDING, did) is not None}
        if stored != {"jobs queued": 1, "marked seen": True, "pending": True}:
            raise NotYet(f"your receiver answered 204, but by then the message was not stored and queued ({stored}): "
                         "call accept(queue, delivery, job) first, and answer 204 only once it has returned")
        expect(post(sms).status_code, 204, "the same SMS again (a re-delivery) should be answered 204 too, since it "
               "is stored: the status")
        expect(queue.count, 1, "a re-delivery should queue no second job: jobs in the queue")
        later = sender.make_sms("check: sent while Redis is down")
        raised.clear()
        context["redis_server"].stop()
        try:
            down = post(later)
        finally:
            context["redis_server"].start()
        if 200 <= down.status_code < 300:
            raise NotYet(f"with Redis stopped, your receiver answered {down.status_code}: the sender will not send "
                         "that message again, and it is lost. When accept(...) raises redis.RedisError, answer 503")
        if down.status_code == 500 and any(isinstance(error, RedisError) for error in raised):
            raise NotYet("with Redis stopped, your receiver answered 500: accept(...) raised redis.RedisError and "
                         "nothing caught it. Catch it (try: ... except RedisError:) and answer 503, so that the "
                         "sender tries again")
        expect(down.status_code, 503, "with Redis stopped, the answer should be 503 (Service Unavailable), so that "
               "the sender tries again: the status")
        expect(post(later).status_code, 204, "once Redis was back, the sender's retry should be stored and answered "
               "204: the status")
        expect(queue.count, 2, "after the retry, jobs in the queue")
    finally:
        http.shutdown()
        redis.flushdb()


@checks("solutions.jobs:process_message")
def _job_module(func: str) -> None:
    import random
    from collections import Counter

    from redis import Redis
    from rq.job import Job
    from rq.results import Result

    from solutions import intake
    from solutions.store import read_messages
    from workshop import sender

    rng = random.Random()
    texts = ["see you at 8", "running late", "pizza tonight?", "yes", "thanks!", "stop"]
    messages = [sender.make_sms(f"check {n}: {text}") for n, text in enumerate(texts, start=1)]
    stamped = [{**m, "message-timestamp": "2030-01-01 00:00:00"} for m in rng.sample(messages, 4)]  # past the door
    burst = messages + stamped + rng.sample(messages, 3)  # and three copies byte for byte: the door turns them away
    rng.shuffle(burst)
    print(f"Checking in real processes: a receiver and two workers; {len(messages)} messages delivered {len(burst)} "
          "times at once, in any order, and two jobs queued again as the sweep does...", flush=True)
    pipeline = context["start_pipeline"](func, workers=2)
    redis = Redis.from_url(pipeline["redis_url"])
    queue = intake.get_queue(redis)
    try:
        answers = sender.send_many(pipeline["url"], burst, concurrency=8, style="form", progress=False)
        if not all(a.ok for a in answers):
            raise NotYet(f"the receiver did not acknowledge every delivery: {[a.status for a in answers]}")
        dids = list(dict.fromkeys(intake.delivery_id(sms) for sms in burst))
        jobs = [Job.fetch(intake.job_id(did, 1), connection=redis) for did in dids]
        jobs += [intake.enqueue(queue, job.args[0], func, attempt=2) for job in rng.sample(jobs, 2)]
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not (
                all(j.get_status(refresh=True) in ENDED for j in jobs)
                and queue.count == 0 and queue.started_job_registry.count == 0):
            time.sleep(0.1)
        _all_finished(jobs, func, pipeline["services"])
        runs: dict[str, list] = {}  # messageId: what each run of the job returned
        written: set[str] = set()  # deliveries a run wrote
        for job in jobs:
            for result in job.results():
                if result.type == Result.Type.SUCCESSFUL:
                    runs.setdefault(job.args[0]["payload"]["messageId"], []).append(result.return_value)
                    if result.return_value == "written":
                        written.add(job.args[0]["deliveryId"])
        odd = [value for values in runs.values() for value in values if value not in ("written", "duplicate")]
        if odd:
            raise NotYet(f"your job returned {odd[0]!r}: return 'written' when it wrote the message, 'duplicate' when "
                         "the message was written already")
        lines = Counter(m.get("messageId") for m in read_messages(pipeline["messages_file"]))
        for sms in messages:
            mid, returned = sms["messageId"], runs.get(sms["messageId"], [])
            if lines[mid] > 1:
                raise NotYet(f"message {mid} is in the file {lines[mid]} times: it reached your job {len(returned)} "
                             "times, some at the same moment in the two workers. Claim its messageId in one step "
                             "before writing: redis.set(key, 1, nx=True) or redis.sadd(key, messageId) tell you "
                             "whether you were first (key it on the messageId, which every copy of a message shares)")
            if lines[mid] == 0:
                raise NotYet(f"message {mid} was never written: it reached your job {len(returned)} times, and your "
                             f"job returned {returned}")
            if returned.count("written") != 1:
                raise NotYet(f"message {mid} reached your job {len(returned)} times and is in the file once, but your "
                             f"job returned {returned}: 'written' the one time it wrote it, 'duplicate' the others")
        left = {raw.decode() for raw in redis.zrange(intake.PENDING, 0, -1)}
        if left:
            which = (": it settles the deliveries it writes, not the duplicates" if left.isdisjoint(written) else "")
            raise NotYet(f"your job does not settle the pending record{which}. After every job finished, {len(left)} "
                         f"of {len(dids)} deliveries are still pending, so the sweep would queue them again, every "
                         "10 s, up to 5 times. Settle every delivery, written or duplicate: pipe = redis.pipeline(); "
                         "intake.settle(pipe, delivery['deliveryId']); pipe.execute()")
    finally:
        for service in pipeline["services"]:
            service.stop()


def accepts(call: Callable[[], Any], what: str) -> Any:
    """Run `call`; raise NotYet if it refuses with an InvalidSignature. Return what it returns."""
    from solutions.signatures import InvalidSignature

    try:
        return call()
    except InvalidSignature as error:
        raise NotYet(f"{what} should be accepted, but it raised {type(error).__name__}: {error}") from None


def refuses(call: Callable[[], Any], error: type[Exception] | tuple[type[Exception], ...], what: str) -> None:
    """Raise NotYet unless `call` raises `error` (a class, or a tuple of them)."""
    from solutions.signatures import InvalidSignature

    wanted = " or ".join(e.__name__ for e in (error if isinstance(error, tuple) else (error,)))
    try:
        call()
    except error:
        return
    except InvalidSignature as other:
        raise NotYet(f"{what} should raise {wanted}, not {type(other).__name__}: {other}") from None
    raise NotYet(f"{what} was accepted: it should raise {wanted} (refuse by raising, not by returning False)")


@checks("solutions.other_schemes:verify_github")
def _github(verify_github) -> None:
    from solutions.signatures import MissingSignature, SignatureMismatch

    secret, body = "It's a Secret to Everybody", b"Hello, World!"
    header = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    accepts(lambda: verify_github(body, header, secret), "GitHub's own example (from its docs)")
    refuses(lambda: verify_github(body + b"!", header, secret), SignatureMismatch, "a changed body")
    refuses(lambda: verify_github(body, header, "wrong"), SignatureMismatch, "the right header with a wrong secret")
    refuses(lambda: verify_github(body, header.removeprefix("sha256="), secret), SignatureMismatch,
            "the hex digest without its sha256= prefix")
    refuses(lambda: verify_github(body, None, secret), MissingSignature, "a delivery without the header")


@checks("solutions.other_schemes:verify_slack")
def _slack(verify_slack) -> None:
    from solutions.signatures import MissingSignature, MissingTimestamp, SignatureMismatch, StaleTimestamp

    # Slack's example, from its page "Verifying requests from Slack" (and slack_sdk's tests).
    secret, ts = "8f742231b10e8888abcd99yyyzzz85a5", "1531420618"
    body = (b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V"
            b"&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text="
            b"&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN"
            b"&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c")
    sig = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
    now = int(ts)
    accepts(lambda: verify_slack(body, ts, sig, secret, now=now), "Slack's own example, received when it was sent")
    accepts(lambda: verify_slack(body, ts, sig, secret, now=now + 300), "Slack's example received 300 s later")
    refuses(lambda: verify_slack(body, ts, sig, secret, now=now + 301), StaleTimestamp,
            "Slack's example received 301 s later (more than 5 minutes)")
    refuses(lambda: verify_slack(body, ts, sig, secret, now=now - 301), StaleTimestamp,
            "a timestamp 301 s in the future")
    refuses(lambda: verify_slack(body, ts, sig, secret), StaleTimestamp, "Slack's 2018 example checked today (no now=)")
    refuses(lambda: verify_slack(body + b"x", ts, sig, secret, now=now), SignatureMismatch, "a changed body")
    refuses(lambda: verify_slack(body, str(now + 1), sig, secret, now=now), SignatureMismatch,
            "a changed X-Slack-Request-Timestamp (it is signed too)")
    refuses(lambda: verify_slack(body, ts, None, secret, now=now), MissingSignature, "no X-Slack-Signature")
    refuses(lambda: verify_slack(body, None, sig, secret, now=now), MissingTimestamp, "no X-Slack-Request-Timestamp")


@checks("solutions.other_schemes:verify_standard")
def _standard(verify_standard) -> None:
    from solutions.signatures import MissingSignature, SignatureMismatch, StaleTimestamp

    # The example of the Standard Webhooks libraries' tests (test_sign_function).
    secret, msg_id, ts = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330"
    body, good = b'{"test": 2432232314}', "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    other = "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc="  # a signature made with another secret
    now = int(ts)
    accepts(lambda: verify_standard(msg_id, ts, body, good, secret, now=now), "the specification's example")
    accepts(lambda: verify_standard(msg_id, ts, body, f"{other} {good}", secret, now=now),
            "two v1 signatures while a secret is rotated, the second one right")
    accepts(lambda: verify_standard(msg_id, ts, body, f"v1a,{good[3:]} {good}", secret, now=now),
            "an asymmetric v1a entry (to skip) then the right v1")
    accepts(lambda: verify_standard(msg_id, ts, body, good, secret, now=now + 300), "the example received 300 s later")
    refuses(lambda: verify_standard(msg_id, ts, body, other, secret, now=now), SignatureMismatch,
            "only a signature made with another secret")
    refuses(lambda: verify_standard(msg_id, ts, body, "v2," + good[3:], secret, now=now),
            (MissingSignature, SignatureMismatch), "the right signature labelled v2 (only v1 counts)")
    refuses(lambda: verify_standard(msg_id, ts, body + b" ", good, secret, now=now), SignatureMismatch,
            "a body with one more space")
    refuses(lambda: verify_standard("msg_other", ts, body, good, secret, now=now), SignatureMismatch,
            "another webhook-id (it is signed too)")
    refuses(lambda: verify_standard(msg_id, ts, body, good, secret, now=now + 301), StaleTimestamp,
            "the example received 301 s later")
    refuses(lambda: verify_standard(msg_id, ts, body, "", secret, now=now), MissingSignature,
            "an empty webhook-signature")


@checks("solutions.other_schemes:verify_stripe")
def _stripe(verify_stripe) -> None:
    import hashlib
    import hmac

    from solutions.signatures import MissingSignature, MissingTimestamp, SignatureMismatch, StaleTimestamp

    # Stripe's documented scheme: v1 = hex HMAC-SHA256(secret, "<t>.<body>"); v0 and others are ignored.
    secret, t, body = "whsec_test_secret", 1492774577, b'{\n  "id": "evt_test_webhook",\n  "object": "event"\n}'
    v1 = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    wrong = hmac.new(b"old secret", f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    header = f"t={t},v1={v1},v0=6ffbb59b2300aae63f272406069a9788598b792a944a07aba816edb039989a39"
    accepts(lambda: verify_stripe(body, header, secret, now=t), "a header as Stripe sends it (t, v1 and a v0)")
    accepts(lambda: verify_stripe(body, f"t={t},v1={wrong},v1={v1}", secret, now=t),
            "two v1 signatures while a secret is rotated, the second one right")
    accepts(lambda: verify_stripe(body, header, secret, now=t + 300), "a header received 300 s after t")
    accepts(lambda: verify_stripe(body, header, secret, tolerance=None, now=t + 3600),
            "an hour-old header with tolerance=None (the check turned off)")
    refuses(lambda: verify_stripe(body, header, secret, now=t + 301), StaleTimestamp, "a header received 301 s after t")
    refuses(lambda: verify_stripe(body, header, secret, tolerance=0, now=t + 60), StaleTimestamp,
            "a minute-old header with tolerance=0 (zero is not 'off')")
    refuses(lambda: verify_stripe(body + b" ", header, secret, now=t), SignatureMismatch, "a changed body")
    refuses(lambda: verify_stripe(body, f"t={t + 1},v1={v1}", secret, now=t), SignatureMismatch,
            "a changed t (it is signed too)")
    refuses(lambda: verify_stripe(body, f"t={t},v0={v1}", secret, now=t), MissingSignature,
            "the right signature labelled v0 (only v1 counts)")
    refuses(lambda: verify_stripe(body, f"v1={v1}", secret, now=t), MissingTimestamp, "a header without t")


@checks("solutions.messages_api:verify_signature")
def _jwt_signature(verify_signature) -> None:
    import base64
    import hashlib
    import hmac

    from solutions.messages_api import BadToken, WrongAlgorithm
    from solutions.signatures import SignatureMismatch

    # Tokens from the test suites of Vonage's SDKs: vonage-jwt (Python), then the Java SDK.
    python_sdk = ("eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJPbmxpbmUgSldUIEJ1aWxkZXIiLCJpYXQiOjE2OTc2MzQ2ODAs"
                  "ImV4cCI6MzMyNTQ1NDA4MjgsImF1ZCI6IiIsInN1YiI6IiJ9.88vJc3I2HhuqEDixHXVhc9R30tA6U_HQHZTC29y6CGM")
    java_sdk = ("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJTaW5hIiwibmFtZSI6IkphdmFfU0RLIiwiaWF0IjoxNjk4NjgwMzky"
                "fQ.4qJpi46NSYURiLI1xoLIfGRygA8IUI2QSG9P2Kus1Oo")
    java_secret = "XsA09z2MhUxYcdbXaUX3aTT7TzGmnCLfkdILf0NIyC9hN9criTEUdlI3OZ5hRjR"
    claims = accepts(lambda: verify_signature(python_sdk, "qwertyuiopasdfghjklzxcvbnm123456"),
                     "the token of Vonage's Python SDK tests")
    expect(claims.get("iss") if isinstance(claims, dict) else claims, "Online JWT Builder",
           "verify_signature should return the token's claims as a dict; its iss claim")
    claims = accepts(lambda: verify_signature(java_sdk, java_secret), "the token of Vonage's Java SDK tests")
    expect(claims.get("sub") if isinstance(claims, dict) else claims, "Sina", "the Java SDK token's sub claim")
    header, payload, _ = java_sdk.split(".")
    refuses(lambda: verify_signature(f"{header}.{payload}.XsaXHXqxe2kfIbPy-JH2J6hfbHnEv8jdWsOhEuvzU98", java_secret),
            SignatureMismatch, "the Java SDK's bad token (another signature)")
    refuses(lambda: verify_signature(python_sdk, "asdf"), SignatureMismatch,
            "the Python SDK's token with the secret 'asdf'")

    def part(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    none = part(b'{"alg":"none","typ":"JWT"}')
    refuses(lambda: verify_signature(f"{none}.{payload}.", java_secret), WrongAlgorithm, 'a token with alg "none"')
    hs512 = part(b'{"alg":"HS512","typ":"JWT"}')
    mac = hmac.new(java_secret.encode(), f"{hs512}.{payload}".encode(), hashlib.sha512).digest()
    refuses(lambda: verify_signature(f"{hs512}.{payload}.{part(mac)}", java_secret), WrongAlgorithm,
            "a genuine HS512 token (only HS256 is allowed)")
    refuses(lambda: verify_signature("asdf", java_secret), BadToken, "'asdf', which is not a JWT")


@checks("solutions.messages_api:verify")
def _jwt_callback(verify) -> None:
    import json

    from solutions.messages_api import MissingToken, PayloadHashMismatch, ReplayedToken, WrongAlgorithm, encode, sign
    from solutions.signatures import SignatureMismatch, StaleTimestamp

    secret, now = "a-signature-secret-of-32-bytes!!", 1_700_000_000
    body = json.dumps({"channel": "sms", "message_uuid": "aaaaaaaa-bbbb-4ccc-8ddd-0123456789ab", "to": "447700900000",
                       "from": "447700900001", "text": "Hello!", "message_type": "text"}, indent=2).encode()
    token = sign(body, secret, iat=now, jti="jti-1")
    claims = accepts(lambda: verify(token, body, secret, now=now, skew=30), "a callback signed as Vonage signs it")
    expect(claims.get("jti") if isinstance(claims, dict) else claims, "jti-1", "verify should return the claims; jti")
    accepts(lambda: verify(token, body, secret, now=now + 300, skew=30), "a token issued 300 s before receipt")
    accepts(lambda: verify(token, body, secret, now=now - 30, skew=30), "a token issued 30 s in the future (skew=30)")
    refuses(lambda: verify(token, body, secret, now=now + 301, skew=30), StaleTimestamp, "a token issued 301 s ago")
    refuses(lambda: verify(token, body, secret, now=now - 31, skew=30), StaleTimestamp,
            "a token issued 31 s in the future (skew=30)")
    refuses(lambda: verify(token, body.replace(b"Hello", b"Hacked"), secret, now=now, skew=30), PayloadHashMismatch,
            "a changed body with the original token")
    reserialized = json.dumps(json.loads(body)).encode()
    refuses(lambda: verify(token, reserialized, secret, now=now, skew=30), PayloadHashMismatch,
            "the same JSON re-serialized (json.dumps(json.loads(body)))")
    no_hash = encode({"iat": now, "jti": "jti-2", "iss": "Vonage", "api_key": "abcd1234"}, secret)
    refuses(lambda: verify(no_hash, body, secret, now=now, skew=30), PayloadHashMismatch,
            "a genuine token without payload_hash")
    refuses(lambda: verify(token, body, "another secret", now=now, skew=30), SignatureMismatch, "a wrong secret")
    payload = token.split(".")[1]
    refuses(lambda: verify(f"eyJhbGciOiJub25lIn0.{payload}.", body, secret, now=now, skew=30), WrongAlgorithm,
            'the same claims with alg "none" and no signature')
    refuses(lambda: verify(None, body, secret, now=now, skew=30), MissingToken, "an unsigned callback (no token)")
    seen: set[str] = set()

    def first_use(jti: str) -> bool:
        new = jti not in seen
        seen.add(jti)
        return new

    accepts(lambda: verify(token, body, secret, now=now, skew=30, first_use=first_use), "a token's first use")
    refuses(lambda: verify(token, body, secret, now=now, skew=30, first_use=first_use), ReplayedToken,
            "the same token a second time (same jti)")


ENDED = ("finished", "failed", "scheduled")  # scheduled: it failed, and RQ's Retry will run it again later


def _ended(jobs: list, timeout: float = 20.0) -> None:
    """Wait until every job has finished or failed, or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not all(j.get_status(refresh=True) in ENDED for j in jobs):
        time.sleep(0.1)


def _why_failed(job, services: list) -> str:
    """The last line of a failed job's traceback: from RQ's result, or else from its worker's log."""
    job.refresh()
    result = job.latest_result()
    text = (result.exc_string or "") if result is not None and job.get_status() == "failed" else ""
    if not text and job.worker_name:
        logs = [s.log_tail(40) for s in services if getattr(s, "worker_name", None) == job.worker_name]
        text = logs[0] if logs else ""
    last = [line for line in text.strip().splitlines() if line.strip()][-1:]
    return " ".join(last).strip() or "(no traceback found)"


def _all_finished(jobs: list, func: str, services: Any, where: str = "") -> None:
    """Raise NotYet saying why, unless every one of `jobs` finished."""
    for job in jobs:
        if job.get_status() in ("failed", "scheduled"):
            why = _why_failed(job, services)
            hint = ": replace the `raise` with your code" if why.startswith("NotImplementedError") else ""
            raise NotYet(f"the worker ran {func}{where} and it failed: {why}{hint}")
    if not all(job.get_status() == "finished" for job in jobs):
        raise NotYet(f"after 20 s, {sum(j.get_status() != 'finished' for j in jobs)} job(s) of {func} had not "
                     "finished: does your function wait for something?")


@checks("solutions.multipart:process_part")
def _multipart(func: str) -> None:
    import json
    import random

    from redis import Redis
    from rq.job import Job

    from solutions import intake
    from solutions.multipart import part_of
    from solutions.store import read_messages
    from workshop import sender

    rng = random.Random()
    words = ["pizza", "at", "eight", "bring", "the", "long", "list", "tonight"]
    texts = [f"Message {n}: " + " ".join(rng.choices(words, k=50 + 25 * n)) for n in (1, 2, 3)]
    messages = [sender.make_concat(text) for text in texts]
    print(f"Checking: 3 long messages in {', '.join(str(len(m)) for m in messages)} parts, shuffled, some parts "
          "twice, through a real receiver and two workers...", flush=True)
    pipeline = context["start_pipeline"](func, workers=2)
    redis = Redis.from_url(pipeline["redis_url"])

    def deliver(parts: list[dict[str, str]]) -> None:
        """Deliver `parts` at once through the real receiver; wait for the jobs the receiver queued for them."""
        results = sender.send_many(pipeline["url"], parts, concurrency=8, style="mixed", progress=False)
        if not all(r.ok for r in results):
            raise NotYet(f"the receiver did not acknowledge every part: {[r.status for r in results]}")
        ids = dict.fromkeys(intake.job_id(intake.delivery_id(p), 1) for p in parts)
        jobs = [Job.fetch(job_id, connection=redis) for job_id in ids]
        _ended(jobs)
        _all_finished(jobs, func, pipeline["services"], " on a part")
        if redis.zcard(intake.PENDING):
            raise NotYet(f"{redis.zcard(intake.PENDING)} deliveries were processed but never settled: settle every "
                         "part's delivery, the parts that only wait for the others too (a sweep would run them again)")

    def lines_of(parts: list[dict[str, str]]) -> list[str]:
        """The texts of the lines written for the message made of `parts`."""
        ids = {p["messageId"] for p in parts}
        return [m.get("text", "") for m in read_messages(pipeline["messages_file"]) if m.get("messageId") in ids]

    def resent(part: dict[str, str]) -> dict[str, str]:  # stamped again: it gets past the check at the door
        return {**part, "message-timestamp": "2030-01-01 00:00:00"}

    try:
        burst = [p for parts in messages for p in parts]
        burst += [resent(p) for p in rng.sample(burst, 5)] + rng.sample(burst, 3)
        rng.shuffle(burst)
        deliver(burst)
        for n, (text, parts) in enumerate(zip(texts, messages, strict=True), start=1):
            order = ", ".join(p["concat-part"] for p in burst if p["messageId"] in {q["messageId"] for q in parts})
            lines = lines_of(parts)
            what = f"message {n} ({len(parts)} parts, delivered in the order {order})"
            if not lines:
                raise NotYet(f"{what} was never written: when every distinct part is kept, build the whole with "
                             "whole_record(parts) and write it with store.add")
            wrong = [line for line in lines if line != text]
            if wrong:
                hint = ("was it written before every part came? Count the distinct parts kept (a part delivered "
                        "twice counts once), not the deliveries" if len(wrong[0]) < len(text) else
                        "join the parts in the order of concat-part")
                raise NotYet(f"{what} was written as {wrong[0][:60]!r}... ({len(wrong[0])} characters, the whole "
                             f"message has {len(text)}): {hint}")
            if len(lines) > 1:
                raise NotYet(f"{what} was written {len(lines)} times: write it with store.add, which writes a "
                             "messageId once, even when two workers try at the same moment")

        deliver([resent(messages[0][1])])
        expect(len(lines_of(messages[0])), 1, "part 2 of message 1 came again after the message was written: "
               "lines in the file for message 1")

        late = sender.make_concat("Message 4: " + "after a crash " * 30)
        deliver(late[:-1])
        key, number, _ = part_of(late[-1])
        redis.hset(key, number, json.dumps(intake.new_delivery(late[-1])))  # what the run that died had done
        deliver([late[-1]])
        expect(len(lines_of(late)), 1, f"a worker kept the last part of message 4 ({number} of {len(late)}) and "
               "died before writing the message; when that part came again, the message should have been written "
               "(check whether the message is whole on every run, not only when the part is new): lines written")
    finally:
        for service in pipeline["services"]:
            service.stop()


@checks("desk_jobs:handle_sms")
def _desk_job(job: str) -> None:
    """Notebook 09: the job the help desk's receiver queues is one a real worker can import."""
    import os
    import tempfile

    from redis import Redis
    from rq import Queue

    from workshop.services import start_worker

    if not isinstance(job, str) or "." not in job.strip("."):
        raise NotYet(f"SMS_JOB should be a job's dotted name, module.function (like 'solutions.jobs.process_message'); "
                     f"got {job!r}")
    print(f"Checking: a real worker process imports {job} and runs it...", flush=True)
    url = _check_url()
    redis = Redis.from_url(url)
    redis.flushdb()
    probe = Queue("sms", connection=redis).enqueue(job, {"event": "inbound-sms", "text": "check", "payload": {
        "messageId": "CHECK-1", "text": "check"}, "receivedAt": "2026-01-01T00:00:00+00:00", "deliveryId": "check"})
    env = {"MESSAGES_FILE": os.path.join(tempfile.mkdtemp(prefix="check-"), "messages.jsonl"),
           "PYTHONPATH": os.pathsep.join([os.getcwd(), os.environ.get("PYTHONPATH", "")])}
    worker = start_worker(url, env=env)
    try:
        deadline = time.monotonic() + 20
        while probe.get_status() not in ("finished", "failed") and time.monotonic() < deadline:
            time.sleep(0.1)
        result = probe.latest_result()
        if result is None:
            raise NotYet(f"the worker did not run {job} within 20 s")
        last = (result.exc_string or "").strip().splitlines()[-1:]
        if last and last[0].startswith(("ValueError: Invalid attribute name", "ModuleNotFoundError", "ImportError")):
            module, _, name = job.rpartition(".")
            raise NotYet(f"a real worker could not import {job} (RQ says: {last[0]}): is there a {module}.py in "
                         f"this folder, with a function {name}?")
    finally:
        worker.stop()
        redis.flushdb()
    expect(job, "desk_jobs.handle_sms", f"a worker imports {job}, but the desk's job is handle_sms in desk_jobs.py: "
           "SMS_JOB")
