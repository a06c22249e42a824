"""Concordance of bootstrap replicates on large cohorts, without pair matrices.

:func:`permed.evaluate.survival.concordance_replicates` and the time-dependent AUC compare every
(event, patient) pair through blocks of pair matrices: exact, but their cost grows with the
square of the cohort (about an hour for 200 replicates of 200 000 patients). Here the same sums
are built with a Fenwick (binary indexed) tree over risk ranks holding one count per replicate:
patients are visited once, latest follow-up first, so each replicate costs O(n log n).

Two risks closer than :data:`TIED_TOL` are a tie (half a concordant pair), as in
scikit-survival. Ranks group sorted risks whose neighbours lie within the tolerance, which is
the pairwise rule except for chains of near-equal values spanning more than the tolerance (none
in practice: risks are either equal or apart by far more than 1e-8).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from threadpoolctl import threadpool_limits

__all__ = ["TIED_TOL", "concordance_sums", "two_sample_sums"]

Floats = NDArray[np.float64]

TIED_TOL = 1e-8  # scikit-survival's tolerance for tied risk scores
_CHUNK = 256  # patients compared pairwise inside one visit of the tree
_REPLICATE_BLOCK = 64  # replicates per tree: bounds memory at (distinct risks x 64) floats


def _ranks(values: Floats) -> tuple[NDArray[np.intp], int]:
    """Dense ranks from 1, ties within ``TIED_TOL`` sharing one; and the number of ranks."""
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    steps = np.r_[0, (np.diff(ordered) > TIED_TOL).astype(np.intp)]
    ranks = np.empty(len(values), dtype=np.intp)
    ranks[order] = np.cumsum(steps) + 1
    return ranks, int(ranks.max()) if len(ranks) else 0


class _Fenwick:
    """Prefix sums over ranks 1..size of one vector per rank (one value per replicate)."""

    def __init__(self, size: int, width: int) -> None:
        self.size = size
        self.tree = np.zeros((size + 1, width))

    def add(self, ranks: NDArray[np.intp], values: Floats) -> None:
        index = ranks
        while index.size:  # equal indices summed first, so that a plain += adds each once
            order = np.argsort(index, kind="stable")
            index, values = index[order], values[order]
            starts = np.flatnonzero(np.r_[True, index[1:] != index[:-1]])
            index, values = index[starts], np.add.reduceat(values, starts, axis=0)
            self.tree[index] += values
            index = index + (index & -index)
            inside = index <= self.size
            index, values = index[inside], values[inside]

    def prefix(self, ranks: NDArray[np.intp]) -> Floats:
        """Sum over ranks <= each of ``ranks``: shape (len(ranks), width)."""
        out = np.zeros((len(ranks), self.tree.shape[1]))
        index = ranks.copy()
        live = index > 0
        while live.any():
            out[live] += self.tree[index[live]]
            index[live] -= index[live] & -index[live]
            live = index > 0
        return out


def _scores(left: Floats, right: Floats) -> Floats:
    diff = left[:, None] - right[None, :]
    return np.where(diff > TIED_TOL, 1.0, np.where(np.abs(diff) <= TIED_TOL, 0.5, 0.0))


def _visits(time: Floats) -> list[NDArray[np.intp]]:
    """Patients in decreasing follow-up time, cut into runs of whole time groups (a run holds
    at most ``_CHUNK`` patients, or one larger group of tied times)."""
    order = np.argsort(-time, kind="stable")
    starts = np.flatnonzero(np.r_[True, time[order][1:] != time[order][:-1]])
    bounds = np.r_[starts, len(order)]
    runs, first = [], 0
    for k in range(len(starts)):  # group k: order[bounds[k]:bounds[k + 1]]
        if k > first and bounds[k + 1] - bounds[first] > _CHUNK:
            runs.append(order[bounds[first]:bounds[k]])
            first = k
    runs.append(order[bounds[first]:])
    return runs


def concordance_sums(time: Floats, event: NDArray[np.bool_], risk: Floats, counts: Floats,
                     weights: Floats) -> tuple[Floats, Floats]:
    """Concordant and comparable weighted pair sums of each replicate.

    A pair (i, j) is comparable when i has the event and j's follow-up is longer, or equal
    with j censored; it is concordant when i's risk is higher (half when tied). Patient i
    counts ``counts[b, i] * weights[i]`` times as the earlier event, j ``counts[b, j]`` times.

    Returns
    -------
    (ndarray, ndarray) of shape (n_boot,)
    """
    ranks, size = _ranks(risk)
    runs = _visits(time)
    concordant, comparable = [], []
    # small matrix products: extra BLAS threads only synchronise (5x slower on a busy machine)
    with threadpool_limits(limits=1, user_api="blas"):
        for start in range(0, counts.shape[0], _REPLICATE_BLOCK):
            block = counts[start:start + _REPLICATE_BLOCK]
            sums = _concordance_block(time, event, risk, ranks, size, block, weights, runs)
            concordant.append(sums[0])
            comparable.append(sums[1])
    return np.concatenate(concordant), np.concatenate(comparable)


def _concordance_block(time: Floats, event: NDArray[np.bool_], risk: Floats,
                       ranks: NDArray[np.intp], size: int, counts: Floats, weights: Floats,
                       runs: list[NDArray[np.intp]]) -> tuple[Floats, Floats]:
    tree = _Fenwick(size, counts.shape[0])
    seen = np.zeros(counts.shape[0])  # all patients in the tree, per replicate
    concordant = np.zeros(counts.shape[0])
    comparable = np.zeros(counts.shape[0])
    for run in runs:
        cases = run[event[run] & (weights[run] > 0)]
        censored = run[~event[run]]
        single_group = time[run[0]] == time[run[-1]]
        if single_group:  # tied times: only the group's censored patients are comparable
            tree.add(ranks[censored], counts[:, censored].T)
            seen = seen + counts[:, censored].sum(axis=1)
        if len(cases):
            earlier = counts[:, cases] * weights[cases]  # (replicates, cases)
            below = tree.prefix(ranks[cases] - 1)
            tied = tree.prefix(ranks[cases]) - below
            concordant += np.einsum("bi,ib->b", earlier, below + 0.5 * tied)
            comparable += earlier.sum(axis=1) * seen
            if not single_group:  # pairs inside the run, by the definition itself
                later = ((time[run][None, :] > time[cases][:, None])
                         | ((time[run][None, :] == time[cases][:, None]) & ~event[run][None, :]))
                pairs = later * _scores(risk[cases], risk[run])
                concordant += ((earlier @ pairs) * counts[:, run]).sum(axis=1)
                comparable += ((earlier @ later) * counts[:, run]).sum(axis=1)
        rest = run[event[run]] if single_group else run
        tree.add(ranks[rest], counts[:, rest].T)
        seen = seen + counts[:, rest].sum(axis=1)
    return concordant, comparable


def two_sample_sums(estimate: Floats, cases: NDArray[np.intp], controls: NDArray[np.intp],
                    counts: Floats, weights: Floats) -> Floats:
    """Per replicate, sum over cases i and controls j of
    ``counts[b, i] * weights[i] * counts[b, j]`` times 1 when ``estimate[i] > estimate[j]``,
    1/2 when tied: the numerator of the time-dependent AUC."""
    ranks, size = _ranks(estimate)
    out = []
    for start in range(0, counts.shape[0], _REPLICATE_BLOCK):
        block = counts[start:start + _REPLICATE_BLOCK]
        tree = _Fenwick(size, block.shape[0])
        tree.add(ranks[controls], block[:, controls].T)
        below = tree.prefix(ranks[cases] - 1)
        tied = tree.prefix(ranks[cases]) - below
        earlier = block[:, cases] * weights[cases]
        out.append(np.einsum("bi,ib->b", earlier, below + 0.5 * tied))
    return np.concatenate(out)
