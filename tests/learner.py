"""Run a notebook as a learner would: their own answers in the exercise cells, the reference nowhere.

    nb = run_with_answers("05-the-worker", {"d3053b4b": my_answer_source})

Keys are cell ids (nbformat 4.5); each answer replaces that cell's source. The
notebook runs in a fresh kernel with WORKSHOP_AUTOSOLVE off, so every check
judges the answer given here and every catch-up keeps it when it passes.
"""
from __future__ import annotations

from datetime import datetime
from pathlib import Path

import nbformat

from workshop import notebook

NOTEBOOKS = Path(__file__).parent.parent / "notebooks"


def run_with_answers(stem: str, answers: dict[str, str], timeout: int = 120) -> nbformat.NotebookNode:
    """Execute notebook `stem` with `answers` in place; return it with its outputs."""
    path = NOTEBOOKS / f"{stem}.ipynb"
    nb = nbformat.read(path, as_version=4)
    cells = {cell.get("id"): cell for cell in nb.cells}
    missing = set(answers) - set(cells)
    assert not missing, f"{stem} has no cell with id {missing}: were the exercise cells renumbered?"
    for cell_id, source in answers.items():
        cells[cell_id].source = source
    notebook.execute(nb, path.parent, solved=False, timeout=timeout)
    return nb


def stream_text(nb: nbformat.NotebookNode) -> str:
    """Everything the cells printed."""
    return "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs
                   if o.output_type == "stream")


def errors(nb: nbformat.NotebookNode) -> list[str]:
    """The errors the cells raised, as 'Name: value'."""
    return [f"{o['ename']}: {o['evalue']}" for c in nb.cells if c.cell_type == "code" for o in c.outputs
            if o.output_type == "error"]


def slowest_cell(nb: nbformat.NotebookNode) -> tuple[float, str]:
    """The longest a cell ran, in seconds, and the start of its source (from nbclient's timing)."""
    slowest = (0.0, "")
    for cell in nb.cells:
        timing = cell.get("metadata", {}).get("execution", {})
        if "iopub.execute_input" in timing and "shell.execute_reply" in timing:
            took = (datetime.fromisoformat(timing["shell.execute_reply"].replace("Z", "+00:00"))
                    - datetime.fromisoformat(timing["iopub.execute_input"].replace("Z", "+00:00"))).total_seconds()
            slowest = max(slowest, (took, cell.source[:60]))
    return slowest


def assert_learner_passes(nb: nbformat.NotebookNode, limit_per_cell: float = 30.0) -> None:
    """Every check passed with the learner's own code: no 'Not yet', no reference, no error, no long wait."""
    text = stream_text(nb)
    assert errors(nb) == [], errors(nb)
    assert "Not yet" not in text, text[-2000:]
    assert "Using the reference solution" not in text, "a correct answer was replaced by the reference"
    assert "✓ Well done" in text
    took, cell = slowest_cell(nb)
    assert took < limit_per_cell, f"a cell ran {took:.0f} s: {cell!r}"
