"""Concordance sums of bootstrap replicates (tree over risk ranks) against the pair definition."""

from __future__ import annotations

import numpy as np
import pytest

from permed.evaluate import _concordance
from permed.evaluate._concordance import concordance_sums, two_sample_sums


def _scores(left, right):
    diff = left[:, None] - right[None, :]
    return np.where(diff > 1e-8, 1.0, np.where(np.abs(diff) <= 1e-8, 0.5, 0.0))


def _pairwise(time, event, risk, counts, weights):
    """Every (event i, patient j) pair written out: comparable when j's follow-up is longer,
    or equal with j censored; concordant when i's risk is higher (half when tied)."""
    comparable = ((time[None, :] > time[:, None])
                  | ((time[None, :] == time[:, None]) & ~event[None, :])) & event[:, None]
    concordant = comparable * _scores(risk, risk)
    earlier = counts * weights
    return (np.einsum("bi,ij,bj->b", earlier, concordant, counts),
            np.einsum("bi,ij,bj->b", earlier, comparable.astype(float), counts))


def _cohort(n, distinct_times, distinct_risks, seed):
    rng = np.random.default_rng(seed)
    time = (rng.integers(1, distinct_times + 1, n).astype(float) if distinct_times
            else rng.exponential(10, n))
    risk = (rng.integers(0, distinct_risks, n).astype(float) if distinct_risks
            else rng.normal(size=n))
    counts = rng.multinomial(n, np.full(n, 1 / n), size=12).astype(float)
    return time, rng.random(n) < 0.6, risk, counts


@pytest.mark.parametrize(("distinct_times", "distinct_risks", "chunk"), [
    (None, None, 256),  # continuous: no ties
    (40, 15, 256),  # many ties in time and risk
    (40, 15, 16),  # runs of several time groups
    (4, 6, 16),  # tied-time groups larger than a run
])
def test_sums_equal_the_pairwise_definition(monkeypatch, distinct_times, distinct_risks, chunk):
    monkeypatch.setattr(_concordance, "_CHUNK", chunk)
    time, event, risk, counts = _cohort(400, distinct_times, distinct_risks, seed=chunk)
    for weights in (np.ones(len(time)), np.random.default_rng(1).random(len(time))):
        fast = concordance_sums(time, event, risk, counts, weights)
        exact = _pairwise(time, event, risk, counts, weights)
        np.testing.assert_allclose(fast, exact, rtol=1e-12)


def test_replicate_blocks_give_the_same_sums(monkeypatch):
    time, event, risk, counts = _cohort(300, 20, 10, seed=3)
    weights = np.ones(len(time))
    whole = concordance_sums(time, event, risk, counts, weights)
    monkeypatch.setattr(_concordance, "_REPLICATE_BLOCK", 5)
    np.testing.assert_allclose(concordance_sums(time, event, risk, counts, weights), whole,
                               rtol=1e-12)


def test_two_sample_sums_equal_the_pairwise_definition():
    rng = np.random.default_rng(0)
    n = 500
    estimate = rng.normal(size=n).round(1)  # ties
    cases, controls = np.arange(0, 200), np.arange(200, n)
    weights = rng.random(n)
    counts = rng.multinomial(n, np.full(n, 1 / n), size=8).astype(float)
    exact = np.einsum("bi,ij,bj->b", counts[:, cases] * weights[cases],
                      _scores(estimate[cases], estimate[controls]), counts[:, controls])
    np.testing.assert_allclose(two_sample_sums(estimate, cases, controls, counts, weights), exact,
                               rtol=1e-12)
