"""The risk protocol end to end through the library, and every refused outcome."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

from permed.bundle import load_bundle
from permed.exceptions import DataError, PermedError
from permed.study import Study, validate
from permed.testing import assert_valid_absolute_risk, assert_valid_survival
from permed.workflow import TrainConfig, evaluate_run, predict_run, train_run

FAST = {"models": ["coxph", "gradient_boosting"], "n_boot": 100, "cv": 3}
STUDY = Study(task="risk", time="time", event="cens")


@pytest.fixture(scope="module")
def gbsg(tmp_path_factory):
    from permed.ingest import export_dataset

    tmp = tmp_path_factory.mktemp("gbsg")
    data = export_dataset("gbsg2", tmp / "gbsg2.csv")
    run = train_run(data, STUDY.with_overrides(sensitive=["menostat"]),
                    TrainConfig(horizons=[365, 1095, 1825], **FAST), tmp / "run")
    return data, run, json.loads((run / "metrics.json").read_text())


def test_metrics_carry_the_risk_figures_with_intervals(gbsg):
    _, _, metrics = gbsg
    assert metrics["task"] == "risk"
    assert metrics["selected_model"] in metrics["cv"]
    assert metrics["selection"]["rule"] == "highest mean cross-validated Harrell's C-index"
    assert set(metrics["test"]) == {"c_index", "uno_c", "ibs", "td_auc"}
    for entry in [*metrics["test"].values(), *metrics["td_auc_by_horizon"].values()]:
        assert entry["ci_low"] <= entry["value"] <= entry["ci_high"]
    for model in metrics["cv"].values():
        assert set(model) == {"c_index", "uno_c", "ibs", "td_auc"}
    assert metrics["evaluation"]["uno_c_tau"] == 1825
    assert "concordance_index_censored" in metrics["metric_estimators"]["c_index"]
    assert metrics["horizons"]["values"] == [365, 1095, 1825]
    # GBSG2: C-index about 0.68 for Cox models in the literature
    assert metrics["test"]["c_index"]["value"] > 0.62


def test_calibration_risk_groups_and_ph_check_are_recorded(gbsg):
    _, _, metrics = gbsg
    calibration = metrics["calibration"]["horizons"]["1095"]
    assert set(calibration) >= {"slope", "observed_expected", "predicted", "observed", "deciles"}
    groups = metrics["risk_groups"]["groups"]
    assert list(groups) == ["low", "intermediate", "high"]
    assert groups["high"]["observed"]["1825"] > groups["low"]["observed"]["1825"]
    assert metrics["risk_groups"]["logrank"]["p_value"] < 0.05
    ph = metrics["proportional_hazards"]
    assert ph["model"] == "coxph"
    assert set(ph["global"]) == {"statistic", "df", "p_value"}
    # each categorical predictor one term of its levels less one df (it was one term a level:
    # 10 columns, global df 10, where a drop-first coding has 8; menostat is the sensitive
    # attribute here, not a predictor)
    assert {name: f["df"] for name, f in ph["features"].items()} == {
        "age": 1, "estrec": 1, "pnodes": 1, "progrec": 1, "tsize": 1, "horTh": 1, "tgrade": 2}
    assert ph["global"]["df"] == 8
    fairness = metrics["fairness"]["attributes"]["menostat"]
    assert set(fairness["groups"]) == {"Post", "Pre"}
    assert "c_index" in fairness["groups"]["Pre"]


def test_predictions_hold_risk_at_each_horizon(gbsg):
    _, run, metrics = gbsg
    predictions = pd.read_csv(run / "predictions.csv")
    assert len(predictions) == metrics["data"]["test_rows"]
    columns = ["risk_at_365", "risk_at_1095", "risk_at_1825"]
    assert {"row", "time", "event", "risk_score", "median_survival_time", "risk_group",
            *columns} <= set(predictions.columns)
    assert_valid_absolute_risk(predictions[columns].to_numpy())
    assert set(predictions["risk_group"]) <= {"low", "intermediate", "high"}


def test_predict_scores_new_patients(gbsg):
    data, run, _ = gbsg
    new = pd.read_csv(data).drop(columns=["time", "cens"]).head(25)
    scored = predict_run(run, data)
    assert len(scored) == 686
    model, _ = load_bundle(run)
    frame = model.predict_frame(new)
    assert list(frame.columns) == ["risk_score", "risk_at_365", "risk_at_1095", "risk_at_1825",
                                   "median_survival_time", "risk_group", "out_of_range",
                                   "out_of_range_features", "refer_to_clinician", "refer_reason"]
    assert not frame["refer_to_clinician"].any()
    assert_valid_absolute_risk(frame[["risk_at_365", "risk_at_1095", "risk_at_1825"]].to_numpy())
    curves = model.survival_curves(new, times=[100, 500, 1000, 2000])
    assert_valid_survival(curves.to_numpy(), 25, 4)
    high = frame["risk_score"] >= frame["risk_score"].median()
    assert frame.loc[high, "risk_at_1825"].mean() > frame.loc[~high, "risk_at_1825"].mean()


def test_an_unusual_or_mostly_missing_patient_is_referred(gbsg):
    data, run, _ = gbsg
    new = pd.read_csv(data).drop(columns=["time", "cens"]).head(3)
    new.loc[0, "pnodes"] = 500
    # menostat is sensitive, not a feature: 6 of the 7 features missing
    new.loc[1, [c for c in new.columns if c != "age"]] = np.nan
    model, _ = load_bundle(run)
    frame = model.predict_frame(new)
    assert frame["refer_to_clinician"].tolist() == [True, True, False]
    assert frame["refer_reason"].tolist() == [
        "outside the training range: pnodes",
        "6 of 7 features missing (filled in from the development patients)", ""]


def test_one_preprocessing_gives_what_each_method_gives(gbsg):
    """predict_frame preprocesses the table once for all its columns, and predict_with_curves
    reads the median off its curves: both equal what each method computes on its own."""
    data, run, _ = gbsg
    new = pd.read_csv(data).drop(columns=["time", "cens"]).head(40)
    model, _ = load_bundle(run)
    frame = model.predict_frame(new)
    np.testing.assert_allclose(frame["risk_score"],
                               model.pipeline.predict(model.schema.coerce(new)))
    np.testing.assert_allclose(frame[["risk_at_365", "risk_at_1095", "risk_at_1825"]],
                               1.0 - model.survival(new, [365, 1095, 1825]))
    np.testing.assert_array_equal(frame["median_survival_time"], model.median_survival(new))
    assert frame["median_survival_time"].notna().any()
    answers, curves = model.predict_with_curves(new)
    pd.testing.assert_frame_equal(answers, frame)
    pd.testing.assert_frame_equal(curves, model.survival_curves(new))


def test_report_has_the_risk_sections(gbsg):
    _, run, _ = gbsg
    html = (run / "report.html").read_text()
    for title in ("Risk groups: who has the event sooner?", "Calibration at 1095",
                  "Time-dependent AUC", "Proportional hazards (Cox model)",
                  "Kaplan-Meier curves by risk group"):
        assert title in html
    from permed.report import render_markdown

    checklist = render_markdown(run)
    assert "events (patients with the event) in the development set" in checklist
    assert re.search(r"On the held-out test split \(\d+ patients\): C-index 0\.\d+", checklist)
    assert "slope at 1095" in checklist


def test_same_seed_gives_the_same_results(gbsg, tmp_path):
    data, _, metrics = gbsg
    again = train_run(data, STUDY.with_overrides(sensitive=["menostat"]),
                      TrainConfig(horizons=[365, 1095, 1825], **FAST), tmp_path / "again")
    assert json.loads((again / "metrics.json").read_text())["test"] == metrics["test"]


# --------------------------------------------------------------------------- bad outcomes


@pytest.fixture
def cohort() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    n = 120
    age = rng.normal(60, 10, n).round()
    time = np.round(rng.exponential(500 * np.exp(-(age - 60) / 20)), 0) + 1
    return pd.DataFrame({"age": age, "sex": rng.choice(["F", "M"], n), "days": time,
                         "status": (rng.random(n) < 0.6).astype(int)})


def _train(frame: pd.DataFrame, tmp_path, study: Study | None = None, **config):
    path = tmp_path / "cohort.csv"
    frame.to_csv(path, index=False)
    return train_run(path, study or Study(task="risk", time="days", event="status"),
                     TrainConfig(**{**FAST, **config}), tmp_path / "run")


def _set(frame: pd.DataFrame, column: str, rows: list[int], value) -> pd.DataFrame:
    frame = frame.copy()
    if isinstance(value, str):
        frame[column] = frame[column].astype(object)
    frame.loc[rows, column] = value
    return frame


@pytest.mark.parametrize(("change", "message"), [
    (lambda f: _set(f, "days", [3, 7], -5),
     r"^time column 'days' has 2 negative times \(min -5\) in rows 4, 8: follow-up times count "
     r"from the start of follow-up and must be positive; check how they were computed$"),
    (lambda f: _set(_set(f, "days", [2], 0), "status", [2], 1),
     r"^time column 'days' is 0 for 1 patient with an event in row 3: an event at time 0 "
     r"happened before follow-up started; check the time origin, give a same-day event a "
     r"part of a day \(0\.5 for days\), or drop those rows$"),
    (lambda f: _set(f, "days", [0, 5], np.nan),
     r"^time column 'days' is missing for 2 patients in rows 1, 6: every patient needs a "
     r"follow-up time; fill it in or drop those rows$"),
    (lambda f: _set(f, "days", [4], "ten"),
     r"^time column 'days' must hold numbers but 1 of 120 values is text \(row 5; a value of "
     r"3 characters with letters\): follow-up times must be numbers in one unit \(e.g. "
     r"days\); correct them$"),
    (lambda f: f.assign(days=pd.Timestamp("2020-01-01") + pd.to_timedelta(f["days"], "D")),
     r"^time column 'days' holds dates \(written YYYY-MM-DD\), not follow-up "
     r"times: --time is the time from the start of follow-up \(diagnosis, admission\) to the "
     r"event or the last contact, in one unit; put the days between the start date and 'days' "
     r"in a column of its own and pass that$"),
    (lambda f: f.assign(days=[f"12/{1 + i % 28}/2002" for i in range(len(f))]),
     r"^time column 'days' holds dates \(written MM/D/YYYY\), not follow-up times"),
    (lambda f: _set(f, "status", [1, 2], 2),
     r"^event column 'status' has 3 values \('0' \(\d+\), '1' \(\d+\), '2' \(2\)\): expected "
     r"two, the event and censoring \(1/0, True/False, or a value named with --event-value "
     r"and one other\); recode the others \(competing events are not supported\)$"),
    (lambda f: _set(f, "status", [9], np.nan),
     r"^event column 'status' is missing for 1 patients in rows 10: every patient needs an "
     r"event indicator \(1 = event, 0 = censored\)$"),
    (lambda f: f.assign(status=0),
     r"^event column 'status' records no event: all 120 patients are censored; a risk model "
     r"needs observed events: check the column \(1 = event\) or --event-value$"),
])
def test_bad_outcomes_are_refused_with_the_fix(cohort, tmp_path, change, message):
    with pytest.raises(DataError, match=message):
        _train(change(cohort), tmp_path)
    assert not (tmp_path / "run").exists()


def test_horizons_beyond_follow_up_name_the_longest_follow_up(cohort, tmp_path):
    with pytest.raises(DataError, match=r"^--horizons 5000 is beyond the follow-up in 'days': "
                                        r"the longest follow-up is 3000; choose horizons "
                                        r"below 3000$"):
        _train(cohort.assign(days=cohort["days"].clip(upper=3000)), tmp_path,
               horizons=[100, 5000])


def test_a_horizon_few_patients_reach_is_warned_about_and_recorded(cohort, tmp_path):
    days = np.sort(cohort["days"].to_numpy())
    late = float(days[-3])  # 3 of the 120 patients are followed this long
    run = _train(cohort, tmp_path, horizons=[100, late])
    warnings = json.loads((run / "manifest.json").read_text())["warnings"]
    assert warnings[0] == (
        f"--horizons {late:g}: only 3 of 120 patients are followed that long in 'days', so the "
        f"risk by {late:g} rests on them and its calibration cannot be checked; choose horizons "
        f"up to {days[-20]:g}, which 20 patients reach")
    html = (run / "report.html").read_text().replace("&#39;", "'")
    assert f"<li>{warnings[0]}</li>" in html
    metrics = json.loads((run / "metrics.json").read_text())
    # judged on the 24 test patients the figures are computed on, 2 of whom reach it
    assert metrics["horizons"]["not_checkable"] == {f"{late:g}": 2}
    assert metrics["horizons"]["checkable_rule"].startswith("at least 20 of the 24 test patients")
    # the figures training computed on those few patients are marked, not shown as findings
    assert "not checkable (only 2 patients followed this long)" in html
    assert "By time 100 (in the unit of column 'days'), " in html
    assert f"By time {late:g}" not in html


def test_a_feature_value_whose_patients_all_had_the_event_is_warned_about(cohort):
    from permed.study import validate

    died_in_hospital = cohort.assign(discharge=0)
    died_in_hospital.loc[died_in_hospital.index[cohort["status"] == 1][:12], "discharge"] = 1
    study = Study(task="risk", time="days", event="status")
    assert [f.message for f in validate(died_in_hospital, study).warnings] == [
        "column 'discharge': all 12 patients with its 2nd most common value, a number, had "
        "the event ('status'): likely leakage (recorded at or after the event, like a status at "
        "discharge?); if it is not known when the prediction is made, drop it with --drop "
        "'discharge'"]
    # 9 such patients are not enough to say
    died_in_hospital.loc[died_in_hospital.index[cohort["status"] == 1][9:12], "discharge"] = 0
    assert validate(died_in_hospital, study).warnings == []


def test_a_named_event_value_is_read_as_the_event(cohort, tmp_path):
    named = cohort.assign(status=np.where(cohort["status"] == 1, "dead", "alive"))
    with pytest.raises(DataError, match=r"event column 'status' has values other than 0/1: "
                                        r"'alive' \(\d+\), 'dead' \(\d+\).*--event-value dead$"):
        _train(named, tmp_path)
    with pytest.raises(DataError, match=r"^--event-value 'died' is not a value of event "
                                        r"column 'status', whose values are 'alive', 'dead': "
                                        r"use one of them$"):
        _train(named, tmp_path, event_value="died")
    run = _train(named, tmp_path, event_value="dead", models=["coxph"])
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["outcome"]["event"] == int(cohort["status"].sum())


def test_event_value_with_more_than_two_values_is_refused(cohort, tmp_path):
    labels = np.array(["alive", "dead", "lost"], dtype=object)[cohort.index % 3]
    with pytest.raises(DataError, match=r"^event column 'status' has 3 values \('alive' \(40\), "
                                        r"'dead' \(40\), 'lost' \(40\)\): expected two"):
        _train(cohort.assign(status=labels), tmp_path, event_value="dead")


def test_boolean_event_columns_are_read(cohort, tmp_path):
    run = _train(cohort.assign(status=cohort["status"] == 1), tmp_path, models=["coxph"])
    assert json.loads((run / "metrics.json").read_text())["outcome"]["event"] == int(
        cohort["status"].sum())


def test_censored_patients_at_time_zero_are_left_out_with_a_warning(cohort, tmp_path):
    frame = _set(_set(cohort, "days", [0, 1], 0), "status", [0, 1], 0)
    report = validate(frame, Study(task="risk", time="days", event="status"))
    assert [w.message for w in report.warnings] == [
        "time column 'days' is 0 for 2 censored patients in rows 1, 2: they were followed for "
        "no time, contribute nothing to a survival model and are left out"]
    run = _train(frame, tmp_path, models=["coxph"])
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["outcome"]["left_out_zero_time"] == 2
    assert metrics["data"]["development_rows"] + metrics["data"]["test_rows"] == 118


def test_the_risk_task_needs_both_outcome_columns(cohort, tmp_path):
    with pytest.raises(DataError, match=r"^the risk task needs a time column and an event "
                                        r"column: add --time COL --event COL"):
        _train(cohort, tmp_path, study=Study(task="risk", time="days"))


def test_validate_warns_when_the_event_labels_need_an_event_value(cohort):
    named = cohort.assign(status=np.where(cohort["status"] == 1, "dead", "alive"))
    report = validate(named, Study(task="risk", time="days", event="status"))
    assert not report.errors
    # a note (permed validate prints it), not a warning train would print and record
    assert not report.warnings
    assert [f.level for f in report.findings] == ["note"]
    assert report.findings[0].message.endswith("(permed train will need it)")


def test_unknown_risk_model_is_refused(cohort, tmp_path):
    with pytest.raises(PermedError, match="--models: unknown risk model 'logistic'"):
        _train(cohort, tmp_path, models=["logistic"])


def test_budget_tunes_by_cross_validated_c_index(cohort, tmp_path):
    run = _train(cohort, tmp_path, models=["coxph"], budget=3)
    metrics = json.loads((run / "metrics.json").read_text())
    details = metrics["cv_details"]["coxph"]
    assert details["tuning_trials"] >= 1
    assert details["tuning"]["trials"] == details["tuning_trials"]
    tuning = details["tuning"]  # the verdict follows the rule from the figures it records
    replaced = tuning["cv_gain"] - tuning["selection_optimism"] > tuning["threshold"]
    assert tuning["replaced_defaults"] is replaced
    assert set(details["params"]) == ({"alpha"} if replaced else set())
    assert "Tibshirani" in metrics["selection"]["tuning"]
    verdict = "tuned settings" if replaced else "default settings kept"
    told = f"coxph: {verdict} ({details['tuning_trials']} trials; CV C-index gain "
    assert told in (run / "report.html").read_text()
    # an external evaluation's report states them too (its metrics.json has no CV details)
    external = evaluate_run(run, tmp_path / "cohort.csv", tmp_path / "ext", n_boot=100)
    assert told in (external / "report.html").read_text()


def test_report_warns_when_proportional_hazards_are_violated(gbsg, tmp_path):
    import shutil

    from permed.report import render_report

    _, run, metrics = gbsg
    copy = shutil.copytree(run, tmp_path / "copy")
    ph = metrics["proportional_hazards"]
    ph.update({"violated": True, "violating_features": ["age"],
               "global": {**ph["global"], "p_value": 0.0001}})
    (copy / "metrics.json").write_text(json.dumps(metrics))
    html = render_report(copy)
    assert "Proportional hazards violated" in html
    assert "The proportional-hazards assumption is violated (global p &lt; 0.001)" in html


def test_absolute_risk_is_explained_additively_in_words(gbsg):
    from permed.explain._outcomes import explain_risk

    data, run, metrics = gbsg
    entry = metrics["explanations"]
    assert entry["scale"] == "risk"
    assert entry["method"] == "permutation"
    assert entry["output"] == "the model's absolute risk of the event (cens) by 1095"
    details = json.loads((run / "explanations.json").read_text())
    assert len(details["patients"]) == entry["patients"] == 40
    model, _ = load_bundle(run)
    new = pd.read_csv(data).head(5)
    explanation = explain_risk(model, new, seed=1)
    risk = model.predict_frame(new)["risk_at_1095"].to_numpy()
    np.testing.assert_allclose(explanation.predicted()[:, 0], risk, atol=1e-6)
    np.testing.assert_allclose(explanation.values.sum(axis=1)[:, 0]
                               + explanation.base_values[:, 0], risk, atol=1e-6)
    scored = predict_run(run, data, explain=True).head(5)
    assert scored["explanation"].str.contains(r"(?:raises|lowers) the risk of the event "
                                              r"\(cens\) by 1095 by [0-9.]+ points").all()
    assert "Explanations: what drives the predictions" in (run / "report.html").read_text()


def test_a_risk_counterfactual_lowers_the_risk_by_changing_only_actionable_features(gbsg):
    from permed.explain import risk_counterfactual

    data, run, _ = gbsg
    model, _ = load_bundle(run)
    patients = pd.read_csv(data).drop(columns=["time", "cens"])
    risk = model.predict_frame(patients)["risk_at_1095"]
    high = int((risk - risk.quantile(0.75)).abs().idxmin())  # a high but not extreme risk
    patient = patients.iloc[[high]]
    search = risk_counterfactual(model, patient, 0.03, ["horTh", "tsize"])
    assert search.found, search.note
    assert search.score == pytest.approx(risk[high])
    spec = {f.name: f for f in model.schema.features}["tsize"]
    for found in search.found:
        changed = {c.feature for c in found.changes}
        assert changed <= {"horTh", "tsize"}
        after = found.patient
        assert spec.min <= after["tsize"].iloc[0] <= spec.max
        assert model.predict_frame(after)["risk_at_1095"].iloc[0] <= search.score - 0.03 + 1e-9
        untouched = [c for c in model.schema.names if c not in changed]
        assert after[untouched].astype(str).equals(
            model.schema.coerce(patient)[untouched].reset_index(drop=True).astype(str))
    with pytest.raises(PermedError, match="between 0 and 1"):
        risk_counterfactual(model, patient, 5, ["tsize"])


def test_a_large_cohort_is_compared_on_fewer_folds(tmp_path, monkeypatch):
    from permed.ingest import export_dataset

    monkeypatch.setattr("permed.workflow._large.LARGE_COHORT_ROWS", 300)
    data = export_dataset("gbsg2", tmp_path / "gbsg2.csv")
    run = train_run(data, STUDY, TrainConfig(models=["coxph"], n_boot=100, cv=5),
                    tmp_path / "run")
    selection = json.loads((run / "metrics.json").read_text())["selection"]
    assert selection["folds"] == 3
    assert selection["note"].startswith("3 folds instead of --cv 5: ")


# --------------------------------------------------------------------------- external cohorts


def _cohort(n: int = 120, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    age = rng.normal(60, 10, n).round()
    time = np.round(rng.exponential(500 * np.exp(-(age - 60) / 20)), 0) + 1
    return pd.DataFrame({"pid": np.arange(1000, 1000 + n), "age": age,
                         "sex": rng.choice(["F", "M"], n), "days": time,
                         "status": np.where(rng.random(n) < 0.6, "dead", "alive")})


@pytest.fixture(scope="module")
def developed(tmp_path_factory):
    """A Cox model trained on 120 patients (an id, follow-up in days, event 'dead')."""
    from permed.study import ColumnSpec

    tmp = tmp_path_factory.mktemp("developed")
    _cohort().to_csv(tmp / "cohort.csv", index=False)
    study = Study(task="risk", id="pid", time="days", event="status",
                  columns={"days": ColumnSpec(unit="days")})
    return train_run(tmp / "cohort.csv", study,
                     TrainConfig(models=["coxph"], n_boot=100, cv=3, horizons=[100, 400],
                                 event_value="dead"), tmp / "run")


def _external(n: int = 150) -> pd.DataFrame:
    """Another cohort like the development one, its ages within the training range, its ids
    other patients' (the development ids are found again: test_evaluate_overlap.py)."""
    frame = _cohort(n, seed=1)
    return frame.assign(age=frame["age"].clip(50, 70), pid=frame["pid"] + 1000)


