"""Images sent to the service inside the request, as data URLs; never a path on the server.

A patient's image field holds the image itself, ``data:<media type>;base64,<content>`` (PNG,
JPEG, TIFF, BMP, DICOM or a NumPy array). A file path is refused: a client must not be able to
make the service open files on its own disk. For scoring, each image is written to a private
temporary folder under the suffix of its media type, read by the model as a training image is,
and removed when the request has been scored.
"""

from __future__ import annotations

import base64
import binascii
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

__all__ = ["MEDIA_TYPES", "check_image", "image_columns", "inline_images"]

MEDIA_TYPES = {"image/png": ".png", "image/jpeg": ".jpg", "image/tiff": ".tif",
               "image/bmp": ".bmp", "application/dicom": ".dcm", "application/x-npy": ".npy"}
EXPECTED = "an image as a data URL ('data:image/png;base64,...') or null"


def image_columns(schema: Any) -> list[str]:
    """The schema's image features."""
    return [f.name for f in schema.features if f.kind == "image"]


def _parts(value: str) -> tuple[str, bytes]:
    """The media type and content of a data URL (ValueError when it is not one)."""
    header, comma, payload = value.partition(",")
    if not value.startswith("data:") or not comma or not header.endswith(";base64"):
        raise ValueError("not a base64 data URL")
    media_type = header[len("data:"):-len(";base64")].lower()
    try:
        return media_type, base64.b64decode(payload, validate=True)
    except binascii.Error as exc:
        raise ValueError("its content is not valid base64") from exc


def check_image(feature: Any, value: Any) -> tuple[Any, str | None]:
    """The field's data URL if it holds a readable kind of image, else why not."""
    if value is None:
        return None, None
    name = feature.name
    if not isinstance(value, str) or not value.startswith("data:"):
        return None, (f"field '{name}' must be the image itself as a data URL "
                      "('data:image/png;base64,...'); the service never opens files by path")
    try:
        media_type, content = _parts(value)
    except ValueError as exc:
        return None, f"field '{name}' is not a usable data URL ({exc}): send " \
                     "'data:<media type>;base64,<content>'"
    if media_type not in MEDIA_TYPES:
        return None, (f"field '{name}' has media type '{media_type}'; expected one of "
                      f"{', '.join(MEDIA_TYPES)}")
    if not content:
        return None, f"field '{name}' holds an empty image"
    return value, None


@contextmanager
def inline_images(frame: pd.DataFrame, columns: list[str]
                  ) -> Iterator[tuple[pd.DataFrame, pd.DataFrame]]:
    """``frame`` with each data URL of ``columns`` replaced by the path of a temporary file
    holding the image (removed on exit); and, for the answers, the same cells as a short
    stand-in: the media type and size (None where no image was sent)."""
    if not columns:
        yield frame, frame[[]]
        return
    with tempfile.TemporaryDirectory(prefix="permed-images-") as folder:
        readable, shown = frame.copy(), pd.DataFrame(index=frame.index)
        for column in columns:
            paths, texts = [], []
            for row, value in enumerate(frame[column]):
                if not isinstance(value, str):
                    paths.append(None)
                    texts.append(None)
                    continue
                media_type, content = _parts(value)
                path = Path(folder) / f"{column}-{row}{MEDIA_TYPES[media_type]}"
                path.write_bytes(content)
                paths.append(str(path))
                texts.append(f"inline {media_type}, {len(content)} bytes")
            readable[column] = pd.Series(paths, index=frame.index, dtype=object)
            shown[column] = pd.Series(texts, index=frame.index, dtype=object)
        yield readable, shown
