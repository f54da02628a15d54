"""Interactive playgrounds for lessons 02 and 03: an IoU playground and an NMS explorer.

Both are ipywidgets panels whose logic lives in plain methods, so a test (or a notebook cell)
can drive them without a browser:

    >>> playground = IoUPlayground(box_a=(20, 20, 60, 60), box_b=(40, 30, 50, 50))
    >>> playground.update(b_x=45)          # move box B, as its slider would
    >>> playground.iou, playground.label.value

    >>> explorer = NMSExplorer(image, boxes, scores, labels)
    >>> explorer.update(iou_threshold=0.3, score_threshold=0.5)
    >>> explorer.kept                      # indices into ``boxes`` that survive

Moving a slider runs the same logic (``refresh``). The picture is drawn with matplotlib (boxes
by ``course_utils.viz.draw_boxes``) into an ``ipywidgets.Image`` (PNG), which renders in
JupyterLab, classic Jupyter and Colab alike. The computations are torchvision's (``box_iou``, ``generalized_box_iou``, ``nms``,
``batched_nms``); the lessons write their own versions and check them against these.

``select_detections`` is the post-processing the explorer runs (score threshold, NMS, top-k),
and ``jittered_candidates`` makes the crowded set of near-duplicate candidate boxes that a
detector produces before NMS, for lessons that need one without training a detector first.
"""

from __future__ import annotations

import html
import io
import warnings
from collections.abc import Sequence
from typing import Any

import torch
from matplotlib import patheffects
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from torch import Tensor
from torchvision.ops import batched_nms, box_iou, clip_boxes_to_image, generalized_box_iou, nms

from .boxes import as_box_tensor
from .data import CLASSES
from .images import check_pixel_range
from .viz import draw_boxes

BoxLike = Sequence[float]
# The IoU playground's intersection: orange of the Okabe-Ito palette, hatched, apart from the colours of
# boxes A and B (classes 1 and 2 in course_utils.viz.class_colour).
_INTERSECTION = "#E69F00"


# --------------------------------------------------------------------------------------------
# Pure helpers (no widgets)
# --------------------------------------------------------------------------------------------


def _as_box(value: BoxLike, name: str) -> tuple[float, float, float, float]:
    """Check one (x1, y1, x2, y2) box given as a sequence of 4 numbers."""
    try:
        box = tuple(float(v) for v in value)
    except TypeError as err:
        raise TypeError(f"{name} must be a sequence of 4 numbers (x1, y1, x2, y2), got {value!r}") from err
    if len(box) != 4:
        raise ValueError(f"{name} must hold 4 numbers (x1, y1, x2, y2), got {len(box)}: {value!r}")
    if not (box[2] > box[0] and box[3] > box[1]):
        raise ValueError(f"{name} must have x2 > x1 and y2 > y1 (a box of positive size), got {box}")
    return box  # type: ignore[return-value]


