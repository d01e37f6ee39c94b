"""`make wheelhouse`: every wheel the attendee set needs, for each platform and Python, in one folder.

Copied onto a USB stick, the folder lets `make install` work with no network. At the end it says, for each
platform and Python, what it could not get; the same summary is written to CONTENTS.txt in the folder.

pip evaluates environment markers (`sys_platform`, `python_version`...) for the machine it runs on, even with
`--platform`, so a plain `pip download` would fetch Linux's dependencies for Windows. Each download therefore
runs pip in a child process whose marker values are the target's.
"""
from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PYTHONS = ("3.10", "3.11", "3.12", "3.13")


def manylinux(glibc: int, arch: str) -> list[str]:
    return [f"manylinux_2_{minor}_{arch}" for minor in range(glibc, 16, -1)] + [f"manylinux2014_{arch}"]


LINUX = {"sys_platform": "linux", "platform_system": "Linux", "os_name": "posix"}
MACOS = {"sys_platform": "darwin", "platform_system": "Darwin", "os_name": "posix"}
# Each platform's tags, for two machines: an up-to-date one (so that it gets the wheels pip picks there online)
# and the oldest supported: glibc 2.28 (Ubuntu 20.04, Debian 10, RHEL 8), any Apple Silicon Mac, macOS 12 on Intel.
PLATFORMS: dict[str, tuple[list[list[str]], dict[str, str]]] = {
    "linux-x86_64": ([manylinux(34, "x86_64"), manylinux(28, "x86_64")], {**LINUX, "platform_machine": "x86_64"}),
    "linux-aarch64": ([manylinux(34, "aarch64"), manylinux(28, "aarch64")],
                      {**LINUX, "platform_machine": "aarch64"}),
    "macos-arm64": ([["macosx_15_0_arm64"], ["macosx_11_0_arm64"]], {**MACOS, "platform_machine": "arm64"}),
    "macos-x86_64": ([["macosx_15_0_x86_64"], ["macosx_12_0_x86_64"]], {**MACOS, "platform_machine": "x86_64"}),
    "windows-amd64": ([["win_amd64"]], {"sys_platform": "win32", "platform_system": "Windows", "os_name": "nt",
                                        "platform_machine": "AMD64"}),
}
# pip for the first upgrade; setuptools and wheel build the kit itself and any sdist below.
TOOLS = ["pip", "setuptools", "wheel"]
NOT_FOUND = re.compile(r"No matching distribution found for ([A-Za-z0-9._-]+)")


def marker_environment(platform: str, python: str) -> dict[str, str]:
    return {**PLATFORMS[platform][1], "python_version": python, "python_full_version": f"{python}.0",
            "implementation_name": "cpython", "implementation_version": f"{python}.0",
            "platform_python_implementation": "CPython", "platform_release": "", "platform_version": ""}


def pip_as(environment: dict[str, str], args: list[str]) -> int:
    """Run pip in this process with `environment` as every marker's values (the child's side).

    pip has no public way to evaluate requirement markers for another machine: --platform and
    --python-version choose wheels, while markers (sys_platform, python_version...) are judged for
    this one. So this child process gives pip's own marker module the target's values, and stops,
    saying so, if a pip release evaluates markers some other way.
    """
    from pip._internal.cli.main import main
    from pip._vendor.packaging import markers

    markers.default_environment = lambda: dict(environment)  # type: ignore[assignment, return-value]
    if markers.Marker(f'sys_platform == "{environment["sys_platform"]}"').evaluate() is not True:
        sys.exit("this pip evaluates markers in a way workshop/tools/wheelhouse.py does not know: update it")
    return main(args)


def download(tags: list[str], environment: dict[str, str], requirements: list[str], dest: Path) -> tuple[int, str]:
    """pip download for one set of platform tags and one Python; (exit code, pip's error output)."""
    python = environment["python_version"]
    abi = "cp" + python.replace(".", "")
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as file:
        file.write("\n".join(requirements) + "\n")
    args = ["download", "--quiet", "--progress-bar", "off", "--only-binary=:all:", "--dest", str(dest),
            "--python-version", python, "--implementation", "cp", "--abi", abi, "-r", file.name]
    for tag in tags:
        args += ["--platform", tag]
    here = str(Path(__file__).resolve().parent)
    code = f"import sys; sys.path.insert(0, {here!r}); from wheelhouse import pip_as; " \
           f"sys.exit(pip_as({environment!r}, {args!r}))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    Path(file.name).unlink()
    return result.returncode, result.stderr


