"""smspipe as a library: what a Python caller gets from `import smspipe`, checked as a
caller would (return values, exceptions, what the loopback Twilio server received)."""

from __future__ import annotations

import asyncio
import doctest
import inspect
import io
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import smspipe
from conftest import ROOT, SENDER, invoke, ndjson, sms_documents
from twilio_server import ACCOUNT_SID, AUTH_TOKEN, TwilioServer

VALID = {"phone": "+14155552671", "message": "Order R1 shipped"}


def documents(count: int, prefix: str = "api") -> list[dict[str, Any]]:
    return sms_documents(count, prefix=prefix)


# --- the package ----------------------------------------------------------------------------


def test_every_public_name_resolves_and_says_what_it_is() -> None:
    for name in smspipe.__all__:
        value = getattr(smspipe, name)
        if name != "__version__" and not name.startswith(("Input", "SettingValues")):
            assert inspect.getdoc(value), name
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        _ = smspipe.nothing


def test_every_public_function_has_an_example() -> None:
    functions = [
        getattr(smspipe, name) for name in smspipe.__all__ if inspect.isfunction(getattr(smspipe, name))
    ]
    assert functions
    for function in functions:
        assert ">>>" in (function.__doc__ or ""), function.__name__


def test_the_examples_in_the_docstrings_run(bare_env: dict[str, str]) -> None:
    import smspipe.api

    failures, tried = doctest.testmod(smspipe.api, optionflags=doctest.ELLIPSIS)
    assert tried > 5
    assert failures == 0


def test_the_package_is_marked_typed() -> None:
    assert (Path(smspipe.__file__).parent / "py.typed").exists()


def python(code: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=60,
        check=False,
    )


HEAVY = ("typer", "rich", "twilio", "aiohttp", "requests", "jinja2", "asyncio", "jsonschema", "yaml")


def loaded_after(code: str, env: dict[str, str]) -> set[str]:
    """The top-level modules (and smspipe's) loaded by *code*, in a fresh process."""
    proc = python(f"{code}\nimport sys\nprint(' '.join(sorted(sys.modules)))", env)
    assert proc.returncode == 0, proc.stderr
    modules = proc.stdout.strip().splitlines()[-1].split()
    return set(modules) | {name.split(".")[0] for name in modules}


def test_import_smspipe_loads_nothing_but_itself(bare_env: dict[str, str]) -> None:
    loaded = loaded_after("import smspipe", bare_env)
    assert {name for name in loaded if name.startswith("smspipe")} == {"smspipe"}
    assert not loaded & set(HEAVY)


def test_validate_from_python_loads_no_network_template_or_terminal_library(bare_env: dict[str, str]) -> None:
    code = (
        "import smspipe\n"
        f"assert [v.valid for v in smspipe.validate([{VALID!r}], env={{}})] == [True]\n"
        f"document = {{**{VALID!r}, 'from': {SENDER!r}}}\n"
        "totals = smspipe.send([document], dry_run=True, ledger=False, env={})\n"
        "assert smspipe.exit_code(totals) == 0"
    )
    loaded = loaded_after(code, bare_env)
    assert not loaded & {"typer", "rich", "twilio", "aiohttp", "requests", "jinja2", "asyncio", "click"}


