"""Report wording of treat runs, and the outcome column of the risk fairness table."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from permed.report import render_report
from permed.report._card import model_card_section
from permed.report._fairness import fairness_section
from permed.report._html import RunFiles, Table, data_section
from permed.report._treat import (
    CONTRASTS_TITLE,
    VALUE_TITLE,
    heterogeneity_section,
    outcomes_section,
    treat_summary,
    value_section,
)
from permed.report._tripod import tripod_items

ARMS = ["ZDV", "ZDV+ddI", "ZDV+ddC", "ddI"]


def _ci(value: float, low: float, high: float) -> dict[str, float]:
    return {"value": value, "ci_low": low, "ci_high": high}


def _treat_metrics(kind: str = "continuous", qini: bool = False) -> dict:
    """metrics.json of a four-arm randomized treat run shaped like ACTG 175."""
    test = {"policy_value": _ci(403.4, 375.8, 428.2), "policy_gain": _ci(0.0, 0.0, 0.0),
            "ate": _ci(74.7, 47.8, 104.2)}
    if qini:
        test["qini"] = _ci(1.2, 0.1, 2.3)
    group = {"n": 365, "too_small": False, "policy_value": _ci(398.1, 367.3, 426.1),
             "policy_gain": _ci(0.0, 0.0, 0.0)}
    binary = kind == "binary"
    return {
        "task": "treat",
        "data": {"rows": 2139, "columns": 27, "fingerprint": "sha256:" + "ab12" * 16,
                 "source": "actg.csv", "development_rows": 1711, "test_rows": 428},
        "target": {"column": "cd420"},
        "treatment": {"column": "arm", "arms": ARMS, "reference": "ZDV",
                      "counts": dict(zip(ARMS, [532, 522, 524, 561], strict=True)),
                      "assignment": "randomized (--randomized): propensities are the arm shares"},
        "outcome": {"column": "cd420", "kind": kind, "coded_1": "1" if binary else None,
                    "higher_is_better": True,
                    "mean_by_arm": dict(zip(ARMS, [0.21, 0.35, 0.3, 0.28] if binary else
                                            [336.1, 403.2, 372.0, 374.3], strict=True)),
                    "sd_by_arm": {} if binary else dict(zip(ARMS, [131.0, 156.3, 135.0, 147.4],
                                                            strict=True))},
        "selected_model": "dr_learner",
        "selection": {"metric": "dr_loss", "folds": 3, "rule": "lowest mean DR loss"},
        "test": test,
        "policy": {
            "value_by_arm": dict(zip(ARMS, [_ci(328.6, 307.4, 344.2), _ci(403.4, 375.8, 428.2),
                                            _ci(361.7, 336.3, 386.2), _ci(368.4, 344.4, 394.4)],
                                     strict=True)),
            "best_single_arm": "ZDV+ddI",
            "best_single_arm_chosen_on": "the development patients' mean out-of-fold "
                                         "doubly-robust (AIPW) score of each arm, before the "
                                         "test split is looked at",
            "development_value_by_arm": dict(zip(ARMS, [333.7, 406.1, 372.7, 377.0],
                                                 strict=True)),
            "best_arm_share": dict(zip(ARMS, [0.0, 0.981, 0.0, 0.019], strict=True)),
            "recommendation_share": {"no clear difference": 0.986, "ZDV+ddI": 0.014},
            "policy_arm_share": dict(zip(ARMS, [0.0, 1.0, 0.0, 0.0], strict=True)),
            "policy_rule": "each patient gets the recommended arm where it is clear",
            "best_estimate_policy": {"rule": "best point estimate",
                                     "value": _ci(396.7, 372.8, 425.4),
                                     "gain": _ci(-6.7, -12.2, -1.4)}},
        "ate_by_arm": {"ZDV+ddI": _ci(74.7, 47.8, 104.2), "ZDV+ddC": _ci(33.1, 3.7, 68.0),
                       "ddI": _ci(39.7, 9.8, 70.5)},
        "ate_comparison": "ZDV+ddI vs ZDV",
        "ate_comparison_chosen_on": "the non-reference arm ranked best by the development "
                                    "patients' mean out-of-fold doubly-robust (AIPW) score",
        "cv": {"dr_learner": {"dr_loss": {"mean": 1.0, "std": 0.1}}},
        "bootstrap": {"replicates": 100, "confidence": 0.95,
                      "method": "percentile, stratified by arm", "seed": 42},
        "fairness": {"attributes": {"sex": {"groups": {"F": {**group, "n": 63}, "M": group},
                                            "disparities": {}, "flags": []}},
                     "min_group_size": 30, "max_gap": None,
                     "note": "Per group: the value of following permed."},
    }


def _predictions(n: int = 10) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"row": 1170 + np.arange(n), "arm_received": rng.choice(ARMS, n),
                          "y_true": rng.normal(350, 100, n)})
    for arm in ARMS:
        frame[f"outcome_{arm}"] = rng.normal(350, 30, n)
        frame[f"outcome_{arm}_low"] = frame[f"outcome_{arm}"] - 40
        frame[f"outcome_{arm}_high"] = frame[f"outcome_{arm}"] + 40
    frame["recommended"] = "no clear difference"
    frame["candidates"] = "ZDV+ddI;ddI"
    return frame


def _run(metrics: dict, predictions: pd.DataFrame | None = None) -> RunFiles:
    schema = {"task": "treat", "target": "cd420", "features": [
        {"name": "age", "kind": "numeric"}, {"name": "cd40", "kind": "numeric"},
        {"name": "sex", "kind": "categorical"}]}
    manifest = {"seed": 42, "config": {"test_size": 0.2, "cv": 3}}
    return RunFiles(Path("run"), metrics, manifest, schema, predictions)


def _item(run: RunFiles, topic: str) -> str:
    return next(i.recorded for i in tripod_items(run) if i.topic.startswith(topic))


def _tables(section) -> list[Table]:
    return [b for b in section.blocks if isinstance(b, Table)]


def test_tripod_outcome_of_a_continuous_treat_outcome_names_arms_means_and_sds():
    run = _run(_treat_metrics())
    assert _item(run, "Outcome") == (
        "Column 'cd420', continuous; higher is better. Treatment column 'arm', reference arm "
        "'ZDV'. By arm (all rows): ZDV: 532 patients, mean 336.1 (SD 131.0); ZDV+ddI: 522 "
        "patients, mean 403.2 (SD 156.3); ZDV+ddC: 524 patients, mean 372.0 (SD 135.0); ddI: "
        "561 patients, mean 374.3 (SD 147.4).")


def test_tripod_outcome_of_a_binary_treat_outcome_gives_the_share():
    outcome = _item(_run(_treat_metrics("binary")), "Outcome")
    assert outcome.startswith("Column 'cd420', binary (coded 1 = '1'); higher is better.")
    assert "ZDV: 532 patients, 21.0% with cd420 = 1" in outcome
    assert "classes" not in outcome


def test_tripod_sample_size_of_a_treat_run_counts_patients_not_events():
    size = _item(_run(_treat_metrics()), "Sample size")
    assert size == ("1,711 development patients and 3 candidate predictors (570.3 development "
                    "patients per predictor); 428 held out. Patients per arm (all rows): ZDV: "
                    "532, ZDV+ddI: 522, ZDV+ddC: 524, ddI: 561.")


@pytest.mark.parametrize(("qini", "named"), [(False, "(policy value, policy gain)"),
                                             (True, "(policy value, policy gain, Qini)")])
def test_tripod_calibration_names_only_the_figures_computed(qini, named):
    calibration = _item(_run(_treat_metrics(qini=qini)), "Calibration")
    assert calibration.endswith(f"in '{VALUE_TITLE}' {named}.")
    assert ("Qini" in calibration) is qini


def test_model_card_and_tripod_point_to_the_treat_value_section():
    run = _run(_treat_metrics())
    card = dict(_tables(model_card_section(run))[0].rows)
    assert card["Metrics"].endswith(f"Full tables in '{VALUE_TITLE}'.")
    assert _item(run, "Model performance").endswith(f"in '{VALUE_TITLE}'.")


def test_treat_fairness_section_has_no_gap_or_prevalence_wording():
    section = fairness_section(_run(_treat_metrics()))
    intro = section.blocks[0].text
    assert intro == ("The value of following permed's recommendation is compared between the "
                     "groups of each sensitive attribute. Groups with fewer than 30 patients "
                     "are marked too small.")
    table = _tables(section)[0]
    assert table.header == ["Group", "Patients", "Policy value", "Policy gain", "Note"]


def test_risk_fairness_table_counts_observed_events_not_a_prevalence():
    group = {"n": 200, "prevalence": 0.25, "c_index": _ci(0.7, 0.65, 0.75), "too_small": False}
    metrics = {"task": "risk", "fairness": {
        "attributes": {"sex": {"groups": {"F": group, "M": {**group, "prevalence": 0.4}},
                               "disparities": {"c_index_gap": _ci(0.0, 0.0, 0.05)},
                               "flags": []}},
        "min_group_size": 20, "max_gap": 0.1, "note": "Harrell's C per group"}}
    section = fairness_section(_run(metrics))
    assert "a gap larger than 0.10 between groups raises a flag" in section.blocks[0].text
    table = _tables(section)[0]
    assert table.header[:3] == ["Group", "Patients", "Events observed (share)"]
    assert [row[2] for row in table.rows] == ["50 (25.0%)", "80 (40.0%)"]
    assert "censored patients count as without the event" in table.caption


def test_diagnose_fairness_table_keeps_its_prevalence():
    group = {"n": 60, "prevalence": 0.6, "auroc": _ci(0.9, 0.8, 0.95), "too_small": False}
    metrics = {"task": "diagnose", "fairness": {
        "attributes": {"sex": {"groups": {"F": group}, "disparities": {}, "flags": []}},
        "min_group_size": 20, "max_gap": 0.1}}
    table = _tables(fairness_section(_run(metrics)))[0]
    assert table.header[:3] == ["Group", "Patients", "Prevalence"]
    assert table.rows[0][2] == "60.0%"


def test_value_section_states_the_development_choices_and_the_followed_policy():
    run = _run(_treat_metrics())
    section = value_section(run)
    text = " ".join(getattr(b, "text", "") for b in section.blocks)
    assert ("the best single arm (ZDV+ddI, chosen on the development patients' mean "
            "out-of-fold doubly-robust (AIPW) score of each arm") in text
    assert "Policy gain is measured against giving everyone ZDV+ddI" in text
    assert ("The average treatment effect compares ZDV+ddI vs ZDV: the non-reference arm "
            "ranked best by the development patients'") in text
    policies = _tables(section)[1]
    assert [row[0] for row in policies.rows][-2:] == [
        "follow permed's recommendation", "each patient gets their best point estimate"]
    assert policies.rows[-2][2] == "clear recommendation, else ZDV+ddI"
    assert policies.rows[-1][2] == "ignores uncertainty; for comparison only"
    shares = _tables(section)[2]
    assert shares.header[-1] == "Given when following permed"
    assert shares.rows[1] == ["ZDV+ddI", "98.1%", "1.4%", "100.0%"]


def test_summary_compares_with_the_development_choice():
    summary = treat_summary(_run(_treat_metrics()))
    assert ("following the recommendation of the selected model (dr_learner), with ZDV+ddI "
            "where it cannot rank the arms for the patient, gives an estimated mean cd420 of "
            "403.4 (375.8\u2013428.2), against 403.4 (375.8\u2013428.2) if everyone received the "
            "best single arm (ZDV+ddI, chosen on the development patients): a gain of 0.0 "
            "(0.0\u20130.0)") in summary
    # every patient gets the best single arm: the gain is not an estimate, and says so
    assert ("Following permed gives every held-out patient ZDV+ddI, the best single arm, so "
            "the gain is 0 by construction: no recommendation differs from giving everyone "
            "ZDV+ddI.") in summary
    metrics = _treat_metrics()
    metrics["policy"]["policy_arm_share"] = dict(zip(ARMS, [0.1, 0.9, 0.0, 0.0], strict=True))
    assert "by construction" not in treat_summary(_run(metrics))


def test_an_older_run_without_the_choice_says_it_was_in_sample():
    metrics = _treat_metrics()
    del metrics["policy"]["best_single_arm_chosen_on"]
    assert "in-sample, so the comparison is optimistic" in treat_summary(_run(metrics))


def test_rendered_treat_report_prints_row_numbers_without_a_separator(tmp_path):
    run = _run(_treat_metrics())
    (tmp_path / "model").mkdir()
    (tmp_path / "metrics.json").write_text(json.dumps(run.metrics), encoding="utf-8")
    (tmp_path / "manifest.json").write_text(json.dumps(run.manifest), encoding="utf-8")
    (tmp_path / "model" / "schema.json").write_text(json.dumps(run.schema), encoding="utf-8")
    _predictions().to_csv(tmp_path / "predictions.csv", index=False)
    html = render_report(tmp_path)
    caption = html.index("The first 8 held-out patients")
    first_rows = html[html.rindex("<table", 0, caption):html.index("</table>", caption)]
    cells = re.findall(r"<th scope=\"row\">([^<]*)</th>", first_rows)
    assert cells[:3] == ["1170", "1171", "1172"]
    assert "between groups raises a flag" not in html
    assert "Prevalence" not in html


def test_an_example_patient_row_number_has_no_thousands_separator():
    from permed.report._explain import _examples

    table = _examples({"patients": [{"row": 1176, "prediction": 0.4, "base_value": 0.3,
                                     "text": "age 40 raises it"}]}, "probability", {})
    assert table.rows[0][0] == "1176"


def test_summary_says_an_unclear_recommendation_is_not_equivalence_of_the_arms():
    summary = treat_summary(_run(_treat_metrics()))
    assert ("For 99% of these patients the data cannot rank the arms for the individual "
            "patient at the 95% level (per-patient intervals, not adjusted for the 4 arms "
            "compared). That does not make the arms equivalent: a difference between arms can "
            "be clear over all patients while the recommendation for each patient is not.") in (
        summary)
    assert "no arm is clearly better than the others" not in summary


def _contrast_metrics() -> dict:
    metrics = _treat_metrics()
    metrics["test"]["arm_contrasts"] = {
        "ZDV+ddI vs ZDV": _ci(74.7, 47.8, 104.2), "ZDV+ddI vs ZDV+ddC": _ci(41.6, 12.3, 70.2),
        "ZDV+ddI vs ddI": _ci(35.0, 6.1, 63.0), "ZDV+ddC vs ZDV": _ci(33.1, 3.7, 68.0),
        "ddI vs ZDV": _ci(39.7, 9.8, 70.5), "ddI vs ZDV+ddC": _ci(6.6, -22.0, 35.1)}
    return metrics


def test_differences_between_arms_are_a_table_of_their_own():
    section = value_section(_run(_contrast_metrics()))
    table = next(t for t in _tables(section) if t.caption == CONTRASTS_TITLE)
    assert table.header == ["Arms compared", "Difference in mean cd420 (95% CI)",
                            "Clear (CI excludes 0)"]
    assert table.rows[0] == ["ZDV+ddI vs ZDV", "74.7 (47.8\u2013104.2)", "yes"]
    assert table.rows[-1] == ["ddI vs ZDV+ddC", "6.6 (-22.0 to 35.1)", "no"]
    text = " ".join(getattr(b, "text", "") for b in section.blocks)
    assert ("A difference between arms can be clear over all patients while the "
            "recommendation for each individual patient is not") in text
    # not a row of the test figures' table
    assert all(row[0] != "Arm contrasts" for row in _tables(section)[0].rows)
    assert ("over all held-out patients, 5 of the 6 differences between two arms are clear "
            f"(95% CI excluding 0; see '{CONTRASTS_TITLE}').") in treat_summary(
        _run(_contrast_metrics()))


def test_a_run_without_differences_between_arms_shows_no_such_table():
    section = value_section(_run(_treat_metrics()))
    assert all(t.caption != CONTRASTS_TITLE for t in _tables(section))
    assert CONTRASTS_TITLE not in " ".join(getattr(b, "text", "") for b in section.blocks)


def test_per_patient_section_says_no_clear_difference_is_not_equivalence():
    section = outcomes_section(_run(_treat_metrics(), _predictions()))
    assert ("'no clear difference' means the data cannot rank these arms for this patient at "
            "the 95% level, not that the arms are equivalent. The intervals are per "
            "comparison, not adjusted for the number of arms compared.") in section.blocks[0].text


def test_the_error_row_of_simulated_data_names_the_mean_per_patient_effect():
    metrics = _treat_metrics()
    metrics["test"]["ate_error"] = _ci(0.1, 0.03, 0.16)
    rows = _tables(value_section(_run(metrics)))[0].rows
    row = next(r for r in rows if r[1] == "0.1 (0.0\u20130.2)")
    assert row[0] == "Error of the mean per-patient effect"
    assert row[2].endswith("It is not the error of the doubly-robust average treatment effect "
                           "shown above.")


def test_model_card_states_the_uncertainty_of_a_treat_run():
    card = dict(_tables(model_card_section(_run(_treat_metrics())))[0].rows)
    assert card["Uncertainty"] == (
        "Every patient's expected cd420 under each arm, and the advantage of the best arm over "
        "its closest competitor, come with a 95% confidence interval (refits of the model on "
        "arm-stratified bootstrap resamples of the development patients), each for one "
        "comparison (not adjusted for the 4 arms). An arm is recommended only when the "
        "interval of its advantage is above 0, otherwise 'no clear difference': 98.6% of test "
        "patients. Policy values, policy gain and average treatment effects have 95% CIs from "
        "100 bootstrap replicates of the held-out patients (percentile, stratified by arm). See "
        f"'Expected outcome under each arm, per patient' and '{VALUE_TITLE}'.")


def _heterogeneity(sd: float) -> dict:
    metrics = _treat_metrics()
    metrics["heterogeneity"] = {"method": "SHAP values of a LightGBM surrogate", "comparisons": {
        "ZDV+ddI vs ZDV": {"mean": 73.2, "sd": sd, "surrogate_r2": 0.927,
                           "importance": [{"feature": "age", "share": 0.6}]}}}
    return metrics


def _with_advantage(width: float) -> pd.DataFrame:
    frame = _predictions()
    frame["advantage"] = 30.0
    frame["advantage_low"] = 30.0 - np.linspace(width / 2 - 5, width / 2 + 5, len(frame))
    frame["advantage_high"] = 30.0 + width / 2
    return frame  # median width: `width`


@pytest.mark.parametrize(("sd", "verdict"), [
    (4.4, "The spread is smaller than the intervals, so it is not evidence that this effect "
          "differs between patients."),
    (20.0, "The spread is wider than the intervals: the effect may differ between patients "
           "(no formal test of this is made)."),
])
def test_heterogeneity_sets_the_spread_against_a_patient_interval(sd, verdict):
    section = heterogeneity_section(_run(_heterogeneity(sd), _with_advantage(60.0)))
    text = section.blocks[1].text
    assert text.startswith(f"ZDV+ddI vs ZDV: mean effect 73.2, standard deviation between "
                           f"patients {sd:.1f}; the middle 95% of patients' estimates span about "
                           f"{4 * sd:.1f}, while one held-out patient's 95% interval for a "
                           "difference between two arms is typically 60.0 wide (median). ")
    assert verdict in text
    assert text.endswith("The features explain 92.7% of the variation of the model's estimates "
                         "(cross-validated R\u00b2 of the surrogate fitted to them).")
    assert "the model's own estimates, not of the true effects" in section.blocks[0].text


def test_heterogeneity_without_per_patient_intervals_makes_no_comparison():
    text = heterogeneity_section(_run(_heterogeneity(4.4))).blocks[1].text
    assert text == ("ZDV+ddI vs ZDV: mean effect 73.2, standard deviation between patients 4.4. "
                    "The features explain 92.7% of the variation of the model's estimates "
                    "(cross-validated R\u00b2 of the surrogate fitted to them).")


@pytest.mark.parametrize(("shares", "sentence"), [
    ({"ZDV+ddI": 1.0}, "For every one of these patients one arm is clearly better than the "
                       "others at the 95% level (per-patient intervals, not adjusted for the 4 "
                       "arms compared). Following permed"),
    ({"no clear difference": 1.0}, "For none of these patients can the data rank the arms for "
                                   "the individual patient at the 95% level"),
    ({"no clear difference": 0.997, "ZDV+ddI": 0.003}, "For over 99% of these patients the data "
                                                       "cannot rank the arms"),
    ({"no clear difference": 0.003, "ZDV+ddI": 0.997}, "For under 1% of these patients the data "
                                                       "cannot rank the arms"),
])
def test_summary_of_all_or_no_clear_recommendations_says_so(shares, sentence):
    metrics = _treat_metrics()
    metrics["policy"]["recommendation_share"] = shares
    summary = treat_summary(_run(metrics))
    assert sentence in summary
    assert "0% of these patients" not in summary
    assert "every one of them" not in summary
    card = dict(_tables(model_card_section(_run(metrics)))[0].rows)
    assert (f"otherwise 'no clear difference': {shares.get('no clear difference', 0):.1%} of "
            "test patients.") in card["Uncertainty"]
    assert ("That does not make the arms equivalent" in summary) is ("ZDV+ddI" not in shares
                                                                     or shares["ZDV+ddI"] < 1)


def _left_out_metrics(missing: int, trimmed: int = 0) -> dict:
    metrics = _treat_metrics()  # 2,139 rows read
    metrics["data"].update(development_rows=2139 - 400 - missing - trimmed, test_rows=400)
    metrics["trim"] = {"threshold": 0.05 if trimmed else 0.0, "dropped_development": trimmed,
                       "dropped_test": 0}
    return metrics


@pytest.mark.parametrize("trimmed", [0, 31])  # patients --trim dropped are not "missing"
def test_patients_left_out_for_a_missing_outcome_or_arm_are_counted(trimmed):
    run = _run(_left_out_metrics(missing=139, trimmed=trimmed))
    sentence = ("139 of the 2,139 patients read had no recorded outcome or arm and were left out "
                "before the split (see the warnings).")
    assert sentence in value_section(run).blocks[0].text
    card = dict(_tables(model_card_section(run))[0].rows)
    assert card["Training and evaluation data"].endswith(
        f"{1600 - trimmed:,} for development, 400 held out. " + sentence)
    assert sentence in data_section(run).blocks[0].text
    complete = _run(_left_out_metrics(missing=0, trimmed=trimmed))
    assert "no recorded outcome" not in value_section(complete).blocks[0].text
    assert "no recorded outcome" not in data_section(complete).blocks[0].text


def test_a_two_arm_run_has_no_multiplicity_caveat():
    metrics = _treat_metrics()
    metrics["treatment"]["arms"] = ARMS[:2]
    text = outcomes_section(_run(metrics, _predictions())).blocks[0].text
    assert "not that the arms are equivalent. `permed predict" in text
    assert "adjusted" not in text


def test_patients_outside_the_data_are_counted_in_the_summary_and_the_share_table():
    metrics = _treat_metrics()
    metrics["policy"]["recommendation_share"] = {"ZDV+ddI": 0.9, "outside the data": 0.1}
    summary = treat_summary(_run(metrics))
    assert ("10% of these patients lie outside the data: an arm was never given to development "
            "patients like them, so no arm is recommended for them ('outside the data'). For "
            "every other patient one arm is clearly better") in summary
    rows = [t.rows for t in _tables(value_section(_run(metrics, _predictions())))
            if t.caption == "Share of held-out patients"][0]
    assert rows[-1][:3] == ["outside the data", "—", "10.0%"]
