"""Multi-modal benchmarks: one function per dataset, each a section of multimodal.json.

Run: .venv/bin/python benchmarks/multimodal.py [SECTION ...]   (default: every section)
     .venv/bin/python benchmarks/multimodal.py --export-pneumoniamnist DIR [--limit N]
Prints a side-by-side table per section and merges the sections run into
benchmarks/results/multimodal.json (sections not run keep their previous results).
Data come from ../shared/data only: nothing is downloaded.

Sections
--------
pneumoniamnist
    permed's CNN (MONAI ResNet, width 8, augmentation, early stopping) on PneumoniaMNIST 28 x 28
    (../shared/data/medmnist/pneumoniamnist.npz: a balanced subset, 2,428 train / 270
    validation / 468 test images), CPU, at most 10 minutes of training. Published reference:
    MedMNIST v2 ResNet-18 (28), AUC 0.944, accuracy 0.854, on the full (unbalanced, 624-image)
    test set, so the figures are close but not strictly comparable.
golub, symptom2disease, mimic_mortality
    Genomics, clinical notes and EHR: see benchmarks/_genomics_notes.py.
mimic_events
    MIMIC-III demo mortality 24 h after admission: tabular LightGBM vs a GRU over the event
    sequence vs both: see benchmarks/_ehr_sequence.py.
fusion
    Late fusion of table + note + image vs each single modality on the SEMI-SYNTHETIC cohort
    of ``permed datasets multimodal`` (2,000 patients): see benchmarks/_fusion.py.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _ehr_sequence import mimic_events  # noqa: E402
from _fusion import fusion  # noqa: E402
from _genomics_notes import golub, mimic_mortality, symptom2disease  # noqa: E402
from _shared import RESULTS, SHARED_DATA, print_table  # noqa: E402

SEED = 0
PNEUMONIA_NPZ = SHARED_DATA / "medmnist" / "pneumoniamnist.npz"
TRAINING_SECONDS = 540  # the network stops after the epoch that passes this (limit: 10 min)


def _normalized(images: np.ndarray) -> np.ndarray:
    """As ``permed train`` reads each image: quantile-scaled to [0, 1], one channel."""
    from permed.ingest.images import normalize_intensity

    return np.stack([normalize_intensity(image.astype(np.float32)) for image in images])[:, None]


def pneumoniamnist() -> dict[str, Any] | None:
    """PneumoniaMNIST test AUROC and accuracy (95% bootstrap CIs), time per epoch on CPU."""
    from permed.evaluate import classification_report
    from permed.models.deep import CNNClassifier

    if not PNEUMONIA_NPZ.exists():
        print(f"skipped pneumoniamnist: {PNEUMONIA_NPZ} is absent")
        return None
    with np.load(PNEUMONIA_NPZ) as data:
        # the official validation images join training: the network holds out its own 10%
        # stratified split (about the size of the official one) for early stopping
        X = _normalized(np.concatenate([data["train_images"], data["val_images"]]))
        y = np.concatenate([data["train_labels"], data["val_labels"]]).ravel()
        X_test, y_test = _normalized(data["test_images"]), data["test_labels"].ravel()
    model = CNNClassifier((1, 28, 28), max_epochs=40, patience=8, max_seconds=TRAINING_SECONDS,
                          device="auto", random_state=SEED)
    started = time.perf_counter()
    model.fit(X, y)
    seconds = time.perf_counter() - started
    proba = model.predict_proba(X_test)
    report = classification_report(y_test, proba, ["normal", "pneumonia"], threshold=0.5,
                                   n_boot=1000, seed=SEED)["test"]
    ours = {
        "test_auroc": report["auroc"], "test_accuracy": report["accuracy"],
        "test_images": len(y_test), "train_images": len(y),
        "training_seconds": round(seconds, 1), "epochs": model.n_epochs_,
        "best_epoch": model.best_epoch_, "seconds_per_epoch": round(model.seconds_per_epoch_, 2),
        "device": model.device_,
        "cpu_threads": "1 (28 x 28 images train on one OpenMP thread; see models/deep/_cnn.py)",
        "network": f"MONAI ResNet (1 basic block per stage, width 8), "
                   f"{sum(p.numel() for p in model.network_.parameters())} parameters",
        "history": model.history_,
    }
    published = {"test_auroc": 0.944, "test_accuracy": 0.854,
                 "source": "MedMNIST v2 (Yang et al., Sci Data 2023), ResNet-18 (28), full "
                           "624-image test set"}
    rows = [
        {"method": "permed cnn (this run)", "test AUROC (95% CI)": _ci(report["auroc"]),
         "test accuracy (95% CI)": _ci(report["accuracy"]),
         "s/epoch": f"{model.seconds_per_epoch_:.1f}", "epochs": model.n_epochs_,
         "train s": f"{seconds:.0f}"},
        {"method": "published ResNet-18 (28)", "test AUROC (95% CI)": "0.944",
         "test accuracy (95% CI)": "0.854", "s/epoch": "", "epochs": 100, "train s": ""},
    ]
    print_table(rows, ["method", "test AUROC (95% CI)", "test accuracy (95% CI)", "s/epoch",
                       "epochs", "train s"])
    return {"permed_cnn": ours, "published": published,
            "acceptance": {"auroc_at_least": 0.93, "training_minutes_at_most": 10,
                           "met": bool(report["auroc"]["value"] >= 0.93 and seconds <= 600)},
            "note": "balanced subset test set (468 images: 234 normal, 234 pneumonia); "
                    "threshold 0.5; CIs: 1000 stratified bootstrap replicates"}


def _ci(entry: dict[str, float]) -> str:
    return f"{entry['value']:.3f} ({entry['ci_low']:.3f}-{entry['ci_high']:.3f})"


# section name -> function returning its JSON payload (None: data absent, section skipped)
SECTIONS: dict[str, Callable[[], dict[str, Any] | None]] = {
    "pneumoniamnist": pneumoniamnist,
    "golub": golub,  # genomics, notes and EHR sections: benchmarks/_genomics_notes.py
    "symptom2disease": symptom2disease,
    "mimic_mortality": mimic_mortality,
    "mimic_events": mimic_events,  # GRU over EHR event sequences: benchmarks/_ehr_sequence.py
    "fusion": fusion,  # table + note + image late fusion, semi-synthetic: benchmarks/_fusion.py
}


def write_sections(results: dict[str, Any]) -> Path:
    """Merge ``results`` into multimodal.json, keeping the sections not run this time."""
    path = RESULTS / "multimodal.json"
    merged = json.loads(path.read_text()) if path.exists() else {}
    merged.update(results)
    RESULTS.mkdir(exist_ok=True)
    path.write_text(json.dumps(merged, indent=2) + "\n")
    return path


def export_pneumoniamnist(out: str, limit: int | None = None) -> Path:
    """Write PneumoniaMNIST as PNG files and labels.csv, for ``permed train OUT --images
    image_path --target label --models cnn``."""
    from permed.ingest.images import export_npz_images

    return export_npz_images(PNEUMONIA_NPZ, out, splits=("train", "val", "test"), limit=limit)


def main(argv: list[str]) -> None:
    if argv[:1] == ["--export-pneumoniamnist"]:
        limit = int(argv[argv.index("--limit") + 1]) if "--limit" in argv else None
        print(f"wrote {export_pneumoniamnist(argv[1], limit)}")
        return
    names = argv or list(SECTIONS)
    unknown = [n for n in names if n not in SECTIONS]
    if unknown:
        raise SystemExit(f"unknown section(s) {unknown}; expected {list(SECTIONS)}")
    results = {}
    for name in names:
        print(f"\n== {name} ==")
        payload = SECTIONS[name]()
        if payload is not None:
            results[name] = payload
    print(f"wrote {write_sections(results)}")


if __name__ == "__main__":
    main(sys.argv[1:])
