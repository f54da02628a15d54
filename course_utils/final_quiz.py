"""The computed questions of ``14_final_quiz``: each answer is checked against a value computed live.

A question's check cell shows ``check_number(answer_N, "answer_N")``, which reads the answer's form
only; the grading call (one of the ``grade_*`` functions below) sits in the hidden part of the cell.
Each ``grade_*`` computes the expected value with torchvision from the question's own data, builds
its explanation from the values it computed (nothing typed in), and hands both to
``course_utils.graded_quiz.grade_number``, which prints the verdict and, in a graded run, raises on
a missing or wrong answer. Keeping the computation here keeps the answer out of the notebook's text.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torchvision.models.detection._utils import BoxCoder
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.image_list import ImageList
from torchvision.models.detection.transform import GeneralizedRCNNTransform
from torchvision.ops import box_area, box_iou, nms

from .boxes import as_box_tensor
from .graded_quiz import grade_number


def _one_box(box: Any, name: str) -> torch.Tensor:
    """``box`` as a valid xyxy tensor [1, 4] (one box), or a ValueError naming ``name``."""
    box = as_box_tensor(box, name, valid=True)
    if len(box) != 1:
        raise ValueError(f"{name} must hold exactly one box, shape [1, 4]; got {len(box)} boxes")
    return box


def grade_iou(answer: Any, box_a: torch.Tensor, box_b: torch.Tensor, name: str = "answer") -> None:
    """Grade the IoU of two ``[1, 4]`` xyxy boxes (tolerance 0.01), explained by areas and overlap."""
    box_a, box_b = _one_box(box_a, "box_a"), _one_box(box_b, "box_b")
    area_a, area_b = box_area(box_a)[0].item(), box_area(box_b)[0].item()
    sides = torch.min(box_a[0, 2:], box_b[0, 2:]) - torch.max(box_a[0, :2], box_b[0, :2])
    overlap = sides.clamp(min=0).prod().item()
    union = area_a + area_b - overlap
    why = (
        f"area(box_a) = {area_a:.0f} px², area(box_b) = {area_b:.0f} px², intersection = {overlap:.0f} px², "
        f"union = {area_a:.0f} + {area_b:.0f} - {overlap:.0f} = {union:.0f} px²; IoU = intersection / union "
        f"= {overlap:.0f} / {union:.0f}."
    )
    grade_number(answer, box_iou(box_a, box_b)[0, 0], abs_tol=0.01, name=name, why=why)


def nms_steps(boxes: torch.Tensor, scores: torch.Tensor, threshold: float) -> tuple[list[int], list[str]]:
    """The boxes ``torchvision.ops.nms`` keeps, and one sentence per box on why it stays or goes.

    The sentences follow greedy NMS from the highest score down; a box that goes is blamed on the
    kept box it overlaps most. ``boxes`` [N, 4] xyxy, ``scores`` [N].
    """
    boxes = as_box_tensor(boxes, "boxes", valid=True)
    if not torch.is_tensor(scores) or scores.shape != (len(boxes),) or not torch.isfinite(scores).all():
        raise ValueError(f"scores must be a tensor [{len(boxes)}] of finite numbers, one per box")
    kept = nms(boxes, scores, threshold).tolist()
    iou = box_iou(boxes, boxes)
    so_far: list[int] = []
    steps = []
    for k in scores.argsort(descending=True).tolist():
        if k in kept:
            if so_far:
                most = max(iou[k, j].item() for j in so_far)
                steps.append(
                    f"box {k} ({scores[k]:.2f}) stays: its largest IoU with a kept box is {most:.2f}"
                )
            else:
                steps.append(f"box {k} ({scores[k]:.2f}) has the best score and stays")
            so_far.append(k)
        else:
            j = max(so_far, key=lambda i: iou[k, i].item()) if so_far else None
            blame = f": it overlaps kept box {j} by {iou[k, j]:.2f} > {threshold}" if j is not None else ""
            steps.append(f"box {k} ({scores[k]:.2f}) goes{blame}")
    return sorted(kept), steps


def grade_nms_count(
    answer: Any, boxes: torch.Tensor, scores: torch.Tensor, threshold: float, name: str = "answer"
) -> None:
    """Grade the number of boxes greedy NMS keeps (exact), with the story of each box."""
    kept, steps = nms_steps(boxes, scores, threshold)
    why = f"torchvision.ops.nms keeps boxes {kept}. From the best score down: " + "; ".join(steps) + "."
    grade_number(answer, len(kept), name=name, why=why)


def grade_anchor_count(
    answer: Any,
    image_size: int,
    stride: int,
    sizes: Sequence[int],
    aspect_ratios: Sequence[float],
    name: str = "answer",
) -> None:
    """Grade the anchor count of one square feature map (exact), counted by torchvision's AnchorGenerator."""
    side = image_size // stride
    feature_map = torch.zeros(1, 1, side, side)
    images = ImageList(torch.zeros(1, 3, image_size, image_size), [(image_size, image_size)])
    generator = AnchorGenerator(sizes=(tuple(sizes),), aspect_ratios=(tuple(aspect_ratios),))
    n_anchors = generator(images, [feature_map])[0].shape[0]
    shapes = len(sizes) * len(aspect_ratios)
    why = (
        f"The map has {image_size} / {stride} = {side} positions per side, so {side} x {side} positions, and "
        f"each gets {len(sizes)} sizes x {len(aspect_ratios)} ratios = {shapes} anchors; torchvision's "
        f"AnchorGenerator makes {n_anchors}."
    )
    grade_number(answer, n_anchors, name=name, why=why)


