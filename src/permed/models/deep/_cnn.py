"""A convolutional image classifier (MONAI ResNet or DenseNet, 2-D or 3-D) with the
scikit-learn contract."""

from __future__ import annotations

import io
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
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

__all__ = ["ARCHITECTURES", "CNNClassifier"]

ARCHITECTURES = ("resnet", "densenet")
# Below this many validation images the validation loss is too noisy to stop on.
_MIN_VALIDATION_ROWS = 10
_PREDICT_BATCH = 256
# Images at most this many voxels train on one CPU thread: on a shared machine, extra OpenMP
# threads cost more in synchronisation than they give (a 28x28 ResNet ran 3x faster on 1 thread
# than on 2 with 8 processes competing for 2 cores).
_SINGLE_THREAD_MAX_VOXELS = 64 * 64
# the layer whose activations Grad-CAM weighs, by architecture: the stage before last, whose
# maps are still 4 x 4 on a 28 x 28 image (the last stage's are 2 x 2)
_CAM_LAYERS = {"resnet": "layer3", "densenet": "features.denseblock2"}


class CNNClassifier(ClassifierMixin, BaseEstimator):
    """Convolutional network classifying 2-D images or 3-D volumes, trained with torch.

    The network is MONAI's ResNet (basic blocks, one per stage) or DenseNet, sized by
    ``width`` so that a CPU trains it in minutes on small images. Training uses Adam on
    mini-batches with random augmentation (rotation, zoom, flip, intensity jitter; see
    :func:`permed.preprocess._augment.make_augmentation`) and stops early: a stratified
    validation split carved out of the training images stops training when its loss has not
    improved for ``patience`` epochs and the best weights are kept. On a CUDA device training
    runs in mixed precision (float16 autocast with gradient scaling).

    ``image_shape`` is required (the constructor has no default for it, as EconML's
    meta-estimators require their models): an image classifier cannot guess the shape of its
    input from a flat table, so the estimator is not run through scikit-learn's generic
    tabular ``check_estimator``; it is tested on images in tests/models/test_cnn.py.

    Parameters
    ----------
    image_shape : sequence of int
        ``(channels, height, width)`` or ``(channels, depth, height, width)``; images from
        :func:`permed.ingest.images.load_images` have one channel.
    architecture : {"resnet", "densenet"}, default="resnet"
        The DenseNet halves the image 4 times: it needs at least 16 pixels a side.
    width : int, default=8
        Channels of the first stage (ResNet stages have width, 2x, 4x, 8x; DenseNet starts at
        2 x width with growth rate width).
    max_epochs : int, default=30
    batch_size : int, default=64
    learning_rate : float, default=2e-3
        Adam step size, decayed along a cosine over ``max_epochs``.
    weight_decay : float, default=1e-4
    patience : int, default=6
        Epochs without a better validation loss before training stops.
    validation_fraction : float, default=0.1
        Share of the images held out for early stopping; early stopping is off when that is
        fewer than 10 images (every image then trains).
    augment : bool, default=True
        Random augmentation of the training images.
    max_seconds : float, optional
        Stop after the first epoch that ends past this many seconds of training.
    device : {"auto", "cpu", "cuda"}, default="auto"
        Where to train. Prediction runs on the CPU in float32, so a model trained on a GPU
        predicts anywhere.
    random_state : int, RandomState instance or None, default=None
        Seeds weights, the validation split, batch order and augmentation.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
    network_ : torch.nn.Module
        The trained network, on the CPU, in evaluation mode.
    cam_layer_ : str
        Name of the module whose activations Grad-CAM uses.
    n_epochs_ : int
    best_epoch_ : int
        Epoch (1-based) of the kept weights.
    history_ : list of dict
        Per epoch: ``train_loss``, ``validation_loss``, ``validation_auroc`` (binary), ``seconds``.
    seconds_per_epoch_ : float
    validation_rows_ : ndarray of int
        Rows of ``X`` held out for early stopping (empty when it was off).
    device_ : str
        The device training ran on; ``amp_`` says whether mixed precision was used.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.random.default_rng(0).random((40, 1, 16, 16), dtype=np.float32)
    >>> y = np.repeat([0, 1], 20)
    >>> model = CNNClassifier((1, 16, 16), max_epochs=1, device="cpu", random_state=0)
    >>> model.fit(X, y).predict_proba(X[:2]).shape
    (2, 2)
    """

    def __init__(self, image_shape: Sequence[int], architecture: str = "resnet",
                 width: int = 8, max_epochs: int = 30, batch_size: int = 64,
                 learning_rate: float = 2e-3, weight_decay: float = 1e-4, patience: int = 6,
                 validation_fraction: float = 0.1, augment: bool = True,
                 max_seconds: float | None = None, device: str = "auto",
                 random_state: int | np.random.RandomState | None = None) -> None:
        self.image_shape = image_shape
        self.architecture = architecture
        self.width = width
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.augment = augment
        self.max_seconds = max_seconds
        self.device = device
        self.random_state = random_state

    # ---- fitting -----------------------------------------------------------------------
    def fit(self, X: Any, y: Any) -> CNNClassifier:
        """Train the network.

        Parameters
        ----------
        X : array-like of shape (n_images, *image_shape) or (n_images, prod(image_shape))
            Images (flattened rows are reshaped to ``image_shape``), intensities about [0, 1].
        y : array-like of shape (n_images,)
            Class labels, at least two distinct values.

        Returns
        -------
        CNNClassifier

        Raises
        ------
        PermedError
            A parameter is out of range, the images do not have ``image_shape``, or ``y`` has a
            single class.
        """
        shape = self._check_params()
        X = self._images(X, shape)
        y = np.asarray(y)
        if len(y) != len(X):
            raise PermedError(f"X has {len(X)} images but y has {len(y)} labels: give one label "
                              "per image")
        encoded = encode_classes(self, y)
        device = resolve_device(self.device)
        rng = check_random_state(self.random_state)
        seed = int(rng.randint(np.iinfo(np.int32).max))
        with seeded_torch(seed, device):  # seeded weights; the global RNGs are left alone
            network = _build_network(self.architecture, shape, len(self.classes_), self.width)
        train_rows, validation_rows = self._split_rows(encoded, rng)
        small = device.type == "cpu" and math.prod(shape[1:]) <= _SINGLE_THREAD_MAX_VOXELS
        with threadpool_limits(limits=1 if small else None, user_api="openmp"):
            trainer = _Trainer(self, network.to(device), device, seed)
            history = trainer.run((X[train_rows], encoded[train_rows]),
                                  (X[validation_rows], encoded[validation_rows]), rng)
        self.network_ = network.to("cpu").float().eval()
        self.cam_layer_ = _CAM_LAYERS[self.architecture]
        self.history_ = history.epochs
        self.n_epochs_ = len(history.epochs)
        self.best_epoch_ = history.best_epoch or self.n_epochs_
        self.seconds_per_epoch_ = float(np.mean([e["seconds"] for e in history.epochs]))
        self.device_, self.amp_ = str(device), trainer.amp
        self.n_features_in_ = math.prod(shape)
        self.validation_rows_ = validation_rows
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        """Probability of each class, ``(n_images, n_classes)`` float64, rows summing to 1."""
        check_is_fitted(self, "network_")
        X = self._images(X, tuple(int(s) for s in self.image_shape))
        out = []
        with torch.inference_mode():
            for start in range(0, len(X), _PREDICT_BATCH):
                batch = torch.from_numpy(np.ascontiguousarray(X[start:start + _PREDICT_BATCH]))
                out.append(torch.softmax(self.network_(batch).double(), dim=1).numpy())
        return np.concatenate(out) if out else np.zeros((0, len(self.classes_)))

    def predict(self, X: Any) -> np.ndarray:
        """Most probable class of each image."""
        proba = self.predict_proba(X)
        return self.classes_[np.argmax(proba, axis=1)]

    # ---- ONNX --------------------------------------------------------------------------
    def to_onnx(self, check: Any = None, tolerance: float = 1e-4) -> tuple[bytes, float]:
        """The trained network as an ONNX graph, checked against torch with ONNX Runtime.

        Parameters
        ----------
        check : ndarray, optional
            Images to compare the two on (default: 8 random images of ``image_shape``).
        tolerance : float
            Largest allowed absolute difference between ONNX Runtime's and torch's
            probabilities.

        Returns
        -------
        (bytes, float)
            The serialized model (input ``image``: ``(batch, *image_shape)`` float32; output
            ``probabilities``) and the largest difference found.

        Raises
        ------
        PermedError
            When the exported graph differs by more than ``tolerance``.
        """
        import onnxruntime

        check_is_fitted(self, "network_")
        shape = tuple(int(s) for s in self.image_shape)
        if check is None:
            check = np.random.default_rng(0).random((8, *shape), dtype=np.float32)
        check = self._images(check, shape)
        wrapped = _Softmax(self.network_).eval()
        buffer = io.BytesIO()
        torch.onnx.export(wrapped, (torch.from_numpy(check[:2]),), buffer, dynamo=False,
                          input_names=["image"], output_names=["probabilities"],
                          dynamic_axes={"image": {0: "batch"}, "probabilities": {0: "batch"}},
                          opset_version=17)
        content = buffer.getvalue()
        session = onnxruntime.InferenceSession(content, providers=["CPUExecutionProvider"])
        onnx_proba = session.run(None, {"image": check})[0]
        difference = float(np.max(np.abs(onnx_proba - self.predict_proba(check))))
        if difference > tolerance:
            raise PermedError(f"the ONNX export differs from the torch network by {difference:.2g}"
                              f" (> {tolerance:g}) on the check images: use the joblib bundle")
        return content, difference

    # ---- helpers -----------------------------------------------------------------------
    def _check_params(self) -> tuple[int, ...]:
        try:
            shape = tuple(int(s) for s in self.image_shape)
        except (TypeError, ValueError):
            shape = ()
        if len(shape) not in (3, 4) or min(shape) < 1:
            raise PermedError(f"image_shape={self.image_shape!r} must be (channels, height, width)"
                              " or (channels, depth, height, width), e.g. (1, 28, 28)")
        if self.architecture not in ARCHITECTURES:
            raise PermedError(f"architecture={self.architecture!r} is not known; use one of "
                              f"{', '.join(ARCHITECTURES)}")
        for name in ("width", "max_epochs", "batch_size", "patience"):
            value = getattr(self, name)
            if not isinstance(value, Integral) or isinstance(value, bool) or value < 1:
                raise PermedError(f"{name}={value!r} must be a positive integer")
        if not 0 < self.validation_fraction < 1:
            raise PermedError(f"validation_fraction={self.validation_fraction!r} must be in "
                              "(0, 1), e.g. 0.1")
        return shape

    def _images(self, X: Any, shape: tuple[int, ...]) -> np.ndarray:
        X = np.asarray(X, dtype=np.float32)
        if X.ndim == 2 and X.shape[1] == math.prod(shape):
            X = X.reshape(len(X), *shape)
        if X.shape[1:] != shape:
            raise PermedError(f"X has images of shape {X.shape[1:]}; the model takes "
                              f"{shape} (image_shape): resize the images (load_images does)")
        if not np.isfinite(X).all():
            raise PermedError("X holds NaN or infinite pixel values: fix or leave out those "
                              "images")
        return X

    def _split_rows(self, y: np.ndarray, rng: np.random.RandomState
                    ) -> tuple[np.ndarray, np.ndarray]:
        rows = np.arange(len(y))
        n_validation = math.ceil(self.validation_fraction * len(rows))
        n_classes = int(y.max()) + 1
        if n_validation < max(n_classes, _MIN_VALIDATION_ROWS) or np.bincount(y).min() < 2:
            return rows, rows[:0]
        train, validation = train_test_split(rows, test_size=n_validation, stratify=y,
                                             random_state=rng)
        return np.sort(train), np.sort(validation)


