"""`python -m workshop doctor`: is this machine ready for the workshop?

One line per check, with the fix when something is wrong. Exits non-zero only
on a blocker; a warning (no ngrok token, offline) still lets you take part.
"""
from __future__ import annotations

import platform
import socket
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

OK, WARN, FAIL = "ok", "warning", "blocker"
MARKS = {OK: "✔", WARN: "!", FAIL: "✘"}
REQUIREMENTS = Path(__file__).resolve().parent.parent / "requirements.txt"
RECEIVER_PORT = 5050  # the receiver's default (workshop.__main__.PORT): AirPlay takes 5000 on many Macs


@dataclass
class Result:
    """The outcome of one check; `fix` says what to do when it is not ok."""

    name: str
    status: str
    detail: str
    fix: str = ""

    def line(self) -> str:
        text = f"{MARKS[self.status]} {self.name}: {self.detail}"
        return text + (f"\n    fix: {self.fix}" if self.fix else "")


def check_python() -> Result:
    version = platform.python_version()
    if sys.version_info < (3, 10):  # noqa: UP036  the doctor runs on an old Python too, to say so
        return Result("Python", FAIL, f"{version} is too old",
                      "install Python 3.10 or newer (python.org, Homebrew, or conda), then `make install`")
    return Result("Python", OK, f"{version} ({platform.system()} {platform.machine()})")


def pinned_packages(path: Path = REQUIREMENTS) -> list[tuple[str, str]]:
    """(name, version) for every pin in a requirements file that applies to this machine."""
    from packaging.requirements import Requirement

    pins = []
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line or line.startswith("-"):  # -r other.txt: only this file's own pins
            continue
        requirement = Requirement(line)
        if requirement.marker is None or requirement.marker.evaluate():
            pins.append((requirement.name, str(requirement.specifier).removeprefix("==")))
    return pins


def check_packages() -> Result:
    if not REQUIREMENTS.exists():
        return Result("packages", WARN, "requirements.txt not found next to the kit", "run from the kit's folder")
    missing, other = [], []
    pins = pinned_packages(REQUIREMENTS)
    for name, version in pins:
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            missing.append(name)
            continue
        if installed != version:
            other.append(f"{name} {installed} (pinned {version})")
    if missing:
        return Result("packages", FAIL, f"missing: {', '.join(missing)}", "run `make install` (or "
                      "`pip install -r requirements.txt` in your environment). With no network: copy the "
                      "wheelhouse folder from the instructor's USB stick into the kit's folder, then `make install`")
    if other:
        return Result("packages", WARN, f"other versions: {', '.join(other)}",
                      "usually fine; `make install` gives the tested versions")
    return Result("packages", OK, f"all {len(pins)} attendee packages at their pinned versions "
                  "(the test packages, requirements-test.txt, are not needed)")


def check_kernel() -> Result:
    try:
        from jupyter_client.kernelspec import find_kernel_specs
        specs = find_kernel_specs()
    except Exception as error:  # jupyter missing or broken
        return Result("Jupyter kernel", FAIL, f"cannot list kernels ({error})", "run `make install`")
    if "python3" not in specs:
        return Result("Jupyter kernel", FAIL, "no python3 kernel", "run `make install`")
    return Result("Jupyter kernel", OK, "python3 is available (`make lab` opens the notebooks)")


def check_redis() -> Result:
    from workshop.redis_server import INSTALL_HINT, RedisServer, find_server_binary

    binary = find_server_binary()
    if binary is None:
        return Result("Redis", FAIL, "no redis-server found", INSTALL_HINT.split(". ", 1)[1])
    try:
        server = RedisServer()
    except Exception as error:
        return Result("Redis", FAIL, f"{binary} did not start: {error}", "see workshop/guide/troubleshooting.md")
    server.stop()
    return Result("Redis", OK, f"started and stopped {binary}")