def select_detections(
    boxes: Tensor,
    scores: Tensor,
    labels: Tensor | None = None,
    *,
    score_threshold: float = 0.05,
    iou_threshold: float = 0.5,
    class_aware: bool = True,
    top_k: int | None = None,
) -> Tensor:
    """Post-process a detector's candidates: score threshold, then NMS, then keep the top k.

    Args:
        boxes: float [N, 4] candidate boxes, (x1, y1, x2, y2) in pixels.
        scores: float [N] confidence of each candidate.
        labels: int64 [N] class of each candidate, or None (one class).
        score_threshold: candidates with ``score < score_threshold`` are dropped first.
        iou_threshold: NMS removes a box whose IoU with a higher-scored kept box is ``> iou_threshold``.
        class_aware: run NMS per class (``torchvision.ops.batched_nms``), so that boxes of different
            classes never suppress each other; False runs one NMS over all classes.
        top_k: keep at most this many detections (the highest scores), or None for all.

    Returns:
        int64 [K] indices into ``boxes``, in decreasing order of score.
    """
    boxes = as_box_tensor(boxes, "boxes", valid=True, allow_empty=True).detach().cpu()
    scores = torch.as_tensor(scores).detach().float().cpu()
    if scores.shape != (boxes.shape[0],):
        raise ValueError(
            f"scores must have shape [{boxes.shape[0]}] (one per box), got {tuple(scores.shape)}"
        )
    if not torch.isfinite(scores).all():
        raise ValueError("scores must be finite numbers; NaN or infinite scores have no order for NMS")
    if labels is not None:
        labels = torch.as_tensor(labels).detach().cpu()
        if labels.shape != (boxes.shape[0],):
            raise ValueError(
                f"labels must have shape [{boxes.shape[0]}] (one per box), got {tuple(labels.shape)}"
            )
    if not 0.0 <= iou_threshold <= 1.0:
        raise ValueError(f"iou_threshold must lie in [0, 1], got {iou_threshold}")
    if top_k is not None and top_k < 0:
        raise ValueError(f"top_k must be None or >= 0, got {top_k}")
    candidates = torch.nonzero(scores >= score_threshold).flatten()
    if class_aware and labels is not None:
        keep = batched_nms(boxes[candidates], scores[candidates], labels[candidates], iou_threshold)
    else:
        keep = nms(boxes[candidates], scores[candidates], iou_threshold)
    kept = candidates[keep]
    if top_k is not None:
        kept = kept[:top_k]
    return kept


def jittered_candidates(
    boxes: Tensor,
    labels: Tensor,
    *,
    per_object: int = 20,
    jitter: float = 0.15,
    n_background: int = 10,
    image_size: tuple[int, int] | int = 128,
    wrong_class_fraction: float = 0.0,
    num_classes: int = 4,
    generator: torch.Generator | None = None,
) -> dict[str, Tensor]:
    """Simulate a detector's raw output: many near-duplicate boxes around every object.

    Around each ground-truth box, ``per_object`` candidates are made by moving its corners by
    up to ``jitter`` times the box's width/height (uniform noise). Each candidate's score grows
    with its IoU with the object, ``sigmoid(6 * (IoU - 0.5 + noise))`` with Gaussian noise of
    standard deviation 0.1, so tight boxes score higher, as in a trained detector, and no two
    scores tie. ``n_background`` extra boxes are placed at random with low scores (false alarms).

    Args:
        boxes: float [M, 4] ground-truth boxes (x1, y1, x2, y2) in pixels.
        labels: int64 [M] their classes (1..num_classes-1).
        per_object: candidates per object.
        jitter: how far the corners move, as a fraction of the box size.
        n_background: random false-alarm boxes.
        image_size: H and W (int) or (H, W); candidates are clipped to the image.
        wrong_class_fraction: share of an object's candidates that carry a different class.
        num_classes: number of classes including background 0 (for wrong/background labels).
        generator: a ``torch.Generator`` for repeatable candidates.

    Returns:
        dict with ``boxes`` float [K, 4], ``scores`` float [K] in (0, 1), ``labels`` int64 [K] and
        ``object_index`` int64 [K] (the ground-truth object a candidate came from, -1 for a
        false alarm), with K = M * per_object + n_background.
    """
    gt = as_box_tensor(boxes, "boxes", valid=True).detach().cpu()
    labels = torch.as_tensor(labels).long().cpu()
    if labels.shape != (gt.shape[0],):
        raise ValueError(f"labels must have shape [{gt.shape[0]}] (one per box), got {tuple(labels.shape)}")
    if per_object < 0 or n_background < 0:
        raise ValueError(f"per_object and n_background must be >= 0, got {per_object}, {n_background}")
    if not 0.0 <= wrong_class_fraction <= 1.0:
        raise ValueError(f"wrong_class_fraction must lie in [0, 1], got {wrong_class_fraction}")
    if num_classes < 2:
        raise ValueError(f"num_classes must count the background and at least one class, got {num_classes}")
    height, width = (image_size, image_size) if isinstance(image_size, int) else image_size
    g = generator
    m = gt.shape[0]
    size = (gt[:, 2:] - gt[:, :2]).repeat_interleave(per_object, dim=0).repeat(1, 2)
    noise = (torch.rand(m * per_object, 4, generator=g) * 2 - 1) * jitter * size
    near = clip_boxes_to_image(gt.repeat_interleave(per_object, dim=0) + noise, (height, width))
    near_labels = labels.repeat_interleave(per_object)
    n_wrong = round(wrong_class_fraction * per_object)
    if n_wrong and num_classes > 2:
        wrong = (torch.arange(m * per_object) % per_object) < n_wrong
        shift = torch.randint(1, num_classes - 1, (m * per_object,), generator=g)
        moved = (near_labels - 1 + shift) % (num_classes - 1) + 1
        near_labels = torch.where(wrong, moved, near_labels)
    object_index = torch.arange(m).repeat_interleave(per_object)
    if m * per_object:
        overlap = box_iou(near, gt)[torch.arange(m * per_object), object_index]
    else:
        overlap = torch.zeros(0)
    near_scores = torch.sigmoid(6.0 * (overlap - 0.5 + 0.1 * torch.randn(m * per_object, generator=g)))

    corner = torch.rand(n_background, 2, generator=g) * torch.tensor([width * 0.8, height * 0.8])
    extent = (0.08 + 0.2 * torch.rand(n_background, 2, generator=g)) * torch.tensor([width, height])
    far = clip_boxes_to_image(torch.cat([corner, corner + extent], dim=1), (height, width))
    far_scores = 0.05 + 0.3 * torch.rand(n_background, generator=g)
    far_labels = torch.randint(1, num_classes, (n_background,), generator=g)
    return {
        "boxes": torch.cat([near, far]),
        "scores": torch.cat([near_scores, far_scores]),
        "labels": torch.cat([near_labels, far_labels]),
        "object_index": torch.cat([object_index, torch.full((n_background,), -1, dtype=torch.long)]),
    }


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=fig.dpi)
    return buffer.getvalue()


