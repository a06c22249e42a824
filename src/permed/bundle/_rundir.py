"""Atomic run directories: assembled aside, renamed into place only when complete."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from permed.exceptions import PermedError

__all__ = ["atomic_directory"]

_MARKER = "manifest.json"


@contextmanager
def atomic_directory(out: str | Path) -> Iterator[Path]:
    """Yield a hidden sibling folder to write into; on success it becomes ``out``.

    An existing permed output folder at ``out`` is replaced; any other non-empty folder is
    refused. On an exception the partial folder is removed and ``out`` is left as it was.
    """
    out = Path(out).resolve()
    if out.exists() and not out.is_dir():
        raise PermedError(f"--out '{out}' is a file: choose a folder path")
    if out.is_dir() and any(out.iterdir()) and not (out / _MARKER).is_file():
        raise PermedError(
            f"--out '{out}' exists and is not a permed output folder: choose a new folder")
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.parent / f".{out.name}.partial-{uuid.uuid4().hex[:8]}"
    staging.mkdir()
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    old = None
    if out.exists():
        old = out.parent / f".{out.name}.old-{uuid.uuid4().hex[:8]}"
        os.replace(out, old)
    os.replace(staging, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
