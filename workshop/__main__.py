"""The kit's command line: `python -m workshop COMMAND --help`."""
from __future__ import annotations

import argparse
import os
import signal
import sys

from workshop.server import PROCESSES, SERVERS, THREADS

PORT = 5050  # the receiver's default port: macOS's AirPlay Receiver takes 5000
SCENARIOS = ("kills", "redis", "duplicates", "hostile")  # workshop.chaos.SCENARIOS, named here to keep --help light


def cmd_redis(args: argparse.Namespace) -> int:
    from workshop.redis_server import serve_forever

    return serve_forever(args.port, _wait_for_ctrl_c)


def cmd_receiver(args: argparse.Namespace) -> int:
    from solutions.receiver import INBOUND_PATH
    from solutions.settings import load_settings
    from workshop.apps import APPS
    from workshop.redis_server import answers, unreachable
    from workshop.server import default_server, serve

    redis_url = load_settings().redis_url
    if not answers(redis_url):
        print(f"{unreachable(redis_url)} Until then every message is answered 503.", file=sys.stderr, flush=True)
    server = args.server or default_server()
    print(f"receiver: http://{args.host}:{args.port}{INBOUND_PATH} on {server} (Ctrl+C stops it)",
          file=sys.stderr, flush=True)
    serve(APPS[args.app], args.host, args.port, server=server, processes=args.processes, threads=args.threads)
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    from redis import RedisError

    from solutions.settings import load_settings
    from solutions.worker import run_worker
    from workshop.redis_server import unreachable

    redis_url = load_settings().redis_url
    try:
        run_worker(redis_url, args.worker_class, name=args.name, burst=args.burst, sweep=not args.no_sweep)
    except RedisError:
        print(unreachable(redis_url), file=sys.stderr)
        return 1
    return 0


def cmd_send(args: argparse.Namespace) -> int:
    from solutions.settings import load_settings
    from workshop import sender

    settings = load_settings()
    secret = settings.signature_secret
    if args.stale and not secret:
        print("--stale needs SIGNATURE_SECRET (a stale message is a signed one).", file=sys.stderr)
        return 2
    if args.api == "messages":  # JSON with a JWT, to /webhooks/inbound-message
        messages = [sender.messages_api_request(sender.make_inbound_message(args.text), "" if args.unsigned else secret,
                                                forged=args.forged, stale=args.stale) for _ in range(args.count)]
    else:
        messages = [sender.make_sms(args.text) for _ in range(args.count)]
        if secret and not args.unsigned:
            messages = [sender.signed(m, secret, settings.signature_method) for m in messages]
        if args.forged:
            messages = [sender.forged(m) for m in messages]
        if args.stale:
            messages = [sender.stale(m, secret, settings.signature_method) for m in messages]
    messages = [m for m in messages for _ in range(args.duplicate)]
    try:
        results = sender.send_many(args.url, messages, concurrency=args.concurrency,
                                   style="messages" if args.api == "messages" else args.style,
                                   max_attempts=args.max_attempts)
    except KeyboardInterrupt:
        print("\nStopped by Ctrl+C.", file=sys.stderr, flush=True)
        sys.stdout.flush()
        os._exit(130)  # sender threads may be mid-request: nothing to clean up, so do not wait for them
    ok = sum(r.ok for r in results)
    dup = sum(r.duplicate for r in results)
    print(f"sent {len(results)}: {ok} acknowledged ({dup} as duplicates), {len(results) - ok} not acknowledged")
    for r in [r for r in results if not r.ok][:5]:
        print(f"  {r.message_id}: last answer {r.status or 'none'} after {r.attempts} attempt(s)")
    return 0 if ok == len(results) else 1


def cmd_demo(args: argparse.Namespace) -> int:
    from workshop.demo import SLOW_RATE, run_demo

    rate = args.rate or (SLOW_RATE if args.slow else None)
    return run_demo(count=args.count, workers=args.workers, forever=args.forever, rate=rate)


def cmd_doctor(args: argparse.Namespace) -> int:
    from workshop.doctor import run_doctor

    return run_doctor()


def cmd_tunnel(args: argparse.Namespace) -> int:
    from workshop.services import port_is_free
    from workshop.tunnel import close_tunnels, open_tunnel

    if port_is_free(args.port):
        print(f"Nothing listens on port {args.port} yet: start the receiver "
              f"(`python -m workshop receiver --port {args.port}`).", file=sys.stderr)
    endpoint = open_tunnel(args.port)
    print(endpoint.describe(), flush=True)
    if endpoint.public_url:
        print("Ctrl+C closes the tunnel.", file=sys.stderr, flush=True)
        _wait_for_ctrl_c(lambda: True)
        close_tunnels()
    return 0


