"""Every notebook: committed clean, runs solved with no error, runs as shipped with only friendly checks."""
from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

import nbformat
import pytest

from workshop import notebook

NOTEBOOKS = sorted((Path(__file__).parent.parent / "notebooks").glob("*.ipynb"))
EXERCISE_NOTEBOOKS = {"01", "02", "03", "04", "05", "08", "09", "10"}
ONCE = {"07"}  # its fault scenarios take a minute a run: run solved once (its learner test runs it again)


def lifelines(tag: str) -> set[int]:
    """Pids of the kit's background processes started with WORKSHOP_TEST_TAG=`tag` (Linux /proc)."""
    found = set()
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if (b"workshop.lifeline" in (proc / "cmdline").read_bytes()
                    and f"WORKSHOP_TEST_TAG={tag}".encode() in (proc / "environ").read_bytes().split(b"\0")):
                found.add(int(proc.name))
        except OSError:
            continue
    return found


def execute(path: Path, autosolve: bool, twice: bool = False) -> nbformat.NotebookNode:
    nb = nbformat.read(path, as_version=4)
    if twice:  # Run All, then Run All again in the same kernel
        nb.cells = nb.cells + [nbformat.from_dict(dict(c)) for c in nb.cells]
    notebook.execute(nb, path.parent, solved=autosolve)
    return nb


def outputs(nb, kind: str) -> list:
    return [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == kind]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"{path.name} has outputs: clear them"
    first = nb.cells[0].source
    assert "**Teaching:**" in first and "**Questions**" in first and "**Objectives**" in first
    assert "Key points" in "".join(c.source for c in nb.cells if c.cell_type == "markdown")


@pytest.mark.notebook
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_runs_solved_twice_in_a_row_without_error_and_leaves_nothing_behind(path, monkeypatch):
    tag = uuid.uuid4().hex  # the kernel, and every process it starts, inherits it
    monkeypatch.setitem(os.environ, "WORKSHOP_TEST_TAG", tag)
    started = time.monotonic()
    nb = execute(path, autosolve=True, twice=path.stem[:2] not in ONCE)
    print(f"{path.name}: {time.monotonic() - started:.1f} s")
    assert outputs(nb, "error") == []
    text = "".join(o.get("text", "") for o in outputs(nb, "stream"))
    assert "Not yet" not in text
    if path.stem[:2] in EXERCISE_NOTEBOOKS:
        assert "✓ Well done" in text
    deadline = time.monotonic() + 10
    while lifelines(tag) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert lifelines(tag) == set(), "background processes were left running"


@pytest.mark.notebook
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_runs_as_shipped_with_only_friendly_not_yet_messages(path):
    nb = execute(path, autosolve=False)
    errors = outputs(nb, "error")
    assert errors == [], f"{path.name}: {[e['ename'] + ': ' + e['evalue'] for e in errors]}"
    text = "".join(o.get("text", "") for o in outputs(nb, "stream"))
    if path.stem[:2] in EXERCISE_NOTEBOOKS:
        assert "Not yet:" in text and "Using the reference solution" in text
    assert "Traceback" not in text