def _evaluate(run, frame: pd.DataFrame, tmp_path):
    frame.to_csv(tmp_path / "external.csv", index=False)
    return evaluate_run(run, tmp_path / "external.csv", tmp_path / "ext", n_boot=100)


def test_an_event_value_given_to_train_raises_no_event_label_warning(developed):
    warnings = json.loads((developed / "manifest.json").read_text())["warnings"]
    assert not [w for w in warnings if "values other than 0/1" in w]
    assert "values other than 0/1" not in (developed / "report.html").read_text()


def test_external_horizons_few_patients_reach_are_left_out_with_a_warning(developed, tmp_path):
    external = _external()
    external["days"] = external["days"].clip(upper=350)  # nobody followed to 400 days
    out = _evaluate(developed, external, tmp_path)
    reach = np.sort(external["days"].to_numpy())[::-1][19]
    warnings = json.loads((out / "manifest.json").read_text())["warnings"]
    assert warnings[0] == (
        "horizon 400 days: only 0 of 150 patients of this cohort are followed that long in "
        "'days' (longest follow-up 350 days), so the risk by then cannot be checked: its "
        "calibration, AUC and observed risks are left out; the horizons up to "
        f"{reach:.0f} days are checkable")
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["horizons"]["not_checkable"] == {"400": 0}
    assert list(metrics["calibration"]["horizons"]) == ["100"]
    assert list(metrics["td_auc_by_horizon"]) == ["100"]
    assert metrics["evaluation"]["uno_c_tau"] == 100
    html = (out / "report.html").read_text().replace("&#39;", "'")
    assert f"<li>{warnings[0]}</li>" in html
    assert "not checkable (only 0 patients followed this long)" in html
    assert "By 100 days, " in html
    assert "By 400 days" not in html


