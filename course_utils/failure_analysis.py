"""Where a detector fails: which objects it misses, which confident detections are wrong, and what
those have in common (size, class, crowding), measured on a dataset and its predictions.

``failure_records`` matches confident detections to objects one to one, as AP does, and keeps the
traits of each object and detection; ``FailureRecords.table()`` compares the failures with all objects.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from torchvision.ops import box_iou

from .evaluate import _class_names_of, _xyxy_boxes


@dataclass(frozen=True, eq=False)
class FailureRecords:
    """Every object of a dataset and every confident detection, with what may explain a failure.

    Matching (one detection per object, as AP does): in each image the confident detections
    (``score >= score_threshold``) are taken best score first, and each claims the unclaimed object
    of its class with which it has the highest IoU, when that IoU is at least ``iou_threshold``.

    Attributes:
        objects: one dict per ground-truth object: ``image`` (index in the dataset), ``box``
            (Tensor [4], XYXY px), ``label``, ``size`` (sqrt(w * h) in px), ``overlapped`` (how
            many objects of its image its box overlaps, IoU > 0, itself included: 1 for an object
            alone), ``best_iou`` (the highest IoU of a confident detection of its class, 0 when
            there is none) and ``found`` (a confident detection claimed it).
        detections: one dict per confident detection: ``image``, ``box``, ``label``, ``score``,
            ``size``, ``overlapped`` (how many objects its box overlaps, 0 on plain background) and
            ``correct`` (it claimed an object).
        class_names: index = label, index 0 = background.
        score_threshold, iou_threshold: as given to ``failure_records``.
    """

    objects: list[dict[str, Any]]
    detections: list[dict[str, Any]]
    class_names: tuple[str, ...]
    score_threshold: float
    iou_threshold: float

    @property
    def missed(self) -> list[dict[str, Any]]:
        """The objects that no confident detection of their class claimed (false negatives)."""
        return [o for o in self.objects if not o["found"]]

    @property
    def false_positives(self) -> list[dict[str, Any]]:
        """The confident detections that claimed no object."""
        return [d for d in self.detections if not d["correct"]]

    def groups(self) -> dict[str, list[dict[str, Any]]]:
        """``{"all objects": ..., "missed objects": ..., "false positives": ...}``."""
        return {
            "all objects": self.objects,
            "missed objects": self.missed,
            "false positives": self.false_positives,
        }

    def summary(self) -> dict[str, dict[str, float]]:
        """Per group of ``groups()``, what its members have in common.

        Keys of each row: ``count``; ``median_size`` (px); ``small`` (the share smaller than the
        median object of the dataset: 0.5 for all objects by definition); one share per class
        name (the label of the object or of the detection); ``crowded`` (the share whose box
        overlaps two objects or more, an object counting itself: an object with a neighbour, a
        detection between objects) and ``overlapped`` (the mean number of objects its box
        overlaps). Shares of an empty group are NaN.
        """
        all_sizes = [o["size"] for o in self.objects]
        median_object = statistics.median(all_sizes) if all_sizes else math.nan
        rows: dict[str, dict[str, float]] = {}
        for name, members in self.groups().items():
            row: dict[str, float] = {"count": float(len(members))}
            row["median_size"] = statistics.median(m["size"] for m in members) if members else math.nan
            row["small"] = _share([m["size"] < median_object for m in members])
            for label, class_name in enumerate(self.class_names[1:], start=1):
                row[class_name] = _share([m["label"] == label for m in members])
            row["crowded"] = _share([m["overlapped"] >= 2 for m in members])
            row["overlapped"] = statistics.fmean(m["overlapped"] for m in members) if members else math.nan
            rows[name] = row
        return rows

    def table(self) -> str:
        """``summary()`` as a text table, one row per group, shares in per cent."""
        classes = list(self.class_names[1:])
        header = [
            "",
            "count",
            "median size",
            "smaller than median",
            *classes,
            "among 2+ objects",
            "objects overlapped",
        ]
        lines = []
        for name, row in self.summary().items():
            cells = [name, f"{int(row['count'])}", _px(row["median_size"]), _percent(row["small"])]
            cells += [_percent(row[c]) for c in classes]
            cells += [
                _percent(row["crowded"]),
                "-" if math.isnan(row["overlapped"]) else f"{row['overlapped']:.2f}",
            ]
            lines.append(cells)
        widths = [max(len(str(r[i])) for r in [header, *lines]) for i in range(len(header))]
        text = [
            "  ".join(
                str(c).ljust(w) if i == 0 else str(c).rjust(w)
                for i, (c, w) in enumerate(zip(r, widths, strict=True))
            )
            for r in [header, *lines]
        ]
        notes = [
            f"detections with a score >= {self.score_threshold:g}, each claiming at most one object of its "
            f"class with IoU >= {self.iou_threshold:g}",
            "size = sqrt(w x h) of the box; objects overlapped = objects whose box the box overlaps "
            "(an object counts itself)",
        ]
        return "\n".join([*text, *notes])


def _share(flags: list[bool]) -> float:
    return sum(flags) / len(flags) if flags else math.nan


def _size(box: Tensor) -> float:
    """sqrt(width * height) of one XYXY box, in its units."""
    return float((box[2] - box[0]).clamp(min=0) * (box[3] - box[1]).clamp(min=0)) ** 0.5


def _px(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.0f} px"


def _percent(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.0%}"


def _claim_objects(iou: Tensor, same_class: Tensor, iou_threshold: float) -> tuple[list[bool], Tensor]:
    """Greedy matching of detections (rows of ``iou`` [D, G], best score first) to objects (columns).

    Returns (for each detection: did it claim an object, for each object: was it claimed)."""
    claimed = torch.zeros(iou.shape[1], dtype=torch.bool)
    correct = []
    for d in range(iou.shape[0]):
        candidates = torch.where(same_class[d] & ~claimed, iou[d], torch.full_like(iou[d], -1.0))
        best = int(candidates.argmax()) if len(candidates) else -1
        hit = best >= 0 and float(candidates[best]) >= iou_threshold
        if hit:
            claimed[best] = True
        correct.append(hit)
    return correct, claimed


def failure_records(
    dataset: Any,
    predictions: Sequence[Mapping[str, Any]],
    *,
    score_threshold: float = 0.5,
    iou_threshold: float = 0.5,
    class_names: Sequence[str] | None = None,
) -> FailureRecords:
    """Which objects a detector misses and which confident detections are wrong, with their traits.

    Args:
        dataset: the course's samples, ``dataset[i] -> (image, {"boxes" [N, 4] XYXY, "labels" [N]})``,
            without random augmentations.
        predictions: one ``{"boxes", "scores", "labels"}`` per image, in the dataset's order (as a
            torchvision model returns them in eval mode).
        score_threshold: detections below it are ignored (what a user who draws boxes from this
            score sees).
        iou_threshold: the IoU a detection needs with an object of its class to claim it.
        class_names: index = label, 0 = background; default ``dataset.classes``.

    Returns:
        a ``FailureRecords`` (``.missed``, ``.false_positives``, ``.summary()``, ``.table()``).
    """
    if len(predictions) != len(dataset):
        raise ValueError(
            f"{len(predictions)} predictions for a dataset of {len(dataset)} images; pass one per image, in order"
        )
    names = _class_names_of(dataset, class_names)
    if not names:
        raise ValueError(
            "class_names are needed (index = label, 0 = background): the dataset has no `classes`"
        )
    objects: list[dict[str, Any]] = []
    detections: list[dict[str, Any]] = []
    for index, pred in enumerate(predictions):
        target = dataset[index][1]
        gt_boxes = _xyxy_boxes(target["boxes"], f"ground truth of image {index}").float()
        gt_labels = torch.as_tensor(target["labels"]).reshape(-1).cpu()
        scores = torch.as_tensor(pred["scores"]).detach().reshape(-1).cpu()
        order = torch.argsort(scores, descending=True, stable=True)
        order = order[scores[order] >= score_threshold]
        boxes = _xyxy_boxes(pred["boxes"], f"predictions for image {index}").float()[order]
        labels = torch.as_tensor(pred["labels"]).reshape(-1).cpu()[order]
        iou = box_iou(boxes, gt_boxes)  # [D, G]
        same_class = labels[:, None] == gt_labels[None, :]
        class_iou = torch.where(same_class, iou, torch.zeros_like(iou))
        correct, found = _claim_objects(iou, same_class, iou_threshold)
        gt_overlapped = (box_iou(gt_boxes, gt_boxes) > 0).sum(dim=1)  # itself included
        best_iou = class_iou.max(dim=0).values if len(boxes) else torch.zeros(len(gt_boxes))
        for g in range(len(gt_boxes)):
            objects.append(
                {
                    "image": index,
                    "box": gt_boxes[g],
                    "label": int(gt_labels[g]),
                    "size": _size(gt_boxes[g]),
                    "overlapped": int(gt_overlapped[g]),
                    "best_iou": float(best_iou[g]),
                    "found": bool(found[g]),
                }
            )
        for d in range(len(boxes)):
            detections.append(
                {
                    "image": index,
                    "box": boxes[d],
                    "label": int(labels[d]),
                    "score": float(scores[order[d]]),
                    "size": _size(boxes[d]),
                    "overlapped": int((iou[d] > 0).sum()),
                    "correct": correct[d],
                }
            )
    return FailureRecords(objects, detections, tuple(names), float(score_threshold), float(iou_threshold))
