"""solutions.other_schemes against each provider's published example and, where it ships one, its own SDK.

GitHub: the example of its docs ("Validating webhook deliveries") and the Python function printed there.
Slack: the example of its docs ("Verifying requests from Slack"), as slack_sdk's tests use it, and
slack_sdk's SignatureVerifier. Standard Webhooks: its libraries' test vector and the `standardwebhooks`
library. Stripe: the scheme of its docs and stripe-python's WebhookSignature.verify_header.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from datetime import datetime, timezone

import pytest
import stripe
from hypothesis import given, settings
from hypothesis import strategies as st
from slack_sdk.signature import SignatureVerifier
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from solutions.other_schemes import (
    DEFAULT_TOLERANCE,
    sign_github,
    sign_slack,
    sign_standard,
    sign_stripe,
    verify_github,
    verify_slack,
    verify_standard,
    verify_stripe,
)
from solutions.signatures import InvalidSignature, MissingSignature, MissingTimestamp, SignatureMismatch, StaleTimestamp

GITHUB_SECRET, GITHUB_BODY = "It's a Secret to Everybody", b"Hello, World!"
GITHUB_HEADER = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"

SLACK_SECRET, SLACK_TS = "8f742231b10e8888abcd99yyyzzz85a5", "1531420618"
SLACK_BODY = (b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V"
              b"&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text="
              b"&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN"
              b"&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c")
SLACK_SIG = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"

STANDARD_SECRET, STANDARD_ID = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek"
STANDARD_TS = "1614265330"
STANDARD_BODY, STANDARD_SIG = b'{"test": 2432232314}', "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
STANDARD_OTHER = "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc="  # from the library's multi-signature test

STRIPE_SECRET = "whsec_test_secret"  # stripe-python's test secret
STRIPE_BODY = b'{\n  "id": "evt_test_webhook",\n  "object": "event"\n}'


# GitHub ---------------------------------------------------------------------------------------------

def github_docs_verify(payload_body: bytes, secret_token: str, signature_header: str) -> bool:
    """The Python example of GitHub's docs, returning instead of raising HTTPException."""
    hash_object = hmac.new(secret_token.encode("utf-8"), msg=payload_body, digestmod=hashlib.sha256)
    expected_signature = "sha256=" + hash_object.hexdigest()
    return hmac.compare_digest(expected_signature, signature_header)


def test_github_docs_example():
    assert sign_github(GITHUB_BODY, GITHUB_SECRET) == GITHUB_HEADER
    verify_github(GITHUB_BODY, GITHUB_HEADER, GITHUB_SECRET)


@pytest.mark.parametrize("body,header,secret,error", [
    (GITHUB_BODY + b"!", GITHUB_HEADER, GITHUB_SECRET, SignatureMismatch),
    (GITHUB_BODY, GITHUB_HEADER, "It's a secret to everybody", SignatureMismatch),
    (GITHUB_BODY, GITHUB_HEADER.removeprefix("sha256="), GITHUB_SECRET, SignatureMismatch),
    (GITHUB_BODY, "sha1=" + GITHUB_HEADER.removeprefix("sha256="), GITHUB_SECRET, SignatureMismatch),
    (GITHUB_BODY, "", GITHUB_SECRET, MissingSignature),
    (GITHUB_BODY, None, GITHUB_SECRET, MissingSignature),
])
def test_github_refusals_are_precise(body, header, secret, error):
    with pytest.raises(error):
        verify_github(body, header, secret)


def test_github_has_no_timestamp_so_a_replayed_delivery_still_verifies():
    """Nothing in X-Hub-Signature-256 dates a delivery: the same one sent again a year later verifies.

    Only deduplicating on X-GitHub-Delivery (the same on a redelivery) stops a replay; the docstring says so.
    """
    for _ in range(2):
        verify_github(GITHUB_BODY, GITHUB_HEADER, GITHUB_SECRET)
    assert "X-GitHub-Delivery" in verify_github.__doc__


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=2000), st.text(min_size=1, max_size=40), st.binary(min_size=1, max_size=8))
def test_github_agrees_with_the_docs_function(body, secret, extra):
    header = sign_github(body, secret)
    assert github_docs_verify(body, secret, header)
    verify_github(body, header, secret)
    assert not github_docs_verify(body + extra, secret, header)
    with pytest.raises(SignatureMismatch):
        verify_github(body + extra, header, secret)


