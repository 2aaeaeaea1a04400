"""A real PostgreSQL server for the tests of the PostgreSQL ledger.

``SMSPIPE_TEST_POSTGRES`` (the role ``smspipe``: not a superuser, may create
databases) and ``SMSPIPE_TEST_POSTGRES_ADMIN`` (a superuser, to terminate a
connection or make a read-only role) name a running server, as ``.ci/run``
sets them (``SMSPIPE_TEST_POSTGRES_DIR`` too, for a restart). Where they are
unset, the session starts a server of its own with ``.ci/postgres.sh`` when
PostgreSQL's binaries are installed, and stops it at the end; else the
PostgreSQL tests skip, saying why, unless ``SMSPIPE_REQUIRE_POSTGRES=1``
(``.ci/run`` sets it): then they fail, so CI never skips them silently.

Each test gets a database of its own (``database`` fixture), created by the
role ``smspipe``, which owns it as a shop's ledger role would.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / ".ci" / "postgres.sh"


@dataclass
class Postgres:
    """A running server: the test role's URL, the superuser's, and its directory if known."""

    url: str
    admin_url: str
    directory: Path | None = None
    databases: list[str] = field(default_factory=list)

    def database_url(self, name: str, *, user: str | None = None, base: str | None = None) -> str:
        parts = urlsplit(base or self.url)
        netloc = parts.netloc if user is None else f"{user}@{parts.hostname}:{parts.port}"
        return urlunsplit((parts.scheme, netloc, f"/{name}", "", ""))

    def new_database(self) -> str:
        """A fresh database owned by the test role; its URL."""
        import psycopg

        name = f"t_{uuid.uuid4().hex[:16]}"
        with psycopg.connect(self.url, autocommit=True) as db:
            db.execute(f"CREATE DATABASE {name}")
        self.databases.append(name)
        return self.database_url(name)

    def drop_databases(self) -> None:
        import psycopg

        with psycopg.connect(self.admin_url, autocommit=True) as db:
            for name in self.databases:
                with contextlib.suppress(psycopg.Error):
                    db.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        self.databases.clear()

    def admin(self, sql: str, *params: object, database: str | None = None) -> list[tuple[object, ...]]:
        """Run *sql* as the superuser (in *database*, else the server's own)."""
        import psycopg

        url = self.admin_url if database is None else self.database_url(database, base=self.admin_url)
        with psycopg.connect(url, autocommit=True) as db:
            cursor = db.execute(sql, params or None)
            return cursor.fetchall() if cursor.description else []

    def terminate(self, database: str) -> int:
        """End every connection smspipe holds to *database* (as a crash of the server's
        backend would); how many were ended."""
        rows = self.admin(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND application_name = 'smspipe'",
            database,
        )
        return sum(1 for (ended,) in rows if ended)

    def restart(self) -> None:
        assert self.directory is not None
        subprocess.run(["bash", str(SCRIPT), "restart", str(self.directory)], check=True, capture_output=True)


def database_name(url: str) -> str:
    return urlsplit(url).path.lstrip("/")


def _exports(text: str) -> dict[str, str]:
    found = {}
    for line in text.splitlines():
        if line.startswith("export "):
            name, _, value = line.removeprefix("export ").partition("=")
            found[name] = shlex.split(value)[0] if value else ""
    return found


def _skip_or_fail(reason: str) -> None:
    if os.environ.get("SMSPIPE_REQUIRE_POSTGRES") == "1":
        pytest.fail(f"PostgreSQL is required here (SMSPIPE_REQUIRE_POSTGRES=1): {reason}")
    pytest.skip(f"no PostgreSQL server for the PostgreSQL ledger tests: {reason}")


@contextlib.contextmanager
def postgres_server() -> Iterator[Postgres]:
    """The server named by the environment, else one started here for the session."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        _skip_or_fail("psycopg is not installed (pip install -e '.[test]')")
    url = os.environ.get("SMSPIPE_TEST_POSTGRES")
    if url:
        admin = os.environ.get("SMSPIPE_TEST_POSTGRES_ADMIN")
        if not admin:
            _skip_or_fail("SMSPIPE_TEST_POSTGRES is set but SMSPIPE_TEST_POSTGRES_ADMIN is not")
        assert admin is not None
        given = os.environ.get("SMSPIPE_TEST_POSTGRES_DIR")
        yield Postgres(url, admin, Path(given) if given else None)
        return
    if not (shutil.which("pg_ctl") or list(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))):
        _skip_or_fail("SMSPIPE_TEST_POSTGRES is unset and PostgreSQL's server binaries are not installed")
    directory = Path(tempfile.mkdtemp(prefix="smspipe-pg-"))
    directory.chmod(0o755)  # the server's own user must reach it
    started = subprocess.run(
        ["bash", str(SCRIPT), "start", str(directory)], capture_output=True, text=True, check=False
    )
    if started.returncode != 0:
        shutil.rmtree(directory, ignore_errors=True)
        _skip_or_fail(f".ci/postgres.sh could not start a server: {started.stderr.strip()[-500:]}")
    exports = _exports(started.stdout)
    try:
        yield Postgres(exports["SMSPIPE_TEST_POSTGRES"], exports["SMSPIPE_TEST_POSTGRES_ADMIN"], directory)
    finally:
        subprocess.run(["bash", str(SCRIPT), "stop", str(directory)], capture_output=True, check=False)
        shutil.rmtree(directory, ignore_errors=True)
