"""Shared fixtures: the loopback Twilio server, a clean environment, running smspipe.

Others may append fixtures below; keep the ones here explicit (not autouse).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from twilio_server import ACCOUNT_SID, AUTH_TOKEN, TwilioServer

ROOT = Path(__file__).resolve().parent.parent
SENDER = "+15017122661"
PROXY_VARIABLES = (
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "http_proxy",
    "https_proxy",
    "all_proxy",
    "NO_PROXY",
    "no_proxy",
)


@pytest.fixture
def twilio_server() -> Iterator[TwilioServer]:
    """A Twilio-compatible server on 127.0.0.1 (fresh per test)."""
    server = TwilioServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def bare_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, str]:
    """No TWILIO_*/SMSPIPE_*/proxy variables; SMSPIPE_HOME in tmp_path. Returns the env."""
    for name in list(os.environ):
        if name.startswith(("TWILIO_", "SMSPIPE_")) or name in PROXY_VARIABLES:
            monkeypatch.delenv(name)
    home = tmp_path / "smspipe-home"
    monkeypatch.setenv("SMSPIPE_HOME", str(home))
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "user" / ".config"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "user" / ".local" / "state"))
    return dict(os.environ)


@pytest.fixture
def send_env(
    bare_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, twilio_server: TwilioServer
) -> dict[str, str]:
    """Credentials and SMSPIPE_API_URL pointing at the loopback server; a default sender."""
    values = {
        "SMSPIPE_API_URL": twilio_server.url,
        "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "SMSPIPE_FROM": SENDER,
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return {**bare_env, **values}


@dataclass
class Run:
    """A finished smspipe invocation."""

    exit_code: int
    stdout: str
    stderr: str

    @property
    def records(self) -> list[dict[str, Any]]:
        records = [json.loads(line) for line in self.stdout.splitlines() if line.strip()]
        for record in records:
            check_send_record(record)
        return records

    def statuses(self) -> list[str]:
        return [r["status"] for r in self.records]

    @property
    def everything(self) -> str:
        return self.stdout + "\n" + self.stderr


def check_send_record(record: Any) -> None:
    """A record of `send` (it has a status and a summary) matches `smspipe schema result`:
    every send test checks the output's documented field set this way."""
    if isinstance(record, dict) and "status" in record and "summary" in record:
        from smspipe.sms import load_schema

        if not _RESULT_VALIDATOR:
            import jsonschema

            _RESULT_VALIDATOR.append(jsonschema.Draft202012Validator(load_schema("result")))
        problems = [f"{list(e.absolute_path)}: {e.message}" for e in _RESULT_VALIDATOR[0].iter_errors(record)]
        assert not problems, (record, problems)


_RESULT_VALIDATOR: list[Any] = []


def invoke(*args: str, input: str | None = None) -> Run:
    """Run smspipe in-process (typer's CliRunner): stdout and stderr apart."""
    from smspipe.cli.app import app

    result = CliRunner().invoke(app, list(args), input=input)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return Run(result.exit_code, result.stdout, result.stderr)


def run_process(*args: str, env: dict[str, str], input: str | None = None, timeout: float = 60) -> Run:
    """Run smspipe as a real process."""
    completed = subprocess.run(
        [sys.executable, "-m", "smspipe", *args],
        input=input,
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
    )
    return Run(completed.returncode, completed.stdout, completed.stderr)


def ndjson(documents: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(d) + "\n" for d in documents)


def sms_documents(
    count: int, *, prefix: str = "msg", start: int = 0, request_ids: bool = True
) -> list[dict[str, Any]]:
    """*count* distinct valid documents to US numbers +1415555xxxx."""
    out = []
    for number in range(start, start + count):
        document: dict[str, Any] = {
            "sms": {
                "phone": f"+1415555{number % 10000:04d}",
                "message": f"{prefix} {number}: your order shipped",
            }
        }
        if request_ids:
            document["request_id"] = f"{prefix}-{number}"
        out.append(document)
    return out


@pytest.fixture
def spawn() -> Iterator[Any]:
    """Start `smspipe send` processes (tests/processes.py); kill those still running at the end."""
    from processes import start_send

    started: list[subprocess.Popen[str]] = []

    def start(*args: Any, **kwargs: Any) -> subprocess.Popen[str]:
        process = start_send(*args, **kwargs)
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
            process.communicate()


# --- PostgreSQL (issue 15): a real server, tests/postgres_server.py -----------------------


@pytest.fixture(scope="session")
def postgres() -> Iterator[Any]:
    """The PostgreSQL server (started for the session where none is named); skips, saying
    why, where there can be none (fails instead under SMSPIPE_REQUIRE_POSTGRES=1)."""
    from postgres_server import postgres_server

    with postgres_server() as server:
        try:
            yield server
        finally:
            server.drop_databases()


@pytest.fixture
def postgres_url(postgres: Any) -> str:
    """A fresh database owned by the test role (not a superuser): its URL."""
    return str(postgres.new_database())
