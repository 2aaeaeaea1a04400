"""Gateway benchmark: client CPU per message and throughput of creating messages.

    python bench/bench_gateway.py                 # 2,000 messages at concurrency 10, 50, 100
    python bench/bench_gateway.py --quick         # 500 messages
    python bench/bench_gateway.py --write         # also write the section in bench/RESULTS.md
    python bench/bench_gateway.py --runs 5        # median of 5 runs per case (default 3)

The client, through the real twilio library: ``async``,
:class:`smspipe.gateway.AsyncGateway` (twilio's ``create_async`` over our
aiohttp client), *concurrency* coroutines on one event loop. (The synchronous
client over requests in threads, measured against it in bench/RESULTS.md, is
gone: the engine and ``config check`` use the async one.)

The loopback Twilio server (tests/twilio_server.py) runs in a separate process,
answering every request after ``--latency`` seconds, so that its CPU is not
counted. CPU is the client process's (user + system, all threads) over the run,
divided by the messages sent. The bound is concurrency / latency messages per
second: no client can do better with that many requests in flight. Each case
runs ``--runs`` times; the table shows the run with the median throughput
(on a shared machine, one run can lose the CPU to other work at the wrong moment).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "tests"))

from results_file import write_section  # noqa: E402

from smspipe.config import Credentials  # noqa: E402
from smspipe.gateway import AsyncGateway  # noqa: E402
from smspipe.sms import SMS  # noqa: E402
from twilio_server import ACCOUNT_SID, AUTH_TOKEN, TwilioServer  # noqa: E402

CREDENTIALS = Credentials(ACCOUNT_SID, ACCOUNT_SID, AUTH_TOKEN, "bench")
SENDER = "+15017122661"
SECTION = "## Gateway: AsyncGateway against the sync Gateway in threads"
TARGET_CPU_MS = 1.0  # issue 15: CPU per message <= 1 ms
TARGET_SHARE = 0.90  # issue 15: >= 90 % of the bound
LESSON = (
    "What the profile showed: with `trust_env=True`, aiohttp sends two look-ups per request "
    "to a thread pool (~/.netrc, then the proxy for the URL); that was the largest cost of the "
    "async client, and a ~/.netrc entry for the API host made every request fail. The gateway "
    "looks up the environment's proxy once per host instead. What remains is mostly twilio's "
    "own work per message (headers, form encoding, parsing three RFC 2822 dates) and the "
    "socket calls. On this shared 2-core machine the throughput at concurrency 100 varies "
    "from run to run with the other work on it; CPU per message is the steadier figure."
)


@dataclass
class Case:
    client: str
    concurrency: int
    messages: int
    seconds: float
    cpu_seconds: float
    latency: float
    #: the server process's CPU over the same run (None where /proc is missing)
    server_cpu_seconds: float | None = None
    #: the throughput of every run of this case (the case is the median one)
    all_rates: list[float] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.messages / self.seconds

    @property
    def bound(self) -> float:
        return self.concurrency / self.latency

    @property
    def cpu_ms(self) -> float:
        return self.cpu_seconds / self.messages * 1000

    @property
    def server_cpu(self) -> str:
        if self.server_cpu_seconds is None:
            return "n/a"
        return f"{self.server_cpu_seconds / self.messages * 1000:.2f} ms"

    @property
    def met(self) -> bool:
        return self.cpu_ms <= TARGET_CPU_MS and self.rate / self.bound >= TARGET_SHARE


def message(number: int) -> SMS:
    return SMS(to=f"+1415555{number % 10000:04d}", body=f"bench {number}: your order shipped")


class ServerProcess:
    """tests/twilio_server.py in a child process (`--serve`)."""

    def __init__(self, latency: float) -> None:
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--serve", str(latency)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        self.url = self.process.stdout.readline().strip()
        if not self.url.startswith("http://"):
            raise SystemExit(f"the server did not start: {self.url!r}")

    def created(self) -> int:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write("count\n")
        self.process.stdin.flush()
        return int(self.process.stdout.readline())

    def cpu_seconds(self) -> float | None:
        """User + system CPU of the server process so far (Linux)."""
        try:
            fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(timeout=30)


def serve(latency: float) -> None:
    with TwilioServer(latency=latency) as server:
        print(server.url, flush=True)
        for line in sys.stdin:
            if line.strip() == "count":
                print(len(server.messages), flush=True)


def run_async(url: str, concurrency: int, messages: int) -> None:
    async def main() -> None:
        gateway = AsyncGateway(CREDENTIALS, api_url=url, timeout=30, pool_size=concurrency)
        numbers = iter(range(messages))

        async def worker() -> None:
            for number in numbers:
                await gateway.create_message(
                    message(number), sender=SENDER, messaging_service_sid=None, status_callback=None
                )

        try:
            await asyncio.gather(*(worker() for _ in range(concurrency)))
        finally:
            await gateway.aclose()

    asyncio.run(main())


CLIENTS = {"async": run_async}


def measure(client: str, concurrency: int, messages: int, latency: float) -> Case:
    server = ServerProcess(latency)
    try:
        CLIENTS[client](server.url, concurrency, min(messages, concurrency * 2))  # warm up: imports, pool
        before = server.created()
        server_cpu = server.cpu_seconds()
        cpu, wall = time.process_time(), time.perf_counter()
        CLIENTS[client](server.url, concurrency, messages)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        server_after = server.cpu_seconds()
        if server.created() - before != messages:
            raise SystemExit(f"{client} at {concurrency}: {server.created() - before}/{messages} created")
    finally:
        server.stop()
    served = server_after - server_cpu if server_cpu is not None and server_after is not None else None
    return Case(client, concurrency, messages, wall, cpu, latency, served)


def table(cases: list[Case]) -> str:
    lines = [
        "| client | concurrency | messages | msg/s (median run) | every run | bound | share of bound "
        "| client CPU per message | server CPU per message |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for case in cases:
        every = ", ".join(f"{rate:.0f}" for rate in case.all_rates or [case.rate])
        lines.append(
            f"| {case.client} | {case.concurrency} | {case.messages:,} | {case.rate:,.1f} | {every} | "
            f"{case.bound:,.0f} | {case.rate / case.bound:.1%} | {case.cpu_ms:.2f} ms | {case.server_cpu} |"
        )
    return "\n".join(lines)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, {platform.system()}"


def commit() -> str:
    proc = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT, check=False
    )
    return proc.stdout.strip() or "unknown"


def verdict(cases: list[Case]) -> str:
    missed = [c for c in cases if c.client == "async" and not c.met]
    if not missed:
        return "met by the async gateway at every concurrency in this run"
    return "not met by the async gateway at " + ", ".join(
        f"concurrency {c.concurrency} ({c.rate / c.bound:.1%} of the bound, {c.cpu_ms:.2f} ms)"
        for c in missed
    )


def section(cases: list[Case], command: str, latency: float) -> str:
    return "\n".join(
        [
            SECTION,
            "",
            f"- machine: {machine()}",
            f"- date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
            f"- commit: {commit()}",
            f"- load average when it ended (other work on the machine): {os.getloadavg()[0]:.2f}",
            f"- command: `{command}`",
            f"- server: tests/twilio_server.py in its own process, {latency * 1000:.0f} ms per request; "
            "CPU is the client process's only",
            "",
            table(cases),
            "",
            f"Targets (issue 15, for the client alone): CPU per message <= {TARGET_CPU_MS:.0f} ms and "
            f">= {TARGET_SHARE:.0%} of the bound at every concurrency: {verdict(cases)}.",
            "",
            LESSON,
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
    parser.add_argument("--clients", nargs="+", choices=sorted(CLIENTS), default=["async"])
    parser.add_argument("--runs", type=int, default=3, help="runs per case; the median is shown")
    parser.add_argument("--quick", action="store_true", help="500 messages, one run")
    parser.add_argument("--write", action="store_true", help="write the section in bench/RESULTS.md")
    parser.add_argument("--serve", type=float, help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.serve is not None:
        serve(options.serve)
        return
    messages = 500 if options.quick else options.messages
    runs = 1 if options.quick else max(options.runs, 1)
    cases = []
    for concurrency in options.concurrency:
        for client in options.clients:
            trials = sorted(
                (measure(client, concurrency, messages, options.latency) for _ in range(runs)),
                key=lambda c: c.rate,
            )
            case = trials[len(trials) // 2]
            case.all_rates = [t.rate for t in trials]
            print(
                f"{client:8} c={concurrency:<4} {case.rate:7.1f} msg/s "
                f"({case.rate / case.bound:.0%} of bound) {case.cpu_ms:.2f} ms CPU/msg",
                file=sys.stderr,
            )
            cases.append(case)
    command = "python bench/bench_gateway.py " + " ".join(sys.argv[1:])
    text = section(cases, command.strip(), options.latency)
    print(text)
    if options.write:
        write_section(text, SECTION)


if __name__ == "__main__":
    main()
