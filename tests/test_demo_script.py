"""The live-demo script (workshop/guide/demo-script.md), run as it is written.

`demo --slow` paces the burst: the live line shows acknowledged climbing at the pace and processed
following, judged by the counters the demo prints as it goes (never after a fixed sleep). `demo --forever
--slow` with a `.env` and an ngrok token (a stand-in agent: ngrok's servers cannot be reached here) goes
live, says how to send more, and what `send` sends from another terminal is processed, not rejected.
"""
from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

from tests.conftest import like_a_terminal
from workshop import demo, sender

ROOT = Path(__file__).parent.parent
SCRIPT = (ROOT / "workshop" / "guide" / "demo-script.md").read_text(encoding="utf-8")
STANDIN = Path(__file__).with_name("standin_ngrok.py")
LINE = re.compile(r"sent +(\d+) \| acknowledged +(\d+) \| queued +(\d+) \| processed +(\d+) \| "
                  r"duplicates suppressed +(\d+) \| rejected +(\d+)")


def as_a_presenter() -> dict[str, str]:
    """This environment without the kit's settings: a presenter's come from the `.env` in the folder."""
    settings = ("REDIS_URL", "SIGNATURE_SECRET", "SIGNATURE_METHOD", "MESSAGES_FILE", "SMS_JOB", "NGROK_AUTHTOKEN")
    return {**{k: v for k, v in os.environ.items() if k not in settings}, "NO_PROXY": "*"}


