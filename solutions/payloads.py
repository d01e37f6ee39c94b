"""Turn an inbound SMS request into a flat dict of strings, or say what is wrong.

Vonage sends the same fields three ways: a GET query string, a POST form and a
POST JSON body. Everything malformed raises BadPayload with a short reason that
the receiver sends back with a 4xx status.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from urllib.parse import parse_qsl

from flask import Request

MAX_FIELDS = 64
MAX_VALUE_CHARS = 8000
MAX_QUERY_BYTES = 16 * 1024
REQUIRED = ("messageId", "text")


class BadPayload(ValueError):
    """The request cannot be an inbound SMS. `status` is the HTTP status to answer."""

    def __init__(self, reason: str, status: int = 400) -> None:
        super().__init__(reason)
        self.status = status


def _pairs_to_dict(pairs: Sequence[tuple[str, object]]) -> dict:
    fields: dict = {}
    for key, value in pairs:
        if key in fields:
            raise BadPayload(f"field {key!r} appears more than once")
        fields[key] = value
    return fields


def parse_urlencoded(raw: bytes) -> dict[str, str]:
    """Parse `a=1&b=2` bytes strictly: valid UTF-8, no repeated fields."""
    try:
        pairs = parse_qsl(raw.decode("utf-8"), keep_blank_values=True, encoding="utf-8",
                          errors="strict", max_num_fields=MAX_FIELDS)
    except UnicodeDecodeError:
        raise BadPayload("the fields are not valid UTF-8") from None
    except ValueError:
        raise BadPayload(f"more than {MAX_FIELDS} fields") from None
    return _pairs_to_dict(pairs)


def parse_json(raw: bytes) -> dict[str, str]:
    """Parse a JSON object whose values are strings, numbers or booleans."""
    try:
        data = json.loads(raw.decode("utf-8"), object_pairs_hook=_pairs_to_dict)
    except UnicodeDecodeError:
        raise BadPayload("the body is not valid UTF-8") from None
    except RecursionError:
        raise BadPayload("the JSON is nested too deeply") from None
    except json.JSONDecodeError as error:
        raise BadPayload(f"the body is not valid JSON ({error.msg} at line {error.lineno})") from None
    if not isinstance(data, dict):
        raise BadPayload(f"the JSON body must be an object, not {type(data).__name__}")
    if len(data) > MAX_FIELDS:
        raise BadPayload(f"more than {MAX_FIELDS} fields")
    fields = {}
    for key, value in data.items():
        if isinstance(value, bool):
            value = "true" if value else "false"
        elif isinstance(value, (int, float, str)):
            value = str(value)
        else:
            raise BadPayload(f"field {key!r} must be a string or a number")
        fields[key] = value
    return fields


def from_request(request: Request) -> dict[str, str]:
    """The inbound SMS fields of a GET or POST request, checked."""
    if len(request.query_string) > MAX_QUERY_BYTES:
        raise BadPayload("the query string is too long", status=414)
    if request.method == "GET":
        fields = parse_urlencoded(request.query_string)
    else:
        body = request.get_data(cache=True)  # raises 413 past MAX_CONTENT_LENGTH
        mimetype = request.mimetype
        if not body and request.query_string:
            fields = parse_urlencoded(request.query_string)
        elif mimetype == "application/json" or mimetype.endswith("+json"):
            fields = parse_json(body)
        elif mimetype in ("application/x-www-form-urlencoded", ""):
            fields = parse_urlencoded(body)
        else:
            raise BadPayload(
                f"unsupported content type {mimetype!r}: send a form or JSON", status=415
            )
    missing = [name for name in REQUIRED if name not in fields or (name == "messageId" and not fields[name])]
    if missing:
        raise BadPayload(f"missing field(s): {', '.join(missing)}", status=422)
    for key, value in fields.items():
        if len(value) > MAX_VALUE_CHARS:
            raise BadPayload(f"field {key!r} is longer than {MAX_VALUE_CHARS} characters")
    return fields
