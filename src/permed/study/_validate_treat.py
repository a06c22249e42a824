"""Data checks of the treat task: the treatment arms, the outcome and the columns that leak them.

Every message names the column, what was expected, what was found and the fix; the tests assert
them word for word.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from permed.study._columns import (
    as_category,
    non_numeric_values,
    one_value,
    rows_text,
    spelled_twice,
    text_among_numbers,
    to_numeric,
)
from permed.study._study import Study

if TYPE_CHECKING:  # _validate imports this module to dispatch the treat checks
    from permed.study._validate import ValidationReport

__all__ = ["MAX_ARMS", "MAX_OUTCOME_MISSING", "MIN_ARM_SIZE", "check_treat",
           "randomization_imbalance"]

MIN_ARM_SIZE = 20
MAX_ARMS = 10
# Above this share of patients without the outcome, dropping them silently could bias every
# effect (in a trial the outcome is rarely missing at random): the run stops.
MAX_OUTCOME_MISSING = 0.2
# A feature with at most this many distinct values whose every value occurs in one arm only
# is the treatment under another name.
_MAX_ENCODING_LEVELS = 20
# In a randomized trial a baseline column differs between the arms by chance only: one that
# differs with a p-value below this was most likely recorded after the treatment started. In
# ACTG 175 every baseline column has p >= 0.4, while follow-up days, censoring and the week-96
# CD4 count have p < 1e-5 (tests/workflow/test_treat.py).
IMBALANCE_P = 1e-4
# Beyond this the arms were most likely not randomized at all: the message says so first.
NOT_RANDOMIZED_P = 1e-12


def check_treat(frame: pd.DataFrame, study: Study, report: ValidationReport) -> None:
    """Check the treatment, outcome, propensity and true-effect columns of a treat study.

    Parameters
    ----------
    frame : pandas.DataFrame
    study : Study
        ``task == "treat"``; every named column exists (checked before).
    report : ValidationReport
        Findings are added to it.
    """
    if not study.treatment or not study.outcome:
        flag, what = ("treatment", "a treatment") if not study.treatment else ("outcome",
                                                                               "an outcome")
        report.error(f"the treat task needs {what} column: add --{flag} COL (or {flag} = "
                     "\"COL\" under [roles] in the study)")
        return
    if study.treatment == study.outcome:
        report.error(f"column '{study.treatment}' is both the treatment and the outcome: the "
                     "outcome must be measured after the treatment; choose another --outcome",
                     study.treatment)
        return
    arms_ok = _check_arms(frame, study, report)
    _check_outcome(frame, study, report)
    _check_propensity(frame, study, report)
    _check_numeric_role(frame, study.true_effect, "true_effect", report)
    if arms_ok:
        _check_encodings(frame, study, report)


def _check_arms(frame: pd.DataFrame, study: Study, report: ValidationReport) -> bool:
    column = study.treatment
    arms = as_category(frame[column])
    missing = int(arms.isna().sum())
    if missing == len(arms):
        report.error(f"treatment column '{column}' is entirely missing: choose another "
                     "--treatment", column)
        return False
    if missing:
        report.warn(f"treatment column '{column}' is missing for {missing} of {len(arms)} "
                    f"patients (rows {rows_text(np.flatnonzero(arms.isna()))}): they are left "
                    "out", column)
    counts = arms.dropna().value_counts()
    twice = spelled_twice(counts)
    if twice:
        report.error(f"treatment column '{column}' has arms that differ only in letter case or "
                     f"spaces: {twice}; write each arm one way", column)
        return False
    if len(counts) < 2:
        report.error(
            f"treatment column '{column}' has one arm only ('{counts.index[0]}' for all "
            f"{int(counts.iloc[0])} patients): a treatment effect compares at least two arms; "
            "check the column or the data extract", column)
        return False
    if len(counts) > MAX_ARMS:
        report.error(
            f"treatment column '{column}' has {len(counts)} distinct values (at most {MAX_ARMS} "
            "arms are allowed): it looks like a dose or a measurement, not a choice of "
            "treatments; group it into arms first", column)
        return False
    small = counts[counts < MIN_ARM_SIZE]
    if len(small):
        shown = ", ".join(f"'{k}' ({v})" for k, v in sorted(small.items()))
        report.error(
            f"treatment column '{column}' has arms with fewer than {MIN_ARM_SIZE} patients: "
            f"{shown}; each arm needs at least {MIN_ARM_SIZE} to estimate its outcomes: merge "
            "small arms with similar ones or drop their rows", column)
        return False
    return True


def _check_outcome(frame: pd.DataFrame, study: Study, report: ValidationReport) -> None:
    column = study.outcome
    values = frame[column]
    missing = int(values.isna().sum())
    n = len(values)
    if missing == n:
        report.error(f"outcome column '{column}' is entirely missing: choose another --outcome",
                     column)
        return
    if missing > MAX_OUTCOME_MISSING * n:
        report.error(
            f"outcome column '{column}' is missing for {missing} of {n} patients "
            f"({missing / n:.0%}, more than {MAX_OUTCOME_MISSING:.0%}): leaving them out could "
            "bias every effect, since outcomes are rarely missing at random; choose a more "
            "complete outcome, or impute or restrict the table beforehand", column)
        return
    if missing:
        report.warn(f"outcome column '{column}' is missing for {missing} of {n} patients "
                    f"({missing / n:.1%}): they are left out of training and evaluation", column)
    bad = non_numeric_values(values)
    levels = values.dropna().astype(str).unique()
    if len(bad) and len(levels) > 2:
        report.error(
            f"outcome column '{column}' must be numeric (continuous) or have two values "
            f"(binary), but {text_among_numbers(values, bad)}: correct them or leave them "
            "empty", column)
    elif values.dropna().nunique() < 2:
        report.error(f"outcome column '{column}' {one_value(values)}: there is no effect to "
                     "estimate; choose another --outcome", column)


def _check_propensity(frame: pd.DataFrame, study: Study, report: ValidationReport) -> None:
    column = study.propensity
    if not column or not _check_numeric_role(frame, column, "propensity", report):
        return
    values = to_numeric(frame[column])
    missing = values.isna()
    if missing.any():
        report.error(f"propensity column '{column}' is missing for {int(missing.sum())} patients "
                     f"in rows {rows_text(np.flatnonzero(missing))}: a known propensity is "
                     "needed for every patient; fill it in or drop --propensity to estimate it",
                     column)
    outside = (values <= 0) | (values > 1)
    if outside.any():
        report.error(
            f"propensity column '{column}' has {int(outside.sum())} values outside (0, 1] (e.g. "
            f"{values[outside].iloc[0]:g}) in rows {rows_text(np.flatnonzero(outside))}: it must "
            "be each patient's probability of the arm they received", column)


def _check_numeric_role(frame: pd.DataFrame, column: str | None, role: str,
                        report: ValidationReport) -> bool:
    if not column:
        return False
    bad = non_numeric_values(frame[column])
    if len(bad):
        report.error(f"{role} column '{column}' must be numeric but "
                     f"{text_among_numbers(frame[column], bad)}: correct the values", column)
        return False
    return True


def _check_encodings(frame: pd.DataFrame, study: Study, report: ValidationReport) -> None:
    arms = as_category(frame[study.treatment])
    known = arms.notna()
    for column in study.feature_columns(list(frame.columns)):
        values = as_category(frame.loc[known, column])
        present = values.notna()
        if values[present].nunique() < 2:
            continue
        pairs = pd.DataFrame({"arm": arms[known][present], "value": values[present]})
        per_arm = pairs.groupby("arm")["value"].nunique()
        per_value = pairs.groupby("value")["arm"].nunique()
        if (per_arm == 1).all():
            how = f"every arm has a single value of '{column}'"
        elif len(per_value) <= _MAX_ENCODING_LEVELS and (per_value == 1).all():
            how = f"each value of '{column}' occurs in one arm only"
        else:
            continue
        report.error(
            f"column '{column}' encodes the treatment '{study.treatment}' ({how}): a feature "
            "must not be the treatment itself or be recorded because of it; drop it with "
            f"--drop '{column}'", column)


def randomization_imbalance(frame: pd.DataFrame, arms: pd.Series,
                            kinds: dict[str, str]) -> list[tuple[str, str]]:
    """The features of a randomized study that differ between the arms far beyond chance.

    Parameters
    ----------
    frame : pandas.DataFrame
        The patients with a known arm.
    arms : pandas.Series
        Each patient's arm, aligned with ``frame``.
    kinds : dict
        ``{column: "numeric" | "categorical"}`` of the features (``ValidationReport.kinds``).

    Returns
    -------
    list of (column, message)
        Numeric columns are compared with the Kruskal-Wallis test, categorical ones with the
        chi-squared test of the arm-by-value table, on the patients where the column is known;
        the message names the test and its p-value, why it matters and the fix.
    """
    from scipy.stats import chi2_contingency, kruskal

    found = []
    for column, kind in kinds.items():
        if kind not in ("numeric", "categorical"):  # genes and notes have their own checks
            continue
        known = frame[column].notna().to_numpy() & arms.notna().to_numpy()
        if kind == "numeric":
            values = to_numeric(frame[column])[known]
            groups = [values[(arms[known] == arm).to_numpy()] for arm in arms[known].unique()]
            if len(groups) < 2 or values.nunique() < 2:
                continue
            test, p = "Kruskal-Wallis", float(kruskal(*groups).pvalue)
        else:
            table = pd.crosstab(arms[known], as_category(frame[column])[known])
            if min(table.shape) < 2:
                continue
            test, p = "chi-squared", float(chi2_contingency(table).pvalue)
        if p < IMBALANCE_P:
            found.append((column, _imbalance_message(column, test, p)))
    return found


def _imbalance_message(column: str, test: str, p: float) -> str:
    # In ACTG 175 the columns recorded after randomization reach p = 7e-06 to 2e-08; a column
    # beyond 1e-12 is more likely a baseline confounder of arms that were not randomized (an
    # observational extract run with --randomized), and dropping it would confound every effect.
    found = (f"column '{column}' differs between the arms far more than randomization allows "
             f"({test} {_p_text(p)}; randomization balances every baseline column up to chance)")
    if p < NOT_RANDOMIZED_P:
        return (f"{found}: the arms were probably not assigned at random: leave out "
                f"--randomized, so that permed estimates each patient's propensity from "
                f"'{column}' and the other features; drop it with --drop '{column}' only if it "
                "was recorded after the treatment started (a later measurement, follow-up time, "
                "going off treatment)")
    return (f"{found}: it was most likely recorded after the treatment started (a later "
            "measurement, follow-up time, going off treatment), and a feature the treatment "
            f"changed biases every effect; drop it with --drop '{column}' (or leave out "
            "--randomized if the arms were not assigned at random)")


def _p_text(p: float) -> str:
    return "p < 1e-12" if p < 1e-12 else f"p = {p:.1g}"
