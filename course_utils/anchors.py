"""Anchors: where they sit, what shapes they have, which objects they match.

Everything here is a thin layer over torchvision's own code, so what a lesson shows is what
torchvision's detectors do:

* ``anchor_shapes`` / ``anchors_at`` / ``grid_anchors`` build anchors with
  ``torchvision.models.detection.anchor_utils.AnchorGenerator`` (one feature map), and
  ``place_anchor_shapes`` puts arbitrary (width, height) shapes on its grid the same way;
* ``assign_targets`` labels anchors with torchvision's ``Matcher`` and encodes the regression
  targets with its ``BoxCoder``;
* ``shape_iou``, ``kmeans_anchor_shapes``, ``best_shape_iou``, ``best_anchor_iou`` and
  ``matched_share`` are the anchor-design helpers: cluster a dataset's box shapes and measure
  which share of the objects some anchor matches at a given IoU;
* ``AnchorExplorer`` is the interactive picture: anchors of chosen sizes, ratios and stride at
  one feature-map location, drawn over a photo. Its logic lives in plain methods
  (``update``, ``summary``, ``draw``), so it can be used and tested without a browser.

Boxes are ``(x1, y1, x2, y2)`` in pixels and aspect ratio means height / width, as in torchvision.
"""

from __future__ import annotations

import html
import io
import math
import numbers
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torchvision.models.detection._utils import BoxCoder, Matcher
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.ops import box_iou

from .boxes import as_box_tensor
from .images import check_pixel_range

__all__ = [
    "RPN_BOX_WEIGHTS",
    "ROI_BOX_WEIGHTS",
    "AnchorTargets",
    "KMeansShapes",
    "ExplorerState",
    "AnchorExplorer",
    "anchor_shapes",
    "anchors_at",
    "grid_anchors",
    "place_anchor_shapes",
    "assign_targets",
    "shape_iou",
    "kmeans_anchor_shapes",
    "best_shape_iou",
    "best_anchor_iou",
    "matched_share",
]

#: torchvision's RPN encodes anchors -> boxes with unit weights ...
RPN_BOX_WEIGHTS: tuple[float, float, float, float] = (1.0, 1.0, 1.0, 1.0)
#: ... and its box head (proposals -> boxes) with (10, 10, 5, 5).
ROI_BOX_WEIGHTS: tuple[float, float, float, float] = (10.0, 10.0, 5.0, 5.0)


# --------------------------------------------------------------------------------------------
# Building anchors (torchvision's AnchorGenerator)
# --------------------------------------------------------------------------------------------


def _check_sizes_ratios(sizes: Sequence[float], ratios: Sequence[float]) -> tuple[tuple, tuple]:
    def positive(value: Any) -> bool:
        return (
            isinstance(value, numbers.Real)
            and not isinstance(value, bool)
            and math.isfinite(value)
            and value > 0
        )

    sizes, ratios = tuple(sizes), tuple(ratios)
    if not sizes or not all(positive(s) for s in sizes):
        raise ValueError(f"sizes must be a non-empty sequence of positive numbers, got {sizes!r}")
    if not ratios or not all(positive(r) for r in ratios):
        raise ValueError(f"ratios must be a non-empty sequence of positive numbers, got {ratios!r}")
    return tuple(float(s) if isinstance(s, float) else int(s) for s in sizes), tuple(float(r) for r in ratios)


def _generator(sizes: Sequence[float], ratios: Sequence[float]) -> AnchorGenerator:
    sizes, ratios = _check_sizes_ratios(sizes, ratios)
    return AnchorGenerator(sizes=(sizes,), aspect_ratios=(ratios,))


def anchor_shapes(sizes: Sequence[float], ratios: Sequence[float]) -> Tensor:
    """Widths and heights of the anchors that torchvision makes for ``sizes`` x ``ratios``.

    The order is torchvision's: ratio-major (all sizes of the first ratio, then the next ratio).
    torchvision rounds each half-extent to a whole pixel, so a size-32 anchor of ratio 0.5 is
    46 x 22, not 45.25 x 22.63.

    Returns:
        Tensor float32 [len(ratios) * len(sizes), 2]: columns (width, height).
    """
    base = _generator(sizes, ratios).cell_anchors[0]
    return torch.stack([base[:, 2] - base[:, 0], base[:, 3] - base[:, 1]], dim=1)


def anchors_at(center: tuple[float, float], sizes: Sequence[float], ratios: Sequence[float]) -> Tensor:
    """The anchors (torchvision's shapes) centred on one point ``center = (x, y)`` in pixels.

    Returns:
        Tensor float32 [len(ratios) * len(sizes), 4], XYXY.
    """
    if len(center) != 2:
        raise ValueError(f"center must be (x, y), got {center!r}")
    base = _generator(sizes, ratios).cell_anchors[0]
    x, y = float(center[0]), float(center[1])
    return base + torch.tensor([x, y, x, y], dtype=base.dtype)


