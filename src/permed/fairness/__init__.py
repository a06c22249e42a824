"""Fairness audit: per-group performance and calibration, disparities and flags.

:func:`audit_classification` produces the ``fairness`` entry of ``metrics.json`` (see
``docs/run-directory.md``).
"""

from permed.fairness._audit import GROUP_METRICS, audit_classification

__all__ = ["GROUP_METRICS", "audit_classification"]