def check_port(port: int = RECEIVER_PORT) -> Result:
    from workshop.services import port_is_free

    if port_is_free(port):
        return Result("receiver port", OK, f"{port} is free")
    return Result("receiver port", WARN, f"port {port} is in use",
                  "stop what listens there, or use another port (`python -m workshop receiver --port 5051`). "
                  "On macOS, AirPlay Receiver takes port 5000: turn it off in System Settings > General > "
                  "AirDrop & Handoff")


def check_round_trip() -> Result:
    """A signed message in each of Vonage's formats (SMS API, Messages API) through a real receiver, queue, worker."""
    from solutions.receiver import MESSAGES_PATH
    from solutions.store import read_messages
    from workshop import sender
    from workshop.redis_server import RedisServer
    from workshop.services import start_receiver, start_worker

    started = time.monotonic()
    messages = Path(tempfile.mkdtemp(prefix="workshop-doctor-")) / "messages.jsonl"
    env = {"SIGNATURE_SECRET": "doctor-check", "SIGNATURE_METHOD": "sha256", "MESSAGES_FILE": str(messages)}
    things: list = []  # what was started, to stop: a Redis server, a receiver, a worker
    try:
        server = RedisServer()
        things.append(server)
        receiver, base = start_receiver(server.url, env=env)
        things.append(receiver)
        things.append(start_worker(server.url, env=env))
        sms = sender.signed(sender.make_sms("doctor"), "doctor-check", "sha256")
        message = sender.messages_api_request(sender.make_inbound_message("doctor"), "doctor-check")
        for delivery in (sender.deliver(base + "/webhooks/inbound-sms", sms, max_attempts=2),
                         sender.deliver(base + MESSAGES_PATH, message, "messages", max_attempts=2)):
            if not delivery.ok:
                return Result("round trip", FAIL, f"the receiver answered {delivery.status}", "see the receiver log "
                              f"in {tempfile.gettempdir()}/webhooks-workshop")
        while time.monotonic() - started < 20 and len(read_messages(messages)) < 2:
            time.sleep(0.1)
        if len(read_messages(messages)) < 2:
            return Result("round trip", FAIL, "the worker did not process both messages in 20 s",
                          "see workshop/guide/troubleshooting.md (worker)")
        return Result("round trip", OK, f"receiver → queue → worker → file in {time.monotonic() - started:.1f} s "
                      "(SMS API and Messages API)")
    except Exception as error:
        return Result("round trip", FAIL, str(error).splitlines()[0], "see workshop/guide/troubleshooting.md")
    finally:
        for thing in reversed(things):
            thing.stop()


def check_ngrok(probe: bool = True) -> Result:
    from workshop.tunnel import find_authtoken

    if not find_authtoken():
        return Result("ngrok", WARN, "no authtoken: the workshop works locally, without a public URL",
                      "sign up at ngrok.com, then `ngrok config add-authtoken TOKEN` or set NGROK_AUTHTOKEN in .env")
    if probe:
        try:
            socket.create_connection(("connect.ngrok-agent.com", 443), timeout=3).close()
        except OSError:
            return Result("ngrok", WARN, "authtoken found, but ngrok cannot be reached (offline or a proxy)",
                          "try another network; everything but the public URL works offline")
    return Result("ngrok", OK, "authtoken found" + (" and ngrok reachable" if probe else ""))


CHECKS: list[Callable[[], Result]] = [check_python, check_packages, check_kernel, check_redis, check_port,
                                      check_round_trip, check_ngrok]


def run_doctor(checks: list[Callable[[], Result]] | None = None, out=sys.stdout) -> int:
    """Run every check, print one line each; return 1 if any is a blocker, else 0."""
    print("Checking this machine for the webhooks workshop...\n", file=out, flush=True)
    results = []
    for check in checks or CHECKS:
        result = check()
        results.append(result)
        print(result.line(), file=out, flush=True)
    blockers = [r for r in results if r.status == FAIL]
    warnings = [r for r in results if r.status == WARN]
    if blockers:
        print(f"\n{len(blockers)} blocker(s): fix them before the workshop (see the fix lines above).", file=out)
        return 1
    print(f"\nReady for the workshop{f' ({len(warnings)} warning(s))' if warnings else ''}.", file=out)
    return 0
