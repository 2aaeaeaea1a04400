"""The one switch from smspipe's fast paths back to their reference implementations.

Five places take a faster route than the straightforward one, each in a
private module, each with a reference implementation it must agree with:

=========  ====================================  ==========================================
name       fast path                             reference
=========  ====================================  ==========================================
phone      ``smspipe._phone_fast``: phonenumbers'  ``phonenumbers.parse``, ``is_valid_number``,
           metadata compiled per region           ``region_code_for_number``, ``number_type``
schema     ``smspipe._schema_compile``: schemas   ``jsonschema.Draft202012Validator.is_valid``
           compiled to Python expressions
json       ``smspipe.cli._json_fast``: CPython's  ``json.JSONEncoder(...).encode``
           C encoder, built once
typer      ``smspipe.cli._lazy_group``: only the   a Typer app with every command registered
           subcommand that runs is built
render     ``smspipe._render.render_fast``: a      ``jinja2.Template.render``
           compiled template's root function
=========  ====================================  ==========================================

``SMSPIPE_REFERENCE=all`` (or a comma-separated list of names) makes smspipe
use the reference instead, read once at start. The differential tests
(``pytest -m differential``) compare each fast path with its reference, and
CONTRIBUTING.md says when a fast path may be added.
"""

from __future__ import annotations

import os

SWITCH = "SMSPIPE_REFERENCE"
FAST_PATHS = ("phone", "schema", "json", "typer", "render")


def use_reference(name: str) -> bool:
    """True when ``SMSPIPE_REFERENCE`` names *name* (or says ``all``)."""
    assert name in FAST_PATHS, name
    chosen = {part.strip().lower() for part in os.environ.get(SWITCH, "").split(",")}
    return name in chosen or "all" in chosen
