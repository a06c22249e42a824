"""Train's test figures at each horizon judged on the test split they are computed on, the
headline td_auc and Uno's tau over the checkable horizons only, no bootstrap CI nor
calibration verdict from a handful of test events, and the follow-up of each split."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sksurv.metrics import concordance_index_ipcw

from permed.models.risk import survival_y
from permed.study import Study
from permed.workflow import TrainConfig, evaluate_run, train_run
from permed.workflow._risk import follow_up_summary

STUDY = Study(task="risk", time="time", event="cens")


@pytest.fixture(scope="module")
def late(tmp_path_factory):
    """GBSG2 (686 patients) with a horizon at 2150 days: 44 of the 686 patients are followed
    that long (35 needed), but only 8 of the 138 test patients (20 needed)."""
    from permed.ingest import export_dataset

    tmp = tmp_path_factory.mktemp("late")
    data = export_dataset("gbsg2", tmp / "gbsg2.csv")
    run = train_run(data, STUDY, TrainConfig(models=["coxph"], cv=3, n_boot=100,
                                             horizons=[365, 1095, 2150]), tmp / "run")
    return data, run, json.loads((run / "metrics.json").read_text())


def test_a_horizon_few_test_patients_reach_is_not_checkable(late):
    # it had been judged on the whole cohort (44 of 686 reach 2150): "checkable", no warning
    data, run, metrics = late
    assert metrics["horizons"]["not_checkable"] == {"2150": 8}
    assert metrics["horizons"]["checkable_rule"] == (
        "at least 20 of the 138 test patients (20, or 5% when more) still followed at the "
        "horizon")
    warnings = json.loads((run / "manifest.json").read_text())["warnings"]
    assert warnings == [
        "horizon 2150: only 8 of the 138 test patients (20 needed) are followed that long in "
        "'time', so the risk by then cannot be checked on the test split: its calibration, AUC "
        "and observed risks there are marked not checkable and the headline td_auc and Uno's C "
        "use the horizons up to 1095; choose horizons up to 1959, which 20 test patients reach"]
    # nobody of the high-risk third is followed to 2150: its KM there is carried flat
    assert metrics["risk_groups"]["groups"]["high"]["followed"] == {
        "365": 40, "1095": 13, "2150": 0}


def test_the_headline_td_auc_and_uno_tau_leave_out_unchecked_horizons(late):
    # td_auc had averaged in the 2150-day AUC and Uno's C was truncated at tau = 2150
    data, run, metrics = late
    by_horizon = metrics["td_auc_by_horizon"]
    assert set(by_horizon) == {"365", "1095", "2150"}  # still recorded, marked not checkable
    assert metrics["test"]["td_auc"]["value"] == pytest.approx(
        (by_horizon["365"]["value"] + by_horizon["1095"]["value"]) / 2, abs=1e-12)
    assert metrics["evaluation"]["td_auc_horizons"] == [365, 1095]
    assert metrics["evaluation"]["uno_c_tau"] == 1095
    assert metrics["evaluation"]["uno_c_tau_rule"] == "the last checkable horizon"
    # Uno's C is scikit-survival's at tau = 1095, with the censoring distribution recorded
    frame = pd.read_csv(data)
    predictions = pd.read_csv(run / "predictions.csv")
    test = predictions["row"].to_numpy()
    development = frame.drop(index=test)
    assert metrics["evaluation"]["censoring_distribution"].startswith(
        "Kaplan-Meier estimate of the censoring distribution of the development and evaluated "
        "outcomes pooled")
    assert metrics["metric_estimators"]["censoring_distribution"] == \
        metrics["evaluation"]["censoring_distribution"]
    reference = np.concatenate([
        survival_y(development["time"].to_numpy(float), development["cens"].to_numpy(bool)),
        survival_y(predictions["time"].to_numpy(float), predictions["event"].to_numpy(bool))])
    expected = concordance_index_ipcw(
        reference, survival_y(predictions["time"].to_numpy(float),
                              predictions["event"].to_numpy(bool)),
        predictions["risk_score"].to_numpy(), tau=1095)[0]
    assert metrics["test"]["uno_c"]["value"] == pytest.approx(expected, abs=1e-9)


def test_the_report_states_no_figure_at_an_unchecked_horizon(late):
    _, run, _ = late
    html = (run / "report.html").read_text().replace("&#39;", "'")
    # had been "By 2150, 70% of the high-risk third had the event against 44%"
    assert "By time 1095 (in the unit of column 'time'), " in html
    assert "By time 2150" not in html
    assert "By 2150" not in html
    assert "tau = 1095 (the last checkable horizon)" in html
    assert "AUROC for events by each horizon (365, 1095), averaged; not by 2150" in html
    assert ("development and evaluated outcomes pooled (the evaluated follow-up extends beyond "
            "the development follow-up)") in html


def test_train_records_the_follow_up_of_each_split(late):
    _, run, metrics = late
    outcome = metrics["outcome"]
    follow_up = outcome["follow_up"]
    assert follow_up["development"]["patients"] == 548
    assert follow_up["test"]["patients"] == 138
    assert follow_up["development"]["events"] + follow_up["test"]["events"] == outcome["event"]
    assert outcome["median_follow_up_reverse_km"] == follow_up["development"]["median"]
    # the plain median of the times, kept: far below the reverse Kaplan-Meier median
    assert outcome["median_follow_up"] == follow_up["development"]["observed_median"] < \
        outcome["median_follow_up_reverse_km"]
    assert follow_up["test"]["followed"]["2150"] == 8
    html = (run / "report.html").read_text().replace("&#39;", "'")
    assert "Median follow-up, reverse Kaplan-Meier (IQR)" in html
    assert "Outcome classes" not in html
    assert "(positive)" not in html
    from permed.report import render_markdown

    checklist = render_markdown(run)
    assert "positive class 'event'" not in checklist
    assert "Time to event. Column 'time' is each patient's follow-up" in checklist
    assert "median follow-up 1645 (IQR 1095–1965), longest 2612" in checklist


def test_reverse_kaplan_meier_follow_up_matches_a_hand_count():
    # censored at 2, 4, 5: reverse KM 3/4 after 2 (4 at risk), 3/8 after 4 (2 at risk), 0 at 5;
    # Kaplan-Meier risk by 2.5: the event at 1 of 5 at risk
    time = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    event = np.array([True, False, True, False, False])
    summary = follow_up_summary(time, event, [2.5, 6.0])
    assert (summary["median"], summary["iqr"], summary["max"]) == (4.0, [2.0, 5.0], 5.0)
    assert summary["observed_median"] == 3.0
    assert summary["km_risk"] == {"2.5": pytest.approx(1 / 5), "6": None}
    assert summary["followed"] == {"2.5": 3, "6": 0}


def test_reverse_kaplan_meier_follow_up_of_gbsg2_is_lifelines(tmp_path):
    from permed.ingest import export_dataset

    frame = pd.read_csv(export_dataset("gbsg2", tmp_path / "gbsg2.csv"))
    summary = follow_up_summary(frame["time"].to_numpy(float), frame["cens"].to_numpy(bool),
                                [365, 1825])
    # lifelines 0.30.3: KaplanMeierFitter().fit(time, 1 - cens): median_survival_time_ 1645,
    # percentile(0.75) 1100, percentile(0.25) 1976; fit(time, cens): 1 - S(365) 0.084442,
    # 1 - S(1825) 0.508355
    assert (summary["median"], summary["iqr"]) == (1645.0, [1100.0, 1976.0])
    assert summary["km_risk"]["365"] == pytest.approx(0.084442, abs=1e-6)
    assert summary["km_risk"]["1825"] == pytest.approx(0.508355, abs=1e-6)


def test_evaluate_says_tau_is_the_last_checkable_horizon(late, tmp_path):
    data, run, development = late
    cohort = pd.read_csv(data)
    cohort["time"] = cohort["time"].clip(upper=1500)  # nobody followed to 2150
    cohort.to_csv(tmp_path / "cohort.csv", index=False)
    out = evaluate_run(run, tmp_path / "cohort.csv", tmp_path / "ext", n_boot=100)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["evaluation"]["uno_c_tau_rule"] == "the last checkable horizon"
    assert "tau = 1095 (the last checkable horizon)" in (out / "report.html").read_text()
    follow_up = metrics["outcome"]["follow_up"]
    assert follow_up["development"] == development["outcome"]["follow_up"]["development"]
    assert follow_up["test"]["patients"] == 686
    assert follow_up["test"]["km_risk"]["2150"] is None
    assert metrics["outcome"]["median_follow_up_reverse_km"] == follow_up["test"]["median"]


def _few_events(n: int = 300, events: int = 7, seed: int = 0) -> pd.DataFrame:
    """few.csv's shape: 300 patients, 7 events (1 of them in the test split)."""
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    time = rng.exponential(20 * np.exp(-0.5 * x1), n).clip(0.5, 30)
    event = np.zeros(n, dtype=int)
    event[np.argsort(-x1)[:events]] = 1  # the events among the highest risks
    return pd.DataFrame({"x1": x1.round(3), "x2": x2.round(3), "time": time.round(2),
                         "event": event})


