"""FT-Transformer (Gorishniy et al. 2021) for tables: a classifier and a Cox survival model.

Each input column ``j`` of the (preprocessed: scaled numeric, one-hot categorical) matrix
becomes a token ``x_j * W_j + b_j`` of ``d_token`` values; a learned [CLS] token is appended,
the tokens pass through pre-norm transformer blocks (multi-head self-attention, then a ReGLU
feed-forward layer, each with a residual connection), and a head (layer norm, ReLU, linear)
reads the [CLS] token: class logits for :class:`FTTransformerClassifier`, one log hazard
ratio for :class:`FTTransformerSurvival`. Both train through the shared loop of
:mod:`permed.models.deep._training`.

Reference: Y. Gorishniy, I. Rubachev, V. Khrulkov, A. Babenko, "Revisiting Deep Learning
Models for Tabular Data", NeurIPS 2021.
"""

from __future__ import annotations

from numbers import Real
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.preprocessing import StandardScaler
from sklearn.utils import check_random_state
from sklearn.utils.validation import validate_data
from torch import nn
from torch.nn import functional

from permed.exceptions import PermedError
from permed.models.deep._deepsurv import _CoxOutputs, cox_loss_of_outputs, fit_breslow
from permed.models.deep._device import resolve_device
from permed.models.deep._mlp import _SoftmaxOutputs
from permed.models.deep._training import (
    check_positive_int,
    check_training_params,
    classification_split,
    cpu_thread_limit,
    encode_classes,
    seeded_torch,
    survival_split,
    train_network,
)
from permed.models.risk._base import _SurvivalEstimator

__all__ = ["FTTransformerClassifier", "FTTransformerSurvival"]

# The feed-forward width as a multiple of d_token (the paper's ReGLU default, 4/3).
_FFN_FACTOR = 4 / 3


class _FeatureTokenizer(nn.Module):
    """One token per column: ``x_j * weight_j + bias_j``; the [CLS] token appended last."""

    def __init__(self, n_features: int, d_token: int) -> None:
        super().__init__()
        bound = d_token**-0.5
        self.weight = nn.Parameter(torch.empty(n_features, d_token).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(n_features, d_token).uniform_(-bound, bound))
        self.cls = nn.Parameter(torch.empty(1, 1, d_token).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = x.unsqueeze(-1) * self.weight + self.bias
        return torch.cat([tokens, self.cls.expand(x.shape[0], 1, -1)], dim=1)


class _Block(nn.Module):
    """Pre-norm transformer block: self-attention then a ReGLU feed-forward layer.

    The last block only updates the [CLS] token, the one the head reads (as in the paper):
    the other tokens' outputs would be computed and thrown away.
    """

    def __init__(self, d_token: int, n_heads: int, attention_dropout: float,
                 ffn_dropout: float, first: bool, last: bool) -> None:
        super().__init__()
        d_ffn = max(1, round(d_token * _FFN_FACTOR))
        self.n_heads = n_heads
        self.last = last
        self.attention_dropout = attention_dropout
        # the paper drops the first block's attention norm: the tokenizer output is not a
        # residual stream yet
        self.attention_norm = nn.Identity() if first else nn.LayerNorm(d_token)
        self.qkv = nn.Linear(d_token, 3 * d_token)
        self.attention_out = nn.Linear(d_token, d_token)
        self.ffn_norm = nn.LayerNorm(d_token)
        self.ffn_in = nn.Linear(d_token, 2 * d_ffn)
        self.ffn_dropout = nn.Dropout(ffn_dropout)
        self.ffn_out = nn.Linear(d_ffn, d_token)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, tokens, width = x.shape
        qkv = self.qkv(self.attention_norm(x))
        q, k, v = qkv.view(batch, tokens, 3, self.n_heads, -1).permute(2, 0, 3, 1, 4)
        if self.last:
            q, x, tokens = q[:, :, -1:], x[:, -1:], 1
        dropout = self.attention_dropout if self.training else 0.0
        attended = functional.scaled_dot_product_attention(q, k, v, dropout_p=dropout)
        x = x + self.attention_out(attended.transpose(1, 2).reshape(batch, tokens, width))
        value, gate = self.ffn_in(self.ffn_norm(x)).chunk(2, dim=-1)
        return x + self.ffn_out(self.ffn_dropout(value * functional.relu(gate)))


class _FTTransformer(nn.Module):
    """Tokenizer, transformer blocks and a head on the [CLS] token."""

    def __init__(self, n_features: int, n_outputs: int, params: Any) -> None:
        super().__init__()
        self.tokenizer = _FeatureTokenizer(n_features, params.d_token)
        self.blocks = nn.Sequential(*(
            _Block(params.d_token, params.n_heads, params.attention_dropout,
                   params.ffn_dropout, first=i == 0, last=i == params.n_layers - 1)
            for i in range(params.n_layers)))
        self.head = nn.Sequential(nn.LayerNorm(params.d_token), nn.ReLU(),
                                  nn.Linear(params.d_token, n_outputs))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.tokenizer(x))[:, -1])


