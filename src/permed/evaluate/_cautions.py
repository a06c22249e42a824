"""Whether a run's test figures say anything: discrimination distinguishable from chance,
enough test patients in each class (or with the event) to carry them, and predicted risks that
match what was observed (calibration)."""

from __future__ import annotations

from collections.abc import Mapping
from math import exp, isfinite
from typing import Any

__all__ = ["calibration_warning", "cautions", "chance_warning", "counts_in_test",
           "miscalibration", "small_test_warning"]

# The discrimination figure of each task's test entry, and its name for people.
_DISCRIMINATION = {"auroc": "AUROC", "c_index": "C-index"}
# Fewer test patients than this in a class (diagnose) or with the event (risk) are flagged.
MIN_TEST_CLASS = 10


def cautions(metrics: Mapping[str, Any]) -> list[str]:
    """Every warning about a run's test figures (see the functions below)."""
    found = [chance_warning(metrics.get("test") or {}), small_test_warning(metrics),
             calibration_warning(metrics)]
    return [w for w in found if w]


def chance_warning(test: Mapping[str, Any]) -> str | None:
    """A warning when the test AUROC's (or C-index's) 95% CI reaches 0.5, else None.

    A CI wholly below 0.5 is not a weak model but one that ranks the patients the wrong way
    round: the warning then points to the coding of the outcome.

    Parameters
    ----------
    test : mapping
        The ``test`` entry of ``metrics.json``: metric name -> ``{value, ci_low, ci_high}``.

    Examples
    --------
    >>> chance_warning({"auroc": {"value": 0.58, "ci_low": 0.32, "ci_high": 0.82}})[:44]
    'the test AUROC is 0.580, and its 95% CI (0.3'
    >>> "(0.330-0.470) lies below 0.5" in chance_warning(
    ...     {"c_index": {"value": 0.39, "ci_low": 0.33, "ci_high": 0.47}})
    True
    >>> chance_warning({"auroc": {"value": 0.91, "ci_low": 0.86, "ci_high": 0.95}}) is None
    True
    """
    for name, label in _DISCRIMINATION.items():
        entry = test.get(name)
        if not isinstance(entry, Mapping) or entry.get("ci_low") is None:
            continue
        if entry["ci_low"] > 0.5:
            return None
        figure = (f"the test {label} is {entry['value']:.3f}, and its 95% CI "
                  f"({entry['ci_low']:.3f}-{entry['ci_high']:.3f})")
        if entry.get("ci_high") is not None and entry["ci_high"] < 0.5:
            coding = ("an event column coded 1 = alive or censored" if name == "c_index" else
                      "a target whose positive class is swapped")
            return (f"{figure} lies below 0.5: the model ranks these patients significantly "
                    "worse than chance, which usually means the outcome is coded the other way "
                    f"round ({coding}) or means something else in these patients than in the "
                    "development data; check the outcome's coding and definition before "
                    "reading any other figure")
        return (f"{figure} reaches 0.5: on these patients the model is not shown to rank "
                "patients better than chance; do not use it for decisions before it is trained "
                "on more patients (or events) or better predictors and validated again")
    return None


def small_test_warning(metrics: Mapping[str, Any]) -> str | None:
    """A warning when a test class (diagnose) or the test events (risk) number under 10.

    Examples
    --------
    >>> small_test_warning({"task": "diagnose", "confusion_matrix": {
    ...     "labels": ["no", "yes"], "matrix": [[12, 1], [1, 1]]}})[:62]
    "the test split holds 2 patients with 'yes': the test figures a"
    """
    # a class absent from an external cohort has a warning of its own (its figures are not
    # computed at all); a stratified test split holds every class
    counts = {k: n for k, n in counts_in_test(metrics).items() if n > 0}
    if not counts or min(counts.values()) >= MIN_TEST_CLASS:
        return None
    label, n = min(counts.items(), key=lambda kv: kv[1])
    what = "the event" if metrics.get("task") == "risk" else f"'{label}'"
    where = "the evaluated cohort" if metrics.get("external") else "the test split"
    return (f"{where} holds {n} patients with {what}: the test figures and their 95% "
            "CIs rest on so few that they cannot be trusted (a bootstrap CI can even be of zero "
            "width); validate the model on more patients (permed evaluate RUN_DIR COHORT)")


