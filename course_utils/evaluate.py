"""Metrics: IoU of matched boxes, the single-object task's accuracy and IoU, and COCO mAP.

* ``paired_iou(pred, target)`` - the IoU of each predicted box with *its own* target box
  (the diagonal of ``torchvision.ops.box_iou``).
* ``localization_metrics(model or predict_fn, loader, device)`` - accuracy of the class and mean
  IoU of the box for the single-object task (one object per image).
* ``coco_evaluate(model, dataset_or_loader, device)`` - runs a torchvision detection model and
  scores it with pycocotools' ``COCOeval``; ``coco_evaluate_predictions(gt, predictions)`` scores
  predictions made elsewhere. Both return a ``CocoResult``: AP at IoU .50:.95, AP50, AP75, AP for
  small/medium/large objects, AP per class, and the precision array for precision-recall plots.
The ground truth is built in memory in COCO's format from any dataset that yields the course's
samples ``(image, {"boxes": [N, 4] XYXY px, "labels": [N], "image_id": int})``: one COCO image
per sample (its width and height from the image tensor), one annotation per box with
``bbox = [x, y, w, h]`` (converted by ``course_utils.coco.xyxy_to_xywh``, the course's one
XYXY/XYWH conversion), ``area = w * h`` (the box's area: COCO's own files use the area of the
segmentation, which is smaller) and ``iscrowd`` from the target when it has one (else 0).
Annotation ids start at 1 (``COCOeval`` treats id 0 as "unmatched"). Categories are the class
names without the background: ``{"id": label, "name": class_names[label]}`` for label >= 1.
"""

from __future__ import annotations

import contextlib
import io
import math
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from torch import Tensor, nn
from torch.utils.data import DataLoader
from torchvision import tv_tensors
from torchvision.ops import box_iou
from torchvision.transforms.v2 import functional as TF
from tqdm.auto import tqdm

from .boxes import as_box_tensor
from .coco import xyxy_to_xywh

__all__ = [
    "CocoResult",
    "coco_evaluate",
    "coco_evaluate_predictions",
    "coco_ground_truth",
    "localization_metrics",
    "paired_iou",
]

_IOU_CHUNK = 1024


# --------------------------------------------------------------------------------------------
# IoU of matched pairs and the single-object task
# --------------------------------------------------------------------------------------------


def _paired_iou(pred: Tensor, target: Tensor) -> tuple[Tensor, int]:
    """IoU per pair and the number of invalid predictions (x2 < x1 or y2 < y1), which score 0."""
    pred = as_box_tensor(pred, "pred")
    target = as_box_tensor(target, "target").to(pred.device)
    if pred.shape[0] != target.shape[0]:
        raise ValueError(
            f"pred has {pred.shape[0]} boxes but target has {target.shape[0]}; they must pair up"
        )
    if not torch.isfinite(pred).all():
        bad = int((~torch.isfinite(pred)).any(dim=1).sum())
        raise ValueError(f"pred holds {bad} box(es) with NaN or infinite coordinates")
    if not torch.isfinite(target).all():
        raise ValueError("target holds NaN or infinite coordinates")
    degenerate = (target[:, 2] <= target[:, 0]) | (target[:, 3] <= target[:, 1])
    if degenerate.any():
        first = int(degenerate.nonzero()[0])
        raise ValueError(
            f"target holds {int(degenerate.sum())} box(es) with zero or negative width/height "
            f"(first at row {first}: {target[first].tolist()}); targets must be valid XYXY boxes"
        )
    invalid = (pred[:, 2] < pred[:, 0]) | (pred[:, 3] < pred[:, 1])
    ious = torch.cat(
        [
            box_iou(pred[i : i + _IOU_CHUNK], target[i : i + _IOU_CHUNK]).diagonal()
            for i in range(0, pred.shape[0], _IOU_CHUNK)
        ]
        or [pred.new_zeros(0)]
    )
    return torch.where(invalid, torch.zeros_like(ious), ious), int(invalid.sum())


