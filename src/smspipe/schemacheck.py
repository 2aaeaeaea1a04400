"""JSON Schema checks without jsonschema on the happy path.

:class:`Schema` answers ``is_valid`` from the schema compiled to Python
(:mod:`smspipe._schema_compile`, the fast path) and imports jsonschema only
when a document is invalid, to explain why; with ``SMSPIPE_REFERENCE=schema``
(or a schema outside the compiled subset) jsonschema answers everything.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from smspipe._fastpaths import use_reference
from smspipe._schema_compile import Check, compile_check, json_equal

__all__ = ["Check", "Schema", "compile_check", "json_equal"]

_REFERENCE = use_reference("schema")


class Schema:
    """A schema that answers ``is_valid`` fast and explains errors with jsonschema.

    It quacks like a jsonschema validator (``is_valid``, ``iter_errors``), so
    :func:`smspipe.sms.schema_issues` takes either.
    """

    __slots__ = ("_validator", "is_valid", "schema")

    def __init__(self, schema: Mapping[str, Any]) -> None:
        self.schema = schema
        self._validator: Any = None
        compiled = None if _REFERENCE else compile_check(schema)
        self.is_valid: Check = compiled or self._slow_is_valid

    @property
    def validator(self) -> Any:
        """jsonschema's Draft 2020-12 validator, imported and built on first use."""
        if self._validator is None:
            from jsonschema import Draft202012Validator

            self._validator = Draft202012Validator(self.schema)
        return self._validator

    def _slow_is_valid(self, value: Any) -> bool:
        return bool(self.validator.is_valid(value))

    def iter_errors(self, value: Any) -> Iterator[Any]:
        errors: Iterator[Any] = self.validator.iter_errors(value)
        return errors
