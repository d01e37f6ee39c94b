"""Notebook 08 with answers a learner might write: correct, in other words than the reference.

Every exercise cell is replaced by such an answer; the notebook then runs as shipped (no autosolve),
and every check must pass with the learner's own code, which the catch-up lines keep. The checks are
also shown to catch the simplest wrong answers: `>=` at the edge of a window, a tolerance of zero
read as "off", the first of several signatures only, `alg` taken from the token, no payload_hash, no jti.
"""
from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

from workshop import notebook
from workshop.checks import CHECKS, NotYet

PATH = Path(__file__).parent.parent / "notebooks" / "08-going-further.ipynb"

ANSWERS = {
    "verify_github": '''
def verify_github(body, header, secret):
    if header is None or header == "":
        raise MissingSignature("no X-Hub-Signature-256")
    digest = hmac.new(bytes(secret, "utf-8"), body, "sha256").hexdigest()
    if not hmac.compare_digest(f"sha256={digest}", header):
        raise SignatureMismatch("wrong signature")
''',
    "verify_slack": '''
def verify_slack(body, timestamp, signature, secret, *, tolerance=300, now=None):
    if not signature:
        raise MissingSignature("no signature")
    if timestamp is None or not timestamp.isdigit():
        raise MissingTimestamp("bad timestamp")
    basestring = b"v0:%s:%s" % (timestamp.encode(), body)
    mine = "v0=" + hmac.new(secret.encode(), basestring, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(mine.encode(), signature.encode()):
        raise SignatureMismatch("no match")
    if tolerance is not None:
        current = time.time() if now is None else now
        if abs(current - int(timestamp)) > tolerance:
            raise StaleTimestamp("too old or too new")
''',
    "verify_standard": '''
import base64

def verify_standard(msg_id, timestamp, body, header, secret, *, tolerance=300, now=None):
    candidates = []
    for item in (header or "").split(" "):
        version, _, value = item.partition(",")
        if version == "v1":
            candidates.append(base64.b64decode(value))
    if len(candidates) == 0:
        raise MissingSignature("no v1 signature")
    if not timestamp or not timestamp.isdigit():
        raise MissingTimestamp("no timestamp")
    key = base64.b64decode(secret[len("whsec_"):] if secret.startswith("whsec_") else secret)
    content = msg_id.encode() + b"." + timestamp.encode() + b"." + body
    expected = hmac.digest(key, content, "sha256")
    if not any(hmac.compare_digest(expected, candidate) for candidate in candidates):
        raise SignatureMismatch("none matched")
    if tolerance is not None and abs((now or time.time()) - int(timestamp)) > tolerance:
        raise StaleTimestamp("outside the tolerance")
''',
    "verify_stripe": '''
def verify_stripe(body, header, secret, *, tolerance=300, now=None):
    parts = {}
    for item in (header or "").split(","):
        key, _, value = item.partition("=")
        parts.setdefault(key, []).append(value)
    if "v1" not in parts:
        raise MissingSignature("no v1")
    if len(parts.get("t", [])) != 1 or not parts["t"][0].isdigit():
        raise MissingTimestamp("need exactly one t")
    t = parts["t"][0]
    expected = hmac.new(secret.encode(), (t + ".").encode() + body, hashlib.sha256).hexdigest()
    if not any(hmac.compare_digest(expected, candidate) for candidate in parts["v1"]):
        raise SignatureMismatch("no v1 matches")
    if tolerance is not None:
        age = (time.time() if now is None else now) - int(t)
        if age > tolerance or age < -tolerance:
            raise StaleTimestamp(f"{age:.0f} s off")
''',
    "verify_signature": '''
from solutions.messages_api import BadToken, WrongAlgorithm

def verify_signature(token, secret):
    pieces = token.split(".")
    if len(pieces) != 3:
        raise BadToken("a JWT has three pieces")
    header = json.loads(b64url_decode(pieces[0]))
    if header.get("alg") != "HS256":
        raise WrongAlgorithm(str(header.get("alg")))
    signing_input = (pieces[0] + "." + pieces[1]).encode()
    digest = hmac.new(secret.encode(), signing_input, hashlib.sha256).digest()
    if not hmac.compare_digest(b64url_encode(digest), pieces[2]):
        raise SignatureMismatch("the signature differs")
    return json.loads(b64url_decode(pieces[1]))
''',
    "verify": '''
from solutions.messages_api import MissingToken, PayloadHashMismatch, ReplayedToken

def verify(token, body, secret, *, max_age=300, skew=30, now=None, first_use=None):
    if token is None or token == "":
        raise MissingToken("unsigned callback")
    claims = verify_signature(token, secret)
    if claims.get("iss") != "Vonage" or type(claims.get("iat")) not in (int, float) or not claims.get("jti"):
        raise BadToken("claims missing")
    expected = hashlib.sha256(body).hexdigest()
    if not hmac.compare_digest(str(claims.get("payload_hash", "")), expected):
        raise PayloadHashMismatch("hash differs")
    when = now if now is not None else time.time()
    if when - claims["iat"] > max_age or claims["iat"] - when > skew:
        raise StaleTimestamp("iat outside the window")
    if first_use and not first_use(claims["jti"]):
        raise ReplayedToken(claims["jti"])
    return claims
''',
}
REFERENCES = {"verify_github": "solutions.other_schemes:verify_github",
              "verify_slack": "solutions.other_schemes:verify_slack",
              "verify_standard": "solutions.other_schemes:verify_standard",
              "verify_stripe": "solutions.other_schemes:verify_stripe",
              "verify_signature": "solutions.messages_api:verify_signature",
              "verify": "solutions.messages_api:verify"}
