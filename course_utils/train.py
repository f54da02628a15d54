"""One training loop for every lesson: ``fit``.

``fit`` trains two kinds of model with the same code:

* torchvision detection models (the default): a batch is ``(images, targets)`` as made by
  ``course_utils.data.detection_collate``, and in train mode ``model(images, targets)``
  returns a dict of named losses (``loss_classifier``, ``loss_box_reg``, ...);
* anything else, through ``loss_fn(model, batch, device) -> dict[str, Tensor]``, e.g. the
  single-stage detector's ``{"classification": ..., "localization": ...}``.

The total that is optimised is the sum of the named losses. Each epoch ``fit`` shows a
progress bar with the running loss, optionally validates (``val_fn``), steps the
scheduler, appends one record to the ``History`` and writes a checkpoint. Per iteration::

    batch -> device -> [autocast on CUDA] losses = loss_fn(...) -> total = sum(losses)
          -> check every loss is finite -> zero_grad -> backward (scaled by GradScaler)
          -> check every gradient is finite (without GradScaler) -> [clip gradients]
          -> optimizer step (warmup factor applied) -> [scheduler step]

A finite loss can still have a NaN or infinite gradient (``sqrt(0)``, ``log(0)``, a division by
zero, ``acos(1)`` inside the loss): without the check the optimizer would write NaN into every
weight and the next checkpoint would save them. With AMP on CUDA the GradScaler already finds
inf/NaN gradients (it expects them while it tunes its scale) and skips that step, so the check
runs only where no scaler is used (the CPU, MPS, CUDA with ``amp=False``).

Learning rate: ``warmup_iters`` ramps the rate linearly from ``lr / warmup_iters`` to ``lr``
over the first ``warmup_iters`` optimizer steps (counted across epochs). The warmup is a
factor applied on top of whatever the scheduler set and removed right after the step, so it
composes with any scheduler: the scheduler never sees the warmed-up rate. The scheduler is
stepped once per epoch (after validation) by default, or after every optimizer step with
``scheduler_interval="iteration"`` (e.g. ``OneCycleLR``).

Checkpoints and exact resume: with ``checkpoint_dir`` set, the file
``checkpoint_dir/last.pt`` is rewritten after every epoch, atomically (written to a temporary
file in the same folder, then renamed with ``os.replace``), so a crash or a Colab disconnect
mid-write leaves the previous checkpoint intact. It holds the model, optimizer, scheduler and
GradScaler states, the history, the epoch and step counters and every random-number state
that training consumes: torch (CPU, and CUDA/MPS when present), NumPy, Python's ``random``,
and the ``torch.Generator`` of the data loader and of its sampler when the loader has one.
Calling ``fit`` again with the same ``checkpoint_dir`` (``resume=True``) continues after the
last finished epoch; on the CPU the resumed run gives the same history and the same weights
as an uninterrupted one, with ``shuffle=True`` too. This works because the loader's shuffling
draws its seed from a generator when each epoch starts: from the loader's own ``generator``
when one is given (``DataLoader(..., generator=torch.Generator().manual_seed(0))``,
recommended: then the data order does not depend on what else used the global generator)
or, without one, from torch's global generator; both states are saved at the end of every
epoch and restored on resume. An interrupted epoch is run again from its start. Not
restored: the state of ``persistent_workers`` (their seeds are drawn once per loader), so
random augmentations in persistent workers differ after a resume.
"""

from __future__ import annotations

import math
import os
import random
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

__all__ = [
    "CHECKPOINT_NAME",
    "History",
    "NonFiniteGradientError",
    "NonFiniteLossError",
    "fit",
    "load_checkpoint",
    "to_device",
]

CHECKPOINT_NAME = "last.pt"
SCHEDULER_INTERVALS: tuple[str, ...] = ("epoch", "iteration")
_RESERVED_KEYS = ("epoch", "loss", "lr", "seconds", "val_seconds", "grad_norm")
_CHECKPOINT_FORMAT = 1

LossFn = Callable[[nn.Module, Any, torch.device], Mapping[str, Tensor]]
ValFn = Callable[[nn.Module, int], Mapping[str, float]]


