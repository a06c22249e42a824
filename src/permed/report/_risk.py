"""Report sections of the risk task: discrimination, risk groups, calibration, PH check.

Importing this module registers the sections for ``metrics["task"] == "risk"``. Everything is
read from ``metrics.json`` and ``predictions.csv`` (``time``, ``event``, ``risk_group``,
``risk_at_<h>``); nothing is refitted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from sksurv.nonparametric import kaplan_meier_estimator

from permed.evaluate import miscalibration
from permed.report._explain import explanation_section
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
    fmt_general,
    fmt_num,
    fmt_pct,
    metric_digits,
    metric_label,
    metric_meaning,
    register_sections,
)
from permed.report._plots import _GREY, _new_figure, _to_data_uri

_GROUP_COLOURS = {"low": "#2ca02c", "intermediate": "#ff7f0e", "high": "#d62728"}
_RISK_METRICS = ("c_index", "uno_c", "ibs", "td_auc")


def _unit(run: RunFiles) -> str:
    unit = dig(run.metrics, "outcome", "time_unit")
    return f" {unit}" if unit else ""


def _time_label(run: RunFiles) -> str:
    column = dig(run.metrics, "outcome", "time") or "time"
    unit = dig(run.metrics, "outcome", "time_unit")
    return f"{column} ({unit})" if unit else str(column)


def _horizons(run: RunFiles) -> list[str]:
    values = dig(run.metrics, "horizons", "values") or []
    return [f"{float(h):g}" for h in values]


def _at(run: RunFiles, horizon: str) -> str:
    """A horizon with the time unit, singular for 1: ``1 year``, ``3 years``, ``365``."""
    unit = _unit(run).strip()
    if unit and float(horizon) == 1 and unit.endswith("s"):
        unit = unit[:-1]
    return f"{horizon} {unit}" if unit else horizon


def _by(run: RunFiles, horizon: str) -> str:
    """``By 3 years``; without a declared unit ``By time 1825 (in the unit of column
    'time')``, which a bare ``By 1825`` left to guess."""
    if _unit(run):
        return f"By {_at(run, horizon)}"
    column = dig(run.metrics, "outcome", "time") or "time"
    return f"By time {horizon} (in the unit of column '{column}')"


def _not_checkable(run: RunFiles) -> dict[str, int]:
    """Horizons too few patients are followed to (``{horizon: followed}``): their calibration,
    AUC and observed risks cannot be checked (metrics.json ``horizons.not_checkable``)."""
    found = dig(run.metrics, "horizons", "not_checkable")
    return {str(h): int(n) for h, n in found.items()} if isinstance(found, Mapping) else {}


def _unchecked(run: RunFiles, horizon: str) -> str:
    return f"not checkable (only {_not_checkable(run)[horizon]} patients followed this long)"


def _checkable_note(run: RunFiles) -> Note | None:
    thin = _not_checkable(run)
    if not thin:
        return None
    rule = dig(run.metrics, "horizons", "checkable_rule") or "20 patients (or 5%) followed"
    return Note(f"Too few patients are followed to {', '.join(_at(run, h) for h in thin)} for "
                f"the risk by then to be checked ({rule}): its calibration, AUC and observed "
                "risks are not shown.", tone="warning", title="Horizons that cannot be checked")


# --------------------------------------------------------------------------- plots


def km_by_group_plot(time: np.ndarray, event: np.ndarray, groups: np.ndarray,
                     predicted: Mapping[str, Mapping[str, float]], xlabel: str) -> str:
    """Kaplan-Meier curves per risk group, with the mean predicted survival at each horizon.

    Parameters
    ----------
    time, event, groups : ndarray of shape (n,)
    predicted : mapping
        ``{group: {horizon: mean predicted risk}}`` (drawn as open markers, 1 - risk).
    xlabel : str

    Returns
    -------
    str
        A ``data:image/png;base64,...`` URI.
    """
    fig = _new_figure()
    ax = fig.add_subplot()
    for label, colour in _GROUP_COLOURS.items():
        mine = groups == label
        if not mine.any():
            continue
        steps, surv = kaplan_meier_estimator(event[mine], time[mine])
        ax.step(np.r_[0.0, steps], np.r_[1.0, surv], where="post", color=colour, lw=1.8,
                label=f"{label} risk (n={int(mine.sum())})")
        for horizon, risk in (predicted.get(label) or {}).items():
            if risk is not None:
                ax.plot(float(horizon), 1.0 - risk, marker="o", mfc="none", color=colour, ms=6)
    ax.set(ylim=(-0.01, 1.01), xlabel=xlabel, ylabel="Event-free (Kaplan-Meier)")
    ax.set_title("Observed survival by predicted risk group", fontsize=11)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left", fontsize=8)
    return _to_data_uri(fig)


def survival_calibration_plot(deciles: Sequence[Mapping[str, Any]], horizon: str) -> str:
    """Predicted against Kaplan-Meier observed risk at one horizon, per group of predicted risk
    (deciles, fewer in a small cohort), with 95% CIs.

    Parameters
    ----------
    deciles : sequence of mapping
        Rows of ``metrics["calibration"]["horizons"][h]["deciles"]``.
    horizon : str

    Returns
    -------
    str
        A ``data:image/png;base64,...`` URI.
    """
    predicted = np.array([float(d["predicted"]) for d in deciles])
    observed = np.array([float(d["observed"]) for d in deciles])
    low = np.array([_finite(d.get("observed_low"), o) for d, o in zip(deciles, observed,
                                                                        strict=True)])
    high = np.array([_finite(d.get("observed_high"), o) for d, o in zip(deciles, observed,
                                                                          strict=True)])
    top = max(1e-3, float(np.nanmax(np.r_[predicted, high])) * 1.05)
    fig = _new_figure()
    ax = fig.add_subplot()
    ax.plot([0, top], [0, top], ls="--", color=_GREY, lw=1, label="perfect calibration")
    ax.errorbar(predicted, observed, yerr=[np.clip(observed - low, 0, None),
                                           np.clip(high - observed, 0, None)],
                marker="o", ms=4, lw=1.2, capsize=2, label="group of predicted risk")
    ax.set(xlim=(0, top), ylim=(0, top), xlabel=f"Predicted risk by {horizon}",
           ylabel=f"Observed risk by {horizon} (Kaplan-Meier)")
    ax.set_title(f"Calibration at {horizon}", fontsize=11)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    return _to_data_uri(fig)


def _finite(value: object, default: float) -> float:
    return float(value) if isinstance(value, int | float) and np.isfinite(value) else default


def td_auc_plot(by_horizon: Mapping[str, Mapping[str, Any]], xlabel: str) -> str:
    """Time-dependent AUC at each horizon with its 95% CI.

    Returns
    -------
    str
        A ``data:image/png;base64,...`` URI.
    """
    horizons = [float(h) for h in by_horizon]
    values = [_finite(e.get("value"), np.nan) for e in by_horizon.values()]
    low = [_finite(e.get("ci_low"), v) for e, v in zip(by_horizon.values(), values, strict=True)]
    high = [_finite(e.get("ci_high"), v) for e, v in zip(by_horizon.values(), values,
                                                          strict=True)]
    fig = _new_figure()
    ax = fig.add_subplot()
    ax.errorbar(horizons, values, yerr=[np.subtract(values, low), np.subtract(high, values)],
                marker="o", lw=1.5, capsize=3, label="model")
    ax.axhline(0.5, ls="--", color=_GREY, lw=1, label="chance")
    ax.set(ylim=(0.3, 1.0), xlabel=xlabel, ylabel="AUC for events by this time")
    ax.set_title("Time-dependent AUC (cumulative/dynamic)", fontsize=11)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    return _to_data_uri(fig)


# --------------------------------------------------------------------------- sections


def outcome_blocks(run: RunFiles) -> list[Block]:
    """The data section's account of a time-to-event outcome (in place of outcome classes):
    what the time and event columns mean, and the follow-up of each set of patients."""
    outcome = run.metrics.get("outcome") or {}
    blocks: list[Block] = [Paragraph(outcome_text(run))]
    sets = _follow_up_sets(run)
    if not sets:
        return blocks
    horizons = _horizons(run)
    rows = [["Patients", *(fmt_num(f.get("patients")) for _, f in sets)],
            ["Events", *(fmt_num(f.get("events")) for _, f in sets)],
            ["Median follow-up, reverse Kaplan-Meier (IQR)",
             *(_median_iqr(f) for _, f in sets)],
            ["Longest follow-up", *(fmt_general(f.get("max")) for _, f in sets)]]
    rows += [[f"Observed risk by {_at(run, h)} (Kaplan-Meier)",
              *(_km_cell(f, h) for _, f in sets)] for h in horizons]
    return [*blocks, Table(
        header=["", *(name for name, _ in sets)], rows=rows,
        caption=f"Follow-up ({_time_label(run)}) and outcome of the patients; "
                f"{dig(outcome, 'follow_up', 'method') or 'reverse Kaplan-Meier'}")]


def outcome_text(run: RunFiles) -> str:
    """The outcome in words: time column and unit, event definition, censoring, counts."""
    outcome = run.metrics.get("outcome") or {}
    column = outcome.get("time") or "time"
    unit = outcome.get("time_unit")
    event = dig(run.metrics, "target", "column") or ""
    event_column = outcome.get("event_column") or str(event).split(" (time:")[0] or "event"
    return (f"Time to event. Column '{column}' is each patient's follow-up "
            f"({f'in {unit}' if unit else 'in no declared unit'}) from the start of follow-up "
            f"to the event or the last contact; the event is '{event_column}' = "
            f"{outcome.get('event_value') or '1 (or True)'}. A patient without the event is "
            "censored at the last contact: followed event-free until then, unknown after. "
            f"{fmt_num(outcome.get('event'))} patients had the event and "
            f"{fmt_num(outcome.get('censored'))} were censored"
            + (" (the patients evaluated)." if run.external is not None else " (all rows)."))


def follow_up_text(run: RunFiles) -> str:
    """``development: median 1645 (IQR 1095-1965), longest 2612, 239 events, Kaplan-Meier
    risk by 365 9.0%, ...; test: ...`` (empty for runs that did not record it)."""
    parts = []
    for name, f in _follow_up_sets(run):
        risks = ", ".join(f"by {_at(run, h)} {_km_cell(f, h)}" for h in _horizons(run))
        parts.append(f"{name.lower()}: {fmt_num(f.get('patients'))} patients, "
                     f"{fmt_num(f.get('events'))} events, median follow-up "
                     f"{_median_iqr(f, 'IQR ')}, "
                     f"longest {fmt_general(f.get('max'))}; Kaplan-Meier risk {risks or DASH}")
    return "; ".join(parts)


def _follow_up_sets(run: RunFiles) -> list[tuple[str, Mapping[str, Any]]]:
    found = dig(run.metrics, "outcome", "follow_up") or {}
    names = (("development", "Development (from its run)"), ("test", "External cohort")) \
        if run.external is not None else (("development", "Development"), ("test", "Test"))
    return [(label, found[key]) for key, label in names
            if isinstance(found, Mapping) and isinstance(found.get(key), Mapping)]


def _median_iqr(follow_up: Mapping[str, Any], label: str = "") -> str:
    iqr = follow_up.get("iqr") or [None, None]
    return (f"{fmt_general(follow_up.get('median'))} ({label}{fmt_general(iqr[0])}\u2013"
            f"{fmt_general(iqr[1])})")


def _km_cell(follow_up: Mapping[str, Any], horizon: str) -> str:
    followed = dig(follow_up, "followed", horizon)
    if followed == 0:
        return "none followed this long"
    return (f"{fmt_pct(dig(follow_up, 'km_risk', horizon))}"
            + (f" ({fmt_num(followed)} followed)" if isinstance(followed, int) else ""))


def _meaning(run: RunFiles, metric: str) -> str:
    evaluation = run.metrics.get("evaluation") or {}
    if metric == "uno_c":
        # runs before uno_c_tau_rule was recorded: evaluate truncated at the last checkable
        # horizon, train at the last horizon
        rule = evaluation.get("uno_c_tau_rule") or (
            "the last checkable horizon" if run.external is not None and _not_checkable(run)
            else "the last horizon")
        return (f"C-index weighted for censoring, for events up to tau = "
                f"{fmt_general(evaluation.get('uno_c_tau'))}{_unit(run)} ({rule}).")
    if metric == "ibs":
        times = evaluation.get("ibs_times") or {}
        return (f"Error of the predicted survival curves, averaged from "
                f"{fmt_general(times.get('from'))} to {fmt_general(times.get('to'))}{_unit(run)} "
                "(lower is better; 0.25 is a constant 50% guess).")
    if metric == "td_auc":
        averaged = evaluation.get("td_auc_horizons")
        if not isinstance(averaged, list):  # runs before it was recorded
            return (f"AUROC for events by each horizon ({', '.join(_horizons(run))}"
                    f"{_unit(run)}), averaged.")
        shown = [f"{float(h):g}" for h in averaged]
        if not shown:
            return "AUROC for events by each horizon: no horizon is checkable, none averaged."
        left = [h for h in _horizons(run) if h not in shown]
        return (f"AUROC for events by each horizon ({', '.join(shown)}{_unit(run)}), averaged"
                + (f"; not by {', '.join(left)}, which too few patients are followed to."
                   if left else "."))
    return metric_meaning(metric)


def _metric_rows(run: RunFiles) -> list[list[str]]:
    test = run.metrics.get("test") or {}
    return [[metric_label(m), fmt_ci(test[m], metric_digits(m)), _meaning(run, m)]
            for m in _RISK_METRICS if m in test]


def _estimator_table(run: RunFiles) -> Table | None:
    estimators = run.metrics.get("metric_estimators")
    if not isinstance(estimators, Mapping) or not estimators:
        return None
    rows = [[metric_label(k) if k in _RISK_METRICS else k.replace("_", " ").capitalize(),
             str(v)] for k, v in estimators.items()]
    return Table(header=["Figure", "How it is computed"], rows=rows,
                 caption="Estimators behind each figure")


def _intervals_note(run: RunFiles, where: str = "performance") -> Note | None:
    """A warning when metrics.json records the bootstrap CIs as not estimable (too few
    events: ``bootstrap.intervals_estimable``)."""
    boot = run.metrics.get("bootstrap") or {}
    if boot.get("intervals_estimable") is not False:
        return None
    if where == "calibration":
        return Note("The calibration slopes have no confidence interval and no verdict on "
                    "calibration is given: too few patients had the event (see "
                    "'Performance').", tone="warning", title="Calibration not judged")
    why = boot.get("note") or "too few events"
    return Note(f"No bootstrap confidence interval is shown: {why}. The figures below are "
                "point values on too few events to be relied on.", tone="warning",
                title="Confidence intervals not estimable")


def _td_auc_blocks(run: RunFiles) -> list[Block]:
    """The time-dependent AUC at each horizon, in a table and a plot; a horizon too few
    patients are followed to is marked not checkable and left out of the plot."""
    by_horizon = run.metrics.get("td_auc_by_horizon")
    if not isinstance(by_horizon, Mapping) or not by_horizon:
        return []
    thin = _not_checkable(run)
    blocks: list[Block] = [Table(
        header=["Horizon", "Time-dependent AUC (95% CI)"],
        rows=[[_at(run, h), _unchecked(run, h) if h in thin else fmt_ci(e)]
              for h, e in by_horizon.items()],
        caption="Discrimination of events by each horizon")]
    checked = {h: e for h, e in by_horizon.items() if h not in thin}
    if checked:
        blocks.append(Figures([Figure(td_auc_plot(checked, _time_label(run)),
                                      "Time-dependent AUC",
                                      "Each point: how well the predicted risk by that time "
                                      "separates patients with an event by then from those "
                                      "still event-free.")]))
    return blocks


def performance_section(run: RunFiles) -> Section:
    """Discrimination and accuracy on the test patients, per horizon too."""
    external = run.external is not None
    boot = run.metrics.get("bootstrap") or {}
    who = (f"the {fmt_num(run.test_rows)} patients of the external cohort" if external else
           f"the {fmt_num(run.test_rows)} held-out patients, who were used neither to train nor "
           "to choose the model; they were evaluated once")
    blocks: list[Block] = [Paragraph(
        f"Figures on {who}. 95% confidence intervals from {fmt_num(boot.get('replicates'))} "
        f"bootstrap replicates ({boot.get('method') or 'percentile'}).")]
    note = _intervals_note(run)
    if note is not None:
        blocks.append(note)
    rows = _metric_rows(run)
    if not rows:
        return Section("performance", "Performance", [Note("metrics.json has no test figures.",
                                                           tone="warning")])
    blocks.append(Table(header=["Measure", "Value (95% CI)", "What it means"], rows=rows))
    blocks += _td_auc_blocks(run)
    table = _estimator_table(run)
    if table is not None:
        blocks.append(table)
    where = "the external cohort" if external else "held-out patients"
    return Section("performance", f"Performance on {where}", blocks)


def _group_rows(run: RunFiles) -> list[list[str]]:
    groups = dig(run.metrics, "risk_groups", "groups") or {}
    horizons, thin = _horizons(run), _not_checkable(run)
    rows = []
    for label, figures in groups.items():
        cells = [str(label), fmt_num(figures.get("n")), fmt_num(figures.get("events"))]
        for h in horizons:
            cells.append(_unchecked(run, h) if h in thin else
                         f"{fmt_pct(dig(figures, 'predicted', h))} / "
                         + (f"{fmt_pct(dig(figures, 'observed', h))}" if _followed(figures, h)
                            else "none followed this long"))
        rows.append(cells)
    return rows


def _followed(group: object, horizon: str) -> bool:
    """Whether some patient of a risk group is followed to ``horizon`` (runs that did not
    record it: assumed); if none is, the group's Kaplan-Meier risk there is its curve carried
    flat from an earlier time, not an observed risk."""
    followed = dig(group, "followed", horizon)
    return not isinstance(followed, int | float) or followed > 0


def _km_figure(run: RunFiles) -> Block:
    frame = run.predictions
    needed = {"time", "event", "risk_group"}
    if frame is None or not needed <= set(frame.columns):
        return Note(f"The Kaplan-Meier curves are left out: predictions.csv lacks the columns "
                    f"{sorted(needed)}.", tone="warning")
    groups = dig(run.metrics, "risk_groups", "groups") or {}
    thin = _not_checkable(run)
    predicted = {label: {h: r for h, r in (dig(g, "predicted") or {}).items() if h not in thin}
                 for label, g in groups.items()}
    uri = km_by_group_plot(frame["time"].to_numpy(float), frame["event"].to_numpy(bool),
                           frame["risk_group"].astype(str).to_numpy(), predicted,
                           _time_label(run))
    return Figures([Figure(uri, "Kaplan-Meier curves by risk group",
                           "Lines: observed event-free share in each predicted risk group. "
                           "Circles: mean predicted event-free probability at each horizon.")])


def risk_groups_section(run: RunFiles) -> Section | None:
    """Kaplan-Meier curves by risk group, their figures and the log-rank test."""
    risk_groups = run.metrics.get("risk_groups")
    if not isinstance(risk_groups, Mapping):
        return None
    logrank = risk_groups.get("logrank") or {}
    p = logrank.get("p_value")
    verdict = ("the groups' survival differs (p < 0.05)" if isinstance(p, float) and p < 0.05
               else "no difference between the groups was shown")
    header = ["Risk group", "Patients", "Events"] + [
        f"Risk by {_at(run, h)}: predicted / observed" for h in _horizons(run)]
    return Section("risk-groups", "Risk groups: who has the event sooner?", [
        Paragraph(f"Patients are placed in three groups by their predicted risk score "
                  f"({risk_groups.get('method') or DASH}). Log-rank test between the groups: "
                  f"chi-squared {fmt_num(logrank.get('statistic'))} on "
                  f"{fmt_num(logrank.get('df'))} degrees of freedom, {_p_text(p, 'p')}: "
                  f"{verdict}."),
        Table(header=header, rows=_group_rows(run),
              caption="Observed risk is 1 minus the Kaplan-Meier estimate in the group"),
        _km_figure(run),
    ])


def _p_text(p: object, name: str = "") -> str:
    """``0.112``, ``< 0.001``; with a name, ``p = 0.112`` or ``p < 0.001``."""
    if not isinstance(p, int | float) or not np.isfinite(p):
        return f"{name} = {DASH}" if name else DASH
    text = "< 0.001" if p < 0.001 else f"{p:.3f}"
    if not name:
        return text
    return f"{name} {text}" if text.startswith("<") else f"{name} = {text}"


def calibration_groups(run: RunFiles) -> str | None:
    """How the patients are grouped for calibration, in words: ``7 groups of about 22
    patients`` (training makes ten groups, fewer when that leaves under 20 patients a group);
    None when metrics.json records no groups."""
    horizons = dig(run.metrics, "calibration", "horizons")
    for figures_at in (horizons.values() if isinstance(horizons, Mapping) else []):
        groups = figures_at.get("deciles") if isinstance(figures_at, Mapping) else None
        if groups:
            size = round(sum(int(g.get("n") or 0) for g in groups) / len(groups))
            return (f"{len(groups)} group{'s' if len(groups) != 1 else ''} of about {size} "
                    f"patient{'s' if size != 1 else ''}")
    return None


def calibration_section(run: RunFiles) -> Section:
    """Predicted against observed risk at each horizon: slope, O/E ratio and plots."""
    title = "Calibration: do predicted risks match what happened?"
    horizons = dig(run.metrics, "calibration", "horizons")
    intro = Paragraph(
        f"At each horizon, patients are split into {calibration_groups(run) or 'groups'} by "
        "predicted risk; a calibrated model's mean predicted risk matches the share who had the "
        "event by then (estimated by Kaplan-Meier, which accounts for censoring). The "
        "calibration slope is 1 when the spread of the predictions is right (below 1: too "
        "extreme); the observed/expected ratio is 1 when the overall level is right.")
    if not isinstance(horizons, Mapping) or not horizons:
        return Section("calibration", title, [intro, Note(
            "metrics.json records no calibration figures.", tone="warning")])
    rows, figures, thin = [], [], _not_checkable(run)
    for h, figures_at in horizons.items():
        if h in thin:  # training computed them on a handful of patients
            rows.append([_at(run, h), fmt_pct(figures_at.get("predicted")),
                         _unchecked(run, h), "not checkable", "not checkable"])
            continue
        rows.append([_at(run, h), fmt_pct(figures_at.get("predicted")),
                     fmt_pct(figures_at.get("observed")), fmt_ci(figures_at.get("slope")),
                     fmt_ci(figures_at.get("observed_expected"))])
        figure = _calibration_figure(run, h, figures_at.get("deciles") or [])
        if figure is not None:
            figures.append(figure)
    rows += [[_at(run, h), DASH, _unchecked(run, h), "not checkable", "not checkable"]
             for h in thin if h not in horizons]
    blocks: list[Block] = [intro, Table(
        header=["Horizon", "Mean predicted risk", "Observed risk (Kaplan-Meier)",
                "Calibration slope (95% CI)", "Observed / expected (95% CI)"], rows=rows)]
    for note in (_checkable_note(run), _intervals_note(run, "calibration")):
        if note is not None:
            blocks.insert(1, note)
    if figures:
        blocks.append(Figures(figures))
    return Section("calibration", title, blocks)


def _calibration_figure(run: RunFiles, horizon: str,
                        deciles: Sequence[Mapping[str, Any]]) -> Figure | None:
    """The calibration plot at ``horizon``, without the groups none of whose patients is
    followed that long (``followed`` false): their Kaplan-Meier risk is the curve carried flat
    from an earlier time, not a risk observed by the horizon."""
    shown = [d for d in deciles if d.get("followed", True) is not False]
    left = len(deciles) - len(shown)
    caption = "Error bars: 95% CI of the Kaplan-Meier risk in the group." + (
        f" {left} of the {len(deciles)} groups of predicted risk are left out: none of their "
        f"patients is followed to {_at(run, horizon)}, so no risk by then was observed in "
        "them." if left else "")
    if not shown:
        return None
    return Figure(survival_calibration_plot(shown, _at(run, horizon)),
                  f"Calibration at {_at(run, horizon)}", caption)


def ph_section(run: RunFiles) -> Section | None:
    """The proportional-hazards check of the Cox model, what it means for the selected model,
    and a warning when violated."""
    ph = run.metrics.get("proportional_hazards")
    if not isinstance(ph, Mapping):
        return None
    title = "Proportional hazards (Cox model)"
    if "global" not in ph:
        return Section("proportional-hazards", title, [Paragraph(str(ph.get("note") or DASH))])
    blocks: list[Block] = [Paragraph(
        f"{_ph_assumption(ph)} Test: {ph.get('method') or DASH}; "
        f"{fmt_num(ph.get('events'))} events.")]
    global_p = dig(ph, "global", "p_value")
    if ph.get("violated"):
        blocks.append(_ph_violation(ph, global_p))
    else:
        blocks.append(Note(f"No violation detected ({_p_text(global_p, 'global p')}).",
                           tone="ok"))
    features = ph.get("features") or {}
    rows = [[str(name), fmt_num(f.get("rho")), fmt_num(f.get("statistic")),
             fmt_num(f.get("df", 1)), _p_text(f.get("p_value"))]
            for name, f in sorted(features.items(), key=lambda kv: kv[1].get("p_value") or 1)]
    rows.append(["global", DASH, fmt_num(dig(ph, "global", "statistic")),
                 fmt_num(dig(ph, "global", "df")), _p_text(global_p)])
    blocks.append(Table(header=["Predictor", "Correlation with time", "Chi-squared", "df", "p"],
                        rows=rows[:25],
                        caption="Scaled Schoenfeld residuals against time; a categorical "
                                "predictor is tested as one term (df: its levels less one)"
                                + ("; a spline predictor too (df: its knots less one)"
                                   if ph.get("model") == "coxph_splines" else "")))
    return Section("proportional-hazards", title, blocks)


def _ph_assumption(ph: Mapping[str, Any]) -> str:
    """What the proportional-hazards assumption is, for the selected model."""
    selected = ph.get("selected_model")
    if selected in (None, "coxph"):  # runs before the selected model was recorded: the Cox's
        return ("The Cox model assumes each predictor multiplies the hazard by the same factor "
                "at all times.")
    described = ph.get("selected_description") or selected
    if ph.get("selected_assumes_proportional_hazards"):
        return (f"The selected model ({described}) makes the same assumption as a Cox model: "
                "its hazard is a baseline hazard times exp(risk score), so one patient's hazard "
                "is the same multiple of another's at every time and two patients' survival "
                "curves never cross. A predictor whose effect fades, grows or reverses over "
                "follow-up (a treatment that helps early and harms later) cannot be shown by "
                "it: its risks then average that effect over time, too high at some horizons "
                f"and too low at others. The test below checks each predictor's effect over "
                f"time {_ph_tested_on(ph)}.")
    if ph.get("selected_partly_proportional_hazards"):
        return (f"The selected model ({described}) averages the survival curves of two models "
                "that assume proportional hazards and of a forest that does not: its curves may "
                "cross, but in two of its three members a predictor's effect cannot change over "
                "follow-up, so such an effect is represented mainly by the forest. The test "
                f"below checks each predictor's effect over time {_ph_tested_on(ph)}, a stand-in "
                "for the ensemble's Cox members, not a test of the ensemble itself.")
    return (f"The selected model ({described}) does not assume proportional hazards: its "
            "survival curves may cross. The test below is of the Cox model among the "
            "candidates, which assumes each predictor multiplies the hazard by the same factor "
            "at all times.")


def _ph_tested_on(ph: Mapping[str, Any]) -> str:
    """What the test was run on: the spline Cox model's own fit, or a linear ridge Cox model."""
    if ph.get("model") == "coxph_splines":
        return ("in the selected model's own fit, each continuous predictor's spline terms "
                "together, so an effect that bends but does not change over time is not "
                "flagged")
    return "in a ridge Cox model on the same predictors"


