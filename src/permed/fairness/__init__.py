"""Fairness audit: per-group performance and calibration, disparities and flags, who is
represented in the data, and a post-processing mitigation compared before/after.

:func:`audit_classification` produces the ``fairness`` entry of ``metrics.json`` (see
``docs/run-directory.md``).
"""

from permed.fairness._audit import GROUP_METRICS, audit_classification
from permed.fairness._mitigate import mitigation_table
from permed.fairness._representation import representation

__all__ = ["GROUP_METRICS", "audit_classification", "mitigation_table", "representation"]