def _check_image(image: Tensor | None) -> Tensor | None:
    """A [3, H, W] float image in [0, 1], detached on the CPU (None stays None)."""
    if image is None:
        return None
    if not isinstance(image, Tensor) or image.dim() != 3 or image.shape[0] not in (1, 3):
        shape = tuple(image.shape) if isinstance(image, Tensor) else type(image).__name__
        raise ValueError(f"image must be a float tensor of shape [3, H, W] (or [1, H, W]), got {shape}")
    check_pixel_range(image, "image")  # clamping a 0..255 float image would turn it white
    return image.detach().float().cpu().clamp(0, 1).expand(3, -1, -1).as_subclass(Tensor)


# --------------------------------------------------------------------------------------------
# IoU playground
# --------------------------------------------------------------------------------------------


class IoUPlayground:
    """Two boxes on a canvas: sliders move and resize them, the IoU and the picture follow.

    The sliders hold each box as ``x, y`` (top-left corner) and ``w, h`` (size), in pixels;
    the boxes themselves are kept as (x1, y1, x2, y2), the format torchvision's ops take.

    Attributes:
        box_a, box_b: the boxes now, (x1, y1, x2, y2) tuples of floats.
        iou: their IoU (``torchvision.ops.box_iou``), a float in [0, 1].
        giou: their generalized IoU (``torchvision.ops.generalized_box_iou``), in [-1, 1].
        sliders: dict of ``ipywidgets.IntSlider`` named ``a_x, a_y, a_w, a_h, b_x, b_y, b_w, b_h``.
        label: ``ipywidgets.HTML`` with the readable result (IoU, GIoU, areas).
        picture: ``ipywidgets.Image`` holding the PNG of the two boxes and their intersection.
        widget: the whole panel (display it, or just put the playground last in a cell).
    """

    def __init__(
        self,
        box_a: BoxLike = (24, 24, 72, 72),
        box_b: BoxLike = (48, 40, 104, 96),
        *,
        canvas_size: int = 128,
        image: Tensor | None = None,
        figsize: tuple[float, float] = (4.0, 4.0),
    ):
        import ipywidgets as widgets

        if image is not None:
            canvas_size = int(max(image.shape[-2:]))
        if not isinstance(canvas_size, int) or canvas_size < 8:
            raise ValueError(f"canvas_size must be an int >= 8 (pixels), got {canvas_size!r}")
        self.canvas_size = canvas_size
        self._image = _check_image(image)
        self.box_a = _as_box(box_a, "box_a")
        self.box_b = _as_box(box_b, "box_b")
        self.iou = 0.0
        self.giou = 0.0
        self._figure = Figure(figsize=figsize, dpi=100)
        self.sliders: dict[str, Any] = {}
        for name, box in (("a", self.box_a), ("b", self.box_b)):
            x1, y1, x2, y2 = box
            if min(box) < 0 or x2 - x1 > canvas_size or y2 - y1 > canvas_size or max(x1, y1) > canvas_size:
                raise ValueError(
                    f"box_{name} {box} does not fit the sliders of a {canvas_size}-px canvas: x and y must lie "
                    f"in [0, {canvas_size}], the width and height in [1, {canvas_size}]"
                )
            if any(v != round(v) for v in box):
                warnings.warn(
                    f"box_{name} {box}: the sliders move in whole pixels; its corners were rounded",
                    stacklevel=2,
                )
            for part, value, low in (("x", x1, 0), ("y", y1, 0), ("w", x2 - x1, 1), ("h", y2 - y1, 1)):
                self.sliders[f"{name}_{part}"] = widgets.IntSlider(
                    value=round(value),
                    min=low,
                    max=canvas_size,
                    description=f"{name.upper()} {part}",
                    continuous_update=True,
                    layout={"width": "260px"},
                )
        self._busy = False
        for slider in self.sliders.values():
            slider.observe(self._on_slider, names="value")
        self.label = widgets.HTML()
        self.picture = widgets.Image(format="png")
        column_a = widgets.VBox([widgets.HTML("<b>Box A</b>")] + [self.sliders[f"a_{p}"] for p in "xywh"])
        column_b = widgets.VBox([widgets.HTML("<b>Box B</b>")] + [self.sliders[f"b_{p}"] for p in "xywh"])
        self.widget = widgets.HBox([self.picture, widgets.VBox([column_a, column_b, self.label])])
        self.refresh()

    # -- logic -------------------------------------------------------------------------------

    def update(self, **values: float) -> float:
        """Set slider values by name (e.g. ``update(b_x=50, b_w=20)``), recompute and redraw.

        Returns:
            the new IoU.

        Raises:
            KeyError: a name is not one of ``a_x, a_y, a_w, a_h, b_x, b_y, b_w, b_h``.
        """
        unknown = sorted(set(values) - set(self.sliders))
        if unknown:
            raise KeyError(f"unknown slider(s) {unknown}; the sliders are {sorted(self.sliders)}")
        for name, value in values.items():
            slider = self.sliders[name]
            if not slider.min <= round(value) <= slider.max:
                raise ValueError(f"{name}={value} is outside the slider's range [{slider.min}, {slider.max}]")
        self._busy = True  # one recompute for the whole batch, not one per slider
        try:
            for name, value in values.items():
                self.sliders[name].value = round(value)
        finally:
            self._busy = False
        return self.refresh()

    def set_boxes(self, box_a: BoxLike | None = None, box_b: BoxLike | None = None) -> float:
        """Place the boxes by their corners (x1, y1, x2, y2); returns the new IoU."""
        values: dict[str, float] = {}
        for name, box in (("a", box_a), ("b", box_b)):
            if box is not None:
                x1, y1, x2, y2 = _as_box(box, f"box_{name}")
                values.update({f"{name}_x": x1, f"{name}_y": y1, f"{name}_w": x2 - x1, f"{name}_h": y2 - y1})
        return self.update(**values)

    def refresh(self) -> float:
        """Read the sliders, recompute IoU and GIoU, redraw the picture and the label."""
        s = {name: float(slider.value) for name, slider in self.sliders.items()}
        self.box_a = (s["a_x"], s["a_y"], s["a_x"] + s["a_w"], s["a_y"] + s["a_h"])
        self.box_b = (s["b_x"], s["b_y"], s["b_x"] + s["b_w"], s["b_y"] + s["b_h"])
        pair = torch.tensor([self.box_a, self.box_b])
        self.iou = float(box_iou(pair[:1], pair[1:])[0, 0])
        self.giou = float(generalized_box_iou(pair[:1], pair[1:])[0, 0])
        self.label.value = self.describe()
        self.picture.value = self.render()
        return self.iou

    def describe(self) -> str:
        """The label's text (HTML): IoU, GIoU, the intersection and the union."""
        inter, union = self.intersection_and_union()
        return (
            f"<b>IoU = {self.iou:.3f}</b> &nbsp; GIoU = {self.giou:.3f}<br>"
            f"intersection {inter:.0f} px² / union {union:.0f} px²<br>"
            f"A = {_fmt(self.box_a)}<br>B = {_fmt(self.box_b)}"
        )

    def intersection_and_union(self) -> tuple[float, float]:
        """Areas (in px²) of the intersection and the union of the two boxes."""
        (ax1, ay1, ax2, ay2), (bx1, by1, bx2, by2) = self.box_a, self.box_b
        inter = max(0.0, min(ax2, bx2) - max(ax1, bx1)) * max(0.0, min(ay2, by2) - max(ay1, by1))
        union = (ax2 - ax1) * (ay2 - ay1) + (bx2 - bx1) * (by2 - by1) - inter
        return inter, union

    # -- drawing -----------------------------------------------------------------------------

    def render(self) -> bytes:
        """Draw both boxes, their intersection (hatched) and the smallest enclosing box C (dashed)."""
        fig = self._figure
        fig.clear()
        ax = fig.subplots()
        size = self.canvas_size
        (ax1, ay1, ax2, ay2), (bx1, by1, bx2, by2) = self.box_a, self.box_b
        ex1, ey1, ex2, ey2 = min(ax1, bx1), min(ay1, by1), max(ax2, bx2), max(ay2, by2)
        ix1, iy1, ix2, iy2 = max(ax1, bx1), max(ay1, by1), min(ax2, bx2), min(ay2, by2)
        if ix2 > ix1 and iy2 > iy1:
            ax.add_patch(
                Rectangle((ix1, iy1), ix2 - ix1, iy2 - iy1, fc=_INTERSECTION, ec="black", alpha=0.6, lw=0, hatch="//")
            )
        draw_boxes(ax, self._image, [self.box_a, self.box_b], [1, 2], class_names=("", "A", "B"), fontsize=10)
        enclosing = Rectangle((ex1, ey1), ex2 - ex1, ey2 - ey1, fill=False, ls="--", ec="white", lw=1.5)
        enclosing.set_path_effects([patheffects.withStroke(linewidth=3, foreground="black")])
        ax.add_patch(enclosing)  # drawn last, so that the boxes' outlines do not hide it
        ax.set_axis_on()
        ax.set_xlim(0, size)
        ax.set_ylim(size, 0)  # image convention: y grows downwards
        ax.set_title(
            f"IoU = {self.iou:.3f}   GIoU = {self.giou:.3f}\n"
            "hatched: intersection   dashed: enclosing box C",
            fontsize=10,
        )
        ax.set_xlabel("x (pixels)")
        ax.set_ylabel("y (pixels)")
        ax.set_aspect("equal")
        fig.tight_layout()
        return _png(fig)

    # -- widget plumbing ---------------------------------------------------------------------

    def _on_slider(self, change: dict[str, Any]) -> None:
        if not self._busy:
            self.refresh()

    def _ipython_display_(self) -> None:
        from .viz import display_with_picture

        display_with_picture(self.widget, self.render(), "image/png")


