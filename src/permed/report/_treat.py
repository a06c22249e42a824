"""Report sections of the treat task: the value of the recommendation, the expected outcome
under each arm, overlap and balance, how the effect model was chosen, and what drives the
differences in effect.

Importing this module registers the sections for ``metrics["task"] == "treat"``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from permed.report._clear import patients_left_out, run_is_encrypted
from permed.report._explain import explanation_section
from permed.report._fairness import fairness_sentence
from permed.report._html import (
    DASH,
    METRIC_INFO,
    METRIC_ORDER,
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
    key_value_table,
    metric_label,
    metric_meaning,
    ordered_metrics,
    register_sections,
)
from permed.report._plots import _new_figure, _to_data_uri

__all__ = ["VALUE_TITLE", "left_out_sentence", "performance_title", "treat_summary",
           "treat_uncertainty"]

for _key, _info in {
    "pehe": ("Root PEHE", "Root mean squared error of the estimated effects against the true "
             "ones (simulated data only; lower is better)."),
    "ate_error": ("Error of the mean per-patient effect",
                  "Gap between the mean of the per-patient estimated effects and the true average "
                  "effect (simulated data only; averaged over the arms compared with the "
                  "reference). It is not the error of the doubly-robust average treatment "
                  "effect shown above."),
    "dr_loss": ("DR pseudo-outcome loss", "Squared error of the effects against doubly-robust "
                "pseudo-effects; lower is better (the selection criterion)."),
}.items():
    METRIC_INFO.setdefault(_key, _info)
    if _key not in METRIC_ORDER:
        METRIC_ORDER.append(_key)

NO_CLEAR = "no clear difference"
OUTSIDE = "outside the data"  # low overlap: no arm recommended (workflow._treat)
OUTCOMES_TITLE = "Expected outcome under each arm, per patient"
# how each estimator's per-patient intervals are made (models/treat: bootstrap refits, except
# the causal forest's own inference)
_INTERVAL_METHODS = {
    "causal_forest": "the causal forest's bootstrap of little bags",
    **dict.fromkeys(("t_learner", "x_learner", "dr_learner"),
                    "refits of the model on arm-stratified bootstrap resamples of the "
                    "development patients"),
}
ARM_CONTRASTS = "arm_contrasts"  # metrics["test"] key: every pair of arms, {"a vs b": entry}
CONTRASTS_TITLE = "Differences between arms (test split, 95% CI)"
VALUE_TITLE = "Value of the recommendation on held-out patients"
_EXAMPLES = 8
_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
            "#7f7f7f", "#bcbd22", "#17becf")


def performance_title(run: RunFiles) -> str:
    """How the report's text names its 'performance' section (treat runs title it by value)."""
    return VALUE_TITLE if run.task == "treat" else "Performance"


def _arms(run: RunFiles) -> list[str]:
    return [str(a) for a in dig(run.metrics, "treatment", "arms", default=[])]


def _direction(run: RunFiles) -> str:
    return "higher" if dig(run.metrics, "outcome", "higher_is_better", default=True) else "lower"


def _digits(run: RunFiles) -> int:
    """Decimals for outcome-scale figures: 3 for a probability, fewer for larger outcomes."""
    if dig(run.metrics, "outcome", "kind") == "binary":
        return 3
    means = [abs(v) for v in (dig(run.metrics, "outcome", "mean_by_arm") or {}).values()
             if isinstance(v, int | float)]
    scale = max(means) if means else 100.0
    return 3 if scale < 1 else 2 if scale < 100 else 1


# --- plots --------------------------------------------------------------------------------


def value_plot(labels: Sequence[str], entries: Sequence[Mapping[str, Any]], marked: int,
               outcome: str) -> str:
    """Point estimates with 95% CI bars: each single arm and the recommendation (marked)."""
    fig = _new_figure((5.2, 3.6))
    ax = fig.add_subplot()
    values = np.array([float(e.get("value") or np.nan) for e in entries])
    low = np.array([float(e.get("ci_low") if e.get("ci_low") is not None else np.nan)
                    for e in entries])
    high = np.array([float(e.get("ci_high") if e.get("ci_high") is not None else np.nan)
                     for e in entries])
    y = np.arange(len(labels))
    for i in y:
        colour = "#d62728" if i == marked else "#1f77b4"
        ax.errorbar([values[i]], [i], xerr=[[np.nan_to_num(values[i] - low[i])],
                                            [np.nan_to_num(high[i] - values[i])]],
                    fmt="o", color=colour, elinewidth=2, capsize=4)
    ax.set_yticks(y, labels)
    ax.invert_yaxis()
    ax.set_xlabel(f"Mean {outcome} (doubly-robust, 95% CI)")
    ax.set_title("Value on held-out patients", fontsize=11)
    ax.grid(alpha=0.3, axis="x")
    fig.subplots_adjust(left=0.25)
    return _to_data_uri(fig)


