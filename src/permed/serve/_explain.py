"""Per-patient explanations for the service: permed.explain's, with the SHAP explainer built once.

:func:`permed.explain.explain_model` builds a SHAP explainer on every call (for a LightGBM
model that parses every tree: ~0.1 s). A service explains one patient per request, so for the
exact tree explainers the SHAP object is built once at load, with the same settings, and its
values are checked against ``model.explain`` on background rows before it is used. Other
models call ``model.explain`` per request.
"""

from __future__ import annotations

import ctypes
import functools
import threading
import weakref
from typing import Any

import numpy as np
import pandas as pd

from permed.explain import (
    Explanation,
    choose_method,
    factor_text,
    outcome_label,
    patient_factors,
)
from permed.explain._groups import column_owners, source_features, sum_columns
from permed.explain._model import _description, calibrated_contributions
from permed.explain._shap import _interventional, _snap
from permed.explain._text import note_shown, withhold_text

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
        self._owners = column_owners(source_features(pipeline.steps[0][1]),
                                     self.model.schema.names)
        for scale in SCALES:
            if choose_method(pipeline, scale) == "tree":
                self._shap[scale] = self._tree_explainer(scale)
                rows = self.model.background.iloc[:_CHECK_ROWS]
                cached = self.explain(rows, scale=scale)
                exact = self.model.explain(rows, scale=scale)
                if not (np.allclose(cached.values, exact.values, atol=_TOLERANCE, rtol=0)
                        and np.allclose(cached.base_values, exact.base_values,
                                        atol=_TOLERANCE, rtol=0)):
                    del self._shap[scale]  # never serve numbers the library would not give
        return "tree" if "probability" in self._shap else choose_method(pipeline)

    def _tree_explainer(self, scale: str) -> Any:
        """What ``permed.explain`` computes for this model and scale, built once."""
        import shap

        pipeline = self.model.pipeline
        estimator = pipeline[-1]
        if type(estimator).__name__ == "LGBMClassifier":
            if scale == "log-odds":
                return _LightGBMContributions(estimator.booster_)
            # the library's explainer, with its thresholds: values within float32 rounding
            # of a split are moved to LightGBM's side of it (permed.explain._shap._snap)
            reference = pipeline[:-1].transform(self.model.background)
            thresholds, explainer = _interventional(estimator, reference)
            return _Shap(explainer, thresholds)
        return _Shap(shap.TreeExplainer(estimator, feature_perturbation="tree_path_dependent"))

    def cached(self, scale: str) -> bool:
        """Whether ``scale`` is explained by the explainer built at load (fast)."""
        return scale in self._shap

    def explain(self, frame: pd.DataFrame, scale: str = "probability") -> Explanation:
        """The explanation of the patients of a table (their features, typed as
        :func:`check_patient` returns them, or as in a table)."""
        model = self.model
        if scale not in self._shap:
            explained: Explanation = model.explain(frame, scale=scale)
            return explained
        features = model.schema.coerce(frame)
        transformed = model.pipeline[:-1].transform(features)
        return withhold_text(Explanation(**self._contributions(transformed, scale),
                                         data=features.reset_index(drop=True)),
                             model.schema.notes)

    def explain_patients(self, patients: list[dict[str, Any]], transformed: np.ndarray,
                         scale: str) -> Explanation:
        """:meth:`explain` for typed patients whose preprocessed features are known (ONNX
        computed them), on a ``scale`` that is :meth:`cached`, without building their table (a
        pandas table of one patient costs more than the words of their explanation)."""
        names, notes = self.model.schema.names, set(self.model.schema.notes)
        return _PatientsExplanation(**self._contributions(transformed, scale), features=names,
                                    rows=[[note_shown(patient.get(n)) if n in notes
                                           else patient.get(n) for n in names]
                                          for patient in patients])

    def _contributions(self, transformed: np.ndarray, scale: str) -> dict[str, Any]:
        """The cached explainer's numbers for some patients, grouped by original feature:
        every field of an :class:`Explanation` but its data."""
        model = self.model
        classes = model.classes
        indices = [1] if len(classes) == 2 else list(range(len(classes)))
        values, base = self._shap[scale](transformed)
        if values.shape[2] > 1:
            values, base = values[:, :, indices], base[:, indices]
        values, base = calibrated_contributions(model, sum_columns(values, self._owners), base,
                                                scale)
        return {"values": values, "base_values": base,
                "outputs": [outcome_label(model.schema.target, str(classes[k]))
                            for k in indices],
                "scale": scale, "method": "tree", "description": _description(model, scale)}


class _PatientsExplanation(Explanation):
    """An :class:`Explanation` of patients held as Python values, one list per patient in
    ``features`` order: its ``data`` table is built only if read."""

    def __init__(self, *, values: np.ndarray, base_values: np.ndarray, outputs: list[str],
                 scale: str, method: str, description: str, features: list[str],
                 rows: list[list[Any]]) -> None:
        self.values, self.base_values, self.outputs = values, base_values, outputs
        self.scale, self.method, self.description = scale, method, description
        self.features, self.rows = features, rows  # set, not computed from the table

    @functools.cached_property
    def data(self) -> pd.DataFrame:  # type: ignore[override]
        return pd.DataFrame(self.rows, columns=self.features, dtype=object)


