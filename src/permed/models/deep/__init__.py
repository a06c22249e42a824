"""Deep (torch) models for permed.

They need the optional ``deep`` extra: ``pip install 'permed[deep]'``.
"""

try:
    import torch  # noqa: F401
except ImportError as error:  # pragma: no cover - depends on the environment
    raise ImportError("permed's deep models need torch: pip install 'permed[deep]'") from error

from permed.models.deep._cnn import CNNClassifier
from permed.models.deep._deepsurv import DeepSurv
from permed.models.deep._device import resolve_device
from permed.models.deep._ft_transformer import FTTransformerClassifier, FTTransformerSurvival
from permed.models.deep._mlp import MLPClassifier

__all__ = [
    "CNNClassifier",
    "DeepSurv",
    "FTTransformerClassifier",
    "FTTransformerSurvival",
    "MLPClassifier",
    "resolve_device",
]
