"""`python -m workshop demo`: the whole pipeline, live, on this machine, offline.

Starts Redis, the receiver and workers; sends a burst of signed test SMS plus a
forged, a stale and some duplicate ones, in both of Vonage's formats (the SMS
API's and the Messages API's); shows what was acknowledged, queued, processed
and rejected while it happens; then stops everything it started.

    python -m workshop demo --slow       # paced, so a room can watch the counters climb
    python -m workshop demo --forever    # keeps running: send more, or go live with a tunnel
"""
from __future__ import annotations

import secrets
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from urllib.parse import urlsplit

from redis import Redis

from solutions import intake
from solutions.intake import STATS
from solutions.jobs import REJECTED
from solutions.receiver import MESSAGES_PATH
from solutions.settings import load_settings
from solutions.store import read_messages
from solutions.worker import WORKER_CLASSES, choose_worker_class
from workshop import sender
from workshop.services import RUN_DIR
from workshop.stack import Stack
from workshop.tunnel import close_tunnels, open_tunnel


@dataclass
class Snapshot:
    """The pipeline's counters at one moment."""

    sent: int
    acknowledged: int
    queued: int
    pending: int
    written: int
    duplicates: int
    rejected: int

    def line(self) -> str:
        return (f"sent {self.sent:>4} | acknowledged {self.acknowledged:>4} | queued {self.queued:>4} | "
                f"processed {self.written:>4} | duplicates suppressed {self.duplicates:>3} | "
                f"rejected {self.rejected:>2}")


