"""Train and evaluate a late-fusion diagnose model on table + note + image (``--models fusion``).

Protocol: the study must name at least two modalities among the table (its feature columns),
notes (``--note``) and images (``--images``). A patient may lack a note (empty text) or an image
(empty path; or an unreadable file with ``--on-bad-file skip``): that modality is masked for
them. A stratified test split is set aside and touched once. On the development split the
table preprocessor and the note encoder (TF-IDF + SVD, or sentence embeddings) are fitted, then
:class:`permed.models.deep._fusion.FusionClassifier` trains with early stopping on an inner
stratified validation split, which also chooses the calibration and the decision threshold.

The network's settings (``max_epochs``, ``embedding_size``, ``max_seconds``...) come from
``TrainConfig.image_settings``, as the CNN's do.

Ablation (``metrics["fusion"]["ablation"]``): test AUROC with bootstrap CIs with every modality,
with each modality masked for every test patient in turn, and of a model trained on each single
modality alone (same network, one encoder).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from permed.engine import Engine, Progress
from permed.evaluate import bootstrap_ci, classification_report
from permed.exceptions import PermedError
from permed.preprocess._text import note_identifiers, scrub_notes
from permed.study import FeatureSpec, FittedSchema, Study, ValidationReport, as_category
from permed.uncertainty import ProbabilityCalibrator
from permed.workflow._config import TrainConfig
from permed.workflow._fitted import ClassLabels, probability_columns
from permed.workflow._result import RunResult, Timings

__all__ = ["FUSION_MODEL", "FusionModel", "fusion_study", "train_fusion"]

FUSION_MODEL = "fusion"
NOTE_COMPONENTS = 32  # SVD components of the TF-IDF note matrix
_ALL = "all modalities"


def fusion_study(study: Study) -> Study:
    """The study the table is validated with: the image column is no feature, and patients
    without an image are allowed (their image is masked), so the image checks are the
    trainer's."""
    if not study.images:
        return study
    return replace(study, images=None, drop=[*study.drop, study.images])


@dataclass
class _Encoders:
    """Fitted table preprocessor and note encoder (None when the modality is not used)."""

    table: Any
    notes: Any
    table_columns: list[str]
    note_columns: list[str]

    def transform(self, features: pd.DataFrame) -> tuple[dict[str, np.ndarray],
                                                         dict[str, np.ndarray]]:
        arrays, present = {}, {}
        if self.table is not None:
            arrays["table"] = np.asarray(self.table.transform(features[self.table_columns]),
                                         dtype=np.float32)
            present["table"] = features[self.table_columns].notna().any(axis=1).to_numpy()
        if self.notes is not None:
            texts = features[self.note_columns]
            arrays["note"] = np.asarray(self.notes.transform(texts), dtype=np.float32)
            present["note"] = (texts.astype(str).apply(lambda c: c.str.strip() != "")
                               .any(axis=1).to_numpy())
        return arrays, present


