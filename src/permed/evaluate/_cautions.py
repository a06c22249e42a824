"""Whether a run's test figures say anything: discrimination distinguishable from chance, and
enough test patients in each class (or with the event) to carry them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["cautions", "chance_warning", "counts_in_test", "small_test_warning"]

# The discrimination figure of each task's test entry, and its name for people.
_DISCRIMINATION = {"auroc": "AUROC", "c_index": "C-index"}
# Fewer test patients than this in a class (diagnose) or with the event (risk) are flagged.
MIN_TEST_CLASS = 10


def cautions(metrics: Mapping[str, Any]) -> list[str]:
    """Every warning about a run's test figures (see the functions below)."""
    found = [chance_warning(metrics.get("test") or {}), small_test_warning(metrics)]
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
