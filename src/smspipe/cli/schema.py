"""`smspipe schema NAME`: print a JSON Schema smspipe checks documents against."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer

from smspipe.cli.app import guarded
from smspipe.errors import UsageError


def available() -> list[str]:
    from smspipe.sms import SCHEMA_DIR

    names = [p.name.removesuffix(".json") for p in SCHEMA_DIR.glob("*.json")]
    return sorted([*names, "config"])


def schema(
    name: Annotated[
        str | None,
        typer.Argument(
            help="sms, request, result, order, customer, shipment or config; none: list them",
            metavar="[NAME]",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Print the JSON Schema of a document kind (sms, request, order, customer, shipment,
    config) or of send's result records (result); with no name, list the names."""
    with guarded():
        if name is None:
            sys.stdout.write("".join(f"{known}\n" for known in available()))
            return
        if name == "config":
            from smspipe.config import config_schema

            document = config_schema()
        elif name in available():
            from smspipe.sms import load_schema

            document = load_schema(name)
        else:
            raise UsageError(f"no schema named {name!r}", hint=f"choose one of: {', '.join(available())}")
        sys.stdout.write(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
