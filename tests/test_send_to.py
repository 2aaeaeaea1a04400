"""`smspipe send --to PHONE --body TEXT` (issue 13, item 6): one message without writing
JSON, validated and ledgered like any document, over real HTTP to the loopback server."""

from __future__ import annotations

import os

from conftest import SENDER, invoke, run_process
from twilio_server import ACCOUNT_SID, AUTH_TOKEN, TwilioServer

BODY = "Your order R1001 has shipped"


def test_one_message_is_sent_once_and_a_rerun_is_skipped(
    send_env: dict[str, str], twilio_server: TwilioServer
) -> None:
    first = invoke("send", "--to", "(415) 555-2671", "--body", BODY)
    assert first.exit_code == 0, first.stderr
    assert first.statuses() == ["sent"]
    [create] = twilio_server.creates()
    assert (create.field("To"), create.field("Body"), create.field("From")) == ("+14155552671", BODY, SENDER)

    # the same message again, the number written another way: the same key, not sent twice
    again = invoke("send", "--to", "+14155552671", "--body", BODY)
    assert again.exit_code == 0, again.stderr
    assert again.statuses() == ["skipped"]
    assert again.records[0]["request_id"] == first.records[0]["request_id"]
    assert first.records[0]["request_id"].startswith("sha256:")
    assert len(twilio_server.creates()) == 1


def test_media_urls_and_request_id_are_the_documents(
    send_env: dict[str, str], twilio_server: TwilioServer
) -> None:
    run = invoke(
        "send",
        "--to", "+14155552671",
        "--body", BODY,
        "--media-url", "https://example.com/a.jpg",
        "--media-url", "https://example.com/b.jpg",
        "--request-id", "order:R1001:shipped",
    )  # fmt: skip
    assert run.exit_code == 0, run.stderr
    assert run.records[0]["request_id"] == "order:R1001:shipped"
    [create] = twilio_server.creates()
    assert create.form.get("MediaUrl") == ["https://example.com/a.jpg", "https://example.com/b.jpg"]


def test_an_invalid_recipient_is_invalid_named_on_the_command_line(
    send_env: dict[str, str], twilio_server: TwilioServer
) -> None:
    run = invoke("send", "--to", "555-555-5555", "--body", BODY)
    assert run.exit_code == 1
    assert run.statuses() == ["invalid"]
    assert "<command line>:1: sms.phone: '555-555-5555' is not a valid phone number" in run.stderr
    assert twilio_server.creates() == []


def test_with_input_paths_it_is_a_usage_error(send_env: dict[str, str], twilio_server: TwilioServer) -> None:
    run = invoke("send", "--to", "+14155552671", "--body", BODY, "samples/sms.json")
    assert run.exit_code == 2
    assert run.stderr.startswith("smspipe: error: --to/--body and input files both given")
    assert twilio_server.creates() == []


def test_half_of_it_is_a_usage_error(send_env: dict[str, str]) -> None:
    for args, missing in ((["--body", BODY], "--to"), (["--to", "+14155552671"], "--body")):
        run = invoke("send", *args)
        assert run.exit_code == 2
        assert run.stderr.startswith(f"smspipe: error: {missing} is missing"), run.stderr


def test_stdin_is_free_for_the_token(bare_env: dict[str, str], twilio_server: TwilioServer) -> None:
    """With --to, stdin holds no documents: `--auth-token -` may read it."""
    env = {**os.environ, "SMSPIPE_API_URL": twilio_server.url}
    run = run_process(
        "send", "--to", "+14155552671", "--body", BODY, "--from", SENDER,
        "--account-sid", ACCOUNT_SID, "--auth-token", "-",
        env=env, input=AUTH_TOKEN + "\n",
    )  # fmt: skip
    assert run.exit_code == 0, run.stderr
    assert len(twilio_server.creates()) == 1
    assert AUTH_TOKEN not in run.everything
