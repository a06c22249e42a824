"""Read medical images (DICOM, NIfTI, PNG/JPEG, NumPy arrays) into normalized, resized arrays.

An image study is a table with one column of image paths (relative to the table's folder, or
absolute) and the target; ``permed train xrays/`` also accepts a folder holding such a table, or
a folder of class subfolders of images (``xrays/normal/*.png``, ``xrays/pneumonia/*.png``, read
as the columns ``image_path`` and ``label``).

Every image becomes a ``float32`` array of shape ``(1, *shape)``: one channel (colour images are
averaged to grey), intensities scaled to [0, 1] between their 0.5% and 99.5% quantiles, and
resized to ``shape`` (2 values for 2-D models, 3 for 3-D models). A volume read for a 2-D model
gives its middle slice. A file that cannot be read raises :class:`ImageReadError` naming it;
:func:`load_images` can leave such files out instead (``--on-bad-file skip``).

Readers need the ``imaging`` extra (pydicom, nibabel) for DICOM and NIfTI; PNG/JPEG use Pillow.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from permed.exceptions import DataError
from permed.ingest._tables import SUPPORTED_SUFFIXES, TableInfo, read_table

__all__ = [
    "IMAGE_SUFFIXES",
    "ON_BAD_FILE",
    "ImageReadError",
    "export_npz_images",
    "image_format",
    "load_image",
    "load_images",
    "normalize_intensity",
    "read_image",
    "read_image_folder",
    "resize_image",
    "resolve_image_paths",
]

# suffix -> reader name; ".nii.gz" is matched on the last two suffixes
IMAGE_SUFFIXES = {
    ".dcm": "DICOM", ".dicom": "DICOM", ".nii": "NIfTI", ".nii.gz": "NIfTI",
    ".png": "PNG/JPEG", ".jpg": "PNG/JPEG", ".jpeg": "PNG/JPEG", ".bmp": "PNG/JPEG",
    ".tif": "PNG/JPEG", ".tiff": "PNG/JPEG", ".npz": "NumPy", ".npy": "NumPy",
}
ON_BAD_FILE = ("fail", "skip")
_SKIP_HINT = "or pass --on-bad-file skip to leave such images out"


class ImageReadError(DataError):
    """An image file is missing, has an unknown format or cannot be decoded.

    Attributes
    ----------
    path : str
        The file, as given.
    """

    def __init__(self, path: str | Path, message: str) -> None:
        self.path = str(path)
        super().__init__(message)


def _suffix(path: Path) -> str:
    name = path.name.lower()
    return ".nii.gz" if name.endswith(".nii.gz") else path.suffix.lower()


def image_format(path: str | Path) -> str:
    """The reader of a file from its suffix (``"DICOM"``, ``"NIfTI"``, ``"PNG/JPEG"``,
    ``"NumPy"``).

    Raises
    ------
    ImageReadError
        For a suffix that is not an image format permed reads.
    """
    suffix = _suffix(Path(path))
    if suffix not in IMAGE_SUFFIXES:
        known = ", ".join(IMAGE_SUFFIXES)
        raise ImageReadError(path, f"image file '{path}' has suffix '{suffix or '(none)'}'; "
                                   f"expected one of {known}: convert it, {_SKIP_HINT}")
    return IMAGE_SUFFIXES[suffix]


def _read_dicom(path: Path) -> np.ndarray:
    import pydicom
    from pydicom.pixels import apply_modality_lut

    dataset = pydicom.dcmread(path)
    pixels = apply_modality_lut(dataset.pixel_array, dataset).astype(np.float32)
    if int(getattr(dataset, "SamplesPerPixel", 1)) > 1:  # colour (ultrasound): to grey
        pixels = pixels.mean(axis=-1)
    if getattr(dataset, "PhotometricInterpretation", "") == "MONOCHROME1":  # white = low
        pixels = pixels.max() - pixels
    return pixels  # (rows, cols) or (frames, rows, cols)


def _read_nifti(path: Path) -> np.ndarray:
    import nibabel

    volume = np.asarray(nibabel.load(path).dataobj, dtype=np.float32)
    while volume.ndim > 3:  # a time series (fMRI): its first volume
        volume = volume[..., 0]
    return np.ascontiguousarray(volume.T)  # (x, y, z) -> (z, y, x): slices first


def _read_pil(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as image:
        return np.asarray(image.convert("F"), dtype=np.float32)  # grey, float


def _read_numpy(path: Path) -> np.ndarray:
    if _suffix(path) == ".npy":
        return np.asarray(np.load(path, allow_pickle=False), dtype=np.float32)
    with np.load(path, allow_pickle=False) as arrays:
        keys = list(arrays.keys())
        if len(keys) != 1 and "image" not in keys:
            raise ValueError(f"it holds arrays {keys}; expected one array, or one named 'image'")
        return np.asarray(arrays["image" if "image" in keys else keys[0]], dtype=np.float32)


_READERS = {"DICOM": _read_dicom, "NIfTI": _read_nifti, "PNG/JPEG": _read_pil,
            "NumPy": _read_numpy}


def read_image(path: str | Path) -> np.ndarray:
    """The raw intensities of one image file, slices first, single channel.

    Parameters
    ----------
    path : str or Path
        A DICOM (``.dcm``), NIfTI (``.nii``, ``.nii.gz``), PNG/JPEG/BMP/TIFF or NumPy
        (``.npy``, or ``.npz`` holding one array) file.

    Returns
    -------
    numpy.ndarray of float32
        2-D ``(rows, cols)`` or 3-D ``(slices, rows, cols)``; DICOM values are in modality units
        (e.g. Hounsfield), colour is averaged to grey, a 4-D NIfTI gives its first volume.

    Raises
    ------
    ImageReadError
        The file is missing, its suffix is unknown, or it cannot be decoded.

    Examples
    --------
    >>> read_image("scans/ct_001.dcm").shape  # doctest: +SKIP
    (512, 512)
    """
    path = Path(path)
    kind = image_format(path)
    if not path.is_file():
        raise ImageReadError(path, f"image file '{path}' does not exist: check the path "
                                   f"(relative paths start at the table's folder), {_SKIP_HINT}")
    try:
        pixels = np.squeeze(_READERS[kind](path))
    except ImportError as exc:
        raise ImageReadError(path, f"image file '{path}' needs {exc.name} to be read as {kind}: "
                                   "pip install 'permed[imaging]'") from None
    except Exception as exc:  # noqa: BLE001 - any decoder failure means: unreadable file
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ImageReadError(path, f"image file '{path}' could not be read as {kind}: {first}: "
                                   f"check that it is a valid {kind} file, {_SKIP_HINT}") from None
    if pixels.ndim not in (2, 3) or min(pixels.shape) < 1:
        raise ImageReadError(path, f"image file '{path}' holds an array of shape {pixels.shape}; "
                                   f"expected a 2-D image or a 3-D volume, {_SKIP_HINT}")
    if not np.isfinite(pixels).all():
        pixels = np.nan_to_num(pixels, nan=0.0, posinf=0.0, neginf=0.0)
    return pixels


def normalize_intensity(pixels: np.ndarray, low: float = 0.5, high: float = 99.5) -> np.ndarray:
    """Scale intensities to [0, 1] between the ``low`` and ``high`` percentiles (clipped).

    Robust to a few extreme pixels (metal, burnt-in text); a constant image becomes zeros.
    """
    lo, hi = np.percentile(pixels, [low, high])
    if hi <= lo:
        return np.zeros_like(pixels, dtype=np.float32)
    return np.clip((pixels - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)


def resize_image(pixels: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """Resize a 2-D or 3-D array to ``shape``: area averaging when shrinking (no aliasing),
    (bi/tri)linear interpolation when enlarging."""
    import torch
    from torch.nn import functional

    shape = tuple(int(s) for s in shape)
    if pixels.shape == shape:
        return pixels.astype(np.float32, copy=False)
    tensor = torch.from_numpy(np.ascontiguousarray(pixels, dtype=np.float32))[None, None]
    shrinking = all(t <= s for t, s in zip(shape, pixels.shape, strict=True))
    mode = "area" if shrinking else ("bilinear" if len(shape) == 2 else "trilinear")
    options = {} if mode == "area" else {"align_corners": False}
    return functional.interpolate(tensor, size=shape, mode=mode, **options)[0, 0].numpy()


def load_image(path: str | Path, shape: Sequence[int]) -> np.ndarray:
    """One image, ready for a network: ``(1, *shape)`` float32 in [0, 1].

    A 2-D ``shape`` takes the middle slice of a volume; a 3-D ``shape`` needs a volume.

    Raises
    ------
    ImageReadError
        The file cannot be read, or is 2-D where a 3-D volume is needed.
    """
    pixels = read_image(path)
    if len(shape) == 2 and pixels.ndim == 3:
        pixels = pixels[pixels.shape[0] // 2]
    elif len(shape) == 3 and pixels.ndim == 2:
        raise ImageReadError(path, f"image file '{path}' is a 2-D image of shape {pixels.shape} "
                                   f"but the model takes 3-D volumes of shape {tuple(shape)}: "
                                   f"give volumes, {_SKIP_HINT}")
    return resize_image(normalize_intensity(pixels), shape)[None]


def load_images(paths: Sequence[str | Path], shape: Sequence[int],
                on_bad_file: str = "fail") -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Load many images; stop at the first bad file, or leave bad files out.

    Parameters
    ----------
    paths : sequence of str or Path
    shape : sequence of int
        The spatial shape every image is resized to (2 or 3 values).
    on_bad_file : {"fail", "skip"}
        ``"fail"`` raises at the first unreadable file; ``"skip"`` leaves it out and records why.

    Returns
    -------
    images : ndarray of shape (n_read, 1, *shape)
    read : ndarray of bool, shape (len(paths),)
        Which paths were read (all of them with ``"fail"``).
    problems : list of str
        One message per file left out, naming it.

    Raises
    ------
    ImageReadError
        With ``"fail"``: after trying every file, the unreadable ones (the first named in
        full, the others counted and listed by row), so that one run shows all to fix.
    """
    check_on_bad_file(on_bad_file)
    images, read, problems = [], np.zeros(len(paths), dtype=bool), []
    failures: list[tuple[int, ImageReadError]] = []
    for i, path in enumerate(paths):
        try:
            images.append(load_image(path, shape))
        except ImageReadError as exc:
            failures.append((i, exc))
            problems.append(str(exc).split(": check")[0].split(", or pass")[0])
        else:
            read[i] = True
    if failures and on_bad_file == "fail":
        raise _all_failures(failures)
    empty = np.zeros((0, 1, *shape), dtype=np.float32)
    return (np.stack(images) if images else empty), read, problems


