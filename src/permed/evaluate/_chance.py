"""Whether a model's held-out discrimination is distinguishable from chance."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["chance_warning"]

# The discrimination figure of each task's test entry, and its name for people.
_DISCRIMINATION = {"auroc": "AUROC", "c_index": "C-index"}


def chance_warning(test: Mapping[str, Any]) -> str | None:
    """A warning when the test AUROC's (or C-index's) 95% CI reaches 0.5, else None.

    Parameters
    ----------
    test : mapping
        The ``test`` entry of ``metrics.json``: metric name -> ``{value, ci_low, ci_high}``.

    Examples
    --------
    >>> chance_warning({"auroc": {"value": 0.58, "ci_low": 0.32, "ci_high": 0.82}})[:44]
    'the test AUROC is 0.580, and its 95% CI (0.3'
    >>> chance_warning({"auroc": {"value": 0.91, "ci_low": 0.86, "ci_high": 0.95}}) is None
    True
    """
    for name, label in _DISCRIMINATION.items():
        entry = test.get(name)
        if not isinstance(entry, Mapping) or entry.get("ci_low") is None:
            continue
        if entry["ci_low"] > 0.5:
            return None
        return (f"the test {label} is {entry['value']:.3f}, and its 95% CI "
                f"({entry['ci_low']:.3f}-{entry['ci_high']:.3f}) reaches 0.5: on these patients "
                "the model is not shown to rank patients better than chance; do not use it for "
                "decisions before it is trained on more patients (or events) or better "
                "predictors and validated again")
    return None
