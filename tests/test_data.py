"""Tests of the generated shapes datasets, the collate functions and the target checks."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader
from torchvision import tv_tensors
from torchvision.transforms import v2

from course_utils.data import (
    CLASSES,
    NUM_CLASSES,
    MultiShapeDataset,
    SingleShapeDataset,
    check_target,
    clip_boxes,
    detection_collate,
    single_object_collate,
)

EASY = {"background": "plain", "noise_std": 0.0, "distractors": 0}


def _assert_valid(image, target, size, single):
    assert image.dtype == torch.float32 and image.shape == (3, size, size)
    assert float(image.min()) >= 0.0 and float(image.max()) <= 1.0
    boxes, labels = target["boxes"], target["labels"]
    assert isinstance(boxes, tv_tensors.BoundingBoxes)
    assert boxes.format == tv_tensors.BoundingBoxFormat.XYXY and tuple(boxes.canvas_size) == (size, size)
    assert labels.dtype == torch.int64 and labels.shape == (boxes.shape[0],)
    assert isinstance(target["image_id"], int)
    if single:
        assert boxes.shape == (1, 4)
    if len(boxes):
        assert ((labels >= 1) & (labels < NUM_CLASSES)).all()
        assert (boxes[:, :2] >= 0).all() and (boxes[:, 2] <= size).all() and (boxes[:, 3] <= size).all()
        assert (boxes[:, 2] > boxes[:, 0]).all() and (boxes[:, 3] > boxes[:, 1]).all()


def test_classes_reserve_background():
    assert CLASSES[0] == "background" and len(CLASSES) == NUM_CLASSES >= 4


@pytest.mark.parametrize("cls,size,single", [(SingleShapeDataset, 64, True), (MultiShapeDataset, 128, False)])
def test_shapes_dtypes_and_ranges(cls, size, single):
    ds = cls(20, seed=3)
    assert len(ds) == 20 and ds.image_size == size and ds.num_classes == NUM_CLASSES
    for i in range(len(ds)):
        image, target = ds[i]
        assert target["image_id"] == i
        _assert_valid(image, target, size, single)


@pytest.mark.parametrize("cls", [SingleShapeDataset, MultiShapeDataset])
def test_deterministic_per_seed_and_index(cls):
    a, b, c = cls(10, seed=7), cls(10, seed=7), cls(10, seed=8)
    order = [9, 3, 0, 3]  # access order must not matter
    for i in order:
        xa, ta = a[i]
        xb, tb = b[i]
        assert (
            torch.equal(xa, xb)
            and torch.equal(ta["boxes"], tb["boxes"])
            and torch.equal(ta["labels"], tb["labels"])
        )
    assert not torch.equal(a[0][0], c[0][0])
    assert not torch.equal(a[0][0], a[1][0])


def test_single_and_multi_differ_for_same_seed():
    assert SingleShapeDataset(1, image_size=64)[0][0].shape == MultiShapeDataset(1, image_size=64)[0][0].shape
    assert not torch.equal(
        SingleShapeDataset(1, image_size=64)[0][0], MultiShapeDataset(1, image_size=64)[0][0]
    )


def test_all_classes_appear():
    labels = torch.cat([t["labels"] for _, t in MultiShapeDataset(30, image_size=64)])
    assert set(labels.tolist()) == set(range(1, NUM_CLASSES))


def test_single_box_is_tight_box_of_shape_pixels():
    ds = SingleShapeDataset(20, seed=1, **EASY)
    for i in range(len(ds)):
        image, target = ds[i]
        background = image[:, 0, 0]  # plain background: every non-shape pixel has this colour
        fg = (image - background[:, None, None]).abs().sum(0) > 1e-6
        ys, xs = torch.nonzero(fg, as_tuple=True)
        tight = torch.tensor([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], dtype=torch.float32)
        assert torch.equal(target["boxes"][0].as_subclass(torch.Tensor), tight), i


def test_multi_boxes_cover_visible_pixels_with_occlusion():
    ds = MultiShapeDataset(30, image_size=96, seed=2, background="plain", noise_std=0.0, empty_fraction=0.0)
    n_boxes = 0
    for i in range(len(ds)):
        image, target = ds[i]
        n_boxes += len(target["boxes"])
        background = image[:, 0, 0] if len(target["boxes"]) else None
        for box in target["boxes"]:
            x1, y1, x2, y2 = (int(v) for v in box)
            # the box is tight: its border rows/columns contain non-background pixels
            patch = (image[:, y1:y2, x1:x2] - background[:, None, None]).abs().sum(0) > 1e-6
            assert patch[0].any() and patch[-1].any() and patch[:, 0].any() and patch[:, -1].any()
    assert n_boxes > 30


def test_empty_images_have_zero_boxes():
    ds = MultiShapeDataset(5, empty_fraction=1.0)
    for i in range(len(ds)):
        _, target = ds[i]
        assert target["boxes"].shape == (0, 4) and target["labels"].shape == (0,)
    assert sum(len(t["boxes"]) == 0 for _, t in MultiShapeDataset(60, image_size=64, empty_fraction=0.3)) > 5


def test_max_objects_respected():
    ds = MultiShapeDataset(30, image_size=64, max_objects=2, empty_fraction=0.0)
    counts = [len(t["boxes"]) for _, t in ds]
    assert max(counts) <= 2 and min(counts) >= 1


def test_cache_returns_same_samples():
    plain, cached = SingleShapeDataset(5, seed=4), SingleShapeDataset(5, seed=4, cache=True)
    for i in range(5):
        first, second = cached[i], cached[i]
        assert torch.equal(first[0], second[0])
        assert (first[0] - plain[i][0]).abs().max() <= 0.5 / 255 + 1e-6  # stored as uint8
        assert torch.equal(first[1]["boxes"], plain[i][1]["boxes"])
    assert len(cached._cache) == 5


def test_knobs_change_the_images_and_are_reported():
    hard, easy = SingleShapeDataset(3, seed=0), SingleShapeDataset(3, seed=0, **EASY)
    assert hard.knobs()["background"] == "texture" and easy.knobs()["distractors"] == 0
    assert "noise_std" in repr(hard)
    # a plain background with no noise has few distinct colours; the default has many
    assert len(torch.unique(easy[0][0].reshape(3, -1), dim=1).T) <= 3
    assert len(torch.unique(hard[0][0].reshape(3, -1), dim=1).T) > 100
    small = SingleShapeDataset(30, scale_range=(0.1, 0.15), aspect_range=(1.0, 1.0), **EASY)
    for _, t in small:
        w, h = (t["boxes"][0, 2:] - t["boxes"][0, :2]).tolist()
        assert w <= 0.15 * 64 + 2 and abs(w - h) <= 2


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"n_images": -1}, "n_images"),
        ({"n_images": 3, "image_size": 8}, "image_size"),
        ({"n_images": 3, "background": "stripes"}, "background"),
        ({"n_images": 3, "noise_std": -0.1}, "noise_std"),
        ({"n_images": 3, "scale_range": (0.5, 0.2)}, "scale_range"),
        ({"n_images": 3, "aspect_range": (0.0, 2.0)}, "aspect_range"),
        ({"n_images": 3, "distractors": -1}, "distractors"),
        ({"n_images": 3, "distractor_kinds": ("blob",)}, "distractor_kinds"),
    ],
)
def test_single_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SingleShapeDataset(**kwargs)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"max_objects": 0}, "max_objects"),
        ({"empty_fraction": 1.5}, "empty_fraction"),
        ({"min_visible": 0}, "min_visible"),
    ],
)
def test_multi_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MultiShapeDataset(3, **kwargs)


def test_index_out_of_range_names_the_index():
    ds = SingleShapeDataset(3)
    with pytest.raises(IndexError, match="index 3"):
        ds[3]
    assert torch.equal(ds[-1][0], ds[2][0])


# ---- torchvision.transforms.v2 -------------------------------------------------------------


def _colour_centroid_inside(image, target, colour):
    """The mean position of the pixels of ``colour`` lies inside the (only) box."""
    close = (image - colour[:, None, None]).abs().max(0).values < 0.05
    ys, xs = torch.nonzero(close, as_tuple=True)
    assert len(xs) > 0
    cx, cy = xs.float().mean() + 0.5, ys.float().mean() + 0.5
    x1, y1, x2, y2 = target["boxes"][0].tolist()
    assert x1 <= cx <= x2 and y1 <= cy <= y2, (cx, cy, target["boxes"])


@pytest.mark.parametrize(
    "transform",
    [
        v2.RandomHorizontalFlip(p=1.0),
        v2.Resize((96, 80)),
        v2.Compose([v2.RandomHorizontalFlip(p=1.0), v2.Resize(48)]),
        v2.CenterCrop(60),
    ],
    ids=["hflip", "resize", "flip+resize", "crop"],
)
def test_v2_transforms_keep_boxes_on_objects(transform):
    base = SingleShapeDataset(12, seed=5, scale_range=(0.2, 0.5), **EASY)
    wrapped = SingleShapeDataset(12, seed=5, scale_range=(0.2, 0.5), transforms=transform, **EASY)
    for i in range(len(base)):
        image, target = base[i]
        x1, y1, x2, y2 = (int(v) for v in target["boxes"][0])
        colour = image[:, (y1 + y2) // 2, (x1 + x2) // 2]  # the box centre lies inside every shape
        _colour_centroid_inside(image, target, colour)
        t_image, t_target = wrapped[i]
        assert isinstance(t_target["boxes"], tv_tensors.BoundingBoxes)
        assert tuple(t_target["boxes"].canvas_size) == tuple(t_image.shape[-2:])
        _colour_centroid_inside(t_image, t_target, colour)
    flipped = SingleShapeDataset(1, seed=5, transforms=v2.RandomHorizontalFlip(p=1.0))[0]
    original = SingleShapeDataset(1, seed=5)[0]
    assert torch.equal(flipped[0], original[0].flip(-1))


def test_v2_pipeline_on_multi_dataset():
    transform = v2.Compose([v2.RandomHorizontalFlip(p=1.0), v2.Resize(64), v2.SanitizeBoundingBoxes()])
    ds = MultiShapeDataset(8, seed=1, transforms=transform)
    for i in range(len(ds)):
        image, target = ds[i]
        assert image.shape[-2:] == (64, 64) and tuple(target["boxes"].canvas_size) == (64, 64)
        assert len(target["boxes"]) == len(target["labels"])


# ---- collate functions and DataLoader ------------------------------------------------------


def test_detection_collate_variable_number_of_boxes():
    ds = MultiShapeDataset(8, image_size=64, seed=0, empty_fraction=0.3)
    images, targets = detection_collate([ds[i] for i in range(8)])
    assert isinstance(images, list) and isinstance(targets, list) and len(images) == len(targets) == 8
    counts = {len(t["boxes"]) for t in targets}
    assert len(counts) > 1  # the batch really mixes different numbers of boxes
    assert all(im.shape == (3, 64, 64) for im in images)
    with pytest.raises(ValueError, match="empty batch"):
        detection_collate([])


def test_single_object_collate():
    ds = SingleShapeDataset(6, seed=0)
    images, labels, boxes = single_object_collate([ds[i] for i in range(6)])
    assert images.shape == (6, 3, 64, 64) and images.dtype == torch.float32
    assert labels.shape == (6,) and labels.dtype == torch.int64
    assert boxes.shape == (6, 4) and boxes.dtype == torch.float32 and type(boxes) is torch.Tensor
    assert torch.equal(boxes[2], ds[2][1]["boxes"][0].as_subclass(torch.Tensor))
    multi = MultiShapeDataset(4, image_size=64, empty_fraction=1.0)
    with pytest.raises(ValueError, match="sample 0.*exactly one box"):
        single_object_collate([multi[0]])


def test_dataloader_workers_agree():
    ds = MultiShapeDataset(8, image_size=48, seed=11)
    batches = {}
    for workers in (0, 2):
        loader = DataLoader(ds, batch_size=3, num_workers=workers, collate_fn=detection_collate)
        batches[workers] = [
            (im, t) for images, targets in loader for im, t in zip(images, targets, strict=True)
        ]
    assert len(batches[0]) == len(batches[2]) == 8
    for (im0, t0), (im2, t2) in zip(batches[0], batches[2], strict=True):
        assert torch.equal(im0, im2) and torch.equal(t0["boxes"], t2["boxes"])
        assert torch.equal(t0["labels"], t2["labels"]) and t0["image_id"] == t2["image_id"]


# ---- target checks and clipping ------------------------------------------------------------


def _target(boxes, labels):
    return {
        "boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
        "labels": torch.tensor(labels, dtype=torch.int64),
    }


def test_check_target_accepts_valid_and_empty():
    check_target(_target([[1, 2, 10, 12]], [2]), (32, 32))
    check_target(_target([], []), (32, 32))


@pytest.mark.parametrize(
    "boxes,labels,match",
    [
        ([[0, 0, 40, 10]], [1], "outside the image"),
        ([[-1, 0, 10, 10]], [1], "outside the image"),
        ([[5, 5, 5, 10]], [1], "zero or negative width/height"),
        ([[5, 9, 8, 4]], [1], "zero or negative width/height"),
        ([[1, 1, 5, 5]], [0], "label 0 .*out of range"),
        ([[1, 1, 5, 5]], [NUM_CLASSES], "out of range"),
        ([[1, float("nan"), 5, 5]], [1], "NaN"),
    ],
)
def test_check_target_rejects_bad_boxes(boxes, labels, match):
    with pytest.raises(ValueError, match=f"sample 7: .*{match}"):
        check_target(_target(boxes, labels), (32, 32), where="sample 7")


def test_clip_boxes_warns_with_count():
    boxes = tv_tensors.BoundingBoxes(
        [[-2, 0, 10, 10], [1, 1, 5, 5], [0, 0, 40, 33]], format="XYXY", canvas_size=(32, 32)
    )
    with pytest.warns(UserWarning, match="clipped 2 of 3 boxes"):
        out = clip_boxes(boxes, (32, 32), where="my boxes")
    assert isinstance(out, tv_tensors.BoundingBoxes)
    assert out.tolist() == [[0, 0, 10, 10], [1, 1, 5, 5], [0, 0, 32, 32]]


def test_class_hues_colour_each_class():
    import colorsys

    from course_utils.data import CLASS_HUES

    ds = SingleShapeDataset(24, seed=3, class_hues=True, **EASY)
    assert ds.knobs()["class_hues"] is True
    for image, target in ds:
        x1, y1, x2, y2 = (int(v) for v in target["boxes"][0])
        r, g, b = image[:, (y1 + y2) // 2, (x1 + x2) // 2].tolist()
        hue = colorsys.rgb_to_hsv(r, g, b)[0]
        low, high = CLASS_HUES[int(target["labels"][0])]
        assert low - 0.01 <= hue <= high + 0.01 or low - 0.01 <= hue - 1 <= high + 0.01