# Slack ----------------------------------------------------------------------------------------------

class Clock:
    def __init__(self, now: float) -> None:
        self.at = now

    def now(self) -> float:
        return self.at


def test_slack_docs_example():
    assert sign_slack(SLACK_TS, SLACK_BODY, SLACK_SECRET) == SLACK_SIG
    verify_slack(SLACK_BODY, SLACK_TS, SLACK_SIG, SLACK_SECRET, now=int(SLACK_TS))
    verifier = SignatureVerifier(SLACK_SECRET, clock=Clock(int(SLACK_TS)))
    headers = {"X-Slack-Request-Timestamp": SLACK_TS, "X-Slack-Signature": SLACK_SIG}
    assert verifier.is_valid_request(SLACK_BODY, headers)


@pytest.mark.parametrize("offset,accepted", [(0, True), (300, True), (301, False), (-300, True), (-301, False)])
def test_slack_five_minute_window_edges_match_slack_sdk(offset, accepted):
    now = int(SLACK_TS) + offset
    sdk = SignatureVerifier(SLACK_SECRET, clock=Clock(now)).is_valid(SLACK_BODY, SLACK_TS, SLACK_SIG)
    assert sdk is accepted
    if accepted:
        verify_slack(SLACK_BODY, SLACK_TS, SLACK_SIG, SLACK_SECRET, now=now)
    else:
        with pytest.raises(StaleTimestamp):
            verify_slack(SLACK_BODY, SLACK_TS, SLACK_SIG, SLACK_SECRET, now=now)


@pytest.mark.parametrize("body,ts,sig,error", [
    (SLACK_BODY + b"-", SLACK_TS, SLACK_SIG, SignatureMismatch),
    (SLACK_BODY, str(int(SLACK_TS) + 1), SLACK_SIG, SignatureMismatch),
    (SLACK_BODY, SLACK_TS, "v1=" + SLACK_SIG[3:], SignatureMismatch),
    (SLACK_BODY, SLACK_TS, None, MissingSignature),
    (SLACK_BODY, None, SLACK_SIG, MissingTimestamp),
    (SLACK_BODY, "1531420618.5", SLACK_SIG, MissingTimestamp),
    (SLACK_BODY, "-1", SLACK_SIG, MissingTimestamp),
])
def test_slack_refusals_are_precise(body, ts, sig, error):
    with pytest.raises(error):
        verify_slack(body, ts, sig, SLACK_SECRET, now=int(SLACK_TS))


def test_slack_checks_the_clock_when_no_now_is_given():
    with pytest.raises(StaleTimestamp):
        verify_slack(SLACK_BODY, SLACK_TS, SLACK_SIG, SLACK_SECRET)


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=500), st.text(min_size=1, max_size=40).filter(str.strip),
       st.integers(1_500_000_000, 2_000_000_000), st.integers(-600, 600), st.booleans())
def test_slack_agrees_with_slack_sdk(text, secret, ts, offset, tamper):
    body = text.encode()
    sig = sign_slack(str(ts), body, secret)
    if tamper:
        sig = sig[:-1] + ("0" if sig[-1] != "0" else "1")
    sdk = SignatureVerifier(secret, clock=Clock(ts + offset)).is_valid(body, str(ts), sig)
    try:
        verify_slack(body, str(ts), sig, secret, now=ts + offset)
        ours = True
    except InvalidSignature:
        ours = False
    assert ours is sdk is (abs(offset) <= 300 and not tamper)


# Standard Webhooks ------------------------------------------------------------------------------------

