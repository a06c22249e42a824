"""A multilayer perceptron classifier in torch, with the scikit-learn contract."""

from __future__ import annotations

import math
from collections.abc import Sequence
from numbers import Integral
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.preprocessing import StandardScaler
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted, validate_data
from torch import nn

from permed.exceptions import PermedError
from permed.models.deep._device import resolve_device
from permed.models.deep._training import (
    check_number,
    check_training_params,
    classification_split,
    cpu_thread_limit,
    encode_classes,
    predict_in_chunks,
    train_network,
)

__all__ = ["MLPClassifier"]

# permed.privacy._dp builds its network and checks its parameters with these.
_check_number = check_number


class _SoftmaxOutputs:
    """``predict_proba`` and ``predict`` of a torch classifier whose network maps standardized
    features to class logits (``network_``, ``scaler_``, ``classes_``)."""

    def predict_proba(self, X: Any) -> np.ndarray:
        """Probability of each class.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Features with the columns seen in ``fit``.

        Returns
        -------
        ndarray of shape (n_samples, n_classes)
            Float64 probabilities in the order of ``classes_``; each row sums to 1.

        Raises
        ------
        NotFittedError
            If the model has not been fitted.
        """
        check_is_fitted(self, "network_")
        X = validate_data(self, X, reset=False, dtype=np.float64)
        if self.scaler_ is not None:
            X = self.scaler_.transform(X)
        return torch.softmax(predict_in_chunks(self.network_, X), dim=1).numpy()

    def predict(self, X: Any) -> np.ndarray:
        """Most probable class.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Features with the columns seen in ``fit``.

        Returns
        -------
        ndarray of shape (n_samples,)
            Labels taken from ``classes_``.

        Raises
        ------
        NotFittedError
            If the model has not been fitted.
        """
        probabilities = self.predict_proba(X)  # checks fitted before classes_ is read
        return self.classes_[np.argmax(probabilities, axis=1)]


