"""How fast the generated datasets make images (a benchmark, not a test: it prints figures).

Measures images per second (wall clock) and CPU milliseconds per image for ``SingleShapeDataset`` (64 px) and ``MultiShapeDataset`` (128 px)
at their default sizes and knobs: indexing the dataset directly, then through a DataLoader with
``num_workers`` 0 and 2. It also prints the time to make one batch of 8 multi-shape images, to set
against a training step of a small Faster R-CNN (about 0.3-1 s per batch of 8 on a CPU).

Run from the repository root::

    python benchmarks/data_throughput.py            # 2,000 single / 500 multi images per measure
    python benchmarks/data_throughput.py --quick    # a tenth of that
"""

from __future__ import annotations

import argparse
import time

from torch.utils.data import DataLoader

from course_utils.data import MultiShapeDataset, SingleShapeDataset, detection_collate, single_object_collate


def images_per_second(dataset, n: int) -> tuple[float, float]:
    """(images per second of wall-clock time, CPU milliseconds per image) for ``dataset[i]``."""
    for i in range(min(n, 30)):  # load the textures (once per process), outside the timing
        dataset[i]
    start, cpu = time.perf_counter(), time.process_time()
    for i in range(n):
        dataset[i]
    return n / (time.perf_counter() - start), (time.process_time() - cpu) / n * 1000


def loader_images_per_second(dataset, batch_size: int, collate, workers: int) -> float:
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=workers, collate_fn=collate)
    start = time.perf_counter()  # includes starting the workers, as a training epoch pays it
    count = 0
    for batch in loader:
        count += len(batch[0])
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a tenth of the images")
    args = parser.parse_args()
    scale = 10 if args.quick else 1
    cases = [
        ("SingleShapeDataset 64 px", SingleShapeDataset, 2000 // scale, 64, single_object_collate),
        ("MultiShapeDataset 128 px", MultiShapeDataset, 500 // scale, 8, detection_collate),
    ]
    print(f"{'dataset':<26} {'how':<22} {'images/s':>10} {'CPU ms/image':>13}")
    for name, cls, n, batch_size, collate in cases:
        rate, cpu_ms = images_per_second(cls(n, seed=0), n)
        print(f"{name:<26} {'dataset[i]':<22} {rate:>10.0f} {cpu_ms:>13.2f}")
        for workers in (0, 2):
            rate = loader_images_per_second(cls(n, seed=1), batch_size, collate, workers)
            print(f"{name:<26} {f'DataLoader workers={workers}':<22} {rate:>10.0f}")
    multi = MultiShapeDataset(8 * 40, seed=2)
    for i in range(30):
        multi[i]
    start, cpu = time.perf_counter(), time.process_time()
    for b in range(40):
        detection_collate([multi[8 * b + i] for i in range(8)])
    wall, cpu = (time.perf_counter() - start) / 40, (time.process_time() - cpu) / 40
    print(
        f"one batch of 8 multi-shape images (128 px): {wall * 1000:.1f} ms wall-clock, {cpu * 1000:.1f} ms CPU"
    )
    for step in (0.3, 1.0):
        print(f"  = {wall / step:.1%} (wall) / {cpu / step:.1%} (CPU) of a {step:g} s training step")


if __name__ == "__main__":
    main()
