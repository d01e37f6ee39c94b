"""`python -m workshop chaos`: the talk's promises under load and faults, at demo scale.

Each scenario runs on its own private Redis, receiver and workers (127.0.0.1 only,
bounded in count and time) and ends with one row: what was sent, acknowledged,
answered 503, processed, written twice, suppressed as a duplicate, recovered by
the sweep, and lost (acknowledged, yet not in the messages file when it ended).

`--protections off` runs each fault with the one protection it tests turned off
(`workshop/unprotected.py`): duplicates without de-duplication (a receiver that
does not check what it saw, a job that appends without checking), a worker kill
without the sweep, a Redis kill with a receiver that answers 204 before it
stores. Then messages are lost and written twice. Every fault lands by progress
(once so many messages are acknowledged; on a worker caught in the middle of a
job), never after a fixed sleep.
"""
from __future__ import annotations

import http.client
import json
import random
import secrets
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from redis import RedisError
from rq import Worker
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus

from solutions import intake
from solutions.intake import STATS
from solutions.store import read_messages
from solutions.sweeper import HEARTBEAT_GRACE, SWEEP_AFTER, SWEEP_EVERY
from workshop import sender
from workshop.services import Service
from workshop.stack import Stack
from workshop.unprotected import APPEND_JOB

if TYPE_CHECKING:
    from matplotlib.figure import Figure

METHOD = "sha256"
SECURE_JOB = "solutions.jobs.process_signed_message"
ON = "the receiver stores, then answers; it and the job de-duplicate; workers sweep"
OFF = {  # the protection each scenario turns off, and how
    "duplicates": "no de-duplication (a receiver that does not check what it saw, a job that appends)",
    "kills": "no sweep (workers without the Sweeper)",
    "redis": "acknowledge before storing (a receiver that answers 204, then stores)",
}
# How long a sweep may take to queue again a message whose worker was killed: the dead worker's
# heartbeat must be HEARTBEAT_GRACE old, the message SWEEP_AFTER old, and a sweep comes every SWEEP_EVERY.
SWEEP_HORIZON = max(HEARTBEAT_GRACE, SWEEP_AFTER) + 2 * SWEEP_EVERY
Say = Callable[[str], None]


def _quiet(text: str) -> None:
    pass


@dataclass
class Outcome:
    """One scenario's result. `lost` must be 0: acknowledged but never processed."""

    scenario: str
    sent: int
    acknowledged: int  # messages acknowledged (each counted once, however often it was delivered)
    answered_503: int
    processed: int  # messages in the file (each counted once)
    written_twice: int  # lines in the file beyond the first for their messageId
    duplicates: int
    recovered: int
    lost: int
    server_errors: int = 0
    recovery_seconds: float | None = None  # from the last fault until every acknowledged message was processed
    killed_mid_job: int = 0  # workers killed in the middle of a job whose message was not yet written
    not_4xx: int = 0  # malformed requests that got anything but a 4xx (or no answer at all)
    answered_2xx: int = 0  # deliveries answered 2xx, every copy counted
    protections: bool = True

    ROW = "{:<24} {:>5} {:>6} {:>5} {:>9} {:>6} {:>10} {:>9} {:>5} {:>12}"

    @property
    def lines(self) -> int:
        """Lines in the messages file."""
        return self.processed + self.written_twice

    @classmethod
    def header(cls) -> str:
        return cls.ROW.format("scenario", "sent", "acked", "503s", "processed", "twice", "duplicates", "recovered",
                              "lost", "recovery (s)")

    def row(self) -> str:
        recovery = "-" if self.recovery_seconds is None else f"{self.recovery_seconds:.1f}"
        return self.ROW.format(self.scenario, self.sent, self.acknowledged, self.answered_503, self.processed,
                               self.written_twice, self.duplicates, self.recovered, self.lost, recovery)


