"""Read patient tables (CSV, TSV, Parquet) with the project's missing-value markers.

A ``.csv`` may be separated by ``,``, ``;``, tabs or ``|``: hospital exports from Excel in much
of Europe use ``;`` with decimal commas (``63;1;233,5``). How a CSV/TSV is written (encoding,
delimiter, decimal mark, thousands separators, empty rows and footers at its end) is decided
from evidence in ``permed.ingest._csv``; the same decisions serve whole-file reading
(:func:`read_table`) and streaming (:func:`read_table_chunks`).
"""

from __future__ import annotations

import hashlib
import warnings
import zipfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from permed.exceptions import DataError, PermedError
from permed.ingest._csv import (
    MISSING_MARKERS,
    Dialect,
    ReadWarning,
    csv_handle,
    duplicate_names,
    is_text,
    numbers_from_text,
    read_options,
    sniff_csv,
    written_as,
)

__all__ = ["MISSING_MARKERS", "SUPPORTED_SUFFIXES", "ReadWarning", "TableInfo", "fingerprint",
           "missing_markers", "read_table", "read_table_chunks", "table_columns"]

SUPPORTED_SUFFIXES = (".csv", ".tsv", ".parquet")

_ZIP = b"PK\x03\x04"
_OLE2 = bytes.fromhex("d0cf11e0a1b11ae1")  # legacy .xls (and other old Office files)


@dataclass(frozen=True)
class TableInfo:
    """Where a table came from and what it holds.

    ``delimiter``, ``decimal`` and ``encoding`` are how a CSV or TSV was read (``None`` for
    other formats); ``marks`` is ``(delimiter, decimal)`` when a number showed the decimal mark
    (what a trained model reads a new table's ambiguous numbers with); ``notes`` say what was
    read otherwise than written (an encoding other than UTF-8, thousands separators removed,
    empty rows at the end left out), each also issued as a :class:`ReadWarning`.
    """

    path: str
    fingerprint: str
    rows: int
    columns: int
    delimiter: str | None = None
    decimal: str | None = None
    encoding: str | None = None
    notes: tuple[str, ...] = ()
    marks: tuple[str, str] | None = None


