"""The config core: file location, validation, messages, permissions, credentials, the
commented file (config.example.yaml, `config init`) and how it is written."""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smspipe import config
from smspipe.errors import ConfigError, CredentialsError, redact

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "config.example.yaml"
SID = "AC" + "5e1d" * 8
OTHER_SID = "ACfedcba9876543210fedcba9876543210"
KEY_SID = "SK" + "7a3b" * 8
TOKEN = "tok3n-f00dfeedf00dfeedf00dfeedf00d"

posix_only = pytest.mark.skipif(os.name == "nt", reason="POSIX file modes")


@pytest.fixture(autouse=True)
def _clean_env(bare_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """conftest's clean environment, without SMSPIPE_HOME: these tests choose it."""
    monkeypatch.delenv("SMSPIPE_HOME")


def write(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text)
    path.chmod(mode)
    return path


def error_of(text: str) -> str:
    with pytest.raises(ConfigError) as caught:
        config.parse(text, "conf.yaml")
    return str(caught.value)


# --- where the file is -----------------------------------------------------------


def test_location_precedence_flag_then_smspipe_config_then_home_then_user_dir(tmp_path: Path) -> None:
    env = {"SMSPIPE_CONFIG": str(tmp_path / "env.yaml"), "SMSPIPE_HOME": str(tmp_path / "h")}
    assert config.locate(tmp_path / "flag.yaml", env) == (tmp_path / "flag.yaml", "argument (config)")
    assert config.locate(None, env) == (tmp_path / "env.yaml", "environment (SMSPIPE_CONFIG)")
    del env["SMSPIPE_CONFIG"]
    assert config.locate(None, env) == (tmp_path / "h" / "config.yaml", "environment (SMSPIPE_HOME)")
    path, source = config.locate(None, {})
    assert source == "default (user config dir)"
    if os.name == "posix" and "darwin" not in os.uname().sysname.lower():
        assert path == tmp_path / "user" / ".config" / "smspipe" / "config.yaml"


def test_smspipe_home_moves_config_and_state_together(tmp_path: Path) -> None:
    home = tmp_path / "h"
    home.mkdir()
    write(home / "config.yaml", "from: '+15017122661'\n")
    settings = config.load(env={"SMSPIPE_HOME": str(home)})
    assert settings.path == home / "config.yaml"
    assert settings.resolved.sender == "+15017122661"
    assert settings.resolved.state_dir == config.state_dir({"SMSPIPE_HOME": str(home)}) == home / "state"
    assert settings.resolved.ledger == home / "state" / "ledger.sqlite3"


def test_default_file_may_be_missing_but_a_named_one_may_not(tmp_path: Path) -> None:
    settings = config.load(env={"SMSPIPE_HOME": str(tmp_path / "nowhere")})
    assert not settings.file_loaded
    assert settings.resolved.default_region == "US"
    missing = tmp_path / "missing.yaml"
    for path, env in ((missing, {}), (None, {"SMSPIPE_CONFIG": str(missing)})):
        with pytest.raises(ConfigError) as caught:
            config.load(path, env=env)
        assert "missing.yaml does not exist" in str(caught.value)
        assert "smspipe config init" in str(caught.value)


def test_a_directory_as_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is a directory"):
        config.load(tmp_path, env={})


# --- validation --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("acount_sid: x\n", "conf.yaml:1: unknown key 'acount_sid': did you mean 'account_sid'?"),
        (
            "from: '+15017122661'\nauth_tokn: x\n",
            "conf.yaml:2: unknown key 'auth_tokn': did you mean 'auth_token'?",
        ),
        ("sender: x\n", "unknown key 'sender': did you mean 'from'?"),
        ("twilio_auth_token: x\n", "did you mean 'auth_token'?"),
        ("templates:\n  ordr: hi\n", "conf.yaml:1: templates: unknown key 'ordr': did you mean 'order'?"),
    ],
)
def test_unknown_key_is_refused_with_the_nearest_known_one(text: str, expected: str) -> None:
    assert expected in error_of(text)


