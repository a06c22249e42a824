"""The HTML model report, rendered from synthetic run directories (docs/run-directory.md)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from permed.exceptions import BundleError
from permed.report import render_markdown, render_report, write_report
from permed.report._html import fmt_ci, fmt_mean_std, fmt_num, register_sections, task_sections
from permed.report._plots import net_benefit
from permed.report._tripod import development_events

PNG = '<img src="data:image/png;base64,'
COMMON_HEADINGS = [
    "Data: the patients the model learned from",
    "Model comparison (cross-validation)",
    "Fairness across patient groups",
    "TRIPOD+AI reporting checklist",
    "How to reproduce this run",
]
DIAGNOSE_HEADINGS = [
    "Performance on held-out patients",
    "Calibration: do predicted risks match what happened?",
    "Decision threshold",
]


def _ci(value: float, low: float, high: float) -> dict[str, float]:
    return {"value": value, "ci_low": low, "ci_high": high}


def _fairness() -> dict[str, object]:
    group = {"n": 60, "prevalence": 0.6, "auroc": _ci(0.95, 0.9, 0.99),
             "sensitivity": _ci(0.9, 0.8, 0.97), "specificity": _ci(0.85, 0.7, 0.95),
             "ppv": _ci(0.9, 0.8, 0.96), "ece": _ci(0.05, 0.02, 0.09),
             "selection_rate": _ci(0.62, 0.5, 0.74), "too_small": False}
    small = {**group, "n": 12, "auroc": {"value": None, "ci_low": None, "ci_high": None},
             "too_small": True}
    return {
        "attributes": {"sex": {
            "groups": {"female": group, "male": {**group, "n": 54}},
            "disparities": {"equalized_odds_difference": _ci(0.14, 0.03, 0.27),
                            "demographic_parity_difference": _ci(0.04, 0.0, 0.12),
                            "auroc_gap": _ci(0.02, 0.0, 0.06), "calibration_gap": None},
            "flags": ["equalized odds difference 0.14 > 0.10 between female and male",
                      "auroc gap for 'sex' is undefined"]}},
        "intersections": {"sex x age_group": {
            "groups": {"female & <50": small, "male & >=50": group},
            "disparities": {"auroc_gap": {"value": None, "ci_low": None, "ci_high": None}},
            "flags": []}},
        "min_group_size": 20, "max_gap": 0.1,
        "note": "Differences are computed on the test patients only.",
    }


def _predictions(classes: list[str], n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, len(classes), size=n)
    logits = rng.normal(size=(n, len(classes)))
    logits[np.arange(n), y] += 2.0  # informative but imperfect
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    frame = pd.DataFrame({"row": np.arange(n), "y_true": [classes[k] for k in y]})
    for k, label in enumerate(classes):
        frame[f"prob_{label}"] = proba[:, k]
    frame["predicted"] = [classes[k] for k in proba.argmax(axis=1)]
    return frame


def _metrics(classes: list[str], predictions: pd.DataFrame, fairness: dict[str, object]) -> dict:
    test_counts = predictions["y_true"].value_counts()
    matrix = pd.crosstab(predictions["y_true"], predictions["predicted"]).reindex(
        index=classes, columns=classes, fill_value=0)
    metrics = {
        "task": "diagnose",
        "data": {"rows": 569, "columns": 6, "fingerprint": "sha256:" + "ab12" * 16,
                 "source": "bc.csv", "development_rows": 569 - len(predictions),
                 "test_rows": len(predictions)},
        "target": {"column": "disease", "classes": classes, "positive_class": classes[-1],
                   "counts": {c: int(test_counts.get(c, 0)) * 5 for c in classes}},
        "selected_model": "lightgbm",
        "selection": {"metric": "auroc", "folds": 5, "rule": "highest mean CV AUROC"},
        "test": {"auroc": _ci(0.931, 0.889, 0.962), "auprc": _ci(0.9, 0.85, 0.95),
                 "accuracy": _ci(0.88, 0.82, 0.93), "sensitivity": _ci(0.9, 0.82, 0.96),
                 "specificity": _ci(0.85, 0.74, 0.93), "ppv": _ci(0.88, 0.8, 0.94),
                 "npv": _ci(0.87, 0.77, 0.94), "f1": _ci(0.89, 0.83, 0.93),
                 "brier": _ci(0.071, 0.052, 0.093), "ece": _ci(0.04, 0.02, 0.07),
                 "calibration_slope": _ci(0.95, 0.7, 1.2),
                 "calibration_intercept": _ci(-0.05, -0.3, 0.2)},
        "cv": {"logistic": {"auroc": {"mean": 0.92, "std": 0.02}, "brier": {"mean": 0.08,
                                                                            "std": 0.01}},
               "lightgbm": {"auroc": {"mean": 0.94, "std": 0.015}, "brier": {"mean": 0.07,
                                                                             "std": 0.01}}},
        "confusion_matrix": {"labels": classes, "matrix": matrix.to_numpy().tolist()},
        "calibration": {"method": "isotonic",
                        "chosen_by": "cross-fitted Brier score on out-of-fold predictions",
                        "candidates": {"none": {"brier": 0.08, "ece": 0.06},
                                       "sigmoid": {"brier": 0.075, "ece": 0.05},
                                       "isotonic": {"brier": 0.07, "ece": 0.04}},
                        "test_uncalibrated": {"brier": 0.079, "ece": 0.061}},
        "threshold": {"value": 0.42, "rule": "youden", "target_sensitivity": None},
        "bootstrap": {"replicates": 1000, "confidence": 0.95, "method": "stratified percentile",
                      "seed": 42},
        "fairness": fairness,
        "timings": {"cv": 10.2, "final_fit": 1.1},
    }
    if len(classes) > 2:
        metrics["per_class"] = {c: {"auroc": _ci(0.9, 0.85, 0.95), "sensitivity": None}
                                for c in classes}
        metrics["threshold"] = None
    return metrics


def _write_run(path: Path, classes: list[str], fairness: dict[str, object],
               external: bool = False) -> Path:
    predictions = _predictions(classes, 114)
    metrics = _metrics(classes, predictions, fairness)
    if external:
        metrics["external"] = {"run": "runs/heart",
                               "development_fingerprint": "sha256:" + "cd34" * 16}
    manifest = {
        "permed_version": "0.1.0", "created": "2026-11-28T14:05:00Z",
        "command": "permed train bc.csv --task diagnose --target disease --sensitive sex --out run",
        "seed": 42, "data": {"path": "bc.csv", "fingerprint": metrics["data"]["fingerprint"],
                             "rows": 569, "columns": 6},
        "config": {"task": "diagnose", "target": "disease", "models": ["logistic", "lightgbm"],
                   "cv": 5, "test_size": 0.2, "seed": 42, "budget": 0, "sensitive": ["sex"],
                   "drop": [], "target_sensitivity": None},
        "packages": {"python": "3.11.7", "permed": "0.1.0", "numpy": "2.1.0"},
        "timings": {"validate": 0.1, "cv": 10.2, "final_fit": 1.1, "test": 0.8},
    }
    schema = {"task": "diagnose", "target": "disease", "classes": classes, "id": None,
              "sensitive": ["sex"], "features": [
                  {"name": "age", "kind": "numeric", "min": 29.0, "max": 77.0,
                   "missing_share": 0.0, "unit": "years", "valid_range": None},
                  {"name": "radius", "kind": "numeric", "min": 6.98, "max": 28.1,
                   "missing_share": 0.02, "unit": None, "valid_range": None},
                  {"name": "thal", "kind": "categorical", "categories": ["3.0", "6.0", "7.0"],
                   "missing_share": 0.007}]}
    path.mkdir(parents=True, exist_ok=True)
    (path / "model").mkdir(exist_ok=True)
    (path / "metrics.json").write_text(json.dumps(metrics), encoding="utf-8")
    (path / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    (path / "model" / "schema.json").write_text(json.dumps(schema), encoding="utf-8")
    predictions.to_csv(path / "predictions.csv", index=False)
    return path


@pytest.fixture
def binary_run(tmp_path: Path) -> Path:
    return _write_run(tmp_path / "binary", ["0", "1"], _fairness())


@pytest.fixture
def multiclass_run(tmp_path: Path) -> Path:
    return _write_run(tmp_path / "multi", ["a", "b", "c"], {})


@pytest.fixture(scope="module")
def binary_html(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Rendered once: drawing the plots is the slow part of a report."""
    return render_report(_write_run(tmp_path_factory.mktemp("run") / "binary", ["0", "1"],
                                    _fairness()))


