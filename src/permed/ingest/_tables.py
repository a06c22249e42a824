"""Read patient tables (CSV, TSV, Parquet) with the project's missing-value markers."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from permed.exceptions import DataError

__all__ = ["MISSING_MARKERS", "SUPPORTED_SUFFIXES", "TableInfo", "fingerprint", "read_table"]

MISSING_MARKERS = ["", "NA", "N/A", "?", "NaN", "nan"]
SUPPORTED_SUFFIXES = (".csv", ".tsv", ".parquet")


@dataclass(frozen=True)
class TableInfo:
    """Where a table came from and what it holds."""

    path: str
    fingerprint: str
    rows: int
    columns: int


def fingerprint(path: str | Path) -> str:
    """SHA-256 of a file's bytes, as ``"sha256:<hex>"``."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return f"sha256:{digest.hexdigest()}"


def read_table(path: str | Path) -> tuple[pd.DataFrame, TableInfo]:
    """Read a CSV, TSV or Parquet table.

    ``""``, ``NA``, ``N/A``, ``?`` (and ``NaN``) are read as missing; column names are stripped
    of surrounding spaces.

    Parameters
    ----------
    path : str or Path
        A ``.csv``, ``.tsv`` or ``.parquet`` file.

    Returns
    -------
    frame : pandas.DataFrame
    info : TableInfo
        Path, SHA-256 fingerprint and shape.

    Raises
    ------
    DataError
        The file does not exist, has an unsupported suffix, cannot be parsed, is empty or has
        duplicate column names.

    Examples
    --------
    >>> frame, info = read_table("heart.csv")  # doctest: +SKIP
    """
    path = Path(path)
    if path.is_dir():  # an image study: a folder with its table or class subfolders
        from permed.ingest.images import read_image_folder

        return read_image_folder(path)
    if not path.is_file():
        raise DataError(f"data file '{path}' does not exist: check the path")
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise DataError(
            f"data file '{path}' has suffix '{suffix or '(none)'}'; expected one of "
            f"{', '.join(SUPPORTED_SUFFIXES)}: convert the file or rename it"
        )
    frame = _parse(path, suffix)
    frame.columns = [str(c).strip() for c in frame.columns]
    _check_shape(frame, path)
    frame.attrs["source_dir"] = str(path.resolve().parent)  # relative image paths start here
    info = TableInfo(str(path), fingerprint(path), len(frame), frame.shape[1])
    return frame, info


def _parse(path: Path, suffix: str) -> pd.DataFrame:
    from permed.privacy import table_source

    source = table_source(path)  # an encrypted extract is decrypted in memory with the data key
    try:
        if suffix == ".parquet":
            return pd.read_parquet(source)
        return pd.read_csv(
            source,
            sep="\t" if suffix == ".tsv" else ",",
            na_values=MISSING_MARKERS,
            keep_default_na=False,
            skipinitialspace=True,
        )
    except pd.errors.EmptyDataError:
        raise DataError(f"data file '{path}' is empty: it needs a header row and data") from None
    except (pd.errors.ParserError, UnicodeDecodeError, OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(
            f"data file '{path}' could not be read as {suffix[1:].upper()}: {first}: "
            "check the delimiter, quoting and encoding (UTF-8)"
        ) from None


def _check_shape(frame: pd.DataFrame, path: Path) -> None:
    if frame.empty:
        raise DataError(f"data file '{path}' has no data rows: it holds only a header")
    # duplicated() is linear: counting per column took minutes on a 7,000-gene table
    dupes = sorted({str(c) for c in frame.columns[frame.columns.duplicated()]})
    if dupes:
        raise DataError(
            f"data file '{path}' has duplicate column names {dupes}: rename them so each is unique"
        )
