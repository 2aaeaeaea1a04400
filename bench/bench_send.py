"""The whole `smspipe send` against the bound: throughput, CPU per message, peak RSS (issue 15).

    python bench/bench_send.py                    # 2,000 messages at concurrency 10, 50, 100
    python bench/bench_send.py --quick            # 500 messages, one run
    python bench/bench_send.py --write            # also write the section in bench/RESULTS.md
    python bench/bench_send.py --ledger postgresql://user@host/db   # on a PostgreSQL ledger
    python bench/bench_send.py --profile DIR      # py-spy a run of each case into DIR (collapsed stacks)

Each case runs the installed ``smspipe send`` as a process, ledger on (a fresh
one per run), reading NDJSON from a file and writing its results to a file,
against tests/twilio_server.py in a process of its own that answers every
request after ``--latency`` seconds. Everything ``send`` does is in the figure:
start-up, reading, validation, the ledger's claims (durable before each request
leaves), the walk, the twilio library, the output. The bound is concurrency /
latency messages per second; the time is the process's, from spawn to exit.
CPU (user + system) and peak RSS are the smspipe process's own (``wait4``).
Each case runs ``--runs`` times; the table shows the run with the median throughput.
smspipe's bytecode caches are written first, as a wheel install writes them.
"""

from __future__ import annotations

import argparse
import compileall
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from bench_gateway import ServerProcess, commit, machine  # noqa: E402
from results_file import write_section  # noqa: E402

from twilio_server import ACCOUNT_SID, AUTH_TOKEN  # noqa: E402

SMSPIPE = str(Path(sys.executable).parent / "smspipe")
SECTION = "## Send: the whole `smspipe send` against the bound"
TARGET_SHARE = 0.90
TARGET_CPU_MS = 1.0
TARGET_RSS_MB = 100.0


@dataclass
class Case:
    concurrency: int
    messages: int
    latency: float
    seconds: float
    cpu_seconds: float
    peak_rss_mb: float
    #: of cpu_seconds, the kernel's (system calls: sockets, the ledger's writes and fsyncs)
    system_seconds: float = 0.0
    all_rates: list[float] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.messages / self.seconds

    @property
    def bound(self) -> float:
        return self.concurrency / self.latency

    @property
    def share(self) -> float:
        return self.rate / self.bound

    @property
    def cpu_ms(self) -> float:
        return self.cpu_seconds / self.messages * 1000

    @property
    def met(self) -> bool:
        return (
            self.share >= TARGET_SHARE and self.cpu_ms <= TARGET_CPU_MS and self.peak_rss_mb <= TARGET_RSS_MB
        )


def compile_smspipe() -> None:
    """Write smspipe's bytecode caches, as installing it from a wheel does.

    An editable install, run where PYTHONDONTWRITEBYTECODE is set, would
    otherwise compile every smspipe module from source in every run: start-up
    CPU that no installed copy spends.
    """
    spec = importlib.util.find_spec("smspipe")
    locations = spec.submodule_search_locations if spec is not None else None
    for location in locations or []:
        compileall.compile_dir(location, quiet=1)


def write_documents(path: Path, count: int, prefix: str) -> None:
    with path.open("w") as out:
        for i in range(count):
            document = {
                "request_id": f"{prefix}-{i}",
                "sms": {"phone": f"+1415555{i % 10000:04d}", "message": f"{prefix} {i}: your order shipped"},
            }
            out.write(json.dumps(document) + "\n")


