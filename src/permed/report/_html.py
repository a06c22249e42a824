"""Render the HTML model report from the files of a run directory.

The report is built only from what ``permed train`` (or ``permed evaluate``) wrote:
``metrics.json`` (required), ``manifest.json``, ``predictions.csv`` and ``model/schema.json``
(see ``docs/run-directory.md``). Nothing is refitted and no model is unpickled.

A report is a header plus a list of :class:`Section`. Sections common to every task (data,
model comparison, fairness, TRIPOD+AI, reproduce) live here; task-specific ones are added with
:func:`register_sections`, so a new task brings its own sections without touching the others.
A section is made of plain blocks (paragraphs, notes, tables, figures, code), rendered by one
template: a section builder returns data, never HTML.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

import jinja2
import pandas as pd
from markupsafe import Markup

import permed
from permed.evaluate import cautions
from permed.exceptions import BundleError
from permed.privacy import plan_actions, read_bytes, table_source
from permed.study._columns import plural as plural  # re-exported for the report sections

DASH = "\u2014"
_TEMPLATES = Path(__file__).with_name("templates")
_TRAIN_HINT = (
    "run `permed train DATA --out RUN_DIR` first (or `permed evaluate RUN_DIR DATA --out DIR` "
    "for an external validation), then point the report at that directory"
)

# Plain-language names and one-line meanings; unknown metrics fall back to their key.
METRIC_INFO: dict[str, tuple[str, str]] = {
    "auroc": ("AUROC", "Chance that a patient with the outcome gets a higher predicted "
              "probability than one without (0.5 = coin toss, 1 = perfect)."),
    "auprc": ("AUPRC (average precision)", "Precision averaged over all thresholds; compare it "
              "with the share of patients who have the outcome."),
    "accuracy": ("Accuracy", "Share of patients given the correct label."),
    "sensitivity": ("Sensitivity (recall)", "Share of patients with the outcome whom the model "
                    "flags."),
    "specificity": ("Specificity", "Share of patients without the outcome whom the model "
                    "clears."),
    "ppv": ("Positive predictive value (precision)", "Of the patients flagged, the share who "
            "have the outcome."),
    "npv": ("Negative predictive value", "Of the patients cleared, the share who do not have "
            "the outcome."),
    "f1": ("F1 score", "Balance of precision and sensitivity (1 = perfect)."),
    "brier": ("Brier score", "Mean squared error of the predicted probabilities (lower is "
              "better)."),
    "ece": ("Expected calibration error", "Average gap between predicted and observed risk "
            "(lower is better). Its bootstrap interval can lie above the estimate: noise in a "
            "resample's bins only widens the absolute gaps, so read the upper bound as the "
            "conservative figure."),
    "calibration_slope": ("Calibration slope", "1 is ideal; below 1 means predictions are too "
                          "extreme, above 1 too timid."),
    "calibration_intercept": ("Calibration intercept", "0 is ideal; above 0 means risks are "
                              "underestimated overall, below 0 overestimated."),
    "selection_rate": ("Selection rate", "Share of the group whom the model flags."),
    "c_index": ("C-index", "Chance that the patient with the earlier event gets the higher "
                "risk (0.5 = coin toss)."),
    "uno_c": ("Uno's C", "C-index corrected for censoring."),
    "ibs": ("Integrated Brier score", "Error of the predicted survival curves (lower is "
            "better)."),
    "td_auc": ("Time-dependent AUROC", "AUROC for events up to each time point."),
    "policy_value": ("Policy value", "Expected outcome if treatment follows the model."),
    "policy_gain": ("Policy gain", "Improvement over the best single treatment."),
    "ate": ("Average treatment effect", "Mean difference in outcome between treatments."),
    "qini": ("Qini coefficient", "How well the model ranks patients by benefit."),
}
METRIC_ORDER = list(METRIC_INFO)
# Three decimals where two would round a clinically relevant difference away (0.996 -> 1.00).
_FINE_METRICS = {"brier", "ece", "ibs", "auroc", "auprc", "c_index", "uno_c", "td_auc"}


# --- formatting ---------------------------------------------------------------------------


def _is_number(x: object) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


def is_missing(x: object) -> bool:
    """Whether ``x`` is None or a non-finite number (shown as a dash)."""
    return x is None or (_is_number(x) and not math.isfinite(float(x)))  # type: ignore[arg-type]


def fmt_num(x: object, digits: int = 2) -> str:
    """Format a number for a reader: ``0.93``; ``None`` and NaN become an em dash.

    Parameters
    ----------
    x : object
        A number, a string (returned as is) or None.
    digits : int, default 2
        Decimals for floats; integers are shown whole.

    Returns
    -------
    str
    """
    if is_missing(x):
        return DASH
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, int):
        return f"{x:,}"
    if isinstance(x, float):
        return f"{x:.{digits}f}"
    return str(x)


def fmt_ci(entry: object, digits: int = 2) -> str:
    """Format ``{"value", "ci_low", "ci_high"}`` as ``0.93 (0.89–0.96)``.

    Parameters
    ----------
    entry : dict or number or None
        A metric entry as in ``metrics.json``; a bare number is formatted alone.
    digits : int, default 2
        Decimals.

    Returns
    -------
    str
        The value with its interval; the value alone when a bound is missing; a dash when the
        value is missing.

    Examples
    --------
    >>> fmt_ci({"value": 0.931, "ci_low": 0.889, "ci_high": 0.962})
    '0.93 (0.89–0.96)'
    """
    if not isinstance(entry, Mapping):
        return fmt_num(entry, digits)
    value = fmt_num(entry.get("value"), digits)
    low, high = entry.get("ci_low"), entry.get("ci_high")
    if value == DASH or not (_is_number(low) and _is_number(high)):
        return value
    if is_missing(low) or is_missing(high):
        return value
    # "−0.05–0.01" is unreadable: spell the range out when a bound is negative
    sep = " to " if min(low, high) < 0 else "\u2013"
    return f"{value} ({fmt_num(low, digits)}{sep}{fmt_num(high, digits)})"


def fmt_mean_std(entry: object, digits: int = 2) -> str:
    """Format ``{"mean", "std"}`` as ``0.98 ± 0.01`` (a dash when the mean is missing), and
    ``0.20 (1 fold)`` when the metric was defined in only some folds (``"folds"``)."""
    if not isinstance(entry, Mapping):
        return fmt_num(entry, digits)
    mean = fmt_num(entry.get("mean"), digits)
    if mean == DASH or is_missing(entry.get("std")):
        return mean
    folds = entry.get("folds")
    if isinstance(folds, int):
        return f"{mean} ({folds} fold{'' if folds == 1 else 's'})"
    return f"{mean} \u00b1 {fmt_num(entry.get('std'), digits)}"


def fmt_pct(x: object, digits: int = 1) -> str:
    """Format a proportion as a percentage: ``0.123`` -> ``12.3%``."""
    if is_missing(x) or not _is_number(x):
        return fmt_num(x)
    return f"{100 * float(x):.{digits}f}%"  # type: ignore[arg-type]


def fmt_general(x: object) -> str:
    """A recorded number with up to 4 significant digits: 29 not 29.00, 0.0052 not 0.01."""
    if not _is_number(x) or is_missing(x):
        return fmt_num(x)
    value = float(x)  # type: ignore[arg-type]
    if value.is_integer() and abs(value) < 1e12:
        return str(int(value))
    return f"{value:.4g}" if abs(value) < 1e4 else f"{value:.0f}"


def metric_digits(name: str) -> int:
    """Decimals for a metric: 3 for error scores and discrimination (Brier, AUROC), else 2."""
    return 3 if name in _FINE_METRICS else 2


def metric_label(name: str) -> str:
    """The plain-language name of a metric key."""
    return METRIC_INFO.get(name, (name.replace("_", " ").capitalize(), ""))[0]


def metric_meaning(name: str) -> str:
    """A one-line meaning of a metric key (empty when unknown)."""
    return METRIC_INFO.get(name, ("", ""))[1]


def ordered_metrics(names: Iterable[str]) -> list[str]:
    """Metric keys in the report's reading order: known ones first, then the rest as found."""
    names = list(dict.fromkeys(names))
    known = [m for m in METRIC_ORDER if m in names]
    return known + [m for m in names if m not in METRIC_INFO]


