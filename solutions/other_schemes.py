"""Notebook 08: how other providers sign webhooks, verified by hand.

- GitHub: `X-Hub-Signature-256: sha256=<hex>` over the raw body; no timestamp at all.
- Slack: `X-Slack-Signature: v0=<hex>` over `v0:<timestamp>:<body>`, with `X-Slack-Request-Timestamp`.
- Standard Webhooks: `webhook-signature: v1,<base64>` over `<id>.<timestamp>.<body>`, with a base64
  secret after `whsec_`; several space-separated signatures while a secret is rotated.
- Stripe: `Stripe-Signature: t=<timestamp>,v1=<hex>[,v1=<hex>]` over `<timestamp>.<body>`.

Each is an HMAC-SHA256 of the raw body bytes (and of a timestamp and id where there are any), compared
in constant time. Each verifier returns None or raises an InvalidSignature subclass that says why.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import time

from solutions.signatures import MissingSignature, MissingTimestamp, SignatureMismatch, StaleTimestamp

DEFAULT_TOLERANCE = 300  # Slack, Standard Webhooks and Stripe all allow 5 minutes


def _hmac_sha256(secret: bytes, message: bytes) -> bytes:
    return hmac.new(secret, message, hashlib.sha256).digest()


def unix_time(value: str | None) -> str:
    """`value` if it is a Unix time in whole seconds; else raise MissingTimestamp."""
    if not value or not (value.isascii() and value.isdigit()):
        raise MissingTimestamp(f"the timestamp {value!r} is not a Unix time in seconds")
    return value


def check_age(timestamp: str, tolerance: float | None, now: float | None = None) -> None:
    """Raise StaleTimestamp unless `timestamp` is within `tolerance` seconds of `now` (default: now).

    `tolerance=None` turns the check off; 0 means this very second (zero is not "off").
    """
    if tolerance is None:
        return
    age = (time.time() if now is None else now) - int(timestamp)
    if abs(age) > tolerance:
        when = "old" if age > 0 else "in the future"
        raise StaleTimestamp(f"the timestamp is {abs(int(age))} s {when}; at most {tolerance} s allowed")


def sign_github(body: bytes, secret: str) -> str:
    """The X-Hub-Signature-256 header value for `body`."""
    return "sha256=" + _hmac_sha256(secret.encode(), body).hex()


def verify_github(body: bytes, header: str | None, secret: str) -> None:
    """Check GitHub's X-Hub-Signature-256 of the raw `body`.

    There is no timestamp: a recorded delivery verifies forever, so deduplicate on X-GitHub-Delivery.
    Raises MissingSignature or SignatureMismatch.
    """
    if not header:
        raise MissingSignature("no X-Hub-Signature-256 header")
    if not hmac.compare_digest(sign_github(body, secret).encode(), header.encode()):
        raise SignatureMismatch("X-Hub-Signature-256 does not match the body")


def sign_slack(timestamp: str, body: bytes, secret: str) -> str:
    """The X-Slack-Signature header value for `body` sent at `timestamp`."""
    return "v0=" + _hmac_sha256(secret.encode(), b"v0:" + timestamp.encode() + b":" + body).hex()


def verify_slack(body: bytes, timestamp: str | None, signature: str | None, secret: str, *,
                 tolerance: float | None = DEFAULT_TOLERANCE, now: float | None = None) -> None:
    """Check Slack's v0 signature (X-Slack-Signature) and X-Slack-Request-Timestamp.

    Raises MissingSignature, MissingTimestamp, SignatureMismatch or StaleTimestamp.
    """
    if not signature:
        raise MissingSignature("no X-Slack-Signature header")
    timestamp = unix_time(timestamp)
    if not hmac.compare_digest(sign_slack(timestamp, body, secret).encode(), signature.encode()):
        raise SignatureMismatch("X-Slack-Signature does not match the timestamp and body")
    check_age(timestamp, tolerance, now)


def _standard_key(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix("whsec_"), validate=True)


def sign_standard(msg_id: str, timestamp: int | str, body: bytes, secret: str) -> str:
    """One webhook-signature entry (v1) for a message: `v1,<base64>`."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(_hmac_sha256(_standard_key(secret), signed)).decode()


def verify_standard(msg_id: str, timestamp: str | None, body: bytes, header: str | None, secret: str, *,
                    tolerance: float | None = DEFAULT_TOLERANCE, now: float | None = None) -> None:
    """Check a Standard Webhooks webhook-signature header: any one v1 entry may match.

    While a secret is rotated the sender lists one signature per secret, space-separated; entries of
    other versions (v1a is asymmetric) are skipped. Raises MissingSignature, MissingTimestamp,
    SignatureMismatch or StaleTimestamp.
    """
    entries = [entry.partition(",") for entry in (header or "").split()]
    given = [signature for version, _, signature in entries if version == "v1"]
    if not given:
        raise MissingSignature("no v1 entry in webhook-signature")
    timestamp = unix_time(timestamp)
    expected = sign_standard(msg_id, timestamp, body, secret).removeprefix("v1,").encode()
    if not any(hmac.compare_digest(expected, signature.encode()) for signature in given):
        raise SignatureMismatch("no v1 webhook-signature matches the id, timestamp and body")
    check_age(timestamp, tolerance, now)


def sign_stripe(timestamp: int, body: bytes, secret: str) -> str:
    """The Stripe-Signature header value for `body` sent at `timestamp`."""
    return f"t={timestamp},v1=" + _hmac_sha256(secret.encode(), f"{timestamp}.".encode() + body).hex()


def verify_stripe(body: bytes, header: str | None, secret: str, *,
                  tolerance: float | None = DEFAULT_TOLERANCE, now: float | None = None) -> None:
    """Check a Stripe-Signature header `t=<time>,v1=<hex>[,v1=<hex>...]`; any v1 may match.

    Other schemes (v0) are ignored, so nobody can downgrade the check. Raises MissingSignature,
    MissingTimestamp, SignatureMismatch or StaleTimestamp.
    """
    pairs = [item.partition("=") for item in (header or "").split(",")]
    times = [value for key, _, value in pairs if key == "t"]
    given = [value for key, _, value in pairs if key == "v1"]
    if not given:
        raise MissingSignature("no v1 signature in Stripe-Signature")
    timestamp = unix_time(times[0] if len(times) == 1 else None)
    expected = _hmac_sha256(secret.encode(), f"{timestamp}.".encode() + body).hex().encode()
    if not any(hmac.compare_digest(expected, signature.encode()) for signature in given):
        raise SignatureMismatch("no v1 signature in Stripe-Signature matches the timestamp and body")
    check_age(timestamp, tolerance, now)
