"""schemacheck's fast path: a JSON Schema compiled to one Python expression.

jsonschema is slow to import and per document (bench/RESULTS.md). Our
package schemas use a small subset of JSON Schema, which :func:`compile_check`
turns into one plain Python expression answering ``is_valid`` exactly as
``Draft202012Validator(schema).is_valid`` does. It touches no jsonschema
internals, but it restates Draft 2020-12's rules as jsonschema applies them
(which values are numbers, integers, equal), so it is tied to the jsonschema
versions pyproject.toml allows; tests/test_schemacheck.py compares the two
(``pytest -m differential``), and ``SMSPIPE_REFERENCE=schema`` turns it off
(:mod:`smspipe._fastpaths`).

The generated code comes from our own package schemas, never from input.
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

Check = Callable[[Any], bool]

# Keywords that never change whether a value is valid (Draft 2020-12).
_ANNOTATIONS = frozenset(
    {
        "$schema",
        "$defs",
        "$comment",
        "title",
        "description",
        "examples",
        "default",
        "deprecated",
        "readOnly",
        "writeOnly",
    }
)
_OBJECT_KEYWORDS = frozenset({"required", "properties", "additionalProperties"})
_STRING_KEYWORDS = frozenset({"minLength", "maxLength", "pattern"})
_ARRAY_KEYWORDS = frozenset({"items", "minItems", "maxItems"})
_NUMBER_KEYWORDS = {"minimum": ">=", "maximum": "<=", "exclusiveMinimum": ">", "exclusiveMaximum": "<"}


class Unsupported(Exception):
    """The schema uses a keyword (or form of one) outside the compiled subset."""


def _type_test(name: str, v: str) -> str:
    """Python test that the value named *v* has JSON type *name*, as jsonschema decides."""
    tests = {
        "object": f"isinstance({v}, dict)",
        "array": f"isinstance({v}, list)",
        "string": f"isinstance({v}, str)",
        "null": f"{v} is None",
        "boolean": f"({v} is True or {v} is False)",
        # bool is an int in Python, not in JSON Schema; jsonschema takes any
        # numbers.Number (Decimal...), asked last so that int and float stay quick
        "number": f"(isinstance({v}, (int, float, _Number)) and not isinstance({v}, bool))",
        # Draft 6 on: 1.0 is an integer, 1.5 and true are not
        "integer": f"((isinstance({v}, int) and not isinstance({v}, bool))"
        f" or (isinstance({v}, float) and {v}.is_integer()))",
    }
    try:
        return tests[name]
    except (KeyError, TypeError):
        raise Unsupported(f"type {name!r}") from None


_TYPE_OF_GUARD = {"object": "dict", "array": "list", "string": "str"}


def json_equal(one: Any, two: Any) -> bool:
    """Equality as JSON Schema's enum/const see it: true is not 1, [1] is not [true]."""
    if one is two:
        return True
    if isinstance(one, str) or isinstance(two, str):
        return bool(one == two)
    if isinstance(one, Sequence) and isinstance(two, Sequence):
        return len(one) == len(two) and all(json_equal(a, b) for a, b in zip(one, two, strict=True))
    if isinstance(one, Mapping) and isinstance(two, Mapping):
        return len(one) == len(two) and all(
            key in two and json_equal(value, two[key]) for key, value in one.items()
        )
    if isinstance(one, bool) or isinstance(two, bool):
        return isinstance(one, bool) and isinstance(two, bool) and one == two
    return bool(one == two)


def _guarded(json_type: str, tests: list[str], v: str, known: str | None) -> str | None:
    """*tests* for values of *json_type*, vacuously true for values of another type."""
    tests = [t for t in tests if t != "True"]
    if not tests:
        return None
    joined = tests[0] if len(tests) == 1 else "(" + " and ".join(tests) + ")"
    if known == json_type or (json_type == "number" and known == "integer"):
        return joined
    if json_type == "number":
        return f"(not {_type_test('number', v)} or {joined})"
    return f"(not isinstance({v}, {_TYPE_OF_GUARD[json_type]}) or {joined})"


def _conjunction(terms: list[str]) -> str:
    terms = [t for t in terms if t != "True"]
    if not terms:
        return "True"
    return terms[0] if len(terms) == 1 else "(" + " and ".join(terms) + ")"


