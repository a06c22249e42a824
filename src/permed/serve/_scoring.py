"""Score validated patients with a loaded model: ONNX Runtime where verified, else native.

The native path is the model's own ``predict_frame`` (any task). The ONNX path is for
diagnose models with a verified ``model.onnx``: probabilities and preprocessed features come
from ONNX Runtime, and calibration, the threshold, the conformal set, the out-of-range and
out-of-distribution flags are applied exactly as ``DiagnoseModel.predict_frame`` does. At load
both paths score the check rows and the ONNX path is only used when every column agrees
(probabilities within :data:`permed.bundle._onnx.TOLERANCE`).
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
from sklearn.covariance import LedoitWolf

from permed.bundle._onnx import TOLERANCE, OnnxModel
from permed.serve._images import image_columns, inline_images
from permed.study._schema import MAX_CATEGORIES_KEPT
from permed.workflow._referral import missing_reason, range_reason

__all__ = ["Scored", "Scorer", "json_safe"]


class Scored(NamedTuple):
    """What :meth:`Scorer.score` computed: the answers (the ``predict_frame`` columns); what
    the explainer reuses: the preprocessed features on the ONNX path, the patients' table
    (``Scorer.frame(..., numbers=True)``) on the native one; and a risk model's survival
    curves (``RiskModel.predict_with_curves``), else None."""

    answers: list[dict[str, Any]]
    transformed: np.ndarray | None
    table: pd.DataFrame | None
    curves: pd.DataFrame | None = None


def json_safe(value: Any) -> Any:
    """numpy scalars as Python values, NaN as None."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    columns = list(frame.columns)
    return [{c: json_safe(v) for c, v in zip(columns, row, strict=True)}
            for row in frame.itertuples(index=False, name=None)]


def _out_of_range(schema: Any, values: dict[str, Any]) -> str:
    """As ``FittedSchema.out_of_range`` for one typed patient."""
    names = []
    for feature in schema.features:
        value = values.get(feature.name)
        if value is None:
            continue
        if feature.kind == "numeric":
            outside = value < feature.min or value > feature.max
        elif feature.categories is not None and len(feature.categories) < MAX_CATEGORIES_KEPT:
            outside = value not in feature.categories
        else:
            continue
        if outside:
            names.append(feature.name)
    return ";".join(names)