def environment(url: str, home: str, ledger: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TWILIO_", "SMSPIPE_"))}
    env.update(
        SMSPIPE_HOME=home,
        SMSPIPE_API_URL=url,
        TWILIO_ACCOUNT_SID=ACCOUNT_SID,
        TWILIO_AUTH_TOKEN=AUTH_TOKEN,
        SMSPIPE_FROM="+15017122661",
    )
    if ledger:
        env["SMSPIPE_LEDGER"] = ledger
    return env


def run_send(
    command: list[str], env: dict[str, str], stdin: Path, stdout: Path
) -> tuple[int, float, tuple[float, float], float, str]:
    """Run *command*; its exit status, wall seconds, CPU seconds (user, system), peak RSS (MB)
    and stderr."""
    with stdin.open("rb") as source, stdout.open("wb") as sink, tempfile.TemporaryFile() as errors:
        began = time.perf_counter()
        process = subprocess.Popen(command, stdin=source, stdout=sink, stderr=errors, env=env)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - began
        process.returncode = os.waitstatus_to_exitcode(status)
        errors.seek(0)
        stderr = errors.read().decode(errors="replace")
    return process.returncode, wall, (usage.ru_utime, usage.ru_stime), usage.ru_maxrss / 1024, stderr


def measure(
    concurrency: int, messages: int, latency: float, ledger: str | None, profile: Path | None
) -> Case:
    server = ServerProcess(latency)
    home = tempfile.mkdtemp(prefix="smspipe-bench-send-")
    try:
        prefix = f"c{concurrency}-{os.getpid()}-{time.monotonic_ns()}"
        inputs, results = Path(home) / "in.ndjson", Path(home) / "out.ndjson"
        write_documents(inputs, messages, prefix)
        env = environment(server.url, home, ledger)
        command = [SMSPIPE, "send", "--concurrency", str(concurrency), "--no-progress"]
        if profile is not None:
            # Collapsed stacks of the thread holding the GIL (what waits in a lock, a select or a
            # commit is not CPU of ours): bench/profile_summary.py reads them.
            out = profile / f"send-c{concurrency}.txt"
            command = ["py-spy", "record", "--gil", "-f", "raw", "-r", "200", "-o", str(out), "--", *command]
        before = server.created()
        code, wall, cpu, rss, stderr = run_send(command, env, inputs, results)
        created = server.created() - before
        if code != 0 or created != messages:
            raise SystemExit(
                f"concurrency {concurrency}: exit {code}, {created}/{messages} created: {stderr}"
            )
    finally:
        server.stop()
        shutil.rmtree(home, ignore_errors=True)
    return Case(concurrency, messages, latency, wall, sum(cpu), rss, system_seconds=cpu[1])


def table(cases: list[Case]) -> str:
    lines = [
        "| concurrency | messages | seconds | msg/s (median run) | every run | bound | share of bound "
        "| CPU per message | of which system | peak RSS | met |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for case in cases:
        every = ", ".join(f"{rate:.0f}" for rate in case.all_rates or [case.rate])
        lines.append(
            f"| {case.concurrency} | {case.messages:,} | {case.seconds:.2f} | {case.rate:,.1f} | {every} | "
            f"{case.bound:,.0f} | {case.share:.1%} | {case.cpu_ms:.2f} ms | "
            f"{case.system_seconds / case.messages * 1000:.2f} ms | {case.peak_rss_mb:.0f} MB | "
            f"{'yes' if case.met else 'no'} |"
        )
    return "\n".join(lines)


def section(cases: list[Case], command: str, latency: float, ledger: str) -> str:
    missed = [c for c in cases if not c.met]
    verdict = (
        "met at every concurrency in this run"
        if not missed
        else "not met at concurrency " + ", ".join(str(c.concurrency) for c in missed)
    )
    return "\n".join(
        [
            SECTION,
            "",
            f"- machine: {machine()}",
            f"- date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
            f"- commit: {commit()}",
            f"- load average when it ended (other work on the machine): {os.getloadavg()[0]:.2f}",
            f"- command: `{command}`",
            f"- ledger: {ledger}; server: tests/twilio_server.py in its own process, "
            f"{latency * 1000:.0f} ms per request",
            "- time, CPU and peak RSS are the `smspipe send` process's, start-up included",
            "",
            table(cases),
            "",
            f"Targets (issue 15): >= {TARGET_SHARE:.0%} of the bound, CPU per message <= "
            f"{TARGET_CPU_MS:.0f} ms, peak RSS <= {TARGET_RSS_MB:.0f} MB: {verdict}.",
            "",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[10, 50, 100])
    parser.add_argument("--runs", type=int, default=3, help="runs per case; the median is shown")
    parser.add_argument("--ledger", help="a PostgreSQL URL (default: an SQLite file per run)")
    parser.add_argument("--quick", action="store_true", help="500 messages, one run")
    parser.add_argument("--profile", type=Path, help="record each case with py-spy into this directory")
    parser.add_argument("--write", action="store_true", help="write the section in bench/RESULTS.md")
    options = parser.parse_args()
    messages = 500 if options.quick else options.messages
    runs = 1 if options.quick or options.profile else max(options.runs, 1)
    if options.profile:
        options.profile.mkdir(parents=True, exist_ok=True)
    compile_smspipe()
    cases = []
    for concurrency in options.concurrency:
        trials = sorted(
            (
                measure(concurrency, messages, options.latency, options.ledger, options.profile)
                for _ in range(runs)
            ),
            key=lambda c: c.rate,
        )
        case = trials[len(trials) // 2]
        case.all_rates = [t.rate for t in trials]
        print(
            f"c={concurrency:<4} {case.seconds:6.2f} s {case.rate:7.1f} msg/s ({case.share:.0%} of bound) "
            f"{case.cpu_ms:.2f} ms CPU/msg, {case.peak_rss_mb:.0f} MB",
            file=sys.stderr,
        )
        cases.append(case)
    ledger = "PostgreSQL" if options.ledger else "SQLite (a fresh file per run)"
    command = "python bench/bench_send.py " + " ".join(sys.argv[1:])
    text = section(cases, command.strip(), options.latency, ledger)
    print(text)
    if options.write:
        write_section(text, SECTION)


if __name__ == "__main__":
    main()