def grid_anchors(
    image_size: tuple[int, int], stride: int, sizes: Sequence[float], ratios: Sequence[float]
) -> Tensor:
    """Every anchor of one feature map of ``stride`` over an image of ``image_size = (H, W)``.

    The feature map has ``ceil(H / stride) x ceil(W / stride)`` locations; as in torchvision, the
    anchors of location (row, col) are centred on the pixel ``(col * stride, row * stride)``
    (the cell's top-left corner, not its middle). The order is torchvision's: location-major
    (row by row), then the ``len(ratios) * len(sizes)`` anchors of each location.

    Returns:
        Tensor float32 [rows * cols * len(ratios) * len(sizes), 4], XYXY.
    """
    if len(image_size) != 2 or any(int(s) <= 0 for s in image_size):
        raise ValueError(f"image_size must be (height, width) with positive sides, got {image_size!r}")
    if not isinstance(stride, int) or isinstance(stride, bool) or stride <= 0:
        raise ValueError(f"stride must be a positive int, got {stride!r}")
    generator = _generator(sizes, ratios)
    grid = [math.ceil(int(image_size[0]) / stride), math.ceil(int(image_size[1]) / stride)]
    step = torch.tensor(stride, dtype=torch.int64)
    return generator.grid_anchors([grid], [[step, step]])[0]


def place_anchor_shapes(image_size: tuple[int, int], stride: int, shapes: Tensor) -> Tensor:
    """Anchors of arbitrary (width, height) ``shapes`` (e.g. from k-means) on a feature-map grid.

    Placement and order are exactly those of ``grid_anchors`` (torchvision's ``grid_anchors``):
    location (row, col) is centred on ``(col * stride, row * stride)``, locations row by row, and
    each location lists the K shapes in the given order. Unlike ``grid_anchors`` the shapes are not
    a sizes x ratios product, and they are not rounded.

    Args:
        shapes: float [K, 2] (width, height) in pixels.

    Returns:
        Tensor float32 [ceil(H / stride) * ceil(W / stride) * K, 4], XYXY.
    """
    shapes = _as_wh(shapes, "shapes")
    if len(image_size) != 2 or any(int(s) <= 0 for s in image_size):
        raise ValueError(f"image_size must be (height, width) with positive sides, got {image_size!r}")
    if not isinstance(stride, int) or isinstance(stride, bool) or stride <= 0:
        raise ValueError(f"stride must be a positive int, got {stride!r}")
    generator = AnchorGenerator(sizes=((1,),), aspect_ratios=((1.0,),))
    generator.cell_anchors = [torch.cat([-shapes / 2, shapes / 2], dim=1)]
    grid = [math.ceil(int(image_size[0]) / stride), math.ceil(int(image_size[1]) / stride)]
    step = torch.tensor(stride, dtype=torch.int64)
    return generator.grid_anchors([grid], [[step, step]])[0]


# --------------------------------------------------------------------------------------------
# Labelling anchors (torchvision's Matcher and BoxCoder)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AnchorTargets:
    """What ``assign_targets`` gives one image's anchors (A anchors, M objects).

    Attributes:
        labels: int64 [A]; the matched object's class (>= 1) for a foreground anchor, 0 for
            background, -1 for an anchor ignored by the loss (IoU between the two thresholds).
        matched_idxs: int64 [A]; the matched object's index, -1 below the low threshold,
            -2 between the thresholds (torchvision's ``Matcher`` codes).
        iou: float32 [A]; each anchor's best IoU with any object (0 when M == 0).
        box_targets: float32 [A, 4]; the encoded deltas (dx, dy, dw, dh) towards the matched
            object for foreground anchors, zeros elsewhere.
        matched_boxes: float32 [A, 4]; the matched object's box for foreground anchors, zeros elsewhere.
    """

    labels: Tensor
    matched_idxs: Tensor
    iou: Tensor
    box_targets: Tensor
    matched_boxes: Tensor

    @property
    def foreground(self) -> Tensor:
        """bool [A]: anchors that carry an object (labels >= 1)."""
        return self.labels >= 1

    def counts(self) -> dict[str, int]:
        """How many anchors are foreground, background and ignored."""
        return {
            "foreground": int((self.labels >= 1).sum()),
            "background": int((self.labels == 0).sum()),
            "ignored": int((self.labels == -1).sum()),
        }


