"""`python -m workshop chaos`: the talk's promises under load and faults, at demo scale.

Each scenario runs on its own private Redis, receiver and workers (127.0.0.1 only,
bounded in count and time) and ends with one row: what was sent, acknowledged,
answered 503, processed, suppressed as a duplicate, recovered by the sweep, and lost.
"""
from __future__ import annotations

import http.client
import json
import random
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus

from solutions import intake
from solutions.intake import STATS
from solutions.store import read_messages
from workshop import sender
from workshop.stack import Stack

METHOD = "sha256"


@dataclass
class Outcome:
    """One scenario's result. `lost` must be 0: acknowledged but never processed."""

    scenario: str
    sent: int
    acknowledged: int
    answered_503: int
    processed: int
    written_twice: int
    duplicates: int
    recovered: int
    lost: int
    server_errors: int = 0
    recovery_seconds: float | None = None  # from the last fault until every acknowledged message was processed
    killed_mid_job: int = 0  # workers killed in the middle of a job they had not settled
    not_4xx: int = 0  # malformed requests that got anything but a 4xx (or no answer at all)

    ROW = "{:<22} {:>5} {:>6} {:>5} {:>9} {:>10} {:>9} {:>5} {:>12}"

    @classmethod
    def header(cls) -> str:
        return cls.ROW.format("scenario", "sent", "acked", "503s", "processed", "duplicates", "recovered",
                              "lost", "recovery (s)")

    def row(self) -> str:
        recovery = "-" if self.recovery_seconds is None else f"{self.recovery_seconds:.1f}"
        return self.ROW.format(self.scenario, self.sent, self.acknowledged, self.answered_503, self.processed,
                               self.duplicates, self.recovered, self.lost, recovery)


def _outcome(name: str, stack: Stack, messages: list[dict], deliveries: list[sender.Delivery],
             fault_at: float | None = None, settled_at: float | None = None) -> Outcome:
    records = read_messages(stack.messages_file)
    written = [r["messageId"] for r in records]
    acked = {d.message_id for d in deliveries if d.ok}
    stats = {k.decode(): int(v) for k, v in stack.redis.hgetall(STATS).items()}
    recovery = settled_at - fault_at if fault_at is not None and settled_at is not None else None
    return Outcome(
        scenario=name, sent=len({m["messageId"] for m in messages}), acknowledged=len(acked),
        answered_503=sum(h == 503 for d in deliveries for h in d.history),
        processed=len(set(written)), written_twice=len(written) - len(set(written)),
        duplicates=stats.get("duplicate", 0) + sum(d.duplicate for d in deliveries),
        recovered=stats.get("requeued", 0), lost=len(acked - set(written)),
        server_errors=sum(h is not None and h >= 500 and h != 503 for d in deliveries for h in d.history),
        recovery_seconds=recovery,
    )


def _signed_batch(count: int, secret: str) -> list[dict]:
    return [sender.signed(sender.make_sms(), secret, METHOD) for _ in range(count)]


class Burst:
    """A burst sent from a background thread, with live counts to time faults by."""

    def __init__(self, url: str, messages: list[dict], **options) -> None:
        self.results: list[sender.Delivery] = []
        self.ended = 0
        self.acknowledged = 0
        self._thread = threading.Thread(target=self._send, args=(url, messages), kwargs=options, daemon=True)
        self._thread.start()

    def _send(self, url: str, messages: list[dict], **options) -> None:
        self.results = sender.send_many(url, messages, concurrency=16, style="mixed", progress=False,
                                        on_delivery=self._count, **options)

    def _count(self, delivery: sender.Delivery) -> None:
        self.ended += 1
        self.acknowledged += delivery.ok

    def wait_for(self, acknowledged: int, timeout: float = 60.0) -> None:
        """Wait until `acknowledged` messages have been acknowledged (or the burst ended)."""
        deadline = time.monotonic() + timeout
        while self.acknowledged < acknowledged and self._thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.005)

    def join(self, timeout: float) -> list[sender.Delivery]:
        self._thread.join(timeout)
        return self.results


