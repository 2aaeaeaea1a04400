"""Run the application on uvicorn: the only module that imports it.

uvicorn binds, parses HTTP/1.1 (keep-alive, pipelining, bounded header size),
answers 503 beyond ``max_connections``, and on SIGTERM or SIGINT stops
accepting, lets the requests in flight finish (each one's ledger closed when
its send ends), then returns.
"""

from __future__ import annotations

import logging
import socket
import sys
from collections.abc import Callable

from smspipe.errors import UsageError, redact
from smspipe.serve.app import App
from smspipe.serve.options import ServeOptions

INSTALL = "pip install 'smspipe[serve]'"


class _Redacting(logging.Filter):
    """Every log line passes through redact(): a token in an exception text is masked too."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage())
        record.args = None
        return True


def configure_logging(level: int = logging.INFO) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(_Redacting())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


def bind(options: ServeOptions) -> socket.socket:
    family = socket.AF_INET6 if ":" in options.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((options.host, options.port))
    except OSError as exc:
        sock.close()
        raise UsageError(
            f"cannot listen on {options.host}:{options.port}: {exc.strerror}",
            hint="choose another port (or stop what listens there)",
        ) from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def run(options: ServeOptions, announce: Callable[[str], object]) -> None:
    """Serve until SIGTERM or SIGINT; *announce* gets the URL once the port is bound."""
    try:
        import uvicorn
    except ImportError:
        raise UsageError(
            "smspipe serve needs uvicorn, which is not installed", hint=f"run: {INSTALL}"
        ) from None
    options.check()
    configure_logging()
    sock = bind(options)
    host, port = sock.getsockname()[:2]
    app = App(options)
    config = uvicorn.Config(
        app,
        log_config=None,
        access_log=False,
        lifespan="on",
        limit_concurrency=options.max_connections,
        timeout_graceful_shutdown=int(options.shutdown_timeout),
        server_header=False,
    )
    announce(f"http://{host if ':' not in host else f'[{host}]'}:{port}")
    uvicorn.Server(config).run(sockets=[sock])
    if app.startup_error is not None:
        raise app.startup_error