def test_an_external_cohort_followed_shorter_than_every_horizon_is_refused(developed, tmp_path):
    external = _external().assign(days=lambda f: f["days"].clip(upper=90))
    with pytest.raises(PermedError, match=r"^no horizon of the model \(100 days, 400 days\) is "
                                          r"reached by 20 patients of this cohort in 'days' "
                                          r"\(longest follow-up 90 days\): its risks cannot be "
                                          r"checked here; evaluate on a cohort followed longer$"):
        _evaluate(developed, external, tmp_path)


def test_an_external_cohort_in_another_time_unit_is_warned_about(developed, tmp_path):
    external = _external()
    external["days"] = external["days"] * 30  # as if in a unit 30 times shorter
    out = _evaluate(developed, external, tmp_path)
    development = json.loads((developed / "metrics.json").read_text())["outcome"]
    ratio = np.median(external["days"]) / development["median_follow_up"]
    assert json.loads((out / "manifest.json").read_text())["warnings"] == [
        f"the median follow-up in 'days' is {np.median(external['days']):.0f} in this cohort "
        f"against {development['median_follow_up']:.0f} days in development ({ratio:.3g} times "
        "as long): time unit? The model reads 'days' in days: convert the times and evaluate "
        "again"]


def test_external_patients_outside_the_training_range_are_counted(developed, tmp_path):
    external = _external()
    external.loc[:29, "age"] = 130
    out = _evaluate(developed, external, tmp_path)
    assert json.loads((out / "manifest.json").read_text())["warnings"] == [
        "30 of 150 patients (20%) have values outside the training range or categories unseen "
        "in training (age (30)): their risks are extrapolated (see out_of_range in permed "
        "predict)"]
    assert json.loads((out / "metrics.json").read_text())["data"]["out_of_range_rows"] == 30