def counts_in_test(metrics: Mapping[str, Any]) -> dict[str, int]:
    """Test patients in each class (from the confusion matrix), or for risk ``{"event": n}``,
    the test events (summed over the risk groups); empty when metrics.json lacks them."""
    if metrics.get("task") == "risk":
        groups = (metrics.get("risk_groups") or {}).get("groups") or {}
        return {"event": sum(int(g.get("events") or 0) for g in groups.values()
                             if isinstance(g, Mapping))} if groups else {}
    matrix = metrics.get("confusion_matrix") or {}
    return {str(label): sum(row) for label, row in
            zip(matrix.get("labels") or [], matrix.get("matrix") or [], strict=False)}


def calibration_warning(metrics: Mapping[str, Any]) -> str | None:
    """A warning when the test predictions are shown to be miscalibrated, else None.

    See :func:`miscalibration` for what is flagged. The warning says which way and by how much,
    and the fix: recalibrate on local data (an external cohort) or retrain (a test split). When
    no patient had the event by a horizon where risk was predicted, it points first to the
    coding of the event and the time unit.

    Examples
    --------
    >>> calibration_warning({"task": "risk", "external": {}, "calibration": {"horizons": {
    ...     "12": {"observed_expected": {"value": 0.63, "ci_low": 0.47, "ci_high": 0.77},
    ...            "predicted": 0.135, "observed": 0.084}}}})[:76]
    'the model is miscalibrated on the evaluated cohort: it over-estimates the ri'
    """
    found = miscalibration(metrics)
    if not found:
        return None
    external = metrics.get("external") is not None
    where = "the evaluated cohort" if external else "the test split"
    text = f"the model is miscalibrated on {where}: {'; '.join(found)}. "
    eventless = _eventless_horizons(metrics)
    if eventless:
        text += (f"No patient had the event by {_series(eventless, 'or')}, which usually means an "
                 "event column coded the other way round (1 = alive or censored) or times in "
                 "another unit: check those first. ")
    if external:
        run = (metrics.get("external") or {}).get("run") or "RUN"
        return (f"{text}Its risks do not hold at this site, although its ranking of patients "
                f"may: recalibrate it on local data before use (permed recalibrate {run} "
                f"LOCAL_COHORT --out {run}-local), or retrain it with this site's patients "
                "(permed train)")
    if metrics.get("task") == "risk":
        fix = "another model (--models) or more patients"
    else:
        method = (metrics.get("calibration") or {}).get("method") or "none"
        fix = f"another --calibration (this run: {method}) or more patients"
    return (f"{text}Its risks are off even for held-out patients of the development data: "
            f"retrain it with {fix} before using its risks")


def miscalibration(metrics: Mapping[str, Any]) -> list[str]:
    """What is shown to be miscalibrated on the test patients, one clause each; empty if none.

    Flagged when a 95% CI excludes the ideal value, read at the two decimals the clause gives
    (slope 1.48, 95% CI 1.0009-6.55, prints as 1.00 and is not flagged):

    - diagnose (binary): calibration-in-the-large (``test.calibration_intercept``) away from 0,
      the model under-estimates (above 0) or over-estimates (below 0) the risk; the
      calibration slope away from 1;
    - risk, at each horizon enough patients are followed to: observed/expected away from 1
      (below 1: risk over-estimated); the calibration slope away from 1. Nothing is flagged
      with fewer than :data:`MIN_TEST_CLASS` evaluated events.

    A slope below 1 means predictions too extreme (high risks too high, low risks too low),
    typical of overfitting; above 1, too moderate.

    Examples
    --------
    >>> miscalibration({"task": "diagnose", "target": {"column": "disease",
    ...     "positive_class": "yes"}, "test": {"calibration_intercept": {
    ...     "value": 0.878, "ci_low": 0.391, "ci_high": 1.312}}})[0][:68]
    'it under-estimates the risk of disease = yes (calibration-in-the-lar'
    """
    if metrics.get("task") == "risk":
        return _risk_miscalibration(metrics)
    test = metrics.get("test") or {}
    target = metrics.get("target") or {}
    what = (f"the risk of {target['column']} = {target['positive_class']}"
            if target.get("column") and target.get("positive_class") is not None else "the risk")
    found = []
    entry = test.get("calibration_intercept")
    side = _excludes(entry, 0.0)
    if side:
        odds = f"{exp(abs(entry['value'])):.1f}"
        found.append(f"it under-estimates {what} (calibration-in-the-large {_ci_text(entry)}: "
                     f"the observed odds are about {odds} times the predicted)" if side > 0 else
                     f"it over-estimates {what} (calibration-in-the-large {_ci_text(entry)}: "
                     f"the predicted odds are about {odds} times the observed)")
    entry = test.get("calibration_slope")
    side = _excludes(entry, 1.0)
    if side:
        found.append(_slope_clause(side, f"(calibration slope {_ci_text(entry)})"))
    return found


