"""The HTML model report (model card + TRIPOD+AI checklist), built from a run directory.

>>> from permed.report import write_report
>>> write_report("runs/heart")  # doctest: +SKIP
PosixPath('runs/heart/report.html')
"""

from permed.report import _diagnose  # noqa: F401  (registers the diagnose sections)
from permed.report._html import render_report, write_report

__all__ = ["render_report", "write_report"]
