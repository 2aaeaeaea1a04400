"""Mutated inputs through validate, translate order and send --dry-run (issue 11, Proof).

    python bench/bench_fuzz.py                  # 10,000 cases a command in-process, 100 as processes
    python bench/bench_fuzz.py --cases 500 --processes 20 --seed 7

Each case is a few good documents and a few bad ones made from good ones by a
hostile mutation, as NDJSON, a one-line array, an array of lines, a
pretty-printed array or one pretty-printed object (tests/fuzz/hostile.py).
A run counts tracebacks (or "internal error", exit 70), exits outside
{0, 1, 2}, good documents missing from the output, and hangs (over 30 s).
In-process runs go through Typer's CliRunner, as the test suite does; a
sample also runs as real processes of the installed smspipe, judged alike.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "fuzz"))

import hostile  # noqa: E402 - found through the path above

SMSPIPE = str(Path(sys.executable).parent / "smspipe")
LIMIT = 30.0


def environment(home: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TWILIO_", "SMSPIPE_"))}
    env["SMSPIPE_HOME"] = home
    return env


def in_process(case: hostile.Case) -> hostile.Result:
    return hostile.run(case, limit=LIMIT)


def as_process(case: hostile.Case, home: str) -> hostile.Result:
    try:
        proc = subprocess.run(
            [SMSPIPE, *hostile.COMMANDS[case.command]],
            input=case.data,
            capture_output=True,
            timeout=LIMIT,
            env=environment(home),
            check=False,
        )
    except subprocess.TimeoutExpired:
        return hostile.Result(None, hang=True)
    stdout = proc.stdout.decode("utf-8", "replace")
    everything = stdout + proc.stderr.decode("utf-8", "replace")
    return hostile.judge(case, proc.returncode, stdout, everything)


def tally(results: list[tuple[hostile.Case, hostile.Result]]) -> dict[str, int]:
    counts = Counter(cases=len(results))
    for case, result in results:
        counts["good documents"] += len(case.good)
        counts["tracebacks"] += result.traceback
        counts["exits outside 0-2"] += result.exit_code not in (0, 1, 2) and not result.hang
        counts["good documents lost"] += len(result.lost)
        counts["hangs"] += result.hang
    return dict(counts)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cases", type=int, default=10_000, help="cases a command, in-process")
    parser.add_argument("--processes", type=int, default=100, help="cases a command, as real processes")
    parser.add_argument("--seed", default="smspipe-bench")
    parser.add_argument("--json", action="store_true", help="one JSON line a command (for bench.py)")
    args = parser.parse_args()

    failures = []
    with tempfile.TemporaryDirectory() as home:
        os.environ["SMSPIPE_HOME"] = home
        for command in hostile.COMMANDS:
            rng = random.Random(f"{args.seed}-{command}")
            started = time.perf_counter()
            inside = [
                (case, in_process(case))
                for case in (hostile.make_case(rng, command) for _ in range(args.cases))
            ]
            seconds = time.perf_counter() - started
            outside = [
                (case, as_process(case, home))
                for case in (hostile.make_case(rng, command) for _ in range(args.processes))
            ]
            failures += [(command, case, result) for case, result in inside + outside if not result.ok]
            record = {
                "command": " ".join(hostile.COMMANDS[command][:2]),
                "in_process": tally(inside),
                "processes": tally(outside),
                "seconds": round(seconds, 1),
                "layouts": dict(Counter(case.layout for case, _ in inside)),
            }
            print(json.dumps(record) if args.json else record, flush=True)
    for command, case, result in failures[:20]:
        print(f"FAILED {command} {case.layout} {case.mutations}: {result}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