def test_an_external_feature_the_site_does_not_record_is_named(developed, tmp_path):
    out = _evaluate(developed, _external().assign(age=np.nan), tmp_path)
    assert json.loads((out / "manifest.json").read_text())["warnings"] == [
        "column 'age' is empty for all 150 patients, against 0% missing in development: its "
        "values were filled in from the development patients, so the risks and figures are "
        "those of a model without 'age'; record 'age' at this site, or train a model without "
        "it"]


def test_an_external_cohort_without_the_sensitive_column_is_warned_about(tmp_path):
    _cohort().to_csv(tmp_path / "cohort.csv", index=False)
    study = Study(task="risk", id="pid", time="days", event="status", sensitive=["sex"])
    run = train_run(tmp_path / "cohort.csv", study,
                    TrainConfig(models=["coxph"], n_boot=100, cv=3, horizons=[100, 400],
                                event_value="dead"), tmp_path / "run")
    out = _evaluate(run, _external().drop(columns="sex"), tmp_path)
    assert json.loads((out / "manifest.json").read_text())["warnings"] == [
        "sensitive column 'sex' is not in the cohort: no fairness audit at this site; add the "
        "column to audit it"]
    assert json.loads((out / "metrics.json").read_text())["fairness"]["not_in_cohort"] == ["sex"]


