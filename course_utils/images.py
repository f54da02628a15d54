"""The course's check of an image's pixel values: floats are expected in [0, 1].

torchvision's detection models, the course's datasets and its drawing helpers all take float images
in [0, 1] (or uint8 in 0..255). A float image in 0..255 is the classic silent mistake: a detector then
sees a white glare, a figure shows a white square. Helpers that take an image call ``check_pixel_range``
so that the mistake is an error naming the argument and the fix.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

TOLERANCE = 1e-3  # resampling and augmentations may overshoot [0, 1] by rounding


def check_pixel_range(image: Any, name: str = "image") -> None:
    """Raise ``ValueError`` naming ``name`` when a float image is not finite or not within [0, 1].

    Args:
        image: tensor [..., H, W] or numpy array; integer images (uint8 0..255) are not checked.
        name: how the caller's argument is called in the message.
    """
    values = image.detach().cpu().as_subclass(torch.Tensor).numpy() if torch.is_tensor(image) else np.asarray(image)
    if values.dtype.kind != "f" or values.size == 0:
        return
    if not np.isfinite(values).all():
        raise ValueError(f"{name} holds NaN or infinite pixel values; expected floats in [0, 1]")
    low, high = float(values.min()), float(values.max())
    if high > 1 + TOLERANCE:
        raise ValueError(
            f"{name} must hold floats in [0, 1], got values up to {high:g}: a 0..255 image? "
            "Divide it by 255, or pass it as uint8."
        )
    if low < -TOLERANCE:
        raise ValueError(
            f"{name} must hold floats in [0, 1], got values down to {low:g}: a normalised image? "
            "Pass the image before normalisation (torchvision's detectors normalise it themselves)."
        )
