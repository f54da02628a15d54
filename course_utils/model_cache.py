"""Train a lesson's model once: a cache of trained weights keyed by the training recipe.

``cached_training(name, recipe, model, train)`` looks for an entry made from the same recipe:
on a hit it loads the stored weights into ``model`` and skips ``train``; on a miss it calls
``train()``, times it and stores the result. ``make notebooks`` runs the solved lessons on an
empty cache (their committed outputs show real training); later runs reuse the entries.

Entries: ``$COURSE_CACHE/models/<name>-<first 16 hex of the key>.pt`` (``cache_dir("models")``).
The key (``recipe_key``) is the SHA-256 of the canonical JSON (sorted keys, no spaces) of the
recipe (any JSON-able mapping: builder and arguments, data arguments and seed, epochs,
optimizer, profile; tuples count as lists, and ``1`` differs from ``1.0``) together with the
torch and torchvision versions and ``MODEL_CODE_VERSION``: bump it whenever the course's model
or training code changes what a recipe trains, and every old entry is ignored.

An entry (loaded with ``torch.load(..., weights_only=True)``: tensors and plain values only)
holds ``format``, the full ``key``, ``name``, the canonical ``recipe`` and ``versions`` (for
people reading it), ``state_dict`` (the weights, on the CPU), ``history`` (the ``History``
records as a list of dicts, or None) and ``seconds`` (wall-clock time of the original
training). It is written to a temporary file in the same folder, then renamed over the entry
with ``os.replace``: an entry is complete or absent. An entry that cannot be used (unreadable,
wrong contents, weights that do not fit the model) is reported with a warning and retrained.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import re
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from numbers import Integral, Real
from pathlib import Path
from typing import Any

import torch
import torchvision
from torch import nn

from course_utils.paths import cache_dir
from course_utils.train import History, atomic_save

__all__ = ["MODEL_CODE_VERSION", "TrainedModel", "cached_training", "clear_model_cache", "recipe_key"]

MODEL_CODE_VERSION = 1
_FORMAT = 1
_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
_RETRAIN_HINT = "`make clean-cache` or clear_model_cache() retrains"


@dataclass(frozen=True)
class TrainedModel:
    """What ``cached_training`` did: the history, the original training time, and whether it
    came from the cache (``cached``), and the entry's file (``path``; not written when
    ``cache=False``). ``history`` is None when the train function returned None."""

    history: History | None
    seconds: float
    cached: bool
    path: Path

    def summary(self) -> str:
        """One line for a lesson's output, e.g. ``"trained in 174 s"``."""
        seconds = f"{self.seconds:.1f}" if self.seconds < 10 else f"{self.seconds:.0f}"
        text = f"trained in {seconds} s"
        return f"{text} (loaded from the model cache; {_RETRAIN_HINT})" if self.cached else text


def _plain(value: Any, where: str) -> Any:
    """``value`` as plain JSON data (tuples -> lists); TypeError naming ``where`` otherwise."""
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, Mapping):
        for key in value:
            if not isinstance(key, str):
                raise TypeError(f"{where} has the key {key!r}; recipe keys must be strings")
        return {key: _plain(item, f"{where}[{key!r}]") for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item, f"{where}[{i}]") for i, item in enumerate(value)]
    raise TypeError(
        f"{where} = {value!r} ({type(value).__name__}) is not JSON-serialisable; a recipe holds "
        "only str, int, float, bool, None, lists, tuples and dicts (e.g. write str(path), int(n), "
        "or the builder's name instead of the function)"
    )


def _canonical(recipe: Mapping[str, Any]) -> dict[str, Any]:
    if not isinstance(recipe, Mapping):
        raise TypeError(f"recipe must be a mapping (a dict), got {type(recipe).__name__}")
    return _plain(recipe, "recipe")


def _versions() -> dict[str, Any]:
    return {
        "torch": str(torch.__version__),
        "torchvision": str(torchvision.__version__),
        "model_code": MODEL_CODE_VERSION,
    }


