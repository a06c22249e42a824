"""permed recalibrate as a user runs it: real processes from the folder holding the runs
(relative paths, as typed), exit codes, whole messages, no tracebacks, nothing half-written."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pandas as pd
import pytest

from permed.study import Study
from permed.testing import run_permed, site_diagnose_cohort, site_risk_cohort
from permed.workflow import TrainConfig, train_run

FAST = {"n_boot": 100, "cv": 3}


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """Source runs (binary, three-class, risk) and local cohorts, in one folder."""
    tmp = tmp_path_factory.mktemp("recalibrate-cli")
    site_diagnose_cohort(600, 1, grade=True).to_csv(tmp / "source.csv", index=False)
    site_diagnose_cohort(600, 2, shift=1.0, grade=True).to_csv(tmp / "local.csv", index=False)
    site_risk_cohort(600, 1).to_csv(tmp / "risk_source.csv", index=False)
    site_risk_cohort(600, 2, 2.0).to_csv(tmp / "risk_local.csv", index=False)
    config = TrainConfig(models=["logistic"], **FAST)
    train_run(tmp / "source.csv", Study(task="diagnose", target="disease", drop=["grade"]),
              config, tmp / "src")
    train_run(tmp / "source.csv", Study(task="diagnose", target="grade", drop=["disease"]),
              config, tmp / "grade")
    train_run(tmp / "risk_source.csv", Study(task="risk", time="years", event="died"),
              TrainConfig(models=["coxph"], horizons=[1.0, 2.0], **FAST), tmp / "risk")
    return tmp


def permed(site: Path, *args: object):
    return run_permed("recalibrate", *args, cwd=site)


def _flat(text: str) -> str:
    return " ".join(text.split())


def _digests(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_recalibrate_writes_a_new_run_and_prints_the_update(site):
    result = permed(site, "src", "local.csv", "--out", "src-local", "--bootstrap", "100")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "report: src-local/report.html"
    printed = _flat(result.stderr)
    assert "Recalibration (slope) of src on 600 patients (95% CI)" in printed
    assert "Calibration on the local cohort: before, after (cross-fitted)" in printed
    metrics = json.loads((site / "src-local" / "metrics.json").read_text())
    assert metrics["recalibration"]["source_run"]["path"] == "src"
    assert {p.name for p in (site / "src-local").iterdir()} >= {
        "metrics.json", "manifest.json", "predictions.csv", "report.html", "model", "audit.log"}
    # predict reads the new run as any other
    scored = run_permed("predict", "src-local", "local.csv", "--out", "scored.csv", cwd=site)
    assert scored.returncode == 0, scored.stderr
    assert len(pd.read_csv(site / "scored.csv")) == 600


def test_quiet_prints_only_the_report(site):
    result = permed(site, "risk", "risk_local.csv", "--out", "risk-local", "--bootstrap",
                    "100", "--method", "intercept", "--quiet")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "risk-local/report.html"
    assert result.stderr == ""
    entry = json.loads((site / "risk-local" / "metrics.json").read_text())["recalibration"]
    assert entry["method"] == "intercept"
    assert entry["reference_horizon"] == 2.0


@pytest.mark.parametrize(("args", "message"), [
    (["src", "no_outcome.csv", "--out", "bad1"],
     "error: the outcome column(s) 'disease' are missing: evaluating a model needs each "
     "patient's recorded outcome, in the columns named as in training (to score patients "
     "without it, use permed predict); the table's columns the model does not use are "
     "'grade'"),
    (["risk", "no_events.csv", "--out", "bad2"],
     "error: event column 'died' records no event: all 600 patients are censored; a risk "
     "model needs observed events: check the column (1 = event) or --event-value"),
    (["grade", "local.csv", "--out", "bad3"],
     "error: only binary targets can be recalibrated: 'grade' predicts 3 classes of 'grade' "
     "(high, low, mid), and logistic recalibration updates one probability; check the model "
     "at this site with permed evaluate, and if it is miscalibrated train a model on this "
     "site's patients (permed train)"),
    (["src", "local.csv", "--out", "bad4", "--method", "both"],
     "error: --method must be slope or intercept, got 'both'"),
    (["src", "few_yes.csv", "--out", "bad5"],
     "error: the local cohort has 15 patients with 'yes' (the smaller outcome class of "
     "'disease'): a recalibration slope needs at least 20 (100 recommended: Vergouwe et "
     "al., J Clin Epidemiol 2005; Collins et al., Stat Med 2016; Riley et al., Stat Med "
     "2021); use --method intercept, "
     "which updates the average risk only, or recalibrate on a larger cohort"),
])
def test_bad_input_says_what_to_do_and_writes_nothing(site, args, message):
    local = pd.read_csv(site / "local.csv")
    local.drop(columns="disease").to_csv(site / "no_outcome.csv", index=False)
    pd.read_csv(site / "risk_local.csv").assign(died=0).to_csv(site / "no_events.csv",
                                                               index=False)
    few = (local["disease"] == "no") | ((local["disease"] == "yes").cumsum() <= 15)
    local[few].to_csv(site / "few_yes.csv", index=False)
    before = _digests(site / args[0])
    result = permed(site, *args)
    assert result.returncode == 1
    assert _flat(result.stderr) == message
    out = args[args.index("--out") + 1]
    assert not (site / out).exists()
    assert not list(site.glob(f".{out}.partial-*"))
    assert _digests(site / args[0]) == before


def test_a_horizon_the_site_does_not_follow_is_dropped_on_the_console(site):
    local = pd.read_csv(site / "risk_local.csv")
    ended = local["years"] > 1.5  # follow-up ends at 1.5 years
    local.loc[ended, "died"] = 0
    local.loc[ended, "years"] = 1.5
    local.to_csv(site / "risk_short.csv", index=False)
    result = permed(site, "risk", "risk_short.csv", "--out", "risk-short", "--bootstrap",
                    "100")
    assert result.returncode == 0, result.stderr
    printed = _flat(result.stderr)
    assert "horizons dropped │ 2 (local follow-up 1.5: not checkable)" in printed
    assert ("warning: horizon 2 is dropped from the recalibrated model: only 0 of 600 local "
            "patients are followed that long in 'years' (30 needed; longest local follow-up "
            "1.5), and the local baseline hazard is flat after the last local time, so the "
            "risk by then would not be estimated; the recalibrated model reports 1") in printed
    assert "observed/expected at 2" not in printed
    scored = run_permed("predict", "risk-short", "risk_short.csv", "--out", "short.csv",
                        cwd=site)
    assert scored.returncode == 0, scored.stderr
    assert "risk_at_2" not in pd.read_csv(site / "short.csv").columns


def test_an_existing_out_is_refused_as_train_refuses_it(site):
    (site / "notes").mkdir()
    (site / "notes" / "keep.txt").write_text("mine")
    cases = {
        "src": "error: --out 'src' is the source run 'src' or inside it: a recalibration "
               "writes a new run and never changes the one it updates; choose a new folder, "
               "e.g. --out src-local",
        "grade": "error: --out 'grade' holds a trained run (model/bundle.json): the "
                 "recalibration would replace its model; choose a new folder, e.g. --out "
                 "src-local",
        "notes": "error: --out 'notes' exists and is not a permed output folder: choose a new "
                 "folder",
    }
    for out, message in cases.items():
        before = _digests(site / out)
        result = permed(site, "src", "local.csv", "--out", out, "--bootstrap", "100")
        assert result.returncode == 1
        assert _flat(result.stderr) == message
        assert _digests(site / out) == before


def test_an_encrypted_run_is_recalibrated_into_an_encrypted_run(site):
    assert run_permed("keys", "create", "--out", "site.key", cwd=site).returncode == 0
    trained = run_permed("train", "source.csv", "--target", "disease", "--drop", "grade",
                         "--models", "logistic", "--cv", "3", "--bootstrap", "100", "--encrypt",
                         "--key-file", "site.key", "--out", "sealed", "--quiet", cwd=site)
    assert trained.returncode == 0, trained.stderr
    refused = permed(site, "sealed", "local.csv", "--out", "sealed-local")
    assert refused.returncode == 1
    assert _flat(refused.stderr) == (
        "error: 'sealed/model/schema.json' is encrypted: reading it needs the data key: pass "
        "--key-file KEY or set PERMED_KEY (create one with `permed keys create --out "
        "site.key`)")
    assert not (site / "sealed-local").exists()
    result = permed(site, "sealed", "local.csv", "--out", "sealed-local", "--key-file",
                    "site.key", "--bootstrap", "100", "--quiet")
    assert result.returncode == 0, result.stderr
    index = json.loads((site / "sealed-local" / "model" / "bundle.json").read_text())
    assert index["encrypted"] is True
    assert b"prob_yes" not in (site / "sealed-local" / "predictions.csv").read_bytes()
    scored = run_permed("predict", "sealed-local", "local.csv", "--key-file", "site.key",
                        "--out", "sealed.csv", cwd=site)
    assert scored.returncode == 0, scored.stderr


def test_an_earlier_recalibration_is_replaced_with_a_warning(site):
    first = permed(site, "src", "local.csv", "--out", "again", "--bootstrap", "100", "--quiet")
    assert first.returncode == 0, first.stderr
    created = json.loads((site / "again" / "manifest.json").read_text())["created"]
    log = (site / "again" / "audit.log").read_text().splitlines()
    second = permed(site, "src", "local.csv", "--out", "again", "--bootstrap", "100",
                    "--method", "intercept")
    assert second.returncode == 0, second.stderr
    assert f"warning: replaced the recalibration written {created} in 'again'" in _flat(
        second.stderr)
    assert json.loads((site / "again" / "metrics.json").read_text())["recalibration"][
        "method"] == "intercept"
    # the audit trail goes on from the replaced run's
    assert (site / "again" / "audit.log").read_text().splitlines()[:len(log)] == log