class _Compiler:
    """Builds one Python expression for a schema; constants go to a namespace."""

    def __init__(self, root: Mapping[str, Any]) -> None:
        self.root = root
        self.namespace: dict[str, Any] = {
            "_MISSING": _MISSING,
            "_equal": json_equal,
            "_Number": numbers.Number,
        }
        self.names = 0
        self.expanding: list[str] = []  # $refs being expanded, to refuse recursion

    def fresh(self, prefix: str) -> str:
        self.names += 1
        return f"{prefix}{self.names}"

    def constant(self, value: Any) -> str:
        name = self.fresh("_c")
        self.namespace[name] = value
        return name

    def node(self, schema: Any, v: str, *, known: str | None = None, root: bool = False) -> str:
        """An expression, true when the value named *v* is valid against *schema*.

        *known* is the JSON type *v* is already known to have (tested earlier
        in the same conjunction), so that no test repeats it.
        """
        if schema is True or schema is False:
            return str(schema)
        self.check_keywords(schema, root=root)
        # The type test comes first: the terms after it run only when it held,
        # so they need not test the type again.
        terms, known = self.type_terms(schema, v, known)
        terms += self.typed_terms(schema, v, known)
        terms += self.value_terms(schema, v)
        terms += self.combined_terms(schema, v, known)
        return _conjunction(terms)

    def check_keywords(self, schema: Any, *, root: bool) -> None:
        if not isinstance(schema, Mapping):
            raise Unsupported(f"schema {schema!r}")
        if len(self.expanding) > 32:
            raise Unsupported("nested too deeply")
        unknown = schema.keys() - _ANNOTATIONS - _KEYWORDS - ({"$id"} if root else set())
        if unknown:
            raise Unsupported(", ".join(sorted(map(str, unknown))))

    def type_terms(
        self, schema: Mapping[str, Any], v: str, known: str | None
    ) -> tuple[list[str], str | None]:
        """The type test (if any), and the type *v* is known to have after it."""
        if "type" not in schema:
            return [], known
        declared = schema["type"]
        names = [declared] if isinstance(declared, str) else list(declared)
        if not names:
            raise Unsupported("empty type list")
        tests = [_type_test(name, v) for name in names]
        term = tests[0] if len(tests) == 1 else "(" + " or ".join(tests) + ")"
        return [term], (names[0] if len(names) == 1 else known)

    def typed_terms(self, schema: Mapping[str, Any], v: str, known: str | None) -> list[str]:
        """The tests that apply to values of one type only (vacuously true for others)."""
        keys = schema.keys()
        by_type: list[tuple[str, list[str]]] = []
        if _OBJECT_KEYWORDS & keys:
            by_type.append(("object", list(self.object_terms(schema, v))))
        if _STRING_KEYWORDS & keys:
            by_type.append(("string", list(self.string_terms(schema, v))))
        if _ARRAY_KEYWORDS & keys:
            by_type.append(("array", list(self.array_terms(schema, v))))
        if _NUMBER_KEYWORDS.keys() & keys:
            bounds = [
                f"{v} {_NUMBER_KEYWORDS[k]} {_bound(schema[k], k)}" for k in _NUMBER_KEYWORDS if k in schema
            ]
            by_type.append(("number", bounds))
        terms = (_guarded(json_type, tests, v, known) for json_type, tests in by_type)
        return [term for term in terms if term is not None]

    def value_terms(self, schema: Mapping[str, Any], v: str) -> list[str]:
        terms = []
        if "enum" in schema:
            terms.append(self.enum_term(schema["enum"], v))
        if "const" in schema:
            terms.append(f"_equal({v}, {self.constant(schema['const'])})")
        return terms

    def combined_terms(self, schema: Mapping[str, Any], v: str, known: str | None) -> list[str]:
        """allOf, anyOf, oneOf, not and $ref."""
        terms = []
        for keyword, joiner in (("allOf", " and "), ("anyOf", " or ")):
            if keyword in schema:
                parts = [self.node(sub, v, known=known) for sub in _subschemas(schema[keyword], keyword)]
                terms.append("(" + joiner.join(parts) + ")")
        if "oneOf" in schema:
            parts = [self.node(sub, v, known=known) for sub in _subschemas(schema["oneOf"], "oneOf")]
            terms.append("((" + ") + (".join(parts) + ") == 1)")
        if "not" in schema:
            terms.append(f"(not {self.node(schema['not'], v, known=known)})")
        if "$ref" in schema:
            terms.append(self.ref(schema["$ref"], v, known))
        return terms

    def object_terms(self, schema: Mapping[str, Any], v: str) -> Iterator[str]:
        required = schema.get("required", [])
        if not isinstance(required, list) or not all(isinstance(k, str) for k in required):
            raise Unsupported("required")
        if required:
            yield "(" + " and ".join(f"{k!r} in {v}" for k in dict.fromkeys(required)) + ")"
        properties = schema.get("properties", {})
        if not isinstance(properties, Mapping):
            raise Unsupported("properties")
        for key, sub in properties.items():
            item = self.fresh("v")
            test = self.node(sub, item)
            if test != "True":
                yield f"(({item} := {v}.get({key!r}, _MISSING)) is _MISSING or {test})"
        extra = schema.get("additionalProperties", True)
        if extra is True:
            return
        known = self.constant(frozenset(properties))
        if extra is False:
            yield f"{v}.keys() <= {known}"
            return
        key, item = self.fresh("k"), self.fresh("v")
        test = self.node(extra, item)
        if test != "True":
            yield f"all({test} for {key}, {item} in {v}.items() if {key} not in {known})"

    def string_terms(self, schema: Mapping[str, Any], v: str) -> Iterator[str]:
        if "minLength" in schema:
            yield f"len({v}) >= {_count(schema['minLength'], 'minLength')}"
        if "maxLength" in schema:
            yield f"len({v}) <= {_count(schema['maxLength'], 'maxLength')}"
        if "pattern" in schema:
            pattern = schema["pattern"]
            if not isinstance(pattern, str):
                raise Unsupported("pattern")
            yield f"{self.constant(re.compile(pattern))}.search({v}) is not None"

    def array_terms(self, schema: Mapping[str, Any], v: str) -> Iterator[str]:
        if "minItems" in schema:
            yield f"len({v}) >= {_count(schema['minItems'], 'minItems')}"
        if "maxItems" in schema:
            yield f"len({v}) <= {_count(schema['maxItems'], 'maxItems')}"
        if "items" in schema:
            item = self.fresh("v")
            test = self.node(schema["items"], item)
            if test != "True":
                yield f"all({test} for {item} in {v})"

    def enum_term(self, values: Any, v: str) -> str:
        if not isinstance(values, list):
            raise Unsupported("enum")
        if values and all(isinstance(x, str) for x in values):
            # A string equals only a string: a set lookup says the same as _equal.
            return f"(isinstance({v}, str) and {v} in {self.constant(frozenset(values))})"
        return f"any(_equal({v}, x) for x in {self.constant(tuple(values))})"

    def ref(self, ref: Any, v: str, known: str | None) -> str:
        if not isinstance(ref, str) or not ref.startswith("#/$defs/"):
            raise Unsupported(f"$ref {ref!r}")
        name = ref.removeprefix("#/$defs/").replace("~1", "/").replace("~0", "~")
        defs = self.root.get("$defs")
        if not isinstance(defs, Mapping) or name not in defs or "/" in name:
            raise Unsupported(f"$ref {ref!r}")
        if ref in self.expanding:
            raise Unsupported(f"recursive $ref {ref!r}")
        self.expanding.append(ref)
        try:
            return self.node(defs[name], v, known=known)
        finally:
            self.expanding.pop()