def recipe_key(recipe: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of the canonical JSON of ``recipe`` plus the torch, torchvision and model-code
    versions. Raises TypeError naming the recipe key whose value is not JSON-serialisable."""
    payload = {"recipe": _canonical(recipe), "versions": _versions()}
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _model_device(model: nn.Module) -> torch.device:
    first = next(itertools.chain(model.parameters(), model.buffers()), None)
    return first.device if first is not None else torch.device("cpu")


def _history_records(history: History | None) -> list[dict[str, Any]] | None:
    """The History's records as plain dicts of numbers (what ``weights_only`` loading accepts)."""
    if history is None:
        return None
    if not isinstance(history, History):
        raise TypeError(
            f"train() must return a course_utils.train.History or None, got {type(history).__name__}"
        )
    for i, record in enumerate(history.records):
        for key, value in record.items():
            if not isinstance(key, str) or not isinstance(value, Real):
                raise TypeError(f"history record {i} has {key!r} = {value!r}; records hold numbers only")
    return [
        {k: int(v) if isinstance(v, Integral) else float(v) for k, v in r.items()} for r in history.records
    ]


def _check_entry(entry: Any, key: str, model: nn.Module) -> None:
    """Raise ValueError saying why ``entry`` is not a usable entry for ``key`` and ``model``."""
    if not isinstance(entry, dict) or entry.get("format") != _FORMAT:
        raise ValueError("not a model-cache entry of this format")
    if entry.get("key") != key:
        raise ValueError("it was stored for another recipe (its key differs)")
    history, seconds = entry.get("history"), entry.get("seconds")
    if history is not None and not (isinstance(history, list) and all(isinstance(r, dict) for r in history)):
        raise ValueError("its history is not a list of records")
    if not isinstance(seconds, float) or not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"its training time is {seconds!r}")
    state, expected = entry.get("state_dict"), model.state_dict()
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError("its state_dict is not a dict of tensors")
    missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    if missing or unexpected:
        raise ValueError(
            f"its weights do not fit the model (missing {missing[:5]}, unexpected {unexpected[:5]})"
        )
    for name, tensor in expected.items():
        if state[name].shape != tensor.shape:
            shapes = f"{list(state[name].shape)} stored, {list(tensor.shape)} in the model"
            raise ValueError(f"its weight {name!r} has the wrong shape ({shapes})")


def _load_entry(path: Path, key: str, model: nn.Module) -> TrainedModel | None:
    """Load the entry into ``model``; None (after a warning) when it cannot be used."""
    try:
        entry = torch.load(path, map_location=_model_device(model), weights_only=True)
        _check_entry(entry, key, model)
        model.load_state_dict(entry["state_dict"], strict=True)
    except Exception as error:  # a truncated file, a foreign pickle, weights that do not fit
        warnings.warn(
            f"the model cache entry '{path}' cannot be used ({type(error).__name__}: {error}); "
            "retraining the model and overwriting the entry",
            stacklevel=3,
        )
        return None
    history = None if entry["history"] is None else History([dict(r) for r in entry["history"]])
    return TrainedModel(history=history, seconds=entry["seconds"], cached=True, path=path)


def cached_training(
    name: str,
    recipe: Mapping[str, Any],
    model: nn.Module,
    train: Callable[[], History | None],
    *,
    cache: bool = True,
) -> TrainedModel:
    """Train ``model`` with ``train()`` once per recipe; later calls load the stored weights.

    ``name`` labels the file (letters, digits, ``_``, ``-``: ``"faster_rcnn_shapes"``); ``recipe``
    is a JSON-able mapping of all that decides the weights (see the module docstring); ``train()``
    trains ``model`` in place and returns its History or None. On a hit ``train`` is not called
    and the weights load strictly onto the device ``model`` is on (move it there first).
    ``cache=False`` always trains and writes nothing (``path``: where the entry would be).
    Raises ValueError for a bad name, TypeError for a recipe value that is not JSON-serialisable
    (naming its key) or a ``train()`` that returns neither a History nor None.
    """
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValueError(f"name must be 1 to 64 letters, digits, '_' or '-' (a file name), got {name!r}")
    key = recipe_key(recipe)
    path = cache_dir("models") / f"{name}-{key[:16]}.pt"
    if cache and path.is_file():
        loaded = _load_entry(path, key, model)
        if loaded is not None:
            return loaded
    start = time.perf_counter()
    history = train()
    if (device := _model_device(model)).type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - start
    records = _history_records(history)  # the same TypeError with cache=False as with the cache
    if cache:
        state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
        about = {"format": _FORMAT, "key": key, "name": name, "recipe": _canonical(recipe)}
        extra = {"versions": _versions(), "history": records, "seconds": seconds}
        atomic_save(path=path, state={**about, **extra, "state_dict": state})
    return TrainedModel(history=history, seconds=seconds, cached=False, path=path)


def clear_model_cache() -> int:
    """Delete every model-cache entry (and leftover temporary files); return how many entries."""
    folder = cache_dir("models")
    for tmp in folder.glob(".*.tmp"):
        tmp.unlink(missing_ok=True)
    entries = [p for p in folder.glob("*.pt") if p.is_file()]
    for entry in entries:
        entry.unlink(missing_ok=True)
    return len(entries)