def qini_plot(curve: Mapping[str, Sequence[float]]) -> str:
    """The uplift (Qini) curve of the model against a random ranking."""
    fig = _new_figure()
    ax = fig.add_subplot()
    fraction = np.asarray(curve["fraction"], dtype=float)
    ax.plot(fraction, np.asarray(curve["model"], dtype=float), lw=1.8, label="permed ranking")
    ax.plot(fraction, np.asarray(curve["random"], dtype=float), ls="--", color="#888888",
            label="random ranking")
    ax.set_xlabel("Share of patients treated (largest predicted benefit first)")
    ax.set_ylabel("Gain per patient")
    ax.set_title("Uplift (Qini) curve", fontsize=11)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _to_data_uri(fig)


def effect_histogram(effects: Mapping[str, np.ndarray], outcome: str) -> str:
    """Distribution of the estimated effects of each arm against the reference."""
    fig = _new_figure()
    ax = fig.add_subplot()
    finite = [v[np.isfinite(v)] for v in effects.values()]
    pooled = np.concatenate(finite) if finite else np.array([0.0])
    bins = np.histogram_bin_edges(pooled if pooled.size else [0.0], bins=25)
    for i, (label, values) in enumerate(effects.items()):
        ax.hist(values[np.isfinite(values)], bins=bins, alpha=0.5, label=label,
                color=_COLOURS[i % len(_COLOURS)])
    ax.axvline(0.0, color="#444444", lw=1)
    ax.set_xlabel(f"Estimated effect on {outcome}")
    ax.set_ylabel("Test patients")
    ax.set_title("Effects against the reference arm", fontsize=11)
    ax.legend(fontsize=8)
    return _to_data_uri(fig)


def overlap_plot(by_arm: Mapping[str, Any]) -> str:
    """Propensity histograms: for each arm, its propensity in patients who got it or not."""
    arms = list(by_arm)
    fig = _new_figure((4.6, 1.1 + 1.5 * len(arms)), fixed=False)
    axes = fig.subplots(len(arms), 1, sharex=True, squeeze=False)[:, 0]
    for ax, arm in zip(axes, arms, strict=True):
        hist = by_arm[arm].get("histogram") or {}
        edges = np.asarray(hist.get("edges") or [0.0, 1.0], dtype=float)
        centres, width = (edges[:-1] + edges[1:]) / 2, np.diff(edges)
        for key, colour, label in (("received", "#1f77b4", f"received {arm}"),
                                   ("other", "#ff7f0e", "other arms")):
            counts = np.asarray(hist.get(key) or np.zeros(len(centres)), dtype=float)
            share = counts / counts.sum() if counts.sum() else counts
            ax.bar(centres, share, width=width, alpha=0.55, color=colour, label=label)
        ax.set_ylabel("Share", fontsize=8)
        ax.set_title(f"Propensity of arm {arm}", fontsize=9)
        ax.legend(fontsize=7)
    axes[-1].set_xlabel("Estimated probability of the arm")
    return _to_data_uri(fig)


# --- sections -----------------------------------------------------------------------------


def _test_table(run: RunFiles) -> Block:
    test = run.metrics.get("test")
    if not isinstance(test, Mapping) or not test:
        return Note("metrics.json has no test figures.", tone="warning")
    digits = _digits(run)
    comparison = run.metrics.get("ate_comparison")
    rows = [[metric_label(m) + (f" ({comparison})" if m == "ate" and comparison else ""),
             fmt_ci(test[m], digits), metric_meaning(m)]
            for m in ordered_metrics(test) if m != ARM_CONTRASTS]  # a table of its own
    return Table(header=["Measure", "Value (95% CI)", "What it means"], rows=rows)


