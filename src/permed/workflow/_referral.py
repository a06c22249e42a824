"""When a patient's answer goes to a clinician, and why: the reasons the three tasks share.

A patient is referred when a value lies outside the training range, or when most of the features
are missing (the model then answers from values filled in from the development patients, not
from this patient). Diagnose adds an uncertain conformal set and an unusual combination of
values; treat adds low overlap. ``permed predict`` and the service word the reasons the same way.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from permed.study import FittedSchema

__all__ = ["MAX_MISSING_SHARE", "joined", "missing_reason", "range_reason", "referral",
           "shared_reasons"]

# More than this share of the features missing: the answer is mostly the development cohort's.
MAX_MISSING_SHARE = 0.5


def range_reason(flagged: str) -> str:
    """``out_of_range_features`` (``a;b``) as a reason; '' when none."""
    return f"outside the training range: {flagged.replace(';', ', ')}" if flagged else ""


def missing_reason(missing: int, features: int) -> str:
    """The reason for ``missing`` of ``features`` missing; '' when at most half are."""
    if features == 0 or missing <= MAX_MISSING_SHARE * features:
        return ""
    return (f"{missing} of {features} features missing (filled in from the development "
            "patients)")


def shared_reasons(schema: FittedSchema, frame: pd.DataFrame, flagged: pd.Series | np.ndarray
                   ) -> list[np.ndarray]:
    """Per row of ``frame``, the range reason and the missing-features reason."""
    names = [f.name for f in schema.features]
    missing = frame.reindex(columns=names).isna().sum(axis=1).to_numpy()
    flagged = np.asarray(flagged, dtype=object)
    ranges, gaps = (np.full(len(frame), "", dtype=object) for _ in range(2))
    outside = flagged != ""  # texts are written only for the rows that need one
    ranges[outside] = [range_reason(f) for f in flagged[outside]]
    sparse = missing > MAX_MISSING_SHARE * len(names)
    gaps[sparse] = [missing_reason(int(m), len(names)) for m in missing[sparse]]
    return [ranges, gaps]


def joined(parts: list[np.ndarray]) -> np.ndarray:
    """Row-wise ``"; ".join`` of the non-empty texts of several object arrays."""
    out = parts[0].copy()
    for part in parts[1:]:
        has = part != ""
        both = has & (out != "")
        out[both] = out[both] + "; " + part[both]
        only = has & ~both
        out[only] = part[only]
    return out


def referral(parts: list[np.ndarray]) -> dict[str, np.ndarray]:
    """``refer_to_clinician`` and ``refer_reason`` columns from per-row reason texts."""
    reasons = joined(parts)
    return {"refer_to_clinician": reasons != "", "refer_reason": reasons}
