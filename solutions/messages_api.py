"""Vonage Messages API webhooks: a JWT in the Authorization header, checked by hand.

An inbound SMS through the Messages API is a JSON body (message_uuid, from, to, text, channel
"sms", ...) with `Authorization: Bearer <token>`. The token is a JWT, three base64url parts
`header.claims.signature`, where signature = HMAC-SHA256(signature secret, "header.claims"),
always HS256 whatever the dashboard's signature method says. Its claims: iat, jti, iss "Vonage",
api_key, application_id and payload_hash, the SHA-256 hex of the raw body, so the token covers
the exact bytes received.

An unsigned callback: Vonage's docs say one may come after an internal error on their side, and
that answering 5xx makes Vonage send it again, signed. So answer 503 to a callback without a token
(MissingToken) and never process it: the retry will carry one.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import time
import uuid
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from solutions.payloads import BadPayload
from solutions.signatures import InvalidSignature, SignatureMismatch, StaleTimestamp

if TYPE_CHECKING:
    from redis import Redis

EVENT = "inbound-message"  # the event of a Messages API delivery, beside the SMS API's "inbound-sms"
DEFAULT_MAX_AGE = 300  # seconds a token may be old
DEFAULT_SKEW = 30  # seconds a token may claim to come from the future (clocks differ)
BASE64URL = re.compile(r"[A-Za-z0-9_-]*")
FirstUse = Callable[[str], bool]  # jti -> True the first time it is seen


class MissingToken(InvalidSignature):
    """No `Authorization: Bearer <token>`: an unsigned callback, to answer with 5xx so Vonage retries it."""


class BadToken(InvalidSignature):
    """The token is not a well-formed JWT, or lacks a claim Vonage always sends."""


class WrongAlgorithm(BadToken):
    """The token's header names another algorithm than HS256 (or none at all)."""


class PayloadHashMismatch(InvalidSignature):
    """The token is genuine but was made for another body: payload_hash differs."""


class ReplayedToken(InvalidSignature):
    """This token's jti was used before: someone is sending a recorded callback again."""