def _ph_violation(ph: Mapping[str, Any], global_p: object) -> Note:
    """The warning of a violated proportional-hazards test: the predictors to stratify, or,
    when no single one is flagged, that the violation is spread over several."""
    violating = list(ph.get("violating_features") or [])
    selected = ph.get("selected_model")
    if selected in (None, "coxph"):
        who = "the Cox model's hazard ratios average effects that change over time, and its"
    elif ph.get("selected_assumes_proportional_hazards"):
        who = ("the selected model, like the Cox model, averages effects that change over "
               "time, and its")
    elif ph.get("selected_partly_proportional_hazards"):
        who = ("two of the selected ensemble's three members average effects that change over "
               "time, and its")
    else:
        return Note(f"The Cox model's proportional-hazards assumption is violated "
                    f"({_p_text(global_p, 'global p')}); the selected model "
                    f"({ph.get('selected_description') or selected}) does not make it.",
                    tone="info", title="Proportional hazards violated (Cox model)",
                    items=violating[:10])
    text = (f"The proportional-hazards assumption is violated ({_p_text(global_p, 'global p')}):"
            f" {who} absolute risks may be off at some horizons.")
    if violating:
        return Note(f"{text} Prefer a model without this assumption (random survival forest) "
                    "or stratify the variables below.", tone="warning",
                    title="Proportional hazards violated", items=violating[:10])
    alpha = ph.get("alpha", 0.05)
    return Note(f"{text} No single predictor's test reaches p < {fmt_num(alpha)}: the "
                "departure is spread over several predictors, none of which can be singled "
                "out to stratify. Prefer a model without this assumption (random survival "
                "forest).", tone="warning", title="Proportional hazards violated")


