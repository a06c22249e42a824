"""End to end on real data: with ``--sensitive age`` the age groups are fixed once on the
development split, recorded in metrics.json, shared by the run's tables, and reused by
``permed evaluate`` on another cohort (an older run without saved edges falls back)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from permed.fairness import bin_edges
from permed.study import Study
from permed.testing import shared_data
from permed.workflow import TrainConfig, evaluate_run, train_run

FAST = {"models": ["logistic"], "cv": 3, "n_boot": 100}


def _read(path) -> dict:
    return json.loads(path.read_text())


@pytest.fixture(scope="module")
def cleveland(tmp_path_factory):
    """A diagnose run on 200 Cleveland patients with --sensitive age sex, and the other 103,
    of 50 and older, as an external cohort whose own age quartiles differ."""
    frame = pd.read_csv(shared_data("uci_heart_cleveland/processed.cleveland.tsv"), sep="\t",
                        na_values=["?"])
    frame["disease"] = np.where(frame.pop("diagnosis") > 0, "yes", "no")
    order = np.random.default_rng(0).permutation(len(frame))
    development, external = frame.iloc[order[:200]], frame.iloc[order[200:]]
    external = external[external["age"] >= 50]
    tmp = tmp_path_factory.mktemp("cleveland_bins")
    development.to_csv(tmp / "development.csv", index=False)
    external.to_csv(tmp / "external.csv", index=False)
    run = train_run(tmp / "development.csv",
                    Study(task="diagnose", target="disease", sensitive=["age", "sex"]),
                    TrainConfig(**FAST), tmp / "run")
    return tmp, run, development.reset_index(drop=True), external


def test_metrics_record_the_development_split_edges(cleveland):
    _, run, development, _ = cleveland
    fairness = _read(run / "metrics.json")["fairness"]
    test_rows = pd.read_csv(run / "predictions.csv")["row"]
    dev_rows = development.drop(index=test_rows)
    assert len(dev_rows) == _read(run / "metrics.json")["data"]["development_rows"]
    edges = bin_edges(dev_rows[["age", "sex"]])["age"]
    assert fairness["bins"] == {"age": {
        "edges": edges,
        "groups": [f"age < {edges[1]:g}", f"age [{edges[1]:g}, {edges[2]:g})",
                   f"age [{edges[2]:g}, {edges[3]:g})", f"age >= {edges[3]:g}"],
        "from": "the development split"}}
    assert (f"Numeric column 'age' is binned at edges {', '.join(f'{e:g}' for e in edges)}, "
            "the quartiles of the development split") in fairness["note"]


def test_development_and_test_tables_use_the_same_age_groups(cleveland):
    _, run, _, _ = cleveland
    fairness = _read(run / "metrics.json")["fairness"]
    groups = fairness["bins"]["age"]["groups"]
    development = fairness["representation"]["age"]["groups"]
    assert list(development) == groups
    assert set(fairness["attributes"]["age"]["groups"]) <= set(groups)
    assert set(fairness["mitigation"]["age"]["after"]["groups"]) <= set(groups)
    assert sum(g["n"] for g in fairness["attributes"]["age"]["groups"].values()) == \
        _read(run / "metrics.json")["data"]["test_rows"]
    assert list(fairness["attributes"]["sex"]["groups"]) == ["0", "1"]  # two values: not binned


def test_evaluate_bins_another_cohort_at_the_training_edges(cleveland):
    tmp, run, _, external = cleveland
    trained = _read(run / "metrics.json")["fairness"]["bins"]
    out = evaluate_run(run, tmp / "external.csv", tmp / "ev_external", n_boot=100)
    fairness = _read(out / "metrics.json")["fairness"]
    assert fairness["bins"] == trained
    assert trained["age"]["edges"] != bin_edges(external[["age"]])["age"]
    groups = fairness["attributes"]["age"]["groups"]
    assert set(groups) <= set(trained["age"]["groups"])
    lowest, highest = trained["age"]["edges"][1], trained["age"]["edges"][3]
    assert groups[f"age >= {highest:g}"]["n"] == int((external["age"] >= highest).sum())
    assert groups.get(f"age < {lowest:g}", {"n": 0})["n"] == int((external["age"] < lowest).sum())
    assert "the quartiles of the development split" in fairness["note"]


def test_a_run_without_saved_edges_falls_back_to_the_cohort_quartiles(cleveland):
    tmp, run, _, external = cleveland
    older = tmp / "older_run"
    shutil.copytree(run, older)
    metrics = _read(older / "metrics.json")
    del metrics["fairness"]["bins"]
    (older / "metrics.json").write_text(json.dumps(metrics))
    out = evaluate_run(older, tmp / "external.csv", tmp / "ev_older", n_boot=100)
    fairness = _read(out / "metrics.json")["fairness"]
    assert fairness["bins"]["age"]["edges"] == bin_edges(external[["age"]])["age"]
    assert fairness["bins"]["age"]["from"] == "the audited patients (their own quartiles)"
    assert "no bin edges from the development split being given" in fairness["note"]


def test_risk_run_and_its_external_evaluation_share_the_development_edges(tmp_path):
    from permed.ingest import export_dataset

    frame = pd.read_csv(export_dataset("gbsg2", tmp_path / "gbsg2.csv"))
    frame.iloc[:480].to_csv(tmp_path / "development.csv", index=False)
    external = frame.iloc[480:]
    external.to_csv(tmp_path / "external.csv", index=False)
    run = train_run(tmp_path / "development.csv",
                    Study(task="risk", time="time", event="cens", sensitive=["age"]),
                    TrainConfig(models=["coxph"], cv=3, n_boot=100, horizons=[365, 1095]),
                    tmp_path / "run")
    fairness = _read(run / "metrics.json")["fairness"]
    bins = fairness["bins"]["age"]
    assert bins["from"] == "the development split"
    assert set(fairness["attributes"]["age"]["groups"]) <= set(bins["groups"])
    assert "the quartiles of the development split" in fairness["note"]
    out = evaluate_run(run, tmp_path / "external.csv", tmp_path / "ev", n_boot=100)
    evaluated = _read(out / "metrics.json")["fairness"]
    assert evaluated["bins"] == fairness["bins"]
    assert bins["edges"] != bin_edges(external[["age"]])["age"]
    assert set(evaluated["attributes"]["age"]["groups"]) <= set(bins["groups"])