def check_on_bad_file(on_bad_file: str) -> None:
    """Refuse an ``--on-bad-file`` value other than fail or skip."""
    if on_bad_file not in ON_BAD_FILE:
        raise DataError(f"--on-bad-file '{on_bad_file}' is not known; use fail or skip")


def _all_failures(failures: list[tuple[int, ImageReadError]]) -> ImageReadError:
    """One error for every unreadable file: the first as it was, the others by name."""
    first = failures[0][1]
    if len(failures) == 1:
        return first
    others = ", ".join(f"'{Path(exc.path).name}'" for _, exc in failures[1:6])
    more = f" and {len(failures) - 6} more" if len(failures) > 6 else ""
    return ImageReadError(first.path, f"{len(failures)} image files cannot be read; the first: "
                                      f"{first}; the others: {others}{more}")


def resolve_image_paths(frame: pd.DataFrame, column: str) -> pd.Series:
    """The image paths of ``column`` made absolute against the table's folder.

    The folder is ``frame.attrs["source_dir"]`` (set by :func:`permed.ingest.read_table`), or the
    working directory for a table built in memory. Missing values stay missing.
    """
    base = Path(frame.attrs.get("source_dir", "."))

    def absolute(value: object) -> object:
        if value is None or (isinstance(value, float) and np.isnan(value)) or value == "":
            return np.nan
        path = Path(str(value)).expanduser()
        return str(path if path.is_absolute() else (base / path).resolve())

    return frame[column].map(absolute).astype(object)