def assign_targets(
    anchors: Tensor,
    boxes: Tensor,
    labels: Tensor | None = None,
    *,
    fg_iou: float = 0.7,
    bg_iou: float = 0.3,
    allow_low_quality_matches: bool = True,
    weights: tuple[float, float, float, float] = ROI_BOX_WEIGHTS,
) -> AnchorTargets:
    """Label one image's anchors and encode their regression targets, the torchvision way.

    An anchor whose best IoU with an object is >= ``fg_iou`` is foreground, below ``bg_iou`` it
    is background, in between it is ignored. With ``allow_low_quality_matches`` each object also
    gets the anchor(s) that overlap it most, even below ``fg_iou`` (torchvision's RPN does this).
    The defaults are the RPN's thresholds (0.7 / 0.3); its box head uses 0.5 / 0.5.

    Args:
        anchors: float [A, 4] XYXY.
        boxes: float [M, 4] XYXY, the objects (M may be 0: every anchor is then background); each
            must be finite with x2 > x1 and y2 > y1, else ``ValueError`` names the first bad box.
        labels: int64 [M] classes >= 1; None means class 1 for every object (objectness).
        weights: the BoxCoder's weights for (dx, dy, dw, dh).
    """
    anchors = _as_boxes(anchors, "anchors", allow_empty=True)
    if len(anchors) == 0:
        raise ValueError("anchors is empty: an image needs at least one anchor to match its objects to")
    boxes = _as_boxes(boxes, "boxes").to(anchors.dtype)
    if labels is None:
        labels = torch.ones(len(boxes), dtype=torch.int64)
    labels = _object_labels(labels, len(boxes))
    if not 0 <= bg_iou <= fg_iou <= 1:
        raise ValueError(f"need 0 <= bg_iou <= fg_iou <= 1, got bg_iou={bg_iou}, fg_iou={fg_iou}")
    n = len(anchors)
    if len(boxes) == 0:
        zeros = torch.zeros(n, 4, dtype=anchors.dtype)
        return AnchorTargets(
            labels=torch.zeros(n, dtype=torch.int64),
            matched_idxs=torch.full((n,), Matcher.BELOW_LOW_THRESHOLD, dtype=torch.int64),
            iou=torch.zeros(n, dtype=anchors.dtype),
            box_targets=zeros,
            matched_boxes=zeros.clone(),
        )
    quality = box_iou(boxes, anchors)  # [M, A]
    matcher = Matcher(fg_iou, bg_iou, allow_low_quality_matches=allow_low_quality_matches)
    matched_idxs = matcher(quality)
    fg = matched_idxs >= 0
    anchor_labels = torch.zeros(n, dtype=torch.int64)
    anchor_labels[fg] = labels[matched_idxs[fg]]
    anchor_labels[matched_idxs == Matcher.BETWEEN_THRESHOLDS] = -1
    matched_boxes = torch.zeros(n, 4, dtype=anchors.dtype)
    matched_boxes[fg] = boxes[matched_idxs[fg]]
    box_targets = torch.zeros(n, 4, dtype=anchors.dtype)
    if fg.any():
        box_targets[fg] = BoxCoder(weights).encode_single(matched_boxes[fg], anchors[fg])
    return AnchorTargets(
        labels=anchor_labels,
        matched_idxs=matched_idxs,
        iou=quality.max(dim=0).values,
        box_targets=box_targets,
        matched_boxes=matched_boxes,
    )


def _object_labels(labels: Tensor, n_boxes: int) -> Tensor:
    """``labels`` as int64 [n_boxes], each >= 1 (``ValueError`` naming ``labels`` otherwise)."""
    labels = torch.as_tensor(labels, dtype=torch.int64)
    if labels.shape != (n_boxes,):
        raise ValueError(f"labels must have shape [{n_boxes}] (one per box), got {tuple(labels.shape)}")
    if len(labels) and int(labels.min()) < 1:
        raise ValueError("labels must be >= 1: label 0 is the background and cannot be an object's class")
    return labels


def _as_boxes(boxes: Any, name: str, *, allow_empty: bool = False) -> Tensor:
    """``boxes`` as a float tensor [N, 4] XYXY (its dtype kept), checked with ``as_box_tensor``.

    Every box must be finite with ``x2 > x1`` and ``y2 > y1`` (``>=`` with ``allow_empty``):
    a ground-truth box with swapped corners or a NaN would otherwise make every anchor foreground.
    """
    boxes = torch.as_tensor(boxes)
    if boxes.ndim != 2 or boxes.shape[-1] != 4:
        raise ValueError(f"{name} must have shape [N, 4] (x1, y1, x2, y2), got {tuple(boxes.shape)}")
    if not boxes.is_floating_point():
        boxes = boxes.float()
    boxes = boxes.as_subclass(Tensor)
    as_box_tensor(boxes, name, valid=True, allow_empty=allow_empty)
    return boxes


