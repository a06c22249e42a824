"""The models a service serves: loaded, verified and prepared once, at startup.

Nothing is read from disk per request: the model, its schema, metrics, report and ONNX session
are held in memory.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from permed.bundle import BUNDLE_DIR, load_bundle
from permed.bundle._onnx import load_onnx
from permed.exceptions import BundleError
from permed.privacy import read_bytes
from permed.serve._explain import Explainer
from permed.serve._scoring import Scorer
from permed.study import FittedSchema

__all__ = ["ServedModel", "load_models"]

log = logging.getLogger("permed.serve")
_CARD_KEYS = ("data", "target", "selected_model", "selection", "test", "cv", "calibration",
              "threshold", "uncertainty", "explanations", "horizons", "arms")
_CURVE_POINTS = 60


@dataclass
class ServedModel:
    """One run, ready to answer requests."""

    name: str
    run_dir: Path
    model: Any
    schema: FittedSchema
    version: str
    trained: str
    metrics: dict[str, Any]
    report: bytes | None
    scorer: Scorer
    explainer: Explainer
    engine_note: str
    fhir: dict[str, Any] = field(default_factory=dict)

    @property
    def task(self) -> str:
        return self.schema.task

    @property
    def selected_model(self) -> str | None:
        value = self.metrics.get("selected_model")
        return None if value is None else str(value)

    @property
    def units(self) -> dict[str, str | None]:
        return {f.name: f.unit for f in self.schema.features}

    def reference(self) -> dict[str, Any]:
        """Name, version and engine: carried by every answer."""
        return {"name": self.name, "task": self.task, "version": self.version,
                "trained": self.trained, "selected_model": self.selected_model,
                "engine": self.scorer.engine}

    def card(self) -> dict[str, Any]:
        """The model card's figures (metrics.json's main entries)."""
        figures = {k: self.metrics[k] for k in _CARD_KEYS if k in self.metrics}
        fairness = self.metrics.get("fairness", {})
        flags = [flag for a in fairness.get("attributes", {}).values() for flag in
                 a.get("flags", [])]
        return {"model": self.reference(), "engine_note": self.engine_note, **figures,
                "fairness_flags": flags}

    def schema_payload(self) -> dict[str, Any]:
        from permed.serve._validation import expected_text

        features = []
        for f in self.schema.features:
            entry = {k: v for k, v in {
                "name": f.name, "kind": f.kind, "unit": f.unit, "min": f.min, "max": f.max,
                "valid_range": list(f.valid_range) if f.valid_range else None,
                "categories": f.categories, "missing_share": f.missing_share,
                "fhir": f.fhir}.items() if v is not None}
            entry["expected"] = expected_text(f)
            features.append(entry)
        return {"model": self.reference(), "task": self.task, "target": self.schema.target,
                "classes": self.schema.classes, "id": self.schema.id, "features": features}

    def quick(self, explain: bool, scale: str = "probability") -> bool:
        """Whether answering takes a few milliseconds (ONNX, no or cached-tree explanation):
        such requests run on the event loop, others in a worker thread."""
        return (self.scorer.engine == "onnx" and not self.has_curves
                and (not explain or self.explainer.cached(scale)))

    @property
    def has_curves(self) -> bool:
        return hasattr(self.model, "predict_with_curves")

    @staticmethod
    def curve_points(curves: pd.DataFrame) -> list[dict[str, list[float]]]:
        """Each row's survival curve (``Scored.curves``) in at most 60 points."""
        step = max(1, len(curves.columns) // _CURVE_POINTS)
        columns = list(curves.columns)[::step]
        return [{"times": [float(t) for t in columns],
                 "survival": [float(v) for v in curves.loc[i, columns]]}
                for i in curves.index]


def _version(run_dir: Path) -> tuple[str, str]:
    index = (run_dir / BUNDLE_DIR / "bundle.json").read_bytes()
    return hashlib.sha256(index).hexdigest()[:12], str(json.loads(index).get("created", ""))


def _optional(path: Path) -> bytes | None:
    return read_bytes(path, path.name) if path.is_file() else None


def load_model(name: str, run_dir: Path, onnx: bool = True) -> ServedModel:
    """Load and verify one run (the bundle's signature and digests are checked first).

    Raises
    ------
    BundleError
        The run is missing, unsigned or was changed.
    """
    run_dir = Path(run_dir)
    model, schema = load_bundle(run_dir)
    if not hasattr(model, "predict_frame"):
        raise BundleError(f"the model in '{run_dir}' cannot score patients (no predict_frame)")
    metrics_bytes = _optional(run_dir / "metrics.json")
    metrics = json.loads(metrics_bytes) if metrics_bytes else {}
    onnx_model, note = load_onnx(run_dir, model) if onnx else (None, "ONNX disabled")
    scorer = Scorer(model, onnx_model)
    if scorer.note:
        note = scorer.note
    version, trained = _version(run_dir)
    fhir = {f.name: f.fhir for f in schema.features if f.fhir is not None}
    served = ServedModel(name, run_dir, model, schema, version, trained, metrics,
                         _optional(run_dir / "report.html"), scorer, Explainer(model), note,
                         fhir)
    log.info("model %s: %s run %s, version %s, %s; explanations: %s", name, schema.task,
             run_dir, version, note if scorer.engine == "native" else "ONNX Runtime",
             served.explainer.method)
    return served


def load_models(runs: dict[str, Path], onnx: bool = True) -> dict[str, ServedModel]:
    """Every run, by name (see :func:`permed.serve.parse_runs`)."""
    return {name: load_model(name, path, onnx) for name, path in runs.items()}