def short_fingerprint(fingerprint: object, n: int = 12) -> str:
    """``sha256:<64 hex>`` -> ``sha256:<first n hex>…``."""
    if not isinstance(fingerprint, str) or not fingerprint:
        return DASH
    algo, _, digest = fingerprint.rpartition(":")
    if len(digest) <= n:
        return fingerprint
    return f"{algo}:{digest[:n]}\u2026" if algo else f"{digest[:n]}\u2026"


def fmt_date(stamp: object) -> str:
    """ISO time stamp -> ``2026-11-28 14:05 UTC``; anything else is shown as given."""
    if not isinstance(stamp, str) or not stamp:
        return DASH
    try:
        when = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return stamp
    offset = when.utcoffset()
    zone = "" if offset is None else "UTC" if not offset else when.strftime("UTC%z")
    return f"{when:%Y-%m-%d %H:%M} {zone}".strip()


def todo(text: str) -> Markup:
    """A clearly marked placeholder for what only the study team can write."""
    return Markup('<span class="todo">To complete by the study team: {}</span>').format(text)


def dig(obj: object, *keys: str, default: Any = None) -> Any:
    """``obj[k1][k2]...`` or ``default`` when a level is missing or not a mapping."""
    for key in keys:
        if not isinstance(obj, Mapping) or key not in obj:
            return default
        obj = obj[key]
    return default if obj is None else obj