@dataclass
class FusionModel(ClassLabels):
    """A trained fusion model in a bundle: encodes a table's columns, reads its images."""

    name: str
    schema: FittedSchema
    encoders: _Encoders
    network: Any  # FusionClassifier
    calibrator: ProbabilityCalibrator
    threshold: float | None
    image_column: str | None
    image_size: tuple[int, ...] | None
    on_bad_file: str = "fail"

    def inputs(self, frame: pd.DataFrame) -> tuple[Any, list[str]]:
        """The network's inputs for ``frame`` and the image files that could not be read."""
        from permed.models.deep._fusion import FusionInputs

        arrays, present = self.encoders.transform(self.schema.coerce(frame))
        problems: list[str] = []
        if self.image_column is not None and self.image_size is not None:
            arrays["image"], present["image"], problems = _read_images(
                frame, self.image_column, self.image_size, self.on_bad_file)
        return FusionInputs(arrays, present), problems

    def predict_frame(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Probabilities and label of each row; ``modalities`` names those the row had.

        Image paths are relative to the table's folder; an empty path or note is a missing
        modality (masked), not an error.

        Raises
        ------
        SchemaMismatchError
            A column the model was trained on is missing.
        ImageReadError
            An image cannot be read (when trained with ``on_bad_file="fail"``).
        """
        self.schema.check(frame)
        inputs, problems = self.inputs(frame)
        proba = self.calibrator.transform(self.network.predict_proba(inputs))
        out = pd.DataFrame(index=range(len(frame)))
        if self.schema.id and self.schema.id in frame.columns:
            out[self.schema.id] = frame[self.schema.id].to_numpy()
        for column, values in zip(probability_columns(self.classes), proba.T, strict=True):
            out[column] = values
        out["predicted"] = np.asarray(self.classes, dtype=object)[self.labels(proba)]
        out["modalities"] = _present_text(inputs)
        if problems:
            out["image_error"] = problems
        return out


def _present_text(inputs: Any) -> list[str]:
    names = list(inputs.present)
    stacked = np.stack([inputs.present[m] for m in names], axis=1)
    return ["+".join(m for m, has in zip(names, row, strict=True) if has) for row in stacked]


def _read_images(frame: pd.DataFrame, column: str, size: tuple[int, ...],
                 on_bad_file: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Images ``(n, 1, *size)`` (zeros where missing), presence, and per-row read problems."""
    from permed.ingest.images import load_images, resolve_image_paths

    paths = resolve_image_paths(frame, column)
    has_path = paths.notna().to_numpy()
    images = np.zeros((len(frame), 1, *size), dtype=np.float32)
    loaded, read, skipped = load_images(list(paths[has_path]), size, on_bad_file)
    rows = np.flatnonzero(has_path)
    images[rows[read]] = loaded
    present = np.zeros(len(frame), dtype=bool)
    present[rows[read]] = True
    problems = np.full(len(frame), "", dtype=object)
    problems[rows[~read]] = skipped
    return images, present, list(problems)


def _modalities(frame: pd.DataFrame, study: Study, validation: ValidationReport
                ) -> tuple[list[str], list[str]]:
    """Table feature columns and note columns; refuse fewer than two modalities."""
    table = [c for c, k in validation.kinds.items() if k in ("numeric", "categorical", "gene")]
    notes = [c for c, k in validation.kinds.items() if k == "text"]
    found = [name for name, has in (("table", table), ("note", notes),
                                    ("image", study.images)) if has]
    if len(found) < 2:
        raise PermedError(
            f"--models fusion combines at least two modalities among the table (feature "
            f"columns), notes (--note COL) and images (--images COL); this study has only "
            f"{' and '.join(found) or 'none'}: add --note or --images, or train another model "
            "(e.g. --models logistic)")
    return table, notes


def _fit_encoders(features: pd.DataFrame, schema: FittedSchema, table: list[str],
                  notes: list[str], config: TrainConfig) -> _Encoders:
    from sklearn.decomposition import TruncatedSVD
    from sklearn.pipeline import make_pipeline

    from permed.preprocess import make_preprocessor
    from permed.preprocess._text import NoteEncoder
    from permed.workflow._cv import CLIP_QUANTILES

    preprocessor = None
    if table:
        preprocessor = make_preprocessor(
            [c for c in schema.numeric if c in table], [c for c in schema.categorical
                                                        if c in table],
            CLIP_QUANTILES if config.clip else None, [c for c in schema.genes if c in table])
        preprocessor.fit(features[table])
    encoder = None
    if notes:
        encoder = NoteEncoder(schema.text_encoder or "tfidf", device=config.device)
        encoder.fit(features[notes])
        if encoder.encoder_ == "tfidf":
            components = max(1, min(NOTE_COMPONENTS, encoder.n_components_ - 1))
            encoder = make_pipeline(encoder, TruncatedSVD(components,
                                                          random_state=config.seed))
            encoder.fit(features[notes])
    return _Encoders(preprocessor, encoder, table, notes)


def _network(shapes: dict[str, tuple[int, ...]], config: TrainConfig) -> Any:
    import inspect

    from permed.models.deep._fusion import FusionClassifier

    allowed = set(inspect.signature(FusionClassifier).parameters) - {"modalities"}
    unknown = sorted(set(config.image_settings) - allowed)
    if unknown:
        raise PermedError(f"image_settings {unknown} are not parameters of the fusion model; "
                          f"use some of {', '.join(sorted(allowed))}")
    return FusionClassifier(shapes, **{"device": config.device, "random_state": config.seed,
                                       **config.image_settings})


def _schema(frame: pd.DataFrame, study: Study, validation: ValidationReport,
            classes: list[str]) -> FittedSchema:
    schema = FittedSchema.from_frame(frame, validation.kinds, study, classes)
    if study.images:
        schema.features.append(FeatureSpec(study.images, "image"))
    return schema


def train_fusion(frame: pd.DataFrame, study: Study, validation: ValidationReport,
                 config: TrainConfig, engine: Engine, progress: Progress) -> RunResult:
    """Run the fusion protocol (module docstring); return metrics, test predictions, model."""
    from permed.workflow._diagnose import target_classes
    from permed.workflow._image import IMAGE_SIZE_2D, _calibrate, _image_size

    timings = Timings()
    if config.models != [FUSION_MODEL]:
        raise PermedError(f"--models {','.join(config.models)}: fusion trains one model of "
                          "its own; use --models fusion alone")
    if study.task not in (None, "diagnose") or not study.target:
        raise PermedError(f"--models fusion is a diagnose model; this study has task "
                          f"'{study.task}' and target {study.target!r}: use --task diagnose "
                          "--target COL")
    table, notes = _modalities(frame, study, validation)
    labels = as_category(frame[study.target])
    frame = frame[labels.notna()]
    labels = labels[labels.notna()]
    classes = target_classes(labels, config)
    y = labels.map({c: i for i, c in enumerate(classes)}).to_numpy(dtype=int)
    # as train_diagnose: each note loses its own record's names and ids before the split
    frame = scrub_notes(frame, notes, note_identifiers(study, list(frame.columns)))
    dev_idx, test_idx = train_test_split(np.arange(len(y)), test_size=config.test_size,
                                         stratify=y, random_state=config.seed)
    schema = _schema(frame.iloc[dev_idx], study, validation, classes)
    size = None
    if study.images:
        from permed.ingest.images import resolve_image_paths

        paths = resolve_image_paths(frame, study.images).dropna()
        size = _image_size(paths) if len(paths) else IMAGE_SIZE_2D
    with timings("encode"):
        encoders = _fit_encoders(schema.coerce(frame.iloc[dev_idx]), schema, table, notes,
                                 config)
        model = FusionModel(FUSION_MODEL, schema, encoders, None, ProbabilityCalibrator("none"),
                            None, study.images, size, study.on_bad_file)
    with timings("read_images"):
        inputs, problems = model.inputs(frame)
    for problem in filter(None, problems):
        progress.note(f"warning: image masked: {problem}")
    shapes = {m: tuple(a.shape[1:]) for m, a in inputs.arrays.items()}
    model.network = _network(shapes, config)
    with timings("fit"):
        model.network.fit(inputs[dev_idx], y[dev_idx])
    with timings("calibration"):
        calibration = _calibrate(model.network, inputs[dev_idx], y[dev_idx], config)
    model.calibrator, model.threshold = calibration["calibrator"], calibration["threshold"]
    with timings("test"):
        raw = model.network.predict_proba(inputs[test_idx])
        proba = model.calibrator.transform(raw)
        evaluation = classification_report(y[test_idx], proba, classes,
                                           threshold=model.threshold, n_boot=config.n_boot,
                                           seed=config.seed)
    with timings("ablation"):
        ablation = _ablation(model.network, inputs, y, (dev_idx, test_idx), shapes, config,
                             progress)
    metrics = {
        "task": "diagnose",
        "target": {"column": study.target, "classes": classes,
                   "positive_class": classes[1] if len(classes) == 2 else None,
                   "counts": {c: int((y == i).sum()) for i, c in enumerate(classes)}},
        "selected_model": FUSION_MODEL,
        "selection": {"metric": None, "folds": None,
                      "rule": "one fusion model; early stopping on an inner validation split "
                              "(no cross-validation: the network trains once)"},
        "test": evaluation["test"],
        "cv": {},
        "confusion_matrix": evaluation["confusion_matrix"],
        "calibration": {key: calibration[key] for key in ("method", "chosen_by", "candidates")},
        "threshold": {"value": model.threshold, "rule": calibration["rule"],
                      "target_sensitivity": config.target_sensitivity},
        "bootstrap": {"replicates": config.n_boot, "confidence": 0.95,
                      "method": "stratified percentile", "seed": config.seed},
        "fusion": _facts(model, inputs, shapes, problems) | {"ablation": ablation},
        "split": {"development_rows": len(dev_idx), "test_rows": len(test_idx)},
        "timings": dict(timings),
    }
    if "per_class" in evaluation:
        metrics["per_class"] = evaluation["per_class"]
    predictions = _predictions(frame, test_idx, study, classes, y[test_idx], proba, model,
                               inputs[test_idx])
    return RunResult("diagnose", metrics, predictions, model, schema)


def _auroc(y: np.ndarray, proba: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    if proba.shape[1] == 2:
        return float(roc_auc_score(y, proba[:, 1]))
    return float(roc_auc_score(y, proba, multi_class="ovr", labels=np.arange(proba.shape[1])))


def _ci(y: np.ndarray, proba: np.ndarray, config: TrainConfig) -> dict[str, float]:
    return bootstrap_ci(_auroc, y, proba, n_boot=config.n_boot, seed=config.seed)


def _ablation(network: Any, inputs: Any, y: np.ndarray, split: tuple[np.ndarray, np.ndarray],
              shapes: dict[str, tuple[int, ...]], config: TrainConfig,
              progress: Progress) -> dict[str, Any]:
    """Test AUROC (95% CI) with all modalities, each masked in turn, and each alone."""
    dev_idx, test_idx = split
    test, y_test = inputs[test_idx], y[test_idx]
    full = _ci(y_test, network.predict_proba(test), config)
    without = {m: _ci(y_test, network.predict_proba(test.without(m)), config) for m in shapes}
    single: dict[str, Any] = {}
    for m in shapes:
        progress.note(f"ablation: training the {m}-only model")
        alone = _network({m: shapes[m]}, config).fit(inputs[dev_idx].only(m), y[dev_idx])
        single[m] = _ci(y_test, alone.predict_proba(test.only(m)), config) | {
            "epochs": alone.n_epochs_, "seconds_per_epoch": round(alone.seconds_per_epoch_, 3)}
    return {
        "metric": "auroc",
        "probabilities": "uncalibrated network output (calibration is fitted for the full "
                         "model only)",
        "all": full,
        "without": without,
        "contribution": {m: round(full["value"] - without[m]["value"], 6) for m in shapes},
        "single": single,
        "test_present": {m: int(test.present[m].sum()) for m in shapes},
        "test_rows": len(y_test),
    }


def _facts(model: FusionModel, inputs: Any, shapes: dict[str, tuple[int, ...]],
           problems: list[str]) -> dict[str, Any]:
    network = model.network
    encoders = model.encoders
    described = {
        "table": {"columns": encoders.table_columns,
                  "encoder": "permed preprocessor (impute, scale, one-hot) -> MLP"},
        "note": {"columns": encoders.note_columns,
                 "encoder": (f"{model.schema.text_encoder or 'tfidf'} (PHI scrubbed)"
                             + (" -> SVD" if model.schema.text_encoder in (None, "tfidf")
                                else "") + " -> linear projection")},
        "image": {"column": model.image_column,
                  "size": list(model.image_size or []),
                  "encoder": "3-block CNN, trained end to end"},
    }
    return {
        "modalities": {m: described[m] | {"input_size": list(shapes[m]),
                                          "present": int(inputs.present[m].sum()),
                                          "missing": int((~inputs.present[m]).sum())}
                       for m in shapes},
        "images_left_out": [p for p in problems if p],
        "network": {"embedding_size": network.embedding_size,
                    "modality_dropout": network.modality_dropout,
                    "parameters": int(sum(p.numel() for p in network.network_.parameters())),
                    "device": network.device_, "epochs": network.n_epochs_,
                    "best_epoch": network.best_epoch_,
                    "seconds_per_epoch": round(network.seconds_per_epoch_, 3),
                    "validation_rows": len(network.validation_rows_)},
        "history": network.history_,
        "onnx": {"file": None, "error": "not exported: the fusion network takes one input per "
                                        "modality and a mask; the joblib bundle scores it"},
    }


def _predictions(frame: pd.DataFrame, test_idx: np.ndarray, study: Study, classes: list[str],
                 y: np.ndarray, proba: np.ndarray, model: FusionModel,
                 test_inputs: Any) -> pd.DataFrame:
    out = pd.DataFrame({"row": frame.index[test_idx].to_numpy()})
    if study.id:
        out[study.id] = frame[study.id].iloc[test_idx].to_numpy()
    out["y_true"] = np.asarray(classes, dtype=object)[y]
    for column, values in zip(probability_columns(classes), proba.T, strict=True):
        out[column] = values
    out["predicted"] = np.asarray(classes, dtype=object)[model.labels(proba)]
    out["modalities"] = _present_text(test_inputs)
    return out