def test_unknown_key_without_a_close_match_lists_the_known_ones() -> None:
    message = error_of("zzz: 1\n")
    assert "unknown key 'zzz'" in message
    assert "known keys: account_sid, auth_token" in message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "# sender\n\nfrom: +15017122661\n",
            "conf.yaml:3: from: must be a string, got a number: put the value in quotes",
        ),
        ("default_region: NO\n", "conf.yaml:1: default_region: must be a string, got true/false"),
        ("default_region: USA\n", "default_region: is not a two-letter country code"),
        ("account_sid: ACnope\n", "account_sid: is not an Account SID (AC followed by 32 hex"),
        ("concurrency: 500\n", "conf.yaml:1: concurrency: must be from 1 to 100, got 500"),
        ("retries: many\n", "retries: must be an integer, got a string"),
        ("rate: 0\n", "rate: must be > 0"),
        (
            "allowed_countries:\n  - US\n  - Canada\n",
            "conf.yaml:3: allowed_countries[1]: is not a two-letter country code",
        ),
        ("templates:\n  order: 5\n", "conf.yaml:2: templates.order: must be a string or a mapping"),
        ("address: home\n", "address: must be one of: shipping, billing"),
        ("api_url: api.twilio.com\n", "api_url: is not an http:// or https:// URL"),
        (
            "account_sid:\n",
            "account_sid: has no value (expected a string): give it a value, or remove the line",
        ),
        ("- account_sid\n", "conf.yaml: the config file must be a mapping"),
        ("from: '+1'\nfrom: '+2'\n", "conf.yaml:2: key 'from' appears twice (also on line 1)"),
    ],
)
def test_ill_typed_values_name_the_key_path_and_line(text: str, expected: str) -> None:
    assert expected in error_of(text)


def test_every_problem_in_the_file_is_reported_at_once_one_line_each_in_line_order() -> None:
    text = (
        "concurrency: 0\nacount_sid: x\nretries: -1\nfrom: '+15017122661'\nfrom: '+15017122662'\ntimeout: 0\n"
    )
    assert error_of(text).splitlines() == [
        "conf.yaml:1: concurrency: must be from 1 to 100, got 0: see `smspipe config example`",
        "conf.yaml:2: unknown key 'acount_sid': did you mean 'account_sid'?",
        "conf.yaml:3: retries: must be from 0 to 100, got -1: see `smspipe config example`",
        "conf.yaml:5: key 'from' appears twice (also on line 4): keep one of them",
        "conf.yaml:6: timeout: must be > 0, got 0: see `smspipe config example`",
    ]


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("from: '+15017122661'\nshop_name: Joe's: shop\n", 2),
        ("default_region: US\nallowed_countries: [US, CA\n", 2),
        ("from: '+1\n", 1),
        ("a: 1\n---\nb: 2\n", 2),
    ],
)
def test_yaml_syntax_error_gives_file_and_line(text: str, line: int) -> None:
    message = error_of(text)
    assert message.startswith(f"conf.yaml:{line}: ")
    assert "fix the YAML syntax" in message
    assert "Traceback" not in message


def test_empty_and_comment_only_files_are_empty_configs(tmp_path: Path) -> None:
    assert config.parse("", "c") == {}
    assert config.parse("# nothing yet\n", "c") == {}
    assert config.load(write(tmp_path / "c.yaml", "\ufeff# BOM\n"), env={}).file_values == {}


def test_the_schema_is_the_one_schema_config_prints() -> None:
    schema = config.config_schema()
    assert set(schema["properties"]) == set(config.KEYS)
    assert schema["additionalProperties"] is False


# --- secrets never in a message ---------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        f"auth_token: {TOKEN}\nauth_token: {TOKEN}\n",
        f"api_key: {TOKEN}\n",  # a secret in the wrong key
        f"account_sid: {TOKEN}\n",
        f"from: {TOKEN}\nfrom: x\n",
        f"auth_token: *{TOKEN}\n",  # YAML quotes an undefined alias
        f"auth_token: !{TOKEN} x\n",  # and an unknown tag
        "auth_token: 12345678901234\n",
        f"templates:\n  order: {{{TOKEN}: 5}}\n",  # the path to the bad value holds the secret
        f"{TOKEN}: x\n",  # a secret pasted as a key
        f"templates:\n  {TOKEN}: x\n",
    ],
)
def test_a_secret_is_never_echoed_in_an_error(text: str) -> None:
    message = error_of(text)
    assert TOKEN not in message
    assert "12345678901234" not in message


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    name=st.sampled_from(sorted(config.KEYS)),
    secret=st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEF0123456789_-+/.", min_size=12, max_size=40),
    long_secret=st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEF0123456789_-+/.", min_size=25, max_size=40),
)
def test_no_value_of_any_key_is_echoed(name: str, secret: str, long_secret: str) -> None:
    """Values never; keys only when they look like names (a 32-character token does not)."""
    secret, long_secret = "9Q" + secret, "9Q" + long_secret  # not a substring of a key name
    for text in (
        f"{name}: {json.dumps(secret)}\n",
        f"{name}: [{json.dumps(secret)}]\n",
        f"{name}:\n  {json.dumps(long_secret)}: 1\n",
        f"{name}:\n  a:\n    {json.dumps(long_secret)}: 1\n",
        f"{json.dumps(long_secret)}: 1\n",
    ):
        try:
            config.parse(text, "c.yaml")
        except ConfigError as exc:
            assert secret not in str(exc)
            assert long_secret not in str(exc)


