"""Several hosts sharing one PostgreSQL ledger, simulated as processes (issue 15).

Each host is a `smspipe send` process with a state directory of its own,
given the whole export (two cron hosts for availability run the same job),
and one ledger they share: each document is sent by whichever host claims it
first; the others skip it, or wait for it to settle. One host may be killed
with SIGKILL mid-run and started again, as a crashed host is. Used by
tests/test_fleet.py (every message created exactly once) and
bench/bench_fleet.py (the wall time against the bound).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from twilio_server import ACCOUNT_SID, AUTH_TOKEN

#: a killed host's requests still in flight may be created this long after (the server's
#: latency, and more): a shorter grace period could take them for absent
GRACE = "2"


def documents(count: int, prefix: str = "fleet") -> list[dict[str, Any]]:
    return [
        {
            "request_id": f"{prefix}-{n}",
            "sms": {"phone": f"+1415555{n % 10000:04d}", "message": f"{prefix} {n}: your order shipped"},
        }
        for n in range(count)
    ]


def environment(api_url: str, ledger_url: str, home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TWILIO_", "SMSPIPE_"))}
    env.update(
        SMSPIPE_HOME=str(home),
        SMSPIPE_API_URL=api_url,
        TWILIO_ACCOUNT_SID=ACCOUNT_SID,
        TWILIO_AUTH_TOKEN=AUTH_TOKEN,
        SMSPIPE_FROM="+15017122661",
        SMSPIPE_LEDGER=ledger_url,
        SMSPIPE_RECONCILE_GRACE=GRACE,
    )
    return env


@dataclass
class Host:
    name: str
    home: Path
    env: dict[str, str]
    runs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    outputs: list[Path] = field(default_factory=list)

    def start(self, inputs: Path, concurrency: int) -> subprocess.Popen[bytes]:
        n = len(self.runs)
        out, err = self.home / f"run{n}.out", self.home / f"run{n}.err"
        with inputs.open("rb") as stdin, out.open("wb") as stdout, err.open("wb") as stderr:
            process = subprocess.Popen(
                [sys.executable, "-m", "smspipe", "send", "--concurrency", str(concurrency)],
                stdin=stdin,
                stdout=stdout,
                stderr=stderr,
                env=self.env,
            )
        self.runs.append(process)
        self.outputs.append(out)
        return process

    def records(self) -> list[dict[str, Any]]:
        return [json.loads(line) for out in self.outputs for line in out.read_text().splitlines() if line]

    def errors(self) -> str:
        return "\n".join(path.with_suffix(".err").read_text() for path in self.outputs)


@dataclass
class Fleet:
    hosts: list[Host]
    #: the first wave (every host, and the killed one's restart) from start to the last exit
    seconds: float = 0.0
    #: exit codes of the first wave, per host and run
    exits: dict[str, list[int]] = field(default_factory=dict)
    #: settling runs after the first wave (the killed host's open keys past the grace period)
    settling: list[int] = field(default_factory=list)

    def kill(self) -> None:
        for process in (run for host in self.hosts for run in host.runs):
            if process.poll() is None:
                process.kill()
                process.wait()


def run_fleet(
    *,
    api_url: str,
    ledger_url: str,
    workdir: Path,
    count: int,
    hosts: int = 3,
    concurrency: int = 20,
    kill_when: Callable[[], bool] | None = None,
    split: bool = False,
) -> Fleet:
    """Run *hosts* hosts over one export of *count* documents (*split*: a share each, as
    producers feeding a fleet; else the whole export each); kill the second with SIGKILL
    once *kill_when* is true and start it again; then settle what is left (a host run over
    the whole export, after the grace period) until a run exits 0."""
    export = documents(count)
    whole = workdir / "export.ndjson"
    whole.write_text("".join(json.dumps(d) + "\n" for d in export))
    fleet = Fleet(
        [Host(f"host{n}", workdir / f"host{n}", {}) for n in range(hosts)],
    )
    inputs = {}
    for n, host in enumerate(fleet.hosts):
        host.home.mkdir(parents=True, exist_ok=True)
        host.env = environment(api_url, ledger_url, host.home)
        inputs[host.name] = whole
        if split:
            inputs[host.name] = host.home / "share.ndjson"
            inputs[host.name].write_text("".join(json.dumps(d) + "\n" for d in export[n::hosts]))
    began = time.monotonic()
    try:
        for host in fleet.hosts:
            host.start(inputs[host.name], concurrency)
        if kill_when is not None:
            victim = fleet.hosts[1]
            deadline = time.monotonic() + 120
            while not kill_when() and victim.runs[0].poll() is None and time.monotonic() < deadline:
                time.sleep(0.01)
            victim.runs[0].send_signal(signal.SIGKILL)
            victim.runs[0].wait()
            victim.start(inputs[victim.name], concurrency)
        for host in fleet.hosts:
            fleet.exits[host.name] = [run.wait(timeout=600) for run in host.runs]
        fleet.seconds = time.monotonic() - began
        last = [codes[-1] for codes in fleet.exits.values()]
        while any(code != 0 for code in [*last, *fleet.settling[-1:]]) and len(fleet.settling) < 5:
            time.sleep(float(GRACE))
            settler = fleet.hosts[0].start(whole, concurrency)
            fleet.settling.append(settler.wait(timeout=600))
            last = []
    finally:
        fleet.kill()
    return fleet
