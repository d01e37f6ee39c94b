"""workshop.tunnel: pyngrok's real code with a stand-in agent, and fast, clear fallbacks."""
from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest
import requests
from pyngrok import conf, installer, ngrok
from pyngrok.exception import PyngrokNgrokInstallError
from redis import Redis

from workshop import inspector, tunnel
from workshop.sender import deliver, make_sms

STANDIN = Path(__file__).with_name("standin_ngrok.py")


@pytest.fixture()
def standin_agent(tmp_path, monkeypatch):
    """Point pyngrok's own configuration at the stand-in agent (the real one needs ngrok's servers)."""
    agent = tmp_path / "ngrok"
    agent.write_text(f"#!/bin/sh\nexec {sys.executable} {STANDIN} \"$@\"\n")
    agent.chmod(0o755)
    config = tmp_path / "ngrok.yml"
    config.write_text('version: "3"\nagent:\n  authtoken: ""\n')
    monkeypatch.setattr(conf, "_default_pyngrok_config", conf.PyngrokConfig(
        ngrok_path=str(agent), config_path=str(config), startup_timeout=10))
    monkeypatch.delenv("NGROK_AUTHTOKEN", raising=False)
    yield agent
    tunnel.close_tunnels()
    ngrok.kill()


def test_no_token_falls_back_to_local_at_once(monkeypatch, tmp_path):
    monkeypatch.delenv("NGROK_AUTHTOKEN", raising=False)
    monkeypatch.setattr(tunnel, "_ngrok_config_files", lambda: [])
    monkeypatch.setattr(conf, "_default_pyngrok_config", conf.PyngrokConfig(config_path=str(tmp_path / "no.yml")))
    started = time.monotonic()
    endpoint = tunnel.open_tunnel(5000)
    assert time.monotonic() - started < 1
    assert endpoint.public_url is None
    assert endpoint.webhook_url == "http://127.0.0.1:5000/webhooks/inbound-sms"
    assert endpoint.describe().startswith("No public URL: no ngrok authtoken is configured.")
    assert "NGROK_AUTHTOKEN" in endpoint.describe()


def test_token_found_in_ngrok_config_file(monkeypatch, tmp_path):
    monkeypatch.delenv("NGROK_AUTHTOKEN", raising=False)
    config = tmp_path / "ngrok.yml"
    config.write_text('version: "3"\nagent:\n    authtoken: abc123\n')
    monkeypatch.setattr(conf, "_default_pyngrok_config", conf.PyngrokConfig(config_path=str(config)))
    assert tunnel.find_authtoken() == "abc123"
    monkeypatch.setenv("NGROK_AUTHTOKEN", "from-env")
    assert tunnel.find_authtoken() == "from-env"


def test_agent_that_cannot_be_downloaded_is_explained_quickly(monkeypatch, tmp_path):
    monkeypatch.setenv("NGROK_AUTHTOKEN", "some-token")
    monkeypatch.setattr(conf, "_default_pyngrok_config", conf.PyngrokConfig(
        ngrok_path=str(tmp_path / "not-installed" / "ngrok"), config_path=str(tmp_path / "ngrok.yml")))

    def offline(*args, **kwargs):  # what pyngrok's installer raises when the download fails
        raise PyngrokNgrokInstallError("An error occurred while downloading ngrok: no network")
    monkeypatch.setattr(installer, "install_ngrok", offline)
    started = time.monotonic()
    endpoint = tunnel.open_tunnel(5000)
    assert time.monotonic() - started < 5
    assert endpoint.public_url is None
    assert "could not be downloaded" in endpoint.reason and "PYNGROK_NGROK_PATH" in endpoint.fix


@pytest.mark.parametrize("token,phrase", [("invalid", "authtoken is not valid"),
                                          ("busy", "already has an agent running")])
def test_ngrok_errors_become_plain_sentences(standin_agent, monkeypatch, token, phrase):
    monkeypatch.setenv("NGROK_AUTHTOKEN", token)
    endpoint = tunnel.open_tunnel(5000)
    assert endpoint.public_url is None and phrase in endpoint.reason and endpoint.fix


def test_a_tunnel_through_pyngrok_reaches_the_receiver_and_is_reused(standin_agent, monkeypatch, live, redis):
    monkeypatch.setenv("NGROK_AUTHTOKEN", "good-token")
    port = int(live["base"].rsplit(":", 1)[1])
    endpoint = tunnel.open_tunnel(port)
    assert endpoint.public_url, endpoint.describe()
    assert endpoint.describe().startswith("Public webhook URL")
    assert deliver(endpoint.webhook_url, make_sms("through the tunnel")).status == 204
    assert tunnel.open_tunnel(port).public_url == endpoint.public_url  # one session, one tunnel
    assert len(ngrok.get_tunnels()) == 1
    tunnel.close_tunnels()
    assert ngrok.process._current_processes == {}


def test_the_inspector_refuses_the_public_url(standin_agent, monkeypatch, live):
    """Through the tunnel every request comes from 127.0.0.1, as ngrok's agent runs here: only the
    X-Forwarded-For header it adds tells a visitor from the internet apart."""
    monkeypatch.setenv("NGROK_AUTHTOKEN", "good-token")
    endpoint = tunnel.open_tunnel(int(live["base"].rsplit(":", 1)[1]))
    assert endpoint.public_url, endpoint.describe()
    assert deliver(endpoint.webhook_url, make_sms("from afar")).status == 204  # webhooks still arrive
    local = requests.get(live["base"] + "/inspect", timeout=5)
    assert local.status_code == 200 and "/webhooks/inbound-sms" in local.text
    entry = inspector.recent(Redis.from_url(live["env"]["REDIS_URL"]))[0]
    assert entry["headers"]["X-Forwarded-For"] == "127.0.0.1"  # the agent said where it came from
    for answer in (requests.get(endpoint.public_url + "/inspect", timeout=5),
                   requests.get(f"{endpoint.public_url}/inspect/{entry['id']}?format=json", timeout=5),
                   requests.post(f"{endpoint.public_url}/inspect/{entry['id']}/replay", timeout=5)):
        assert answer.status_code == 403 and "only on this machine" in answer.json()["error"], answer.text
