"""Late fusion of modality embeddings (table, note, image) with a learned fusion head.

Each modality has its own encoder that turns one patient's input into an embedding of the same
size: a small MLP for the preprocessed table, a linear projection for the note vector (TF-IDF +
SVD or sentence embeddings) and a small CNN for the image. The fusion head reads the embeddings
side by side together with a presence mask (one bit per modality). A patient without a modality
has that embedding set to zero and its mask bit off, so whatever sits in the missing slot cannot
change the prediction; during training present modalities are dropped at random (modality
dropout) so the head learns to predict from any subset.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from numbers import Integral
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted
from threadpoolctl import threadpool_limits
from torch import nn

from permed.exceptions import PermedError
from permed.models.deep._device import resolve_device
from permed.models.deep._training import encode_classes, seeded_torch

__all__ = ["MODALITIES", "FusionClassifier", "FusionInputs"]

MODALITIES = ("table", "note", "image")
_MIN_VALIDATION_ROWS = 10
_PREDICT_BATCH = 256


@dataclass
class FusionInputs:
    """Per modality, one array of patients and which patients have that modality.

    Parameters
    ----------
    arrays : dict of str to ndarray
        ``"table"``: ``(n, n_features)``; ``"note"``: ``(n, n_components)``; ``"image"``:
        ``(n, channels, *size)``. Rows of a missing modality may hold anything (zeros, NaN).
    present : dict of str to ndarray of bool
        ``(n,)`` per modality; default (:meth:`from_arrays`): rows whose values are all finite.
    """

    arrays: dict[str, np.ndarray]
    present: dict[str, np.ndarray]

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, Any],
                    present: Mapping[str, Any] | None = None) -> FusionInputs:
        """Float32 arrays; presence given, or the rows without NaN / infinite values."""
        out = {m: np.asarray(a, dtype=np.float32) for m, a in arrays.items()}
        given = dict(present or {})
        masks = {}
        for m, a in out.items():
            mask = (np.asarray(given[m], dtype=bool) if m in given else
                    np.isfinite(a.reshape(len(a), -1)).all(axis=1))
            masks[m] = mask
        return cls(out, masks)

    def __len__(self) -> int:
        return len(next(iter(self.arrays.values())))

    def __getitem__(self, rows: Any) -> FusionInputs:
        return FusionInputs({m: a[rows] for m, a in self.arrays.items()},
                            {m: p[rows] for m, p in self.present.items()})

    def without(self, *modalities: str) -> FusionInputs:
        """The same patients with ``modalities`` marked missing for everyone (ablation)."""
        return FusionInputs(dict(self.arrays), {
            m: np.zeros_like(p) if m in modalities else p for m, p in self.present.items()})

    def only(self, *modalities: str) -> FusionInputs:
        """Just ``modalities`` (for a single-modality model)."""
        return FusionInputs({m: self.arrays[m] for m in modalities},
                            {m: self.present[m] for m in modalities})


class FusionClassifier(ClassifierMixin, BaseEstimator):
    """Late-fusion classifier over table, note and image embeddings, trained with torch.

    Each modality in ``modalities`` gets an encoder to ``embedding_size`` values (table: MLP;
    note: linear projection; image: 3-block CNN, 2-D or 3-D). The fusion head is an MLP over the
    concatenated embeddings and the presence mask. Missing modalities are masked: the input and
    the embedding are zeroed and the mask bit is off, so the prediction of a patient without an
    image does not depend on what is in the image slot. During training each present modality
    is dropped with probability ``modality_dropout`` (never all of a patient's), and each
    encoder also feeds an auxiliary linear classifier (weight ``auxiliary_weight``) so every
    encoder learns even when the head leans on another. Adam with a cosine schedule; early
    stopping on a stratified validation split (best weights kept).

    ``modalities`` is required (the constructor has no default for it, as EconML's
    meta-estimators require their models): the estimator takes one array per modality, not a
    flat table, so it is not run through scikit-learn's generic tabular ``check_estimator``;
    tests/models/test_fusion.py tests it on table + note + image inputs.

    Parameters
    ----------
    modalities : dict of str to sequence of int
        Input shape of one patient per modality, keys among ``"table"``, ``"note"``,
        ``"image"``: e.g. ``{"table": (12,), "note": (32,), "image": (1, 28, 28)}``.
    embedding_size : int, default=16
    hidden_size : int, default=32
        Hidden width of the table encoder and of the fusion head.
    width : int, default=8
        Channels of the first CNN block (then 2x, 4x).
    max_epochs : int, default=40
    batch_size : int, default=64
    learning_rate : float, default=3e-3
    weight_decay : float, default=1e-4
    patience : int, default=6
        Epochs without a better validation loss before training stops.
    validation_fraction : float, default=0.15
        Share of patients held out for early stopping (off below 10 patients).
    modality_dropout : float, default=0.2
    auxiliary_weight : float, default=0.3
    max_seconds : float, optional
        Stop after the first epoch that ends past this many seconds.
    device : {"auto", "cpu", "cuda"}, default="auto"
        Where to train; prediction runs on the CPU.
    random_state : int, RandomState instance or None, default=None

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
    modalities_ : list of str
        The modalities, in the order of ``MODALITIES``.
    network_ : torch.nn.Module
        On the CPU, in evaluation mode.
    n_epochs_, best_epoch_ : int
    history_ : list of dict
        Per epoch: ``train_loss``, ``validation_loss``, ``validation_auroc`` (binary),
        ``seconds``.
    seconds_per_epoch_ : float
    validation_rows_ : ndarray of int
        Rows held out for early stopping.
    device_ : str

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = {"table": rng.normal(size=(40, 3)), "image": rng.random((40, 1, 12, 12))}
    >>> y = np.repeat([0, 1], 20)
    >>> model = FusionClassifier({"table": (3,), "image": (1, 12, 12)}, max_epochs=1,
    ...                          device="cpu", random_state=0)
    >>> model.fit(X, y).predict_proba(X).shape
    (40, 2)
    """

    def __init__(self, modalities: Mapping[str, Any], embedding_size: int = 16,
                 hidden_size: int = 32, width: int = 8, max_epochs: int = 40,
                 batch_size: int = 64, learning_rate: float = 3e-3, weight_decay: float = 1e-4,
                 patience: int = 6, validation_fraction: float = 0.15,
                 modality_dropout: float = 0.2, auxiliary_weight: float = 0.3,
                 max_seconds: float | None = None, device: str = "auto",
                 random_state: int | np.random.RandomState | None = None) -> None:
        self.modalities = modalities
        self.embedding_size = embedding_size
        self.hidden_size = hidden_size
        self.width = width
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.modality_dropout = modality_dropout
        self.auxiliary_weight = auxiliary_weight
        self.max_seconds = max_seconds
        self.device = device
        self.random_state = random_state

    # ---- fitting -----------------------------------------------------------------------
    def fit(self, X: FusionInputs | Mapping[str, Any], y: Any,
            present: Mapping[str, Any] | None = None) -> FusionClassifier:
        """Train encoders and fusion head together.

        Parameters
        ----------
        X : FusionInputs or dict of str to array
            One array per modality of ``modalities`` (see :class:`FusionInputs`).
        y : array-like of shape (n,)
        present : dict of str to array of bool, optional
            Which patients have each modality (default: rows without NaN).

        Returns
        -------
        FusionClassifier

        Raises
        ------
        PermedError
            A parameter is out of range, an input array is missing or has the wrong shape,
            or ``y`` has one class.
        """
        shapes = self._check_params()
        inputs = self._inputs(X, present, shapes)
        y = np.asarray(y)
        if len(y) != len(inputs):
            raise PermedError(f"X has {len(inputs)} patients but y has {len(y)} labels: give "
                              "one label per patient")
        encoded = encode_classes(self, y)
        device = resolve_device(self.device)
        rng = check_random_state(self.random_state)
        seed = int(rng.randint(np.iinfo(np.int32).max))
        train_rows, validation_rows = self._split_rows(encoded, rng)
        # seeded weights and dropout masks; the global torch RNGs (CPU and GPU) are left alone
        with seeded_torch(seed, device), threadpool_limits(
                limits=1 if device.type == "cpu" else None, user_api="openmp"):
            network = _FusionNetwork(shapes, len(self.classes_), self.embedding_size,
                                     self.hidden_size, self.width)
            trainer = _Trainer(self, network.to(device), device)
            history = trainer.run(inputs[train_rows], encoded[train_rows],
                                  inputs[validation_rows], encoded[validation_rows], rng)
        self.network_ = network.to("cpu").float().eval()
        self.modalities_ = list(shapes)
        self.history_ = history["epochs"]
        self.n_epochs_ = len(self.history_)
        self.best_epoch_ = history["best_epoch"] or self.n_epochs_
        self.seconds_per_epoch_ = float(np.mean([e["seconds"] for e in self.history_]))
        self.validation_rows_ = validation_rows
        self.device_ = str(device)
        return self

    def predict_proba(self, X: FusionInputs | Mapping[str, Any],
                      present: Mapping[str, Any] | None = None) -> np.ndarray:
        """Probability of each class, ``(n, n_classes)``; missing modalities are masked."""
        check_is_fitted(self, "network_")
        inputs = self._inputs(X, present, self._check_params())
        out = []
        with torch.inference_mode():
            for start in range(0, len(inputs), _PREDICT_BATCH):
                batch = _tensors(inputs[start:start + _PREDICT_BATCH], self.modalities_,
                                 torch.device("cpu"))
                out.append(torch.softmax(self.network_(*batch)[0].double(), dim=1).numpy())
        return np.concatenate(out) if out else np.zeros((0, len(self.classes_)))

    def predict(self, X: FusionInputs | Mapping[str, Any],
                present: Mapping[str, Any] | None = None) -> np.ndarray:
        """Most probable class of each patient."""
        return self.classes_[np.argmax(self.predict_proba(X, present), axis=1)]

    # ---- helpers -----------------------------------------------------------------------
    def _check_params(self) -> dict[str, tuple[int, ...]]:
        given = dict(self.modalities) if isinstance(self.modalities, Mapping) else {}
        unknown = [m for m in given if m not in MODALITIES]
        if not given or unknown:
            raise PermedError(f"modalities={self.modalities!r} must map some of "
                              f"{', '.join(MODALITIES)} to an input shape, e.g. "
                              "{'table': (12,), 'image': (1, 28, 28)}")
        shapes = {m: tuple(int(s) for s in np.atleast_1d(given[m])) for m in MODALITIES
                  if m in given}
        if "image" in shapes and len(shapes["image"]) not in (3, 4):
            raise PermedError(f"modalities['image']={shapes['image']!r} must be (channels, "
                              "height, width) or (channels, depth, height, width)")
        for name in ("embedding_size", "hidden_size", "width", "max_epochs", "batch_size",
                     "patience"):
            value = getattr(self, name)
            if not isinstance(value, Integral) or isinstance(value, bool) or value < 1:
                raise PermedError(f"{name}={value!r} must be a positive integer")
        for name in ("validation_fraction", "modality_dropout"):
            if not 0 <= getattr(self, name) < 1:
                raise PermedError(f"{name}={getattr(self, name)!r} must be in [0, 1)")
        return shapes

    def _inputs(self, X: Any, present: Mapping[str, Any] | None,
                shapes: dict[str, tuple[int, ...]]) -> FusionInputs:
        if not isinstance(X, FusionInputs):
            if not isinstance(X, Mapping):
                raise PermedError("X must be a dict of one array per modality (or FusionInputs)"
                                  f", got {type(X).__name__}")
            X = FusionInputs.from_arrays(X, present)
        elif present is not None:
            X = FusionInputs(X.arrays, {**X.present, **present})
        arrays, masks = {}, {}
        for m, shape in shapes.items():
            if m not in X.arrays:
                raise PermedError(f"X has no '{m}' array; the model takes {', '.join(shapes)}")
            a = np.asarray(X.arrays[m], dtype=np.float32)
            if m == "image" and a.ndim == 2 and a.shape[1] == math.prod(shape):
                a = a.reshape(len(a), *shape)
            if a.shape[1:] != shape:
                raise PermedError(f"X['{m}'] has rows of shape {a.shape[1:]}; the model takes "
                                  f"{shape}")
            mask = np.asarray(X.present[m], dtype=bool)
            # a missing modality's slot may hold anything: it never reaches the encoders
            clean = np.nan_to_num(a, nan=0.0, posinf=0.0, neginf=0.0)
            a = np.where(mask.reshape(-1, *[1] * len(shape)), clean, 0).astype(np.float32)
            arrays[m], masks[m] = a, mask
        return FusionInputs(arrays, masks)

    def _split_rows(self, y: np.ndarray, rng: np.random.RandomState
                    ) -> tuple[np.ndarray, np.ndarray]:
        rows = np.arange(len(y))
        n_validation = math.ceil(self.validation_fraction * len(rows))
        if (n_validation < max(int(y.max()) + 1, _MIN_VALIDATION_ROWS)
                or np.bincount(y).min() < 2):
            return rows, rows[:0]
        train, validation = train_test_split(rows, test_size=n_validation, stratify=y,
                                             random_state=rng)
        return np.sort(train), np.sort(validation)


def _tensors(inputs: FusionInputs, modalities: list[str], device: torch.device
             ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    arrays = {m: torch.from_numpy(np.ascontiguousarray(inputs.arrays[m])).to(device)
              for m in modalities}
    mask = np.stack([inputs.present[m] for m in modalities], axis=1).astype(np.float32)
    return arrays, torch.from_numpy(mask).to(device)


def _image_encoder(shape: tuple[int, ...], out: int, width: int) -> nn.Module:
    conv, norm, pool = ((nn.Conv2d, nn.BatchNorm2d, nn.MaxPool2d) if len(shape) == 3 else
                        (nn.Conv3d, nn.BatchNorm3d, nn.MaxPool3d))
    layers: list[nn.Module] = []
    channels = shape[0]
    for k, c in enumerate((width, 2 * width, 4 * width)):
        layers += [conv(channels, c, 3, padding=1), norm(c), nn.ReLU()]
        if k < 2 and min(shape[1:]) >= 4 * 2 ** k:
            layers.append(pool(2))
        channels = c
    adaptive = nn.AdaptiveAvgPool2d(1) if len(shape) == 3 else nn.AdaptiveAvgPool3d(1)
    return nn.Sequential(*layers, adaptive, nn.Flatten(), nn.Linear(channels, out), nn.ReLU())


def _encoder(modality: str, shape: tuple[int, ...], out: int, hidden: int,
             width: int) -> nn.Module:
    if modality == "image":
        return _image_encoder(shape, out, width)
    if modality == "note":
        return nn.Sequential(nn.Dropout(0.2), nn.Linear(shape[0], out), nn.ReLU())
    return nn.Sequential(nn.Linear(shape[0], hidden), nn.ReLU(), nn.Dropout(0.1),
                         nn.Linear(hidden, out), nn.ReLU())


class _FusionNetwork(nn.Module):
    """Encoders -> masked embeddings + mask -> head; auxiliary logits per modality."""

    def __init__(self, shapes: dict[str, tuple[int, ...]], n_classes: int, embedding: int,
                 hidden: int, width: int) -> None:
        super().__init__()
        self.modalities = list(shapes)
        self.encoders = nn.ModuleDict({m: _encoder(m, s, embedding, hidden, width)
                                       for m, s in shapes.items()})
        self.auxiliary = nn.ModuleDict({m: nn.Linear(embedding, n_classes) for m in shapes})
        size = len(shapes) * (embedding + 1)
        self.head = nn.Sequential(nn.Linear(size, hidden), nn.ReLU(), nn.Dropout(0.1),
                                  nn.Linear(hidden, n_classes))

    def forward(self, arrays: dict[str, torch.Tensor], mask: torch.Tensor
                ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        embeddings = {m: self.encoders[m](arrays[m]) for m in self.modalities}
        masked = [embeddings[m] * mask[:, k:k + 1] for k, m in enumerate(self.modalities)]
        logits = self.head(torch.cat([*masked, mask], dim=1))
        return logits, {m: self.auxiliary[m](e) for m, e in embeddings.items()}


class _Trainer:
    """One training run: modality dropout, auxiliary losses, early stopping."""

    def __init__(self, params: FusionClassifier, network: _FusionNetwork,
                 device: torch.device) -> None:
        self.params, self.network, self.device = params, network, device
        self.optimizer = torch.optim.AdamW(network.parameters(), lr=params.learning_rate,
                                           weight_decay=params.weight_decay)
        self.schedule = torch.optim.lr_scheduler.CosineAnnealingLR(
            self.optimizer, T_max=params.max_epochs)
        self.loss = nn.CrossEntropyLoss()

    def run(self, train: FusionInputs, y_train: np.ndarray, validation: FusionInputs,
            y_validation: np.ndarray, rng: np.random.RandomState) -> dict[str, Any]:
        epochs: list[dict[str, float]] = []
        best_loss, best_epoch, best_state = math.inf, None, None
        started = time.perf_counter()
        for epoch in range(1, self.params.max_epochs + 1):
            tic = time.perf_counter()
            record = {"epoch": epoch, "train_loss": self._epoch(train, y_train, rng)}
            self.schedule.step()
            if len(y_validation):
                record.update(self._validate(validation, y_validation))
                if record["validation_loss"] < best_loss:
                    best_loss, best_epoch = record["validation_loss"], epoch
                    best_state = {k: v.detach().clone()
                                  for k, v in self.network.state_dict().items()}
            record["seconds"] = round(time.perf_counter() - tic, 3)
            epochs.append(record)
            waited = best_epoch is not None and epoch - best_epoch >= self.params.patience
            late = (self.params.max_seconds is not None
                    and time.perf_counter() - started >= self.params.max_seconds)
            if waited or late:
                break
        if best_state is not None:
            self.network.load_state_dict(best_state)
        return {"epochs": epochs, "best_epoch": best_epoch}

    def _dropped(self, mask: torch.Tensor, rng: np.random.RandomState) -> torch.Tensor:
        """Drop present modalities at random, keeping at least one per patient."""
        if self.params.modality_dropout <= 0 or mask.shape[1] < 2:
            return mask
        keep = torch.from_numpy(rng.random_sample(tuple(mask.shape)) >=
                                self.params.modality_dropout).to(mask)
        dropped = mask * keep
        empty = dropped.sum(dim=1, keepdim=True) == 0
        # a patient who lost every modality keeps one of theirs, drawn at random
        draw = torch.from_numpy(rng.random_sample(tuple(mask.shape))).to(mask) * mask
        one = torch.zeros_like(mask).scatter_(1, draw.argmax(dim=1, keepdim=True), 1.0) * mask
        return torch.where(empty, one, dropped)

    def _batch_loss(self, inputs: FusionInputs, y: np.ndarray,
                    rng: np.random.RandomState) -> torch.Tensor:
        arrays, mask = _tensors(inputs, self.network.modalities, self.device)
        target = torch.from_numpy(y).long().to(self.device)
        logits, auxiliary = self.network(arrays, self._dropped(mask, rng))
        loss = self.loss(logits, target)
        for k, m in enumerate(self.network.modalities):
            rows = mask[:, k] > 0
            if self.params.auxiliary_weight > 0 and rows.sum() > 1:
                loss = loss + self.params.auxiliary_weight * self.loss(auxiliary[m][rows],
                                                                       target[rows])
        return loss

    def _epoch(self, inputs: FusionInputs, y: np.ndarray, rng: np.random.RandomState) -> float:
        self.network.train()
        order, total = rng.permutation(len(y)), 0.0
        for start in range(0, len(order), self.params.batch_size):
            rows = order[start:start + self.params.batch_size]
            if len(rows) < 2 and len(order) > 1:  # batch norm needs two patients
                continue
            self.optimizer.zero_grad(set_to_none=True)
            loss = self._batch_loss(inputs[rows], y[rows], rng)
            loss.backward()
            self.optimizer.step()
            total += float(loss.detach()) * len(rows)
        return round(total / len(order), 6)

    def _validate(self, inputs: FusionInputs, y: np.ndarray) -> dict[str, float]:
        self.network.eval()
        logits = []
        with torch.inference_mode():
            for start in range(0, len(y), _PREDICT_BATCH):
                arrays, mask = _tensors(inputs[start:start + _PREDICT_BATCH],
                                        self.network.modalities, self.device)
                logits.append(self.network(arrays, mask)[0].float().cpu())
        joined = torch.cat(logits)
        record = {"validation_loss": round(float(self.loss(joined, torch.from_numpy(y).long())),
                                           6)}
        if joined.shape[1] == 2 and len(np.unique(y)) == 2:
            proba = torch.softmax(joined, dim=1)[:, 1].numpy()
            record["validation_auroc"] = round(float(roc_auc_score(y, proba)), 6)
        return record
