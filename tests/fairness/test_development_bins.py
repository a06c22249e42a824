"""Numeric sensitive columns are binned once, at the development split's quartiles, and every
audit of a run (test split, representation, survival, mitigation, an external cohort) reuses
those edges: a group holds the same patients in every table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from permed.exceptions import PermedError
from permed.fairness import (
    audit_classification,
    bin_edges,
    mitigation_table,
    representation,
    saved_bin_edges,
)
from permed.fairness._audit import group_labels
from permed.fairness._survival import audit_survival

N_BOOT = 20


def _development(copies: int = 5, seed: int = 0) -> pd.DataFrame:
    """Each whole age from 40 to 80 ``copies`` times (quartiles 50, 60, 70), shuffled, with a
    binary sex and a numeric code with 3 values."""
    rng = np.random.default_rng(seed)
    age = rng.permutation(np.tile(np.arange(40.0, 81.0), copies))
    n = len(age)
    return pd.DataFrame({"age": age, "sex": rng.choice(["F", "M"], n),
                         "site": rng.integers(1, 4, n)})


def _scores(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    p = np.clip(0.5 * y + 0.5 * rng.random(n), 0, 1)
    return y, p


def test_edges_are_the_development_quartiles_of_numeric_columns_with_many_values():
    development = _development()
    edges = bin_edges(development)
    assert list(edges) == ["age"]  # sex is text, site has 3 values: not binned
    expected = np.quantile(development["age"], [0, 0.25, 0.5, 0.75, 1])
    np.testing.assert_allclose(edges["age"], expected, rtol=0, atol=1e-12)
    assert all(isinstance(e, float) for e in edges["age"])


def test_a_test_value_below_the_development_minimum_lands_in_the_lowest_bin_with_a_true_label():
    edges = {"age": [40.0, 50.0, 60.0, 70.0, 80.0]}
    test = pd.Series([18.0, 40.0, 49.9, 50.0, 69.0, 70.0, 80.0, 97.0, np.nan])
    labels, levels, used = group_labels(test, "age", edges)
    assert list(labels) == ["age < 50", "age < 50", "age < 50", "age [50, 60)", "age [60, 70)",
                            "age >= 70", "age >= 70", "age >= 70", "age missing"]
    assert levels == ["age < 50", "age [50, 60)", "age [60, 70)", "age >= 70", "age missing"]
    assert used == edges["age"]


def test_the_same_value_gets_the_same_group_in_development_and_test_tables():
    development = _development()
    # an older test split, partly beyond the development range: its own quartiles differ
    test = pd.DataFrame({"age": np.random.default_rng(1).uniform(55, 95, 120).round(),
                         "sex": "F", "site": 1})
    edges = bin_edges(development)
    dev_labels, _, _ = group_labels(development["age"], "age", edges)
    test_labels, _, _ = group_labels(test["age"], "age", edges)
    dev_group = dict(zip(development["age"], dev_labels, strict=True))
    shared = [(age, label) for age, label in zip(test["age"], test_labels, strict=True)
              if age in dev_group]
    assert len(shared) > 20
    assert all(dev_group[age] == label for age, label in shared)

    y, p = _scores(len(test), 2)
    audit = audit_classification(y, p, (p >= 0.5).astype(int), test[["age"]], ["0", "1"],
                                 n_boot=N_BOOT, edges=edges)
    table = representation(development[["age"]], np.ones(len(development), bool), edges=edges)
    test_groups, dev_groups = audit["attributes"]["age"]["groups"], table["age"]["groups"]
    assert set(test_groups) <= set(dev_groups)
    assert list(dev_groups) == ["age < 50", "age [50, 60)", "age [60, 70)", "age >= 70"]
    assert test_groups["age >= 70"]["n"] == int((test["age"] >= 70).sum())


def test_without_edges_each_table_keeps_its_own_quartiles():
    # the behaviour library callers get when they pass no edges (and old runs fall back to)
    development = _development()
    test = pd.Series(np.random.default_rng(1).uniform(55, 95, 120).round())
    _, dev_levels, dev_edges = group_labels(development["age"], "age")
    _, test_levels, test_edges = group_labels(test, "age")
    assert dev_edges != test_edges
    assert dev_levels[0].startswith("age [40, ")
    assert test_levels[-1].endswith("95]")


def test_the_audit_records_the_edges_and_says_they_come_from_the_development_split():
    development = _development()
    edges = bin_edges(development)
    test = _development(2, seed=5)
    y, p = _scores(len(test), 3)
    audit = audit_classification(y, p, (p >= 0.5).astype(int), test[["age", "sex"]],
                                 ["0", "1"], n_boot=N_BOOT, edges=edges)
    assert audit["bins"] == {"age": {
        "edges": edges["age"],
        "groups": ["age < 50", "age [50, 60)", "age [60, 70)", "age >= 70"],
        "from": "the development split"}}
    assert ("Numeric column 'age' is binned at edges 40, 50, 60, 70, 80, the quartiles of the "
            "development split") in audit["note"]
    assert list(audit)[-2:] == ["bins", "note"]
    assert all(" & " in level for level in audit["intersections"]["age & sex"]["groups"])


def test_a_numeric_column_not_binned_in_development_is_not_binned_later():
    # site had 3 values in development; a cohort with 8 keeps them as groups, not quartiles
    edges = bin_edges(_development())
    test = pd.DataFrame({"site": np.arange(160) % 8})
    y, p = _scores(160, 4)
    audit = audit_classification(y, p, (p >= 0.5).astype(int), test, ["0", "1"],
                                 n_boot=N_BOOT, edges=edges)
    assert list(audit["attributes"]["site"]["groups"]) == [str(i) for i in range(8)]
    assert audit["bins"] == {}
    assert "binned" not in audit["note"]


def test_survival_audit_bins_at_the_given_edges():
    rng = np.random.default_rng(6)
    n = 300
    age = rng.uniform(20, 100, n).round()
    risk = rng.normal(size=n)
    time = rng.exponential(np.exp(-risk))
    edges = {"age": [40.0, 50.0, 60.0, 70.0, 80.0]}
    audit = audit_survival(time, np.ones(n, bool), risk, pd.DataFrame({"age": age}),
                           n_boot=N_BOOT, edges=edges)
    groups = audit["attributes"]["age"]["groups"]
    assert list(groups) == ["age < 50", "age [50, 60)", "age [60, 70)", "age >= 70"]
    assert groups["age < 50"]["n"] == int((age < 50).sum())
    assert audit["bins"]["age"]["from"] == "the development split"
    assert "the quartiles of the development split" in audit["note"]


def test_mitigation_bins_both_splits_at_the_development_edges():
    rng = np.random.default_rng(7)
    y, p = _scores(400, 8)
    age = pd.Series(rng.uniform(30, 90, 400).round())
    edges = {"age": [40.0, 50.0, 60.0, 70.0, 80.0]}
    table = mitigation_table((y[:200], p[:200], age[:200]), (y[200:], p[200:], age[200:]),
                             0.5, "age", edges=edges)
    assert list(table["after"]["groups"]) == [
        "age < 50", "age [50, 60)", "age [60, 70)", "age >= 70"]
    assert table["before"]["groups"]["age >= 70"]["n"] == int((age[200:] >= 70).sum())


def test_saved_edges_are_read_back_and_an_older_run_has_none():
    fairness = {"attributes": {}, "bins": {"age": {"edges": [40.0, 50.0, 80.0],
                                                   "from": "the development split"}}}
    assert saved_bin_edges(fairness) == {"age": [40.0, 50.0, 80.0]}
    assert saved_bin_edges({"attributes": {}, "note": "..."}) is None
    assert saved_bin_edges(None) is None


@pytest.mark.parametrize(
    ("edges", "message"),
    [
        ({"age": [50.0]}, r"bin edges of 'age' must be two or more increasing finite numbers, "
                          r"got \[50.0\]: compute them with bin_edges on the development split"),
        ({"age": [50.0, 40.0]}, r"bin edges of 'age' must be two or more increasing"),
        ({"age": [40.0, float("nan")]}, r"bin edges of 'age' must be two or more increasing"),
    ],
)
def test_bad_edges_are_refused(edges, message):
    y, p = _scores(4, 0)
    with pytest.raises(PermedError, match=message):
        audit_classification(y, p, (p >= 0.5).astype(int), pd.DataFrame({"age": [1, 2, 3, 4]}),
                             ["0", "1"], n_boot=N_BOOT, edges=edges)


def test_text_in_a_binned_column_is_refused_with_its_rows():
    y, p = _scores(4, 0)
    age = pd.DataFrame({"age": ["45", "old", None, "70"]})
    with pytest.raises(PermedError, match=(
            r"sensitive column 'age' is binned at the development split's edges but 1 of 3 "
            r"values is text \(row 2; a value of 3 characters with letters\): correct the "
            r"values or leave them empty")) as caught:
        audit_classification(y, p, (p >= 0.5).astype(int), age, ["0", "1"], n_boot=N_BOOT,
                             edges={"age": [40.0, 60.0, 80.0]})
    assert "old" not in str(caught.value)  # a cell's text may be PHI: described, not quoted
