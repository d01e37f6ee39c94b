"""With the protection it tests turned off, each fault loses messages or writes them twice; on, none.

`python -m workshop chaos --protections off` must really show the loss (a demonstration that quietly
turns into a row of zeros teaches the opposite), and `on` must show none. Real Redis, real receivers
under gunicorn, real worker processes, 127.0.0.1 only; every fault lands by progress.
"""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from solutions.receiver import INBOUND_PATH
from workshop import chaos, sender
from workshop.services import ServiceError, free_port, start_receiver


def test_without_de_duplication_every_copy_is_written_and_with_it_each_message_once():
    off = chaos.duplicates(count=40, copies=3, protections=False)
    assert off.answered_2xx == 120 and off.acknowledged == 40 and off.lost == 0, off
    assert off.processed == 40 and off.written_twice == 80 and off.lines == 120, off
    on = chaos.duplicates(count=40, copies=3)
    assert on.answered_2xx == 120 and on.acknowledged == 40 and on.lost == 0, on
    assert on.processed == 40 and on.written_twice == 0 and on.duplicates >= 80, on


@pytest.mark.slow
def test_a_worker_killed_mid_job_without_the_sweep_loses_its_message_and_with_the_sweep_none():
    off = chaos.worker_kills(count=100, kills=1, protections=False)
    assert off.killed_mid_job == 1 and off.recovered == 0, off
    assert off.lost == 1 and off.processed == 99 and off.acknowledged == 100, off
    on = chaos.worker_kills(count=100, kills=1)
    assert on.killed_mid_job == 1 and on.recovered >= 1, on
    assert on.lost == 0 and on.written_twice == 0 and on.processed == 100, on
    # The off row waited as long as a sweep could need: the on row's sweep needed less.
    assert on.recovery_seconds is not None and on.recovery_seconds < chaos.SWEEP_HORIZON, on


@pytest.mark.slow
def test_redis_killed_under_a_receiver_that_answers_first_loses_what_it_acknowledged_while_down():
    off = chaos.redis_kill(count=80, protections=False)
    assert off.answered_503 == 0 and off.acknowledged == 80, off
    assert off.lost >= 40, f"the 40 messages answered 204 while Redis was down should be lost: {off}"
    on = chaos.redis_kill(count=80)
    assert on.answered_503 > 0 and on.acknowledged == 80, on
    assert on.lost == 0 and on.written_twice == 0 and on.processed == 80, on


@pytest.mark.parametrize("app, status", [("ack-first", 204), ("kit", 503)])
def test_with_redis_away_the_ack_first_receiver_says_204_and_loses_it_the_kits_says_503(app, status):
    nowhere = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    receiver, base = start_receiver(nowhere, env={"SIGNATURE_SECRET": "", "INSPECTOR": "0"}, app=app)
    try:
        delivery = sender.deliver(base + INBOUND_PATH, sender.make_sms("where did I go?"), max_attempts=1)
        assert delivery.status == status
        if app == "ack-first":
            receiver.wait_until(lambda: "could not queue message" in receiver.log_tail(40), timeout=10)
            assert delivery.message_id in receiver.log_tail(40)
    except ServiceError:
        pytest.fail(f"the ack-first receiver never logged the message it lost:\n{receiver.log_tail()}")
    finally:
        receiver.stop()


def test_the_command_prints_both_tables_and_them_side_by_side():
    result = subprocess.run([sys.executable, "-m", "workshop", "chaos", "--protections", "both", "duplicates"],
                            capture_output=True, text=True, timeout=120, env={**os.environ, "REDIS_URL": ""})
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "Protections off, in each scenario the one it tests:" in out and "Protections on:" in out
    assert "With the protections off: 0 acknowledged message(s) lost, 200 written twice." in out
    side_by_side = [line.split("|") for line in out.splitlines() if line.startswith("each sent 3 times")]
    assert [cell.split() for cell in side_by_side[-1][1:]] == [["100", "0", "200"], ["100", "0", "0"]], out


def outcome(name: str, lost: int, twice: int, protections: bool) -> chaos.Outcome:
    return chaos.Outcome(name, 10, 10, 0, 10 - lost, twice, 0, 0, lost, protections=protections)


def test_the_figure_draws_lost_and_written_twice_off_beside_on():
    off = [outcome("a", 0, 7, False), outcome("b", 3, 0, False)]
    on = [outcome("b", 0, 0, True), outcome("a", 0, 0, True)]  # matched by name, not by order
    figure = chaos.figure(off, on)
    lost, twice = ([bar.get_height() for bar in ax.patches] for ax in figure.axes)
    assert lost == [0, 3, 0, 0] and twice == [7, 0, 0, 0]
    assert chaos.compare(off, on).splitlines()[2:] == [
        "a                        |     10     0      7 |     10     0      0",
        "b                        |     10     3      0 |     10     0      0",
    ]
