"""The image-model section of a diagnose report: how the images were read, how the network
trained, its ONNX export and Grad-CAM maps of a few test images.

Importing this module adds the section to the diagnose report; it appears only for runs with
``metrics["images"]`` (``permed train ... --images COL``).
"""

from __future__ import annotations

import base64
from typing import Any

from permed.report._html import (
    Block,
    Figure,
    Figures,
    Note,
    Paragraph,
    RunFiles,
    Section,
    dig,
    fmt_num,
    key_value_table,
    register_sections,
    task_sections,
)

__all__ = ["image_section"]


def _training_table(facts: dict[str, Any]) -> Block:
    network = facts.get("network") or {}
    return key_value_table([
        ("Image column", facts.get("column")),
        ("Images read", facts.get("read")),
        ("Images left out (unreadable)", len(facts.get("skipped") or [])),
        ("Input size (pixels/voxels)", " x ".join(str(s) for s in facts.get("size") or [])),
        ("Intensity normalization", facts.get("normalization")),
        ("Network", f"MONAI {network.get('architecture')} (width {network.get('width')}, "
                    f"{fmt_num(network.get('parameters'))} parameters)"),
        ("Augmentation (training only)", network.get("augmentation")),
        ("Epochs run / best epoch", f"{network.get('epochs')} / {network.get('best_epoch')}"),
        ("Seconds per epoch", network.get("seconds_per_epoch")),
        ("Early-stopping validation images", network.get("validation_images")),
        ("Device (mixed precision)", f"{network.get('device')} "
                                     f"({'yes' if network.get('mixed_precision') else 'no'})"),
    ], caption="How the images were read and the network trained")


def _onnx_note(onnx: dict[str, Any]) -> Note:
    if not onnx.get("file"):
        return Note(f"The network was not exported to ONNX ({onnx.get('error', 'no export')}); "
                    "the joblib bundle scores it.", tone="warning")
    return Note(f"ONNX export: {onnx['file']} (input {onnx.get('input')}, output "
                f"{onnx.get('output')}); ONNX Runtime matches torch within "
                f"{onnx.get('max_difference_vs_torch', 0):.1e} on "
                f"{onnx.get('checked_on_images')} test images (tolerance "
                f"{onnx.get('tolerance')}).", tone="ok")


def _saliency_figures(run: RunFiles, names: list[str]) -> Block | None:
    items = []
    for name in names:
        path = run.run_dir / name
        try:
            content = path.read_bytes()
        except OSError:
            continue
        if not content.startswith(b"\x89PNG"):  # encrypted at rest: not shown
            continue
        items.append(Figure("data:image/png;base64," + base64.b64encode(content).decode(),
                            alt=f"Grad-CAM map {name}", caption=name))
    return Figures(items) if items else None


def image_section(run: RunFiles) -> Section | None:
    """Reading, training, export and saliency of an image model (None for other runs)."""
    facts = dig(run.metrics, "images")
    if not isinstance(facts, dict):
        return None
    blocks: list[Block] = [
        Paragraph("The model reads one image per patient. There is no cross-validation: the "
                  "network trains once on the development images, stopping early when the loss "
                  "on an inner validation split stops improving; that split also chooses the "
                  "calibration and the decision threshold. The test images are scored once."),
        _training_table(facts),
        _onnx_note(facts.get("onnx") or {}),
    ]
    if facts.get("skipped"):
        blocks.append(Note("Unreadable images left out (--on-bad-file skip):", tone="warning",
                           items=list(facts["skipped"])[:20]))
    figures = _saliency_figures(run, list(facts.get("saliency") or []))
    if figures is not None:
        blocks += [Paragraph("Grad-CAM maps of the most confident test images of each class: "
                             "bright regions raised the score of the predicted class. They "
                             "show where the network looked, not why, and can highlight "
                             "artefacts (markers, text) a clinician should not trust."),
                   figures]
    return Section("images", "Image model: reading, training and saliency", blocks)


register_sections("diagnose", [*task_sections("diagnose"), image_section])
