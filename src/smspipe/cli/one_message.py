"""`smspipe send --to PHONE --body TEXT`: one message without writing JSON.

The flags build one SMS document, which is then validated, ledgered and sent
like any other. Without ``--request-id`` it has none, so its key is the hash
of its own recipient, body and media (as for any document without one): the
same command run again is skipped, not sent twice.
"""

from __future__ import annotations

import io
import json
from typing import IO, Annotated

import typer

from smspipe.errors import UsageError

#: how the built document is named in messages (``<command line>:1: sms.phone: …``)
SOURCE = "<command line>"

To = Annotated[
    str | None,
    typer.Option(
        "--to",
        metavar="PHONE",
        help="Send one message to PHONE (with --body), instead of reading documents.",
        show_default=False,
    ),
]
Body = Annotated[
    str | None,
    typer.Option("--body", metavar="TEXT", help="The text of the --to message.", show_default=False),
]
MediaUrl = Annotated[
    list[str] | None,
    typer.Option(
        "--media-url",
        metavar="URL",
        help="A media URL for the --to message (MMS); give it up to 10 times.",
        show_default=False,
    ),
]
RequestId = Annotated[
    str | None,
    typer.Option(
        "--request-id",
        help="The --to message's key in the ledger (default: a hash of its recipient, body and media, "
        "so that running the same command again does not send it twice).",
        show_default=False,
    ),
]


class _Named(io.BytesIO):
    name = SOURCE


def document_from_flags(
    to: str | None,
    body: str | None,
    media_urls: list[str] | None,
    request_id: str | None,
    inputs: list[str] | None,
) -> IO[bytes] | None:
    """The one document --to and --body make (as a named input), or None when they are not given."""
    if to is None and body is None and not media_urls and request_id is None:
        return None
    if inputs:
        raise UsageError(
            "--to/--body and input files both given",
            hint="send one message with --to and --body, or the documents of the files, not both",
        )
    if to is None or body is None:
        missing = "--to" if to is None else "--body"
        raise UsageError(f"{missing} is missing", hint="one message needs both: --to PHONE --body TEXT")
    sms: dict[str, object] = {"phone": to, "message": body}
    if media_urls:
        sms["media_url"] = list(media_urls)
    document: dict[str, object] = {"sms": sms}
    if request_id is not None:
        document = {"request_id": request_id, **document}
    text = json.dumps(document, ensure_ascii=False) + "\n"
    return _Named(text.encode("utf-8", "surrogatepass"))
