"""Delivery: from validated documents to messages Twilio created, each exactly once.

- :mod:`~smspipe.delivery.planner`: documents -> jobs (validated, sender,
  credentials and key resolved);
- :mod:`~smspipe.delivery.states`: the per-key state machine and the pure
  decision of what to do with a document;
- :mod:`~smspipe.delivery.policy`: the pure retry policy;
- :mod:`~smspipe.delivery.reconcile`: looking messages up in Twilio's log;
- :mod:`~smspipe.delivery.walk`: one message's walk through the states;
- :mod:`~smspipe.delivery.engine`: the scheduler (asyncio);
- :mod:`~smspipe.delivery.results`: results, totals and the exit code;
- :mod:`~smspipe.delivery.run`: the life cycle of a ``send`` (:func:`send`,
  :func:`send_async`).

Nothing here knows Typer or rich; twilio is imported only when something is sent.
"""

from __future__ import annotations

from smspipe.delivery.options import Options, Progress
from smspipe.delivery.planner import Job, Planner, Sender
from smspipe.delivery.results import (
    NO_SENDER,
    Earlier,
    ErrorInfo,
    Result,
    Status,
    Totals,
    exit_code,
    no_sender_hint,
)
from smspipe.delivery.run import SendRequest, options_from, send, send_async

__all__ = [
    "NO_SENDER",
    "Earlier",
    "ErrorInfo",
    "Job",
    "Options",
    "Planner",
    "Progress",
    "Result",
    "SendRequest",
    "Sender",
    "Status",
    "Totals",
    "exit_code",
    "no_sender_hint",
    "options_from",
    "send",
    "send_async",
]
