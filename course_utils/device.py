"""Device choice and seeding.

Every lesson runs the same code on a GPU or a CPU: ``get_device()`` picks the best
available accelerator (CUDA, then Apple's MPS, then the CPU) and ``seed_everything()``
makes CPU runs repeatable.
"""

from __future__ import annotations

import os
import random

import numpy as np
import torch

_announced: set[str] = set()


def get_device(verbose: bool = True) -> torch.device:
    """Return the best available device: ``cuda``, then ``mps``, then ``cpu``.

    The environment variable ``COURSE_DEVICE`` (``cuda``, ``mps`` or ``cpu``) overrides the
    choice, e.g. to compare CPU and GPU runs on one machine. The choice is printed once per
    process (with the GPU's name on CUDA) when ``verbose`` is true.
    """
    wanted = os.environ.get("COURSE_DEVICE", "").strip().lower()
    if wanted:
        if wanted not in ("cuda", "mps", "cpu"):
            raise ValueError(
                f"COURSE_DEVICE={wanted!r} is not a device name; expected one of 'cuda', 'mps', 'cpu'"
            )
        if wanted == "cuda" and not torch.cuda.is_available():
            raise RuntimeError("COURSE_DEVICE='cuda' but torch.cuda.is_available() is False")
        if wanted == "mps" and not _mps_available():
            raise RuntimeError("COURSE_DEVICE='mps' but the MPS backend is not available")
        device = torch.device(wanted)
    elif torch.cuda.is_available():
        device = torch.device("cuda")
    elif _mps_available():
        device = torch.device("mps")
    else:
        device = torch.device("cpu")
    if verbose and device.type not in _announced:
        _announced.add(device.type)
        print(f"Using device: {describe_device(device)}")
    return device


def describe_device(device: torch.device) -> str:
    """A one-line human description, e.g. ``'cuda (NVIDIA H100 80GB HBM3)'`` or ``'cpu (2 threads)'``."""
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    if device.type == "cpu":
        return f"cpu ({torch.get_num_threads()} threads)"
    return device.type


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def seed_everything(seed: int = 0) -> None:
    """Seed Python's, NumPy's and torch's random generators (all devices).

    On the CPU this makes a run repeatable: the same seed gives the same data, the same
    initial weights and the same training history. cuDNN is also put in deterministic mode,
    which makes most GPU runs repeatable too (some CUDA kernels stay non-deterministic).
    """
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
