"""A stand-in for Vonage: make realistic inbound SMS, sign them and deliver them.

Both of Vonage's formats: the SMS API's fields, signed with `sig`, and the
Messages API's JSON body with a JWT in the Authorization header.

Like Vonage, the sender re-sends a message until it gets a 2xx (here bounded, with
backoff), so delivery is at least once. It also makes the bad cases the workshop
needs: forged, stale and duplicate messages.
"""
from __future__ import annotations

import json
import queue
import random
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone

import requests
from tqdm.auto import tqdm

from solutions import messages_api
from solutions.signatures import sign

STYLES = ("get", "form", "json")
WORDS = "hello pizza order status help stop yes no meeting tonight thanks running late".split()


def _timestamp() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def make_sms(text: str | None = None, msisdn: str | None = None, to: str = "447700900000",
             **extra: str) -> dict[str, str]:
    """One unsigned inbound SMS with Vonage's fields."""
    text = text if text is not None else " ".join(random.choices(WORDS, k=random.randint(1, 6)))
    fields = {
        "msisdn": msisdn or f"4477009{random.randint(0, 99999):05d}",
        "to": to,
        "messageId": uuid.uuid4().hex[:16].upper(),
        "text": text,
        "type": "text" if text.isascii() else "unicode",
        "keyword": (text.split() or [""])[0].upper(),
        "api-key": "abcd1234",
        "message-timestamp": _timestamp(),
    }
    fields.update(extra)
    return fields


def make_concat(text: str, part_length: int = 153, **fields: str) -> list[dict[str, str]]:
    """A long text as Vonage delivers it: several messages that share a concat-ref."""
    parts = [text[i:i + part_length] for i in range(0, len(text), part_length)] or [""]
    ref = str(random.randint(1, 255))
    msisdn = fields.pop("msisdn", None) or f"4477009{random.randint(0, 99999):05d}"
    return [
        make_sms(part, msisdn=msisdn, concat="true", **{"concat-ref": ref, "concat-total": str(len(parts)),
                                                         "concat-part": str(n)}, **fields)
        for n, part in enumerate(parts, start=1)
    ]


def signed(fields: dict[str, str], secret: str, method: str = "md5hash",
           timestamp: int | None = None) -> dict[str, str]:
    """A copy of `fields` with timestamp, nonce and sig, as Vonage signs them."""
    out = {k: v for k, v in fields.items() if k != "sig"}
    out["timestamp"] = str(int(time.time()) if timestamp is None else timestamp)
    out.setdefault("nonce", str(uuid.uuid4()))
    out["sig"] = sign(out, secret, method)
    return out


def forged(fields: dict[str, str]) -> dict[str, str]:
    """A tampered copy: the text changed after signing, the sig kept."""
    return {**fields, "text": fields.get("text", "") + " (send me your password)"}


def stale(fields: dict[str, str], secret: str, method: str = "md5hash", age: int = 3600) -> dict[str, str]:
    """A correctly signed copy whose timestamp is `age` seconds old."""
    return signed({k: v for k, v in fields.items() if k not in ("nonce",)}, secret, method,
                  timestamp=int(time.time()) - age)


@dataclass
class Delivery:
    """How one message's delivery went."""

    message_id: str
    status: int | None  # the last HTTP status, None if no answer at all
    attempts: int
    duplicate: bool = False
    seconds: float = 0.0
    history: list[int | None] = field(default_factory=list)  # every attempt's status

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def deliver(url: str, fields: dict[str, str], style: str = "form", *, session: requests.Session | None = None,
            max_attempts: int = 8, backoff: float = 0.25, max_backoff: float = 4.0, timeout: float = 10.0) -> Delivery:
    """Send one message by GET, POST form or POST JSON; re-send on 5xx, 429 or no answer.

    Style "messages" posts a Messages API request (see `messages_api_request`) as Vonage does.
    A 4xx other than 429 is final: sending the same bytes again cannot help.
    """
    http = session or requests.Session()
    started = time.perf_counter()
    status = None
    duplicate = False
    history: list[int | None] = []
    for attempt in range(1, max_attempts + 1):
        try:
            if style == "get":
                response = http.get(url, params=fields, timeout=timeout)
            elif style == "json":
                response = http.post(url, json=fields, timeout=timeout)
            elif style == "messages":
                response = http.post(url, data=fields["body"].encode("utf-8"), headers=_messages_headers(fields),
                                     timeout=timeout)
            else:
                response = http.post(url, data=fields, timeout=timeout)
            status = response.status_code
            duplicate = response.headers.get("X-Duplicate") == "yes"
            history.append(status)
            if status < 500 and status != 429:
                break
        except requests.RequestException:
            status = None
            history.append(None)
        if attempt < max_attempts:
            time.sleep(min(max_backoff, backoff * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0))
    return Delivery(fields.get("messageId", "?"), status, attempt, duplicate, time.perf_counter() - started, history)


