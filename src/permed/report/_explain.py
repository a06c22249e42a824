"""Report sections on explanations (SHAP) and the glass-box scorecard.

They read ``metrics["explanations"]``, ``explanations.json`` and ``metrics["scorecard"]``
(docs/run-directory.md). The explanation section works for any task whose run records them;
importing this module adds both sections to the diagnose report.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib import colormaps

from permed.explain._text import Factor, factor_text, note_shown
from permed.privacy import read_bytes
from permed.report._clear import patients_left_out, run_is_encrypted
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
    fmt_num,
    fmt_pct,
    key_value_table,
    metric_digits,
    register_sections,
    task_sections,
)
from permed.report._plots import _new_figure, _to_data_uri

__all__ = ["explanation_section", "importance_plot", "beeswarm_plot", "scorecard_section"]

_SHOWN = 15  # features in the importance bar
_SWARM = 12  # features in the beeswarm
_EXAMPLES = 3
_TOLD = 3  # factors in a patient's sentence (as permed.explain.patient_text)
_POINT_SCALES = ("probability", "risk")


def _unit(scale: str) -> tuple[float, str]:
    """Multiplier and unit for a scale: probabilities are shown in percentage points."""
    if scale in _POINT_SCALES:
        return 100.0, "percentage points"
    return 1.0, scale


def importance_plot(importance: Mapping[str, float], scale: str) -> str:
    """Horizontal bars of the mean absolute SHAP value per feature, largest on top.

    Parameters
    ----------
    importance : mapping of str to float
        Feature -> mean |SHAP value|, on ``scale``.
    scale : str
        ``"probability"`` (bars in percentage points), ``"log-odds"`` or another unit.

    Returns
    -------
    str
        A ``data:image/png;base64,...`` URI.
    """
    factor, unit = _unit(scale)
    items = sorted(importance.items(), key=lambda kv: -kv[1])[:_SHOWN][::-1]
    fig = _new_figure((5.6, 0.32 * len(items) + 1.2), fixed=False)
    ax = fig.add_subplot()
    ax.barh([name for name, _ in items], [factor * v for _, v in items], color="#3b6ea8")
    ax.set_xlabel(f"mean |SHAP value| ({unit})")
    ax.set_title("Global importance", fontsize=11)
    ax.tick_params(axis="y", labelsize=8)
    ax.grid(axis="x", alpha=0.3)
    return _to_data_uri(fig)


def beeswarm_plot(features: Sequence[str], values: np.ndarray, color: np.ndarray,
                  scale: str) -> str:
    """One row of dots per feature: each dot a patient's SHAP value, coloured by feature value.

    Parameters
    ----------
    features : sequence of str
        Features in order of importance (most important first); the first ``12`` are drawn.
    values : ndarray of shape (n_patients, n_features)
        SHAP values on ``scale``.
    color : ndarray of shape (n_patients, n_features)
        Feature values as ranks in [0, 1]; NaN for a missing or categorical value (grey).
    scale : str

    Returns
    -------
    str
        A ``data:image/png;base64,...`` URI.
    """
    factor, unit = _unit(scale)
    shown = min(_SWARM, len(features))
    fig = _new_figure((5.6, 0.36 * shown + 1.4), fixed=False)
    ax = fig.add_subplot()
    rng = np.random.default_rng(0)  # jitter only: the same run draws the same picture
    cmap = colormaps["coolwarm"]
    for j in range(shown):
        y = shown - 1 - j
        x = factor * values[:, j]
        jitter = rng.uniform(-0.3, 0.3, len(x))
        known = ~np.isnan(color[:, j])
        ax.scatter(x[~known], y + jitter[~known], s=9, color="#999999", alpha=0.7, lw=0)
        ax.scatter(x[known], y + jitter[known], s=9, c=color[known, j], cmap=cmap, vmin=0,
                   vmax=1, alpha=0.85, lw=0)
    ax.axvline(0, color="#666666", lw=0.8)
    ax.set_yticks(range(shown), [features[shown - 1 - k] for k in range(shown)], fontsize=8)
    ax.set_xlabel(f"SHAP value ({unit})")
    ax.set_title("Contributions per patient", fontsize=11)
    ax.grid(axis="x", alpha=0.3)
    return _to_data_uri(fig)


def _read_details(run: RunFiles, entry: Mapping[str, Any]) -> dict[str, Any] | str:
    name = str(entry.get("file") or "explanations.json")
    path = run.run_dir / name
    if not path.is_file():
        return f"{name} is missing, so the per-patient plot and examples are left out"
    try:  # decrypted in memory when the run is encrypted
        content = json.loads(read_bytes(path, name).decode("utf-8"))
    except (OSError, ValueError) as exc:
        return f"{name} cannot be read ({exc}), so the per-patient plot and examples are left out"
    return content if isinstance(content, dict) else f"{name} does not hold a JSON object"


def _swarm_arrays(details: Mapping[str, Any]) -> tuple[list[str], np.ndarray, np.ndarray] | None:
    features = [str(f) for f in details.get("features") or []]
    values = np.asarray(details.get("values") or [], dtype=float)
    color = np.asarray([[np.nan if c is None else c for c in row]
                        for row in details.get("color") or []], dtype=float)
    if not features or values.ndim != 2 or values.shape != color.shape or \
            values.shape[1] != len(features) or not len(values):
        return None
    return features, values, color


def _note_features(schema: Mapping[str, Any]) -> tuple[set[str], dict[str, str | None]]:
    """The schema's notes (free-text features) and every feature's unit."""
    features = [f for f in schema.get("features") or [] if isinstance(f, Mapping)]
    return ({str(f.get("name")) for f in features if f.get("kind") == "text"},
            {str(f.get("name")): f.get("unit") for f in features})


def _told(patient: Mapping[str, Any], scale: str, schema: Mapping[str, Any]) -> str:
    """A patient's top factors in words, a note never quoted.

    Runs trained before notes were withheld (permed.explain._text.withhold_text) wrote a
    note's text into explanations.json: where a note is among the factors, the sentence is
    told again from the factors with the note as ``(free text)``.
    """
    notes, units = _note_features(schema)
    factors = [f for f in patient.get("factors") or [] if isinstance(f, Mapping)]
    if not notes or not any(f.get("feature") in notes for f in factors[:_TOLD]):
        return str(patient.get("text") or DASH)
    told = []
    for factor in factors[:_TOLD]:
        name, value = str(factor.get("feature")), factor.get("value")
        if name in notes:
            value = note_shown(value)
        told.append(factor_text(Factor(name, value, float(factor.get("contribution") or 0.0),
                                       str(patient.get("output") or ""), scale),
                                units.get(name)))
    return "; ".join(told)


def _notes_sentence(schema: Mapping[str, Any]) -> str:
    notes = sorted(_note_features(schema)[0])
    if not notes:
        return ""
    named = ", ".join(notes)
    return (f" A note ({named}) is one feature: the background patients' notes are empty (no "
            "note's text is kept in the model), so its contribution is what the note as a whole "
            "adds against no note, and the sentences never quote it.")


def _examples(details: Mapping[str, Any], scale: str,
              schema: Mapping[str, Any]) -> Table | None:
    patients = [p for p in details.get("patients") or [] if isinstance(p, Mapping)]
    if not patients:
        return None
    ordered = sorted(patients, key=lambda p: p.get("prediction") or 0.0)
    picks = {id(ordered[-1]): ordered[-1], id(ordered[len(ordered) // 2]):
             ordered[len(ordered) // 2], id(ordered[0]): ordered[0]}
    rows = [[DASH if p.get("row") is None else str(p["row"]),  # a row number: no "1,176"
             _explained(p.get("prediction"), scale), _explained(p.get("base_value"), scale),
             _told(p, scale, schema)]
            for p in list(picks.values())[:_EXAMPLES]]
    return Table(header=["Patient (row)", "Explained output", "Average patient",
                         "Top factors"], rows=rows,
                 caption="Examples: the test patients with the highest, a middle and the "
                         "lowest explained output")


def _explained(value: object, scale: str) -> str:
    return fmt_pct(value) if scale in _POINT_SCALES else fmt_num(value, 3)


def _importance_table(importance: Mapping[str, float], scale: str) -> Table:
    factor, unit = _unit(scale)
    rows = [[str(name), fmt_num(factor * float(v), 2)]
            for name, v in sorted(importance.items(), key=lambda kv: -kv[1])[:10]]
    return Table(header=["Feature", f"Mean |contribution| ({unit})"], rows=rows,
                 caption="The 10 most influential features")


def explanation_section(run: RunFiles) -> Section:
    """Global importance (bar), per-patient contributions (beeswarm) and example sentences."""
    title = "Explanations: what drives the predictions"
    entry = run.metrics.get("explanations")
    if not isinstance(entry, Mapping) or not isinstance(entry.get("importance"), Mapping):
        return Section("explanations", title, [Note(
            "This run records no explanations (runs trained by this version of permed explain "
            "their model; an external validation reuses the development run's).")])
    scale = str(entry.get("scale") or "output")
    blocks: list[Block] = [Paragraph(
        f"SHAP values split each prediction into the contribution of every feature: "
        f"{entry.get('explainer') or entry.get('method') or DASH}, on "
        f"{entry.get('sample') or fmt_num(entry.get('patients')) + ' test patients'}. They "
        f"are contributions to {entry.get('output') or scale}, relative to the average "
        f"prediction over {fmt_num(entry.get('background_rows'))} background patients drawn "
        "from the development data, and for each patient they add up to the difference "
        "between the two. The contributions of a feature's encoded columns (categories, "
        "missing-value indicator) are summed into the feature." + _notes_sentence(run.schema))]
    figures = [Figure(importance_plot(entry["importance"], scale), "Global importance",
                      "Mean absolute contribution of each feature over the explained patients.")]
    details = _read_details(run, entry)
    arrays = None if isinstance(details, str) else _swarm_arrays(details)
    if arrays is not None:
        figures.append(Figure(beeswarm_plot(*arrays, scale), "Beeswarm",
                              "Each dot is a patient: how much the feature moved that patient's "
                              "prediction (right of 0: raised it, left: lowered it), coloured by "
                              "the feature's value (blue: low, red: high, grey: missing or a "
                              "category)."))
    blocks += [Figures(figures), _importance_table(entry["importance"], scale)]
    if isinstance(details, str):
        blocks.append(Note(details + ".", tone="warning"))
    elif run_is_encrypted(run):
        blocks.append(patients_left_out("the example patients and their factors",
                                        "permed predict RUN_DIR DATA --explain"))
    elif (examples := _examples(details, scale, run.schema)) is not None:
        blocks.append(examples)
    blocks.append(Note(
        "SHAP values describe what the model does, not what causes the disease: changing a "
        "feature need not change the patient's outcome. `permed predict RUN_DIR DATA "
        "--explain` adds each patient's top factors to the predictions.", title="Reading them"))
    return Section("explanations", title, blocks)


def _points_rows(features: Sequence[Mapping[str, Any]]) -> list[list[str]]:
    rows = []
    for feature in features:
        name = str(feature.get("feature") or DASH)
        if feature.get("unit"):
            name = f"{name} ({feature['unit']})"
        for i, band in enumerate(feature.get("bands") or []):
            rows.append([name if i == 0 else "", str(band.get("band") or DASH),
                         fmt_num(band.get("points"))])
    return rows


def _cost_sentence(card: Mapping[str, Any]) -> str:
    best = card.get("best_other")
    auroc = fmt_num(card.get("cv_auroc"), metric_digits("auroc"))
    if not isinstance(best, Mapping):
        return f"Its cross-validated AUROC is {auroc}; no other model was compared."
    cost = card.get("auroc_cost")
    verdict = ("so reading the model whole costs nothing in discrimination" if
               isinstance(cost, int | float) and cost <= 0 else
               f"an accuracy cost of {fmt_num(cost, metric_digits('auroc'))} AUROC for a "
               "model that can be read whole")
    return (f"Its cross-validated AUROC is {auroc}, against "
            f"{fmt_num(best.get('cv_auroc'), metric_digits('auroc'))} for the best other model "
            f"({best.get('model')}): {verdict}.")


def scorecard_section(run: RunFiles) -> Section | None:
    """The points table of the scorecard, its risk per total and its accuracy cost."""
    card = run.metrics.get("scorecard")
    if not isinstance(card, Mapping):
        return None
    chosen = ("It is the selected model of this run." if card.get("selected") else
              "It was compared but not selected; it is shown as the readable alternative.")
    blocks: list[Block] = [
        Paragraph(f"A points scorecard can be read whole, like the clinical scores in use: add "
                  f"the points of the patient's band for each feature and look the total up in "
                  f"the second table for the probability of {run.target} = "
                  f"{card.get('positive_class') or run.positive_class}. {chosen} "
                  f"{_cost_sentence(card)}"),
        Table(header=["Feature", "Band", "Points"], rows=_points_rows(card.get("features") or []),
              caption="Points per band (bands cut at quantiles of the development data)"),
        Table(header=["Total points", "Probability"],
              rows=[[fmt_num(r.get("points")), fmt_pct(r.get("probability"))]
                    for r in card.get("risk") or [] if isinstance(r, Mapping)],
              caption=f"Probability from the total ({card.get('risk_note') or DASH})"),
    ]
    if card.get("not_scored"):
        blocks.append(Paragraph("Features that score no points (left out, or all bands equal): "
                                + ", ".join(map(str, card["not_scored"])) + "."))
    cost = dig(card, "auroc_cost")
    blocks.insert(1, key_value_table([
        ("Scorecard CV AUROC", fmt_num(card.get("cv_auroc"), metric_digits("auroc"))),
        ("Best other model", dig(card, "best_other", "model")),
        ("Its CV AUROC", fmt_num(dig(card, "best_other", "cv_auroc"), metric_digits("auroc"))),
        ("Accuracy cost (AUROC difference)", fmt_num(cost, metric_digits("auroc"))),
    ]))
    return Section("scorecard", "Glass-box scorecard", blocks)


register_sections("diagnose", [*task_sections("diagnose"), explanation_section,
                               scorecard_section])