class Demo:
    """`python -m workshop demo ...` in the background; its lines, each with the moment it was read."""

    def __init__(self, *args: str, cwd: Path, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "workshop", "demo", *args], cwd=cwd, text=True,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, preexec_fn=like_a_terminal,
                                     env={**as_a_presenter(), "REDIS_URL": "", **env})
        self.lines: queue.SimpleQueue[tuple[float, str]] = queue.SimpleQueue()
        self.seen: list[tuple[float, str]] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.put((time.monotonic(), line.rstrip("\n")))

    def until(self, found, timeout: float = 60.0) -> tuple[float, str]:
        """Read lines until `found(line)` is true; return that line and when it came."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                when, line = self.lines.get(timeout=0.5)
            except queue.Empty:
                assert self.proc.poll() is None, "the demo stopped:\n" + "\n".join(text for _, text in self.seen[-30:])
                continue
            self.seen.append((when, line))
            if found(line):
                return when, line
        last = "\n".join(text for _, text in self.seen[-30:])
        raise AssertionError(f"not seen in {timeout} s; the last lines:\n{last}")

    def counters(self) -> list[tuple[float, tuple[int, ...]]]:
        return [(when, tuple(map(int, m.groups()))) for when, line in self.seen if (m := LINE.search(line))]

    def ctrl_c(self, timeout: float = 60.0) -> None:
        self.proc.send_signal(signal.SIGINT)
        self.until(lambda line: "Stopping what the demo started... done." in line, timeout)
        assert self.proc.wait(timeout) == 130

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def test_the_script_writes_the_commands_this_test_runs():
    assert "`python -m workshop demo --slow`" in SCRIPT and "`python -m workshop demo --forever --slow`" in SCRIPT
    assert "--count 50 --duplicate 3" in SCRIPT and "SIGNATURE_SECRET" in SCRIPT and "NGROK_AUTHTOKEN" in SCRIPT
    assert "receiver --port" not in SCRIPT, "a receiver alone starts no Redis and no worker: every SMS gets a 503"


@pytest.mark.slow
def test_slow_paces_the_burst_so_acknowledged_climbs_and_processed_follows(tmp_path):
    run = Demo("--slow", cwd=tmp_path, env={"SIGNATURE_SECRET": "", "NGROK_AUTHTOKEN": "", "HOME": str(tmp_path)})
    try:
        run.until(lambda line: line.startswith("All good"), timeout=120)
    finally:
        run.kill()
    counters = run.counters()
    total = counters[-1][1][0]
    assert total > 60
    moving = [(when, c) for when, c in counters if 0 < c[1] < total]
    assert len({c[1] for _, c in moving}) >= 10, "acknowledged climbs through many values, not 0 then the end"
    assert len({c[3] for _, c in moving if c[3] > 0}) >= 5, "processed follows, through many values too"
    # An answer may still be on its way back to one of the demo's 8 senders when its message is processed.
    assert all(c[3] <= c[1] + 8 for _, c in counters), "nothing is processed long before it is acknowledged"
    assert [c[1] for _, c in counters] == sorted(c[1] for _, c in counters)
    # The pace holds: never more acknowledged than 10 a second allow (plus a second's worth), and the burst
    # takes about as long as the pace says.
    start = next(when for when, c in counters if c[1] > 0) - 0.5
    assert all(c[1] <= demo.SLOW_RATE * (when - start + 1.0) for when, c in counters), counters
    end = next(when for when, c in counters if c[1] == total)
    assert end - start >= 0.8 * (total - 1) / demo.SLOW_RATE


def _standin_ngrok(folder: Path) -> dict[str, str]:
    agent = folder / "ngrok"
    agent.write_text(f"#!/bin/sh\nexec {sys.executable} {STANDIN} \"$@\"\n")
    agent.chmod(0o755)
    return {"PYNGROK_NGROK_PATH": str(agent), "HOME": str(folder), "XDG_CONFIG_HOME": str(folder / "config")}


@pytest.mark.slow
def test_forever_goes_live_and_what_send_sends_beside_it_is_processed(tmp_path):
    secret = "room-demo-secret"
    (tmp_path / ".env").write_text(f"SIGNATURE_SECRET={secret}\nSIGNATURE_METHOD=sha256\nNGROK_AUTHTOKEN=good-token\n")
    run = Demo("--forever", "--slow", cwd=tmp_path, env=_standin_ngrok(tmp_path))
    try:
        _, public = run.until(lambda line: line.startswith("  public "))
        assert "(paste it into the Vonage dashboard)" in public, public
        _, command = run.until(lambda line: "python -m workshop send --url" in line, timeout=120)
        _, inspector = run.until(lambda line: line.startswith("  inspector: "))
        _, first = run.until(lambda line: bool(LINE.search(line)))
        before = tuple(map(int, LINE.search(first).groups()))

        argv = command.split("python -m workshop ", 1)[1].split()
        assert argv[:2] == ["send", "--url"] and argv[2] == public.split()[1]
        sent = subprocess.run([sys.executable, "-m", "workshop", *argv], cwd=tmp_path, capture_output=True, text=True,
                              timeout=120, env=as_a_presenter())
        assert sent.returncode == 0, sent.stdout + sent.stderr
        assert "sent 150: 150 acknowledged (100 as duplicates)" in sent.stdout

        phone = sender.signed(sender.make_sms("from a phone, through the tunnel"), secret, "sha256")
        assert sender.deliver(argv[2], phone).ok

        _, after = run.until(lambda line: (m := LINE.search(line)) is not None and int(m.group(4)) >= before[3] + 51)
        after_counts = tuple(map(int, LINE.search(after).groups()))
        assert after_counts[3] == before[3] + 51, "50 sent beside the demo, and one 'from a phone': each once"
        assert after_counts[5] == before[5], "none of them rejected: send signed with the demo's secret"
        page = inspector.split(": ", 1)[1].split()[0]
        assert requests.get(page, timeout=10).status_code == 200
        run.ctrl_c()
    finally:
        run.kill()


def test_forever_says_when_send_would_sign_with_another_secret(capsys):
    demo._how_to_send_more("http://127.0.0.1:1/webhooks/inbound-sms", "http://127.0.0.1:1/webhooks/inbound-message",
                           "http://127.0.0.1:1", configured=False)
    out = capsys.readouterr().out
    assert "python -m workshop send --url http://127.0.0.1:1/webhooks/inbound-sms --count 50 --duplicate 3" in out
    assert "random secret" in out and "SIGNATURE_SECRET" in out
    demo._how_to_send_more("u", "m", "b", configured=True)
    assert "random secret" not in capsys.readouterr().out
