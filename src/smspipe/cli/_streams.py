"""The last guard of the writers: a string no encoding can carry never crashes one.

The reader refuses documents holding a lone surrogate, and a render producing
one fails its object, so none should reach a writer. If one ever does,
stdout and stderr write it as the escape ``\\ud800`` (which in a JSON string
is that same character, refused again by the next reader) instead of raising
UnicodeEncodeError halfway through a batch. validate and translate call this;
app.main could, for every command.
"""

from __future__ import annotations

import contextlib
import sys


def never_fail_on_surrogates() -> None:
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            with contextlib.suppress(ValueError, OSError):  # a stream that cannot change now
                reconfigure(errors="backslashreplace")