def _default_note(run: RunFiles, short: bool = False) -> str:
    """Where the best single arm was chosen: the development patients, unless recorded else."""
    chosen = dig(run.metrics, "policy", "best_single_arm_chosen_on")
    if chosen is None:  # a run from before the choice was recorded: it was made on the test
        return "chosen on these held-out patients (in-sample, so the comparison is optimistic)"
    if short and str(chosen).startswith("the development patients"):
        return "chosen on the development patients"
    return f"chosen on {chosen}"


def _value_blocks(run: RunFiles) -> list[Block]:
    by_arm = dig(run.metrics, "policy", "value_by_arm") or {}
    policy = dig(run.metrics, "test", "policy_value")
    if not by_arm or not isinstance(policy, Mapping):
        return []
    best = dig(run.metrics, "policy", "best_single_arm")
    labels = [f"everyone gets {arm}" for arm in by_arm] + ["follow permed's recommendation"]
    remarks = ["best single arm (the default)" if arm == best else "" for arm in by_arm]
    remarks.append(f"clear recommendation, else {best}" if best else "")
    entries = [*by_arm.values(), policy]
    short = [f"all: {arm}" for arm in by_arm] + ["follow permed"]
    estimate = dig(run.metrics, "policy", "best_estimate_policy", "value")
    if isinstance(estimate, Mapping):
        labels.append("each patient gets their best point estimate")
        remarks.append("ignores uncertainty; for comparison only")
        entries.append(estimate)
        short.append("best estimate")
    digits = _digits(run)
    rows = [[label, fmt_ci(entry, digits), remark]
            for label, entry, remark in zip(labels, entries, remarks, strict=True)]
    followed = len(by_arm)
    figure = Figure(value_plot(short, entries, followed, run.target),
                    "Policy values", "Mean outcome if every test patient received one arm, "
                    "and if each received the arm permed tells the clinician to give.")
    return [Table(header=["Policy", f"Mean {run.target} (95% CI)", ""], rows=rows,
                  marked=frozenset({followed}),
                  caption="Doubly-robust estimates on the held-out patients"), Figures([figure])]


def _share_table(run: RunFiles) -> Block | None:
    shares = dig(run.metrics, "policy", "recommendation_share") or {}
    best = dig(run.metrics, "policy", "best_arm_share") or {}
    given = dig(run.metrics, "policy", "policy_arm_share")
    if not best:
        return None
    header = ["Arm", "Best point estimate", "Recommended (clear advantage)"]
    rows = [[arm, fmt_pct(best.get(arm)), fmt_pct(shares.get(arm, 0.0))] for arm in best]
    rows.append([NO_CLEAR, DASH, fmt_pct(shares.get(NO_CLEAR, 0.0))])
    if shares.get(OUTSIDE):
        rows.append([OUTSIDE, DASH, fmt_pct(shares[OUTSIDE])])
    if isinstance(given, Mapping):
        header.append("Given when following permed")
        for row in rows:
            row.append(fmt_pct(given.get(row[0])) if row[0] not in (NO_CLEAR, OUTSIDE)
                       else DASH)
    return Table(header=header, rows=rows, caption="Share of held-out patients")


def _contrasts(run: RunFiles) -> dict[str, Mapping[str, Any]]:
    """The difference of every pair of arms on the test split (empty in older runs)."""
    contrasts = dig(run.metrics, "test", ARM_CONTRASTS)
    if not isinstance(contrasts, Mapping):
        return {}
    return {str(k): v for k, v in contrasts.items() if isinstance(v, Mapping)}


def _is_clear(entry: Mapping[str, Any]) -> bool:
    """Whether a 95% CI excludes 0."""
    low, high = entry.get("ci_low"), entry.get("ci_high")
    if not isinstance(low, int | float) or not isinstance(high, int | float):
        return False
    return bool(low > 0 or high < 0)


def _contrast_blocks(run: RunFiles) -> list[Block]:
    contrasts = _contrasts(run)
    if not contrasts:
        return []
    digits = _digits(run)
    rows = [[pair, fmt_ci(entry, digits), "yes" if _is_clear(entry) else "no"]
            for pair, entry in contrasts.items()]
    return [Paragraph(
        f"Differences between arms: for each pair, the mean {run.target} if every held-out patient "
        "received the first arm minus the mean if every one received the second (doubly "
        "robust; each interval is for its own pair, not adjusted for the number of pairs). A "
        "difference between arms can be clear over all patients while the recommendation for "
        "each individual patient is not: a patient's interval rests on the patients like them, "
        "the population's on all of them."),
        Table(header=["Arms compared", f"Difference in mean {run.target} (95% CI)",
                      "Clear (CI excludes 0)"], rows=rows, caption=CONTRASTS_TITLE)]