class NonFiniteLossError(FloatingPointError):
    """Training stopped because a loss became NaN or infinite.

    Attributes: ``loss_name`` (the first non-finite loss, ``"loss"`` for the total),
    ``epoch`` (1-based), ``iteration`` (1-based, within the epoch) and ``losses`` (every named
    loss's value at that iteration).
    """

    def __init__(self, loss_name: str, epoch: int, iteration: int, losses: dict[str, float]):
        self.loss_name = loss_name
        self.epoch = epoch
        self.iteration = iteration
        self.losses = losses
        values = ", ".join(f"{k}={v:.4g}" for k, v in losses.items())
        super().__init__(
            f"loss {loss_name!r} is {losses[loss_name]} at epoch {epoch}, iteration {iteration} "
            f"({values}); training stopped before this step changed the weights. Usual causes: "
            "a learning rate too high (lower it, or use warmup_iters), exploding gradients "
            "(set max_grad_norm), or bad targets (degenerate or NaN boxes)."
        )


class NonFiniteGradientError(NonFiniteLossError):
    """Training stopped because a gradient became NaN or infinite while every loss was finite.

    A ``NonFiniteLossError`` (one ``except`` catches both). Attributes: ``parameter`` (the name
    of the first parameter whose gradient is not finite), ``epoch``, ``iteration``, ``losses``
    (every named loss's value, all finite) and ``loss_name`` (``"loss"``, the total).
    """

    def __init__(self, parameter: str, epoch: int, iteration: int, losses: dict[str, float], detail: str):
        self.parameter = parameter
        self.loss_name = "loss"
        self.epoch = epoch
        self.iteration = iteration
        self.losses = losses
        values = ", ".join(f"{k}={v:.4g}" for k, v in losses.items())
        FloatingPointError.__init__(
            self,
            f"the gradient of parameter {parameter!r} holds {detail} at epoch {epoch}, iteration "
            f"{iteration}, although every loss is finite ({values}); training stopped before this "
            "step changed the weights. Usual causes: an operation in the loss or model whose "
            "derivative is infinite at this input (sqrt(0), log(0), x / 0, acos(1), pow(0, <1)): "
            "add a small eps or clamp its input.",
        )


@dataclass
class History:
    """Per-epoch training records, one dict per finished epoch.

    Keys of a record: ``epoch`` (1-based); ``loss`` (mean total loss over the epoch's
    iterations) and the mean of each named loss; the metrics returned by ``val_fn``;
    ``grad_norm`` (mean gradient norm before clipping, when ``max_grad_norm`` is set); ``lr``
    (learning rate of the first parameter group at the epoch's last step); ``seconds``
    (training time of the epoch) and ``val_seconds`` (time spent in ``val_fn``).
    """

    records: list[dict[str, float]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.records)

    @property
    def last(self) -> dict[str, float]:
        """The record of the last finished epoch."""
        if not self.records:
            raise IndexError("the history is empty: no epoch has finished yet")
        return self.records[-1]

    def keys(self) -> list[str]:
        """Every key found in the records, in first-seen order."""
        seen: dict[str, None] = {}
        for record in self.records:
            seen.update(dict.fromkeys(record))
        return list(seen)

    def series(self, key: str) -> list[float]:
        """The values of ``key``, one per epoch (NaN where an epoch lacks it)."""
        if key not in self.keys():
            raise KeyError(f"no {key!r} in the history; its keys are {self.keys()}")
        return [float(record.get(key, math.nan)) for record in self.records]

    def table(self, keys: Iterable[str] | None = None, digits: int = 4) -> str:
        """The history as a plain-text table, one row per epoch."""
        keys = list(keys) if keys is not None else self.keys()
        rows = [[_format_cell(record.get(k, math.nan), digits) for k in keys] for record in self.records]
        widths = [max([len(k)] + [len(r[i]) for r in rows]) for i, k in enumerate(keys)]
        lines = ["  ".join(k.rjust(w) for k, w in zip(keys, widths, strict=True))]
        lines += ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
        return "\n".join(lines)

    def __repr__(self) -> str:
        last = f", last={self.records[-1]}" if self.records else ""
        return f"History(epochs={len(self.records)}{last})"


def _format_cell(value: Any, digits: int) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return f"{float(value):.{digits}g}"


def to_device(obj: Any, device: torch.device | str) -> Any:
    """Move every tensor in ``obj`` (nested lists, tuples and dicts) to ``device``.

    tv_tensors keep their type (``BoundingBoxes`` stay ``BoundingBoxes``); anything that is
    not a tensor is returned unchanged.
    """
    if isinstance(obj, Tensor):
        # Asynchronous copies only to CUDA, where they are safe and overlap with compute.
        return obj.to(device, non_blocking=torch.device(device).type == "cuda")
    if isinstance(obj, Mapping):
        return {k: to_device(v, device) for k, v in obj.items()}
    if isinstance(obj, list):
        return [to_device(v, device) for v in obj]
    if isinstance(obj, tuple):
        return tuple(to_device(v, device) for v in obj)
    return obj


