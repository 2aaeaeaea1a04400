"""`smspipe config init|show|path|example`, in-process and as real processes (a pty for the
questions). Every captured output is searched for the token."""

from __future__ import annotations

import json
import os
import re
import select
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from smspipe import config
from smspipe.cli.app import app

ROOT = Path(__file__).resolve().parent.parent
SMSPIPE = Path(sys.executable).parent / "smspipe"
SID = "AC" + "5e1d" * 8
KEY_SID = "SK" + "7a3b" * 8
TOKEN = "c0ffee5ecret70ken0123456789abcdef"
API_SECRET = "ap1-5ecret-abcdefghijklmnopqrstuv"
SECRETS = (TOKEN, API_SECRET)

posix_only = pytest.mark.skipif(os.name == "nt", reason="POSIX file modes and ptys")


@pytest.fixture(autouse=True)
def home(bare_env: dict[str, str]) -> Path:
    """conftest's clean environment; the SMSPIPE_HOME it sets."""
    return Path(bare_env["SMSPIPE_HOME"])


def run(*args: str, input: str | None = None) -> Result:
    result = CliRunner().invoke(app, ["config", *args], input=input)
    for secret in SECRETS:
        assert secret not in result.stdout, f"a secret on stdout of config {args}"
        assert secret not in result.stderr, f"a secret on stderr of config {args}"
    return result


def show(*args: str) -> dict[str, object]:
    result = run("show", "--json", *args)
    assert result.exit_code == 0, result.stderr
    report: dict[str, object] = json.loads(result.stdout)
    return report


def setting(report: dict[str, object], name: str) -> tuple[object, object]:
    entry = report["settings"][name]  # type: ignore[index]
    return entry["value"], entry["source"]


def write(path: Path, text: str, mode: int = 0o600) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)
    return path


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# --- show ------------------------------------------------------------------------


