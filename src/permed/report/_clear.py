"""What a report, which is written in clear, may show of an encrypted run.

``permed train --encrypt`` encrypts the files that hold patients (predictions.csv,
explanations.json, the bundle); report.html stays in clear for review boards, so it keeps the
aggregates and plots and leaves out every table of individual patients.
"""

from __future__ import annotations

from permed.privacy import is_encrypted
from permed.report._html import Note, RunFiles, dig

__all__ = ["patients_left_out", "run_is_encrypted"]


def run_is_encrypted(run: RunFiles) -> bool:
    """Whether the run's patient-level files are encrypted."""
    predictions = run.run_dir / "predictions.csv"
    return bool(dig(run.manifest, "config", "encrypt")) or (
        predictions.is_file() and is_encrypted(predictions))


def patients_left_out(what: str, command: str) -> Note:
    """The note that replaces a table of individual patients in an encrypted run's report."""
    return Note(f"The run is encrypted and this report is not, so {what} are left out; "
                f"`{command} --key-file KEY` shows them.")
