"""Treat fairness on real data (ACTG 175): with ``--sensitive age`` the age groups are the
development split's quartile bins, as in diagnose and risk, not one group per distinct age."""

from __future__ import annotations

import html
import json

import numpy as np
import pandas as pd
import pytest

from permed.study import Study
from permed.testing import shared_data
from permed.workflow import TrainConfig, train_run

FAST = {"models": ["t_learner"], "cv": 3, "n_boot": 100, "randomized": True}
# columns recorded after randomization, and 'treat', which encodes the arm
LEAKY = ["pidnum", "treat", "cd496", "r", "cd820", "cens", "days", "offtrt"]


@pytest.fixture(scope="module")
def actg_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("actg_treat_bins")
    study = Study(task="treat", treatment="arms", outcome="cd420", sensitive=["age", "gender"],
                  drop=LEAKY)
    run = train_run(shared_data("actg175/ACTG175.csv"), study, TrainConfig(**FAST),
                    tmp / "run")
    frame = pd.read_csv(shared_data("actg175/ACTG175.csv"), na_values=["NA"])
    frame = frame[frame["cd420"].notna() & frame["arms"].notna()]
    return run, json.loads((run / "metrics.json").read_text()), frame


def _development_ages(run, metrics, frame) -> np.ndarray:
    test_rows = pd.read_csv(run / "predictions.csv")["row"]
    development = frame.drop(index=test_rows)
    assert len(development) == metrics["data"]["development_rows"]
    return development["age"].to_numpy(dtype=float)


def test_age_is_binned_at_the_development_split_quartiles(actg_run):
    run, metrics, frame = actg_run
    fairness = metrics["fairness"]
    edges = fairness["bins"]["age"]["edges"]
    quartiles = np.quantile(_development_ages(run, metrics, frame), [0, 0.25, 0.5, 0.75, 1])
    np.testing.assert_allclose(edges, quartiles, rtol=0, atol=1e-12)
    names = [f"age < {edges[1]:g}", f"age [{edges[1]:g}, {edges[2]:g})",
             f"age [{edges[2]:g}, {edges[3]:g})", f"age >= {edges[3]:g}"]
    assert fairness["bins"] == {"age": {"edges": edges, "groups": names,
                                        "from": "the development split"}}
    groups = fairness["attributes"]["age"]["groups"]
    assert len(groups) <= 5  # four bins and missing: ACTG 175 has 48 distinct ages
    assert list(groups) == names  # every bin is populated in the test split, in order
    assert sum(g["n"] for g in groups.values()) == metrics["data"]["test_rows"]
    assert all("policy_gain" in g for g in groups.values())
    test_ages = frame.loc[pd.read_csv(run / "predictions.csv")["row"], "age"]
    assert groups[names[0]]["n"] == int((test_ages < edges[1]).sum())
    assert groups[names[-1]]["n"] == int((test_ages >= edges[3]).sum())
    assert (f"Numeric column 'age' is binned at edges {', '.join(f'{e:g}' for e in edges)}, "
            "the quartiles of the development split") in fairness["note"]


def test_a_two_valued_column_keeps_its_values_as_groups(actg_run):
    _, metrics, _ = actg_run
    fairness = metrics["fairness"]
    assert list(fairness["attributes"]["gender"]["groups"]) == ["0", "1"]
    assert "gender" not in fairness["bins"]


def test_report_shows_the_binned_age_groups(actg_run):
    run, metrics, _ = actg_run
    page = (run / "report.html").read_text()
    for name in metrics["fairness"]["bins"]["age"]["groups"]:
        assert html.escape(name, quote=False) in page