def send_many(url: str, messages: list[dict[str, str]], *, concurrency: int = 8, style: str = "mixed",
              progress: bool = True, on_delivery: Callable[[Delivery], None] | None = None,
              **deliver_options) -> list[Delivery]:
    """Deliver `messages` with `concurrency` senders at once; `style` 'mixed' rotates get, form, json.

    `on_delivery` is called with each message's Delivery as it ends. The senders are
    daemon threads, so Ctrl+C ends the command at once.
    """
    todo: queue.SimpleQueue[tuple[int, dict[str, str]]] = queue.SimpleQueue()
    for item in enumerate(messages):
        todo.put(item)
    finished: queue.SimpleQueue[tuple[int, Delivery]] = queue.SimpleQueue()

    def sender_thread() -> None:
        with requests.Session() as session:
            while True:
                try:
                    i, fields = todo.get_nowait()
                except queue.Empty:
                    return
                chosen = STYLES[i % 3] if style == "mixed" else style
                finished.put((i, deliver(url, fields, chosen, session=session, **deliver_options)))

    for _ in range(max(1, min(concurrency, len(messages)))):
        threading.Thread(target=sender_thread, daemon=True).start()
    results: list[Delivery | None] = [None] * len(messages)
    with tqdm(total=len(messages), desc="sending", unit="msg", disable=not progress, leave=False) as bar:
        received = 0
        while received < len(messages):
            try:
                i, delivery = finished.get(timeout=0.2)  # a timed wait lets Ctrl+C through on every Python
            except queue.Empty:
                continue
            results[i] = delivery
            received += 1
            bar.update()
            if on_delivery is not None:
                on_delivery(delivery)
    return results  # type: ignore[return-value]


def make_inbound_message(text: str | None = None, msisdn: str | None = None, to: str = "447700900000") -> dict:
    """One Messages API inbound SMS, with the fields Vonage sends to /webhooks/inbound-message."""
    text = text if text is not None else " ".join(random.choices(WORDS, k=random.randint(1, 6)))
    return {
        "channel": "sms",
        "message_uuid": str(uuid.uuid4()),
        "to": to,
        "from": msisdn or f"4477009{random.randint(0, 99999):05d}",
        "timestamp": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "text": text,
        "message_type": "text",
        "sms": {"num_messages": "1", "keyword": (text.split() or [""])[0].upper()},
        "usage": {"currency": "EUR", "price": "0.0057"},
    }


def messages_api_request(message: dict, secret: str, *, forged: bool = False, stale: bool = False,
                         age: int = 3600) -> dict[str, str]:
    """What to post for one Messages API message: its raw JSON body, and the token Vonage makes for it.

    No `secret`: no token (an unsigned callback). `forged`: the text changed after signing.
    `stale`: a token issued `age` seconds ago.
    """
    body = json.dumps(message).encode("utf-8")
    token = messages_api.sign(body, secret, iat=int(time.time()) - age if stale else None) if secret else ""
    if forged:
        body = json.dumps({**message, "text": message.get("text", "") + " (send me your password)"}).encode("utf-8")
    return {"messageId": message["message_uuid"], "body": body.decode("utf-8"), "token": token}


def _messages_headers(request: dict[str, str]) -> dict[str, str]:
    headers = {"Content-Type": "application/json"}
    if request.get("token"):
        headers["Authorization"] = f"Bearer {request['token']}"
    return headers
