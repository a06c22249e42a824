"""How well one feature alone separates an outcome: the check for a feature that gives the
diagnosis (or the event) away almost perfectly, not only perfectly.

The figure is the feature's univariate AUROC on the rows validated: for a measurement, the
AUROC of its values; for categories (or a number with at most ``MAX_LEVELS`` values), the
AUROC of each level's share of the class, levels under ``MIN_PATIENTS`` patients pooled so
that a rare level cannot separate by chance.

The thresholds leave every genuine feature of the shared real datasets unflagged. The highest
univariate figures there (tests/study/test_near_leak.py): breast cancer Wisconsin 0.975 (worst
perimeter, a measurement the diagnosis rests on); UCI Cleveland 0.77 (chest pain type, disease
or not); WHAS500 0.79 (age, against the event); GBSG 0.68 and METABRIC 0.69 (against the
event); ACTG 175 0.81 (baseline CD4 against the week-20 CD4 count being above its median). A
category that agrees with a binary diagnosis for 95% of the patients has an AUROC of 0.95.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from permed.study._columns import (
    as_category,
    date_format,
    looks_like_dates,
    to_numeric,
    value_shape,
)

__all__ = ["NEAR_LEAK_LEVELS", "NEAR_LEAK_MEASURE", "Separation", "level_text", "near_separation",
           "univariate_auroc"]

# A category (or a flag, a code) this good on its own is the outcome recorded another way.
NEAR_LEAK_LEVELS = 0.95
# A measurement may rank a diagnosis defined from it very well (0.975 above): only this is
# suspect.
NEAR_LEAK_MEASURE = 0.99
MAX_LEVELS = 20
MIN_PATIENTS = 20
SCREEN_ROWS = 100_000
_POOLED = "\0pooled"  # the levels under MIN_PATIENTS patients, together


def level_text(level: str, counts: pd.Series) -> str:
    """A category of a feature for a message, never quoted: ``its most common value, a date
    written MM/DD/YYYY``, ``its 2nd most common value, a text of 4 characters with letters``;
    ``counts`` holds the patients of each value (``one of its values`` for a value sharing its
    count with another).

    A cell may be protected health information (a date, a ZIP code, a place, a name), and these
    messages are printed and written into manifest.json and report.html, shared in clear; the
    rank and the count of patients the message gives find the value in the data.
    """
    if looks_like_dates(pd.Series([level])):
        shape = f"a date written {date_format(level)}"
    elif pd.notna(to_numeric(pd.Series([level])).iloc[0]):
        shape = "a number"
    else:
        shape = value_shape(level)
    count = counts[level]
    rank = 1 + int((counts > count).sum())
    if int((counts == count).sum()) > 1:
        return f"one of its values, {shape}"
    if rank == 1:
        return f"its most common value, {shape}"
    suffix = "th" if 10 <= rank % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(rank % 10, "th")
    return f"its {rank}{suffix} most common value, {shape}"


@dataclass(frozen=True)
class Separation:
    """A feature's univariate AUROC over ``patients``; for categories, the ``level`` holding
    ``held`` of the ``side_size`` patients of one side (``side``: True for the positive one)
    and ``others`` patients of the other side."""

    auroc: float
    patients: int
    level: str | None = None
    side: bool = True
    held: int = 0
    side_size: int = 0
    others: int = 0
    # the patients of each value (the pooled rare ones left out), to describe the level
    counts: pd.Series | None = field(default=None, compare=False, repr=False)

    def text(self, sides: dict[bool, str]) -> str:
        """``univariate AUROC 0.953 over 303 patients; 157 of the 164 'no' patients and only 7
        others have its most common value, a text of 4 characters with letters``, ``sides``
        naming the patients of each side. The value is described, never quoted (see
        ``level_text``)."""
        figure = f"univariate AUROC {self.auroc:.3f} over {self.patients} patients"
        if self.level is None:
            return figure
        counts = (pd.Series({self.level: self.held + self.others}) if self.counts is None
                  else self.counts)
        return (f"{figure}; {self.held} of the {self.side_size} {sides[self.side]} and only "
                f"{self.others} others have {level_text(self.level, counts)}")


def near_separation(values: pd.Series, positive: np.ndarray, kind: str) -> Separation | None:
    """How well ``values`` alone separate ``positive`` (booleans, aligned), when that reaches
    ``NEAR_LEAK_LEVELS`` (categories) or ``NEAR_LEAK_MEASURE`` (measurements); else None, and
    None when either side has fewer than ``MIN_PATIENTS`` patients with a value.

    Above ``SCREEN_ROWS`` patients a fixed random sample of them is screened first, 0.01 below
    the thresholds: only a feature it flags is measured on every patient (the figures a warning
    tells), so that a million patients are not ranked once per feature and class.
    """
    positive = np.asarray(positive, dtype=bool)
    if len(values) > SCREEN_ROWS:
        rows = np.sort(np.random.default_rng(0).choice(len(values), SCREEN_ROWS, replace=False))
        if _near(values.iloc[rows], positive[rows], kind, slack=0.01) is None:
            return None
    return _near(values, positive, kind)


def _near(values: pd.Series, positive: np.ndarray, kind: str,
          slack: float = 0.0) -> Separation | None:
    found = _separation(values, positive, kind)
    if found is None:
        return None
    auroc, patients, table = found
    if table is None:
        return Separation(auroc, patients) if auroc >= NEAR_LEAK_MEASURE - slack else None
    return _best_level(table, auroc, patients) if auroc >= NEAR_LEAK_LEVELS - slack else None


def univariate_auroc(values: pd.Series, positive: np.ndarray, kind: str) -> float | None:
    """The figure ``near_separation`` compares with its thresholds (None where it has none)."""
    found = _separation(values, positive, kind)
    return None if found is None else found[0]


def _separation(values: pd.Series, positive: np.ndarray, kind: str
                ) -> tuple[float, int, pd.DataFrame | None] | None:
    """The AUROC, the patients it is computed over and, for categories, the level-by-side
    table (the pooled levels in one row)."""
    numbers = to_numeric(values) if kind == "numeric" else None
    known = (values if numbers is None else numbers).notna().to_numpy()
    outcome = np.asarray(positive, dtype=bool)[known]
    if min(outcome.sum(), (~outcome).sum()) < MIN_PATIENTS:
        return None
    if numbers is not None and numbers[known].nunique() > MAX_LEVELS:
        return _auroc(numbers[known].to_numpy(dtype=float), outcome), len(outcome), None
    labels = pd.Series(as_category(values[known]).to_numpy(dtype=object))
    sizes = labels.map(labels.value_counts())
    labels = labels.where(sizes >= MIN_PATIENTS, _POOLED)
    table = pd.crosstab(labels.to_numpy(), outcome)
    share = table[True] / table.sum(axis=1)
    auroc = _auroc(share.loc[labels].to_numpy(dtype=float), outcome)
    return auroc, len(outcome), table


def _auroc(score: np.ndarray, outcome: np.ndarray) -> float:
    """The AUROC of ``score`` for ``outcome`` or of its reverse, whichever is higher (the
    Mann-Whitney statistic from the ranks: one sort, ties counted half)."""
    ranks = rankdata(score)
    n_pos = int(outcome.sum())
    n_neg = len(outcome) - n_pos
    auroc = (ranks[outcome].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
    return float(max(auroc, 1 - auroc))


def _best_level(table: pd.DataFrame, auroc: float, patients: int) -> Separation:
    """The named level and side where the level holds most of the side and little else."""
    best = Separation(auroc, patients)
    score = -1.0
    levels = table.drop(index=_POOLED, errors="ignore")
    counts = levels.sum(axis=1).rename(index=str)
    for side in (True, False):
        side_size = int(table[side].sum())
        for level, row in levels.iterrows():
            held, others = int(row[side]), int(row[not side])
            fit = min(held / side_size, held / max(held + others, 1))
            if fit > score:
                score = fit
                best = Separation(auroc, patients, str(level), side, held, side_size, others,
                                  counts)
    return best
