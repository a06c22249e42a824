"""Per-patient explanations in plain words: the top factors, their direction and size.

"mean radius 17.99 raises the probability of malignant by 4.1 points"

A note (free text) is told as a whole, never quoted: "note (free text) raises the probability
of Malaria by 84.0 points". Its text may name the patient; the explanation of a trained model
holds ``(free text)`` or ``(no text)`` in its place (:func:`withhold_text`), and any string
value long enough to be free text is withheld here too, whoever built the explanation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from permed.explain._shap import Explanation

__all__ = ["NOTE_ABSENT", "NOTE_PRESENT", "Factor", "explanation_frame", "factor_text",
           "note_shown", "patient_factors", "patient_text", "value_text", "withhold_text"]

# Scales whose contributions are probabilities, told in percentage points.
_POINT_SCALES = ("probability", "risk")
# What stands for a note in an explanation: the note's text is never shown.
NOTE_PRESENT = "(free text)"
NOTE_ABSENT = "(no text)"
# A string value this long with a space in it is free text (a note, or a category that reads
# like one): withheld even when the caller did not say which features are notes.
_FREE_TEXT_CHARS = 40


@dataclass(frozen=True)
class Factor:
    """One feature's contribution to one patient's output."""

    feature: str
    value: object
    contribution: float
    output: str
    scale: str

    @property
    def direction(self) -> str:
        """``"raises"``, ``"lowers"`` or ``"does not change"``."""
        if self.contribution > 0:
            return "raises"
        return "lowers" if self.contribution < 0 else "does not change"


def _is_missing(value: object) -> bool:
    return value is None or value is pd.NA or value is pd.NaT or (
        isinstance(value, float | np.floating) and np.isnan(value))


def note_shown(value: object) -> str:
    """What an explanation shows of a note: :data:`NOTE_PRESENT` when it holds text, else
    :data:`NOTE_ABSENT` (a note already withheld as absent stays absent); never the text."""
    if _is_missing(value):
        return NOTE_ABSENT
    text = str(value).strip()
    return NOTE_PRESENT if text and text != NOTE_ABSENT else NOTE_ABSENT


def _withheld(value: object) -> object:
    """The value as an explanation may show it: free text becomes :data:`NOTE_PRESENT`."""
    if isinstance(value, str) and len(value) > _FREE_TEXT_CHARS and " " in value.strip():
        return NOTE_PRESENT
    return value


def value_text(feature: str, value: object, unit: str | None = None) -> str:
    """``mean radius 17.99``, ``age 63 years``, ``thal = 7``, ``chol missing`` or
    ``note (free text)``."""
    value = _withheld(value)
    if isinstance(value, str) and value in (NOTE_PRESENT, NOTE_ABSENT):
        return f"{feature} {value}"
    if _is_missing(value):
        return f"{feature} missing"
    if isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool):
        number = float(value)
        shown = str(int(number)) if number.is_integer() and abs(number) < 1e12 else f"{number:.4g}"
        return f"{feature} {shown}" + (f" {unit}" if unit else "")
    return f"{feature} = {value}"


def _size(contribution: float, scale: str) -> str:
    size = abs(contribution)
    if scale in _POINT_SCALES:
        points = 100 * size
        return "less than 0.1 points" if points < 0.05 else f"{points:.1f} points"
    if scale == "log-odds":
        return f"{size:.2f}"
    unit = "" if scale == "output" else f" {scale}"
    return f"{size:.3g}{unit}"


def _what(output: str, scale: str) -> str:
    if scale == "probability":
        return f"the probability of {output}"
    if scale == "log-odds":
        return f"the log-odds of {output}"
    return f"the {output}"


def factor_text(factor: Factor, unit: str | None = None) -> str:
    """One factor as a sentence fragment.

    Examples
    --------
    >>> factor_text(Factor("mean radius", 17.99, 0.041, "malignant", "probability"))
    'mean radius 17.99 raises the probability of malignant by 4.1 points'
    """
    subject = value_text(factor.feature, factor.value, unit)
    if factor.direction == "does not change":
        return f"{subject} does not change {_what(factor.output, factor.scale)}"
    return (f"{subject} {factor.direction} {_what(factor.output, factor.scale)} by "
            f"{_size(factor.contribution, factor.scale)}")


def _output_index(explanation: Explanation, row: int) -> int:
    """The output told for a patient: the only one, or the most probable class."""
    if explanation.values.shape[2] == 1:
        return 0
    return int(np.argmax(explanation.predicted(row)))


def patient_factors(explanation: Explanation, row: int, top: int = 3) -> list[Factor]:
    """A patient's ``top`` features by absolute contribution, largest first.

    Parameters
    ----------
    explanation : Explanation
    row : int
        Position of the patient in ``explanation.data``.
    top : int, default 3

    Returns
    -------
    list of Factor
        For a multi-output explanation, the factors of the patient's most probable output.
    """
    k = _output_index(explanation, row)
    contributions = explanation.values[row, :, k]
    order = np.argsort(-np.abs(contributions), kind="stable")[:top]
    values = explanation.rows[row]
    features = explanation.features
    return [Factor(features[j], _withheld(values[j]), float(contributions[j]),
                   explanation.outputs[k], explanation.scale) for j in order]


def patient_text(explanation: Explanation, row: int, top: int = 3,
                 units: Mapping[str, str | None] | None = None) -> str:
    """The top factors of one patient, joined with semicolons."""
    units = units or {}
    return "; ".join(factor_text(f, units.get(f.feature))
                     for f in patient_factors(explanation, row, top))


def withhold_text(explanation: Explanation, columns: Sequence[str]) -> Explanation:
    """Put :data:`NOTE_PRESENT` or :data:`NOTE_ABSENT` in place of each note's text.

    The contributions are unchanged: a note is explained as a whole (against an empty note
    in the background, :func:`permed.explain.background_sample`), and no sentence, file or
    payload built from the explanation can then repeat what a note says.

    Parameters
    ----------
    explanation : Explanation
        Changed in place.
    columns : sequence of str
        The free-text features (a schema's ``notes``).

    Returns
    -------
    Explanation
        The same object.
    """
    present = [c for c in columns if c in explanation.data.columns]
    if not present:
        return explanation
    data = explanation.data.copy()
    for column in present:
        data[column] = data[column].astype(object).map(note_shown)
    explanation.data = data
    explanation.__dict__.pop("rows", None)  # cached from the text
    return explanation


def explanation_frame(explanation: Explanation, top: int = 3,
                      units: Mapping[str, str | None] | None = None) -> pd.DataFrame:
    """Columns for a prediction table: ``explanation``, ``top_factor_1..top``, what is explained.

    Parameters
    ----------
    explanation : Explanation
    top : int, default 3
    units : mapping of str to str, optional
        Unit of each feature, shown after its value.

    Returns
    -------
    DataFrame
        One row per explained patient: ``explanation`` (the top factors in words),
        ``top_factor_<i>`` (feature names, most influential first) and ``explained_output``
        (the output and scale the contributions are on).
    """
    rows = []
    for i in range(len(explanation.data)):
        factors = patient_factors(explanation, i, top)
        row = {"explanation": patient_text(explanation, i, top, units)}
        row.update({f"top_factor_{j + 1}": factors[j].feature if j < len(factors) else None
                    for j in range(top)})
        row["explained_output"] = explanation.description or explanation.scale
        rows.append(row)
    columns = ["explanation", *[f"top_factor_{j + 1}" for j in range(top)], "explained_output"]
    return pd.DataFrame(rows, columns=columns)
