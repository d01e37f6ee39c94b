"""solutions.signatures against Vonage's published vectors and Vonage's own SDKs."""
from __future__ import annotations

import hashlib
import hmac
import time
from urllib.parse import urlencode

import nexmo
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from vonage_http_client.auth import Auth

from solutions.signatures import (
    METHODS,
    InvalidSignature,
    MissingSignature,
    MissingTimestamp,
    SignatureMismatch,
    StaleTimestamp,
    sign,
    signing_string,
    verify,
)

INBOUND = {
    "message-timestamp": "2013-11-21 15:27:30", "messageId": "020000001B0FE827",
    "msisdn": "14843472194", "text": "Test again", "timestamp": "1385047698",
    "to": "13239877404", "type": "text",
}
# From the test suite of Vonage's PHP SDK (test/Client/SignatureTest.php).
PHP_INBOUND = [
    ("md5hash", "d2e7b1dc968737c5998ad624e02f90b7"),
    ("md5", "DDEBD46008C2D4E93CCE578A332A52D5"),
    ("sha1", "27D0D05C2876C7CB1720DBCDBA4D492E1E55C09A"),
    ("sha256", "DDB8397C2B90AAC7F3882D306475C9A5058C92322EEF43C92B298B6E0FC0D330"),
    ("sha512", "E0D3C650F8C9D1A5C174D10DDDBFB003E561F59B265616208B0487C5D819481CD3C311D59CF6165ECD1139622D5BA3A256C0D763AC4A9AD9144B5A426B94FE82"),  # noqa: E501
]
PHP_MORE = [
    ("f0bfad43bd90cf1ea1f1525c18ba4dab", "", {
        "message-timestamp": "2013-11-21 17:31:42", "messageId": "030000002A264B8B", "msisdn": "14843472194",
        "text": "Message test", "timestamp": "1385055102", "to": "14849970568", "type": "text"}),
    ("ff933bf31c79ab3fc6a38d100191c48f", "my_secret_key_for_testing", {
        "keyword": "TESTINGS", "message-timestamp": "2017-04-04 23:05:22", "messageId": "0C00000027217D5B",
        "msisdn": "14843472194", "nonce": "c4ab6ed2-9bf5-48a0-af91-107e29bdd399", "text": "Testings",
        "timestamp": "1491347122", "to": "12192259404", "type": "text"}),
    ("e06d9763e3fd0b9c31beb5fc2fcb011c", "my_secret_key_for_testing", {
        "keyword": "TEST", "message-timestamp": "2017-04-04 22:57:47", "messageId": "0B00000042AC53BD",
        "msisdn": "14843472194", "nonce": "929d6744-bd28-42c8-b6cf-31d5b4f43732", "text": "Test with & and =",
        "timestamp": "1491346667", "to": "12192259404", "type": "text"}),
]
PHP_OUTBOUND = {"api_key": "fake_api_key", "to": "14155550100", "from": "AcmeInc",
                "text": "Test From Nexmo", "type": "text", "timestamp": "1540924779"}
PHP_HMAC = [
    ("md5", "51CDAFEBB4BBCE9525B195C1617CB8D2"),
    ("sha1", "0162AEC64BC183B2E1256545951FE5639DC98020"),
    ("sha256", "9FEC5EF6D0F2B3D2BB7558B6E4042569823CAB9EA0DD30503472B7B304601975"),
    ("sha512", "40BD12B9A4B6000AD1138EEFD24FFE9FBD72AEE13C3FA04B32BB69DBC256AD0A04A463B1A9AF6660D10F6E1E769EE14B9CFF6A635502E93AFCD0BFAB29F38F87"),  # noqa: E501
]
# From the test suite of Vonage's Node SDK (packages/auth/__tests__/__dataSets__/signature.ts):
# api_key 12345, secret ABCDE, timestamp 10907902800.
NODE = [
    ("md5hash", "d7f81394898d98c876e782b3c98391b8"),
    ("md5", "c3216bfa0866f77ff0b8cb2db6024a6e"),
    ("sha1", "9c3aafe2377f54394366a483eae34ce32fdadfef"),
    ("sha256", "19ce55eb9d54bf1a9d758f4b6b7dc6d9f86e15924edf4ddd104e2c1edcd57443"),
    ("sha512", "a3d390830787461570689a4b892b6f619e25da77f89dc7ec87c024f774fa7b4f5252b33189483af56c6f395ba181f90d5fb27edac31911df17abb711f86dd1b5"),  # noqa: E501
]
# From the test suites of Vonage's Python SDK (vonage 2.x and vonage-http-client).
PYTHON = [
    ("md5hash", "secret", {"a": "1", "b": "2", "timestamp": "1461605396"}, "6af838ef94998832dbfc29020b564830"),
    ("sha256", "signature_secret", {"param1": "value1", "param2": "value2", "timestamp": "1234567890"},
     "280c4320703dbc98bfa22db676655ed2acfbfe8792b062ff7622e67f1183c287"),
    ("md5", "signature_secret", {"param1": "value1", "param2": "value2", "timestamp": "1234567890"},
     "724c2bf6ca423c36e20631b11d1c5753"),
    ("md5", "signature_secret", {"param1": "value&1", "param2": "value=2", "timestamp": "1234567890"},
     "2bbf0abafb2c55e5af6231513896a2ac"),
    ("md5", "signature_secret", {"param": "value", "timestamp": "1234567890"}, "655a4d0b7f064dff438defc52b012cf5"),
]