# --- report blocks ------------------------------------------------------------------------

Text = str | Markup


@dataclass(frozen=True)
class Paragraph:
    """A paragraph of plain text (escaped unless given as ``Markup``)."""

    text: Text
    kind: ClassVar[str] = "paragraph"


@dataclass(frozen=True)
class Note:
    """A boxed note; ``tone`` is ``info``, ``warning`` or ``ok``."""

    text: Text
    tone: str = "info"
    title: str = ""
    items: Sequence[Text] = ()
    kind: ClassVar[str] = "note"


@dataclass(frozen=True)
class Table:
    """A table; rows whose index is in ``marked`` are highlighted (e.g. the selected model)."""

    header: Sequence[str]
    rows: Sequence[Sequence[Text]]
    caption: str = ""
    marked: frozenset[int] = frozenset()
    muted: frozenset[int] = frozenset()
    kind: ClassVar[str] = "table"


@dataclass(frozen=True)
class Figure:
    """An inline PNG (``data:image/png;base64,...``) with its alternative text and caption."""

    src: str
    alt: str
    caption: str = ""


@dataclass(frozen=True)
class Figures:
    """Figures laid out side by side."""

    items: Sequence[Figure]
    kind: ClassVar[str] = "figures"


@dataclass(frozen=True)
class Code:
    """Preformatted text (a command line, JSON)."""

    text: str
    kind: ClassVar[str] = "code"


Block = Paragraph | Note | Table | Figures | Code


@dataclass
class Section:
    """One titled part of the report; ``id`` is its anchor in the table of contents."""

    id: str
    title: str
    blocks: list[Block] = field(default_factory=list)


def key_value_table(pairs: Iterable[tuple[str, object]], caption: str = "") -> Table:
    """A two-column table of facts; values are formatted with :func:`fmt_num`."""
    rows = [[label, value if isinstance(value, Markup) else fmt_num(value)]
            for label, value in pairs]
    return Table(header=["", ""], rows=rows, caption=caption)


# --- the run directory --------------------------------------------------------------------


@dataclass(frozen=True)
class RunFiles:
    """The files of a run directory, read once; optional files that are absent are empty."""

    run_dir: Path
    metrics: dict[str, Any]
    manifest: dict[str, Any]
    schema: dict[str, Any]
    predictions: pd.DataFrame | None
    problems: tuple[str, ...] = ()
    # an external validation's development run (its schema, manifest and metrics), when found
    development: RunFiles | None = None

    @property
    def task(self) -> str:
        return str(self.metrics.get("task") or "unknown")

    @property
    def developed_in(self) -> RunFiles | None:
        """The run the model was trained in: this one, or for an external validation its
        development run (None when that run cannot be read)."""
        return self if self.external is None else self.development

    @property
    def schema_source(self) -> str:
        """Where :attr:`schema` comes from, for captions."""
        if self.external is None:
            return "model/schema.json"
        where = self.development.run_dir if self.development else self.external.get("run")
        return f"model/schema.json of the development run {where or DASH}"

    @property
    def evaluated_on(self) -> str:
        """The patients the test figures describe, in words."""
        return "the external cohort" if self.external is not None else "the test patients"

    @property
    def external(self) -> dict[str, Any] | None:
        """The ``external`` entry of an external validation, else None."""
        if "external" not in self.metrics:
            return None
        value = self.metrics["external"]
        return value if isinstance(value, dict) else {}

    @property
    def target(self) -> str:
        return str(dig(self.metrics, "target", "column") or self.schema.get("target")
                   or dig(self.manifest, "config", "target") or "outcome")

    @property
    def classes(self) -> list[str]:
        found = dig(self.metrics, "target", "classes") or self.schema.get("classes")
        if not found and self.predictions is not None:
            found = [c[len("prob_"):] for c in self.predictions.columns if c.startswith("prob_")]
        return [str(c) for c in found or []]

    @property
    def positive_class(self) -> str | None:
        positive = dig(self.metrics, "target", "positive_class")
        if positive is not None:
            return str(positive)
        classes = self.classes
        return classes[-1] if len(classes) == 2 else None

    @property
    def test_rows(self) -> int | None:
        """Patients the test figures are computed on."""
        rows = dig(self.metrics, "data", "test_rows")
        if rows is None and self.external is not None:  # every row of the external cohort
            rows = dig(self.metrics, "data", "rows")
        if rows is None and self.predictions is not None:
            rows = len(self.predictions)
        return rows if isinstance(rows, int) else None

    def test_entry(self, metric: str) -> Any:
        return dig(self.metrics, "test", metric)


