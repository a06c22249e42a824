"""Train and evaluate a diagnose model on images (``--images COL --models cnn``).

Protocol: every image is read, normalized and resized once; unreadable files stop the run or
are left out (``--on-bad-file``). A stratified test split is set aside and touched once. The
network trains on the development split, with early stopping on an inner stratified validation
split; that validation split also chooses the probability calibration (when it holds enough
images) and the decision threshold (Youden's J, or the target sensitivity). Test metrics carry
stratified bootstrap CIs. Grad-CAM maps of a few test images and the ONNX export of the network
(checked against torch with ONNX Runtime) are written to the run directory.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from permed.engine import Engine, Progress
from permed.evaluate import (
    classification_report,
    expected_calibration_error,
    threshold_for_sensitivity,
    youden_threshold,
)
from permed.exceptions import PermedError
from permed.ingest.images import load_images, resolve_image_paths
from permed.study import FeatureSpec, FittedSchema, Study, ValidationReport, as_category
from permed.uncertainty import ProbabilityCalibrator, choose_calibration
from permed.uncertainty._calibration import _multiclass_brier
from permed.workflow._config import TrainConfig
from permed.workflow._diagnose import target_classes
from permed.workflow._fitted import ClassLabels, probability_columns
from permed.workflow._result import RunResult, Timings

__all__ = ["IMAGE_MODELS", "ImageModel", "train_image"]

# --models name -> CNNClassifier architecture
IMAGE_MODELS = {"cnn": "resnet", "cnn_densenet": "densenet"}
IMAGE_SIZE_2D = (28, 28)
IMAGE_SIZE_3D = (32, 32, 32)
ONNX_NAME = "network.onnx"
SALIENCY_IMAGES = 4
# fewer validation images than this: no calibration (too few to fit one honestly)
_MIN_CALIBRATION_ROWS = 40


@dataclass
class ImageModel(ClassLabels):
    """A trained image model in a bundle: reads the image paths of a table and scores them."""

    name: str
    schema: FittedSchema
    network: Any  # CNNClassifier
    calibrator: ProbabilityCalibrator
    threshold: float | None
    image_column: str
    image_size: tuple[int, ...]
    on_bad_file: str = "fail"

    def predict_images(self, images: np.ndarray) -> np.ndarray:
        """Calibrated probabilities ``(n, K)`` of images shaped ``(n, 1, *image_size)``."""
        return self.calibrator.transform(self.network.predict_proba(images))

    def predict_frame(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Probabilities and label of each row's image; one output row per input row.

        Image paths are relative to the table's folder. With ``on_bad_file="skip"`` at training,
        an unreadable image gives empty probabilities and its reason in ``image_error``.

        Raises
        ------
        SchemaMismatchError
            The image column is missing.
        ImageReadError
            An image cannot be read (when the model was trained with ``on_bad_file="fail"``).
        """
        self.schema.check(frame)
        paths = resolve_image_paths(frame, self.image_column)
        images, read, problems = load_images(list(paths.fillna("")), self.image_size,
                                             self.on_bad_file)
        proba = np.full((len(frame), len(self.classes)), np.nan)
        if read.any():
            proba[read] = self.predict_images(images)
        out = pd.DataFrame(index=range(len(frame)))
        if self.schema.id and self.schema.id in frame.columns:
            out[self.schema.id] = frame[self.schema.id].to_numpy()
        out[self.image_column] = frame[self.image_column].to_numpy()
        for column, values in zip(probability_columns(self.classes), proba.T, strict=True):
            out[column] = values
        predicted = np.full(len(frame), "", dtype=object)
        predicted[read] = np.asarray(self.classes, dtype=object)[self.labels(proba[read])]
        out["predicted"] = predicted
        errors = np.full(len(frame), "", dtype=object)
        errors[~read] = problems
        out["image_error"] = errors
        return out


def _network(name: str, size: tuple[int, ...], config: TrainConfig) -> Any:
    from permed.models.deep import CNNClassifier

    return CNNClassifier((1, *size), architecture=IMAGE_MODELS[name], device=config.device,
                         random_state=config.seed, **config.image_settings)


def _check_models(config: TrainConfig) -> str:
    names = config.models or ["cnn"]
    unknown = [n for n in names if n not in IMAGE_MODELS]
    if unknown or len(names) > 1:
        raise PermedError(f"--models {','.join(names)}: an image study (--images) trains one "
                          f"image model; use one of {', '.join(IMAGE_MODELS)}")
    return names[0]


