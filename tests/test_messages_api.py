"""solutions.messages_api against Vonage's published tokens, PyJWT and vonage-jwt's verify_signature.

Vonage's "Signed webhooks" page (Messages API) gives the claims and the header; the test suites of
its Python SDK (vonage-jwt) and Java SDK give tokens with their secrets; the Java SDK's
InboundMessageTest gives an inbound SMS body. vonage-jwt only checks the signature (it is what
Vonage's Python code snippet calls), so the tests also show what it lets through and ours does not.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import jwt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from vonage_jwt import VonageVerifyJwtError
from vonage_jwt import verify_signature as vonage_verify_signature

from solutions.messages_api import (
    DEFAULT_MAX_AGE,
    DEFAULT_SKEW,
    BadToken,
    MissingToken,
    PayloadHashMismatch,
    ReplayedToken,
    WrongAlgorithm,
    b64url_decode,
    b64url_encode,
    bearer_token,
    encode,
    first_use_in,
    first_use_in_redis,
    inbound_fields,
    payload_hash,
    sign,
    verify,
    verify_signature,
)
from solutions.payloads import BadPayload
from solutions.signatures import InvalidSignature, SignatureMismatch, StaleTimestamp

pytestmark = pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")  # short random secrets
ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

# From the test suite of vonage-jwt (Vonage's Python SDK, jwt/tests/test_verify_jwt.py).
PYTHON_SDK_TOKEN = ("eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJPbmxpbmUgSldUIEJ1aWxkZXIiLCJpYXQiOjE2OTc2MzQ2ODAs"
                    "ImV4cCI6MzMyNTQ1NDA4MjgsImF1ZCI6IiIsInN1YiI6IiJ9.88vJc3I2HhuqEDixHXVhc9R30tA6U_HQHZTC29y6CGM")
PYTHON_SDK_SECRET = "qwertyuiopasdfghjklzxcvbnm123456"
# From the test suite of Vonage's Java SDK (MessagesClientTest.testVerifySignature).
JAVA_SDK_SECRET = "XsA09z2MhUxYcdbXaUX3aTT7TzGmnCLfkdILf0NIyC9hN9criTEUdlI3OZ5hRjR"
JAVA_SDK_HEADER, JAVA_SDK_PAYLOAD = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9", "eyJzdWIiOiJTaW5hIiwibmFtZSI6IkphdmFfU0RLIiwiaWF0IjoxNjk4NjgwMzkyfQ")
JAVA_SDK_TOKEN = f"{JAVA_SDK_HEADER}.{JAVA_SDK_PAYLOAD}.4qJpi46NSYURiLI1xoLIfGRygA8IUI2QSG9P2Kus1Oo"
JAVA_SDK_BAD_TOKEN = f"{JAVA_SDK_HEADER}.{JAVA_SDK_PAYLOAD}.XsaXHXqxe2kfIbPy-JH2J6hfbHnEv8jdWsOhEuvzU98"
# The "Sample Signed JWT" claims of Vonage's Messages API "Signed webhooks" page.
DOCS_CLAIMS = {"iat": 1587494962, "jti": "c5ba8f24-1a14-4c10-bfdf-3fbe8ce511b5", "iss": "Vonage",
               "payload_hash": "d6c0e74b5857df20e3b7e51b30c0c2a40ec73a77879b6f074ddc7a2317dd031b",
               "api_key": "a1b2c3d", "application_id": "aaaaaaaa-bbbb-cccc-dddd-0123456789ab"}
# The inbound SMS of the Java SDK's InboundMessageTest, with its usage and sms metadata.
INBOUND = json.dumps({
    "message_uuid": "aaaaaaaa-bbbb-4ccc-8ddd-0123456789ab", "to": "447700900000", "from": "447700900001",
    "timestamp": "2020-01-01T15:43:21Z", "channel": "sms", "message_type": "text",
    "client_ref": "abc-123", "text": "Hello, world!", "usage": {"currency": "EUR", "price": "0.0333"},
    "sms": {"num_messages": "2", "total_count": "3", "keyword": "HELLO"}}, indent=2).encode()
SECRET = "a-signature-secret-of-32-bytes!!"
NOW = 1_700_000_000


def part(value: object) -> str:
    return b64url_encode(json.dumps(value, separators=(",", ":")).encode())


def hand_made(header: dict, claims: dict, secret: str = SECRET, digest=hashlib.sha256) -> str:
    """A token with any header, signed with HMAC-`digest`, to try what a verifier must refuse."""
    signing_input = f"{part(header)}.{part(claims)}"
    mac = hmac.new(secret.encode(), signing_input.encode(), digest).digest()
    return f"{signing_input}.{b64url_encode(mac)}"


def vonage_claims(body: bytes = INBOUND, iat: int = NOW, **extra: object) -> dict:
    return {"iat": iat, "jti": "5f6c8d7e-0000-4000-8000-000000000001", "iss": "Vonage",
            "payload_hash": hashlib.sha256(body).hexdigest(), "api_key": "abcd1234",
            "application_id": "aaaaaaaa-bbbb-cccc-dddd-0123456789ab", **extra}


# The signature: Vonage's own tokens ---------------------------------------------------------------------

def test_vonage_python_sdk_token():
    claims = verify_signature(PYTHON_SDK_TOKEN, PYTHON_SDK_SECRET)
    assert claims["iss"] == "Online JWT Builder" and claims["iat"] == 1697634680
    assert vonage_verify_signature(PYTHON_SDK_TOKEN, PYTHON_SDK_SECRET) is True
    with pytest.raises(SignatureMismatch):
        verify_signature(PYTHON_SDK_TOKEN, "asdf")
    with pytest.raises(BadToken):
        verify_signature("asdf", PYTHON_SDK_SECRET)


def test_vonage_java_sdk_tokens():
    assert verify_signature(JAVA_SDK_TOKEN, JAVA_SDK_SECRET) == {"sub": "Sina", "name": "Java_SDK", "iat": 1698680392}
    with pytest.raises(SignatureMismatch):
        verify_signature(JAVA_SDK_BAD_TOKEN, JAVA_SDK_SECRET)
    assert vonage_verify_signature(JAVA_SDK_BAD_TOKEN, JAVA_SDK_SECRET) is False


def test_the_docs_sample_claims_round_trip_through_pyjwt():
    token = jwt.encode(DOCS_CLAIMS, SECRET, algorithm="HS256", headers={"typ": "JWT"})
    assert verify_signature(token, SECRET) == DOCS_CLAIMS
    with pytest.raises(PayloadHashMismatch):  # the page does not show the body it hashed
        verify(token, INBOUND, SECRET, now=DOCS_CLAIMS["iat"])


# The algorithm: HS256 and nothing else ------------------------------------------------------------------

@pytest.mark.parametrize("header", [
    {"alg": "none", "typ": "JWT"}, {"alg": "None"}, {"alg": "HS512"}, {"alg": "HS384"}, {"alg": "RS256"},
    {"alg": "hs256"}, {"alg": "HS256 "}, {"typ": "JWT"}, {"alg": None}, {"alg": ["HS256"]},
])
def test_a_token_naming_another_algorithm_is_refused_even_with_a_valid_hs256_signature(header):
    with pytest.raises(WrongAlgorithm):
        verify_signature(hand_made(header, vonage_claims()), SECRET)


def test_alg_none_with_no_signature_is_refused_by_ours_and_by_vonage_jwt():
    token = jwt.encode(vonage_claims(), None, algorithm="none")
    assert token.endswith(".")
    with pytest.raises(WrongAlgorithm):
        verify(token, INBOUND, SECRET, now=NOW)
    with pytest.raises(VonageVerifyJwtError):
        vonage_verify_signature(token, SECRET)


def test_a_genuine_hs512_token_is_refused():
    token = jwt.encode(vonage_claims(), SECRET * 2, algorithm="HS512")
    assert jwt.decode(token, SECRET * 2, algorithms=["HS512"])["iss"] == "Vonage"
    assert hand_made({"alg": "HS512", "typ": "JWT"}, vonage_claims(), SECRET * 2, hashlib.sha512) == token
    with pytest.raises(WrongAlgorithm):
        verify(token, INBOUND, SECRET * 2, now=NOW)


@pytest.mark.parametrize("token", [
    "", "a.b", "a.b.c.d", f"{JAVA_SDK_HEADER}.{JAVA_SDK_PAYLOAD}", f"{JAVA_SDK_HEADER}=.{JAVA_SDK_PAYLOAD}.x",
    f"{JAVA_SDK_HEADER[:-1]}+.{JAVA_SDK_PAYLOAD}.x", f"{part([1, 2])}.{JAVA_SDK_PAYLOAD}.x",
    f"{b64url_encode(b'not json')}.{JAVA_SDK_PAYLOAD}.x", f"{b64url_encode(bytes([255, 254]))}.{JAVA_SDK_PAYLOAD}.x",
    "e.e.e",
])
def test_malformed_tokens_are_bad_tokens(token):
    with pytest.raises(BadToken):
        verify_signature(token, SECRET)


@pytest.mark.parametrize("spoil", [lambda h: h[:8] + "*" + h[8:], lambda h: h[:8] + "!" + h[8:],
                                   lambda h: h + "==", lambda h: h[:8] + " " + h[8:]])
def test_a_signed_token_with_characters_outside_base64url_is_a_bad_token(spoil):
    """A lenient base64 decoder skips such characters and reads the same header: a JWT has none of them."""
    header = spoil(part({"alg": "HS256", "typ": "JWT"}))
    assert json.loads(base64.urlsafe_b64decode(header + "==")) == {"alg": "HS256", "typ": "JWT"}
    signing_input = f"{header}.{part(vonage_claims())}"
    signature = b64url_encode(hmac.new(SECRET.encode(), signing_input.encode(), hashlib.sha256).digest())
    with pytest.raises(BadToken):
        verify_signature(f"{signing_input}.{signature}", SECRET)


def test_a_signed_token_whose_claims_are_not_an_object_is_a_bad_token():
    with pytest.raises(BadToken, match="claims is not a JSON object"):
        verify_signature(hand_made({"alg": "HS256"}, ["iat", 1]), SECRET)  # type: ignore[arg-type]


def test_base64url_round_trip_without_padding():
    for data in (b"", b"f", b"fo", b"foo", b"\xfb\xff\xfe"):
        encoded = b64url_encode(data)
        assert "=" not in encoded and "+" not in encoded and "/" not in encoded
        assert b64url_decode(encoded) == data == base64.urlsafe_b64decode(encoded + "==")


# The claims: payload_hash, iat, jti, iss ------------------------------------------------------------------

def test_a_callback_signed_as_vonage_signs_it_is_accepted():
    token = sign(INBOUND, SECRET, iat=NOW, jti="jti-1")
    claims = verify(token, INBOUND, SECRET, now=NOW, first_use=first_use_in(set()))
    assert claims["jti"] == "jti-1" and claims["payload_hash"] == payload_hash(INBOUND)
    assert jwt.get_unverified_header(token) == {"alg": "HS256", "typ": "JWT"}
    assert set(jwt.decode(token, SECRET, algorithms=["HS256"], options={"verify_iat": False})) == set(DOCS_CLAIMS)


def test_the_right_signature_with_the_wrong_payload_hash_is_refused_though_vonage_jwt_accepts_it():
    token = sign(INBOUND, SECRET, iat=int(time.time()))
    tampered = INBOUND.replace(b"Hello, world!", b"Send me your password")
    assert vonage_verify_signature(token, SECRET) is True  # it checks the signature only
    with pytest.raises(PayloadHashMismatch):
        verify(token, tampered, SECRET)


def test_re_serialized_json_breaks_the_payload_hash():
    token = sign(INBOUND, SECRET, iat=NOW)
    reserialized = json.dumps(json.loads(INBOUND)).encode()
    assert json.loads(reserialized) == json.loads(INBOUND) and reserialized != INBOUND
    with pytest.raises(PayloadHashMismatch):
        verify(token, reserialized, SECRET, now=NOW)


def test_a_token_without_payload_hash_is_refused_though_vonage_jwt_accepts_it():
    claims = {k: v for k, v in vonage_claims(iat=int(time.time())).items() if k != "payload_hash"}
    token = jwt.encode(claims, SECRET, algorithm="HS256")
    assert vonage_verify_signature(token, SECRET) is True
    with pytest.raises(PayloadHashMismatch, match="no payload_hash"):
        verify(token, INBOUND, SECRET)


def test_payload_hash_is_compared_case_insensitively():
    token = encode(vonage_claims(payload_hash=payload_hash(INBOUND).upper()), SECRET)
    verify(token, INBOUND, SECRET, now=NOW)


@pytest.mark.parametrize("age,accepted", [
    (0, True), (DEFAULT_MAX_AGE, True), (DEFAULT_MAX_AGE + 1, False), (86_400, False),
    (-DEFAULT_SKEW, True), (-DEFAULT_SKEW - 1, False), (-3600, False),
])
def test_iat_window_edges(age, accepted):
    token = sign(INBOUND, SECRET, iat=NOW)
    if accepted:
        verify(token, INBOUND, SECRET, now=NOW + age)
    else:
        with pytest.raises(StaleTimestamp):
            verify(token, INBOUND, SECRET, now=NOW + age)


def test_a_day_old_token_is_refused_though_vonage_jwt_accepts_it():
    token = sign(INBOUND, SECRET, iat=int(time.time()) - 86_400)
    assert vonage_verify_signature(token, SECRET) is True
    with pytest.raises(StaleTimestamp, match="ago"):
        verify(token, INBOUND, SECRET)


def test_max_age_and_skew_of_zero_mean_this_second_not_off():
    token = sign(INBOUND, SECRET, iat=NOW)
    verify(token, INBOUND, SECRET, max_age=0, skew=0, now=NOW)
    for now in (NOW + 1, NOW - 1):
        with pytest.raises(StaleTimestamp):
            verify(token, INBOUND, SECRET, max_age=0, skew=0, now=now)


@pytest.mark.parametrize("change,match", [
    ({"iss": "Vonage2"}, "issuer"), ({"iss": None}, "issuer"), ({"iat": None}, "iat"), ({"iat": "1700000000"}, "iat"),
    ({"iat": True}, "iat"), ({"jti": None}, "jti"), ({"jti": ""}, "jti"), ({"jti": 7}, "jti"),
])
def test_claims_vonage_always_sends_are_required(change, match):
    claims = {k: v for k, v in {**vonage_claims(), **change}.items() if v is not None}
    with pytest.raises(BadToken, match=match):
        verify(encode(claims, SECRET), INBOUND, SECRET, now=NOW)


def test_a_jti_is_used_once():
    first_use = first_use_in(set())
    token = sign(INBOUND, SECRET, iat=NOW, jti="once")
    verify(token, INBOUND, SECRET, now=NOW, first_use=first_use)
    with pytest.raises(ReplayedToken):
        verify(token, INBOUND, SECRET, now=NOW, first_use=first_use)
    verify(sign(INBOUND, SECRET, iat=NOW, jti="twice"), INBOUND, SECRET, now=NOW, first_use=first_use)


def test_a_refused_token_does_not_use_up_its_jti():
    first_use = first_use_in(set())
    with pytest.raises(StaleTimestamp):
        verify(sign(INBOUND, SECRET, iat=NOW - 3600, jti="j"), INBOUND, SECRET, now=NOW, first_use=first_use)
    with pytest.raises(PayloadHashMismatch):
        verify(sign(b"other", SECRET, iat=NOW, jti="j"), INBOUND, SECRET, now=NOW, first_use=first_use)
    verify(sign(INBOUND, SECRET, iat=NOW, jti="j"), INBOUND, SECRET, now=NOW, first_use=first_use)


def test_first_use_in_redis_is_set_nx_with_a_ttl_and_lets_the_same_owner_run_again(redis):
    first_use = first_use_in_redis(redis, ttl=600, owner="delivery-1")
    assert first_use("abc") is True
    assert 0 < redis.ttl("sms:jti:abc") <= 600
    assert first_use("abc") is True  # the same delivery, processed again after a crash
    assert first_use_in_redis(redis, ttl=600, owner="delivery-2")("abc") is False
    token = sign(INBOUND, SECRET, iat=NOW, jti="r-1")
    verify(token, INBOUND, SECRET, now=NOW, first_use=first_use_in_redis(redis, owner="d1"))
    with pytest.raises(ReplayedToken):
        verify(token, INBOUND, SECRET, now=NOW, first_use=first_use_in_redis(redis, owner="d2"))
    assert first_use_in_redis(redis)("x") is True and 0 < redis.ttl("sms:jti:x") <= 2 * DEFAULT_MAX_AGE


# An unsigned callback -----------------------------------------------------------------------------------

@pytest.mark.parametrize("authorization", [None, "", "Bearer", "Bearer   ", "Basic dXNlcjpwYXNz", "Token abc"])
def test_an_unsigned_callback_is_a_missing_token(authorization):
    with pytest.raises(MissingToken):
        bearer_token(authorization)


def test_an_unsigned_callback_is_refused_and_to_be_answered_with_5xx_as_vonage_says():
    """Vonage: "it is possible that the callback service will send an unsigned callback. By returning an
    HTTP 5xx response, a retry will be triggered" (Messages API, Signed webhooks)."""
    for token in (None, ""):
        with pytest.raises(MissingToken):
            verify(token, INBOUND, SECRET, now=NOW)
    assert "5xx" in (MissingToken.__doc__ or "")


