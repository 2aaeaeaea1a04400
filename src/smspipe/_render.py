"""Rendering a compiled Jinja2 template: a fast path, and the reference.

:func:`render_fast` does what ``Template.render`` does less its two costs that
buy us nothing: the copy of the globals merged into every render's context
(ours are merged once per template, see ``templates.Compiled``) and the
traceback rewriting of ``Environment.handle_exception`` (the exception is the
same; we keep only its message). It calls Jinja2 internals
(``root_render_func``, ``context_class``, ``Template.blocks``), stable
through the 3.1 series; pyproject pins ``jinja2>=3.1,<3.2`` so that a new
release is a deliberate bump, checked by tests/test_render_paths.py, which
compares both paths (output and errors) over generated templates.

``SMSPIPE_REFERENCE=render`` (or ``all``; :mod:`smspipe._fastpaths`) renders
through ``Template.render`` instead: the way back if a Jinja2 release breaks
the fast path before the pin is moved.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from jinja2 import Template

from smspipe._fastpaths import use_reference

Render = Callable[[Template, dict[str, Any]], str]


def render_fast(template: Template, context: dict[str, Any]) -> str:
    """*template* rendered with *context* (already holding the template's globals)."""
    environment = template.environment
    return "".join(
        template.root_render_func(
            environment.context_class(
                environment, context, template.name, template.blocks, globals=template.globals
            )
        )
    )


def render_reference(template: Template, context: dict[str, Any]) -> str:
    """The same through Jinja2's public API."""
    return template.render(context)


def chosen() -> Render:
    """The render smspipe uses: the fast path unless SMSPIPE_REFERENCE names it."""
    if use_reference("render"):
        return render_reference
    return render_fast
