"""The course's one check of a box tensor: ``[N, 4]`` boxes ``(x1, y1, x2, y2)``.

Helpers that take boxes from a learner (``evaluate``, ``single_stage``, ``playgrounds``,
``anchors``) call ``as_box_tensor`` so that a wrong shape or type gets the same clear error
everywhere. With ``valid=True`` it also rejects boxes that are not boxes: NaN/inf coordinates or
corners in the wrong order (e.g. ``(x, y, w, h)`` boxes given where XYXY is expected).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

XYWH_HINT = (
    "these look like (x, y, w, h) boxes; convert with torchvision.ops.box_convert(boxes, 'xywh', 'xyxy')"
)


def as_box_tensor(
    boxes: Any, name: str = "boxes", *, valid: bool = False, allow_empty: bool = False
) -> Tensor:
    """``boxes`` as a plain float ``[N, 4]`` tensor (a ``BoundingBoxes`` loses its subclass).

    Args:
        boxes: a tensor [N, 4] XYXY (N may be 0).
        name: how the caller's argument is called in the error message.
        valid: also require every box to be finite with ``x2 > x1`` and ``y2 > y1``.
        allow_empty: with ``valid``, accept boxes of zero width or height (``x2 >= x1``, ``y2 >= y1``).

    Returns:
        Tensor float32 [N, 4].

    Raises:
        ValueError naming ``name`` when ``boxes`` is not a tensor of shape ``[N, 4]``, or (with
        ``valid``) naming the first bad box, its index and its values.
    """
    if not isinstance(boxes, Tensor) or boxes.dim() != 2 or boxes.shape[1] != 4:
        shape = list(boxes.shape) if isinstance(boxes, Tensor) else type(boxes).__name__
        raise ValueError(f"{name} must be a float tensor of shape [N, 4] (x1, y1, x2, y2), got {shape}")
    boxes = boxes.as_subclass(Tensor).float()
    if valid:
        check_valid_boxes(boxes, name, allow_empty=allow_empty)
    return boxes


def check_valid_boxes(boxes: Tensor, name: str = "boxes", *, allow_empty: bool = False) -> None:
    """Raise ``ValueError`` naming ``name`` and the first box [N, 4] that is not finite XYXY.

    A box is valid when its four coordinates are finite and ``x2 > x1``, ``y2 > y1``
    (``>=`` with ``allow_empty``). When the bad box has its corners in the wrong order and every
    box reads as ``(x, y, w, h)`` with ``w, h >= 0``, the message adds a hint to convert them.
    """
    boxes = boxes.detach()
    finite = torch.isfinite(boxes).all(dim=1)
    width, height = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    ordered = (width >= 0) & (height >= 0) if allow_empty else (width > 0) & (height > 0)
    bad = ~(finite & ordered)
    if not bad.any():
        return
    first = int(bad.nonzero()[0])
    values = [round(v, 4) for v in boxes[first].tolist()]
    relation = ">=" if allow_empty else ">"
    expected = f"(x1, y1, x2, y2) boxes with x2 {relation} x1, y2 {relation} y1 and finite coordinates"
    inverted = bool(width[first] < 0 or height[first] < 0)
    reason = (
        "NaN or infinite coordinates"
        if not finite[first]
        else "x2 < x1 or y2 < y1"
        if inverted
        else "zero width or height"
    )
    message = (
        f"{name} must hold {expected}; {int(bad.sum())} of {len(boxes)} box(es) do not, "
        f"the first is box {first} = {values} ({reason})"
    )
    if inverted and torch.isfinite(boxes).all() and (boxes[:, 2:] >= 0).all():
        message += f"; {XYWH_HINT}"
    raise ValueError(message)
