"""permed train/predict/evaluate for the risk task, as a user runs them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from permed import __version__ as permed_version
from permed.testing import run_permed as permed

FAST = ["--models", "coxph", "--cv", "3", "--bootstrap", "100", "--quiet"]


@pytest.fixture(scope="module")
def gbsg(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("risk-cli")
    assert permed("datasets", "export", "gbsg2", tmp / "gbsg.csv").returncode == 0
    return tmp


@pytest.fixture(scope="module")
def trained(gbsg) -> Path:
    result = permed("train", gbsg / "gbsg.csv", "--task", "risk", "--time", "time", "--event",
                    "cens", "--horizons", "365,1095,1825", "--out", gbsg / "run", *FAST)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("report.html")
    return gbsg / "run"


def test_train_writes_the_risk_metrics(trained):
    metrics = json.loads((trained / "metrics.json").read_text())
    assert metrics["task"] == "risk"
    assert set(metrics["test"]) == {"c_index", "uno_c", "ibs", "td_auc"}
    assert list(metrics["td_auc_by_horizon"]) == ["365", "1095", "1825"]
    assert (trained / "report.html").is_file()


def test_predict_gives_risk_at_each_horizon_and_median_survival(gbsg, trained):
    new = pd.read_csv(gbsg / "gbsg.csv").drop(columns=["time", "cens"]).head(20)
    new.to_csv(gbsg / "new.csv", index=False)
    result = permed("predict", trained, gbsg / "new.csv", "--out", gbsg / "p.csv")
    assert result.returncode == 0, result.stderr
    predictions = pd.read_csv(gbsg / "p.csv")
    assert len(predictions) == 20
    assert {"risk_score", "risk_at_365", "risk_at_1095", "risk_at_1825", "median_survival_time",
            "risk_group"} <= set(predictions.columns)
    assert (predictions["risk_at_1825"] >= predictions["risk_at_365"]).all()


def test_evaluate_validates_a_risk_run_on_another_cohort(gbsg, trained):
    cohort = pd.read_csv(gbsg / "gbsg.csv").sample(300, random_state=1)
    cohort.to_csv(gbsg / "other.csv", index=False)
    result = permed("evaluate", trained, gbsg / "other.csv", "--out", gbsg / "external",
                    "--bootstrap", "100", "--quiet")
    assert result.returncode == 0, result.stderr
    metrics = json.loads((gbsg / "external" / "metrics.json").read_text())
    assert metrics["external"]["run"] == str(trained)
    assert metrics["data"]["test_rows"] == 300
    assert metrics["test"]["c_index"]["ci_low"] <= metrics["test"]["c_index"]["value"]
    assert "external cohort" in metrics["evaluation"]["censoring_distribution"]
    assert (gbsg / "external" / "report.html").is_file()


def test_external_risk_report_describes_the_external_cohort(gbsg, trained):
    frame = pd.read_csv(gbsg / "gbsg.csv")
    cohort = frame.iloc[500:]
    cohort.to_csv(gbsg / "rest.csv", index=False)
    result = permed("evaluate", trained, gbsg / "rest.csv", "--out", gbsg / "rest",
                    "--bootstrap", "150")
    assert result.returncode == 0, result.stderr
    printed = " ".join(result.stderr.split())
    assert f"External cohort rest.csv, {len(cohort)} patients, coxph (95% CI)" in printed
    assert "Held-out test" not in printed
    assert "Cross-validation" not in printed
    counts = {"censored": int((cohort["cens"] == 0).sum()), "event": int(cohort["cens"].sum())}
    metrics = json.loads((gbsg / "rest" / "metrics.json").read_text())
    assert metrics["target"]["counts"] == counts
    manifest = json.loads((gbsg / "rest" / "manifest.json").read_text())
    assert manifest["permed_version"] == permed_version
    assert manifest["created"].startswith("20")
    html = (gbsg / "rest" / "report.html").read_text()
    # a time to event with its follow-up, not "Outcome classes" with an "event (positive)"
    assert "Outcome classes" not in html
    assert (f"{counts['event']} patients had the event and {counts['censored']} were censored "
            "(the patients evaluated).") in html
    assert '<th scope="col">Development (from its run)</th><th scope="col">External cohort' in html
    assert "is missing" not in html
    assert "predictors the model uses (from model/schema.json of the development run" in html
    assert "<th scope=\"row\">tsize</th>" in html
    assert "95% CIs of its held-out test figures: 100 bootstrap replicates" in html
    assert "This external validation: 95% CIs from 150 bootstrap replicates" in html


def test_evaluate_prints_why_a_horizon_is_left_out(gbsg, trained):
    cohort = pd.read_csv(gbsg / "gbsg.csv").iloc[:300]
    cohort.assign(time=cohort["time"].clip(upper=1500)).to_csv(gbsg / "short.csv", index=False)
    result = permed("evaluate", trained, gbsg / "short.csv", "--out", gbsg / "short",
                    "--bootstrap", "100")
    assert result.returncode == 0, result.stderr
    warning = ("horizon 1825: only 0 of 300 patients of this cohort are followed that long in "
               "'time' (longest follow-up 1500), so the risk by then cannot be checked")
    assert f"warning: {warning}" in " ".join(result.stderr.split())
    manifest = json.loads((gbsg / "short" / "manifest.json").read_text())
    # (after the warnings that these are the development patients again)
    assert any(w.startswith(warning) for w in manifest["warnings"])


def test_bad_times_are_refused_at_the_command_line(gbsg):
    # (a named --event-value training end to end: tests/workflow/test_risk.py)
    cohort = pd.read_csv(gbsg / "gbsg.csv")
    cohort["status"] = np.where(cohort.pop("cens") == 1, "recurrence", "censored")
    cohort.loc[3, "time"] = -1
    cohort.to_csv(gbsg / "bad.csv", index=False)
    result = permed("train", gbsg / "bad.csv", "--task", "risk", "--time", "time", "--event",
                    "status", "--event-value", "recurrence", "--out", gbsg / "bad", "--quiet")
    assert result.returncode == 1
    assert "time column 'time' has 1 negative times (min -1) in rows 4" in result.stderr
    assert not (gbsg / "bad").exists()


def test_the_tripod_checklist_speaks_of_survival_not_diagnosis(trained):
    html = (trained / "report.html").read_text()
    tripod = html[html.index("TRIPOD+AI reporting checklist"):]
    assert "Class shares" not in tripod
    assert "Threshold rule" not in tripod
    assert "Predicted risk against Kaplan-Meier observed risk by decile at each horizon" in tripod
