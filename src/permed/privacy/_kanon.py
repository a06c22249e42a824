"""Re-identification risk over quasi-identifiers: k-anonymity and the share of unique records.

A table is k-anonymous over a set of quasi-identifiers (age, sex, ZIP...) when every
combination of their values is shared by at least k records; a record alone in its combination
(k = 1) is unique and the easiest to re-identify by linking with another source.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import pandas as pd

__all__ = ["RiskSummary", "risk_summary"]

# Records in classes smaller than this are counted "at risk" (a common release threshold).
AT_RISK_BELOW = 5


@dataclass(frozen=True)
class RiskSummary:
    """Re-identification risk of one table over its quasi-identifiers.

    Attributes
    ----------
    k : int
        Size of the smallest equivalence class (0 for an empty table).
    unique_share : float
        Share of records that are alone in their class.
    at_risk_share : float
        Share of records in classes smaller than 5.
    classes : int
        Number of distinct combinations of the quasi-identifiers.
    records : int
    quasi_identifiers : list of str
    """

    k: int
    unique_share: float
    at_risk_share: float
    classes: int
    records: int
    quasi_identifiers: list[str]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def risk_summary(frame: pd.DataFrame, quasi_identifiers: list[str]) -> RiskSummary:
    """k-anonymity, share of unique and of at-risk records over ``quasi_identifiers``.

    Missing values count as a value of their own. Columns absent from ``frame`` (dropped by
    de-identification) are left out.

    Examples
    --------
    >>> frame = pd.DataFrame({"age": [40, 40, 71], "sex": ["F", "F", "M"]})
    >>> risk_summary(frame, ["age", "sex"]).k
    1
    """
    present = [c for c in quasi_identifiers if c in frame.columns]
    if frame.empty:
        return RiskSummary(0, 0.0, 0.0, 0, 0, present)
    if not present:  # nothing distinguishes the records: one class
        return RiskSummary(len(frame), 0.0, float(len(frame) < AT_RISK_BELOW), 1, len(frame), [])
    keys = frame[present].astype("string").fillna("<missing>")
    sizes = keys.groupby(present)[present[0]].transform("size")
    classes = int(keys.drop_duplicates().shape[0])
    return RiskSummary(
        k=int(sizes.min()), unique_share=round(float((sizes == 1).mean()), 4),
        at_risk_share=round(float((sizes < AT_RISK_BELOW).mean()), 4), classes=classes,
        records=len(frame), quasi_identifiers=present)