def _fmt(box: Sequence[float]) -> str:
    return "(" + ", ".join(f"{v:g}" for v in box) + ")"


# --------------------------------------------------------------------------------------------
# NMS explorer
# --------------------------------------------------------------------------------------------


class NMSExplorer:
    """Candidate boxes over an image; sliders set the score and IoU thresholds, NMS runs live.

    Kept boxes are drawn with ``course_utils.viz.draw_boxes`` (class colour, name and score);
    boxes removed by NMS are drawn as thin dashed grey lines; boxes under the score threshold are
    not drawn. ``class_names`` (default ``course_utils.data.CLASSES``) names the labels.

    Attributes:
        kept: int64 [K] indices into ``boxes`` of the detections that survive, by decreasing score.
        n_below_score: how many candidates the score threshold removed.
        n_suppressed: how many of the rest NMS removed.
        sliders: dict with ``iou_threshold`` and ``score_threshold`` (``ipywidgets.FloatSlider``).
        class_aware: ``ipywidgets.Checkbox`` (per-class NMS); disabled when no labels are given.
        label: ``ipywidgets.HTML`` with the readable counts.
        picture: ``ipywidgets.Image`` (PNG).
        widget: the whole panel.
    """

    def __init__(
        self,
        image: Tensor | None,
        boxes: Tensor,
        scores: Tensor,
        labels: Tensor | None = None,
        *,
        iou_threshold: float = 0.5,
        score_threshold: float = 0.05,
        class_aware: bool = True,
        class_names: Sequence[str] = CLASSES,
        canvas_size: tuple[int, int] | None = None,
        figsize: tuple[float, float] = (5.0, 5.0),
    ):
        import ipywidgets as widgets

        self.boxes = as_box_tensor(boxes, "boxes", valid=True, allow_empty=True).detach().cpu()
        n = self.boxes.shape[0]
        self.scores = torch.as_tensor(scores).detach().float().cpu()
        if self.scores.shape != (n,):
            raise ValueError(f"scores must have shape [{n}] (one per box), got {tuple(self.scores.shape)}")
        self.labels = None if labels is None else torch.as_tensor(labels).detach().long().cpu()
        if self.labels is not None and self.labels.shape != (n,):
            raise ValueError(f"labels must have shape [{n}] (one per box), got {tuple(self.labels.shape)}")
        self.class_names = tuple(class_names)
        self._image = _check_image(image)
        if self._image is not None:
            self.canvas_size = (int(self._image.shape[1]), int(self._image.shape[2]))
        elif canvas_size is not None:
            self.canvas_size = (int(canvas_size[0]), int(canvas_size[1]))
        else:
            edge = float(self.boxes[:, 2:].max()) if n else 128.0
            self.canvas_size = (round(edge), round(edge))
        self.kept = torch.zeros(0, dtype=torch.long)
        self.n_below_score = 0
        self.n_suppressed = 0
        self._figure = Figure(figsize=figsize, dpi=100)
        self._busy = False
        self.sliders = {
            "iou_threshold": widgets.FloatSlider(
                value=iou_threshold, min=0.0, max=1.0, step=0.05, description="IoU thr."
            ),
            "score_threshold": widgets.FloatSlider(
                value=score_threshold, min=0.0, max=1.0, step=0.05, description="score thr."
            ),
        }
        self.class_aware = widgets.Checkbox(
            value=bool(class_aware and self.labels is not None),
            description="per-class NMS",
            disabled=self.labels is None,
        )
        for control in (*self.sliders.values(), self.class_aware):
            control.observe(self._on_change, names="value")
        self.label = widgets.HTML()
        self.picture = widgets.Image(format="png")
        controls = widgets.VBox([*self.sliders.values(), self.class_aware, self.label])
        self.widget = widgets.HBox([self.picture, controls])
        self.refresh()

    def update(
        self,
        iou_threshold: float | None = None,
        score_threshold: float | None = None,
        class_aware: bool | None = None,
    ) -> Tensor:
        """Set the controls (as the sliders would), rerun the post-processing and redraw.

        Returns:
            ``kept``, the surviving indices into ``boxes``.
        """
        self._busy = True
        try:
            if iou_threshold is not None:
                self.sliders["iou_threshold"].value = float(iou_threshold)
            if score_threshold is not None:
                self.sliders["score_threshold"].value = float(score_threshold)
            if class_aware is not None:
                if class_aware and self.labels is None:
                    raise ValueError("class_aware=True needs labels; this explorer was built without them")
                self.class_aware.value = bool(class_aware)
        finally:
            self._busy = False
        return self.refresh()

    def refresh(self) -> Tensor:
        """Read the controls, run score threshold + NMS, update ``kept``, the label and the picture."""
        iou_thr = float(self.sliders["iou_threshold"].value)
        score_thr = float(self.sliders["score_threshold"].value)
        self.kept = select_detections(
            self.boxes,
            self.scores,
            self.labels,
            score_threshold=score_thr,
            iou_threshold=iou_thr,
            class_aware=bool(self.class_aware.value),
        )
        above = int((self.scores >= score_thr).sum())
        self.n_below_score = self.boxes.shape[0] - above
        self.n_suppressed = above - self.kept.numel()
        self.label.value = self.describe()
        self.picture.value = self.render()
        return self.kept

    def describe(self) -> str:
        """The label's text (HTML): how many candidates each step removed."""
        mode = "per class" if self.class_aware.value else "all classes together"
        return (
            f"<b>kept {self.kept.numel()} of {self.boxes.shape[0]} candidates</b><br>"
            f"{self.n_below_score} under the score threshold "
            f"{float(self.sliders['score_threshold'].value):.2f}<br>"
            f"{self.n_suppressed} suppressed by NMS at IoU &gt; "
            f"{float(self.sliders['iou_threshold'].value):.2f} ({html.escape(mode)})"
        )

    def render(self) -> bytes:
        """Draw the suppressed candidates (dashed grey) and the kept ones (class colour + score)."""
        fig = self._figure
        fig.clear()
        ax = fig.subplots()
        height, width = self.canvas_size
        score_thr = float(self.sliders["score_threshold"].value)
        kept = self.kept
        labels = None if self.labels is None else self.labels[kept]
        draw_boxes(ax, self._image, self.boxes[kept], labels, self.scores[kept], self.class_names)
        kept_set = set(kept.tolist())
        for i in torch.nonzero(self.scores >= score_thr).flatten().tolist():
            if i not in kept_set:
                x1, y1, x2, y2 = self.boxes[i].tolist()
                ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, ec="0.6", lw=0.7, ls="--"))
        ax.set_axis_on()
        ax.set_xlim(0, width)
        ax.set_ylim(height, 0)
        ax.set_title(f"{self.kept.numel()} kept (solid) · {self.n_suppressed} suppressed (dashed)")
        ax.set_xlabel("x (pixels)")
        ax.set_ylabel("y (pixels)")
        fig.tight_layout()
        return _png(fig)

    def _on_change(self, change: dict[str, Any]) -> None:
        if not self._busy:
            self.refresh()

    def _ipython_display_(self) -> None:
        from .viz import display_with_picture

        display_with_picture(self.widget, self.render(), "image/png")
