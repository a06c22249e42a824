"""The fitted diagnose model in a bundle: schema check, pipeline, calibration, threshold."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from permed.study import FittedSchema
from permed.uncertainty import ConformalSets, OutOfDistribution, ProbabilityCalibrator
from permed.utils.patterns import pattern_texts
from permed.workflow._referral import referral, shared_reasons

if TYPE_CHECKING:
    from permed.explain import CounterfactualSearch, Explanation

__all__ = ["ClassLabels", "DiagnoseModel", "probability_columns"]


def probability_columns(classes: list[str]) -> list[str]:
    """Output column names for class probabilities: ``prob_<class>``."""
    return [f"prob_{c}" for c in classes]


class ClassLabels:
    """The classes of a diagnose model (its schema's) and the label of each row of
    probabilities: the decision threshold on the positive class (binary) or the most probable
    class. Shared by the tabular, image and fusion models (``schema``, ``threshold``)."""

    schema: FittedSchema
    threshold: float | None

    @property
    def classes(self) -> list[str]:
        return self.schema.classes

    def labels(self, proba: np.ndarray) -> np.ndarray:
        """Class indices: the threshold on the positive class (binary) or the most probable."""
        if len(self.classes) == 2 and self.threshold is not None:
            return (proba[:, 1] >= self.threshold).astype(int)
        return np.argmax(proba, axis=1)


@dataclass
class DiagnoseModel(ClassLabels):
    """A trained diagnose model, ready to score new patients."""

    name: str
    schema: FittedSchema
    pipeline: Pipeline
    calibrator: ProbabilityCalibrator
    threshold: float | None
    conformal: ConformalSets | None = None
    ood: OutOfDistribution | None = None
    # SHAP background (development rows resampled column by column: no real record) and the
    # study's actionable features with their monotone direction; set by the explanation step
    background: pd.DataFrame | None = None
    actionable: dict[str, str | None] | None = None

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        """Calibrated probabilities (n, K) for a table that passed ``schema.check``."""
        features = self.schema.coerce(frame)
        return self.calibrator.transform(self.pipeline.predict_proba(features))

    def predict_frame(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Probabilities, label and out-of-range flags for each row of a new table.

        Raises
        ------
        SchemaMismatchError
            When columns are missing or numeric columns hold text.
        """
        self.schema.check(frame)
        features = self.schema.coerce(frame)
        transformed = self.pipeline[:-1].transform(features)
        return self.frame_output(frame, features, self.pipeline[-1].predict_proba(transformed),
                                 transformed)

    def frame_output(self, frame: pd.DataFrame, features: pd.DataFrame, raw: np.ndarray,
                     transformed: np.ndarray | None) -> pd.DataFrame:
        """``predict_frame``'s table from uncalibrated probabilities already computed.

        ``features`` is ``schema.coerce(frame)``; ``raw`` the pipeline's probabilities (native
        or ONNX Runtime); ``transformed`` the preprocessed matrix (for the out-of-distribution
        check; computed here when None).
        """
        proba = self.calibrator.transform(raw)
        out = pd.DataFrame(index=frame.index)
        if self.schema.id and self.schema.id in frame.columns:
            out[self.schema.id] = frame[self.schema.id].to_numpy()
        for column, values in zip(probability_columns(self.classes), proba.T, strict=True):
            out[column] = values
        out["predicted"] = np.asarray(self.classes, dtype=object)[self.labels(proba)]
        flagged = self.schema.out_of_range(features)
        out["out_of_range"] = flagged != ""
        out["out_of_range_features"] = flagged
        flags = self.abstention(frame, proba, flagged, features=features, transformed=transformed)
        for column, values in flags.items():
            out[column] = values
        return out.reset_index(drop=True)

    def prediction_sets(self, proba: np.ndarray) -> list[str]:
        """The conformal set of each patient as ``"a|b"`` ('' without a conformal step)."""
        return pattern_texts(self._members(proba), self.classes, "|").tolist()

    def _members(self, proba: np.ndarray) -> np.ndarray:
        """Which classes each patient's conformal set holds (none without a conformal step)."""
        if self.conformal is None:
            return np.zeros(proba.shape, dtype=bool)
        return np.asarray(self.conformal.predict_set(proba), dtype=bool)

    def abstention(self, frame: pd.DataFrame, proba: np.ndarray, out_of_range: pd.Series, *,
                   features: pd.DataFrame | None = None,
                   transformed: np.ndarray | None = None) -> dict[str, object]:
        """Prediction set, out-of-distribution flag and "refer to clinician" with its reason.

        A patient is referred when the conformal set holds more than one class (the model
        cannot single out a diagnosis at the stated coverage), when they are unlike the
        development patients (a value outside the training range, or an unusual combination),
        or when most features are missing (see :mod:`permed.workflow._referral`).
        ``features`` (``schema.coerce(frame)``) and ``transformed`` (its preprocessed matrix)
        are computed when not given. Vectorized: reasons are written only for referred rows.
        """
        members = self._members(proba)
        uncertain = members.sum(axis=1) > 1
        unusual = np.zeros(len(frame), dtype=bool)
        ood_text = np.full(len(frame), "", dtype=object)
        if self.ood is not None:
            features = self.schema.coerce(frame) if features is None else features
            if transformed is None:
                transformed = self.pipeline[:-1].transform(features)
            unusual = np.asarray(self.ood.flag(transformed), dtype=bool)
            if unusual.any():
                reasons = self.ood.reasons(features[self.schema.numeric][unusual])
                ood_text[unusual] = [f"unusual combination of values ({r})" for r in reasons]
        set_text = pattern_texts(members & uncertain[:, None], self.classes, " and ",
                                 "uncertain between {}")
        ranges, gaps = shared_reasons(self.schema, frame, out_of_range)
        return {"prediction_set": pattern_texts(members, self.classes, "|"),
                "out_of_distribution": unusual,
                **referral([set_text, ranges, gaps, ood_text])}

    def explain(self, frame: pd.DataFrame, **options: Any) -> Explanation:
        """SHAP values per original feature; see :func:`permed.explain.explain_model`."""
        from permed.explain import explain_model

        return explain_model(self, frame, **options)

    def explain_frame(self, frame: pd.DataFrame, top: int = 3, **options: Any) -> pd.DataFrame:
        """``explanation``, ``top_factor_1..top`` and ``explained_output`` for each row.

        See :func:`permed.explain.explain_model_frame`.
        """
        from permed.explain import explain_model_frame

        return explain_model_frame(self, frame, top, **options)

    def counterfactual(self, patient: pd.DataFrame, **options: Any) -> CounterfactualSearch:
        """Smallest actionable changes across the threshold; see
        :func:`permed.explain.counterfactual`."""
        from permed.explain import counterfactual

        return counterfactual(self, patient, **options)
