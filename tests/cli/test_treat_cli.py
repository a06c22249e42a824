"""permed train/predict/report for the treat task, as a user runs them (bundled ACTG 320)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from permed.testing import run_permed as permed

TREAT = ["--task", "treat", "--treatment", "tx", "--outcome", "censor", "--lower-is-better",
         "--randomized"]
FAST = ["--models", "t_learner", "--cv", "3", "--bootstrap", "100", "--quiet"]


@pytest.fixture(scope="module")
def aids(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("treat-cli")
    assert permed("datasets", "export", "aids", tmp / "aids.csv").returncode == 0
    return tmp


@pytest.fixture(scope="module")
def trained(aids) -> Path:
    result = permed("train", aids / "aids.csv", *TREAT, "--drop", "txgrp,time", "--out",
                    aids / "run", *FAST)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("report.html")
    return aids / "run"


def test_train_writes_the_treat_metrics(trained):
    metrics = json.loads((trained / "metrics.json").read_text())
    assert metrics["task"] == "treat"
    assert set(metrics["test"]) == {"policy_value", "policy_gain", "ate", "qini",
                                    "arm_contrasts"}
    for key in ("policy_value", "policy_gain"):
        entry = metrics["test"][key]
        assert entry["ci_low"] <= entry["value"] <= entry["ci_high"]
    assert metrics["outcome"]["higher_is_better"] is False
    assert metrics["treatment"]["assignment"].startswith("randomized")
    # ACTG 320: indinavir (tx = 1) lowered the rate of AIDS or death (Hammer et al. 1997)
    assert metrics["policy"]["best_single_arm"] == "1"
    assert metrics["test"]["ate"]["value"] < 0


def test_predict_gives_each_arm_and_a_recommendation(aids, trained):
    new = pd.read_csv(aids / "aids.csv").drop(columns=["tx", "censor", "time"]).head(15)
    new.to_csv(aids / "new.csv", index=False)
    result = permed("predict", trained, aids / "new.csv", "--out", aids / "p.csv")
    assert result.returncode == 0, result.stderr
    predictions = pd.read_csv(aids / "p.csv")
    assert len(predictions) == 15
    assert {"outcome_0", "outcome_0_low", "outcome_0_high", "outcome_1", "recommended",
            "candidates", "advantage", "low_overlap", "out_of_range"} <= set(predictions)
    assert set(predictions["recommended"].astype(str)) <= {"0", "1", "no clear difference"}


def test_report_is_written_again(trained):
    (trained / "report.html").unlink()
    result = permed("report", trained)
    assert result.returncode == 0, result.stderr
    assert "Value of the recommendation" in (trained / "report.html").read_text()


def test_a_feature_that_encodes_the_treatment_is_refused(aids):
    result = permed("train", aids / "aids.csv", *TREAT, "--drop", "time", "--out",
                    aids / "leaky", *FAST)
    assert result.returncode == 1
    assert ("column 'txgrp' encodes the treatment 'tx' (each value of 'txgrp' occurs in one arm "
            "only): a feature must not be the treatment itself or be recorded because of it; "
            "drop it with --drop 'txgrp'") in result.stderr.replace("\n", " ")
    assert not (aids / "leaky").exists()


def test_an_encrypted_runs_report_lists_no_patient(aids):
    assert permed("keys", "create", "--out", aids / "site.key").returncode == 0
    result = permed("train", aids / "aids.csv", *TREAT, "--drop", "txgrp,time", "--encrypt",
                    "--key-file", aids / "site.key", "--out", aids / "encrypted", *FAST)
    assert result.returncode == 0, result.stderr
    html = (aids / "encrypted" / "report.html").read_text()
    assert "The run is encrypted and this report is not, so the held-out patients&#39; rows " \
           "are left out" in html
    assert "<th scope=\"col\">Arm received</th>" not in html  # the table of the first rows
    assert "Value of the recommendation" in html


def test_the_tripod_checklist_speaks_of_treatment_not_diagnosis(trained):
    html = (trained / "report.html").read_text()
    tripod = html[html.index("TRIPOD+AI reporting checklist"):]
    assert "Class shares" not in tripod
    assert "chosen by" not in tripod
    assert "Threshold rule" not in tripod
    assert "Each arm&#39;s expected outcome comes with a 95% confidence interval" in tripod
