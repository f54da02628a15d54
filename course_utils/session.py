"""The one call at the top of every lesson: device, profile and seed, printed together."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch
import torchvision

from .device import describe_device, get_device, seed_everything
from .profile import Profile, get_profile


@dataclass(frozen=True)
class Lesson:
    """What a lesson runs with: ``device`` (torch.device), ``profile`` (sizes) and ``seed``."""

    device: torch.device
    profile: Profile
    seed: int

    def summary(self) -> str:
        return (
            f"device: {describe_device(self.device)} | profile: {self.profile} | seed: {self.seed} | "
            f"torch {torch.__version__}, torchvision {torchvision.__version__}"
        )


def learner_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                    line: str | None = None) -> str:
    """A warning as a learner reads it: its kind and message, without the package's file and line."""
    return f"{category.__name__}: {message}\n"


def start_lesson(seed: int = 0) -> Lesson:
    """Pick the device, read the run profile, seed every generator, and print the summary.

    Warnings are printed from here on as "Kind: message", without the file paths of the package.
    """
    warnings.formatwarning = learner_warning
    device = get_device(verbose=False)
    profile = get_profile()
    seed_everything(seed)
    lesson = Lesson(device=device, profile=profile, seed=seed)
    print(lesson.summary())
    return lesson
