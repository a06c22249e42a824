"""Choose the torch device a deep model trains on."""

from __future__ import annotations

import torch

from permed.exceptions import PermedError

__all__ = ["resolve_device"]

_ALLOWED_DEVICES = ("auto", "cpu", "cuda")


def resolve_device(device: str) -> torch.device:
    """Turn a ``device`` option into a :class:`torch.device`.

    Parameters
    ----------
    device : {"auto", "cpu", "cuda"}
        ``"auto"`` picks the GPU when torch can see one and the CPU otherwise; ``"cpu"`` and
        ``"cuda"`` ask for that device explicitly.

    Returns
    -------
    torch.device
        The device to put tensors and networks on.

    Raises
    ------
    PermedError
        If ``device`` is not one of the allowed values, or if it is ``"cuda"`` and torch finds
        no CUDA device.

    Examples
    --------
    >>> resolve_device("cpu")
    device(type='cpu')
    """
    if not isinstance(device, str) or device not in _ALLOWED_DEVICES:
        allowed = ", ".join(repr(name) for name in _ALLOWED_DEVICES)
        raise PermedError(f"device={device!r} is not supported: use one of {allowed}")
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise PermedError(
            "device='cuda' but torch finds no CUDA device: use device='auto' to fall back to "
            "the CPU, or device='cpu'"
        )
    return torch.device(device)