def _kept_requests():
    """A Redis connection for the inspector's commands, or None after saying why there is none."""
    from redis import Redis

    from solutions.settings import load_settings
    from workshop.redis_server import answers, unreachable

    redis_url = load_settings().redis_url
    if not answers(redis_url):
        print(unreachable(redis_url), file=sys.stderr)
        return None
    return Redis.from_url(redis_url)


def cmd_inspect(args: argparse.Namespace) -> int:
    import json

    from workshop import inspector

    connection = _kept_requests()
    if connection is None:
        return 1
    if args.id:
        entry = inspector.find(connection, args.id)
        if entry is None:
            print(f"No kept request with id {args.id}.", file=sys.stderr)
            return 1
        print(json.dumps(entry, indent=2, ensure_ascii=False))
        return 0
    entries = inspector.recent(connection, args.limit)
    if not entries:
        print("No requests kept yet: send one (`python -m workshop send --url ...`).")
    for r in entries:
        flags = ("duplicate " if r["duplicate"] else "") + ("replay" if r.get("replay_of") else "")
        print(f"{r['id']}  {r['time'][11:23]}  {r['method']:<4} {r['path']}  {r['status']}  {r['ms']:>7.1f} ms"
              f"  {flags}")
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    import requests

    from workshop import inspector

    connection = _kept_requests()
    if connection is None:
        return 1
    entry = inspector.find(connection, args.id)
    if entry is None:
        print(f"No kept request with id {args.id}: list them with `python -m workshop inspect`.", file=sys.stderr)
        return 1
    base = args.url or f"http://{entry['headers'].get('Host', f'127.0.0.1:{PORT}')}"
    try:
        response = requests.request(entry["method"], base + entry["path"], params=entry["query"] or None,
                                    data=entry["body"].encode("utf-8"), headers=inspector.replay_headers(entry),
                                    timeout=10)
    except requests.RequestException as error:
        print(f"Could not reach the receiver at {base}: {error}. Is it running? (--url sets where)", file=sys.stderr)
        return 1
    duplicate = response.headers.get("X-Duplicate") == "yes"
    print(f"Replayed {entry['method']} {entry['path']} ({entry['id']}): the receiver answered "
          f"{response.status_code}" + (", a duplicate: acknowledged, stored once" if duplicate else ""))
    return 0 if response.status_code < 500 else 1


def cmd_chaos(args: argparse.Namespace) -> int:
    from workshop.chaos import run_chaos

    unknown = [name for name in args.scenario if name not in SCENARIOS]
    if unknown:
        print(f"Unknown scenario {', '.join(unknown)}: choose from {', '.join(SCENARIOS)}.", file=sys.stderr)
        return 2
    return run_chaos(args.scenario or None, protections=args.protections)


def cmd_bench(args: argparse.Namespace) -> int:
    from workshop.bench import run_bench

    return run_bench(requests_per_run=args.requests, drain_jobs=args.jobs, plot=args.plot, rounds=args.rounds)


def cmd_screenshots(args: argparse.Namespace) -> int:
    from pathlib import Path

    from workshop.screenshots import OUT, run_screenshots

    return run_screenshots(Path(args.out) if args.out else OUT)


