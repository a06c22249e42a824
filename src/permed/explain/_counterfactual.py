"""Counterfactuals: the smallest changes to actionable features that change a prediction.

The search is black-box (it only scores candidate patients): each actionable feature is moved
alone over a grid of allowed values, then pairs of features together; the crossing point of a
single feature is refined on a finer grid, a pair's change is shrunk along its direction. A
candidate counts only when the model's own prediction for the changed patient reaches the
goal. Distance is the sum of the changes, each divided by the feature's allowed range (a
changed category counts 1), so "smallest" compares features in different units.

Allowed values: the training range of a numeric feature (from the model's schema), narrowed
to its declared ``valid_range``; a monotone constraint (``"increase"`` / ``"decrease"``)
keeps only values on one side of the patient's own; a categorical feature may take any
category seen in training. Features that are not actionable are never changed.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from permed.exceptions import PermedError
from permed.explain._model import outcome_label
from permed.explain._outcomes import middle_horizon

__all__ = ["Change", "Counterfactual", "CounterfactualSearch", "FeatureMoves", "counterfactual",
           "search_counterfactuals"]

_REFINE = 17  # points of the finer grid between a crossing value and the one before it
_SHRINK = 21  # steps when shrinking a pair's change towards the patient


@dataclass(frozen=True)
class Change:
    """One feature's value before and after."""

    feature: str
    before: object
    after: object

    def text(self, unit: str | None = None) -> str:
        after = _shown(self.after) + (f" {unit}" if unit else "")
        if _missing(self.before):
            return f"set {self.feature} to {after}"
        if isinstance(self.after, str):
            return f"change {self.feature} from {_shown(self.before)} to {after}"
        verb = "raise" if float(self.after) > float(self.before) else "lower"  # type: ignore[arg-type]
        return f"{verb} {self.feature} from {_shown(self.before)} to {after}"


@dataclass(frozen=True)
class Counterfactual:
    """A changed patient whose prediction reaches the goal."""

    changes: tuple[Change, ...]
    distance: float
    score: float
    patient: pd.DataFrame

    def text(self) -> str:
        return " and ".join(c.text() for c in self.changes)


@dataclass
class CounterfactualSearch:
    """The result of a search: the best counterfactuals found, and what was searched."""

    score: float
    goal: str
    found: list[Counterfactual]
    features: list[str]
    note: str = ""

    @property
    def best(self) -> Counterfactual | None:
        return self.found[0] if self.found else None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (for the service)."""
        return {"score": self.score, "goal": self.goal, "searched": self.features,
                "note": self.note,
                "counterfactuals": [
                    {"changes": [{"feature": c.feature, "from": _json(c.before),
                                  "to": _json(c.after)} for c in cf.changes],
                     "distance": round(cf.distance, 6), "score": cf.score, "text": cf.text()}
                    for cf in self.found]}


@dataclass
class FeatureMoves:
    """Where one actionable feature may go: candidate values and the unit of distance."""

    feature: str
    values: np.ndarray
    width: float = 1.0
    categorical: bool = False
    decimals: int | None = None


def _missing(value: object) -> bool:
    return value is None or (isinstance(value, float | np.floating) and math.isnan(value))


def _shown(value: object) -> str:
    if isinstance(value, float | np.floating):
        return str(int(value)) if float(value).is_integer() else f"{float(value):.4g}"
    return str(value)


def _json(value: object) -> object:
    if _missing(value):
        return None
    return value.item() if isinstance(value, np.generic) else value


def _distance(move: FeatureMoves, before: object, after: np.ndarray) -> np.ndarray:
    if move.categorical:
        return np.ones(len(after))
    if _missing(before):
        return np.ones(len(after))
    return np.abs(after.astype(float) - float(before)) / move.width  # type: ignore[arg-type]


def _candidates(patient: pd.DataFrame, changes: Sequence[tuple[str, np.ndarray]]
                ) -> pd.DataFrame:
    """The patient repeated once per candidate, with the given columns replaced."""
    n = len(changes[0][1])
    # keep each column's dtype (object text with None stays so: see explain._shap._Codec)
    frame = pd.DataFrame({c: pd.Series(np.repeat(patient[c].to_numpy(), n),
                                       dtype=patient[c].dtype) for c in patient.columns})
    for feature, values in changes:
        frame[feature] = pd.Series(values, dtype=patient[feature].dtype)
    return frame


def _best_single(score, reached, patient: pd.DataFrame, move: FeatureMoves
                 ) -> tuple[object, float] | None:
    before = patient[move.feature].iloc[0]
    values = move.values[[not _same(v, before) for v in move.values]]
    if not len(values):
        return None
    hits = reached(score(_candidates(patient, [(move.feature, values)])))
    if not hits.any():
        return None
    distance = _distance(move, before, values)
    order = np.argsort(distance, kind="stable")
    best = next(i for i in order if hits[i])
    if move.categorical or _missing(before):
        return values[best], float(distance[best])
    return _refine(score, reached, patient, move, before, values[best])


def _refine(score, reached, patient, move: FeatureMoves, before: object,
            crossing: object) -> tuple[object, float]:
    """The value nearest the patient's own on a finer grid up to a crossing value."""
    fine = np.linspace(float(before), float(crossing), _REFINE)[1:]  # type: ignore[arg-type]
    if move.decimals is not None:
        fine = np.round(fine, move.decimals)
    hits = reached(score(_candidates(patient, [(move.feature, fine)])))
    value = fine[int(np.argmax(hits))] if hits.any() else crossing
    return value, float(_distance(move, before, np.array([value]))[0])


