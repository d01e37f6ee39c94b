"""`make mutation`: mutation testing of solutions/ with the fast tests (mutmut), as a report.

mutmut changes the reference code one small step at a time (a `>` made `>=`, a
constant changed, a call dropped...) and runs the tests that cover each change.
A change no test notices is a *surviving* mutant: either a test is missing, or
the change makes no difference anyone could see. This prints the score of each
module (mutants killed, out of all) and every survivor, with its diff.

It runs in a copy of the kit in a temporary folder, so it leaves the checkout
alone; the settings are [tool.mutmut] in pyproject.toml. Like the bench, it is
a report, not part of `make test`: it takes about seven minutes on two cores.
"""
from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
COPIED = ("solutions", "workshop", "tests", "pyproject.toml", "README.md")
TARGETED = ("solutions.signatures", "solutions.payloads", "solutions.intake", "solutions.store")
TARGET = 0.85
KILLED = ("killed", "timeout", "caught by type check")  # a timeout is a mutant that hung a test: noticed


def copy_kit(into: Path) -> None:
    for name in COPIED:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, into / name, ignore=shutil.ignore_patterns("__pycache__", ".hypothesis"))
        else:
            shutil.copy2(source, into / name)


def mutmut(folder: Path, *args: str, quiet: bool = False) -> str:
    result = subprocess.run([sys.executable, "-m", "mutmut", *args], cwd=folder, text=True,
                            stdout=subprocess.PIPE if quiet else None, stderr=subprocess.STDOUT if quiet else None)
    if result.returncode != 0:
        raise SystemExit(f"mutmut {' '.join(args)} failed (exit {result.returncode})")
    return result.stdout or ""


DIFFS = """
import json, sys
from mutmut.__main__ import find_mutant, get_diff_for_mutant
print(json.dumps({name: get_diff_for_mutant(name, path=find_mutant(name).path) for name in json.load(sys.stdin)}))
"""


def diffs_of(folder: Path, mutants: list[str]) -> dict[str, str]:
    """Each mutant's diff, from one process (`mutmut show` would start one per mutant)."""
    result = subprocess.run([sys.executable, "-c", DIFFS], cwd=folder, input=json.dumps(mutants), text=True,
                            capture_output=True)
    if result.returncode != 0:
        print(f"(no diffs: {result.stderr.strip().splitlines()[-1:]})")
        return {}
    return json.loads(result.stdout)


# Survivors that change nothing anyone could observe, recognised by their diff (mutant numbers change with
# the code): (module, a regular expression the diff's changed lines match, why the mutant is equivalent).
EQUIVALENT = [
    ("", r"^\+.*\"(UTF-8|ASCII)\"", "codec names are not case-sensitive"),
    ("solutions.payloads", r"^\+.*parse_qsl\((?!.*encoding=\"utf-8\")",
     "parse_qsl decodes UTF-8 when given no encoding"),
    ("solutions.intake", r"\A-\s*timeout=JOB_TIMEOUT,(\n\+\s*timeout=None,)?\Z",
     "RQ's default job timeout is 180 s, JOB_TIMEOUT's value"),
    ("solutions.intake", r"^\+.*pipeline\(transaction=(None|False)\)", "pipe.multi() makes it MULTI/EXEC in any case"),
    ("solutions.intake", r"^\+.*set\(seen_key\(did\), 2,", "only the seen mark's existence is read"),
    ("solutions.signatures", r"^\+.*if age >= 0 else", "an age of 0 is never stale, so its word is never shown"),
    ("solutions.store", r"^\+.*hexdigest\(\)\[:11\]", "a longer index key name"),
    ("solutions.store", r"^\+.*ensure_ascii=None", "None is false, as False is"),
    ("solutions.store",
     r"^\+(.*size = None|.*exists\(\) else 1|.*recorded or 1\)|.*size <= recorded|.*len\(whole\) <= len)",
     "a catch-up that finds nothing new, or indexes the whole file again: slower, the same result"),
    ("solutions.store", r"^\+.*read_text\(encoding=None\)",
     "the locale's encoding: UTF-8 here, not everywhere (hence the explicit name)"),
]


