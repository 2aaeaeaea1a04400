"""`smspipe serve` under load: hub requests over keep-alive connections, some of them retries.

    python bench/bench_serve.py                  # 5,000 requests, 50 connections, 10 % retries
    python bench/bench_serve.py --write          # also writes its section in bench/RESULTS.md
    python bench/bench_serve.py --sigterm 8      # SIGTERM the server 8 s in, restart it, retry

The loopback Twilio server (tests/twilio_server.py) runs in a child process
and answers every request after ``--latency`` seconds; ``smspipe serve`` runs
as a process of its own with ``--max-sends``, so the send bound is
max-sends / latency messages a second. The load generator, an asyncio client
over ``--connections`` keep-alive HTTP/1.1 connections, sends ``--requests``
hub requests, a tenth of them (``--retries``) repeating the request_id of an
earlier one (some while it is still in flight), and checks what Twilio
received: every request_id created exactly once (0 lost, 0 duplicates), every
answer to one request_id naming the same SID.

With ``--sigterm S`` the server is sent SIGTERM S seconds in: it stops
accepting and finishes what is in flight; requests cut off (refused, or
answered 5xx) are retried once a new server is up, and the check above must
still hold.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "tests"))

from results_file import write_section  # noqa: E402

from serving import Served  # noqa: E402
from twilio_server import ACCOUNT_SID, AUTH_TOKEN, TwilioServer  # noqa: E402

SECTION = "## Serve: hub requests under load"
SIGTERM_SECTION = "## Serve: SIGTERM under load"
SENDER = "+15017122661"


class TwilioProcess:
    """tests/twilio_server.py in a child process; ``stats`` asks what it created."""

    def __init__(self, latency: float) -> None:
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--twilio", str(latency)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        self.url = self.process.stdout.readline().strip()

    def stats(self) -> dict[str, int]:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write("stats\n")
        self.process.stdin.flush()
        created: dict[str, int] = json.loads(self.process.stdout.readline())
        return created

    def stop(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(30)


def twilio(latency: float) -> None:
    with TwilioServer(latency=latency) as server:
        print(server.url, flush=True)
        for _line in sys.stdin:
            print(json.dumps(Counter(m["body"] for m in server.messages)), flush=True)


def request_body(number: int) -> bytes:
    document = {
        "request_id": f"bench-{number}",
        "sms": {"from": SENDER, "phone": f"+1415555{number % 10000:04d}", "message": f"bench {number}"},
    }
    return json.dumps(document).encode()


@dataclass
class Tally:
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    sids: dict[int, set[str]] = field(default_factory=dict)
    #: request numbers without a 200 (cut by SIGTERM, 5xx): to retry
    unanswered: set[int] = field(default_factory=set)


async def post(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, body: bytes) -> tuple[int, bytes]:
    head = (
        "POST /send_sms HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    writer.write(head.encode() + body)
    await writer.drain()
    status_line = await reader.readline()
    if not status_line:
        raise ConnectionError("closed")
    length = 0
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        if name.lower() == "content-length":
            length = int(value)
    return int(status_line.split()[1]), await reader.readexactly(length)


async def load(url: str, numbers: list[int], connections: int, tally: Tally) -> float:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    queue = iter(numbers)

    async def connection() -> None:
        reader = writer = None
        for number in queue:
            started = time.perf_counter()
            try:
                if writer is None:
                    reader, writer = await asyncio.open_connection(host, int(port))
                assert reader is not None
                status, body = await post(reader, writer, request_body(number))
            except (OSError, ConnectionError, asyncio.IncompleteReadError):
                tally.unanswered.add(number)
                writer = None
                continue
            tally.latencies.append(time.perf_counter() - started)
            tally.statuses[status] += 1
            if status == 200:
                tally.sids.setdefault(number, set()).add(json.loads(body)["sid"])
                tally.unanswered.discard(number)
            else:
                tally.unanswered.add(number)
        if writer is not None:
            writer.close()

    began = time.perf_counter()
    await asyncio.gather(*(connection() for _ in range(connections)))
    return time.perf_counter() - began


def plan(requests: int, retries: float, seed: int = 1) -> list[int]:
    """Request numbers in order of sending: new ones, and now and then an earlier one again."""
    rng = random.Random(seed)
    fresh = round(requests * (1 - retries))
    order: list[int] = []
    issued = 0
    while len(order) < requests:
        if issued and (issued >= fresh or rng.random() < retries):
            order.append(rng.randrange(max(0, issued - 200), issued))  # a recent one: maybe in flight
        else:
            order.append(issued)
            issued += 1
    return order


def start_server(env: dict[str, str], max_sends: int) -> Served:
    return Served(env, "--max-sends", str(max_sends), "--request-timeout", "120")


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def run(args: argparse.Namespace) -> dict[str, object]:
    twilio_process = TwilioProcess(args.latency)
    home = tempfile.mkdtemp(prefix="smspipe-bench-serve-")
    env = {
        **os.environ,
        "SMSPIPE_HOME": home,
        "SMSPIPE_API_URL": twilio_process.url,
        "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
    }
    numbers = plan(args.requests, args.retries)
    tally = Tally()
    server = start_server(env, args.max_sends)
    try:
        if args.sigterm:
            wall, server = asyncio.run(_load_with_sigterm(server, numbers, args, tally))
        else:
            wall = asyncio.run(load(server.url, numbers, args.connections, tally))
        cut = len(tally.unanswered)
        if tally.unanswered:  # what SIGTERM cut: retried against the new server
            asyncio.run(load(server.url, sorted(tally.unanswered), args.connections, tally))
    finally:
        server.stop()
    created = twilio_process.stats()
    twilio_process.stop()
    unique = set(numbers)
    lost = sum(1 for n in unique if created.get(f"bench {n}", 0) == 0 or n not in tally.sids)
    duplicates = sum(count - 1 for count in created.values() if count > 1)
    split_sids = sum(1 for sids in tally.sids.values() if len(sids) > 1)
    return {
        "requests": len(numbers),
        "unique": len(unique),
        "wall": wall,
        "throughput": len(numbers) / wall,
        "sends_per_second": len(unique) / wall,
        "bound": args.max_sends / args.latency,
        "p50": percentile(tally.latencies, 0.5),
        "p99": percentile(tally.latencies, 0.99),
        "statuses": dict(sorted(tally.statuses.items())),
        "lost": lost,
        "duplicates": duplicates,
        "split_sids": split_sids,
        "cut": cut,
        "still_unanswered": len(tally.unanswered),
    }


async def _load_with_sigterm(
    server: Served, numbers: list[int], args: argparse.Namespace, tally: Tally
) -> tuple[float, Served]:
    async def terminate() -> None:
        await asyncio.sleep(args.sigterm)
        server.process.send_signal(signal.SIGTERM)

    killer = asyncio.create_task(terminate())
    wall = await load(server.url, numbers, args.connections, tally)
    await killer
    await asyncio.to_thread(server.process.wait, 120)
    restarted = await asyncio.to_thread(start_server, server.env, args.max_sends)
    return wall, restarted


def section(result: dict[str, object], command: str, args: argparse.Namespace) -> str:
    bound = float(result["bound"])  # type: ignore[arg-type]
    sends = float(result["sends_per_second"])  # type: ignore[arg-type]
    if args.sigterm:
        return sigterm_section(result, command, args)
    return "\n".join(
        [
            SECTION,
            "",
            f"- machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
            f"Python {platform.python_version()}, {platform.system()}",
            f"- date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
            f"- command: `{command}`",
            f"- {result['requests']:,} hub requests ({result['unique']:,} request_ids, the rest retries), "
            f"{args.connections} keep-alive connections, loopback Twilio at {args.latency * 1000:.0f} ms, "
            f"`smspipe serve --max-sends {args.max_sends}` (send bound {bound:.0f} msg/s)",
            "",
            "| measure | value |",
            "|---|---|",
            f"| wall time | {float(result['wall']):.1f} s |",  # type: ignore[arg-type]
            f"| throughput | {float(result['throughput']):.1f} req/s |",  # type: ignore[arg-type]
            f"| new messages | {sends:.1f} msg/s, {sends / bound:.0%} of the send bound |",
            f"| latency p50 / p99 | {float(result['p50']) * 1000:.0f} ms / "  # type: ignore[arg-type]
            f"{float(result['p99']) * 1000:.0f} ms |",  # type: ignore[arg-type]
            f"| HTTP statuses | {result['statuses']} |",
            f"| lost / duplicates / request_ids answered two SIDs | {result['lost']} / "
            f"{result['duplicates']} / {result['split_sids']} |",
            "",
        ]
    )


def sigterm_section(result: dict[str, object], command: str, args: argparse.Namespace) -> str:
    return "\n".join(
        [
            SIGTERM_SECTION,
            "",
            f"- date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; command: `{command}`",
            f"- {result['requests']:,} hub requests ({result['unique']:,} request_ids), {args.connections} "
            f"connections, Twilio at {args.latency * 1000:.0f} ms; SIGTERM {args.sigterm:g} s in; the "
            "requests refused or cut meanwhile are sent again to a new server on the same ledger",
            "",
            "| measure | value |",
            "|---|---|",
            f"| HTTP statuses, both servers | {result['statuses']} |",
            f"| request_ids cut by SIGTERM, then retried | {result['cut']} |",
            f"| lost / duplicates / request_ids answered two SIDs | {result['lost']} / "
            f"{result['duplicates']} / {result['split_sids']} |",
            "",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--retries", type=float, default=0.1)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--max-sends", type=int, default=10)
    parser.add_argument("--sigterm", type=float, default=None, help="SIGTERM the server this many seconds in")
    parser.add_argument("--write", action="store_true")
    parser.add_argument("--twilio", type=float, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.twilio is not None:
        twilio(args.twilio)
        return
    result = run(args)
    command = "python " + " ".join(["bench/bench_serve.py", *sys.argv[1:]]).replace(" --write", "")
    text = section(result, command, args)
    print(text)
    if args.write:
        write_section(text, text.splitlines()[0])
    if result["lost"] or result["duplicates"] or result["split_sids"] or result["still_unanswered"]:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