def test_sending_through_the_api_in_a_fresh_process_loads_neither_typer_nor_rich(
    send_env: dict[str, str], twilio_server: TwilioServer
) -> None:
    """Done-when of issue 12: the library sends without the CLI's libraries."""
    code = (
        "import sys, smspipe\n"
        f"docs = {documents(3)!r}\n"
        "results = []\n"
        "totals = smspipe.send(docs, on_result=results.append)\n"
        "assert smspipe.exit_code(totals) == 0, totals.line()\n"
        "assert sorted(r.status.value for r in results) == ['sent'] * 3\n"
        "print(' '.join(m for m in ('typer', 'rich', 'click') if m in sys.modules) or 'none')"
    )
    proc = python(code, send_env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "none"
    assert sorted(twilio_server.created_bodies()) == sorted(d["sms"]["message"] for d in documents(3))


# --- README -----------------------------------------------------------------------------


def readme_example() -> str:
    text = (ROOT / "README.md").read_text()
    section = text.split("\n## Use from Python\n", 1)[1].split("\n## ", 1)[0]
    match = re.search(r"```python\n(.+?)\n```", section, re.DOTALL)
    assert match, "no python example under 'Use from Python'"
    return match.group(1)


def test_the_readme_example_runs_against_the_loopback_server(
    bare_env: dict[str, str], twilio_server: TwilioServer
) -> None:
    env = {
        **bare_env,
        "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "SMSPIPE_API_URL": twilio_server.url,
    }
    proc = python(readme_example(), env)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert sorted(line.split()[:2] for line in lines[:2]) == [
        ["sent", "+14155552671"],
        ["sent", "+14155552672"],
    ]
    assert lines[-1] == "2 documents: 2 sent"
    assert sorted(twilio_server.created_bodies()) == ["Order R1001 has shipped!", "Order R1002 has shipped!"]
    # Run again: the ledger remembers; nothing is sent twice.
    again = python(readme_example(), env)
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines()[-1] == "2 documents: 2 skipped"
    assert len(twilio_server.creates()) == 2


# --- inputs ---------------------------------------------------------------------------------


def test_inputs_may_be_python_objects_paths_and_file_objects(
    tmp_path: Path, bare_env: dict[str, str]
) -> None:
    path = tmp_path / "batch.ndjson"
    path.write_text(ndjson([VALID, {"phone": "+14155552672", "message": "second"}]))

    def generated() -> Iterator[dict[str, Any]]:
        yield VALID
        yield {"sms": [VALID, {"phone": "nope", "message": "x"}]}

    verdicts = list(
        smspipe.validate(
            [
                VALID,
                str(path),
                io.StringIO(json.dumps(VALID)),
                io.BytesIO(json.dumps([VALID]).encode()),
                [VALID, 7],
            ],
            env={},
        )
    )
    assert [v.where for v in verdicts] == [
        "<python>:1",
        f"{path}:1",
        f"{path}:2",
        "<stream>:1",
        "<stream>:1[0]",
        "<python>:2[0]",
        "<python>:2[1]",
    ]
    assert [v.valid for v in verdicts] == [True, True, True, True, True, True, False]
    assert "expected a JSON object, got a number" in str(verdicts[-1].errors[0])
    from_generator = smspipe.validate(generated(), env={})
    assert [v.valid for v in from_generator] == [True, True, False]
    assert (from_generator.totals.valid, from_generator.totals.invalid) == (2, 1)


def test_a_python_object_is_read_as_its_json_text_under_every_rule_of_the_reader() -> None:
    odd = [
        {"phone": "+14155552671", "message": float("nan")},  # not JSON
        {"phone": "+14155552671", "message": "\ud800"},  # a lone surrogate
        {"phone": "+14155552671", "message": object()},  # not JSON at all
        42,
    ]
    verdicts = list(smspipe.validate(odd, env={}))
    assert [v.valid for v in verdicts] == [False, False, False, False]
    assert [v.where for v in verdicts] == ["<python>:1", "<python>:2", "<python>:3", "<python>:4"]
    assert "not a JSON value" in str(verdicts[0].errors[0])
    assert "expected a JSON object" in str(verdicts[3].errors[0])


def test_a_missing_path_fails_before_any_work(bare_env: dict[str, str], tmp_path: Path) -> None:
    with pytest.raises(smspipe.InputError) as caught:
        smspipe.validate([VALID, str(tmp_path / "missing.ndjson")], env={})
    assert caught.value.exit_code == 2
    assert "no such file" in str(caught.value)


# --- settings and wording ----------------------------------------------------------------


def test_settings_are_keyword_arguments_over_the_environment_and_the_config_file(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("max_segments: 5\ndefault_region: GB\n")
    long = {"phone": "+14155552671", "message": "x" * 400}  # 3 segments
    assert [v.valid for v in smspipe.validate(long, config=config, env={})] == [True]
    [verdict] = smspipe.validate(long, config=config, env={}, max_segments=2)
    assert not verdict.valid
    message = str(verdict.errors[0])
    assert "max_segments" in message and "--max-segments" not in message
    [national] = smspipe.validate({"phone": "07400 123456", "message": "hi"}, config=config, env={})
    assert national.valid and national.sms is not None and national.sms.to == "+447400123456"


def test_errors_name_settings_as_the_api_takes_them_and_flags_on_the_command_line(
    bare_env: dict[str, str],
) -> None:
    with pytest.raises(smspipe.CredentialsError) as from_python:
        smspipe.verify_account(auth_token="a-token-without-its-sid", env={})
    text = str(from_python.value)
    assert "half a credential pair in the arguments: auth_token without account_sid" in text
    assert "--" not in text and "a-token-without-its-sid" not in text
    run = invoke("config", "check", "--auth-token", "a-token-without-its-sid")
    assert run.exit_code == 2
    assert "half a credential pair in the flags: --auth-token without --account-sid" in run.stderr
    assert "a-token-without-its-sid" not in run.everything


def test_an_ill_formed_setting_is_refused_naming_it(bare_env: dict[str, str]) -> None:
    with pytest.raises(smspipe.ConfigError) as caught:
        smspipe.send([VALID], dry_run=True, concurrency=500, env={})
    assert caught.value.exit_code == 2
    assert "concurrency: must be from 1 to 100, got 500 (given as an argument)" in str(caught.value)


# --- send -------------------------------------------------------------------------------------


def test_send_delivers_once_and_a_rerun_skips(send_env: dict[str, str], twilio_server: TwilioServer) -> None:
    batch = documents(5)
    first: list[smspipe.Result] = []
    totals = smspipe.send(batch, concurrency=3, on_result=first.append)
    assert smspipe.exit_code(totals) == smspipe.ExitCode.OK
    assert totals.counts[smspipe.Status.SENT] == 5 and totals.line() == "5 documents: 5 sent"
    assert sorted(r.sid or "" for r in first) == sorted(m["sid"] for m in twilio_server.messages)
    assert {r.record()["status"] for r in first} == {"sent"}
    again: list[smspipe.Result] = []
    totals = smspipe.send(batch, on_result=again.append)
    assert [r.status for r in again] == [smspipe.Status.SKIPPED] * 5
    assert len(twilio_server.creates()) == 5


def test_send_reports_a_conflict_and_force_sends_it(
    send_env: dict[str, str], twilio_server: TwilioServer
) -> None:
    smspipe.send({"request_id": "k1", "sms": VALID})
    other = {"request_id": "k1", "sms": {"phone": "+14155552679", "message": "Order R1 shipped"}}
    results: list[smspipe.Result] = []
    totals = smspipe.send(other, on_result=results.append)
    [conflict] = results
    assert conflict.status == smspipe.Status.CONFLICT and smspipe.exit_code(totals) == 1
    assert "force=True" in (conflict.note or "") and "--force" not in conflict.summary
    totals = smspipe.send(other, force=True)
    assert totals.counts[smspipe.Status.SENT] == 1
    assert [c.field("To") for c in twilio_server.creates()] == ["+14155552671", "+14155552679"]


def test_a_dry_run_needs_no_credentials_and_sends_nothing(bare_env: dict[str, str]) -> None:
    results: list[smspipe.Result] = []
    totals = smspipe.send(documents(2), dry_run=True, sender=SENDER, on_result=results.append)
    assert [r.status for r in results] == [smspipe.Status.DRY_RUN] * 2
    assert results[0].record()["from"] == SENDER and smspipe.exit_code(totals) == 0


def test_refused_credentials_stop_the_batch_with_exit_2(
    send_env: dict[str, str], twilio_server: TwilioServer
) -> None:
    totals = smspipe.send(
        documents(3), ledger=False, auth_token="not-the-token-at-all", account_sid=ACCOUNT_SID
    )
    assert smspipe.exit_code(totals) == smspipe.ExitCode.USAGE
    assert totals.fatal_message is not None and "refused the credentials" in totals.fatal_message
    assert "not-the-token-at-all" not in totals.fatal_message


def test_send_inside_a_running_loop_says_to_await_send_async(bare_env: dict[str, str]) -> None:
    async def inside() -> None:
        smspipe.send([VALID], dry_run=True, env={})

    with pytest.raises(smspipe.UsageError) as caught:
        asyncio.run(inside())
    assert "smspipe.send_async" in str(caught.value)


def test_send_async_delivers_in_the_callers_loop_and_leaves_its_signals_alone(
    send_env: dict[str, str], twilio_server: TwilioServer
) -> None:
    import signal

    async def main() -> tuple[smspipe.SendTotals, list[smspipe.Result], bool]:
        loop = asyncio.get_running_loop()
        interrupted = asyncio.Event()
        loop.add_signal_handler(signal.SIGINT, interrupted.set)
        results: list[smspipe.Result] = []
        ticks = 0

        async def ticking() -> None:  # the loop stays free while smspipe works
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.01)

        ticker = asyncio.create_task(ticking())
        totals = await smspipe.send_async(documents(4), on_result=results.append)
        ticker.cancel()
        still_ours = loop.remove_signal_handler(signal.SIGINT)
        return totals, results, still_ours and ticks > 0

    totals, results, loop_was_free = asyncio.run(main())
    assert smspipe.exit_code(totals) == 0 and len(results) == 4
    assert len(twilio_server.creates()) == 4
    assert loop_was_free


# --- verify an account ----------------------------------------------------------------------


def test_verify_account_returns_the_account(send_env: dict[str, str], twilio_server: TwilioServer) -> None:
    account = smspipe.verify_account()
    assert (account.sid, account.active, account.source) == (ACCOUNT_SID, True, "environment")
    assert AUTH_TOKEN not in repr(account) and smspipe.exit_code(account) == 0
    account = asyncio.run(smspipe.verify_account_async())
    assert account.sid == ACCOUNT_SID


def test_verify_account_refused_is_an_authentication_error(send_env: dict[str, str]) -> None:
    with pytest.raises(smspipe.AuthenticationError) as caught:
        smspipe.verify_account(account_sid=ACCOUNT_SID, auth_token="not-the-token-at-all")
    assert caught.value.exit_code == 2 and "not-the-token-at-all" not in str(caught.value)


def test_the_exit_code_is_a_function_of_the_totals() -> None:
    assert smspipe.exit_code(smspipe.ValidationTotals(valid=2)) == 0
    assert smspipe.exit_code(smspipe.ValidationTotals(valid=2, invalid=1)) == 1
    totals = smspipe.SendTotals()
    assert smspipe.exit_code(totals) == 0
    totals.temporary = 1
    assert smspipe.exit_code(totals) == 75
    totals.fatal("refused")
    assert smspipe.exit_code(totals) == 2