def worker_kills(count: int = 300, kills: int = 3, workers: int = 2, timeout: float = 120.0) -> Outcome:
    """SIGKILL workers that hold a job (the whole process group) while a burst is under way.

    Each kill lands once another share of the burst has been acknowledged; the
    supervisor starts a new worker, and the sweep queues again what the dead one held.
    """
    secret = secrets.token_hex(16)
    with Stack(workers, secret=secret) as stack:
        messages = _signed_batch(count, secret)
        burst = Burst(stack.url, messages)
        last_kill, mid_job = None, 0
        for n in range(kills):
            burst.wait_for(count * (n + 1) // (kills + 2))
            job_id = stack.kill_busy_worker()
            if job_id is not None:
                last_kill = time.time()
                mid_job += _still_started(stack, job_id)
        results = burst.join(timeout)
        settled = time.time() if stack.wait_settled(timeout) else None
        outcome = _outcome(f"{kills} worker kill{'s' if kills > 1 else ''}", stack, messages, results,
                           last_kill, settled)
        outcome.killed_mid_job = mid_job
        return outcome


def _still_started(stack: Stack, job_id: str) -> bool:
    """True if the killed worker died in the middle of its job, before settling it: the sweep must recover it."""
    try:
        job = Job.fetch(job_id, connection=stack.redis)
    except NoSuchJobError:
        return False
    did = job.args[0]["deliveryId"]
    return job.get_status() == JobStatus.STARTED and stack.redis.zscore(intake.PENDING, did) is not None


def redis_kill(count: int = 200, down_for: float = 2.0, timeout: float = 120.0) -> Outcome:
    """SIGKILL Redis once a quarter of a burst is acknowledged, and start it again: 503s while down, nothing lost."""
    secret = secrets.token_hex(16)
    with Stack(2, secret=secret) as stack:
        messages = _signed_batch(count, secret)
        burst = Burst(stack.url, messages, max_attempts=12, backoff=0.3)
        burst.wait_for(count // 4)
        assert stack.redis_server is not None
        stack.redis_server.kill()
        time.sleep(down_for)
        stack.redis_server.start()
        restarted = time.time()
        results = burst.join(timeout)
        settled = time.time() if stack.wait_settled(timeout) else None
        return _outcome("Redis killed, restarted", stack, messages, results, restarted, settled)


def duplicates(count: int = 100, copies: int = 3, timeout: float = 60.0) -> Outcome:
    """Every message delivered several times, concurrently and out of order."""
    secret = secrets.token_hex(16)
    with Stack(2, secret=secret) as stack:
        messages = _signed_batch(count, secret)
        traffic = messages * copies
        random.shuffle(traffic)
        results = sender.send_many(stack.url, traffic, concurrency=16, style="mixed", progress=False)
        stack.wait_settled(timeout)
        return _outcome(f"each sent {copies} times", stack, messages, results)


def hostile_requests(count: int, rng: random.Random) -> Iterator[tuple[str, str, dict, bytes]]:
    """(method, path+query, headers, body) for malformed requests of many kinds."""
    path = "/webhooks/inbound-sms"
    for n in range(count):
        kind = n % 10
        if kind == 0:
            yield rng.choice(["PUT", "DELETE", "PATCH"]), path, {}, b"messageId=1&text=x"
        elif kind == 1:
            yield "POST", path, {"Content-Type": rng.choice(["text/xml", "image/png", "multipart/mixed"])}, b"<x/>"
        elif kind == 2:
            yield "POST", path, {"Content-Type": "application/x-www-form-urlencoded"}, b"messageId=1&text=%ff%fe"
        elif kind == 3:
            depth = rng.randint(1000, 20000)
            yield "POST", path, {"Content-Type": "application/json"}, b"[" * depth + b"]" * depth
        elif kind == 4:
            yield "POST", path, {"Content-Type": "application/json"}, rng.choice([b"42", b'"text"', b"null", b"[1]"])
        elif kind == 5:
            yield "POST", path, {"Content-Type": "application/json"}, b'{"messageId": "1", "messageId": "2", "text": ""}'
        elif kind == 6:
            yield "GET", path + "?messageId=1&text=" + "a" * rng.randint(20000, 60000), {}, b""
        elif kind == 7:
            yield "POST", path, {"Content-Type": "application/x-www-form-urlencoded"}, b"x=" + b"a" * 70000
        elif kind == 8:
            yield "POST", path, {"Content-Type": "application/json"}, bytes(rng.getrandbits(8) for _ in range(64))
        else:
            yield "POST", path, {"Content-Type": "application/json"}, json.dumps({"text": "no id"}).encode()


def send_raw(base_url: str, method: str, path: str, headers: dict, body: bytes, content_length: int | None = None,
             timeout: float = 3.0) -> int | None:
    """Send one request exactly as given (even a lying Content-Length); the status, or None if no answer."""
    parts = urlsplit(base_url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        conn.putrequest(method, path, skip_accept_encoding=True)
        for key, value in headers.items():
            conn.putheader(key, value)
        conn.putheader("Content-Length", str(len(body) if content_length is None else content_length))
        conn.endheaders(body)
        return conn.getresponse().status
    except (OSError, http.client.HTTPException):
        return None
    finally:
        conn.close()


def hostile(count: int = 300) -> Outcome:
    """Malformed requests of every kind, and Content-Lengths that lie; then a good message.

    Every malformed request must get a 4xx. The two that lie about their length are
    apart: one promising more than it sends is cut off by the server's time-out (no
    answer), one sending more than it promises is read as the shorter body it claims.
    """
    secret = secrets.token_hex(16)
    rng = random.Random(1)
    with Stack(1, secret=secret) as stack:
        statuses = [send_raw(stack.base_url, *request) for request in hostile_requests(count, rng)]
        not_4xx = sum(status is None or not 400 <= status < 500 for status in statuses)
        statuses.append(send_raw(stack.base_url, "POST", "/webhooks/inbound-sms",
                                 {"Content-Type": "application/x-www-form-urlencoded"}, b"messageId=1&text=x", 500, 2))
        statuses.append(send_raw(stack.base_url, "POST", "/webhooks/inbound-sms",
                                 {"Content-Type": "application/x-www-form-urlencoded"}, b"messageId=1&text=xyz", 5))
        good = sender.signed(sender.make_sms("still works"), secret, METHOD)
        deliveries = [sender.Delivery(f"hostile-{i}", s, 1, history=[s]) for i, s in enumerate(statuses)]
        deliveries.append(sender.deliver(stack.url, good))
        stack.wait_settled(30)
        outcome = _outcome(f"{len(statuses)} hostile requests", stack, [good], deliveries)
        outcome.sent = len(statuses) + 1
        outcome.not_4xx = not_4xx
        return outcome


SCENARIOS = {"kills": worker_kills, "redis": redis_kill, "duplicates": duplicates, "hostile": hostile}


def run_chaos(names: list[str] | None = None) -> int:
    """Run the scenarios and print the table; return 1 if anything acknowledged was lost."""
    outcomes = []
    print("Fault scenarios on 127.0.0.1 (each with its own Redis, receiver and workers)...\n")
    print(Outcome.header())
    for name in names or list(SCENARIOS):
        outcome = SCENARIOS[name]()
        outcomes.append(outcome)
        print(outcome.row(), flush=True)
    bad = [o for o in outcomes if o.lost or o.written_twice or o.server_errors]
    print("\n" + ("Nothing acknowledged was lost, nothing was written twice, no 5xx but 503."
                  if not bad else f"PROBLEM in: {', '.join(o.scenario for o in bad)}"))
    return 1 if bad else 0