def test_external_duplicated_ids_are_warned_about(developed, tmp_path):
    external = _external()
    external.loc[5, "pid"] = external.loc[4, "pid"]
    out = _evaluate(developed, external, tmp_path)
    assert json.loads((out / "manifest.json").read_text())["warnings"] == [
        "id column 'pid' has 1 duplicated id (rows 5 and 6 share one): each row is evaluated as "
        "a patient of its own, so a patient recorded twice counts twice in the figures; remove "
        "the repeated rows (or correct the ids) and evaluate again"]


def test_an_external_feature_in_another_unit_is_asked_about(developed, tmp_path):
    external = _external()
    external["age"] = external["age"] * 12  # in months
    out = _evaluate(developed, external, tmp_path)
    [named] = [w for w in json.loads((out / "manifest.json").read_text())["warnings"]
               if w.startswith("column ")]
    assert named.startswith("column 'age': 150 of 150 values (100%) lie outside the "
                            "development range ")
    assert named.endswith(": a different unit? Convert 'age' to the development unit and run "
                          "again; as they are, the risks are extrapolated")


def test_the_development_data_given_as_the_cohort_is_called_so(developed, tmp_path):
    from permed.workflow import evaluate_run

    out = evaluate_run(developed, developed.parent / "cohort.csv", tmp_path / "same", n_boot=100)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["external"]["development_data"] is True
    warnings = json.loads((out / "manifest.json").read_text())["warnings"]
    assert warnings[0].startswith(f"'cohort.csv' is the data the run '{developed}' was "
                                  "developed on (the same file fingerprint), not an external "
                                  "cohort")
    assert "These are the development data, not an external cohort" in (
        out / "report.html").read_text()


