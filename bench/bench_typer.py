"""What a newer Typer costs at start-up: the same smspipe in two environments.

    python bench/bench_typer.py /path/to/other-venv/bin/python

Runs ``smspipe --version`` and ``smspipe validate one.json`` alternately with
this interpreter's environment and the other one (say, one where
``pip install -U typer`` brought Typer 0.29+ and pydantic), and prints the
median start-up of each and the Typer version each has.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench  # noqa: E402 - this directory's bench.py: its environment


def version(python: str) -> str:
    code = (
        "import importlib.metadata as m; print(m.version('typer'), 'pydantic' in m.packages_distributions())"
    )
    return subprocess.run([python, "-c", code], capture_output=True, text=True, check=True).stdout.strip()


def main() -> int:
    other = sys.argv[1]
    pythons = {"this": sys.executable, "other": other}
    sample = str(bench.ROOT / "samples" / "sms.json")
    cases = {"--version": ["--version"], "validate one.json": ["validate", sample]}
    for label, python in pythons.items():
        typer_version, has_pydantic = version(python).split()
        print(f"{label}: typer {typer_version}, pydantic installed: {has_pydantic}")
    for what, args in cases.items():
        took: dict[str, list[float]] = {label: [] for label in pythons}
        for _ in range(31):
            for label, python in pythons.items():
                start = time.perf_counter()
                subprocess.run(
                    [python, "-m", "smspipe", *args],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    env=bench.clean_env(),
                    check=True,
                )
                took[label].append(time.perf_counter() - start)
        medians = {label: statistics.median(times[1:]) * 1000 for label, times in took.items()}
        print(
            f"smspipe {what}: this {medians['this']:.0f} ms, other {medians['other']:.0f} ms, "
            f"difference {medians['other'] - medians['this']:+.0f} ms"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
