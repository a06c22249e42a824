"""The HTML model report (model card + TRIPOD+AI checklist), built from a run directory.

>>> from permed.report import write_report
>>> write_report("runs/heart")  # doctest: +SKIP
PosixPath('runs/heart/report.html')
"""

# registering the diagnose sections; _explain adds its own after those of _diagnose
# _image after _explain (import order): the image section comes last
from permed.report import _diagnose, _explain, _fusion, _genes, _image, _risk, _treat  # noqa: F401
from permed.report._card import required_sections
from permed.report._html import render_report, write_report
from permed.report._markdown import render_markdown, write_markdown

__all__ = ["render_markdown", "render_report", "required_sections", "write_markdown",
           "write_report"]