def test_standard_spec_example():
    assert sign_standard(STANDARD_ID, int(STANDARD_TS), STANDARD_BODY, STANDARD_SECRET) == STANDARD_SIG
    verify_standard(STANDARD_ID, STANDARD_TS, STANDARD_BODY, STANDARD_SIG, STANDARD_SECRET, now=int(STANDARD_TS))
    library = Webhook(STANDARD_SECRET)
    when = datetime.fromtimestamp(int(STANDARD_TS), tz=timezone.utc)
    assert library.sign(STANDARD_ID, when, STANDARD_BODY.decode()) == STANDARD_SIG


@pytest.mark.parametrize("header", [
    f"{STANDARD_OTHER} {STANDARD_SIG}",
    f"{STANDARD_SIG} {STANDARD_OTHER}",
    f"v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= v2,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= {STANDARD_SIG}",
    f"v1a,hnO3f9T8Ytu9HwrXslvumlUpqtNVqkhqw/enGzPCXe5BdqzCInXqYXFymVJaA7AZdpXwVLPo3mNl8EM+m7TBAg== {STANDARD_SIG}",
    f"garbage {STANDARD_SIG}",
])
def test_standard_accepts_any_one_v1_among_several_during_rotation(header):
    verify_standard(STANDARD_ID, STANDARD_TS, STANDARD_BODY, header, STANDARD_SECRET, now=int(STANDARD_TS))


@pytest.mark.parametrize("msg_id,ts,body,header,error", [
    (STANDARD_ID, STANDARD_TS, STANDARD_BODY, STANDARD_OTHER, SignatureMismatch),
    (STANDARD_ID, STANDARD_TS, STANDARD_BODY, "v2," + STANDARD_SIG[3:], MissingSignature),
    (STANDARD_ID, STANDARD_TS, STANDARD_BODY, "v1a," + STANDARD_SIG[3:], MissingSignature),
    (STANDARD_ID, STANDARD_TS, STANDARD_BODY, "", MissingSignature),
    (STANDARD_ID, STANDARD_TS, STANDARD_BODY, None, MissingSignature),
    (STANDARD_ID, STANDARD_TS, b'{"test":2432232314}', STANDARD_SIG, SignatureMismatch),
    ("msg_other", STANDARD_TS, STANDARD_BODY, STANDARD_SIG, SignatureMismatch),
    (STANDARD_ID, str(int(STANDARD_TS) + 1), STANDARD_BODY, STANDARD_SIG, SignatureMismatch),
    (STANDARD_ID, "", STANDARD_BODY, STANDARD_SIG, MissingTimestamp),
])
def test_standard_refusals_are_precise(msg_id, ts, body, header, error):
    with pytest.raises(error):
        verify_standard(msg_id, ts, body, header, STANDARD_SECRET, now=int(STANDARD_TS))


@pytest.mark.parametrize("offset,accepted", [(300, True), (301, False), (-300, True), (-301, False)])
def test_standard_tolerance_edges(offset, accepted):
    now = int(STANDARD_TS) + offset
    call = lambda: verify_standard(STANDARD_ID, STANDARD_TS, STANDARD_BODY, STANDARD_SIG, STANDARD_SECRET, now=now)  # noqa: E731
    if accepted:
        call()
    else:
        with pytest.raises(StaleTimestamp):
            call()


def test_standard_secret_must_be_base64():
    with pytest.raises(ValueError):
        sign_standard(STANDARD_ID, 1, STANDARD_BODY, "whsec_not base64!")


secrets_b64 = st.binary(min_size=24, max_size=64).map(lambda key: "whsec_" + base64.b64encode(key).decode())
ids = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_", min_size=1, max_size=30)


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=500), secrets_b64, secrets_b64, ids, st.booleans(), st.booleans())
def test_standard_agrees_with_the_standardwebhooks_library(text, secret, old_secret, msg_id, rotating, tamper):
    body, ts = text.encode(), str(int(time.time()))
    header = sign_standard(msg_id, ts, body, secret)
    if rotating:
        header = f"{sign_standard(msg_id, ts, body, old_secret)} {header}"
    sent = body + b"!" if tamper else body
    headers = {"webhook-id": msg_id, "webhook-timestamp": ts, "webhook-signature": header}
    try:
        Webhook(secret).verify(sent, headers, json_parse=False)
        library = True
    except WebhookVerificationError:
        library = False
    try:
        verify_standard(msg_id, ts, sent, header, secret)
        ours = True
    except InvalidSignature:
        ours = False
    assert ours is library is (not tamper)


