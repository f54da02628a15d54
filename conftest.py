"""Test-run set-up shared by the unit tests (tests/) and the notebook runs (notebooks/).

Every test process, and every process it starts (notebook kernels included), runs with
the ``ci`` profile and with the network guard on: a lesson that tries to download
something fails at once with a clear message instead of hanging.
"""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent


def pytest_configure(config) -> None:  # noqa: ARG001 - pytest hook signature
    os.environ.setdefault("COURSE_PROFILE", "ci")
    os.environ.setdefault("MPLBACKEND", "Agg")
    # Idle OpenMP threads sleep instead of spinning: on a small, shared machine spinning threads
    # made training steps of the small models ten times slower.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    os.environ["COURSE_OFFLINE"] = "1"
    guard_dir = str(ROOT / "tests" / "offline")
    paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    if guard_dir not in paths:
        os.environ["PYTHONPATH"] = os.pathsep.join([guard_dir, *paths])

    from course_utils.offline import block_network

    block_network()