def test_under_ten_test_events_give_no_bootstrap_ci_and_no_calibration_verdict(tmp_path):
    # few.csv: 1 test event, yet "the model is miscalibrated ... slope 0.32, 95% CI 0.17-0.66"
    _few_events().to_csv(tmp_path / "few.csv", index=False)
    run = train_run(tmp_path / "few.csv", Study(task="risk", time="time", event="event"),
                    TrainConfig(models=["coxph"], cv=3, n_boot=100), tmp_path / "run")
    metrics = json.loads((run / "metrics.json").read_text())
    test_events = sum(g["events"] for g in metrics["risk_groups"]["groups"].values())
    assert test_events < 10
    assert metrics["bootstrap"]["intervals_estimable"] is False
    assert metrics["bootstrap"]["note"].startswith(
        f"only {test_events} evaluated patient{'s' if test_events != 1 else ''} had the event "
        "(fewer than 10): resampling within events keeps the same events in every replicate")
    entries = [*metrics["test"].values(), *metrics["td_auc_by_horizon"].values(),
               *(c["slope"] for c in metrics["calibration"]["horizons"].values())]
    assert all(set(e) == {"value", "ci_low", "ci_high"} for e in entries)
    assert all(e["ci_low"] is None and e["ci_high"] is None for e in entries)
    assert metrics["test"]["c_index"]["value"] is not None
    warnings = json.loads((run / "manifest.json").read_text())["warnings"]
    assert not [w for w in warnings if "miscalibrated" in w]
    assert [w for w in warnings if w.startswith("the test split holds")]
    html = (run / "report.html").read_text()
    assert "Confidence intervals not estimable" in html
    assert "Calibration not judged" in html
    assert "miscalibrated" not in html


