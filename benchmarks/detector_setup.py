"""The set-up the training benchmarks share: command-line options, device, data, model, optimizer.

``benchmarks/data_wait.py`` and ``benchmarks/fit_throughput.py`` both train the small Faster R-CNN
of ``course_utils.faster_rcnn.small_faster_rcnn`` on ``MultiShapeDataset`` images with SGD; this
module builds that once, so the two measure the same thing.
"""

from __future__ import annotations

import argparse
from typing import Any

import torch

from course_utils.data import NUM_CLASSES, MultiShapeDataset, detection_collate
from course_utils.device import get_device
from course_utils.faster_rcnn import small_faster_rcnn


def add_common_arguments(parser: argparse.ArgumentParser, *, images: int) -> None:
    """Add --images (default ``images``), --batch-size, --image-size, --device and --threads."""
    parser.add_argument("--images", type=int, default=images, help=f"images per epoch (default {images})")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--device", default=None, help="cuda, mps or cpu (default: the best available)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")


def build(
    args: argparse.Namespace, *, cache: bool, **loader_kwargs: Any
) -> tuple[torch.device, torch.utils.data.DataLoader, torch.nn.Module, torch.optim.Optimizer]:
    """Device, shuffled loader of ``[3, S, S]`` images with their targets, model and SGD optimizer.

    ``cache=True`` keeps generated samples, so image generation does not blur a comparison;
    ``loader_kwargs`` go to the ``DataLoader`` (``num_workers``, ``generator``...).
    """
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device) if args.device else get_device(verbose=False)
    torch.manual_seed(0)
    dataset = MultiShapeDataset(args.images, args.image_size, seed=0, cache=cache)
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=args.batch_size, shuffle=True, collate_fn=detection_collate, **loader_kwargs
    )
    model = small_faster_rcnn(NUM_CLASSES, image_size=args.image_size).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    return device, loader, model, optimizer
