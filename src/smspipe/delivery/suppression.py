"""The suppression list: numbers that said STOP (or that Twilio refused as opted out).

A number is stored in E.164 without a channel prefix: a STOP on SMS also
suppresses ``whatsapp:`` sends to the same number. Twilio's codes that mean
the recipient opted out (:data:`OPT_OUT_CODES`) put the number on the list,
whether they come back as the answer to a create (21610) or as a delivery
error (63014, a fetch or a callback).

:func:`read_optout_file` reads what ``smspipe optout import`` takes: one
number per line, or a CSV with a header (a Twilio consent export names the
number ``contact_id``, a hand-made one ``phone`` or ``phone_number``…; a
``status`` column, when present, keeps only the ``opt-out`` rows).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from smspipe import phone

#: Twilio's error codes that mean "this recipient does not want your messages"
OPT_OUT_CODES: dict[int, str] = {
    21610: "the recipient replied STOP to this sender (Attempt to send to unsubscribed recipient)",
    63014: "the recipient blocked the sender or withdrew consent on the channel",
}
#: CSV header names (lower case, without spaces, dashes or underscores) that hold the number
PHONE_COLUMNS = ("contactid", "phonenumber", "phone", "number", "mobile", "e164", "address", "from", "to")
#: in a CSV with a status column, the rows whose status says opted out (folded: "opt-out" is "optout")
_OPTED_OUT = frozenset({"optout", "optedout", "stop", "unsubscribed", "true", "yes", "1"})


def source_for(code: int) -> str:
    """The ``source`` an opt-out learnt from Twilio's error *code* is recorded with."""
    return f"twilio:{code}"


def bare(number: str) -> str:
    """*number* without its channel prefix (``whatsapp:+1…`` -> ``+1…``)."""
    if number[:9].lower() == phone.WHATSAPP_PREFIX:
        return number[9:].strip()
    return number


@dataclass(frozen=True, slots=True)
class Problem:
    """A line of an opt-out file that is not a number."""

    source: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.source}:{self.line}: {self.message}"


def normalise(raw: str, default_region: str) -> tuple[str | None, str | None]:
    """(E.164, None) for a number, (None, why not) for anything else."""
    checked = phone.check_number(bare(raw.strip()), default_region)
    if checked.e164 is None:
        return None, checked.error or f"{raw!r} is not a phone number"
    return checked.e164, None


def normalise_all(phones: Iterable[str], default_region: str) -> tuple[list[str], list[str]]:
    """The numbers in E.164, and what was wrong with the others."""
    good: list[str] = []
    bad: list[str] = []
    for raw in phones:
        e164, error = normalise(raw, default_region)
        if e164 is None:
            bad.append(error or raw)
        else:
            good.append(e164)
    return good, bad


def read_optout_file(text: str, source: str, default_region: str) -> tuple[list[str], list[Problem]]:
    """The numbers in an opt-out file (one per line, or a CSV with a header), and its bad lines."""
    lines = text.lstrip("\ufeff").splitlines()
    header = _header(lines[0]) if lines else None
    good: list[str] = []
    problems: list[Problem] = []
    for number, raw in _entries(lines, header):
        e164, error = normalise(raw, default_region)
        if e164 is None:
            problems.append(Problem(source, number, f"{error}; fix or remove the line"))
        else:
            good.append(e164)
    return good, problems


@dataclass(frozen=True, slots=True)
class _Header:
    phone: int
    status: int | None


def _fold(name: str) -> str:
    return "".join(c for c in name.lower() if c.isalnum())


def _header(first: str) -> _Header | None:
    """The columns of a CSV header line, or None when the file is one number per line."""
    if not any(c.isalpha() for c in first.replace("whatsapp:", "")):
        return None
    names = [_fold(cell) for cell in next(csv.reader([first]))]
    status = names.index("status") if "status" in names else None
    for wanted in PHONE_COLUMNS:
        if wanted in names:
            return _Header(names.index(wanted), status)
    return _Header(0, status)


def _entries(lines: list[str], header: _Header | None) -> Iterator[tuple[int, str]]:
    """(line number, number as written) for every line that names one."""
    if header is None:
        for number, line in enumerate(lines, start=1):
            text = line.strip()
            if text and not text.startswith("#"):
                yield number, text
        return
    rows = csv.reader(io.StringIO("\n".join(lines[1:])))
    for number, row in enumerate(rows, start=2):
        if not row or not any(cell.strip() for cell in row):
            continue
        status = row[header.status] if header.status is not None and header.status < len(row) else None
        if status is not None and _fold(status) not in _OPTED_OUT:
            continue
        yield number, row[header.phone] if header.phone < len(row) else ""
