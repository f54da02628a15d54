"""Matching anchors to objects, read from the objects' side, and a picture of it.

torchvision's ``Matcher`` (``torchvision.models.detection._utils``) gives every anchor one code:
the index of the object it learns (foreground), ``-1`` (background: its best IoU is below the low
threshold) or ``-2`` (ignored: its best IoU lies between the thresholds). That answers "what does
this anchor learn?". The lessons also ask the opposite question, "which anchors does this object
get?", and these helpers answer it:

* ``foreground_per_object`` counts the foreground anchors of each object;
* ``objects_without_foreground`` lists the objects that got none (with low-quality matches on this
  can still happen: the anchor promoted for an object goes to the object *it* overlaps most);
* ``best_iou_map`` and ``draw_best_iou_map`` show, at every feature-map location, the best IoU of
  its anchors with any object, over the image.

Boxes are ``(x1, y1, x2, y2)`` in pixels; anchors are in torchvision's order (location by location,
row by row, each location's K anchors together), as ``course_utils.anchors.grid_anchors`` makes them.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from .images import check_pixel_range

__all__ = ["foreground_per_object", "objects_without_foreground", "best_iou_map", "draw_best_iou_map"]


def _as_matches(matches: Any, n_objects: int) -> Tensor:
    """``matches`` as int64 [A] of Matcher codes (-2, -1 or an object index below ``n_objects``)."""
    if not isinstance(n_objects, int) or isinstance(n_objects, bool) or n_objects < 0:
        raise ValueError(f"n_objects must be an int >= 0, got {n_objects!r}")
    matches = torch.as_tensor(matches)
    if matches.ndim != 1 or matches.is_floating_point() or matches.dtype == torch.bool:
        raise ValueError(f"matches must be an integer tensor [A] (the Matcher's codes), got {matches!r:.80}")
    matches = matches.long()
    if len(matches) and (int(matches.min()) < -2 or int(matches.max()) >= n_objects):
        raise ValueError(
            f"matches must hold -2, -1 or an object index in [0, {n_objects - 1}], "
            f"got values from {int(matches.min())} to {int(matches.max())}"
        )
    return matches


def foreground_per_object(matches: Tensor, n_objects: int) -> Tensor:
    """How many foreground anchors each object got.

    Args:
        matches: int [A], the Matcher's code for each anchor (an object index, -1 or -2).
        n_objects: M, the number of objects of the image (0 gives an empty result).

    Returns:
        Tensor int64 [M]: entry m counts the anchors whose code is m.
    """
    matches = _as_matches(matches, n_objects)
    return torch.bincount(matches[matches >= 0], minlength=n_objects)


def objects_without_foreground(matches: Tensor, n_objects: int) -> Tensor:
    """The objects that no anchor learns.

    Args:
        matches: int [A], the Matcher's code for each anchor (an object index, -1 or -2).
        n_objects: M, the number of objects of the image.

    Returns:
        Tensor int64 [K]: the indices (in increasing order) of the objects with no foreground anchor.
    """
    counts = foreground_per_object(matches, n_objects)
    return torch.arange(n_objects)[counts == 0]


def best_iou_map(iou: Tensor, grid_size: tuple[int, int]) -> Tensor:
    """The best IoU of each feature-map location's anchors with any object.

    Args:
        iou: float [M, A], IoU of the M objects with the A anchors, A = rows * cols * K in
            torchvision's order (location by location, row by row). M == 0 gives zeros.
        grid_size: (rows, cols) of the feature map.

    Returns:
        Tensor float [rows, cols].
    """
    iou = torch.as_tensor(iou)
    rows, cols = (int(v) for v in grid_size)
    if iou.ndim != 2 or rows <= 0 or cols <= 0 or iou.shape[1] % (rows * cols) != 0:
        raise ValueError(
            f"iou must be [M, rows * cols * K] for grid_size {grid_size!r}, got shape {tuple(iou.shape)}"
        )
    if iou.shape[0] == 0:
        return torch.zeros(rows, cols, dtype=iou.dtype)
    best_per_anchor = iou.max(dim=0).values  # [A]
    return best_per_anchor.reshape(rows, cols, -1).max(dim=2).values


def draw_best_iou_map(ax: Any, image: Tensor, iou: Tensor, stride: int, *, title: str | None = None) -> Any:
    """Draw ``best_iou_map`` as a heat map over the image: each location's cell centred on its anchors.

    The anchors of location (row, col) are centred on the pixel ``(col * stride, row * stride)``, so
    its cell is drawn from half a stride before to half a stride after that point.

    Args:
        ax: matplotlib axes.
        image: float [3, H, W] in [0, 1].
        iou: float [M, A], objects x anchors in torchvision's order for this image and stride.
        stride: the feature map's stride in pixels.
        title: the axes' title.

    Returns:
        the heat map's ``AxesImage`` (give it to ``fig.colorbar``).
    """
    image = torch.as_tensor(image)
    if image.ndim != 3 or image.shape[0] != 3:
        raise ValueError(f"image must be a tensor [3, H, W], got shape {tuple(image.shape)}")
    check_pixel_range(image, "image")  # a 0..255 float image would be clamped to white
    height, width = image.shape[1:]
    grid = (-(-height // stride), -(-width // stride))  # ceil, as torchvision's feature maps
    best = best_iou_map(iou, grid)
    half = stride / 2
    ax.imshow(image.permute(1, 2, 0).clamp(0, 1).numpy(), extent=(0, width, height, 0))
    extent = (-half, grid[1] * stride - half, grid[0] * stride - half, -half)
    shown = ax.imshow(best.numpy(), extent=extent, cmap="magma", alpha=0.75, vmin=0, vmax=1)
    ax.set(xlim=(0, width), ylim=(height, 0))
    if title is not None:
        ax.set_title(title, fontsize=10)
    ax.set_axis_off()
    return shown