def test_bearer_token_reads_the_scheme_case_insensitively():
    assert bearer_token("Bearer abc.def.ghi") == "abc.def.ghi"
    assert bearer_token("bearer  abc.def.ghi ") == "abc.def.ghi"


# What the kit keeps ---------------------------------------------------------------------------------------

def test_inbound_fields_of_a_messages_api_inbound_sms():
    assert inbound_fields(INBOUND) == {"messageId": "aaaaaaaa-bbbb-4ccc-8ddd-0123456789ab", "msisdn": "447700900001",
                                       "to": "447700900000", "text": "Hello, world!"}
    assert inbound_fields(b'{"message_uuid": "u", "from": "44", "text": ""}') == {
        "messageId": "u", "msisdn": "44", "to": "", "text": ""}


@pytest.mark.parametrize("body,status,reason", [
    (b"not json", 400, "not valid JSON"), (b"\xff", 400, "not valid UTF-8"), (b"[1]", 400, "object"),
    ('{"message_uuid": "u", "from": "44", "text": "hi"}'.encode("utf-16"), 400, "not valid UTF-8"),
    (b"[" * 60_000, 400, "nested too deeply"),
    (b'{"from": "44", "text": "hi"}', 422, "message_uuid"), (b'{"message_uuid": "u", "text": "hi"}', 422, "from"),
    (b'{"message_uuid": "u", "from": "44"}', 422, "text"), (b'{"message_uuid": 7, "from": "44", "text": "x"}', 422,
                                                            "message_uuid"),
    (b'{"message_uuid": "", "from": "44", "text": "x"}', 422, "message_uuid"),
])
def test_inbound_fields_says_what_is_wrong(body, status, reason):
    with pytest.raises(BadPayload, match=reason) as caught:
        inbound_fields(body)
    assert caught.value.status == status


