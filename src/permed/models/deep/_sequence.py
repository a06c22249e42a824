"""A GRU over each patient's time-ordered EHR events, joined with the tabular features.

The events column reaches the network through the preprocessing pipeline: an
:class:`~permed.preprocess._events.EventTokenizer`, fitted inside each fold like every other
step, turns it into ``MAX_EVENTS`` trailing columns of integer ids, and
:func:`with_events` builds that pipeline step and tells the classifier how many columns hold
ids (``event_columns``).
"""

from __future__ import annotations

import math
from numbers import Integral, Real
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.compose import ColumnTransformer
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted, validate_data
from threadpoolctl import threadpool_limits
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from permed.exceptions import PermedError
from permed.models.deep._device import resolve_device
from permed.models.deep._training import encode_classes, seeded_torch
from permed.preprocess import _events  # the module only: no transformer class in models/
from permed.preprocess._events import OOV_ID, PAD_ID

__all__ = ["MAX_EVENTS", "EventGRUClassifier", "with_events"]

# Events kept per patient (the most recent ones): the MIMIC-III demo's longest first-day
# sequence has 64.
MAX_EVENTS = 100
# Patients a token must appear in (in the fold's training rows) to get its own embedding.
MIN_TOKEN_PATIENTS = 2
# Below this many validation rows the validation loss is too noisy to stop on.
_MIN_VALIDATION_ROWS = 10


def with_events(preprocess: ColumnTransformer, model: EventGRUClassifier,
                events: list[str]) -> tuple[ColumnTransformer, EventGRUClassifier]:
    """The preprocessing with the events column's ids appended last, and the model told so.

    Without an events column the preprocessing comes back unchanged and the model reads the
    table only (``event_columns=0``). ``permed train`` never gets there: it refuses
    ``--models gru`` without ``--events`` up front
    (:func:`permed.models.diagnose._registry.require_events`).
    """
    if not events:
        return preprocess, model.set_params(event_columns=0)
    tokenizer = _events.EventTokenizer(max_length=MAX_EVENTS, min_count=MIN_TOKEN_PATIENTS)
    steps = ColumnTransformer([*preprocess.transformers, ("events", tokenizer, [events[0]])],
                              remainder="drop", sparse_threshold=0.0)
    return steps, model.set_params(event_columns=MAX_EVENTS)


class _Network(nn.Module):
    """Token embedding -> GRU -> last hidden state, concatenated with the table -> head."""

    def __init__(self, n_table: int, vocabulary: int, params: EventGRUClassifier,
                 n_classes: int) -> None:
        super().__init__()
        self.embedding = (nn.Embedding(vocabulary, params.embedding_dim, padding_idx=PAD_ID)
                          if vocabulary else None)
        self.gru = (nn.GRU(params.embedding_dim, params.hidden_size, batch_first=True)
                    if vocabulary else None)
        width = n_table + (params.hidden_size if vocabulary else 0)
        self.head = nn.Sequential(nn.Dropout(params.dropout), nn.Linear(width, params.head_size),
                                  nn.ReLU(), nn.Linear(params.head_size, n_classes))

    def encode(self, ids: torch.Tensor) -> torch.Tensor:
        """The GRU state after each sequence's last event (ids left-aligned, then padding)."""
        lengths = (ids != PAD_ID).sum(dim=1).clamp(min=1).cpu()
        packed = pack_padded_sequence(self.embedding(ids), lengths, batch_first=True,
                                      enforce_sorted=False)
        return self.gru(packed)[1][-1]

    def forward(self, table: torch.Tensor, ids: torch.Tensor,
                encoded: torch.Tensor | None = None) -> torch.Tensor:
        parts = [table]
        if self.gru is not None:
            parts.append(self.encode(ids) if encoded is None else encoded)
        return self.head(torch.cat(parts, dim=1))


