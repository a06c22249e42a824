"""The rule by which a search's best trial replaces a family's defaults (workflow/_tuning.py)."""

import numpy as np
import pytest

from permed.models.risk._cox import PenalizedCox
from permed.workflow._tuning import judge, selection_optimism, selection_score


def test_selection_optimism_is_each_folds_best_score_above_the_selected_trials():
    scores = np.array([[0.70, 0.60, 0.65],   # trial 0: mean 0.65, the selected one
                       [0.60, 0.66, 0.62],   # trial 1 is best on fold 2
                       [0.64, 0.61, 0.68]])  # trial 2 is best on fold 3
    assert selection_optimism(scores, 0) == pytest.approx((0.0 + 0.06 + 0.03) / 3)
    assert selection_optimism(scores[:1], 0) == 0.0  # one trial: nothing was selected


def test_a_failed_fold_is_left_out_of_the_optimism():
    scores = np.array([[0.70, 0.60, np.nan], [0.60, 0.66, 0.62]])
    assert selection_optimism(scores, 0) == pytest.approx(0.03)


@pytest.mark.parametrize(("tuned", "default", "kept"), [
    ([0.70, 0.71, 0.69, 0.72, 0.70], [0.65, 0.66, 0.64, 0.66, 0.65], True),  # clear gain
    ([0.66, 0.64, 0.67, 0.63, 0.66], [0.65, 0.65, 0.65, 0.65, 0.65], False),  # within the noise
    ([0.64, 0.64, 0.64, 0.64, 0.64], [0.65, 0.65, 0.65, 0.65, 0.65], False),  # worse
])
def test_a_single_trial_replaces_the_defaults_only_when_clearly_better(tuned, default, kept):
    assert judge([tuned], 0, default).replace is kept


def _search(rng: np.random.Generator, trials: int, true_gain: float,
            folds: int = 5) -> tuple[np.ndarray, int]:
    """Per-fold scores of the defaults (row 0) and of ``trials`` settings, the last truly
    ``true_gain`` better than the rest, and the index among the trials of the best."""
    fold_effect = rng.normal(0, 0.02, folds)  # folds differ in difficulty for every setting
    truth = np.zeros(trials)
    truth[-1] = true_gain
    scores = 0.65 + fold_effect + truth[:, None] + rng.normal(0, 0.01, (trials, folds))
    default = 0.65 + fold_effect + rng.normal(0, 0.01, folds)
    return np.vstack([default, scores]), int(np.argmax(scores.mean(axis=1)))


@pytest.mark.parametrize(("folds", "plain_at_least", "corrected_below"), [
    (5, 0.5, 0.05), (3, 0.5, 0.2)])
def test_the_best_of_many_equal_trials_rarely_replaces_the_defaults(folds, plain_at_least,
                                                                    corrected_below):
    """Trials no better than the defaults: a plain one-standard-error rule is fooled by the
    best of 100 in most searches; allowing for the optimism of the pick, with the standard
    error corrected for overlapping folds and read on t, is not (3 folds: the optimism alone,
    with the plain standard error, still let 35% through)."""
    rng = np.random.default_rng(0)
    plain = optimism_only = corrected = 0
    for _ in range(400):
        scores, best = _search(rng, 100, 0.0, folds)
        default, trials = scores[0], scores[1:]
        gain = trials[best] - default
        plain_error = gain.std(ddof=1) / np.sqrt(folds)
        plain += gain.mean() > plain_error
        optimism_only += gain.mean() - selection_optimism(trials, best) > plain_error
        corrected += judge(trials, best, default).replace
    assert plain / 400 > plain_at_least
    assert corrected / 400 < corrected_below
    assert corrected < optimism_only


@pytest.mark.parametrize("folds", [3, 5])
def test_a_truly_better_setting_among_many_trials_still_replaces_the_defaults(folds):
    rng = np.random.default_rng(1)
    replaced = 0
    for _ in range(200):
        scores, best = _search(rng, 100, 0.05, folds)
        replaced += judge(scores[1:], best, scores[0]).replace
    assert replaced / 200 > 0.9