# Oracles on random payloads --------------------------------------------------------------------------------

json_bodies = st.dictionaries(st.text(max_size=10), st.text(max_size=40), max_size=8).map(
    lambda fields: json.dumps(fields).encode())
bodies = st.one_of(st.binary(max_size=2000), json_bodies)
secrets_ = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1, max_size=64)
jtis = st.uuids().map(str)


@settings(max_examples=100, deadline=None)
@given(bodies, secrets_, jtis)
def test_tokens_made_by_pyjwt_verify_with_ours_and_with_vonage_jwt(body, secret, jti):
    claims = vonage_claims(body, iat=int(time.time()), jti=jti)
    token = jwt.encode(claims, secret, algorithm="HS256")
    assert vonage_verify_signature(token, secret) is True
    assert verify(token, body, secret, first_use=first_use_in(set())) == claims


@settings(max_examples=100, deadline=None)
@given(bodies, secrets_, jtis)
def test_tokens_made_by_ours_decode_with_pyjwt_and_vonage_jwt(body, secret, jti):
    iat = int(time.time())
    token = sign(body, secret, iat=iat, jti=jti)
    assert vonage_verify_signature(token, secret) is True
    claims = jwt.decode(token, secret, algorithms=["HS256"])
    assert claims["payload_hash"] == hashlib.sha256(body).hexdigest() and claims["jti"] == jti
    assert claims == verify(token, body, secret)