def _outcome(name: str, stack: Stack, messages: list[dict], deliveries: list[sender.Delivery],
             fault_at: float | None = None, settled_at: float | None = None, protections: bool = True) -> Outcome:
    written = [r["messageId"] for r in read_messages(stack.messages_file)]
    acked = {d.message_id for d in deliveries if d.ok}
    stats = {k.decode() if isinstance(k, bytes) else k: int(v) for k, v in stack.redis.hgetall(STATS).items()}
    lost = len(acked - set(written))
    recovery = settled_at - fault_at if fault_at is not None and settled_at is not None and not lost else None
    return Outcome(
        scenario=name, sent=len({m["messageId"] for m in messages}), acknowledged=len(acked),
        answered_503=sum(h == 503 for d in deliveries for h in d.history),
        processed=len(set(written)), written_twice=len(written) - len(set(written)),
        duplicates=stats.get("duplicate", 0) + sum(d.duplicate for d in deliveries),
        recovered=stats.get("requeued", 0), lost=lost,
        server_errors=sum(h is not None and h >= 500 and h != 503 for d in deliveries for h in d.history),
        recovery_seconds=recovery, answered_2xx=sum(d.ok for d in deliveries), protections=protections,
    )


def _signed_batch(count: int, secret: str) -> list[dict]:
    return [sender.signed(sender.make_sms(), secret, METHOD) for _ in range(count)]


def _stack(workers: int, secret: str, *, app: str = "kit", job: str = SECURE_JOB, sweep: bool = True,
           say: Say = _quiet) -> Stack:
    """A private pipeline: the kit's, or with one protection off (`app="ack-first"`, `job=APPEND_JOB`, no sweep)."""
    started = time.monotonic()
    stack = Stack(workers, secret=secret, app=app, sweep=sweep, env={"SMS_JOB": job})
    plural = "s" if workers > 1 else ""
    say(f"started Redis, the {app} receiver and {workers} worker{plural} ({'' if sweep else 'no '}sweep; job "
        f"{job.rsplit('.', 1)[1]}) in {time.monotonic() - started:.1f} s")
    return stack


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

    def wait_ended(self, timeout: float) -> None:
        """Wait until every message has had its last answer, or `timeout` seconds."""
        self._thread.join(timeout)

    def join(self, timeout: float) -> list[sender.Delivery]:
        self._thread.join(timeout)
        return self.results


def _processes(service: Service) -> list[int]:
    """The pids of a service's process group that /proc can list (Linux); [] elsewhere."""
    pids, todo = [], [service.proc.pid]
    while todo:
        pid = todo.pop()
        pids.append(pid)
        try:
            todo += [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
        except OSError:
            return []
    return pids


def _freeze(service: Service) -> None:
    """SIGSTOP a service's process group and wait until it has stopped (state T in /proc, where there is one)."""
    service.kill(signal.SIGSTOP)
    pids = _processes(service)
    deadline = time.monotonic() + 2.0
    while pids and time.monotonic() < deadline:
        try:
            if all(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] in "tT" for pid in pids):
                return
        except OSError:
            return
        time.sleep(0.001)
    if not pids:
        time.sleep(0.05)  # no /proc (macOS): give the signal a moment to land


def _in_the_middle(stack: Stack, job_id: str) -> str | None:
    """The messageId of a job taken or started whose message is not in the file yet; None otherwise."""
    try:
        job = Job.fetch(job_id, connection=stack.redis)
    except NoSuchJobError:
        return None
    if job.get_status() not in (JobStatus.QUEUED, JobStatus.STARTED):
        return None
    message_id = job.args[0]["payload"].get("messageId")
    written = {r["messageId"] for r in read_messages(stack.messages_file)}
    return None if message_id in written else message_id


