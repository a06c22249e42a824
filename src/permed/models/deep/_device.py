"""Choose the torch device a deep model trains on."""

from __future__ import annotations

import torch

from permed.exceptions import PermedError

__all__ = ["resolve_device"]

_ALLOWED_DEVICES = ("auto", "cpu", "cuda")


def resolve_device(device: str, prefer_cpu: bool = False) -> torch.device:
    """Turn a ``device`` option into a :class:`torch.device`.

    Parameters
    ----------
    device : {"auto", "cpu", "cuda"}
        ``"auto"`` picks the GPU when torch can see one (unless ``prefer_cpu``), and the CPU
        otherwise; ``"cpu"`` and ``"cuda"`` ask for that device explicitly.
    prefer_cpu : bool, default=False
        The network trains faster on the CPU, so ``"auto"`` keeps it there. True for the
        small fully connected networks (the MLP, DeepSurv): their steps are too small to gain
        from a GPU. On an H200 the MLP (64-32-16 units) trained 2 to 6 times slower there than
        on 16 CPU cores at every batch size from 32 to 2,048, and DeepSurv no faster, while the
        transformers, GRU, CNN and fusion networks trained 1.3 to 10.6 times faster
        (benchmarks/results/gpu.json).

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
        return torch.device("cuda" if torch.cuda.is_available() and not prefer_cpu else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise PermedError(
            "device='cuda' but torch finds no CUDA device: use device='auto' to fall back to "
            "the CPU, or device='cpu'"
        )
    return torch.device(device)
