"""send's progress bar (issue 13, item 8): a total, a percentage and an ETA when the
inputs are files (bytes read of bytes to read); a pulse on a pipe."""

from __future__ import annotations

import os
import re
from pathlib import Path

from conftest import SENDER, ndjson, run_process, sms_documents
from twilio_server import TwilioServer

ESCAPES = re.compile(r"\x1b\[[0-9;?]*[a-zA-Z]")


def bar_frames(stderr: str) -> list[str]:
    """The bar's frames as a terminal would have drawn them (styles and cursor moves removed)."""
    return [ESCAPES.sub("", frame) for frame in re.split(r"[\r\n]", stderr) if "sending" in frame]


def terminal_env(send_env: dict[str, str]) -> dict[str, str]:
    # rich draws the bar as on a terminal; wide enough for every column
    return {**send_env, **os.environ, "FORCE_COLOR": "1", "COLUMNS": "200"}


def test_files_give_a_percentage_and_an_eta(
    send_env: dict[str, str], twilio_server: TwilioServer, tmp_path: Path
) -> None:
    first, second = tmp_path / "a.ndjson", tmp_path / "b.ndjson"
    first.write_text(ndjson(sms_documents(20)))
    second.write_text(ndjson(sms_documents(20, start=20)))
    run = run_process(
        "send", "--progress", "--from", SENDER, str(first), str(second), env=terminal_env(send_env)
    )
    assert run.exit_code == 0, run.stderr
    assert len(run.records) == 40
    frames = bar_frames(run.stderr)
    assert frames and all("%" in frame and "ETA" in frame for frame in frames)
    assert "100%" in frames[-1] and "40 sent" in frames[-1]


def test_a_pipe_only_pulses(send_env: dict[str, str], twilio_server: TwilioServer) -> None:
    run = run_process(
        "send", "--progress", "--from", SENDER, env=terminal_env(send_env), input=ndjson(sms_documents(5))
    )
    assert run.exit_code == 0, run.stderr
    frames = bar_frames(run.stderr)
    assert frames and not any("%" in frame or "ETA" in frame for frame in frames)
    assert "5 sent" in frames[-1]


def test_counting_reads_the_files_as_the_reader_would(tmp_path: Path) -> None:
    from smspipe import api
    from smspipe.cli._progress import input_bytes

    path = tmp_path / "batch.ndjson"
    path.write_text(ndjson(sms_documents(3)) + '{"phone": "12"}\n')
    reading = input_bytes([str(path)])
    assert reading is not None and reading.total == path.stat().st_size
    verdicts = list(api.validate(reading.files(), env={}))
    assert [v.valid for v in verdicts] == [True, True, True, False]
    assert verdicts[3].where == f"{path}:4"
    assert reading.read == reading.total
    assert input_bytes(["-"]) is None and input_bytes([str(path), "-"]) is None
