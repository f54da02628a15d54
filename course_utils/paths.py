"""Where things live: the repository root, the data folder and the download cache.

The functions work from any working directory (a notebook's kernel runs in ``notebooks/``,
pytest in the repository root) and on Colab, where the course is cloned under ``/content``.
Environment variables override every location:

* ``COURSE_ROOT``  - the repository root (the folder holding ``data/`` and ``notebooks/``);
* ``COURSE_CACHE`` - the download cache (default ``<root>/.cache``; git ignores it).
  Torch's own cache (``$TORCH_HOME``, pretrained weights) defaults to ``<cache>/torch``.
"""

from __future__ import annotations

import os
from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent


def repo_root() -> Path:
    """The course's root folder (it holds ``data/``, ``notebooks/`` and ``course_utils/``).

    Raises:
        FileNotFoundError: ``COURSE_ROOT`` points nowhere useful, or the package is installed
            without its repository (e.g. from a wheel) and ``COURSE_ROOT`` is not set.
    """
    override = os.environ.get("COURSE_ROOT")
    if override:
        root = Path(override).expanduser().resolve()
        if not (root / "data").is_dir():
            raise FileNotFoundError(
                f"COURSE_ROOT={override!r} has no data/ folder; it must point at the course repository"
            )
        return root
    root = _PACKAGE_DIR.parent
    if not (root / "data").is_dir():
        raise FileNotFoundError(
            f"course_utils is installed at {_PACKAGE_DIR} without the course repository around it; "
            "install it with `pip install -e .` from a clone, or set COURSE_ROOT to the clone"
        )
    return root


def data_dir() -> Path:
    """The committed data folder (quiz banks, small samples): ``<root>/data``."""
    return repo_root() / "data"


def cache_dir(*parts: str) -> Path:
    """The download cache (created on demand), or a sub-folder of it.

    ``cache_dir("pennfudan")`` -> ``<cache>/pennfudan``. Datasets and weights downloaded by the
    lessons go here; nothing in it is committed.
    """
    base = os.environ.get("COURSE_CACHE")
    path = Path(base).expanduser() if base else repo_root() / ".cache"
    path = path.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def torch_home() -> Path:
    """Torch's cache for pretrained weights: ``$TORCH_HOME`` if set, else ``<cache>/torch``."""
    env = os.environ.get("TORCH_HOME")
    if env:
        return Path(env).expanduser()
    return cache_dir("torch")


def in_colab() -> bool:
    """True inside Google Colab."""
    try:
        import google.colab  # noqa: F401
    except ImportError:
        return False
    return True