def value_section(run: RunFiles) -> Section:
    """The value of following the recommendation against treating everyone with each arm."""
    boot = run.metrics.get("bootstrap") or {}
    best = dig(run.metrics, "policy", "best_single_arm") or DASH
    left_out = left_out_sentence(run)
    blocks: list[Block] = [Paragraph(
        f"Figures on the {fmt_num(run.test_rows)} held-out patients, who were used neither to "
        "train nor to choose the model; they were evaluated once. "
        f"{left_out + ' ' if left_out else ''}The value of a policy (who "
        "gets which arm) is estimated without counterfactual outcomes by doubly-robust (AIPW) "
        "scores: each patient's predicted outcome under an arm, corrected by the observed "
        "outcome weighted by the inverse probability of the arm received (outcome and "
        "propensity models fitted on the development patients only). 95% confidence intervals "
        f"from {fmt_num(boot.get('replicates'))} bootstrap replicates "
        f"({boot.get('method') or 'percentile'}). Following permed means giving each patient "
        "the recommended arm where the recommendation is clear, and the best single arm "
        f"({best}, {_default_note(run)}) where there is no clear difference (if it is not among "
        "a patient's candidate arms, the candidate ranked best on the development patients). "
        f"Policy gain is measured against giving everyone {best}, and is positive when "
        f"following permed does better ({_direction(run)} {run.target} is better)."),
        _test_table(run)]
    comparison = run.metrics.get("ate_comparison")
    if comparison:
        chosen = (run.metrics.get("ate_comparison_chosen_on")
                  or "the non-reference arm of best value on these patients (in-sample)")
        blocks.append(Paragraph(f"The average treatment effect compares {comparison}: "
                                f"{chosen}."))
    blocks += _value_blocks(run)
    share = _share_table(run)
    if share is not None:
        blocks.append(share)
    ate = run.metrics.get("ate_by_arm") or {}
    reference = dig(run.metrics, "treatment", "reference")
    if ate:
        blocks.append(Table(header=["Arm", f"Average effect vs {reference} (95% CI)"],
                            rows=[[arm, fmt_ci(e, _digits(run))] for arm, e in ate.items()],
                            caption="Average treatment effects on the held-out patients "
                                    "(doubly-robust)"))
    blocks += _contrast_blocks(run)
    curve = run.metrics.get("qini_curve")
    if isinstance(curve, Mapping) and curve.get("fraction"):
        blocks += [Figures([Figure(qini_plot(curve), "Qini curve",
                                   "Gain per patient when the patients with the largest "
                                   "predicted benefit are treated first; the area between the "
                                   "curves is the Qini coefficient.")])]
    return Section("performance", VALUE_TITLE, blocks)


def _effects_from(frame: pd.DataFrame, arms: list[str]) -> dict[str, np.ndarray]:
    base = f"outcome_{arms[0]}"
    return {f"{arm} vs {arms[0]}": (frame[f"outcome_{arm}"] - frame[base]).to_numpy(dtype=float)
            for arm in arms[1:] if f"outcome_{arm}" in frame.columns}


def _row_number(value: object) -> str:
    """A row number as it is in the data file: no thousands separator."""
    if isinstance(value, int | float | np.integer | np.floating) and np.isfinite(value):
        return str(int(value))
    return fmt_num(value)


def _example_rows(frame: pd.DataFrame, arms: list[str], digits: int) -> list[list[str]]:
    rows = []
    for _, row in frame.head(_EXAMPLES).iterrows():
        cells = [_row_number(row.get("row")), str(row.get("arm_received", DASH))]
        for arm in arms:
            cells.append(fmt_ci({"value": row[f"outcome_{arm}"],
                                 "ci_low": row[f"outcome_{arm}_low"],
                                 "ci_high": row[f"outcome_{arm}_high"]}, digits))
        recommended = str(row.get("recommended", DASH))
        if recommended == NO_CLEAR:
            recommended = f"{NO_CLEAR} ({str(row.get('candidates', '')).replace(';', ', ')})"
        cells.append(recommended)
        rows.append(cells)
    return rows