def _same(value: object, before: object) -> bool:
    if _missing(value) or _missing(before):
        return _missing(value) and _missing(before)
    return value == before


def _pair_grid(move: FeatureMoves, before: object, size: int) -> np.ndarray:
    values = move.values[[not _same(v, before) for v in move.values]]
    if move.categorical or len(values) <= size:
        return values
    return values[np.unique(np.linspace(0, len(values) - 1, size).round().astype(int))]


def _best_pairs(score, reached, patient: pd.DataFrame, moves: Sequence[FeatureMoves],
                size: int) -> list[tuple[tuple[FeatureMoves, FeatureMoves], np.ndarray, float]]:
    found = []
    for a, b in itertools.combinations(moves, 2):
        before_a, before_b = patient[a.feature].iloc[0], patient[b.feature].iloc[0]
        grid_a, grid_b = _pair_grid(a, before_a, size), _pair_grid(b, before_b, size)
        if not len(grid_a) or not len(grid_b):
            continue
        values_a = np.repeat(grid_a, len(grid_b))
        values_b = np.tile(grid_b, len(grid_a))
        hits = reached(score(_candidates(patient, [(a.feature, values_a),
                                                   (b.feature, values_b)])))
        if not hits.any():
            continue
        distance = _distance(a, before_a, values_a) + _distance(b, before_b, values_b)
        distance[~hits] = np.inf
        i = int(np.argmin(distance))
        found.append(((a, b), np.array([values_a[i], values_b[i]], dtype=object),
                      float(distance[i])))
    return found


def _shrink(score, reached, patient: pd.DataFrame, pair: tuple[FeatureMoves, FeatureMoves],
            target: np.ndarray) -> np.ndarray:
    """Move a pair's numeric changes back towards the patient while the goal still holds."""
    befores = [patient[m.feature].iloc[0] for m in pair]
    if any(m.categorical or _missing(v) for m, v in zip(pair, befores, strict=True)):
        return target
    steps = np.linspace(0.0, 1.0, _SHRINK)[1:]
    columns = []
    for move, before, after in zip(pair, befores, target, strict=True):
        values = float(before) + steps * (float(after) - float(before))
        columns.append(np.round(values, move.decimals) if move.decimals is not None else values)
    hits = reached(score(_candidates(patient, [(m.feature, c)
                                               for m, c in zip(pair, columns, strict=True)])))
    if not hits.any():
        return target
    i = int(np.argmax(hits))
    return np.array([columns[0][i], columns[1][i]], dtype=object)


