"""The report's fairness section: per-group figures, disparities, flags, who is represented in
the development data, and the before/after table of a post-processing mitigation."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from permed.report._html import (
    DASH,
    Block,
    Note,
    Paragraph,
    RunFiles,
    Section,
    Table,
    _is_number,
    dig,
    fmt_ci,
    fmt_num,
    fmt_pct,
    metric_digits,
    metric_label,
    ordered_metrics,
    plural,
)

__all__ = ["fairness_flags", "fairness_section", "fairness_sentence", "not_in_cohort"]


_DISPARITY_INFO = {
    "equalized_odds_difference": ("Equalized odds difference", "Largest gap between groups in "
                                  "sensitivity or false-positive rate."),
    "demographic_parity_difference": ("Demographic parity difference", "Largest gap between "
                                      "groups in the share of patients flagged."),
    "auroc_gap": ("AUROC gap", "Largest gap between groups in AUROC."),
    "calibration_gap": ("Calibration gap", "Largest gap between groups in calibration error."),
}
_GROUP_SKIP = {"n", "prevalence", "too_small"}


def _prevalence_column(task: str, groups: Mapping[str, Any]) -> tuple[str, Any] | None:
    """The header and cell format of the outcome column, or None when no group records one.

    A risk audit's ``prevalence`` is the share of patients whose event was observed: censored
    patients count as event-free, so it is labelled as a count of observed events, not as a
    prevalence or a risk.
    """
    if all(not _is_number((group or {}).get("prevalence")) for group in groups.values()):
        return None
    if task == "risk":
        def observed(group: Mapping[str, Any]) -> str:
            share, n = group.get("prevalence"), group.get("n")
            if not (_is_number(share) and _is_number(n)):
                return DASH
            return f"{round(share * n)} ({fmt_pct(share)})"

        return "Events observed (share)", observed
    return "Prevalence", lambda group: fmt_pct(group.get("prevalence"))


def _group_table(name: str, groups: Mapping[str, Any], min_size: object, task: str) -> Table:
    metrics = ordered_metrics(k for g in groups.values() for k in (g or {}) if k not in _GROUP_SKIP)
    outcome = _prevalence_column(task, groups)
    rows, muted = [], set()
    for i, (level, group) in enumerate(groups.items()):
        group = group or {}
        remark = f"too small (< {fmt_num(min_size)}): unreliable" if group.get("too_small") else ""
        if remark:
            muted.add(i)
        cells = [str(level), fmt_num(group.get("n"))]
        if outcome is not None:
            cells.append(outcome[1](group))
        rows.append(cells + [fmt_ci(group.get(m), metric_digits(m)) for m in metrics] + [remark])
    header = (["Group", "Patients"] + ([outcome[0]] if outcome is not None else [])
              + [metric_label(m) for m in metrics] + ["Note"])
    caption = f"By {name}: figures per group (95% CI)"
    if task == "risk" and outcome is not None:
        caption += ("; events observed during follow-up (censored patients count as without "
                    "the event, so the share is not a risk by any horizon)")
    return Table(header=header, rows=rows, caption=caption, muted=frozenset(muted))


def _disparity_table(name: str, disparities: Mapping[str, Any], max_gap: object) -> Table:
    rows = []
    for key, entry in disparities.items():
        label, meaning = _DISPARITY_INFO.get(key, (key.replace("_", " ").capitalize(), ""))
        value = dig(entry, "value") if isinstance(entry, Mapping) else entry
        over = _is_number(value) and _is_number(max_gap) and abs(value) > max_gap
        rows.append([label, fmt_ci(entry), f"\u26a0 above {fmt_num(max_gap)}" if over else "",
                     meaning])
    return Table(header=["Disparity", "Value (95% CI)", "Flag", "What it means"], rows=rows,
                 caption=f"By {name}: gaps between groups (0 = no gap)")


def _audit_blocks(name: str, audit: Mapping[str, Any], fairness: Mapping[str, Any],
                  task: str) -> list[Block]:
    blocks: list[Block] = []
    groups = audit.get("groups")
    if isinstance(groups, Mapping) and groups:
        blocks.append(_group_table(name, groups, fairness.get("min_group_size"), task))
    disparities = audit.get("disparities")
    if isinstance(disparities, Mapping) and disparities:
        blocks.append(_disparity_table(name, disparities, fairness.get("max_gap")))
    return blocks


def _all_flags(fairness: Mapping[str, Any]) -> list[str]:
    flags = []
    for part in ("attributes", "intersections"):
        for name, audit in (fairness.get(part) or {}).items():
            # the audit's flags usually name their column already; prefix only when not
            flags += [str(flag) if str(name) in str(flag) else f"{name}: {flag}"
                      for flag in dig(audit, "flags", default=[])]
    return flags


def fairness_flags(run: RunFiles) -> list[str]:
    """Every fairness flag of the run, prefixed with its attribute."""
    fairness = run.metrics.get("fairness")
    return _all_flags(fairness) if isinstance(fairness, Mapping) else []


def fairness_sentence(run: RunFiles) -> str:
    """One sentence for the summary: flags raised, none raised, or no audit."""
    attributes = dig(run.metrics, "fairness", "attributes") or {}
    absent = not_in_cohort(run)
    if not attributes and absent:
        column = "its column is" if len(absent) == 1 else "their columns are"
        return (f"{_declared(absent)} declared, but {column} not in this cohort, so fairness "
                "between patient groups was not audited here.")
    if not attributes:
        return ("No sensitive attribute was declared, so fairness between patient groups was "
                "not audited.")
    flags = fairness_flags(run)
    names = ", ".join(str(a) for a in attributes)
    if flags:
        return (f"The fairness audit by {names} raised {plural(len(flags), 'flag')}: see "
                "'Fairness across patient groups'.")
    if run.task == "diagnose" and not any(dig(a, "disparities") for a in attributes.values()):
        # with more than two classes the audit reports each group's figures but computes no
        # disparity, so "no flag" would say the groups were found alike when none were compared
        return (f"The fairness audit by {names} reports each group's figures but no disparity "
                "between groups (not computed with more than two classes), so it cannot raise a "
                "flag: compare the groups in 'Fairness across patient groups'.")
    return f"The fairness audit by {names} raised no flag."


def not_in_cohort(run: RunFiles) -> list[str]:
    """The declared sensitive columns an external cohort lacks (its ``fairness.not_in_cohort``;
    for an evaluation written before it recorded them, the development schema's sensitive
    columns when none was audited)."""
    if run.external is None:
        return []
    fairness = run.metrics.get("fairness")
    fairness = fairness if isinstance(fairness, Mapping) else {}
    if "not_in_cohort" in fairness:
        return [str(c) for c in fairness["not_in_cohort"] or []]
    if fairness.get("attributes"):
        return []
    return [str(c) for c in run.schema.get("sensitive") or []]


def _declared(names: list[str]) -> str:
    """``The sensitive attribute sex was`` / ``The sensitive attributes sex, race were``."""
    if len(names) == 1:
        return f"The sensitive attribute {names[0]} was"
    return f"The sensitive attributes {', '.join(names)} were"


def _intro(task: str, fairness: Mapping[str, Any]) -> str:
    compared = ("The value of following permed's recommendation is compared between the groups "
                "of each sensitive attribute." if task == "treat" else
                "Performance is compared between the groups of each sensitive attribute.")
    small = (f" Groups with fewer than {fmt_num(fairness.get('min_group_size'))} patients are "
             "marked too small")
    gap = fairness.get("max_gap")
    if _is_number(gap):
        return f"{compared}{small}; a gap larger than {fmt_num(gap)} between groups raises a flag."
    return f"{compared}{small}."


def fairness_section(run: RunFiles) -> Section:
    """Per-group figures, disparities and flags for each sensitive attribute."""
    title = "Fairness across patient groups"
    fairness = run.metrics.get("fairness")
    fairness = fairness if isinstance(fairness, Mapping) else {}
    attributes = fairness.get("attributes") or {}
    absent = not_in_cohort(run)
    if not attributes and absent:
        it = "it" if len(absent) == 1 else "them"
        return Section("fairness", title, [Note(
            f"{_declared(absent)} declared for the development run, but this cohort has no "
            f"such column, so performance was not compared between patient groups here. Add "
            f"the column{'s' if len(absent) > 1 else ''} to the cohort and run permed evaluate "
            f"again to audit {it}.", tone="warning")])
    if not attributes:
        return Section("fairness", title, [Note(
            "No sensitive attribute was declared for this run, so performance was not compared "
            "between patient groups. Re-run with `--sensitive COL` (for example `--sensitive "
            "sex`), or give a column the role `sensitive` in the study file, to add this audit.",
            tone="warning")])
    flags = _all_flags(fairness)
    blocks: list[Block] = [Paragraph(_intro(run.task, fairness))]
    if flags:
        blocks.append(Note(f"{plural(len(flags), 'fairness flag')} raised:", tone="warning",
                           title="Fairness flags", items=flags))
    else:
        blocks.append(Note("No fairness flag was raised.", tone="ok"))
    for name, audit in attributes.items():
        blocks += _audit_blocks(str(name), audit or {}, fairness, run.task)
    for name, audit in (fairness.get("intersections") or {}).items():
        blocks += _audit_blocks(f"{name} (intersection)", audit or {}, fairness, run.task)
    for name, table in (fairness.get("representation") or {}).items():
        blocks += _representation_blocks(str(name), table or {})
    for name, table in (fairness.get("mitigation") or {}).items():
        blocks += _mitigation_blocks(str(name), table or {})
    if fairness.get("note"):
        blocks.append(Paragraph(str(fairness["note"])))
    return Section("fairness", title, blocks)


def _representation_blocks(name: str, table: Mapping[str, Any]) -> list[Block]:
    groups = table.get("groups") or {}
    rows = [[str(level), fmt_num(g.get("n")), fmt_pct(g.get("share")),
             fmt_pct(g.get("outcome_rate"))] for level, g in groups.items()]
    outcome = table.get("outcome", "outcome")
    blocks: list[Block] = [Table(
        header=["Group", "Development patients", "Share", f"Rate of {outcome}"], rows=rows,
        caption=f"Representation by {name} in the development data")]
    if table.get("warnings"):
        blocks.append(Note("Groups too small to validate the model on:", tone="warning",
                           items=[str(w) for w in table["warnings"]]))
    return blocks


def _mitigation_blocks(name: str, table: Mapping[str, Any]) -> list[Block]:
    before, after = table.get("before") or {}, table.get("after") or {}
    rows = [["all patients", *_rates_cells(before.get("overall")),
             *_rates_cells(after.get("overall"))]]
    for level, group in (before.get("groups") or {}).items():
        rows.append([str(level), *_rates_cells(group),
                     *_rates_cells(dig(after, "groups", level))])
    rows.append(["equalized odds difference",
                 fmt_num(before.get("equalized_odds_difference")), "", "",
                 fmt_num(after.get("equalized_odds_difference")), "", ""])
    header = ["Patients", "Sensitivity before", "Specificity before", "Flagged before",
              "Sensitivity after", "Specificity after", "Flagged after"]
    return [Paragraph(f"Mitigation by {name}: {table.get('method', DASH)}."),
            Table(header=header, rows=rows,
                  caption=f"Mitigation by {name}: one threshold (before) vs group thresholds "
                          "(after), test patients"),
            Note(str(table.get("note", "")), tone="info")]


def _rates_cells(rates: object) -> list[str]:
    rates = rates if isinstance(rates, Mapping) else {}
    return [fmt_pct(rates.get("sensitivity")), fmt_pct(rates.get("specificity")),
            fmt_pct(rates.get("selection_rate"))]


