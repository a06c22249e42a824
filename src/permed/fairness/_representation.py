"""Who is in the development data: group sizes and outcome rates per sensitive attribute."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from permed.fairness._audit import Edges, _check_edges, group_labels

__all__ = ["representation"]


def representation(sensitive: pd.DataFrame, positive: np.ndarray,
                   min_group_size: int = 30, outcome: str = "positive class",
                   edges: Edges | None = None) -> dict[str, Any]:
    """Group sizes, shares and outcome rates in the training data, with small-group warnings.

    Parameters
    ----------
    sensitive : DataFrame
        One column per sensitive attribute (development patients).
    positive : array of bool
        Whether each patient has the outcome (the positive class, or an observed event).
    min_group_size : int
        Groups smaller than this are too small to validate the model on: they are flagged.
    outcome : str
        What ``positive`` means, for the text.
    edges : mapping of str to sequence of float, optional
        Bin edges of the numeric columns, from :func:`permed.fairness.bin_edges` on the
        development split, so the groups are those of the run's audits; ``None`` bins numeric
        columns with more than 5 values at these patients' own quartiles (see
        :func:`permed.fairness.audit_classification`).

    Returns
    -------
    dict
        ``{column: {"groups": {level: {"n", "share", "outcome_rate"}}, "warnings": [...]}}``
    """
    result: dict[str, Any] = {}
    positive = np.asarray(positive, dtype=bool)
    edges = _check_edges(edges)
    for column in sensitive.columns:
        labels, levels, _ = group_labels(sensitive[column].reset_index(drop=True), str(column),
                                          edges)
        groups, warnings = {}, []
        for level in levels:
            member = labels == level
            n = int(member.sum())
            groups[level] = {"n": n, "share": n / len(labels),
                             "outcome_rate": float(positive[member].mean()) if n else None}
            if n < min_group_size:
                warnings.append(
                    f"group '{level}' of '{column}' has {n} development patients (< "
                    f"{min_group_size}): too few to validate the model on; its figures are "
                    "unreliable")
        result[column] = {"groups": groups, "warnings": warnings, "outcome": outcome,
                          "min_group_size": min_group_size}
    return result
