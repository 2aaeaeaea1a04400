"""--rate where it counts: arrivals at the server per second, on an idle and on a loaded machine.

    python bench/bench_rate.py            # prints the table
    python bench/bench_rate.py --write    # also writes its section in bench/RESULTS.md

For each rate, ``smspipe send --rate R`` sends to the loopback server (in its
own process, so that the load falls on the client as it would in production);
the server stamps each create as it arrives. Reported: the most arrivals in
any one-second window (must be <= R; the tests allow R + 1 for jitter), and
the rate achieved over the run. "loaded" runs two busy loops beside it on
this 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
sys.path.insert(0, str(HERE))

from results_file import write_section  # noqa: E402
from soak import cpu_name  # noqa: E402

from twilio_server import ACCOUNT_SID, AUTH_TOKEN, TwilioServer  # noqa: E402

SECTION = "## Rate: arrivals at the server"
CASES = [(5.0, 4, 60), (20.0, 10, 200), (50.0, 20, 400)]


def serve(port_file: str) -> None:
    """The server's process: write its URL, then on stdin EOF print the arrival times."""
    with TwilioServer() as server:
        Path(port_file).write_text(server.url)
        sys.stdin.read()
        print(json.dumps(server.create_starts()))


def case(rate: float, concurrency: int, count: int, loaded: bool) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as home:
        port_file = Path(home) / "url"
        server = subprocess.Popen(
            [sys.executable, __file__, "--serve", str(port_file)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        while not port_file.exists() or not port_file.read_text():
            time.sleep(0.05)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("TWILIO_", "SMSPIPE_"))}
        env.update(
            SMSPIPE_HOME=home,
            SMSPIPE_API_URL=port_file.read_text(),
            TWILIO_ACCOUNT_SID=ACCOUNT_SID,
            TWILIO_AUTH_TOKEN=AUTH_TOKEN,
            SMSPIPE_FROM="+15017122661",
        )
        batch = "".join(
            json.dumps({"request_id": f"r{i}", "sms": {"phone": f"+1415555{i:04d}", "message": f"m {i}"}})
            + "\n"
            for i in range(count)
        )
        busy = [
            subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2 if loaded else 0)
        ]
        try:
            sent = subprocess.run(
                [sys.executable, "-m", "smspipe", "send", "--rate", str(rate), "-c", str(concurrency)],
                input=batch,
                capture_output=True,
                text=True,
                env=env,
                check=False,
            )
        finally:
            for loop in busy:
                loop.kill()
                loop.wait()
        starts, _ = server.communicate("")
    arrivals: list[float] = json.loads(starts)
    if sent.returncode != 0 or len(arrivals) != count:
        raise SystemExit(
            f"rate {rate}: exit {sent.returncode}, {len(arrivals)} arrivals: {sent.stderr[-300:]}"
        )
    return {
        "rate": rate,
        "concurrency": concurrency,
        "messages": count,
        "loaded": loaded,
        "max_per_second": max_in_window(arrivals),
        "achieved": round((count - 1) / (arrivals[-1] - arrivals[0]), 2),
    }


def max_in_window(moments: list[float], window: float = 1.0) -> int:
    best = left = 0
    for right, moment in enumerate(moments):
        while moment - moments[left] >= window:
            left += 1
        best = max(best, right - left + 1)
    return best


def render(results: list[dict[str, object]]) -> str:
    rows = [
        "| --rate | concurrency | messages | machine | most arrivals in any second | achieved rate |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        machine = "2 busy loops" if r["loaded"] else "idle"
        rows.append(
            f"| {r['rate']:g} | {r['concurrency']} | {r['messages']} | {machine} "
            f"| {r['max_per_second']} | {r['achieved']}/s |"
        )
    met = all(int(r["max_per_second"]) <= float(r["rate"]) for r in results)  # type: ignore[arg-type]
    return "\n".join(
        [
            SECTION,
            "",
            f"- machine: {cpu_name()}, {os.cpu_count()} cores; date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
            "- command: `python bench/bench_rate.py --write`; the server, in its own process, stamps "
            "each create as it arrives",
            "",
            *rows,
            "",
            "Starts are paced evenly, each interval (1.03 / R) measured from the previous start as it "
            "actually happened, so a run that fell behind never catches up in a burst. "
            + ("At most R arrived in every second of every run." if met else "SOME SECOND HELD MORE THAN R."),
            "",
        ]
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--write", action="store_true", help="write the section in bench/RESULTS.md")
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return 0
    results = [case(rate, c, n, loaded) for loaded in (False, True) for rate, c, n in CASES]
    text = render(results)
    print(text)
    if args.write:
        write_section(text, SECTION)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
