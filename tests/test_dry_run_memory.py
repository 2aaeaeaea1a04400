"""`send --dry-run` runs in constant memory, with or without credentials (issue 11,
item 4: without them it grew by ~2.3 KB a document). Peak RSS of a real process at
two input sizes: the larger may not cost more than a few megabytes over the smaller."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import SENDER

# What 80,000 more documents may cost at most: noise of the allocator, not a leak
# (a leak of even 200 bytes a document would be 16 MB).
SLACK_BYTES = 12 * 1024 * 1024


def write_documents(path: Path, count: int) -> None:
    with path.open("w") as out:
        for i in range(count):
            out.write(f'{{"sms": {{"phone": "+1415555{i % 10000:04d}", "message": "order {i} shipped"}}}}\n')


def peak_rss(env: dict[str, str], *args: str) -> int:
    """Peak resident memory of one smspipe process, in bytes (Linux reports kilobytes)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "smspipe", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
    )
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    assert process.returncode == 0, process.stderr.read() if process.stderr else ""
    return int(usage.ru_maxrss) * 1024


@pytest.mark.slow
@pytest.mark.parametrize("credentials", [False, True])
def test_dry_run_memory_is_flat_in_the_number_of_documents(
    bare_env: dict[str, str], tmp_path: Path, credentials: bool
) -> None:
    env = {**bare_env, "SMSPIPE_FROM": SENDER}
    if credentials:
        env.update(TWILIO_ACCOUNT_SID="AC" + "1" * 32, TWILIO_AUTH_TOKEN="t" * 32)
    small, large = tmp_path / "small.ndjson", tmp_path / "large.ndjson"
    write_documents(small, 20_000)
    write_documents(large, 100_000)
    assert (
        peak_rss(env, "send", "--dry-run", str(large)) - peak_rss(env, "send", "--dry-run", str(small))
        < SLACK_BYTES
    )