@pytest.mark.parametrize("method,expected", PHP_INBOUND)
def test_php_sdk_inbound_vectors(method, expected):
    assert sign(INBOUND, "my_secret_key_for_testing", method) == expected.lower()
    verify({**INBOUND, "sig": expected}, "my_secret_key_for_testing", method, max_age=None)


@pytest.mark.parametrize("expected,secret,params", PHP_MORE)
def test_php_sdk_more_md5hash_vectors(expected, secret, params):
    assert sign(params, secret) == expected
    verify({**params, "sig": expected}, secret, max_age=None)


@pytest.mark.parametrize("method,expected", PHP_HMAC)
def test_php_sdk_hmac_vectors(method, expected):
    assert sign(PHP_OUTBOUND, "71efab63122f1d179f51c46bac838fb5", method) == expected.lower()


def _node_sdk_string(params: dict[str, str]) -> str:
    """The Node SDK 3.x's canonical string: URL-encoded, sorted, then every & and = made _."""
    return urlencode(sorted(params.items())).replace("&", "_").replace("=", "_")


def _digest(text: str, secret: str, method: str) -> str:
    if method == "md5hash":
        return hashlib.md5((text + secret).encode()).hexdigest()
    return hmac.new(secret.encode(), text.encode(), method).hexdigest()


@pytest.mark.parametrize("method,expected", NODE)
def test_node_sdk_vectors_use_another_canonical_string(method, expected):
    """The Node SDK 3.x signs outbound requests over `key_value_key_value`, not `&key=value`.

    Its published vectors reproduce with that string and the same digests, and the
    inbound scheme (PHP and Python SDKs, and what Vonage sends) gives another
    signature: the canonical string is half of any signature scheme.
    """
    params = {"api_key": "12345", "timestamp": "10907902800"}
    assert _digest(_node_sdk_string(params), "ABCDE", method) == expected
    assert sign(params, "ABCDE", method) != expected
    assert sign(params, "ABCDE", method) == _digest(signing_string(params), "ABCDE", method)


@pytest.mark.parametrize("method,secret,params,expected", PYTHON)
def test_python_sdk_vectors(method, secret, params, expected):
    assert sign(params, secret, method) == expected


def test_signing_string_drops_sig_sorts_by_code_point_and_replaces_separators():
    params = {"b": "x&y=z", "a": "1", "sig": "ignored", "Z": "", "é": "2"}
    assert signing_string(params) == "&Z=&a=1&b=x_y_z&é=2"


def test_unknown_method_is_a_clear_error():
    with pytest.raises(ValueError) as caught:
        sign({"a": "1"}, "s", "crc32")
    assert str(caught.value) == "unknown signature method 'crc32'; use one of md5hash, md5, sha1, sha256, sha512"


def _signed(method="sha256", secret="s3cret", **fields):
    params = {"messageId": "1", "text": "hi", "timestamp": str(int(time.time())), **fields}
    return {**params, "sig": sign(params, secret, method)}


@pytest.mark.parametrize("method", METHODS)
def test_verify_accepts_good_signature_in_any_case(method):
    params = _signed(method)
    verify(params, "s3cret", method)
    verify({**params, "sig": params["sig"].upper()}, "s3cret", method)


def test_verify_errors_are_precise_and_share_one_base():
    good = _signed()
    cases = [
        ({k: v for k, v in good.items() if k != "sig"}, MissingSignature),
        ({**good, "text": "tampered"}, SignatureMismatch),
        ({**good, "sig": "0" * 64}, SignatureMismatch),
        (_signed(timestamp=str(int(time.time()) - 301)), StaleTimestamp),
        (_signed(timestamp=str(int(time.time()) + 400)), StaleTimestamp),
        (_signed(timestamp="yesterday"), MissingTimestamp),
        ({k: v for k, v in _signed().items() if k != "timestamp"} | {"sig": sign(
            {"messageId": "1", "text": "hi"}, "s3cret", "sha256")}, MissingTimestamp),
    ]
    for params, error in cases:
        with pytest.raises(error) as caught:
            verify(params, "s3cret", "sha256")
        assert isinstance(caught.value, InvalidSignature)
        assert "s3cret" not in str(caught.value)


