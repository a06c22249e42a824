"""The TRIPOD+AI reporting checklist, filled from the run files where software can know.

TRIPOD+AI (Collins et al., BMJ 2024) lists what a report of a clinical prediction model must
state. Each item here shows what the run files record and, where only the study team can
write it, a clearly marked placeholder. Nothing is invented: an item the files do not answer
stays a placeholder.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from markupsafe import Markup

from permed.evaluate import counts_in_test
from permed.report._fairness import fairness_flags, fairness_sentence, not_in_cohort
from permed.report._html import (
    DASH,
    RunFiles,
    Section,
    Table,
    dig,
    fmt_ci,
    fmt_general,
    fmt_num,
    fmt_pct,
    metric_digits,
    metric_label,
    ordered_metrics,
    plural,
    todo,
)
from permed.report._risk import calibration_groups, follow_up_text, outcome_text
from permed.report._treat import VALUE_TITLE, performance_title

MISSING_HANDLING = ("median/mode imputation with missing indicators, fitted inside each CV "
                    "fold")
_NOT_RECORDED = "Not recorded by the software."
_RULES = {"youden": "Youden's index", "target_sensitivity": "target sensitivity"}


@dataclass(frozen=True)
class TripodItem:
    """One checklist item: what the run records, and what the study team must still write."""

    topic: str
    recorded: str
    to_write: str | None = None


def _training_config(run: RunFiles) -> Mapping[str, object]:
    """The configuration the model was trained with (an external run's is its development's)."""
    developed = run.developed_in
    return dig(developed.manifest if developed else {}, "config", default={})


def _features(run: RunFiles) -> list[Mapping[str, object]]:
    features = run.schema.get("features")
    return [f for f in features if isinstance(f, Mapping)] if isinstance(features, list) else []


def _data_source(run: RunFiles) -> TripodItem:
    data = run.metrics.get("data") or {}
    source = data.get("source") or dig(run.manifest, "data", "path") or DASH
    return TripodItem(
        "Source of data",
        f"Data file {source}: {fmt_num(data.get('rows'))} rows, {fmt_num(data.get('columns'))} "
        f"columns, fingerprint {data.get('fingerprint') or DASH}.",
        "study design (e.g. prospective cohort, registry, trial), setting and centres, and the "
        "dates of data collection.")


def _participants(run: RunFiles) -> TripodItem:
    data = run.metrics.get("data") or {}
    if run.external is not None:
        recorded = (f"{fmt_num(data.get('rows'))} patients of an external cohort, all used "
                    "for validation.")
    else:
        recorded = (f"{fmt_num(data.get('rows'))} patients; {fmt_num(data.get('development_rows'))}"
                    f" for development and {fmt_num(data.get('test_rows'))} held out for testing "
                    f"(test share {fmt_num(dig(run.manifest, 'config', 'test_size'))}, split at "
                    "random).")
    return TripodItem("Participants and eligibility", recorded,
                      "eligibility criteria, how patients were recruited or selected, and "
                      "treatments they received.")


def _class_counts(run: RunFiles) -> str:
    counts = dig(run.metrics, "target", "counts") or {}
    return ", ".join(f"{label}: {fmt_num(n)}" for label, n in counts.items()) or DASH


def _by_arm(run: RunFiles) -> str:
    """Per arm: patients, and the outcome's mean (SD) or, for a binary outcome, its share."""
    outcome = run.metrics.get("outcome") or {}
    counts = dig(run.metrics, "treatment", "counts") or {}
    means, sds = outcome.get("mean_by_arm") or {}, outcome.get("sd_by_arm") or {}
    binary = outcome.get("kind") == "binary"
    parts = []
    for arm in dig(run.metrics, "treatment", "arms", default=[]) or list(counts):
        arm = str(arm)
        figure = (f"{fmt_pct(means.get(arm))} with {run.target} = {outcome.get('coded_1')}"
                  if binary else f"mean {fmt_num(means.get(arm), 1)}"
                  + (f" (SD {fmt_num(sds[arm], 1)})" if arm in sds else ""))
        parts.append(f"{arm}: {fmt_num(counts.get(arm))} patients, {figure}")
    return "; ".join(parts) or DASH