def test_the_threshold_is_the_corrected_standard_error_on_t():
    tuned, default = [0.70, 0.66, 0.69], [0.65, 0.65, 0.65]
    verdict = judge([tuned], 0, default)
    gain = np.subtract(tuned, default)
    corrected = gain.std(ddof=1) * np.sqrt(1 / 3 + 1 / 2)
    assert verdict.standard_error == pytest.approx(corrected)
    assert verdict.threshold == pytest.approx(1.3213 * corrected, rel=1e-3)
    assert verdict.as_json()["threshold"] == pytest.approx(verdict.threshold, abs=1e-5)


def test_with_a_fold_unscored_the_overlap_is_still_that_of_the_folds_run():
    tuned, default = [0.70, 0.66, 0.69, np.nan, np.nan], [0.65, 0.65, 0.65, 0.65, 0.65]
    verdict = judge([tuned], 0, default)
    gain = np.array([0.05, 0.01, 0.04])
    # 3 scored folds of a 5-fold CV: 1/3 for the mean, 1/4 for the training sets' overlap
    assert verdict.standard_error == pytest.approx(gain.std(ddof=1) * np.sqrt(1 / 3 + 1 / 4))
    assert verdict.threshold == pytest.approx(1.3213 * verdict.standard_error, rel=1e-3)


def test_selection_takes_the_optimism_off_a_tuned_model_only():
    tuned = judge([[0.75, 0.76, 0.74], [0.70, 0.78, 0.70]], 0, [0.60, 0.61, 0.60])
    assert tuned.replace
    assert selection_score(0.75, tuned) == pytest.approx(0.75 - tuned.optimism)
    kept = judge([[0.60, 0.61, 0.60]], 0, [0.60, 0.61, 0.60])
    assert not kept.replace
    assert selection_score(0.60, kept) == 0.60
    assert selection_score(0.60, None) == 0.60


def test_a_fold_without_a_score_is_left_out_and_one_fold_alone_decides_nothing():
    assert judge([[0.70, np.nan, 0.71]], 0, [0.60, 0.60, 0.61]).replace
    verdict = judge([[0.7, np.nan, np.nan]], 0, [0.6, 0.6, np.nan])
    assert not verdict.replace
    assert verdict.as_json()["cv_gain"] is None


class _FailsBelowOne(PenalizedCox):
    """A Cox model whose fit fails for alpha < 1, as a numerical failure in some trials would."""

    def fit(self, X, y):
        if self.alpha < 1:
            raise FloatingPointError("overflow in exp")
        return super().fit(X, y)


def test_a_risk_trial_that_fails_is_passed_over(monkeypatch):
    # the engine's error (an EngineTaskError) was not caught: train stopped with a traceback
    # that printed the fold task, patients' table included
    from permed.engine import LocalEngine, SilentProgress
    from permed.ingest import load_dataset
    from permed.models.diagnose import ModelFamily
    from permed.models.risk import RISK_MODELS
    from permed.study import FittedSchema, Study, validate
    from permed.workflow import TrainConfig
    from permed.workflow._risk import _Folds, _tune

    monkeypatch.setitem(RISK_MODELS, "flaky", ModelFamily(
        "flaky", "a Cox model that fails for alpha < 1", lambda seed, device: _FailsBelowOne(),
        lambda t: {"alpha": t.suggest_float("alpha", 0.01, 100, log=True)}))
    frame = load_dataset("gbsg2").head(300)
    study = Study(task="risk", time="time", event="cens")
    schema = FittedSchema.from_frame(frame, validate(frame, study).kinds, study, [])
    time, event = frame["time"].to_numpy(float), frame["cens"].to_numpy(bool)
    rows = np.arange(len(frame))
    folds = [(rows[rows % 3 != k], rows[rows % 3 == k]) for k in range(3)]
    data = _Folds(schema.coerce(frame), time, event, folds, schema, np.asarray([365.0, 1095.0]),
                  TrainConfig(models=["flaky"], cv=3, budget=3))
    tuned = _tune(data, ["flaky"], LocalEngine(1), SilentProgress())
    assert tuned["flaky"][1].trials >= 1  # those that worked count; the others are passed over