# --- permissions ----------------------------------------------------------------------


@posix_only
@pytest.mark.parametrize("secret_key", ["auth_token", "api_secret"])
def test_a_secret_in_a_group_or_world_readable_file_draws_a_warning(tmp_path: Path, secret_key: str) -> None:
    path = write(tmp_path / "c.yaml", f"{secret_key}: {TOKEN}\n", 0o644)
    settings = config.load(path, env={})
    assert len(settings.warnings) == 1
    warning = settings.warnings[0]
    assert str(path) in warning
    assert f"chmod 600 {path}" in warning
    assert TOKEN not in warning
    path.chmod(0o640)
    assert config.load(path, env={}).warnings


@posix_only
def test_no_warning_for_a_private_file_or_one_without_secrets(tmp_path: Path) -> None:
    assert config.load(write(tmp_path / "a.yaml", f"auth_token: {TOKEN}\n", 0o600), env={}).warnings == []
    assert config.load(write(tmp_path / "b.yaml", "from: '+15017122661'\n", 0o644), env={}).warnings == []


def test_secrets_from_the_file_are_registered_for_redaction(tmp_path: Path) -> None:
    config.load(write(tmp_path / "c.yaml", f"api_secret: {TOKEN}x\n"), env={})
    assert redact(f"oops {TOKEN}x") == "oops ****"


# --- precedence of settings and of credentials ---------------------------------------


def test_setting_precedence_flag_environment_file_default(tmp_path: Path) -> None:
    path = write(tmp_path / "c.yaml", "from: '+15550001111'\n")
    env = {"SMSPIPE_FROM": "+15550002222"}
    assert config.load(path, env=env, flags={"from": "+15550003333"}).lookup("from") == (
        "+15550003333",
        "argument",
    )
    assert config.load(path, env=env, flags={"from": None}).lookup("from") == (
        "+15550002222",
        "environment (SMSPIPE_FROM)",
    )
    assert config.load(path, env={}).lookup("from") == ("+15550001111", f"config file ({path})")
    assert config.load(env={"SMSPIPE_HOME": str(tmp_path / "h")}).lookup("from") == (None, "default")


@pytest.fixture
def layered(tmp_path: Path) -> config.Settings:
    """A file, an environment and no flags, each with its own complete credentials."""
    path = write(tmp_path / "c.yaml", f"account_sid: {SID}\nauth_token: file-token-123\n")
    env = {"TWILIO_ACCOUNT_SID": OTHER_SID, "TWILIO_AUTH_TOKEN": "env-token-123"}
    return config.load(path, env=env)


def test_credentials_environment_beats_the_config_file(layered: config.Settings) -> None:
    found = config.resolve_credentials(layered)
    assert (found.account_sid, found.password, found.source) == (OTHER_SID, "env-token-123", "environment")


def test_credentials_document_parameters_beat_the_environment(layered: config.Settings) -> None:
    parameters = {"twilio_account_sid": SID, "twilio_auth_token": "doc-token-123"}
    found = config.resolve_credentials(layered, parameters)
    assert (found.account_sid, found.username, found.password) == (SID, SID, "doc-token-123")
    assert found.source == "document parameters"


def test_credentials_flags_beat_document_parameters(layered: config.Settings) -> None:
    layered = config.load(
        layered.path, env=layered.env, flags={"api_key": KEY_SID, "api_secret": "flag-secret-123"}
    )
    parameters = {"twilio_account_sid": SID, "twilio_auth_token": "doc-token-123"}
    found = config.resolve_credentials(layered, parameters)
    assert (found.username, found.password, found.method) == (KEY_SID, "flag-secret-123", "api key")
    # an API key's account SID: from its own source, else the next one that has one
    assert found.account_sid == SID
    assert found.source == "arguments, account SID from document parameters"
    assert "flag-secret-123" not in repr(found)


def test_credentials_from_the_config_file_alone(tmp_path: Path) -> None:
    path = write(tmp_path / "c.yaml", f"account_sid: {SID}\nauth_token: file-token-123\n")
    found = config.resolve_credentials(config.load(path, env={}))
    assert found.password == "file-token-123"
    assert found.source == f"config file ({path})"