@settings(max_examples=100, deadline=None)
@given(bodies, secrets_, secrets_, st.integers(0, 200))
def test_a_wrong_secret_or_a_changed_token_is_refused_by_both(body, secret, other, position):
    token = jwt.encode(vonage_claims(body, iat=int(time.time())), secret, algorithm="HS256")
    if other != secret:
        assert vonage_verify_signature(token, other) is False
        with pytest.raises(SignatureMismatch):
            verify(token, body, other)
    head, claims, signature = token.split(".")
    i = position % len(signature)
    flipped = ALPHABET[ALPHABET.index(signature[i]) ^ 32]  # the sextet's top bit: always a bit of the digest
    changed = f"{head}.{claims}.{signature[:i]}{flipped}{signature[i + 1:]}"
    assert vonage_verify_signature(changed, secret) is False
    with pytest.raises(SignatureMismatch):
        verify(changed, body, secret)


def test_a_signature_re_encoded_with_other_spare_bits_is_refused_by_both():
    """The 43rd character of an HS256 signature carries 4 bits of the digest and 2 spare bits. Ours compares
    the token's text with the canonical encoding; PyJWT refuses non-canonical base64 when it decodes."""
    token = next(t for t in (sign(INBOUND, SECRET, iat=int(time.time())) for _ in range(500)) if t.endswith(("A", "E")))
    spare = token[:-1] + ALPHABET[ALPHABET.index(token[-1]) + 1]
    with pytest.raises(VonageVerifyJwtError):
        vonage_verify_signature(spare, SECRET)
    with pytest.raises(SignatureMismatch):
        verify(spare, INBOUND, SECRET)


def test_every_refusal_is_an_invalid_signature_and_never_shows_the_secret():
    secret = "super-secret-value-123-super-secret"
    token = sign(INBOUND, secret, iat=NOW)
    calls = [lambda: verify(None, INBOUND, secret), lambda: verify("x", INBOUND, secret),
             lambda: verify(token, INBOUND, secret + "!", now=NOW), lambda: verify(token, b"", secret, now=NOW),
             lambda: verify(token, INBOUND, secret, now=NOW + 9999),
             lambda: verify(hand_made({"alg": "none"}, {}, secret), INBOUND, secret)]
    for call in calls:
        with pytest.raises(InvalidSignature) as caught:
            call()
        assert secret not in str(caught.value)
