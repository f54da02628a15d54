"""Throughput of ``course_utils.train.fit`` against a plain reference-style training loop.

The reference loop has the structure of ``train_one_epoch`` in torchvision's detection
references (references/detection/engine.py): loop over the loader, move images and targets to
the device, ``loss_dict = model(images, targets)``, sum the losses, a per-iteration linear
warmup scheduler, reduce the loss dict for logging (``.item()`` per loss), check the total is
finite, ``zero_grad / backward / step``, and log through a small smoothed-value logger.

Both train the same small Faster R-CNN (``course_utils.faster_rcnn.small_faster_rcnn``) on the
same loader over ``MultiShapeDataset`` (cached, so data generation does not blur the
comparison) for one epoch per repetition. Repetitions alternate which loop goes first, so slow
phases of a shared machine hit both alike; the figure to read is the ratio of the medians
(fit / reference, in images per second): 1.0 means no overhead, fit should stay >= 0.95. On
a CPU the script also reports images per CPU-second of this process, which a busy machine
disturbs far less than the wall clock.
``fit`` runs with its defaults (progress bar on, output discarded); the reference prints a log
line every 10 iterations (also discarded).

    python benchmarks/fit_throughput.py                # about a minute on 2 CPU cores
    python benchmarks/fit_throughput.py --reps 7 --images 96
"""

from __future__ import annotations

import argparse
import contextlib
import io
import math
import statistics
import time
from collections import deque

import torch
from detector_setup import add_common_arguments, build

from course_utils.device import describe_device
from course_utils.train import fit


class Smoothed:
    """A window of recent values and a running total, like the references' SmoothedValue."""

    def __init__(self, window: int = 20) -> None:
        self.values: deque[float] = deque(maxlen=window)
        self.total, self.count = 0.0, 0

    def update(self, value: float) -> None:
        self.values.append(value)
        self.total += value
        self.count += 1

    def __str__(self) -> str:
        return f"{statistics.median(self.values):.4f} ({self.total / self.count:.4f})"


def reference_epoch(model, optimizer, loader, device, warmup_iters: int, print_freq: int = 10) -> None:
    """One epoch with the structure of torchvision's detection reference ``train_one_epoch``."""
    model.train()
    meters: dict[str, Smoothed] = {}
    warmup = torch.optim.lr_scheduler.LinearLR(optimizer, start_factor=1.0 / 1000, total_iters=warmup_iters)
    for i, (images, targets) in enumerate(loader):
        images = [image.to(device) for image in images]
        targets = [
            {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in t.items()} for t in targets
        ]
        loss_dict = model(images, targets)
        losses = sum(loss for loss in loss_dict.values())
        reduced = {k: v.detach() for k, v in loss_dict.items()}  # single process: reduce_dict is the identity
        loss_value = sum(reduced.values()).item()
        if not math.isfinite(loss_value):
            raise FloatingPointError(f"Loss is {loss_value}, stopping training: {reduced}")
        optimizer.zero_grad()
        losses.backward()
        optimizer.step()
        warmup.step()
        for name, value in {"loss": loss_value, **{k: v.item() for k, v in reduced.items()}}.items():
            meters.setdefault(name, Smoothed()).update(value)
        meters.setdefault("lr", Smoothed(1)).update(optimizer.param_groups[0]["lr"])
        if i % print_freq == 0 or i == len(loader) - 1:
            print(f"[{i}/{len(loader)}] " + "  ".join(f"{k}: {m}" for k, m in meters.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_arguments(parser, images=64)
    parser.add_argument("--reps", type=int, default=5, help="epochs per loop, interleaved (default 5)")
    args = parser.parse_args()
    device, loader, model, optimizer = build(args, cache=True)
    for _ in loader:  # fill the cache: both loops then read the same ready-made samples
        pass
    warmup_iters = len(loader) - 1

    def run_fit() -> None:
        fit(model, loader, epochs=1, optimizer=optimizer, device=device, warmup_iters=warmup_iters)

    def run_reference() -> None:
        reference_epoch(model, optimizer, loader, device, warmup_iters)

    loops = {"fit": run_fit, "reference": run_reference}
    speeds: dict[str, list[float]] = {name: [] for name in loops}
    cpu_speeds: dict[str, list[float]] = {name: [] for name in loops}  # images per CPU-second
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        run_reference()  # warm-up epochs, not timed (first-call allocations, lazy imports)
        run_fit()
    print(
        f"device: {describe_device(device)}; {args.images} images of {args.image_size} px per epoch, "
        f"batch {args.batch_size}; {args.reps} interleaved repetitions"
    )
    for rep in range(args.reps):
        order = ["fit", "reference"] if rep % 2 == 0 else ["reference", "fit"]
        for name in order:
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            start, cpu_start = time.perf_counter(), time.process_time()
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                loops[name]()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            speeds[name].append(args.images / (time.perf_counter() - start))
            cpu_speeds[name].append(args.images / (time.process_time() - cpu_start))
        print(
            f"  rep {rep + 1}: fit {speeds['fit'][-1]:7.2f} img/s   reference {speeds['reference'][-1]:7.2f} img/s"
            f"   (per CPU-second: fit {cpu_speeds['fit'][-1]:7.2f}, reference {cpu_speeds['reference'][-1]:7.2f})"
        )
    ratio = report("wall clock", speeds)
    if device.type == "cpu":
        # On a shared CPU, wall time includes waiting for a core; the process's own CPU time does
        # not, so its ratio is the steadier measure of the work each loop does.
        report("CPU time of this process", cpu_speeds)
    verdict = "OK" if ratio >= 0.95 else "SLOWER THAN 0.95"
    print(f"target: wall-clock ratio >= 0.95 -> {verdict}")


def report(label: str, speeds: dict[str, list[float]]) -> float:
    """Print the medians and ratios of one measure; return the ratio of the medians."""
    fit_median = statistics.median(speeds["fit"])
    ref_median = statistics.median(speeds["reference"])
    pair_ratios = [f / r for f, r in zip(speeds["fit"], speeds["reference"], strict=True)]
    print(f"{label}: median images/s fit {fit_median:.2f}, reference {ref_median:.2f}")
    print(
        f"{label}: ratio fit/reference {fit_median / ref_median:.3f} (medians); per repetition "
        f"min {min(pair_ratios):.3f}, median {statistics.median(pair_ratios):.3f}"
    )
    return fit_median / ref_median


if __name__ == "__main__":
    main()
