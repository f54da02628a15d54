"""Pictures for the lessons: boxes on images, dataset grids, training curves, PR curves.

Every function draws with matplotlib on the axes or figure it returns, so a notebook cell ends with
the call and the picture appears; tests count the artists on the Agg backend.

* ``draw_boxes(ax, image, boxes, labels, scores)`` - boxes with class names and scores, one colour
  per class. Box edges get a dark outline and labels sit on a filled box in the class colour with
  black or white text (whichever contrasts), so both stay readable on dark and light images.
* ``show_samples(dataset, n)`` - a grid of samples with their boxes.
* ``plot_history(history)`` - losses and metrics per epoch from ``course_utils.train.History``
  (or a list of dicts with an ``"epoch"`` key).
* ``plot_pr_curve(coco_result)`` - precision-recall curves from ``course_utils.evaluate.CocoResult``
  or from pycocotools' raw precision array [T, R, K, A, M].

Images are drawn with pixel edges on integer coordinates (``extent=(0, W, H, 0)``), the convention
of the boxes: a box ``[x1, y1, x2, y2]`` is drawn exactly around the pixels it covers.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import matplotlib.patheffects as pe
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from torchvision import tv_tensors
from torchvision.transforms.v2 import functional as TF

from course_utils.data import CLASSES
from course_utils.images import check_pixel_range

# Okabe and Ito's colour-blind-safe palette, strongest colours first (black is left out: it draws text
# and outlines; yellow comes last, it is faint on white).
_PALETTE = tuple(
    tuple(int(code[i : i + 2], 16) / 255 for i in (1, 3, 5))
    for code in ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442")
)
_AREAS = ("all", "small", "medium", "large")
_MAX_DETS = (1, 10, 100)


def class_colour(label: int) -> tuple[float, float, float]:
    """The colour of a class (Okabe-Ito, colour-blind safe, cycling); a label always gets the same colour."""
    return tuple(_PALETTE[(int(label) - 1) % len(_PALETTE)])


def _text_colour(rgb: Sequence[float]) -> str:
    luminance = 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]
    return "black" if luminance > 0.5 else "white"


def _image_array(image: Any) -> np.ndarray:
    """An image (tensor [3, H, W] / [H, W], numpy [H, W, 3] / [H, W], PIL) -> numpy for imshow."""
    if hasattr(image, "convert") and hasattr(image, "size"):  # PIL
        return np.asarray(image)
    if isinstance(image, torch.Tensor):
        t = image.detach().cpu().as_subclass(torch.Tensor)
        if t.ndim == 3 and t.shape[0] in (1, 3):
            t = t.permute(1, 2, 0)
            if t.shape[-1] == 1:
                t = t[..., 0]
        elif t.ndim != 2:
            raise ValueError(f"image: expected a tensor [3, H, W] or [H, W], got shape {tuple(t.shape)}")
        array = t.numpy()
    else:
        array = np.asarray(image)
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[-1] not in (3, 4)):
        raise ValueError(f"image: expected [H, W], [H, W, 3] or [3, H, W], got shape {array.shape}")
    if array.dtype.kind == "f":
        check_pixel_range(array, "image")
        array = np.clip(array, 0.0, 1.0)  # only rounding overshoot is left to clip
    return array


def _as_xyxy(boxes: Any) -> np.ndarray:
    if isinstance(boxes, tv_tensors.BoundingBoxes) and boxes.format != tv_tensors.BoundingBoxFormat.XYXY:
        boxes = TF.convert_bounding_box_format(boxes, new_format=tv_tensors.BoundingBoxFormat.XYXY)
    if isinstance(boxes, torch.Tensor):
        boxes = boxes.detach().cpu().as_subclass(torch.Tensor).float().numpy()
    array = np.asarray(boxes, dtype=np.float64)
    if array.size == 0:
        return array.reshape(0, 4)
    if array.ndim != 2 or array.shape[1] != 4:
        raise ValueError(f"boxes: expected shape [N, 4] (XYXY pixels), got {array.shape}")
    return array


def _as_vector(values: Any, n: int, name: str, dtype: Any) -> np.ndarray | None:
    if values is None:
        return None
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    array = np.asarray(values, dtype=dtype).reshape(-1)
    if len(array) != n:
        raise ValueError(f"{name}: expected {n} values (one per box), got {len(array)}")
    return array


def draw_boxes(
    ax: Axes,
    image: Any,
    boxes: Any,
    labels: Any = None,
    scores: Any = None,
    class_names: Sequence[str] = CLASSES,
    *,
    score_threshold: float | None = None,
    linewidth: float = 2.0,
    fontsize: float = 8.0,
    show_text: bool = True,
    title: str | None = None,
) -> Axes:
    """Draw an image and its boxes on ``ax``; one rectangle (``ax.patches``) per drawn box.

    Args:
        ax: matplotlib axes.
        image: tensor [3, H, W] (float in [0, 1] or uint8), numpy [H, W, 3] or PIL image; None
            draws the boxes on whatever ``ax`` already shows.
        boxes: [N, 4] XYXY pixels (a ``BoundingBoxes`` in another format is converted).
        labels: [N] class indices into ``class_names`` (None: all boxes in one colour, no names).
        scores: [N] confidences in [0, 1], written after the class name (e.g. "circle 0.93").
        class_names: names indexed by label (default ``course_utils.data.CLASSES``).
        score_threshold: draw only boxes with ``score >= score_threshold`` (the title says how many
            were hidden).
        linewidth, fontsize: sizes; show_text: write the labels.
        title: the axes' title.

    Raises:
        ValueError: NaN or infinite values in boxes or scores (naming the box), a label outside
            ``class_names``, mismatched lengths, a float image outside [0, 1] (e.g. 0..255).

    Boxes with x2 < x1 or y2 < y1 are drawn from their corners as given, with a warning.
    """
    xyxy = _as_xyxy(boxes)
    n = len(xyxy)
    labels_np = _as_vector(labels, n, "labels", np.int64)
    scores_np = _as_vector(scores, n, "scores", np.float64)
    bad = ~np.isfinite(xyxy).all(axis=1)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"boxes: box {i} is {xyxy[i].tolist()}; expected finite numbers (NaN in predictions?)"
        )
    inverted = (xyxy[:, 2] < xyxy[:, 0]) | (xyxy[:, 3] < xyxy[:, 1])
    if inverted.any():  # drawn as given (an untrained head's boxes are worth seeing), never silently
        i = int(np.flatnonzero(inverted)[0])
        warnings.warn(
            f"draw_boxes: {int(inverted.sum())} of {n} boxes have x2 < x1 or y2 < y1 (the first is box {i} = "
            f"{xyxy[i].tolist()}); they are drawn from their corners as given. If they are (x, y, w, h) boxes, convert them with "
            "torchvision.ops.box_convert(boxes, 'xywh', 'xyxy')",
            stacklevel=2,
        )
    if scores_np is not None and not np.isfinite(scores_np).all():
        i = int(np.flatnonzero(~np.isfinite(scores_np))[0])
        raise ValueError(
            f"scores: score {i} is {scores_np[i]}; expected finite numbers (NaN in predictions?)"
        )
    if labels_np is not None and n:
        out = (labels_np < 0) | (labels_np >= len(class_names))
        if out.any():
            i = int(np.flatnonzero(out)[0])
            raise ValueError(
                f"labels: label {labels_np[i]} of box {i} is out of range: expected 0..{len(class_names) - 1} "
                f"(class_names has {len(class_names)} names)"
            )
    if image is not None:
        array = _image_array(image)
        h, w = array.shape[:2]
        ax.imshow(
            array, extent=(0, w, h, 0), cmap="gray" if array.ndim == 2 else None, interpolation="nearest"
        )
    ax.set_axis_off()
    keep = np.ones(n, dtype=bool)
    if score_threshold is not None and scores_np is not None:
        keep = scores_np >= score_threshold
    outline = [pe.withStroke(linewidth=linewidth + 1.5, foreground="black")]
    for i in np.flatnonzero(keep):
        x1, y1, x2, y2 = xyxy[i]
        colour = class_colour(labels_np[i]) if labels_np is not None else (1.0, 0.85, 0.0)
        rect = Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor=colour, linewidth=linewidth)
        rect.set_path_effects(outline)
        ax.add_patch(rect)
        if not show_text:
            continue
        parts = []
        if labels_np is not None:
            parts.append(class_names[labels_np[i]])
        if scores_np is not None:
            parts.append(f"{scores_np[i]:.2f}")
        if parts:
            ax.text(
                x1,
                y1,
                " ".join(parts),
                fontsize=fontsize,
                color=_text_colour(colour),
                va="bottom",
                ha="left",
                clip_on=True,
                bbox={"facecolor": colour, "edgecolor": "black", "linewidth": 0.5, "pad": 1.0, "alpha": 0.9},
            )
    hidden = int((~keep).sum())
    if title is not None or hidden:
        text = title or ""
        if hidden:
            text = f"{text} ({hidden} below score {score_threshold:g} hidden)".strip()
        ax.set_title(text, fontsize=fontsize + 1)
    return ax


def show_samples(
    dataset: Any,
    n: int = 8,
    *,
    indices: Sequence[int] | None = None,
    ncols: int = 4,
    class_names: Sequence[str] | None = None,
    size: float = 2.5,
    title: str | None = None,
) -> Figure:
    """A grid of ``n`` samples (``dataset[i] -> (image, target)``) with their boxes and class names.

    Args:
        dataset: any dataset with the course's sample format.
        n: how many samples (the first ``n``, unless ``indices`` is given).
        indices: which samples to show.
        ncols: columns of the grid.
        class_names: default ``dataset.classes`` or ``course_utils.data.CLASSES``.
        size: inches per panel.
        title: the figure's title.

    Each panel's title is ``#index: k objects``. Returns the figure.
    """
    indices = list(indices) if indices is not None else list(range(min(n, len(dataset))))
    if not indices:
        raise ValueError("show_samples: nothing to show (the dataset is empty or n/indices select nothing)")
    for i in indices:
        if not -len(dataset) <= i < len(dataset):
            raise IndexError(
                f"show_samples: index {i} is out of range for a dataset of {len(dataset)} samples"
            )
    names = class_names or getattr(dataset, "classes", CLASSES)
    ncols = max(1, min(ncols, len(indices)))
    nrows = math.ceil(len(indices) / ncols)
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(size * ncols, size * nrows + (0.4 if title else 0)), squeeze=False
    )
    for ax in axes.flat[len(indices) :]:
        ax.set_axis_off()
    for ax, i in zip(axes.flat, indices, strict=False):
        image, target = dataset[i]
        k = len(target["boxes"])
        draw_boxes(ax, image, target["boxes"], target.get("labels"), class_names=names, fontsize=7)
        ax.set_title(f"#{i}: {k} object{'s' if k != 1 else ''}", fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


_NOT_CURVES = {"epoch", "lr", "seconds", "val_seconds", "grad_norm"}


def _records(history: Any) -> list[dict[str, Any]]:
    records = getattr(history, "records", history)
    if not isinstance(records, (list, tuple)) or not all(isinstance(r, dict) for r in records):
        raise TypeError("history: expected a course_utils.train.History or a list of dicts (one per epoch)")
    if not records:
        raise ValueError("history: no records to plot (has any epoch finished?)")
    return list(records)


def plot_history(history: Any, keys: Sequence[str] | None = None, *, title: str | None = None) -> Figure:
    """Training curves: one line per key against the epoch.

    Args:
        history: a ``course_utils.train.History`` (its ``.records``) or a list of dicts, each with
            ``"epoch"`` and numbers (epochs count from 1; without ``"epoch"`` the position is used).
        keys: what to plot; default every numeric key except epoch, lr, seconds, val_seconds and
            grad_norm. Keys containing ``"loss"`` go in the left panel, the others (metrics) in a
            right panel, so losses and IoU/AP keep readable scales.
        title: the figure's title.

    Raises:
        KeyError: a requested key is in no record (the message lists the keys there are).
    """
    records = _records(history)
    available: dict[str, None] = {}
    for r in records:
        available.update(dict.fromkeys(r))
    if keys is None:
        keys = [
            k
            for k in available
            if k not in _NOT_CURVES and all(isinstance(r.get(k, 0.0), (int, float)) for r in records)
        ]
    else:
        missing = [k for k in keys if k not in available]
        if missing:
            raise KeyError(f"plot_history: no {missing} in the history; its keys are {list(available)}")
    if not keys:
        raise ValueError(f"plot_history: nothing to plot; the history's keys are {list(available)}")
    epochs = [r.get("epoch", i + 1) for i, r in enumerate(records)]
    groups = [[k for k in keys if "loss" in k], [k for k in keys if "loss" not in k]]
    groups = [g for g in groups if g]
    fig, axes = plt.subplots(1, len(groups), figsize=(5.5 * len(groups), 3.6), squeeze=False)
    for ax, group in zip(axes.flat, groups, strict=True):
        for k in group:
            values = [float(r.get(k, math.nan)) for r in records]
            ax.plot(epochs, values, marker="o", markersize=3, label=k)
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss" if "loss" in group[0] else "metric")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_pr_curve(
    coco_result: Any,
    *,
    iou_threshold: float = 0.5,
    area: str = "all",
    max_detections: int = 100,
    class_names: Sequence[str] | None = None,
    recall_thresholds: Sequence[float] | None = None,
    iou_thresholds: Sequence[float] | None = None,
    ax: Axes | None = None,
) -> Axes:
    """Precision-recall curves, one per class plus their mean (thick black), at one IoU threshold.

    Args:
        coco_result: a ``course_utils.evaluate.CocoResult`` (uses its ``precision``,
            ``recall_thresholds``, ``iou_thresholds`` and ``class_names``) or pycocotools' raw
            ``eval["precision"]`` array [T, R, K, A, M]: IoU thresholds (0.50:0.05:0.95) x recall
            thresholds (0:0.01:1) x classes x areas (all, small, medium, large) x max detections (1, 10, 100).
        iou_threshold: which of the IoU thresholds (default 0.5).
        area: ``"all"``, ``"small"``, ``"medium"`` or ``"large"``.
        max_detections: 1, 10 or 100.
        class_names: names of the K classes (default the result's, else "class k").
        recall_thresholds, iou_thresholds: override the axes of a raw array.
        ax: where to draw (default a new figure).

    pycocotools writes -1 where precision is undefined (a class without ground truth); those
    classes are left out (the legend says so) and the mean is over the others. The legend gives
    each class's AP at this IoU (the mean of its curve).
    """
    precision = np.asarray(getattr(coco_result, "precision", coco_result), dtype=np.float64)
    if precision.ndim != 5:
        raise ValueError(
            f"coco_result: expected a precision array [T, R, K, A, M], got shape {precision.shape}"
        )
    t, r, k, a, m = precision.shape
    if recall_thresholds is None:
        recall_thresholds = getattr(coco_result, "recall_thresholds", None)
    if iou_thresholds is None:
        iou_thresholds = getattr(coco_result, "iou_thresholds", None)
    rec = np.asarray(recall_thresholds) if recall_thresholds is not None else np.linspace(0.0, 1.0, r)
    ious = np.asarray(iou_thresholds) if iou_thresholds is not None else np.linspace(0.5, 0.95, t)
    if len(rec) != r or len(ious) != t:
        raise ValueError(
            f"recall/IoU thresholds: got {len(rec)} and {len(ious)}, the array has R={r} and T={t}"
        )
    matches = np.flatnonzero(np.isclose(ious, iou_threshold))
    if not len(matches):
        raise ValueError(f"iou_threshold {iou_threshold} is not one of {np.round(ious, 2).tolist()}")
    if area not in _AREAS[:a]:
        raise ValueError(f"area must be one of {_AREAS[:a]}, got {area!r}")
    if max_detections not in _MAX_DETS[:m]:
        raise ValueError(f"max_detections must be one of {_MAX_DETS[:m]}, got {max_detections!r}")
    names = list(
        class_names or getattr(coco_result, "class_names", None) or [f"class {i + 1}" for i in range(k)]
    )
    if len(names) != k:
        raise ValueError(f"class_names: expected {k} names (K of the array), got {len(names)}")
    curves = precision[matches[0], :, :, _AREAS.index(area), _MAX_DETS.index(max_detections)]  # [R, K]
    if ax is None:
        _, ax = plt.subplots(figsize=(5.5, 4.2))
    defined = []
    for j in range(k):
        curve = curves[:, j]
        if (curve < 0).all():
            ax.plot([], [], linestyle="none", label=f"{names[j]}: no ground truth")
            continue
        defined.append(curve)
        ax.plot(
            rec, curve, color=class_colour(j + 1), linewidth=1.5, label=f"{names[j]} (AP {curve.mean():.3f})"
        )
    if defined:
        mean = np.mean(defined, axis=0)
        ax.plot(rec, mean, color="black", linewidth=2.5, label=f"mean (AP {mean.mean():.3f})")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_title(f"precision-recall at IoU {ious[matches[0]]:.2f} (area {area}, {max_detections} detections)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower left")
    return ax


def display_with_picture(widget: Any, picture: bytes, mime: str = "image/png") -> None:
    """Display an interactive widget, with ``picture`` (its current state) as the static fallback.

    JupyterLab and Colab show the widget; a notebook read where widgets do not run (GitHub,
    nbviewer, a notebook reopened without its kernel) shows the picture instead.
    """
    import base64

    from .widget_display import display_with_fallback

    if mime not in ("image/png", "image/jpeg"):
        raise ValueError(f"mime must be 'image/png' or 'image/jpeg', got {mime!r}")
    display_with_fallback(widget, {mime: base64.b64encode(picture).decode("ascii")})