def why_equivalent(mutant: str, diff: str) -> str | None:
    """Why a surviving mutant is equivalent, if it is a known one."""
    changed = "\n".join(line for line in diff.splitlines()
                         if line.startswith(("+", "-")) and not line.startswith(("+++", "---")))
    for module, pattern, why in EQUIVALENT:
        if (not module or module_of(mutant) == module) and re.search(pattern, changed, re.MULTILINE):
            return why
    return None


def module_of(mutant: str) -> str:
    """`solutions.store.xǁMessageStoreǁadd__mutmut_3` -> `solutions.store`."""
    return re.split(r"\.x[_ǁ]", mutant, maxsplit=1)[0]


def report(statuses: dict[str, str], diffs: dict[str, str]) -> bool:
    """Print the scores and the survivors; True if every targeted module meets the target."""
    modules = sorted({module_of(m) for m in statuses})
    print(f"\n{'module':<28} {'mutants':>7} {'killed':>6} {'survived':>8} {'no test':>7} {'score':>6}")
    met = True
    for module in modules:
        counts = Counter(s for m, s in statuses.items() if module_of(m) == module)
        total = sum(counts.values()) - counts["skipped"]
        killed = sum(counts[s] for s in KILLED)
        score = killed / total if total else 1.0
        mark = ""
        if module in TARGETED:
            mark = "  target met" if score >= TARGET else f"  TARGET MISSED ({TARGET:.0%})"
            met = met and score >= TARGET
        print(f"{module:<28} {total:>7} {killed:>6} {counts['survived']:>8} {counts['no tests']:>7} "
              f"{score:>6.0%}{mark}")
    survivors = [m for m, s in statuses.items() if s in ("survived", "no tests", "suspicious")]
    explained = {m: why for m in survivors if (why := why_equivalent(m, diffs.get(m, "")))}
    print(f"\n{len(survivors)} surviving mutant(s), {len(explained)} of them known to change nothing observable"
          + (":" if survivors else "."))
    for mutant in sorted(survivors, key=lambda m: (m in explained, m)):
        note = f"equivalent: {explained[mutant]}" if mutant in explained else statuses[mutant]
        print(f"\n{mutant} ({note})")
        print("\n".join("    " + line for line in diffs.get(mutant, "").splitlines()
                        if line.startswith(("+", "-")) and not line.startswith(("+++", "---"))))
    targeted = ", ".join(m.split(".")[1] for m in TARGETED)
    print(f"\n{targeted}: " + (f"at least {TARGET:.0%} of mutants killed in each." if met
                              else f"below {TARGET:.0%} of mutants killed in at least one."))
    return met


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="keep the temporary copy (to look at mutants)")
    parser.add_argument("--only", action="append", metavar="MODULE", default=[],
                        help="mutate only this module of solutions/ (e.g. store); may be repeated")
    args = parser.parse_args()
    modules = [f"solutions.{name}" for name in args.only]
    folder = Path(tempfile.mkdtemp(prefix="workshop-mutation-"))
    try:
        copy_kit(folder)
        print(f"Mutation testing solutions/ in a copy of the kit ({folder})...", flush=True)
        mutmut(folder, "run", *(f"{module}.*" for module in modules))
        statuses = {}
        for line in mutmut(folder, "results", "--all", "true", quiet=True).splitlines():
            name, sep, status = line.strip().rpartition(": ")
            if sep and name.startswith("solutions.") and (not modules or module_of(name) in modules):
                statuses[name] = status
        survivors = [m for m, s in statuses.items() if s in ("survived", "no tests", "suspicious")]
        report(statuses, diffs_of(folder, survivors))
    finally:
        if args.keep:
            print(f"\nThe copy, with mutmut's results, is in {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)
    return 0  # a report: the verdict is in the text


if __name__ == "__main__":
    sys.exit(main())
