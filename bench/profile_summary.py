"""Where a `smspipe send` spends its CPU, from py-spy's collapsed stacks (issue 15).

    python bench/bench_send.py --concurrency 10 100 --profile DIR
    python bench/profile_summary.py DIR/send-c100.txt [--top 15]

Each sample is charged to one area, by the innermost frame that names one
(an area's own code, or a library it calls into): the table says what share
of the busy samples each area took, and the functions with the most samples
of their own.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

#: (area, what a frame's file path holds), first match from the innermost frame outwards
AREAS = [
    ("start-up: imports", "<frozen importlib"),
    ("twilio library", "twilio/"),
    ("aiohttp (HTTP client)", "aiohttp/"),
    ("SQLite ledger", "smspipe/ledger/sqlite.py"),
    ("PostgreSQL ledger", "smspipe/ledger/postgres.py"),
    ("ledger (common)", "smspipe/ledger/"),
    ("validation (sms, phone, schema)", "smspipe/sms.py"),
    ("validation (sms, phone, schema)", "smspipe/phone"),
    ("validation (sms, phone, schema)", "smspipe/_phone_fast"),
    ("validation (sms, phone, schema)", "smspipe/schemacheck"),
    ("reading documents", "smspipe/documents"),
    ("reading documents", "smspipe/reader"),
    ("planning (keys, bodies)", "smspipe/delivery/planner.py"),
    ("output (results, NDJSON)", "smspipe/delivery/results.py"),
    ("output (results, NDJSON)", "smspipe/delivery/writer.py"),
    ("output (results, NDJSON)", "smspipe/cli/"),
    ("walk and engine", "smspipe/delivery/"),
    ("gateway (ours)", "smspipe/gateway.py"),
    ("gateway (ours)", "smspipe/_aiohttp_transport.py"),
    ("asyncio event loop", "asyncio/"),
    ("threads (hand-overs)", "threading.py"),
    ("threads (hand-overs)", "concurrent/futures"),
]
FRAME = re.compile(r"^(?P<function>.*) \((?P<file>[^()]*):\d+\)$")


def area_of(frames: list[str]) -> str:
    for frame in reversed(frames):
        for area, marker in AREAS:
            if marker in frame:
                return area
    return "other"


def summarise(path: Path, top: int) -> str:
    areas: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        samples = int(count)
        frames = stack.split(";")
        total += samples
        areas[area_of(frames)] += samples
        match = FRAME.match(frames[-1])
        own[f"{match['function']} ({match['file']})" if match else frames[-1]] += samples
    lines = [f"{path.name}: {total} busy samples", "", "| area | share |", "|---|---|"]
    lines += [f"| {area} | {n / total:.0%} |" for area, n in areas.most_common()]
    lines += ["", "| function (own samples) | share |", "|---|---|"]
    lines += [f"| {name} | {n / total:.1%} |" for name, n in own.most_common(top)]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("profiles", type=Path, nargs="+")
    parser.add_argument("--top", type=int, default=15)
    options = parser.parse_args()
    print("\n\n".join(summarise(path, options.top) for path in options.profiles))


if __name__ == "__main__":
    main()