class _FTTransformerMixin:
    """What both FT-Transformer estimators share: parameter checks and training."""

    def _check_architecture(self, example_fraction: str) -> None:
        check_training_params(self, example_fraction)
        check_positive_int("d_token", self.d_token)
        check_positive_int("n_layers", self.n_layers)
        check_positive_int("n_heads", self.n_heads)
        if self.d_token % self.n_heads:
            raise PermedError(
                f"d_token={self.d_token!r} must be a multiple of n_heads={self.n_heads!r}: "
                "each attention head reads d_token / n_heads values, e.g. d_token=32 with "
                "n_heads=4")
        for name in ("attention_dropout", "ffn_dropout"):
            value = getattr(self, name)
            if not isinstance(value, Real) or isinstance(value, bool) or not 0 <= value < 1:
                raise PermedError(f"{name}={value!r} must be a number in [0, 1), e.g. 0.1")

    def _train(self, X: np.ndarray, targets: tuple[np.ndarray, ...], n_outputs: int,
               loss: Any, rows: tuple[np.ndarray, np.ndarray],
               rng: np.random.RandomState) -> nn.Module:
        """Build and train the network (seeded from ``rng``); set the history attributes."""
        device = resolve_device(self.device)
        seed = int(rng.randint(np.iinfo(np.int32).max))
        # tokens x token width per row: below the limit, steps are many small operations,
        # fastest on one thread
        width = (X.shape[1] + 1) * self.d_token
        with seeded_torch(seed, device), cpu_thread_limit(device, self.batch_size * width):
            network = _FTTransformer(X.shape[1], n_outputs, self).to(device)
            history = train_network(
                network, loss, _tensors(X, targets, rows[0], device),
                _tensors(X, targets, rows[1], device), learning_rate=self.learning_rate,
                weight_decay=self.weight_decay, batch_size=self.batch_size,
                max_epochs=self.max_epochs, patience=self.patience, rng=rng,
                decoupled_weight_decay=True)
        self.device_ = str(device)
        self.n_epochs_ = len(history.train_losses)
        self.loss_curve_ = history.train_losses
        self.validation_loss_curve_ = history.validation_losses or None
        self.best_validation_loss_ = history.best_validation_loss
        return network.to(device="cpu", dtype=torch.float64).eval()


def _tensors(X: np.ndarray, targets: tuple[np.ndarray, ...], rows: np.ndarray,
             device: torch.device) -> tuple[torch.Tensor, ...]:
    features = torch.as_tensor(X[rows], dtype=torch.float32, device=device)
    return features, *(torch.as_tensor(t[rows], device=device) for t in targets)


