"""Grad-CAM saliency: which regions of one image drove the network's prediction.

Grad-CAM (Selvaraju et al., 2017) weighs each channel of a convolutional layer's activations by
the mean gradient of the class score with respect to it, sums the weighted channels, keeps the
positive part and upsamples it to the image: bright regions raised the score of the class.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np

__all__ = ["grad_cam", "saliency_png"]


def grad_cam(model: Any, image: np.ndarray, target: int | None = None) -> np.ndarray:
    """The Grad-CAM map of one image, scaled to [0, 1], with the image's spatial shape.

    Parameters
    ----------
    model : CNNClassifier
        A fitted :class:`permed.models.deep.CNNClassifier` (its ``network_`` and
        ``cam_layer_`` are used).
    image : ndarray of shape image_shape
        One image, ``(channels, *spatial)``.
    target : int, optional
        Index of the class explained (default: the predicted class).

    Returns
    -------
    ndarray of shape image_shape[1:]
        Zero where the class score does not depend positively on the region.
    """
    import torch
    from torch.nn import functional

    network = model.network_
    layer = dict(network.named_modules())[model.cam_layer_]
    captured: dict[str, torch.Tensor] = {}
    hook = layer.register_forward_hook(lambda _m, _i, output: captured.update(act=output))
    try:
        batch = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None]
        with torch.enable_grad():
            logits = network(batch)
            chosen = int(logits.argmax(dim=1)) if target is None else int(target)
            activations = captured["act"]
            gradients = torch.autograd.grad(logits[0, chosen], activations)[0]
    finally:
        hook.remove()
    spatial = tuple(range(2, activations.ndim))
    weights = gradients.mean(dim=spatial, keepdim=True)
    cam = torch.relu((weights * activations).sum(dim=1, keepdim=True)).detach()
    mode = "bilinear" if cam.ndim == 4 else "trilinear"
    cam = functional.interpolate(cam, size=tuple(image.shape[1:]), mode=mode,
                                 align_corners=False)[0, 0].numpy()
    top = cam.max()
    return (cam / top if top > 0 else cam).astype(np.float32)


def saliency_png(image: np.ndarray, cam: np.ndarray, title: str = "") -> bytes:
    """A PNG with the image and its Grad-CAM overlay side by side (middle slice of a volume).

    Parameters
    ----------
    image : ndarray of shape (channels, *spatial)
    cam : ndarray of shape spatial
        From :func:`grad_cam`.
    title : str
        Caption above the figure (e.g. the predicted class and probability).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    picture = np.asarray(image, dtype=np.float32).mean(axis=0)
    heat = np.asarray(cam, dtype=np.float32)
    if picture.ndim == 3:  # a volume: its middle slice
        picture, heat = picture[picture.shape[0] // 2], heat[heat.shape[0] // 2]
    figure, axes = plt.subplots(1, 2, figsize=(4.4, 2.4), dpi=100)
    axes[0].imshow(picture, cmap="gray")
    axes[0].set_title("image", fontsize=8)
    axes[1].imshow(picture, cmap="gray")
    axes[1].imshow(heat, cmap="jet", alpha=0.4, vmin=0, vmax=1)
    axes[1].set_title("Grad-CAM", fontsize=8)
    for axis in axes:
        axis.axis("off")
    if title:
        figure.suptitle(title, fontsize=8)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", bbox_inches="tight")
    plt.close(figure)
    return buffer.getvalue()
