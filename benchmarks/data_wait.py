"""How much of a Faster R-CNN training step is spent waiting for data?

The settings of the Faster R-CNN lesson: ``MultiShapeDataset`` images of 128 px generated on the
fly (no cache), batches of 8 through ``detection_collate``, the small Faster R-CNN of
``course_utils.faster_rcnn.small_faster_rcnn``, SGD. The loader is wrapped so that every
``next()`` that ``course_utils.train.fit`` makes on it is timed; the share of the epoch spent in
those calls is the data wait (fit's own epoch time, ``history.last["seconds"]``, is the whole).
The lesson keeps it under 10%; when it is higher, the model waits for the images and
``num_workers`` (or ``cache=True``) is the fix to reach for.

    python benchmarks/data_wait.py                     # num_workers=0, as in the lesson
    python benchmarks/data_wait.py --workers 2 --epochs 3
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterator
from typing import Any

import torch
from detector_setup import add_common_arguments, build

from course_utils.device import describe_device
from course_utils.train import fit


class TimedLoader:
    """Iterates over ``loader`` and adds the time of every ``next()`` to ``wait_seconds``."""

    def __init__(self, loader: torch.utils.data.DataLoader) -> None:
        self.loader = loader
        self.wait_seconds = 0.0
        self.batches = 0

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[Any]:
        iterator = iter(self.loader)
        while True:
            start = time.perf_counter()
            try:
                batch = next(iterator)
            except StopIteration:
                self.wait_seconds += time.perf_counter() - start
                return
            self.wait_seconds += time.perf_counter() - start
            self.batches += 1
            yield batch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_arguments(parser, images=96)
    parser.add_argument("--workers", type=int, default=0, help="DataLoader num_workers (default 0)")
    parser.add_argument("--epochs", type=int, default=2, help="measured epochs, after one warm-up epoch")
    args = parser.parse_args()
    device, loader, model, optimizer = build(
        args, cache=False, num_workers=args.workers, generator=torch.Generator().manual_seed(0)
    )
    print(
        f"device: {describe_device(device)}; MultiShapeDataset {args.image_size} px, batch {args.batch_size}, "
        f"num_workers {args.workers}, {len(loader)} steps per epoch"
    )
    fit(model, loader, epochs=1, optimizer=optimizer, device=device, progress=False)  # warm-up
    shares = []
    for epoch in range(args.epochs):
        timed = TimedLoader(loader)
        history = fit(model, timed, epochs=1, optimizer=optimizer, device=device, progress=False)
        seconds = history.last["seconds"]
        shares.append(timed.wait_seconds / seconds)
        print(
            f"  epoch {epoch + 1}: waiting for data {timed.wait_seconds:6.2f} s of {seconds:6.2f} s "
            f"({shares[-1]:.1%}), {timed.wait_seconds / timed.batches * 1000:.1f} ms per batch"
        )
    total_share = sum(shares) / len(shares)
    print(f"data wait share of a training step: {total_share:.1%} (target < 10%)")
    print("OK" if total_share < 0.10 else "TOO HIGH: raise num_workers or use cache=True")


if __name__ == "__main__":
    main()
