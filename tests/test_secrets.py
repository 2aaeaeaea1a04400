"""No command ever prints a secret: every command, real processes, all verbosity on.

Secrets reach smspipe four ways (flags, document parameters, environment,
config file); each of them is given a distinct token here, and every byte the
process writes is searched for each token.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from conftest import ROOT, SENDER, Run, run_process
from twilio_server import ACCOUNT_SID, AUTH_TOKEN, TwilioServer

FILE_TOKEN = "file_" + "t0ken" * 6
DOC_TOKEN = "doc_" + "d0ctok" * 5
FLAG_TOKEN = "flag_" + "fl4g" * 7
API_SECRET = "apisecret_" + "x9" * 12
ALL_SECRETS = (AUTH_TOKEN, FILE_TOKEN, DOC_TOKEN, FLAG_TOKEN, API_SECRET)


@pytest.fixture
def world(
    bare_env: dict[str, str], twilio_server: TwilioServer, tmp_path: Path
) -> tuple[dict[str, str], Path]:
    config = tmp_path / "config.yaml"
    config.write_text(
        f'account_sid: "{ACCOUNT_SID}"\nauth_token: "{FILE_TOKEN}"\n'
        f'api_secret: "{API_SECRET}"\nfrom: "{SENDER}"\n'
    )
    config.chmod(stat.S_IRUSR | stat.S_IWUSR | stat.S_IRGRP)  # draws the permission warning
    env = {
        **bare_env,
        "SMSPIPE_API_URL": twilio_server.url,
        "SMSPIPE_CONFIG": str(config),
        "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "SMSPIPE_DEBUG": "1",
    }
    request = {
        "request_id": "secret-1",
        "parameters": {"twilio_account_sid": ACCOUNT_SID, "twilio_auth_token": DOC_TOKEN},
        "sms": {"phone": "+14155552671", "message": "hello"},
    }
    document = tmp_path / "request.json"
    document.write_text(json.dumps(request))
    return env, document


def assert_no_secret(run: Run, what: str) -> None:
    for secret in ALL_SECRETS:
        assert secret not in run.stdout, f"{what}: a secret on stdout"
        assert secret not in run.stderr, f"{what}: a secret on stderr"


def test_no_command_prints_a_secret(world: tuple[dict[str, str], Path], tmp_path: Path) -> None:
    env, document = world
    samples = ROOT / "samples"
    commands: list[tuple[str, ...]] = [
        ("--version",),
        ("validate", "--json", str(document)),
        ("validate", "--pass", str(document)),
        ("validate", str(tmp_path / "missing.json")),
        ("translate", "order", str(samples / "order.json")),
        ("translate", "customer", str(samples / "customer.json")),
        ("translate", "shipment", "--json", str(samples / "shipment.json")),
        ("schema", "config"),
        ("send", "--dry-run", "-v", str(document)),
        ("send", "-v", "--no-ledger", str(samples / "sms.json")),
        (
            "send",
            "-v",
            "--no-ledger",
            "--account-sid",
            ACCOUNT_SID,
            "--auth-token",
            FLAG_TOKEN,
            str(samples / "sms.json"),
        ),
        ("send", "-v", "--no-ledger", str(document)),
        ("config", "show"),
        ("config", "show", "--json"),
        ("config", "path"),
        ("config", "example"),
        ("config", "check", "-v"),
        ("config", "check", "--auth-token", FLAG_TOKEN),
        (
            "config",
            "init",
            "--config",
            str(tmp_path / "new.yaml"),
            "--account-sid",
            ACCOUNT_SID,
            "--auth-token",
            FLAG_TOKEN,
            "--no-input",
        ),
        (
            "config",
            "init",
            "--config",
            str(tmp_path / "new.yaml"),
            "--account-sid",
            ACCOUNT_SID,
            "--auth-token",
            FLAG_TOKEN,
            "--no-input",
        ),  # refused: exists
    ]
    codes = {}
    for args in commands:
        run = run_process("--traceback", *args, env=env, input="")
        assert "Traceback" not in run.stderr, (args, run.stderr)
        assert_no_secret(run, " ".join(args))
        codes[args] = run.exit_code
    # The runs did what they should, so the sweep covered real paths:
    assert codes[("send", "-v", "--no-ledger", str(samples / "sms.json"))] == 0
    refused = (
        "send",
        "-v",
        "--no-ledger",
        "--account-sid",
        ACCOUNT_SID,
        "--auth-token",
        FLAG_TOKEN,
        str(samples / "sms.json"),
    )
    assert codes[refused] == 2  # the server does not know FLAG_TOKEN
    assert codes[("send", "-v", "--no-ledger", str(document))] == 2  # nor DOC_TOKEN
    assert codes[("config", "check", "-v")] == 0
    assert codes[("validate", str(tmp_path / "missing.json"))] == 2
    assert (tmp_path / "new.yaml").exists()
    assert os.stat(tmp_path / "new.yaml").st_mode & 0o777 == 0o600


def test_no_command_of_issue_14_prints_a_secret(
    world: tuple[dict[str, str], Path], twilio_server: TwilioServer, tmp_path: Path
) -> None:
    """status (--refresh, refused too), send --wait / --quiet-hours / --schedule, optout."""
    from twilio_server import Lifecycle

    env, document = world
    twilio_server.lifecycle = Lifecycle(step_seconds=0.05)
    samples = ROOT / "samples"
    stop_list = tmp_path / "stop.csv"
    stop_list.write_text("contact_id,status\n+14155552679,opt-out\nnot a number,opt-out\n")
    service = "MG" + "a" * 32
    later = tmp_path / "later.json"
    later.write_text(json.dumps({"sms": {"phone": "+14155552677", "message": "later"}}))
    commands: list[tuple[str, ...]] = [
        ("send", "-v", "--wait=30", str(samples / "sms.json")),
        ("send", "-v", "--quiet-hours", "00:00-23:59", str(document)),
        (
            "send",
            "-v",
            "--quiet-hours",
            "00:00-23:59",
            "--schedule",
            "--messaging-service-sid",
            service,
            str(document),
        ),
        ("status", "-v", "--refresh"),
        ("status", "--json"),
        ("send", str(later)),  # queued in the ledger: the next refresh fetches it
        ("status", "--refresh", "--account-sid", ACCOUNT_SID, "--auth-token", FLAG_TOKEN),
        ("optout", "add", "+14155552678"),
        ("optout", "import", str(stop_list)),
        ("optout", "list", "--json"),
        ("optout", "remove", "+14155552678"),
    ]
    codes = {}
    for args in commands:
        run = run_process("--traceback", *args, env=env, input="")
        assert "Traceback" not in run.stderr, (args, run.stderr)
        assert_no_secret(run, " ".join(args))
        codes[args] = run.exit_code
    assert codes[commands[0]] == 0  # sent and delivered: the sweep covered the wait
    assert codes[("status", "-v", "--refresh")] == 0
    assert codes[("status", "--refresh", "--account-sid", ACCOUNT_SID, "--auth-token", FLAG_TOKEN)] == 2
    assert codes[("optout", "import", str(stop_list))] == 1
