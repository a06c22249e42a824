"""Per-patient explanations for the service: permed.explain's, with the SHAP explainer built once.

:func:`permed.explain.explain_model` builds a SHAP explainer on every call (for a LightGBM
model that parses every tree: ~0.1 s). A service explains one patient per request, so for the
exact tree explainers the SHAP object is built once at load, with the same settings, and its
values are checked against ``model.explain`` on background rows before it is used. Other
models call ``model.explain`` per request.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from permed.explain import Explanation, choose_method, patient_factors, patient_text
from permed.explain._groups import group_columns, source_features
from permed.explain._model import _description

__all__ = ["SCALES", "Explainer", "explanation_payload"]

_CHECK_ROWS = 3
_TOLERANCE = 1e-6
TOP_FACTORS = 8


SCALES = ("probability", "log-odds")


class Explainer:
    """Explains one model's predictions as ``permed predict --explain`` does.

    Attributes
    ----------
    available : bool
        The model can be explained at all.
    method : str
        The explainer on the probability scale: ``"tree"`` (exact TreeSHAP, cached), the
        library's method, or ``"none"``.
    note : str
        Why explanations are missing.
    """

    def __init__(self, model: Any) -> None:
        self.model = model
        self._shap: dict[str, Any] = {}
        self.method = "none"
        self.available = hasattr(model, "explain") and getattr(model, "background", True) \
            is not None
        self.note = ("" if self.available else
                     f"explanations are not available for this {model.schema.task} model "
                     "(no explanation background in the bundle, or not supported yet)")
        if self.available:
            self.method = self._cache()

    def _cache(self) -> str:
        pipeline = getattr(self.model, "pipeline", None)
        if self.model.schema.task != "diagnose":  # risk, effect: permutation SHAP per request
            return "permutation"
        if pipeline is None or getattr(self.model, "background", None) is None:
            return "library"
        self._owners = source_features(pipeline.steps[0][1])
        for scale in SCALES:
            if choose_method(pipeline, scale) == "tree":
                self._shap[scale] = self._tree_explainer(scale)
                rows = self.model.background.iloc[:_CHECK_ROWS]
                cached = self.explain(rows, scale=scale)
                exact = self.model.explain(rows, scale=scale)
                if not np.allclose(cached.values, exact.values, atol=_TOLERANCE, rtol=0):
                    del self._shap[scale]  # never serve numbers the library would not give
        return "tree" if "probability" in self._shap else choose_method(pipeline)

    def _tree_explainer(self, scale: str) -> Any:
        """The SHAP explainer ``permed.explain`` builds for this model and scale."""
        import shap

        pipeline = self.model.pipeline
        estimator = pipeline[-1]
        if type(estimator).__name__ == "LGBMClassifier" and scale == "probability":
            reference = pipeline[:-1].transform(self.model.background)
            return shap.TreeExplainer(estimator, data=reference, model_output="probability",
                                      feature_perturbation="interventional")
        return shap.TreeExplainer(estimator, feature_perturbation="tree_path_dependent")

    def cached(self, scale: str) -> bool:
        """Whether ``scale`` is explained by the explainer built at load (fast)."""
        return scale in self._shap

    def explain(self, frame: pd.DataFrame, transformed: np.ndarray | None = None,
                scale: str = "probability") -> Explanation:
        """The explanation of some patients.

        ``frame`` holds their features (typed, as :func:`check_patient` returns them, or as in
        a table), ``transformed`` their preprocessed features when already computed.
        """
        model = self.model
        if scale not in self._shap:
            explained: Explanation = model.explain(frame, scale=scale)
            return explained
        names = model.schema.names
        if transformed is None:
            features = model.schema.coerce(frame)
            transformed = model.pipeline[:-1].transform(features)
        else:  # the scorer's table: the features last, under an object index (fast to read)
            features = frame.iloc[:, frame.shape[1] - len(names):]
        classes = model.classes
        indices = [1] if len(classes) == 2 else list(range(len(classes)))
        result = self._shap[scale](transformed, check_additivity=False)
        values = np.asarray(result.values)
        base = np.asarray(result.base_values)
        if values.ndim == 2:
            values, base = values[:, :, None], base.reshape(len(transformed), 1)
        else:
            values = values[:, :, indices]
            base = base.reshape(len(transformed), -1)[:, indices]
        grouped = group_columns(values, self._owners, names)
        return Explanation(grouped, base, features.reset_index(drop=True),
                           [str(classes[k]) for k in indices], scale, "tree",
                           _description(model, scale))


def _json_value(value: Any) -> Any:
    if value is None or (isinstance(value, float | np.floating) and np.isnan(value)):
        return None
    if isinstance(value, np.generic):
        return value.item()
    return value


def explanation_payload(explanation: Explanation, row: int, units: dict[str, str | None],
                        top: int = TOP_FACTORS) -> dict[str, Any]:
    """One patient's explanation as JSON: the top factors (largest first), the rest summed.

    ``base_value + sum(contributions) + other`` equals ``value``, the output explained.
    """
    n_features = explanation.values.shape[1]
    factors = patient_factors(explanation, row, n_features)
    shown, rest = factors[:top], factors[top:]
    predicted = explanation.predicted()
    k = explanation.outputs.index(factors[0].output) if factors else 0
    return {
        "method": explanation.method,
        "scale": explanation.scale,
        "output": explanation.outputs[k],
        "description": explanation.description,
        "base_value": float(explanation.base_values[row, k]),
        "value": float(predicted[row, k]),
        "factors": [{"feature": f.feature, "value": _json_value(f.value),
                     "contribution": f.contribution, "direction": f.direction,
                     "text": patient_text_one(f, units)} for f in shown],
        "other": float(sum(f.contribution for f in rest)),
        "text": patient_text(explanation, row, 3, units),
    }


def patient_text_one(factor: Any, units: dict[str, str | None]) -> str:
    from permed.explain import factor_text

    return factor_text(factor, units.get(factor.feature))
