"""From a data file to a complete run directory."""

from __future__ import annotations

import importlib
import platform
import sys
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from permed import __version__
from permed.bundle import BUNDLE_DIR, atomic_directory, save_bundle
from permed.bundle._onnx import export_onnx
from permed.engine import Progress, SilentProgress, get_engine
from permed.evaluate import cautions
from permed.exceptions import StudyError
from permed.ingest import TableInfo, read_table
from permed.privacy import AuditLog, require_key, write_bytes
from permed.study import Study, validate
from permed.utils.jsonio import dumps, write_json
from permed.workflow._config import TrainConfig
from permed.workflow._overlap import DIGEST_FILE, overlap_digests
from permed.workflow._result import RunResult, Timings

__all__ = ["package_versions", "train_run", "write_run"]

_PACKAGES = ("numpy", "pandas", "scipy", "scikit-learn", "lightgbm", "scikit-survival",
             "econml", "shap", "fairlearn", "optuna", "torch", "onnxruntime")
# task -> "module:function" of its training protocol (imported when used).
_TRAINERS = {
    "diagnose": "permed.workflow._diagnose:train_diagnose",
    "risk": "permed.workflow._risk:train_risk",
    "treat": "permed.workflow._treat:train_treat",
    "image": "permed.workflow._image:train_image",  # any study with --images
    "fusion": "permed.workflow._fusion:train_fusion",  # --models fusion: table + note + image
}


def _trainer(task: str | None):
    module, _, name = _TRAINERS.get(task or "", ":").partition(":")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, ValueError, AttributeError):
        raise StudyError(f"--task '{task}' is not available in this version of permed; "
                         "use --task diagnose") from None


def validated_study(study: Study, models: list[str]) -> Study:
    """The study a table is validated with before training ``models``: for late fusion, one
    whose image column is no feature and may be empty (a patient without an image is masked)."""
    if "fusion" not in models:
        return study
    from permed.workflow._fusion import fusion_study

    return fusion_study(study)


def package_versions() -> dict[str, str]:
    """Versions of Python, permed and the libraries a result depends on."""
    versions = {"python": platform.python_version(), "permed": __version__}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def train_run(data: str | Path, study: Study, config: TrainConfig, out: str | Path,
              progress: Progress | None = None, command: str | None = None) -> Path:
    """Read, validate, train and write ``out`` as a complete run directory.

    Nothing is written unless the whole run succeeds.

    Raises
    ------
    PermedError
        For any problem with the data, study or options (the message says the fix).
    """
    progress = progress or SilentProgress()
    if config.encrypt:  # fail before training, not after
        require_key("permed train --encrypt")
    timings = Timings()
    with timings("read"):
        frame, info = read_table(data, text_columns=[study.id] if study.id else [],
                                 missing=study.missing)
    fusion = "fusion" in config.models  # late fusion of modalities: workflow/_fusion.py
    trainer = _trainer("fusion" if fusion else "image" if study.images else study.task)
    with timings("validate"):
        validation = validate(frame, validated_study(study, config.models),
                              min_class_size=config.cv)
    for finding in validation.warnings:
        progress.note(f"warning: {finding.message}")
    validation.raise_errors()
    engine = get_engine(config.cluster)
    try:
        result = trainer(frame, study, validation, config, engine, progress)
    finally:
        engine.close()
    # how the table was read (separators removed, an encoding) and what validation and the
    # trainer found (images left out) join the manifest and report
    result.warnings = [*info.notes, *(f.message for f in validation.warnings), *result.warnings]
    for caution in cautions(result.metrics):  # test figures that say little
        progress.note(f"warning: {caution}")
        result.warnings.append(caution)
    result.metrics["timings"] = {**timings, **result.metrics["timings"]}
    if result.split_rows is not None:  # its patients, for permed evaluate to find again
        result.files[DIGEST_FILE] = overlap_digests(frame, result.schema, *result.split_rows)
    return write_run(result, info, study, config, out, command)


def write_run(result: RunResult, info: TableInfo, study: Study, config: TrainConfig,
              out: str | Path, command: str | None = None) -> Path:
    """Write metrics, predictions, manifest, bundle and report atomically to ``out``; the
    further files of ``result.files`` too (explanations.json, row_digests.json), encrypted with
    the predictions."""
    from permed.report import write_report

    metrics = _with_data(result.metrics, info)
    # a new table whose numbers show no decimal mark is read with the development data's
    result.schema.csv_marks = list(info.marks) if info.marks else None
    manifest = _manifest(info, study, config, metrics["timings"], result.warnings, command)
    key = require_key("permed train --encrypt") if config.encrypt else None
    with atomic_directory(out) as staging:
        write_bytes(staging / "predictions.csv", result.predictions.to_csv(index=False).encode(),
                    key)
        export_onnx(result.model, staging / BUNDLE_DIR, key=key)  # signed with the bundle
        for name, content in result.files.items():  # binary files (images: PNG, ONNX)
            if isinstance(content, bytes):  # written before the bundle index signs model/
                (staging / name).parent.mkdir(parents=True, exist_ok=True)
                write_bytes(staging / name, content, key, name)
        save_bundle(result.model, result.schema, staging / BUNDLE_DIR, key=key)
        write_json(staging / "metrics.json", metrics)
        write_json(staging / "manifest.json", manifest)
        for name, content in result.files.items():  # per-patient JSON: explanations.json
            if not isinstance(content, bytes):
                write_bytes(staging / name, dumps(content).encode(), key, name)
        write_report(staging)
        audit = AuditLog.continued(Path(out) / "audit.log", staging / "audit.log")
        audit.append("read", data=info.fingerprint, rows=info.rows, columns=info.columns)
        audit.append("train", task=metrics["task"], model=metrics.get("selected_model"),
                     encrypted=key is not None)
    return Path(out)


def _with_data(metrics: dict[str, Any], info: TableInfo) -> dict[str, Any]:
    split = metrics.pop("split", {})
    data = {"rows": info.rows, "columns": info.columns, "fingerprint": info.fingerprint,
            "source": Path(info.path).name, **split}
    ordered = {"task": metrics["task"], "data": data}
    ordered.update({k: v for k, v in metrics.items() if k != "task"})
    return ordered


def _manifest(info: TableInfo, study: Study, config: TrainConfig, timings: dict[str, float],
              warnings: list[str], command: str | None) -> dict[str, Any]:
    return {
        "permed_version": __version__,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": command or " ".join(["permed", *sys.argv[1:]]),
        "seed": config.seed,
        "data": {"path": info.path, "fingerprint": info.fingerprint, "rows": info.rows,
                 "columns": info.columns},
        "config": {"task": study.task, **config.to_dict()},
        "study": study.to_dict(),
        "warnings": warnings,
        "packages": package_versions(),
        "platform": f"{platform.system()} {platform.machine()}",
        "timings": timings,
    }
