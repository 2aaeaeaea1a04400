"""What is PostgreSQL's own (issue 15): the faults of a shared server as the SQLite ledger's
faults are (exit 2 or 75, one line, nothing sent), the schema made once by smspipe and
usable by a role that is no superuser, psycopg imported only when needed, a connection
lost mid-batch."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

from conftest import Run, invoke, ndjson, run_process, sms_documents
from postgres_server import Postgres, database_name
from twilio_server import TwilioServer


def assert_refused(run: Run, server: TwilioServer, code: int, *causes: str) -> str:
    """One line on stderr, the exit code, nothing sent; the line."""
    assert run.exit_code == code, run.stderr
    [line] = [x for x in run.stderr.splitlines() if x.strip()]
    assert line.startswith("smspipe: error: ")
    assert any(cause in line for cause in causes), line
    assert "Traceback" not in run.stderr
    assert run.stdout == ""
    assert server.creates() == []
    return line


def seeded(url: str, server: TwilioServer, count: int = 5) -> list[dict[str, Any]]:
    documents = sms_documents(count)
    run = invoke("send", "--ledger", url, input=ndjson(documents))
    assert run.exit_code == 0, run.stderr
    server.reset_records()
    return documents


def with_user(url: str, user: str, password: str | None = None) -> str:
    parts = urlsplit(url)
    credentials = user if password is None else f"{user}:{password}"
    return urlunsplit((parts.scheme, f"{credentials}@{parts.hostname}:{parts.port}", parts.path, "", ""))


# --- the same faults, the same errors -------------------------------------------------------


def test_a_role_that_may_only_read_is_exit_2_before_anything_is_sent(
    send_env: dict[str, str], twilio_server: TwilioServer, postgres: Postgres, postgres_url: str
) -> None:
    documents = seeded(postgres_url, twilio_server)
    name = database_name(postgres_url)
    reader = f"reader_{name}"
    postgres.admin(f"CREATE ROLE {reader} LOGIN")
    postgres.admin(f"GRANT USAGE ON SCHEMA smspipe TO {reader}", database=name)
    postgres.admin(f"GRANT SELECT ON ALL TABLES IN SCHEMA smspipe TO {reader}", database=name)
    run = invoke(
        "send",
        "--ledger",
        with_user(postgres_url, reader),
        input=ndjson([*documents, *sms_documents(2, prefix="new")]),
    )
    line = assert_refused(run, twilio_server, 2, "cannot be written")
    assert "permission denied" in line and "grant" in line and "--ledger" in line


@pytest.mark.parametrize("table", ["deliveries", "messages", "runs"])
def test_a_dropped_table_is_a_damaged_ledger_exit_2(
    send_env: dict[str, str], twilio_server: TwilioServer, postgres: Postgres, postgres_url: str, table: str
) -> None:
    documents = seeded(postgres_url, twilio_server)
    postgres.admin(f"DROP TABLE smspipe.{table}", database=database_name(postgres_url))
    run = invoke("send", "--ledger", postgres_url, input=ndjson(documents))
    line = assert_refused(run, twilio_server, 2, f"table {table} is missing")
    assert "--ledger" in line
    dry = invoke("send", "--dry-run", "--ledger", postgres_url, input=ndjson(documents))
    assert_refused(dry, twilio_server, 2, f"table {table} is missing")


def test_a_schema_smspipe_that_is_not_a_ledger_is_refused_and_left_alone(
    send_env: dict[str, str], twilio_server: TwilioServer, postgres: Postgres, postgres_url: str
) -> None:
    name = database_name(postgres_url)
    postgres.admin("CREATE SCHEMA smspipe", database=name)
    postgres.admin("CREATE TABLE smspipe.orders (id integer PRIMARY KEY)", database=name)
    run = invoke("send", "--ledger", postgres_url, input=ndjson(sms_documents(1)))
    assert_refused(run, twilio_server, 2, "not a smspipe ledger")
    tables = postgres.admin(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'smspipe'", database=name
    )
    assert tables == [("orders",)]


def test_a_ledger_written_by_a_newer_smspipe_is_refused(
    send_env: dict[str, str], twilio_server: TwilioServer, postgres: Postgres, postgres_url: str
) -> None:
    documents = seeded(postgres_url, twilio_server)
    postgres.admin(
        "UPDATE smspipe.meta SET value = '99' WHERE name = 'schema'", database=database_name(postgres_url)
    )
    run = invoke("send", "--ledger", postgres_url, input=ndjson(documents))
    assert_refused(run, twilio_server, 2, "newer smspipe (schema 99)")


def test_a_server_that_refuses_connections_is_exit_75_before_anything_is_sent(
    send_env: dict[str, str], twilio_server: TwilioServer, postgres_url: str
) -> None:
    import socket

    with socket.socket() as probe:  # a port nothing listens on (bound, never listened)
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        parts = urlsplit(postgres_url)
        url = urlunsplit((parts.scheme, f"{parts.username}@127.0.0.1:{port}", parts.path, "", ""))
        run = invoke("send", "--ledger", url, input=ndjson(sms_documents(2)))
    line = assert_refused(run, twilio_server, 75, "cannot reach the ledger")
    assert "run again" in line


def test_an_unknown_database_or_role_is_exit_2_and_a_password_is_never_shown(
    send_env: dict[str, str], twilio_server: TwilioServer, postgres_url: str
) -> None:
    secret = "pg-s3cret-passw0rd"
    url = with_user(postgres_url, "nobody_here", secret)
    run = run_process("send", "--ledger", url, env=send_env, input=ndjson(sms_documents(1)))
    line = assert_refused(run, twilio_server, 2, "cannot open the ledger")
    assert "nobody_here" in line and secret not in run.stderr and secret not in run.stdout


def test_without_psycopg_a_postgresql_ledger_is_one_line_naming_the_install(
    send_env: dict[str, str], twilio_server: TwilioServer, postgres_url: str
) -> None:
    code = (
        "import sys; sys.modules['psycopg'] = None\n"  # as where it is not installed
        "from smspipe.cli.app import main; sys.argv = ['smspipe', *sys.argv[1:]]; main()"
    )
    completed = subprocess.run(
        [sys.executable, "-c", code, "send", "--ledger", postgres_url],
        input=ndjson(sms_documents(1)),
        capture_output=True,
        text=True,
        env=send_env,
        timeout=60,
        check=False,
    )
    run = Run(completed.returncode, completed.stdout, completed.stderr)
    line = assert_refused(run, twilio_server, 2, "psycopg is not installed")
    assert "pip install 'smspipe[postgres]'" in line


def test_an_sqlite_ledger_never_loads_psycopg(send_env: dict[str, str], twilio_server: TwilioServer) -> None:
    code = textwrap.dedent("""
        import sys
        from smspipe.cli.app import main
        sys.argv = ['smspipe', 'send']
        try:
            main()
        except SystemExit as exit:
            assert not exit.code, exit.code
        print('psycopg' in sys.modules, file=sys.stderr)
    """)
    completed = subprocess.run(
        [sys.executable, "-c", code],
        input=ndjson(sms_documents(2)),
        capture_output=True,
        text=True,
        env=send_env,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stderr.strip().endswith("False")
    assert len(twilio_server.messages) == 2


# --- made by smspipe, used by a role that is no superuser ------------------------------------


def test_a_role_that_may_not_create_sends_once_the_owner_has_migrated(
    send_env: dict[str, str], twilio_server: TwilioServer, postgres: Postgres, postgres_url: str
) -> None:
    name = database_name(postgres_url)
    sender = f"sender_{name}"
    postgres.admin(f"CREATE ROLE {sender} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE")
    postgres.admin(f"REVOKE CREATE ON DATABASE {name} FROM PUBLIC")
    postgres.admin("REVOKE CREATE ON SCHEMA public FROM PUBLIC", database=name)
    url = with_user(postgres_url, sender)

    before = invoke("send", "--ledger", url, input=ndjson(sms_documents(1)))
    line = assert_refused(before, twilio_server, 2, "cannot create the ledger's tables")
    assert "smspipe ledger migrate" in line

    migrated = invoke("ledger", "migrate", "--ledger", postgres_url)  # the owner (no superuser)
    assert migrated.exit_code == 0, migrated.stderr
    postgres.admin(f"GRANT USAGE ON SCHEMA smspipe TO {sender}", database=name)
    postgres.admin(
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA smspipe TO {sender}", database=name
    )
    documents = sms_documents(4)
    run = invoke("send", "--ledger", url, input=ndjson(documents))
    assert run.exit_code == 0, run.stderr
    assert run.statuses() == ["sent"] * 4
    again = invoke("send", "--ledger", url, input=ndjson(documents))
    assert again.statuses() == ["skipped"] * 4
    assert len(twilio_server.messages) == 4


def test_hosts_opening_a_new_ledger_at_once_make_its_schema_once(
    postgres: Postgres, postgres_url: str
) -> None:
    script = textwrap.dedent(f"""
        from smspipe.ledger import open_ledger
        ledger = open_ledger({postgres_url!r})
        ledger.start_run()
        print(ledger.counts().messages)
        ledger.close()
    """)
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(4)
    ]
    outcomes = [process.communicate(timeout=120) for process in processes]
    assert [process.returncode for process in processes] == [0] * 4, outcomes
    assert [out.strip() for out, _ in outcomes] == ["0"] * 4
    rows = postgres.admin(
        "SELECT value FROM smspipe.meta WHERE name = 'schema'", database=database_name(postgres_url)
    )
    from smspipe.ledger.postgres import SCHEMA_VERSION

    assert rows == [(str(SCHEMA_VERSION),)]


# --- a connection lost mid-batch ---------------------------------------------------------------


def wait_until(condition: Any, timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return False


@pytest.mark.slow
@pytest.mark.parametrize("how", ["terminate", "restart"])
def test_a_connection_lost_mid_batch_never_sends_twice_nor_prints_a_traceback(
    spawn: Any,
    send_env: dict[str, str],
    twilio_server: TwilioServer,
    postgres: Postgres,
    postgres_url: str,
    how: str,
) -> None:
    if how == "restart" and postgres.directory is None:
        pytest.skip(
            "the server's directory is unknown (SMSPIPE_TEST_POSTGRES_DIR): it cannot be restarted here"
        )
    documents = sms_documents(60)
    twilio_server.latency = 0.3
    env = {**send_env, "SMSPIPE_LEDGER": postgres_url, "SMSPIPE_RECONCILE_GRACE": "0"}
    process = spawn(env, documents, "--concurrency", "6")
    assert wait_until(lambda: len(twilio_server.creates()) >= 10)
    if how == "terminate":
        assert postgres.terminate(database_name(postgres_url)) >= 1
    else:
        postgres.restart()
    stdout, stderr = process.communicate(timeout=120)
    assert "Traceback" not in stderr and "internal error" not in stderr, stderr
    assert process.returncode in (0, 75), stderr
    records = [json.loads(line) for line in stdout.splitlines()]
    held = {message["sid"]: message for message in twilio_server.messages}
    for record in records:  # what it reports sent was created, to that recipient
        if record["status"] == "sent":
            assert record["sid"] in held and held[record["sid"]]["to"] == record["to"]
    if process.returncode == 75:
        assert "ledger" in stderr

    twilio_server.latency = 0.0
    for _ in range(3):  # a later run settles what the lost connection left open
        rerun = run_process("send", env=env, input=ndjson(documents))
        assert "Traceback" not in rerun.stderr
        if rerun.exit_code == 0:
            break
    assert rerun.exit_code == 0, rerun.stderr
    assert twilio_server.duplicates() == {}
    assert sorted(m["body"] for m in twilio_server.messages) == sorted(d["sms"]["message"] for d in documents)


def test_schema_1_gains_delivery_status_and_the_suppression_list_in_place(
    send_env: dict[str, str], twilio_server: TwilioServer, postgres: Postgres, postgres_url: str
) -> None:
    """Issue 14 on PostgreSQL: a schema 1 ledger (issue 15's) is read as it is by a look
    (every message pending), and migrated in place by the first run that writes."""
    from twilio_server import Lifecycle

    documents = seeded(postgres_url, twilio_server, count=2)
    name = database_name(postgres_url)
    columns = "status, status_rank, error_code, error_message, price, price_unit, date_sent, date_updated"
    drops = ", ".join(f"DROP COLUMN {column.strip()}" for column in (*columns.split(","), "checked_at"))
    postgres.admin(f"ALTER TABLE smspipe.messages {drops}", database=name)
    postgres.admin("DROP TABLE smspipe.optouts", database=name)
    postgres.admin("UPDATE smspipe.meta SET value = '1' WHERE name = 'schema'", database=name)
    assert postgres.admin("SELECT value FROM smspipe.meta WHERE name = 'schema'", database=name) == [("1",)]

    look = invoke("status", "--ledger", postgres_url, "--status", "pending")
    assert look.exit_code == 75 and [r["status"] for r in look.records] == [None, None]
    assert postgres.admin("SELECT value FROM smspipe.meta WHERE name = 'schema'", database=name) == [("1",)]

    twilio_server.lifecycle = Lifecycle(step_seconds=0)
    assert invoke("optout", "add", "--ledger", postgres_url, "+14155559999").exit_code == 0
    refreshed = invoke("status", "--ledger", postgres_url, "--refresh")
    assert refreshed.exit_code == 0, refreshed.stderr
    assert [r["status"] for r in refreshed.records] == ["delivered", "delivered"]
    assert postgres.admin("SELECT value FROM smspipe.meta WHERE name = 'schema'", database=name) == [("2",)]
    again = invoke("send", "--ledger", postgres_url, input=ndjson(documents))
    assert again.statuses() == ["skipped", "skipped"]
