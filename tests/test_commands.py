"""Every command in README's table, run the way the README writes it.

Its arguments parse alike on the oldest and the newest Python the README names;
the quick commands run for real; the long-running ones start, show they are
ready and stop on Ctrl+C; and every command that needs Redis says in one
sentence what to do when there is none.
"""
from __future__ import annotations

import glob
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import requests
from redis import Redis
from rq import Worker

from tests.test_cli import README, parser_commands, readme_commands, started_by
from workshop.redis_server import answers, unreachable
from workshop.sender import make_sms
from workshop.services import free_port, port_is_free

ROOT = Path(__file__).parent.parent
STANDIN = Path(__file__).with_name("standin_ngrok.py")
SAMPLES = {"ID": "ab12", "URL": "http://127.0.0.1:5000/webhooks/inbound-sms", "N": "2"}


def readme_argvs() -> list[list[str]]:
    """Every way the README writes a command: its table's usages and options, and `python -m workshop ...`."""
    commands = parser_commands()
    argvs = []
    for name, (usage, description) in readme_commands().items():
        base = [word for word in usage.split() if not word.startswith("[")]
        optional = [word.strip("[]") for word in usage.split() if word.startswith("[")]
        argvs.append(base)
        if optional:
            argvs.append(base + optional)
        for option in re.findall(r"`(--[^`]+)`", description):
            flag, *values = option.split()
            action = next((a for a in commands[name]._actions if flag in a.option_strings), None)
            if values:
                choices = values[0].split("/") if "/" in values[0] else values
                argvs += [base + [flag, choice] for choice in choices]
            elif action is not None and action.nargs != 0:  # a value the README leaves out: a sample one
                argvs.append(base + [flag, str(action.choices[0]) if action.choices else "3"])
            else:
                argvs.append(base + [flag])
    for written in re.findall(r"`python -m workshop ([^`]+)`", README.read_text(encoding="utf-8")):
        if written.split()[0] in commands:
            argvs.append(written.split())
    return [[SAMPLES.get(word, word) for word in argv] for argv in argvs]


PARSE = """
import contextlib, io, json, sys
sys.path.insert(0, sys.argv[1])
from workshop.__main__ import build_parser
parsed = []
for argv in json.load(sys.stdin):
    errors = io.StringIO()
    try:
        with contextlib.redirect_stderr(errors):
            namespace = vars(build_parser().parse_args(argv))
    except SystemExit:
        parsed.append({"error": errors.getvalue().strip().splitlines()[-1]})
        continue
    namespace["func"] = namespace["func"].__name__
    parsed.append(namespace)
third_party = sorted({m.split(".")[0] for m in sys.modules} & {"flask", "redis", "rq", "requests", "dotenv", "rich"})
print(json.dumps({"parsed": parsed, "third_party": third_party}))
"""