class _Softmax(nn.Module):
    """The network followed by a softmax: what the ONNX graph outputs."""

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.network = network

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.network(image), dim=1)


def _build_network(architecture: str, shape: tuple[int, ...], n_classes: int,
                   width: int) -> nn.Module:
    from monai.networks.nets import DenseNet, ResNet

    dims, channels = len(shape) - 1, shape[0]
    if architecture == "densenet":
        return DenseNet(spatial_dims=dims, in_channels=channels, out_channels=n_classes,
                        init_features=2 * width, growth_rate=width, block_config=(2, 4, 4))
    # 3x3 stem without stride: small images (28 px) keep their detail for the first stage
    return ResNet(block="basic", layers=(1, 1, 1, 1),
                  block_inplanes=(width, 2 * width, 4 * width, 8 * width), spatial_dims=dims,
                  n_input_channels=channels, conv1_t_size=3, conv1_t_stride=1,
                  num_classes=n_classes)


@dataclass
class _History:
    epochs: list[dict[str, float]] = field(default_factory=list)
    best_loss: float = math.inf
    best_epoch: int | None = None


class _Trainer:
    """One training run: augmentation, mixed precision on CUDA, early stopping."""

    def __init__(self, params: CNNClassifier, network: nn.Module, device: torch.device,
                 seed: int) -> None:
        from permed.preprocess._augment import make_augmentation

        self.params, self.network, self.device = params, network, device
        self.amp = device.type == "cuda"
        self.augment = (make_augmentation(len(params.image_shape) - 1, seed=seed)
                        if params.augment else None)
        self.optimizer = torch.optim.AdamW(network.parameters(), lr=params.learning_rate,
                                           weight_decay=params.weight_decay)
        self.schedule = torch.optim.lr_scheduler.CosineAnnealingLR(
            self.optimizer, T_max=params.max_epochs)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)
        self.loss = nn.CrossEntropyLoss()

    def run(self, train: tuple[np.ndarray, np.ndarray], validation: tuple[np.ndarray, np.ndarray],
            rng: np.random.RandomState) -> _History:
        history, best_state, started = _History(), None, time.perf_counter()
        for epoch in range(1, self.params.max_epochs + 1):
            tic = time.perf_counter()
            record = {"epoch": epoch, "train_loss": self._epoch(*train, rng)}
            self.schedule.step()
            if len(validation[1]):
                record.update(self._validate(*validation))
                if record["validation_loss"] < history.best_loss:
                    history.best_loss, history.best_epoch = record["validation_loss"], epoch
                    best_state = {k: v.detach().clone() for k, v in
                                  self.network.state_dict().items()}
            record["seconds"] = round(time.perf_counter() - tic, 3)
            history.epochs.append(record)
            if self._should_stop(history, epoch, time.perf_counter() - started):
                break
        if best_state is not None:
            self.network.load_state_dict(best_state)
        return history

    def _should_stop(self, history: _History, epoch: int, elapsed: float) -> bool:
        waited = history.best_epoch is not None and epoch - history.best_epoch >= \
            self.params.patience
        late = self.params.max_seconds is not None and elapsed >= self.params.max_seconds
        return waited or late

    def _batch(self, images: np.ndarray, augment: bool) -> torch.Tensor:
        batch = torch.from_numpy(np.ascontiguousarray(images)).to(self.device, non_blocking=True)
        if augment and self.augment is not None:
            batch = self.augment(batch)
        return batch

    def _epoch(self, images: np.ndarray, labels: np.ndarray, rng: np.random.RandomState) -> float:
        self.network.train()
        order, total = rng.permutation(len(labels)), 0.0
        size = self.params.batch_size
        for start in range(0, len(order), size):
            rows = order[start:start + size]
            if len(rows) < 2 and len(order) > 1:  # batch norm needs two images
                continue
            batch = self._batch(images[rows], augment=True)
            target = torch.from_numpy(labels[rows]).long().to(self.device)
            self.optimizer.zero_grad(set_to_none=True)
            with torch.autocast(self.device.type, dtype=torch.float16, enabled=self.amp):
                loss = self.loss(self.network(batch), target)
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
            total += float(loss.detach()) * len(rows)
        return round(total / len(order), 6)

    def _validate(self, images: np.ndarray, labels: np.ndarray) -> dict[str, float]:
        self.network.eval()
        logits = []
        with torch.inference_mode():
            for start in range(0, len(labels), _PREDICT_BATCH):
                batch = self._batch(images[start:start + _PREDICT_BATCH], augment=False)
                logits.append(self.network(batch).float().cpu())
        joined = torch.cat(logits)
        loss = float(self.loss(joined, torch.from_numpy(labels).long()))
        record = {"validation_loss": round(loss, 6)}
        if joined.shape[1] == 2 and len(np.unique(labels)) == 2:
            proba = torch.softmax(joined, dim=1)[:, 1].numpy()
            record["validation_auroc"] = round(float(roc_auc_score(labels, proba)), 6)
        return record