def requirement_lines(path: Path) -> list[str]:
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return [line for line in lines if line]


def name_of(requirement: str) -> str:
    return re.split(r"[\s=<>!~;\[]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def fetch_sdist(requirement: str, dest: Path) -> list[str]:
    """Put the package's sdist in `dest`; return its own requirements, read from the sdist."""
    with tempfile.TemporaryDirectory() as folder:
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary=:all:",
                        "--dest", folder, requirement.split(";")[0]], check=True)
        (sdist,) = Path(folder).iterdir()
        with tarfile.open(sdist) as tar:
            info = next(m for m in tar.getmembers() if m.name.count("/") == 1 and m.name.endswith("/PKG-INFO"))
            text = tar.extractfile(info).read().decode()  # type: ignore[union-attr]
        shutil.move(sdist, dest / sdist.name)
    requires = [line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("Requires-Dist:")]
    return [line for line in requires if "extra" not in line]


def build(dest: Path, requirements_file: Path, platforms: list[str], pythons: list[str]) -> list[str]:
    dest.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
                    "--dest", str(dest), *TOOLS], check=True)
    pinned = requirement_lines(requirements_file)
    sdists: dict[str, list[str]] = {}  # name: the sdist's own requirements
    summary = []
    for platform in platforms:
        for python in pythons:
            requirements, notes = list(pinned), {}  # a dict keeps the notes in order, once each
            environment = marker_environment(platform, python)
            for tags in PLATFORMS[platform][0]:
                while True:
                    code, errors = download(tags, environment, requirements, dest)
                    if code == 0:
                        break
                    missing = NOT_FOUND.search(errors)
                    name = name_of(missing.group(1)) if missing else ""
                    line = next((r for r in requirements if name_of(r) == name and r in pinned), None)
                    if line is None:
                        last = [text for text in errors.strip().splitlines() if text.strip()][-1:]
                        notes["FAILED: " + (f"no wheel of {name} (a dependency)" if name else " ".join(last))] = 1
                        break
                    if name not in sdists:
                        sdists[name] = fetch_sdist(line, dest)
                    requirements = [r for r in requirements if r != line] + sdists[name]
                    notes[f"no wheel of {name}: its sdist is here, built on install (with a C compiler)"] = 1
            summary.append(f"{platform} Python {python}: " + ("; ".join(notes) or "every wheel"))
            print(summary[-1], flush=True)
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dest", type=Path, default=ROOT / "wheelhouse")
    parser.add_argument("--requirements", type=Path, default=ROOT / "requirements.txt")
    parser.add_argument("--platform", action="append", choices=sorted(PLATFORMS), help="default: all")
    parser.add_argument("--python", action="append", choices=PYTHONS, help="default: all")
    args = parser.parse_args(argv)
    summary = build(args.dest, args.requirements, args.platform or list(PLATFORMS), args.python or list(PYTHONS))
    files = [p for p in args.dest.iterdir() if p.is_file() and p.name != "CONTENTS.txt"]
    size = sum(p.stat().st_size for p in files) / 1e6
    total = f"{len(files)} files, {size:,.0f} MB, in {args.dest}"
    (args.dest / "CONTENTS.txt").write_text("\n".join(
        ["What this wheelhouse holds, for `make install` with no network (made by `make wheelhouse`).", "",
         *summary, "", total]) + "\n")
    short = [line for line in summary if "every wheel" not in line]
    print(f"\n{total}.\n" + ("What it could not get:\n  " + "\n  ".join(short) if short else
                             "Every wheel, for every platform and Python."))
    return 1 if any("FAILED" in line for line in summary) else 0


if __name__ == "__main__":
    sys.exit(main())