def _make(patient: pd.DataFrame, features: Sequence[str], values: Sequence[object],
          distance: float, score) -> Counterfactual:
    changed = patient.copy()
    for feature, value in zip(features, values, strict=True):
        changed[feature] = pd.Series([value], dtype=patient[feature].dtype, index=changed.index)
    changes = tuple(Change(f, patient[f].iloc[0], v)
                    for f, v in zip(features, values, strict=True))
    return Counterfactual(changes, distance, float(score(changed)[0]), changed)


def search_counterfactuals(score: Callable[[pd.DataFrame], np.ndarray], patient: pd.DataFrame,
                           moves: Sequence[FeatureMoves],
                           reached: Callable[[np.ndarray], np.ndarray], *,
                           max_changes: int = 2, n_best: int = 3, pair_grid: int = 9,
                           ) -> list[Counterfactual]:
    """Black-box search for the smallest changes that make ``reached(score(patient))`` true.

    Reusable for any task: a diagnose probability crossing a threshold, a risk lowered by a
    target amount (``reached = lambda risk: risk <= current - 0.05``), an effect turning
    positive.

    Parameters
    ----------
    score : callable
        Maps a DataFrame of candidate patients to one score each.
    patient : DataFrame
        One row, typed as ``score`` reads it.
    moves : sequence of FeatureMoves
        The actionable features and their allowed values; nothing else is changed.
    reached : callable
        Maps scores to booleans: whether the goal is reached.
    max_changes : {1, 2}, default 2
        Most features changed together.
    n_best : int, default 3
        Counterfactuals returned (each changing a different set of features).
    pair_grid : int, default 9
        Values per feature when searching pairs.

    Returns
    -------
    list of Counterfactual
        Smallest distance first; each one's ``score`` is the model's score for the changed
        patient, which reaches the goal.
    """
    found: list[Counterfactual] = []
    alone: dict[str, float] = {}
    for move in moves:
        single = _best_single(score, reached, patient, move)
        if single is not None:
            found.append(_make(patient, [move.feature], [single[0]], single[1], score))
            alone[move.feature] = single[1]
    if max_changes >= 2:
        for pair, values, _ in _best_pairs(score, reached, patient, moves, pair_grid):
            values = _shrink(score, reached, patient, pair, values)
            distance = sum(float(_distance(m, patient[m.feature].iloc[0], np.array([v]))[0])
                           for m, v in zip(pair, values, strict=True))
            # a pair is worth showing only when it is smaller than changing either alone
            if distance < min(alone.get(m.feature, np.inf) for m in pair):
                found.append(_make(patient, [m.feature for m in pair], list(values), distance,
                                   score))
    valid = [cf for cf in found if reached(np.array([cf.score]))[0]]
    return sorted(valid, key=lambda cf: (cf.distance, len(cf.changes)))[:n_best]


# ---- diagnose models -------------------------------------------------------------------------


def _decimals(width: float) -> int:
    """Round candidate values to about 1/100 of the range: 228 mg/dL, not 228.3719."""
    return max(0, 2 - math.floor(math.log10(width))) if width > 0 else 0


def _numeric_moves(spec: Any, before: object, direction: str | None,
                   bounds: tuple[float, float] | None, grid: int) -> FeatureMoves:
    low, high = bounds if bounds is not None else (spec.min, spec.max)
    if spec.valid_range is not None:
        low, high = max(low, spec.valid_range[0]), min(high, spec.valid_range[1])
    width = high - low if high > low else 1.0
    decimals = _decimals(width)
    values = np.unique(np.round(np.linspace(low, high, grid), decimals))
    if not _missing(before) and direction == "increase":
        values = values[values > float(before)]  # type: ignore[arg-type]
    elif not _missing(before) and direction == "decrease":
        values = values[values < float(before)]  # type: ignore[arg-type]
    return FeatureMoves(spec.name, values, width, decimals=decimals)