class FTTransformerClassifier(_FTTransformerMixin, _SoftmaxOutputs, ClassifierMixin,
                              BaseEstimator):
    """FT-Transformer classifier (see the module docstring), trained with torch.

    Inputs are standardized (``standardize``), tokenized column by column and read by the
    transformer; the head's logits are trained with the cross-entropy loss by AdamW on
    mini-batches. A validation split carved out of the training rows (stratified by class)
    stops training when its loss has not improved for ``patience`` epochs, and the best
    weights are kept. Same contract as :class:`~permed.models.deep.MLPClassifier`.

    Parameters
    ----------
    d_token : int, default=32
        Values per token (the width of the transformer); a multiple of ``n_heads``.
    n_layers : int, default=2
        Transformer blocks.
    n_heads : int, default=4
        Attention heads per block.
    attention_dropout : float, default=0.1
        Dropout on the attention weights, in [0, 1).
    ffn_dropout : float, default=0.1
        Dropout inside the feed-forward layers, in [0, 1).
    learning_rate : float, default=1e-3
        Adam step size.
    weight_decay : float, default=1e-5
        Decoupled weight decay (AdamW).
    batch_size : int, default=64
        Rows per mini-batch.
    max_epochs : int, default=10
        Most passes over the training rows. The default is a quick fit (as MLPClassifier's);
        the ``ft_transformer`` model family of ``permed train`` trains up to 100 epochs with
        early stopping.
    early_stopping : bool, default=True
        Hold out ``validation_fraction`` of the rows; switched off when the split would hold
        fewer than 10 rows or fewer rows than classes (every row then trains).
    validation_fraction : float, default=0.1
        Share of the rows held out for early stopping, in (0, 1).
    patience : int, default=5
        Epochs without a better validation loss before training stops.
    standardize : bool, default=True
        Center and scale each feature with statistics of the training rows.
    device : {"auto", "cpu", "cuda"}, default="auto"
        Where to train; prediction runs on the CPU in float64.
    random_state : int, RandomState instance or None, default=None
        Seeds the weights, the dropout, the validation split and the batch order: the same
        integer gives the same probabilities on the same device. Fitting seeds torch's global
        generator inside a fork of it, so the caller's torch random state is left as it was.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
    n_features_in_ : int
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Only set when ``X`` has string column names.
    scaler_ : StandardScaler or None
    network_ : torch.nn.Module
        The trained network, on the CPU in float64.
    device_ : str
        The device training ran on.
    n_epochs_ : int
    loss_curve_ : list of float
    validation_loss_curve_ : list of float or None
    best_validation_loss_ : float or None

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from permed.models.deep import FTTransformerClassifier
    >>> X, y = load_iris(return_X_y=True)
    >>> model = FTTransformerClassifier(max_epochs=5, random_state=0, device="cpu").fit(X, y)
    >>> model.predict_proba(X[:2]).shape
    (2, 3)
    """

    def __init__(self, d_token: int = 32, n_layers: int = 2, n_heads: int = 4,
                 attention_dropout: float = 0.1, ffn_dropout: float = 0.1,
                 learning_rate: float = 1e-3, weight_decay: float = 1e-5, batch_size: int = 64,
                 max_epochs: int = 10, early_stopping: bool = True,
                 validation_fraction: float = 0.1, patience: int = 5,
                 standardize: bool = True, device: str = "auto", random_state=None) -> None:
        self.d_token = d_token
        self.n_layers = n_layers
        self.n_heads = n_heads
        self.attention_dropout = attention_dropout
        self.ffn_dropout = ffn_dropout
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.patience = patience
        self.standardize = standardize
        self.device = device
        self.random_state = random_state

    def fit(self, X: Any, y: Any) -> FTTransformerClassifier:
        """Train the network.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Numeric features without missing values.
        y : array-like of shape (n_samples,)
            Class labels, at least two distinct values.

        Returns
        -------
        FTTransformerClassifier
            The fitted estimator.

        Raises
        ------
        PermedError
            If a parameter is out of range or ``y`` has a single class.
        ValueError
            If ``X`` or ``y`` cannot be used (missing values, wrong shape, continuous ``y``).
        """
        self._check_architecture("0.1")
        resolve_device(self.device)
        X, y = validate_data(self, X, y, dtype=np.float64)
        y_encoded = encode_classes(self, y)
        self.scaler_ = StandardScaler().fit(X) if self.standardize else None
        if self.scaler_ is not None:
            X = self.scaler_.transform(X)
        rng = check_random_state(self.random_state)
        rows = classification_split(y_encoded, self.validation_fraction, self.early_stopping,
                                    rng)
        self.network_ = self._train(X, (y_encoded.astype(np.int64),), len(self.classes_),
                                    nn.CrossEntropyLoss(), rows, rng)
        return self