def _is_image(path: Path) -> bool:
    return path.is_file() and _suffix(path) in IMAGE_SUFFIXES


def read_image_folder(folder: str | Path) -> tuple[pd.DataFrame, TableInfo]:
    """Read an image study given as a folder.

    The folder holds either exactly one table (``.csv``, ``.tsv``, ``.parquet``) whose image
    column has paths relative to the folder, or one subfolder of images per class (read as the
    columns ``image_path`` and ``label``).

    Raises
    ------
    DataError
        The folder holds several tables, or neither a table nor class subfolders of images.
    """
    folder = Path(folder)
    tables = sorted(p for p in folder.iterdir() if p.is_file()
                    and p.suffix.lower() in SUPPORTED_SUFFIXES)
    if len(tables) > 1:
        raise DataError(f"folder '{folder}' holds {len(tables)} tables "
                        f"({', '.join(p.name for p in tables)}); a folder is read as an image "
                        "study with one table (image paths and the target): pass the table "
                        f"itself, e.g. permed train {tables[0]}")
    if tables:
        return read_table(tables[0])
    rows = [(str(p.relative_to(folder)), sub.name) for sub in sorted(folder.iterdir())
            if sub.is_dir() for p in sorted(sub.rglob("*")) if _is_image(p)]
    if not rows:
        raise DataError(f"folder '{folder}' holds no table (.csv, .tsv, .parquet) and no class "
                        "subfolders of images: add a table with an image-path column and the "
                        "target, or one subfolder of images per class")
    frame = pd.DataFrame(rows, columns=["image_path", "label"])
    frame.attrs["source_dir"] = str(folder.resolve())
    digest = hashlib.sha256("\n".join(f"{p}\t{c}" for p, c in rows).encode()).hexdigest()
    return frame, TableInfo(str(folder), f"sha256:{digest}", len(frame), frame.shape[1])


