"""The receiver's request inspector: the last requests, kept in Redis, viewable and replayable.

Like ngrok's inspector at localhost:4040, but offline too. Every request to the
webhook (time, method, path, query, headers and body with secrets masked, answer,
time taken) is kept in a capped Redis list; `/inspect` shows them, and a replay sends
one again through the whole receiver, so you can watch a duplicate handled.
"""
from __future__ import annotations

import json
import logging
import os
import re
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import datetime, timezone
from html import escape
from urllib.parse import unquote_plus

from flask import Blueprint, Flask, Response, abort, current_app, jsonify, redirect, request, url_for
from redis import Redis, RedisError
from werkzeug.datastructures import EnvironHeaders
from werkzeug.http import parse_options_header
from werkzeug.test import TestResponse

KEY = "inspect:requests"
KEEP = 200
STARTED = "inspector.started"  # environ key: perf_counter() when the request arrived
SECRET_HEADER = re.compile(r"authorization|cookie|token|secret|password|api-?key", re.IGNORECASE)
SECRET_FIELD = re.compile(r"secret|password|token", re.IGNORECASE)  # Vonage's api-key is public
SECRET_JSON_VALUE = re.compile(r'("[^"]*(?:secret|password|token)[^"]*"\s*:\s*")([^"]*)', re.IGNORECASE)

bp = Blueprint("inspector", __name__)


def mask(value: str) -> str:
    """Keep a hint of a secret (its first 4 characters), hide the rest."""
    return (value[:4] + "…" if len(value) > 8 else "") + "(masked)"


def masked_headers(headers) -> dict[str, str]:
    return {k: mask(v) if SECRET_HEADER.search(k) else v for k, v in headers.items()}


def masked_fields(text: str) -> str:
    """A form body or query string (`a=1&b=2`) with the values of secret-looking fields masked.

    A field's name is judged decoded, so `api%5Fsecret=` is masked like `api_secret=`.
    """
    if not SECRET_FIELD.search(text) and "%" not in text:
        return text
    parts = []
    for part in text.split("&"):
        key, equals, value = part.partition("=")
        parts.append(f"{key}={mask(value)}" if equals and SECRET_FIELD.search(unquote_plus(key)) else part)
    return "&".join(parts)