def _wait_for_ctrl_c(alive) -> None:
    import time

    try:
        while alive():
            time.sleep(0.5)
    except KeyboardInterrupt:
        print("\nstopping...", file=sys.stderr)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = argparse.ArgumentParser(prog="python -m workshop", description="The webhooks workshop kit.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("demo", help="start everything, send test SMS, show what happens, stop")
    p.add_argument("--count", type=int, default=60, help="signed messages in the burst (default 60)")
    p.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    p.add_argument("--forever", action="store_true", help="keep running after the burst until Ctrl+C")
    p.add_argument("--rate", type=float, default=None, metavar="N",
                   help="messages per second (default: as fast as the senders go)")
    p.add_argument("--slow", action="store_true", help="10 messages a second, so a room can watch the counters")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("redis", help="start a Redis server whose data a second start keeps; print its REDIS_URL")
    p.add_argument("--port", type=int, default=6379,
                   help="port (default 6379, the default REDIS_URL's); each port keeps its own data")
    p.set_defaults(func=cmd_redis)

    p = sub.add_parser("receiver", help="serve the receiver with a production WSGI server")
    p.add_argument("--port", type=int, default=PORT, help=f"default {PORT}")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--threads", type=int, default=THREADS, help=f"threads per process (default {THREADS})")
    p.add_argument("--processes", type=int, default=PROCESSES, help=f"gunicorn worker processes (default {PROCESSES})")
    p.add_argument("--server", choices=SERVERS, default=None,
                   help="default: gunicorn on Linux and macOS, waitress on Windows")
    p.add_argument("--app", choices=["kit", "naive", "push", "bare", "inline", "ack-first"], default="kit",
                   help="which receiver: the kit's (default), one it is measured against, or ack-first "
                        "(answers 204 before it stores: workshop/unprotected.py)")
    p.set_defaults(func=cmd_receiver)

    p = sub.add_parser("worker", help="run a worker on the 'sms' queue")
    p.add_argument("--class", dest="worker_class", choices=["simple", "fork", "spawn"], default=None,
                   help="RQ worker class (default: simple, which works everywhere)")
    p.add_argument("--burst", action="store_true", help="stop when the queue is empty")
    p.add_argument("--name", default=None, help="the worker's name in RQ (default: a random one)")
    p.add_argument("--no-sweep", action="store_true",
                   help="without the Sweeper, to watch what it saves: a job a killed worker held stays lost")
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser("send", help="send test SMS webhooks, as Vonage would")
    p.add_argument("--url", required=True,
                   help="the receiver's webhook URL: .../webhooks/inbound-sms, or .../webhooks/inbound-message "
                        "with --api messages")
    p.add_argument("--api", choices=["sms", "messages"], default="sms",
                   help="Vonage's SMS API (fields signed with sig; the default) or its Messages API (JSON and a JWT)")
    p.add_argument("--count", type=int, default=1)
    p.add_argument("--concurrency", type=int, default=4)
    p.add_argument("--style", choices=["get", "form", "json", "mixed"], default="form",
                   help="how SMS API messages are sent (the Messages API always posts JSON)")
    p.add_argument("--text", default=None, help="the text (default: random words)")
    p.add_argument("--unsigned", action="store_true", help="do not sign, even if SIGNATURE_SECRET is set")
    p.add_argument("--forged", action="store_true", help="tamper with the text after signing")
    p.add_argument("--stale", action="store_true", help="sign with a timestamp an hour old")
    p.add_argument("--duplicate", type=int, default=1, metavar="N", help="deliver each message N times")
    p.add_argument("--max-attempts", type=int, default=8, help="tries per message before giving up (default 8)")
    p.set_defaults(func=cmd_send)

    p = sub.add_parser("chaos", help="kill workers and Redis, send duplicates and junk: show nothing is lost "
                                     "(with --protections off, what is)")
    p.add_argument("scenario", nargs="*", metavar="SCENARIO",
                   help=f"which scenarios, of {', '.join(SCENARIOS)} (default: all)")
    p.add_argument("--protections", choices=["on", "off", "both"], default="on",
                   help="on (default); off: each scenario with the protection it tests turned off (no "
                        "de-duplication, no sweep, a receiver that answers 204 before it stores); both: off, "
                        "then on, then the two side by side")
    p.set_defaults(func=cmd_chaos)

    p = sub.add_parser("bench", help="measure acknowledgement speed and worker drain rates; save a plot")
    p.add_argument("--requests", type=int, default=3000, help="requests per measurement (default 3000)")
    p.add_argument("--jobs", type=int, default=1000, help="jobs per drain measurement (default 1000)")
    p.add_argument("--rounds", type=int, default=5, help="rounds of every receiver in turn (default 5)")
    p.add_argument("--plot", default="bench-latency.png", help="where to save the latency plot")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("screenshots", help="remake the README's pictures from the running kit (needs Chromium)")
    p.add_argument("--out", default=None, help="folder (default: workshop/guide/img)")
    p.set_defaults(func=cmd_screenshots)

    p = sub.add_parser("doctor", help="check this machine is ready for the workshop")
    p.set_defaults(func=cmd_doctor)

    p = sub.add_parser("tunnel", help="open a public URL to the receiver with ngrok (falls back to local)")
    p.add_argument("--port", type=int, default=PORT, help=f"default {PORT}")
    p.set_defaults(func=cmd_tunnel)

    p = sub.add_parser("inspect", help="list the receiver's last requests, or show one")
    p.add_argument("id", nargs="?", help="a request id (or its start) to show in full")
    p.add_argument("--limit", type=int, default=20)
    p.set_defaults(func=cmd_inspect)

    p = sub.add_parser("replay", help="send a kept request through the receiver again")
    p.add_argument("id", help="the request id (see `inspect`)")
    p.add_argument("--url", default=None, help="the receiver's base URL (default: where the request went)")
    p.set_defaults(func=cmd_replay)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command; Ctrl+C stops it cleanly."""
    from dotenv import find_dotenv, load_dotenv

    from solutions.settings import SettingsError

    load_dotenv(find_dotenv(usecwd=True), override=False)
    args = build_parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        return args.func(args)
    except SettingsError as error:
        print(f"Settings: {error}.", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
