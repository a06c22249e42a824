"""What the routers call: validate, score, explain, log, and word the answer.

Routers stay thin: they parse the request, call one function here and return its result.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from permed.privacy import Key
from permed.privacy._signing import canonical_json
from permed.serve._explain import TOP_FACTORS, explanation_payload
from permed.serve._registry import ServedModel
from permed.serve._storage import Principal, Storage
from permed.serve._validation import PatientError, check_patient

__all__ = ["Answered", "BatchTooLarge", "predict_patients", "summary_text"]


@dataclass
class Answered:
    """A predict response's body, and its prediction log rows (stored with the request's
    audit event, before the answer goes out: see :mod:`permed.serve._journal`)."""

    body: dict[str, Any]
    predictions: list[dict[str, Any]]


class BatchTooLarge(ValueError):
    """More patients than the service accepts in one request (413)."""


@lru_cache(maxsize=4)
def _keyed(key: Key) -> hmac.HMAC:
    """HMAC-SHA256 with the input key, ready to copy (keying costs more than a patient)."""
    return hmac.new(key.derive("serve-input"), digestmod=hashlib.sha256)


def _digest(values: dict[str, Any], key: Key) -> str:
    """A keyed digest of a patient's inputs: links repeated requests, reveals nothing."""
    mac = _keyed(key).copy()
    mac.update(canonical_json(values))
    return f"hmac-sha256:{mac.hexdigest()}"


def _fraction(p: Any) -> str:
    return f"{100 * float(p):.1f}%"


def summary_text(served: ServedModel, answer: dict[str, Any]) -> str:
    """The answer in one line, for a clinician."""
    if served.task == "diagnose" and "predicted" in answer:
        label = answer["predicted"]
        text = (f"{served.schema.target} = {label} "
                f"(probability {_fraction(answer.get(f'prob_{label}', 0.0))})")
    elif served.task == "risk" and "risk_group" in answer:
        horizons = [c for c in answer if c.startswith("risk_at_")]
        text = f"{answer['risk_group']} risk"
        if horizons:
            text += f"; risk by time {horizons[-1][8:]}: {_fraction(answer[horizons[-1]])}"
    elif served.task == "treat" and "recommended" in answer:
        text = f"recommended: {answer['recommended']}"
        if answer.get("advantage") is not None:
            text += (f" (advantage {answer['advantage']:.3g}, 95% CI "
                     f"{answer['advantage_low']:.3g} to {answer['advantage_high']:.3g})")
    else:
        text = ", ".join(f"{k} = {v}" for k, v in answer.items())
    if answer.get("refer_to_clinician"):
        text += "; refer to clinician"
    return text


def _uncertainty(served: ServedModel, answer: dict[str, Any]) -> dict[str, Any]:
    """Every field of the ``Uncertainty`` schema (the predict route writes its answer itself)."""
    none = {"prediction_set": None, "coverage": None, "intervals": None}
    if "prediction_set" in answer:
        coverage = served.metrics.get("uncertainty", {}).get("coverage_target")
        members = [m for m in str(answer["prediction_set"] or "").split("|") if m]
        return {**none, "prediction_set": members or None, "coverage": coverage,
                "note": "conformal prediction set: it holds the true class with the stated "
                        "coverage"}
    intervals = {}
    for column in answer:
        if f"{column}_low" in answer and f"{column}_high" in answer:
            intervals[column] = {"value": answer[column], "low": answer[f"{column}_low"],
                                 "high": answer[f"{column}_high"]}
    if intervals:
        return {**none, "intervals": intervals, "note": "95% confidence intervals"}
    return {**none, "note": f"this {served.task} model gives no per-patient interval"}


def _flags(answer: dict[str, Any], missing: list[str]) -> dict[str, Any]:
    features = str(answer.get("out_of_range_features") or "")
    return {"out_of_range": bool(answer.get("out_of_range", False)),
            "out_of_range_features": [f for f in features.split(";") if f],
            "out_of_distribution": answer.get("out_of_distribution"),
            "low_overlap": answer.get("low_overlap"),
            "missing_features": missing,
            "refer_to_clinician": bool(answer.get("refer_to_clinician", False)),
            "refer_reason": str(answer.get("refer_reason") or "")}


def validate_patients(served: ServedModel, patients: list[dict[str, Any]], batch: bool
                      ) -> tuple[list[dict[str, Any]], list[list[str]]]:
    """Typed patients and their missing features; every bad field of every patient at once.

    Raises
    ------
    PatientError
    """
    typed, missing, errors = [], [], []
    for i, patient in enumerate(patients):
        where = f"patients[{i}]." if batch else "patient."
        try:
            values, absent = check_patient(served.schema, patient, where)
        except PatientError as exc:
            errors.extend(exc.errors)
            continue
        typed.append(values)
        missing.append(absent)
    if errors:
        raise PatientError(errors)
    return typed, missing


def predict_patients(served: ServedModel, patients: list[dict[str, Any]], *, batch: bool,
                     explain: bool, principal: Principal, key: Key,
                     max_batch: int, top: int = TOP_FACTORS,
                     missing: list[list[str]] | None = None,
                     scale: str = "probability") -> Answered:
    """Validate, score and explain some patients: the body of a predict response and its
    prediction log rows.

    Raises
    ------
    BatchTooLarge
        More than ``max_batch`` patients.
    PatientError
        A field is unknown or has a bad value.
    """
    if len(patients) > max_batch:
        raise BatchTooLarge(f"{len(patients)} patients in one request; the limit is {max_batch}:"
                            " split the batch")
    if missing is None:
        typed, missing = validate_patients(served, patients, batch)
    else:
        typed = patients
    answers, transformed, table, curves = served.scorer.score(typed)
    explanation, note = None, None
    explainer = served.explainer
    if explain and not explainer.available:
        note = explainer.note
    elif explain and transformed is not None and explainer.cached(scale):
        explanation = explainer.explain_patients(typed, transformed, scale)
    elif explain:  # the library's explainer, or the cached one on the native path
        explanation = explainer.explain(table if table is not None
                                        else served.scorer.frame(typed), scale)
    identifier = served.schema.id  # the client's patient id is answered, never stored
    rows = Storage.prediction_rows(principal, served.name, served.version, served.task,
                                   [(_digest(t, key), {k: v for k, v in a.items()
                                                       if k != identifier})
                                    for t, a in zip(typed, answers, strict=True)])
    points = served.curve_points(curves) if curves is not None else None
    results = []
    for i, answer in enumerate(answers):
        results.append({
            "prediction_id": rows[i]["id"],
            "summary": summary_text(served, answer),
            "answer": answer,
            "uncertainty": _uncertainty(served, answer),
            "flags": _flags(answer, missing[i]),
            "explanation": (explanation_payload(explanation, i, served.units, top)
                            if explanation is not None else None),
            "explanation_note": note,
            "survival_curve": points[i] if points is not None else None,
        })
    return Answered({"model": served.reference(), "results": results}, rows)