def outcomes_section(run: RunFiles) -> Section:
    """Per patient: expected outcome under each arm with its interval, and the recommendation."""
    title = OUTCOMES_TITLE
    arms = _arms(run)
    frame = run.predictions
    needed = [f"outcome_{a}{s}" for a in arms for s in ("", "_low", "_high")]
    if frame is None or not arms or any(c not in frame.columns for c in needed):
        return Section("outcomes", title, [Note(
            "predictions.csv lacks the expected-outcome columns, so this part is left out.",
            tone="warning")])
    digits = _digits(run)
    blocks: list[Block] = [Paragraph(
        f"For each patient permed estimates the {run.target} expected under every arm, with a "
        "95% confidence interval. The recommended arm is the one with the best expected "
        "outcome; when another arm's disadvantage against it has an interval that includes 0, "
        f"the recommendation is '{NO_CLEAR}' and the arms that cannot be told apart are "
        f"named. '{NO_CLEAR}' means the data cannot rank these arms for this patient at the "
        "95% level, not that the arms are equivalent."
        + (" The intervals are per comparison, not adjusted for the number of arms compared."
           if len(arms) > 2 else "")
        + " `permed predict RUN_DIR DATA` gives the same columns for new patients.")]
    effects = _effects_from(frame, arms)
    if effects:
        blocks.append(Figures([Figure(effect_histogram(effects, run.target), "Effects",
                                      "Each patient's estimated effect of an arm against the "
                                      f"reference arm {arms[0]}.")]))
    if run_is_encrypted(run):
        blocks.append(patients_left_out("the held-out patients' rows",
                                        "permed predict RUN_DIR DATA"))
    else:
        blocks.append(Table(header=["Row", "Arm received", *[f"{a} (95% CI)" for a in arms],
                                    "Recommendation"],
                            rows=_example_rows(frame, arms, digits),
                            caption=f"The first {min(_EXAMPLES, len(frame))} held-out patients"))
    return Section("outcomes", title, blocks)


def _overlap_rows(by_arm: Mapping[str, Any]) -> list[list[str]]:
    return [[arm, fmt_pct(e.get("share")), fmt_num(e.get("min")), fmt_num(e.get("mean")),
             fmt_num(e.get("max")), fmt_pct(e.get("below"))] for arm, e in by_arm.items()]


def _balance_table(balance: Mapping[str, Any]) -> Table | None:
    features = balance.get("features") or []
    if not features:
        return None
    threshold = balance.get("threshold") or 0.1
    rows = [[str(f.get("feature")), fmt_num(f.get("before")), fmt_num(f.get("after")),
             "\u26a0 imbalanced" if (f.get("after") or 0) > threshold else ""]
            for f in features[:15]]
    return Table(header=["Feature", "Before weighting", "After weighting", ""], rows=rows,
                 caption=f"Standardized mean differences ({balance.get('comparison')}); the 15 "
                         f"largest before weighting; above {fmt_num(threshold)} is imbalanced")


def overlap_section(run: RunFiles) -> Section:
    """Propensity model, overlap diagnostics, trimming and covariate balance."""
    title = "Overlap and balance: could every patient have received every arm?"
    overlap = run.metrics.get("overlap") or {}
    by_arm = overlap.get("by_arm") or {}
    assignment = dig(run.metrics, "treatment", "assignment") or DASH
    blocks: list[Block] = [Paragraph(
        "Effects can only be learned for patients who could have received each arm. The "
        "propensity is a patient's probability of each arm given the features: in a "
        "randomized trial it is the arm share for everyone; where some patients had almost no "
        "chance of an arm, their effect for it is extrapolated from other patients."),
        key_value_table([("Assignment", assignment),
                         ("Propensity of", overlap.get("scope") or DASH),
                         ("Threshold", fmt_num(overlap.get("threshold")))])]
    warnings = overlap.get("warnings") or []
    if warnings:
        blocks.append(Note("Poor overlap:", tone="warning", title="Overlap", items=warnings))
    elif by_arm:
        blocks.append(Note("No patient's propensity for any arm is below the threshold.",
                           tone="ok"))
    if by_arm:
        blocks.append(Table(header=["Arm", "Share of patients", "Min propensity", "Mean", "Max",
                                    "Share below threshold"], rows=_overlap_rows(by_arm),
                            caption="Propensities of the development patients (out-of-fold)"))
        blocks.append(Figures([Figure(overlap_plot(by_arm), "Propensity histograms",
                                      "For each arm, its propensity among the patients who "
                                      "received it and among the others: the two should "
                                      "overlap.")]))
    trim = run.metrics.get("trim") or {}
    if trim.get("threshold"):
        blocks.append(Paragraph(
            f"Trimming (--trim {fmt_num(trim.get('threshold'))}): "
            f"{fmt_num(trim.get('dropped_development'))} development and "
            f"{fmt_num(trim.get('dropped_test'))} test patients with a propensity below the "
            "threshold for some arm were left out; the figures describe the others."))
    balance = run.metrics.get("balance") or {}
    table = _balance_table(balance)
    if table is not None:
        blocks += [Paragraph(
            "Covariate balance: the standardized mean difference of each feature between arms, "
            "before and after weighting each patient by the inverse propensity of the arm "
            f"received. {fmt_num(balance.get('imbalanced_before'))} features are above "
            f"{fmt_num(balance.get('threshold'))} before weighting, "
            f"{fmt_num(balance.get('imbalanced_after'))} after."), table]
    return Section("overlap", title, blocks)