def test_no_credentials_lists_every_way_to_give_them() -> None:
    settings = config.load(env={"SMSPIPE_HOME": "/nonexistent/x"})
    with pytest.raises(CredentialsError) as caught:
        config.resolve_credentials(settings, documents=True)
    message = str(caught.value)
    for way in ("account_sid", "TWILIO_AUTH_TOKEN", "twilio_auth_token", "smspipe config init"):
        assert way in message
    # where no document is read (an account check), its parameters are no way
    with pytest.raises(CredentialsError) as caught:
        config.resolve_credentials(settings)
    assert "twilio_auth_token" not in str(caught.value) and "smspipe config init" in str(caught.value)


# --- one precedence for settings, credentials and senders ----------------------------

LAYERS = ("flag", "document", "environment", "config file")


def layered_settings(tmp_path: Path, present: tuple[str, ...]) -> tuple[config.Settings, dict[str, str]]:
    """Settings where each layer in *present* gives its own sender and its own pair; and the
    document parameters (empty unless the document layer is present)."""
    values = {
        layer: (f"+1501712266{i}", "AC" + str(i) * 32, f"token-{layer}-123") for i, layer in enumerate(LAYERS)
    }
    flags, env, file, parameters = {}, {}, {}, {}
    if "flag" in present:
        sender, sid, token = values["flag"]
        flags = {"from": sender, "account_sid": sid, "auth_token": token}
    if "document" in present:
        sender, sid, token = values["document"]
        parameters = {"twilio_account_sid": sid, "twilio_auth_token": token, "from": sender}
    if "environment" in present:
        sender, sid, token = values["environment"]
        env = {"SMSPIPE_FROM": sender, "TWILIO_ACCOUNT_SID": sid, "TWILIO_AUTH_TOKEN": token}
    if "config file" in present:
        sender, sid, token = values["config file"]
        file = {"from": sender, "account_sid": sid, "auth_token": token}
    path = write(tmp_path / "c.yaml", "".join(f"{k}: '{v}'\n" for k, v in file.items()))
    return config.load(path, env=env, flags=flags), parameters


@pytest.mark.parametrize("present", [LAYERS[i:] for i in range(4)] + [("document", "config file")])
def test_settings_credentials_and_senders_follow_one_precedence(
    tmp_path: Path, present: tuple[str, ...]
) -> None:
    settings, parameters = layered_settings(tmp_path, present)
    strongest = present[0]
    document_sender = parameters.pop("from", None)
    chosen = config.resolve_sender(settings, document_sender, parameters)
    credentials = config.resolve_credentials(settings, parameters)
    assert chosen is not None
    assert chosen.kind == strongest
    assert credentials.password == f"token-{strongest}-123"
    if strongest != "document":  # a document's from is not a setting of the run
        assert settings.lookup("from")[0] == chosen.sender
        assert settings.resolved.sender == chosen.sender


def test_a_sender_and_a_messaging_service_are_taken_whole_from_one_source(tmp_path: Path) -> None:
    service = "MG" + "a" * 32
    path = write(tmp_path / "c.yaml", f"messaging_service_sid: {service}\n")
    settings = config.load(path, env={"SMSPIPE_FROM": "+15017122661"})
    chosen = config.resolve_sender(settings)
    assert chosen == config.SenderChoice("+15017122661", None, "environment (SMSPIPE_FROM)", "environment")
    document = config.resolve_sender(settings, None, {"twilio_messaging_service_sid": "MG" + "b" * 32})
    assert document is not None and (document.sender, document.kind) == (None, "document")
    assert config.resolve_sender(config.load(env={"SMSPIPE_HOME": str(tmp_path / "h")})) is None


def test_settings_are_resolved_once_into_typed_values(tmp_path: Path) -> None:
    path = write(
        tmp_path / "c.yaml",
        "concurrency: 8\nrate: 2\ntimeout: 5\nmax_wait: 1\nallowed_countries: [us, CA]\nledger: ~/l.db\n",
    )
    settings = config.load(path, env={"SMSPIPE_DEFAULT_REGION": "GB"}, flags={"concurrency": 3, "rate": None})
    typed = settings.resolved
    assert (typed.concurrency, typed.rate, typed.timeout, typed.max_wait, typed.retries) == (
        3,
        2.0,
        5.0,
        1.0,
        5,
    )
    assert isinstance(typed.rate, float) and isinstance(typed.timeout, float)
    assert typed.allowed_countries == frozenset({"US", "CA"})
    assert typed.ledger == Path("~/l.db").expanduser()
    assert typed.default_region == "GB"
    assert typed.max_segments is None and typed.sender is None
    assert settings.resolved is typed  # resolved once
    with pytest.raises(AttributeError):
        typed.concurrency = 1  # type: ignore[misc]


