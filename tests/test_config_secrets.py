"""A secret in a broken config file is never echoed, whatever broke, by any command.

A token line can break YAML itself (a value starting with ``*``, ``&``, ``!``,
``%``, ``@``, a backtick, an unclosed quote…), a token can be pasted into the
wrong key, or as a key. Every such file is fed to every command that reads the
config, and stdout and stderr are searched for the token.

The in-process runs empty smspipe's registry of known secrets first, as a new
process has it: otherwise a token registered by an earlier run would be masked
for the wrong reason.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import ROOT, Run, invoke, run_process
from smspipe import config, errors
from twilio_server import ACCOUNT_SID, TwilioServer

TOKEN = "9f2c0ab1" * 4  # 32 hex digits, as Twilio's tokens are

BROKEN = {
    "alias": f"auth_token: *{TOKEN}\n",
    "anchor only": f"auth_token: &{TOKEN}\n",
    "tag": f"auth_token: !{TOKEN}\n",
    "tag and value": f"auth_token: !{TOKEN} x\n",
    "percent": f"auth_token: %{TOKEN}\n",
    "at sign": f"auth_token: @{TOKEN}\n",
    "backtick": f"auth_token: `{TOKEN}\n",
    "unclosed double quote": f'auth_token: "{TOKEN}\n',
    "unclosed single quote": f"auth_token: '{TOKEN}\n",
    "colon in the value": f"auth_token: {TOKEN}: x\n",
    "unclosed bracket": f"auth_token: [{TOKEN}\n",
    "unclosed brace": f"auth_token: {{{TOKEN}\n",
    "bad indentation below": f"auth_token: {TOKEN}\n  bad: indent\n",
    "control character": f"auth_token: {TOKEN}\x07\n",
    "tab": f"auth_token:\t{TOKEN}\n\tfrom: x\n",
    "two quoted scalars": f'"auth_token": "{TOKEN}" "x"\n',
    "block scalar then junk": f"auth_token: |\n  {TOKEN}\n bad: [\n",
    "comment glued on": f"auth_token: {TOKEN}#note\nfrom: [\n",
    "alias on another line": f"auth_token: {TOKEN}\nfrom: *{TOKEN}\n",
    "written twice": f"auth_token: {TOKEN}\nauth_token: {TOKEN}\n",
    "broken line elsewhere": f"auth_token: {TOKEN}\nshop_name: Joe's: shop\n",
    "hub parameter name": f"twilio_auth_token: {TOKEN}\n",
    "a list, not a mapping": f"- auth_token: {TOKEN}\n",
    "pasted into from": f"from: {TOKEN}\n",
    "pasted into from with a tag": f"from: !{TOKEN}\n",
    "pasted into account_sid": f"account_sid: {TOKEN}\n",
    "pasted into api_key": f"api_key: {TOKEN}\n",
    "pasted into messaging_service_sid": f"messaging_service_sid: {TOKEN}\n",
    "pasted into default_region": f"default_region: {TOKEN}\n",
    "pasted into api_url": f"api_url: {TOKEN}\n",
    "pasted into status_callback": f"status_callback: {TOKEN}\n",
    "pasted into concurrency": f"concurrency: {TOKEN}\n",
    "pasted into address": f"address: {TOKEN}\n",
    "pasted into allowed_countries": f"allowed_countries: [{TOKEN}]\n",
    "pasted as a key": f"{TOKEN}: x\n",
    "pasted as a nested key": f"templates:\n  {TOKEN}: x\n",
    "pasted into a directive": f"%YAML {TOKEN}\n---\nfrom: x\n",
    "pasted into a document tag": f"--- !{TOKEN}\nfrom: x\n",
}

DOCUMENT = json.dumps({"phone": "+14155552671", "message": "hello"})


def commands() -> list[tuple[tuple[str, ...], str | None]]:
    """Every command that reads the config file, with the stdin it needs."""
    return [
        (("validate", "--json", "-"), DOCUMENT),
        (("validate", "--pass", "-"), DOCUMENT),
        (("translate", "order", str(ROOT / "samples" / "order.json")), None),
        (("send", "--dry-run", "-"), DOCUMENT),
        (("send", "--no-ledger", "-"), DOCUMENT),
        (("config", "show"), None),
        (("config", "show", "--json"), None),
        (("config", "check"), None),
    ]


@pytest.fixture
def broken_config(
    bare_env: dict[str, str], twilio_server: TwilioServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[Path]:
    """SMSPIPE_CONFIG names the (to be broken) file; the loopback server stands by."""
    path = tmp_path / "config.yaml"
    monkeypatch.setenv("SMSPIPE_CONFIG", str(path))
    monkeypatch.setenv("SMSPIPE_API_URL", twilio_server.url)
    monkeypatch.setenv("SMSPIPE_FROM", "+15017122661")
    yield path


def fresh_invoke(args: tuple[str, ...], stdin: str | None) -> Run:
    with errors._secrets_lock:  # as a new process starts: no secret known yet
        errors._secrets.clear()
    return invoke(*args, input=stdin)


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_no_command_echoes_a_token_from_a_broken_config(
    broken_config: Path, twilio_server: TwilioServer, case: str
) -> None:
    broken_config.write_text(BROKEN[case])
    broken_config.chmod(0o600)
    for args, stdin in commands():
        run = fresh_invoke(args, stdin)
        shown = " ".join(args)
        assert TOKEN not in run.stdout, f"{case}: the token on stdout of {shown}"
        assert TOKEN not in run.stderr, f"{case}: the token on stderr of {shown}"
        assert run.exit_code == 2, f"{case}: {shown} exited {run.exit_code}: {run.stderr}"
        assert run.stdout == "", f"{case}: {shown}"
        assert "smspipe: error: " in run.stderr and "Traceback" not in run.stderr
    assert twilio_server.requests == []


@pytest.mark.parametrize("case", ["alias", "unclosed double quote", "pasted into from", "pasted as a key"])
def test_real_processes_never_echo_it_either(
    broken_config: Path, bare_env: dict[str, str], case: str
) -> None:
    broken_config.write_text(BROKEN[case])
    env = {**bare_env, "SMSPIPE_CONFIG": str(broken_config), "SMSPIPE_DEBUG": "1"}
    for args, stdin in commands():
        run = run_process(*args, env=env, input=stdin or "")
        assert TOKEN not in run.everything, f"{case}: the token in the output of {' '.join(args)}"
        assert run.exit_code == 2, run.stderr


def test_a_token_in_a_working_config_is_masked_in_every_later_error(
    broken_config: Path, twilio_server: TwilioServer
) -> None:
    """The file parses; the token is also pasted where a message would show it (a ledger path)."""
    broken_config.write_text(
        f"account_sid: {ACCOUNT_SID}\nauth_token: {TOKEN}\nledger: /nonexistent/{TOKEN}/x\n"
    )
    broken_config.chmod(0o644)  # draws the permission warning too
    for args, stdin in commands():
        run = fresh_invoke(args, stdin)
        assert TOKEN not in run.everything, " ".join(args)


SECRET_NAMES = ["api_secret", "auth_token", "token", "twilio_api_secret", "twilio_auth_token"]
INDICATORS = ["", "*", "&", "!", "%", "@", "`", '"', "'", "[", "{", "|", ">", "? ", "- ", ": ", "!!", "&a *"]


@settings(max_examples=300, deadline=None)
@given(
    name=st.sampled_from(SECRET_NAMES + sorted(config.KEYS)),
    prefix=st.sampled_from(INDICATORS),
    token=st.text(alphabet="abcdefABCDEF0123456789_-+/=.~", min_size=20, max_size=40),
    suffix=st.sampled_from(["", ":", ": x", " #c", "'", '"', "]", "}", "\n  x: [", "\nfrom: *a"]),
    before=st.sampled_from(["", "from: '+15017122661'\n", "templates:\n  order: x\n"]),
)
def test_no_parse_error_repeats_a_secret_value(
    name: str, prefix: str, token: str, suffix: str, before: str
) -> None:
    """Any key, any way of breaking the line: a secret's value is never in the message."""
    token = "Zq" + token  # no substring of a key name or of YAML's own words
    with errors._secrets_lock:
        errors._secrets.clear()
    text = f"{before}{name}: {prefix}{token}{suffix}\n"
    try:
        config.parse(text, "c.yaml")
    except errors.SmspipeError as exc:
        message = str(exc)
        if name in SECRET_NAMES:
            assert token not in message, text
        # wherever it was pasted, no more of it than YAML's own one-character quotes
        assert token[:8] not in message, text