def _treat_outcome(run: RunFiles) -> TripodItem:
    outcome = run.metrics.get("outcome") or {}
    kind = outcome.get("kind") or DASH
    coded = (f" (coded 1 = '{outcome['coded_1']}')"
             if kind == "binary" and outcome.get("coded_1") is not None else "")
    direction = "higher" if outcome.get("higher_is_better", True) else "lower"
    treatment = run.metrics.get("treatment") or {}
    return TripodItem(
        "Outcome",
        f"Column '{run.target}', {kind}{coded}; {direction} is better. Treatment column "
        f"'{treatment.get('column') or DASH}', reference arm "
        f"'{treatment.get('reference') or DASH}'. By arm (all rows): {_by_arm(run)}.",
        "how and when the outcome was determined, and whether it was assessed blind to the "
        "predictors and the treatment.")


def _risk_outcome(run: RunFiles) -> TripodItem:
    follow_up = follow_up_text(run)
    return TripodItem(
        "Outcome",
        outcome_text(run) + (f" Follow-up (median and IQR by reverse Kaplan-Meier): "
                             f"{follow_up}." if follow_up else ""),
        "how and when the event was determined, whether it was assessed blind to the "
        "predictors, and how patients lost to follow-up were handled.")


def _outcome(run: RunFiles) -> TripodItem:
    if run.task == "treat":
        return _treat_outcome(run)
    if run.task == "risk":
        return _risk_outcome(run)
    positive = f"; positive class '{run.positive_class}'" if len(run.classes) == 2 else ""
    return TripodItem(
        "Outcome",
        f"Column '{run.target}' with classes {', '.join(run.classes) or DASH}{positive}. "
        f"Patients per class: {_class_counts(run)}.",
        "how and when the outcome was determined, and whether it was assessed blind to the "
        "predictors.")


# How each feature kind of model/schema.json is counted among the candidate predictors.
_KIND_WORDS = {"gene": "gene expression", "text": "free-text note", "events": "event sequence"}


def _predictors(run: RunFiles) -> TripodItem:
    features = _features(run)
    if not features:
        return TripodItem("Predictors", f"{run.schema_source} lists no predictors.",
                          "the candidate predictors, their definitions and when they were "
                          "measured.")
    kinds = Counter(str(f.get("kind") or "numeric") for f in features)
    counted = ", ".join(f"{kinds[k]} {_KIND_WORDS.get(k, k)}"
                        for k in sorted(kinds, key=lambda k: -kinds[k]))
    names = ", ".join(str(f.get("name")) for f in features[:20])
    more = f" and {len(features) - 20} more" if len(features) > 20 else ""
    dropped = _training_config(run).get("drop") or []
    excluded = f" Excluded by request: {', '.join(map(str, dropped))}." if dropped else ""
    return TripodItem(
        "Predictors",
        f"{len(features)} candidate predictors ({counted}): {names}{more}.{excluded}",
        "the definition of each predictor, how and when it was measured, and whether it was "
        "assessed blind to the outcome.")


def development_events(run: RunFiles) -> int | None:
    """Patients in the development set in the smallest class (the events of a binary task).

    Parameters
    ----------
    run : RunFiles

    Returns
    -------
    int or None
        Class counts of all rows minus those of the test split (from the confusion matrix);
        None when either is unknown.
    """
    in_test = counts_in_test(run.metrics)
    if run.task == "risk":  # all events minus those of the test split's risk groups
        events = dig(run.metrics, "outcome", "event")
        if not isinstance(events, int) or not in_test:
            return None
        return events - in_test["event"]
    counts = dig(run.metrics, "target", "counts")
    if not isinstance(counts, Mapping) or not in_test:
        return None
    wanted = [run.positive_class] if len(run.classes) == 2 else [str(c) for c in counts]
    dev = [counts[c] - in_test.get(c, 0) for c in wanted if c in counts]
    return min(dev) if dev else None


def _treat_sample_size(run: RunFiles, n_predictors: int, todo_text: str) -> TripodItem:
    rows = dig(run.metrics, "data", "development_rows")
    counts = dig(run.metrics, "treatment", "counts") or {}
    per_arm = ", ".join(f"{arm}: {fmt_num(n)}" for arm, n in counts.items()) or DASH
    ratio = (f" ({rows / n_predictors:.1f} development patients per predictor)"
             if isinstance(rows, int) and n_predictors else "")
    return TripodItem(
        "Sample size",
        f"{fmt_num(rows)} development patients and {n_predictors or DASH} candidate predictors"
        f"{ratio}; {fmt_num(run.test_rows)} held out. Patients per arm (all rows): {per_arm}.",
        "the justification of the sample size for estimating effects (each arm needs enough "
        "patients, and effect differences between patients need far more than an average "
        "effect).")


