"""The kit's commands, run as an attendee runs them."""
from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from solutions.store import read_messages
from tests.conftest import like_a_terminal
from tests.test_pipeline import wait_until_settled


def run(*args: str, env: dict | None = None, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "workshop", *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})


README = Path(__file__).parent.parent / "README.md"


def readme_commands() -> dict[str, tuple[str, str]]:
    """The README's table of the kit's commands: {command: (its usage as written, its description)}."""
    section = README.read_text(encoding="utf-8").split("## The kit's commands", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `([^`]+)` \| (.*) \|$", section, re.MULTILINE)
    return {usage.split()[0]: (usage, description) for usage, description in rows}


def parser_commands() -> dict:
    """The subcommands `python -m workshop` has: {name: its argparse parser}."""
    from workshop.__main__ import build_parser

    return dict(next(a for a in build_parser()._actions if a.dest == "command").choices)


def started_by(tag: str) -> list[str]:
    """The processes still running that a command run with WORKSHOP_TEST_TAG=`tag` started (Linux /proc)."""
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if f"WORKSHOP_TEST_TAG={tag}".encode() in (proc / "environ").read_bytes().split(b"\0"):
                found.append(f"{proc.name}: " + (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode())
        except OSError:
            continue
    return found


@pytest.mark.slow
def test_demo_runs_to_its_end_offline_and_stops_everything(tmp_path):
    tag = uuid.uuid4().hex
    env = {"REDIS_URL": "", "SIGNATURE_SECRET": "", "NO_PROXY": "*", "WORKSHOP_TEST_TAG": tag}
    result = run("demo", "--count", "24", env=env)
    left = started_by(tag)  # at once: their lifelines would stop them a moment later, but the demo must itself
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "All good: every signed message processed exactly once" in out
    assert "written to the file  28 messages (24 SMS API, 4 Messages API), 0 written twice" in out
    assert "the signature does not match" in out and "s old; at most 300 s allowed" in out
    assert "payload_hash differs" in out and "s ago; at most 300 s allowed" in out
    assert out.rstrip().endswith("Stopping what the demo started... done.")
    assert "  redis     " in out and "  workers   2 x SimpleWorker" in out  # it did start them
    assert left == [], f"the demo left these running: {left}"


def test_send_delivers_signed_duplicate_and_forged_messages(live, redis):
    env = live["env"]
    ok = run("send", "--url", live["url"], "--count", "3", "--style", "json", "--duplicate", "2", env=env)
    assert ok.returncode == 0 and "sent 6: 6 acknowledged (3 as duplicates)" in ok.stdout
    bad = run("send", "--url", live["url"], "--forged", env=env)
    assert bad.returncode == 0
    wait_until_settled(redis)
    assert len(read_messages(env["MESSAGES_FILE"])) == 3
    assert int(redis.hget("sms:stats", "rejected")) == 1


def test_send_reports_what_was_not_acknowledged(tmp_path):
    result = run("send", "--url", "http://127.0.0.1:9/webhooks/inbound-sms", "--count", "1", "--max-attempts", "2",
                 env={"SIGNATURE_SECRET": ""}, timeout=60)
    assert result.returncode == 1
    assert "0 acknowledged" in result.stdout and "last answer none" in result.stdout


def test_help_lists_every_command_and_the_readme_table_lists_the_same_commands():
    listed = re.findall(r"^    (\w+)", run("--help").stdout, re.MULTILINE)
    assert sorted(listed) == sorted(parser_commands())
    assert sorted(readme_commands()) == sorted(parser_commands()), "README.md's table of commands and the CLI differ"


def test_the_choices_offered_are_the_receivers_and_worker_classes_there_are():
    """The CLI writes these names out so as not to load Flask and RQ to parse its arguments."""
    from solutions.worker import WORKER_CLASSES
    from workshop.__main__ import build_parser
    from workshop.apps import APPS

    commands = next(a for a in build_parser()._actions if a.dest == "command").choices
    offered = lambda command, dest: next(a for a in commands[command]._actions if a.dest == dest).choices  # noqa: E731
    assert list(offered("receiver", "app")) == list(APPS)
    assert list(offered("worker", "worker_class")) == list(WORKER_CLASSES)


def test_rqs_own_worker_command_processes_the_kits_jobs(live, redis, tmp_path):
    """`rq worker sms` works too: the jobs are plain importable functions."""
    from tests.conftest import SECRET
    from workshop.sender import make_sms, send_many, signed

    for service in live["workers"]:
        service.stop()
    messages = [signed(make_sms(), SECRET, "sha256") for _ in range(5)]
    assert all(d.ok for d in send_many(live["url"], messages, progress=False))
    rq = os.path.join(os.path.dirname(sys.executable), "rq")
    result = subprocess.run([rq, "worker", "sms", "--burst", "--url", live["env"]["REDIS_URL"]],
                            capture_output=True, text=True, timeout=120, env={**os.environ, **live["env"]})
    assert result.returncode == 0, result.stderr
    assert sorted(m["messageId"] for m in read_messages(live["env"]["MESSAGES_FILE"])) == sorted(
        m["messageId"] for m in messages)


def test_flask_cli_serves_the_receiver_for_teaching(settings_env):
    """`flask --app solutions.receiver run` finds the create_app factory."""
    result = subprocess.run([os.path.join(os.path.dirname(sys.executable), "flask"), "--app", "solutions.receiver",
                             "routes"], capture_output=True, text=True, timeout=60, env={**os.environ, **settings_env})
    assert result.returncode == 0, result.stderr
    assert "/webhooks/inbound-sms" in result.stdout and "/healthz" in result.stdout


def test_send_stops_promptly_on_ctrl_c():
    """A long burst to a receiver that never answers: Ctrl+C ends the command within seconds."""
    with socket.socket() as silent:  # accepts connections, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(100)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/webhooks/inbound-sms"
        proc = subprocess.Popen([sys.executable, "-m", "workshop", "send", "--url", url, "--count", "500",
                                 "--concurrency", "4"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env={**os.environ, "SIGNATURE_SECRET": ""}, preexec_fn=like_a_terminal)
        assert proc.stderr.read(1)  # the progress bar has started: the burst is under way
        time.sleep(1)
        started = time.monotonic()
        proc.send_signal(signal.SIGINT)
        proc.wait(20)
        assert time.monotonic() - started < 15
        assert proc.returncode == 130