# --------------------------------------------------------------------------------------------
# Anchor design for a dataset
# --------------------------------------------------------------------------------------------


def _as_wh(wh: Any, name: str) -> Tensor:
    wh = torch.as_tensor(wh, dtype=torch.float32)
    if wh.ndim != 2 or wh.shape[1] != 2:
        raise ValueError(f"{name} must have shape [N, 2] (width, height), got {tuple(wh.shape)}")
    if not torch.isfinite(wh).all() or (wh <= 0).any():
        raise ValueError(f"{name} must hold finite, positive widths and heights")
    return wh


def shape_iou(wh_a: Tensor, wh_b: Tensor) -> Tensor:
    """IoU of box *shapes* with their centres aligned: position is ignored, only size and aspect count.

    Args:
        wh_a: float [N, 2] (width, height).
        wh_b: float [M, 2] (width, height).

    Returns:
        Tensor [N, M]: ``min(w) * min(h) / (area_a + area_b - min(w) * min(h))``, computed with
        ``torchvision.ops.box_iou`` on boxes centred at the origin.
    """
    wh_a, wh_b = _as_wh(wh_a, "wh_a"), _as_wh(wh_b, "wh_b")
    return box_iou(torch.cat([-wh_a / 2, wh_a / 2], dim=1), torch.cat([-wh_b / 2, wh_b / 2], dim=1))


def best_shape_iou(wh: Tensor, anchor_wh: Tensor) -> Tensor:
    """For each object shape [N, 2], the best shape IoU with any anchor shape [K, 2], K >= 1: Tensor [N]."""
    wh, anchor_wh = _as_wh(wh, "wh"), _as_wh(anchor_wh, "anchor_wh")
    if len(anchor_wh) == 0:
        raise ValueError("anchor_wh is empty: give at least one anchor shape [K, 2], K >= 1")
    return shape_iou(wh, anchor_wh).max(dim=1).values


def best_anchor_iou(boxes: Tensor, anchors: Tensor) -> Tensor:
    """For each object box [N, 4], its best IoU with any placed anchor [A, 4]: Tensor [N] (N may be 0).

    ``boxes`` must be finite XYXY with x2 > x1 and y2 > y1 (``ValueError`` names the first bad box).
    """
    boxes, anchors = _as_boxes(boxes, "boxes"), _as_boxes(anchors, "anchors", allow_empty=True)
    if len(anchors) == 0:
        raise ValueError("anchors is empty: give at least one placed anchor [A, 4], A >= 1")
    if len(boxes) == 0:
        return torch.zeros(0)
    return box_iou(boxes, anchors.to(boxes.dtype)).max(dim=1).values


def matched_share(best_iou: Tensor, thresholds: Sequence[float] = (0.5, 0.7)) -> dict[float, float]:
    """The share of objects whose best anchor IoU reaches each threshold: ``{0.5: 0.93, 0.7: 0.61}``.

    Args:
        best_iou: float [N] (from ``best_shape_iou`` or ``best_anchor_iou``), N >= 1.
    """
    best_iou = torch.as_tensor(best_iou, dtype=torch.float32)
    if best_iou.ndim != 1 or best_iou.numel() == 0:
        raise ValueError(f"best_iou must be a non-empty 1-D tensor, got shape {tuple(best_iou.shape)}")
    return {float(t): float((best_iou >= t).float().mean()) for t in thresholds}


@dataclass(frozen=True)
class KMeansShapes:
    """The result of ``kmeans_anchor_shapes``.

    Attributes:
        shapes: float [k, 2] (width, height), sorted by area.
        assignment: int64 [N], each object's cluster (an index into ``shapes``).
        mean_iou: the mean over objects of the shape IoU with their cluster's shape.
        iterations: how many assignment rounds ran.
        reseeded: how many times an empty cluster was restarted on the worst-covered object.
    """

    shapes: Tensor
    assignment: Tensor
    mean_iou: float
    iterations: int
    reseeded: int


