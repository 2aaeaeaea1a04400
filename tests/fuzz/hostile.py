"""Hostile inputs for validate, translate and send, with the good documents among them.

A case is a few good documents (request ids ``good-N``, order ids ``GOODN``)
and a few bad ones made from good ones by a hostile mutation (lone
surrogates, bytes that are not UTF-8, duplicate keys, control characters,
huge or deep values, hostile URLs, bytes flipped, lost or added), laid out as
NDJSON, a one-line array, an array of lines, a pretty-printed array or one
pretty-printed object. Whatever the bad ones hold, every good one must come
out: that is what "no good document lost" means, and :func:`run` checks it,
with the exit code (0, 1 or 2), no traceback and no hang.

Used by tests/fuzz/test_fuzz.py (a bounded run in the test suite, a longer
one in CI) and bench/bench_fuzz.py (10,000 cases per command).
"""

from __future__ import annotations

import json
import random
import re
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
ORDER = json.loads((ROOT / "samples" / "order.json").read_text())["order"]
COMMANDS = {
    "validate": ["validate", "--json"],
    "translate": ["translate", "order", "--json"],
    "send": ["send", "--dry-run", "--no-ledger", "--json", "--from", "+15017122661"],
}
FORMATS = ("ndjson", "array", "lines", "pretty", "single")
PHONES = ["+14155552671", "+447911123456", "(415) 555-2671", "+4915123456789"]


def good_document(command: str, number: int, rng: random.Random) -> dict[str, Any]:
    if command == "translate":
        order = json.loads(json.dumps(ORDER))
        order["id"] = f"GOOD{number}"
        order["status"] = rng.choice(["complete", "canceled", "shipped", "placed"])
        order["shipping_address"]["firstname"] = rng.choice(["Joe", "Zoë", "Łukasz", "Ana"])
        return {"order": order}
    message = rng.choice(["Your order shipped", "Zoë, your parcel 😀 is here", "Total: 12€ [paid]"])
    sms: dict[str, Any] = {"phone": rng.choice(PHONES), "message": f"{message} #{number}"}
    if rng.random() < 0.2:
        sms["media_url"] = ["https://example.com/a.jpg"]
    return {"request_id": f"good-{number}", "sms": sms}


def good_id(command: str, number: int) -> str:
    return f"order:GOOD{number}:" if command == "translate" else f"good-{number}"


# --- mutations of one document's JSON text ----------------------------------------------

Mutation = Callable[[random.Random, str], bytes]
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')


def _in_a_string(rng: random.Random, text: str, insert: str) -> str:
    strings = list(_STRING.finditer(text))
    if not strings:
        return text + insert
    chosen = rng.choice(strings)
    at = rng.randint(chosen.start() + 1, chosen.end() - 1)
    return text[:at] + insert + text[at:]


def lone_surrogate(rng: random.Random, text: str) -> bytes:
    escape = rng.choice(["\\ud800", "\\udfff", "\\uDBFF", "\\ude00\\ud83d", "\\ud83d x", "\\udc80"])
    return _in_a_string(rng, text, escape).encode()


def not_utf8(rng: random.Random, text: str) -> bytes:
    data = text.encode()
    junk = rng.choice([b"\xff", b"\xfe\xff", b"\xc3", b"\xe9", b"\x80", b"\xed\xa0\x80", b"\xf4\x90\x80\x80"])
    at = rng.randrange(len(data) + 1)
    return data[:at] + junk + data[at:]


def flip(rng: random.Random, text: str) -> bytes:
    data = bytearray(text.encode())
    for _ in range(rng.randint(1, 3)):
        data[rng.randrange(len(data))] = rng.randrange(256)
    return bytes(data)


def lose(rng: random.Random, text: str) -> bytes:
    targets = [m.start() for m in re.finditer(r'[{}\[\]",:]', text)] or [0]
    at = rng.choice(targets)
    return (text[:at] + text[at + 1 :]).encode()


