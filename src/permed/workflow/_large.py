"""What changes on a large cohort, for every task.

From ``LARGE_COHORT_ROWS`` development rows, model comparison (and, for diagnose, calibration
and the conformal/threshold out-of-fold predictions) uses at most ``LARGE_COHORT_FOLDS`` folds:
each fold still trains on hundreds of thousands of patients, so the CV estimates barely move
while the cost drops by 40% (3 fits instead of 5). Model families may also carry large-cohort
settings (``ModelFamily.large_cohort``). ``metrics.json`` says so under ``selection``.
"""

from __future__ import annotations

__all__ = ["LARGE_COHORT_FOLDS", "LARGE_COHORT_ROWS", "cohort_folds", "folds_note", "is_large"]

LARGE_COHORT_ROWS = 200_000
LARGE_COHORT_FOLDS = 3


def is_large(development_rows: int) -> bool:
    """Whether a development split counts as a large cohort."""
    return development_rows >= LARGE_COHORT_ROWS


def cohort_folds(development_rows: int, requested: int) -> int:
    """CV folds: as requested, at most ``LARGE_COHORT_FOLDS`` on a large cohort."""
    return min(requested, LARGE_COHORT_FOLDS) if is_large(development_rows) else requested


def folds_note(folds: int, requested: int, development_rows: int) -> str | None:
    """Why fewer folds than ``--cv`` were used, in words (None when they were not)."""
    if folds == requested:
        return None
    return (f"{folds} folds instead of --cv {requested}: {development_rows} development rows "
            f"(at least {LARGE_COHORT_ROWS}), so each fold trains on "
            f"{development_rows - development_rows // folds} patients")