def test_external_predictions_keep_the_patient_id_as_train_does(developed, tmp_path):
    external = _external()
    out = _evaluate(developed, external, tmp_path)
    predictions = pd.read_csv(out / "predictions.csv")
    trained = pd.read_csv(developed / "predictions.csv")
    assert list(predictions.columns) == list(trained.columns)
    assert list(predictions.columns[:3]) == ["row", "pid", "time"]
    assert predictions["pid"].tolist() == external["pid"].tolist()


@pytest.mark.parametrize(("change", "message"), [
    (lambda f: f.assign(status=(f["status"] == "dead").astype(int)),
     r"^event column 'status' has the values '0', '1', but the model was trained with event "
     r"value 'dead': the cohort must code the event the same way: recode 'status' so that "
     r"'dead' marks the event$"),
    (lambda f: f.rename(columns={"days": "Days"}),
     r"^the outcome column\(s\) 'days' \(did you mean 'Days'\? names are case-sensitive\) "
     r"are missing: evaluating a model needs each patient's recorded outcome"),
])
def test_an_external_outcome_unlike_training_is_refused_with_the_fix(developed, tmp_path,
                                                                     change, message):
    with pytest.raises(DataError, match=message):
        _evaluate(developed, change(_external()), tmp_path)


def test_a_model_trained_with_0_1_names_the_coding_an_external_cohort_needs(cohort, tmp_path):
    run = _train(cohort, tmp_path, models=["coxph"])
    named = cohort.assign(status=np.where(cohort["status"] == 1, "dead", "alive"))
    with pytest.raises(DataError, match=r"^event column 'status' has values other than 0/1: "
                                        r"'alive' \(\d+\), 'dead' \(\d+\); the model was trained "
                                        r"with 1 = event and 0 = censored \(or True/False\), and "
                                        r"the cohort must code the event the same way: recode "
                                        r"'status'$"):
        _evaluate(run, named, tmp_path)