def selection_section(run: RunFiles) -> Section:
    """How the effect model was chosen, and the nuisance models behind the evaluation."""
    nuisance = run.metrics.get("nuisance") or {}
    selection = run.metrics.get("selection") or {}
    mse = nuisance.get("outcome_mse") or {}
    chosen = nuisance.get("outcome_model")
    mark = " \u2714 chosen"
    rows = [[name + (mark if name == chosen else ""), fmt_num(value, 2)]
            for name, value in mse.items()]
    details = run.metrics.get("cv_details") or {}
    blocks: list[Block] = [
        Paragraph(f"Selection criterion: {selection.get('rule') or DASH}. True effects are "
                  "never observed, so the criterion compares each model's effects with "
                  "doubly-robust pseudo-effects on patients it was not fitted on; its expected "
                  "value equals the model's error against the true effects plus a constant "
                  "that is the same for every model."),
        Table(header=["Estimator", "What it is"],
              rows=[[name, str(d.get("description") or DASH)] for name, d in details.items()],
              caption="Candidate effect estimators (EconML)"),
    ]
    if rows:
        blocks.append(Table(header=["Outcome model family", "Cross-fitted squared error"],
                            rows=rows, marked=frozenset(
                                i for i, name in enumerate(mse) if name == chosen),
                            caption="Base outcome model of every estimator and of the "
                                    "doubly-robust scores, chosen on the observed outcomes"))
    blocks.append(key_value_table([
        ("Outcome model", nuisance.get("outcome_description")),
        ("Propensity model", nuisance.get("propensity_model")),
        ("Propensity source", nuisance.get("propensity_source")),
    ]))
    return Section("selection", "How the effect model was chosen", blocks)


def _typical_width(run: RunFiles) -> float | None:
    """Median width of the held-out patients' 95% interval of the advantage (a per-patient
    difference between two arms), from predictions.csv; None when it is not there."""
    frame = run.predictions
    if frame is None or not {"advantage_low", "advantage_high"} <= set(frame.columns):
        return None
    width = (pd.to_numeric(frame["advantage_high"], errors="coerce")
             - pd.to_numeric(frame["advantage_low"], errors="coerce")).to_numpy(dtype=float)
    width = width[np.isfinite(width)]
    return float(np.median(width)) if width.size else None


def _spread_sentence(sd: object, width: float | None, digits: int) -> str:
    """The spread of the estimated effects set against one patient's interval."""
    if width is None or not isinstance(sd, int | float) or not np.isfinite(sd):
        return ""
    # about 4 standard deviations hold the middle 95% of patients, as a 95% interval is about
    # 4 standard errors wide: the two widths are comparable
    span = 4 * float(sd)
    text = (f"; the middle 95% of patients' estimates span about {fmt_num(span, digits)}, while "
            "one held-out patient's 95% interval for a difference between two arms is typically "
            f"{fmt_num(width, digits)} wide (median)")
    if span < width:
        return (f"{text}. The spread is smaller than the intervals, so it is not evidence that "
                "this effect differs between patients")
    return (f"{text}. The spread is wider than the intervals: the effect may differ between "
            "patients (no formal test of this is made)")


