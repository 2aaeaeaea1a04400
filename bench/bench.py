"""smspipe benchmarks: start-up, throughput, memory, delivery.

    python bench/bench.py              # everything, writes bench/RESULTS.md
    python bench/bench.py --quick      # fewer runs and smaller inputs, for a smoke check

Each figure is a median of several runs of the installed ``smspipe`` (next to
this interpreter), compared with a floor measured in the same run: bare
``python -c pass`` for start-up, the loops of bench/floors.py for throughput.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DATA = HERE / "data"
BIN = Path(sys.executable).parent
SMSPIPE = str(BIN / "smspipe")
PYTHON = sys.executable

FIRST_NAMES = ["Ana", "Tom", "Zoë", "Łukasz", "Joe", "Mia", "Renée", "Sam"]
# Number ranges that phonenumbers accepts as valid mobiles/lines in each country.
COUNTRIES = [
    ("US", "+1415555{:04d}", 10_000),
    ("GB", "+447400{:06d}", 1_000_000),
    ("DE", "+4915123{:06d}", 1_000_000),
    ("CA", "+1604555{:04d}", 10_000),
]


@dataclass
class Row:
    what: str
    value: str
    floor: str
    ratio: str
    target: str
    ok: bool | None

    def cells(self) -> list[str]:
        verdict = "" if self.ok is None else ("yes" if self.ok else "NO")
        return [self.what, self.value, self.floor, self.ratio, self.target, verdict]


# Settings of a development shell that a user's does not have: no .pyc files
# (every start recompiles smspipe), unbuffered output (a syscall per line).
DEVELOPER_ONLY = ("PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED")


def clean_env() -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("TWILIO_", "SMSPIPE_")) and k not in DEVELOPER_ONLY
    }
    env["SMSPIPE_HOME"] = str(DATA / "home")
    return env


def run(cmd: list[str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run(
        cmd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=clean_env(),
        check=False,
    )
    took = time.perf_counter() - start
    if proc.returncode != 0:
        # A figure for a run that failed would measure the wrong work.
        raise SystemExit(
            f"{' '.join(cmd)} exited {proc.returncode}: {proc.stderr.decode(errors='replace')[-500:]}"
        )
    return took


def median_time(cmd: list[str], runs: int) -> float:
    run(cmd)  # warm the page cache and .pyc files
    return statistics.median(run(cmd) for _ in range(runs))


# Runs the command as the child of a small process and prints its peak RSS: a
# child starts as a copy of its parent (fork, or vfork's shared memory), so
# measured from here its peak would count the benchmark's own memory.
_RSS_PROBE = """
import os, sys, time
start = time.perf_counter()
pid = os.fork()
if pid == 0:
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    os.execv(sys.argv[1], sys.argv[1:])
usage = os.wait4(pid, 0)[2]
print(usage.ru_maxrss, time.perf_counter() - start)
"""


def measured(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, float]:
    """Seconds and peak resident set size (MB) of one run of *cmd*."""
    probe = subprocess.run(
        [PYTHON, "-c", _RSS_PROBE, *cmd], capture_output=True, text=True, env=env or clean_env(), check=True
    )
    rss, seconds = probe.stdout.split()
    return float(seconds), int(rss) / 1024  # Linux reports KiB


def peak_rss_mb(cmd: list[str], env: dict[str, str] | None = None) -> float:
    """Peak resident set size of one run of *cmd*, in MB."""
    return measured(cmd, env)[1]


# --- inputs ------------------------------------------------------------------


def phone(i: int) -> tuple[str, str]:
    country, pattern, size = COUNTRIES[i % len(COUNTRIES)]
    return country, pattern.format(i // len(COUNTRIES) % size)


def sms_file(lines: int) -> Path:
    path = DATA / f"sms-{lines}.ndjson"
    if path.exists():
        return path
    DATA.mkdir(parents=True, exist_ok=True)
    rng = random.Random(lines)
    with path.open("w") as out:
        for i in range(lines):
            name = rng.choice(FIRST_NAMES)
            out.write(
                json.dumps(
                    {
                        "request_id": f"bench:{i}",
                        "sms": {
                            "phone": phone(rng.randrange(1_000_000))[1],
                            "message": f"Hi {name}, your order R{100000 + i} was received. Thank you!",
                        },
                    },
                    ensure_ascii=False,
                )
                + "\n"
            )
    return path


def order_file(lines: int) -> Path:
    path = DATA / f"orders-{lines}.ndjson"
    if path.exists():
        return path
    DATA.mkdir(parents=True, exist_ok=True)
    rng = random.Random(lines)
    sample = json.loads((ROOT / "samples" / "order.json").read_text())["order"]
    with path.open("w") as out:
        for i in range(lines):
            country, number = phone(rng.randrange(1_000_000))
            address = {
                **sample["shipping_address"],
                "firstname": rng.choice(FIRST_NAMES),
                "country": country,
                "phone": number,
            }
            order = {
                **sample,
                "id": f"R{100000 + i}",
                "status": rng.choice(["complete", "complete", "canceled", "shipped"]),
                "shipping_address": address,
                "billing_address": address,
            }
            out.write(json.dumps({"order": order}, ensure_ascii=False) + "\n")
    return path


def array_file(kind: str, megabytes: int) -> Path:
    """A one-line JSON array of about *megabytes* MB: SMS documents, orders, or ``{}``."""
    path = DATA / f"{kind}-array-{megabytes}mb.json"
    if path.exists():
        return path
    target = megabytes * 1_000_000
    if kind == "empty":
        count = target // 3
        path.write_text("[" + ",".join(["{}"] * count) + "]\n")
        return path
    source = sms_file(200_000) if kind == "sms" else order_file(20_000)
    with source.open() as lines, path.open("w") as out:
        out.write("[")
        size = 0
        for number, line in enumerate(_cycle(lines)):
            if size >= target:
                break
            item = line.rstrip("\n")
            if kind == "sms":  # distinct ids, as an export has
                item = item.replace('"request_id": "bench:', f'"request_id": "bench:{number}:', 1)
            out.write(("," if number else "") + item)
            size += len(item) + 1
        out.write("]\n")
    return path


def ndjson_twin(array: Path) -> Path:
    """The same documents as NDJSON, one a line (the array's items are one-line objects)."""
    path = array.with_suffix(".ndjson")
    if not path.exists():
        text = array.read_text().strip()
        path.write_text(text[1:-1].replace("}},{", "}}\n{") + "\n")
    return path


def _cycle(lines: Any) -> Any:
    cached = list(lines)
    while True:
        yield from cached


def one_files() -> tuple[Path, Path]:
    DATA.mkdir(parents=True, exist_ok=True)
    return ROOT / "samples" / "sms.json", ROOT / "samples" / "order.json"


# --- measurements --------------------------------------------------------------


def startup(runs: int) -> list[Row]:
    floor = median_time([PYTHON, "-c", "pass"], runs)
    one_sms, one_order = one_files()
    cases = [
        ("`smspipe --version`", [SMSPIPE, "--version"], None),
        ("`smspipe validate one.json`", [SMSPIPE, "validate", str(one_sms)], 0.150),
        ("`smspipe translate order one.json`", [SMSPIPE, "translate", "order", str(one_order)], None),
        ("`smspipe send --dry-run one.json`", [SMSPIPE, "send", "--dry-run", str(one_sms)], 0.250),
    ]
    rows = []
    for what, cmd, budget in cases:
        took = median_time(cmd, runs)
        extra = took - floor
        rows.append(
            Row(
                f"start-up {what}",
                f"{took * 1000:.0f} ms",
                f"{floor * 1000:.0f} ms",
                f"+{extra * 1000:.0f} ms",
                f"≤ +{budget * 1000:.0f} ms" if budget else "",
                extra <= budget if budget else None,
            )
        )
    return rows


def throughput(kind: str, lines: int, runs: int, target: float) -> Row:
    path = sms_file(lines) if kind == "validate" else order_file(lines)
    cmd = (
        [SMSPIPE, "validate", "--json", str(path)]
        if kind == "validate"
        else [SMSPIPE, "translate", "order", "--json", str(path)]
    )
    ours = lines / median_time(cmd, runs)
    floor = lines / median_time([PYTHON, str(HERE / "floors.py"), kind, str(path)], runs)
    ratio = floor / ours
    return Row(
        f"`{kind}` {lines:,} lines",
        f"{ours:,.0f} docs/s",
        f"{floor:,.0f} docs/s",
        f"{ratio:.2f}× the floor's time",
        f"≤ {target}×",
        ratio <= target,
    )


def memory(lines_list: list[int]) -> list[Row]:
    rows = []
    for lines in lines_list:
        path = sms_file(lines)
        rss = peak_rss_mb([SMSPIPE, "validate", "--json", str(path)])
        rows.append(
            Row(f"peak RSS `validate` {lines:,} lines", f"{rss:.0f} MB", "", "", "< 120 MB", rss < 120)
        )
    return rows


# send --dry-run runs with (unused) credentials: without, each document leaks
# (issue 11, item 4, fixed apart), and the figure would measure that instead.
CREDENTIALS = {"TWILIO_ACCOUNT_SID": "AC" + "0" * 32, "TWILIO_AUTH_TOKEN": "0" * 32}
ARRAY_COMMANDS = {
    "validate": (["validate", "--json"], "sms"),
    "translate order": (["translate", "order", "--json"], "orders"),
    "send --dry-run": (["send", "--dry-run", "--no-ledger", "--json", "--from", "+15017122661"], "sms"),
}


def run_documents(cmd: list[str]) -> float:
    """Like run(), but exit 1 (some document invalid) is a result, not a failure."""
    start = time.perf_counter()
    proc = subprocess.run(
        cmd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=clean_env(),
        check=False,
    )
    if proc.returncode not in (0, 1):
        raise SystemExit(
            f"{' '.join(cmd)} exited {proc.returncode}: {proc.stderr.decode(errors='replace')[-500:]}"
        )
    return time.perf_counter() - start


def arrays(megabytes: int, runs: int) -> list[Row]:
    """A JSON array read item by item: peak RSS, and throughput against the same NDJSON."""
    rows = []
    for what, (args, kind) in ARRAY_COMMANDS.items():
        array = array_file(kind, megabytes)
        twin = ndjson_twin(array)
        rss = peak_rss_mb([SMSPIPE, *args, str(array)], {**clean_env(), **CREDENTIALS})
        rows.append(
            Row(f"peak RSS `{what}` {megabytes} MB array", f"{rss:.0f} MB", "", "", "≤ 100 MB", rss <= 100)
        )
        timings: dict[str, list[float]] = {"array": [], "ndjson": []}
        for _ in range(runs):  # alternating, so that the machine's load falls on both alike
            timings["array"].append(run_documents([SMSPIPE, *args, str(array)]))
            timings["ndjson"].append(run_documents([SMSPIPE, *args, str(twin)]))
        share = statistics.median(timings["ndjson"]) / statistics.median(timings["array"])
        rows.append(
            Row(
                f"`{what}` {megabytes} MB array, against the same NDJSON",
                f"{statistics.median(timings['array']):.2f} s",
                f"{statistics.median(timings['ndjson']):.2f} s",
                f"{share:.0%} of the NDJSON throughput",
                "≥ 80%",
                share >= 0.8,
            )
        )
    return rows


def empty_objects(megabytes: int) -> list[Row]:
    """``[{},{},…]``: every item a document (invalid), read in constant memory."""
    array = array_file("empty", megabytes)
    count = array.stat().st_size // 3
    took, rss = measured([SMSPIPE, "validate", "--json", str(array)])
    return [
        Row(
            f"`validate` {megabytes} MB of `[{{}},{{}},…]` ({count:,} documents)",
            f"{took:.1f} s, {count / took:,.0f} docs/s, {rss:.0f} MB",
            "",
            "",
            "≤ 100 MB",
            rss <= 100,
        )
    ]


def fuzz(quick: bool) -> list[Row]:
    args = [PYTHON, str(HERE / "bench_fuzz.py"), "--json"]
    if quick:
        args += ["--cases", "300", "--processes", "10"]
    proc = subprocess.run(args, capture_output=True, text=True, env=clean_env(), check=False)
    rows = []
    for line in proc.stdout.splitlines():
        item = json.loads(line)
        inside, outside = item["in_process"], item["processes"]
        counts = ("tracebacks", "exits outside 0-2", "good documents lost", "hangs")
        found = {name: inside[name] + outside[name] for name in counts}
        good = inside["good documents"] + outside["good documents"]
        rows.append(
            Row(
                f"fuzz `{item['command']}`: {inside['cases']:,} mutated inputs in-process"
                f" + {outside['cases']:,} as processes ({good:,} good documents among them)",
                ", ".join(f"{name} {value}" for name, value in found.items()),
                "",
                "",
                "all 0",
                not any(found.values()),
            )
        )
    if proc.returncode != 0 and not rows:
        rows.append(Row("fuzz", "failed: " + proc.stderr.strip()[-200:], "", "", "", False))
    return rows


def delivery(quick: bool) -> list[Row]:
    script = HERE / "bench_delivery.py"
    if not script.exists():
        return []
    args = [PYTHON, str(script), "--json"] + (["--quick"] if quick else [])
    proc = subprocess.run(args, capture_output=True, text=True, env=clean_env(), check=False)
    rows = []
    for line in proc.stdout.splitlines():
        if not line.startswith("{"):
            continue
        item = json.loads(line)
        bound = item["bound_per_second"]
        rate = item["messages_per_second"]
        target = item.get("target_seconds")
        rows.append(
            Row(
                f"delivery {item['messages']:,} msgs, concurrency {item['concurrency']}, "
                f"{item['latency'] * 1000:.0f} ms latency",
                f"{rate:,.1f} msg/s ({item['seconds']:.1f} s)",
                f"{bound:,.1f} msg/s (bound)",
                f"{rate / bound:.0%} of bound",
                f"≤ {target} s" if target else "",
                item["seconds"] <= target if target else None,
            )
        )
    if proc.returncode != 0 and not rows:
        rows.append(Row("delivery", "failed: " + proc.stderr.strip()[-200:], "", "", "", False))
    return rows


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
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    ).stdout.strip()
    return proc.stdout.strip() + (" (with uncommitted changes)" if dirty else "")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="fewer runs, smaller inputs")
    parser.add_argument("--no-delivery", action="store_true", help="skip the delivery benchmark")
    parser.add_argument("--no-fuzz", action="store_true", help="skip the mutated inputs (bench_fuzz.py)")
    parser.add_argument("--output", type=Path, default=HERE / "RESULTS.md")
    args = parser.parse_args()

    runs = 5 if args.quick else 15
    big_runs = 1 if args.quick else 3
    sizes = [2_000, 20_000] if args.quick else [20_000, 200_000]
    memory_sizes = [20_000, 100_000] if args.quick else [100_000, 1_000_000]

    rows: list[Row] = []
    print("start-up…", file=sys.stderr)
    rows += startup(runs)
    for kind, target in (("validate", 1.5), ("translate", 2.0)):
        for lines in sizes:
            print(f"{kind} {lines:,}…", file=sys.stderr)
            rows.append(throughput(kind, lines, big_runs, target))
    print("memory…", file=sys.stderr)
    rows += memory(memory_sizes)
    print("arrays…", file=sys.stderr)
    rows += arrays(5 if args.quick else 50, 1 if args.quick else 3)
    rows += empty_objects(5 if args.quick else 50)
    if not args.no_fuzz:
        print("fuzz…", file=sys.stderr)
        rows += fuzz(args.quick)
    if not args.no_delivery:
        print("delivery…", file=sys.stderr)
        rows += delivery(args.quick)

    header = ["measure", "smspipe", "floor", "ratio / overhead", "target", "met"]
    lines = [
        "# Benchmark results",
        "",
        f"- machine: {machine()}",
        f"- date: {dt.datetime.now(dt.UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- commit: {commit()}",
        f"- command: `python bench/bench.py{' --quick' if args.quick else ''}`"
        f" ({runs} runs a start-up figure, {big_runs} a throughput figure; medians)",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        *("| " + " | ".join(row.cells()) + " |" for row in rows),
        "",
    ]
    text = "\n".join(lines)
    # Sections other scripts write (bench_json.py…) are kept, after this table.
    previous = args.output.read_text() if args.output.exists() else ""
    if "<!-- section: " in previous:
        text += "\n<!-- section: " + previous.split("<!-- section: ", 1)[1]
    args.output.write_text(text)
    print(text)
    return 0 if all(row.ok is not False for row in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
