"""Run a command only for as long as its owner lives.

    python -m workshop.lifeline COMMAND [ARGS...]

The owner starts this with a pipe on standard input and never writes to it. When
the owner exits, on Ctrl+C, a crash or even SIGKILL, the pipe closes and the
command is stopped (SIGTERM, then SIGKILL after 5 s). That is how the kit makes
sure no Redis, receiver or worker is left behind by a notebook or a demo.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading


def _stop(child: subprocess.Popen) -> None:
    if child.poll() is None:
        child.terminate()
        try:
            child.wait(5)
        except subprocess.TimeoutExpired:
            child.kill()


def main(argv: list[str]) -> int:
    """Start `argv`, stop it when standard input closes; return its exit code."""
    child = subprocess.Popen(argv)

    def watch_owner() -> None:
        while os.read(0, 4096):  # unbuffered: no lock left behind at exit
            pass
        _stop(child)

    threading.Thread(target=watch_owner, daemon=True).start()
    signal.signal(signal.SIGTERM, lambda *_: _stop(child))
    signal.signal(signal.SIGINT, lambda *_: _stop(child))
    return child.wait()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