def _moves(model: Any, patient: pd.DataFrame, actionable: Sequence[str],
           monotone: Mapping[str, str | None], ranges: Mapping[str, tuple[float, float]],
           grid: int) -> list[FeatureMoves]:
    specs = {f.name: f for f in model.schema.features}
    unknown = [f for f in actionable if f not in specs]
    if unknown:
        raise PermedError(f"actionable feature(s) {unknown} are not features of this model; "
                          f"its features are {list(specs)}: correct the study's actionable list")
    moves = []
    for name in actionable:
        spec, direction = specs[name], monotone.get(name)
        if direction not in (None, "increase", "decrease"):
            raise PermedError(f"monotone constraint '{direction}' for '{name}' is not known; "
                              "expected increase or decrease")
        if spec.kind == "numeric":
            moves.append(_numeric_moves(spec, patient[name].iloc[0], direction,
                                        ranges.get(name), grid))
        elif direction is not None:
            raise PermedError(f"column '{name}' is categorical: a monotone constraint "
                              f"('{direction}') needs a numeric column; remove it from the study")
        else:
            moves.append(FeatureMoves(name, np.array(spec.categories or [], dtype=object),
                                      categorical=True))
    return moves


def counterfactual(model: Any, patient: pd.DataFrame, actionable: Sequence[str] | None = None,
                   *, monotone: Mapping[str, str | None] | None = None,
                   ranges: Mapping[str, tuple[float, float]] | None = None,
                   max_changes: int = 2, n_best: int = 3, grid: int = 41,
                   ) -> CounterfactualSearch:
    """The smallest changes to actionable features that move a patient across the threshold.

    Parameters
    ----------
    model : DiagnoseModel
        A trained binary diagnose model (``permed.bundle.load_bundle``).
    patient : DataFrame or Series
        One patient with the model's columns.
    actionable : sequence of str, optional
        Features that may change; default the study's ``actionable`` role recorded in the
        model at training.
    monotone : mapping of str to {"increase", "decrease"}, optional
        The only direction a feature may move; default the study's ``monotone`` keys.
    ranges : mapping of str to (low, high), optional
        Allowed values per numeric feature, instead of the training range (a declared
        ``valid_range`` still narrows them).
    max_changes : {1, 2}, default 2
        Most features changed together.
    n_best : int, default 3
        Counterfactuals returned.
    grid : int, default 41
        Values tried per numeric feature alone (a finer grid then refines the crossing).

    Returns
    -------
    CounterfactualSearch
        The calibrated probability now, the goal, and up to ``n_best`` counterfactuals
        (``found``, smallest change first; empty with a ``note`` when none exists).

    Raises
    ------
    PermedError
        For a multiclass model, no actionable feature, or an actionable feature or monotone
        constraint the model cannot use.
    """
    if len(model.classes) != 2 or model.threshold is None:
        raise PermedError("counterfactuals need a binary diagnose model with a decision "
                          f"threshold; this model has classes {model.classes}")
    features, actionable, monotone = _prepare(model, patient, actionable, monotone)
    threshold = float(model.threshold)
    positive = outcome_label(model.schema.target, str(model.classes[1]))

    def score(frame: pd.DataFrame) -> np.ndarray:
        return model.calibrator.transform(model.pipeline.predict_proba(frame))[:, 1]

    now = float(score(features)[0])
    above = now >= threshold
    goal = (f"probability of {positive} below {threshold:.3f}" if above
            else f"probability of {positive} at or above {threshold:.3f}")

    def reached(scores: np.ndarray) -> np.ndarray:
        return scores < threshold if above else scores >= threshold

    return _search(model, features, (actionable, monotone, ranges), (score, reached, now, goal),
                   max_changes, n_best, grid)


