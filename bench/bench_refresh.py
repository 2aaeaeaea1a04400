"""`smspipe status --refresh` over a large ledger: how close to the bound N x latency / concurrency.

    python bench/bench_refresh.py                # 10,000 ledger rows, 200 ms latency, concurrency 10
    python bench/bench_refresh.py --rows 1000    # a quicker look
    python bench/bench_refresh.py --write        # also write the section in bench/RESULTS.md

The loopback Twilio server (tests/twilio_server.py) runs in its own process,
seeded with one message per ledger row and answering every request after
``--latency`` seconds (every message already delivered, so each row is fetched
once). The ledger is an SQLite file written through the ledger's interface,
one ``queued`` message per row. The command measured is the real CLI, as a
process: ``smspipe status --refresh --concurrency C --json``, wall time from
start to exit (start-up, reading the ledger, the fetches, storing each answer,
printing every line). The bound is rows x latency / concurrency: no client with
that many requests in flight can do better. Target (issue 14): within 10 % of it.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "tests"))

from results_file import write_section  # noqa: E402

from smspipe.ledger import Message, open_ledger  # noqa: E402
from twilio_server import ACCOUNT_SID, AUTH_TOKEN, Lifecycle, TwilioServer  # noqa: E402

SECTION = "## Status: `status --refresh` over a large ledger"
TARGET_SHARE = 0.90  # issue 14: within 10 % of the bound


def serve(latency: float, sids_file: str) -> None:
    """The server process: seeded with the SIDs in *sids_file*, every message delivered."""
    server = TwilioServer(latency=latency)
    server.lifecycle = Lifecycle(step_seconds=0)  # final at once: one fetch per row
    created = time.time()
    for sid in Path(sids_file).read_text().split():
        server.messages.append(
            {
                "account_sid": ACCOUNT_SID,
                "api_version": "2010-04-01",
                "body": "Your order shipped",
                "date_created": "Wed, 02 Dec 2026 08:00:00 +0000",
                "date_updated": "Wed, 02 Dec 2026 08:00:00 +0000",
                "date_sent": None,
                "direction": "outbound-api",
                "error_code": None,
                "error_message": None,
                "from": "+15017122661",
                "messaging_service_sid": None,
                "num_media": "0",
                "num_segments": "1",
                "price": None,
                "price_unit": "USD",
                "sid": sid,
                "status": "queued",
                "subresource_uris": {},
                "to": "+14155550100",
                "uri": f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{sid}.json",
                "_created": created,
                "_status_callback": None,
                "_media": [],
                "_notified": 0,
                "_send_at": None,
            }
        )
    _index(server)
    with server:
        print(server.url, flush=True)
        for _ in sys.stdin:
            pass


def _index(server: TwilioServer) -> None:
    """A dict by SID for the server's fetch (its list scan is for tests' few messages)."""
    by_sid = {m["sid"]: m for m in server.messages}

    def fetch(account: str, sid: str) -> dict[str, object] | None:
        found = by_sid.get(sid)
        return server._view(found, server.clock()) if found and found["account_sid"] == account else None

    server._fetch = fetch  # type: ignore[method-assign]


def seed_ledger(path: Path, rows: int) -> list[str]:
    sids = ["SM" + uuid.uuid4().hex for _ in range(rows)]
    ledger = open_ledger(path)
    assert ledger is not None
    with ledger:
        for number, sid in enumerate(sids):
            message = Message(
                sid=sid, key=f"order:{number}", recipient="+14155550100", segments=1, status="queued"
            )
            ledger.record_sent(message.key, message)
    return sids


def measure(rows: int, latency: float, concurrency: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="smspipe-bench-refresh-") as directory:
        ledger = Path(directory) / "ledger.sqlite3"
        sids = seed_ledger(ledger, rows)
        sids_file = Path(directory) / "sids.txt"
        sids_file.write_text("\n".join(sids))
        server = subprocess.Popen(
            [sys.executable, __file__, "--serve", str(latency), str(sids_file)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert server.stdout is not None and server.stdin is not None
        url = server.stdout.readline().strip()
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("TWILIO_", "SMSPIPE_"))},
            "SMSPIPE_HOME": directory,
            "SMSPIPE_API_URL": url,
            "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
            "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        }
        command = [
            sys.executable, "-m", "smspipe", "status", "--refresh", "--ledger", str(ledger),
            "--concurrency", str(concurrency), "--json",
        ]  # fmt: skip
        try:
            began = time.perf_counter()
            done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
            elapsed = time.perf_counter() - began
        finally:
            server.stdin.close()
            server.wait(timeout=30)
        delivered = done.stdout.count('"status":"delivered"')
        if done.returncode != 0 or delivered != rows:
            raise SystemExit(
                f"status --refresh: exit {done.returncode}, {delivered} delivered\n{done.stderr[-2000:]}"
            )
    bound = rows * latency / concurrency
    return {"elapsed": elapsed, "bound": bound, "share": bound / elapsed, "rows": rows}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--write", action="store_true")
    parser.add_argument("--serve", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(float(args.serve[0]), args.serve[1])
        return
    result = measure(args.rows, args.latency, args.concurrency)
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    met = "yes" if result["share"] >= TARGET_SHARE else "NO"
    text = (
        f"{SECTION}\n\n"
        f"- machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, {platform.system()}\n"
        f"- date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; commit: {commit}; "
        f"load average when it ended: {os.getloadavg()[0]:.2f}\n"
        f"- command: `python bench/bench_refresh.py{' --write' if args.write else ''}` "
        f"(the CLI as a process: `smspipe status --refresh --concurrency {args.concurrency} --json`)\n"
        f"- server: tests/twilio_server.py in its own process, {args.latency * 1000:.0f} ms per request, "
        "every message delivered\n\n"
        "| ledger rows | concurrency | latency | wall time | bound (rows x latency / concurrency) "
        "| share of bound | target | met |\n|---|---|---|---|---|---|---|---|\n"
        f"| {args.rows:,} | {args.concurrency} | {args.latency * 1000:.0f} ms | {result['elapsed']:.1f} s "
        f"| {result['bound']:.1f} s | {result['share']:.1%} | >= {TARGET_SHARE:.0%} | {met} |\n"
    )
    print(text)
    if args.write:
        write_section(text, SECTION)


if __name__ == "__main__":
    main()
