"""Turn raw manifest values into class names, and order class names the same way in every process.

A CSV cell is always a string and a JSON value may be a number, a string, ``null`` or ``NaN``; taken
raw, ``1``, ``1.0`` and ``"1"`` would be three classes and ``"None"`` a fourth. The rules:

* missing: ``null``, a float NaN, and (after stripping whitespace, case-insensitive) the strings in
  ``MISSING_LIKE`` (what pandas, Python and spreadsheets write for "no value"). A row with a missing
  label is a bad row, never a class.
* numbers: an int, a finite float, or a string that is a plain decimal number (ASCII digits, optional
  sign, fraction and exponent) becomes one canonical spelling: ``1``, ``1.0``, ``"1"``, ``"+1.00"`` and
  ``"1e0"`` are all class ``"1"``; ``0.5`` and ``"0.50"`` are ``"0.5"``. Infinity is not a class.
* booleans become ``"true"`` / ``"false"``; any other string is kept as written, less surrounding
  whitespace (case matters); lists and objects are not labels.

Class order (``sorted_labels``) is total and independent of the hash seed: by numeric value when every
name is a number, otherwise by string; a run and its resume therefore map labels to the same indices.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from decimal import MAX_EMAX, MIN_EMIN, Context, Decimal

MISSING_LIKE = frozenset({"", "nan", "-nan", "none", "null", "na", "n/a", "<na>", "#n/a"})
_NUMBER = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_PLAIN_DIGITS = 30  # numbers with a larger exponent are written in scientific notation, not as 10**30 digits


class InvalidLabel(ValueError):
    """A value that cannot name a class (a list, an object, infinity); the message says what it was."""


def normalize_label(value: object) -> str | None:
    """The canonical class name for a raw manifest value, or None when the value means "missing"."""
    if value is None or isinstance(value, bool):
        return None if value is None else str(value).lower()
    if isinstance(value, int):
        return _canonical(Decimal(value))
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if math.isinf(value):
            raise InvalidLabel(f"must be a finite number (got {value!r})")
        return _canonical(Decimal(repr(value)))
    if isinstance(value, str):
        text = value.strip()
        if text.lower() in MISSING_LIKE:
            return None
        number = as_number(text)
        return text if number is None else _canonical(number)
    raise InvalidLabel(f"must be a string or a number (got {type(value).__name__} {value!r})")


def as_number(text: str) -> Decimal | None:
    """The exact value of a plain decimal number written as text (not "inf", "nan", "1_000" or "0x1")."""
    if not _NUMBER.fullmatch(text):
        return None
    try:
        return _exact(Decimal(text))
    except ArithmeticError:  # an exponent beyond what Decimal represents: keep it as a name
        return None


def _exact(number: Decimal) -> Decimal:
    """The same value without trailing zeros, rounded never (precision grows with the digits)."""
    context = Context(prec=max(28, len(number.as_tuple().digits)), Emax=MAX_EMAX, Emin=MIN_EMIN)
    return number.normalize(context)


def _canonical(number: Decimal) -> str:
    """One spelling per value: no trailing zeros, no exponent for ordinary magnitudes, no negative zero."""
    if number.is_zero():
        return "0"
    number = _exact(number)
    return format(number, "f") if abs(number.adjusted()) < _PLAIN_DIGITS else str(number)


def sorted_labels(labels: Iterable[str]) -> list[str]:
    """Distinct class names in a total, deterministic order: numbers by value ("2" < "10"), else by string."""
    unique = set(labels)
    numbers = {name: value for name in unique if (value := as_number(name)) is not None}
    if unique and len(numbers) == len(unique):
        return sorted(unique, key=lambda name: (numbers[name], name))
    return sorted(unique)