class _Shap:
    """A SHAP tree explainer's values, shape (n, features, outputs), and base values, shape
    (n, outputs) (``shap_values``, not ``__call__``: the same numbers without building a
    ``shap.Explanation``)."""

    def __init__(self, explainer: Any, thresholds: list[np.ndarray] | None = None) -> None:
        self.explainer = explainer
        self.thresholds = thresholds

    def __call__(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # noqa: N803
        if self.thresholds is not None:
            X = _snap(X, self.thresholds)  # noqa: N806
        values = np.asarray(self.explainer.shap_values(X, check_additivity=False))
        if values.ndim == 2:
            values = values[:, :, None]
        expected = np.asarray(self.explainer.expected_value, dtype=float).reshape(-1)
        return values, np.tile(expected[-values.shape[2]:], (len(X), 1))


class _LightGBMContributions:
    """LightGBM's own path-dependent TreeSHAP (``pred_contrib``, what shap calls for these
    models) on one thread: OpenMP threads cost more than one patient's trees, and keep a core
    spinning after each request.

    One patient at a time goes through LightGBM's single-row C API
    (``LGBM_BoosterPredictForMatSingleRowFast``), set up once here: ``Booster.predict`` sets up
    a predictor on every call, which for one patient costs about as much as its trees
    (0.55 against 0.33 ms per patient, measured with the caches cold as between requests).
    The same numbers either way; the Explainer checks them against ``model.explain`` at load.
    """

    def __init__(self, booster: Any) -> None:
        self.booster = booster
        self._single = _SingleRow.contributions(booster)

    def __call__(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # noqa: N803
        contributions = None
        if len(X) == 1 and self._single is not None and X.shape[1] == self._single.features:
            contributions = self._single(X[0])
        if contributions is None:
            contributions = self.booster.predict(X, pred_contrib=True, num_threads=1)
        per_output = contributions.reshape(len(X), -1, X.shape[1] + 1).transpose(0, 2, 1)
        return per_output[:, :-1, :], per_output[:, -1, :]


class _SingleRow:
    """A LightGBM ``FastConfig``: one-row predictions with the setup done once.

    The handle holds the buffers of one prediction at a time, so calls are serialized, and it
    is freed with this object (the booster is kept alive as long).
    """

    _CONTRIB = 3  # C_API_PREDICT_CONTRIB
    _FLOAT64 = 1  # C_API_DTYPE_FLOAT64

    def __init__(self, booster: Any, library: Any, handle: ctypes.c_void_p, features: int,
                 width: int) -> None:
        self.booster = booster
        self.features = features  # the row's length: the C API reads exactly this many values
        self.width = width  # and writes this many
        self._library = library
        self._handle = handle
        self._lock = threading.Lock()
        weakref.finalize(self, library.LGBM_FastConfigFree, handle)

    @classmethod
    def contributions(cls, booster: Any) -> _SingleRow | None:
        """Set up ``pred_contrib`` for one row; None where this LightGBM does not offer it."""
        try:
            from lightgbm.basic import _LIB, _c_str

            handle = ctypes.c_void_p()
            features = booster.num_feature()
            width = ctypes.c_int64()
            failed = _LIB.LGBM_BoosterCalcNumPredict(
                booster._handle, ctypes.c_int(1), ctypes.c_int(cls._CONTRIB), ctypes.c_int(0),
                ctypes.c_int(-1), ctypes.byref(width))
            failed = failed or _LIB.LGBM_BoosterPredictForMatSingleRowFastInit(
                booster._handle, ctypes.c_int(cls._CONTRIB), ctypes.c_int(0), ctypes.c_int(-1),
                ctypes.c_int(cls._FLOAT64), ctypes.c_int32(features), _c_str("num_threads=1"),
                ctypes.byref(handle))
        except (ImportError, AttributeError, OSError):
            return None
        if failed:
            return None
        return cls(booster, _LIB, handle, features, width.value)

    def __call__(self, row: np.ndarray) -> np.ndarray | None:
        """The row's output, shape (1, width); None if LightGBM reports a failure."""
        row = np.ascontiguousarray(row, dtype=np.float64)
        out = np.empty(self.width)
        length = ctypes.c_int64()
        with self._lock:
            failed = self._library.LGBM_BoosterPredictForMatSingleRowFast(
                self._handle, row.ctypes.data_as(ctypes.c_void_p), ctypes.byref(length),
                out.ctypes.data_as(ctypes.POINTER(ctypes.c_double)))
        return None if failed or length.value != self.width else out[None, :]


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
    factors = patient_factors(explanation, row, max(top, 3))
    shown = factors[:top]
    predicted = explanation.predicted(row)
    k = explanation.outputs.index(factors[0].output) if factors else 0
    texts = [factor_text(f, units.get(f.feature)) for f in factors]
    other = explanation.values[row, :, k].sum() - sum(f.contribution for f in shown)
    return {
        "method": explanation.method,
        "scale": explanation.scale,
        "output": explanation.outputs[k],
        "description": explanation.description,
        "base_value": float(explanation.base_values[row, k]),
        "value": float(predicted[k]),
        "factors": [{"feature": f.feature, "value": _json_value(f.value),
                     "contribution": f.contribution, "direction": f.direction,
                     "text": text} for f, text in zip(shown, texts, strict=False)],
        "other": float(other),
        "text": "; ".join(texts[:3]),  # as permed.explain.patient_text
    }