def paired_iou(pred: Tensor, target: Tensor) -> Tensor:
    """IoU of each predicted box with its own target box.

    Args:
        pred: [N, 4] predicted boxes, XYXY.
        target: [N, 4] target boxes, XYXY, same units; row i is compared with ``pred[i]`` only.

    Returns:
        [N] float IoUs in [0, 1] (``torchvision.ops.box_iou(pred, target).diagonal()``, computed
        in chunks). A predicted box with ``x2 < x1`` or ``y2 < y1`` is not a box: its IoU is 0,
        and a warning counts such boxes.

    Raises:
        ValueError: shapes differ or are not [N, 4], coordinates are NaN/inf, or a target box has
            no area.
    """
    ious, n_invalid = _paired_iou(pred, target)
    if n_invalid:
        warnings.warn(
            f"paired_iou: {n_invalid} of {len(ious)} predicted boxes in pred have x2 < x1 or y2 < y1; "
            "their IoU counts as 0",
            stacklevel=2,
        )
    return ious


def _single_object_batch(batch: Any) -> tuple[Tensor, Tensor, Tensor]:
    """(images [B,3,H,W], labels [B], boxes [B,4]) from the batch forms the course's loaders make."""
    if isinstance(batch, (tuple, list)) and len(batch) == 3:
        images, labels, boxes = batch
    elif isinstance(batch, (tuple, list)) and len(batch) == 2:
        images, targets = batch
        if isinstance(targets, Mapping):  # default collate: dict of stacked tensors
            labels, boxes = targets["labels"], targets["boxes"]
        else:  # detection_collate: list of dicts with one box each
            labels = torch.stack([torch.as_tensor(t["labels"]).reshape(-1)[0] for t in targets])
            boxes = torch.stack([t["boxes"].as_subclass(Tensor).reshape(-1, 4)[0] for t in targets])
        if not isinstance(images, Tensor):
            images = torch.stack(list(images))
    else:
        raise TypeError(
            "localization_metrics expects batches (images, labels, boxes) as made by "
            f"course_utils.data.single_object_collate, got {type(batch).__name__}"
        )
    images = torch.as_tensor(images).as_subclass(Tensor)
    labels = torch.as_tensor(labels).as_subclass(Tensor).reshape(-1)
    boxes = torch.as_tensor(boxes).as_subclass(Tensor).reshape(-1, 4)
    if not (images.shape[0] == labels.shape[0] == boxes.shape[0]):
        raise ValueError(
            f"batch holds {images.shape[0]} images but {labels.shape[0]} labels and {boxes.shape[0]} boxes: "
            "the single-object task needs exactly one object per image"
        )
    return images, labels, boxes