@pytest.fixture(scope="module")
def multiclass_html(tmp_path_factory: pytest.TempPathFactory) -> str:
    return render_report(_write_run(tmp_path_factory.mktemp("run") / "multi", ["a", "b", "c"],
                                    {}))


def _external_urls(html: str) -> list[str]:
    return re.findall(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", html, flags=re.I)


@pytest.mark.parametrize("rendered", ["binary_html", "multiclass_html"])
def test_report_has_every_section_and_is_self_contained(request, rendered):
    html = request.getfixturevalue(rendered)  # binary: fairness filled; multiclass: empty
    for heading in COMMON_HEADINGS + DIAGNOSE_HEADINGS:
        assert f"<h2>{heading}</h2>" in html
    assert "<title>permed model report \u2014 diagnose: disease</title>" in html
    assert _external_urls(html) == []
    assert "<link" not in html
    assert "<script" not in html
    assert "@import" not in html
    assert "url(" not in html


def test_binary_report_has_plots_cis_and_summary(binary_html):
    html = binary_html
    assert html.count(PNG) >= 5  # ROC, PR, calibration, decision curve, confusion matrix
    assert "0.931 (0.889\u20130.962)" in html
    assert "On 114 held-out patients the selected model (lightgbm) reached AUROC " \
           "0.931 (0.889\u20130.962)." in html
    assert "-0.05 (-0.30 to 0.20)" in html  # a negative bound spells the range out
    assert "lightgbm \u2714 selected" in html
    assert "0.940 \u00b1 0.015" in html
    assert "highest mean CV AUROC" in html
    assert "Decision curve" in html
    assert "isotonic regression \u2714 chosen" in html
    assert "Youden&#39;s index" in html
    assert plt.get_fignums() == []


def test_header_lists_the_runs_warnings_and_a_chance_level_model(tmp_path):
    run = _write_run(tmp_path / "weak", ["0", "1"], {})
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["warnings"] = ["column 'admitted' holds dates (e.g. '1/13/1997'): it is left out"]
    (run / "manifest.json").write_text(json.dumps(manifest))
    metrics = json.loads((run / "metrics.json").read_text())
    metrics["test"]["auroc"] = _ci(0.577, 0.318, 0.824)
    (run / "metrics.json").write_text(json.dumps(metrics))
    html = render_report(run)
    assert "Warnings (2)</strong>" in html
    assert "<li>column &#39;admitted&#39; holds dates (e.g. &#39;1/13/1997&#39;): it is left " \
           "out</li>" in html
    assert "<li>the test AUROC is 0.577, and its 95% CI (0.318-0.824) reaches 0.5: on these " \
           "patients the model is not shown to rank patients better than chance" in html
    markdown = render_markdown(run)
    assert "> **Warnings:**\n> - column 'admitted' holds dates" in markdown


def test_a_clean_run_has_no_warnings_box(binary_html):
    assert "Warnings (" not in binary_html


def test_fairness_section_shows_groups_disparities_and_flags(binary_html):
    html = binary_html
    assert "Fairness flags (2)" in html
    assert "sex: equalized odds difference 0.14 &gt; 0.10 between female and male" in html
    assert "<li>auroc gap for &#39;sex&#39; is undefined</li>" in html  # names its column
    assert "\u26a0 above 0.10" in html
    assert "Equalized odds difference" in html
    assert "sex x age_group (intersection)" in html
    assert "too small (&lt; 20): unreliable" in html
    assert "Differences are computed on the test patients only." in html


def test_no_sensitive_attribute_says_how_to_add_one(multiclass_html):
    html = multiclass_html
    assert "No sensitive attribute was declared" in html
    assert "--sensitive COL" in html


def test_a_multiclass_audit_without_disparities_does_not_say_no_flag_was_raised(tmp_path):
    # more than two classes: the audit gives each group's figures but no disparity, so
    # "raised no flag" would read as "the groups were found alike"
    fairness = _fairness()
    fairness["attributes"]["sex"] = {**fairness["attributes"]["sex"], "disparities": {},
                                     "flags": []}
    del fairness["intersections"]
    html = render_report(_write_run(tmp_path / "multi", ["a", "b", "c"], fairness))
    assert "raised no flag" not in html
    assert ("The fairness audit by sex reports each group&#39;s figures but no disparity "
            "between groups (not computed with more than two classes), so it cannot raise a "
            "flag") in html


def test_multiclass_report_has_one_vs_rest_and_no_decision_curve(multiclass_html):
    html = multiclass_html
    assert html.count(PNG) == 4  # ROC, PR, calibration, confusion matrix
    assert "class a vs rest" not in html  # legends live inside the PNGs
    assert "Each class against all others (95% CI)" in html
    assert "No decision curve is drawn: with 3 classes" in html
    assert "No threshold is used with 3 classes" in html
    assert "macro-averaged AUROC of 0.931 (0.889\u20130.962) over 3 classes (a, b, c)" in html


def test_tripod_fills_known_items_and_marks_human_ones(binary_html):
    html = binary_html
    assert "To complete by the study team: the clinical setting, target population" in html
    assert "To complete by the study team: sources of funding" in html
    assert "median/mode imputation with missing indicators, fitted inside each CV fold" in html
    assert "events per variable" in html
    # the fixture writes 5x the test count of each class as its count in all rows
    expected = 4 * int((_predictions(["0", "1"], 114)["y_true"] == "1").sum())
    assert f"{expected} events (patients with disease = 1) in the development set and 3 " \
           f"candidate predictors" in html
    assert f"{expected / 3:.1f} events per variable" in html
    assert "3 candidate predictors (2 numeric, 1 categorical): age, radius, thal." in html


def test_tripod_counts_genes_as_genes(binary_run):
    schema = json.loads((binary_run / "model" / "schema.json").read_text())
    schema["features"] += [{"name": f"gene_{i}", "kind": "gene", "min": 0.0, "max": 9.0,
                            "missing_share": 0.0} for i in range(4)]
    (binary_run / "model" / "schema.json").write_text(json.dumps(schema))
    html = render_report(binary_run)
    assert "7 candidate predictors (4 gene expression, 2 numeric, 1 categorical)" in html


def test_development_events_subtracts_the_test_split(binary_run):
    from permed.report._html import load_run

    run = load_run(binary_run)
    counts = run.metrics["target"]["counts"]["1"]
    in_test = sum(run.metrics["confusion_matrix"]["matrix"][1])
    assert development_events(run) == counts - in_test


def test_reproduce_section_shows_command_config_packages_timings(binary_html):
    html = binary_html
    assert "permed train bc.csv --task diagnose --target disease --sensitive sex" in html
    assert "<th scope=\"row\">Seed</th><td>42</td>" in html
    assert "<th scope=\"row\">sensitive</th><td>[&#34;sex&#34;]</td>" in html
    assert "<th scope=\"row\">numpy</th><td>2.1.0</td>" in html
    assert "<th scope=\"row\">total</th><td>12.2</td>" in html
    assert "2026-11-28 14:05 UTC" in html


def test_external_validation_title_and_note(tmp_path):
    run = _write_run(tmp_path / "ext", ["0", "1"], _fairness(), external=True)
    html = render_report(run)
    title = "permed model report \u2014 External validation \u2014 diagnose: disease"
    assert f"<h1>{title}</h1>" in html
    assert f"<title>{title}</title>" in html
    assert "runs/heart" in html
    assert "sha256:cd34cd34cd34\u2026" in html
    assert "was trained elsewhere, in runs/heart" in html
    assert "<h2>Performance on the external cohort</h2>" in html
    assert "<h2>Data: the patients of the external cohort</h2>" in html
    assert "<h2>Model comparison (cross-validation)</h2>" in html
    assert "lightgbm \u2714 selected" not in html  # no model comparison table


def _external_beside(tmp_path: Path, fingerprint: str) -> Path:
    """runs/heart (a development run) and runs/heart-ext, an external validation of it that
    has no model/ and records runs/heart relative to a folder that is not the current one."""
    development = _write_run(tmp_path / "runs" / "heart", ["0", "1"], {})
    manifest = json.loads((development / "manifest.json").read_text())
    manifest["created"] = "2026-11-01T09:00:00Z"
    (development / "manifest.json").write_text(json.dumps(manifest))
    external = _write_run(tmp_path / "runs" / "heart-ext", ["0", "1"], {}, external=True)
    (external / "model" / "schema.json").unlink()
    (external / "model").rmdir()
    metrics = json.loads((external / "metrics.json").read_text())
    metrics["external"] = {"run": "elsewhere/runs/heart", "development_fingerprint": fingerprint}
    metrics["bootstrap"]["replicates"] = 300
    (external / "metrics.json").write_text(json.dumps(metrics))
    return external


def test_external_report_reads_the_development_runs_schema_and_settings(tmp_path):
    from permed.report._html import load_run

    run = load_run(_external_beside(tmp_path, "sha256:" + "ab12" * 16))
    assert run.problems == ()
    assert run.development is not None
    assert run.development.run_dir == tmp_path / "runs" / "heart"
    assert [f["name"] for f in run.schema["features"]] == ["age", "radius", "thal"]
    html = render_report(run.run_dir)
    assert "3 predictors the model uses (from model/schema.json of the development run" in html
    assert "Trained 2026-11-01 09:00 UTC with permed 0.1.0 in elsewhere/runs/heart; " \
           "validated on the external cohort 2026-11-28 14:05 UTC" in html
    assert "95% CIs of its held-out test figures: 1,000 bootstrap replicates (stratified " \
           "percentile). This external validation: 95% CIs from 300 bootstrap replicates" in html


def test_external_report_says_when_the_development_run_is_not_found(tmp_path):
    from permed.report._html import load_run

    external = _external_beside(tmp_path, "sha256:" + "ef56" * 16)  # not the one beside it
    run = load_run(external)
    assert run.development is None
    assert run.problems == (
        "The development run 'elsewhere/runs/heart' (external.run in metrics.json) was not "
        f"found here or beside {external}: its predictors and analysis settings are left out. "
        f"Write the report again from where that path is valid: permed report {external}",)
    html = render_report(external)
    assert "The predictors are those of the development run, which was not found" in html
    assert "model/schema.json is missing" not in html


def test_unknown_task_renders_common_sections_only(binary_run):
    metrics = json.loads((binary_run / "metrics.json").read_text())
    metrics["task"] = "prognose"
    (binary_run / "metrics.json").write_text(json.dumps(metrics))
    html = render_report(binary_run)
    for heading in COMMON_HEADINGS:
        assert f"<h2>{heading}</h2>" in html
    for heading in DIAGNOSE_HEADINGS:
        assert heading not in html
    assert PNG not in html


def test_registered_task_adds_its_sections(binary_run, monkeypatch):
    from permed.report import _html

    monkeypatch.setattr(_html, "_TASK_SECTIONS", {})
    monkeypatch.setattr(_html, "_TASK_SUMMARIES", {})
    register_sections("diagnose", [lambda run: _html.Section("extra", "An extra section")],
                      summary=lambda run: "A custom summary.")
    assert len(task_sections("diagnose")) == 1
    html = render_report(binary_run)
    assert "<h2>An extra section</h2>" in html
    assert "A custom summary." in html
    assert "Decision threshold" not in html


def test_missing_optional_files_are_reported_not_fatal(binary_run):
    (binary_run / "predictions.csv").unlink()
    (binary_run / "manifest.json").unlink()
    html = render_report(binary_run)
    assert "predictions.csv is missing: the plots are left out." in html
    assert "manifest.json is missing" in html
    assert html.count(PNG) == 1  # the confusion matrix comes from metrics.json


def test_none_and_nan_show_as_dash(binary_run):
    metrics = json.loads((binary_run / "metrics.json").read_text())
    metrics["test"]["npv"] = {"value": None, "ci_low": None, "ci_high": None}
    metrics["test"]["f1"] = {"value": float("nan"), "ci_low": 0.1, "ci_high": 0.2}
    (binary_run / "metrics.json").write_text(json.dumps(metrics))
    html = render_report(binary_run)
    text = re.sub(r'src="data:image/png;base64,[^"]*"', "", html)
    assert re.search(r"\bnan\b", text, flags=re.I) is None
    assert "None" not in html
    assert "<td>\u2014</td>" in html


def test_write_report_is_atomic_and_leaves_no_temp_files(binary_run):
    path = write_report(binary_run)
    assert path == binary_run / "report.html"
    assert path.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    names = sorted(p.name for p in binary_run.iterdir())
    assert names == ["manifest.json", "metrics.json", "model", "predictions.csv", "report.html"]
    assert write_report(binary_run) == path  # overwrites in place
    assert sorted(p.name for p in binary_run.iterdir()) == names


def test_missing_metrics_raises_bundle_error(tmp_path):
    with pytest.raises(BundleError, match=r"metrics\.json' not found: .*run `permed train"):
        render_report(tmp_path)
    with pytest.raises(BundleError, match=r"run directory '.*nowhere' does not exist"):
        write_report(tmp_path / "nowhere")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("content", "message"), [
    ("{not json", r"metrics\.json' is not valid JSON \(line 1, column 2"),
    ("[1, 2]", r"metrics\.json' holds a JSON list, expected an object"),
])
def test_unreadable_metrics_raises_bundle_error(tmp_path, content, message):
    (tmp_path / "metrics.json").write_text(content)
    with pytest.raises(BundleError, match=message):
        write_report(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json"]


@pytest.mark.parametrize(("entry", "expected"), [
    ({"value": 0.931, "ci_low": 0.889, "ci_high": 0.962}, "0.93 (0.89\u20130.96)"),
    ({"value": 0.93, "ci_low": None, "ci_high": 0.96}, "0.93"),
    ({"value": None, "ci_low": 0.1, "ci_high": 0.2}, "\u2014"),
    ({"value": float("nan")}, "\u2014"),
    (None, "\u2014"),
    (0.5, "0.50"),
])
def test_fmt_ci(entry, expected):
    assert fmt_ci(entry) == expected


def test_fmt_num_and_mean_std():
    assert fmt_num(1234) == "1,234"
    assert fmt_num(float("inf")) == "\u2014"
    assert fmt_mean_std({"mean": 0.981, "std": 0.012}) == "0.98 \u00b1 0.01"
    assert fmt_mean_std({"mean": 0.98, "std": None}) == "0.98"
    assert fmt_mean_std({"mean": 0.2, "std": 0.0, "folds": 1}) == "0.20 (1 fold)"
    assert fmt_mean_std({"mean": 0.2, "std": 0.01, "folds": 3}) == "0.20 (3 folds)"


def test_net_benefit_matches_hand_computation():
    y = np.array([1, 1, 0, 0, 1])
    p = np.array([0.9, 0.6, 0.7, 0.2, 0.1])
    # at t = 0.5: TP = 2, FP = 1 of n = 5 -> 2/5 - 1/5 * 0.5/0.5 = 0.2
    assert net_benefit(y, p, np.array([0.5])) == pytest.approx([0.2], abs=1e-12)
    # at t = 0.01 everyone is treated: the model equals "treat all"
    prevalence = 3 / 5
    assert net_benefit(y, p, np.array([0.01]))[0] == pytest.approx(
        prevalence - (1 - prevalence) * 0.01 / 0.99, abs=1e-12)


def test_float_labels_in_predictions_match_string_classes(binary_run):
    from permed.report._diagnose import prediction_arrays
    from permed.report._html import load_run

    frame = pd.read_csv(binary_run / "predictions.csv", dtype={"y_true": str})
    frame["y_true"] = frame["y_true"].astype(float)  # written as 0.0 / 1.0
    frame.to_csv(binary_run / "predictions.csv", index=False)
    y_true, proba = prediction_arrays(load_run(binary_run))
    assert set(y_true) == {"0", "1"}
    assert proba.shape == (114, 2)
    assert (y_true == "1").sum() == (frame["y_true"] == 1.0).sum()


def test_minimal_metrics_still_render(tmp_path):
    (tmp_path / "metrics.json").write_text(json.dumps({"task": "diagnose", "data": None,
                                                       "fairness": None, "test": {}}))
    html = render_report(tmp_path)
    assert "manifest.json is missing" in html
    assert "model/schema.json is missing" in html
    assert "TRIPOD+AI reporting checklist" in html
    assert "None" not in html


def test_tuning_verdicts_state_the_bar_the_gain_had_to_clear():
    from permed.report._tripod import _tuning

    selection = {"metric": "c_index", "tuning": "the rule"}
    new = {"trials": 9, "replaced_defaults": False, "cv_gain": 0.002,
           "selection_optimism": 0.006, "gain_standard_error": 0.003, "threshold": 0.004}
    old = {key: value for key, value in new.items() if key != "threshold"}
    told = _tuning({"cv_details": {"coxph": {"tuning": new}, "rsf": {"tuning": old}}}, selection)
    assert "coxph: default settings kept (9 trials; CV C-index gain +0.0020, optimism 0.0060, " \
           "to exceed 0.0040)" in told[1]
    # a run from before the t threshold: its verdict was against one plain standard error
    assert "rsf: default settings kept (9 trials; CV C-index gain +0.0020, optimism 0.0060, " \
           "standard error 0.0030)" in told[1]
