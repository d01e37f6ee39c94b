"""solutions.payloads on real Werkzeug requests: what is read from where, the limits exactly, the reasons given."""
from __future__ import annotations

import json

import pytest
from flask import Flask, request

from solutions.payloads import (
    MAX_FIELDS,
    MAX_QUERY_BYTES,
    MAX_VALUE_CHARS,
    BadPayload,
    from_request,
    parse_json,
    parse_urlencoded,
)

app = Flask(__name__)
SMS = {"messageId": "0A0000001", "text": "hi"}


def read(method: str = "POST", query: str = "", body: bytes = b"", content_type: str | None = None) -> dict:
    """from_request() on a real request with this method, query string, body and content type."""
    with app.test_request_context("/webhooks/inbound-sms", method=method, query_string=query, data=body,
                                  content_type=content_type):
        return from_request(request)


def refused(status: int, reason: str, **kwargs) -> None:
    with pytest.raises(BadPayload) as caught:
        read(**kwargs)
    assert (caught.value.status, str(caught.value)) == (status, reason)


def test_get_reads_the_query_string_even_when_a_body_comes_along():
    assert read("GET", "messageId=1&text=from+the+query", b"messageId=2&text=body",
                "application/x-www-form-urlencoded") == {"messageId": "1", "text": "from the query"}


def test_post_reads_the_body_and_the_query_only_when_there_is_no_body():
    form = "application/x-www-form-urlencoded"
    assert read(query="x=1", body=b"messageId=2&text=body", content_type=form) == {"messageId": "2", "text": "body"}
    assert read(query="messageId=3&text=query") == {"messageId": "3", "text": "query"}


def test_a_form_without_a_content_type_and_json_with_a_suffix_are_read():
    assert read(body=b"messageId=4&text=plain") == {"messageId": "4", "text": "plain"}
    assert read(body=json.dumps(SMS).encode(), content_type="application/vnd.vonage+json") == SMS


def test_the_body_stays_readable_after_parsing():
    """The inspector reads it again after the receiver has answered."""
    with app.test_request_context("/", method="POST", data=b"messageId=5&text=again",
                                  content_type="application/x-www-form-urlencoded"):
        from_request(request)
        assert request.get_data() == b"messageId=5&text=again"


def test_blank_values_are_kept_and_an_empty_text_is_a_text():
    assert parse_urlencoded(b"keyword=&messageId=6&text=") == {"keyword": "", "messageId": "6", "text": ""}
    assert read(body=b"messageId=6&text=") == {"messageId": "6", "text": ""}


def test_json_booleans_and_numbers_become_vonages_strings():
    assert parse_json(b'{"concat": true, "unicode": false, "n": 3, "x": 1.5}') == {
        "concat": "true", "unicode": "false", "n": "3", "x": "1.5"}


def test_the_field_count_limit_is_exact_in_forms_and_json():
    fields = {f"f{n}": "v" for n in range(MAX_FIELDS)}
    assert len(parse_urlencoded("&".join(f"{k}={v}" for k, v in fields.items()).encode())) == MAX_FIELDS
    assert len(parse_json(json.dumps(fields).encode())) == MAX_FIELDS
    fields["one-more"] = "v"
    for parse, raw in ((parse_urlencoded, "&".join(f"{k}={v}" for k, v in fields.items()).encode()),
                       (parse_json, json.dumps(fields).encode())):
        with pytest.raises(BadPayload, match=f"^more than {MAX_FIELDS} fields$"):
            parse(raw)


def test_the_length_limits_are_exact():
    longest = "a" * MAX_VALUE_CHARS
    assert read(body=f"messageId=7&text={longest}".encode())["text"] == longest
    refused(400, f"field 'text' is longer than {MAX_VALUE_CHARS} characters",
            body=f"messageId=7&text={longest}a".encode())
    query = "messageId=8&text=" + "b" * 7000 + "&x=" + "c" * 7000
    query += "&y=" + "d" * (MAX_QUERY_BYTES - len(query) - 3)
    assert len(query) == MAX_QUERY_BYTES and read("GET", query)["messageId"] == "8"
    refused(414, "the query string is too long", method="GET", query=query + "d")


def test_an_empty_message_id_is_missing_and_every_missing_field_is_named():
    refused(422, "missing field(s): messageId", body=b"messageId=&text=hi")
    refused(422, "missing field(s): messageId, text", body=b"msisdn=44")


@pytest.mark.parametrize("raw,content_type,reason", [
    (b"messageId=1&text=%ff", "application/x-www-form-urlencoded", "the fields are not valid UTF-8"),
    (b'{"messageId": "\xff"}', "application/json", "the body is not valid UTF-8"),
    (b"[" * 100_000 + b"]" * 100_000, "application/json", "the JSON is nested too deeply"),
    (b"[1, 2]", "application/json", "the JSON body must be an object, not list"),
    (b'{"text": {"a": 1}}', "application/json", "field 'text' must be a string or a number"),
    (b'{"text": "a", "text": "b"}', "application/json", "field 'text' appears more than once"),
    (b"<sms/>", "text/xml", "unsupported content type 'text/xml': send a form or JSON"),
])
def test_each_refusal_says_why(raw, content_type, reason):
    with pytest.raises(BadPayload) as caught:
        read(body=raw, content_type=content_type)
    assert str(caught.value) == reason
