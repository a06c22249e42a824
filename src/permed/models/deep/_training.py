"""The one torch training loop of permed's tabular deep models, and what they share around it.

:func:`train_network` runs Adam on shuffled mini-batches of a loss callable and, given a
validation set, stops when its loss has not improved for ``patience`` epochs and restores the
best weights. MLPClassifier, DeepSurv and the FT-Transformer classifier and survival model all
train through it; they differ only in the network, the loss and how the validation rows are
drawn (:func:`classification_split`, :func:`survival_split`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from numbers import Integral, Real
from typing import Any

import numpy as np
import torch
from sklearn.model_selection import train_test_split
from sklearn.utils.multiclass import check_classification_targets
from threadpoolctl import threadpool_limits
from torch import nn

from permed.exceptions import PermedError

__all__ = [
    "TrainingHistory",
    "encode_classes",
    "check_positive_int",
    "check_number",
    "check_training_params",
    "classification_split",
    "cpu_thread_limit",
    "predict_in_chunks",
    "seeded_torch",
    "survival_split",
    "train_network",
]

# Below this many validation rows the validation loss is too noisy to stop on.
_MIN_VALIDATION_ROWS = 10
# Below this many expected events in the validation rows, the partial likelihood is too noisy.
_MIN_VALIDATION_EVENTS = 5
# Rows per forward pass at prediction time and on the validation set: bounds memory.
PREDICT_CHUNK_ROWS = 8192
# Below this many values in a batch's widest activation, a CPU training step is dominated by
# per-operation overhead, and extra OpenMP threads only add synchronisation (several times
# slower on a busy machine); such networks train on one thread.
_SINGLE_THREAD_MAX_BATCH_VALUES = 2**16

Loss = Callable[..., torch.Tensor]


def encode_classes(model: Any, y: Any) -> np.ndarray:
    """Set ``model.classes_`` from the labels ``y``; return each label's index in it.

    Raises
    ------
    PermedError
        When ``y`` holds a single class (named, with the model's class name).
    """
    check_classification_targets(y)
    model.classes_, encoded = np.unique(y, return_inverse=True)
    if len(model.classes_) < 2:
        only = model.classes_.tolist()[0]  # a Python value: repr without numpy's wrapper
        raise PermedError(f"y has 1 class ({only!r}): {type(model).__name__} needs at least 2 "
                          "classes to learn from; check the target column")
    return encoded


@dataclass
class TrainingHistory:
    """Losses of each epoch, and the validation loss of the kept weights."""

    train_losses: list[float] = field(default_factory=list)
    validation_losses: list[float] = field(default_factory=list)
    best_validation_loss: float | None = None


def check_positive_int(name: str, value: Any) -> None:
    """Refuse ``value`` unless it is an integer of at least 1 (bools are refused)."""
    if not isinstance(value, Integral) or isinstance(value, bool) or value < 1:
        raise PermedError(f"{name}={value!r} must be a positive integer")


def check_number(name: str, value: Any, *, low: float, low_open: bool) -> None:
    """Refuse ``value`` unless it is a finite number above (or at least) ``low``."""
    is_number = isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(value)
    if not is_number or value < low or (low_open and value == low):
        bound = f"above {low}" if low_open else f"at least {low}"
        raise PermedError(f"{name}={value!r} must be a finite number {bound}")


def check_training_params(estimator: Any, example_fraction: str) -> None:
    """Refuse out-of-range parameters of the shared loop, read from ``estimator``.

    ``example_fraction`` is the validation fraction the error message suggests.
    """
    check_positive_int("batch_size", estimator.batch_size)
    check_positive_int("max_epochs", estimator.max_epochs)
    check_positive_int("patience", estimator.patience)
    check_number("learning_rate", estimator.learning_rate, low=0.0, low_open=True)
    check_number("weight_decay", estimator.weight_decay, low=0.0, low_open=False)
    check_number("validation_fraction", estimator.validation_fraction, low=0.0, low_open=True)
    if estimator.validation_fraction >= 1:
        raise PermedError(
            f"validation_fraction={estimator.validation_fraction!r} must be below 1: it is the "
            f"share of training rows held out for early stopping, e.g. {example_fraction}"
        )


def cpu_thread_limit(device: torch.device, batch_values: int) -> threadpool_limits:
    """One OpenMP thread for small networks on the CPU, no limit otherwise.

    ``threadpool_limits`` restores the previous limit on exit, and OpenMP applies it to the
    calling thread only, so callers and other threads keep their own torch thread count
    (``torch.set_num_threads`` would change it for the whole process).
    """
    small = device.type == "cpu" and batch_values <= _SINGLE_THREAD_MAX_BATCH_VALUES
    return threadpool_limits(limits=1 if small else None, user_api="openmp")


@contextmanager
def seeded_torch(seed: int, device: torch.device) -> Iterator[None]:
    """Seed torch's global generators for the block, and restore them on exit.

    Layers that draw from the global generator (dropout, default initialisations) are then
    reproducible from ``seed``, and fitting leaves the caller's random state as it was.
    """
    cuda = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda):
        torch.manual_seed(seed)
        yield


def classification_split(
    y_encoded: np.ndarray, fraction: float, early_stopping: bool, rng: np.random.RandomState
) -> tuple[np.ndarray, np.ndarray]:
    """Training and validation rows for a classifier (validation empty when not used).

    The split is stratified when every class has at least two rows; it is skipped when it
    would have fewer than 10 rows or fewer rows than classes.
    """
    rows = np.arange(len(y_encoded))
    n_validation = math.ceil(fraction * len(rows))
    n_classes = int(y_encoded.max()) + 1
    if (
        not early_stopping
        or n_validation < max(n_classes, _MIN_VALIDATION_ROWS)
        or len(rows) - n_validation < n_classes
    ):
        return rows, rows[:0]
    stratify = y_encoded if np.bincount(y_encoded).min() >= 2 else None
    train_rows, validation_rows = train_test_split(
        rows, test_size=n_validation, stratify=stratify, random_state=rng
    )
    return np.sort(train_rows), np.sort(validation_rows)


def survival_split(
    event: np.ndarray, fraction: float, early_stopping: bool, rng: np.random.RandomState
) -> tuple[np.ndarray, np.ndarray]:
    """Training and validation rows for a survival model, stratified by event.

    The split is skipped (validation empty) when fewer than 5 events are expected in it.
    """
    rows = np.arange(len(event))
    n_validation = math.ceil(fraction * len(rows))
    expected_events = event.mean() * n_validation
    if (
        not early_stopping
        or expected_events < _MIN_VALIDATION_EVENTS
        or len(rows) - n_validation < 2
    ):
        return rows, rows[:0]
    stratify = event if min(event.sum(), (~event).sum()) >= 2 else None
    train_rows, validation_rows = train_test_split(
        rows, test_size=n_validation, stratify=stratify, random_state=rng
    )
    return np.sort(train_rows), np.sort(validation_rows)


def predict_in_chunks(network: nn.Module, X: np.ndarray) -> torch.Tensor:
    """The network's float64 outputs on ``X``, a bounded number of rows at a time."""
    chunks = []
    with torch.inference_mode():
        for start in range(0, X.shape[0], PREDICT_CHUNK_ROWS):
            # a copy: X may be a read-only memmap, which torch will not wrap
            chunk = torch.tensor(X[start : start + PREDICT_CHUNK_ROWS], dtype=torch.float64)
            chunks.append(network(chunk))
    return torch.cat(chunks) if chunks else torch.zeros((0,), dtype=torch.float64)


def train_network(
    network: nn.Module,
    loss: Loss,
    train: tuple[torch.Tensor, ...],
    validation: tuple[torch.Tensor, ...],
    *,
    learning_rate: float,
    weight_decay: float,
    batch_size: int,
    max_epochs: int,
    patience: int,
    rng: np.random.RandomState,
    min_improvement: float = 0.0,
    decoupled_weight_decay: bool = False,
) -> TrainingHistory:
    """Adam on shuffled mini-batches; with validation rows, early stopping on their loss.

    Parameters
    ----------
    network : torch.nn.Module
        Maps the first tensor of ``train`` (features) to outputs; trained in place.
    loss : callable
        ``loss(outputs, *targets)`` returns the scalar mean loss of a batch, where ``targets``
        are the other tensors of ``train`` (labels; or times and events) for the batch rows.
    train, validation : tuple of torch.Tensor
        ``(features, *targets)`` on the training device, rows first; ``validation`` with no
        rows switches early stopping off.
    learning_rate, weight_decay : float
        Adam's step size and L2 penalty (decoupled, as AdamW, when
        ``decoupled_weight_decay``).
    batch_size, max_epochs, patience : int
        Rows per step; most passes over the rows; epochs without a validation loss lower than
        the best by more than ``min_improvement`` before training stops.
    rng : numpy.random.RandomState
        Draws the batch order of each epoch.

    Returns
    -------
    TrainingHistory
        On return ``network`` holds the weights of the best validation epoch, or of the last
        epoch when there is no validation set.
    """
    # The fused kernel does the whole update in one call: several times fewer operations per
    # step, which is most of a small network's training time.
    optimizer = torch.optim.Adam(
        network.parameters(), lr=learning_rate, weight_decay=weight_decay,
        decoupled_weight_decay=decoupled_weight_decay, fused=True,
    )
    history = TrainingHistory()
    best_state: dict[str, torch.Tensor] | None = None
    epochs_since_best = 0
    for _ in range(max_epochs):
        history.train_losses.append(_run_epoch(network, loss, train, optimizer, batch_size, rng))
        if len(validation[0]) == 0:
            continue
        validation_loss = _evaluate(network, loss, validation)
        history.validation_losses.append(validation_loss)
        best = history.best_validation_loss
        if best is None or validation_loss < best - min_improvement:
            history.best_validation_loss = validation_loss
            best_state = {name: value.clone() for name, value in network.state_dict().items()}
            epochs_since_best = 0
            continue
        epochs_since_best += 1
        if epochs_since_best >= patience:
            break
    if best_state is not None:
        network.load_state_dict(best_state)
    return history


def _run_epoch(
    network: nn.Module,
    loss: Loss,
    train: tuple[torch.Tensor, ...],
    optimizer: torch.optim.Optimizer,
    batch_size: int,
    rng: np.random.RandomState,
) -> float:
    """One pass over the training rows in random order; the row-weighted mean training loss."""
    features, *targets = train
    network.train()
    order = torch.from_numpy(rng.permutation(len(features))).to(features.device)
    total = torch.zeros((), device=features.device)
    for start in range(0, len(order), batch_size):
        batch = order[start : start + batch_size]
        optimizer.zero_grad()
        value = loss(network(features[batch]), *(target[batch] for target in targets))
        value.backward()
        optimizer.step()
        # Summed on the device: one synchronisation per epoch rather than one per batch.
        total += value.detach() * len(batch)
    return total.item() / len(order)


def _evaluate(network: nn.Module, loss: Loss, validation: tuple[torch.Tensor, ...]) -> float:
    """The loss of all validation rows at once, the network run a chunk of rows at a time."""
    features, *targets = validation
    network.eval()
    with torch.no_grad():
        outputs = torch.cat([network(features[start : start + PREDICT_CHUNK_ROWS])
                             for start in range(0, len(features), PREDICT_CHUNK_ROWS)])
        return loss(outputs, *targets).item()