def kmeans_anchor_shapes(
    wh: Tensor, k: int, *, iters: int = 300, seed: int = 0, center: str = "median"
) -> KMeansShapes:
    """Cluster box shapes with k-means under the distance ``1 - shape_iou`` (the YOLOv2 recipe).

    Euclidean k-means on (w, h) lets big boxes dominate; with ``1 - IoU`` a 4-pixel error costs
    as much on a small box as a proportionate error on a large one. Starting centres are picked
    k-means++ style (far in IoU from those already picked) with a seeded generator, so a run is
    repeatable. A cluster that loses all its members restarts on the object its nearest centre
    covers worst; that is counted in ``reseeded`` and reported with a warning.

    Args:
        wh: float [N, 2] (width, height) of the objects, N >= k.
        k: the number of anchor shapes.
        center: how a cluster's shape is updated: ``"median"`` (robust) or ``"mean"``.
    """
    wh = _as_wh(wh, "wh")
    if len(wh) == 0:
        raise ValueError("wh is empty: k-means needs at least k object shapes [N, 2]")
    if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= len(wh):
        raise ValueError(f"k must be an int between 1 and the number of shapes ({len(wh)}), got {k!r}")
    if center not in ("median", "mean"):
        raise ValueError(f"center must be 'median' or 'mean', got {center!r}")
    gen = torch.Generator().manual_seed(seed)
    picked = [int(torch.randint(len(wh), (1,), generator=gen))]
    for _ in range(1, k):
        distance = 1 - shape_iou(wh, wh[picked]).max(dim=1).values
        weights = distance.square()
        if weights.sum() <= 0:  # fewer distinct shapes than k: take any not yet picked
            weights = torch.ones(len(wh))
            weights[picked] = 0
        picked.append(int(torch.multinomial(weights, 1, generator=gen)))
    centres = wh[picked].clone()
    assignment = torch.full((len(wh),), -1, dtype=torch.int64)
    reseeded, iterations = 0, 0
    while iterations < iters:
        iterations += 1
        iou = shape_iou(wh, centres)
        new_assignment = iou.argmax(dim=1)
        for j in range(k):
            members = wh[new_assignment == j]
            if len(members) == 0:
                worst = int(iou.max(dim=1).values.argmin())
                centres[j] = wh[worst]
                new_assignment[worst] = j
                reseeded += 1
            else:
                centres[j] = members.median(dim=0).values if center == "median" else members.mean(dim=0)
        if torch.equal(new_assignment, assignment):
            break
        assignment = new_assignment
    if reseeded:
        warnings.warn(f"kmeans_anchor_shapes: {reseeded} empty cluster(s) were restarted", stacklevel=2)
    order = (centres[:, 0] * centres[:, 1]).argsort()
    rank = torch.empty_like(order)
    rank[order] = torch.arange(k)
    assignment = rank[shape_iou(wh, centres).argmax(dim=1)]
    shapes = centres[order]
    mean_iou = float(shape_iou(wh, shapes).gather(1, assignment[:, None]).mean())
    return KMeansShapes(shapes, assignment, mean_iou, iterations, reseeded)


# --------------------------------------------------------------------------------------------
# The anchor explorer
# --------------------------------------------------------------------------------------------

SIZE_CHOICES: tuple[int, ...] = (16, 32, 64, 128, 256, 512)
RATIO_CHOICES: tuple[float, ...] = (0.25, 0.5, 1.0, 2.0, 4.0)
STRIDE_CHOICES: tuple[int, ...] = (4, 8, 16, 32, 64)


@dataclass(frozen=True)
class ExplorerState:
    """The explorer's settings: anchor sizes and ratios, the stride, and the location (row, col)."""

    sizes: tuple[int, ...]
    ratios: tuple[float, ...]
    stride: int
    row: int
    col: int


