"""Live pipeline traces of torchvision's Faster R-CNN: every stage, its real tensor shape, what it means.

Forward hooks on the model's sub-modules record what each stage returns during one ordinary call
of the model, so the shapes are measured, not written down:

    >>> trace = trace_faster_rcnn(model, [image])          # model in eval mode: detections
    >>> print(trace.table())                                # stage | shape | what it means
    >>> plot_trace(trace)                                   # the same as a block diagram

``HookRecorder`` is the general tool underneath (any ``nn.Module``, any sub-module names);
``level_strides`` gives each feature map's stride; ``box_counts`` says how many boxes one image
has at each step, from anchors to detections;
``prediction_steps`` follows one image from the RPN's proposals to the final detections, for drawing.
Shapes do not depend on the weights, so a randomly initialised model (``weights=None,
weights_backbone=None``) gives the same trace as the pretrained one, offline.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn
from torchvision.models.detection import FasterRCNN
from torchvision.models.detection.image_list import ImageList
from torchvision.models.detection.transform import resize_boxes

from .images import check_pixel_range

# --------------------------------------------------------------------------------------------
# Recording module outputs with forward hooks
# --------------------------------------------------------------------------------------------


def _snapshot(obj: Any) -> Any:
    """Copy containers (so later in-place edits by the model do not change the record) and detach tensors."""
    if isinstance(obj, Tensor):
        return obj.detach()
    if isinstance(obj, ImageList):
        return ImageList(obj.tensors.detach(), list(obj.image_sizes))
    if isinstance(obj, OrderedDict):
        return OrderedDict((k, _snapshot(v)) for k, v in obj.items())
    if isinstance(obj, dict):
        return {k: _snapshot(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_snapshot(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(_snapshot(v) for v in obj)
    return obj


def shapes_of(obj: Any) -> Any:
    """The shapes inside a (nested) model output: tensors become tuples, containers keep their structure.

    >>> shapes_of({"boxes": torch.zeros(5, 4), "scores": [torch.zeros(5)]})
    {'boxes': (5, 4), 'scores': [(5,)]}
    """
    if isinstance(obj, Tensor):
        return tuple(obj.shape)
    if isinstance(obj, ImageList):
        return {"tensors": tuple(obj.tensors.shape), "image_sizes": [tuple(s) for s in obj.image_sizes]}
    if isinstance(obj, dict):
        return {k: shapes_of(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [shapes_of(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(shapes_of(v) for v in obj)
    return obj


class HookRecorder:
    """Record the outputs of named sub-modules while a model runs (a context manager).

        >>> with HookRecorder(model, ["backbone", "rpn"]) as rec:
        ...     model(images)
        >>> rec.outputs["rpn"]          # what model.rpn returned (containers copied, tensors detached)

    ``names`` are paths as in ``model.named_modules()`` (``"roi_heads.box_head"``). A module that
    runs several times in one call keeps its last output; ``calls[name]`` counts the calls.
    The hooks are removed when the ``with`` block ends, even on an error.

    Raises:
        KeyError: a name is not a sub-module of the model (the message lists the top-level names).
    """

    def __init__(self, model: nn.Module, names: Iterable[str]):
        self.model = model
        self.names = list(names)
        modules = dict(model.named_modules())
        unknown = [n for n in self.names if n not in modules]
        if unknown:
            top = sorted(n for n in modules if n and "." not in n)
            raise KeyError(
                f"names {unknown} are not sub-modules of the model; its top-level modules are {top}"
            )
        self._modules = {n: modules[n] for n in self.names}
        self.outputs: dict[str, Any] = {}
        self.inputs: dict[str, Any] = {}
        self.calls: dict[str, int] = {}
        self._handles: list[Any] = []

    def __enter__(self) -> HookRecorder:
        for name, module in self._modules.items():
            self._handles.append(module.register_forward_hook(self._hook(name)))
        return self

    def __exit__(self, *exc: object) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def _hook(self, name: str):
        def hook(module: nn.Module, inputs: tuple[Any, ...], output: Any) -> None:
            self.inputs[name] = _snapshot(inputs)
            self.outputs[name] = _snapshot(output)
            self.calls[name] = self.calls.get(name, 0) + 1

        return hook


# --------------------------------------------------------------------------------------------
# The Faster R-CNN trace
# --------------------------------------------------------------------------------------------

#: Pipeline groups, in order, with the colour they get in ``plot_trace``.
GROUPS: dict[str, str] = {
    "input": "#e0e0e0",
    "transform": "#cfe2f3",
    "backbone": "#d9ead3",
    "rpn": "#fff2cc",
    "roi heads": "#f4cccc",
    "post-processing": "#d9d2e9",
}


@dataclass(frozen=True)
class TraceRow:
    """One stage of the pipeline: its name, the module that computed it, the shape and its meaning."""

    stage: str
    group: str
    module: str
    shape: str
    meaning: str


@dataclass
class PipelineTrace:
    """The stages of one Faster R-CNN call. ``rows`` in pipeline order; ``outputs`` holds the raw
    recorded outputs by module path, e.g. ``outputs["rpn"][0]`` is the list of proposal tensors."""

    rows: list[TraceRow]
    outputs: dict[str, Any] = field(repr=False)
    mode: str = "eval"

    def __iter__(self) -> Iterator[TraceRow]:
        return iter(self.rows)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, stage: str) -> TraceRow:
        for row in self.rows:
            if row.stage == stage:
                return row
        raise KeyError(f"no stage {stage!r}; the stages are {[r.stage for r in self.rows]}")

    def shape(self, stage: str) -> str:
        """The shape text of a stage, e.g. ``trace.shape("RoIAlign features")`` -> ``'[1000, 256, 7, 7]'``."""
        return self[stage].shape

    def table(self, meaning_width: int = 60, show_module: bool = False) -> str:
        """The trace as a fixed-width text table: stage | shape | what it means (wrapped)."""
        import textwrap

        headers = ["stage", "shape", "what it means"]
        if show_module:
            headers.insert(1, "module")
        stage_w = max(len(headers[0]), *(len(r.stage) for r in self.rows))
        shape_w = max(len("shape"), *(len(r.shape) for r in self.rows))
        module_w = max(len("module"), *(len(r.module) for r in self.rows))
        widths = [stage_w, module_w, shape_w] if show_module else [stage_w, shape_w]

        def line(cells: list[str]) -> str:
            return " | ".join(c.ljust(w) for c, w in zip(cells, widths + [0], strict=False)).rstrip()

        out = [line(headers), "-+-".join("-" * w for w in widths + [meaning_width])]
        for row in self.rows:
            wrapped = textwrap.wrap(row.meaning, meaning_width) or [""]
            first = [row.stage, row.module, row.shape] if show_module else [row.stage, row.shape]
            out.append(line(first + [wrapped[0]]))
            for more in wrapped[1:]:
                out.append(line([""] * len(widths) + [more]))
        return "\n".join(out)


def _fmt(shape: Sequence[int]) -> str:
    return "[" + ", ".join(str(int(s)) for s in shape) + "]"


def _fmt_per_image(tensors: Sequence[Tensor]) -> str:
    shapes = [_fmt(t.shape) for t in tensors]
    if len(set(shapes)) == 1:
        return shapes[0] if len(shapes) == 1 else f"{len(shapes)} x {shapes[0]}"
    return ", ".join(shapes)


def _stride(image_size: int, feature_size: int) -> int:
    """The nominal stride: the power of two nearest to image_size / feature_size (a 'pool' level of
    13 cells on an 800-pixel batch has stride 64, not 61.5, because of rounding up)."""
    return int(2 ** round(math.log2(image_size / feature_size)))


def _point_names(model: FasterRCNN) -> list[str]:
    names = [
        "transform",
        "backbone",
        "rpn.head",
        "rpn.anchor_generator",
        "rpn",
        "roi_heads.box_roi_pool",
        "roi_heads.box_head",
        "roi_heads.box_predictor",
        "roi_heads",
    ]
    if hasattr(model.backbone, "body") and hasattr(model.backbone, "fpn"):
        names.insert(1, "backbone.body")
    return names


def trace_faster_rcnn(
    model: FasterRCNN,
    images: Sequence[Tensor],
    targets: Sequence[dict[str, Tensor]] | None = None,
) -> PipelineTrace:
    """Run ``model(images[, targets])`` once with forward hooks and describe every stage.

    In eval mode (``model.eval()``) the call returns detections; in training mode it needs
    ``targets`` and returns the loss dict, and the trace shows the training-time sizes (more RPN
    proposals, a sampled subset of them in the RoI heads). The model's mode is left as it is.
    Gradients are not computed.

    Args:
        model: a torchvision ``FasterRCNN`` (any backbone: with an FPN, a ``body`` and ``fpn``, or
            a plain module returning one tensor).
        images: a list of ``[3, H, W]`` float tensors in [0, 1] (sizes may differ).
        targets: for training mode, one dict per image with ``boxes`` ``[N, 4]`` (xyxy, pixels)
            and ``labels`` ``[N]`` (int64, 1..num_classes-1).

    Returns:
        a ``PipelineTrace`` (``.table()``, ``.rows``, ``.outputs``, ``.mode``); the model's own
        return value is in ``trace.outputs["model"]``.
    """
    if not isinstance(model, FasterRCNN):
        raise TypeError(f"model must be a torchvision FasterRCNN, got {type(model).__name__}")
    if isinstance(images, Tensor):
        raise ValueError(
            f"images must be a list of [3, H, W] tensors (torchvision's detection models take a list), "
            f"got one tensor of shape {tuple(images.shape)}; pass list(batch)"
        )
    images = list(images)
    if not images or any(not isinstance(im, Tensor) or im.dim() != 3 for im in images):
        raise ValueError("images must be a non-empty list of [3, H, W] tensors")
    for k, im in enumerate(images):  # the model's transform normalises as if pixels were in [0, 1]
        check_pixel_range(im, f"images[{k}]")
    if model.training and targets is None:
        raise ValueError(
            "the model is in training mode, which needs targets; pass targets or call model.eval()"
        )
    names = _point_names(model)
    with HookRecorder(model, names) as rec, torch.no_grad():
        result = model(images, list(targets)) if targets is not None else model(images)
    out = dict(rec.outputs)
    out["model"] = _snapshot(result)
    rows = _describe(model, images, out, training=model.training)
    return PipelineTrace(rows=rows, outputs=out, mode="train" if model.training else "eval")


def _describe(model: FasterRCNN, images: list[Tensor], out: dict[str, Any], training: bool) -> list[TraceRow]:
    rows: list[TraceRow] = []
    add = rows.append
    tf = model.transform
    n = len(images)
    add(
        TraceRow(
            "input images",
            "input",
            "(model call)",
            _fmt_per_image(images),
            f"{n} image(s) as a list of [3, H, W] tensors with values in 0..1; sizes may differ",
        )
    )
    image_list, _ = out["transform"]
    batch = image_list.tensors
    min_size = tf.min_size[-1] if isinstance(tf.min_size, (list, tuple)) else tf.min_size
    sizes = ", ".join(f"{h}x{w}" for h, w in image_list.image_sizes)
    add(
        TraceRow(
            "resized + padded batch",
            "transform",
            "transform",
            _fmt(batch.shape),
            f"normalised with ImageNet mean/std, resized so the short side is {min_size} (long side at most "
            f"{tf.max_size}) to {sizes}, then zero-padded to a multiple of {tf.size_divisible} and stacked",
        )
    )
    image_h = batch.shape[-2]
    if "backbone.body" in out:
        for name, feat in out["backbone.body"].items():
            add(
                TraceRow(
                    f"ResNet stage '{name}'",
                    "backbone",
                    "backbone.body",
                    _fmt(feat.shape),
                    f"ResNet-50 features at stride {_stride(image_h, feat.shape[-2])}; the FPN's input",
                )
            )
    features = out["backbone"]
    if isinstance(features, Tensor):
        features = OrderedDict([("0", features)])
    fpn = "body" in dict(model.backbone.named_children())
    for name, feat in features.items():
        stride = _stride(image_h, feat.shape[-2])
        what = "FPN level" if fpn else "feature map"
        add(
            TraceRow(
                f"{what} '{name}'",
                "backbone",
                "backbone",
                _fmt(feat.shape),
                f"stride {stride}: one {feat.shape[1]}-channel vector per {stride}x{stride}-pixel cell"
                + (" (same channels on every level)" if fpn else ""),
            )
        )
    objectness, deltas = out["rpn.head"]
    a = objectness[0].shape[1]
    per_image = sum(o[0].numel() for o in objectness)
    levels = f" per level ({len(objectness)} levels)" if len(objectness) > 1 else ""
    add(
        TraceRow(
            "RPN objectness",
            "rpn",
            "rpn.head",
            f"[{n}, {a}, H, W]{levels}",
            f"{a} anchors per cell x one logit each ('is there an object?'): {per_image} scores per image",
        )
    )
    add(
        TraceRow(
            "RPN box deltas",
            "rpn",
            "rpn.head",
            f"[{n}, {deltas[0].shape[1]}, H, W]{levels}",
            "4 deltas (dx, dy, dw, dh) per anchor that move and stretch it towards an object",
        )
    )
    anchors = out["rpn.anchor_generator"]
    gen = model.rpn.anchor_generator
    sizes_txt = "/".join(str(s[0]) if len(s) == 1 else "/".join(map(str, s)) for s in gen.sizes)
    ratios = "/".join(f"{r:g}" for r in gen.aspect_ratios[0])
    add(
        TraceRow(
            "anchors",
            "rpn",
            "rpn.anchor_generator",
            _fmt_per_image(anchors),
            f"fixed reference boxes per image (sizes {sizes_txt} px, aspect ratios {ratios}), one set per "
            "feature-map cell; they depend on the image size only",
        )
    )
    proposals = out["rpn"][0]
    mode = "training" if training else "testing"
    pre, post = model.rpn._pre_nms_top_n[mode], model.rpn._post_nms_top_n[mode]
    per_level = " per level" if len(objectness) > 1 else ""
    add(
        TraceRow(
            "RPN proposals",
            "rpn",
            "rpn",
            _fmt_per_image(proposals),
            f"anchors moved by their deltas; top {pre} by objectness{per_level}, clipped, tiny boxes removed, "
            f"NMS at IoU {model.rpn.nms_thresh:g}{per_level}, at most {post} kept per image ({mode} setting)",
        )
    )
    pooled = out["roi_heads.box_roi_pool"]
    pool = model.roi_heads.box_roi_pool
    names = list(pool.featmap_names)
    maps = (
        f"feature map {names[0]!r}"
        if len(names) == 1
        else f"one of the levels {names}, chosen by the box size"
    )
    sampled = ""
    if training:
        rh = model.roi_heads
        sampled = (
            f"; in training {rh.fg_bg_sampler.batch_size_per_image} proposals per image (ground-truth boxes "
            f"added) are sampled, at most {rh.fg_bg_sampler.positive_fraction:.0%} of them objects"
        )
    add(
        TraceRow(
            "RoIAlign features",
            "roi heads",
            "roi_heads.box_roi_pool",
            _fmt(pooled.shape),
            f"each proposal cut out of {maps} and resampled to {pool.output_size[0]}x{pool.output_size[1]} "
            f"cells{sampled}",
        )
    )
    head = out["roi_heads.box_head"]
    add(
        TraceRow(
            "box head",
            "roi heads",
            "roi_heads.box_head",
            _fmt(head.shape),
            f"each {pooled.shape[1]}x{pooled.shape[2]}x{pooled.shape[3]} crop flattened, then two fully "
            f"connected layers: one {head.shape[1]}-number vector per proposal",
        )
    )
    logits, regression = out["roi_heads.box_predictor"]
    c = logits.shape[1]
    add(
        TraceRow(
            "class logits",
            "roi heads",
            "roi_heads.box_predictor",
            _fmt(logits.shape),
            f"one score per class for every proposal: {c} classes, index 0 = background",
        )
    )
    add(
        TraceRow(
            "box regression",
            "roi heads",
            "roi_heads.box_predictor",
            _fmt(regression.shape),
            f"4 deltas per class (4 x {c}) that refine each proposal once more, separately for every class",
        )
    )
    if training:
        losses = out["model"]
        add(
            TraceRow(
                "losses",
                "post-processing",
                "(model call)",
                f"dict of {len(losses)} scalars",
                "training mode returns losses, no boxes: " + ", ".join(losses),
            )
        )
        return rows
    rh = model.roi_heads
    before = out["roi_heads"][0]
    add(
        TraceRow(
            "detections (resized image)",
            "post-processing",
            "roi_heads",
            _fmt_per_image([d["boxes"] for d in before]),
            f"softmax, background dropped, score > {rh.score_thresh:g}, NMS at IoU {rh.nms_thresh:g} per class, "
            f"best {rh.detections_per_img} kept; boxes in resized-image pixels",
        )
    )
    final = out["model"]
    add(
        TraceRow(
            "detections (output)",
            "post-processing",
            "transform.postprocess",
            _fmt_per_image([d["boxes"] for d in final]),
            "the same boxes scaled back to the original image size; with 'scores' [D] and 'labels' [D]",
        )
    )
    return rows


def level_strides(trace: PipelineTrace) -> dict[str, int]:
    """The stride of each feature map of a trace: how many pixels of the padded batch lie between the
    centres of two neighbouring cells, ``{"0": 4, "1": 8, ..., "pool": 64}``.

    Each level is made from the one before by stride-2 steps, so strides are powers of two: the
    power of two nearest to (batch height / rows). A 'pool' level of 13 rows on an 800-pixel batch has
    stride 64, not 800 // 13 = 61: it keeps every other row of a 25-row level of stride 32, and its
    last row reaches past the batch. (torchvision's ``AnchorGenerator`` spaces that level's anchors
    ``800 // 13`` pixels apart all the same.)
    """
    height = trace.outputs["transform"][0].tensors.shape[-2]
    features = trace.outputs["backbone"]
    if isinstance(features, Tensor):
        features = OrderedDict([("0", features)])
    return {name: _stride(height, level.shape[-2]) for name, level in features.items()}


def box_counts(model: FasterRCNN, trace: PipelineTrace, image: int = 0) -> dict[str, int]:
    """How many boxes image ``image`` of an eval-mode trace has at each step, from anchors to detections.

    The steps, as torchvision runs them in eval mode (``RegionProposalNetwork.filter_proposals`` and
    ``RoIHeads.postprocess_detections``), keyed by a label that names the model's setting:

    * every anchor of every feature map (fixed by the sizes of the batch and the feature maps);
    * the RPN's ``pre_nms_top_n`` best-scored anchors per level (all of a level that has fewer);
    * what is left after the RPN's NMS, run separately on each level (``batched_nms`` keyed by the
      level), after clipping to the image, dropping tiny boxes and the RPN's own score threshold;
    * the proposals: at most ``post_nms_top_n`` of those, the best-scored first;
    * the box head's (proposal, class) boxes: one refined box per proposal and non-background class;
    * those whose class probability passes ``score_thresh``;
    * the final detections, after NMS per class and the ``detections_per_img`` cap.

    Only the first step and the caps follow from the settings alone: the counts after a top-n
    depend on the scores, so on the weights.

    Args:
        model: the model that made ``trace`` (its settings name the steps).
        trace: ``trace_faster_rcnn(model, images)`` in eval mode.
        image: which image of the traced batch.

    Raises:
        ValueError: a training-mode trace (it has no detections), or ``image`` out of range.
    """
    if trace.mode != "eval":
        raise ValueError("box_counts needs an eval-mode trace (training mode returns losses, not detections)")
    out = trace.outputs
    proposals = out["rpn"][0]
    if not 0 <= image < len(proposals):
        raise ValueError(f"image must be in [0, {len(proposals) - 1}], got {image}")
    per_level = [int(level[image].numel()) for level in out["rpn.head"][0]]  # anchors x cells, per level
    rpn, heads = model.rpn, model.roi_heads
    top_n, cap = rpn._pre_nms_top_n["testing"], rpn._post_nms_top_n["testing"]
    first = sum(len(p) for p in proposals[:image])
    logits = out["roi_heads.box_predictor"][0][first : first + len(proposals[image])]
    class_probs = torch.softmax(logits, dim=-1)[:, 1:]  # background (column 0) dropped
    return {
        "anchors (every cell of every level)": sum(per_level),
        f"RPN: best {top_n} per level (pre_nms_top_n)": sum(min(top_n, n) for n in per_level),
        f"left after RPN NMS per level (IoU {rpn.nms_thresh:g})": _rpn_boxes_after_nms(model, trace, image),
        f"proposals: at most {cap} (post_nms_top_n)": len(proposals[image]),
        f"class boxes: proposals x {class_probs.shape[1]} classes": int(class_probs.numel()),
        f"class boxes with score > {heads.score_thresh:g}": int((class_probs > heads.score_thresh).sum()),
        f"detections (NMS {heads.nms_thresh:g} per class, at most {heads.detections_per_img})": len(
            out["model"][image]["boxes"]
        ),
    }


def _rpn_boxes_after_nms(model: FasterRCNN, trace: PipelineTrace, image: int) -> int:
    """The RPN's boxes of one image after its per-level NMS, before the ``post_nms_top_n`` cap:
    ``filter_proposals`` rerun on the traced head outputs with the cap lifted."""
    from torchvision.models.detection.rpn import concat_box_prediction_layers

    rpn, out = model.rpn, trace.outputs
    objectness, deltas = out["rpn.head"]
    one_objectness = [level[image : image + 1] for level in objectness]
    one_deltas = [level[image : image + 1] for level in deltas]
    per_level = [int(level[0].numel()) for level in one_objectness]
    scores, box_deltas = concat_box_prediction_layers(one_objectness, one_deltas)
    boxes = rpn.box_coder.decode(box_deltas, [out["rpn.anchor_generator"][image]]).view(1, -1, 4)
    image_size = out["transform"][0].image_sizes[image]
    saved = dict(rpn._post_nms_top_n)
    rpn._post_nms_top_n["testing"] = boxes.shape[1]  # no cap
    try:
        kept, _ = rpn.filter_proposals(boxes, scores, [image_size], per_level)
    finally:
        rpn._post_nms_top_n = saved
    return len(kept[0])


# --------------------------------------------------------------------------------------------
# One image from proposals to detections (for drawing)
# --------------------------------------------------------------------------------------------


@dataclass
class PredictionSteps:
    """What happens to one image between the RPN and the output, in original-image pixels.

    * ``proposals`` ``[P, 4]`` and ``objectness`` ``[P]`` (probabilities): the RPN's output, best first;
    * ``refined_boxes`` ``[P, 4]``, ``refined_labels`` ``[P]``, ``refined_scores`` ``[P]``: for each
      proposal, the box head's most likely non-background class, its probability and the box
      refined for that class;
    * ``above_threshold``: a bool mask ``[P]``, ``refined_scores > score_thresh``;
    * ``candidates_above_threshold``: how many (proposal, class) pairs score above ``score_thresh``
      (torchvision keeps every class of a proposal that passes, not only the best one);
    * ``detections``: the model's own output (boxes, labels, scores) after per-class NMS and the
      ``detections_per_img`` cap.
    """

    proposals: Tensor
    objectness: Tensor
    refined_boxes: Tensor
    refined_labels: Tensor
    refined_scores: Tensor
    above_threshold: Tensor
    candidates_above_threshold: int
    detections: dict[str, Tensor]
    score_thresh: float
    nms_thresh: float


@contextmanager
def _capture_proposal_scores(model: FasterRCNN) -> Iterator[list[list[Tensor]]]:
    """Keep the objectness scores that ``rpn.filter_proposals`` returns (``rpn.forward`` drops them)."""
    rpn = model.rpn
    original = rpn.filter_proposals
    store: list[list[Tensor]] = []

    def wrapped(*args: Any, **kwargs: Any):
        boxes, scores = original(*args, **kwargs)
        store.append([s.detach() for s in scores])
        return boxes, scores

    rpn.filter_proposals = wrapped  # type: ignore[method-assign]
    try:
        yield store
    finally:
        del rpn.filter_proposals  # back to the class's method


def prediction_steps(model: FasterRCNN, image: Tensor) -> PredictionSteps:
    """Follow one ``[3, H, W]`` image (values 0..1) through an eval-mode Faster R-CNN, step by step.

    The model runs once, normally; hooks collect the proposals and the box predictor's outputs,
    and the per-proposal view is decoded with the model's own box coder. ``detections`` is exactly
    what ``model([image])[0]`` returns.
    """
    if model.training:
        raise ValueError("prediction_steps needs the model in eval mode; call model.eval() first")
    if not isinstance(image, Tensor) or image.dim() != 3 or image.shape[0] != 3:
        raise ValueError(f"image must be one [3, H, W] tensor, got {getattr(image, 'shape', type(image))}")
    check_pixel_range(image, "image")  # the model's transform normalises as if pixels were in [0, 1]
    names = ["transform", "rpn", "roi_heads.box_predictor"]
    with HookRecorder(model, names) as rec, _capture_proposal_scores(model) as scores, torch.no_grad():
        detections = model([image])[0]
    image_list, _ = rec.outputs["transform"]
    resized = list(image_list.image_sizes[0])
    original = list(image.shape[-2:])
    proposals = rec.outputs["rpn"][0][0]
    logits, regression = rec.outputs["roi_heads.box_predictor"]
    rh = model.roi_heads
    probs = torch.softmax(logits, -1)
    per_class = rh.box_coder.decode(regression, [proposals])  # [P, C, 4]
    per_class = per_class.reshape(proposals.shape[0], -1, 4)
    best_scores, best = probs[:, 1:].max(dim=1)
    best_labels = best + 1
    refined = per_class[torch.arange(len(best_labels)), best_labels]
    h, w = resized
    refined = torch.stack(
        [
            refined[:, 0].clamp(0, w),
            refined[:, 1].clamp(0, h),
            refined[:, 2].clamp(0, w),
            refined[:, 3].clamp(0, h),
        ],
        dim=1,
    )
    return PredictionSteps(
        proposals=resize_boxes(proposals, resized, original),
        objectness=scores[0][0],
        refined_boxes=resize_boxes(refined, resized, original),
        refined_labels=best_labels,
        refined_scores=best_scores,
        above_threshold=best_scores > rh.score_thresh,
        candidates_above_threshold=int((probs[:, 1:] > rh.score_thresh).sum()),
        detections={k: v.detach() for k, v in detections.items()},
        score_thresh=float(rh.score_thresh),
        nms_thresh=float(rh.nms_thresh),
    )


# --------------------------------------------------------------------------------------------
# The trace as a block diagram
# --------------------------------------------------------------------------------------------


def plot_trace(trace: PipelineTrace, ax: Any = None, title: str | None = None) -> Any:
    """Draw the trace as a top-to-bottom block diagram: one box per stage (name and shape),
    coloured by pipeline group (transform, backbone, RPN, RoI heads, post-processing), with the
    group names on the left. Returns the matplotlib Axes."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyBboxPatch

    rows = trace.rows
    if ax is None:
        _, ax = plt.subplots(figsize=(9, 0.55 * len(rows) + 0.8))
    n = len(rows)
    box_h, gap = 0.7, 0.3
    ys = [(n - 1 - i) * (box_h + gap) for i in range(n)]
    for i, (row, y) in enumerate(zip(rows, ys, strict=True)):
        colour = GROUPS.get(row.group, "#ffffff")
        ax.add_patch(
            FancyBboxPatch(
                (0.0, y),
                6.0,
                box_h,
                boxstyle="round,pad=0.02",
                facecolor=colour,
                edgecolor="#555555",
                linewidth=1,
            )
        )
        ax.text(0.15, y + box_h / 2, row.stage, va="center", ha="left", fontsize=9, fontweight="bold")
        ax.text(5.85, y + box_h / 2, row.shape, va="center", ha="right", fontsize=9, family="monospace")
        if i + 1 < n:
            ax.annotate(
                "",
                xy=(3.0, ys[i + 1] + box_h + 0.02),
                xytext=(3.0, y - 0.02),
                arrowprops={"arrowstyle": "->", "color": "#555555"},
            )
    # group labels on the left, centred on their rows
    start = 0
    for i in range(1, n + 1):
        if i == n or rows[i].group != rows[start].group:
            top, bottom = ys[start] + box_h, ys[i - 1]
            ax.plot([-0.15, -0.15], [bottom, top], color="#555555", linewidth=2)
            ax.text(-0.3, (top + bottom) / 2, rows[start].group, ha="right", va="center", fontsize=9)
            start = i
    ax.set_xlim(-2.2, 6.2)
    ax.set_ylim(-0.3, ys[0] + box_h + 0.3)
    ax.axis("off")
    ax.set_title(title or f"Faster R-CNN pipeline ({trace.mode} mode): stage and real tensor shape")
    return ax
