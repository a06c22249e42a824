"""The weighted bootstrap of binary metrics gives the exact path's values and intervals."""

import numpy as np
import pytest

from permed.evaluate import classification_report


def _scores(n: int, seed: int, decimals: int | None) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.3).astype(int)
    p = np.clip(0.3 + 0.3 * (y - 0.3) + rng.normal(0, 0.2, n), 0.001, 0.999)
    return y, (p.round(decimals) if decimals is not None else p)


@pytest.mark.parametrize(("n", "decimals", "threshold"), [(600, None, 0.5), (800, 2, 0.35),
                                                          (300, 1, 0.3)])
def test_fast_bootstrap_matches_exact(n, decimals, threshold):
    y, p = _scores(n, n, decimals)
    exact = classification_report(y, p, ["no", "yes"], threshold=threshold, n_boot=200,
                                  seed=3, fast=False)
    fast = classification_report(y, p, ["no", "yes"], threshold=threshold, n_boot=200,
                                 seed=3, fast=True)
    assert list(fast["test"]) == list(exact["test"])
    for metric, ci in exact["test"].items():
        assert fast["test"][metric]["value"] == ci["value"], metric
        for bound in ("ci_low", "ci_high"):
            np.testing.assert_allclose(fast["test"][metric][bound], ci[bound], rtol=1e-6,
                                       atol=1e-7, err_msg=metric)
    assert fast["confusion_matrix"] == exact["confusion_matrix"]


def test_fast_bootstrap_is_default_for_large_binary_splits(monkeypatch):
    import permed.evaluate.classification as classification

    y, p = _scores(400, 1, 2)
    monkeypatch.setattr(classification, "FAST_BOOTSTRAP_MIN_ROWS", 100)
    auto = classification_report(y, p, ["no", "yes"], n_boot=50, seed=0)
    exact = classification_report(y, p, ["no", "yes"], n_boot=50, seed=0, fast=False)
    np.testing.assert_allclose(auto["test"]["auroc"]["ci_low"], exact["test"]["auroc"]["ci_low"])


def test_fast_bootstrap_one_class_resample_is_nan():
    y = np.array([0] * 50 + [1])
    p = np.linspace(0.01, 0.99, 51)
    out = classification_report(y, p, ["no", "yes"], n_boot=30, seed=0, fast=True)
    assert out["test"]["auroc"]["value"] == 1.0
    assert np.isnan(out["test"]["calibration_slope"]["value"])
