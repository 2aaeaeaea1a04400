"""Real `smspipe send` processes for the tests that signal, stop or overlap them.

conftest's ``spawn`` fixture starts them and kills whatever is still running
when the test ends, so that a failed assertion never leaves a process behind.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from conftest import ndjson

Spawn = Callable[..., "subprocess.Popen[str]"]


def start_send(
    env: dict[str, str], documents: list[dict[str, Any]], *args: str, cwd: Path | None = None
) -> subprocess.Popen[str]:
    """`smspipe send ARGS` reading *documents* on stdin (small inputs: written whole at once)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "smspipe", "send", *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=cwd,
    )
    assert process.stdin is not None
    process.stdin.write(ndjson(documents))
    process.stdin.close()
    process.stdin = None  # written and closed: communicate() must not flush it
    return process