def _sample_size(run: RunFiles) -> TripodItem:
    todo_text = "the justification of the sample size (e.g. the Riley et al. criteria)."
    n_predictors = len(_features(run))
    if run.external is not None:
        return TripodItem("Sample size and events per variable",
                          f"External cohort of {fmt_num(run.test_rows)} patients; class counts "
                          f"{_class_counts(run)}.", todo_text)
    if run.task == "treat":
        return _treat_sample_size(run, n_predictors, todo_text)
    events = development_events(run)
    what = ("patients with the event" if run.task == "risk" else
            f"patients with {run.target} = {run.positive_class}" if len(run.classes) == 2
            else "patients in the smallest class")
    if events is None or not n_predictors:
        return TripodItem("Sample size and events per variable",
                          f"Events or predictors unknown (development rows "
                          f"{fmt_num(dig(run.metrics, 'data', 'development_rows'))}).", todo_text)
    return TripodItem(
        "Sample size and events per variable",
        f"{fmt_num(events)} events ({what}) in the development set and {n_predictors} candidate "
        f"predictors (each counted once, before encoding): {events / n_predictors:.1f} events "
        "per variable.", todo_text)


def _missing_data(run: RunFiles) -> TripodItem:
    features = _features(run)
    shares = {str(f.get("name")): f.get("missing_share") for f in features}
    shares = {k: v for k, v in shares.items() if isinstance(v, int | float) and v > 0}
    if shares:
        worst = max(shares, key=lambda k: shares[k])
        found = (f"{len(shares)} of {len(features)} predictors had missing values in training "
                 f"(most: '{worst}', {fmt_pct(shares[worst])}).")
    else:
        found = "No missing values in the training predictors." if features else ""
    return TripodItem("Missing data", f"{found} Handling: {MISSING_HANDLING}.".strip())


def _bootstrap(metrics: Mapping[str, object]) -> str:
    boot = dig(metrics, "bootstrap", default={})
    method = f" ({boot['method']})" if boot.get("method") else ""
    return f"{fmt_num(boot.get('replicates'))} bootstrap replicates{method}"


def _analysis(run: RunFiles) -> TripodItem:
    config = _training_config(run)
    selection = run.metrics.get("selection") or {}
    calibration = run.metrics.get("calibration") or {}
    threshold = run.metrics.get("threshold") or {}
    models = ", ".join(map(str, config.get("models") or run.metrics.get("cv") or [])) or DASH
    parts = [
        f"Models compared: {models}, by {fmt_num(selection.get('folds') or config.get('cv'))}-fold"
        f" cross-validation on the development data; selection: {selection.get('rule') or DASH}.",
        f"Hyper-parameter tuning budget: {fmt_general(config.get('budget'))} s (0 = default "
        "settings).",
        # an external evaluation's metrics.json keeps the selection, not the CV details
        *_tuning(run.development.metrics if run.external is not None and run.development
                 else run.metrics, selection),
    ]
    if run.task == "diagnose":  # risk and treat models are neither recalibrated nor thresholded
        parts += [f"Calibration: {calibration.get('method') or DASH}, chosen by "
                  f"{calibration.get('chosen_by') or DASH}.",
                  f"Threshold rule: "
                  f"{_RULES.get(threshold.get('rule'), threshold.get('rule') or 'none')}."]
    if run.external is None:
        parts.append(f"95% CIs: {_bootstrap(run.metrics)}.")
    else:  # each figure belongs to one analysis: the development run's, or this evaluation's
        developed = run.development.metrics if run.development else {}
        parts.insert(0, f"Model developed in {run.external.get('run') or 'another run'} and "
                        "applied unchanged. Development analysis:")
        parts += [f"95% CIs of its held-out test figures: {_bootstrap(developed)}.",
                  f"This external validation: 95% CIs from {_bootstrap(run.metrics)} on the "
                  "external cohort."]
    return TripodItem("Analysis methods (cross-validation, tuning, calibration, threshold)",
                      " ".join(parts))


