"""Credentials as a user gives them: a pair taken whole from one source, secrets from a
file or stdin rather than the command line, never over plain HTTP to another machine.

`config check` fetches the account from the loopback Twilio server, so what the
server received says which credentials were really used.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from conftest import Run, invoke, run_process
from smspipe import config
from smspipe.errors import CredentialsError
from twilio_server import ACCOUNT_SID, API_KEY, API_SECRET, AUTH_TOKEN, TwilioServer

FLAG_TOKEN = "flag_" + "f1a9" * 7
posix_only = pytest.mark.skipif(os.name == "nt", reason="POSIX file modes")


def write_config(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(0o600)
    return path


@pytest.fixture
def server_env(
    bare_env: dict[str, str], twilio_server: TwilioServer, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """No credentials in the environment; a config file holding the server's pair. Returns it."""
    monkeypatch.setenv("SMSPIPE_API_URL", twilio_server.url)
    return write_config(
        Path(bare_env["SMSPIPE_HOME"]).parent / "c.yaml",
        f"account_sid: {ACCOUNT_SID}\nauth_token: {AUTH_TOKEN}\n",
    )


def check(*args: str) -> Run:
    run = invoke("config", "check", "--json", *args)
    for secret in (AUTH_TOKEN, API_SECRET, FLAG_TOKEN):
        assert secret not in run.everything
    return run


def basic_auth_users(server: TwilioServer) -> list[str | None]:
    return [request.username for request in server.requests]


# --- a pair is taken whole ---------------------------------------------------------------


def test_an_auth_token_flag_is_never_paired_with_the_config_files_account_sid(
    server_env: Path, twilio_server: TwilioServer
) -> None:
    """It used to send the config file's pair and report "auth token from config file"."""
    run = check("--config", str(server_env), "--auth-token", FLAG_TOKEN)
    assert run.exit_code == 2
    assert run.stdout == ""
    assert "half a credential pair in the flags: --auth-token without --account-sid" in run.stderr
    assert f"remove --auth-token to use the pair in the config file ({server_env})" in run.stderr
    assert twilio_server.requests == []