def _comparison_blocks(label: str, entry: Mapping[str, Any], digits: int,
                       width: float | None) -> list[Block]:
    importance = entry.get("importance") or []
    head = (f"{label}: mean effect {fmt_num(entry.get('mean'), digits)}, standard deviation "
            f"between patients {fmt_num(entry.get('sd'), digits)}")
    if not importance:
        return [Paragraph(head + ": the effects barely vary between patients.")]
    blocks: list[Block] = [Paragraph(
        f"{head}{_spread_sentence(entry.get('sd'), width, digits)}. The features explain "
        f"{fmt_pct(entry.get('surrogate_r2'))} of the variation of the model's estimates "
        "(cross-validated R\u00b2 of the surrogate fitted to them).")]
    blocks.append(Table(header=["Feature", "Share of importance"],
                        rows=[[str(i.get("feature")), fmt_pct(i.get("share"))]
                              for i in importance],
                        caption=f"{label}: features that drive the differences in effect"))
    subgroups = entry.get("subgroups") or []
    if subgroups:
        blocks.append(Table(header=["Subgroup", "Patients", "Mean effect"],
                            rows=[[str(s.get("rule")), fmt_num(s.get("patients")),
                                   fmt_num(s.get("effect"), digits)] for s in subgroups],
                            caption=f"{label}: subgroups found by a depth-2 tree on the "
                                    "development patients' estimated effects (no intervals: "
                                    "candidates to test, not findings)"))
    return blocks


def heterogeneity_section(run: RunFiles) -> Section:
    """Which features drive the differences in effect between patients."""
    title = "What drives the differences in effect between patients"
    entry = run.metrics.get("heterogeneity") or {}
    comparisons = entry.get("comparisons") or {}
    if not comparisons:
        return Section("heterogeneity", title, [Note(
            "metrics.json records no analysis of the effects.", tone="warning")])
    blocks: list[Block] = [Paragraph(
        f"Method: {entry.get('method') or DASH}. These describe what the effect model does: "
        "a feature that drives the estimated effect is a candidate effect modifier, to be "
        "confirmed, not a proven one. The spread between patients and the share of it the "
        "features explain (R\u00b2) are those of the model's own estimates, not of the true "
        "effects: a spread smaller than one patient's interval is not evidence that the effect "
        "really differs between patients.")]
    width = _typical_width(run)
    for label, comparison in comparisons.items():
        blocks += _comparison_blocks(str(label), comparison or {}, _digits(run), width)
    return Section("heterogeneity", title, blocks)


def treat_uncertainty(run: RunFiles) -> str:
    """The model card's 'Uncertainty' of a treat run: per-patient and policy intervals."""
    arms = _arms(run)
    method = _INTERVAL_METHODS.get(str(run.metrics.get("selected_model")))
    how = f" ({method})" if method else ""
    unadjusted = (f", each for one comparison (not adjusted for the {len(arms)} arms)"
                  if len(arms) > 2 else "")
    shares = dig(run.metrics, "policy", "recommendation_share")
    # a run where every recommendation is clear records no "no clear difference" share
    unclear = (f": {fmt_pct(shares.get(NO_CLEAR) or 0.0)} of test patients"
               if isinstance(shares, Mapping) and shares else "")
    boot = run.metrics.get("bootstrap") or {}
    return (f"Every patient's expected {run.target} under each arm, and the advantage of the "
            "best arm over its closest competitor, come with a 95% confidence interval"
            f"{how}{unadjusted}. An arm is recommended only when the interval of its advantage "
            f"is above 0, otherwise '{NO_CLEAR}'{unclear}. Policy values, policy gain and "
            f"average treatment effects have 95% CIs from {fmt_num(boot.get('replicates'))} "
            "bootstrap replicates of the held-out patients "
            f"({boot.get('method') or 'percentile'}). See '{OUTCOMES_TITLE}' and "
            f"'{VALUE_TITLE}'.")


def _share_words(share: float) -> str:
    """A share of patients in words: never '0%' or '100%' unless it is exactly that."""
    if share <= 0.0:
        return "none"
    if share >= 1.0:
        return "all"
    shown = fmt_pct(share, 0)
    return {"0%": "under 1%", "100%": "over 99%"}.get(shown, shown)