def _tuning(metrics: Mapping[str, Any], selection: Mapping[str, Any]) -> list[str]:
    """The tuning rule and, per model, whether its best trial replaced the defaults."""
    if not selection.get("tuning"):
        return []
    metric = metric_label(str(selection.get("metric") or "score"))
    verdicts = []
    for name, details in (metrics.get("cv_details") or {}).items():
        tuning = details.get("tuning") or {}
        if not tuning:
            continue
        kept = "tuned settings" if tuning.get("replaced_defaults") else "default settings kept"
        verdicts.append(
            f"{name}: {kept} ({fmt_num(tuning.get('trials'))} trials; CV {metric} gain "
            f"{_signed(tuning.get('cv_gain'))}, optimism "
            f"{_signed(tuning.get('selection_optimism'), sign='')}, {_bar(tuning)})")
    rule = f"Tuning rule: {selection['tuning']}."
    return [rule, f"{'; '.join(verdicts)}."] if verdicts else [rule]


def _bar(tuning: Mapping[str, Any]) -> str:
    """What gain less optimism had to exceed (runs before the t threshold: one standard error)."""
    if "threshold" in tuning:
        return f"to exceed {_signed(tuning.get('threshold'), sign='')}"
    return f"standard error {_signed(tuning.get('gain_standard_error'), sign='')}"


def _signed(value: object, sign: str = "+") -> str:
    """A small score difference to 4 decimals (``+0.0018``, not ``0.0018`` or ``-4e-05``)."""
    return f"{float(value):{sign}.4f}" if isinstance(value, int | float) else DASH


def _imbalance(run: RunFiles) -> TripodItem:
    counts = dig(run.metrics, "target", "counts") or {}
    total = sum(v for v in counts.values() if isinstance(v, int | float))
    shares = ", ".join(f"{label}: {fmt_pct(n / total)}" for label, n in counts.items()
                       if total) or DASH
    config = _training_config(run)
    settings = [f"{k} = {v}" for k, v in config.items()
                if any(w in k for w in ("weight", "balance", "sampl"))]
    handling = (f"Settings: {', '.join(settings)}." if settings else
                "No resampling or class-weight setting is recorded in the configuration.")
    return TripodItem("Class imbalance", f"Class shares: {shares}. {handling} AUPRC and "
                      "calibration are reported alongside AUROC.")


# The figures the checklist's performance item quotes, for every task.
_HEADLINE = ("auroc", "auprc", "sensitivity", "specificity", "ppv", "npv", "accuracy",
             "c_index", "uno_c", "ibs", "td_auc", "policy_value", "policy_gain", "ate", "qini")


def _risk_calibration(run: RunFiles) -> str:
    """``slope at 12 0.94 (0.57–1.55) and observed/expected 0.63 (0.47–0.77); ...``; a horizon
    too few patients are followed to is marked, not quoted."""
    horizons = dig(run.metrics, "calibration", "horizons") or {}
    thin = dig(run.metrics, "horizons", "not_checkable") or {}
    parts = []
    for h, entry in horizons.items():
        if not isinstance(entry, Mapping) or not isinstance(entry.get("slope"), Mapping):
            continue
        if h in thin:
            parts.append(f"slope and observed/expected at {h} not checkable (only {thin[h]} "
                         "patients followed this long)")
            continue
        oe = entry.get("observed_expected")
        parts.append(f"slope at {h} {fmt_ci(entry['slope'], 2)}" + (
            f" and observed/expected {fmt_ci(oe, 2)}" if isinstance(oe, Mapping) else ""))
    return "; ".join(parts)


def _performance(run: RunFiles) -> TripodItem:
    test = run.metrics.get("test") or {}
    shown = [m for m in ordered_metrics(test) if m in _HEADLINE]
    figures = "; ".join(f"{metric_label(m)} {fmt_ci(test[m], metric_digits(m))}" for m in shown)
    where = "external cohort" if run.external is not None else "held-out test split"
    return TripodItem("Model performance with confidence intervals",
                      f"On the {where} ({fmt_num(run.test_rows)} patients): {figures or DASH}. "
                      f"All figures with 95% CIs in '{performance_title(run)}'.")


def _calibration(run: RunFiles) -> TripodItem:
    if run.task == "treat":
        test = run.metrics.get("test") or {}
        checked = ", ".join(metric_label(m).lower() if m != "qini" else "Qini"
                            for m in ("policy_value", "policy_gain", "qini") if m in test)
        return TripodItem("Calibration", "Each arm's expected outcome comes with a 95% "
                          "confidence interval; the recommendation's value is checked against "
                          "the observed outcomes of the held-out patients in "
                          f"'{VALUE_TITLE}' ({checked or DASH}).")
    figures = "; ".join(f"{metric_label(m)} {fmt_ci(run.test_entry(m), metric_digits(m))}"
                        for m in ("brier", "ece", "ibs", "calibration_slope",
                                  "calibration_intercept")
                        if run.test_entry(m) is not None)
    if run.task == "risk":
        figures = "; ".join(f for f in (figures, _risk_calibration(run)) if f)
    if run.task == "risk":  # the survival curves themselves: no recalibration step
        groups = calibration_groups(run)
        return TripodItem("Calibration", f"Predicted risk against Kaplan-Meier observed risk "
                          f"by decile at each horizon{f' (here {groups})' if groups else ''}. "
                          f"On {run.evaluated_on}: {figures or DASH}. Calibration plots in "
                          "'Calibration'.")
    method = dig(run.metrics, "calibration", "method") or DASH
    return TripodItem("Calibration", f"Method: {method}. On {run.evaluated_on}: "
                      f"{figures or DASH}. Calibration plot in 'Performance'.")


