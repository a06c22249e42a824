"""The gene section of a diagnose report: preprocessing and the stably selected genes.

Importing this module adds the section to the diagnose report; it appears only for runs with
``metrics["genes"]`` (``permed train ... --genes PATTERN``).
"""

from __future__ import annotations

from typing import Any

from permed.report._html import (
    Note,
    Paragraph,
    RunFiles,
    Section,
    Table,
    dig,
    fmt_num,
    fmt_pct,
    key_value_table,
    register_sections,
    task_sections,
)

__all__ = ["gene_section"]


def _genes_table(top: list[dict[str, Any]], threshold: float) -> Table:
    rows = [[str(g.get("gene")), fmt_pct(g.get("frequency"), 0), str(g.get("higher_in")),
             fmt_num(g.get("mean_coefficient"), 3)] for g in top]
    stable = frozenset(k for k, g in enumerate(top) if (g.get("frequency") or 0) >= threshold)
    return Table(["gene", "selected in", "higher in class", "mean coefficient"], rows,
                 caption=f"Most often selected genes (highlighted: selected in at least "
                         f"{fmt_pct(threshold, 0)} of half-samples)", marked=stable)


def gene_section(run: RunFiles) -> Section | None:
    """Gene preprocessing and stability selection (None for runs without genes)."""
    facts = dig(run.metrics, "genes")
    if not isinstance(facts, dict):
        return None
    threshold = float(facts.get("stable_threshold") or 0.6)
    blocks = [
        key_value_table([
            ("Gene columns", facts.get("columns")),
            ("Log2 transform (floor 20, cap 16,000)",
             "yes" if facts.get("log_transform") else "no (already log-scale)"),
            ("Kept by the variance filter (fitted in each fold)",
             facts.get("kept_by_variance_filter")),
            ("Stably selected genes", facts.get("stable_genes")),
        ], caption="How the expression data was prepared"),
        Paragraph(f"Which genes carry the signal: {facts.get('method')}. A gene selected in "
                  "most half-samples does not depend on which patients happened to be in the "
                  "cohort; one selected rarely could have been swapped for a co-expressed "
                  "gene."),
    ]
    top = facts.get("top") or []
    if top:
        blocks.append(_genes_table(top, threshold))
    else:
        blocks.append(Note("No gene was selected in any half-sample: the elastic-net found no "
                           "signal that survives resampling.", tone="warning"))
    blocks.append(Note("Selection frequencies describe association in this cohort, not "
                       "causation; confirm a gene in an independent cohort before reading it "
                       "as a biomarker."))
    return Section("genes", "Genes: preprocessing and stable selection", blocks)


register_sections("diagnose", [*task_sections("diagnose"), gene_section])
