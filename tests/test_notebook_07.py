"""Notebook 07 run as a learner runs it, with a learner's guesses: loss with each protection off, none on.

The notebook's predictions compare like with like (deliveries answered 2xx with deliveries answered 2xx,
lines with lines), so right guesses get a ✓; its side-by-side table must show, in a real kernel with real
processes, messages lost or written twice with the protections off and none with them on; no cell waits
more than 30 s.
"""
from __future__ import annotations

import pytest

from tests.learner import errors, run_with_answers, slowest_cell, stream_text

ANSWERS = {
    "07e522c8": "my_guess_answered_2xx = 3 * 50\nmy_guess_lines_off = 150\nmy_guess_lines_on = 50",
    "which": "my_saved_by = {'each sent 3 times': 'de-duplicate', '1 worker kill': 'sweep',\n"
             "               'Redis killed, restarted': 'store first'}",
}


def side_by_side(text: str) -> dict[str, tuple[list[int], list[int]]]:
    """The compare table's rows: scenario -> ([acked, lost, twice] off, [acked, lost, twice] on)."""
    rows = {}
    for line in text.splitlines():
        cells = [cell.strip() for cell in line.split("|")]
        if len(cells) == 3 and cells[1][:1].isdigit():
            rows[cells[0]] = tuple([int(n) for n in cell.split()] for cell in cells[1:])
    return rows


@pytest.mark.notebook
def test_a_learner_sees_the_loss_with_each_protection_off_and_none_with_it_on():
    nb = run_with_answers("07-load-and-faults", ANSWERS)
    text = stream_text(nb)
    assert errors(nb) == [], errors(nb)
    assert "Traceback" not in text and "Not yet" not in text
    for guess in ("deliveries answered 2xx: you said 150, it was 150 ✓",
                  "lines in the file, de-duplication off: you said 150, it was 150 ✓",
                  "lines in the file, de-duplication on: you said 50, it was 50 ✓",
                  "each sent 3 times: you said 'de-duplicate' ✓", "1 worker kill: you said 'sweep' ✓",
                  "Redis killed, restarted: you said 'store first' ✓"):
        assert guess in text, text[-3000:]
    rows = side_by_side(text)
    assert set(rows) == {"each sent 3 times", "1 worker kill", "Redis killed, restarted"}, text[-3000:]
    (acked, lost, twice), on = rows["each sent 3 times"]
    assert (acked, lost, twice) == (50, 0, 100) and on == [50, 0, 0]
    (acked, lost, twice), on = rows["1 worker kill"]
    assert (acked, lost, twice) == (100, 1, 0) and on == [100, 0, 0]
    (acked, lost, twice), on = rows["Redis killed, restarted"]
    assert acked == 100 and lost >= 50 and twice == 0 and on == [100, 0, 0]
    assert any(o.get("output_type") == "display_data" and "image/png" in o.get("data", {})
               for c in nb.cells if c.get("id") == "side-by-side" for o in c.outputs), "no plot"
    took, cell = slowest_cell(nb)
    assert took < 30, f"a cell ran {took:.0f} s: {cell!r}"
