"""What drives the differences in treatment effect between patients.

Two complementary views of a fitted effect model, both fitted to its estimated effects on the
development patients (a surrogate of the effect model, in readable units):

- **importance**: mean absolute SHAP value per feature of a small LightGBM model of the
  effects (one-hot categories summed back to their column), with the surrogate's
  cross-validated R^2 saying how much of the effect variation the features explain;
- **subgroups**: a depth-2 regression tree of the effects, whose leaves are subgroups with a
  plain rule (``cd40 <= 350 and age > 40``), their size and their mean effect.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from lightgbm import LGBMRegressor
from numpy.typing import ArrayLike, NDArray
from sklearn.model_selection import KFold, cross_val_predict
from sklearn.tree import DecisionTreeRegressor

__all__ = ["effect_drivers", "readable_design"]

TOP_FEATURES = 8
_SEP = "="


def readable_design(features: pd.DataFrame, numeric: list[str],
                    categorical: list[str]) -> tuple[NDArray[np.float64], list[str]]:
    """Features in their own units: numeric median-imputed, categories one-hot (``col=level``).

    Parameters
    ----------
    features : pandas.DataFrame
        Typed features (``FittedSchema.coerce``).
    numeric, categorical : list of str

    Returns
    -------
    matrix : ndarray of shape (n, p)
    names : list of str
    """
    blocks, names = [], []
    for column in numeric:
        values = pd.to_numeric(features[column], errors="coerce").astype(float)
        blocks.append(values.fillna(values.median() if values.notna().any() else 0.0).to_numpy())
        names.append(column)
    for column in categorical:
        values = features[column].astype(object)
        for level in sorted(values.dropna().astype(str).unique()):
            blocks.append((values.astype(str) == level).to_numpy(dtype=float))
            names.append(f"{column}{_SEP}{level}")
    matrix = np.column_stack(blocks) if blocks else np.zeros((len(features), 0))
    return matrix, names


def _column_of(name: str, numeric: set[str]) -> str:
    return name if name in numeric else name.rsplit(_SEP, 1)[0]


def _importance(matrix: NDArray[np.float64], names: list[str], effect: NDArray[np.float64],
                numeric: set[str], seed: int) -> tuple[list[dict[str, Any]], float]:
    import shap

    model = LGBMRegressor(n_estimators=150, learning_rate=0.05, num_leaves=7,
                          min_child_samples=max(10, len(effect) // 50), random_state=seed,
                          n_jobs=1, verbose=-1)
    folds = KFold(3, shuffle=True, random_state=seed)
    predicted = cross_val_predict(model, matrix, effect, cv=folds)
    total = float(np.sum((effect - effect.mean()) ** 2))
    r2 = 1.0 - float(np.sum((effect - predicted) ** 2)) / total if total > 0 else float("nan")
    model.fit(matrix, effect)
    values = np.abs(np.asarray(shap.TreeExplainer(model).shap_values(matrix))).mean(axis=0)
    by_column: dict[str, float] = {}
    for name, value in zip(names, values, strict=True):
        column = _column_of(name, numeric)
        by_column[column] = by_column.get(column, 0.0) + float(value)
    overall = sum(by_column.values()) or 1.0
    ranked = sorted(by_column.items(), key=lambda kv: -kv[1])[:TOP_FEATURES]
    return ([{"feature": c, "mean_abs_shap": v, "share": v / overall} for c, v in ranked], r2)


def _condition(name: str, threshold: float, left: bool, numeric: set[str]) -> str:
    if name in numeric:
        return f"{name} {'<=' if left else '>'} {threshold:.4g}"
    column, _, level = name.rpartition(_SEP)
    return f"{column} {'is not' if left else 'is'} {level}"


def _subgroups(matrix: NDArray[np.float64], names: list[str], effect: NDArray[np.float64],
               numeric: set[str], seed: int) -> list[dict[str, Any]]:
    tree = DecisionTreeRegressor(max_depth=2, min_samples_leaf=max(20, len(effect) // 20),
                                 random_state=seed).fit(matrix, effect)
    structure = tree.tree_
    leaves: list[dict[str, Any]] = []

    def walk(node: int, rules: list[str]) -> None:
        if structure.children_left[node] == -1:
            leaves.append({"rule": " and ".join(rules) or "all patients",
                           "patients": int(structure.n_node_samples[node]),
                           "effect": float(structure.value[node].ravel()[0])})
            return
        name = names[structure.feature[node]]
        threshold = float(structure.threshold[node])
        walk(structure.children_left[node], [*rules, _condition(name, threshold, True, numeric)])
        walk(structure.children_right[node],
             [*rules, _condition(name, threshold, False, numeric)])

    walk(0, [])
    return sorted(leaves, key=lambda leaf: -leaf["effect"])


def effect_drivers(features: pd.DataFrame, numeric: list[str], categorical: list[str],
                   effects: ArrayLike, labels: list[str], seed: int = 0) -> dict[str, Any]:
    """Which features drive the differences in estimated effect, for each comparison of arms.

    Parameters
    ----------
    features : pandas.DataFrame
        Typed features of the patients the effects were estimated for.
    numeric, categorical : list of str
        Feature names by kind.
    effects : array-like of shape (n, m)
        Estimated effects, one column per comparison.
    labels : list of str
        Name of each comparison (``"B vs A"``).
    seed : int

    Returns
    -------
    dict
        ``method`` and, per comparison, ``mean`` and ``sd`` of the effects, ``importance``
        (top features with ``mean_abs_shap`` and ``share``), ``surrogate_r2`` (3-fold
        cross-validated) and ``subgroups`` (rule, patients, mean effect).
    """
    effects = np.asarray(effects, dtype=float).reshape(len(features), -1)
    matrix, names = readable_design(features, numeric, categorical)
    known = set(numeric)
    comparisons: dict[str, Any] = {}
    for label, effect in zip(labels, effects.T, strict=True):
        entry: dict[str, Any] = {"mean": float(effect.mean()), "sd": float(effect.std())}
        if entry["sd"] > 1e-12 * max(1.0, abs(entry["mean"])) and matrix.shape[1]:
            importance, r2 = _importance(matrix, names, effect, known, seed)
            entry.update(importance=importance, surrogate_r2=r2,
                         subgroups=_subgroups(matrix, names, effect, known, seed))
        else:
            entry.update(importance=[], surrogate_r2=None, subgroups=[])
        comparisons[label] = entry
    return {"method": "SHAP values of a LightGBM surrogate of the estimated effects, and a "
                      "depth-2 regression tree of them (subgroups), on the development patients",
            "comparisons": comparisons}