def _masked_json(data: object) -> object:
    if isinstance(data, dict):
        return {k: mask(str(v)) if SECRET_FIELD.search(k) else _masked_json(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_masked_json(v) for v in data]
    return data


def masked_body(body: bytes, mimetype: str) -> str:
    """The body as text, with secret-looking fields masked in forms and in JSON (at any depth)."""
    text = body.decode("utf-8", errors="replace")
    if mimetype == "application/json" or mimetype.endswith("+json"):
        if not SECRET_FIELD.search(text) and "\\u" not in text:  # a name may be written with \u escapes
            return text
        try:
            return json.dumps(_masked_json(json.loads(text)), ensure_ascii=False)
        except (ValueError, RecursionError):  # not JSON after all: mask what looks like a secret's value
            return SECRET_JSON_VALUE.sub(lambda m: m.group(1) + mask(m.group(2)), text)
    return masked_fields(text)


def _connection() -> Redis:
    return current_app.extensions["sms_queue"].connection


def record_request(response: Response) -> Response:
    """after_request hook: hand this webhook request to the writer (never failing the request).

    Only plain values are taken here (strings, bytes and numbers, straight from the
    WSGI environ); headers, masking and formatting are made in the writer's thread,
    so that keeping a request adds as little as possible to the answer.
    """
    if not request.path.startswith(current_app.config.get("INSPECT_PREFIX", "/webhooks/")):
        return response
    environ = request.environ
    try:
        body = request.get_data(cache=True)
    except Exception:  # too large, or unreadable: keep the rest
        body = None
    _writer(_connection()).put((
        time.time(), environ["REQUEST_METHOD"], request.path, environ.get("QUERY_STRING", ""),
        [(k, v) for k, v in environ.items() if k.startswith(("HTTP_", "CONTENT_"))], body,
        response.status_code, time.perf_counter() - environ.get(STARTED, time.perf_counter()),
        response.headers.get("X-Duplicate") == "yes",
    ))
    return response


def to_entry(facts: tuple) -> dict:
    """The kept form of one request: secrets masked, ready for JSON."""
    when, method, path, query, environ_headers, body, status, seconds, duplicate = facts
    headers = dict(EnvironHeaders(dict(environ_headers)))
    mimetype = parse_options_header(headers.get("Content-Type"))[0]
    return {
        "id": secrets.token_hex(5),
        "time": datetime.fromtimestamp(when, timezone.utc).isoformat(timespec="milliseconds"),
        "method": method,
        "path": path,
        "query": masked_fields(query),
        "headers": masked_headers(headers),
        "body": "(body not kept)" if body is None else masked_body(body, mimetype),
        "status": status,
        "ms": round(seconds * 1000, 2),
        "duplicate": duplicate,
        "replay_of": headers.get("X-Replay-Of"),
    }


class _Writer:
    """Keeps requests in Redis from a background thread, at most once every INTERVAL seconds.

    Keeping a request must not slow the answer, nor a burst the receiver: the request
    thread only appends its facts to a short deque that holds the newest KEEP (older
    ones would be trimmed from Redis at once anyway), and the writer formats and
    stores what is there in one round trip. A lone request is stored at once.
    """

    INTERVAL = 1.0

    def __init__(self, connection: Redis) -> None:
        self.connection = connection
        self.pending: deque[tuple] = deque(maxlen=KEEP)
        self.handed = self.stored = 0  # requests handed over, and stored (or dropped as too old)
        self.lock = threading.Lock()
        self.wake, self.hurry = threading.Event(), threading.Event()
        self.done = threading.Condition()
        threading.Thread(target=self._run, daemon=True, name="inspector-writer").start()

    def put(self, facts: tuple) -> None:
        with self.lock:
            first = not self.pending  # else the writer was woken already and has not yet taken the batch
            self.pending.append(facts)
            self.handed += 1
        if first:
            self.wake.set()

    def _run(self) -> None:
        last = 0.0
        while True:
            self.wake.wait()
            self.hurry.wait(last + self.INTERVAL - time.monotonic())  # a flush cuts the wait short
            self.wake.clear()
            self.hurry.clear()
            with self.lock:
                handed, batch = self.handed, list(self.pending)
                self.pending.clear()
            try:
                kept = []
                for n, facts in enumerate(batch, 1):
                    kept.append(json.dumps(to_entry(facts)))
                    if n % 10 == 0:
                        time.sleep(0)  # let waiting request threads run: they should not wait for a whole batch
                if kept:
                    with self.connection.pipeline(transaction=False) as pipe:
                        pipe.lpush(KEY, *kept).ltrim(KEY, 0, KEEP - 1).execute()
            except RedisError:
                pass  # a convenience only: the answer already said whether the message was stored
            except Exception:  # never let one odd request stop the inspector
                logging.getLogger(__name__).exception("could not keep a request")
            last = time.monotonic()
            with self.done:
                self.stored = handed
                self.done.notify_all()

    def flush(self, timeout: float = 2.0) -> None:
        """Wait until everything handed over before this call is stored."""
        target = self.handed
        self.hurry.set()
        with self.done:
            self.done.wait_for(lambda: self.stored >= target, timeout)


_writers: dict[int, _Writer] = {}
if hasattr(os, "register_at_fork"):  # not on Windows, which does not fork
    os.register_at_fork(after_in_child=_writers.clear)  # a forked server process needs its own thread


def _writer(connection: Redis) -> _Writer:
    writer = _writers.get(id(connection))
    if writer is None:
        writer = _writers[id(connection)] = _Writer(connection)
    return writer


def flush() -> None:
    """Wait until this process has stored every request it kept."""
    for writer in list(_writers.values()):
        writer.flush()


def recent(connection: Redis, limit: int = KEEP) -> list[dict]:
    """The kept requests, newest first (including this process's latest)."""
    flush()
    return [json.loads(raw) for raw in connection.lrange(KEY, 0, limit - 1)]


def find(connection: Redis, request_id: str) -> dict | None:
    """One kept request by id (or its unique prefix)."""
    return next((r for r in recent(connection) if r["id"].startswith(request_id)), None)


def replay_headers(entry: dict) -> dict[str, str]:
    """The headers to send again: the content type, and which request this replays."""
    headers = {k: v for k, v in entry["headers"].items() if k.lower() in ("content-type", "user-agent")}
    headers["X-Replay-Of"] = entry["id"]
    return headers


def replay(app: Flask, entry: dict) -> TestResponse:
    """Send a kept request through the receiver app again, as the provider would re-send it.

    The answer is read to its end and closed, as a server does, so that what the
    receiver does after answering (`call_on_close`) runs too.
    """
    with app.test_client() as client:
        return client.open(entry["path"], method=entry["method"], query_string=entry["query"],
                           data=entry["body"].encode("utf-8"), headers=replay_headers(entry), buffered=True)


PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:system-ui,sans-serif;margin:2rem;color:#222}}table{{border-collapse:collapse}}
td,th{{padding:.3rem .7rem;border-bottom:1px solid #ddd;text-align:left}}pre{{background:#f6f6f6;padding:1rem;
white-space:pre-wrap;word-break:break-all}}.s2{{color:#17803d}}.s4{{color:#b45309}}.s5{{color:#b91c1c}}
button{{font-size:1rem}}</style></head><body>{body}</body></html>"""


@bp.before_request
def only_from_this_machine():
    """The inspector shows what senders sent: serve it on this machine only, never through a tunnel."""
    if request.remote_addr not in ("127.0.0.1", "::1") or "X-Forwarded-For" in request.headers:
        abort(403, "the inspector answers only on this machine: open /inspect on 127.0.0.1, not the public URL")


@bp.get("/inspect")
def index():
    rows = "".join(
        f"<tr><td><a href='{url_for('inspector.detail', request_id=r['id'])}'>{r['id']}</a></td>"
        f"<td>{escape(r['time'][11:23])}</td><td>{r['method']}</td><td>{escape(r['path'])}</td>"
        f"<td class='s{str(r['status'])[0]}'>{r['status']}</td><td>{r['ms']:.1f} ms</td>"
        f"<td>{'duplicate' if r['duplicate'] else ''}{' replay' if r.get('replay_of') else ''}</td></tr>"
        for r in recent(_connection()))
    body = (f"<h1>Inspector</h1><p>The last {KEEP} webhook requests, newest first.</p>"
            f"<table><tr><th>id</th><th>time (UTC)</th><th>method</th><th>path</th><th>answer</th>"
            f"<th>took</th><th></th></tr>{rows or '<tr><td colspan=7>Nothing yet.</td></tr>'}</table>")
    return PAGE.format(title="Inspector", body=body)


@bp.get("/inspect/<request_id>")
def detail(request_id: str):
    entry = find(_connection(), request_id) or abort(404)
    if request.args.get("format") == "json":
        return jsonify(entry)
    headers = "\n".join(f"{k}: {v}" for k, v in entry["headers"].items())
    replayed = request.args.get("replayed")
    note = f"<p id='replayed'>Replayed: the receiver answered {escape(replayed)}.</p>" if replayed else ""
    body = (f"<p><a href='{url_for('inspector.index')}'>← all requests</a></p><h1>Request {entry['id']}</h1>{note}"
            f"<p>{entry['method']} {escape(entry['path'])}{'?' + escape(entry['query']) if entry['query'] else ''}"
            f" → <b class='s{str(entry['status'])[0]}'>{entry['status']}</b> in {entry['ms']:.1f} ms</p>"
            f"<h2>Headers</h2><pre>{escape(headers)}</pre><h2>Body</h2><pre>{escape(entry['body'])}</pre>"
            f"<form method='post' action='{url_for('inspector.replay_view', request_id=entry['id'])}'>"
            f"<button type='submit'>Replay this request</button></form>")
    return PAGE.format(title=f"Request {entry['id']}", body=body)


@bp.post("/inspect/<request_id>/replay")
def replay_view(request_id: str):
    entry = find(_connection(), request_id) or abort(404)
    response = replay(current_app, entry)
    duplicate = response.headers.get("X-Duplicate") == "yes"
    outcome = f"{response.status_code}{' (duplicate: stored once)' if duplicate else ''}"
    return redirect(url_for("inspector.detail", request_id=request_id, replayed=outcome))


def _timed(wsgi_app: Callable) -> Callable:
    """WSGI middleware: note when each request arrived, for the time it took."""
    def app(environ: dict, start_response: Callable):
        environ[STARTED] = time.perf_counter()
        return wsgi_app(environ, start_response)
    return app


def init_app(app: Flask) -> None:
    """Keep webhook requests and serve /inspect."""
    app.wsgi_app = _timed(app.wsgi_app)  # type: ignore[method-assign]  # Flask's documented way to add middleware
    app.after_request(record_request)
    app.register_blueprint(bp)