def export_npz_images(npz: str | Path, out: str | Path, splits: Sequence[str] = ("train",),
                      limit: int | None = None, seed: int = 0) -> Path:
    """Write a MedMNIST-style ``.npz`` (``<split>_images``, ``<split>_labels``) as a folder of
    PNG files and a ``labels.csv`` table (``image_path``, ``label``, ``split``).

    Parameters
    ----------
    npz : str or Path
        E.g. ``pneumoniamnist.npz``.
    out : str or Path
        The folder to write (created).
    splits : sequence of str
        Which splits to export.
    limit : int, optional
        At most this many images per split, drawn at random, stratified by label.
    seed : int
        Seed of that draw.

    Returns
    -------
    Path
        The ``labels.csv`` written, ready for ``permed train OUT --images image_path
        --target label``.
    """
    from PIL import Image

    out = Path(out)
    rows = []
    rng = np.random.default_rng(seed)
    with np.load(npz) as arrays:
        for split in splits:
            images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"].reshape(-1)
            chosen = np.arange(len(labels))
            if limit is not None and limit < len(labels):
                chosen = np.sort(np.concatenate([
                    rng.permutation(np.flatnonzero(labels == c))[:max(1, limit * int(
                        (labels == c).sum()) // len(labels))] for c in np.unique(labels)]))
            (out / split).mkdir(parents=True, exist_ok=True)
            for i in chosen:
                name = f"{split}/{split}_{i:05d}.png"
                Image.fromarray(np.asarray(images[i], dtype=np.uint8)).save(out / name)
                rows.append((name, int(labels[i]), split))
    table = out / "labels.csv"
    pd.DataFrame(rows, columns=["image_path", "label", "split"]).to_csv(table, index=False)
    return table
