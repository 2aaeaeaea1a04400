"""Three hosts, one PostgreSQL ledger: wall time against the bound of their combined concurrency.

    python bench/bench_fleet.py               # 3,000 messages, 3 hosts at concurrency 20 (and 50)
    python bench/bench_fleet.py --write       # also write the section in bench/RESULTS.md

Each host is a `smspipe send` process with a state directory of its own, given
the whole export, as cron hosts kept for availability are; the ledger they share
(PostgreSQL from .ci/postgres.sh, or SMSPIPE_TEST_POSTGRES) decides which host
sends each message (tests/fleet.py). In the second run of each case, the second
host is killed with SIGKILL once a third of the messages exist, and started
again. The loopback Twilio server runs in its own process, 200 ms per request.
The bound is messages x latency / (hosts x concurrency); the time is the first
wave's (every host, and the restart), from the start to the last exit. Messages
created per document are counted at the server: 1 for every document, or the
run fails.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from bench_gateway import ServerProcess, commit, machine  # noqa: E402
from results_file import write_section  # noqa: E402

from fleet import run_fleet  # noqa: E402
from postgres_server import postgres_server  # noqa: E402

SECTION = "## Fleet: three hosts, one PostgreSQL ledger"


@dataclass
class Case:
    hosts: int
    concurrency: int
    messages: int
    latency: float
    killed: bool
    seconds: float
    created: int
    twice: int
    cpu_seconds: float
    exits: str

    @property
    def bound(self) -> float:
        return self.messages * self.latency / (self.hosts * self.concurrency)

    @property
    def share(self) -> float:
        return self.bound / self.seconds


class CountingServer(ServerProcess):
    """The server process, asked for the bodies it created (to count them per document)."""

    def bodies(self) -> Counter[str]:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write("bodies\n")
        self.process.stdin.flush()
        count = int(self.process.stdout.readline())
        return Counter(self.process.stdout.readline().rstrip("\n") for _ in range(count))


def serve(latency: float) -> None:
    from twilio_server import TwilioServer

    with TwilioServer(latency=latency) as server:
        print(server.url, flush=True)
        for line in sys.stdin:
            if line.strip() == "count":
                print(len(server.messages), flush=True)
            elif line.strip() == "bodies":
                bodies = server.created_bodies()
                print(len(bodies), flush=True)
                for body in bodies:
                    print(body, flush=True)


def measure(
    postgres: object, hosts: int, concurrency: int, messages: int, latency: float, kill: bool
) -> Case:
    server = _start_counting(latency)
    url = postgres.new_database()  # type: ignore[attr-defined]
    with tempfile.TemporaryDirectory(prefix="smspipe-fleet-") as workdir:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        fleet = run_fleet(
            api_url=server.url,
            ledger_url=url,
            workdir=Path(workdir),
            count=messages,
            hosts=hosts,
            concurrency=concurrency,
            kill_when=(lambda: server.created() >= messages // 3) if kill else None,
        )
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        bodies = server.bodies()
    server.stop()
    exits = "; ".join(f"{name}: {', '.join(map(str, codes))}" for name, codes in fleet.exits.items())
    if fleet.settling:
        exits += f"; then {len(fleet.settling)} settling run(s), the last exit {fleet.settling[-1]}"
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return Case(
        hosts,
        concurrency,
        messages,
        latency,
        kill,
        fleet.seconds,
        len(bodies),
        sum(1 for n in bodies.values() if n > 1),
        cpu,
        exits,
    )


def _start_counting(latency: float) -> CountingServer:
    """The server in a process of its own, running this file's --serve (which also answers
    "bodies")."""
    import subprocess

    server = CountingServer.__new__(CountingServer)
    server.process = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(latency)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        # A killed host's connections reset: http.server prints a traceback for each.
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert server.process.stdout is not None
    server.url = server.process.stdout.readline().strip()
    return server


def table(cases: list[Case]) -> str:
    lines = [
        "| hosts x concurrency | messages | SIGKILL + restart | seconds | bound | share of bound | created "
        "| created twice | hosts' CPU per message | exits |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for case in cases:
        lines.append(
            f"| {case.hosts} x {case.concurrency} | {case.messages:,} | {'yes' if case.killed else 'no'} | "
            f"{case.seconds:.2f} | {case.bound:.2f} s | {case.share:.0%} | {case.created:,} | {case.twice} | "
            f"{case.cpu_seconds / case.messages * 1000:.2f} ms | {case.exits} |"
        )
    return "\n".join(lines)


def section(cases: list[Case], command: str) -> str:
    return "\n".join(
        [
            SECTION,
            "",
            f"- machine: {machine()} (the hosts, PostgreSQL and the server share it)",
            f"- date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
            f"- commit: {commit()}",
            f"- load average when it ended (other work on the machine): {os.getloadavg()[0]:.2f}",
            f"- command: `{command}`",
            "- each host a process with its own state directory, given the whole export; one PostgreSQL "
            "ledger; the server in its own process, 200 ms per request",
            "",
            table(cases),
            "",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--hosts", type=int, default=3)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[20, 50])
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--write", action="store_true", help="write the section in bench/RESULTS.md")
    parser.add_argument("--serve", type=float, help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.serve is not None:
        serve(options.serve)
        return
    cases = []
    with postgres_server() as postgres:
        try:
            for concurrency in options.concurrency:
                for kill in (False, True):
                    began = time.monotonic()
                    case = measure(
                        postgres, options.hosts, concurrency, options.messages, options.latency, kill
                    )
                    took = time.monotonic() - began
                    print(
                        f"{case.hosts} x {concurrency} kill={kill}: {case.seconds:.2f} s ({case.share:.0%} "
                        f"of the bound), {case.created} created, {case.twice} twice ({took:.0f} s)",
                        file=sys.stderr,
                    )
                    if case.twice or case.created != case.messages:
                        raise SystemExit(f"not every message exactly once: {case}")
                    cases.append(case)
        finally:
            postgres.drop_databases()
    command = "python bench/bench_fleet.py " + " ".join(sys.argv[1:])
    text = section(cases, command.strip())
    print(text)
    if options.write:
        write_section(text, SECTION)


if __name__ == "__main__":
    main()