def _unclear_sentence(run: RunFiles) -> str:
    """How many patients get no clear recommendation, and why that is not equivalence."""
    shares = dig(run.metrics, "policy", "recommendation_share") or {}
    arms = _arms(run)
    unadjusted = (f" (per-patient intervals, not adjusted for the {len(arms)} arms compared)"
                  if len(arms) > 2 else "")
    share = float(shares.get(NO_CLEAR) or 0.0)
    outside = float(shares.get(OUTSIDE) or 0.0)
    beyond = (f"{_share_words(outside).capitalize()} of these patients lie outside the data: an "
              "arm was never given to development patients like them, so no arm is recommended "
              f"for them ('{OUTSIDE}'). " if outside > 0.0 else "")
    if share <= 0.0:
        whom = "every other patient" if beyond else "every one of these patients"
        return (f"{beyond}For {whom} one arm is clearly better than the others at the 95% "
                f"level{unadjusted}.")
    if share >= 1.0:
        text = (f"{beyond}For none of these patients can the data rank the arms for the "
                f"individual patient at the 95% level{unadjusted}.")
    else:
        text = (f"{beyond}For {_share_words(share)} of these patients the data cannot rank the "
                f"arms for the individual patient at the 95% level{unadjusted}.")
    contrasts = _contrasts(run)
    clear = sum(_is_clear(entry) for entry in contrasts.values())
    if contrasts:
        return (f"{text} That does not make the arms equivalent: over all held-out patients, "
                f"{clear} of the {len(contrasts)} differences between two arms are clear (95% CI "
                f"excluding 0; see '{CONTRASTS_TITLE}').")
    return (f"{text} That does not make the arms equivalent: a difference between arms can be "
            "clear over all patients while the recommendation for each patient is not.")


def left_out_sentence(run: RunFiles) -> str:
    """The patients read but left out before the split for a missing outcome or arm.

    A treat run records no count of its own; it is what the rows read leave beyond the
    development and test patients and those ``--trim`` dropped (the workflow leaves out a row
    for nothing else). Empty when there are none or the counts are not recorded.
    """
    data = run.metrics.get("data") or {}
    counts = [data.get(k) for k in ("rows", "development_rows", "test_rows")]
    if run.external is not None or not all(isinstance(c, int) for c in counts):
        return ""
    trim = run.metrics.get("trim") or {}
    trimmed = sum(int(trim.get(k) or 0) for k in ("dropped_development", "dropped_test"))
    left_out = counts[0] - counts[1] - counts[2] - trimmed
    if left_out <= 0:
        return ""
    return (f"{fmt_num(left_out)} of the {fmt_num(counts[0])} patients read had no recorded "
            f"outcome or arm and were left out before the split (see the warnings).")


def treat_summary(run: RunFiles) -> str:
    """The one-paragraph plain summary of a treat run."""
    model = run.metrics.get("selected_model") or DASH
    digits = _digits(run)
    value = fmt_ci(run.test_entry("policy_value"), digits)
    gain = fmt_ci(run.test_entry("policy_gain"), digits)
    best = dig(run.metrics, "policy", "best_single_arm") or DASH
    best_value = fmt_ci(dig(run.metrics, "policy", "value_by_arm", best), digits)
    text = (f"On {fmt_num(run.test_rows)} held-out patients, following the recommendation of "
            f"the selected model ({model}), with {best} where it cannot rank the arms for the "
            f"patient, gives an estimated mean {run.target} of {value}, against {best_value} if "
            f"everyone received the best single arm ({best}, {_default_note(run, short=True)}): "
            f"a gain of {gain} ({_direction(run)} is better). {_unclear_sentence(run)}")
    given = dig(run.metrics, "policy", "policy_arm_share") or {}
    if given.get(best) == 1.0:  # the policy is the best single arm: a gain of 0 by construction
        text += (f" Following permed gives every held-out patient {best}, the best single arm, "
                 "so the gain is 0 by construction: no recommendation differs from giving everyone "
                 f"{best}.")
    warnings = dig(run.metrics, "overlap", "warnings") or []
    if warnings:
        text += f" Overlap warning: {warnings[0]}."
    return f"{text} {fairness_sentence(run)}"


register_sections("treat", [value_section, outcomes_section, overlap_section,
                            selection_section, heterogeneity_section, explanation_section],
                  summary=treat_summary)