def test_show_precedence_flag_environment_file_default(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(home / "config.yaml", "from: '+15550001111'\nshop_name: File Shop\n")
    monkeypatch.setenv("SMSPIPE_FROM", "+15550002222")
    report = show("--from", "+15550003333")
    assert setting(report, "from") == ("+15550003333", "flag")
    assert setting(report, "shop_name") == ("File Shop", f"config file ({path})")
    assert setting(report, "default_region") == ("US", "default")
    assert setting(show(), "from") == ("+15550002222", "environment (SMSPIPE_FROM)")
    monkeypatch.delenv("SMSPIPE_FROM")
    assert setting(show(), "from") == ("+15550001111", f"config file ({path})")
    path.write_text("shop_name: File Shop\n")
    assert setting(show(), "from") == (None, "default")
    assert setting(show("--region", "gb"), "default_region") == ("gb", "flag")


def test_show_lists_every_key_and_the_paths(home: Path) -> None:
    report = show()
    assert list(report["settings"]) == list(config.KEYS)  # type: ignore[call-overload]
    assert report["config_file"] == str(home / "config.yaml")
    assert report["config_file_source"] == "environment (SMSPIPE_HOME)"
    assert report["config_file_exists"] is False
    assert report["state_dir"] == str(home / "state")
    assert report["ledger"] == str(home / "state" / "ledger.sqlite3")
    assert report["ledger_source"] == "default (state dir)"
    assert report["credentials"] == {"error": "no Twilio credentials"}


def test_smspipe_home_moves_config_and_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    elsewhere = tmp_path / "elsewhere"
    write(elsewhere / "config.yaml", "shop_name: Moved\n")
    monkeypatch.setenv("SMSPIPE_HOME", str(elsewhere))
    report = show()
    assert report["config_file"] == str(elsewhere / "config.yaml")
    assert report["state_dir"] == str(elsewhere / "state")
    assert report["ledger"] == str(elsewhere / "state" / "ledger.sqlite3")
    assert setting(report, "shop_name")[0] == "Moved"
    assert run("path").stdout == f"{elsewhere / 'config.yaml'}\n"


def test_without_smspipe_home_the_user_dirs_are_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SMSPIPE_HOME")
    report = show()
    assert report["config_file_source"] == "default (user config dir)"
    if sys.platform.startswith("linux"):
        # the XDG directories conftest's bare_env sets
        user = tmp_path / "user"
        assert report["config_file"] == str(user / ".config" / "smspipe" / "config.yaml")
        assert report["state_dir"] == str(user / ".local" / "state" / "smspipe")


def test_config_flag_beats_smspipe_config_beats_smspipe_home(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(home / "config.yaml", "shop_name: Home\n")
    env_file = write(tmp_path / "env.yaml", "shop_name: Env\n")
    flag_file = write(tmp_path / "flag.yaml", "shop_name: Flag\n")
    assert setting(show(), "shop_name")[0] == "Home"
    monkeypatch.setenv("SMSPIPE_CONFIG", str(env_file))
    report = show()
    assert (setting(report, "shop_name")[0], report["config_file_source"]) == (
        "Env",
        "environment (SMSPIPE_CONFIG)",
    )
    report = show("--config", str(flag_file))
    assert (setting(report, "shop_name")[0], report["config_file_source"]) == ("Flag", "flag (--config)")
    assert run("path", "--config", str(flag_file)).stdout == f"{flag_file}\n"
    assert run("path").stdout == f"{env_file}\n"


def test_show_redacts_secrets_from_every_source(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(home / "config.yaml", f"account_sid: {SID}\napi_secret: {API_SECRET}\napi_key: {KEY_SID}\n")
    report = show()
    assert setting(report, "api_secret")[0] == "(set)"
    assert report["credentials"] == {
        "method": "api key",
        "account_sid": SID,
        "source": f"config file ({home / 'config.yaml'})",
        "api_key": KEY_SID,
    }
    monkeypatch.setenv("TWILIO_ACCOUNT_SID", SID)
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", TOKEN)
    report = show()
    assert setting(report, "auth_token") == ("(set)", "environment (TWILIO_AUTH_TOKEN)")
    assert report["credentials"] == {"method": "auth token", "account_sid": SID, "source": "environment"}
    assert setting(show("--auth-token", TOKEN), "auth_token") == ("(set)", "flag")


def test_show_reports_which_credentials_send_would_use(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(home / "config.yaml", f"account_sid: {SID}\nauth_token: {TOKEN}\n")
    assert show()["credentials"] == {
        "method": "auth token",
        "account_sid": SID,
        "source": f"config file ({home / 'config.yaml'})",
    }
    monkeypatch.setenv("TWILIO_ACCOUNT_SID", "AC" + "1" * 32)
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", TOKEN[::-1])
    assert show()["credentials"]["source"] == "environment"  # type: ignore[index]


def test_show_a_misplaced_secret_is_still_masked(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A token pasted into shop_name is masked too, once smspipe knows it as a secret."""
    write(home / "config.yaml", f"shop_name: {TOKEN}\n")
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", TOKEN)
    report = show()
    assert setting(report, "shop_name")[0] == "****"


@posix_only
def test_show_warns_about_a_readable_file_with_a_secret(home: Path) -> None:
    path = write(home / "config.yaml", f"auth_token: {TOKEN}\n", 0o644)
    result = run("show", "--json")
    assert result.exit_code == 0
    assert f"warning: {path} holds a secret" in result.stderr
    assert f"chmod 600 {path}" in result.stderr
    path.chmod(0o600)
    assert run("show", "--json").stderr == ""


def test_validate_prints_the_permission_warning_too(home: Path) -> None:
    if os.name == "nt":
        pytest.skip("POSIX file modes")
    path = write(home / "config.yaml", f"auth_token: {TOKEN}\n", 0o640)
    doc = json.dumps({"phone": "+14155552671", "message": "hi"})
    result = CliRunner().invoke(app, ["validate", "--json", "-"], input=doc)
    assert result.exit_code == 0
    assert f"chmod 600 {path}" in result.stderr
    assert TOKEN not in result.stdout + result.stderr


def test_missing_smspipe_config_is_exit_2_with_a_hint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "nope" / "config.yaml"
    monkeypatch.setenv("SMSPIPE_CONFIG", str(missing))
    result = run("show")
    assert result.exit_code == 2
    assert result.stdout == ""
    assert f"config file {missing} does not exist" in result.stderr
    assert "smspipe config init" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("acount_sid: AC123\n", ":1: unknown key 'acount_sid': did you mean 'account_sid'?"),
        ("shop_name: x\nconcurrency: lots\n", ":2: concurrency: must be an integer, got a string"),
        ("shop_name: 'x\n", ":1: while scanning a quoted scalar"),
    ],
)
def test_a_broken_file_is_exit_2_with_file_and_line(home: Path, text: str, expected: str) -> None:
    path = write(home / "config.yaml", text)
    for result in (run("show"), CliRunner().invoke(app, ["validate", "-"], input="")):
        assert result.exit_code == 2
        assert f"smspipe: error: {path}{expected}" in result.stderr
        assert result.stdout == ""


def test_every_problem_of_the_file_is_one_line_of_its_own_in_one_run(home: Path) -> None:
    path = write(home / "config.yaml", "concurrency: 0\nacount_sid: x\nfrom: 15017122661\n")
    expected = [
        f"smspipe: error: {path}:1: concurrency: must be from 1 to 100, got 0: see `smspipe config example`",
        f"smspipe: error: {path}:2: unknown key 'acount_sid': did you mean 'account_sid'?",
        f"smspipe: error: {path}:3: from: must be a string, got a number: put the value in quotes "
        "(YAML reads +1555…, 0123, yes, no, on, off as numbers or booleans)",
    ]
    for args in (["config", "show"], ["config", "check"], ["validate", "-"], ["send", "--dry-run", "-"]):
        result = CliRunner().invoke(app, args, input="")
        assert result.exit_code == 2, args
        assert result.stdout == ""
        assert result.stderr.splitlines() == expected, args


def test_an_ill_typed_secret_is_not_echoed(home: Path) -> None:
    write(home / "config.yaml", f"account_sid: {TOKEN}\nauth_token: [{TOKEN}]\n")
    result = run("show")  # run() asserts the token is in neither stream
    assert result.exit_code == 2
    assert "account_sid: is not an Account SID" in result.stderr


# --- init ------------------------------------------------------------------------


def test_init_from_flags_writes_a_private_commented_file(home: Path) -> None:
    result = run(
        "init",
        "--account-sid",
        SID,
        "--auth-token",
        TOKEN,
        "--from",
        "+15017122661",
        "--default-region",
        "GB",
        "--api-url",
        "http://127.0.0.1:4010",
        "--shop-name",
        "Joe's: #1 shop",
    )
    assert result.exit_code == 0, result.stderr
    path = home / "config.yaml"
    assert result.stdout == ""
    assert f"wrote {path} (mode 600)" in result.stderr
    assert mode_of(path) == 0o600
    text = path.read_text()
    assert text.startswith("# smspipe configuration, written by `smspipe config init`.")
    assert "# messaging_service_sid:" in text  # the rest stays commented, documented
    assert config.parse(text, path) == {
        "account_sid": SID,
        "auth_token": TOKEN,
        "from": "+15017122661",
        "default_region": "GB",
        "api_url": "http://127.0.0.1:4010",
        "shop_name": "Joe's: #1 shop",
    }
    report = show()
    assert setting(report, "from") == ("+15017122661", f"config file ({path})")
    assert report["credentials"]["source"] == f"config file ({path})"  # type: ignore[index]
    assert run("show", "--json").stderr == ""  # no permission warning


def test_init_with_an_api_key_and_messaging_service(home: Path) -> None:
    result = run(
        "init",
        "--account-sid",
        SID,
        "--api-key",
        KEY_SID,
        "--api-secret",
        API_SECRET,
        "--messaging-service-sid",
        "MG" + "a" * 32,
    )
    assert result.exit_code == 0, result.stderr
    values = config.read_file(home / "config.yaml")
    assert values["api_secret"] == API_SECRET
    assert values["messaging_service_sid"] == "MG" + "a" * 32


def test_init_reads_the_token_from_stdin(home: Path) -> None:
    result = run("init", "--account-sid", SID, "--auth-token", "-", input=TOKEN + "\n")
    assert result.exit_code == 0, result.stderr
    assert config.read_file(home / "config.yaml")["auth_token"] == TOKEN


def test_init_without_flags_writes_a_template_and_says_credentials_are_missing(home: Path) -> None:
    result = run("init")
    assert result.exit_code == 0, result.stderr
    assert config.read_file(home / "config.yaml") == {}
    assert "no credentials written" in result.stderr


def test_init_refuses_to_overwrite_without_force(home: Path) -> None:
    path = write(home / "config.yaml", "shop_name: Mine\n", 0o644)
    result = run("init", "--shop-name", "Theirs")
    assert result.exit_code == 2
    assert f"{path} already exists: use --force" in result.stderr
    assert path.read_text() == "shop_name: Mine\n"
    result = run("init", "--shop-name", "Theirs", "--auth-token", TOKEN, "--force")
    assert result.exit_code == 0, result.stderr
    assert config.read_file(path) == {"shop_name": "Theirs", "auth_token": TOKEN}
    assert mode_of(path) == 0o600
    assert sorted(p.name for p in path.parent.iterdir()) == ["config.yaml"]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--account-sid", "ACnope"], "--account-sid: is not an Account SID"),
        (["--from", ""], "--from: must not be empty"),
        (["--default-region", "USA"], "--default-region: is not a two-letter country code"),
        (["--api-url", "localhost:4010"], "--api-url: is not an http:// or https:// URL"),
        (["--api-key", TOKEN], "--api-key: is not an API key SID"),
    ],
)
def test_init_refuses_bad_values_and_writes_nothing(home: Path, args: list[str], expected: str) -> None:
    result = run("init", *args)
    assert result.exit_code == 2
    assert f"smspipe: error: {expected}" in result.stderr
    assert not (home / "config.yaml").exists()


def test_init_respects_config_flag_and_smspipe_config(
    tmp_path: Path, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    flagged = tmp_path / "a" / "b.yaml"
    assert run("init", "--config", str(flagged), "--shop-name", "A").exit_code == 0
    assert config.read_file(flagged) == {"shop_name": "A"}
    named = tmp_path / "env" / "c.yaml"
    monkeypatch.setenv("SMSPIPE_CONFIG", str(named))
    assert run("init", "--shop-name", "B").exit_code == 0
    assert config.read_file(named) == {"shop_name": "B"}
    assert not (home / "config.yaml").exists()
    assert setting(show(), "shop_name") == ("B", f"config file ({named})")


@posix_only
def test_init_file_is_never_readable_by_others_even_with_umask_0(home: Path) -> None:
    old = os.umask(0)
    try:
        assert run("init", "--auth-token", TOKEN).exit_code == 0
    finally:
        os.umask(old)
    assert mode_of(home / "config.yaml") == 0o600


def test_config_example_prints_config_example_yaml() -> None:
    result = run("example")
    assert result.exit_code == 0
    assert result.stdout == (ROOT / "config.example.yaml").read_text("utf-8")


def test_schema_config_lists_every_key() -> None:
    result = CliRunner().invoke(app, ["schema", "config"])
    assert set(json.loads(result.stdout)["properties"]) == set(config.KEYS)


# --- real processes -------------------------------------------------------------------


def clean_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TWILIO_", "SMSPIPE_"))}
    env["SMSPIPE_HOME"] = str(home)
    return env


def test_show_in_a_real_pipe_is_json(home: Path) -> None:
    write(home / "config.yaml", f"account_sid: {SID}\nauth_token: {TOKEN}\n")
    proc = subprocess.run(
        [str(SMSPIPE), "config", "show"],
        capture_output=True,
        text=True,
        env=clean_env(home),
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["settings"]["auth_token"]["value"] == "(set)"
    assert TOKEN not in proc.stdout + proc.stderr


class Terminal:
    """smspipe on a pseudo-terminal: wait for a question, type an answer."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        import pty

        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child: become smspipe
            os.execve(str(SMSPIPE), [str(SMSPIPE), *args], env)  # noqa: S606
        self.transcript = ""
        self.done = False

    def expect(self, text: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.transcript:
            if not self._read(deadline - time.monotonic()):
                raise AssertionError(f"{text!r} never came; the terminal shows:\n{self.transcript}")

    def type(self, line: str) -> None:
        os.write(self.fd, line.encode() + b"\n")

    def finish(self, timeout: float = 30) -> int:
        """The child's exit code; it is killed (and the test fails) if it has not ended in time."""
        deadline = time.monotonic() + timeout
        while self._read(deadline - time.monotonic()):
            pass
        status = self._wait(deadline)
        os.close(self.fd)
        self.done = True
        if status is None:
            raise AssertionError(
                f"smspipe did not end within {timeout} s; the terminal shows:\n{self.transcript}"
            )
        return os.waitstatus_to_exitcode(status)

    def _wait(self, deadline: float) -> int | None:
        """The child's wait status, polled until *deadline*; None (and the child killed) after it."""
        while True:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid == self.pid:
                return status
            if time.monotonic() >= deadline:
                os.kill(self.pid, signal.SIGKILL)
                os.waitpid(self.pid, 0)  # SIGKILL cannot be ignored: this returns
                return None
            time.sleep(0.05)

    def _read(self, timeout: float) -> bool:
        if timeout <= 0 or not select.select([self.fd], [], [], timeout)[0]:
            return False
        try:
            chunk = os.read(self.fd, 4096)
        except OSError:  # EIO: the child has gone
            return False
        self.transcript += chunk.decode("utf-8", "replace")
        return bool(chunk)


StartTerminal = Callable[[list[str], dict[str, str]], Terminal]


@pytest.fixture
def terminal(home: Path) -> Iterator[StartTerminal]:
    """Start smspipe on a pty; a child left waiting by a failed test is killed (by its pid)."""
    if os.name == "nt" or not SMSPIPE.exists():
        pytest.skip("needs a pty and the installed smspipe")
    started: list[Terminal] = []

    def start(args: list[str], env: dict[str, str]) -> Terminal:
        started.append(Terminal(args, env))
        return started[-1]

    yield start
    for term in started:
        if not term.done:
            os.kill(term.pid, signal.SIGKILL)
            os.waitpid(term.pid, 0)
            os.close(term.fd)


def test_init_asks_on_a_terminal_and_never_shows_the_token(home: Path, terminal: StartTerminal) -> None:
    term = terminal(["config", "init"], clean_env(home))
    term.expect("Account SID (AC…): ")
    term.type("ACnope")
    term.expect("is not an Account SID")
    term.expect("Account SID (AC…): ")
    term.type(SID)
    term.expect("Auth token (not shown")
    term.type(TOKEN)
    term.expect("Default sender")
    term.type("+15017122661")
    term.expect("Region for numbers in national form [US]: ")
    term.type("")
    term.expect("Shop name")
    term.type("Joe's")
    assert term.finish() == 0, term.transcript
    assert TOKEN not in term.transcript  # typed without echo, and never printed
    assert f"wrote {home / 'config.yaml'} (mode 600)" in term.transcript
    path = home / "config.yaml"
    assert mode_of(path) == 0o600
    assert config.read_file(path) == {
        "account_sid": SID,
        "auth_token": TOKEN,
        "from": "+15017122661",
        "default_region": "US",
        "shop_name": "Joe's",
    }


def test_init_on_a_terminal_asks_only_what_the_flags_do_not_give(home: Path, terminal: StartTerminal) -> None:
    term = terminal(
        [
            "config",
            "init",
            "--account-sid",
            SID,
            "--from",
            "+15017122661",
            "--default-region",
            "US",
            "--shop-name",
            "",
        ],
        clean_env(home),
    )
    term.expect("Auth token (not shown; Enter to use an API key instead): ")
    term.type("")
    term.expect("API key SID (SK…; Enter for none): ")
    term.type(KEY_SID)
    term.expect("API key secret (not shown): ")
    term.type(API_SECRET)
    assert term.finish() == 0, term.transcript
    assert API_SECRET not in term.transcript
    assert "Account SID" not in term.transcript
    assert config.read_file(home / "config.yaml") == {
        "account_sid": SID,
        "api_key": KEY_SID,
        "api_secret": API_SECRET,
        "from": "+15017122661",
        "default_region": "US",
        "shop_name": "",
    }


def test_init_interrupted_on_a_terminal_writes_nothing(home: Path, terminal: StartTerminal) -> None:
    term = terminal(["config", "init"], clean_env(home))
    term.expect("Account SID (AC…): ")
    os.write(term.fd, b"\x03")  # Ctrl-C
    assert term.finish() == 130, term.transcript
    assert "nothing written" in term.transcript
    assert not (home / "config.yaml").exists()


def test_the_terminal_harness_gives_up_on_a_child_that_never_ends(
    home: Path, terminal: StartTerminal
) -> None:
    """A question nobody answers fails the test in time, the child killed (it once hung CI)."""
    term = terminal(["config", "init"], clean_env(home))
    term.expect("Account SID (AC…): ")
    with pytest.raises(AssertionError, match="did not end within 1 s"):
        term.finish(timeout=1)
    assert term.done
    with pytest.raises(ChildProcessError):
        os.waitpid(term.pid, os.WNOHANG)  # reaped: nothing left running


def test_init_no_input_on_a_terminal_asks_nothing(home: Path, terminal: StartTerminal) -> None:
    term = terminal(["config", "init", "--no-input", "--shop-name", "Quiet"], clean_env(home))
    assert term.finish() == 0, term.transcript
    assert config.read_file(home / "config.yaml") == {"shop_name": "Quiet"}


def test_show_on_a_terminal_is_a_table_without_secrets(home: Path, terminal: StartTerminal) -> None:
    write(home / "config.yaml", f"account_sid: {SID}\nauth_token: {TOKEN}\n")
    env = {**clean_env(home), "COLUMNS": "200", "SMSPIPE_FROM": "+15017122661"}
    term = terminal(["config", "show", "--shop-name", "Flag Shop"], env)
    assert term.finish() == 0, term.transcript
    assert TOKEN not in term.transcript
    screen = re.sub(r"\x1b\[[0-9;]*m", "", term.transcript)
    rows = {line.split()[0]: line for line in screen.splitlines() if line.strip()}
    assert "(set)" in rows["auth_token"]
    assert "config file" in rows["auth_token"]
    assert "environment (SMSPIPE_FROM)" in rows["from"]
    assert "Flag Shop" in rows["shop_name"] and "flag" in rows["shop_name"]
    assert "default" in rows["concurrency"]
    assert str(home / "state" / "ledger.sqlite3") in term.transcript
    assert f"auth token for {SID}" in term.transcript
