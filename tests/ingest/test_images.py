"""Image readers on the shared DICOM and NIfTI samples, PNG/JPEG/NumPy files, bad files."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from permed.exceptions import DataError
from permed.ingest import read_table
from permed.ingest.images import (
    ImageReadError,
    export_npz_images,
    load_image,
    load_images,
    normalize_intensity,
    read_image,
    resize_image,
    resolve_image_paths,
)
from permed.testing import shared_data

pytest.importorskip("pydicom")
pytest.importorskip("nibabel")

# file -> shape of the pixel data (frames first for multi-frame DICOM)
DICOM = {"CT_small.dcm": (128, 128), "MR_small.dcm": (64, 64), "MR2_UNCR.dcm": (1024, 1024),
         "US1_UNCR.dcm": (480, 640), "emri_small.dcm": (10, 64, 64),
         "eCT_Supplemental.dcm": (2, 512, 512), "liver.dcm": (3, 512, 512)}
# NIfTI volumes come back slices first: (x, y, z) -> (z, y, x); 4-D gives its first volume
NIFTI = {"anatomical.nii": (25, 41, 33), "someones_anatomy.nii.gz": (56, 67, 57),
         "someones_epi.nii.gz": (33, 61, 53), "example4d.nii.gz": (24, 96, 128)}


@pytest.mark.parametrize(("name", "shape"), DICOM.items())
def test_read_dicom_samples(name, shape):
    pixels = read_image(shared_data(f"dicom_samples/{name}"))
    assert pixels.shape == shape  # the colour ultrasound is averaged to one grey channel
    assert pixels.dtype == np.float32
    assert np.isfinite(pixels).all()
    image = load_image(shared_data(f"dicom_samples/{name}"), (28, 28))
    assert image.shape == (1, 28, 28)
    assert image.min() >= 0.0
    assert image.max() <= 1.0
    assert image.max() > image.min()


def test_dicom_rescale_gives_hounsfield_units():
    import pydicom

    path = shared_data("dicom_samples/CT_small.dcm")
    dataset = pydicom.dcmread(path)
    expected = dataset.pixel_array * float(dataset.RescaleSlope) + float(dataset.RescaleIntercept)
    np.testing.assert_allclose(read_image(path), expected, atol=1e-3)


@pytest.mark.parametrize(("name", "shape"), NIFTI.items())
def test_read_nifti_samples(name, shape):
    path = shared_data(f"nifti_samples/{name}")
    assert read_image(path).shape == shape
    assert load_image(path, (16, 16, 16)).shape == (1, 16, 16, 16)
    middle = load_image(path, (20, 20))  # a 2-D model gets the middle slice
    assert middle.shape == (1, 20, 20)
    assert middle.max() > 0


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".npy", ".npz"])
def test_read_png_jpeg_numpy(tmp_path, suffix):
    pixels = np.tile(np.arange(0, 250, 10, dtype=np.uint8), (20, 1))  # 20 x 25 gradient
    path = tmp_path / f"image{suffix}"
    if suffix in (".png", ".jpg"):
        Image.fromarray(pixels).save(path)
    elif suffix == ".npy":
        np.save(path, pixels)
    else:
        np.savez(path, image=pixels, spacing=np.ones(2))
    read = read_image(path)
    assert read.shape == (20, 25)
    np.testing.assert_allclose(read, pixels, atol=3 if suffix == ".jpg" else 0)


def test_normalize_and_resize():
    pixels = np.arange(10_000, dtype=np.float32).reshape(100, 100)
    pixels[0, 0] = 1e9  # one extreme pixel (metal, burnt-in text) does not squash the rest
    scaled = normalize_intensity(pixels)
    assert scaled.min() == 0.0
    assert scaled.max() == 1.0
    assert scaled[50, 0] == pytest.approx(0.5, abs=0.01)
    assert normalize_intensity(np.full((4, 4), 7.0)).max() == 0.0
    assert resize_image(np.ones((100, 80), np.float32), (28, 28)).shape == (28, 28)
    np.testing.assert_allclose(resize_image(np.ones((8, 8, 8), np.float32), (16, 16, 16)), 1.0)


def test_corrupt_and_missing_files_name_the_file(tmp_path):
    corrupt = tmp_path / "broken.dcm"
    corrupt.write_bytes(b"not a dicom file at all")
    with pytest.raises(ImageReadError, match=re.escape(f"image file '{corrupt}' could not be "
                                                       "read as DICOM: ")) as info:
        read_image(corrupt)
    assert info.value.path == str(corrupt)
    assert str(info.value).endswith("check that it is a valid DICOM file, or pass --on-bad-file "
                                    "skip to leave such images out")
    png = tmp_path / "broken.png"
    png.write_bytes(b"\x89PNG garbage")
    with pytest.raises(ImageReadError, match=re.escape(f"image file '{png}' could not be read "
                                                       "as PNG/JPEG")):
        read_image(png)
    missing = tmp_path / "absent.nii.gz"
    with pytest.raises(ImageReadError, match=re.escape(
            f"image file '{missing}' does not exist: check the path (relative paths start at "
            "the table's folder), or pass --on-bad-file skip to leave such images out")):
        read_image(missing)
    with pytest.raises(ImageReadError, match=r"image file 'scan\.gif' has suffix '\.gif'; "
                                             r"expected one of \.dcm, "):
        read_image("scan.gif")
    np.save(tmp_path / "flat.npy", np.ones((20, 25)))
    with pytest.raises(ImageReadError, match=r"is a 2-D image of shape \(20, 25\) but the model "
                                             r"takes 3-D volumes of shape \(8, 8, 8\)"):
        load_image(tmp_path / "flat.npy", (8, 8, 8))


def test_load_images_fail_or_skip(tmp_path):
    good = tmp_path / "good.png"
    Image.fromarray(np.eye(10, dtype=np.uint8) * 255).save(good)
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"junk")
    paths = [good, bad, good]
    with pytest.raises(ImageReadError, match=re.escape(f"image file '{bad}'")):
        load_images(paths, (8, 8), on_bad_file="fail")
    images, read, problems = load_images(paths, (8, 8), on_bad_file="skip")
    assert images.shape == (2, 1, 8, 8)
    assert read.tolist() == [True, False, True]
    assert len(problems) == 1
    assert problems[0].startswith(f"image file '{bad}' could not be read")
    with pytest.raises(DataError, match="--on-bad-file 'ignore' is not known; use fail or skip"):
        load_images(paths, (8, 8), on_bad_file="ignore")


def test_folder_with_table_and_class_subfolders(tmp_path):
    npz = shared_data("medmnist/pneumoniamnist.npz")
    table = export_npz_images(npz, tmp_path / "xr", limit=12)
    frame, info = read_table(tmp_path / "xr")  # a folder: its one table
    assert info.path == str(table)
    assert len(frame) == 12
    assert sorted(frame["label"].unique()) == [0, 1]
    paths = resolve_image_paths(frame, "image_path")
    assert all(p.startswith(str((tmp_path / "xr").resolve())) for p in paths)
    assert load_images(list(paths), (28, 28))[0].shape == (12, 1, 28, 28)

    classes = tmp_path / "classes"
    for label in ("normal", "pneumonia"):
        (classes / label).mkdir(parents=True)
        Image.fromarray(np.zeros((5, 5), np.uint8)).save(classes / label / "a.png")
    frame, info = read_table(classes)
    assert frame.to_dict("list") == {"image_path": ["normal/a.png", "pneumonia/a.png"],
                                     "label": ["normal", "pneumonia"]}
    assert info.fingerprint.startswith("sha256:")

    pd.DataFrame({"image_path": ["a.png"]}).to_csv(classes / "one.csv", index=False)
    pd.DataFrame({"image_path": ["a.png"]}).to_csv(classes / "two.csv", index=False)
    with pytest.raises(DataError, match=re.escape(
            f"folder '{classes}' holds 2 tables (one.csv, two.csv); a folder is read as an image "
            "study with one table (image paths and the target): pass the table itself, e.g. "
            f"permed train {classes / 'one.csv'}")):
        read_table(classes)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="holds no table .* and no class subfolders of images"):
        read_table(empty)
