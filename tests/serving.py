"""`smspipe serve` as a real process on a free port, and an HTTP client for it (tests and bench/).

The server binds port 0 and announces the URL it got on stderr; a thread
keeps reading stderr (so the server never blocks on a full pipe) and keeps
every line for the tests to search.
"""

from __future__ import annotations

import http.client
import json
import signal
import subprocess
import sys
import threading
from typing import Any
from urllib.parse import urlsplit

ANNOUNCE = "smspipe: serving on "


class Served:
    """A running `smspipe serve`; stop() sends SIGTERM and waits."""

    def __init__(self, env: dict[str, str], *args: str) -> None:
        self.env = env
        self.process = subprocess.Popen(
            [sys.executable, "-m", "smspipe", "serve", "--port", "0", *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.lines: list[str] = []
        self._announced = threading.Event()
        self.url = ""
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        if not self._announced.wait(60):
            self.kill()
            raise RuntimeError("smspipe serve did not start:\n" + self.stderr)
        if not self.url:
            self.process.wait(30)
            raise RuntimeError(f"smspipe serve exited {self.process.returncode}:\n" + self.stderr)

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.append(line)
            if line.startswith(ANNOUNCE):
                self.url = line[len(ANNOUNCE) :].strip()
                self._announced.set()
        self._announced.set()

    @property
    def stderr(self) -> str:
        return "".join(self.lines)

    @property
    def stdout(self) -> str:
        assert self.process.stdout is not None
        return self.process.stdout.read() if self.process.poll() is not None else ""

    def stop(self, timeout: float = 60) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout)
        self._reader.join(10)
        return code

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(30)

    def call(
        self,
        path: str,
        body: Any = None,
        *,
        method: str | None = None,
        headers: dict[str, str] | None = None,
        raw: bytes | None = None,
    ) -> Answer:
        return call(self.url, path, body, method=method, headers=headers, raw=raw)


class Answer:
    def __init__(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.status = status
        self.body = body
        self.headers = headers

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")

    def json(self) -> Any:
        return json.loads(self.body)


def call(
    url: str,
    path: str,
    body: Any = None,
    *,
    method: str | None = None,
    headers: dict[str, str] | None = None,
    raw: bytes | None = None,
    timeout: float = 120,
) -> Answer:
    """One request on a connection of its own."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=timeout)
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    sent = {"Content-Type": "application/json", **(headers or {})}
    try:
        connection.request(method or ("POST" if data is not None else "GET"), path, body=data, headers=sent)
        response = connection.getresponse()
        return Answer(response.status, response.read(), {k.lower(): v for k, v in response.getheaders()})
    finally:
        connection.close()
