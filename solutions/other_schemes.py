"""Notebook 08: how other providers sign webhooks.

GitHub signs the raw body: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256(secret, body)>`.
Standard Webhooks (https://www.standardwebhooks.com) signs `id.timestamp.body` with
a base64 key and sends `webhook-signature: v1,<base64 HMAC-SHA256>` (several may be
listed, space-separated, during key rotation).
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import time

from solutions.signatures import SignatureMismatch, StaleTimestamp


def sign_github(body: bytes, secret: str) -> str:
    """The X-Hub-Signature-256 header value for `body`."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify_github(body: bytes, header: str, secret: str) -> bool:
    """True if `header` is GitHub's signature of the raw `body` with `secret`."""
    return hmac.compare_digest(sign_github(body, secret).encode(), (header or "").encode())


def _key(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix("whsec_"))


def sign_standard(msg_id: str, timestamp: int, body: bytes, secret: str) -> str:
    """The webhook-signature header value (v1) for one message."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(_key(secret), signed, hashlib.sha256).digest()).decode()


def verify_standard(msg_id: str, timestamp: str, body: bytes, header: str, secret: str,
                    tolerance: int = 300, now: float | None = None) -> None:
    """Check a Standard Webhooks signature; raise SignatureMismatch or StaleTimestamp."""
    if abs((time.time() if now is None else now) - int(timestamp)) > tolerance:
        raise StaleTimestamp("the webhook-timestamp is outside the tolerance")
    expected = sign_standard(msg_id, int(timestamp), body, secret).encode()
    if not any(hmac.compare_digest(expected, given.encode()) for given in header.split()):
        raise SignatureMismatch("no webhook-signature matches")
