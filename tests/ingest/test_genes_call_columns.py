"""The expression reader allows the repeated Affymetrix 'call' columns and nothing else; every
other reader keeps refusing repeated column names."""

from __future__ import annotations

import re

import pytest

from permed.exceptions import DataError
from permed.ingest import read_table
from permed.ingest.genes import read_expression

_ROWS = ["g1 desc,g1,-214,A,-139,P", "g2 desc,g2,-153,A,-73,A", "g3 desc,g3,-58,P,-1,A"]


def _write(path, header):
    path.write_text("\n".join([header, *_ROWS]) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize("call", ["call", "Call", " call"])
def test_repeated_call_columns_are_left_out_of_an_expression_matrix(tmp_path, call):
    path = _write(tmp_path / "g.csv", f"Gene Description,Gene Accession Number,1,{call},2,{call}")
    table = read_expression(path, keep_ids="sample", orientation="genes-by-samples")
    assert table.columns.tolist() == ["sample", "gene_g1", "gene_g2", "gene_g3"]
    assert table["sample"].tolist() == ["1", "2"]
    assert table["gene_g1"].tolist() == [-214, -139]


def test_other_repeated_names_of_an_expression_matrix_are_refused(tmp_path):
    path = _write(tmp_path / "g.csv", "Gene Description,Gene Accession Number,s1,call,s1,call")
    with pytest.raises(DataError, match=re.escape(
            f"data file '{path}' has duplicate column names 's1' (columns 3 and 5): rename "
            "them so each is unique")):
        read_expression(path)


def test_a_general_table_still_refuses_repeated_call_columns(tmp_path):
    path = _write(tmp_path / "g.csv", "Gene Description,Gene Accession Number,1,call,2,call")
    with pytest.raises(DataError, match=re.escape(
            "has duplicate column names 'call' (columns 4 and 6): rename them")):
        read_table(path)