def test_an_account_sid_flag_alone_is_half_a_pair(
    server_env: Path, twilio_server: TwilioServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TWILIO_ACCOUNT_SID", ACCOUNT_SID)
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", AUTH_TOKEN)
    run = check("--account-sid", "AC" + "9" * 32)
    assert run.exit_code == 2
    assert "in the flags: --account-sid without --auth-token (or --api-key and --api-secret)" in run.stderr
    assert "to use the pair in the environment" in run.stderr
    assert twilio_server.requests == []


@pytest.mark.parametrize(
    ("variables", "expected"),
    [
        ({"TWILIO_AUTH_TOKEN": AUTH_TOKEN}, "TWILIO_AUTH_TOKEN without TWILIO_ACCOUNT_SID"),
        ({"TWILIO_API_KEY": API_KEY}, "TWILIO_API_KEY without TWILIO_API_SECRET"),
        ({"TWILIO_API_SECRET": API_SECRET}, "TWILIO_API_SECRET without TWILIO_API_KEY"),
    ],
)
def test_half_a_pair_in_the_environment_names_the_variables(
    server_env: Path,
    twilio_server: TwilioServer,
    monkeypatch: pytest.MonkeyPatch,
    variables: dict[str, str],
    expected: str,
) -> None:
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    run = check("--config", str(server_env))
    assert run.exit_code == 2
    assert f"half a credential pair in the environment: {expected}" in run.stderr
    assert twilio_server.requests == []


def test_a_whole_pair_from_one_source_is_used_and_reported(
    server_env: Path, twilio_server: TwilioServer
) -> None:
    run = check("--config", str(server_env))
    assert run.exit_code == 0, run.stderr
    assert run.records[0]["source"] == f"config file ({server_env})"
    run = check("--config", str(server_env), "--account-sid", ACCOUNT_SID, "--auth-token", AUTH_TOKEN)
    assert run.exit_code == 0, run.stderr
    assert run.records[0]["source"] == "flags"
    assert basic_auth_users(twilio_server) == [ACCOUNT_SID, ACCOUNT_SID]


def test_an_api_key_takes_its_account_sid_from_the_next_source_that_has_one(
    server_env: Path, twilio_server: TwilioServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TWILIO_API_KEY", API_KEY)
    monkeypatch.setenv("TWILIO_API_SECRET", API_SECRET)
    run = check("--config", str(server_env))
    assert run.exit_code == 0, run.stderr
    [verdict] = run.records
    assert verdict["credentials"] == "api key"
    assert verdict["source"] == f"environment, account SID from config file ({server_env})"
    assert basic_auth_users(twilio_server) == [API_KEY]


def test_an_api_key_without_any_account_sid_says_how_to_give_one(bare_env: dict[str, str]) -> None:
    settings = config.load(env={**bare_env, "TWILIO_API_KEY": API_KEY, "TWILIO_API_SECRET": API_SECRET})
    with pytest.raises(CredentialsError, match="needs the account SID it belongs to") as caught:
        config.resolve_credentials(settings)
    assert "TWILIO_ACCOUNT_SID" in str(caught.value)


def test_document_parameters_are_a_layer_of_their_own(bare_env: dict[str, str]) -> None:
    env = {**bare_env, "TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": AUTH_TOKEN}
    settings = config.load(env=env)
    with pytest.raises(CredentialsError) as caught:
        config.resolve_credentials(settings, {"twilio_auth_token": FLAG_TOKEN})
    assert "in the document parameters: parameters.twilio_auth_token without" in str(caught.value)
    assert FLAG_TOKEN not in str(caught.value)
    found = config.resolve_credentials(settings, {"twilio_messaging_service_sid": "MG" + "0" * 32})
    assert (found.account_sid, found.source) == (ACCOUNT_SID, "environment")


def test_config_show_reports_half_a_pair_instead_of_another_sources_pair(
    server_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", FLAG_TOKEN)
    run = invoke("config", "show", "--json", "--config", str(server_env))
    assert run.exit_code == 0, run.stderr
    assert "half a credential pair in the environment" in run.records[0]["credentials"]["error"]
    assert FLAG_TOKEN not in run.everything


# --- secrets from a file or stdin -----------------------------------------------------------


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    return write_config(tmp_path / "token", AUTH_TOKEN + "\n")


def test_auth_token_file_is_read_without_its_newline(
    bare_env: dict[str, str], twilio_server: TwilioServer, token_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SMSPIPE_API_URL", twilio_server.url)
    run = check("--account-sid", ACCOUNT_SID, "--auth-token-file", str(token_file))
    assert run.exit_code == 0, run.stderr
    assert run.stderr == ""
    assert run.records[0]["source"] == "flags"


def test_api_secret_file_is_read(
    bare_env: dict[str, str], twilio_server: TwilioServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SMSPIPE_API_URL", twilio_server.url)
    secret = write_config(tmp_path / "secret", API_SECRET + "\r\n")
    run = check("--account-sid", ACCOUNT_SID, "--api-key", API_KEY, "--api-secret-file", str(secret))
    assert run.exit_code == 0, run.stderr
    assert basic_auth_users(twilio_server) == [API_KEY]


@posix_only
def test_a_readable_token_file_draws_a_warning(
    bare_env: dict[str, str], twilio_server: TwilioServer, token_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SMSPIPE_API_URL", twilio_server.url)
    token_file.chmod(0o644)
    run = check("--account-sid", ACCOUNT_SID, "--auth-token-file", str(token_file))
    assert run.exit_code == 0, run.stderr
    assert f"warning: auth token file {token_file} is accessible to group or others" in run.stderr
    assert f"chmod 600 {token_file}" in run.stderr


@pytest.mark.parametrize(
    ("content", "expected"),
    [(None, "cannot read it"), ("", "is empty"), ("\n", "is empty"), ("a\nb\n", "more than one line")],
)
def test_a_bad_token_file_is_a_usage_error(
    bare_env: dict[str, str], tmp_path: Path, content: str | None, expected: str
) -> None:
    path = tmp_path / "token"
    if content is not None:
        write_config(path, content)
    run = check("--account-sid", ACCOUNT_SID, "--auth-token-file", str(path))
    assert run.exit_code == 2
    assert f"auth token file {path}" in run.stderr and expected in run.stderr


def test_a_token_and_a_token_file_together_are_refused(bare_env: dict[str, str], token_file: Path) -> None:
    run = check("--auth-token", FLAG_TOKEN, "--auth-token-file", str(token_file))
    assert run.exit_code == 2
    assert "--auth-token and --auth-token-file both given" in run.stderr


def test_config_check_reads_a_dash_token_from_stdin_not_a_literal_dash(
    bare_env: dict[str, str], twilio_server: TwilioServer
) -> None:
    """`--auth-token -` used to send "-" as the token (and pass against a permissive server)."""
    env = {**bare_env, "SMSPIPE_API_URL": twilio_server.url}
    run = run_process(
        "config", "check", "--json", "--account-sid", ACCOUNT_SID, "--auth-token", "-",
        env=env, input=AUTH_TOKEN + "\n",
    )  # fmt: skip
    assert run.exit_code == 0, run.stderr
    assert AUTH_TOKEN not in run.everything
    [request] = twilio_server.requests
    assert (request.username, request.password) == (ACCOUNT_SID, AUTH_TOKEN)


def test_config_show_and_init_take_a_token_file(bare_env: dict[str, str], token_file: Path) -> None:
    home = Path(bare_env["SMSPIPE_HOME"])
    run = invoke("config", "init", "--account-sid", ACCOUNT_SID, "--auth-token-file", str(token_file))
    assert run.exit_code == 0, run.stderr
    assert config.read_file(home / "config.yaml")["auth_token"] == AUTH_TOKEN
    other = write_config(token_file.with_name("other"), FLAG_TOKEN)
    run = invoke("config", "show", "--json", "--account-sid", ACCOUNT_SID, "--auth-token-file", str(other))
    assert run.records[0]["settings"]["auth_token"] == {"value": "(set)", "source": "flag", "secret": True}
    assert FLAG_TOKEN not in run.everything


def test_dash_is_refused_where_stdin_holds_the_documents() -> None:
    from smspipe.cli import options
    from smspipe.errors import UsageError

    with pytest.raises(UsageError) as caught:
        options.read_secrets({"auth_token": "-"}, {}, stdin_holds_documents=True)
    assert "--auth-token -: stdin holds the documents here" in str(caught.value)
    assert "--auth-token-file" in str(caught.value)


# --- never over plain HTTP to another machine ------------------------------------------------


@pytest.mark.parametrize(
    "url",
    ["http://api.example.com", "HTTP://10.0.0.7:8080/", "http://0.0.0.0:9", "http://[2001:db8::1]/"],
)
def test_config_check_refuses_plain_http_to_another_machine(
    bare_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    monkeypatch.setenv("TWILIO_ACCOUNT_SID", ACCOUNT_SID)
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", AUTH_TOKEN)
    run = check("--api-url", url)
    assert run.exit_code == 2
    assert run.stdout == ""
    [line] = run.stderr.splitlines()
    assert "is plain HTTP to another machine: the credentials would cross the network in clear" in line
    assert "--allow-insecure-http" in line and "allow_insecure_http: true" in line


def test_plain_http_needs_no_permission_on_loopback(
    bare_env: dict[str, str], twilio_server: TwilioServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TWILIO_ACCOUNT_SID", ACCOUNT_SID)
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", AUTH_TOKEN)
    port = twilio_server.url.rsplit(":", 1)[1]
    for host in ("127.0.0.1", "localhost", "127.1.2.3"):
        if host == "127.1.2.3" and os.uname().sysname != "Linux":
            continue  # other systems answer only 127.0.0.1
        run = check("--api-url", f"http://{host}:{port}")
        assert run.exit_code in (0, 75), run.stderr  # allowed: answered, or nobody there
        assert "plain HTTP" not in run.stderr


def test_the_flag_or_the_config_key_allow_plain_http(
    bare_env: dict[str, str], twilio_server: TwilioServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A proxy on another machine, allowed explicitly (the loopback server plays the proxy)."""
    monkeypatch.setenv("TWILIO_ACCOUNT_SID", ACCOUNT_SID)
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", AUTH_TOKEN)
    monkeypatch.setenv("HTTP_PROXY", twilio_server.url)
    monkeypatch.setenv("SMSPIPE_API_URL", "http://twilio.invalid:8080")
    assert check().exit_code == 2
    assert check("--allow-insecure-http").exit_code == 0
    allowing = write_config(tmp_path / "c.yaml", "allow_insecure_http: true\n")
    assert check("--config", str(allowing)).exit_code == 0
    assert len(twilio_server.requests) == 2


def test_config_show_says_the_credentials_would_not_be_sent(
    bare_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TWILIO_ACCOUNT_SID", ACCOUNT_SID)
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", AUTH_TOKEN)
    report = invoke("config", "show", "--json", "--api-url", "http://10.1.2.3:8080").records[0]
    assert "plain HTTP to another machine" in report["credentials"]["error"]
    allowed = invoke("config", "show", "--json", "--api-url", "http://10.1.2.3", "--allow-insecure-http")
    assert allowed.records[0]["credentials"]["source"] == "environment"
    assert allowed.records[0]["settings"]["allow_insecure_http"] == {"value": True, "source": "flag"}


def test_config_init_refuses_to_write_plain_http_to_another_machine(bare_env: dict[str, str]) -> None:
    home = Path(bare_env["SMSPIPE_HOME"])
    run = invoke("config", "init", "--api-url", "http://proxy.example.com:8080")
    assert run.exit_code == 2
    assert "plain HTTP to another machine" in run.stderr
    assert not (home / "config.yaml").exists()
    run = invoke("config", "init", "--api-url", "http://proxy.example.com:8080", "--allow-insecure-http")
    assert run.exit_code == 0, run.stderr
    assert config.read_file(home / "config.yaml") == {
        "api_url": "http://proxy.example.com:8080",
        "allow_insecure_http": True,
    }


def test_the_url_in_the_message_never_carries_a_password() -> None:
    with pytest.raises(config.InsecureTransport) as caught:
        config.check_api_url("http://user:pa55w0rd-secret@api.example.com:81/x", allow_insecure_http=False)
    assert "http://api.example.com:81 is plain HTTP" in str(caught.value)
    assert "pa55w0rd" not in str(caught.value)