class MLPClassifier(_SoftmaxOutputs, ClassifierMixin, BaseEstimator):
    """Multilayer perceptron classifier trained with torch.

    Inputs are standardized, pass through fully connected ReLU layers and a linear head whose
    logits are trained with the cross-entropy loss (a softmax over the classes) by Adam on
    mini-batches. A validation split carved out of the training data stops training when the
    validation loss has not improved for ``patience`` epochs and the weights of the best epoch
    are kept.

    Parameters
    ----------
    hidden_layer_sizes : sequence of int or int, default=(64, 32, 16)
        Width of each hidden layer, input side first; an int means one hidden layer. An empty
        sequence gives a multinomial logistic regression.
    learning_rate : float, default=1e-3
        Adam step size.
    batch_size : int, default=32
        Rows per mini-batch.
    max_epochs : int, default=10
        Most passes over the training rows.
    early_stopping : bool, default=True
        Hold out ``validation_fraction`` of the rows (stratified when every class has at least
        two rows), stop when the validation loss has not improved for ``patience`` epochs and
        keep the best weights. It is switched off when the validation split would have fewer
        than 10 rows or fewer rows than classes: then every row is used for training.
    validation_fraction : float, default=0.1
        Share of the rows held out for early stopping, in (0, 1).
    patience : int, default=5
        Epochs without a better validation loss before training stops.
    weight_decay : float, default=0.0
        L2 penalty passed to Adam.
    standardize : bool, default=True
        Center and scale each feature with statistics of the training rows.
    device : {"auto", "cpu", "cuda"}, default="auto"
        Where to train; see :func:`permed.models.deep.resolve_device`. Prediction always runs
        on the CPU in float64, so a model trained on a GPU predicts anywhere and its
        probabilities do not depend on how rows are batched.
    random_state : int, RandomState instance or None, default=None
        Seeds weight initialisation, the validation split and the batch order. The same
        integer gives the same probabilities on the same device.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Class labels, sorted.
    n_features_in_ : int
        Number of features seen in ``fit``.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Column names seen in ``fit``; only set when ``X`` has string column names.
    scaler_ : StandardScaler or None
        The fitted standardization, or None when ``standardize=False``.
    network_ : torch.nn.Sequential
        The trained network, on the CPU in float64.
    device_ : str
        The device training ran on (``device='auto'`` keeps this network on the CPU:
        see :func:`permed.models.deep.resolve_device`).
    n_epochs_ : int
        Epochs actually run.
    loss_curve_ : list of float
        Mean training loss of each epoch.
    validation_loss_curve_ : list of float or None
        Validation loss after each epoch; None when early stopping was not used.
    best_validation_loss_ : float or None
        Validation loss of the kept weights; None when early stopping was not used.

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from permed.models.deep import MLPClassifier
    >>> X, y = load_iris(return_X_y=True)
    >>> model = MLPClassifier(max_epochs=50, random_state=0, device="cpu").fit(X, y)
    >>> model.predict_proba(X[:2]).shape
    (2, 3)
    """

    def __init__(
        self,
        hidden_layer_sizes: Sequence[int] | int = (64, 32, 16),
        learning_rate: float = 1e-3,
        batch_size: int = 32,
        max_epochs: int = 10,
        early_stopping: bool = True,
        validation_fraction: float = 0.1,
        patience: int = 5,
        weight_decay: float = 0.0,
        standardize: bool = True,
        device: str = "auto",
        random_state: int | np.random.RandomState | None = None,
    ) -> None:
        self.hidden_layer_sizes = hidden_layer_sizes
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.patience = patience
        self.weight_decay = weight_decay
        self.standardize = standardize
        self.device = device
        self.random_state = random_state

    def fit(self, X: Any, y: Any) -> MLPClassifier:
        """Train the network.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Numeric features without missing values.
        y : array-like of shape (n_samples,)
            Class labels (strings, integers or floats), at least two distinct values.

        Returns
        -------
        MLPClassifier
            The fitted estimator.

        Raises
        ------
        PermedError
            If a parameter is out of range or ``y`` has a single class.
        ValueError
            If ``X`` or ``y`` cannot be used (missing values, wrong shape, continuous ``y``).
        """
        hidden = self._check_params()
        device = resolve_device(self.device, prefer_cpu=True)
        X, y = validate_data(self, X, y, dtype=np.float64)
        y_encoded = encode_classes(self, y)
        self.scaler_ = StandardScaler().fit(X) if self.standardize else None
        if self.scaler_ is not None:
            X = self.scaler_.transform(X)

        rng = check_random_state(self.random_state)
        generator = torch.Generator().manual_seed(int(rng.randint(np.iinfo(np.int32).max)))
        network = _build_network(X.shape[1], hidden, len(self.classes_), generator)
        train_rows, validation_rows = classification_split(
            y_encoded, self.validation_fraction, self.early_stopping, rng
        )
        with cpu_thread_limit(device, self.batch_size * max((X.shape[1], *hidden))):
            history = train_network(
                network.to(device),
                nn.CrossEntropyLoss(),
                _to_tensors(X, y_encoded, train_rows, device),
                _to_tensors(X, y_encoded, validation_rows, device),
                learning_rate=self.learning_rate,
                weight_decay=self.weight_decay,
                batch_size=self.batch_size,
                max_epochs=self.max_epochs,
                patience=self.patience,
                rng=rng,
            )
        self.network_ = network.to(device="cpu", dtype=torch.float64).eval()
        self.device_ = str(device)
        self.n_epochs_ = len(history.train_losses)
        self.loss_curve_ = history.train_losses
        self.validation_loss_curve_ = history.validation_losses or None
        self.best_validation_loss_ = history.best_validation_loss
        return self

    def _check_params(self) -> tuple[int, ...]:
        """Refuse out-of-range parameters; return the hidden layer widths as a tuple."""
        check_training_params(self, "0.1")
        sizes = self.hidden_layer_sizes
        if isinstance(sizes, Integral):
            sizes = (sizes,)
        try:
            hidden = tuple(sizes)
        except TypeError:  # not iterable: reported below like any other bad width
            hidden = (None,)
        for width in hidden:
            if not isinstance(width, Integral) or isinstance(width, bool) or width < 1:
                raise PermedError(
                    f"hidden_layer_sizes={self.hidden_layer_sizes!r} must be a sequence of "
                    "positive integers, e.g. (64, 32, 16)"
                )
        return tuple(int(width) for width in hidden)


def _build_network(
    n_features: int, hidden: tuple[int, ...], n_classes: int, generator: torch.Generator
) -> nn.Sequential:
    """ReLU layers and a linear head, initialised like ``nn.Linear`` from ``generator``.

    The layers are created uninitialised and then filled from the seeded generator, so fitting
    neither reads nor advances torch's global random state.
    """
    widths = (n_features, *hidden, n_classes)
    layers: list[nn.Module] = []
    for fan_in, fan_out in zip(widths[:-1], widths[1:], strict=True):
        linear = nn.utils.skip_init(nn.Linear, fan_in, fan_out)
        nn.init.kaiming_uniform_(linear.weight, a=math.sqrt(5), generator=generator)
        bound = 1 / math.sqrt(fan_in)
        nn.init.uniform_(linear.bias, -bound, bound, generator=generator)
        layers += [linear, nn.ReLU()]
    return nn.Sequential(*layers[:-1])


def _to_tensors(
    X: np.ndarray, y: np.ndarray, rows: np.ndarray, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    features = torch.as_tensor(X[rows], dtype=torch.float32, device=device)
    targets = torch.as_tensor(y[rows], dtype=torch.int64, device=device)
    return features, targets