def test_a_horizon_too_few_patients_of_a_cv_fold_reach_leaves_its_figures_alone(late):
    # each fold's td_auc had averaged in every horizon and truncated Uno's C at the last one
    from permed.study import FittedSchema, validate
    from permed.workflow._risk import _fit_fold, _Folds

    frame = pd.read_csv(late[0])
    schema = FittedSchema.from_frame(frame, validate(frame, STUDY).kinds, STUDY, [])
    time, event = frame["time"].to_numpy(float), frame["cens"].to_numpy(bool)
    rows = np.arange(len(frame))
    folds = [(rows[rows % 4 != 0], rows[rows % 4 == 0])]
    assert (time[folds[0][1]] >= 2150).sum() < 20  # so 2150 is not checkable on this fold

    def fold_metrics(horizons: list[float]) -> dict[str, float]:
        data = _Folds(schema.coerce(frame), time, event, folds, schema, np.asarray(horizons),
                      TrainConfig(models=["coxph"], cv=3))
        return _fit_fold((data, "coxph", {}, 0))[2]

    with_late, without = fold_metrics([365, 1095, 2150]), fold_metrics([365, 1095])
    for name in ("c_index", "uno_c", "td_auc"):
        assert with_late[name] == pytest.approx(without[name], abs=1e-12), name