def train_image(frame: pd.DataFrame, study: Study, validation: ValidationReport,
                config: TrainConfig, engine: Engine, progress: Progress) -> RunResult:
    """Run the image protocol (module docstring); return metrics, test predictions, model."""
    timings = Timings()
    name = _check_models(config)
    labels = as_category(frame[study.target])
    frame = frame[labels.notna()]
    paths = resolve_image_paths(frame, study.images)
    frame, paths = frame[paths.notna()], paths[paths.notna()]
    size = _image_size(paths)
    with timings("read_images"):
        images, read, skipped = load_images(list(paths), size, study.on_bad_file)
    left_out = [f"image left out: {problem}" for problem in skipped]
    for warning in left_out:
        progress.note(f"warning: {warning}")
    frame = frame[read]
    labels = as_category(frame[study.target])
    classes = target_classes(labels, config)
    y = labels.map({c: i for i, c in enumerate(classes)}).to_numpy(dtype=int)
    if min(np.bincount(y, minlength=len(classes))) < 2:
        raise PermedError(f"after leaving out unreadable images, a class of '{study.target}' "
                          "has fewer than 2 images: fix the files or add images")
    dev_idx, test_idx = train_test_split(np.arange(len(y)), test_size=config.test_size,
                                         stratify=y, random_state=config.seed)
    network = _network(name, size, config)
    with timings("fit"):
        network.fit(images[dev_idx], y[dev_idx])
    with timings("calibration"):
        calibration = _calibrate(network, images[dev_idx], y[dev_idx], config)
    schema = FittedSchema(study.task or "diagnose", [FeatureSpec(study.images, "image")],
                          study.target, list(classes), study.id, list(study.sensitive),
                          study.outcome_columns())
    model = ImageModel(name, schema, network, calibration["calibrator"],
                       calibration["threshold"], study.images, size, study.on_bad_file)
    with timings("test"):
        raw = network.predict_proba(images[test_idx])
        proba = model.calibrator.transform(raw)
        evaluation = classification_report(y[test_idx], proba, classes,
                                           threshold=model.threshold, n_boot=config.n_boot,
                                           seed=config.seed)
    files: dict[str, Any] = {}
    with timings("saliency"):
        files.update(_saliency(model, images[test_idx], proba, frame.index[test_idx]))
    with timings("onnx"):
        onnx = _onnx(network, images[test_idx][:16], files)
    metrics = {
        "task": "diagnose",
        "target": {"column": study.target, "classes": classes,
                   "positive_class": classes[1] if len(classes) == 2 else None,
                   "counts": {c: int((y == i).sum()) for i, c in enumerate(classes)}},
        "selected_model": name,
        "selection": {"metric": None, "folds": None,
                      "rule": "one image model; early stopping on an inner validation split "
                              "(no cross-validation: each network trains once)"},
        "test": evaluation["test"],
        "cv": {},
        "confusion_matrix": evaluation["confusion_matrix"],
        "calibration": {key: calibration[key] for key in ("method", "chosen_by", "candidates")}
        | {"test_uncalibrated": _calibration_figures(y[test_idx], raw)},
        "threshold": {"value": model.threshold, "rule": calibration["rule"],
                      "target_sensitivity": config.target_sensitivity},
        "bootstrap": {"replicates": config.n_boot, "confidence": 0.95,
                      "method": "stratified percentile", "seed": config.seed},
        "images": _image_facts(network, size, study, read, skipped, onnx, files),
        "split": {"development_rows": len(dev_idx), "test_rows": len(test_idx)},
        "timings": dict(timings),
    }
    if "per_class" in evaluation:
        metrics["per_class"] = evaluation["per_class"]
    predictions = _predictions(frame, test_idx, study, classes, y[test_idx], proba, model)
    return RunResult("diagnose", metrics, predictions, model, schema, warnings=left_out,
                     files=files)


def _image_size(paths: pd.Series) -> tuple[int, ...]:
    """2-D (28 x 28) unless every file is a volume format (NIfTI: 32^3)."""
    volumes = paths.str.lower().str.contains(r"\.nii(?:\.gz)?$", regex=True)
    return IMAGE_SIZE_3D if len(paths) and volumes.all() else IMAGE_SIZE_2D


def _calibration_figures(y: np.ndarray, proba: np.ndarray) -> dict[str, float]:
    return {"brier": round(_multiclass_brier(y, proba), 6),
            "ece": round(float(expected_calibration_error(y, proba)), 6)}


