"""Secrets never printed: what every command writes holds neither the signature secret nor the ngrok token.

Each command runs with both set in its environment, as on an attendee's laptop, and
with ngrok's agent (the stand-in, which repeats a bad token in its error as ngrok
does) failing or working. A GET webhook with secrets in its URL is listed,
shown and replayed too.
"""
from __future__ import annotations

import json
import subprocess
import sys
import uuid

import pytest
import requests

from tests.test_commands import ROOT, Running, run, standin_env
from workshop.sender import make_sms, signed

pytestmark = pytest.mark.slow


@pytest.fixture()
def secrets_env(tmp_path) -> dict[str, str]:
    """A signature secret and an ngrok token that ngrok's agent refuses, repeating it, as ngrok does."""
    return {"SIGNATURE_SECRET": f"sig-secret-{uuid.uuid4().hex}", "SIGNATURE_METHOD": "sha256",
            **standin_env(tmp_path, f"invalid-ngrok-token-{uuid.uuid4().hex}")}


def assert_no_secret(env: dict[str, str], *outputs: str) -> None:
    for text in outputs:
        for name in ("SIGNATURE_SECRET", "NGROK_AUTHTOKEN"):
            assert env[name] not in text, f"{name} printed:\n{text}"


def test_the_demo_prints_no_secret(secrets_env, tmp_path):
    result = run("demo", "--count", "12", env={**secrets_env, "REDIS_URL": "", "NO_PROXY": "*",
                                               "MESSAGES_FILE": str(tmp_path / "m.jsonl")}, timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "public    none (the ngrok authtoken is not valid)" in result.stdout  # the agent did refuse the token
    assert "signing   sha256, with a configured secret" in result.stdout
    assert_no_secret(secrets_env, result.stdout, result.stderr)


def test_the_doctor_prints_no_secret(secrets_env):
    result = run("doctor", env=secrets_env, timeout=300)
    assert "ngrok" in result.stdout
    assert_no_secret(secrets_env, result.stdout, result.stderr)


def test_the_tunnel_prints_no_token_whether_ngrok_refuses_it_or_not(secrets_env, tmp_path, live):
    port = live["base"].rsplit(":", 1)[1]
    refused = run("tunnel", "--port", port, env=secrets_env, timeout=60)
    assert refused.returncode == 0 and "the ngrok authtoken is not valid" in refused.stdout
    assert_no_secret(secrets_env, refused.stdout, refused.stderr)
    (tmp_path / "good").mkdir()
    good = {**secrets_env, **standin_env(tmp_path / "good", f"ngrok-token-{uuid.uuid4().hex}")}
    tunnel = Running("tunnel", "--port", port, env=good)
    line = tunnel.proc.stdout.readline()
    assert line.startswith("Public webhook URL"), line
    out, err = tunnel.ctrl_c()
    assert_no_secret(good, line, out, err)


def test_send_inspect_and_replay_print_no_secret_even_when_the_url_carries_one(live):
    env = {**live["env"], "NGROK_AUTHTOKEN": f"ngrok-token-{uuid.uuid4().hex}"}
    in_url = {"api_secret": env["SIGNATURE_SECRET"], "token": env["NGROK_AUTHTOKEN"]}
    fields = signed(make_sms("secrets in the URL"), env["SIGNATURE_SECRET"], "sha256")
    assert requests.get(live["url"], params={**fields, **in_url}, timeout=5).status_code == 204
    sent = run("send", "--url", live["url"], "--count", "2", "--forged", env=env)
    listing = run("inspect", env=env)
    assert listing.returncode == 0, listing.stderr
    get_id = next(line.split()[0] for line in listing.stdout.splitlines() if " GET " in line)
    shown = run("inspect", get_id, env=env)
    assert "(masked)" in json.loads(shown.stdout)["query"]
    replayed = run("replay", get_id, env=env)
    assert replayed.returncode == 0, replayed.stderr
    assert_no_secret(env, *(r.stdout + r.stderr for r in (sent, listing, shown, replayed)))


def test_the_settings_never_show_the_secret(secrets_env):
    shown = subprocess.run([sys.executable, "-c", "from solutions.settings import load_settings; "
                            "s = load_settings(); print(s); print(repr(s))"], cwd=ROOT, capture_output=True,
                           text=True, timeout=60, env={**secrets_env, "PATH": "/usr/bin:/bin"})
    assert shown.returncode == 0 and "signature_secret=***" in shown.stdout
    assert_no_secret(secrets_env, shown.stdout, shown.stderr)