def localization_metrics(
    model_or_predict_fn: nn.Module | Callable[[Tensor], tuple[Tensor, Tensor]],
    loader: Iterable[Any],
    device: torch.device | str,
    *,
    coords: str = "normalized",
    progress: bool = False,
) -> dict[str, float]:
    """Class accuracy and mean IoU on the single-object task (one object per image).

    Args:
        model_or_predict_fn: either ``predict_fn(images [B, 3, H, W] on device) -> (labels [B],
            boxes [B, 4] XYXY px)`` (e.g. ``course_utils.single_stage.make_predict_fn``), or a
            model returning ``(logits [B, C], box_out [B, 4])``: its class is ``logits.argmax``
            and its box is decoded with ``course_utils.single_stage.decode_boxes(box_out,
            image_size, coords)`` (clipped to the image). A model is run in eval mode without
            gradients and given back in the mode it came in.
        loader: batches ``(images, labels, boxes XYXY px)`` from
            ``course_utils.data.single_object_collate`` (``(images, targets)`` pairs with one
            box per target work too).
        device: where to run the model.
        coords: the box encoding of a model's ``box_out`` (``"normalized"``, ``"pixels"`` or
            ``"center_log"``; see ``course_utils.single_stage.COORDS``).
        progress: show a progress bar.

    Returns:
        ``{"accuracy": fraction of images whose class is right, "mean_iou": mean over all
        images of the IoU of the predicted box with the true one}`` (the IoU counts whatever the
        class). Predicted boxes with ``x2 < x1`` or ``y2 < y1`` score IoU 0, counted in a warning.
    """
    device = torch.device(device)
    model = model_or_predict_fn if isinstance(model_or_predict_fn, nn.Module) else None
    if model is not None:
        from .single_stage import make_predict_fn

        was_training = model.training
        predict_fn = make_predict_fn(model, coords)
    elif callable(model_or_predict_fn):
        predict_fn, was_training = model_or_predict_fn, False
    else:
        raise TypeError(
            f"model_or_predict_fn must be an nn.Module or a callable, got {type(model_or_predict_fn).__name__}"
        )
    correct, n_images, n_invalid = 0, 0, 0
    iou_sum = 0.0
    try:
        with torch.no_grad():
            for batch in tqdm(loader, desc="evaluate", disable=not progress, leave=False):
                images, labels, boxes = _single_object_batch(batch)
                out = predict_fn(images.to(device))
                if not (isinstance(out, (tuple, list)) and len(out) == 2):
                    raise TypeError("predict_fn(images) must return (labels [B], boxes [B, 4] XYXY px)")
                pred_labels, pred_boxes = (torch.as_tensor(t).detach().cpu() for t in out)
                if pred_labels.shape != labels.shape:
                    raise ValueError(
                        f"predicted labels have shape {list(pred_labels.shape)}, expected {list(labels.shape)}"
                    )
                ious, invalid = _paired_iou(pred_boxes, boxes)
                correct += int((pred_labels == labels).sum())
                iou_sum += float(ious.double().sum())
                n_images += labels.shape[0]
                n_invalid += invalid
    finally:
        if model is not None:
            model.train(was_training)
    if n_images == 0:
        raise ValueError("loader yielded no images: there is nothing to evaluate")
    if n_invalid:
        warnings.warn(
            f"localization_metrics: {n_invalid} of {n_images} predicted boxes have x2 < x1 or y2 < y1; "
            "their IoU counts as 0",
            stacklevel=2,
        )
    return {"accuracy": correct / n_images, "mean_iou": iou_sum / n_images}