def grade_width_target(
    answer: Any, anchor: torch.Tensor, ground_truth: torch.Tensor, name: str = "answer"
) -> None:
    """Grade the width target dw of a ``[1, 4]`` ground truth against a ``[1, 4]`` anchor (tolerance 0.01)."""
    anchor, ground_truth = _one_box(anchor, "anchor"), _one_box(ground_truth, "ground_truth")
    targets = BoxCoder(weights=(1.0, 1.0, 1.0, 1.0)).encode_single(ground_truth, anchor)[0]
    w_a = (anchor[0, 2] - anchor[0, 0]).item()
    w_gt = (ground_truth[0, 2] - ground_truth[0, 0]).item()
    why = (
        f"The anchor is {w_a:g} px wide and the ground truth {w_gt:g} px, so dw = log({w_gt:g} / {w_a:g}) "
        f"= {targets[2]:.3f}; torchvision's BoxCoder gives (dx, dy, dw, dh) = "
        f"{[round(v, 3) for v in targets.tolist()]}."
    )
    grade_number(answer, targets[2], abs_tol=0.01, name=name, why=why)


def grade_smooth_l1(
    answer: Any, predicted: torch.Tensor, target: torch.Tensor, beta: float = 1.0, name: str = "answer"
) -> None:
    """Grade the mean Smooth L1 loss of ``predicted`` against ``target`` (tolerance 0.01)."""
    terms = F.smooth_l1_loss(predicted, target, beta=beta, reduction="none")
    loss = terms.mean()
    largest = terms.argmax().item()
    why = (
        f"The terms are {[round(v, 4) for v in terms.tolist()]} and their mean is {loss.item():.4f} "
        f"(torch.nn.functional.smooth_l1_loss, beta = {beta:g}). The largest error, "
        f"{(predicted - target)[largest].item():g}, makes up {terms[largest] / terms.sum():.0%} of the sum, "
        "yet it counts linearly, not squared."
    )
    grade_number(answer, loss, abs_tol=0.01, name=name, why=why)


def grade_batched_width(
    answer: Any, transform: GeneralizedRCNNTransform, photo: torch.Tensor, name: str = "answer"
) -> None:
    """Grade the width of the batch tensor ``transform`` (in eval mode) makes of one ``[3, H, W]`` photo."""
    batch, _ = transform([photo])
    height, width = photo.shape[-2:]
    short, long = min(height, width), max(height, width)
    min_size, max_size = transform.min_size[-1], transform.max_size
    scale = min(min_size / short, max_size / long)
    resized = tuple(batch.image_sizes[0])
    why = (
        f"The scale is min({min_size} / {short}, {max_size} / {long}) = {scale:.3f}, so the {height} x {width} "
        f"photo becomes {resized[0]} x {resized[1]} (height x width); padding to multiples of "
        f"{transform.size_divisible} gives a batch tensor of shape {tuple(batch.tensors.shape)}."
    )
    grade_number(answer, batch.tensors.shape[-1], name=name, why=why)


def grade_first_loss(answer: Any, logits: torch.Tensor, labels: torch.Tensor, name: str = "answer") -> None:
    """Grade the cross-entropy of ``[N, C]`` logits against ``[N]`` labels (tolerance 0.01)."""
    loss = F.cross_entropy(logits, labels)
    n_classes = logits.shape[1]
    if bool((logits == logits[:, :1]).all()):
        why = (
            f"Equal logits give each of the {n_classes} classes probability 1/{n_classes}, and the loss is "
            f"-log(1/{n_classes}) = log {n_classes} = {loss.item():.4f}, whatever the labels."
        )
    else:
        why = f"torch.nn.functional.cross_entropy gives {loss.item():.4f} for these logits and labels."
    grade_number(answer, loss, abs_tol=0.01, name=name, why=why)
