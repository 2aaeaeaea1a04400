"""output's fast path: CPython's C JSON encoder, built once.

``json.JSONEncoder(...).encode`` builds a C encoder (and a Python closure it
does not even use) on every call; for one NDJSON record that is a third of the
cost. Here the encoder is built once, through ``json.encoder.c_make_encoder``,
which is private to CPython. So it is used only on the CPython versions it is
tested on (the range below), only for dicts, and
tests/test_output.py compares its bytes with the public encoder's
(``pytest -m differential``); ``SMSPIPE_REFERENCE=json`` turns it off
(:mod:`smspipe._fastpaths`). bench/bench_json.py measures it against the
public encoder and orjson (bench/RESULTS.md says why this one).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

#: CPython versions whose c_make_encoder takes the arguments below (tested)
CPYTHON = ((3, 11), (3, 14))

ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))

# The circular-reference markers the C encoder keeps: emptied by the encoder on
# success, and by us on failure.
_markers: dict[int, Any] = {}


def _build() -> Callable[[Any, int], Any] | None:
    make: Any = getattr(json.encoder, "c_make_encoder", None)
    low, high = CPYTHON
    if make is None or sys.implementation.name != "cpython" or not low <= sys.version_info[:2] <= high:
        return None
    built: Callable[[Any, int], Any] = make(
        _markers, ENCODER.default, json.encoder.encode_basestring, None, ":", ",", False, False, True
    )
    return built


#: ``c_encode(value, 0)`` yields the JSON of *value* in parts; None where the C
#: encoder is not there (PyPy) or not tested (a newer CPython). After a failure
#: call :func:`forget`.
c_encode = _build()


def forget() -> None:
    """Empty the markers a failed encoding left (a circular value, an unknown type)."""
    _markers.clear()


def encode_dict(value: dict[str, Any]) -> str:
    """``ENCODER.encode(value)`` for a dict, without building an encoder (output.dumps inlines it)."""
    if c_encode is None:
        return ENCODER.encode(value)
    try:
        return "".join(c_encode(value, 0))
    except BaseException:
        forget()
        raise