PRELUDE = """
import base64, hashlib, hmac, json, time
from solutions.messages_api import b64url_decode, b64url_encode
from solutions.signatures import MissingSignature, MissingTimestamp, SignatureMismatch, StaleTimestamp
"""

# The simplest wrong answers, each as (exercise, text in the answer, what a hurried learner writes instead).
WRONG = {
    "slack: >= at the edge": ("verify_slack", "int(timestamp)) > tolerance", "int(timestamp)) >= tolerance"),
    "slack: no window": ("verify_slack", "if tolerance is not None:", "if False:"),
    "slack: timestamp not signed": ("verify_slack", 'b"v0:%s:%s" % (timestamp.encode(), body)',
                                    'b"v0:" + body'),
    "slack: only old ones refused": ("verify_slack", "abs(current - int(timestamp))", "(current - int(timestamp))"),
    "standard: first signature only": ("verify_standard", "for candidate in candidates)",
                                       "for candidate in candidates[:1])"),
    "standard: any version": ("verify_standard", 'if version == "v1":', 'if version in ("v1", "v2"):'),
    "standard: id not signed": ("verify_standard", 'msg_id.encode() + b"."', 'b""'),
    "stripe: zero is off": ("verify_stripe", "if tolerance is not None:", "if tolerance:"),
    "stripe: any scheme": ("verify_stripe", 'if "v1" not in parts:',
                           'parts.setdefault("v1", []).extend(parts.get("v0", []))\n    if "v1" not in parts:'),
    "jwt: alg from the token": ("verify_signature", 'if header.get("alg") != "HS256":',
                                'if header.get("alg") == "nothing":'),
    "jwt: none allowed": ("verify_signature", 'if header.get("alg") != "HS256":',
                          'if header.get("alg") == "none":\n        return json.loads(b64url_decode(pieces[1]))\n'
                          '    if header.get("alg") != "HS256":'),
    "callback: no payload_hash check": ("verify", 'if not hmac.compare_digest(str(claims.get("payload_hash", "")), '
                                                  'expected):', "if False:"),
    "callback: hash of the parsed body": ("verify", "hashlib.sha256(body).hexdigest()",
                                          "hashlib.sha256(json.dumps(json.loads(body)).encode()).hexdigest()"),
    "callback: >= at the edge": ("verify", "when - claims[\"iat\"] > max_age", "when - claims[\"iat\"] >= max_age"),
    "callback: no jti check": ("verify", "if first_use and not first_use(claims[\"jti\"]):", "if False:"),
    "callback: no future check": ("verify", " or claims[\"iat\"] - when > skew", ""),
}


def define(name: str, source: str | None = None):
    """The function `name` that an answer defines, in a namespace like the notebook's."""
    namespace: dict = {}
    exec(PRELUDE, namespace)
    for needed in ("verify_signature",) if name == "verify" else ():
        exec(ANSWERS[needed], namespace)
    exec(source or ANSWERS[name], namespace)
    return namespace[name]


@pytest.mark.parametrize("name", ANSWERS)
def test_each_learner_answer_passes_its_check(name):
    CHECKS[REFERENCES[name]](define(name))


@pytest.mark.parametrize("case", WRONG)
def test_the_checks_catch_the_simplest_wrong_answers(case):
    name, right, wrong = WRONG[case]
    assert right in ANSWERS[name], case
    with pytest.raises(NotYet):
        CHECKS[REFERENCES[name]](define(name, ANSWERS[name].replace(right, wrong)))


@pytest.mark.notebook
def test_the_notebook_runs_with_learner_answers_and_keeps_them():
    nb = nbformat.read(PATH, as_version=4)
    replaced = []
    for cell in nb.cells:
        if cell.cell_type == "code" and "raise NotImplementedError" in cell.source:
            name = re.search(r"^def (\w+)\(", cell.source, re.MULTILINE).group(1)
            cell.source = ANSWERS[name].strip()
            replaced.append(name)
    assert sorted(replaced) == sorted(ANSWERS)
    notebook.execute(nb, PATH.parent, solved=False)
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    errors = [o for o in outputs if o.output_type == "error"]
    assert errors == [], [f"{e['ename']}: {e['evalue']}" for e in errors]
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert text.count("✓ Well done") == len(ANSWERS)
    assert "Not yet" not in text and "Using the reference solution" not in text and "Traceback" not in text
    assert "re-serialized:      refused" in text and "next year: verified" in text
    assert "naive, tolerance=0:         accepted" in text and "verify_stripe, tolerance=0: refused" in text
    for case in ("body changed   refused: PayloadHashMismatch", "sent again     refused: ReplayedToken",
                 "unsigned       refused: MissingToken", "as sent        accepted"):
        assert case in text