class AnchorExplorer:
    """Anchors of chosen sizes, ratios and stride at one feature-map location, drawn over a photo.

    ``update(sizes=..., ratios=..., stride=..., row=..., col=...)`` changes the settings and
    redraws; moving a slider calls the same method. The numbers come from plain properties:
    ``anchors`` (torchvision's ``AnchorGenerator`` shapes at the current location), ``grid_size``,
    ``center``, ``total_anchors``, ``best_iou()`` (this location), ``best_iou_anywhere()`` (every
    location); ``summary()`` is the text under the picture.

    Sizes and ratios are picked in the widget as contiguous ranges of ``SIZE_CHOICES`` and
    ``RATIO_CHOICES`` (range sliders); ``update`` accepts any positive values.

    Args:
        image: the photo, a float/uint8 array [H, W, 3] or a float tensor [3, H, W].
        target_box: optional (x1, y1, x2, y2) of an object in the photo: it is drawn, and
            ``best_iou()`` reports the best IoU of the current anchors with it.
        sizes, ratios, stride: the starting settings.
        row, col: the starting location; default the middle of the feature map.

    Attributes:
        state: the current ``ExplorerState``.
        sliders: dict of ipywidgets (``sizes``, ``ratios``, ``stride``, ``row``, ``col``).
        picture: ``ipywidgets.Image`` with the JPEG of the anchors over the photo (``render()``).
        label: ``ipywidgets.HTML`` with ``summary()``.
        widget: the whole panel (display it, or put the explorer last in a cell).
        figure, ax: the matplotlib figure and axes the picture is drawn on.
    """

    def __init__(
        self,
        image: Any,
        *,
        target_box: Sequence[float] | None = None,
        sizes: Sequence[int] = (32, 64, 128),
        ratios: Sequence[float] = (0.5, 1.0, 2.0),
        stride: int = 16,
        row: int | None = None,
        col: int | None = None,
        figsize: tuple[float, float] = (5.5, 5.5),
    ):
        import ipywidgets as widgets
        from matplotlib.figure import Figure

        self.image = _as_image(image)
        self.height, self.width = self.image.shape[:2]
        self.target_box = None
        if target_box is not None:
            self.target_box = _as_boxes(torch.tensor([list(target_box)], dtype=torch.float32), "target_box")
        self.state = self._validated(ExplorerState(tuple(sizes), tuple(ratios), stride, 0, 0))
        rows, cols = self.grid_size
        self.state = self._validated(
            replace(self.state, row=rows // 2 if row is None else row, col=cols // 2 if col is None else col)
        )
        self.figure = Figure(figsize=figsize, dpi=100)
        self.ax = self.figure.add_subplot()
        self._busy = False
        st = self.state
        self.sliders: dict[str, Any] = {
            "sizes": widgets.SelectionRangeSlider(
                options=list(SIZE_CHOICES), index=_range_index(SIZE_CHOICES, st.sizes), description="sizes"
            ),
            "ratios": widgets.SelectionRangeSlider(
                options=list(RATIO_CHOICES),
                index=_range_index(RATIO_CHOICES, st.ratios),
                description="ratio h/w",
            ),
            "stride": widgets.SelectionSlider(
                options=list(STRIDE_CHOICES), value=_nearest(STRIDE_CHOICES, st.stride), description="stride"
            ),
            "row": widgets.IntSlider(min=0, max=rows - 1, value=st.row, description="row"),
            "col": widgets.IntSlider(min=0, max=cols - 1, value=st.col, description="col"),
        }
        for name, slider in self.sliders.items():
            slider.observe(lambda change, name=name: self._on_slider(name, change["new"]), names="value")
        self.picture = widgets.Image(format="jpeg")
        self.label = widgets.HTML()
        controls = widgets.VBox([self.sliders[k] for k in ("sizes", "ratios", "stride", "row", "col")])
        self.widget = widgets.HBox([self.picture, widgets.VBox([controls, self.label])])
        self.refresh()

    # ---- the numbers ------------------------------------------------------------------------

    @property
    def grid_size(self) -> tuple[int, int]:
        """(rows, cols) of the feature map: ``ceil(H / stride), ceil(W / stride)``."""
        s = self.state.stride
        return math.ceil(self.height / s), math.ceil(self.width / s)

    @property
    def center(self) -> tuple[float, float]:
        """The (x, y) pixel the current location's anchors are centred on: (col, row) x stride."""
        return float(self.state.col * self.state.stride), float(self.state.row * self.state.stride)

    @property
    def anchors_per_location(self) -> int:
        return len(self.state.sizes) * len(self.state.ratios)

    @property
    def total_anchors(self) -> int:
        """How many anchors the whole photo gets with these settings (one feature map)."""
        rows, cols = self.grid_size
        return rows * cols * self.anchors_per_location

    @property
    def anchors(self) -> Tensor:
        """The anchors at the current location: float32 [anchors_per_location, 4], XYXY."""
        return anchors_at(self.center, self.state.sizes, self.state.ratios)

    def best_iou(self) -> float | None:
        """The best IoU of the current location's anchors with ``target_box`` (None without one)."""
        if self.target_box is None:
            return None
        return float(box_iou(self.target_box, self.anchors).max())

    def best_iou_anywhere(self) -> float | None:
        """The best IoU with ``target_box`` of any anchor of the whole feature map, every location
        (``grid_anchors``) and not only the current one (None without a target box)."""
        if self.target_box is None:
            return None
        every = grid_anchors((self.height, self.width), self.state.stride, self.state.sizes, self.state.ratios)
        return float(box_iou(self.target_box, every).max())

    def summary(self) -> str:
        """The numbers under the picture, one per line."""
        rows, cols = self.grid_size
        x, y = self.center
        shapes = anchor_shapes(self.state.sizes, self.state.ratios).tolist()
        lines = [
            f"feature map: {rows} x {cols} locations (stride {self.state.stride})",
            f"location: row {self.state.row}, col {self.state.col} -> centre ({x:.0f}, {y:.0f}) px",
            f"{self.anchors_per_location} anchors per location (w x h): "
            + ", ".join(f"{w:.0f}x{h:.0f}" for w, h in shapes),
            f"{self.total_anchors:,} anchors over the {self.height} x {self.width} photo",
        ]
        best = self.best_iou()
        if best is not None:
            lines.append(f"best IoU with the object, this location: {best:.2f}")
            lines.append(f"best IoU with the object, any location: {self.best_iou_anywhere():.2f}")
        return "\n".join(lines)

    # ---- changing the settings --------------------------------------------------------------

    def _validated(self, state: ExplorerState) -> ExplorerState:
        sizes, ratios = _check_sizes_ratios(state.sizes, state.ratios)
        stride = state.stride
        if not isinstance(stride, int) or isinstance(stride, bool) or stride <= 0:
            raise ValueError(f"stride must be a positive int, got {stride!r}")
        rows, cols = math.ceil(self.height / stride), math.ceil(self.width / stride)
        for name, value, limit in (("row", state.row, rows), ("col", state.col, cols)):
            if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < limit:
                raise ValueError(
                    f"{name} must be an int in [0, {limit - 1}] for stride {stride}, got {value!r}"
                )
        return ExplorerState(tuple(sizes), tuple(float(r) for r in ratios), stride, state.row, state.col)

    def update(self, **changes: Any) -> ExplorerState:
        """Change some settings (``sizes``, ``ratios``, ``stride``, ``row``, ``col``) and redraw.

        A new stride given without a new location keeps the anchors' centre where it was, moved
        to the nearest location of the new grid. Returns the new state. A bad value raises
        ``ValueError`` naming the setting, and the state stays as it was.
        """
        unknown = sorted(set(changes) - {"sizes", "ratios", "stride", "row", "col"})
        if unknown:
            raise ValueError(
                f"unknown setting(s) {unknown}; the settings are sizes, ratios, stride, row, col"
            )
        new = replace(self.state, **changes)
        stride = new.stride
        if "stride" in changes and isinstance(stride, int) and stride > 0 and stride != self.state.stride:
            x, y = self.center
            rows, cols = math.ceil(self.height / stride), math.ceil(self.width / stride)
            if "row" not in changes:
                new = replace(new, row=min(rows - 1, round(y / stride)))
            if "col" not in changes:
                new = replace(new, col=min(cols - 1, round(x / stride)))
        self.state = self._validated(new)
        self._sync_sliders()
        self.refresh()
        return self.state

    def refresh(self) -> None:
        """Redraw the picture and the summary from the current state."""
        self.draw()
        self.label.value = "<pre style='line-height:1.3'>" + html.escape(self.summary()) + "</pre>"
        self.picture.value = self.render()

    # ---- drawing ----------------------------------------------------------------------------

    def draw(self) -> Any:
        """Draw the photo, the feature map's anchor centres, the current anchors and the object.

        Boxes are drawn with ``course_utils.viz.draw_boxes``: one rectangle per anchor, coloured by
        aspect ratio, then the object (dashed white) on top, so ``ax.patches`` holds the K anchors
        followed by the object when there is one.
        """
        from matplotlib.lines import Line2D

        from .viz import class_colour, draw_boxes

        ax = self.ax
        ax.clear()
        ax.imshow(self.image, extent=(0, self.width, self.height, 0), interpolation="nearest")
        rows, cols = self.grid_size
        s = self.state.stride
        if rows * cols <= 4096:  # every location's centre as a dot (skipped when too dense to see)
            ys, xs = np.meshgrid(np.arange(rows) * s, np.arange(cols) * s, indexing="ij")
            ax.scatter(xs.ravel(), ys.ravel(), s=3, c="white", alpha=0.6, linewidths=0)
        names = ("",) + tuple(f"ratio {r:g}" for r in self.state.ratios)
        ratio_index = torch.arange(1, len(self.state.ratios) + 1).repeat_interleave(len(self.state.sizes))
        draw_boxes(ax, None, self.anchors, ratio_index, class_names=names, linewidth=1.8, show_text=False)
        handles = [Line2D([], [], color=class_colour(i), lw=2, label=names[i]) for i in range(1, len(names))]
        if self.target_box is not None:
            anchor_patches = list(ax.patches)
            best = int(box_iou(self.target_box, self.anchors)[0].argmax())
            for k, patch in enumerate(anchor_patches):  # the best anchor thick, the others faint
                patch.set_alpha(1.0 if k == best else 0.45)
                patch.set_linewidth(4.0 if k == best else 1.4)
                patch.set_zorder(4 if k == best else 2)
            draw_boxes(ax, None, self.target_box, linewidth=2.5, show_text=False)
            ax.patches[-1].set_edgecolor("white")
            ax.patches[-1].set_linestyle("--")
            ax.patches[-1].set_zorder(5)  # the object on top of every anchor
            handles.append(Line2D([], [], color="grey", lw=4, label="best anchor here (thick)"))
            handles.append(Line2D([], [], color="white", lw=2, linestyle="--", label="object"))
        legend = ax.legend(handles=handles, loc="lower left", fontsize=9, framealpha=0.6)
        legend.get_frame().set_facecolor("#333333")
        for text in legend.get_texts():
            text.set_color("white")
        x, y = self.center
        ax.plot([x], [y], marker="+", color="yellow", markersize=12, markeredgewidth=2)
        ax.set_axis_on()
        ax.set_xlim(0, self.width)
        ax.set_ylim(self.height, 0)
        ax.set_xlabel("x (pixels)")
        ax.set_ylabel("y (pixels)")
        ratios = "/".join(f"{r:g}" for r in self.state.ratios)
        ax.set_title(f"sizes {list(self.state.sizes)}, ratios h/w {ratios}, stride {s}", fontsize=11)
        self.figure.tight_layout()
        return self.figure

    def render(self) -> bytes:
        """The current picture as JPEG bytes (a photo compresses far better as JPEG than as PNG).

        ``IPython.display.Image(explorer.render())`` shows it outside the widget.
        """
        buffer = io.BytesIO()
        self.figure.savefig(buffer, format="jpeg", dpi=self.figure.dpi, pil_kwargs={"quality": 85})
        return buffer.getvalue()

    # ---- widget plumbing --------------------------------------------------------------------

    def _on_slider(self, name: str, value: Any) -> None:
        """A slider moved: ``update`` with every slider's setting (row/col only from the one that moved)."""
        if self._busy:
            return
        s = self.sliders
        location = {name: int(value)} if name in ("row", "col") else {}
        self.update(
            sizes=_range_values(SIZE_CHOICES, s["sizes"].index),
            ratios=_range_values(RATIO_CHOICES, s["ratios"].index),
            stride=int(s["stride"].value),
            **location,
        )

    def _sync_sliders(self) -> None:
        """Bring the sliders in line with the state (without triggering updates)."""
        self._busy = True
        try:
            st, s = self.state, self.sliders
            if all(v in SIZE_CHOICES for v in st.sizes):
                s["sizes"].index = _range_index(SIZE_CHOICES, st.sizes)
            if all(v in RATIO_CHOICES for v in st.ratios):
                s["ratios"].index = _range_index(RATIO_CHOICES, st.ratios)
            if st.stride in STRIDE_CHOICES:
                s["stride"].value = st.stride
            rows, cols = self.grid_size
            for name, limit in (("row", rows), ("col", cols)):
                slider = s[name]
                slider.max = max(limit - 1, slider.value)  # widen first so the new value fits
                slider.value = getattr(st, name)
                slider.max = limit - 1
        finally:
            self._busy = False

    def _ipython_display_(self) -> None:
        from .viz import display_with_picture

        display_with_picture(self.widget, self.render(), "image/jpeg")


def _range_index(choices: Sequence[float], values: Sequence[float]) -> tuple[int, int]:
    idx = [choices.index(_nearest(choices, v)) for v in values]
    return min(idx), max(idx)


def _range_values(choices: Sequence[float], index: tuple[int, int]) -> tuple:
    return tuple(choices[index[0] : index[1] + 1])


def _nearest(choices: Sequence[float], value: float) -> Any:
    return min(choices, key=lambda c: abs(math.log(c) - math.log(value)))


def _as_image(image: Any) -> np.ndarray:
    """A photo as float32 [H, W, 3] in [0, 1] (from uint8/float [H, W, 3] or [H, W], or a tensor [3, H, W])."""
    if isinstance(image, Tensor):
        if image.ndim != 3 or image.shape[0] not in (1, 3):
            raise ValueError(f"image tensor must have shape [3, H, W], got {tuple(image.shape)}")
        image = image.detach().float().cpu().expand(3, -1, -1).permute(1, 2, 0).numpy()
    image = np.asarray(image)
    if image.ndim == 2:
        image = np.stack([image] * 3, axis=-1)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(
            f"image must be an array [H, W, 3] or [H, W] (or a tensor [3, H, W]), got {image.shape}"
        )
    if image.dtype == np.uint8:
        return image.astype(np.float32) / 255.0
    check_pixel_range(image, "image")  # a 0..255 float image would be clipped to white
    return np.clip(image.astype(np.float32), 0.0, 1.0)
