"""The vectorized bootstrap sees the reference loop's resamples and gives its values."""

import numpy as np
import pytest

from permed.evaluate import classification_report
from permed.evaluate._bootstrap import _resample_indices
from permed.evaluate._fastboot import binary_replicates
from permed.evaluate.classification import _binary_metrics

EXACT = ("auroc", "accuracy", "sensitivity", "specificity", "ppv", "npv", "f1", "brier", "ece",
         "auprc")


def _scores(n: int, seed: int, decimals: int | None) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.3).astype(int)
    p = np.clip(0.3 + 0.3 * (y - 0.3) + rng.normal(0, 0.2, n), 0.001, 0.999)
    return y, (p.round(decimals) if decimals is not None else p)


@pytest.mark.parametrize(("n", "decimals"), [(700, None), (900, 2), (400, 1)])
def test_every_replicate_equals_the_loop_on_the_same_resample(n, decimals):
    y, p = _scores(n, n, decimals)
    fast = binary_replicates(y, p, 0.35, 60, seed=5)
    loop = [_binary_metrics(y[idx], p[idx], 0.35)
            for chunk in _resample_indices(n, y, 60, 5) for idx in chunk]
    for metric in EXACT:
        reference = np.array([r[metric] for r in loop])
        np.testing.assert_allclose(fast[metric], reference, rtol=1e-12, atol=1e-12,
                                   err_msg=metric)
    for metric in ("calibration_slope", "calibration_intercept"):  # Newton fits: 1e-8
        reference = np.array([r[metric] for r in loop])
        np.testing.assert_allclose(fast[metric], reference, rtol=1e-8, atol=1e-8,
                                   err_msg=metric)


@pytest.mark.parametrize("decimals", [None, 2])
def test_same_seed_gives_the_reference_intervals(decimals):
    y, p = _scores(1500, 2, decimals)
    exact = classification_report(y, p, ["no", "yes"], threshold=0.4, n_boot=150, seed=9,
                                  fast=False)["test"]
    fast = classification_report(y, p, ["no", "yes"], threshold=0.4, n_boot=150, seed=9,
                                 fast=True)["test"]
    for metric in EXACT:
        for key in ("value", "ci_low", "ci_high"):
            assert fast[metric][key] == pytest.approx(exact[metric][key], rel=1e-12,
                                                      abs=1e-12), (metric, key)


def test_chunks_of_replicates_do_not_change_the_values(monkeypatch):
    import permed.evaluate._fastboot as fastboot

    y, p = _scores(500, 4, None)
    whole = binary_replicates(y, p, 0.5, 40, seed=1)
    monkeypatch.setattr(fastboot, "_MAX_CHUNK", 1200)  # two replicates per block
    blocks = binary_replicates(y, p, 0.5, 40, seed=1)
    for metric, values in whole.items():  # equal up to the summation order of a block
        np.testing.assert_allclose(blocks[metric], values, rtol=1e-12, atol=1e-14,
                                   err_msg=metric)
