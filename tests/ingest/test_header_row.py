"""A CSV/TSV exported without its header row is refused: its first patient would become the
column names (a whole transcription written into the study file, '1' repeated as a name)."""

from __future__ import annotations

import re

import pytest

from permed.exceptions import DataError
from permed.ingest import read_table, read_table_chunks
from permed.testing import run_permed as permed
from permed.testing import shared_data

_NOTE = ("Pt seen today. Complains of chest pain on exertion, worse after meals; no fever. "
         "Plan: ECG, troponin, follow-up in two weeks with the cardiology clinic.")


def _write(path, lines, sep=","):
    path.write_text("\n".join(sep.join(cells) for cells in lines) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize(("lines", "why"), [
    ([["63", "1", "1", "145", "2.3"], ["67", "1", "4", "160", "1.5"]],
     "all 5 of its cells are numbers"),
    ([["2019", "2020", "2021"], ["3", "5", "8"]], "all 3 of its cells are numbers"),
    ([["P001", "63", "male", "2.3"], ["P002", "67", "female", "1.5"]],
     "column 4 holds a number written with a decimal mark or a sign"),
    ([["P001", "-1", "male"], ["P002", "0", "female"]],
     "column 2 holds a number written with a decimal mark or a sign"),
    ([["P001", "1", "1", "145", "1", "yes"], ["P002", "1", "4", "160", "0", "no"]],
     "one number stands in columns 2, 3 and 5"),
    ([["P001", "cardiology", f'"{_NOTE}"'], ["P002", "surgery", f'"{_NOTE} Seen again."']],
     "column 3 holds 152 characters of text, as long as the values below it"),
])
def test_a_first_row_of_data_is_refused(tmp_path, lines, why):
    path = _write(tmp_path / "t.csv", lines)
    message = (f"data file '{path}': the first row looks like data, not column names ({why}): "
               "add a header row naming each column")
    with pytest.raises(DataError, match=f"^{re.escape(message)}$"):
        read_table(path)
    with pytest.raises(DataError, match=re.escape(message)):
        next(read_table_chunks(path, 10))


@pytest.mark.parametrize("lines", [
    # Golub's samples are numbered; Affymetrix probe ids start with digits
    [["Gene Accession Number", "1", "2", "3"], ["AFFX-BioB-5_at", "-214", "-139", "-76"]],
    [["sample", "1007_s_at", "1053_at", "117_at"], ["1", "5.1", "7.2", "3.3"]],
    [["patient", "2019", "2020"], ["P001", "3", "5"]],
    # a question label (a REDCap export) is long, its answers short
    [["record_id", '"Has the patient ever been told by a doctor or other health professional that '
                   'they have diabetes, including during pregnancy?"'], ["1", "Yes"], ["2", "No"]],
    [["record_id", '"Clinical\nnotes"'], ["1", f'"{_NOTE}"'], ["2", f'"{_NOTE}"']],
])
def test_names_that_hold_numbers_or_long_labels_are_kept(tmp_path, lines):
    frame, _ = read_table(_write(tmp_path / "t.csv", lines))
    assert len(frame) == len(lines) - 1


def test_init_refuses_mtsamples_without_header_and_quotes_no_note(tmp_path):
    source = shared_data("clinical_text/mtsamples_first401_noheader.csv")
    result = permed("init", tmp_path / "mts.toml", "--from", source)
    assert result.returncode == 1
    said = " ".join(result.stderr.split())
    assert (f"error: data file '{source}': the first row looks like data, not column names "
            "(column 5 holds 1331 characters of text, as long as the values below it): add a "
            "header row naming each column") in said
    assert "allergies" not in said
    assert not (tmp_path / "mts.toml").exists()