def test_a_median_survival_few_development_patients_reach_is_left_empty(developed):
    model, _ = load_bundle(developed)
    metrics = json.loads((developed / "metrics.json").read_text())
    test_rows = pd.read_csv(developed / "predictions.csv")["row"]
    development = _cohort().drop(index=test_rows)["days"].to_numpy()
    assert model.median_limit == np.sort(development)[::-1][19]  # 20 patients reach it
    assert metrics["outcome"]["median_survival_limit"] == model.median_limit
    frame = _cohort()
    median = model.median_survival(frame)
    assert np.nanmax(median) <= model.median_limit
    vars(model).pop("median_limit")  # a bundle written before the limit: as before
    unlimited = model.median_survival(frame)
    beyond = unlimited > np.sort(development)[::-1][19]
    assert beyond.sum() > 0
    assert np.isnan(median[beyond]).all()
    np.testing.assert_array_equal(median[~beyond], unlimited[~beyond])


@pytest.mark.parametrize(("value", "unit", "floor", "text"), [
    (6.455852156057495, "years", False, "6.46 years"),
    (6.455852156057495, "years", True, "6.45 years"),
    (1.0, "years", False, "1 year"),
    (2358.0, "days", False, "2358 days"),
    (3000.0, None, False, "3000"),
    (0.25, None, False, "0.25"),
])
def test_times_are_written_with_their_unit_and_three_digits(value, unit, floor, text):
    from permed.study._validate_risk import time_text

    assert time_text(value, unit, floor=floor) == text


