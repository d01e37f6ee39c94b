"""solutions.settings: read once from the environment and .env, checked when they load."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from solutions.settings import SettingsError, load_settings


def test_a_typo_in_the_signature_method_stops_at_load_time_and_names_the_choices(monkeypatch):
    monkeypatch.setenv("SIGNATURE_METHOD", "sha265")
    with pytest.raises(SettingsError, match="sha265.*md5hash, md5, sha1, sha256, sha512"):
        load_settings()


@pytest.mark.parametrize("method", ["md5hash", "MD5", " sha512 "])
def test_every_method_vonage_offers_loads(monkeypatch, method):
    monkeypatch.setenv("SIGNATURE_METHOD", method)
    assert load_settings().signature_method == method.strip().lower()


def test_a_redis_url_without_a_scheme_is_refused_without_repeating_it(monkeypatch):
    monkeypatch.setenv("REDIS_URL", "127.0.0.1:6379:my-password")
    with pytest.raises(SettingsError) as error:
        load_settings()
    assert "my-password" not in str(error.value)


def test_the_secret_never_shows_in_the_settings_repr(monkeypatch):
    monkeypatch.setenv("SIGNATURE_SECRET", "do-not-print-me")
    assert "do-not-print-me" not in repr(load_settings())


@pytest.mark.parametrize("command", [["worker"], ["receiver", "--port", "0"], ["inspect"]])
def test_commands_stop_at_once_on_a_bad_setting_in_one_sentence(command, tmp_path):
    env = {**os.environ, "SIGNATURE_METHOD": "sha265", "REDIS_URL": "redis://127.0.0.1:1/0"}
    done = subprocess.run([sys.executable, "-m", "workshop", *command], capture_output=True, text=True,
                          timeout=30, env=env, cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and "SIGNATURE_METHOD='sha265'" in done.stderr
    assert "Traceback" not in done.stderr