def build_messages(count: int, secret: str, method: str) -> tuple[list[dict], dict[str, int]]:
    """The demo's traffic: signed messages (one in three parts), a forged, a stale, duplicates."""
    good = [sender.signed(m, secret, method) for m in sender.make_concat("Long message! " * 30)]
    good += [sender.signed(sender.make_sms(), secret, method) for _ in range(max(0, count - len(good)))]
    bad = [sender.forged(sender.signed(sender.make_sms("forged"), secret, method)),
           sender.stale(sender.make_sms("stale"), secret, method)]
    repeats = good[: max(1, count // 10)]
    return good + bad + repeats, {"good": len(good), "bad": len(bad), "repeats": len(repeats)}


def build_inbound_messages(count: int, secret: str) -> tuple[list[dict], dict[str, int]]:
    """Messages API traffic: JWT-signed inbound SMS, a forged and a stale one, and a re-delivery."""
    good = [sender.messages_api_request(sender.make_inbound_message(), secret) for _ in range(count)]
    bad = [sender.messages_api_request(sender.make_inbound_message("forged"), secret, forged=True),
           sender.messages_api_request(sender.make_inbound_message("stale"), secret, stale=True)]
    return good + bad + good[:1], {"good": len(good), "bad": len(bad), "repeats": 1}


SLOW_RATE = 10.0  # messages per second with --slow: about eight seconds for the default burst


def send_paced(deliveries: list[tuple[str, dict, str]], rate: float, results: list[sender.Delivery],
               concurrency: int = 8) -> None:
    """Start one delivery (url, fields, style) every 1/`rate` seconds, on `concurrency` senders; append each result.

    A slow answer does not hold up the next start, so the pace holds while the receiver keeps up.
    """
    def deliver(url: str, fields: dict, style: str) -> None:
        results.append(sender.deliver(url, fields, style))

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        for n, (url, fields, style) in enumerate(deliveries):
            time.sleep(max(0.0, started + n / rate - time.monotonic()))
            pool.submit(deliver, url, fields, style)


def _counter(connection: Redis, name: str) -> int:
    return int(connection.hget(STATS, name) or 0)


def run_demo(count: int = 60, workers: int = 2, forever: bool = False, timeout: float = 90.0,
             rate: float | None = None) -> int:
    """Run the demo; return 0 when every good message was processed exactly once.

    `rate`: messages per second (default: as fast as eight senders go). `forever`: keep
    running after the burst, until Ctrl+C, saying how to send more.
    """
    settings = load_settings()
    secret = settings.signature_secret or secrets.token_hex(16)
    method = settings.signature_method
    print("Webhooks workshop demo: accept, store, acknowledge quickly; process later, at least once.\n")
    stack = None
    try:
        stack = Stack(workers, secret=secret, method=method, private_redis=False)
        private = stack.redis_server is not None
        print(f"  redis     {stack.redis_url}" + ("  (private, started for this demo)" if private else ""))
        print(f"  receiver  {stack.url}")
        endpoint = open_tunnel(int(urlsplit(stack.base_url).port or 0))
        public = (f"{endpoint.webhook_url}  (paste it into the Vonage dashboard)" if endpoint.public_url
                  else f"none ({endpoint.reason}); sending to the local URL")
        print(f"  public    {public}")
        kind, why = choose_worker_class()
        print(f"  workers   {workers} x {WORKER_CLASSES[kind].__name__} ({why})")
        print(f"  signing   {method}, with a {'configured' if settings.signature_secret else 'random'} secret")
        print(f"  output    {stack.messages_file}\n")

        connection = stack.redis
        base_counts = {k: _counter(connection, k) for k in ("written", "duplicate", "rejected")}
        traffic, plan = build_messages(count, secret, method)
        inbound, inbound_plan = build_inbound_messages(max(2, count // 6), secret)
        pace = f", {rate:g} a second" if rate else ""
        print(f"Sending {plan['good']} signed SMS (one of them in 3 parts), 1 forged, 1 stale, "
              f"and {plan['repeats']} re-deliveries, by GET, POST form and POST JSON;\n"
              f"and through the Messages API, {inbound_plan['good']} JWT-signed inbound SMS, 1 forged, 1 stale, "
              f"and 1 re-delivery{pace}...\n")
        plan = {key: plan[key] + inbound_plan[key] for key in plan}
        messages_url = (endpoint.public_url or endpoint.local_url) + MESSAGES_PATH

        results: list[sender.Delivery] = []
        done = threading.Event()

        def send() -> None:
            if rate:
                send_paced([(endpoint.webhook_url, fields, sender.STYLES[n % 3]) for n, fields in enumerate(traffic)]
                           + [(messages_url, request, "messages") for request in inbound], rate, results)
            else:
                results.extend(sender.send_many(endpoint.webhook_url, traffic, concurrency=8, progress=False))
                results.extend(sender.send_many(messages_url, inbound, concurrency=8, style="messages",
                                                progress=False))
            done.set()

        threading.Thread(target=send, daemon=True).start()
        queue = intake.get_queue(connection)
        deadline = time.monotonic() + timeout + (len(traffic) + len(inbound)) / (rate or float("inf"))
        told = False
        while True:
            snap = _snapshot(connection, queue, base_counts, results, len(traffic) + len(inbound))
            _show(snap)
            finished = done.is_set() and snap.queued == 0 and snap.pending == 0
            if not forever and (finished or time.monotonic() > deadline):
                break
            if forever and finished and not told:
                _how_to_send_more(endpoint.webhook_url, messages_url, stack.base_url, bool(settings.signature_secret))
                told = True
            time.sleep(0.4)
        print()
        return _summary(snap, plan, results, stack.messages_file, connection)
    except KeyboardInterrupt:
        print("\nStopped by Ctrl+C.")
        return 130
    finally:
        print("Stopping what the demo started...", end=" ", flush=True)
        close_tunnels()
        if stack is not None:
            stack.stop()
        print("done.")


def _how_to_send_more(sms_url: str, messages_url: str, base_url: str, configured: bool) -> None:
    """Say, once the burst is over, how to send more from another terminal, and where the inspector is."""
    print("\n\nStill running; Ctrl+C stops everything. From another terminal:")
    print(f"  python -m workshop send --url {sms_url} --count 50 --duplicate 3")
    print(f"  Messages API webhook URL: {messages_url}")
    print(f"  inspector: {base_url}/inspect (on this machine only)")
    if not configured:
        print("  (This demo signs with a random secret, and `send` with SIGNATURE_SECRET from .env: set it there, "
              "then start the demo again, or what `send` sends is rejected.)")
    print(flush=True)


def _snapshot(connection: Redis, queue, base: dict[str, int], results: list, total: int) -> Snapshot:
    acknowledged = sum(r.ok for r in results)
    return Snapshot(
        sent=len(results) if len(results) < total else total,
        acknowledged=acknowledged,
        queued=queue.count,
        pending=connection.zcard(intake.PENDING),
        written=_counter(connection, "written") - base["written"],
        duplicates=_counter(connection, "duplicate") - base["duplicate"] + sum(r.duplicate for r in results),
        rejected=_counter(connection, "rejected") - base["rejected"],
    )


def _show(snap: Snapshot) -> None:
    if sys.stdout.isatty():
        print("\r  " + snap.line(), end="", flush=True)
    else:
        print("  " + snap.line(), flush=True)


def _summary(snap: Snapshot, plan: dict[str, int], results: list, messages_file, connection: Redis) -> int:
    messages = read_messages(messages_file)
    ids = [m["messageId"] for m in messages]
    rejected = [r.decode() if isinstance(r, bytes) else r for r in connection.lrange(REJECTED, 0, snap.rejected - 1)]
    fastest = sorted(r.seconds for r in results)
    p50 = fastest[len(fastest) // 2] * 1000 if fastest else 0
    print("\nSummary")
    print(f"  acknowledged         {snap.acknowledged} of {len(results)} deliveries (median {p50:.0f} ms)")
    through_messages_api = sum(m.get("api") == "messages" for m in messages)
    print(f"  written to the file  {len(messages)} messages ({len(messages) - through_messages_api} SMS API, "
          f"{through_messages_api} Messages API), {len(ids) - len(set(ids))} written twice")
    print(f"  duplicates           {snap.duplicates} suppressed (re-deliveries answered 204, stored once)")
    print(f"  rejected             {snap.rejected}:")
    for reason in rejected:
        print(f"    - {reason}")
    if messages:
        print("  last message        ", {k: messages[-1][k] for k in ("messageId", "msisdn", "text")})
    ok = len(set(ids)) == plan["good"] == len(ids) and snap.rejected == plan["bad"]
    print("\n" + ("All good: every signed message processed exactly once; forged and stale ones rejected."
                  if ok else "Something is missing: see the counts above and the logs in " + str(RUN_DIR)))
    return 0 if ok else 1