def fingerprint(path: str | Path) -> str:
    """SHA-256 of a file's bytes, as ``"sha256:<hex>"``."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return f"sha256:{digest.hexdigest()}"


def read_table(path: str | Path, text_columns: Iterable[str] = (),
               missing: Iterable[str] = (), known_marks: tuple[str, str] | None = None,
               *, repeatable: Callable[[str], bool] | None = None
               ) -> tuple[pd.DataFrame, TableInfo]:
    """Read a CSV, TSV or Parquet table.

    ``""``, ``NA``, ``N/A``, ``?`` (and ``NaN``) are read as missing; column names are stripped
    of surrounding spaces. A ``.csv`` separated by ``;``, tabs or ``|`` is detected, and
    decimal commas (``233,5``) are read as numbers in a table not separated by commas; see
    ``permed.ingest._csv`` for how encoding, decimal mark, thousands separators and the end of
    the file are decided.

    Parameters
    ----------
    path : str or Path
        A ``.csv``, ``.tsv`` or ``.parquet`` file.
    text_columns : iterable of str, optional
        Columns of a CSV/TSV read as text as written: a patient id ``000101`` keeps its zeros
        (as a number it was 101.0) and ``1e3`` stays ``1e3``. Names absent from the file are
        ignored.
    missing : iterable of str, optional
        The extract's own markers of a missing value (the study's ``missing``, e.g. ``n/a``,
        ``-``), read as missing beside the ones above, in every format.
    known_marks : (str, str), optional
        The development data's ``(delimiter, decimal mark)`` (``TableInfo.marks``): a CSV with
        that delimiter whose numbers are all ambiguous (``386.000``) is read with that mark,
        with a warning, rather than refused.

    Returns
    -------
    frame : pandas.DataFrame
    info : TableInfo
        Path, SHA-256 fingerprint, shape, and the delimiter, decimal mark, encoding and notes of
        a CSV or TSV.

    Raises
    ------
    DataError
        The file does not exist, is an Excel workbook, has an unsupported suffix, cannot be
        parsed, is empty, has duplicate column names, is neither UTF-8 nor Windows-1252, mixes
        decimal marks (or has only ambiguous ones such as ``386.000``) or ends with a footer.

    Warns
    -----
    ReadWarning
        For each of ``info.notes``.

    Examples
    --------
    >>> frame, info = read_table("heart.csv")  # doctest: +SKIP
    """
    path = Path(path)
    if path.is_dir():  # an image study: a folder with its table or class subfolders
        from permed.ingest.images import read_image_folder

        return read_image_folder(path)
    suffix = _check_file(path)
    frame, dialect, notes = _parse(path, suffix, tuple(text_columns), tuple(missing),
                                   known_marks, repeatable)
    frame.columns = [str(c).strip() for c in frame.columns]
    _check_shape(frame, path, repeatable)
    frame.attrs["source_dir"] = str(path.resolve().parent)  # relative image paths start here
    for note in notes:
        warnings.warn(note, ReadWarning, stacklevel=2)
    info = TableInfo(str(path), fingerprint(path), len(frame), frame.shape[1],
                     dialect.delimiter if dialect else None,
                     dialect.decimal if dialect else None,
                     dialect.encoding if dialect else None, tuple(notes),
                     (dialect.delimiter, dialect.decimal) if dialect and dialect.evidence
                     else None)
    return frame, info


def table_columns(path: str | Path) -> list[str]:
    """The column names of a CSV, TSV or Parquet table, read without its rows.

    Raises
    ------
    DataError
        As :func:`read_table`, when the file cannot be read.
    """
    from permed.privacy import table_source

    path = Path(path)
    suffix = _check_file(path)
    source = table_source(path)
    with _reading(path, suffix):
        if suffix == ".parquet":
            import pyarrow.parquet as pq

            names = pq.read_schema(source).names
        else:
            names = list(sniff_csv(source, suffix, str(path)).header)
    return [str(name).strip() for name in names]


def read_table_chunks(path: str | Path, rows: int, text_columns: Iterable[str] = (),
                      missing: Iterable[str] = (), known_marks: tuple[str, str] | None = None
                      ) -> Iterator[pd.DataFrame]:
    """A CSV or TSV, ``rows`` rows at a time, read as :func:`read_table` reads it whole.

    The dialect (encoding, delimiter, decimal mark, end) is decided before the first partition;
    thousands separators are removed partition by partition. Column names are stripped of
    surrounding spaces. Parquet is streamed by ``pyarrow`` instead (``permed.workflow._batch``).

    Raises
    ------
    DataError
        As :func:`read_table`, when the file or a partition cannot be read.

    Warns
    -----
    ReadWarning
        As :func:`read_table`; a note from a partition once.
    """
    from permed.privacy import table_source

    path = Path(path)
    suffix = _check_file(path)
    if suffix == ".parquet":
        raise DataError(f"'{path}' is Parquet: stream it with pyarrow's iter_batches")
    source = table_source(path)
    dialect = sniff_csv(source, suffix, str(path), known_marks)
    said = set(dialect.notes)
    for note in dialect.notes:
        warnings.warn(note, ReadWarning, stacklevel=2)
    skip = set(text_columns)
    first = 0
    with (csv_handle(source, dialect) as handle, _reading(path, suffix),
          pd.read_csv(handle, chunksize=rows,
                      **read_options(dialect, skip, tuple(missing))) as reader):
        for chunk in reader:
            for note in numbers_from_text(chunk, dialect, str(path), source, first, skip):
                if note not in said:
                    said.add(note)
                    warnings.warn(note, ReadWarning, stacklevel=2)
            chunk.columns = [str(c).strip() for c in chunk.columns]
            first += len(chunk)
            yield chunk


def _check_file(path: Path) -> str:
    """The suffix of a readable data file."""
    if not path.is_file():
        raise DataError(f"data file '{path}' does not exist: check the path")
    _refuse_excel(path)
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise DataError(
            f"data file '{path}' has suffix '{suffix or '(none)'}'; expected one of "
            f"{', '.join(SUPPORTED_SUFFIXES)}: convert the file or rename it"
        )
    return suffix


def _refuse_excel(path: Path) -> None:
    """An Excel workbook, whatever its suffix, gets the way to a CSV instead of a parse error."""
    kind = _excel_kind(path)
    if kind:
        raise DataError(
            f"data file '{path}' is an Excel workbook ({kind}), which permed does not read: "
            "open it in Excel and save the sheet with the data as CSV (File > Save As > "
            "'CSV UTF-8 (Comma delimited)'), or as Parquet"
        )


def _excel_kind(path: Path) -> str | None:
    with open(path, "rb") as fh:
        head = fh.read(len(_OLE2))
    if head.startswith(_ZIP):  # .xlsx: a ZIP of XML parts, the workbook's under xl/
        try:
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
        except (zipfile.BadZipFile, OSError):
            return None
        workbook = "[Content_Types].xml" in names and any(n.startswith("xl/") for n in names)
        return ".xlsx" if workbook else None
    if head == _OLE2:  # an old Office file names its streams in UTF-16: Workbook (Excel 5: Book)
        content = path.read_bytes()
        if any(n.encode("utf-16-le") in content for n in ("Workbook", "Book")):
            return "legacy .xls"
    return None


def _parse(path: Path, suffix: str, text_columns: tuple[str, ...], missing: tuple[str, ...],
           known_marks: tuple[str, str] | None, repeatable: Callable[[str], bool] | None
           ) -> tuple[pd.DataFrame, Dialect | None, list[str]]:
    from permed.privacy import table_source

    source = table_source(path)  # an encrypted extract is decrypted in memory with the data key
    with _reading(path, suffix):
        if suffix == ".parquet":
            return missing_markers(pd.read_parquet(source), missing), None, []
        dialect = sniff_csv(source, suffix, str(path), known_marks, repeatable)
        with csv_handle(source, dialect) as handle:
            frame = pd.read_csv(handle, **read_options(dialect, text_columns, missing))
        notes = numbers_from_text(frame, dialect, str(path), source, skip=text_columns)
    return frame, dialect, [*dialect.notes, *notes]


def missing_markers(frame: pd.DataFrame, markers: Iterable[str]) -> pd.DataFrame:
    """``frame`` with the text cells equal to one of ``markers`` (spaces aside) made missing,
    as a CSV's ``na_values`` do (Parquet and partitions streamed by pyarrow)."""
    wanted = {str(m).strip() for m in markers}
    if not wanted:
        return frame
    for name in frame.columns:
        column = frame[name]
        if is_text(column):
            hit = written_as(column, wanted)
            if hit.any():
                frame[name] = column.mask(hit)
    return frame


@contextmanager
def _reading(path: Path, suffix: str) -> Iterator[None]:
    """Parser errors become a :class:`DataError` naming the file; permed's own pass as they
    are."""
    try:
        yield
    except PermedError:
        raise
    except pd.errors.EmptyDataError:
        raise DataError(f"data file '{path}' is empty: it needs a header row and data") from None
    except (pd.errors.ParserError, UnicodeDecodeError, OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(
            f"data file '{path}' could not be read as {suffix[1:].upper()}: {first}: "
            "check the delimiter, quoting and encoding (UTF-8)"
        ) from None


def _check_shape(frame: pd.DataFrame, path: Path,
                 repeatable: Callable[[str], bool] | None = None) -> None:
    if frame.empty:
        raise DataError(f"data file '{path}' has no data rows: it holds only a header")
    # duplicated() is linear: counting per column took minutes on a 7,000-gene table
    if frame.columns.duplicated().any():  # a CSV's header was checked as written
        duplicates = duplicate_names(frame.columns, repeatable)
        if duplicates:
            raise DataError(f"data file '{path}' has duplicate column names {duplicates}: "
                            "rename them so each is unique")