def test_flags_and_environment_are_checked_like_the_file_every_problem_at_once(tmp_path: Path) -> None:
    env = {
        "SMSPIPE_API_URL": "api.twilio.com",
        "SMSPIPE_DEFAULT_REGION": "USA",
        "SMSPIPE_HOME": str(tmp_path),
    }
    with pytest.raises(ConfigError) as caught:
        config.load(env=env, flags={"concurrency": 500})
    assert str(caught.value).splitlines() == [
        "concurrency: must be from 1 to 100, got 500 (given as an argument): see `smspipe config example`",
        "api_url: is not an http:// or https:// URL (environment SMSPIPE_API_URL): "
        "see `smspipe config example`",
        "default_region: is not a two-letter country code such as US, GB or DE "
        "(environment SMSPIPE_DEFAULT_REGION): see `smspipe config example`",
    ]


# --- the commented file ---------------------------------------------------------------

_SETTING = re.compile(r"^# ([a-z_]+):( |$)")


def uncomment(text: str) -> str:
    """Turn every commented-out setting (and its indented continuation lines) on."""
    lines, inside = [], False
    for line in text.splitlines():
        match = _SETTING.match(line)
        if match and match.group(1) in config.KEYS:
            lines.append(line[2:])
            inside = True
        elif inside and line.startswith("#   "):
            lines.append(line[2:])
        else:
            lines.append(line)
            inside = False
    return "\n".join(lines) + "\n"


def test_config_example_yaml_is_what_config_example_prints() -> None:
    assert EXAMPLE.read_text("utf-8") == config.render(), (
        "config.example.yaml is stale: regenerate it with `smspipe config example > config.example.yaml`"
    )


def test_config_example_yaml_lists_exactly_the_keys() -> None:
    text = EXAMPLE.read_text("utf-8")
    listed = [m.group(1) for m in map(_SETTING.match, text.splitlines()) if m]
    assert sorted(listed) == sorted(config.KEYS)
    assert config.parse(text, EXAMPLE) == {}  # everything commented out
    docs = " ".join(line[3:] for line in text.splitlines() if line.startswith("## "))
    for key in config.KEYS.values():
        assert f"{key.doc[:1].upper()}{key.doc[1:]}." in docs
        if key.env:
            assert f"Environment: {key.env}." in docs


def test_config_example_yaml_loads_when_uncommented(tmp_path: Path) -> None:
    values = config.parse(uncomment(EXAMPLE.read_text("utf-8")), EXAMPLE)
    assert sorted(values) == sorted(config.KEYS)
    assert values["from"] == "+15017122661"
    assert values["allowed_countries"] == ["US", "CA"]
    assert set(values["templates"]) == {"order", "shipment"}
    settings = config.load(write(tmp_path / "c.yaml", uncomment(EXAMPLE.read_text("utf-8"))), env={})
    assert settings.warnings == []


def test_rendered_values_are_written_out_and_the_rest_stay_commented() -> None:
    values = {
        "account_sid": SID,
        "auth_token": TOKEN,
        "from": "+15017122661",
        "default_region": "NO",
        "shop_name": "Joe's: #1 shop",
    }
    text = config.render(values)
    assert config.parse(text, "c") == values
    assert "# api_key:" in text
    assert config.parse(uncomment(text), "c")["account_sid"] == SID


@settings(max_examples=80)
@given(st.text(st.characters(exclude_categories=["Cs"]), max_size=40))
def test_any_shop_name_survives_the_round_trip(name: str) -> None:
    assert config.parse(config.render({"shop_name": name}), "c") == {"shop_name": name}


# --- writing ----------------------------------------------------------------------


@posix_only
def test_write_file_is_0600_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        path = tmp_path / "deep" / "dir" / "config.yaml"
        config.write_file(path, "auth_token: x\n")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text() == "auth_token: x\n"


@posix_only
def test_write_file_never_replaces_without_force_and_force_keeps_0600(tmp_path: Path) -> None:
    path = write(tmp_path / "c.yaml", "old: 1\n", 0o644)
    with pytest.raises(ConfigError, match="already exists: use force=True"):
        config.write_file(path, "new: 1\n")
    assert path.read_text() == "old: 1\n"
    config.write_file(path, "new: 1\n", force=True)
    assert path.read_text() == "new: 1\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.yaml"]


@posix_only
def test_write_file_does_not_follow_a_symlink(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    (tmp_path / "c.yaml").symlink_to(target)
    with pytest.raises(ConfigError, match="already exists"):
        config.write_file(tmp_path / "c.yaml", "x: 1\n")
    assert not target.exists()