def _detection_losses(model: nn.Module, batch: Any, device: torch.device) -> Mapping[str, Tensor]:
    """The default ``loss_fn``: torchvision detection models in train mode."""
    if not isinstance(batch, (tuple, list)) or len(batch) != 2:
        raise TypeError(
            "without loss_fn, fit expects each batch to be (images, targets) as made by "
            "course_utils.data.detection_collate (DataLoader(..., collate_fn=detection_collate)); "
            f"got a {type(batch).__name__}"
            + (f" of length {len(batch)}" if hasattr(batch, "__len__") else "")
        )
    images, targets = batch
    images = to_device(list(images), device)
    targets = [to_device(dict(t), device) for t in targets]
    return model(images, targets)


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a checkpoint written by ``fit`` (a file, or the folder holding ``last.pt``).

    Returns the checkpoint dict (tensors on the CPU): ``epoch``, ``step``, ``model``,
    ``optimizer``, ``scheduler``, ``scaler``, ``history`` (list of records), ``rng``. Loaded
    with ``weights_only=True``: tensors and plain Python values only, no arbitrary code.
    """
    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT_NAME
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at '{path.name}' (expected a file written by fit)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # a truncated file or a foreign pickle
        raise RuntimeError(
            f"could not read the checkpoint '{path.name}' ({type(error).__name__}: {error}); "
            "delete it or call fit with resume=False to start over"
        ) from error
    if not isinstance(state, dict) or state.get("format") != _CHECKPOINT_FORMAT:
        raise RuntimeError(f"'{path.name}' is not a checkpoint written by course_utils.train.fit")
    return state


def atomic_save(state: dict[str, Any], path: Path) -> None:
    """torch.save to a temporary file in the same folder, then rename it over ``path`` (a reader
    never sees a half-written file; a failure leaves the old file and no temporary file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as file:
            torch.save(state, file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _loader_generators(loader: Any) -> list[torch.Generator]:
    """The torch.Generators a DataLoader draws its shuffling and worker seeds from."""
    found: list[torch.Generator] = []
    sampler = getattr(loader, "sampler", None)
    batch_sampler = getattr(loader, "batch_sampler", None)
    for owner in (loader, sampler, getattr(batch_sampler, "sampler", None), batch_sampler):
        gen = getattr(owner, "generator", None)
        if isinstance(gen, torch.Generator) and all(gen is not g for g in found):
            found.append(gen)
    return found


def _rng_state(generators: list[torch.Generator]) -> dict[str, Any]:
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {
            "name": np_state[0],
            "keys": torch.from_numpy(np_state[1].astype(np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "torch": torch.get_rng_state(),
        "loader": [g.get_state() for g in generators],
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    mps = getattr(torch, "mps", None)
    if mps is not None and getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        state["mps"] = mps.get_rng_state()
    return state


def _set_rng_state(state: dict[str, Any], generators: list[torch.Generator]) -> None:
    random.setstate(_as_tuple(state["python"]))
    np_state = state["numpy"]
    np.random.set_state(
        (
            np_state["name"],
            np_state["keys"].numpy().astype(np.uint32),
            np_state["pos"],
            np_state["has_gauss"],
            np_state["cached_gaussian"],
        )
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])
    if "mps" in state and getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        torch.mps.set_rng_state(state["mps"])
    saved = state["loader"]
    if len(saved) != len(generators):
        raise RuntimeError(
            f"the checkpoint saved {len(saved)} data-loader generator(s) but this train_loader has "
            f"{len(generators)}: resume with a loader built the same way (same generator= argument)"
        )
    for gen, gen_state in zip(generators, saved, strict=True):
        gen.set_state(gen_state)


def _as_tuple(obj: Any) -> Any:
    """random.setstate needs tuples; a checkpoint may hand back lists."""
    return tuple(_as_tuple(x) for x in obj) if isinstance(obj, (list, tuple)) else obj


def _check_arguments(
    model: Any,
    train_loader: Any,
    epochs: Any,
    optimizer: Any,
    loss_fn: Any,
    val_fn: Any,
    scheduler: Any,
    scheduler_interval: Any,
    warmup_iters: Any,
    max_grad_norm: Any,
) -> None:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(epochs, int) or isinstance(epochs, bool) or epochs < 1:
        raise ValueError(f"epochs must be an int >= 1, got {epochs!r}")
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(f"optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}")
    model_params = {id(p) for p in model.parameters()}
    opt_params = [p for group in optimizer.param_groups for p in group["params"]]
    if not any(id(p) in model_params for p in opt_params):
        raise ValueError(
            "optimizer holds none of the model's parameters: was it built for another model "
            "instance? Build it after the model, e.g. torch.optim.SGD(model.parameters(), lr=...)"
        )
    if not hasattr(train_loader, "__iter__"):
        raise TypeError(f"train_loader must be iterable (a DataLoader), got {type(train_loader).__name__}")
    try:
        n_batches = len(train_loader)
    except TypeError:  # an iterable-style loader without a length
        n_batches = None
    if n_batches == 0:
        raise ValueError(
            "train_loader is empty (0 batches): check the dataset's size, and that drop_last=True "
            "is not dropping the only (incomplete) batch"
        )
    if loss_fn is not None and not callable(loss_fn):
        raise TypeError(f"loss_fn must be callable(model, batch, device) or None, got {loss_fn!r}")
    if val_fn is not None and not callable(val_fn):
        raise TypeError(f"val_fn must be callable(model, epoch) or None, got {val_fn!r}")
    if scheduler is not None:
        if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            raise TypeError(
                "ReduceLROnPlateau needs a metric at every step, which fit does not choose for you; "
                "use a schedule (StepLR, CosineAnnealingLR, OneCycleLR, ...) instead"
            )
        if not (hasattr(scheduler, "step") and hasattr(scheduler, "state_dict")):
            raise TypeError(
                f"scheduler must be a torch.optim.lr_scheduler object, got {type(scheduler).__name__}"
            )
        if getattr(scheduler, "optimizer", optimizer) is not optimizer:
            raise ValueError("scheduler was built for another optimizer than the one passed to fit")
    if scheduler_interval not in SCHEDULER_INTERVALS:
        raise ValueError(
            f"scheduler_interval must be one of {SCHEDULER_INTERVALS}, got {scheduler_interval!r}"
        )
    if not isinstance(warmup_iters, int) or isinstance(warmup_iters, bool) or warmup_iters < 0:
        raise ValueError(f"warmup_iters must be an int >= 0, got {warmup_iters!r}")
    if max_grad_norm is not None and not (
        isinstance(max_grad_norm, (int, float)) and math.isfinite(max_grad_norm) and max_grad_norm > 0
    ):
        raise ValueError(f"max_grad_norm must be a positive finite number or None, got {max_grad_norm!r}")


def _named_losses(raw: Any, source: str) -> dict[str, Tensor]:
    if not isinstance(raw, Mapping):
        hint = (
            " (a torchvision detection model returns its losses only in train mode, and only when "
            "given targets: model(images, targets))"
            if source.startswith("model")
            else ""
        )
        raise TypeError(f"{source} must return a dict of named loss tensors, got {type(raw).__name__}{hint}")
    if not raw:
        raise ValueError(f"{source} returned an empty dict: there is no loss to optimise")
    for name, value in raw.items():
        if not isinstance(name, str):
            raise TypeError(f"{source} returned a loss named {name!r}; loss names must be strings")
        if not isinstance(value, Tensor) or value.numel() != 1:
            what = list(value.shape) if isinstance(value, Tensor) else type(value).__name__
            raise TypeError(f"{source} returned loss {name!r} = {what}; each loss must be a scalar tensor")
    reserved = [k for k in raw if k in _RESERVED_KEYS and not (k == "loss" and len(raw) == 1)]
    if reserved:
        raise ValueError(
            f"{source} returned losses named {reserved}; these names are used by the history "
            f"({_RESERVED_KEYS}): rename them"
        )
    return dict(raw)


def fit(
    model: nn.Module,
    train_loader: Iterable[Any],
    *,
    epochs: int,
    optimizer: torch.optim.Optimizer,
    device: torch.device | str,
    loss_fn: LossFn | None = None,
    val_fn: ValFn | None = None,
    scheduler: Any = None,
    scheduler_interval: str = "epoch",
    warmup_iters: int = 0,
    max_grad_norm: float | None = None,
    amp: bool = True,
    checkpoint_dir: str | os.PathLike[str] | None = None,
    resume: bool = True,
    progress: bool = True,
) -> History:
    """Train ``model`` for ``epochs`` epochs and return the per-epoch ``History``.

    Args:
        model: the model; moved to ``device`` and put in train mode.
        train_loader: yields batches (a DataLoader). For exact resume with ``shuffle=True``,
            give the DataLoader a ``generator=torch.Generator().manual_seed(seed)`` (see the
            module docstring); without one, the global generator is saved and restored instead.
        epochs: total number of epochs, counting the ones a resumed checkpoint already did.
        optimizer: built on ``model.parameters()``.
        device: where to train (``lesson.device``).
        loss_fn: ``loss_fn(model, batch, device) -> {name: scalar tensor}``; it moves the batch
            to ``device`` itself (``to_device`` helps). None: torchvision detection models,
            batch ``(images list, targets list)`` -> ``model(images, targets)``.
        val_fn: ``val_fn(model, epoch) -> {metric: float}``, called after each epoch's training
            with the model in eval mode and under ``torch.no_grad()``; fit puts the model back
            in train mode afterwards. Its metrics go into the history under their own names.
        scheduler: a ``torch.optim.lr_scheduler`` built on ``optimizer``, stepped after every
            epoch (after ``val_fn``), or after every optimizer step when
            ``scheduler_interval="iteration"``.
        scheduler_interval: ``"epoch"`` (default) or ``"iteration"``.
        warmup_iters: ramp the learning rate linearly from ``lr / warmup_iters`` up to ``lr``
            over this many first steps; 0 = no warmup. Multiplies the scheduler's rate.
        max_grad_norm: clip the gradients' global L2 norm to this value (None = no clipping);
            the history then records the mean norm before clipping (``grad_norm``).
        amp: mixed precision (``torch.autocast`` float16 + ``GradScaler``) on CUDA; ignored on
            the CPU and MPS, where training runs in float32.
        checkpoint_dir: folder for ``last.pt``, rewritten atomically after every epoch.
        resume: when ``checkpoint_dir`` holds a checkpoint, continue from it (False: start
            over and overwrite it).
        progress: show a progress bar per epoch with the running mean loss.

    Returns:
        the History of every finished epoch (those of a resumed checkpoint included).

    Raises:
        NonFiniteLossError: a loss became NaN or infinite (names the loss, epoch, iteration);
            the weights are those of the step before, and the checkpoint that of the last
            finished epoch.
        NonFiniteGradientError: (a NonFiniteLossError) the losses are finite but a gradient
            is not (names the parameter, epoch, iteration); checked when no GradScaler is in
            use (with AMP on CUDA the scaler skips such steps itself). Weights and checkpoint
            as above.
        ValueError, TypeError: bad arguments, or a loss_fn/model that does not return a dict
            of scalar losses.
    """
    _check_arguments(
        model,
        train_loader,
        epochs,
        optimizer,
        loss_fn,
        val_fn,
        scheduler,
        scheduler_interval,
        warmup_iters,
        max_grad_norm,
    )
    device = torch.device(device)
    use_amp = bool(amp) and device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    compute_losses: LossFn = loss_fn if loss_fn is not None else _detection_losses
    source = "loss_fn(model, batch, device)" if loss_fn is not None else "model(images, targets)"
    generators = _loader_generators(train_loader)
    ckpt_path = Path(checkpoint_dir) / CHECKPOINT_NAME if checkpoint_dir is not None else None

    model.to(device)
    history = History()
    done, step = 0, 0
    if ckpt_path is not None and resume and ckpt_path.is_file():
        state = load_checkpoint(ckpt_path)
        try:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
        except (RuntimeError, ValueError, KeyError) as error:
            raise RuntimeError(
                f"the checkpoint '{CHECKPOINT_NAME}' in checkpoint_dir does not fit this model/optimizer "
                f"({error}); use another checkpoint_dir, or resume=False to start over"
            ) from error
        if scheduler is not None and state["scheduler"] is not None:
            scheduler.load_state_dict(state["scheduler"])
        if state["scaler"] and use_amp:
            scaler.load_state_dict(state["scaler"])
        history = History([dict(r) for r in state["history"]])
        done, step = int(state["epoch"]), int(state["step"])
        _set_rng_state(state["rng"], generators)
        print(f"Resuming from checkpoint '{CHECKPOINT_NAME}': {done} of {epochs} epochs already done.")

    epoch = done
    try:
        for epoch in range(done + 1, epochs + 1):
            model.train()
            with _progress_bar(train_loader, epoch, epochs, progress) as bar:
                record, step = _run_batches(
                    model,
                    bar,
                    compute_losses,
                    source,
                    optimizer,
                    scaler,
                    device,
                    epoch=epoch,
                    step=step,
                    scheduler=scheduler if scheduler_interval == "iteration" else None,
                    warmup_iters=warmup_iters,
                    max_grad_norm=max_grad_norm,
                    use_amp=use_amp,
                )
            if val_fn is not None:
                record.update(_validate(model, val_fn, epoch, record))
                model.train()
            if scheduler is not None and scheduler_interval == "epoch":
                scheduler.step()
            history.records.append(record)
            if ckpt_path is not None:
                state = {
                    "format": _CHECKPOINT_FORMAT,
                    "epoch": epoch,
                    "step": step,
                    "epochs": epochs,
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict() if scheduler is not None else None,
                    "scaler": scaler.state_dict() if use_amp else {},
                    "history": history.records,
                    "rng": _rng_state(generators),
                }
                atomic_save(state, ckpt_path)
    except KeyboardInterrupt:
        if ckpt_path is not None:
            print(
                f"Interrupted in epoch {epoch}; the checkpoint holds {len(history)} finished epoch(s). "
                "Call fit again with the same checkpoint_dir to resume."
            )
        raise
    return history


def _validate(model: nn.Module, val_fn: ValFn, epoch: int, record: dict[str, float]) -> dict[str, float]:
    model.eval()
    start = time.perf_counter()
    with torch.no_grad():
        metrics = val_fn(model, epoch)
    if not isinstance(metrics, Mapping):
        raise TypeError(f"val_fn(model, epoch) must return a dict of floats, got {type(metrics).__name__}")
    out: dict[str, float] = {}
    for name, value in metrics.items():
        if not isinstance(name, str) or name in record or name in _RESERVED_KEYS:
            raise ValueError(
                f"val_fn returned a metric named {name!r}, which clashes with the training record's "
                f"keys {sorted(set(record) | set(_RESERVED_KEYS))}: rename it (e.g. 'val_{name}')"
            )
        try:
            out[name] = float(value)
        except (TypeError, ValueError):
            raise TypeError(f"val_fn returned {name!r} = {value!r}, which is not a number") from None
    out["val_seconds"] = time.perf_counter() - start
    return out


def _progress_bar(loader: Iterable[Any], epoch: int, epochs: int, progress: bool) -> tqdm:
    """A tqdm bar over one epoch of ``loader`` (a context manager that closes it, even on errors)."""
    try:
        total_batches = len(loader)  # type: ignore[arg-type]
    except TypeError:
        total_batches = None
    return tqdm(loader, total=total_batches, desc=f"epoch {epoch}/{epochs}", disable=not progress, leave=True)


def _run_batches(
    model: nn.Module,
    bar: Iterable[Any],
    compute_losses: LossFn,
    source: str,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    device: torch.device,
    *,
    epoch: int,
    step: int,
    scheduler: Any,
    warmup_iters: int,
    max_grad_norm: float | None,
    use_amp: bool,
) -> tuple[dict[str, float], int]:
    """One pass over ``bar`` (the epoch's batches); returns the epoch's record and the step counter."""
    sums: dict[str, float] = {}
    total_sum, n_batches = 0.0, 0
    grad_norm_sum, grad_norm_count = torch.zeros((), device=device), torch.zeros((), device=device)
    lr = float(optimizer.param_groups[0]["lr"])
    start = time.perf_counter()
    for n_batches, batch in enumerate(bar, start=1):  # noqa: B007 - n_batches is used after the loop
        autocast = torch.autocast(device_type="cuda", dtype=torch.float16) if use_amp else nullcontext()
        with autocast:
            losses = _named_losses(compute_losses(model, batch, device), source)
            total = sum(losses.values())
        named = _loss_values(losses, total, epoch, n_batches, source)  # every loss, "loss" last
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(total).backward()
        if not use_amp:  # with a GradScaler, inf/NaN gradients are expected: the scaler skips the step
            _check_finite_gradients(model, optimizer, epoch, n_batches, named)
        if max_grad_norm is not None:
            scaler.unscale_(optimizer)
            norm = torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
            finite = torch.isfinite(norm)
            grad_norm_sum += torch.where(finite, norm, torch.zeros_like(norm))
            grad_norm_count += finite
        lr = _warmed_up_step(optimizer, scaler, step, warmup_iters)
        step += 1
        if scheduler is not None:
            scheduler.step()

        for name, value in named.items():
            sums[name] = sums.get(name, 0.0) + value
        total_sum += named["loss"]
        bar.set_postfix(loss=f"{total_sum / n_batches:.4f}", refresh=False)  # type: ignore[attr-defined]
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - start
    if n_batches == 0:
        raise ValueError("train_loader yielded no batch in this epoch: there is nothing to train on")
    record: dict[str, float] = {"epoch": epoch, "loss": total_sum / n_batches}
    record.update({name: s / n_batches for name, s in sums.items() if name != "loss"})
    if max_grad_norm is not None:
        count = float(grad_norm_count.item())
        record["grad_norm"] = float(grad_norm_sum.item()) / count if count else math.nan
    record["lr"] = lr
    record["seconds"] = seconds
    return record, step


def _loss_values(
    losses: dict[str, Tensor], total: Tensor, epoch: int, iteration: int, source: str
) -> dict[str, float]:
    """Every named loss's value and the total's (key ``"loss"``, last); raise if one is not finite."""
    values = torch.stack([v.detach().float().reshape(()) for v in (*losses.values(), total)]).tolist()
    named = dict(zip(losses, values[:-1], strict=True))
    for name, value in (*named.items(), ("loss", values[-1])):
        if not math.isfinite(value):
            raise NonFiniteLossError(name, epoch, iteration, {**named, "loss": values[-1]})
    if not total.requires_grad:
        raise RuntimeError(
            f"the total loss does not require grad at epoch {epoch}, iteration {iteration}: "
            f"{source} must compute the losses from the model's output with gradients on "
            "(not under torch.no_grad(), not from .item() or .detach())"
        )
    return {**named, "loss": values[-1]}


def _warmed_up_step(
    optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler, step: int, warmup_iters: int
) -> float:
    """``scaler.step(optimizer)`` with the warmup factor applied for this step only; returns its lr."""
    base_lrs = [group["lr"] for group in optimizer.param_groups]
    if step < warmup_iters:
        factor = (step + 1) / warmup_iters
        for group, base in zip(optimizer.param_groups, base_lrs, strict=True):
            group["lr"] = base * factor
    lr = float(optimizer.param_groups[0]["lr"])
    scaler.step(optimizer)
    scaler.update()
    if step < warmup_iters:
        for group, base in zip(optimizer.param_groups, base_lrs, strict=True):
            group["lr"] = base
    return lr


def _max_abs(grads: list[Tensor]) -> Tensor:
    """The largest absolute value over ``grads`` (NaN if any is NaN): one fused reduction."""
    if hasattr(torch.nn.utils, "get_total_norm"):  # torch >= 2.6: foreach kernels, grouped by device
        return torch.nn.utils.get_total_norm(grads, norm_type=math.inf)
    device = grads[0].device
    return torch.stack([torch.linalg.vector_norm(g, math.inf).to(device) for g in grads]).max()


def _check_finite_gradients(
    model: nn.Module, optimizer: torch.optim.Optimizer, epoch: int, iteration: int, losses: dict[str, float]
) -> None:
    """Raise ``NonFiniteGradientError`` naming the first parameter with a NaN/inf gradient.

    One reduction and one ``torch.isfinite`` over all gradients per step (the max-abs norm cannot
    overflow, so only NaN/inf make it non-finite); the slow search for the name runs only then.
    """
    grads = [
        p.grad.detach() for group in optimizer.param_groups for p in group["params"] if p.grad is not None
    ]
    if not grads or bool(torch.isfinite(_max_abs(grads))):
        return
    names = {p: name for name, p in model.named_parameters()}
    for g, group in enumerate(optimizer.param_groups):
        for i, p in enumerate(group["params"]):
            if p.grad is None or bool(torch.isfinite(p.grad).all()):
                continue
            n_nan, n_inf = int(torch.isnan(p.grad).sum()), int(torch.isinf(p.grad).sum())
            detail = f"{n_nan} NaN and {n_inf} infinite values (of {p.grad.numel()})"
            name = names.get(p, f"param_groups[{g}]['params'][{i}]")
            raise NonFiniteGradientError(name, epoch, iteration, losses, detail)
