"""The "Modality contributions" section of a fusion run's diagnose report.

Importing this module adds the section to the diagnose report; it appears only for runs with
``metrics["fusion"]`` (``permed train ... --models fusion``): the modalities and how many
patients had each, then the ablation: test AUROC with every modality, with each masked in turn,
and of a model trained on each modality alone, as a table and a bar plot.
"""

from __future__ import annotations

from typing import Any

from permed.report._html import (
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
    register_sections,
    task_sections,
)

__all__ = ["fusion_section"]


def _modality_table(fusion: dict[str, Any]) -> Table:
    rows = []
    for name, facts in (fusion.get("modalities") or {}).items():
        source = facts.get("columns") or facts.get("column") or ""
        rows.append([name, ", ".join(source) if isinstance(source, list) else str(source),
                     str(facts.get("encoder", "")), fmt_num(facts.get("present")),
                     fmt_num(facts.get("missing"))])
    return Table(["modality", "column(s)", "encoder", "patients with it", "missing (masked)"],
                 rows, caption="Modalities fused: each is encoded to an embedding of the same "
                               "size; a missing one is masked")


def _ablation_rows(ablation: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    rows = [("all modalities (fusion)", ablation.get("all") or {})]
    rows += [(f"fusion without {m}", entry) for m, entry in
             (ablation.get("without") or {}).items()]
    rows += [(f"{m} alone (own model)", entry) for m, entry in
             (ablation.get("single") or {}).items()]
    return rows


def _ablation_table(ablation: dict[str, Any]) -> Table:
    full = dig(ablation, "all", "value")
    rows = []
    for label, entry in _ablation_rows(ablation):
        value = entry.get("value")
        change = "" if full is None or value is None or label.startswith("all") else \
            f"{value - full:+.3f}"
        rows.append([label, fmt_ci(entry, 3), change])
    return Table(["model", "test AUROC (95% CI)", "change vs all"], rows,
                 caption="Ablation on the test patients", marked=frozenset({0}))


def _ablation_plot(ablation: dict[str, Any]) -> str:
    from permed.report._plots import _new_figure, _to_data_uri

    rows = [(label, entry) for label, entry in _ablation_rows(ablation)
            if entry.get("value") is not None]
    fig = _new_figure((5.6, 0.45 * len(rows) + 1.2), fixed=False)
    ax = fig.add_subplot()
    values = [entry["value"] for _, entry in rows]
    low = [entry["value"] - entry.get("ci_low", entry["value"]) for _, entry in rows]
    high = [entry.get("ci_high", entry["value"]) - entry["value"] for _, entry in rows]
    colors = ["#2b6cb0" if k == 0 else "#a0aec0" if label.startswith("fusion") else "#dd8452"
              for k, (label, _) in enumerate(rows)]
    positions = list(range(len(rows)))[::-1]
    ax.barh(positions, values, xerr=[low, high], color=colors, capsize=3)
    ax.set_yticks(positions, [label for label, _ in rows])
    ax.axvline(0.5, color="#888888", linestyle=":", linewidth=1)
    ax.set_xlim(min(0.4, *(v - d - 0.05 for v, d in zip(values, low, strict=True))), 1.0)
    ax.set_xlabel("test AUROC (95% bootstrap CI)")
    ax.set_title("Modality contributions")
    return _to_data_uri(fig)


def fusion_section(run: RunFiles) -> Section | None:
    """Modalities, missingness and the ablation of a fusion run (None for other runs)."""
    fusion = dig(run.metrics, "fusion")
    if not isinstance(fusion, dict):
        return None
    ablation = fusion.get("ablation") or {}
    blocks: list[Block] = [
        Paragraph("The fusion model encodes each modality of a patient to an embedding and "
                  "a learned head combines the embeddings with a mask saying which modalities "
                  "the patient has (late fusion). A patient without a note or an image is "
                  "scored from what they have. To see what each modality contributes, the test "
                  "patients are scored again with that modality masked for everyone, and a "
                  "model is trained on each modality alone."),
        _modality_table(fusion),
    ]
    if ablation.get("all"):
        blocks += [_ablation_table(ablation),
                   Figures([Figure(_ablation_plot(ablation), alt="Test AUROC of the fusion "
                                   "model and its ablations", caption="Test AUROC with 95% "
                                   "bootstrap CIs")]),
                   Note("A large drop when a modality is masked means the model relies on it; "
                        "a model on one modality alone that nearly matches the fusion model "
                        "means the others add little. Ablation AUROCs use the uncalibrated "
                        "network output.", tone="info")]
    if fusion.get("images_left_out"):
        blocks.append(Note("Unreadable images masked (--on-bad-file skip):", tone="warning",
                           items=list(fusion["images_left_out"])[:20]))
    return Section("fusion", "Modality contributions", blocks)


register_sections("diagnose", [*task_sections("diagnose"), fusion_section])
