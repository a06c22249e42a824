"""How a CSV/TSV extract is written: encoding, delimiter, decimal mark, header and end.

Hospital extracts come from Excel and clinical systems in many dialects. Everything is decided
from evidence, never from a default that could change a number:

- **Encoding**: UTF-8 (with or without a byte-order mark); a file that is not UTF-8 but reads
  cleanly as Windows-1252 (what Excel writes in Western Europe as "CSV") is read as such, with a
  warning naming the first such byte; anything else is refused with the line and column.
- **Delimiter**: ``,``, ``;``, tab or ``|``: the one that splits the header and every sampled
  row (lines with a single field aside: a title, a footer) into the same number, two or more,
  of fields. A tie, or no such delimiter: ``,``.
- **Decimal mark**: from the numbers of the first ``SAMPLE_ROWS`` rows (the whole file when it
  is smaller), in columns that hold only numbers. ``2,3`` shows a decimal comma, ``2.3`` a
  decimal point; ``386.000`` and ``1,234`` show nothing by themselves (a thousands separator or
  three decimals). A file using both marks, or only ambiguous ones (in a file not separated by
  commas), is refused with the column, values and lines, unless the caller knows the mark of
  the development data, written with the same delimiter (``known_marks``): a new table of a
  trained model is then read with it, with a warning. A comma-separated file uses points.
- **Thousands separators** are removed, after reading, from a column whose every value is a
  number in the file's convention (``386.000`` beside decimal commas is 386000; ``"2,178"``
  beside decimal points is 2178), with a warning. A column that also holds numbers in the other
  convention (past the sample) is refused.
- **End**: rows with every cell empty at the end of the file are left out, with a note; a last
  line with one non-empty, non-numeric cell (``Total: 303 patients``) is refused as a footer.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, BinaryIO

import pandas as pd

from permed.exceptions import DataError

__all__ = ["MISSING_MARKERS", "SAMPLE_ROWS", "Dialect", "ReadWarning", "csv_handle",
           "duplicate_names", "is_text", "numbers_from_text", "read_options", "sniff_csv",
           "written_as"]

MISSING_MARKERS = ["", "NA", "N/A", "?", "NaN", "nan"]  # read as missing (permed.ingest)
MISSING = frozenset(MISSING_MARKERS)
SAMPLE_ROWS = 10_000
_SAMPLE_BYTES = 8 << 20  # at most this much of a wide table is sampled
_TAIL_BYTES = 1 << 20
_CHUNK = 1 << 24
_DELIMITERS = (",", ";", "\t", "|")
_AGREEING = 0.9  # rows that must agree with the header when no delimiter splits all of them

_SIGN, _EXP = r"[+-]?", r"(?:[eE][+-]?\d+)?"
_KIND = re.compile("|".join([
    rf"(?P<integer>{_SIGN}\d+{_EXP})",
    rf"(?P<grouped_point>{_SIGN}[1-9]\d{{0,2}}\.\d{{3}})",  # 386.000: 386000 or 386.0
    rf"(?P<grouped_comma>{_SIGN}[1-9]\d{{0,2}},\d{{3}})",  # 1,234: 1234 or 1.234
    rf"(?P<eu>{_SIGN}[1-9]\d{{0,2}}(?:\.\d{{3}})+(?:,\d+)?)",  # 1.234.567, 2.330,5
    rf"(?P<us>{_SIGN}[1-9]\d{{0,2}}(?:,\d{{3}})+(?:\.\d+)?)",  # 1,234,567, 2,330.5
    rf"(?P<comma>{_SIGN}\d*,\d+{_EXP})",
    rf"(?P<point>{_SIGN}\d*\.\d+{_EXP})",
]))
_SIDE = {"comma": ",", "eu": ",", "point": ".", "us": "."}  # what each kind shows
_FITS = {  # the kinds a decimal mark reads, and the thousands separator it removes
    ",": frozenset(["integer", "comma", "eu", "grouped_point", "grouped_comma"]),
    ".": frozenset(["integer", "point", "us", "grouped_point", "grouped_comma"]),
}
_GROUPED = {",": frozenset(["eu", "grouped_point"]), ".": frozenset(["us", "grouped_comma"])}
_MARK = {",": "a decimal comma", ".": "a decimal point"}
_FIX_MARKS = ("re-export the file so that every column uses the same decimal mark (Excel: "
              "File > Options > Advanced, 'Use system separators'), or save it as 'CSV UTF-8' "
              "with decimal points")


class ReadWarning(UserWarning):
    """A table was read, but not quite as written: the message says what was done."""


@dataclass(frozen=True)
class Dialect:
    """How a CSV/TSV is written.

    ``header`` holds the names as written; ``end`` is the number of bytes to read (trailing
    empty rows left out; ``None``: all); ``evidence`` shows where the decimal mark was seen.
    """

    delimiter: str
    decimal: str
    encoding: str
    header: tuple[str, ...]
    end: int | None = None
    evidence: str = ""
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class _Example:
    column: str
    value: str
    line: int


def sniff_csv(source: str | Path | io.BytesIO, suffix: str, label: str,
              known_marks: tuple[str, str] | None = None,
              repeatable: Callable[[str], bool] | None = None) -> Dialect:
    """The dialect of a CSV/TSV file (or its decrypted bytes).

    ``known_marks`` is the ``(delimiter, decimal mark)`` of the development data: a file with
    that delimiter whose numbers show no decimal mark but ambiguous ones is read with that mark.
    ``repeatable`` says which column names may repeat (see :func:`duplicate_names`).

    Raises
    ------
    DataError
        The file is not text, is neither UTF-8 nor Windows-1252, has no header row (see
        :func:`_header_as_data`), repeats a column name, mixes decimal marks, has only
        ambiguous numbers, or ends with a footer line.
    """
    with _opened(source) as stream:
        size = stream.seek(0, io.SEEK_END)
        head = _read(stream, 0, _SAMPLE_BYTES)
        _refuse_binary(head, suffix, label)
        bad = _first_undecodable(stream, "utf-8")
        encoding = "utf-8" if bad is None else "cp1252"
        text = head.decode(encoding, errors="replace").removeprefix("\ufeff")
        truncated = len(head) < size  # the last row may be cut short: it is not sampled
        delimiter = "\t" if suffix == ".tsv" else _delimiter(text, truncated)
        records = _numbered(text, delimiter, truncated)
        header = tuple(records[0][1]) if records else ()
        _refuse_headless(header, records[1:], label)
        duplicates = duplicate_names(header, repeatable)
        if duplicates:
            raise DataError(f"data file '{label}' has duplicate column names {duplicates}: "
                            "rename them so each is unique")
        notes = [] if bad is None else [_not_utf8(stream, bad, delimiter, header, label)]
        decimal, evidence, guessed = _decimal(records[1:], header, delimiter, label,
                                              known_marks)
        end, note = _end(stream, size, delimiter, encoding, len(header), label)
    return Dialect(delimiter, decimal, encoding, header, end, evidence,
                   tuple(notes + [n for n in (guessed, note) if n]))


def read_options(dialect: Dialect, text_columns: Iterable[str] = (),
                 missing: Iterable[str] = ()) -> dict[str, Any]:
    """``pandas.read_csv`` keywords for a dialect; ``text_columns`` are read as text and
    ``missing`` read as missing beside :data:`MISSING_MARKERS`."""
    wanted = set(text_columns)
    named = [raw for raw in dialect.header if raw.strip() in wanted]
    # skipinitialspace strips the names' leading spaces too: name both forms
    dtype = {name: str for raw in named for name in (raw, raw.lstrip())}
    return {"sep": dialect.delimiter, "decimal": dialect.decimal, "encoding": dialect.encoding,
            "na_values": [*MISSING_MARKERS, *missing], "keep_default_na": False,
            "skipinitialspace": True,
            "dtype": dtype or None}


@contextmanager
def csv_handle(source: str | Path | io.BytesIO, dialect: Dialect) -> Iterator[Any]:
    """What ``pandas.read_csv`` should read: the source, or its first ``dialect.end`` bytes."""
    if dialect.end is None:
        if isinstance(source, io.BytesIO):
            source.seek(0)  # sniffing moved it
        yield source
        return
    with _opened(source) as stream:
        stream.seek(0)
        yield io.BufferedReader(_Head(stream, dialect.end))


def duplicate_names(names: Iterable[str],
                    repeatable: Callable[[str], bool] | None = None) -> str:
    """Column names that are the same once stripped of surrounding spaces, with their 1-based
    positions: ``'age' (columns 1 and 6)``, ``'age' (column 1) and 'age ' (column 6)``.

    A name for which ``repeatable`` (given the stripped name) is true is not counted: a reader
    that leaves such columns out (the Affymetrix ``call`` columns of an expression matrix)."""
    groups: dict[str, list[tuple[int, str]]] = {}
    for position, name in enumerate(names, start=1):
        groups.setdefault(str(name).strip(), []).append((position, str(name)))
    found = []
    for name, spelled in groups.items():
        if len(spelled) < 2 or (repeatable is not None and repeatable(name)):
            continue
        if len({raw for _, raw in spelled}) == 1:
            found.append(f"'{name}' (columns {_and([str(p) for p, _ in spelled])})")
        else:
            found.append(" and ".join(f"'{raw}' (column {p})" for p, raw in spelled))
    return "; ".join(found)


def numbers_from_text(frame: pd.DataFrame, dialect: Dialect, label: str,
                      source: str | Path | io.BytesIO, first_row: int = 0,
                      skip: Iterable[str] = ()) -> list[str]:
    """Read as numbers, in place, the text columns of ``frame`` whose every value is a number
    in the file's convention with thousands separators; the notes saying so. A cell of
    whitespace alone (a tab, a non-breaking space: what ``skipinitialspace`` leaves) is missing.

    ``first_row`` is the position in the file of the frame's first row (a partition).

    Raises
    ------
    DataError
        A column of numbers holds some written with the other decimal mark (a file not
        separated by commas).
    """
    skipped = set(skip)
    notes = []
    for name in frame.columns:
        column = frame[name]
        if str(name).strip() in skipped or not is_text(column):
            continue
        blank = written_as(column, {""})
        if blank.any():
            column = frame[name] = column.mask(blank)
        kinds = _column_kinds(column)
        if kinds and blank.any() and set(kinds.values()) == {"integer"}:
            frame[name] = pd.to_numeric(column)  # whole numbers, text only for the blanks
            continue
        if not kinds or set(kinds.values()) == {"integer"}:
            continue
        misfits = [v for v, k in kinds.items() if k not in _FITS[dialect.decimal]]
        if misfits and dialect.delimiter != ",":
            raise _mixed_marks(frame, name, misfits, dialect, label, source, first_row)
        if misfits:  # quoted in a comma-separated file: left as text for validation to name
            continue
        frame[name] = _to_numbers(column, dialect.decimal)
        grouped = [v for v, k in kinds.items() if k in _GROUPED[dialect.decimal]]
        if grouped:
            notes.append(_thousands_note(str(name).strip(), grouped[0], dialect.decimal, label))
    return notes


def _thousands_note(name: str, value: str, decimal: str, label: str) -> str:
    """The note for a column whose numbers group thousands; its example is made up, not a
    patient's value (``'1.234' as 1234``), but written like ``value`` (with or without
    decimals)."""
    thousands = "." if decimal == "," else ","
    example, number = f"1{thousands}234", "1234"
    if decimal in value:
        example, number = f"{example}{decimal}5", "1234.5"
    return (f"column '{name}' of data file '{label}' writes thousands with '{thousands}': "
            f"its values were read as numbers ('{example}' as {number})")


# --- encoding --------------------------------------------------------------------------------

@contextmanager
def _opened(source: str | Path | io.BytesIO) -> Iterator[BinaryIO]:
    if isinstance(source, io.BytesIO):
        yield source
    else:
        with open(source, "rb") as stream:
            yield stream


def _read(stream: BinaryIO, offset: int, size: int = -1) -> bytes:
    stream.seek(offset)
    return stream.read(size)


def _refuse_binary(head: bytes, suffix: str, label: str) -> None:
    if b"\x00" in head:  # UTF-16 ("Unicode Text" in Excel), or not text at all
        raise DataError(f"data file '{label}' could not be read as {suffix[1:].upper()}: it "
                        "holds NUL bytes, so "
                        "it is a binary file or text saved as UTF-16 ('Unicode Text'): save it "
                        "as 'CSV UTF-8 (Comma delimited)' and read it again")


def _first_undecodable(stream: BinaryIO, encoding: str) -> int | None:
    """The offset of the first byte that does not decode, or None."""
    decoder = codecs.getincrementaldecoder(encoding)()
    stream.seek(0)
    fed = 0
    for chunk in iter(lambda: stream.read(_CHUNK), b""):
        try:
            decoder.decode(chunk)
        except UnicodeDecodeError as exc:  # exc.object: bytes held back from before + chunk
            return fed - (len(exc.object) - len(chunk)) + exc.start
        fed += len(chunk)
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError as exc:
        return fed - len(exc.object) + exc.start
    return None


def _not_utf8(stream: BinaryIO, offset: int, delimiter: str, header: tuple[str, ...],
              label: str) -> str:
    """The warning for a file read as Windows-1252; the error when it is not that either."""
    line, column, value = _locate(stream, offset, delimiter, header)
    byte = _read(stream, offset, 1)[0]
    where = f"line {line}{' (the header)' if line == 1 else ''}, {column} holds byte 0x{byte:02x}"
    if _first_undecodable(stream, "cp1252") is not None:
        raise DataError(f"data file '{label}' is not UTF-8 text: {where}, which is neither "
                        "UTF-8 nor Windows-1252: save it as 'CSV UTF-8 (Comma delimited)' "
                        "(Excel: File > Save As) and read it again")
    # a header's value is a column name; a data row's may be a patient's name: only the
    # character is given
    shown = f"that value reads '{value}'" if line == 1 else \
        f"that byte reads '{bytes([byte]).decode('cp1252')}'"
    return (f"data file '{label}' is not UTF-8: {where}; it was read as Windows-1252 (Western "
            f"European), where {shown}: if text looks wrong, save the file as 'CSV UTF-8' and "
            "read it again")


def _locate(stream: BinaryIO, offset: int, delimiter: str,
            header: tuple[str, ...]) -> tuple[int, str, str]:
    """The line, column (in words) and value (read as Windows-1252) of a byte."""
    line, start = _lines_before(stream, offset)
    raw = _read(stream, start, offset - start + 4096).split(b"\n")[0].rstrip(b"\r")
    text = raw.decode("cp1252", errors="replace")
    position = raw[:offset - start].decode("cp1252", errors="replace").count(delimiter)
    fields = next(csv.reader([text], delimiter=delimiter), [""])
    value = fields[position].strip() if position < len(fields) else text.strip()
    name = f"column '{header[position].strip()}'" if position < len(header) else (
        f"field {position + 1}")
    return line, name, value


def _lines_before(stream: BinaryIO, offset: int) -> tuple[int, int]:
    """The 1-based line holding byte ``offset``, and the offset where that line starts."""
    stream.seek(0)
    line, start, position = 1, 0, 0
    while position < offset:
        chunk = stream.read(min(_CHUNK, offset - position))
        if not chunk:
            break
        count = chunk.count(b"\n")
        if count:
            line += count
            start = position + chunk.rfind(b"\n") + 1
        position += len(chunk)
    return line, start


# --- delimiter and header --------------------------------------------------------------------

def _numbered(text: str, delimiter: str, truncated: bool) -> list[tuple[int, list[str]]]:
    """``(first line, fields)`` of the header and up to ``SAMPLE_ROWS`` rows (blank lines
    skipped, as pandas does; the last row left out when the sample cut it short)."""
    if truncated:
        text = text[:text.rfind("\n") + 1]
    records: list[tuple[int, list[str]]] = []
    try:
        for record in _rows_of(io.StringIO(text), delimiter):
            records.append(record)
            if len(records) > SAMPLE_ROWS:
                break
    except csv.Error:
        pass
    return records


def _header_as_data(header: tuple[str, ...], rows: list[tuple[int, list[str]]]) -> str:
    """Why the first row of a file reads as data rather than column names ('' when it does not),
    in words that quote none of its cells (they may be a patient's values).

    A file exported without its header row starts with the first patient. Its first row is
    taken for data when

    * every cell (of two or more) is a number;
    * a cell is a number written with a decimal mark or a sign (``2.3``, ``-1``): no name is;
    * a number repeats (``1`` in columns 2, 3 and 6): numbered columns (Golub's samples
      ``1``, ``2``...) and years are named once each; or
    * a cell is text longer than any name (over :data:`_LONG_NAME` characters, or more than
      one line holding a sentence's end) above a column of text that long: a note written
      where its name should be. A long question label (a REDCap export) above short answers
      is a name.

    So a header of names with some numbers (``patient,2019,2020``; ``1007_s_at``, a probe id)
    is kept; a header of numbers alone (``2019,2020``) is not.
    """
    cells = [cell.strip() for cell in header]
    filled = [(position, cell) for position, cell in enumerate(cells, start=1) if cell]
    numbers = [(position, cell) for position, cell in filled if _kind(cell) is not None]
    if len(filled) >= 2 and len(numbers) == len(filled):
        return f"all {len(filled)} of its cells are numbers"
    for position, cell in numbers:
        if _kind(cell) != "integer" or cell[0] in "+-":
            return f"column {position} holds a number written with a decimal mark or a sign"
    seen: dict[str, list[int]] = {}
    for position, cell in numbers:
        seen.setdefault(cell, []).append(position)
    repeated = next((p for p in seen.values() if len(p) > 1), None)
    if repeated:
        return f"one number stands in columns {_and([str(p) for p in repeated])}"
    for position, cell in filled:
        if _long_text(cell) and _long_column(rows, position - 1):
            return (f"column {position} holds {len(cell)} characters of text, as long as the "
                    "values below it")
    return ""


_LONG_NAME = 100  # characters: longer than a column name (a REDCap question aside)
_SENTENCE_END = re.compile(r"[.!?](\s|$)")


def _long_text(cell: str) -> bool:
    return len(cell) > _LONG_NAME or ("\n" in cell and bool(_SENTENCE_END.search(cell)))


def _long_column(rows: list[tuple[int, list[str]]], position: int) -> bool:
    """Whether the column's sampled values are mostly (the median) over ``_LONG_NAME``."""
    lengths = sorted(len(row[position].strip()) for _, row in rows
                     if position < len(row) and row[position].strip() not in MISSING)
    return bool(lengths) and lengths[len(lengths) // 2] > _LONG_NAME


def _refuse_headless(header: tuple[str, ...], rows: list[tuple[int, list[str]]],
                     label: str) -> None:
    why = _header_as_data(header, rows)
    if why:
        raise DataError(f"data file '{label}': the first row looks like data, not column names "
                        f"({why}): add a header row naming each column")


def _fields(records: list[tuple[int, list[str]]]) -> tuple[int, float]:
    """Fields in the header, and the share of the rows of more than one field that have as
    many (rows of one field, a title or a footer, are not counted)."""
    if len(records) < 2 or len(records[0][1]) < 2:
        return 0, 0.0
    width = len(records[0][1])
    rows = [len(row) for _, row in records[1:] if len(row) > 1]
    return width, (sum(n == width for n in rows) / len(rows) if rows else 0.0)


def _delimiter(text: str, truncated: bool) -> str:
    """The delimiter that splits every row as it splits the header, into the most fields; when
    none does, one that splits nearly every row so (a ragged row is then named by the parser);
    a tie or no split: a comma."""
    scores = {d: _fields(_numbered(text, d, truncated)) for d in _DELIMITERS}
    for least in (1.0, _AGREEING):
        agreeing = {d: width for d, (width, share) in scores.items() if share >= least}
        if agreeing:
            most = max(agreeing.values())
            best = [d for d, width in agreeing.items() if width == most]
            return best[0] if len(best) == 1 else ","
    return ","


# --- decimal mark ----------------------------------------------------------------------------

@lru_cache(maxsize=1 << 16)
def _kind(value: str) -> str | None:
    """What a number's written form shows (``integer``, ``comma``, ``grouped_point``, ...);
    None when it is no number."""
    match = _KIND.fullmatch(value)
    return match.lastgroup if match else None


def _evidence(rows: list[tuple[int, list[str]]],
              header: tuple[str, ...]) -> dict[str, list[_Example]]:
    """Examples of each kind of number, from the columns holding only numbers."""
    seen: dict[int, dict[str, list[_Example]]] = {}
    text: set[int] = set()
    for line, row in rows:
        for position, raw in enumerate(row):
            value = raw.strip()
            if position in text or value in MISSING:
                continue
            kind = _kind(value)
            if kind is None:
                text.add(position)
            elif kind != "integer":
                examples = seen.setdefault(position, {}).setdefault(kind, [])
                if len(examples) < 3:
                    name = header[position].strip() if position < len(header) else str(position)
                    examples.append(_Example(name, value, line))
    found: dict[str, list[_Example]] = {}
    for position, kinds in seen.items():
        if position not in text:
            for kind, examples in kinds.items():
                found.setdefault(kind, []).extend(examples)
    return found


def _decimal(rows: list[tuple[int, list[str]]], header: tuple[str, ...], delimiter: str,
             label: str, known: tuple[str, str] | None) -> tuple[str, str, str | None]:
    """The decimal mark, where it shows (for messages), and a note when it was taken from
    ``known`` rather than seen."""
    if delimiter == ",":  # a decimal comma would split the field
        return ".", "", None
    found = _evidence(rows, header)
    sides = {mark: [e for kind, es in found.items() if _SIDE.get(kind) == mark for e in es]
             for mark in (",", ".")}
    if sides[","] and sides["."]:
        comma, point = sides[","][0], sides["."][0]
        raise DataError(
            f"data file '{label}' uses both decimal marks: ',' in column '{comma.column}' "
            f"('{comma.value}' on line {comma.line}) and '.' in column '{point.column}' "
            f"('{point.value}' on line {point.line}): a number cannot be read safely; "
            f"{_FIX_MARKS}")
    for mark, examples in sides.items():
        if examples:
            first = examples[0]
            return mark, f"'{first.value}' in column '{first.column}' on line {first.line}", \
                None
    ambiguous = found.get("grouped_point", []) + found.get("grouped_comma", [])
    if ambiguous and known is not None and known[0] == delimiter:
        first = ambiguous[0]
        return known[1], "the development data's decimal mark", (
            f"data file '{label}': no number shows its decimal mark ('{first.value}' in column "
            f"'{first.column}' on line {first.line} could be either); read with "
            f"'{known[1]}', the mark of the development data, written with the same delimiter")
    if ambiguous:
        raise _ambiguous(ambiguous, label)
    return ".", "", None


def _ambiguous(examples: list[_Example], label: str) -> DataError:
    first = examples[0]
    mark = first.value.lstrip("+-")[-4]
    lines = _and([str(e.line) for e in examples if e.column == first.column])
    digits = first.value.replace(mark, "")
    as_decimal = f"{float(first.value.replace(mark, '.')):g}"
    separator = "'.'" if mark == "." else "','"
    return DataError(
        f"data file '{label}' has numbers whose decimal mark cannot be told: column "
        f"'{first.column}' holds '{first.value}' (lines {lines}), which is {int(digits)} if "
        f"{separator} separates thousands and {as_decimal} if it is the decimal mark, and no "
        "other number in the first rows shows which: re-export the file without thousands "
        "separators (Excel: Format Cells > Number, untick 'Use 1000 Separator')")


# --- the end of the file ---------------------------------------------------------------------

def _end(stream: BinaryIO, size: int, delimiter: str, encoding: str, columns: int,
         label: str) -> tuple[int | None, str | None]:
    """Bytes to read when the file ends with empty rows (else None), and the note saying so.

    Raises
    ------
    DataError
        The last line holds one value, unlike the line above it, and nothing else: a footer.
    """
    start = max(0, size - _TAIL_BYTES)
    pieces = _read(stream, start).split(b"\n")
    lines = [piece.decode(encoding, errors="replace") for piece in pieces]
    last, empty = _content_above(lines, len(lines) - 1, delimiter)
    if columns >= 3 and last >= 1:  # lines[0] is the header, or a line the tail cut short
        previous, _ = _content_above(lines, last - 1, delimiter)
        if previous >= 0 and _footer(lines[last], lines[previous], delimiter):
            raise DataError(f"data file '{label}' ends with line "
                            f"{_lines_before(stream, start)[0] + last}, which holds only "
                            f"'{_values(lines[last], delimiter)[0]}' and no other value: a "
                            "footer or a total? remove the line and read the file again")
    if not empty:
        return None, None
    first_line = _lines_before(stream, start)[0] + empty[-1]
    span = (f"line {first_line}" if len(empty) == 1
            else f"lines {first_line}-{first_line + empty[0] - empty[-1]}")
    rows = "1 empty row" if len(empty) == 1 else f"{len(empty)} empty rows"
    cut = start + sum(len(piece) + 1 for piece in pieces[:empty[-1]])
    return cut, (f"{rows} at the end of data file '{label}' ({span}, every cell empty) "
                 f"{'was' if len(empty) == 1 else 'were'} left out")


def _content_above(lines: list[str], last: int, delimiter: str) -> tuple[int, list[int]]:
    """The last line at or above ``last`` holding a value (-1: none, or only the first line,
    which may be cut short), and the rows of empty cells below it, last first."""
    empty = []
    while last >= 1:
        text = lines[last].strip()
        if text.replace(delimiter, "").replace('"', "").strip():
            return last, empty
        if text:  # delimiters only: pandas reads a row of empty cells
            empty.append(last)
        last -= 1
    return last if last == 0 else -1, empty


def _values(line: str, delimiter: str) -> list[str]:
    fields = next(csv.reader([line.rstrip("\r")], delimiter=delimiter), [])
    return [f.strip() for f in fields if f.strip()]


def _footer(line: str, previous: str, delimiter: str) -> bool:
    """One value, no number, and not written like the value above it (``Total: 303 patients``
    under ``H0303``; an id under an id is a patient with the rest missing)."""
    values = _values(line, delimiter)
    if len(values) != 1 or values[0] in MISSING or _kind(values[0]) is not None:
        return False
    fields = next(csv.reader([line.rstrip("\r")], delimiter=delimiter), [])
    position = next(i for i, f in enumerate(fields) if f.strip())
    above = next(csv.reader([previous.rstrip("\r")], delimiter=delimiter), [])
    return position >= len(above) or _shape(above[position]) != _shape(values[0])


def _shape(value: str) -> str:
    """How a value is written: runs of letters as 'a', of digits as '9' (``H0303`` -> ``a9``)."""
    return re.sub(r"[^\W\d_]+", "a", re.sub(r"\d+", "9", value.strip()))


class _Head(io.RawIOBase):
    """The first ``limit`` bytes of a binary stream."""

    def __init__(self, stream: BinaryIO, limit: int) -> None:
        self._stream, self._left = stream, limit

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._stream.read(min(len(buffer), self._left))
        buffer[:len(data)] = data
        self._left -= len(data)
        return len(data)


# --- after reading ---------------------------------------------------------------------------

def is_text(column: pd.Series) -> bool:
    """Whether a column holds text (object or string dtype)."""
    return column.dtype == object or pd.api.types.is_string_dtype(column.dtype)


def written_as(column: pd.Series, values: set[str]) -> pd.Series:
    """The cells of a text column that read as one of ``values`` once stripped of whitespace
    (a non-breaking space and a tab too)."""
    return column.notna() & column.astype(str).str.strip().isin(values)


def _column_kinds(column: pd.Series) -> dict[str, str]:
    """Each distinct value -> its kind; empty when one is no number."""
    kinds = {}
    for value in column.dropna().astype(str).str.strip().unique():
        kind = _kind(value)
        if kind is None:
            return {}
        kinds[value] = kind
    return kinds


def _to_numbers(column: pd.Series, decimal: str) -> pd.Series:
    text = column.astype("str").str.strip()
    if decimal == ",":
        text = text.str.replace(".", "", regex=False).str.replace(",", ".", regex=False)
    else:
        text = text.str.replace(",", "", regex=False)
    return pd.to_numeric(text)


def _mixed_marks(frame: pd.DataFrame, name: Any, misfits: list[str], dialect: Dialect,
                 label: str, source: str | Path | io.BytesIO, first_row: int) -> DataError:
    other = "." if dialect.decimal == "," else ","
    values = frame[name].astype("str").str.strip()
    rows = [first_row + int(i) for i in values.index[values.isin(misfits)][:3].map(
        frame.index.get_loc)]
    lines = _record_lines(source, dialect, rows)
    shown = ", ".join(f"'{values.iloc[r - first_row]}' on line {lines.get(r, r + 2)}"
                      for r in rows)
    return DataError(
        f"column '{str(name).strip()}' of data file '{label}' holds numbers written with "
        f"{_MARK[other]} ({shown}) but the file uses {_MARK[dialect.decimal]} "
        f"({dialect.evidence or 'no number with the other mark in its first rows'}): a number "
        f"cannot be read safely; {_FIX_MARKS}")


def _record_lines(source: str | Path | io.BytesIO, dialect: Dialect,
                  rows: list[int]) -> dict[int, int]:
    """The first line of each data row (0-based, as pandas numbers them) in the file."""
    wanted, found = set(rows), {}
    if isinstance(source, io.BytesIO):  # pandas may still be reading it: a copy
        source = io.BytesIO(source.getvalue())
    with _opened(source) as stream:
        stream.seek(0)
        text = io.TextIOWrapper(stream, encoding=dialect.encoding, errors="replace", newline="")
        try:
            for record, (line, _) in enumerate(_rows_of(text, dialect.delimiter), start=-1):
                if record in wanted:
                    found[record] = line
                if record >= max(wanted, default=-1):
                    break
        except csv.Error:
            pass
        finally:
            text.detach()
    return found


def _rows_of(text: io.TextIOBase, delimiter: str) -> Iterator[tuple[int, list[str]]]:
    reader = csv.reader(text, delimiter=delimiter)
    previous = 0
    for row in reader:
        start, previous = previous + 1, reader.line_num
        if row:
            yield start, row


def _and(items: list[str]) -> str:
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"
