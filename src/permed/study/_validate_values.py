"""Checks of how a column's values are written: numbers in disguise (``145 mmHg``, ``<0.1``,
``2,330.0``, ``unknown`` among numbers), and categories written several ways (``Male`` and
``male ``; ``Yes``, ``Y``, ``TRUE`` and ``1``).

Read as categories, either splits what is one value into several: every number becomes a
level of its own, and the fairness audit counts ``Male`` and ``MALE`` as two groups.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from permed.study._columns import (
    DisguisedNumbers,
    as_category,
    boolean_spellings,
    disguised_numbers,
    excel_serial_dates,
    is_missing_word,
    rows_text,
    spelled_twice,
    texts_text,
)
from permed.study._study import _toml_key

if TYPE_CHECKING:
    from permed.study._validate import ValidationReport

__all__ = ["check_disguised_numbers", "check_serial_dates", "check_spellings"]

_WRITTEN_WITH = {"unit": "a unit", "percent": "a percent sign", "comparison": "a comparison sign",
                 "thousands": "thousands separators", "currency": "a currency sign"}


def check_serial_dates(series: pd.Series, column: str, report: ValidationReport) -> None:
    """Warn of a numeric feature that holds dates as Excel's serial numbers (see
    ``excel_serial_dates``): a model would learn the calendar. A warning, not a refusal: the
    numbers may be genuine (a count, an amount). No value is quoted: a date may be PHI."""
    if not excel_serial_dates(series, column):
        return
    n = int(series.notna().sum())
    report.warn(
        f"column '{column}' is named like a date and {'all ' if n > 1 else ''}{n} of its values "
        f"{'are whole numbers' if n > 1 else 'is a whole number'} in the range where Excel "
        "keeps dates (days since 1899-12-30; 20000-60000 is 1954-2064): if it is a date "
        "exported as a number, the model learns the calendar (and a date recorded at follow-up "
        f"gives the outcome away): drop it with --drop '{column}', or convert it into a number "
        "of its own (age at admission, days in hospital); if it is a genuine number, keep it",
        column)


def check_disguised_numbers(series: pd.Series, column: str, report: ValidationReport) -> bool:
    """Refuse a column read as categories that is mostly numbers (see ``disguised_numbers``);
    True when refused."""
    found = disguised_numbers(series)
    if found is None:
        return False
    text = series.astype("string").str.strip()
    what = f"column '{column}' holds numbers in {found.numbers} of its {found.present} values"
    # rows and how the values are written, never a value: messages go into the manifest
    if found.written.any():
        ways = [_WRITTEN_WITH[w] for w in found.ways]
        how = ", ".join(ways[:-1]) + " or " + ways[-1] if len(ways) > 1 else ways[0]
        what += (f", {int(found.written.sum())} of them written with {how} (rows "
                 f"{rows_text(np.flatnonzero(found.written))})")
    if found.markers.any():
        what += (f", and {int(found.markers.sum())} values that are not numbers ("
                 f"{_markers_text(text[found.markers])}; rows "
                 f"{rows_text(np.flatnonzero(found.markers))})")
    report.error(
        f"{what}: read as text, it would be a categorical feature of {found.levels} levels, "
        f"each number a category of its own; {_fixes(found, text)}; or declare kind = "
        f"\"categorical\" under [columns.{_toml_key(column)}] in the study to keep the values "
        "as categories", column)
    return True


def _fixes(found: DisguisedNumbers, text: pd.Series) -> str:
    written = text[found.written]
    fixes = []
    if "unit" in found.ways:
        units = ", ".join(f"'{u}'" for u in found.units[:3])
        fixes.append(f"strip the unit {units} (the study can record it: unit = "
                     f"\"{found.units[0]}\")")
    if "percent" in found.ways:
        fixes.append("drop the percent sign")
    if "comparison" in found.ways:
        signs = written.str.extract(r"^\s*([<>]=?|[\u2264\u2265~])", expand=False).dropna()
        shown = " or ".join(f"'{sign}'" for sign in pd.unique(signs))
        fixes.append(f"write each value with {shown} as a number (e.g. the detection limit), "
                     "with a column of its own flagging it if that matters")
    if "thousands" in found.ways:
        fixes.append("drop the thousands separators (1,200 as 1200)")
    if "currency" in found.ways:
        fixes.append("drop the currency sign")
    if found.markers.any():
        marker = text[found.markers].value_counts().index[0]
        fixes.append(f"leave missing values empty (or NA) rather than '{marker}'"
                     if is_missing_word(marker) else
                     "leave missing values empty (or NA) rather than written in words")
    return "; ".join(fixes)


def _markers_text(markers: pd.Series) -> str:
    """``'unknown' (15), 'not done' (1)``: the common spellings of a missing value with their
    counts; any other text described (``texts_text``), not quoted."""
    counts = markers.value_counts()
    words = [f"'{v}' ({n})" for v, n in counts.items() if is_missing_word(v)]
    others = [v for v in counts.index if not is_missing_word(v)]
    if others:
        words.append(texts_text(pd.Series(others, dtype=object)))
    return ", ".join(words[:-1]) + ", and " + words[-1] if len(words) > 1 and others else \
        ", ".join(words)


def check_spellings(series: pd.Series, column: str, what: str, report: ValidationReport) -> None:
    """Refuse a categorical column whose categories differ only in letter case or spaces, or
    a yes/no column written more than one way for each; ``what`` names it (``column 'sex'``,
    ``sensitive column 'sex'``)."""
    counts = as_category(series).dropna().value_counts()
    yes, no = boolean_spellings(counts)
    if yes:
        shown = [", ".join(f"'{label}' ({int(counts[label])})" for label in side)
                 for side in (yes, no)]
        report.error(
            f"{what} writes yes and no several ways: {shown[0]} mean yes and {shown[1]} mean "
            "no; write one spelling for each (e.g. 1 and 0), or they are read as "
            f"{len(counts)} different categories", column)
        return
    twice = spelled_twice(counts)
    if twice:
        report.error(f"{what} has categories that differ only in letter case or spaces: "
                     f"{twice}; write each category one way", column)