def add(rng: random.Random, text: str) -> bytes:
    at = rng.randrange(len(text) + 1)
    inserted: str = rng.choice([*'{}[]",:\\', "\x00", "\x07", "\u2028", "\ufeff", "\r"])
    return (text[:at] + inserted + text[at:]).encode()


def truncate(rng: random.Random, text: str) -> bytes:
    return text[: rng.randrange(1, len(text))].encode()


def duplicate_key(rng: random.Random, text: str) -> bytes:
    pair = rng.choice(
        ['"phone": "+14155550000", ', '"message": "other", ', '"id": "R9", ', '"request_id": "x", ']
    )
    at = text.find("{", rng.randrange(len(text))) if rng.random() < 0.5 else text.find("{")
    at = at if at >= 0 else text.find("{")
    return (text[: at + 1] + pair + text[at + 1 :]).encode()


def control(rng: random.Random, text: str) -> bytes:
    escape = rng.choice(["\\u0000", "\\u0007", "\\u001b", "\\u007f", "\\u0085", "\\u009f", "\\f", "\\b"])
    return _in_a_string(rng, text, escape).encode()


def number(rng: random.Random, text: str) -> bytes:
    value = rng.choice(
        ["NaN", "Infinity", "-Infinity", "1e999", "-1e400", "9" * 5000, "1" + "0" * 400 + ".5"]
    )
    pattern = r'"(message|phone|id|order|firstname)": "[^"]*"'
    return re.sub(pattern, lambda m: f'"{m.group(1)}": {value}', text, count=1).encode()


def nest(rng: random.Random, text: str) -> bytes:
    depth = rng.choice([999, 5000, 100_000])
    return re.sub(
        r'("message"|"firstname"): ', lambda m: m.group() + "[" * depth + "1" + "]" * depth, text, count=1
    ).encode()


def huge(rng: random.Random, text: str) -> bytes:
    size = rng.choice([2_000, 100_000, 3_000_000])
    return re.sub(r'"(message|firstname)": "', lambda m: m.group() + "x" * size, text, count=1).encode()


def wrong_type(rng: random.Random, text: str) -> bytes:
    value = rng.choice(["123", "true", "null", "{}", "[]", '[{"a": 1}]', '"   "', '""'])
    pattern = r'"(message|phone|sms|order|shipping_address|id)": ("[^"]*"|\{)'
    return re.sub(pattern, lambda m: f'"{m.group(1)}": {value}, "x": {m.group(2)}', text, count=1).encode()


def hostile_url(rng: random.Random, text: str) -> bytes:
    url = rng.choice(
        [
            "http://127.0.0.1:22/",
            "http://169.254.169.254/latest/meta-data",
            "http://0x7f.1/",
            "http://[::ffff:127.0.0.1]/",
            "http://2130706433/",
            "http://10.0.0.1/x",
            "http://localhost/cb",
            "http://example.com/a\\nb",
            "http://example.com/\\u0000",
            "javascript:alert(1)",
            "http://",
        ]
    )
    field_name = rng.choice(["media_url", "status_callback"])
    value = json.dumps([url]) if field_name == "media_url" else json.dumps(url)
    value = value.replace("\\\\", "\\")
    return re.sub(r'"phone": ', lambda m: f'"{field_name}": {value}, "phone": ', text, count=1).encode()


def replace_whole(rng: random.Random, text: str) -> bytes:
    return rng.choice(
        [b"{}", b"[]", b"null", b'""', b"42", b"[[[[", b"\xef\xbb\xbf{}", b"{" * 3000, b'{"sms": []}']
    )


def splice(rng: random.Random, text: str) -> bytes:
    data = text.encode()
    a, b = sorted(rng.randrange(len(data) + 1) for _ in range(2))
    return data[:a] + data[b:] + data[a:b]


MUTATIONS: list[Mutation] = [
    lone_surrogate,
    not_utf8,
    flip,
    lose,
    add,
    truncate,
    duplicate_key,
    control,
    number,
    nest,
    huge,
    wrong_type,
    hostile_url,
    replace_whole,
    splice,
]


