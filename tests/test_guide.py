"""The instructor material: the timetable agrees with the notebooks, the slides build, the pages exist."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).parent.parent
GUIDE = ROOT / "workshop" / "guide"


def _tables(text: str) -> list[list[list[str]]]:
    tables, current = [], []
    for line in text.splitlines():
        if line.startswith("|"):
            if not set(line) <= set("|-: "):  # not the header's separator
                current.append([cell.strip() for cell in line.strip("|").split("|")])
        elif current:
            tables.append(current)
            current = []
    return tables + ([current] if current else [])


def test_the_timetables_match_the_notebooks_and_add_up():
    """The 3-hour table and the self-paced one give each notebook its own minutes; every notebook is in one."""
    three_hours, ninety, later = _tables((GUIDE / "outline.md").read_text())[:3]
    in_room = [r for r in three_hours[1:] if r[2]]
    for row in in_room + later[1:]:
        notebook = nbformat.read(ROOT / "notebooks" / f"{row[2]}.ipynb", as_version=4)
        minutes = re.search(r"\*\*Teaching:\*\* (\d+) min · \*\*Exercises:\*\* (\d+) min", notebook.cells[0].source)
        assert (row[3], row[4]) == minutes.groups(), f"{row[2]}: outline {row[3:5]}, notebook {minutes.groups()}"
        assert int(row[5]) == int(row[3]) + int(row[4])
    assert sum(int(r[5]) for r in three_hours[1:-1]) == 180 == int(three_hours[-1][5].strip("*"))
    assert sum(int(r[5]) for r in ninety[1:-1]) == 90 == int(ninety[-1][5].strip("*"))
    room, after = {r[2] for r in in_room}, {r[2] for r in later[1:]}
    assert not room & after, f"in the room and after it: {room & after}"
    assert room | after == {p.stem for p in (ROOT / "notebooks").glob("*.ipynb")}


def test_slides_build_as_a_reveal_deck(tmp_path):
    slides = nbformat.read(GUIDE / "slides.ipynb", as_version=4)
    assert all(c.cell_type == "markdown" and c.metadata["slideshow"]["slide_type"] == "slide" for c in slides.cells)
    subprocess.run([sys.executable, "-m", "jupyter", "nbconvert", "--to", "slides", str(GUIDE / "slides.ipynb"),
                    "--output-dir", str(tmp_path)], check=True, capture_output=True, timeout=120)
    html = (tmp_path / "slides.slides.html").read_text()
    assert html.count("<section") == 2 * len(slides.cells) and "reveal" in html  # nbconvert nests two per slide
    for topic in ("What is a webhook?", "API versus webhook", "Pre-arrangement", "Security", "Queues", "Workers",
                  "At least once"):
        assert topic in html


def test_troubleshooting_covers_what_attendees_meet():
    text = (GUIDE / "troubleshooting.md").read_text()
    for topic in ("OBJC_DISABLE_INITIALIZE_FORK_SAFETY", "WSL", "AirPlay", "No Redis server", "ERR_NGROK_108",
                  "HTTPS_PROXY", "NO_PROXY"):
        assert topic in text


def test_every_guide_page_is_linked_from_the_readme():
    readme = (ROOT / "README.md").read_text()
    for page in GUIDE.iterdir():
        if page.suffix in (".md", ".ipynb"):
            assert f"workshop/guide/{page.name}" in readme, page.name