def _read_metrics(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise BundleError(f"'{path}' not found: this is not a complete run directory; "
                          f"{_TRAIN_HINT}")
    try:
        metrics = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise BundleError(f"'{path}' cannot be read ({exc}): check its permissions, or "
                          f"{_TRAIN_HINT}") from exc
    except json.JSONDecodeError as exc:
        raise BundleError(f"'{path}' is not valid JSON (line {exc.lineno}, column {exc.colno}: "
                          f"{exc.msg}): the file is truncated or was edited; {_TRAIN_HINT}"
                          ) from exc
    if not isinstance(metrics, dict):
        raise BundleError(f"'{path}' holds a JSON {type(metrics).__name__}, expected an object "
                          f"with 'task', 'test', 'cv'...; {_TRAIN_HINT}")
    return metrics


def _read_optional_json(path: Path, name: str, problems: list[str]) -> dict[str, Any]:
    if not path.is_file():
        problems.append(f"{name} is missing: the parts of the report that use it are incomplete.")
        return {}
    try:  # an encrypted run's file is decrypted; a missing or wrong key is an error, not a gap
        value = json.loads(read_bytes(path).decode("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        problems.append(f"{name} cannot be read ({exc}): the parts of the report that use it "
                        "are incomplete.")
        return {}
    return value if isinstance(value, dict) else {}


def _read_predictions(path: Path, problems: list[str]) -> pd.DataFrame | None:
    if not path.is_file():
        problems.append("predictions.csv is missing: the plots are left out.")
        return None
    source = table_source(path)  # decrypted in memory when the run is encrypted
    try:
        frame = pd.read_csv(source, dtype={"y_true": str, "predicted": str},
                            keep_default_na=False, na_values=[""])
    except (OSError, ValueError) as exc:  # pandas parser errors are ValueErrors
        problems.append(f"predictions.csv cannot be read ({exc}): the plots are left out.")
        return None
    if "y_true" not in frame.columns:
        problems.append("predictions.csv has no 'y_true' column: the plots are left out.")
        return None
    return frame


def load_run(run_dir: str | os.PathLike[str]) -> RunFiles:
    """Read the files of a run directory.

    Parameters
    ----------
    run_dir : str or path-like
        A directory written by ``permed train`` or ``permed evaluate``.

    Returns
    -------
    RunFiles

    Raises
    ------
    BundleError
        When the directory or its ``metrics.json`` is missing or unreadable.
    """
    path = Path(run_dir)
    if not path.is_dir():
        raise BundleError(f"run directory '{path}' does not exist: check the path, or "
                          f"{_TRAIN_HINT}")
    metrics = _read_metrics(path / "metrics.json")
    problems: list[str] = []
    manifest = _read_optional_json(path / "manifest.json", "manifest.json", problems)
    development = None
    if "external" in metrics:  # an external validation has no model/: it used the development's
        development = _read_development(path, metrics, problems)
        schema = development.schema if development is not None else {}
    else:
        schema = _read_optional_json(path / "model" / "schema.json", "model/schema.json",
                                     problems)
    predictions = _read_predictions(path / "predictions.csv", problems)
    return RunFiles(path, metrics, manifest, schema, predictions, tuple(problems), development)


def _read_development(run_dir: Path, metrics: dict[str, Any],
                      problems: list[str]) -> RunFiles | None:
    """The development run an external validation names in ``external.run``.

    The path is tried as recorded (absolute, or relative to where ``permed evaluate`` ran) and
    then beside ``run_dir`` (``runs/heart`` next to ``runs/heart-external``); a folder whose data
    fingerprint is not the recorded development fingerprint is passed over.
    """
    recorded = str(dig(metrics, "external", "run", default=""))
    expected = dig(metrics, "external", "development_fingerprint")
    candidates = [Path(recorded), run_dir.parent / Path(recorded).name] if recorded else []
    for candidate in candidates:
        if not (candidate / "metrics.json").is_file():
            continue
        found: list[str] = []
        development = _read_optional_json(candidate / "metrics.json", "metrics.json", found)
        if expected and dig(development, "data", "fingerprint") != expected:
            continue
        manifest = _read_optional_json(candidate / "manifest.json", "manifest.json", found)
        schema = _read_optional_json(candidate / "model" / "schema.json", "model/schema.json",
                                     found)
        problems += [f"In the development run {candidate}: {problem}" for problem in found]
        return RunFiles(candidate, development, manifest, schema, None, tuple(found))
    problems.append(
        f"The development run '{recorded or DASH}' (external.run in metrics.json) was not found "
        f"here or beside {run_dir}: its predictors and analysis settings are left out. Write "
        f"the report again from where that path is valid: permed report {run_dir}")
    return None


# --- task registry ------------------------------------------------------------------------

SectionBuilder = Callable[[RunFiles], "Section | None"]
SummaryBuilder = Callable[[RunFiles], str]
_TASK_SECTIONS: dict[str, list[SectionBuilder]] = {}
_TASK_SUMMARIES: dict[str, SummaryBuilder] = {}


def register_sections(task: str, builders: Sequence[SectionBuilder], *,
                      summary: SummaryBuilder | None = None) -> None:
    """Declare the sections a task adds to the report.

    They are placed after the model comparison and before the fairness audit. A builder takes
    the :class:`RunFiles` and returns a :class:`Section`, or None to leave it out.

    Parameters
    ----------
    task : str
        The value of ``metrics["task"]`` (``"diagnose"``, ``"risk"``, ``"treat"``).
    builders : sequence of callables
        Section builders, in reading order; replaces any earlier registration for ``task``.
    summary : callable, optional
        Builds the one-paragraph plain summary of the header; a generic one is used otherwise.
    """
    _TASK_SECTIONS[task] = list(builders)
    if summary is not None:
        _TASK_SUMMARIES[task] = summary


def task_sections(task: str) -> list[SectionBuilder]:
    """The section builders registered for ``task`` (empty for an unknown task)."""
    return list(_TASK_SECTIONS.get(task, []))


# --- common sections ----------------------------------------------------------------------


def _class_table(run: RunFiles) -> Table | None:
    counts = dig(run.metrics, "target", "counts")
    if not isinstance(counts, Mapping) or not counts:
        return None
    total = sum(v for v in counts.values() if _is_number(v))
    rows, marked = [], set()
    for i, (label, n) in enumerate(counts.items()):
        share = n / total if total and _is_number(n) else None
        is_positive = str(label) == run.positive_class and len(counts) == 2
        rows.append([f"{label} (positive)" if is_positive else str(label), fmt_num(n),
                     fmt_pct(share)])
        if is_positive:
            marked.add(i)
    caption = (f"Outcome classes of the {fmt_num(total)} patients evaluated"
               if run.external is not None else f"Outcome classes in all {fmt_num(total)} rows")
    return Table(header=[f"{run.target}", "Patients", "Share"], rows=rows, caption=caption,
                 marked=frozenset(marked))


def _feature_range(feature: Mapping[str, Any], shown: int = 8, action: str | None = None) -> str:
    """A predictor's training values, generalized as Safe Harbor asks where the column is an
    age (above 89: ``90+``) or a ZIP code (not listed): the report is shared in clear."""
    if action == "zip3":
        count = len(feature.get("categories") or [])
        return f"{count} ZIP areas (not listed)" if count else "not listed (a ZIP code)"
    if feature.get("kind") == "categorical":
        categories = [str(c) for c in feature.get("categories") or []]
        more = f", \u2026 (+{len(categories) - shown} more)" if len(categories) > shown else ""
        return ", ".join(categories[:shown]) + more if categories else DASH
    low, high = feature.get("min"), feature.get("max")
    if is_missing(low) and is_missing(high):
        return DASH
    if action == "age" and not is_missing(high) and float(high) > 89:
        return f"{fmt_general(low)} to 90+"
    return f"{fmt_general(low)} to {fmt_general(high)}"


def _feature_table(run: RunFiles) -> Block:
    features = run.schema.get("features")
    if run.external is not None and run.development is None:
        return Note("The predictors are those of the development run, which was not found "
                    "(see the note at the top), so they cannot be shown.", tone="warning")
    if not isinstance(features, list) or not features:
        return Note(f"{run.schema_source} lists no features, so the predictors cannot be shown.",
                    tone="warning")
    # columns named like an age or a ZIP code (the names de-identification goes by)
    generalized, _ = plan_actions(pd.DataFrame(columns=[
        str(f.get("name")) for f in features if f.get("kind") in ("numeric", "categorical")]))
    rows = []
    for feature in features:
        name = str(feature.get("name", DASH))
        action = generalized.get(name)
        if feature.get("unit"):
            name = f"{name} ({feature['unit']})"
        rows.append([name, str(feature.get("kind", DASH)), _feature_range(feature, action=action),
                     fmt_pct(feature.get("missing_share"))])
    return Table(header=["Predictor", "Type", "Range or categories in training", "Missing"],
                 rows=rows,
                 caption=f"{len(rows)} predictors the model uses (from {run.schema_source})")


def _data_paragraph(run: RunFiles) -> str:
    data = run.metrics.get("data") or {}
    source = data.get("source") or dig(run.manifest, "data", "path") or "the data file"
    read = (f"{fmt_num(data.get('rows'))} patients (rows) and {fmt_num(data.get('columns'))} "
            f"columns were read from {source}.")
    if run.external is not None:
        left_out = sum(int(data.get(k) or 0) for k in ("missing_target_rows", "unscored_rows"))
        used = ("every patient was used to evaluate the model" if not left_out else
                f"{fmt_num(data.get('test_rows'))} patients were used to evaluate the model "
                f"({fmt_num(left_out)} left out: see the warnings)")
        origin = ("These are the development data, not an external cohort: the figures are "
                  "optimistic" if run.external.get("development_data")
                  else "This is an external cohort")
        return (f"{read} {origin}: {used}, which was neither refitted nor re-selected on it.")
    developed = (f"{read} {fmt_num(data.get('development_rows'))} patients were used to "
                 "develop the model (training, cross-validation, calibration) and "
                 f"{fmt_num(data.get('test_rows'))} were held out to test it once at the end.")
    if run.task != "treat":
        return developed
    from permed.report._treat import left_out_sentence  # _treat builds on this module

    return " ".join(filter(None, [developed, left_out_sentence(run)]))


def data_section(run: RunFiles) -> Section:
    """Rows, development and test sizes, outcome classes (a risk run: the time-to-event
    outcome and its follow-up) and the predictors."""
    blocks: list[Block] = [Paragraph(_data_paragraph(run))]
    if run.task == "risk":  # a time to event, not classes: _risk builds on this module
        from permed.report._risk import outcome_blocks

        blocks += outcome_blocks(run)
    classes = _class_table(run) if run.task != "risk" else None
    if classes is not None:
        blocks.append(classes)
    blocks.append(_feature_table(run))
    roles = [("Patient identifier column", run.schema.get("id")),
             ("Sensitive attributes (audited for fairness)",
              ", ".join(run.schema.get("sensitive") or []) or None),
             ("Data fingerprint", dig(run.metrics, "data", "fingerprint"))]
    blocks.append(key_value_table(roles))
    title = ("Data: the patients of the external cohort" if run.external is not None
             else "Data: the patients the model learned from")
    return Section("data", title, blocks)


def model_comparison_section(run: RunFiles) -> Section:
    """Cross-validation table, one row per model, with the selected model marked."""
    title = "Model comparison (cross-validation)"
    selected = run.metrics.get("selected_model")
    if run.external is not None:
        origin = run.external.get("run") or "another run"
        return Section("models", title, [Note(
            f"This model ({selected or DASH}) was trained elsewhere, in {origin}, and is applied "
            "here unchanged: no model was compared, tuned or selected on this cohort. The "
            "cross-validation figures kept in metrics.json are those of the development run.")])
    cv = run.metrics.get("cv")
    if not isinstance(cv, Mapping) or not cv:
        return Section("models", title, [Note("metrics.json has no cross-validation results.",
                                              tone="warning")])
    metrics = ordered_metrics(m for scores in cv.values() for m in (scores or {}))
    rows, marked = [], set()
    for i, (model, scores) in enumerate(cv.items()):
        name = f"{model} \u2714 selected" if model == selected else str(model)
        rows.append([name] + [fmt_mean_std(dig(scores, m), metric_digits(m)) for m in metrics])
        if model == selected:
            marked.add(i)
    selection = run.metrics.get("selection") or {}
    folds = selection.get("folds") or dig(run.manifest, "config", "cv")
    rule = selection.get("rule") or (f"highest mean {metric_label(selection['metric'])}"
                                     if selection.get("metric") else None)
    intro = (f"Each candidate model was trained and scored {fmt_num(folds)} times on different "
             "parts of the development data (cross-validation); the figures are the mean \u00b1 "
             "standard deviation over the folds. The test patients were not used here.")
    return Section("models", title, [
        Paragraph(intro),
        Table(header=["Model"] + [metric_label(m) for m in metrics], rows=rows,
              marked=frozenset(marked)),
        Paragraph(f"Selected model: {selected or DASH}. Selection rule: {rule or DASH}."),
        *_ensemble_contest(selection),
    ])


def _ensemble_contest(selection: Mapping[str, Any]) -> list[Block]:
    """Why the ensemble was kept or replaced (risk runs with the ensemble among candidates)."""
    contest = selection.get("against_ensemble")
    if not isinstance(contest, Mapping):
        return []
    family = contest.get("family")
    if contest.get("note"):
        return [Paragraph(f"The ensemble was not kept: {contest['note']}; {family} was the best "
                          "of the other families.")]
    gain = contest.get("cv_gain")
    optimism, bar = contest.get("selection_optimism"), contest.get("threshold")
    if not all(isinstance(v, int | float) for v in (gain, optimism, bar)):
        verdict = "kept" if selection.get("ensemble_kept") else "replaced"
        return [Paragraph(f"The ensemble was {verdict} against {family}; the figures of that "
                          "comparison could not be computed (too few folds with a score).")]
    if gain <= 0:
        return [Paragraph(f"The ensemble had the highest mean CV C-index; the best single "
                          f"family, {family}, trailed it by {-gain:.4f}.")]
    outcome = ("it did, so it replaced the ensemble" if contest.get("replaced_ensemble")
               else "it did not, so the ensemble was kept")
    return [Paragraph(
        f"The best single family, {family}, led the ensemble by {gain:+.4f} in mean CV C-index; "
        f"less {optimism:.4f} for having picked the best of {fmt_num(contest.get('families'))} "
        f"families ({gain - optimism:+.4f}), its lead had to exceed {bar:.4f} (one standard "
        f"error of the per-fold gain): {outcome}.")]


def _json_value(value: object) -> str:
    if value is None:
        return DASH
    return value if isinstance(value, str) else json.dumps(value)


def reproduce_section(run: RunFiles) -> Section:
    """Command line, seed, configuration, package versions and timings."""
    title = "How to reproduce this run"
    manifest = run.manifest
    blocks: list[Block] = []
    if not manifest:
        blocks.append(Note("manifest.json is missing, so the command, configuration and package "
                           "versions cannot be shown.", tone="warning"))
    if manifest.get("command"):
        blocks += [Paragraph("Run this command on the same data file (same fingerprint) with the "
                             "same package versions:"), Code(str(manifest["command"]))]
    data = manifest.get("data") or {}
    blocks.append(key_value_table([
        ("Seed", manifest.get("seed")), ("permed version", manifest.get("permed_version")),
        ("Created", fmt_date(manifest.get("created"))),
        ("Data file", data.get("path") or dig(run.metrics, "data", "source")),
        ("Data fingerprint", data.get("fingerprint") or dig(run.metrics, "data", "fingerprint")),
    ]))
    config = manifest.get("config")
    if isinstance(config, Mapping) and config:
        blocks.append(Table(header=["Setting", "Value"], caption="Configuration",
                            rows=[[str(k), _json_value(v)] for k, v in config.items()]))
    packages = manifest.get("packages")
    if isinstance(packages, Mapping) and packages:
        blocks.append(Table(header=["Package", "Version"], caption="Package versions",
                            rows=[[str(k), _json_value(v)] for k, v in packages.items()]))
    timings = manifest.get("timings") or run.metrics.get("timings")
    if isinstance(timings, Mapping) and timings:
        total = sum(v for v in timings.values() if _is_number(v))
        rows = [[str(k), fmt_num(v, 1)] for k, v in timings.items()] + [["total", f"{total:.1f}"]]
        blocks.append(Table(header=["Step", "Seconds"], caption="Timings", rows=rows))
    return Section("reproduce", title, blocks)


# --- header and page ----------------------------------------------------------------------


def _generic_summary(run: RunFiles) -> str:
    from permed.report._fairness import fairness_sentence

    test = run.metrics.get("test") or {}
    shown = ordered_metrics(test)[:3]
    figures = ", ".join(f"{metric_label(m)} {fmt_ci(test[m], metric_digits(m))}" for m in shown)
    where = "patients of the external cohort" if run.external is not None else "held-out patients"
    return (f"On {fmt_num(run.test_rows)} {where} the selected model "
            f"({run.metrics.get('selected_model') or DASH}) reached "
            f"{figures or 'no recorded figures'}. {fairness_sentence(run)}")


def _header(run: RunFiles) -> dict[str, Any]:
    from permed.report._fairness import fairness_flags

    external = run.external
    mode = " \u2014 External validation" if external is not None else ""
    facts: list[tuple[str, str]] = [
        ("Selected model", fmt_num(run.metrics.get("selected_model"))),
        ("Created", fmt_date(run.manifest.get("created"))),
        ("permed version", fmt_num(run.manifest.get("permed_version"))),
        ("Data fingerprint", short_fingerprint(dig(run.metrics, "data", "fingerprint")
                                               or dig(run.manifest, "data", "fingerprint"))),
    ]
    if external is not None:
        facts += [("Development run", fmt_num(external.get("run"))),
                  ("Development data fingerprint",
                   short_fingerprint(external.get("development_fingerprint")))]
    summary = _TASK_SUMMARIES.get(run.task, _generic_summary)(run)
    return {"title": f"permed model report{mode} \u2014 {run.task}: {run.target}",
            "facts": facts, "summary": summary, "problems": list(run.problems),
            "sources": ("metrics.json, manifest.json, predictions.csv) and the development "
                        "run's model/schema.json" if external is not None else
                        "metrics.json, manifest.json, predictions.csv, model/schema.json)"),
            "warnings": _warnings(run), "flags": fairness_flags(run)}


def _warnings(run: RunFiles) -> list[str]:
    """What training warned about (the data checks, test figures that say little), and for an
    external evaluation, which records no warnings, whether its figures say little."""
    recorded = [str(w) for w in run.manifest.get("warnings") or []]
    return list(dict.fromkeys(recorded + cautions(run.metrics)))


def build_sections(run: RunFiles) -> list[Section]:
    """The sections of the report, in reading order, for the task of ``run``."""
    # imported here: _tripod builds on the helpers of this module
    from permed.report._card import model_card_section
    from permed.report._fairness import fairness_section
    from permed.report._tripod import tripod_section

    builders: list[SectionBuilder] = [model_card_section, data_section, model_comparison_section,
                                      *task_sections(run.task), fairness_section, tripod_section,
                                      reproduce_section]
    return [section for build in builders if (section := build(run)) is not None]


def _environment() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.FileSystemLoader(_TEMPLATES), autoescape=True,
                              undefined=jinja2.StrictUndefined, trim_blocks=True,
                              lstrip_blocks=True, keep_trailing_newline=True)


def render_report(run_dir: str | os.PathLike[str]) -> str:
    """Render the self-contained HTML report of a run directory.

    Parameters
    ----------
    run_dir : str or path-like
        A directory written by ``permed train`` (or ``permed evaluate``): ``metrics.json`` is
        required; ``manifest.json``, ``predictions.csv`` and ``model/schema.json`` are used
        when present, and the report says which parts are incomplete without them.

    Returns
    -------
    str
        One HTML page with inline CSS and inline PNG plots: it loads nothing from the network.

    Raises
    ------
    BundleError
        When ``run_dir`` or its ``metrics.json`` is missing or unreadable.

    Examples
    --------
    >>> html = render_report("runs/heart")  # doctest: +SKIP
    >>> "TRIPOD+AI reporting checklist" in html  # doctest: +SKIP
    True
    """
    run = load_run(run_dir)
    template = _environment().get_template("report.html.j2")
    if "recalibration" in run.metrics:  # permed recalibrate: its own page
        from permed.report._recalibration import recalibration_page

        header, sections = recalibration_page(run)
        return template.render(header=header, sections=sections, version=permed.__version__)
    return template.render(header=_header(run), sections=build_sections(run),
                           version=permed.__version__)


def write_report(run_dir: str | os.PathLike[str]) -> Path:
    """Render the report and write it to ``run_dir/report.html`` atomically.

    The page is written to a temporary file in ``run_dir`` and renamed over ``report.html``,
    so a reader never sees a half-written report.

    Parameters
    ----------
    run_dir : str or path-like
        A run directory (see :func:`render_report`).

    Returns
    -------
    pathlib.Path
        The path of ``report.html``.

    Raises
    ------
    BundleError
        When ``run_dir`` or its ``metrics.json`` is missing or unreadable.
    """
    html = render_report(run_dir)
    target = Path(run_dir) / "report.html"
    fd, tmp = tempfile.mkstemp(prefix=".report-", suffix=".html.tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(html)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target
