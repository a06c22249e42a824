"""The rule by which a search's best trial replaces a family's defaults (workflow/_tuning.py)."""

import numpy as np
import pytest

from permed.models.risk._cox import PenalizedCox
from permed.workflow._tuning import judge, selection_optimism


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


def _search(rng: np.random.Generator, trials: int, true_gain: float) -> tuple[np.ndarray, int]:
    """Per-fold scores on 5 folds of the defaults (row 0) and of ``trials`` settings, the last
    truly ``true_gain`` better than the rest, and the index among the trials of the best."""
    fold_effect = rng.normal(0, 0.02, 5)  # folds differ in difficulty for every setting
    truth = np.zeros(trials)
    truth[-1] = true_gain
    scores = 0.65 + fold_effect + truth[:, None] + rng.normal(0, 0.01, (trials, 5))
    default = 0.65 + fold_effect + rng.normal(0, 0.01, 5)
    return np.vstack([default, scores]), int(np.argmax(scores.mean(axis=1)))


def test_the_best_of_many_equal_trials_rarely_replaces_the_defaults():
    """Trials no better than the defaults: a plain one-standard-error rule is fooled by the
    best of 100 in most searches; allowing for the optimism of the pick is not."""
    rng = np.random.default_rng(0)
    plain = corrected = 0
    for _ in range(200):
        scores, best = _search(rng, 100, 0.0)
        default, trials = scores[0], scores[1:]
        gain = trials[best] - default
        plain += gain.mean() > gain.std(ddof=1) / np.sqrt(5)
        corrected += judge(trials, best, default).replace
    assert plain / 200 > 0.5
    assert corrected / 200 < 0.1


def test_a_truly_better_setting_among_many_trials_still_replaces_the_defaults():
    rng = np.random.default_rng(1)
    replaced = 0
    for _ in range(200):
        scores, best = _search(rng, 100, 0.05)
        replaced += judge(scores[1:], best, scores[0]).replace
    assert replaced / 200 > 0.9


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