class FTTransformerSurvival(_FTTransformerMixin, _CoxOutputs, _SurvivalEstimator):
    """FT-Transformer Cox model: the transformer's output is the log hazard ratio.

    As :class:`~permed.models.deep.DeepSurv`, but the network is an FT-Transformer (see the
    module docstring): trained by AdamW on mini-batches to minimize the negative Cox partial
    likelihood, with early stopping on a validation split stratified by event; the baseline
    hazard is Breslow's estimator on all training rows, so survival curves are
    ``exp(-H0(t) * exp(network(x)))``.

    ``y`` is ``sksurv.util.Surv.from_arrays(event, time)``; a plain 1-D array is read as event
    times with nobody censored (what scikit-learn's estimator checks pass).

    Parameters
    ----------
    d_token : int, default=32
        Values per token (the width of the transformer); a multiple of ``n_heads``.
    n_layers : int, default=2
        Transformer blocks.
    n_heads : int, default=4
        Attention heads per block.
    attention_dropout : float, default=0.1
        Dropout on the attention weights, in [0, 1).
    ffn_dropout : float, default=0.1
        Dropout inside the feed-forward layers, in [0, 1).
    learning_rate : float, default=1e-3
        Adam step size.
    weight_decay : float, default=1e-5
        Decoupled weight decay (AdamW).
    batch_size : int, default=512
        Rows per mini-batch; each batch's partial likelihood uses the risk sets within the
        batch, so batches should be large.
    max_epochs : int, default=10
        A quick fit by default; the ``ft_transformer`` risk family of ``permed train`` trains
        up to 100 epochs with early stopping.
    early_stopping : bool, default=True
        Switched off when the validation split would hold fewer than 5 events.
    validation_fraction : float, default=0.15
    patience : int, default=5
    device : {"auto", "cpu", "cuda"}, default="auto"
        Where to train; prediction runs on the CPU in float64.
    random_state : int, RandomState instance or None, default=None
        Seeds the weights, the dropout, the validation split and the batch order.

    Attributes
    ----------
    network_ : torch.nn.Module
    scaler_ : StandardScaler
    baseline_times_, baseline_cumulative_hazard_ : ndarray
    device_ : str
        The device training ran on.
    n_epochs_ : int
    loss_curve_ : list of float
    validation_loss_curve_ : list of float or None
    best_validation_loss_ : float or None
    event_times_ : ndarray
    n_features_in_ : int

    Examples
    --------
    >>> import numpy as np
    >>> from permed.models.deep import FTTransformerSurvival
    >>> from permed.models.risk import survival_y
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(300, 3))
    >>> y = survival_y(rng.exponential(np.exp(-X[:, 0])), rng.random(300) < 0.7)
    >>> FTTransformerSurvival(random_state=0, device="cpu").fit(X, y).score(X, y) > 0.6
    True
    """

    def __init__(self, d_token: int = 32, n_layers: int = 2, n_heads: int = 4,
                 attention_dropout: float = 0.1, ffn_dropout: float = 0.1,
                 learning_rate: float = 1e-3, weight_decay: float = 1e-5,
                 batch_size: int = 512, max_epochs: int = 10, early_stopping: bool = True,
                 validation_fraction: float = 0.15, patience: int = 5, device: str = "auto",
                 random_state=None) -> None:
        self.d_token = d_token
        self.n_layers = n_layers
        self.n_heads = n_heads
        self.attention_dropout = attention_dropout
        self.ffn_dropout = ffn_dropout
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.patience = patience
        self.device = device
        self.random_state = random_state

    def _check_params(self) -> None:
        self._check_architecture("0.15")
        resolve_device(self.device)

    def _fit(self, X: np.ndarray, time: np.ndarray, event: np.ndarray) -> None:
        self.scaler_ = StandardScaler().fit(X)
        Xs = self.scaler_.transform(X)
        rng = check_random_state(self.random_state)
        rows = survival_split(event, self.validation_fraction, self.early_stopping, rng)
        self.network_ = self._train(Xs, (time.astype(np.float32), event.astype(np.float32)),
                                    1, cox_loss_of_outputs, rows, rng)
        self.baseline_times_, self.baseline_cumulative_hazard_ = fit_breslow(
            self._log_hazard(Xs), time, event)