# --- cases ---------------------------------------------------------------------------------


@dataclass
class Case:
    command: str
    data: bytes
    good: list[str]
    layout: str
    mutations: list[str] = field(default_factory=list)


def make_case(rng: random.Random, command: str) -> Case:
    """A few good documents and a few mutated ones, in one layout."""
    layout = rng.choice(FORMATS)
    count = 1 if layout == "single" else rng.randint(2, 8)
    bad_count = 1 if layout == "single" else rng.randint(1, max(1, count // 2))
    slots = [("bad", n) for n in range(bad_count)] + [("good", n) for n in range(count - bad_count)]
    rng.shuffle(slots)
    pieces: list[bytes] = []
    good: list[str] = []
    names: list[str] = []
    for role, n in slots:
        document = good_document(command, n, rng)
        if role == "good":
            pieces.append(_dumped(document, layout))
            good.append(good_id(command, n))
            continue
        _rename_bad(document, n)
        mutation = rng.choice(MUTATIONS)
        names.append(mutation.__name__)
        pieces.append(mutation(rng, _dumped(document, layout).decode()))
    return Case(command, _laid_out(rng, pieces, layout), good, layout, names)


def _rename_bad(document: dict[str, Any], number: int) -> None:
    if "order" in document:
        document["order"]["id"] = f"BAD{number}"
    else:
        document["request_id"] = f"bad-{number}"


def _dumped(document: dict[str, Any], layout: str) -> bytes:
    if layout in ("pretty", "single"):
        text = json.dumps(document, indent=2, ensure_ascii=False)
        return text.replace("\n", "\n  ").encode() if layout == "pretty" else text.encode()
    return json.dumps(document, ensure_ascii=False).encode()


def _laid_out(rng: random.Random, pieces: list[bytes], layout: str) -> bytes:
    if layout == "ndjson":
        newline = rng.choice([b"\n", b"\n", b"\r\n", b"\n\n"])
        head = b"\xef\xbb\xbf" if rng.random() < 0.1 else b""
        return head + newline.join(pieces) + newline
    if layout == "array":
        return b"[" + rng.choice([b",", b", "]).join(pieces) + b"]"
    if layout == "lines":
        return b"[\n" + b",\n".join(pieces) + b"\n]\n"
    if layout == "pretty":
        return b"[\n  " + b",\n  ".join(pieces) + b"\n]\n"
    return pieces[0] + b"\n"


# --- running one -------------------------------------------------------------------------


@dataclass
class Result:
    exit_code: int | None
    traceback: bool = False
    hang: bool = False
    lost: list[str] = field(default_factory=list)
    detail: str = ""

    @property
    def ok(self) -> bool:
        return not self.traceback and not self.hang and not self.lost and self.exit_code in (0, 1, 2)


class Hang(Exception):
    """A run went over its time limit."""


@contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    def expire(signum: int, frame: Any) -> None:
        raise Hang(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def run(case: Case, limit: float = 30.0, args: list[str] | None = None) -> Result:
    """Run *case* in-process (as CliRunner does) and judge it."""
    from typer.testing import CliRunner

    from smspipe.cli.app import app

    try:
        with time_limit(limit):
            result = CliRunner().invoke(app, args or COMMANDS[case.command], input=case.data)
    except Hang as exc:
        return Result(None, hang=True, detail=str(exc))
    if isinstance(result.exception, Hang):
        return Result(None, hang=True, detail=str(result.exception))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        return Result(None, traceback=True, detail=f"{type(result.exception).__name__}: {result.exception}")
    text = result.stdout + result.stderr
    return judge(case, result.exit_code, result.stdout, text)


def judge(case: Case, exit_code: int, stdout: str, everything: str) -> Result:
    """What a run of *case* that ended with *exit_code* and wrote *stdout* did wrong."""
    found = Result(exit_code, traceback="Traceback" in everything or "internal error" in everything)
    written = _written_ids(case.command, stdout)
    found.lost = [g for g in case.good if not any(w.startswith(g) for w in written)]
    if not found.ok:
        found.detail = everything[-2000:]
    return found


def kind_of(args: list[str]) -> str:
    """How a run with *args* is judged: validate, pass, translate or send."""
    if args[0] == "validate":
        return "pass" if "--pass" in args else "validate"
    return args[0]


def _written_ids(command: str, stdout: str) -> set[str]:
    ids = set()
    for line in stdout.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if not isinstance(record, dict):
            continue
        if command == "validate" and not record.get("valid"):
            continue  # a report line (validate --pass writes documents, judged as "pass")
        if command == "send" and record.get("status") != "dry-run":
            continue
        ident = record.get("request_id")
        if isinstance(ident, str):
            ids.add(ident)
    return ids


def save(case: Case, directory: Path, result: Result) -> Path:
    """Keep a failing input for the corpus: the bytes, and how to replay them."""
    directory.mkdir(parents=True, exist_ok=True)
    name = f"{case.command}-{case.layout}-{abs(hash(case.data)) % 10**8}"
    (directory / f"{name}.bin").write_bytes(case.data)
    meta = {
        "args": COMMANDS[case.command],
        "good": case.good,
        "why": f"{case.mutations}: {result.detail[-300:]}",
    }
    (directory / f"{name}.json").write_text(json.dumps(meta, indent=2) + "\n")
    return directory / f"{name}.bin"


# Pieces hypothesis strings together: valid and broken JSON, encodings, line breaks.
TOKENS = [
    b"{",
    b"}",
    b"[",
    b"]",
    b",",
    b":",
    b'"',
    b"\n",
    b"\r\n",
    b" ",
    b'"phone"',
    b'"+14155552671"',
    b'"message"',
    b'"hi"',
    b'"sms"',
    b"\\ud800",
    b"\\ud83d\\ude00",
    b"\\u0000",
    b"\xff",
    b"\xc3",
    b"\xe9",
    b"\xef\xbb\xbf",
    b"NaN",
    b"1e999",
    b"null",
    b"true",
    b"0",
    b'{"phone": "+14155552671", "message": "hi"}',
    b'{"a": 1, "a": 2}',
]

# Pieces of templates, ordinary and hostile, for the translator's fuzz.
TEMPLATE_PIECES = [
    "Hi {{ name }} ",
    "{{ order.id }}",
    "{{ order.x }}",
    "{{ order.x | string | upper }}",
    "{{ order.x | tojson }}",
    "{{ order.x | join(',') }}",
    "{{ order.x | length }}",
    "{{ order.x * 3 }}",
    "{{ order.x ~ order.x }}",
    "{{ order.x | center(10**9) }}",
    "{{ order.x | truncate(-5) }}",
    "{{ order.x | replace('a', 'b' * 10000) }}",
    "{{ order.x | format(1) }}",
    "{{ '%s' % order.x }}",
    "{{ '{}{}'.format(order.x, order.x) }}",
    "{{ lipsum(n=10**8) }}",
    "{{ order.x | slice(10**9) | list }}",
    "{{ order.x | batch(3) | list }}",
    "{{ order.x | dictsort }}",
    "{{ order.x | sum }}",
    "{{ order.x | pprint }}",
    "{{ order.x | urlize }}",
    "{{ order.x | wordwrap(1) }}",
    "{{ order.x | indent(10**9) }}",
    "{% for i in order.x %}{{ i }}{% endfor %}",
    "{% for i in range(99999) %}{% for j in order.x %}{% endfor %}{% endfor %}",
    "{% macro r(n) %}{{ r(n) }}{% endmacro %}{{ r(order.x) }}",
    "{% set ns = namespace(s=order.x | string) %}"
    "{% for i in range(30) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
    "{{ '\\ud800' }}",
    "{{ order.x.__class__ }}",
    "{% if order.x %}{{ order.x }}{% else %}none{% endif %}",
]
