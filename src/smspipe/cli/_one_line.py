"""Usage errors (a bad flag, a missing argument) as one line on stderr, like every other error.

Click, as Typer runs it, draws a usage error as a box or a usage paragraph
over several lines, which a log line or `grep` cannot carry. The root group
runs its command in click's non-standalone mode and words what it raises.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from typer.core import TyperGroup


class OneLineErrors(TyperGroup):
    """The root group: a click usage error is ``smspipe: error: …: run '… -h' for help``, exit 2."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, False, windows_expand_args, **extra)
        from typer import Abort
        from typer._click.exceptions import ClickException

        try:
            code = super().main(args, prog_name, complete_var, False, windows_expand_args, **extra)
        except ClickException as exc:
            _usage_error(exc)
        except Abort:
            sys.stderr.write("smspipe: aborted\n")
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)


def _usage_error(exc: Any) -> NoReturn:
    from typer._click.exceptions import NoArgsIsHelpError

    if isinstance(exc, NoArgsIsHelpError):  # `smspipe` alone: the help, as before
        from typer import rich_utils

        rich_utils.rich_format_error(exc)
        sys.exit(exc.exit_code)
    from smspipe.errors import redact

    # click ends its sentences with a period; ours go on with the hint
    message = " ".join(exc.format_message().split()).rstrip(".")
    context = getattr(exc, "ctx", None)
    hint = f": run '{context.command_path} -h' for help" if context is not None else ""
    sys.stderr.write(redact(f"smspipe: error: {message}{hint}") + "\n")
    sys.exit(exc.exit_code)
