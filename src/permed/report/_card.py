"""The model card (Mitchell et al., FAT* 2019), filled from the run files where software can.

Its items follow the paper's headings: model details, intended use, factors, metrics,
training and evaluation data, ethical considerations, caveats. What the run records is
stated; what only the study team can write (intended use, ethics, owners) is a marked
placeholder, never invented.
"""

from __future__ import annotations

from collections.abc import Mapping

from permed.report._fairness import fairness_sentence
from permed.report._html import (
    DASH,
    RunFiles,
    Section,
    Table,
    Text,
    dig,
    fmt_ci,
    fmt_date,
    fmt_num,
    fmt_pct,
    metric_digits,
    metric_label,
    short_fingerprint,
    todo,
)
from permed.report._treat import left_out_sentence, performance_title, treat_uncertainty

__all__ = ["REQUIRED_SECTIONS", "model_card_section", "required_sections"]

# Section ids every report must have (the test of both formats checks them).
REQUIRED_SECTIONS: dict[str, list[str]] = {
    "common": ["model-card", "data", "models", "fairness", "tripod", "reproduce"],
    "diagnose": ["performance", "calibration", "threshold", "explanations"],
    "risk": ["performance", "risk-groups", "calibration", "explanations"],
    "treat": ["performance", "heterogeneity", "explanations"],
}


def required_sections(task: str) -> list[str]:
    """The section ids a report of ``task`` must contain, in no particular order."""
    return REQUIRED_SECTIONS["common"] + REQUIRED_SECTIONS.get(task, [])


def _details(run: RunFiles) -> str:
    model = run.metrics.get("selected_model") or DASH
    calibration = dig(run.metrics, "calibration", "method")
    threshold = dig(run.metrics, "threshold", "value")
    parts = [f"{run.task} model '{model}' predicting {run.target}"]
    if run.task == "risk":  # a time to event, not classes: censored patients are not 'no event'
        parts.append("(time to event, censored patients followed until their last contact)")
    elif run.classes:
        parts.append(f"(classes {', '.join(run.classes)})")
    text = " ".join(parts) + "."
    if calibration:
        text += (" Calibration: none (the model's own probabilities)." if calibration == "none"
                 else f" Calibration: {calibration}.")
    if threshold is not None:
        text += f" A patient is flagged above a probability of {fmt_num(threshold)}."
    developed = run.developed_in
    text += f" Trained {_when(developed.manifest if developed else {})}"
    if run.external is None:
        return f"{text}."
    return (f"{text} in {run.external.get('run') or DASH}; validated on the external cohort "
            f"{_when(run.manifest)}.")


def _when(manifest: Mapping[str, object]) -> str:
    return (f"{fmt_date(manifest.get('created'))} with permed "
            f"{manifest.get('permed_version') or DASH}")


def _metrics(run: RunFiles) -> str:
    test = run.metrics.get("test") or {}
    shown = [m for m in ("auroc", "auprc", "sensitivity", "specificity", "brier", "ece",
                         "c_index", "policy_value") if m in test]
    figures = "; ".join(f"{metric_label(m)} {fmt_ci(test[m], metric_digits(m))}" for m in shown)
    return (f"{figures or DASH} (95% CIs) on {fmt_num(run.test_rows)} patients. Full tables "
            f"in '{performance_title(run)}'.")


def _data(run: RunFiles) -> str:
    data = run.metrics.get("data") or {}
    if run.external is not None:
        developed = run.development.metrics if run.development else {}
        fingerprint = (dig(developed, "data", "fingerprint")
                       or run.external.get("development_fingerprint"))
        return (f"Evaluation: the external cohort {data.get('source') or DASH}, "
                f"{fmt_num(run.test_rows)} patients, fingerprint "
                f"{short_fingerprint(data.get('fingerprint'))}. Training: "
                f"{_split(developed, fingerprint)}")
    text = _split(run.metrics, data.get("fingerprint"))
    left_out = left_out_sentence(run) if run.task == "treat" else ""
    return f"{text} {left_out}" if left_out else text


def _split(metrics: Mapping[str, object], fingerprint: object) -> str:
    data = dig(metrics, "data", default={})
    return (f"{data.get('source') or DASH}: {fmt_num(data.get('rows'))} rows, fingerprint "
            f"{short_fingerprint(fingerprint)}; {fmt_num(data.get('development_rows'))} for "
            f"development, {fmt_num(data.get('test_rows'))} held out.")


def _explanations(run: RunFiles) -> str:
    entry = run.metrics.get("explanations")
    if not isinstance(entry, Mapping):
        return "Not recorded for this run."
    top = list(entry.get("importance") or {})[:5]
    return (f"{entry.get('explainer') or entry.get('method')}; most influential features: "
            f"{', '.join(top) or DASH}. See 'Explanations'.")


def _uncertainty(run: RunFiles) -> str:
    if run.task == "treat":
        return treat_uncertainty(run)
    info = run.metrics.get("uncertainty")
    if not isinstance(info, Mapping):
        return "Not recorded for this run."
    return (f"Conformal prediction sets at {fmt_pct(info.get('coverage_target'), 0)} stated "
            f"coverage; {fmt_pct(info.get('share_referred'))} of test patients referred to a "
            "clinician.")


def model_card_section(run: RunFiles) -> Section:
    """The model card as a two-column table: item, what the run records (or a placeholder)."""
    rows: list[tuple[str, Text]] = [
        ("Model details", _details(run)),
        ("Intended use", todo("the clinical setting, target population, intended users and "
                              "the decision the model supports.")),
        ("Out-of-scope use", todo("populations, settings and decisions the model must not be "
                                  "used for.")),
        ("Factors (groups audited)", fairness_sentence(run)),
        ("Metrics", _metrics(run)),
        ("Training and evaluation data", _data(run)),
        ("Explanations", _explanations(run)),
        ("Uncertainty", _uncertainty(run)),
        ("Ethical considerations", todo("risks to patients, consent and data governance, and "
                                        "how flagged disparities are handled.")),
        ("Caveats and recommendations", todo("known limitations and what must be checked "
                                             "before use at a new site.")),
        ("Owners and contact", todo("who maintains the model and how to report a problem.")),
    ]
    return Section("model-card", "Model card", [
        Table(header=["Item", "This model"], rows=[[k, v] for k, v in rows],
              caption="Model card (Mitchell et al., 2019): recorded facts, and placeholders "
                      "for what only the study team can write"),
    ])