class Scorer:
    """Scores typed patients (see :func:`permed.serve._validation.check_patient`).

    Parameters
    ----------
    model : object
        A loaded permed model (``predict_frame``).
    onnx : OnnxModel, optional
        A verified ONNX model of a diagnose pipeline.
    """

    def __init__(self, model: Any, onnx: OnnxModel | None = None) -> None:
        self.model = model
        self.schema = model.schema
        self.onnx = onnx
        self._precision: np.ndarray | None = None
        self.note = ""
        if onnx is not None:
            self.note = self._check_fast()

    @property
    def engine(self) -> str:
        return "onnx" if self.onnx is not None else "native"

    def frame(self, patients: list[dict[str, Any]], numbers: bool = False) -> pd.DataFrame:
        """The patients as a table (the id column first when given).

        Columns hold objects, except with ``numbers``: numeric features as floats, so that the
        model's schema has no text to parse when it types the table itself (native scoring,
        explanations and survival curves computed from the table).
        """
        names = self.schema.names
        if self.schema.id and any(self.schema.id in p for p in patients):
            names = [self.schema.id, *names]
        values = np.empty((len(patients), len(names)), dtype=object)
        for i, patient in enumerate(patients):
            values[i] = [patient.get(n) for n in names]
        # no pandas inference per column (nor of an Arrow-backed text index from a list of
        # names): it costs more than scoring
        columns = self._columns(tuple(names))
        if not numbers:
            return pd.DataFrame(values, columns=columns, dtype=object)
        # the numbers as one float block (None -> NaN), the other columns put in their places:
        # a table of objects converted column by column cost 8 ms for one patient, this 0.7 ms
        numeric, other = self._positions(tuple(names))
        table = pd.DataFrame(values[:, numeric].astype(float), columns=columns[numeric])
        for j in other:
            table.insert(int(j), names[j], pd.Series(values[:, j], dtype=object, copy=False))
        return table

    @functools.cache  # noqa: B019 - one Scorer per served model, alive as long as the service
    def _columns(self, names: tuple[str, ...]) -> pd.Index:
        return pd.Index(np.array(names, dtype=object), dtype=object)

    @functools.cache  # noqa: B019 - as _columns
    def _positions(self, names: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
        """Positions of the numeric features among ``names``, and of the other columns."""
        numeric = np.isin(np.array(names, dtype=object), list(self.schema.numeric))
        return np.flatnonzero(numeric), np.flatnonzero(~numeric)

    def score(self, patients: list[dict[str, Any]]) -> Scored:
        """The patients' answers, and what was built on the way (:class:`Scored`)."""
        if self.onnx is None:
            frame = self.frame(patients, numbers=True)
            answers, curves = self._native(frame)
            return Scored(answers, None, frame, curves)
        answers, transformed = self._fast(patients)
        return Scored(answers, transformed, None)

    def _native(self, frame: pd.DataFrame
                ) -> tuple[list[dict[str, Any]], pd.DataFrame | None]:
        """The model's own ``predict_frame`` (which leaves ``frame`` as it was), with a risk
        model's curves; images sent inline are read from temporary files, and each answer
        names them by media type and size instead of echoing them."""
        columns = image_columns(self.schema)
        curves = None
        with inline_images(frame, columns) as (readable, shown):
            if hasattr(self.model, "predict_with_curves"):
                answered, curves = self.model.predict_with_curves(readable)
            else:
                answered = self.model.predict_frame(readable)
        answers = _records(answered)
        for answer, images in zip(answers, shown.to_dict("records"), strict=True):
            answer.update({c: text for c, text in images.items() if c in answer})
        return answers, curves

    def _unusual(self, transformed: np.ndarray) -> np.ndarray:
        """``OutOfDistribution.flag`` without scikit-learn's per-call input checks."""
        ood = self.model.ood
        if ood is None:
            return np.zeros(len(transformed), dtype=bool)
        covariance = ood.covariance_
        if not isinstance(covariance, LedoitWolf):  # ShrunkMahalanobis: no checks either
            return np.asarray(~(covariance.mahalanobis(transformed) <= ood.cutoff_))
        if self._precision is None:  # a bundle saved before ShrunkMahalanobis
            self._precision = covariance.get_precision()
        centred = transformed - covariance.location_
        distances = ((centred @ self._precision) * centred).sum(axis=1)
        return np.asarray(~(distances <= ood.cutoff_))  # NaN: a distance that overflowed

    def _fast(self, patients: list[dict[str, Any]], onnx: OnnxModel | None = None
              ) -> tuple[list[dict[str, Any]], np.ndarray]:
        model, schema = self.model, self.schema
        columns = {f.name: [p.get(f.name) for p in patients] for f in schema.features}
        raw, transformed = (onnx or self.onnx).run(columns)  # type: ignore[union-attr]
        proba = model.calibrator.transform(raw)
        labels = np.asarray(model.classes, dtype=object)[model.labels(proba)]
        sets = model.prediction_sets(proba)
        unusual = self._unusual(transformed)
        answers = []
        for i, patient in enumerate(patients):
            answer: dict[str, Any] = {}
            if schema.id and schema.id in patient:
                answer[schema.id] = patient[schema.id]
            answer.update({f"prob_{c}": float(p) for c, p in zip(model.classes, proba[i],
                                                                  strict=True)})
            flagged = _out_of_range(schema, patient)
            answer.update({"predicted": labels[i], "out_of_range": flagged != "",
                           "out_of_range_features": flagged, "prediction_set": sets[i],
                           "out_of_distribution": bool(unusual[i])})
            answer.update(self._refer(patient, sets[i], flagged, bool(unusual[i])))
            answers.append(answer)
        return answers, transformed

    def _refer(self, patient: dict[str, Any], members: str, flagged: str,
               unusual: bool) -> dict[str, Any]:
        """``refer_to_clinician`` and its reason, worded as ``DiagnoseModel.abstention``."""
        why = []
        if members.count("|") >= 1:
            why.append(f"uncertain between {members.replace('|', ' and ')}")
        features = self.schema.features
        missing = sum(patient.get(f.name) is None for f in features)
        why.extend(r for r in (range_reason(flagged), missing_reason(missing, len(features))) if r)
        if unusual:
            numeric = pd.DataFrame([{n: patient.get(n) for n in self.schema.numeric}],
                                   columns=self.schema.numeric, dtype=float)
            why.append(f"unusual combination of values ({self.model.ood.reasons(numeric)[0]})")
        reason = "; ".join(why)
        return {"refer_to_clinician": bool(reason), "refer_reason": reason}

    def _check_fast(self) -> str:
        """Use the ONNX path only if it gives ``predict_frame``'s answers on the check rows."""
        from permed.bundle._onnx import _check_rows

        rows = _check_rows(self.model)
        typed = self.schema.coerce(rows)
        patients = [{k: json_safe(v) if v is not None else None for k, v in row.items()}
                    for row in typed.astype(object).where(typed.notna(), None)
                    .to_dict("records")]
        native = self.model.predict_frame(rows)
        fast = pd.DataFrame(self._fast(patients)[0])[list(native.columns)]
        for column in native.columns:
            a, b = native[column].to_numpy(), fast[column].to_numpy()
            same = (np.allclose(a.astype(float), b.astype(float), atol=TOLERANCE, rtol=0)
                    if column.startswith("prob_") else bool(np.all(a == b)))
            if not same:
                self.onnx = None
                return f"ONNX answers differ from the native model in '{column}': native"
        return ""
