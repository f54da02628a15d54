"""Run profiles: one code path, sized for the machine it runs on.

A profile changes sizes (number of images, epochs, image resolution), never the logic:

* ``ci``  - the smallest run that still shows the lesson; the test suite uses it;
* ``cpu`` - a laptop or a free Colab CPU runtime;
* ``gpu`` - a CUDA or MPS machine.

The profile is read from the environment variable ``COURSE_PROFILE``; without it, it is
``gpu`` when an accelerator is present and ``cpu`` otherwise.

    >>> profile = get_profile()
    >>> n_images = profile.pick(ci=256, cpu=2_000, gpu=10_000)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TypeVar

import torch

PROFILES: tuple[str, ...] = ("ci", "cpu", "gpu")
ENV_VAR = "COURSE_PROFILE"

T = TypeVar("T")


@dataclass(frozen=True)
class Profile:
    """A named run profile; ``pick`` returns the value meant for it."""

    name: str

    def __post_init__(self) -> None:
        if self.name not in PROFILES:
            raise ValueError(f"unknown run profile {self.name!r}; valid profiles are: {', '.join(PROFILES)}")

    def pick(self, *, ci: T, cpu: T, gpu: T) -> T:
        """Return the value for this profile, e.g. ``profile.pick(ci=2, cpu=10, gpu=30)`` epochs."""
        return {"ci": ci, "cpu": cpu, "gpu": gpu}[self.name]

    @property
    def is_ci(self) -> bool:
        return self.name == "ci"

    def __str__(self) -> str:
        return self.name


def get_profile(name: str | None = None) -> Profile:
    """Return the run profile.

    Args:
        name: a profile name; when None, ``$COURSE_PROFILE`` is used, and when that is unset or
            empty the profile follows the device (``gpu`` on CUDA/MPS, else ``cpu``).

    Raises:
        ValueError: the name (argument or environment variable) is not one of ``PROFILES``.
    """
    source = "argument 'name'"
    if name is None:
        name = os.environ.get(ENV_VAR, "").strip()
        source = f"environment variable {ENV_VAR}"
    if not name:
        return Profile("gpu" if _has_accelerator() else "cpu")
    if name.lower() not in PROFILES:
        raise ValueError(
            f"{source} names an unknown run profile {name!r}; valid profiles are: {', '.join(PROFILES)}"
        )
    return Profile(name.lower())


def _has_accelerator() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return torch.cuda.is_available() or bool(mps is not None and mps.is_available())
