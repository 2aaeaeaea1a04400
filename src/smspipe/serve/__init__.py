"""``smspipe serve``: the hub's ``POST /send_sms`` endpoint and Twilio's callbacks over HTTP.

A plain ASGI application (:mod:`smspipe.serve.app`) run by uvicorn
(:func:`smspipe.serve.server.run`). The HTTP layer parses requests and renders
answers; every product rule is a :mod:`smspipe.api` call. uvicorn is an
optional extra (``pip install 'smspipe[serve]'``), imported by nothing but
:mod:`smspipe.serve.server`.
"""

from __future__ import annotations

from smspipe.serve.options import ServeOptions

__all__ = ["ServeOptions"]