def kill_mid_job(stack: Stack, timeout: float = 20.0) -> str | None:
    """SIGKILL a worker (its whole process group) caught in the middle of a job; the job's messageId, or None.

    A busy worker is frozen (SIGSTOP) and its job looked at: taken or started, and
    its message not yet written, it is killed; otherwise it is let go (SIGCONT) and
    the next moment tried. So every kill lands mid-job, on a machine of any speed.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = stack.busy_worker(timeout=max(0.0, deadline - time.monotonic()))
        if found is None:
            return None
        service, job_id = found
        _freeze(service)
        message_id = _in_the_middle(stack, job_id)
        if message_id is not None:
            service.kill(signal.SIGKILL)
            service.proc.wait()
            return message_id
        service.kill(signal.SIGCONT)
    return None


def _remaining(stack: Stack, record: bool) -> tuple[int, ...]:
    """What is left to do: messages the receiver recorded not yet processed, or (no record) jobs and busy workers."""
    queue = intake.get_queue(stack.redis)
    if record:
        return (stack.pending() + queue.count,)
    busy = 0
    for service in stack.workers:
        name = getattr(service, "worker_name", "")
        worker = Worker.find_by_key(Worker.redis_worker_namespace_prefix + name, connection=stack.redis)
        busy += bool(service.running and worker is not None and worker.get_current_job_id())
    return queue.count, busy, len(read_messages(stack.messages_file))


def settle(stack: Stack, timeout: float, say: Say = _quiet, record: bool = True) -> float | None:
    """Wait until every message the receiver recorded is processed, or (`record=False`, a receiver that keeps
    no record) until no job is queued and no worker busy.

    Returns the time it happened, or None on time-out. Says what it waits for every 3 s.
    """
    deadline = time.monotonic() + timeout
    said = time.monotonic()
    previous: tuple[int, ...] | None = None
    while time.monotonic() < deadline:
        try:
            left = _remaining(stack, record)
        except RedisError:  # Redis restarting
            left = None
        if left is not None and left[0] == 0 and (record or (left[1] == 0 and left == previous)):
            return time.time()
        previous = left
        if time.monotonic() - said >= 3:
            said = time.monotonic()
            if left is None:
                say("waiting for Redis to answer...")
            elif record:
                say(f"waiting: {left[0]} acknowledged message(s) not processed yet, "
                    f"{time.monotonic() + timeout - deadline:.0f} s")
            else:
                say(f"waiting: {left[0]} job(s) queued, {left[1]} worker(s) busy")
        time.sleep(0.3)
    return None


def worker_kills(count: int = 300, kills: int = 3, workers: int = 2, timeout: float = 120.0, *,
                 protections: bool = True, say: Say = _quiet) -> Outcome:
    """SIGKILL workers in the middle of a job (the whole process group) while a burst is under way.

    Each kill lands once another share of the burst has been acknowledged; the
    supervisor starts a new worker. The sweep queues again what the dead one held.
    Without the sweep (`protections=False`) that message stays lost: the scenario
    waits SWEEP_HORIZON after the last kill, as long as a sweep could take, to show it.
    """
    secret = secrets.token_hex(16)
    with _stack(workers, secret, sweep=protections, say=say) as stack:
        messages = _signed_batch(count, secret)
        say(f"sending {count} messages...")
        burst = Burst(stack.url, messages)
        last_kill, mid_job = None, 0
        for n in range(kills):
            burst.wait_for(count * (n + 1) // (kills + 2))
            message_id = kill_mid_job(stack)
            if message_id is not None:
                last_kill = time.time()
                mid_job += 1
                say(f"killed a worker in the middle of message {message_id} "
                    f"({burst.acknowledged} of {count} acknowledged so far)")
        results = burst.join(timeout)
        if not protections and last_kill is not None:
            say(f"waiting {SWEEP_HORIZON:.0f} s, as long as a sweep could take to queue the message again...")
        settled = settle(stack, timeout if protections else SWEEP_HORIZON, say)
        outcome = _outcome(f"{kills} worker kill{'s' if kills > 1 else ''}", stack, messages, results,
                           last_kill, settled, protections)
        outcome.killed_mid_job = mid_job
        return outcome


def redis_kill(count: int = 200, down_for: float = 2.0, timeout: float = 120.0, *,
               protections: bool = True, say: Say = _quiet) -> Outcome:
    """SIGKILL Redis once the first half of a burst is acknowledged; the second half comes while it is down.

    Redis is started again after `down_for` seconds (sooner if every message of the
    second half has had its last answer). The second half gets 503s and is sent
    again; with a receiver that answers before it stores (`protections=False`), it
    gets 204s and is lost.
    """
    secret = secrets.token_hex(16)
    with _stack(2, secret, app="kit" if protections else "ack-first", say=say) as stack:
        assert stack.redis_server is not None
        messages = _signed_batch(count, secret)
        first, second = messages[: count // 2], messages[count // 2:]
        say(f"sending {len(first)} messages...")
        results = Burst(stack.url, first, max_attempts=12, backoff=0.3).join(timeout)
        stack.redis_server.kill()
        say(f"Redis killed with {sum(d.ok for d in results)} acknowledged; sending {len(second)} more while it is down")
        during = Burst(stack.url, second, max_attempts=12, backoff=0.3)
        during.wait_ended(down_for)
        stack.redis_server.start()
        restarted = time.time()
        say(f"Redis started again; {during.acknowledged} of those {len(second)} acknowledged while it was down")
        results += during.join(timeout)
        settled = settle(stack, timeout, say, record=protections)
        return _outcome("Redis killed, restarted", stack, messages, results, restarted, settled, protections)


def duplicates(count: int = 100, copies: int = 3, timeout: float = 60.0, *,
               protections: bool = True, say: Say = _quiet) -> Outcome:
    """Every message delivered several times, concurrently and out of order.

    Without de-duplication (`protections=False`): a receiver that does not check
    what it saw, and a job that appends without checking.
    """
    secret = secrets.token_hex(16)
    app, job = ("kit", SECURE_JOB) if protections else ("ack-first", APPEND_JOB)
    with _stack(2, secret, app=app, job=job, say=say) as stack:
        messages = _signed_batch(count, secret)
        traffic = messages * copies
        random.shuffle(traffic)
        say(f"sending {count} messages {copies} times each, shuffled...")
        results = sender.send_many(stack.url, traffic, concurrency=16, style="mixed", progress=False)
        settle(stack, timeout, say, record=protections)
        return _outcome(f"each sent {copies} times", stack, messages, results, protections=protections)


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
            body = b'{"messageId": "1", "messageId": "2", "text": ""}'
            yield "POST", path, {"Content-Type": "application/json"}, body
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
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=timeout)
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


def hostile(count: int = 300, *, protections: bool = True, say: Say = _quiet) -> Outcome:
    """Malformed requests of every kind, and Content-Lengths that lie; then a good message.

    Every malformed request must get a 4xx. The two that lie about their length are
    apart: one promising more than it sends is cut off by the server's time-out (no
    answer), one sending more than it promises is read as the shorter body it claims.
    There is no protection to turn off here: `protections` is accepted and ignored.
    """
    secret = secrets.token_hex(16)
    rng = random.Random(1)
    with _stack(1, secret, say=say) as stack:
        say(f"sending {count} malformed requests, then a good message...")
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


SCENARIOS: dict[str, Callable[..., Outcome]] = {"kills": worker_kills, "redis": redis_kill,
                                                 "duplicates": duplicates, "hostile": hostile}


def compare(off: list[Outcome], on: list[Outcome]) -> str:
    """The two tables side by side: for each scenario, acknowledged, lost and written twice, off and on."""
    row = "{:<24} | {:>6} {:>5} {:>6} | {:>6} {:>5} {:>6}"
    lines = ["{:<24} | {:^19} | {:^19}".format("", "protections off", "protections on"),
             row.format("scenario", "acked", "lost", "twice", "acked", "lost", "twice")]
    by_name = {o.scenario: o for o in on}
    for o in off:
        p = by_name.get(o.scenario)
        lines.append(row.format(o.scenario, o.acknowledged, o.lost, o.written_twice,
                                *(("-",) * 3 if p is None else (p.acknowledged, p.lost, p.written_twice))))
    return "\n".join(lines)


def figure(off: list[Outcome], on: list[Outcome]) -> Figure:
    """Bars of messages lost and written twice per scenario, protections off beside protections on."""
    import matplotlib.pyplot as plt

    names = [o.scenario for o in off]
    by_name = {o.scenario: o for o in on}
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
    for ax, what, value in ((axes[0], "lost (acknowledged, never written)", lambda o: o.lost),
                            (axes[1], "written twice", lambda o: o.written_twice)):
        xs = range(len(names))
        for shift, label, color, outcomes in ((-0.2, "protections off", "#d62728", off),
                                              (0.2, "protections on", "#2ca02c",
                                               [by_name.get(n) for n in names])):
            heights = [value(o) if o is not None else 0 for o in outcomes]
            bars = ax.bar([x + shift for x in xs], heights, width=0.4, label=label, color=color)
            ax.bar_label(bars, padding=2)
        ax.set_xticks(list(xs), names, rotation=12)
        ax.margins(y=0.15)  # room for the numbers above the bars
        ax.set_title(what)
        ax.grid(True, axis="y", alpha=0.3)
    axes[0].set_ylabel("messages")
    axes[0].legend()
    fig.tight_layout()
    return fig


def _status(text: str) -> None:
    """One line of progress on a terminal, written over the last one ("" clears it)."""
    if sys.stderr.isatty():
        print(f"\r\033[K{'  ' + text if text else ''}"[:150], end="", file=sys.stderr, flush=True)


def run_chaos(names: list[str] | None = None, protections: str = "on") -> int:
    """Run the scenarios with the protections on, off or both, and print the tables.

    Returns 1 if, with the protections on, anything acknowledged was lost or written
    twice, or if, with them off, a scenario showed no loss at all; else 0.
    """
    modes = {"on": [True], "off": [False], "both": [False, True]}[protections]
    chosen = names or list(SCENARIOS)
    print("Fault scenarios on 127.0.0.1 (each with its own Redis, receiver and workers)...")
    results: dict[bool, list[Outcome]] = {}
    for mode in modes:
        if mode:
            print(f"\nProtections on: {ON}.")
        else:
            print("\nProtections off, in each scenario the one it tests:")
            print("\n".join(f"  {name}: {OFF[name]}" for name in chosen if name in OFF))
        print(Outcome.header(), flush=True)
        results[mode] = []
        for name in chosen:
            if not mode and name not in OFF:
                print(f"{name}: no protection to turn off here, skipped", flush=True)
                continue
            outcome = SCENARIOS[name](protections=mode, say=_status)
            _status("")
            print(outcome.row(), flush=True)
            results[mode].append(outcome)
    failed = []
    if False in results:
        off = results[False]
        print(f"\nWith the protections off: {sum(o.lost for o in off)} acknowledged message(s) lost, "
              f"{sum(o.written_twice for o in off)} written twice.")
        failed += [o.scenario + " (off: no loss shown)" for o in off if not (o.lost or o.written_twice)]
    if True in results:
        on = results[True]
        bad = [o for o in on if o.lost or o.written_twice or o.server_errors]
        print("\nWith the protections on: " + ("nothing acknowledged was lost, nothing was written twice, "
                                                "no 5xx but 503." if not bad else "PROBLEM."))
        failed += [o.scenario for o in bad]
    if False in results and True in results:
        print("\n" + compare(results[False], results[True]))
    if failed:
        print(f"\nPROBLEM in: {', '.join(failed)}")
    return 1 if failed else 0