def parse_with(python: str, argvs: list[list[str]]) -> dict:
    """Parse each argv with `python`, the standard library alone (-I -S: no site-packages, no PYTHONPATH)."""
    result = subprocess.run([python, "-I", "-S", "-c", PARSE, str(ROOT)], input=json.dumps(argvs),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def readme_pythons() -> list[str]:
    """The oldest and the newest Python version the README says the kit runs on, as '3.10'."""
    named = re.search(r"passes on Python ((?:3\.\d+(?:, | and )?)+)", README.read_text(encoding="utf-8"))
    assert named, "README.md no longer says which Pythons the suite passes on"
    versions = sorted(re.findall(r"3\.\d+", named.group(1)), key=lambda v: int(v.split(".")[1]))
    return [versions[0], versions[-1]]


def find_python(version: str) -> str | None:
    """A `python3.X` program on PATH or in pyenv's versions folder that really is that version."""
    candidates = [shutil.which(f"python{version}")] + sorted(
        glob.glob(os.path.expanduser(f"~/.pyenv/versions/{version}.*/bin/python{version}")))
    for candidate in filter(None, candidates):
        probe = subprocess.run([candidate, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                               capture_output=True, text=True, timeout=30)
        if probe.returncode == 0 and probe.stdout.strip() == version:
            return candidate
    return None


def test_the_readme_writes_every_command_and_some_of_their_options():
    argvs = readme_argvs()
    assert {argv[0] for argv in argvs} == set(parser_commands())
    assert ["chaos"] in argvs and ["inspect"] in argvs and ["inspect", "ab12"] in argvs
    assert ["send", "--url", SAMPLES["URL"], "--style", "mixed"] in argvs
    assert ["receiver", "--server", "waitress"] in argvs


@pytest.mark.parametrize("which", ["oldest", "newest"])
def test_every_command_as_the_readme_writes_it_parses_alike_on_the_oldest_and_newest_python(which):
    version = readme_pythons()[0 if which == "oldest" else 1]
    python = find_python(version)
    if python is None:
        pytest.skip(f"Python {version} (the README's {which}) is not installed here")
    argvs = readme_argvs()
    there, here = parse_with(python, argvs), parse_with(sys.executable, argvs)
    assert there["third_party"] == [], "workshop/__main__.py must parse its arguments with the standard library alone"
    for argv, theirs, ours in zip(argvs, there["parsed"], here["parsed"], strict=True):
        assert "error" not in theirs, f"`python -m workshop {shlex.join(argv)}` on Python {version}: {theirs}"
        assert theirs == ours, f"`{shlex.join(argv)}` parses differently on Python {version}"


# The commands, run for real.

def run(*argv: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "workshop", *argv], capture_output=True, text=True, cwd=ROOT,
                          timeout=timeout, env={**os.environ, **(env or {})})


class Running:
    """A command started as from a terminal, in its own process group, so Ctrl+C reaches all of it."""

    def __init__(self, *argv: str, env: dict[str, str]) -> None:
        self.tag = uuid.uuid4().hex
        self.proc = subprocess.Popen([sys.executable, "-m", "workshop", *argv], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, cwd=ROOT, start_new_session=True,
                                     env={**os.environ, **env, "WORKSHOP_TEST_TAG": self.tag})

    def wait_until(self, ready, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            assert self.proc.poll() is None, f"stopped at start-up: {self.proc.communicate()}"
            assert time.monotonic() < deadline, "not ready in time"
            time.sleep(0.1)

    def ctrl_c(self, timeout: float = 30) -> tuple[str, str]:
        """Press Ctrl+C: SIGINT to the whole foreground group, as a terminal sends it."""
        os.killpg(self.proc.pid, signal.SIGINT)
        out, err = self.proc.communicate(timeout=timeout)
        assert self.proc.returncode in (0, 130), (self.proc.returncode, out, err)
        assert "Traceback" not in out + err, err
        deadline = time.monotonic() + 10  # whatever it started under a lifeline goes with it
        while started_by(self.tag) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert started_by(self.tag) == []
        return out, err


def test_doctor_runs_to_its_end():
    result = run("doctor", timeout=300)
    assert "Traceback" not in result.stdout + result.stderr, result.stderr
    assert result.returncode == 0, result.stdout + result.stderr


def test_send_inspect_and_replay_as_written_against_a_live_receiver(live, redis):
    env = live["env"]
    sent = run("send", "--url", live["url"], env=env)
    assert sent.returncode == 0 and "sent 1: 1 acknowledged" in sent.stdout, sent.stdout + sent.stderr
    listing = run("inspect", env=env)
    assert listing.returncode == 0, listing.stderr
    request_id = listing.stdout.split()[0]
    shown = run("inspect", request_id, env=env)
    assert shown.returncode == 0 and json.loads(shown.stdout)["status"] == 204
    replayed = run("replay", request_id, env=env)
    assert replayed.returncode == 0 and "answered 204, a duplicate" in replayed.stdout, replayed.stdout
    for result in (sent, listing, shown, replayed):
        assert "Traceback" not in result.stderr


def test_the_receiver_starts_answers_and_stops_on_ctrl_c(redis_url):
    port = free_port()
    receiver = Running("receiver", "--port", str(port), env={"REDIS_URL": redis_url, "SIGNATURE_SECRET": ""})
    base = f"http://127.0.0.1:{port}"
    receiver.wait_until(lambda: not port_is_free(port))
    assert requests.get(base + "/healthz", timeout=5).json()["redis"] == "ok"
    assert requests.post(base + "/webhooks/inbound-sms", data=make_sms(), timeout=5).status_code == 204
    receiver.ctrl_c()
    assert port_is_free(port)


def test_the_worker_starts_registers_and_stops_on_ctrl_c(redis_url):
    connection = Redis.from_url(redis_url)
    worker = Running("worker", env={"REDIS_URL": redis_url})
    worker.wait_until(lambda: Worker.count(connection=connection) == 1)
    worker.ctrl_c()
    assert Worker.count(connection=connection) == 0  # it said goodbye to RQ


def test_redis_as_written_starts_on_the_default_port_or_says_one_already_answers():
    url = "redis://127.0.0.1:6379/0"
    if answers(url):
        result = run("redis", timeout=30)
        assert result.returncode == 0 and result.stdout == f"A Redis server already answers on port 6379: use " \
            f"REDIS_URL={url} (nothing started).\n"
        return
    if not port_is_free(6379):
        pytest.skip("port 6379 is taken by a program that is not Redis")
    server = Running("redis", env={})
    assert server.proc.stdout.readline() == f"REDIS_URL={url}\n"
    assert answers(url)
    server.ctrl_c()
    assert not answers(url)


def test_tunnel_without_a_token_says_why_and_gives_the_local_url(tmp_path):
    result = run("tunnel", "--port", "5000", env={"NGROK_AUTHTOKEN": "", "HOME": str(tmp_path),
                                                  "XDG_CONFIG_HOME": str(tmp_path)}, timeout=60)
    assert result.returncode == 0 and "Traceback" not in result.stderr
    assert result.stdout.startswith("No public URL: no ngrok authtoken is configured. Using the local URL "
                                    "http://127.0.0.1:5000/webhooks/inbound-sms.")


def standin_env(tmp_path: Path, token: str) -> dict[str, str]:
    """The environment that makes pyngrok start the stand-in agent (tests/standin_ngrok.py)."""
    agent = tmp_path / "ngrok"
    agent.write_text(f"#!/bin/sh\nexec {sys.executable} {STANDIN} \"$@\"\n")
    agent.chmod(0o755)
    return {"PYNGROK_NGROK_PATH": str(agent), "NGROK_AUTHTOKEN": token, "HOME": str(tmp_path),
            "XDG_CONFIG_HOME": str(tmp_path / "config")}


def test_tunnel_with_a_token_opens_a_public_url_and_closes_it_on_ctrl_c(live, tmp_path):
    port = live["base"].rsplit(":", 1)[1]
    tunnel = Running("tunnel", "--port", port, env=standin_env(tmp_path, "good-token"))
    line = tunnel.proc.stdout.readline()
    assert line.startswith("Public webhook URL (paste it into the Vonage dashboard): http://127.0.0.1:"), line
    public = line.split(": ", 1)[1].strip()
    assert requests.post(public, data=make_sms("through the tunnel"), timeout=5).status_code == 204
    tunnel.ctrl_c()  # the stand-in agent, under the same tag, is gone too


def test_chaos_as_written_runs_every_scenario_and_stops_on_ctrl_c():
    """`chaos` with no argument (argparse once refused it on Python 3.10 and 3.11): under way, then Ctrl+C."""
    chaos = Running("chaos", env={})
    chaos.wait_until(lambda: any("workshop worker" in p for p in started_by(chaos.tag)), timeout=90)
    chaos.ctrl_c(timeout=60)
    assert chaos.proc.returncode == 130


# Without Redis: one sentence, no traceback.

@pytest.fixture()
def no_redis() -> dict[str, str]:
    return {"REDIS_URL": f"redis://127.0.0.1:{free_port()}/0", "SIGNATURE_SECRET": ""}


@pytest.mark.parametrize("argv", [["worker"], ["inspect"], ["inspect", "ab12"], ["replay", "ab12"]],
                         ids=" ".join)
def test_a_command_that_needs_redis_says_in_one_sentence_how_to_start_one(no_redis, argv):
    result = run(*argv, env=no_redis, timeout=60)
    assert result.returncode == 1
    assert result.stdout + result.stderr == unreachable(no_redis["REDIS_URL"]) + "\n"
    assert "REDIS_URL=" in result.stderr and "python -m workshop redis" in result.stderr


def test_the_receiver_without_redis_warns_once_and_answers_503(no_redis):
    port = free_port()
    receiver = Running("receiver", "--port", str(port), env=no_redis)
    receiver.wait_until(lambda: not port_is_free(port))
    started = time.monotonic()
    answer = requests.post(f"http://127.0.0.1:{port}/webhooks/inbound-sms", data=make_sms(), timeout=10)
    assert answer.status_code == 503 and time.monotonic() - started < 3
    assert requests.get(f"http://127.0.0.1:{port}/healthz", timeout=10).status_code == 503
    _, err = receiver.ctrl_c()
    assert err.splitlines()[0] == unreachable(no_redis["REDIS_URL"]) + " Until then every message is answered 503."