def _fairness(run: RunFiles) -> TripodItem:
    attributes = dig(run.metrics, "fairness", "attributes") or {}
    if not attributes and not_in_cohort(run):
        return TripodItem("Fairness", fairness_sentence(run),
                          "add the sensitive columns to the cohort to audit them at this site.")
    if not attributes:
        return TripodItem("Fairness", "No sensitive attribute was declared; no audit was run.",
                          "which patient groups matter for fairness in this setting; re-run "
                          "with `--sensitive COL` to audit them, or say why none was audited.")
    flags = fairness_flags(run)
    return TripodItem("Fairness", f"Audited by {', '.join(map(str, attributes))}: "
                      f"{plural(len(flags), 'flag')} raised. Details in 'Fairness across patient "
                      "groups'.",
                      "how any flagged disparity affects use of the model." if flags else None)


def _limitations(run: RunFiles) -> TripodItem:
    known = []
    if run.external is None:
        known.append("Internal validation on one random split of a single data source: "
                     "performance elsewhere is unknown until the model is validated "
                     "externally.")
    if isinstance(run.test_rows, int) and run.test_rows < 200:
        known.append(f"Only {run.test_rows} test patients: confidence intervals are wide.")
    flags = fairness_flags(run)
    if flags:
        known.append(f"{plural(len(flags), 'fairness flag')} raised.")
    return TripodItem("Limitations", " ".join(known) or _NOT_RECORDED,
                      "clinical and data limitations (selection bias, measurement error, "
                      "changes in practice over time, generalisability).")


def _reproducibility(run: RunFiles) -> TripodItem:
    model = ("model/" if run.external is None else
             f"{run.external.get('run') or 'the development run'}/model/ (the development run)")
    return TripodItem(
        "Model and code availability",
        f"Seed {fmt_num(run.manifest.get('seed'))}, configuration, package versions and data "
        f"fingerprint in manifest.json; fitted model with SHA-256 digests in {model}.",
        "where the code, the model and (if possible) the data are shared.")


def _human_only(topic: str, text: str) -> Callable[[RunFiles], TripodItem]:
    def build(run: RunFiles) -> TripodItem:
        return TripodItem(topic, _NOT_RECORDED, text)

    return build


_ITEMS: list[Callable[[RunFiles], TripodItem]] = [
    _data_source, _participants, _outcome, _predictors, _sample_size, _missing_data, _analysis,
    _imbalance, _performance, _calibration, _fairness,
    _human_only("Intended use", "the clinical setting, target population, intended users and "
                "the decision the model is meant to support."),
    _human_only("Out-of-scope use", "populations, settings and decisions the model must not be "
                "used for."),
    _limitations, _reproducibility,
    _human_only("Funding and conflicts of interest", "sources of funding, the role of the "
                "funders, and competing interests of the study team."),
]


def tripod_items(run: RunFiles) -> list[TripodItem]:
    """The checklist items of a run, in reading order (class imbalance: diagnose only).

    Parameters
    ----------
    run : RunFiles

    Returns
    -------
    list of TripodItem
    """
    return [build(run) for build in _ITEMS if build is not _imbalance or run.task == "diagnose"]


def tripod_section(run: RunFiles) -> Section:
    """The TRIPOD+AI checklist as a table: item, what the run records, what is still to write."""
    rows = [[item.topic, item.recorded,
             todo(item.to_write) if item.to_write else Markup('<span class="done">\u2014</span>')]
            for item in tripod_items(run)]
    return Section("tripod", "TRIPOD+AI reporting checklist", [
        Table(header=["Item", "What this run records", "Still to write"], rows=rows,
              caption="Items of TRIPOD+AI (Collins et al., BMJ 2024) a model report must cover"),
    ])
