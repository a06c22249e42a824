"""The fitted diagnose model in a bundle: schema check, pipeline, calibration, threshold."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from permed.study import FittedSchema
from permed.uncertainty import ProbabilityCalibrator

__all__ = ["DiagnoseModel", "probability_columns"]


def probability_columns(classes: list[str]) -> list[str]:
    """Output column names for class probabilities: ``prob_<class>``."""
    return [f"prob_{c}" for c in classes]


@dataclass
class DiagnoseModel:
    """A trained diagnose model, ready to score new patients."""

    name: str
    schema: FittedSchema
    pipeline: Pipeline
    calibrator: ProbabilityCalibrator
    threshold: float | None

    @property
    def classes(self) -> list[str]:
        return self.schema.classes

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        """Calibrated probabilities (n, K) for a table that passed ``schema.check``."""
        features = self.schema.coerce(frame)
        return self.calibrator.transform(self.pipeline.predict_proba(features))

    def labels(self, proba: np.ndarray) -> np.ndarray:
        """Class indices: the threshold on the positive class (binary) or the most probable."""
        if len(self.classes) == 2 and self.threshold is not None:
            return (proba[:, 1] >= self.threshold).astype(int)
        return np.argmax(proba, axis=1)

    def predict_frame(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Probabilities, label and out-of-range flags for each row of a new table.

        Raises
        ------
        SchemaMismatchError
            When columns are missing or numeric columns hold text.
        """
        self.schema.check(frame)
        proba = self.predict_proba(frame)
        out = pd.DataFrame(index=frame.index)
        if self.schema.id and self.schema.id in frame.columns:
            out[self.schema.id] = frame[self.schema.id].to_numpy()
        for column, values in zip(probability_columns(self.classes), proba.T, strict=True):
            out[column] = values
        out["predicted"] = np.asarray(self.classes, dtype=object)[self.labels(proba)]
        flagged = self.schema.out_of_range(frame)
        out["out_of_range"] = flagged != ""
        out["out_of_range_features"] = flagged
        return out.reset_index(drop=True)