# Stripe ---------------------------------------------------------------------------------------------

def stripe_v1(timestamp: int, body: bytes, secret: str) -> str:
    """Stripe's documented scheme: the hex HMAC-SHA256 of "<timestamp>.<body>" with the endpoint's secret."""
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def test_stripe_documented_scheme_and_sdk_header():
    t = 1492774577
    header = sign_stripe(t, STRIPE_BODY, STRIPE_SECRET)
    assert header == f"t={t},v1={stripe_v1(t, STRIPE_BODY, STRIPE_SECRET)}"
    assert header == stripe.WebhookSignature.generate_signature_header(STRIPE_BODY.decode(), STRIPE_SECRET, t)
    verify_stripe(STRIPE_BODY, header, STRIPE_SECRET, now=t)


@pytest.mark.parametrize("header", [
    "t={t},v1={v1},v0=6ffbb59b2300aae63f272406069a9788598b792a944a07aba816edb039989a39",
    "t={t},v1={wrong},v1={v1}",
    "v1={v1},t={t}",
])
def test_stripe_accepts_any_v1_and_ignores_other_schemes(header):
    t = int(time.time())
    v1, wrong = stripe_v1(t, STRIPE_BODY, STRIPE_SECRET), stripe_v1(t, STRIPE_BODY, "whsec_old")
    header = header.format(t=t, v1=v1, wrong=wrong)
    verify_stripe(STRIPE_BODY, header, STRIPE_SECRET)
    assert stripe.WebhookSignature.verify_header(STRIPE_BODY, header, STRIPE_SECRET, tolerance=300)


@pytest.mark.parametrize("header,error", [
    ("t={t},v0={v1}", MissingSignature),
    ("t={t},v2={v1}", MissingSignature),
    ("t={t}", MissingSignature),
    ("", MissingSignature),
    ("v1={v1}", MissingTimestamp),
    ("t=soon,v1={v1}", MissingTimestamp),
    ("t={t},t={t},v1={v1}", MissingTimestamp),
    ("t={t},v1={wrong}", SignatureMismatch),
    ("t={later},v1={v1}", SignatureMismatch),
])
def test_stripe_refusals_are_precise(header, error):
    t = 1492774577
    v1, wrong = stripe_v1(t, STRIPE_BODY, STRIPE_SECRET), stripe_v1(t, STRIPE_BODY, "whsec_old")
    with pytest.raises(error):
        verify_stripe(STRIPE_BODY, header.format(t=t, later=t + 1, v1=v1, wrong=wrong), STRIPE_SECRET, now=t)


@pytest.mark.parametrize("age,accepted", [(0, True), (300, True), (301, False), (-300, True), (-301, False)])
def test_stripe_default_tolerance_is_300_seconds(age, accepted):
    t = 1492774577
    header = sign_stripe(t, STRIPE_BODY, STRIPE_SECRET)
    assert DEFAULT_TOLERANCE == stripe.Webhook.DEFAULT_TOLERANCE == 300
    if accepted:
        verify_stripe(STRIPE_BODY, header, STRIPE_SECRET, now=t + age)
    else:
        with pytest.raises(StaleTimestamp):
            verify_stripe(STRIPE_BODY, header, STRIPE_SECRET, now=t + age)


