"""Per-row texts joined once per distinct pattern."""

from __future__ import annotations

import numpy as np

from permed.utils.patterns import pattern_texts


def test_each_row_joins_the_names_of_its_true_columns():
    matrix = np.array([[True, False, True], [False, False, False], [False, True, False],
                       [True, False, True]])
    texts = pattern_texts(matrix, ["a", "b", "c"], "|")
    assert texts.tolist() == ["a|c", "", "b", "a|c"]


def test_the_template_wraps_only_non_empty_rows():
    matrix = np.array([[True, True], [False, False]])
    texts = pattern_texts(matrix, ["x", "y"], " and ", "uncertain between {}")
    assert texts.tolist() == ["uncertain between x and y", ""]


def test_wide_matrices_give_the_same_texts_as_a_plain_join():
    rng = np.random.default_rng(0)
    matrix = rng.random((300, 70)) < 0.03  # over 62 columns: keyed by whole rows
    names = [f"f{j}" for j in range(70)]
    expected = [";".join(n for n, m in zip(names, row, strict=True) if m) for row in matrix]
    assert pattern_texts(matrix, names, ";").tolist() == expected
    assert pattern_texts(matrix[:, :60], names[:60], ";").tolist() == [
        ";".join(n for n, m in zip(names[:60], row, strict=True) if m) for row in matrix[:, :60]]


def test_a_few_rows_give_the_texts_of_the_pattern_path():
    rng = np.random.default_rng(1)
    matrix = rng.random((40, 5)) < 0.2
    names = list("abcde")
    whole = pattern_texts(matrix, names, "|", "<{}>").tolist()  # many rows: patterns
    for rows in (slice(0, 6), slice(4, 5)):  # a few rows; one with nothing flagged
        assert pattern_texts(matrix[rows], names, "|", "<{}>").tolist() == whole[rows]
    assert not matrix[4].any()
    assert whole[4] == ""
    assert pattern_texts(np.zeros((0, 5), dtype=bool), names, "|").tolist() == []
