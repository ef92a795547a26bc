"""Find personal data in raw tables before it can reach the model's features (DATA MINIMIZE).

`scan(frame)` looks at every column and counts, per kind, the rows that look like personal
data: e-mail addresses, phone numbers, US social security numbers, IBANs (mod-97 checked),
payment card numbers (Luhn checked), free text, and column names that announce personal data.
The report holds column names, kinds and row counts, never a value: it is safe to keep, share
and attach to a pipeline run.

`prepare` calls it on the raw data, drops every column the model does not need (the allow-list
is the reviewed reference profile), and fails when a kept column holds personal data.

Cost: each distinct value of a column is checked once (its rows are counted by value), so a
column of repeated categories costs as little as its categories. A column with more distinct
values than `data.pii_scan_values` (params.yaml) has a seeded sample of that many distinct
values checked: a kind of personal data held by a share p of the distinct values escapes the
sample with probability (1 - p) ** pii_scan_values (100,000 values: a kind in 1 of 20,000
distinct values is missed less than once in 100 runs). The report names the columns sampled.
"""

from __future__ import annotations

import re
from typing import Any

import pandas as pd

EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
# +country code or a leading 0/(area), then 7+ more digits with common separators.
PHONE = re.compile(
    r"(?<![\w.])(?:\+\d{8,15}|"
    r"(?:\+\d{1,3}[ .-]?)?(?:\(\d{1,4}\)[ .-]?)?\d{2,4}(?:[ .-]\d{2,4}){2,4})"
    r"(?![\w.])"
)
DATE = re.compile(r"\d{4}-\d{2}-\d{2}|\d{2}[./-]\d{2}[./-]\d{4}")
SSN = re.compile(r"(?<!\d)(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}(?!\d)")
IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b")
CARD = re.compile(r"(?<!\d)(?:\d[ -]?){12,18}\d(?!\d)")
NAME_HINT = re.compile(
    r"(^|_)(e_?mail|phone|mobile|tel|ssn|social_security|iban|card|cc_?num|passport|"
    r"first_?name|last_?name|full_?name|surname|address|street|zip|postcode|birth|dob|"
    r"ip_?addr|national_id|tax_id)($|_)"
)
WORD = re.compile(r"[^\W\d_]{2,}")
FREE_TEXT_MIN_WORDS = 4  # a value with at least this many words counts as free text
FREE_TEXT_MIN_SHARE = 0.2  # ... and a column is free text when this share of rows is


def luhn_ok(digits: str) -> bool:
    total, parity = 0, len(digits) % 2
    for position, char in enumerate(digits):
        number = int(char)
        if position % 2 == parity:
            number = number * 2 - 9 if number > 4 else number * 2
        total += number
    return total % 10 == 0


def iban_ok(candidate: str) -> bool:
    text = candidate.replace(" ", "")
    if not 15 <= len(text) <= 34:
        return False
    moved = text[4:] + text[:4]
    return int("".join(str(int(char, 36)) for char in moved)) % 97 == 1


def _cards(text: str) -> bool:
    for match in CARD.finditer(text):
        digits = re.sub(r"\D", "", match.group())
        if 13 <= len(digits) <= 19 and luhn_ok(digits):
            return True
    return False


def _phones(text: str) -> bool:
    return any(
        7 <= len(re.sub(r"\D", "", m.group())) <= 15 and not DATE.fullmatch(m.group())
        for m in PHONE.finditer(text)
    )


DETECTORS = {
    "email": lambda text: EMAIL.search(text) is not None,
    "ssn": lambda text: SSN.search(text) is not None,
    "iban": lambda text: any(iban_ok(m.group()) for m in IBAN.finditer(text)),
    "payment_card": _cards,
    "phone": _phones,
    "free_text": lambda text: (
        sum(bool(WORD.search(w)) for w in text.split()) >= FREE_TEXT_MIN_WORDS
    ),
}


def _as_text(column: pd.Series) -> pd.Series | None:
    """The values worth scanning as text; None for plain numeric columns that cannot hold PII."""
    if pd.api.types.is_bool_dtype(column):
        return None
    if pd.api.types.is_numeric_dtype(column):
        values = column.dropna()
        # Long whole numbers can be card or account numbers; ordinary measurements cannot.
        whole = values[(values == values.round()) & (values.abs() >= 1e6)]
        if whole.empty:
            return None
        return whole.astype("int64").astype(str)
    return column.dropna().astype(str)


MAX_SCAN_VALUES = 100_000  # data.pii_scan_values: distinct values checked per column


def scan_column(
    column: pd.Series, max_values: int = MAX_SCAN_VALUES, seed: int = 0, sampled: list | None = None
) -> dict[str, int]:
    """Rows per kind of personal data found in one column (kinds with zero rows left out).

    Each distinct value is checked once and counts for its rows. Above `max_values` distinct
    values (0: no limit), a seeded sample of that many is checked and the column's name is
    appended to `sampled`; counts are then the rows of the sampled values."""
    text = _as_text(column)
    if text is None or text.empty:
        return {}
    counts = text.value_counts(sort=False)
    rows = len(text)
    if max_values and len(counts) > max_values:
        counts = counts.sample(n=max_values, random_state=seed)
        rows = int(counts.sum())
        if sampled is not None:
            sampled.append(str(column.name))
    values = pd.Series(counts.index, dtype=object)
    weights = counts.to_numpy()
    found = {}
    for kind, detect in DETECTORS.items():
        count = int(weights[values.map(detect).to_numpy(dtype=bool)].sum())
        if kind == "free_text" and count < FREE_TEXT_MIN_SHARE * rows:
            continue
        if count:
            found[kind] = count
    return found


def scan(
    frame: pd.DataFrame,
    features: list[str] | None = None,
    max_values: int = MAX_SCAN_VALUES,
    seed: int = 0,
) -> dict[str, Any]:
    """Scan every column; columns listed in `features` are the ones that reach the model.

    Returns {"passed", "rows", "columns": {name: {"kinds": {kind: rows}, "in_features"}},
    "sampled_columns", "max_values"}. `passed` is False when a feature column holds personal
    data. No values are included.
    """
    features = list(frame.columns) if features is None else features
    columns: dict[str, Any] = {}
    sampled: list[str] = []
    for name in frame.columns:
        kinds = scan_column(frame[name], max_values, seed, sampled)
        if NAME_HINT.search(str(name).lower()):
            kinds["column_name"] = len(frame)
        if kinds:
            columns[str(name)] = {
                "kinds": kinds,
                "rows": max(kinds.values()),
                "in_features": name in features,
            }
    blocking = sorted(n for n, c in columns.items() if c["in_features"])
    return {
        "passed": not blocking,
        "rows": len(frame),
        "columns": columns,
        "blocking_columns": blocking,
        # Columns with more distinct values than max_values: a seeded sample of them checked.
        "max_values": max_values,
        "sampled_columns": sampled,
    }