def risk_summary(run: RunFiles) -> str:
    """The one-paragraph plain summary of a risk run."""
    model = run.metrics.get("selected_model") or DASH
    if run.external is not None:
        who = (f"On {fmt_num(run.test_rows)} patients of an external cohort the model ({model}, "
               f"developed in {run.external.get('run') or 'another run'})")
    else:
        who = f"On {fmt_num(run.test_rows)} held-out patients the selected model ({model})"
    text = (f"{who} ranked patients by time to event with a C-index of "
            f"{fmt_ci(run.test_entry('c_index'))} (Uno's C {fmt_ci(run.test_entry('uno_c'))}); "
            f"integrated Brier score {fmt_ci(run.test_entry('ibs'), 3)}.")
    groups = dig(run.metrics, "risk_groups", "groups") or {}
    # the last horizon enough patients are followed to, and some of each group
    horizons = [h for h in _horizons(run) if h not in _not_checkable(run)
                and all(_followed(groups.get(g), h) for g in ("high", "low"))]
    if dig(run.metrics, "bootstrap", "intervals_estimable") is False:
        horizons = []  # too few events for the groups' risks to say anything
    if horizons and "high" in groups and "low" in groups:
        h = horizons[-1]
        text += (f" {_by(run, h)}, {fmt_pct(dig(groups, 'high', 'observed', h), 0)} of the "
                 f"high-risk third had the event against "
                 f"{fmt_pct(dig(groups, 'low', 'observed', h), 0)} of the low-risk third.")
    off = miscalibration(run.metrics)
    if off:
        fix = ("recalibrate it on this site's patients before using its risks"
               if run.external is not None else "do not use its risks as they are")
        text += f" The model is miscalibrated on these patients: {'; '.join(off)}; {fix}."
    if dig(run.metrics, "proportional_hazards", "violated"):
        ph = run.metrics["proportional_hazards"]
        tester = ("its own test" if ph.get("model") == "coxph_splines"
                  else "a Cox model on the same predictors")
        text += (f" The selected model assumes proportional hazards, and {tester} finds them "
                 "violated (see below)."
                 if ph.get("selected_model") not in (None, "coxph")
                 and ph.get("selected_assumes_proportional_hazards") else
                 " The Cox model's proportional-hazards assumption is violated (see below).")
    return f"{text} {fairness_sentence(run)}"


register_sections("risk", [performance_section, risk_groups_section, calibration_section,
                           ph_section, explanation_section], summary=risk_summary)