def _calibrate(network: Any, images: np.ndarray, y: np.ndarray,
               config: TrainConfig) -> dict[str, Any]:
    """Calibration and threshold from the early-stopping validation images."""
    rows = network.validation_rows_
    proba, y_val = network.predict_proba(images[rows]), y[rows]
    method, chosen_by, candidates = "none", "too few validation images to calibrate", {}
    if len(rows) >= _MIN_CALIBRATION_ROWS and config.calibration != "none":
        chosen, fitted = choose_calibration(proba, y_val, folds=config.cv, seed=config.seed)
        method = chosen if config.calibration == "auto" else config.calibration
        chosen_by = ("cross-fitted Brier score on the validation images"
                     if config.calibration == "auto" else "set by --calibration")
        candidates = {m: _calibration_figures(y_val, p) for m, p in fitted.items()}
    elif config.calibration == "none":
        chosen_by = "set by --calibration"
    calibrator = ProbabilityCalibrator(method).fit(proba if len(rows) else
                                                   np.full((2, proba.shape[1]), 0.5),
                                                   y_val if len(rows) else np.arange(2))
    threshold, rule = None, "most probable class"
    if proba.shape[1] == 2:
        threshold, rule = 0.5, "0.5 (too few validation images to choose one)"
        if len(rows) and len(np.unique(y_val)) == 2:
            p1 = calibrator.transform(proba)[:, 1]
            threshold = (youden_threshold(y_val, p1) if config.target_sensitivity is None
                         else threshold_for_sensitivity(y_val, p1, config.target_sensitivity))
            rule = config.threshold_rule + " on the validation images"
    return {"calibrator": calibrator, "method": method, "chosen_by": chosen_by,
            "candidates": candidates, "threshold": threshold, "rule": rule}


def _saliency(model: ImageModel, images: np.ndarray, proba: np.ndarray,
              rows: pd.Index) -> dict[str, bytes]:
    """Grad-CAM PNGs of the most confident test images of each class."""
    from permed.explain._saliency import grad_cam, saliency_png

    predicted = model.labels(proba)
    chosen = []
    for k in range(len(model.classes)):
        members = np.flatnonzero(predicted == k)
        chosen += list(members[np.argsort(-proba[members, k])][:SALIENCY_IMAGES //
                                                               len(model.classes) or 1])
    files = {}
    for i in chosen[:SALIENCY_IMAGES]:
        k = int(predicted[i])
        cam = grad_cam(model.network, images[i], target=k)
        title = f"row {rows[i]}: {model.classes[k]} (p = {proba[i, k]:.2f})"
        files[f"saliency/row_{rows[i]}.png"] = saliency_png(images[i], cam, title)
    return files


def _onnx(network: Any, check: np.ndarray, files: dict[str, Any]) -> dict[str, Any]:
    try:
        content, difference = network.to_onnx(check)
    except Exception as exc:  # noqa: BLE001 - no export: the joblib bundle still scores
        return {"file": None, "error": f"{type(exc).__name__}: {exc}"}
    files[f"model/{ONNX_NAME}"] = content
    return {"file": f"model/{ONNX_NAME}", "max_difference_vs_torch": difference,
            "checked_on_images": len(check), "tolerance": 1e-4,
            "input": "image (batch, 1, *size) float32 in [0, 1]", "output": "probabilities"}


def _image_facts(network: Any, size: tuple[int, ...], study: Study, read: np.ndarray,
                 skipped: list[str], onnx: dict[str, Any], files: dict[str, Any]
                 ) -> dict[str, Any]:
    return {
        "column": study.images, "size": list(size), "read": int(read.sum()),
        "skipped": skipped, "on_bad_file": study.on_bad_file,
        "normalization": "per image: 0.5-99.5% intensity quantiles scaled to [0, 1]; resized",
        "network": {"architecture": network.architecture, "width": network.width,
                    "parameters": int(sum(p.numel() for p in network.network_.parameters())),
                    "device": network.device_, "mixed_precision": network.amp_,
                    "epochs": network.n_epochs_, "best_epoch": network.best_epoch_,
                    "seconds_per_epoch": round(network.seconds_per_epoch_, 3),
                    "validation_images": len(network.validation_rows_),
                    "augmentation": "random rotation (10 deg), zoom (10%), left-right flip, "
                                    "intensity scale and shift (10%)" if network.augment
                                    else "none"},
        "history": network.history_,
        "onnx": onnx,
        "saliency": sorted(f for f in files if f.startswith("saliency/")),
    }


def _predictions(frame: pd.DataFrame, test_idx: np.ndarray, study: Study, classes: list[str],
                 y: np.ndarray, proba: np.ndarray, model: ImageModel) -> pd.DataFrame:
    out = pd.DataFrame({"row": frame.index[test_idx].to_numpy()})
    if study.id:
        out[study.id] = frame[study.id].iloc[test_idx].to_numpy()
    out[study.images] = frame[study.images].iloc[test_idx].to_numpy()
    out["y_true"] = np.asarray(classes, dtype=object)[y]
    for column, values in zip(probability_columns(classes), proba.T, strict=True):
        out[column] = values
    out["predicted"] = np.asarray(classes, dtype=object)[model.labels(proba)]
    return out