# --------------------------------------------------------------------------------------------
# COCO mAP
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class CocoResult:
    """COCO detection metrics from pycocotools' ``COCOeval`` (bbox).

    Undefined values (pycocotools writes -1: e.g. AP_small when no ground-truth box is small,
    or a class with no ground truth) are NaN in the float fields and ``per_class``; the raw
    arrays keep pycocotools' -1.

    Attributes:
        ap: AP averaged over IoU thresholds .50:.05:.95 (COCO's headline "mAP").
        ap50, ap75: AP at IoU 0.50 and 0.75.
        ap_small, ap_medium, ap_large: AP (.50:.95) for objects of area < 32^2, 32^2..96^2, > 96^2 px.
        ar100: average recall with at most 100 detections per image.
        per_class: class name -> AP (.50:.95); per_class_ap50: class name -> AP at IoU 0.50.
        class_names: the names along the K axis of ``precision`` (category ids in order).
        precision: [T, R, K, A, M] = pycocotools' ``eval["precision"]``: IoU threshold x recall
            threshold x class x area range (all, small, medium, large) x max detections (1, 10, 100).
        recall: [T, K, A, M] = ``eval["recall"]``.
        iou_thresholds: [T] (0.50 .. 0.95); recall_thresholds: [R] (0.00 .. 1.00, 101 points).
        stats: [12] = ``COCOeval.stats`` as pycocotools computes them (-1 = undefined).
        n_images, n_ground_truth, n_detections: counts.
        summary: pycocotools' printed summary table.
    """

    ap: float
    ap50: float
    ap75: float
    ap_small: float
    ap_medium: float
    ap_large: float
    ar100: float
    per_class: dict[str, float]
    per_class_ap50: dict[str, float]
    class_names: tuple[str, ...]
    precision: np.ndarray
    recall: np.ndarray
    iou_thresholds: np.ndarray
    recall_thresholds: np.ndarray
    stats: np.ndarray
    n_images: int
    n_ground_truth: int
    n_detections: int
    summary: str

    def as_dict(self) -> dict[str, float]:
        """The headline numbers, e.g. for a ``val_fn`` of ``fit``: ap, ap50, ap75, ap_small, ..."""
        keys = ("ap", "ap50", "ap75", "ap_small", "ap_medium", "ap_large", "ar100")
        return {k: getattr(self, k) for k in keys}

    def pr_curve(
        self, iou_threshold: float = 0.5, class_name: str | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Precision at each recall threshold (all areas, up to 100 detections per image).

        Args:
            iou_threshold: one of ``iou_thresholds`` (0.5, 0.55, ..., 0.95).
            class_name: one class, or None for the mean over the classes that have ground truth.

        Returns:
            ``(recall [R], precision [R])``; precision is 0 beyond the highest recall reached and
            NaN where undefined (no ground truth).
        """
        t = np.flatnonzero(np.isclose(self.iou_thresholds, iou_threshold))
        if t.size == 0:
            raise ValueError(
                f"iou_threshold must be one of {np.round(self.iou_thresholds, 2).tolist()}, got {iou_threshold!r}"
            )
        curves = self.precision[t[0], :, :, 0, -1]  # [R, K]
        if class_name is not None:
            if class_name not in self.class_names:
                raise ValueError(f"unknown class_name {class_name!r}; classes are {list(self.class_names)}")
            curves = curves[:, [self.class_names.index(class_name)]]
        valid = curves > -1
        with np.errstate(invalid="ignore"):
            precision = np.where(valid, curves, 0.0).sum(axis=1) / valid.sum(axis=1)
        return self.recall_thresholds.copy(), precision

    def __str__(self) -> str:
        return self.summary


def _image_id(target: Mapping[str, Any], index: int) -> int:
    if "image_id" not in target:
        raise ValueError(
            f"the target of sample {index} has no 'image_id': COCO evaluation needs one per image"
        )
    image_id = target["image_id"]
    if isinstance(image_id, Tensor):
        if image_id.numel() != 1:
            raise ValueError(f"sample {index}: image_id must be one number, got shape {list(image_id.shape)}")
        image_id = image_id.item()
    if isinstance(image_id, float) and image_id.is_integer():
        image_id = int(image_id)
    if not isinstance(image_id, (int, np.integer)) or isinstance(image_id, bool):
        raise ValueError(f"sample {index}: image_id must be an int, got {image_id!r}")
    return int(image_id)


def _image_hw(image: Any) -> tuple[int, int]:
    if isinstance(image, (Tensor, np.ndarray)):
        return int(image.shape[-2]), int(image.shape[-1])
    size = getattr(image, "size", None)  # PIL: (width, height)
    if isinstance(size, tuple) and len(size) == 2:
        return int(size[1]), int(size[0])
    raise TypeError(f"cannot read the size of an image of type {type(image).__name__}")


def _xyxy_boxes(boxes: Any, where: str) -> Tensor:
    if isinstance(boxes, tv_tensors.BoundingBoxes) and boxes.format != tv_tensors.BoundingBoxFormat.XYXY:
        boxes = TF.convert_bounding_box_format(boxes, new_format=tv_tensors.BoundingBoxFormat.XYXY)
    boxes = torch.as_tensor(boxes).as_subclass(Tensor).detach().cpu().double()
    if boxes.numel() == 0:
        return boxes.reshape(0, 4)
    if boxes.dim() != 2 or boxes.shape[1] != 4:
        raise ValueError(f"{where}: boxes must have shape [N, 4], got {list(boxes.shape)}")
    return boxes


class _GroundTruthBuilder:
    """Collects images and annotations in COCO's format, then builds a pycocotools ``COCO``."""

    def __init__(self, source: str = "dataset") -> None:
        self.source = source  # the caller's argument, for error messages
        self.images: list[dict[str, Any]] = []
        self.annotations: list[dict[str, Any]] = []
        self.labels_seen: set[int] = set()
        self.ids: set[int] = set()

    def add(self, image_id: int, hw: tuple[int, int], target: Mapping[str, Any]) -> None:
        where = f"ground truth of image_id {image_id}"
        if image_id in self.ids:
            raise ValueError(f"image_id {image_id} occurs twice in the dataset; image ids must be unique")
        self.ids.add(image_id)
        self.images.append({"id": image_id, "height": hw[0], "width": hw[1]})
        boxes = _xyxy_boxes(target["boxes"], where)
        as_box_tensor(
            boxes,
            f"the ground-truth boxes of image_id {image_id} in {self.source}",
            valid=True,
            allow_empty=True,
        )
        labels = torch.as_tensor(target["labels"]).reshape(-1).tolist()
        if len(labels) != boxes.shape[0]:
            raise ValueError(f"{where}: {boxes.shape[0]} boxes but {len(labels)} labels")
        if 0 in labels:
            raise ValueError(f"{where}: label 0 is the background and cannot label a box")
        crowd = target.get("iscrowd")
        crowd = torch.as_tensor(crowd).reshape(-1).tolist() if crowd is not None else [0] * len(labels)
        for box, label, iscrowd in zip(xyxy_to_xywh(boxes).tolist(), labels, crowd, strict=True):
            self.annotations.append(
                {
                    "id": len(self.annotations) + 1,
                    "image_id": image_id,
                    "category_id": int(label),
                    "bbox": box,
                    "area": box[2] * box[3],
                    "iscrowd": int(iscrowd),
                }
            )
            self.labels_seen.add(int(label))

    def build(self, class_names: Sequence[str] | None) -> COCO:
        max_label = max(self.labels_seen, default=0)
        if class_names is None:
            class_names = ["background"] + [f"class {i}" for i in range(1, max_label + 1)]
        elif max_label >= len(class_names):
            raise ValueError(
                f"the ground truth has label {max_label} but class_names has only {len(class_names)} names "
                "(index = label, index 0 = background)"
            )
        categories = [{"id": i, "name": str(name)} for i, name in enumerate(class_names) if i > 0]
        coco = COCO()
        coco.dataset = {
            "info": {},
            "images": self.images,
            "annotations": self.annotations,
            "categories": categories,
        }
        with contextlib.redirect_stdout(io.StringIO()):
            coco.createIndex()
        return coco


def _class_names_of(dataset: Any, class_names: Sequence[str] | None) -> Sequence[str] | None:
    if class_names is not None:
        return list(class_names)
    names = getattr(dataset, "classes", None)
    if isinstance(names, (tuple, list)) and names and all(isinstance(n, str) for n in names):
        return list(names)
    return None


def coco_ground_truth(
    dataset: Any, class_names: Sequence[str] | None = None, *, progress: bool = False
) -> COCO:
    """A pycocotools ``COCO`` object, in memory, from a dataset of the course's samples.

    Args:
        dataset: indexable, ``dataset[i] -> (image [3, H, W], target)`` with ``boxes`` XYXY px,
            ``labels`` and ``image_id``.
        class_names: index = label, index 0 = background (skipped). Default: ``dataset.classes``
            when it has one, else ``"class 1"``, ``"class 2"``, ...
        progress: show a progress bar while reading the samples.

    Raises:
        ValueError: a ground-truth box that is NaN/inf or has x2 < x1 or y2 < y1 (naming the image
            and the box), a repeated image id, or boxes and labels of different lengths.
    """
    builder = _GroundTruthBuilder()
    for i in tqdm(range(len(dataset)), desc="ground truth", disable=not progress, leave=False):
        image, target = dataset[i]
        builder.add(_image_id(target, i), _image_hw(image), target)
    return builder.build(_class_names_of(dataset, class_names))


def _detections(
    coco_gt: COCO, predictions: Mapping[int, Mapping[str, Any]], check_boxes: bool = True
) -> list[dict[str, Any]]:
    """pycocotools result records from ``{image_id: {"boxes" [K, 4], "scores" [K], "labels" [K]}}``.

    With ``check_boxes`` a box with x2 < x1 or y2 < y1 raises ``ValueError`` naming the image.
    """
    known_images = set(coco_gt.getImgIds())
    known_labels = set(coco_gt.getCatIds())
    results: list[dict[str, Any]] = []
    for image_id, pred in predictions.items():
        where = f"predictions for image_id {image_id}"
        if image_id not in known_images:
            raise ValueError(f"{where}: no such image in the ground truth")
        if not isinstance(pred, Mapping) or not {"boxes", "scores", "labels"} <= set(pred):
            raise ValueError(f"{where}: expected a dict with 'boxes', 'scores' and 'labels'")
        boxes = _xyxy_boxes(pred["boxes"], where)
        scores = torch.as_tensor(pred["scores"]).detach().cpu().double().reshape(-1)
        labels = torch.as_tensor(pred["labels"]).detach().cpu().reshape(-1)
        if not (boxes.shape[0] == scores.shape[0] == labels.shape[0]):
            raise ValueError(
                f"{where}: {boxes.shape[0]} boxes, {scores.shape[0]} scores and {labels.shape[0]} labels; "
                "they must have the same length"
            )
        if not (torch.isfinite(boxes).all() and torch.isfinite(scores).all()):
            n_bad = int((~torch.isfinite(boxes)).any(dim=1).sum() + (~torch.isfinite(scores)).sum())
            raise ValueError(
                f"{where}: {n_bad} NaN or infinite value(s) in the boxes or scores "
                "(a diverged model? check the training losses)"
            )
        if check_boxes:
            as_box_tensor(
                boxes, f"the boxes of image_id {image_id} in predictions", valid=True, allow_empty=True
            )
        unknown = sorted(set(labels.tolist()) - known_labels)
        if unknown:
            raise ValueError(
                f"{where}: labels {unknown} are not classes of the ground truth (category ids "
                f"{sorted(known_labels)}; label 0 is the background and never a detection)"
            )
        for box, score, label in zip(
            xyxy_to_xywh(boxes, check=check_boxes).tolist(), scores.tolist(), labels.tolist(), strict=True
        ):
            results.append({"image_id": image_id, "category_id": int(label), "bbox": box, "score": score})
    return results


def _nan_if_undefined(value: float) -> float:
    return math.nan if value < 0 else float(value)


def _run_cocoeval(coco_gt: COCO, results: list[dict[str, Any]], verbose: bool) -> CocoResult:
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        if results:
            coco_dt = coco_gt.loadRes(results)
        else:  # loadRes cannot take an empty list: an empty result set scores AP 0 where there is ground truth
            coco_dt = COCO()
            coco_dt.dataset = {
                "images": list(coco_gt.dataset["images"]),
                "annotations": [],
                "categories": list(coco_gt.dataset["categories"]),
            }
            coco_dt.createIndex()
        evaluator = COCOeval(coco_gt, coco_dt, iouType="bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        summary_start = buffer.tell()
        evaluator.summarize()
    summary = buffer.getvalue()[summary_start:]
    if verbose:
        print(buffer.getvalue(), end="")
    precision = evaluator.eval["precision"]
    cat_ids = list(evaluator.params.catIds)
    raw_names = [str(coco_gt.cats[c]["name"]) for c in cat_ids]
    # Names repeated in the categories (COCO's 'N/A' placeholders) get their id, to stay distinct keys.
    names = tuple(
        f"{name} (id {c})" if raw_names.count(name) > 1 else name
        for name, c in zip(raw_names, cat_ids, strict=True)
    )
    per_class, per_class_ap50 = {}, {}
    for k, name in enumerate(names):
        p = precision[:, :, k, 0, -1]
        per_class[name] = float(p[p > -1].mean()) if (p > -1).any() else math.nan
        p50 = p[0]
        per_class_ap50[name] = float(p50[p50 > -1].mean()) if (p50 > -1).any() else math.nan
    stats = np.asarray(evaluator.stats, dtype=float)
    return CocoResult(
        ap=_nan_if_undefined(stats[0]),
        ap50=_nan_if_undefined(stats[1]),
        ap75=_nan_if_undefined(stats[2]),
        ap_small=_nan_if_undefined(stats[3]),
        ap_medium=_nan_if_undefined(stats[4]),
        ap_large=_nan_if_undefined(stats[5]),
        ar100=_nan_if_undefined(stats[8]),
        per_class=per_class,
        per_class_ap50=per_class_ap50,
        class_names=names,
        precision=precision,
        recall=evaluator.eval["recall"],
        iou_thresholds=np.asarray(evaluator.params.iouThrs),
        recall_thresholds=np.asarray(evaluator.params.recThrs),
        stats=stats,
        n_images=len(coco_gt.getImgIds()),
        n_ground_truth=len(coco_gt.getAnnIds()),
        n_detections=len(results),
        summary=summary,
    )


def coco_evaluate_predictions(
    gt: Any,
    predictions: Mapping[int, Mapping[str, Any]] | Sequence[Mapping[str, Any]],
    *,
    class_names: Sequence[str] | None = None,
    verbose: bool = False,
    check_boxes: bool = True,
) -> CocoResult:
    """COCO mAP of detections made elsewhere.

    Args:
        gt: the ground truth: a dataset of the course's samples (see ``coco_ground_truth``), or
            a pycocotools ``COCO`` object (e.g. ``COCO("instances_val2017.json")``).
        predictions: per image ``{"boxes": [K, 4] XYXY px, "scores": [K], "labels": [K]}`` (tensors
            or arrays, as a torchvision model returns them in eval mode), either as a dict
            ``{image_id: prediction}`` or as a list in the dataset's order. Images without an
            entry count as images with no detection.
        class_names: for a dataset: index = label, index 0 = background (default:
            ``gt.classes``). Ignored for a ``COCO`` object (its categories are used).
        verbose: print pycocotools' messages and summary table (silent by default).
        check_boxes: reject predicted boxes with x2 < x1 or y2 < y1 (often (x, y, w, h) boxes
            given as XYXY). ``False`` scores them as given, e.g. to show what such a slip does.

    Raises:
        ValueError: NaN/inf in a prediction (naming the image), a predicted box with x2 < x1 or
            y2 < y1 (naming the image and the box), a ground-truth box that is not finite XYXY,
            a label that is not a class, an unknown image id, or mismatched lengths.
    """
    if isinstance(gt, COCO):
        coco_gt = gt
        if isinstance(predictions, Sequence):
            raise TypeError("with a COCO object as gt, predictions must be a dict {image_id: prediction}")
    else:
        if not (hasattr(gt, "__len__") and hasattr(gt, "__getitem__")):
            raise TypeError(f"gt must be a dataset or a pycocotools COCO object, got {type(gt).__name__}")
        if isinstance(predictions, Sequence) and len(predictions) != len(gt):
            raise ValueError(
                f"predictions is a list of {len(predictions)} entries but the dataset has {len(gt)} images; "
                "pass one entry per image in the dataset's order, or a dict {image_id: prediction}"
            )
        builder = _GroundTruthBuilder("gt")
        order: list[int] = []
        for i in range(len(gt)):
            image, target = gt[i]
            order.append(_image_id(target, i))
            builder.add(order[-1], _image_hw(image), target)
        coco_gt = builder.build(_class_names_of(gt, class_names))
        if isinstance(predictions, Sequence):
            predictions = dict(zip(order, predictions, strict=True))
    if not isinstance(predictions, Mapping):
        raise TypeError(f"predictions must be a dict or a list of dicts, got {type(predictions).__name__}")
    predictions = {_image_id({"image_id": k}, i): v for i, (k, v) in enumerate(predictions.items())}
    return _run_cocoeval(coco_gt, _detections(coco_gt, predictions, check_boxes), verbose)


def _pairs_collate(batch: Sequence[Any]) -> tuple[list[Any], list[Any]]:
    return [s[0] for s in batch], [s[1] for s in batch]


def coco_evaluate(
    model: nn.Module,
    dataset_or_loader: Any,
    device: torch.device | str,
    *,
    batch_size: int = 8,
    class_names: Sequence[str] | None = None,
    verbose: bool = False,
    progress: bool = True,
) -> CocoResult:
    """Run a torchvision detection model over a dataset and score it with pycocotools.

    Args:
        model: a torchvision detection model; run in eval mode under ``torch.inference_mode``
            (its ``box_score_thresh`` and ``box_detections_per_img`` decide what it returns) and
            given back in the mode it came in.
        dataset_or_loader: a dataset of the course's samples, or a DataLoader over one yielding
            ``(images list, targets list)`` (``course_utils.data.detection_collate``). A dataset
            is read in order with ``batch_size`` images per forward pass. Evaluate without
            random augmentations.
        device: where to run the model.
        class_names: index = label, 0 = background; default: the dataset's ``classes``.
        verbose: print pycocotools' summary table.
        progress: show a progress bar.

    Returns:
        a ``CocoResult`` (``result.ap``, ``result.ap50``, ``result.per_class``, ...).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    device = torch.device(device)
    if isinstance(dataset_or_loader, DataLoader):
        loader, dataset = dataset_or_loader, dataset_or_loader.dataset
    elif hasattr(dataset_or_loader, "__len__") and hasattr(dataset_or_loader, "__getitem__"):
        dataset = dataset_or_loader
        if len(dataset) == 0:
            raise ValueError("the dataset is empty: there is nothing to evaluate")
        loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=_pairs_collate)
    else:
        raise TypeError(
            f"dataset_or_loader must be a Dataset or a DataLoader, got {type(dataset_or_loader).__name__}"
        )
    builder = _GroundTruthBuilder("dataset_or_loader")
    predictions: dict[int, dict[str, Tensor]] = {}
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            for batch in tqdm(loader, desc="COCO evaluation", disable=not progress, leave=False):
                if not (isinstance(batch, (tuple, list)) and len(batch) == 2):
                    raise TypeError(
                        "the loader must yield (images, targets) batches (collate_fn=detection_collate)"
                    )
                images, targets = batch
                outputs = model([torch.as_tensor(img).to(device) for img in images])
                for image, target, output in zip(images, targets, outputs, strict=True):
                    image_id = _image_id(target, len(builder.images))
                    builder.add(image_id, _image_hw(image), target)
                    predictions[image_id] = {k: v.detach().cpu() for k, v in output.items()}
    finally:
        model.train(was_training)
    if not builder.images:
        raise ValueError("the loader yielded no image: there is nothing to evaluate")
    coco_gt = builder.build(_class_names_of(dataset, class_names))
    return _run_cocoeval(coco_gt, _detections(coco_gt, predictions), verbose)


# --------------------------------------------------------------------------------------------
# Failure analysis: which objects are missed, which confident detections are wrong
# --------------------------------------------------------------------------------------------