def _risk_miscalibration(metrics: Mapping[str, Any]) -> list[str]:
    """Each way the risk is off (over-/under-estimated, too extreme/moderate), with the
    horizons where it is; nothing with under :data:`MIN_TEST_CLASS` evaluated events, where
    the bootstrap keeps the same few events in every replicate (few.csv: 1 test event gave
    "slope 0.32, 95% CI 0.17-0.66") and :func:`small_test_warning` already speaks."""
    events = counts_in_test(metrics).get("event")
    if events is not None and events < MIN_TEST_CLASS:
        return []
    ways: dict[tuple[str, int], list[str]] = {}
    for by, figures in _checked_horizons(metrics):
        oe = figures.get("observed_expected")
        side = _excludes(oe, 1.0)
        if side:
            ways.setdefault(("level", side), []).append(
                f"{by} ({_pct(figures.get('predicted'))} predicted, "
                f"{_pct(figures.get('observed'))} observed; observed/expected {_ci_text(oe)})")
        side = _excludes(figures.get("slope"), 1.0)
        if side:
            ways.setdefault(("spread", side), []).append(
                f"{by} (calibration slope {_ci_text(figures['slope'])})")
    return [f"it {'under' if side > 0 else 'over'}-estimates the risk {_series(where)}"
            if kind == "level" else _slope_clause(side, _series(where))
            for (kind, side), where in ways.items()]


def _checked_horizons(metrics: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    """``("by 12 months", figures)`` (``"by time 12"`` without a unit) for each horizon enough
    patients are followed to."""
    horizons = (metrics.get("calibration") or {}).get("horizons") or {}
    thin = (metrics.get("horizons") or {}).get("not_checkable") or {}
    unit = (metrics.get("outcome") or {}).get("time_unit")
    return [(f"by {h} {unit}" if unit else f"by time {h}", figures)
            for h, figures in horizons.items()
            if str(h) not in thin and isinstance(figures, Mapping)]


def _eventless_horizons(metrics: Mapping[str, Any]) -> list[str]:
    """The checked horizons (``"180"``) where risk was predicted and no patient had the event."""
    if metrics.get("task") != "risk":
        return []
    return [by.removeprefix("by ").removeprefix("time ")
            for by, figures in _checked_horizons(metrics)
            if figures.get("observed") == 0.0 and _excludes(figures.get("observed_expected"), 1.0)]


def _slope_clause(side: int, where: str) -> str:
    if side < 0:
        return f"its predictions are too extreme {where}: high risks too high, low risks too low"
    return f"its predictions are too moderate {where}: high risks too low, low risks too high"


def _excludes(entry: Any, ideal: float) -> int:
    """1 when the 95% CI of ``entry`` lies above ``ideal`` at two decimals, -1 below, else 0."""
    if not isinstance(entry, Mapping):
        return 0
    low, high = entry.get("ci_low"), entry.get("ci_high")
    if not all(isinstance(v, int | float) and isfinite(v)
               for v in (entry.get("value"), low, high)):
        return 0
    if round(low, 2) > ideal:
        return 1
    return -1 if round(high, 2) < ideal else 0


def _ci_text(entry: Mapping[str, Any]) -> str:
    low, high = entry["ci_low"], entry["ci_high"]
    dash = " to " if min(low, high) < 0 else "-"  # -1.74 to -0.46, not -1.74--0.46
    return f"{entry['value']:.2f}, 95% CI {low:.2f}{dash}{high:.2f}"


def _series(items: list[str], last: str = "and") -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} {last} {items[-1]}"


def _pct(value: Any) -> str:
    return f"{100 * value:.1f}%" if isinstance(value, int | float) else "-"
