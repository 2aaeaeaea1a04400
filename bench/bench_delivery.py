"""Delivery benchmark: `smspipe send` to the loopback Twilio server with 0.2 s latency.

    python bench/bench_delivery.py            # table: 1,000 messages at concurrency 1, 10, 50
    python bench/bench_delivery.py --json     # one JSON line per case (bench/bench.py reads it)
    python bench/bench_delivery.py --quick    # fewer messages

Each case runs the installed ``smspipe send`` (ledger on, as in production) as
a process against tests/twilio_server.py, which answers every request after
``--latency`` seconds. The bound is concurrency / latency messages per second
(no client can do better with that many requests in flight). Concurrency 1
would take 200 s for 1,000 messages, so it sends a sample and extrapolates
(the ``sampled`` column says so). Also measured: the start-up of
``send --dry-run`` and of ``send`` of one message, against ``python -c pass``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "tests"))

from twilio_server import ACCOUNT_SID, AUTH_TOKEN, TwilioServer  # noqa: E402

SMSPIPE = str(Path(sys.executable).parent / "smspipe")
TARGET = {10: 25.0}  # issue 5: 1,000 messages at concurrency 10 and 0.2 s in <= 25 s


def documents(count: int, prefix: str) -> str:
    return "".join(
        json.dumps(
            {
                "request_id": f"{prefix}-{i}",
                "sms": {"phone": f"+1415555{i % 10000:04d}", "message": f"{prefix} {i}: your order shipped"},
            }
        )
        + "\n"
        for i in range(count)
    )


def environment(server: TwilioServer, home: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TWILIO_", "SMSPIPE_"))}
    env.update(
        SMSPIPE_HOME=home,
        SMSPIPE_API_URL=server.url,
        TWILIO_ACCOUNT_SID=ACCOUNT_SID,
        TWILIO_AUTH_TOKEN=AUTH_TOKEN,
        SMSPIPE_FROM="+15017122661",
    )
    return env


def delivery_case(concurrency: int, messages: int, sent: int, latency: float) -> dict[str, object]:
    """Send *sent* messages (a sample of *messages* when fewer) and time it."""
    with TwilioServer(latency=latency) as server, tempfile.TemporaryDirectory() as home:
        started = time.perf_counter()
        proc = subprocess.run(
            [SMSPIPE, "send", "--concurrency", str(concurrency)],
            input=documents(sent, f"c{concurrency}"),
            capture_output=True,
            text=True,
            env=environment(server, home),
            check=False,
        )
        took = time.perf_counter() - started
        if proc.returncode != 0 or len(server.messages) != sent:
            raise SystemExit(
                f"concurrency {concurrency}: exit {proc.returncode}, "
                f"{len(server.messages)}/{sent} created: {proc.stderr[-500:]}"
            )
        in_flight = server.max_in_flight
    rate = sent / took
    seconds = messages / rate if sent < messages else took
    return {
        "messages": messages,
        "sampled": sent if sent < messages else None,
        "concurrency": concurrency,
        "latency": latency,
        "seconds": round(seconds, 2),
        "messages_per_second": round(rate, 2),
        "bound_per_second": round(concurrency / latency, 2),
        "max_in_flight": in_flight,
        # The target is for 1,000 messages; a --quick run has none.
        "target_seconds": TARGET.get(concurrency) if messages >= 1000 else None,
    }


def startup(runs: int) -> list[tuple[str, float]]:
    one = json.dumps(
        {"sms": {"from": "+15017122661", "phone": "+14155552671", "message": "Order R12345 was shipped!"}}
    )
    with TwilioServer() as server, tempfile.TemporaryDirectory() as home:
        env = environment(server, home)

        def median(cmd: list[str]) -> float:
            times = []
            for _ in range(runs + 1):
                begin = time.perf_counter()
                subprocess.run(cmd, input=one, capture_output=True, text=True, env=env, check=True)
                times.append(time.perf_counter() - begin)
            return statistics.median(times[1:])  # the first warms the caches

        return [
            ("python -c pass", median([sys.executable, "-c", "pass"])),
            ("smspipe send --dry-run (1 message)", median([SMSPIPE, "send", "--dry-run"])),
            ("smspipe send (1 message, loopback server)", median([SMSPIPE, "send", "--no-ledger"])),
            ("smspipe send (1 message, with the ledger)", median([SMSPIPE, "send", "--force"])),
        ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="JSON lines, delivery cases only")
    parser.add_argument("--quick", action="store_true", help="fewer messages")
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--messages", type=int, default=1000)
    args = parser.parse_args()
    messages = 200 if args.quick else args.messages
    cases = [(1, min(messages, 20 if args.quick else 50)), (10, messages), (50, messages)]
    results = [delivery_case(c, messages, sent, args.latency) for c, sent in cases]
    if args.json:
        for result in results:
            print(json.dumps(result))
        return 0
    print(f"delivery: {messages:,} messages, server latency {args.latency * 1000:.0f} ms, ledger on")
    print(
        f"{'concurrency':>11}  {'seconds':>8}  {'msg/s':>8}  {'bound':>8}  {'of bound':>8}  "
        f"{'in flight':>9}  {'target':>8}  sampled"
    )
    for r in results:
        rate, bound = float(r["messages_per_second"]), float(r["bound_per_second"])  # type: ignore[arg-type]
        target = f"<= {r['target_seconds']:.0f} s" if r["target_seconds"] else ""
        sampled = f"{r['sampled']} sent, extrapolated" if r["sampled"] else ""
        print(
            f"{r['concurrency']:>11}  {r['seconds']:>8.1f}  {rate:>8.1f}  {bound:>8.1f}  "
            f"{rate / bound:>8.0%}  {r['max_in_flight']:>9}  {target:>8}  {sampled}"
        )
    print()
    print("start-up (median of 10 runs)")
    figures = startup(5 if args.quick else 10)
    floor = figures[0][1]
    for what, seconds in figures:
        extra = "" if what.startswith("python") else f"  (+{(seconds - floor) * 1000:.0f} ms)"
        print(f"  {what:<44} {seconds * 1000:>6.0f} ms{extra}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