def test_horizons_beyond_follow_up_name_the_unit(cohort, tmp_path):
    from permed.study import ColumnSpec

    years = cohort.assign(days=cohort["days"] / 365.25)
    study = Study(task="risk", time="days", event="status",
                  columns={"days": ColumnSpec(unit="years")})
    assert years["days"].max() == pytest.approx(12.227, abs=1e-3)
    with pytest.raises(DataError, match=r"^--horizons 20 is beyond the follow-up in 'days': the "
                                        r"longest follow-up is 12.2 years; choose horizons "
                                        r"below 12.2 years$"):
        _train(years, tmp_path, study=study, horizons=[1, 20])


@pytest.mark.parametrize(("horizons", "reasons"), [
    ((1,), ["comes before 99% of the events (1st percentile of the event times: {early})",
           "is under 1% of the median follow-up ({median})"]),
    ((3,), ["is under 1% of the median follow-up ({median})"]),  # WHAS500's 1,3,5 in days
    ((1, 100), []),
])
def test_horizons_in_another_unit_than_the_times_are_warned_about(cohort, horizons, reasons):
    from permed.study._validate import ValidationReport
    from permed.study._validate_risk import RiskOptions, check_risk

    frame = cohort.copy()
    frame.loc[frame.index[:2], ["days", "status"]] = [[2, 1], [2, 1]]  # 2 events on day 2
    report = ValidationReport()
    check_risk(frame, Study(task="risk", time="days", event="status"), report,
               RiskOptions(horizons=horizons))
    early = np.quantile(frame.loc[frame["status"] == 1, "days"], 0.01)
    assert early < 3
    median = np.median(frame["days"])
    shown = [r.format(early=f"{early:.3g}", median=f"{median:.0f}") for r in reasons]
    expected = [f"--horizons {', '.join(f'{h:g}' for h in horizons)}: every horizon "
                f"{' and '.join(shown)} in 'days', whose longest follow-up is "
                f"{frame['days'].max():.0f}: are the horizons in the time column's unit? They "
                "cover only the very start of the follow-up"] if reasons else []
    assert [w.message for w in report.warnings] == expected


def test_the_report_writes_horizons_with_their_unit(developed):
    from types import SimpleNamespace

    from permed.report._risk import _at

    html = (developed / "report.html").read_text()
    assert "Calibration at 100 days" in html
    assert "Risk by 400 days: predicted / observed" in html
    assert _at(SimpleNamespace(metrics={"outcome": {"time_unit": "years"}}), "1") == "1 year"
    assert _at(SimpleNamespace(metrics={"outcome": {}}), "1") == "1"
