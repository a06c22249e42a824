"""The schema a model was fitted on, and the check of new data against it."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from permed.exceptions import SchemaMismatchError
from permed.study._columns import (
    as_category,
    duplicated_text,
    is_missing_word,
    non_numeric_values,
    share_text,
    text_among_numbers,
    to_numeric,
)
from permed.study._study import Study
from permed.study._validate import SHOWN_COLUMNS, suggest
from permed.utils.patterns import pattern_texts

__all__ = ["FeatureSpec", "FittedSchema"]

MAX_CATEGORIES_KEPT = 200

# A feature missing for this many more patients (a share, absolute) than in development is
# warned about (FittedSchema.missing_warnings), in a table of at least SHIFT_MIN_PATIENTS
# patients; a feature empty for every patient is warned about when development's missing share
# to the power of the patients is below EMPTY_CHANCE. The reasons are in missing_warnings.
MISSING_EXCESS = 0.5
SHIFT_MIN_PATIENTS = 10
EMPTY_CHANCE = 0.002
# at most this many features get a warning each; more are named in one warning
MAX_FEATURE_WARNINGS = 5
# A numeric feature with this share of its values outside the development range (or a
# categorical one with none of its categories seen in development), in at least
# SHIFT_MIN_PATIENTS patients, is warned about (FittedSchema.scale_warnings); a median this
# many times the development midpoint, or this many times smaller, asks whether the unit differs.
OUTSIDE_SHARE = 0.8
UNIT_RATIO = 2.0


@dataclass
class FeatureSpec:
    """One feature as seen at fit time."""

    name: str
    kind: str
    min: float | None = None
    max: float | None = None
    categories: list[str] | None = None
    missing_share: float = 0.0
    unit: str | None = None
    valid_range: tuple[float, float] | None = None
    # where a FHIR Bundle holds this feature (the study's [fhir] entry), for permed serve
    fhir: str | dict[str, Any] | None = None


@dataclass
class FittedSchema:
    """Features, outcome and roles a fitted model expects."""

    task: str
    features: list[FeatureSpec]
    target: str | None = None
    classes: list[str] = field(default_factory=list)
    id: str | None = None
    sensitive: list[str] = field(default_factory=list)
    outcome_columns: list[str] = field(default_factory=list)
    # how note columns are encoded (Study.text_encoder); None for bundles from before notes
    text_encoder: str | None = None
    # the study's own missing-value markers (Study.missing): new tables are read with them
    missing: list[str] = field(default_factory=list)
    # the development CSV's [delimiter, decimal mark] when a number showed the mark
    csv_marks: list[str] | None = None

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.features]

    @property
    def numeric(self) -> list[str]:
        return [f.name for f in self.features if f.kind == "numeric"]

    @property
    def categorical(self) -> list[str]:
        return [f.name for f in self.features if f.kind == "categorical"]

    @property
    def genes(self) -> list[str]:
        return [f.name for f in self.features if f.kind == "gene"]

    @property
    def notes(self) -> list[str]:
        return [f.name for f in self.features if f.kind == "text"]

    @property
    def events(self) -> list[str]:
        return [f.name for f in self.features if f.kind == "events"]

    @classmethod
    def from_frame(
        cls, frame: pd.DataFrame, kinds: dict[str, str], study: Study, classes: list[str]
    ) -> FittedSchema:
        """Describe the development data's features (ranges, categories, missingness)."""
        features = []
        genes = _numeric_block(frame, [n for n, k in kinds.items() if k == "gene"])
        low, high = genes.min().to_dict(), genes.max().to_dict()
        missing = genes.isna().mean().to_dict()
        for name, kind in kinds.items():
            if kind == "gene":  # thousands of columns: described as one block
                features.append(FeatureSpec(name, kind, float(low[name]), float(high[name]),
                                            missing_share=round(float(missing[name]), 4)))
                continue
            series = frame[name]
            spec = study.columns.get(name)
            feature = FeatureSpec(
                name, kind, missing_share=round(float(series.isna().mean()), 4),
                unit=spec.unit if spec else None, valid_range=spec.valid_range if spec else None,
                fhir=study.fhir.get(name))
            if kind in ("numeric", "gene"):
                values = to_numeric(series)
                feature.min, feature.max = float(values.min()), float(values.max())
            elif kind == "categorical":
                levels = sorted(as_category(series).dropna().unique())
                feature.categories = levels[:MAX_CATEGORIES_KEPT]
            features.append(feature)
        return cls(study.task or "diagnose", features, study.target, list(classes), study.id,
                   list(study.sensitive), study.outcome_columns(),
                   study.text_encoder if any(f.kind == "text" for f in features) else None,
                   list(study.missing))

    def reading(self, missing: Iterable[str] = ()) -> dict[str, Any]:
        """``read_table`` keywords for a new table: the id read as written, the study's missing
        markers and the new table's own (``missing``, e.g. ``--missing n/a``), and the
        development data's decimal mark for numbers that do not show one."""
        return {"text_columns": [self.id] if self.id else [],
                "missing": list(dict.fromkeys([*self.missing, *missing])),
                "known_marks": tuple(self.csv_marks) if self.csv_marks else None}

    # ---- checking new data --------------------------------------------------------------
    def check(self, frame: pd.DataFrame, require: list[str] | None = None) -> list[str]:
        """Refuse data that does not match; return the names of extra (ignored) columns.

        Raises
        ------
        SchemaMismatchError
            Listing every missing column and every numeric column holding text.
        """
        needed = self.names + list(require or [])
        known = set(needed) | set(self.outcome_columns) | set(self.sensitive)
        if self.id:
            known.add(self.id)
        missing = [c for c in self.names if c not in frame.columns]
        # a renamed column is among those the model does not know: only they are suggested
        unknown = [str(c) for c in frame.columns if c not in known]
        problems = []
        if missing:
            problems.append(
                f"{len(missing)} column(s) the model was trained on are missing: "
                + ", ".join(_named(c, unknown) for c in missing)
                + ": add them (empty values are allowed and are imputed)"
                + _unused(missing, unknown))
        unrecorded = [c for c in require or [] if c not in frame.columns]
        if unrecorded:
            problems.append(
                "the outcome column(s) " + ", ".join(_named(c, unknown) for c in unrecorded)
                + " are missing: evaluating a model needs each patient's recorded outcome, in "
                "the columns named as in training (to score patients without it, use permed "
                "predict)" + _unused(unrecorded, unknown))
        markers: dict[str, None] = {}  # missing-value spellings among the text, in order
        for name in [*self.numeric, *self.genes]:
            if name not in frame.columns:
                continue
            bad = non_numeric_values(frame[name])
            if len(bad):  # described, not quoted: a stray text may be a name or a note
                markers.update(dict.fromkeys(
                    v for v in bad.astype(str).str.strip().unique() if is_missing_word(v)))
                problems.append(
                    f"column '{name}' must be numeric (as in training) but "
                    f"{text_among_numbers(frame[name], bad)}: correct the values or leave "
                    "them empty")
        if problems:
            message = problems[0] if len(problems) == 1 else (
                "the data does not match the model's schema:\n- " + "\n- ".join(problems))
            raise SchemaMismatchError(message, problems, list(markers))
        return [c for c in frame.columns if c not in known]

    def coerce(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The feature columns, typed as at fit time (numeric floats, categorical text)."""
        others: dict[str, pd.Series] = {}
        for feature in self.features:
            if feature.kind in ("numeric", "gene"):
                continue
            series = frame[feature.name]
            if feature.kind in ("text", "events"):
                others[feature.name] = series.astype(object).where(series.notna(), "").astype(str)
            else:
                others[feature.name] = as_category(series)
        # numbers (measurements and genes) in one float block each: per-column conversion costs
        # more than the model for one patient
        parts = [_numeric_block(frame, self.numeric), _numeric_block(frame, self.genes)]
        if others:
            parts.append(pd.DataFrame(others, index=frame.index))
        parts = [part for part in parts if part.shape[1]] or [pd.DataFrame(index=frame.index)]
        table = parts[0] if len(parts) == 1 else pd.concat(parts, axis=1)
        return table if list(table.columns) == self.names else table[self.names]

    def out_of_range(self, frame: pd.DataFrame) -> pd.Series:
        """Per row, the features whose values lie outside the training range, joined by ';'
        ('' when none)."""
        numeric = [f for f in self.features if f.kind == "numeric"]
        values = _numeric_block(frame, [f.name for f in numeric]).to_numpy(dtype=float)
        below = values < np.array([f.min for f in numeric], dtype=float)
        above = values > np.array([f.max for f in numeric], dtype=float)
        column = {f.name: i for i, f in enumerate(numeric)}
        checked, outside = [], []
        for feature in self.features:
            if feature.kind == "numeric":
                i = column[feature.name]
                outside.append(below[:, i] | above[:, i])
            elif feature.categories is not None and len(feature.categories) < MAX_CATEGORIES_KEPT:
                text = as_category(frame[feature.name])
                outside.append((text.notna() & ~text.isin(feature.categories)).to_numpy())
            else:
                continue
            checked.append(feature.name)
        matrix = (np.column_stack(outside) if outside
                  else np.zeros((len(frame), 0), dtype=bool))
        return pd.Series(pattern_texts(matrix, checked, ";"), index=frame.index, dtype=object)

    def missing_warnings(self, frame: pd.DataFrame, answers: str = "predictions") -> list[str]:
        """A warning for each feature far more often missing in ``frame`` than in development.

        The model fills a missing value in from the development patients (the median or the
        most frequent category), so a feature a site does not record is silently replaced by
        one constant: the answers are those of a model without it. A feature is named when

        * its missing share is at least :data:`MISSING_EXCESS` (50 percentage points) above
          its development share (``FeatureSpec.missing_share``), in a table of at least
          :data:`SHIFT_MIN_PATIENTS` (10) patients. From 10 patients on, a site that records
          the feature as often as development did shows such an excess by chance less than
          1 time in 500 (binomial, the worst case over the development share), while excesses
          of 10 or 20 points are common between sites and cost the model little; or
        * it is empty for every patient, when development's missing share to the power of the
          patients is below :data:`EMPTY_CHANCE` (the same 1 in 500): a site that does not
          record it at all, however few its patients (one suffices when development had every
          value).

        ``answers`` names what rests on the filled-in values ("predictions"). The first
        :data:`MAX_FEATURE_WARNINGS` features get a warning each; more are named in one.
        """
        n = len(frame)
        if not n:
            return []
        missing = frame[self.names].isna().sum()
        flagged = []
        for feature in self.features:
            k, before = int(missing[feature.name]), feature.missing_share
            empty = k == n and before < 1 and before ** n < EMPTY_CHANCE
            if empty or (n >= SHIFT_MIN_PATIENTS and k / n - before >= MISSING_EXCESS):
                flagged.append((feature.name, k, before))
        if len(flagged) > MAX_FEATURE_WARNINGS:
            shown = ", ".join(f"'{name}' ({_share(k / n)} against {_share(before)})"
                              for name, k, before in flagged[:10])
            return [f"{len(flagged)} features are missing far more often in this table of {n} "
                    f"patients than in development ({shown}{', ...' if len(flagged) > 10 else ''}"
                    "): their values were filled in from the development patients, so the "
                    f"{answers} are those of a model without them; record them at this site, "
                    "or train a model without them"]
        return [_missing_warning(name, k, n, before, answers) for name, k, before in flagged]

    def shift_warnings(self, frame: pd.DataFrame, answers: str = "predictions") -> list[str]:
        """:meth:`missing_warnings`, then :meth:`scale_warnings`."""
        return [*self.missing_warnings(frame, answers), *self.scale_warnings(frame, answers)]

    def scale_warnings(self, frame: pd.DataFrame, answers: str = "predictions") -> list[str]:
        """A warning for each feature whose values in ``frame`` lie almost all beyond the
        development data's: another unit, another coding, or patients wholly unlike them.

        * A numeric feature is named when at least :data:`OUTSIDE_SHARE` (80%) of its values
          (of at least :data:`SHIFT_MIN_PATIENTS`, 10) lie outside its development range. A
          site whose patients resemble the development ones puts a value outside that range
          only rarely (beyond the extremes of the development patients); 80% outside means the
          column is on another scale or the cohort lies beyond the development patients. The
          warning sets the cohort's median against the development range and its midpoint
          (``schema.json`` keeps no development median): a median at least :data:`UNIT_RATIO`
          (2) times the midpoint, or that many times smaller, asks whether the unit differs
          (a unit change is a factor: 12 for months, 2.2 for pounds, 38.7 for cholesterol in
          mmol/L), a median nearer the midpoint says the patients lie beyond those the model
          was developed on (a site of older patients).
        * A categorical feature is named when none of its values (at least 10) is a category
          seen in development: another coding (``normal`` for ``3``), listed side by side.

        The values are kept as they are (a warning, not a refusal); ``answers`` names what is
        extrapolated ("predictions"). Fewer than 10 values are left to the per-patient
        ``out_of_range`` flags.
        """
        warnings = []
        numeric = _numeric_block(frame, self.numeric)
        for feature in self.features:
            if feature.kind == "numeric":
                text = _unit_warning(feature, numeric[feature.name].dropna(), answers)
            elif (feature.kind == "categorical" and feature.categories is not None
                  and len(feature.categories) < MAX_CATEGORIES_KEPT):
                text = _coding_warning(feature, as_category(frame[feature.name]).dropna())
            else:
                continue
            if text:
                warnings.append(text)
        return warnings

    def duplicated_ids(self, frame: pd.DataFrame) -> str:
        """A warning naming the ids of the declared id column that more than one row of
        ``frame`` holds ('' when none, or without an id column); ``frame`` is indexed by
        position."""
        if not self.id or self.id not in frame.columns:
            return ""
        ids = frame[self.id]
        if not (ids.duplicated(keep=False) & ids.notna()).any():
            return ""
        # the rows, not the ids: an id may be a medical record number, and this warning is
        # written into the manifest and the report
        return (f"id column '{self.id}' has {duplicated_text(ids)}: each row is evaluated as a "
                "patient of its own, so a patient recorded twice counts twice in the figures; "
                "remove the repeated rows (or correct the ids) and evaluate again")

    # ---- persistence --------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["features"] = [
            {k: v for k, v in asdict(f).items() if v is not None} for f in self.features]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FittedSchema:
        features = [FeatureSpec(**f) for f in data["features"]]
        rest = {k: v for k, v in data.items() if k != "features"}
        return cls(features=features, **rest)


def _missing_warning(name: str, k: int, n: int, before: float, answers: str) -> str:
    """The warning of :meth:`FittedSchema.missing_warnings` for one feature."""
    if k == n:
        found = f"is empty for all {n} patients" if n > 1 else "is empty for the patient"
        whom = ""
    else:
        found, whom = f"is missing for {k} of {n} patients ({_share(k / n)})", "for them "
    return (f"column '{name}' {found}, against {_share(before)} missing in development: "
            f"{'its values were' if n > 1 else 'its value was'} filled in from the development "
            f"patients, so {whom}the {answers} are those of a model without '{name}'; record "
            f"'{name}' at this site, or train a model without it")


def _unit_warning(feature: FeatureSpec, values: pd.Series, answers: str) -> str:
    """:meth:`FittedSchema.scale_warnings` for a numeric feature ('' when not named)."""
    low, high = (np.nan if v is None else float(v) for v in (feature.min, feature.max))
    outside = int(((values < low) | (values > high)).sum())
    if len(values) < SHIFT_MIN_PATIENTS or outside < OUTSIDE_SHARE * len(values):
        return ""
    median, midpoint = float(values.median()), (low + high) / 2
    unit = f" {feature.unit}" if feature.unit else ""
    head = (f"column '{feature.name}': {outside} of {len(values)} values "
            f"({_share(outside / len(values))}) lie outside the development range "
            f"{_num(low)}-{_num(high)}{unit}")
    ratio = median / midpoint if median > 0 and midpoint > 0 else 1.0
    if 1 / UNIT_RATIO < ratio < UNIT_RATIO:
        return (f"{head} (median {_num(median)} against a development midpoint of "
                f"{_num(midpoint)}): these patients lie beyond those the model was developed on, "
                f"so their {answers} are extrapolated; check that '{feature.name}' is recorded "
                "in the development unit")
    size = f"{ratio:.2g} times" if ratio > 1 else f"1/{1 / ratio:.2g} of"
    return (f"{head}; their median {_num(median)} is about {size} the development midpoint "
            f"{_num(midpoint)}: a different unit? Convert '{feature.name}' to the development "
            f"unit{unit and f' ({unit.strip()})'} and run again; as they are, the {answers} are "
            "extrapolated")


def _coding_warning(feature: FeatureSpec, values: pd.Series) -> str:
    """:meth:`FittedSchema.scale_warnings` for a categorical feature ('' when not named)."""
    known = feature.categories or []
    if len(values) < SHIFT_MIN_PATIENTS or values.isin(known).any():
        return ""
    return (f"column '{feature.name}': none of its {len(values)} values is a category seen in "
            f"development (development: {_listed(known)}; this cohort: "
            f"{_listed(sorted(values.unique()))}): a different coding? Recode "
            f"'{feature.name}' to the development categories and run again; as they are, the "
            "model reads every one as an unknown category")


def _listed(categories: list[str], limit: int = 10) -> str:
    shown = ", ".join(map(str, categories[:limit]))
    return f"{shown}, ... ({len(categories)} in all)" if len(categories) > limit else shown


def _num(value: float) -> str:
    return f"{value:.4g}"


_share = share_text


def _named(column: str, candidates: list[str]) -> str:
    """A missing column's name, quoted, with a ``did you mean`` when a column of the data is
    close to it (``'max_HR' (did you mean 'max HR'?)``)."""
    hint = suggest(column, candidates) if candidates else ""
    if not hint.startswith("did you mean"):
        return f"'{column}'"
    hint = hint.replace("? (names are case-sensitive)", "? names are case-sensitive")
    return f"'{column}' ({hint})"


def _unused(absent: list[str], unknown: list[str]) -> str:
    """The table's columns the model does not use, where one of the ``absent`` columns has no
    ``did you mean`` among them: one may be the absent column under another name."""
    if not unknown or all(_named(c, unknown) != f"'{c}'" for c in absent):
        return ""
    shown = ", ".join(f"'{c}'" for c in unknown[:SHOWN_COLUMNS])
    more = f" and {len(unknown) - SHOWN_COLUMNS} more" if len(unknown) > SHOWN_COLUMNS else ""
    return f"; the table's columns the model does not use are {shown}{more}"


def _numeric_block(frame: pd.DataFrame, names: list[str]) -> pd.DataFrame:
    """Many numeric columns as floats at once (per-column parsing only where text hides)."""
    kinds = dict(zip(frame.columns, frame.dtypes, strict=True))
    numbers = [n for n in names if pd.api.types.is_numeric_dtype(kinds[n])]
    # one float block (column-major, as pandas keeps it: each column contiguous): per-column
    # frames make every reduction thousands of calls
    values = np.asfortranarray(frame[numbers].to_numpy(dtype=float, na_value=np.nan))
    out = pd.DataFrame(values, index=frame.index, columns=pd.Index(numbers, dtype=object))
    if len(numbers) == len(names):
        return out
    for name in names:
        if name not in out.columns:
            out[name] = to_numeric(frame[name])
    return out[names]