def _prepare(model: Any, patient: pd.DataFrame | pd.Series, actionable: Sequence[str] | None,
             monotone: Mapping[str, str | None] | None
             ) -> tuple[pd.DataFrame, list[str], dict[str, str | None]]:
    """One patient's typed features, and the actionable features with their constraints."""
    if isinstance(patient, pd.Series):
        patient = patient.to_frame().T
    if len(patient) != 1:
        raise PermedError(f"a counterfactual is for one patient: got {len(patient)} rows")
    saved = getattr(model, "actionable", None) or {}
    actionable = list(actionable if actionable is not None else saved)
    if not actionable:
        raise PermedError("no actionable feature: declare them in the study ([roles] actionable "
                          "= [\"chol\", ...]) or pass actionable=[...]")
    model.schema.check(patient)
    return (model.schema.coerce(patient).reset_index(drop=True), actionable,
            dict(monotone if monotone is not None else saved))


def _search(model: Any, features: pd.DataFrame,
            allowed: tuple[list[str], dict[str, str | None], Mapping[str, Any] | None],
            target: tuple[Callable[[pd.DataFrame], np.ndarray],
                          Callable[[np.ndarray], np.ndarray], float, str],
            max_changes: int, n_best: int, grid: int) -> CounterfactualSearch:
    actionable, monotone, ranges = allowed
    score, reached, now, goal = target
    moves = _moves(model, features, actionable, monotone, dict(ranges or {}), grid)
    found = search_counterfactuals(score, features, moves, reached, max_changes=max_changes,
                                   n_best=n_best)
    note = "" if found else (
        f"no change of at most {max_changes} of {', '.join(actionable)} within the allowed "
        f"ranges reaches a {goal}")
    return CounterfactualSearch(now, goal, found, actionable, note)


def risk_counterfactual(model: Any, patient: pd.DataFrame | pd.Series, reduction: float = 0.05,
                        actionable: Sequence[str] | None = None, *, horizon: float | None = None,
                        monotone: Mapping[str, str | None] | None = None,
                        ranges: Mapping[str, tuple[float, float]] | None = None,
                        max_changes: int = 2, n_best: int = 3, grid: int = 41,
                        ) -> CounterfactualSearch:
    """The smallest changes to actionable features that lower a patient's absolute risk by
    ``reduction`` (e.g. 0.05: five percentage points) by ``horizon``.

    Parameters
    ----------
    model : RiskModel
        A trained risk model (``permed.bundle.load_bundle``).
    patient : DataFrame or Series
        One patient with the model's columns.
    reduction : float, default 0.05
        How much lower the risk must be, as a probability.
    horizon : float, optional
        Default: the model's middle horizon (as its explanations).

    Other parameters are those of :func:`counterfactual`.

    Returns
    -------
    CounterfactualSearch
        ``score`` is the absolute risk by the horizon now.

    Raises
    ------
    PermedError
        For a reduction outside (0, 1), no actionable feature, or an actionable feature or
        monotone constraint the model cannot use.
    """
    if not 0 < reduction < 1:
        raise PermedError(f"the risk reduction must lie between 0 and 1 (a probability, e.g. "
                          f"0.05 for five points); got {reduction}")
    features, actionable, monotone = _prepare(model, patient, actionable, monotone)
    if horizon is None:
        horizon = middle_horizon(model)
    times = np.asarray([horizon], dtype=np.float64)

    def score(frame: pd.DataFrame) -> np.ndarray:
        return 1.0 - model.survival(frame, times)[:, 0]

    now = float(score(features)[0])
    goal = f"risk by {horizon:g} below {now - reduction:.3f} (now {now:.3f})"

    def reached(scores: np.ndarray) -> np.ndarray:
        return scores <= now - reduction

    return _search(model, features, (actionable, monotone, ranges), (score, reached, now, goal),
                   max_changes, n_best, grid)