def test_a_tolerance_of_zero_is_not_off():
    """stripe-python reads `if tolerance and ...`: a tolerance of 0 skips the check. Here 0 means "this second"."""
    t = int(time.time()) - 3600
    header = sign_stripe(t, STRIPE_BODY, STRIPE_SECRET)
    assert stripe.WebhookSignature.verify_header(STRIPE_BODY, header, STRIPE_SECRET, tolerance=0)
    with pytest.raises(StaleTimestamp):
        verify_stripe(STRIPE_BODY, header, STRIPE_SECRET, tolerance=0)
    with pytest.raises(StaleTimestamp):
        verify_stripe(STRIPE_BODY, header, STRIPE_SECRET, tolerance=0, now=t + 1)
    verify_stripe(STRIPE_BODY, header, STRIPE_SECRET, tolerance=0, now=t)
    verify_stripe(STRIPE_BODY, header, STRIPE_SECRET, tolerance=None)
    for zero_is_strict in (
        lambda: verify_slack(SLACK_BODY, SLACK_TS, SLACK_SIG, SLACK_SECRET, tolerance=0, now=int(SLACK_TS) + 1),
        lambda: verify_standard(STANDARD_ID, STANDARD_TS, STANDARD_BODY, STANDARD_SIG, STANDARD_SECRET, tolerance=0,
                                now=int(STANDARD_TS) + 1),
    ):
        with pytest.raises(StaleTimestamp):
            zero_is_strict()


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=500), st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_", min_size=1, max_size=40),
       st.one_of(st.integers(0, 290), st.integers(310, 4000)), st.booleans(), st.booleans())
def test_stripe_agrees_with_stripe_python(text, secret, age, rotating, tamper):
    body, t = text.encode(), int(time.time()) - age
    header = sign_stripe(t, body, secret)
    if rotating:
        header += ",v1=" + stripe_v1(t, body, secret + "-old")
    sent = body + b" " if tamper else body
    try:
        stripe.WebhookSignature.verify_header(sent, header, secret, tolerance=300)
        sdk = True
    except stripe.SignatureVerificationError:
        sdk = False
    try:
        verify_stripe(sent, header, secret)
        ours = True
    except InvalidSignature:
        ours = False
    assert ours is sdk is (age <= 300 and not tamper)


# Pitfalls shared by every raw-body scheme --------------------------------------------------------------

RAW = b'{"event": "ping",  "id": 7,\n "text": "caf\\u00e9"}'
SCHEMES = {
    "github": (lambda body: verify_github(body, sign_github(RAW, "s3cret"), "s3cret")),
    "slack": (lambda body: verify_slack(body, "1700000000", sign_slack("1700000000", RAW, "s3cret"), "s3cret",
                                        now=1_700_000_000)),
    "standard": (lambda body: verify_standard("msg_1", "1700000000", body, sign_standard("msg_1", 1_700_000_000, RAW,
                                              STANDARD_SECRET), STANDARD_SECRET, now=1_700_000_000)),
    "stripe": (lambda body: verify_stripe(body, sign_stripe(1_700_000_000, RAW, "s3cret"), "s3cret",
                                          now=1_700_000_000)),
}


@pytest.mark.parametrize("scheme", SCHEMES)
def test_re_serialized_json_breaks_a_raw_body_signature(scheme):
    """The same JSON, parsed then dumped again, is other bytes: verify the bytes received, before parsing."""
    SCHEMES[scheme](RAW)
    reserialized = json.dumps(json.loads(RAW)).encode()
    assert json.loads(reserialized) == json.loads(RAW) and reserialized != RAW
    with pytest.raises(SignatureMismatch):
        SCHEMES[scheme](reserialized)


def test_every_refusal_is_an_invalid_signature_and_never_shows_the_secret():
    secret = "super-secret-value-123"
    calls = [
        lambda: verify_github(b"x", "sha256=00", secret),
        lambda: verify_slack(b"x", "1", "v0=00", secret),
        lambda: verify_slack(b"x", str(int(time.time()) - 999), sign_slack(str(int(time.time()) - 999), b"x", secret),
                             secret),
        lambda: verify_stripe(b"x", "t=1,v1=00", secret),
        lambda: verify_standard("id", "1", b"x", "v1,AAAA", "whsec_" + base64.b64encode(secret.encode()).decode()),
    ]
    for call in calls:
        with pytest.raises(InvalidSignature) as caught:
            call()
        assert secret not in str(caught.value)
