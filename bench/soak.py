"""Soak: exactly once at scale, under faults and kills.

    python bench/soak.py                 # 10 runs x 1,000 messages; prints the histogram
    python bench/soak.py --write         # also writes its section in bench/RESULTS.md
    python bench/soak.py --quick         # 3 runs x 200 messages

Ten ``smspipe send`` processes, one after the other (some pairs overlapping),
each over the same 1,000 documents, against the loopback Twilio server with
every fault on at random (429 with Retry-After, 500, 503, reset before the
create, drop after it, a slow answer, a late create), a log that lags and
rewrites bodies; about half the runs are killed (``kill -9`` or SIGTERM) at a
random moment. Then the faults stop and runs follow until one ends with exit
0. The histogram counts, per document, the messages the server created (and,
separately, the messages the ledger recorded under its key): it must read 1
for every document, 0 duplicates.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "tests"))

from results_file import write_section  # noqa: E402

from twilio_server import ACCOUNT_SID, AUTH_TOKEN, TwilioServer  # noqa: E402

SECTION = "## Soak: exactly once under faults and kills"
FAULTS = {"429": 0.04, "500": 0.03, "503": 0.04, "reset": 0.03, "drop": 0.05, "slow": 0.02, "late": 0.03}
GRACE = 5.0


def documents(count: int) -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    for n in range(count):
        sms = {
            "phone": f"+1415555{n % 10000:04d}",
            "message": f"order {n}\u2019s on its way \u2014 thank you",
        }
        # One in ten is keyed by its content (no request_id).
        out.append({"sms": sms} if n % 10 == 9 else {"request_id": f"order:{n}:shipped", "sms": sms})
    return out


def environment(server: TwilioServer, home: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TWILIO_", "SMSPIPE_"))}
    env.update(
        SMSPIPE_HOME=home,
        SMSPIPE_API_URL=server.url,
        TWILIO_ACCOUNT_SID=ACCOUNT_SID,
        TWILIO_AUTH_TOKEN=AUTH_TOKEN,
        SMSPIPE_FROM="+15017122661",
        SMSPIPE_RECONCILE_GRACE=str(GRACE),
    )
    return env


def start(env: dict[str, str], batch: Path) -> subprocess.Popen[str]:
    """A run over *batch* (a file: a pipe written whole before reading the results would
    deadlock, since send reads no further than its bounded window while its results wait)."""
    command = [sys.executable, "-m", "smspipe", "send", "--timeout", "1", "--concurrency", "20"]
    command += ["--retries", "3", "--max-wait", "0.5", str(batch)]
    return subprocess.Popen(
        command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )


def finish(process: subprocess.Popen[str]) -> tuple[int, list[dict[str, object]], str]:
    stdout, stderr = process.communicate(timeout=600)
    records = [json.loads(line) for line in stdout.splitlines() if line.strip()]
    return process.returncode, records, stderr


def soak(runs: int, count: int, seed: int) -> dict[str, object]:
    rng = random.Random(seed)
    docs = documents(count)
    wanted = {str(d["sms"]["message"]) for d in docs}  # type: ignore[index]
    events: list[str] = []
    problems: list[str] = []
    with TwilioServer(seed=seed) as server, tempfile.TemporaryDirectory() as home:
        server.fault_mix = dict(FAULTS)
        server.retry_after = "0.5"
        server.late_seconds = 2.0
        server.slow_seconds = 2.0
        server.log_lag = 0.5
        server.log_body = "smart"
        env = environment(server, home)
        batch = Path(home) / "batch.ndjson"
        batch.write_text("".join(json.dumps(d) + "\n" for d in docs))
        began = time.monotonic()
        run = 0
        while run < runs:
            overlap = run + 1 < runs and rng.random() < 0.3
            processes = [start(env, batch) for _ in range(2 if overlap else 1)]
            kill = rng.random() < 0.5
            if kill:
                time.sleep(rng.uniform(0.5, 4.0))
                how = rng.choice([signal.SIGKILL, signal.SIGTERM])
                processes[0].send_signal(how)
            for index, process in enumerate(processes):
                code, records, stderr = finish(process)
                check(records, server, wanted, problems)
                what = f"run {run + 1 + index}: exit {code}"
                if kill and index == 0:
                    what += f" ({'kill -9' if code == -9 else 'SIGTERM'})"
                if overlap:
                    what += f" (overlapping run {run + 2 - index})"
                what += f", {len(records)} results"
                events.append(what)
                if "Traceback" in stderr or "internal error" in stderr:
                    problems.append(f"run {run + 1 + index}: {stderr[-300:]}")
            run += len(processes)
        server.fault_mix = {}
        server.log_lag = 0.0
        calm = 0
        while True:
            calm += 1
            code, records, stderr = finish(start(env, batch))
            check(records, server, wanted, problems)
            if code == 0 or calm >= 20:
                break
            time.sleep(1.0)
        events.append(f"then {calm} run(s) without faults, the last exit {code}")
        took = time.monotonic() - began
        created = Counter(m["body"] for m in server.messages)
        histogram = Counter(created.get(body, 0) for body in wanted)
        ledger = ledger_histogram(Path(home) / "state" / "ledger.sqlite3")
        faults = Counter(r.fault for r in server.creates() if r.fault)
        posts = len(server.creates())
    return {
        "runs": runs,
        "documents": count,
        "histogram": dict(sorted(histogram.items())),
        "ledger_histogram": ledger,
        "duplicates": sum(n - 1 for n in created.values() if n > 1),
        "unwanted": sum(1 for body in created if body not in wanted),
        "posts": posts,
        "faults": dict(sorted(faults.items())),
        "events": events,
        "problems": problems,
        "seconds": round(took, 1),
        "seed": seed,
    }


def check(
    records: list[dict[str, object]], server: TwilioServer, wanted: set[str], problems: list[str]
) -> None:
    """Everything reported sent or skipped names a SID the server holds, to that recipient."""
    held = {m["sid"]: m for m in server.messages}
    for record in records:
        if record["status"] in ("sent", "skipped"):
            message = held.get(str(record["sid"]))
            if message is None or message["to"] != record["to"]:
                problems.append(f"reported {record['status']} without the server holding it: {record}")


def ledger_histogram(path: Path) -> dict[int, int]:
    with sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True) as db:
        per_key = db.execute(
            "SELECT count(m.sid) FROM deliveries d LEFT JOIN messages m ON m.key = d.key GROUP BY d.key"
        ).fetchall()
    return dict(sorted(Counter(row[0] for row in per_key).items()))


def render(result: dict[str, object], command: str) -> str:
    histogram: dict[int, int] = result["histogram"]  # type: ignore[assignment]
    ledger: dict[int, int] = result["ledger_histogram"]  # type: ignore[assignment]
    rows = ["| messages created for the document | documents (server) | keys (ledger) |", "|---|---|---|"]
    for n in sorted(set(histogram) | set(ledger) | {0, 1}):
        rows.append(f"| {n} | {histogram.get(n, 0):,} | {ledger.get(n, 0):,} |")
    faults = ", ".join(f"{name} {n}" for name, n in result["faults"].items())  # type: ignore[attr-defined]
    ok = histogram == {1: result["documents"]} and not result["duplicates"] and not result["problems"]
    lines = [
        SECTION,
        "",
        f"- machine: {cpu_name()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, {platform.system()}",
        f"- date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        f"- command: `{command}` (seed {result['seed']}; {result['seconds']} s)",
        f"- {result['runs']} runs x {result['documents']:,} documents, concurrency 20, --timeout 1; faults "
        f"at random on every create ({faults}: {result['posts']:,} POSTs in all), a log 0.5 s behind "
        "showing smart-encoded bodies; about half the runs killed (kill -9 or SIGTERM) at a random "
        f"moment, some pairs overlapping; grace period {GRACE:g} s",
        "",
        *rows,
        "",
        f"Duplicates: {result['duplicates']}. Messages nobody asked for: {result['unwanted']}. "
        f"Results reported sent or skipped without the server holding them: {len(result['problems'])}. "  # type: ignore[arg-type]
        + ("Every document created exactly once." if ok else "NOT exactly once: see the problems above."),
        "",
        "Runs: " + "; ".join(result["events"]) + ".",  # type: ignore[arg-type]
        "",
    ]
    return "\n".join(lines)


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--quick", action="store_true", help="3 runs x 200 messages")
    parser.add_argument("--write", action="store_true", help="write the section in bench/RESULTS.md")
    args = parser.parse_args()
    runs, count = (3, 200) if args.quick else (args.runs, args.messages)
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    result = soak(runs, count, seed)
    text = render(result, "python bench/soak.py" + (" --quick" if args.quick else ""))
    print(text)
    for problem in result["problems"][:20]:  # type: ignore[index]
        print("problem:", problem, file=sys.stderr)
    if args.write:
        write_section(text, SECTION)
    return 0 if result["histogram"] == {1: count} and not result["problems"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
