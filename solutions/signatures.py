"""Vonage SMS signatures, by hand.

Vonage signs every field of an inbound SMS with a secret shared with you:

1. drop `sig`; sort the remaining keys by code point;
2. join them as `&key=value`, with `&` and `=` inside values replaced by `_`;
3. md5hash: md5(joined + secret); md5, sha1, sha256, sha512: HMAC(secret, joined);
4. the signature is the hex digest, compared case-insensitively in constant time.
"""
from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping

METHODS = ("md5hash", "md5", "sha1", "sha256", "sha512")
DEFAULT_MAX_AGE = 300


class InvalidSignature(Exception):
    """The message cannot be trusted. Subclasses say why."""


class MissingSignature(InvalidSignature):
    """The message carries no `sig` field."""


class SignatureMismatch(InvalidSignature):
    """The `sig` field does not match the other fields and the shared secret."""


class MissingTimestamp(InvalidSignature):
    """The message carries no usable `timestamp` field, so its age is unknown."""


class StaleTimestamp(InvalidSignature):
    """The message was signed too long ago, or claims to come from the future."""


def signing_string(params: Mapping[str, object]) -> str:
    """The text that is signed: every field but `sig`, sorted, as `&key=value`."""
    parts = []
    for key in sorted(k for k in params if k != "sig"):
        value = str(params[key]).replace("&", "_").replace("=", "_")
        parts.append(f"&{key}={value}")
    return "".join(parts)


def sign(params: Mapping[str, object], secret: str, method: str = "md5hash") -> str:
    """Return the signature of `params` as lowercase hex.

    Raises ValueError for an unknown method.
    """
    message = signing_string(params).encode("utf-8")
    if method == "md5hash":
        return hashlib.md5(message + secret.encode("utf-8")).hexdigest()
    if method in METHODS:
        return hmac.new(secret.encode("utf-8"), message, method).hexdigest()
    raise ValueError(f"unknown signature method {method!r}; use one of {', '.join(METHODS)}")


def verify(
    params: Mapping[str, object],
    secret: str,
    method: str = "md5hash",
    *,
    max_age: float | None = DEFAULT_MAX_AGE,
    now: float | None = None,
) -> None:
    """Check the signature of `params`; return None if it is good.

    `max_age` is how many seconds old (or how far in the future) `timestamp` may be;
    None turns the freshness check off. `now` is the time of receipt (default: now).
    Raises MissingSignature, SignatureMismatch, MissingTimestamp or StaleTimestamp,
    all subclasses of InvalidSignature.
    """
    given = params.get("sig")
    if not isinstance(given, str) or not given:
        raise MissingSignature("the message has no sig field")
    expected = sign(params, secret, method)
    # compare_digest takes the same time wherever the first difference is.
    if not hmac.compare_digest(given.lower().encode("utf-8"), expected.encode("ascii")):
        raise SignatureMismatch("the signature does not match the message")
    if max_age is None:
        return
    try:
        signed_at = int(str(params["timestamp"]))
    except (KeyError, ValueError):
        raise MissingTimestamp("the message has no numeric timestamp field") from None
    age = (time.time() if now is None else now) - signed_at
    if abs(age) > max_age:
        when = "old" if age > 0 else "in the future"
        raise StaleTimestamp(f"the timestamp is {abs(int(age))} s {when}; at most {max_age} s allowed")
