"""Fairness audit: per-group performance and calibration, disparities and flags, who is
represented in the data, and a post-processing mitigation compared before/after.

:func:`audit_classification` produces the ``fairness`` entry of ``metrics.json`` (see
``docs/run-directory.md``). The groups of a numeric attribute are fixed once on the
development split (:func:`bin_edges`) and passed as ``edges`` to every audit of a run; a run's
edges are read back from its metrics.json by :func:`saved_bin_edges`.
"""

from permed.fairness._audit import (
    GROUP_METRICS,
    audit_classification,
    bin_edges,
    bins_entry,
    group_labels,
    saved_bin_edges,
)
from permed.fairness._mitigate import mitigation_table
from permed.fairness._representation import representation

__all__ = ["GROUP_METRICS", "audit_classification", "bin_edges", "bins_entry", "group_labels",
           "mitigation_table", "representation", "saved_bin_edges"]
