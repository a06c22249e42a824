"""SHAP values of a fitted pipeline, on the original (clinical) features.

Which explainer runs depends on the model family and on the scale explained:

=====================  ======================  =============================================
model                  scale                   explainer
=====================  ======================  =============================================
LightGBM (binary)      probability             TreeSHAP, interventional on the background
LightGBM (binary)      log-odds                TreeSHAP, path-dependent (the raw margin)
random forest, trees   probability             TreeSHAP, path-dependent (trees vote
                                               probabilities)
logistic (binary)      log-odds                linear SHAP (interventional) on the background
anything else          any, or a function      permutation SHAP on the original features, with
                                               a small background sample
=====================  ======================  =============================================

Tree and linear explainers work on the preprocessed columns; their values are summed back to
the original features (:mod:`permed.explain._groups`). The permutation explainer masks the
original features themselves, so a one-hot group or a missing indicator moves with its
feature. Every method is additive: ``base_values + values.sum(axis=1)`` equals the output
explained, for each patient.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import ExtraTreesClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.tree import DecisionTreeClassifier

from permed.exceptions import PermedError
from permed.explain._groups import group_columns, source_features

__all__ = ["SCALES", "Explanation", "background_sample", "choose_method", "explain_function",
           "explain_pipeline"]

SCALES = ("probability", "log-odds")
_EPS = 1e-6
# Permutations of the features per patient for the permutation explainer: each costs
# 2 * n_features + 1 model calls on the background. Values are exactly additive for any
# number; more permutations lower their noise (3 keeps a 30-feature MLP near 0.1 s/patient).
DEFAULT_PERMUTATIONS = 3
DEFAULT_BACKGROUND = 50
_PROBABILITY_TREES = (RandomForestClassifier, ExtraTreesClassifier, DecisionTreeClassifier)

OutputFunction = Callable[[object, np.ndarray], np.ndarray]


@dataclass
class Explanation:
    """Additive contributions of the original features to one or more model outputs.

    Attributes
    ----------
    values : ndarray of shape (n_patients, n_features, n_outputs)
        Contribution of each feature to each output, on ``scale``.
    base_values : ndarray of shape (n_patients, n_outputs)
        The output for the average background patient (the same for every patient, except
        for path-dependent tree explanations where it is the training average).
    data : DataFrame of shape (n_patients, n_features)
        The explained patients' feature values, as the model read them.
    outputs : list of str
        A label per output (a class, or e.g. "risk score").
    scale : str
        ``"probability"``, ``"log-odds"`` or the unit of a caller's output function.
    method : str
        ``"tree"``, ``"linear"`` or ``"permutation"``.
    description : str
        What is explained, in words, e.g. "the model's probability of diagnosis = malignant
        before calibration".
    """

    values: np.ndarray
    base_values: np.ndarray
    data: pd.DataFrame
    outputs: list[str]
    scale: str
    method: str
    description: str = ""

    @cached_property
    def features(self) -> list[str]:
        return [str(c) for c in self.data.columns]

    @cached_property
    def rows(self) -> list[list[Any]]:
        """Each patient's feature values as Python objects (read once for the words of all
        their factors, not one pandas row at a time)."""
        values: list[list[Any]] = self.data.to_numpy(dtype=object).tolist()
        return values

    def predicted(self, row: int | None = None) -> np.ndarray:
        """The explained outputs, ``base_values + values.sum(axis=1)``: shape (n, n_outputs),
        or (n_outputs,) for one ``row``."""
        if row is not None:
            return self.base_values[row] + self.values[row].sum(axis=0)
        return self.base_values + self.values.sum(axis=1)

    def importance(self) -> pd.Series:
        """Mean absolute contribution per feature (over patients and outputs), largest first."""
        mean_abs = np.abs(self.values).mean(axis=(0, 2))
        return pd.Series(mean_abs, index=self.features).sort_values(ascending=False)


def background_sample(features: pd.DataFrame, size: int = 100, seed: int = 0,
                      text_columns: Sequence[str] = ()) -> pd.DataFrame:
    """Background patients for SHAP, drawn column by column from the development data.

    Each column is resampled independently, so no row is a real patient's record. A free-text
    column is different: one value is a whole note, which may name the patient and holds their
    history, so ``text_columns`` are never copied: every background patient has an empty note
    (the reference "no note"). A note's contribution then says what the note as a whole adds
    to the prediction against no note. The sample can travel inside a model bundle.
    Interventional SHAP (tree, linear, permutation) breaks the links between features anyway.

    Parameters
    ----------
    features : DataFrame
        Development features, typed as the model reads them.
    size : int, default 100
        Rows drawn.
    seed : int, default 0
    text_columns : sequence of str, optional
        Free-text columns (the schema's notes): empty in every row, none of their text kept.

    Returns
    -------
    DataFrame of shape (size, n_features)

    Examples
    --------
    >>> frame = pd.DataFrame({"age": [50.0, 60.0], "note": ["Pt John Smith, fever", "cough"]})
    >>> background_sample(frame, 3, text_columns=["note"])["note"].tolist()
    ['', '', '']
    """
    rng = np.random.default_rng(seed)
    empty = set(text_columns)
    rows = {}
    for c in features.columns:
        # every column draws its rows, a note too: the others' draws do not depend on it
        drawn = rng.integers(0, len(features), size)
        rows[c] = np.full(size, "", dtype=object) if c in empty else features[c].to_numpy()[drawn]
    return pd.DataFrame(rows, columns=features.columns)


class _Codec:
    """Original features <-> a float matrix (categories as codes) for the SHAP maskers."""

    def __init__(self, *frames: pd.DataFrame) -> None:
        first = frames[0]
        self.columns = list(first.columns)
        self.levels: dict[str, np.ndarray] = {}
        for column in self.columns:
            if not pd.api.types.is_numeric_dtype(first[column]):
                values = pd.concat([f[column] for f in frames]).dropna().astype(str)
                self.levels[column] = np.array(sorted(values.unique()), dtype=object)

    def encode(self, frame: pd.DataFrame) -> np.ndarray:
        out = np.empty((len(frame), len(self.columns)))
        for j, column in enumerate(self.columns):
            if column in self.levels:
                text = frame[column]
                codes = np.searchsorted(self.levels[column], text.fillna("").astype(str))
                out[:, j] = np.where(text.isna(), np.nan, codes)
            else:
                out[:, j] = pd.to_numeric(frame[column], errors="coerce")
        return out

    def keys(self, frame: pd.DataFrame, encoded: np.ndarray) -> list[bytes]:
        """Each row's values as bytes, the same whatever other rows are encoded with it
        (category codes depend on the levels seen, so categories are keyed by their text)."""
        numeric = [j for j, c in enumerate(self.columns) if c not in self.levels]
        numbers = encoded[:, numeric] + 0.0  # -0.0 keyed as 0.0
        numbers[np.isnan(numbers)] = np.nan  # one NaN
        texts = [frame[c].astype(object).where(frame[c].notna(), None).tolist()
                 for c in self.columns if c in self.levels]
        return [numbers[i].tobytes() + "\x1f".join(str(t[i]) for t in texts).encode()
                for i in range(len(encoded))]

    def decode(self, matrix: np.ndarray) -> pd.DataFrame:
        data = {}
        for j, column in enumerate(self.columns):
            if column in self.levels:
                codes = matrix[:, j]
                labels = self.levels[column][np.nan_to_num(codes).astype(int)]
                # object dtype with NaN for missing, as FittedSchema.coerce gives (pandas
                # would otherwise infer a string dtype)
                data[column] = pd.Series(np.where(np.isnan(codes), np.nan, labels), dtype=object)
            else:
                data[column] = pd.Series(matrix[:, j])
        return pd.DataFrame(data, columns=self.columns)


def _as_2d(values: np.ndarray) -> np.ndarray:
    values = np.asarray(values, dtype=float)
    return values[:, None] if values.ndim == 1 else values


def _patient_rng(seed: int, key: bytes) -> np.random.Generator:
    """The random source of one patient's permutations: the seed and the patient's own values,
    so a patient is explained alike alone or in any batch (and twins alike in one batch)."""
    digest = hashlib.sha256(key).digest()
    return np.random.default_rng([seed, int.from_bytes(digest[:16], "little")])


def _coalitions(rng: np.random.Generator, n_features: int, permutations: int
                ) -> tuple[np.ndarray, np.ndarray]:
    """Masks of the coalitions one patient's passes visit, and each pass's feature order.

    Each permutation is walked forward then backward (antithetic sampling): pass ``p`` adds
    ``order[p, s]`` to the coalition at step ``s``; ``masks[p, s]`` holds the features
    present before that step (``masks[p, n_features]`` is the whole patient).
    """
    forward = np.stack([rng.permutation(n_features) for _ in range(permutations)])
    orders = np.concatenate([forward, forward[:, ::-1]])
    masks = np.zeros((len(orders), n_features + 1, n_features), dtype=bool)
    for p, order in enumerate(orders):
        for s, feature in enumerate(order):
            masks[p, s + 1:, feature] = True
    return masks, orders


def _permutation_shap(model: Callable[[np.ndarray], np.ndarray], patients: np.ndarray,
                      background: np.ndarray, masks: np.ndarray, orders: np.ndarray
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Contributions (n, M, K) and base values (n, K) for a chunk of patients.

    ``masks`` (n, passes, M + 1, M) and ``orders`` (n, passes, M) are each patient's
    coalitions (:func:`_coalitions`). One call scores the background, the patients and every
    coalition between the first and the last on every background row; ``model`` must score
    each row on its own (as every model's predict does).
    """
    n, n_features = patients.shape
    n_passes, n_steps = masks.shape[1:3]
    # Every pass starts from the background alone and ends at the patient alone: those two
    # coalitions are scored once, not once per pass and background row. The steps between:
    # (patient, pass, step, background row, feature), the patient's value where present.
    mixed = np.where(masks[:, :, 1:-1, None, :], patients[:, None, None, None, :],
                     background[None, None, None, :, :])
    scores = _as_2d(model(np.concatenate([background, patients,
                                          mixed.reshape(-1, n_features)])))  # one call
    ends = len(background) + n
    value = np.empty((n, n_passes, n_steps, scores.shape[1]))
    value[:, :, 0] = scores[:len(background)].mean(axis=0)
    value[:, :, -1] = scores[len(background):ends, None, :]
    value[:, :, 1:-1] = scores[ends:].reshape(n, n_passes, n_steps - 2, len(background),
                                              scores.shape[1]).mean(axis=3)
    gains = np.diff(value, axis=2)  # (n, pass, M, K): what each step's feature added
    contributions = np.zeros((n, n_features, gains.shape[-1]))
    patient = np.broadcast_to(np.arange(n)[:, None, None], orders.shape)
    np.add.at(contributions, (patient, orders), gains)
    return contributions / n_passes, value[:, 0, 0]


def explain_function(function: Callable[[pd.DataFrame], np.ndarray], frame: pd.DataFrame,
                     background: pd.DataFrame, *, outputs: Sequence[str], scale: str,
                     description: str = "", permutations: int = DEFAULT_PERMUTATIONS,
                     max_background: int = DEFAULT_BACKGROUND, seed: int = 0,
                     max_rows: int = 250_000) -> Explanation:
    """Permutation SHAP of any function of the original features (model-agnostic).

    Use it for a model that is not a scikit-learn pipeline, or for an output the tree and
    linear explainers cannot give: a survival model's risk score, a treatment effect.

    The estimator is that of SHAP's ``PermutationExplainer`` (antithetic permutations, the
    interventional value of a coalition averaged over the background rows), vectorized over
    patients: every coalition of a chunk of patients is scored in one call of ``function``.
    SHAP's own explainer scores one patient at a time and compiles its maskers with numba on
    first use, which took 2-20 s per process here; see benchmarks/explain.py.

    Parameters
    ----------
    function : callable
        Maps a DataFrame with the columns of ``frame`` to an array (n,) or (n, n_outputs).
    frame : DataFrame
        The patients to explain.
    background : DataFrame
        Reference patients (same columns); contributions are relative to their mean output.
    outputs : sequence of str
        A label per output column of ``function``.
    scale : str
        What the output is measured in (``"probability"``, ``"log-odds"``, ``"days"``, ...).
    description : str, optional
        What is explained, in words.
    permutations : int, default 3
        Random feature orders per patient, each walked forward and backward. The values are
        exactly additive for any number; more permutations lower their sampling noise.
    max_background : int, default 50
        Background rows used (the first ones): the cost per patient grows with them.
    seed : int, default 0
        Seeds the permutations, with each patient's own feature values: the same seed gives
        a patient the same values whoever else is explained with them.
    max_rows : int, default 250000
        Most rows passed to ``function`` in one call (patients are chunked to fit).

    Returns
    -------
    Explanation
        With ``method="permutation"``.

    Examples
    --------
    >>> import pandas as pd
    >>> frame = pd.DataFrame({"a": [1.0, 2.0], "b": [0.0, 1.0]})
    >>> e = explain_function(lambda f: 2 * f["a"] + f["b"], frame, frame, outputs=["y"],
    ...                      scale="units")
    >>> e.values[1, :, 0].round(6).tolist()  # 2 * (2 - 1.5), 1 - 0.5
    [1.0, 0.5]
    """
    background = background.iloc[:max_background]
    codec = _Codec(frame, background)
    n_features = len(codec.columns)
    patients, reference = codec.encode(frame), codec.encode(background)

    def model(matrix: np.ndarray) -> np.ndarray:
        return function(codec.decode(matrix))

    keys = codec.keys(frame, patients)
    per_patient = 2 * permutations * (n_features + 1) * len(reference)
    chunk = max(1, max_rows // max(per_patient, 1))
    values, base = [], []
    for start in range(0, len(frame), chunk):
        rows = patients[start:start + chunk]
        plans = [_coalitions(_patient_rng(seed, key), n_features, permutations)
                 for key in keys[start:start + chunk]]
        masks = np.stack([m for m, _ in plans])
        orders = np.stack([o for _, o in plans])
        chunk_values, chunk_base = _permutation_shap(model, rows, reference, masks, orders)
        values.append(chunk_values)
        base.append(chunk_base)
    return Explanation(np.concatenate(values), np.concatenate(base),
                       frame.reset_index(drop=True), list(outputs), scale, "permutation",
                       description)


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, _EPS, 1 - _EPS)
    return np.log(p / (1 - p))


def _method(estimator: object, scale: str | OutputFunction, n_classes: int) -> str:
    if callable(scale):
        return "permutation"
    binary = n_classes == 2
    if type(estimator).__name__ == "LGBMClassifier" and binary:
        return "tree"
    if isinstance(estimator, _PROBABILITY_TREES) and scale == "probability":
        return "tree"
    if isinstance(estimator, LogisticRegression) and binary and scale == "log-odds":
        return "linear"
    return "permutation"


def _lightgbm_thresholds(estimator: object, n_features: int) -> list[np.ndarray]:
    """The numeric split thresholds of a fitted LightGBM model, per feature."""
    found: list[list[float]] = [[] for _ in range(n_features)]

    def walk(node: dict) -> None:
        if "split_index" in node:
            if node.get("decision_type") == "<=":
                found[node["split_feature"]].append(float(node["threshold"]))
            walk(node["left_child"])
            walk(node["right_child"])

    for tree in estimator.booster_.dump_model()["tree_info"]:  # type: ignore[attr-defined]
        walk(tree["tree_structure"])
    return [np.unique(t) for t in found]


def _snap(matrix: np.ndarray, thresholds: list[np.ndarray]) -> np.ndarray:
    """Move values that sit within float32 rounding of a split threshold to its float32 side.

    SHAP's interventional TreeSHAP (shap 0.51, ``tree_shap.h``) holds thresholds as float32,
    so a value within float32 rounding of a threshold can take the other branch than
    LightGBM (which compares in float64), and the values no longer add up to the model's
    output: up to 0.03 on Cleveland, where measurements are rounded and often equal a
    threshold. Each such value is replaced by the float32 threshold itself (or the next double
    above it): the same side of the float64 threshold, so LightGBM's prediction is unchanged.
    """
    out = np.array(matrix, dtype=float, copy=True)
    for j, thresholds_j in enumerate(thresholds):
        if not len(thresholds_j):
            continue
        as_float32 = thresholds_j.astype(np.float32).astype(float)
        column = out[:, j][:, None]
        left = column <= thresholds_j
        wrong = left != (column <= as_float32)
        rows, k = np.nonzero(wrong)
        out[rows, j] = np.where(left[rows, k], as_float32[k],
                                np.nextafter(as_float32[k], np.inf))
    return out


# Building an interventional explainer parses every tree (~0.2-0.4 s for 300 trees): the last
# few are kept, so one-patient calls (predict --explain, the service) are fast.
_INTERVENTIONAL: OrderedDict[tuple[int, str], tuple[object, list[np.ndarray], Any]] = \
    OrderedDict()
_KEPT_EXPLAINERS = 4


def _interventional(estimator: object, background: np.ndarray) -> tuple[list[np.ndarray], Any]:
    import shap

    key = (id(estimator), hashlib.sha256(np.ascontiguousarray(background).tobytes()).hexdigest())
    cached = _INTERVENTIONAL.get(key)
    if cached is not None and cached[0] is estimator:
        _INTERVENTIONAL.move_to_end(key)
        return cached[1], cached[2]
    thresholds = _lightgbm_thresholds(estimator, background.shape[1])
    explainer = shap.TreeExplainer(estimator, data=_snap(background, thresholds),
                                   model_output="probability",
                                   feature_perturbation="interventional")
    _INTERVENTIONAL[key] = (estimator, thresholds, explainer)
    while len(_INTERVENTIONAL) > _KEPT_EXPLAINERS:
        _INTERVENTIONAL.popitem(last=False)
    return thresholds, explainer


def _tree_values(estimator: object, transformed: np.ndarray, background: np.ndarray,
                 scale: str, classes: list[int]) -> tuple[np.ndarray, np.ndarray]:
    import shap

    if type(estimator).__name__ == "LGBMClassifier":
        if scale == "probability":
            thresholds, explainer = _interventional(estimator, background)
            transformed = _snap(transformed, thresholds)
        else:
            explainer = shap.TreeExplainer(estimator, feature_perturbation="tree_path_dependent")
        result = explainer(transformed, check_additivity=False)
        return (np.asarray(result.values)[:, :, None],
                np.asarray(result.base_values).reshape(len(transformed), 1))
    explainer = shap.TreeExplainer(estimator, feature_perturbation="tree_path_dependent")
    result = explainer(transformed, check_additivity=False)
    return (np.asarray(result.values)[:, :, classes],
            np.asarray(result.base_values).reshape(len(transformed), -1)[:, classes])


def _linear_values(estimator: LogisticRegression, transformed: np.ndarray,
                   background: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    import shap

    explainer = shap.LinearExplainer(estimator, shap.maskers.Independent(
        background, max_samples=len(background)))
    result = explainer(transformed)
    return (np.asarray(result.values)[:, :, None],
            np.asarray(result.base_values, dtype=float).reshape(len(transformed), 1))


def _pipeline_function(pipeline: Pipeline, scale: str | OutputFunction,
                       classes: list[int]) -> Callable[[pd.DataFrame], np.ndarray]:
    if callable(scale):
        def output(frame: pd.DataFrame) -> np.ndarray:
            return scale(pipeline[-1], pipeline[:-1].transform(frame))
    elif scale == "probability":
        def output(frame: pd.DataFrame) -> np.ndarray:
            return pipeline.predict_proba(frame)[:, classes]
    else:
        def output(frame: pd.DataFrame) -> np.ndarray:
            return _logit(pipeline.predict_proba(frame)[:, classes])
    return output


def explain_pipeline(pipeline: Pipeline, frame: pd.DataFrame, background: pd.DataFrame, *,
                     scale: str | OutputFunction = "probability",
                     classes: Sequence[int] | None = None, outputs: Sequence[str] | None = None,
                     description: str = "", method: str = "auto",
                     permutations: int = DEFAULT_PERMUTATIONS, seed: int = 0) -> Explanation:
    """SHAP values of a fitted ``Pipeline([ColumnTransformer, estimator])`` per original feature.

    Parameters
    ----------
    pipeline : Pipeline
        Fitted; its first step a ``ColumnTransformer`` selecting columns by name, its last the
        estimator (as :func:`permed.workflow._cv.build_pipeline` makes them).
    frame : DataFrame
        The patients to explain, with the columns the pipeline was fitted on.
    background : DataFrame
        Reference patients (see :func:`background_sample`).
    scale : {"probability", "log-odds"} or callable, default "probability"
        The output explained: the estimator's (uncalibrated) class probability, its log-odds,
        or ``scale(estimator, preprocessed_matrix) -> array`` for another output (a risk
        score: ``lambda est, X: est.predict(X)``; an effect: ``lambda est, X: est.effect(X)``).
    classes : sequence of int, optional
        Class indices (columns of ``predict_proba``) to explain; default the positive class
        of a binary model, else every class. Ignored for a callable ``scale``.
    outputs : sequence of str, optional
        Labels of the explained outputs (default the class labels, or "output").
    description : str, optional
        What is explained, in words, stored with the explanation.
    method : {"auto", "tree", "linear", "permutation"}, default "auto"
        ``"auto"`` picks the exact explainer the model and scale allow (see the module
        docstring); ``"permutation"`` forces the model-agnostic one.
    permutations : int, default 3
        Permutations per patient for the permutation explainer.
    seed : int, default 0

    Returns
    -------
    Explanation

    Raises
    ------
    PermedError
        For an unknown scale or method, or a method the model does not support.
    """
    estimator = pipeline[-1]
    n_classes = len(getattr(estimator, "classes_", [])) or 1
    if not callable(scale) and scale not in SCALES:
        raise PermedError(f"explanation scale '{scale}' is not known; expected one of "
                          f"{', '.join(SCALES)} or a function of (estimator, features)")
    if classes is None:
        classes = [1] if n_classes == 2 else list(range(n_classes))
    classes = list(classes)
    labels = list(outputs) if outputs is not None else (
        ["output"] if callable(scale) else [str(estimator.classes_[k]) for k in classes])
    unit = scale if isinstance(scale, str) else "output"
    exact = _method(estimator, scale, n_classes) if _is_column_pipeline(pipeline) else None
    chosen = (exact or "permutation") if method == "auto" else method
    if chosen not in ("tree", "linear", "permutation"):
        raise PermedError(f"explanation method '{chosen}' is not known; expected auto, tree, "
                          "linear or permutation")
    if chosen == "permutation":
        explanation = explain_function(
            _pipeline_function(pipeline, scale, classes), frame, background, outputs=labels,
            scale=unit, description=description, permutations=permutations, seed=seed)
        return explanation
    if chosen != exact:
        raise PermedError(f"explanation method '{chosen}' does not support a "
                          f"{type(estimator).__name__} on the {unit} scale in this pipeline; "
                          "use method='auto'")
    preprocessor = pipeline[:-1]
    transformed = preprocessor.transform(frame)
    reference = preprocessor.transform(background)
    if chosen == "tree":
        values, base = _tree_values(estimator, transformed, reference, unit, classes)
    else:
        values, base = _linear_values(estimator, transformed, reference)
    owners = source_features(pipeline.steps[0][1])
    grouped = group_columns(values, owners, [str(c) for c in frame.columns])
    return Explanation(grouped, base, frame.reset_index(drop=True), labels, unit, chosen,
                       description)


def choose_method(pipeline: Pipeline, scale: str | OutputFunction = "probability") -> str:
    """The explainer :func:`explain_pipeline` uses by default for a fitted pipeline and scale.

    Returns
    -------
    {"tree", "linear", "permutation"}
    """
    estimator = pipeline[-1]
    n_classes = len(getattr(estimator, "classes_", [])) or 1
    if not _is_column_pipeline(pipeline):
        return "permutation"
    return _method(estimator, scale, n_classes)


def _is_column_pipeline(pipeline: Pipeline) -> bool:
    """Tree and linear SHAP need the preprocessing's column names: [ColumnTransformer, model]."""
    return len(pipeline) == 2 and isinstance(pipeline.steps[0][1], ColumnTransformer)
