"""Report sections of the diagnose task: test performance, calibration, decision threshold.

Importing this module registers the sections for ``metrics["task"] == "diagnose"``.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from permed.evaluate import counts_in_test, miscalibration
from permed.report import _plots
from permed.report._fairness import fairness_sentence
from permed.report._html import (
    DASH,
    Block,
    Figure,
    Figures,
    Note,
    Paragraph,
    RunFiles,
    Section,
    Table,
    dig,
    fmt_ci,
    fmt_num,
    fmt_pct,
    is_missing,
    key_value_table,
    metric_digits,
    metric_label,
    metric_meaning,
    ordered_metrics,
    register_sections,
)

_CAPTIONS = {
    "roc": "How sensitivity and specificity trade off as the threshold moves; the closer the "
           "curve runs to the top-left corner, the better.",
    "pr": "Of the patients flagged, the share who have the outcome (precision), against the "
          "share of patients with the outcome who are found (sensitivity).",
    "calibration": "Points on the diagonal mean predicted risks match what happened; the "
                   "histogram shows how many patients fall in each probability bin.",
    "decision": "Net benefit counts true positives minus false positives weighted by the odds "
                "of the threshold. The model is worth using at thresholds where its curve lies "
                "above both 'treat all' and 'treat none'.",
}
_CALIBRATION_METHODS = {
    "none": "none (the model's own probabilities)",
    "sigmoid": "sigmoid (Platt scaling)",
    "isotonic": "isotonic regression",
}


def _is_binary(run: RunFiles) -> bool:
    return len(run.classes) == 2


def _is_multiclass(run: RunFiles) -> bool:
    return len(run.classes) > 2


def _align_labels(values: np.ndarray, classes: list[str]) -> np.ndarray | None:
    """Labels as the class strings of metrics.json ("1.0" in the CSV may mean class "1")."""
    if set(values) <= set(classes):
        return values
    try:
        by_number = {float(c): c for c in classes}
        return np.array([by_number[float(v)] for v in values], dtype=object)
    except (ValueError, KeyError):
        return None


def prediction_arrays(run: RunFiles) -> tuple[np.ndarray, np.ndarray] | str:
    """``(y_true, proba)`` from predictions.csv, or the reason they cannot be used.

    Parameters
    ----------
    run : RunFiles

    Returns
    -------
    tuple of ndarray or str
        True labels as class strings and probabilities with one column per class, in the
        order of ``run.classes``; a sentence saying what is wrong otherwise.
    """
    frame, classes = run.predictions, run.classes
    if frame is None:
        return "predictions.csv is missing or unreadable"
    columns = [f"prob_{c}" for c in classes]
    absent = [c for c in columns if c not in frame.columns]
    if not classes or absent:
        return f"predictions.csv lacks the probability columns {absent or columns}"
    frame = frame.dropna(subset=["y_true", *columns])
    y_true = _align_labels(frame["y_true"].astype(str).to_numpy(dtype=object), classes)
    if y_true is None or not len(y_true):
        return f"the y_true values of predictions.csv do not match the classes {classes}"
    return y_true, frame[columns].to_numpy(dtype=float)


def _metric_cell(test: Mapping[str, object], metric: str) -> str:
    """The figure with its interval; a missing slope says why when the AUROC is there.

    With both classes present (an AUROC) the slope is missing only where the predictions
    separate the classes: no finite slope fits then.
    """
    text = fmt_ci(test[metric], metric_digits(metric))
    if (metric == "calibration_slope" and text == DASH
            and not is_missing(dig(test, "auroc", "value"))):
        return f"{text} (the predictions separate the classes: no slope fits)"
    return text


def _metric_table(run: RunFiles) -> Block:
    test = run.metrics.get("test")
    if not isinstance(test, Mapping) or not test:
        return Note("metrics.json has no test figures.", tone="warning")
    rows = [[metric_label(m), _metric_cell(test, m), metric_meaning(m)]
            for m in ordered_metrics(test)]
    return Table(header=["Measure", "Value (95% CI)", "What it means"], rows=rows)


def _per_class_table(run: RunFiles) -> Block | None:
    per_class = run.metrics.get("per_class")
    if not isinstance(per_class, Mapping) or not per_class:
        return None
    metrics = ordered_metrics(m for scores in per_class.values() for m in (scores or {}))
    rows = [[str(label)] + [fmt_ci(dig(scores, m), metric_digits(m)) for m in metrics]
            for label, scores in per_class.items()]
    return Table(header=["Class (vs the rest)"] + [metric_label(m) for m in metrics], rows=rows,
                 caption="Each class against all others (95% CI)")


def _confusion(run: RunFiles) -> tuple[list[str], list[list[int]]] | None:
    labels = dig(run.metrics, "confusion_matrix", "labels")
    matrix = dig(run.metrics, "confusion_matrix", "matrix")
    if not labels or not isinstance(matrix, list) or len(matrix) != len(labels):
        return None
    if any(not isinstance(row, list) or len(row) != len(labels) for row in matrix):
        return None
    return [str(label) for label in labels], matrix


def _curve_figures(run: RunFiles, y_true: np.ndarray, proba: np.ndarray) -> list[Figure]:
    classes, positive = run.classes, run.positive_class
    figures = [
        Figure(_plots.roc_plot(y_true, proba, classes, positive), "ROC curve", _CAPTIONS["roc"]),
        Figure(_plots.precision_recall_plot(y_true, proba, classes, positive),
               "Precision-recall curve", _CAPTIONS["pr"]),
        Figure(_plots.calibration_plot(y_true, proba, classes, positive),
               "Calibration plot", _CAPTIONS["calibration"]),
    ]
    if _is_binary(run):
        k = classes.index(positive) if positive in classes else 1
        threshold = dig(run.metrics, "threshold", "value")
        threshold = float(threshold) if isinstance(threshold, int | float) else None
        figures.append(Figure(_plots.decision_curve_plot(
            (y_true == classes[k]).astype(int), proba[:, k], threshold),
            "Decision curve", _CAPTIONS["decision"]))
    return figures


def _plot_blocks(run: RunFiles) -> list[Block]:
    arrays = prediction_arrays(run)
    figures: list[Figure] = []
    blocks: list[Block] = []
    if isinstance(arrays, str):
        blocks.append(Note(f"The curves are left out: {arrays}.", tone="warning"))
    else:
        figures = _curve_figures(run, *arrays)
    confusion = _confusion(run)
    if confusion is not None:
        labels, matrix = confusion
        figures.append(Figure(_plots.confusion_plot(labels, matrix), "Confusion matrix",
                              "Actual class in rows, predicted class in columns."))
        blocks.append(Table(header=["Actual \\ Predicted", *labels],
                            rows=[[label] + [fmt_num(n) for n in row]
                                  for label, row in zip(labels, matrix, strict=True)],
                            caption="Confusion matrix (patients)"))
    if _is_multiclass(run):
        blocks.append(Paragraph(
            f"No decision curve is drawn: with {len(run.classes)} classes there is no single "
            "threshold probability at which to weigh true against false positives, so net "
            "benefit is not defined. The one-vs-rest curves above show each class."))
    return ([Figures(figures)] if figures else []) + blocks


def performance_section(run: RunFiles) -> Section:
    """Test metrics with confidence intervals, curves and the confusion matrix."""
    external = run.external is not None
    where = "the external cohort" if external else "held-out patients"
    boot = run.metrics.get("bootstrap") or {}
    who = (f"the {fmt_num(run.test_rows)} patients of the external cohort, who were not used "
           "to develop the model" if external else
           f"the {fmt_num(run.test_rows)} held-out patients, who were used neither to train nor "
           "to choose the model; they were evaluated once")
    method = f"{boot['method']} " if boot.get("method") else ""
    intro = (f"Figures on {who}. 95% confidence intervals from "
             f"{fmt_num(boot.get('replicates'))} {method}bootstrap replicates.")
    blocks: list[Block] = [Paragraph(intro), _metric_table(run)]
    if _is_multiclass(run):
        blocks.append(Paragraph(
            "With more than two classes, AUROC and AUPRC are macro-averaged one-vs-rest, "
            "sensitivity, specificity, predictive values and F1 are macro averages, the Brier "
            "score is the multiclass one and calibration error is that of the top label."))
        per_class = _per_class_table(run)
        if per_class is not None:
            blocks.append(per_class)
    blocks += _plot_blocks(run)
    return Section("performance", f"Performance on {where}", blocks)


def _candidates_table(calibration: Mapping[str, object]) -> Table | None:
    candidates = calibration.get("candidates")
    if not isinstance(candidates, Mapping) or not candidates:
        return None
    chosen = calibration.get("method")
    rows = [[_CALIBRATION_METHODS.get(name, name) + (" \u2714 chosen" if name == chosen else ""),
             fmt_ci(dig(scores, "brier"), 3), fmt_ci(dig(scores, "ece"), 3)]
            for name, scores in candidates.items()]
    marked = frozenset(i for i, name in enumerate(candidates) if name == chosen)
    return Table(header=["Candidate", "Brier score", "Calibration error (ECE)"], rows=rows,
                 caption="Candidates compared on development data (lower is better)",
                 marked=marked)


def _before_after_table(run: RunFiles, calibration: Mapping[str, object]) -> Table:
    before = calibration.get("test_uncalibrated") or {}
    rows = [[metric_label(m), fmt_ci(dig(before, m), metric_digits(m)),
             fmt_ci(run.test_entry(m), metric_digits(m))]
            for m in ("brier", "ece", "calibration_slope", "calibration_intercept")
            if dig(before, m) is not None or run.test_entry(m) is not None]
    return Table(header=[f"Measure on {run.evaluated_on}", "Before calibration",
                         "After calibration (95% CI)"], rows=rows)


def calibration_section(run: RunFiles) -> Section:
    """Which calibration was chosen, how, and what it changed on the test patients."""
    title = "Calibration: do predicted risks match what happened?"
    intro = Paragraph(
        "A well-calibrated model's probabilities can be read as risks: among patients given "
        "20%, about 20 in 100 have the outcome. Calibration adjusts the raw probabilities of "
        "the model so that this holds, without changing how it ranks patients.")
    calibration = run.metrics.get("calibration")
    if not isinstance(calibration, Mapping):
        return Section("calibration", title, [intro, Note(
            "metrics.json records no calibration step.", tone="warning")])
    method = str(calibration.get("method") or DASH)
    blocks: list[Block] = [intro, key_value_table([
        ("Method chosen", _CALIBRATION_METHODS.get(method, method)),
        ("How it was chosen", calibration.get("chosen_by")),
    ])]
    candidates = _candidates_table(calibration)
    if candidates is not None:
        blocks.append(candidates)
    blocks.append(_before_after_table(run, calibration))
    return Section("calibration", title, blocks)


def _rule_text(threshold: Mapping[str, object]) -> str:
    rule = threshold.get("rule")
    if rule == "youden":
        return "Youden's index: the threshold that maximises sensitivity + specificity \u2212 1"
    if rule == "target_sensitivity":
        return ("target sensitivity: a threshold chosen to reach a sensitivity of at least "
                f"{fmt_num(threshold.get('target_sensitivity'))}")
    return fmt_num(rule)


def threshold_section(run: RunFiles) -> Section:
    """The decision threshold, the rule that set it and what it gives on the test patients."""
    title = "Decision threshold"
    if _is_multiclass(run):
        return Section("threshold", title, [Paragraph(
            f"No threshold is used with {len(run.classes)} classes: each patient is given the "
            "class with the highest predicted probability.")])
    threshold = run.metrics.get("threshold")
    if not isinstance(threshold, Mapping) or threshold.get("value") is None:
        return Section("threshold", title, [Note("metrics.json records no decision threshold.",
                                                 tone="warning")])
    value = fmt_num(threshold.get("value"))
    rows = [[metric_label(m), fmt_ci(run.test_entry(m)), metric_meaning(m)]
            for m in ("sensitivity", "specificity", "ppv", "npv")
            if run.test_entry(m) is not None]
    return Section("threshold", title, [
        Paragraph(f"A patient whose predicted probability of {run.target} = "
                  f"{run.positive_class} is above {value} is flagged as positive."),
        key_value_table([("Threshold", value), ("Rule", _rule_text(threshold))]),
        Table(header=["At this threshold", "Value (95% CI)", "What it means"], rows=rows,
              caption=f"On {run.evaluated_on}"),
    ])


def _binary_summary(run: RunFiles) -> str:
    sens, spec = run.test_entry("sensitivity"), run.test_entry("specificity")
    threshold = dig(run.metrics, "threshold", "value")
    if dig(sens, "value") is None or dig(spec, "value") is None:
        return ""
    rule = dig(run.metrics, "threshold", "rule")
    how = {"youden": " (Youden's index)", "target_sensitivity": " (target sensitivity)"}
    return (f" At the decision threshold of {fmt_num(threshold)}{how.get(rule, '')} it flagged "
            f"{fmt_pct(dig(sens, 'value'), 0)} of patients with {run.target} = "
            f"{run.positive_class} (sensitivity {fmt_ci(sens)}) and cleared "
            f"{fmt_pct(dig(spec, 'value'), 0)} of those without (specificity {fmt_ci(spec)}).")


def diagnose_summary(run: RunFiles) -> str:
    """The one-paragraph plain summary of a diagnose run."""
    model = run.metrics.get("selected_model") or DASH
    if run.external is not None:
        who = (f"On {fmt_num(run.test_rows)} patients of an external cohort the model "
               f"({model}, developed in {run.external.get('run') or 'another run'})")
    else:
        who = f"On {fmt_num(run.test_rows)} held-out patients the selected model ({model})"
    auroc = fmt_ci(run.test_entry("auroc"), metric_digits("auroc"))
    if not _is_multiclass(run):
        text = f"{who} reached AUROC {auroc}.{_binary_summary(run)}"
    else:
        present = _classes_present(run)
        text = (f"{who} reached a macro-averaged AUROC of {auroc} over {len(present)} "
                f"classes ({', '.join(present)}) and accuracy "
                f"{fmt_ci(run.test_entry('accuracy'))}; each patient is given the most "
                "probable class.")
    method = dig(run.metrics, "calibration", "method")
    if run.test_entry("brier") is not None:
        calibrated = f", after {method} calibration" if method not in (None, "none") else ""
        text += f" Brier score {fmt_ci(run.test_entry('brier'), 3)}{calibrated} (lower is better)."
    off = miscalibration(run.metrics)
    if off:
        fix = ("recalibrate it on this site's patients before using its probabilities"
               if run.external is not None else "do not use its probabilities as they are")
        text += f" The model is miscalibrated on these patients: {'; '.join(off)}; {fix}."
    return f"{text} {fairness_sentence(run)}"


def uncertainty_section(run: RunFiles) -> Section:
    """Conformal prediction sets and when the model refers a patient to a clinician."""
    title = "Uncertainty: prediction sets and referral"
    info = run.metrics.get("uncertainty")
    if not isinstance(info, Mapping) and run.external is not None:
        return Section("uncertainty", title, [Note(
            "The prediction sets were not assessed on the external cohort; the development "
            "run's report has their coverage on its test patients.")])
    if not isinstance(info, Mapping):
        return Section("uncertainty", title, [Note("This run recorded no conformal step.")])
    target = info.get("coverage_target")
    blocks: list[Block] = [
        Paragraph(f"Each patient gets a prediction set: the diagnoses that cannot be ruled out at "
                  f"{fmt_pct(target, 0)} coverage ({info.get('method', DASH)}). A set with more "
                  "than one diagnosis, a value outside the training range, or an unusual "
                  "combination of values marks the patient 'refer to clinician'."),
        key_value_table([
            ("Stated coverage", fmt_pct(target, 0)),
            ("Coverage on the test patients (95% CI)", fmt_ci(info.get("test_coverage"))),
            ("Mean set size", fmt_num(info.get("mean_set_size"))),
            ("Patients with more than one diagnosis in the set",
             fmt_pct(info.get("share_uncertain_sets"))),
            ("Patients unlike the development patients", fmt_pct(
                info.get("share_out_of_distribution"))),
            ("Patients referred to a clinician", fmt_pct(info.get("share_referred"))),
        ]),
        Paragraph(f"Out-of-distribution detector: {info.get('ood_method', DASH)}."),
    ]
    return Section("uncertainty", title, blocks)


register_sections("diagnose", [performance_section, calibration_section, threshold_section,
                               uncertainty_section],
                  summary=diagnose_summary)


def _classes_present(run: RunFiles) -> list[str]:
    """The classes with test patients: an external cohort may lack one, and the macro
    averages leave it out (its one-vs-rest figures cannot be computed)."""
    counts = counts_in_test(run.metrics)
    return [c for c in run.classes if counts.get(str(c), 1) > 0]
