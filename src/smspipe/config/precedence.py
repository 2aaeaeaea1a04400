"""Precedence, written once: argument (flag) > document ``parameters`` > environment > config file > default.

Settings, credentials and senders all ask the same stack of :class:`Layer`
objects. A single setting is the strongest layer's value
(:func:`first`); a group that belongs together (an account SID and its
token, a sender and its messaging service) comes whole from the strongest
layer that holds any part of it (:func:`first_holding`), never mixed from two.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from smspipe.config.keys import KEYS
from smspipe.spelling import given, setting

FLAG = "flag"
DOCUMENT = "document"
ENVIRONMENT = "environment"
FILE = "config file"
DEFAULT = "default"
#: strongest first
ORDER = (FLAG, DOCUMENT, ENVIRONMENT, FILE, DEFAULT)


class Layer:
    """One source of settings: the values it sets (and only those), and its name in messages."""

    __slots__ = ("kind", "label", "values")

    def __init__(self, kind: str, values: Mapping[str, Any], label: str) -> None:
        self.kind = kind
        self.values = values
        #: the layer as a whole: "arguments" (on the command line: "flags"), "document parameters",
        #: "environment", "config file (PATH)"
        self.label = label

    def __repr__(self) -> str:
        return f"Layer({self.kind!r}, {sorted(self.values)!r})"  # names only: values may be secrets

    def holds(self, name: str) -> bool:
        return name in self.values

    def get(self, name: str) -> Any:
        return self.values.get(name)

    def origin(self, name: str) -> str:
        """Where this layer's value of *name* comes from: "argument" (the CLI: "flag"),
        "environment (TWILIO_AUTH_TOKEN)"…"""
        if self.kind == FLAG:
            return given()
        if self.kind == ENVIRONMENT:
            return f"environment ({KEYS[name].env})"
        if self.kind == DOCUMENT:
            return "document parameters" if KEYS[name].parameter else "document"
        return self.label

    def spelling(self, name: str) -> str:
        """How a user writes *name* in this layer: auth_token (--auth-token), TWILIO_AUTH_TOKEN…"""
        if self.kind == FLAG:
            return setting(name)
        if self.kind == ENVIRONMENT:
            return KEYS[name].env or name
        if self.kind == DOCUMENT:
            return f"parameters.{KEYS[name].parameter or name}"
        return name


def flag_layer(flags: Mapping[str, Any]) -> Layer:
    values = {k: v for k, v in flags.items() if v is not None and k in KEYS}
    return Layer(FLAG, values, given(plural=True))


def document_layer(parameters: Mapping[str, Any] | None, sender: str | None = None) -> Layer:
    """A document's own settings: its ``parameters.twilio_…`` and its ``from``."""
    values: dict[str, Any] = {}
    if parameters:
        for key in KEYS.values():
            value = parameters.get(key.parameter) if key.parameter else None
            if isinstance(value, str) and value:
                values[key.name] = value
    if sender:
        values["from"] = sender
    return Layer(DOCUMENT, values, "document parameters")


def environment_layer(env: Mapping[str, str]) -> Layer:
    values = {k.name: env[k.env] for k in KEYS.values() if k.env and env.get(k.env)}
    return Layer(ENVIRONMENT, values, "environment")


def file_layer(file_values: Mapping[str, Any], path: Path | str) -> Layer:
    values = {k: v for k, v in file_values.items() if v is not None and k in KEYS}
    return Layer(FILE, values, f"config file ({path})")


def default_layer() -> Layer:
    return Layer(DEFAULT, {k.name: k.default for k in KEYS.values()}, "default")


def first(layers: Iterable[Layer], name: str) -> tuple[Any, Layer] | None:
    """The strongest layer's value of *name*, and that layer; None if no layer sets it."""
    for layer in layers:
        if layer.holds(name):
            return layer.get(name), layer
    return None


def first_holding(layers: Iterable[Layer], names: Iterable[str]) -> Layer | None:
    """The strongest layer that sets any of *names*: a group is taken whole from it."""
    wanted = tuple(names)
    for layer in layers:
        if any(layer.holds(name) for name in wanted):
            return layer
    return None
