"""The course's one check of a box tensor: ``[N, 4]`` boxes ``(x1, y1, x2, y2)``.

Helpers that take boxes from a learner (``evaluate``, ``single_stage``, ``playgrounds``) call
``as_box_tensor`` so that a wrong shape or type gets the same clear error everywhere.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor


def as_box_tensor(boxes: Any, name: str = "boxes") -> Tensor:
    """``boxes`` as a plain float ``[N, 4]`` tensor (a ``BoundingBoxes`` loses its subclass).

    Raises ``ValueError`` naming ``name`` when ``boxes`` is not a tensor of shape ``[N, 4]``.
    """
    if not isinstance(boxes, Tensor) or boxes.dim() != 2 or boxes.shape[1] != 4:
        shape = list(boxes.shape) if isinstance(boxes, Tensor) else type(boxes).__name__
        raise ValueError(f"{name} must be a float tensor of shape [N, 4] (x1, y1, x2, y2), got {shape}")
    return boxes.as_subclass(Tensor).float()
