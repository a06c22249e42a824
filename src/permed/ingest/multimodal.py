"""A SEMI-SYNTHETIC table + note + image cohort for multi-modal (fusion) models.

There is no public cohort with a table, a clinical note and an image per patient in
``../shared/data``, so this one is assembled: the images and the diagnosis are real, the rest
is generated.

* **Image and label (real)**: chest X-rays of PneumoniaMNIST (MedMNIST v2,
  ``medmnist/pneumoniamnist.npz``, 28 x 28), drawn at random without replacement from its
  train, validation and test images together; the diagnosis ``pneumonia`` (``yes``/``no``) is
  the image's own label.
* **Table (synthetic)**: age, sex, smoker, temperature, SpO2, CRP and white cell count, drawn
  given the label with weak, noisy shifts (alone an AUROC of about 0.75); sex carries nothing.
* **Note (synthetic)**: two to four short sentences, each a symptom phrase (more frequent with
  pneumonia, but also present without) or a neutral phrase (alone an AUROC of about 0.75).
* **Missing modalities**: a share of patients have no note (empty text) and a share no image
  (empty path), independently; every patient has the table.

Given the label, the three modalities are independent, so together they carry more than any
one of them: a fusion model should beat each single-modality model. The figures this cohort
gives say that fusion works as designed; they say nothing about real clinical performance.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from permed.exceptions import DataError

__all__ = ["MULTIMODAL_STUDY", "multimodal_cohort"]

# the study (TOML) of the cohort this module writes: docs/examples/multimodal.toml
MULTIMODAL_STUDY = """\
# Study of the SEMI-SYNTHETIC multi-modal cohort written by permed datasets multimodal:
#   permed train cohort.parquet --study multimodal.toml --models fusion --out runs/mm
# Every column not named below (age, sex, smoker, temperature, spo2, crp, wbc) is a table feature.
[study]
task = "diagnose"
text_encoder = "tfidf"

[roles]
id = "patient_id"
target = "pneumonia"
images = "image_path"   # paths relative to the table's folder; an empty path: no image (masked)
notes = ["note"]        # an empty note: no note (masked)
on_bad_file = "fail"    # an unreadable image file stops training ("skip": masked, with a warning)

[columns.age]
unit = "years"
valid_range = [18, 100]

[columns.spo2]
unit = "%"
valid_range = [60, 100]
"""

_SYMPTOMS = (
    "productive cough for several days", "fever and chills since yesterday",
    "shortness of breath on exertion", "crackles heard at the right base",
    "pleuritic chest pain when breathing in", "reduced breath sounds on the left",
    "tachypnoea noted at triage", "rusty sputum reported",
)
_NEUTRAL = (
    "patient alert and oriented", "no known drug allergies", "lives with family",
    "mild headache, no neck stiffness", "abdomen soft and non-tender",
    "follow-up with the family doctor advised", "taking vitamin d supplements",
    "dry cough for a week", "feels tired", "normal heart sounds",
)


def _pool(npz: Path) -> tuple[np.ndarray, np.ndarray]:
    if not npz.is_file():
        raise DataError(f"the PneumoniaMNIST file '{npz}' does not exist: give the path of "
                        "pneumoniamnist.npz (MedMNIST v2) with --npz")
    with np.load(npz) as data:
        splits = [s for s in ("train", "val", "test") if f"{s}_images" in data]
        if not splits:
            raise DataError(f"'{npz}' holds no train_images/val_images/test_images arrays: "
                            "give a MedMNIST .npz file")
        images = np.concatenate([data[f"{s}_images"] for s in splits])
        labels = np.concatenate([np.asarray(data[f"{s}_labels"]).ravel() for s in splits])
    return images, labels.astype(int)


def _table(y: np.ndarray, rng: np.random.Generator) -> pd.DataFrame:
    n = len(y)
    return pd.DataFrame({
        "age": np.clip(rng.normal(52 + 4 * y, 16), 18, 95).round(),
        "sex": rng.choice(["F", "M"], n),
        "smoker": np.where(rng.random(n) < 0.2 + 0.1 * y, "yes", "no"),
        "temperature": (rng.normal(37.1 + 0.5 * y, 0.7)).round(1),
        "spo2": np.clip(rng.normal(96.0 - 1.8 * y, 2.5), 70, 100).round(),
        "crp": np.exp(rng.normal(1.6 + 0.6 * y, 1.0)).round(1),
        "wbc": np.clip(rng.normal(8.0 + 1.0 * y, 3.0), 1.5, 30).round(1),
    })


def _note(label: int, rng: np.random.Generator) -> str:
    sentences = [s for s in _SYMPTOMS if rng.random() < (0.28 if label else 0.08)]
    sentences += list(rng.choice(_NEUTRAL, size=rng.integers(1, 3), replace=False))
    order = rng.permutation(len(sentences))
    return ". ".join(str(sentences[i]).capitalize() for i in order) + "."


def multimodal_cohort(rows: int, out: str | Path, seed: int = 0, npz: str | Path | None = None,
                      missing_note: float = 0.15, missing_image: float = 0.15) -> Path:
    """Write the semi-synthetic cohort (module docstring) to ``out``.

    Parameters
    ----------
    rows : int
        Patients, at most the number of images in the ``.npz`` (3,166 in the shared one).
    out : str or Path
        Folder written: ``cohort.parquet``, ``images/<patient>.png`` and ``multimodal.toml``.
    seed : int
    npz : str or Path, optional
        PneumoniaMNIST ``.npz`` (default ``../shared/data/medmnist/pneumoniamnist.npz``, or
        ``$PERMED_SHARED_DATA/medmnist/pneumoniamnist.npz``).
    missing_note, missing_image : float
        Share of patients without a note, without an image.

    Returns
    -------
    Path
        The table, ``out/cohort.parquet``.

    Raises
    ------
    DataError
        The ``.npz`` is absent or holds fewer images than ``rows``.
    """
    from PIL import Image

    images, labels = _pool(Path(npz) if npz else _default_npz())
    if not 1 <= rows <= len(images):
        raise DataError(f"--rows {rows} must be between 1 and {len(images)} (the images in "
                        "the PneumoniaMNIST file)")
    for name, share in (("missing_note", missing_note), ("missing_image", missing_image)):
        if not 0 <= share < 1:
            raise DataError(f"{name}={share} must be a share in [0, 1)")
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(images), size=rows, replace=False)
    y = labels[chosen]
    folder = Path(out)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    ids = [f"P{i:05d}" for i in range(rows)]
    paths = []
    for patient, index, has in zip(ids, chosen, rng.random(rows) >= missing_image, strict=True):
        name = f"images/{patient}.png" if has else ""
        if has:
            Image.fromarray(images[index].astype(np.uint8)).save(folder / name)
        paths.append(name)
    notes = [_note(int(label), rng) if has else ""
             for label, has in zip(y, rng.random(rows) >= missing_note, strict=True)]
    frame = pd.concat([pd.DataFrame({"patient_id": ids}), _table(y, rng)], axis=1)
    frame["note"] = notes
    frame["image_path"] = paths
    frame["pneumonia"] = np.where(y == 1, "yes", "no")
    table = folder / "cohort.parquet"
    frame.to_parquet(table, index=False)
    (folder / "multimodal.toml").write_text(MULTIMODAL_STUDY)
    return table


def _default_npz() -> Path:
    import os

    root = os.environ.get("PERMED_SHARED_DATA")
    base = Path(root) if root else Path(__file__).resolve().parents[4] / "shared" / "data"
    return base / "medmnist" / "pneumoniamnist.npz"
