"""Train, select and evaluate a risk (time-to-event) model on one cohort.

Protocol: a held-out test split, stratified by event, is set aside first and touched once,
for the selected model only. Model families are compared by k-fold cross-validation on the
development split (stratified by event), every preprocessing step fitted inside the fold,
and the one with the highest mean Harrell's C-index is selected, unless the ensemble is a
candidate and that family is not clearly better than it (:data:`ENSEMBLE_RULE`); the selected
family is refitted on the whole development split. Its test figures (Harrell's C, Uno's C,
integrated Brier score, time-dependent AUC and calibration at each horizon) come with bootstrap
95% CIs.
"""

from __future__ import annotations

import math
import time as clock
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedKFold, train_test_split
from sklearn.pipeline import Pipeline

from permed.engine import Engine, Progress, as_items
from permed.evaluate import cv_summary
from permed.evaluate._cautions import MIN_TEST_CLASS
from permed.evaluate.survival import (
    IBS_QUANTILES,
    METRIC_ESTIMATORS,
    SurvivalGrid,
    censoring_reference,
    horizon_key,
    logrank_test,
    proportional_hazards_test,
    survival_metrics,
    survival_report,
)
from permed.exceptions import PermedError
from permed.explain import Explanation
from permed.explain._outcomes import explain_outcome_frame, explain_risk
from permed.fairness import bin_edges
from permed.models.risk import RISK_MODELS, default_models, make_model, survival_y
from permed.models.risk._base import curve_chunks
from permed.preprocess import make_preprocessor
from permed.study import FittedSchema, Study, ValidationReport
from permed.study._validate_risk import (
    RiskOptions,
    check_risk,
    encode_event,
    follow_up_times,
    followed_rule,
    thinly_followed,
    time_text,
    time_unit,
)
from permed.workflow._config import TrainConfig
from permed.workflow._cv import describe_fold
from permed.workflow._explain_outcomes import explain_risk_step
from permed.workflow._large import cohort_folds, folds_note
from permed.workflow._referral import referral, shared_reasons
from permed.workflow._result import RunResult, Timings
from permed.workflow._tuning import (
    TUNING_RULE,
    TuningVerdict,
    judge,
    search,
    selection_score,
    tuning_details,
)

__all__ = ["FOLLOW_UP_METHOD", "RISK_GROUPS", "RiskModel", "checkable_horizons", "evaluate_cohort",
           "follow_up_entry", "follow_up_summary", "read_outcome", "risk_columns",
           "risk_estimators", "risk_fairness", "train_risk"]

RISK_GROUPS = ("low", "intermediate", "high")
CLIP_QUANTILES = (0.005, 0.995)
# Default horizons: these quantiles of the development split's event times.
DEFAULT_HORIZON_QUANTILES = (0.25, 0.5, 0.75)
# p-value under which the proportional-hazards assumption is reported as violated.
PH_ALPHA = 0.05
# How the selected spline Cox model is tested, appended to the test's method.
_PH_SPLINE_METHOD = ("; tested on the spline Cox model's own fit, each continuous predictor's "
                     "restricted cubic spline basis one term (its knots less one degrees of "
                     "freedom)")
# The family model selection keeps unless another is clearly better in CV: averaging the
# boosted trees, the forest and the spline Cox model ranked test patients better than the
# boosted trees alone on 21 paired splits of METABRIC and GBSG
# (benchmarks/risk_alternatives.py), and picking the highest CV mean among families that differ
# by fold noise lost on test to always taking one (benchmarks/risk_splits.py).
ENSEMBLE = "ensemble"
ENSEMBLE_RULE = (f"the '{ENSEMBLE}' family is kept unless the other family with the highest "
                 "mean CV Harrell's C-index beats it by more than the optimism of picking the "
                 "best of the other families plus one standard error of the paired per-fold "
                 "gain (the rule that decides tuning, with the families as the trials)")
# The families whose survival curves are S0(t) ** exp(score): proportional hazards by
# construction, with a hazard ratio between two patients that is the same at every time.
PROPORTIONAL_HAZARDS_MODELS = ("coxph", "coxph_splines", "gradient_boosting", "deepsurv",
                               "ft_transformer")


def risk_columns(horizons: list[float]) -> list[str]:
    """Output column names for the absolute risk at each horizon: ``risk_at_<h>``."""
    return [f"risk_at_{horizon_key(h)}" for h in horizons]


def _survival(pipeline: Pipeline, features: pd.DataFrame, times: np.ndarray) -> np.ndarray:
    return pipeline[-1].predict_survival_function(pipeline[:-1].transform(features), times)