def test_each_rejection_says_what_is_wrong_in_plain_words():
    """These reasons are what the worker logs and the demo shows for a rejected message."""
    now = 1_700_000_000
    good = _signed(timestamp=str(now))
    cases = [
        ({**good, "sig": ""}, {}, "the message has no sig field"),
        ({**good, "sig": 12345}, {}, "the message has no sig field"),  # not text: not a signature
        ({**good, "text": "tampered"}, {}, "the signature does not match the message"),
        (_signed(timestamp="soon"), {}, "the message has no numeric timestamp field"),
        (good, {"now": now + 301}, "the timestamp is 301 s old; at most 300 s allowed"),
        (good, {"now": now - 400}, "the timestamp is 400 s in the future; at most 300 s allowed"),
        (good, {"now": now + 1, "max_age": 0}, "the timestamp is 1 s old; at most 0 s allowed"),
        (good, {"now": now - 1, "max_age": 0}, "the timestamp is 1 s in the future; at most 0 s allowed"),
    ]
    for params, options, reason in cases:
        with pytest.raises(InvalidSignature) as caught:
            verify(params, "s3cret", "sha256", **options)
        assert str(caught.value) == reason


def test_verify_with_wrong_secret_or_method_fails():
    params = _signed("sha256")
    with pytest.raises(SignatureMismatch):
        verify(params, "other", "sha256")
    with pytest.raises(SignatureMismatch):
        verify(params, "s3cret", "sha512")


def test_max_age_none_turns_freshness_off_and_now_sets_the_clock():
    old = _signed(timestamp="1000")
    verify(old, "s3cret", "sha256", max_age=None)
    verify(old, "s3cret", "sha256", now=1100)
    with pytest.raises(StaleTimestamp):
        verify(old, "s3cret", "sha256", now=1400)


values = st.one_of(
    st.text(max_size=40),
    st.text(alphabet="&=_ a", max_size=10),
    st.just(""),
    st.text(min_size=1600, max_size=1600, alphabet=st.characters(codec="utf-8")),
)
payloads = st.dictionaries(
    keys=st.one_of(st.sampled_from(["msisdn", "to", "messageId", "text", "type", "keyword", "api-key",
                                    "message-timestamp", "nonce", "concat-ref"]),
                   st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-_", min_size=1,
                           max_size=12).filter(lambda key: key != "sig")),
    values=values, max_size=10,
).map(lambda d: {**d, "timestamp": "1700000000"})
secrets_ = st.text(alphabet=st.characters(codec="ascii", categories=["L", "N"]), min_size=1, max_size=40)


@settings(max_examples=150, deadline=None)
@given(payloads, secrets_)
def test_md5hash_matches_nexmo_sdk(params, secret):
    client = nexmo.Client(key="k", secret="s", signature_secret=secret)
    assert sign(params, secret, "md5hash") == client.signature(dict(params))
    assert client.check_signature({**params, "sig": sign(params, secret, "md5hash")})


@settings(max_examples=150, deadline=None)
@given(payloads, secrets_, st.sampled_from(["md5", "sha1", "sha256", "sha512"]))
def test_hmacs_match_vonage_sdk(params, secret, method):
    auth = Auth(api_key="k", signature_secret=secret, signature_method=method)
    assert sign(params, secret, method) == auth.sign_params(dict(params))
    assert auth.check_signature({**params, "sig": sign(params, secret, method)})
    verify({**params, "sig": auth.sign_params(dict(params))}, secret, method, max_age=None)


def test_verify_compares_with_compare_digest(monkeypatch):
    """`==` stops at the first differing character, and so tells an attacker how much of a guess is right."""
    calls = []
    real = hmac.compare_digest

    def spy(a, b):
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    params = _signed("sha256")
    verify({**params, "sig": params["sig"].upper()}, "s3cret", "sha256")
    text = lambda call: sorted(x.decode() if isinstance(x, bytes) else x for x in call)  # noqa: E731
    assert [text(call) for call in calls] == [[params["sig"], params["sig"]]]  # the given sig, lowercased
    with pytest.raises(SignatureMismatch):
        verify({**params, "sig": "0" * 64}, "s3cret", "sha256")
    assert text(calls[1]) == sorted(["0" * 64, params["sig"]])


@pytest.mark.parametrize("max_age", [0, 1, 300])
def test_the_age_limit_itself_is_allowed_and_one_second_more_is_not(max_age):
    signed_at = 1_700_000_000
    params = _signed(timestamp=str(signed_at))
    verify(params, "s3cret", "sha256", max_age=max_age, now=signed_at + max_age)
    verify(params, "s3cret", "sha256", max_age=max_age, now=signed_at - max_age)
    for now in (signed_at + max_age + 1, signed_at - max_age - 1):
        with pytest.raises(StaleTimestamp, match=f"at most {max_age} s allowed"):
            verify(params, "s3cret", "sha256", max_age=max_age, now=now)