def test_risk_selection_sets_a_tuned_models_corrected_score_against_the_defaults():
    from permed.workflow._risk import _CVResult, _select

    def result(mean: float) -> _CVResult:
        return _CVResult({}, np.zeros(3), {"c_index": {"mean": mean}}, 0.0, [mean] * 3)

    # the tuned forest's best-trial 0.652 is 0.647 once its optimism (0.0047) is taken off
    tuned = judge([[0.66, 0.65, 0.646], [0.62, 0.63, 0.66]], 0, [0.60, 0.61, 0.60])
    assert tuned.replace
    assert tuned.optimism == pytest.approx(0.014 / 3)
    results = {"coxph": result(0.650), "random_survival_forest": result(0.652)}
    assert _select(list(results), results, {}) == ("random_survival_forest", {})
    assert _select(list(results), results,
                   {"random_survival_forest": ({"n": 1}, tuned)}) == ("coxph", {})


def _fold_result(folds: list[float]):
    from permed.workflow._risk import _CVResult

    return _CVResult({}, np.zeros(3), {"c_index": {"mean": float(np.mean(folds))}}, 0.0, folds)


def test_the_ensemble_is_kept_unless_a_family_is_clearly_better():
    from permed.workflow._risk import _select

    ensemble = [0.650, 0.640, 0.660, 0.655, 0.645]
    # the boosted trees lead by 0.001 on average, fold noise: the ensemble stays
    noisy = {"coxph": _fold_result([0.630, 0.625, 0.640, 0.640, 0.630]),
             "gradient_boosting": _fold_result([0.660, 0.635, 0.655, 0.665, 0.640]),
             "ensemble": _fold_result(ensemble)}
    selected, why = _select(list(noisy), noisy, {})
    assert selected == "ensemble"
    assert why["ensemble_kept"]
    assert why["against_ensemble"]["family"] == "gradient_boosting"
    assert why["against_ensemble"]["families"] == 2
    assert why["against_ensemble"]["cv_gain"] == pytest.approx(0.001)
    assert not why["against_ensemble"]["replaced_ensemble"]
    # ahead by 0.03 on every fold: the boosted trees replace it
    clear = {**noisy, "gradient_boosting": _fold_result([c + 0.03 for c in ensemble])}
    selected, why = _select(list(clear), clear, {})
    assert selected == "gradient_boosting"
    assert not why["ensemble_kept"]
    assert why["against_ensemble"]["cv_gain"] == pytest.approx(0.03)


def test_the_ensemble_wins_outright_when_its_cv_score_is_highest():
    from permed.workflow._risk import _select

    results = {"coxph": _fold_result([0.60, 0.61, 0.62]),
               "ensemble": _fold_result([0.65, 0.66, 0.64])}
    selected, why = _select(list(results), results, {})
    assert selected == "ensemble"
    assert why["ensemble_kept"]
    assert why["against_ensemble"]["family"] == "coxph"
    assert why["against_ensemble"]["cv_gain"] == pytest.approx(-0.04)


def test_an_ensemble_without_a_cv_score_gives_way_to_the_best_family():
    from permed.workflow._risk import _select

    results = {"coxph": _fold_result([0.60, 0.61, 0.62]),
               "gradient_boosting": _fold_result([0.62, 0.63, 0.61]),
               "ensemble": _fold_result([float("nan")] * 3)}
    assert _select(list(results), results, {}) == ("gradient_boosting", {
        "ensemble_kept": False,
        "against_ensemble": {"family": "gradient_boosting",
                             "note": "the ensemble has no cross-validated C-index"}})


def test_a_tuned_familys_optimism_counts_against_the_ensemble():
    from permed.workflow._risk import _select

    ensemble = [0.650, 0.640, 0.660]
    # ahead by 0.012 with its best-trial score, beyond the bar of 0.0111 ...
    forest = [c + gain for c, gain in zip(ensemble, [0.020, 0.002, 0.014], strict=True)]
    results = {"random_survival_forest": _fold_result(forest),
               "ensemble": _fold_result(ensemble)}
    assert _select(list(results), results, {})[0] == "random_survival_forest"
    # ... but not once the optimism of picking its best trial (0.014 / 3) is taken off
    tuned = judge([[0.66, 0.65, 0.646], [0.62, 0.63, 0.66]], 0, [0.60, 0.61, 0.60])
    selected, why = _select(list(results), results,
                            {"random_survival_forest": ({"n": 1}, tuned)})
    assert selected == "ensemble"
    assert why["against_ensemble"]["cv_gain"] == pytest.approx(0.012 - 0.014 / 3, abs=1e-5)