@dataclass
class RiskModel:
    """A trained risk model, ready to score new patients.

    Attributes
    ----------
    name : str
        The selected model family.
    schema : FittedSchema
    pipeline : sklearn.pipeline.Pipeline
        Preprocessing and the survival estimator.
    horizons : list of float
        Times at which absolute risk is reported.
    group_cuts : list of float
        Risk scores separating the low, intermediate and high risk groups.
    time_column, event_column : str
    max_follow_up : float
        The longest follow-up in the development split: curves beyond it are extrapolated.
    event_value : str or None
        The event column's value meaning "event" (None: 1 or True).
    median_limit : float or None
        The time fewer than 20 (or 5% of) development patients were followed beyond: a median
        survival time past it rests on a handful of patients and is left empty (None in
        bundles written before it was recorded: no limit).
    """

    name: str
    schema: FittedSchema
    pipeline: Pipeline
    horizons: list[float]
    group_cuts: list[float]
    time_column: str
    event_column: str
    max_follow_up: float
    event_value: str | None = None
    time_unit: str | None = None
    background: pd.DataFrame | None = None  # development patients SHAP contributions start from
    actionable: dict[str, str | None] | None = None  # for counterfactuals: feature -> monotone
    median_limit: float | None = None  # older pickles lack it and read the class default

    @property
    def event_times(self) -> np.ndarray:
        """Distinct event times the model learned from (where its curves step)."""
        return self.pipeline[-1].event_times_

    def risk_score(self, frame: pd.DataFrame) -> np.ndarray:
        """Risk score per row (higher = earlier event) for a table that passed the schema."""
        return self.pipeline[-1].predict(self._features(frame))

    def survival(self, frame: pd.DataFrame, times: Any) -> np.ndarray:
        """Survival probability of each row at ``times``: shape (rows, times).

        Every answer at a chosen time passes here (``survival_curves``, ``explain_risk``'s and
        the counterfactuals' ``horizon``), so the times are checked here.

        Raises
        ------
        PermedError
            For a time that is not a finite number; for a recalibrated model (permed
            recalibrate), a time past the local cohort's longest follow-up: its baseline
            hazard is flat there, so a curve would only repeat its last value.
        """
        times = np.asarray(times, dtype=np.float64)
        self._check_times(times)
        return self.pipeline[-1].predict_survival_function(self._features(frame), times)

    def _check_times(self, times: np.ndarray) -> None:
        bad = times[~np.isfinite(times)]
        if len(bad):
            raise PermedError(
                f"survival asked at {', '.join(sorted({str(float(b)) for b in bad}))} ("
                f"{len(bad)} of the {times.size} times asked): a time must be a finite number in "
                "the model's time unit" + (f" ({self.time_unit})" if self.time_unit else "")
                + "; check the horizon or times passed")
        limit = getattr(self.pipeline[-1], "max_time_", None)  # RecalibratedSurvival's
        if limit is not None and times.size and float(np.max(times)) > limit:
            raise PermedError(
                f"survival asked at {time_text(float(np.max(times)), self.time_unit)}, past "
                f"{time_text(limit, self.time_unit)}, the longest follow-up of the cohort this "
                "model was recalibrated on: its baseline hazard is flat after that, so the "
                f"curve there is not an estimate; ask for times up to "
                f"{time_text(limit, self.time_unit, floor=True)}")

    def survival_curves(self, frame: pd.DataFrame, times: Any = None) -> pd.DataFrame:
        """Each row's survival curve: one column per time (default: the event times).

        Raises
        ------
        SchemaMismatchError
            When columns are missing or numeric columns hold text.
        PermedError
            For times :meth:`survival` refuses.
        """
        self.schema.check(frame)
        times = self.event_times if times is None else np.asarray(times, dtype=np.float64)
        return pd.DataFrame(self.survival(frame, times), columns=times)

    def groups(self, scores: np.ndarray) -> np.ndarray:
        """Risk group label of each risk score."""
        return np.asarray(RISK_GROUPS, dtype=object)[np.searchsorted(self.group_cuts, scores,
                                                                    side="right")]

    def median_survival(self, frame: pd.DataFrame) -> np.ndarray:
        """Predicted median time to event; NaN when the curve stays above 0.5 (not reached),
        or reaches it only past ``median_limit``, where few development patients were left."""
        return self._median(self._features(frame))

    def _features(self, frame: pd.DataFrame) -> Any:
        """What the survival estimator reads: the table typed and preprocessed (a table's
        answers take several reads of it, and preprocessing costs more than the estimator)."""
        return self.pipeline[:-1].transform(self.schema.coerce(frame))

    def _median(self, features: Any) -> np.ndarray:
        times, estimator = self.event_times, self.pipeline[-1]
        out = np.full(features.shape[0], np.nan)
        # curves at every event time: rows x event times, so a chunk of rows at a time
        for rows in curve_chunks(features.shape[0], len(times)):
            out[rows] = self._median_of(estimator.predict_survival_function(features[rows],
                                                                            times))
        return out

    def _median_of(self, curves: np.ndarray) -> np.ndarray:
        """The first event time where each curve (at ``event_times``) reaches 0.5, else NaN."""
        below = curves <= 0.5
        median = np.where(below.any(axis=1), self.event_times[np.argmax(below, axis=1)], np.nan)
        limit = getattr(self, "median_limit", None)
        return median if limit is None else np.where(median <= limit, median, np.nan)

    def explain(self, frame: pd.DataFrame, **options: Any) -> Explanation:
        """SHAP values of the absolute risk by the middle horizon, per original feature (the
        service calls this; ``options`` beyond :func:`permed.explain.explain_risk`'s, such as
        the service's ``scale``, are ignored: the scale is the risk)."""
        keep = {k: v for k, v in options.items() if k in ("horizon", "permutations", "seed")}
        return explain_risk(self, frame, time_unit=self.time_unit, **keep)

    def explain_frame(self, frame: pd.DataFrame, top: int = 3) -> pd.DataFrame:
        """Each row's top factors of the absolute risk by the middle horizon, in words
        (``permed predict --explain``); see :func:`permed.explain.explain_risk`."""
        return explain_outcome_frame(self.explain(frame), self, top)

    def predict_frame(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Risk score, risk at each horizon, median survival, risk group and range flags.

        ``risk_at_<h>`` is the probability of the event by time ``h``; ``median_survival_time``
        is empty when the predicted curve does not fall to 0.5 within the follow-up the model
        learned from, or does so only where fewer than 20 (or 5%) of the development patients
        were still followed (``median_limit``).

        Raises
        ------
        SchemaMismatchError
            When columns are missing or numeric columns hold text.
        """
        self.schema.check(frame)
        features = self._features(frame)
        return self._answers(frame, features, self._median(features))

    def predict_with_curves(self, frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
        """``predict_frame``'s table and ``survival_curves``' curves (at the event times) from
        one preprocessing of the table, the median read off the curves: the service answers a
        few patients with both. The curves of all rows are held at once.

        Raises
        ------
        SchemaMismatchError
            When columns are missing or numeric columns hold text.
        """
        self.schema.check(frame)
        features = self._features(frame)
        curves = self.pipeline[-1].predict_survival_function(features, self.event_times)
        return (self._answers(frame, features, self._median_of(curves)),
                pd.DataFrame(curves, columns=self.event_times))

    def _answers(self, frame: pd.DataFrame, features: Any, median: np.ndarray
                 ) -> pd.DataFrame:
        estimator = self.pipeline[-1]
        scores = estimator.predict(features)
        out = pd.DataFrame(index=frame.index)
        if self.schema.id and self.schema.id in frame.columns:
            out[self.schema.id] = frame[self.schema.id].to_numpy()
        out["risk_score"] = scores
        at_horizons = 1.0 - estimator.predict_survival_function(
            features, np.asarray(self.horizons, dtype=np.float64))
        for column, values in zip(risk_columns(self.horizons), at_horizons.T, strict=True):
            out[column] = values
        out["median_survival_time"] = median
        out["risk_group"] = self.groups(scores)
        flagged = self.schema.out_of_range(frame)
        out["out_of_range"] = flagged != ""
        out["out_of_range_features"] = flagged
        for column, values in referral(shared_reasons(self.schema, frame, flagged)).items():
            out[column] = values
        return out.reset_index(drop=True)


# --------------------------------------------------------------------------- cross-validation


@dataclass
class _Folds:
    """Development data and folds shared by every candidate."""

    features: pd.DataFrame
    time: np.ndarray
    event: np.ndarray
    folds: list[tuple[np.ndarray, np.ndarray]]
    schema: FittedSchema
    horizons: np.ndarray
    config: TrainConfig


def build_risk_pipeline(name: str, schema: FittedSchema, config: TrainConfig,
                        params: dict[str, Any] | None = None) -> Pipeline:
    """Preprocessing + one survival estimator, unfitted."""
    preprocess = make_preprocessor(schema.numeric, schema.categorical,
                                   CLIP_QUANTILES if config.clip else None)
    return Pipeline([("preprocess", preprocess),
                     ("model", make_model(name, config.seed, config.device, params))])


def _fit_fold(task: tuple[_Folds, str, dict[str, Any], int]
              ) -> tuple[int, np.ndarray, dict[str, float], float]:
    data, name, params, k = task
    train, val = data.folds[k]
    started = clock.perf_counter()
    pipeline = build_risk_pipeline(name, data.schema, data.config, params)
    reference = survival_y(data.time[train], data.event[train])
    pipeline.fit(data.features.iloc[train], reference)
    seconds = clock.perf_counter() - started
    risk = pipeline.predict(data.features.iloc[val])
    # as on the test split: td_auc and Uno's truncation use the horizons the fold follows enough
    # patients to (the first horizon's truncation when none)
    thin, _ = thinly_followed(data.time[val], list(data.horizons))
    checked = np.asarray([h for h in data.horizons if h not in thin], dtype=np.float64)
    grid = SurvivalGrid.for_data(data.time[val], checked if len(checked) else data.horizons)
    survival = _survival(pipeline, data.features.iloc[val], grid.times)
    reference, _ = censoring_reference(reference, survival_y(data.time[val], data.event[val]))
    metrics = survival_metrics(reference, data.time[val], data.event[val], risk, survival, grid,
                               tau=float(checked.max() if len(checked) else data.horizons.min()))
    if not len(checked):
        metrics["td_auc"] = math.nan
    return k, risk, metrics, seconds


@dataclass
class _CVResult:
    params: dict[str, Any]
    oof: np.ndarray
    summary: dict[str, dict[str, float]]
    seconds: float
    folds: list[float]  # Harrell's C of each fold


def _cross_validate(data: _Folds, names: list[str], engine: Engine, progress: Progress,
                    params: dict[str, dict[str, Any]], label: str = "cross-validation"
                    ) -> dict[str, _CVResult]:
    tasks = [(data, name, params.get(name, {}), k)
             for name, k in as_items(names, range(len(data.folds)))]
    outputs = engine.map(_fit_fold, tasks, label=label, progress=progress,
                         describe=describe_fold)
    results = {}
    for name in names:
        mine = sorted((o for (_, n, _, _), o in zip(tasks, outputs, strict=True) if n == name),
                      key=lambda o: o[0])
        oof = np.zeros(len(data.time))
        for k, risk, _, _ in mine:
            oof[data.folds[k][1]] = risk
        fold_metrics = [m for _, _, m, _ in mine]
        results[name] = _CVResult(params.get(name, {}), oof, cv_summary(fold_metrics),
                                  sum(o[3] for o in mine),
                                  [float(m["c_index"]) for m in fold_metrics])
    return results


def _tune(data: _Folds, names: list[str], engine: Engine,
          progress: Progress) -> dict[str, tuple[dict[str, Any], TuningVerdict]]:
    """Optuna search per family within --budget seconds in all, scored by mean CV C-index.

    Each family's default settings are scored first on the same folds and kept unless the
    best trial is clearly better after allowing for the optimism of picking it
    (:data:`~permed.workflow._tuning.TUNING_RULE`). Returns each family's settings ({} for its
    defaults) and the verdict behind them. A family without a search space (the ensemble) is
    not tuned.
    """
    names = [name for name in names if RISK_MODELS[name].space is not None]
    share = data.config.budget / max(1, len(names))
    best: dict[str, tuple[dict[str, Any], TuningVerdict]] = {}

    def folds(name: str, params: dict[str, Any], label: str) -> list[float]:
        found = _cross_validate(data, [name], engine, progress, {name: params}, label=label)
        return found[name].folds

    def mean(found: list[float]) -> float:
        value = float(np.mean(found))
        return value if np.isfinite(value) else -1.0

    with progress.step("tuning", total=len(names)) as advance:
        for name in names:
            best[name] = search(name, lambda params, label, name=name: folds(name, params, label),
                                RISK_MODELS[name].space, share, data.config.seed, mean=mean)
            advance()
    return best


# --------------------------------------------------------------------------- the protocol


@dataclass
class _Outcome:
    time: np.ndarray
    event: np.ndarray
    kept: np.ndarray  # rows used (a censored time of 0 carries no follow-up)
    left_out: int


def read_outcome(frame: pd.DataFrame, study: Study, options: RiskOptions,
             validation: ValidationReport | None = None,
             progress: Progress | None = None) -> _Outcome:
    """The outcome, checked with the options (event value, horizons); warnings the table's
    ``validation`` did not raise join it (and so manifest.json) and are noted."""
    report = ValidationReport()
    check_risk(frame, study, report, options)
    report.raise_errors()
    if validation is not None:
        known = {f.message for f in validation.warnings}
        for finding in (f for f in report.warnings if f.message not in known):
            validation.warn(finding.message, finding.column)
            if progress is not None:
                progress.note(f"warning: {finding.message}")
    time = follow_up_times(frame, study).to_numpy(dtype=np.float64)
    event = encode_event(frame[study.event], options.event_value).to_numpy(dtype=bool)
    kept = time > 0
    return _Outcome(time[kept], event[kept], np.flatnonzero(kept), int((~kept).sum()))


def _default_horizons(time: np.ndarray, event: np.ndarray) -> list[float]:
    found = np.quantile(time[event], DEFAULT_HORIZON_QUANTILES)
    return sorted({float(f"{h:.3g}") for h in found if 0 < float(f"{h:.3g}") < time.max()})


def _select(names: list[str], results: dict[str, _CVResult],
            tuned: dict[str, tuple[dict[str, Any], TuningVerdict]]
            ) -> tuple[str, dict[str, Any]]:
    """The family with the best selection score; when the ensemble is a candidate, the
    ensemble unless the best other family is clearly better (:data:`ENSEMBLE_RULE`). Returns
    the family and the ``selection`` entries of metrics.json that say why (none without the
    ensemble among several candidates)."""
    def optimism(name: str) -> float:
        mean = results[name].summary.get("c_index", {}).get("mean", math.nan)
        return mean - selection_score(mean, tuned[name][1] if name in tuned else None)

    def score(name: str) -> float:
        mean = results[name].summary.get("c_index", {}).get("mean", math.nan) - optimism(name)
        return -1.0 if not np.isfinite(mean) else mean

    def best(among: list[str]) -> str:
        return max(among, key=lambda name: (score(name), -names.index(name)))

    if ENSEMBLE not in names or len(names) == 1:
        return best(names), {}
    others = [name for name in names if name != ENSEMBLE]
    rival = best(others)
    if score(ENSEMBLE) == -1.0:  # no CV score (it failed on every fold): nothing to keep
        return rival, {"ensemble_kept": False,
                       "against_ensemble": {"family": rival, "note": "the ensemble has no "
                                            "cross-validated C-index"}}
    # each family's fold scores less its tuning optimism, as its selection score is
    folds = [np.asarray(results[name].folds) - np.nan_to_num(optimism(name)) for name in others]
    verdict = judge(folds, others.index(rival), results[ENSEMBLE].folds)
    return (rival if verdict.replace else ENSEMBLE), {
        "ensemble_kept": not verdict.replace,
        "against_ensemble": {"family": rival, "families": verdict.trials,
                             "replaced_ensemble": verdict.replace,
                             **{k: v for k, v in verdict.as_json().items()
                                if k not in ("trials", "replaced_defaults")}}}


def train_risk(frame: pd.DataFrame, study: Study, validation: ValidationReport,
               config: TrainConfig, engine: Engine, progress: Progress) -> RunResult:
    """Run the whole risk protocol; return metrics, test predictions and the model.

    Raises
    ------
    PermedError
        For a bad outcome (times, event values, horizons) or an unknown model name.
    """
    timings = Timings()
    names = config.models or default_models()
    for name in names:
        make_model(name, config.seed, config.device)  # refuses unknown names up front
    outcome = read_outcome(frame, study, RiskOptions(config.event_value, tuple(config.horizons)),
                       validation, progress)
    frame = frame.iloc[outcome.kept]
    time, event = outcome.time, outcome.event
    dev_idx, test_idx = train_test_split(np.arange(len(frame)), test_size=config.test_size,
                                         stratify=event, random_state=config.seed)
    dev, test = frame.iloc[dev_idx], frame.iloc[test_idx]
    schema = FittedSchema.from_frame(dev, validation.kinds, study, [])
    horizons = sorted(config.horizons) or _default_horizons(time[dev_idx], event[dev_idx])
    if not horizons:
        raise PermedError("no horizon could be chosen from the event times: give --horizons")
    features = schema.coerce(dev)
    folds = cohort_folds(len(dev_idx), config.cv)
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=config.seed)
    data = _Folds(features, time[dev_idx], event[dev_idx],
                  list(splitter.split(features, event[dev_idx])), schema,
                  np.asarray(horizons, dtype=np.float64), config)

    tuned: dict[str, tuple[dict[str, Any], TuningVerdict]] = {}
    if config.budget > 0:
        with timings("tuning"):
            tuned = _tune(data, names, engine, progress)
    with timings("cv"):
        results = _cross_validate(data, names, engine, progress,
                                  {n: p for n, (p, _) in tuned.items()})
    selected, selection = _select(names, results, tuned)
    with timings("final_fit"):
        pipeline = build_risk_pipeline(selected, schema, config, results[selected].params).fit(
            features, survival_y(data.time, data.event))
    development_scores = pipeline.predict(features)
    cuts = [float(c) for c in np.quantile(development_scores, [1 / 3, 2 / 3])]
    model = RiskModel(selected, schema, pipeline, list(horizons), cuts, study.time, study.event,
                      float(data.time.max()), config.event_value, time_unit(study),
                      median_limit=thinly_followed(data.time, [])[1])

    # the figures on the test split are checkable where enough test patients are followed
    checks = checkable_horizons(time[test_idx], horizons, "test patients")
    _warn_unchecked(validation, progress, study, time, time[test_idx], horizons)
    with timings("test"):
        evaluation, test_frame = _evaluate_test(model, test, time[test_idx], event[test_idx],
                                                data, config, [h for h in horizons if horizon_key(
                                                    h) not in checks["not_checkable"]])
    with timings("proportional_hazards"):
        ph = _ph_check(selected, pipeline, data, config)
    with timings("fairness"):
        fairness = risk_fairness(study, test, test_frame, model, config,
                                 bin_edges(dev[study.sensitive]))
    with timings("explain"):  # SHAP of the absolute risk: workflow/_explain_outcomes.py
        explained, files = explain_risk_step(model, features, test,
                                             frame.index[test_idx].to_numpy(), study,
                                             config.seed)
    metrics = _metrics(study, config, names, (selected, selection), results, tuned, evaluation,
                       data, ph, fairness, (event, outcome.left_out, len(dev), len(test)))
    metrics["horizons"].update(checks)
    metrics["outcome"]["median_follow_up"] = float(np.median(data.time))
    metrics["outcome"].update(follow_up_entry(
        follow_up_summary(data.time, data.event, horizons),
        follow_up_summary(time[test_idx], event[test_idx], horizons)))
    metrics["outcome"]["median_survival_limit"] = model.median_limit
    metrics["explanations"] = explained
    metrics["timings"] = dict(timings)
    predictions = _predictions(frame, test_idx, study, test_frame, model)
    return RunResult("risk", metrics, predictions, model, schema, files=files,
                     split_rows=(dev.index, test.index))


def _evaluate_test(model: RiskModel, test: pd.DataFrame, time: np.ndarray, event: np.ndarray,
                   data: _Folds, config: TrainConfig, checkable: list[float]
                   ) -> tuple[dict[str, Any], pd.DataFrame]:
    reference, censoring = censoring_reference(survival_y(data.time, data.event),
                                               survival_y(time, event))
    return evaluate_cohort(model, test, time, event, (reference, censoring), config.n_boot,
                           config.seed, checkable=checkable)


def _warn_unchecked(validation: ValidationReport, progress: Progress, study: Study,
                    cohort: np.ndarray, test: np.ndarray, horizons: list[float]) -> None:
    """Warn of the horizons too few test patients are followed to (those too few patients of
    the whole cohort reach are already warned about by validation)."""
    thin, reach = thinly_followed(test, horizons)
    known = thinly_followed(cohort, horizons)[0]
    new = [h for h in thin if h not in known]
    if not new:
        return
    unit, enough = time_unit(study), followed_rule(len(test))
    checked = [h for h in horizons if float(h) not in thin]
    which = ", ".join(time_text(h, unit) for h in new)
    counts = ", ".join(str(thin[h]) for h in new)
    uses = (f"the headline td_auc and Uno's C use the horizons up to "
            f"{time_text(max(checked), unit)}" if checked else
            "no headline td_auc is given and Uno's C is truncated at the first horizon")
    fix = (f"choose horizons up to {time_text(reach, unit, floor=True)}, which {enough} test "
           "patients reach" if reach > 0 else
           f"the test split holds fewer than {enough} patients: train on more patients")
    message = (f"horizon{'s' if len(new) > 1 else ''} {which}: only {counts} of the "
               f"{len(test)} test patients ({enough} needed) are followed that long in "
               f"'{study.time}', so the risk by then cannot be checked on the test split: its "
               f"calibration, AUC and observed risks there are marked not checkable and {uses}; "
               f"{fix}")
    validation.warn(message, study.time)
    progress.note(f"warning: {message}")


def evaluate_cohort(model: RiskModel, frame: pd.DataFrame, time: np.ndarray, event: np.ndarray,
                    censoring: tuple[np.ndarray, str], n_boot: int, seed: int,
                    horizons: list[float] | None = None,
                    checkable: list[float] | None = None) -> tuple[dict[str, Any], pd.DataFrame]:
    """Test figures of a fitted risk model on one cohort, and its per-patient predictions.

    Parameters
    ----------
    model : RiskModel
    frame : pandas.DataFrame
        The cohort's rows (features), in the order of ``time`` and ``event``.
    time, event : ndarray
    censoring : (structured array, str)
        The outcome the censoring distribution is estimated from, and how it was chosen.
    n_boot, seed : int
    horizons : list of float, optional
        The horizons the figures are computed at (default: the model's); the predictions
        hold the risk at every horizon of the model.
    checkable : list of float, optional
        The horizons enough of these patients are followed to (default: all of ``horizons``):
        the headline td_auc averages them and Uno's C is truncated at the last of them (at the
        first horizon when there is none); the others keep their own figures.

    Returns
    -------
    figures : dict
        :func:`permed.evaluate.survival.survival_report` plus ``risk_groups`` and
        ``evaluation``. With fewer than :data:`MIN_TEST_CLASS` events the bootstrap CIs are
        null (see :func:`_without_intervals`).
    predictions : pandas.DataFrame
        time, event, risk_score, risk_group, risk_at_<h>, median_survival_time per patient.
    """
    horizons = np.asarray(model.horizons if horizons is None else horizons, dtype=np.float64)
    grid = SurvivalGrid.for_data(time, horizons)
    features = model.schema.coerce(frame)
    risk = model.pipeline.predict(features)
    survival = _survival(model.pipeline, features, grid.times)
    every = 1.0 - _survival(model.pipeline, features, np.asarray(model.horizons, np.float64))
    checked = horizons if checkable is None else np.asarray(sorted(checkable), np.float64)
    # Uno's C weighs events by 1/G(t)^2: truncated where enough patients are still followed
    tau = float(checked.max()) if len(checked) else float(horizons.min())
    report = survival_report(censoring[0], time, event, risk, survival, grid, tau,
                             n_boot=n_boot, seed=seed, averaged=checked)
    at_horizons = 1.0 - survival[:, grid.columns(grid.horizons)]
    groups = model.groups(risk)
    report["risk_groups"] = _group_figures(time, event, groups, at_horizons, horizons)
    report["evaluation"] = {
        "uno_c_tau": tau, "uno_c_tau_rule": (
            "the last horizon" if len(checked) == len(model.horizons) else
            "the last checkable horizon" if len(checked) else
            "the first horizon: no horizon is checkable on these patients"),
        "td_auc_horizons": [float(h) for h in checked],
        "censoring_distribution": censoring[1],
        "ibs_times": {"from": float(grid.ibs[0]), "to": float(grid.ibs[-1]),
                      "points": len(grid.ibs),
                      "rule": f"{len(grid.ibs)} evenly spaced times between the "
                              f"{IBS_QUANTILES[0]:.0%} and {IBS_QUANTILES[1]:.0%} quantiles of "
                              "the evaluated follow-up times"}}
    report["bootstrap"] = _interval_status(int(event.sum()))
    if not report["bootstrap"]["intervals_estimable"]:
        _without_intervals(report)
    predictions = pd.DataFrame({"time": time, "event": event.astype(int), "risk_score": risk,
                                "risk_group": groups})
    for column, values in zip(risk_columns(model.horizons), every.T, strict=True):
        predictions[column] = values
    predictions["median_survival_time"] = model.median_survival(frame)
    return report, predictions


def _group_figures(time: np.ndarray, event: np.ndarray, groups: np.ndarray,
                   at_horizons: np.ndarray, horizons: np.ndarray) -> dict[str, Any]:
    from permed.evaluate.survival import kaplan_meier_at

    figures: dict[str, Any] = {}
    for label in RISK_GROUPS:
        mine = groups == label
        figures[label] = {
            "n": int(mine.sum()), "events": int(event[mine].sum()),
            "predicted": {horizon_key(h): float(at_horizons[mine, j].mean()) if mine.any()
                          else None for j, h in enumerate(horizons)},
            "observed": {horizon_key(h): 1.0 - kaplan_meier_at(time[mine], event[mine], h)
                         if mine.any() else None for h in horizons},
            # 0: the group's observed risk there is its Kaplan-Meier curve carried flat
            "followed": {horizon_key(h): int((time[mine] >= h).sum()) for h in horizons}}
    return {"groups": figures, "logrank": logrank_test(time, event, groups)}


def _interval_status(events: int) -> dict[str, Any]:
    """Whether the bootstrap CIs of ``events`` evaluated events say anything.

    Patients are resampled within events and within censored patients, so every replicate
    holds the same events: with 1 event every replicate holds that patient and the CIs
    reflect only which censored patients were drawn (few.csv: calibration slope 0.32, "95% CI
    0.17-0.66", from 1 event). Below :data:`MIN_TEST_CLASS` events, the number under which
    the test figures are already warned about, they are left out.
    """
    if events >= MIN_TEST_CLASS:
        return {"intervals_estimable": True}
    return {"intervals_estimable": False,
            "note": f"only {events} evaluated patient{'s' if events != 1 else ''} had the "
                    f"event (fewer than {MIN_TEST_CLASS}): resampling within events keeps the "
                    "same events in every replicate, so a bootstrap CI would reflect only the "
                    "censored patients; the bootstrap CIs are left empty (null) and no "
                    "calibration verdict is given"}


def _without_intervals(report: dict[str, Any]) -> None:
    """Null the bootstrap CIs of ``report`` (the keys stay): the headline figures, the AUC at
    each horizon and the calibration slopes. The observed/expected CI, from the Kaplan-Meier
    interval, stays."""
    entries = [*report["test"].values(), *report["td_auc_by_horizon"].values(),
               *(figures["slope"] for figures in report["calibration"].values())]
    for entry in entries:
        entry["ci_low"] = entry["ci_high"] = None


def _ph_check(selected: str, pipeline: Pipeline, data: _Folds, config: TrainConfig
              ) -> dict[str, Any]:
    """Grambsch-Therneau test of the Cox model on the development split, and whether the
    selected model assumes proportional hazards.

    The selected spline Cox model is tested on its own design: each continuous predictor's
    spline basis is one term, so a predictor whose effect bends but stays the same over time
    is not mistaken for one whose effect changes over time, as it is by a Cox model linear in
    it. Any other selected model that assumes proportional hazards by construction (a
    gradient-boosted or neural Cox model), or in part (the ensemble), is checked with a ridge
    Cox model on the same predictors, even when the Cox model was not a candidate: a predictor
    whose effect changes over time breaks its assumption too.
    """
    assumes = selected in PROPORTIONAL_HAZARDS_MODELS
    about = {"selected_model": selected,
             "selected_description": RISK_MODELS[selected].description,
             "selected_assumes_proportional_hazards": assumes,
             # two of the ensemble's three members assume them: it relaxes them only in part
             **({"selected_partly_proportional_hazards": True} if selected == ENSEMBLE else {})}
    if selected not in ("coxph", "coxph_splines"):
        if (not assumes and selected != ENSEMBLE
                and "coxph" not in (config.models or default_models())):
            return {"note": f"the selected model ({RISK_MODELS[selected].description}) does "
                            "not assume proportional hazards, and no Cox model was among the "
                            "candidates: nothing to test", **about}
        pipeline = build_risk_pipeline("coxph", data.schema, config).fit(
            data.features, survival_y(data.time, data.event))
    features = pipeline[:-1].transform(data.features)
    names = [str(n).split("__", 1)[-1] for n in pipeline[:-1].get_feature_names_out()]
    terms = _ph_terms(pipeline[0], names)
    model = pipeline[-1]
    if selected == "coxph_splines":  # the spline basis of a column: one term under its name
        features = model._expand(features)
        names = [names[j] for j in model.design_columns_]
        terms = {name: [k for k, j in enumerate(model.design_columns_) if j in columns]
                 for name, columns in terms.items()}
        model = model.cox_
    design = model.scaler_.transform(features)
    test = proportional_hazards_test(design, data.time, data.event, model.coef_, names,
                                     penalty=model.alpha, terms=terms)
    violated = sorted((n for n, f in test["features"].items() if f["p_value"] < PH_ALPHA),
                      key=lambda n: test["features"][n]["p_value"])
    test.update({
        "model": "coxph_splines" if selected == "coxph_splines" else "coxph",
        "method": "Grambsch-Therneau test on scaled Schoenfeld residuals against 1 - KM(t) "
                  "(R survival::cox.zph, transform 'km'), on the development split; a "
                  "categorical predictor is one term, with its levels less one degrees of "
                  f"freedom{_PH_SPLINE_METHOD if selected == 'coxph_splines' else ''}",
        "alpha": PH_ALPHA, "violated": test["global"]["p_value"] < PH_ALPHA,
        "violating_features": violated, **about})
    return test


def _ph_terms(preprocess: Any, names: list[str]) -> dict[str, list[int]]:
    """The terms the proportional-hazards test reports, with their design columns: a numeric
    column (or missing-value indicator) alone, a categorical column's one-hot levels together
    under the column's name (one level per patient: tested level by level, the levels'
    statistics meant nothing)."""
    terms = {name: [j] for j, name in enumerate(names)}
    encoded = preprocess.output_indices_.get("categorical", slice(0, 0))
    if encoded.stop > encoded.start:
        _, steps, columns = next(t for t in preprocess.transformers_ if t[0] == "categorical")
        start = encoded.start
        for column, levels in zip(columns, steps.named_steps["encode"].categories_, strict=True):
            for name in names[start:start + len(levels)]:
                del terms[name]
            terms[str(column)] = list(range(start, start + len(levels)))
            start += len(levels)
    return terms


def risk_fairness(study: Study, test: pd.DataFrame, test_frame: pd.DataFrame, model: RiskModel,
              config: TrainConfig, edges: Mapping[str, Sequence[float]] | None = None
              ) -> dict[str, Any]:
    """Survival fairness audit of ``test``; numeric columns binned at ``edges`` (fixed on the
    development split), or at ``test``'s own quartiles without."""
    if not study.sensitive:
        return {"attributes": {}, "note": "no sensitive attribute declared (--sensitive COL)"}
    from permed.fairness._survival import audit_survival

    horizon = model.horizons[len(model.horizons) // 2]
    return audit_survival(test_frame["time"].to_numpy(), test_frame["event"].to_numpy(bool),
                          test_frame["risk_score"].to_numpy(),
                          test[study.sensitive].reset_index(drop=True),
                          risk_at_horizon=test_frame[risk_columns([horizon])[0]].to_numpy(),
                          horizon=horizon, n_boot=min(config.n_boot, 200), seed=config.seed,
                          edges=edges)


def _metrics(study: Study, config: TrainConfig, names: list[str],
             chosen: tuple[str, dict[str, Any]],
             results: dict[str, _CVResult],
             tuned: dict[str, tuple[dict[str, Any], TuningVerdict]],
             evaluation: dict[str, Any], data: _Folds, ph: dict[str, Any],
             fairness: dict[str, Any], sizes: tuple[np.ndarray, int, int, int]
             ) -> dict[str, Any]:
    event, left_out, n_dev, n_test = sizes
    selected, selection = chosen
    counts = {"censored": int((~event).sum()), "event": int(event.sum())}
    note = folds_note(len(data.folds), config.cv, n_dev)
    return {
        "task": "risk",
        "target": {"column": f"{study.event} (time: {study.time})",
                   "classes": ["censored", "event"], "positive_class": "event",
                   "counts": counts},
        "outcome": {"time": study.time, "event": study.event,
                    "event_value": config.event_value or "1 (or True)",
                    "time_unit": time_unit(study), **counts,
                    "max_follow_up": float(max(data.time.max(), 0.0)),
                    "left_out_zero_time": left_out},
        "horizons": {"values": [float(h) for h in data.horizons],
                     "source": "given with --horizons" if config.horizons else
                     "quartiles of the event times of the development split"},
        "selected_model": selected,
        "selection": {"metric": "c_index", "folds": len(data.folds),
                      "rule": "highest mean cross-validated Harrell's C-index"
                              + (f"; {ENSEMBLE_RULE}" if ENSEMBLE in names else ""),
                      **selection,
                      **({"tuning": TUNING_RULE} if config.budget > 0 else {}),
                      **({"note": note} if note else {})},
        "test": evaluation["test"],
        "td_auc_by_horizon": evaluation["td_auc_by_horizon"],
        "cv": {n: results[n].summary for n in names},
        "cv_details": {n: {"params": results[n].params, **tuning_details(tuned, n),
                           "fit_seconds": round(results[n].seconds, 3)} for n in names},
        "calibration": {"method": "none",
                        "chosen_by": "the model's own survival curves, assessed at each horizon",
                        "horizons": evaluation["calibration"]},
        "risk_groups": {"labels": list(RISK_GROUPS),
                        "method": "tertiles of the selected model's risk scores on the "
                                  "development split",
                        **evaluation["risk_groups"]},
        "proportional_hazards": ph,
        "evaluation": evaluation["evaluation"],
        "metric_estimators": risk_estimators(evaluation["evaluation"]),
        "bootstrap": {"replicates": config.n_boot, "confidence": 0.95,
                      "method": "percentile, resampled within events and within censored "
                                "patients", "seed": config.seed, **evaluation["bootstrap"]},
        "fairness": fairness,
        "split": {"development_rows": n_dev, "test_rows": n_test},
    }


def risk_estimators(evaluation: Mapping[str, Any]) -> dict[str, str]:
    """:data:`METRIC_ESTIMATORS` as used on one cohort: the censoring distribution actually
    estimated, and the horizons td_auc averages (``evaluate_cohort``'s ``evaluation``)."""
    averaged = ", ".join(f"{h:g}" for h in evaluation.get("td_auc_horizons") or []) or "none"
    return {**METRIC_ESTIMATORS,
            "td_auc": f"{METRIC_ESTIMATORS['td_auc']} checkable on the evaluated patients "
                      f"({averaged}; the others keep their own figure in td_auc_by_horizon)",
            "censoring_distribution": evaluation["censoring_distribution"]}


# The reverse Kaplan-Meier follow-up (Schemper & Smith 1996): censoring is the "event", so a
# patient who had the event counts as followed up to then and no further.
FOLLOW_UP_METHOD = ("reverse Kaplan-Meier (censoring as the event; Schemper & Smith 1996): "
                    "median and interquartile range of the potential follow-up")


def follow_up_summary(time: np.ndarray, event: np.ndarray, horizons: Sequence[float]
                      ) -> dict[str, Any]:
    """How long a set of patients was followed, and their observed risk at each horizon.

    Returns
    -------
    dict
        ``patients``, ``events``, ``median`` (reverse Kaplan-Meier), ``iqr`` ([25th, 75th
        percentile], reverse Kaplan-Meier; None where the curve does not fall that far),
        ``max`` (the longest follow-up), ``observed_median`` (the plain median of the times),
        and per horizon ``km_risk`` (1 - Kaplan-Meier, None when nobody is followed that long)
        and ``followed`` (patients still followed there).
    """
    from sksurv.nonparametric import kaplan_meier_estimator

    from permed.evaluate.survival import kaplan_meier_at

    time, event = np.asarray(time, dtype=np.float64), np.asarray(event, dtype=bool)
    steps, curve = kaplan_meier_estimator(~event, time)

    def reached(level: float) -> float | None:
        below = np.flatnonzero(curve <= level)
        return float(steps[below[0]]) if len(below) else None

    followed = {horizon_key(h): int((time >= h).sum()) for h in horizons}
    return {"patients": len(time), "events": int(event.sum()), "median": reached(0.5),
            "iqr": [reached(0.75), reached(0.25)], "max": float(time.max()),
            "observed_median": float(np.median(time)),
            "km_risk": {horizon_key(h): 1.0 - kaplan_meier_at(time, event, h)
                        if followed[horizon_key(h)] else None for h in horizons},
            "followed": followed}


def follow_up_entry(development: Mapping[str, Any] | None, test: Mapping[str, Any],
                    median_of: str = "development") -> dict[str, Any]:
    """``outcome``'s follow-up keys: ``follow_up`` (:func:`follow_up_summary` of the
    development and test patients) and ``median_follow_up_reverse_km``, the reverse
    Kaplan-Meier median of ``median_of`` (``median_follow_up`` beside it is the plain median
    of the same patients' times: the development split in train, the cohort in evaluate)."""
    own = development if median_of == "development" else test
    return {"median_follow_up_reverse_km": (own or {}).get("median"),
            "follow_up": {"method": FOLLOW_UP_METHOD, "development": development, "test": test}}


def checkable_horizons(time: np.ndarray, horizons: list[float], who: str) -> dict[str, Any]:
    """``not_checkable``: the horizons fewer than :func:`followed_rule` of ``time``'s patients
    are followed to, with how many are; their calibration and observed risks say little."""
    thin, _ = thinly_followed(time, horizons)
    return {"not_checkable": {horizon_key(h): n for h, n in thin.items()},
            "checkable_rule": f"at least {followed_rule(len(time))} of the {len(time)} {who} "
                              "(20, or 5% when more) still followed at the horizon"}


def _predictions(frame: pd.DataFrame, test_idx: np.ndarray, study: Study,
                 test_frame: pd.DataFrame, model: RiskModel) -> pd.DataFrame:
    out = pd.DataFrame({"row": frame.index[test_idx].to_numpy()})
    if study.id:
        out[study.id] = frame[study.id].iloc[test_idx].to_numpy()
    out["time"] = test_frame["time"].to_numpy()
    out["event"] = test_frame["event"].to_numpy()
    out["y_true"] = np.where(out["event"] == 1, "event", "censored")
    out["risk_score"] = test_frame["risk_score"].to_numpy()
    for column in risk_columns(model.horizons):
        out[column] = test_frame[column].to_numpy()
    out["median_survival_time"] = test_frame["median_survival_time"].to_numpy()
    out["risk_group"] = test_frame["risk_group"].to_numpy()
    return out
