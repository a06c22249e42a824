"""Checks of an image study's table: the image column, and that each file exists and has an
image format permed reads. Decoding is left to training (a file that does not decode stops it,
or is left out with ``on_bad_file = "skip"``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from permed.study._columns import rows_text
from permed.study._study import Study

if TYPE_CHECKING:
    from permed.study._validate import ValidationReport

__all__ = ["check_images"]

_SHOWN = 3


def _problem_files(paths: pd.Series) -> list[tuple[int, str, str]]:
    """(row position from 0, path, reason) for each path that is missing or not an image
    format; messages count rows from 1, as ``rows_text`` does."""
    from pathlib import Path

    from permed.ingest.images import IMAGE_SUFFIXES

    problems = []
    for row, path in enumerate(paths):
        if not isinstance(path, str):
            continue
        name = path.lower()
        suffix = ".nii.gz" if name.endswith(".nii.gz") else Path(name).suffix
        if suffix not in IMAGE_SUFFIXES:
            problems.append((row, path, f"suffix '{suffix or '(none)'}' is not an image format"))
        elif not Path(path).is_file():
            problems.append((row, path, "does not exist"))
    return problems


def check_images(frame: pd.DataFrame, study: Study, report: ValidationReport) -> None:
    """Report missing image paths and missing or unknown files (errors, or warnings when
    ``study.on_bad_file == "skip"``)."""
    from permed.ingest.images import resolve_image_paths

    column = str(study.images)
    flag = report.warn if study.on_bad_file == "skip" else report.error
    consequence = ("they are left out" if study.on_bad_file == "skip"
                   else "fix them, or pass --on-bad-file skip to leave them out")
    paths = resolve_image_paths(frame, column)
    empty = np.flatnonzero(paths.isna().to_numpy())
    if len(empty) == len(paths):
        report.error(f"image column '{column}' is empty: it must hold a path to an image file "
                     "per patient (relative to the table's folder)", column)
        return
    if len(empty):
        fusion = ("; a late-fusion model (--models fusion) keeps them, their image masked"
                  if study.notes else "")
        flag(f"image column '{column}' has no path in {len(empty)} rows ({rows_text(empty)}): "
             f"{consequence}{fusion}", column)
    problems = _problem_files(paths)
    if problems:
        shown = "; ".join(f"row {r + 1}: '{p}' {why}" for r, p, why in problems[:_SHOWN])
        more = f" and {len(problems) - _SHOWN} more" if len(problems) > _SHOWN else ""
        flag(f"image column '{column}' names {len(problems)} unusable files ({shown}{more}): "
             f"{consequence}", column)