class EventGRUClassifier(ClassifierMixin, BaseEstimator):
    """GRU over time-ordered EHR events plus the tabular features, trained with torch.

    ``X`` holds the (preprocessed) tabular features followed by ``event_columns`` columns of
    event ids: the output of :class:`~permed.preprocess._events.EventTokenizer` (0 = padding
    after the last event, 1 = out of vocabulary, 2 and up = tokens). The ids pass through an
    embedding and a GRU; its last hidden state (after each patient's last event) is
    concatenated with the standardized tabular features and fed to a one-hidden-layer head
    trained with the cross-entropy loss by Adam. A stratified validation split stops training
    when its loss has not improved for ``patience`` epochs and the best weights are kept.

    With ``event_columns=0`` (the default, as for a plain ``X``) there is no sequence and the
    network is a one-hidden-layer perceptron on ``X``: this is what the scikit-learn estimator
    checks exercise. ``permed train --events COL --models gru`` sets ``event_columns`` through
    :func:`with_events`.

    Parameters
    ----------
    event_columns : int, default=0
        Trailing columns of ``X`` holding event ids.
    embedding_dim : int, default=16
        Size of each token's embedding.
    hidden_size : int, default=32
        GRU state size.
    head_size : int, default=32
        Width of the head's hidden layer.
    dropout : float, default=0.2
        Dropout before the head, in [0, 1).
    learning_rate : float, default=3e-3
        Adam step size.
    weight_decay : float, default=1e-4
        Adam L2 penalty.
    batch_size : int, default=32
        Patients per mini-batch.
    max_epochs : int, default=40
        Most passes over the training rows.
    patience : int, default=6
        Epochs without a better validation loss before stopping.
    validation_fraction : float, default=0.2
        Share of the rows held out for early stopping; it is switched off when that would be
        fewer than 10 rows.
    device : {"auto", "cpu", "cuda"}, default="auto"
        Where the network trains; it predicts on the CPU.
    random_state : int, RandomState or None, default=None
        Seeds the weights, the validation split, the batch order and dropout (torch's global
        random state is left untouched).

    Attributes
    ----------
    classes_ : ndarray
        Class labels.
    vocabulary_size_ : int
        Highest event id seen in ``fit`` plus one (0 without events).
    network_ : torch.nn.Module
        The trained network (on the CPU).
    device_ : str
        The device training ran on.
    n_epochs_ : int
        Epochs run.
    n_features_in_ : int
        Columns of ``X``.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> ids = rng.integers(2, 6, size=(80, 5)).astype(float)
    >>> X = np.hstack([rng.normal(size=(80, 2)), ids])
    >>> y = (ids == 5).any(axis=1).astype(int)
    >>> model = EventGRUClassifier(event_columns=5, random_state=0, device="cpu").fit(X, y)
    >>> model.predict_proba(X[:2]).shape
    (2, 2)
    """

    reads_events = True  # permed's pipeline gives it the events column (workflow/_cv.py)

    def __init__(self, event_columns: int = 0, embedding_dim: int = 16, hidden_size: int = 32,
                 head_size: int = 32, dropout: float = 0.2, learning_rate: float = 3e-3,
                 weight_decay: float = 1e-4, batch_size: int = 32, max_epochs: int = 40,
                 patience: int = 6, validation_fraction: float = 0.2, device: str = "auto",
                 random_state: int | np.random.RandomState | None = None) -> None:
        self.event_columns = event_columns
        self.embedding_dim = embedding_dim
        self.hidden_size = hidden_size
        self.head_size = head_size
        self.dropout = dropout
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.device = device
        self.random_state = random_state

    # ---- fit and predict ------------------------------------------------------------------
    def fit(self, X: Any, y: Any) -> EventGRUClassifier:  # noqa: N803 (scikit-learn's names)
        """Train the network.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Tabular features, then ``event_columns`` columns of event ids; no missing values.
        y : array-like of shape (n_samples,)
            Class labels, at least two distinct values.

        Returns
        -------
        EventGRUClassifier
            The fitted estimator.

        Raises
        ------
        PermedError
            If a parameter is out of range, the id columns do not hold ids, or ``y`` has a
            single class.
        """
        self._check_params()
        device = resolve_device(self.device)
        X, y = validate_data(self, X, y, dtype=np.float64)
        y_encoded = encode_classes(self, y)
        table, ids = self._split(X, fitting=True)
        self.mean_ = table.mean(axis=0)
        scale = table.std(axis=0)
        self.scale_ = np.where(scale > 0, scale, 1.0)
        self.vocabulary_size_ = int(ids.max()) + 1 if ids.shape[1] else 0
        rng = check_random_state(self.random_state)
        seed = int(rng.randint(np.iinfo(np.int32).max))
        with seeded_torch(seed, device), threadpool_limits(1, user_api="openmp"):
            network = _Network(table.shape[1], self.vocabulary_size_, self,
                               len(self.classes_)).to(device)
            tensors = self._tensors((table - self.mean_) / self.scale_, ids, device)
            target = torch.as_tensor(y_encoded, dtype=torch.int64, device=device)
            self.n_epochs_ = _train(network, tensors, target, self._split_rows(y_encoded, rng),
                                    self, rng)
        self.network_ = network.to("cpu").eval()
        self.device_ = str(device)
        return self

    def predict_proba(self, X: Any) -> np.ndarray:  # noqa: N803
        """Probability of each class, in the order of ``classes_``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            As in ``fit``; ids never seen in ``fit`` are read as out of vocabulary.

        Returns
        -------
        ndarray of shape (n_samples, n_classes)
        """
        check_is_fitted(self, "network_")
        X = validate_data(self, X, reset=False, dtype=np.float64)
        table, ids = self._split(X, fitting=False)
        ids = np.where(ids < self.vocabulary_size_, ids, OOV_ID)
        # Each distinct sequence runs through the GRU once: explaining a patient repeats the
        # same few sequences thousands of times (permutation SHAP).
        unique, inverse = (_distinct_rows(ids) if ids.shape[1]
                           else (ids[:1], np.zeros(len(ids), dtype=int)))
        table_t, unique_t = self._tensors((table - self.mean_) / self.scale_, unique,
                                          torch.device("cpu"))
        with torch.inference_mode(), threadpool_limits(1, user_api="openmp"):
            encoded = (self.network_.encode(unique_t)[torch.as_tensor(inverse.reshape(-1))]
                       if self.network_.gru is not None else None)
            logits = self.network_(table_t, unique_t, encoded)
        return torch.softmax(logits.double(), dim=1).numpy()

    def predict(self, X: Any) -> np.ndarray:  # noqa: N803
        """Most probable class, from ``classes_``."""
        probabilities = self.predict_proba(X)
        return self.classes_[np.argmax(probabilities, axis=1)]

    # ---- helpers --------------------------------------------------------------------------
    def _split(self, X: np.ndarray, fitting: bool) -> tuple[np.ndarray, np.ndarray]:  # noqa: N803
        """The tabular block and the integer ids."""
        n_table = X.shape[1] - self.event_columns
        if n_table < 0:
            raise PermedError(
                f"event_columns={self.event_columns} but X has {X.shape[1]} columns: the last "
                "event_columns columns must hold the EventTokenizer's ids")
        ids = X[:, n_table:]
        if fitting and ids.size and ((ids < 0).any() or (ids != np.round(ids)).any()):
            raise PermedError(
                f"the last {self.event_columns} columns of X must hold event ids (integers "
                f">= 0, 0 = padding) from permed's EventTokenizer; found {ids.min()} to "
                f"{ids.max()}")
        return X[:, :n_table], np.clip(ids, 0, None).astype(np.int64)

    @staticmethod
    def _tensors(table: np.ndarray, ids: np.ndarray,
                 device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        return (torch.tensor(table, dtype=torch.float32, device=device),
                torch.tensor(ids, dtype=torch.int64, device=device))

    def _check_params(self) -> None:
        for name in ("embedding_dim", "hidden_size", "head_size", "batch_size", "max_epochs",
                     "patience"):
            value = getattr(self, name)
            if not isinstance(value, Integral) or isinstance(value, bool) or value < 1:
                raise PermedError(f"{name}={value!r} must be a positive integer")
        if (not isinstance(self.event_columns, Integral) or isinstance(self.event_columns, bool)
                or self.event_columns < 0):
            raise PermedError(f"event_columns={self.event_columns!r} must be an integer >= 0")
        for name, high in (("dropout", 1.0), ("validation_fraction", 1.0),
                           ("learning_rate", math.inf), ("weight_decay", math.inf)):
            value = getattr(self, name)
            if (not isinstance(value, Real) or isinstance(value, bool) or not value >= 0
                    or not value < high):
                raise PermedError(f"{name}={value!r} must be a number >= 0 and below {high}")

    def _split_rows(self, y: np.ndarray, rng: np.random.RandomState
                    ) -> tuple[np.ndarray, np.ndarray]:
        """Rows for training and for early stopping (none when too few)."""
        rows = np.arange(len(y))
        n_validation = math.ceil(self.validation_fraction * len(rows))
        n_classes = int(y.max()) + 1
        if n_validation < max(n_classes, _MIN_VALIDATION_ROWS) or len(rows) - n_validation < 2:
            return rows, rows[:0]
        stratify = y if np.bincount(y).min() >= 2 else None
        train, validation = train_test_split(rows, test_size=n_validation, stratify=stratify,
                                             random_state=rng)
        return np.sort(train), np.sort(validation)


def _train(network: _Network, tensors: tuple[torch.Tensor, torch.Tensor], target: torch.Tensor,
           split: tuple[np.ndarray, np.ndarray], params: EventGRUClassifier,
           rng: np.random.RandomState) -> int:
    """Adam on shuffled mini-batches, early stopping on the validation loss; epochs run."""
    optimizer = torch.optim.Adam(network.parameters(), lr=params.learning_rate,
                                 weight_decay=params.weight_decay)
    loss_function = nn.CrossEntropyLoss()
    train, validation = split
    best, best_state, waited, epochs = math.inf, None, 0, 0
    for epochs in range(1, params.max_epochs + 1):  # noqa: B007 (the count is returned)
        network.train()
        order = torch.as_tensor(rng.permutation(train), device=target.device)
        for start in range(0, len(order), params.batch_size):
            batch = order[start:start + params.batch_size]
            optimizer.zero_grad()
            loss = loss_function(network(tensors[0][batch], tensors[1][batch]), target[batch])
            loss.backward()
            optimizer.step()
        if not len(validation):
            continue
        network.eval()
        rows = torch.as_tensor(validation, device=target.device)
        with torch.no_grad():
            loss = loss_function(network(tensors[0][rows], tensors[1][rows]),
                                 target[rows]).item()
        if loss < best:
            best, waited = loss, 0
            best_state = {k: v.clone() for k, v in network.state_dict().items()}
        else:
            waited += 1
            if waited >= params.patience:
                break
    if best_state is not None:
        network.load_state_dict(best_state)
    return epochs


def _distinct_rows(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct rows of an integer matrix (in no particular order) and each row's index
    among them. Each row is compared as one block of bytes: ``np.unique(axis=0)`` compares
    column by column, and took half of ``permed predict --explain`` on a GRU run."""
    rows = np.ascontiguousarray(ids)
    keys = rows.view(np.dtype((np.void, rows.dtype.itemsize * rows.shape[1]))).ravel()
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    return rows[first], inverse.reshape(-1)