def b64url_encode(data: bytes) -> str:
    """Base64url without padding, as JWTs write it."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(part: str) -> bytes:
    """The bytes of one base64url part; raises BadToken for anything else."""
    if not BASE64URL.fullmatch(part) or len(part) % 4 == 1:
        raise BadToken("a token part is not base64url")
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _json_object(part: str, what: str) -> dict[str, Any]:
    try:
        value = json.loads(b64url_decode(part))
    except (UnicodeDecodeError, ValueError):
        raise BadToken(f"the token's {what} is not JSON") from None
    if not isinstance(value, dict):
        raise BadToken(f"the token's {what} is not a JSON object")
    return value


def bearer_token(authorization: str | None) -> str:
    """The token in an `Authorization: Bearer <token>` header; raises MissingToken."""
    scheme, _, token = (authorization or "").strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise MissingToken("no Authorization: Bearer token: the callback is unsigned")
    return token.strip()


def payload_hash(body: bytes) -> str:
    """What the payload_hash claim must be: the SHA-256 hex of the raw body."""
    return hashlib.sha256(body).hexdigest()


def _hs256(signing_input: str, secret: str) -> str:
    return b64url_encode(hmac.new(secret.encode("utf-8"), signing_input.encode("utf-8"), hashlib.sha256).digest())


def verify_signature(token: str, secret: str) -> dict[str, Any]:
    """Check the token's HS256 signature; return its claims.

    Raises BadToken, WrongAlgorithm (any alg but HS256, "none" included) or SignatureMismatch.
    """
    parts = token.split(".")
    if len(parts) != 3:
        raise BadToken(f"a JWT has 3 parts separated by dots; this one has {len(parts)}")
    header, claims, signature = parts
    # The header is read before the signature is checked: refuse every algorithm but ours.
    alg = _json_object(header, "header").get("alg")
    if alg != "HS256":
        raise WrongAlgorithm(f"the token's header names the algorithm {alg!r}; only 'HS256' is accepted")
    if not hmac.compare_digest(_hs256(f"{header}.{claims}", secret).encode(), signature.encode()):
        raise SignatureMismatch("the token's signature does not match: another secret, or a changed token")
    return _json_object(claims, "claims")


def verify(
    token: str | None,
    body: bytes,
    secret: str,
    *,
    max_age: float = DEFAULT_MAX_AGE,
    skew: float = DEFAULT_SKEW,
    now: float | None = None,
    first_use: FirstUse | None = None,
) -> dict[str, Any]:
    """Check a Messages API callback: its token and its raw `body`; return the claims.

    `now` is the time of receipt (default: now). `first_use(jti)` says whether a jti is new;
    without it, a recorded callback could be sent again within `max_age`.
    Raises MissingToken, BadToken, WrongAlgorithm, SignatureMismatch, PayloadHashMismatch,
    StaleTimestamp or ReplayedToken, all subclasses of InvalidSignature.
    """
    if not token:
        raise MissingToken("no token: the callback is unsigned")
    claims = verify_signature(token, secret)
    iat, jti, given_hash = claims.get("iat"), claims.get("jti"), claims.get("payload_hash")
    if claims.get("iss") != "Vonage":
        raise BadToken(f"the token's issuer is {claims.get('iss')!r}, not 'Vonage'")
    if not isinstance(iat, (int, float)) or isinstance(iat, bool):
        raise BadToken("the token has no numeric iat claim, so its age is unknown")
    if not isinstance(jti, str) or not jti:
        raise BadToken("the token has no jti claim")
    if not isinstance(given_hash, str):
        raise PayloadHashMismatch("the token has no payload_hash claim, so it does not cover the body")
    if not hmac.compare_digest(given_hash.lower().encode(), payload_hash(body).encode()):
        raise PayloadHashMismatch("the body is not the one the token was made for (payload_hash differs)")
    age = (time.time() if now is None else now) - iat
    if age > max_age:
        raise StaleTimestamp(f"the token was issued {int(age)} s ago; at most {max_age} s allowed")
    if -age > skew:
        raise StaleTimestamp(f"the token claims to be issued {int(-age)} s in the future; at most {skew} s allowed")
    if first_use is not None and not first_use(jti):
        raise ReplayedToken(f"the token {jti} was used before")
    return claims


def first_use_in(seen: set[str]) -> FirstUse:
    """A first_use hook that remembers jtis in a set (one process, tests, notebooks)."""
    def first_use(jti: str) -> bool:
        new = jti not in seen
        seen.add(jti)
        return new
    return first_use


def first_use_in_redis(redis: Redis, ttl: int = 2 * DEFAULT_MAX_AGE, owner: str = "1") -> FirstUse:
    """A first_use hook on Redis: SET NX with a TTL longer than max_age.

    A jti already held by the same `owner` (say, the delivery it came with) counts as new, so a job
    run again after a crash is not taken for a replay.
    """
    def first_use(jti: str) -> bool:
        key = f"sms:jti:{jti}"
        return bool(redis.set(key, owner, nx=True, ex=ttl)) or redis.get(key) in (owner, owner.encode())
    return first_use


def encode(claims: Mapping[str, Any], secret: str) -> str:
    """An HS256 JWT of `claims`, the way Vonage makes them."""
    header = b64url_encode(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    payload = b64url_encode(json.dumps(dict(claims), separators=(",", ":")).encode())
    return f"{header}.{payload}.{_hs256(f'{header}.{payload}', secret)}"


def sign(body: bytes, secret: str, *, iat: int | None = None, jti: str | None = None,
         api_key: str = "abcd1234", application_id: str = "aaaaaaaa-bbbb-cccc-dddd-0123456789ab") -> str:
    """The token Vonage would send with `body`: send it as `Authorization: Bearer <token>`."""
    return encode({"iat": int(time.time()) if iat is None else iat, "jti": jti or str(uuid.uuid4()), "iss": "Vonage",
                   "payload_hash": payload_hash(body), "api_key": api_key, "application_id": application_id}, secret)


def inbound_fields(body: bytes) -> dict[str, str]:
    """The fields the kit keeps from a Messages API inbound body: messageId, msisdn, to, text.

    Raises BadPayload (a ValueError) with a short reason when the body is not an inbound message.
    """
    try:
        message = json.loads(body.decode("utf-8"))
    except UnicodeDecodeError:
        raise BadPayload("the body is not valid UTF-8") from None
    except RecursionError:
        raise BadPayload("the JSON is nested too deeply") from None
    except ValueError:
        raise BadPayload("the body is not valid JSON") from None
    if not isinstance(message, dict):
        raise BadPayload(f"the JSON body must be an object, not {type(message).__name__}")
    kept = {"message_uuid": "messageId", "from": "msisdn", "text": "text"}
    wrong = [key for key in kept if not isinstance(message.get(key), str) or (key != "text" and not message[key])]
    if wrong:
        raise BadPayload(f"missing or not a string: {', '.join(wrong)}", status=422)
    fields = {name: message[key] for key, name in kept.items()}
    fields["to"] = message["to"] if isinstance(message.get("to"), str) else ""
    return fields