_KEYWORDS = (
    frozenset(
        {
            "type",
            "enum",
            "const",
            "allOf",
            "anyOf",
            "oneOf",
            "not",
            "$ref",
        }
    )
    | _OBJECT_KEYWORDS
    | _STRING_KEYWORDS
    | _ARRAY_KEYWORDS
    | _NUMBER_KEYWORDS.keys()
)


class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "<missing>"


_MISSING = _Missing()


def _count(value: Any, keyword: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise Unsupported(keyword)
    return value


def _bound(value: Any, keyword: str) -> str:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or (isinstance(value, float) and not math.isfinite(value))
    ):
        raise Unsupported(keyword)
    return repr(value)


def _subschemas(value: Any, keyword: str) -> list[Any]:
    if not isinstance(value, list) or not value:
        raise Unsupported(keyword)
    return value


def compile_check(schema: Mapping[str, Any]) -> Check | None:
    """A plain-Python ``is_valid`` for *schema*, or None if it uses keywords outside the subset.

    The subset: type (one or a list), required, properties, additionalProperties
    (true, false or a schema), minLength/maxLength (code points), pattern
    (``re.search``), items (one schema), minItems/maxItems, minimum/maximum and
    their exclusive forms, enum, const, allOf/anyOf/oneOf/not, and ``$ref`` to
    ``#/$defs/...``.
    """
    compiler = _Compiler(schema)
    try:
        source = "lambda v0: " + compiler.node(schema, "v0", root=True)
        code = compile(source, "<schema>", "eval")
    except (Unsupported, re.error, RecursionError, SyntaxError, MemoryError):
        return None
    check: Check = eval(code, compiler.namespace)  # noqa: S307 - our own schema, see above
    return check
