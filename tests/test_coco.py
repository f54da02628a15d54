"""Tests of the COCO export/load round trip and of the checks on bad COCO data."""

from __future__ import annotations

import json

import pytest
import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

from course_utils.coco import ANNOTATIONS_FILE, IMAGES_DIR, export_coco, load_coco, xywh_to_xyxy, xyxy_to_xywh
from course_utils.data import CLASSES, MultiShapeDataset, SingleShapeDataset


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    dataset = MultiShapeDataset(6, image_size=64, seed=3, empty_fraction=0.3)
    assert any(len(t["boxes"]) == 0 for _, t in dataset) and any(len(t["boxes"]) > 1 for _, t in dataset)
    folder = export_coco(dataset, tmp_path_factory.mktemp("coco") / "shapes")
    return dataset, folder


def test_box_format_conversion_round_trip():
    xyxy = torch.tensor([[1.0, 2.0, 11.0, 7.0]])
    assert xyxy_to_xywh(xyxy).tolist() == [[1.0, 2.0, 10.0, 5.0]]
    assert torch.equal(xywh_to_xyxy(xyxy_to_xywh(xyxy)), xyxy)


def test_export_writes_coco_layout(exported):
    dataset, folder = exported
    coco = json.loads((folder / ANNOTATIONS_FILE).read_text())
    assert [c["name"] for c in coco["categories"]] == list(CLASSES[1:])
    assert [c["id"] for c in coco["categories"]] == list(range(1, len(CLASSES)))
    assert len(coco["images"]) == len(dataset) == len(list((folder / IMAGES_DIR).glob("*.png")))
    assert len(coco["annotations"]) == sum(len(t["boxes"]) for _, t in dataset)
    first = coco["annotations"][0]
    x1, y1, x2, y2 = next(t["boxes"][0].tolist() for _, t in dataset if len(t["boxes"]))
    assert first["bbox"] == [x1, y1, x2 - x1, y2 - y1]  # COCO is [x, y, width, height]
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".")]  # no temp folder left


def test_round_trip_same_boxes_labels_and_pixels(exported):
    dataset, folder = exported
    loaded = load_coco(folder)
    assert len(loaded) == len(dataset) and loaded.classes == CLASSES
    for i in range(len(dataset)):
        image, target = dataset[i]
        image2, target2 = loaded[i]
        assert image2.dtype == torch.float32 and image2.shape == image.shape
        assert (image2 - image).abs().max() <= 0.5 / 255 + 1e-6  # PNG holds 8 bits
        assert isinstance(target2["boxes"], tv_tensors.BoundingBoxes)
        assert target2["boxes"].format == tv_tensors.BoundingBoxFormat.XYXY
        assert target2["boxes"].shape == target["boxes"].shape  # [0, 4] for empty images too
        assert torch.allclose(target2["boxes"], target["boxes"])
        assert target2["labels"].dtype == torch.int64 and torch.equal(target2["labels"], target["labels"])
        assert target2["image_id"] == target["image_id"]


def test_load_applies_v2_transforms(exported):
    dataset, folder = exported
    loaded = load_coco(folder, transforms=v2.RandomHorizontalFlip(p=1.0))
    for i in range(len(dataset)):
        _, target = dataset[i]
        _, flipped = loaded[i]
        if len(target["boxes"]):
            expected = target["boxes"].clone()
            expected[:, [0, 2]] = 64 - target["boxes"][:, [2, 0]]
            assert torch.allclose(flipped["boxes"], expected)


def test_export_refuses_existing_folder_and_overwrites_on_request(tmp_path):
    ds = SingleShapeDataset(2)
    folder = export_coco(ds, tmp_path / "a")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        export_coco(ds, folder)
    export_coco(SingleShapeDataset(3), folder, overwrite=True)
    assert len(load_coco(folder)) == 3


def test_export_rejects_bad_sample(tmp_path):
    good = SingleShapeDataset(3)
    image, target = good[0]
    bad_label = dict(target, labels=torch.tensor([len(CLASSES)]))
    with pytest.raises(ValueError, match="sample 1: label .* out of range"):
        export_coco([good[0], (image, bad_label)], tmp_path / "x")
    assert not (tmp_path / "x").exists() and not list(tmp_path.iterdir())  # nothing half-written
    with pytest.raises(ValueError, match="sample 0: expected an image tensor"):
        export_coco([(image[0], target)], tmp_path / "y")


# ---- bad COCO data on disk --------------------------------------------------------------


@pytest.fixture()
def small(tmp_path):
    folder = export_coco(SingleShapeDataset(3, seed=1), tmp_path / "small")
    return folder, json.loads((folder / ANNOTATIONS_FILE).read_text())


def _write(folder, coco):
    (folder / ANNOTATIONS_FILE).write_text(json.dumps(coco))


def test_corrupt_image_names_the_file(small):
    folder, coco = small
    (folder / IMAGES_DIR / coco["images"][1]["file_name"]).write_bytes(b"not a png at all")
    dataset = load_coco(folder)
    dataset[0]
    with pytest.raises(ValueError, match=r"cannot read image .*000001\.png.*corrupt"):
        dataset[1]


def test_missing_image_file(small):
    folder, coco = small
    (folder / IMAGES_DIR / coco["images"][2]["file_name"]).unlink()
    with pytest.raises(FileNotFoundError, match=r"image id 2 points at .*000002\.png.*does not exist"):
        load_coco(folder)


def test_annotation_pointing_at_missing_image_id(small):
    folder, coco = small
    coco["annotations"][0]["image_id"] = 99
    _write(folder, coco)
    with pytest.raises(
        ValueError, match=rf"{ANNOTATIONS_FILE}: annotation id 1 points at image id 99, which is not"
    ):
        load_coco(folder)


@pytest.mark.parametrize(
    ("section", "ids", "match"),
    [
        ("annotations", [1, 1, 1], r"annotation id 1 occurs 3 times in 'annotations'.*copies of one box"),
        ("annotations", [1, 2, 1], r"annotation id 1 occurs 2 times in 'annotations'"),
        ("images", [0, 1, 1], r"image id 1 occurs 2 times in 'images'"),
        ("categories", [1, 1, 2], r"category id 1 occurs 2 times in 'categories'"),
    ],
)
def test_duplicate_ids_name_file_id_and_count(small, section, ids, match):
    folder, coco = small
    for entry, new_id in zip(coco[section][: len(ids)], ids, strict=True):  # categories: the first three
        entry["id"] = new_id
    _write(folder, coco)
    with pytest.raises(ValueError, match=rf"{ANNOTATIONS_FILE}: {match}"):
        load_coco(folder)


def test_annotation_without_id(small):
    folder, coco = small
    del coco["annotations"][1]["id"]
    _write(folder, coco)
    with pytest.raises(ValueError, match=rf"{ANNOTATIONS_FILE}: entry 1 of 'annotations' has no int 'id'"):
        load_coco(folder)


def test_unknown_category(small):
    folder, coco = small
    coco["annotations"][1]["category_id"] = 7
    _write(folder, coco)
    with pytest.raises(
        ValueError, match=rf"{ANNOTATIONS_FILE}: annotation id 2 .*category_id 7; expected one of"
    ):
        load_coco(folder)


@pytest.mark.parametrize(
    "bbox,match",
    [
        ([50, 10, 20, 10], "outside the image"),
        ([-3, 10, 5, 5], "outside the image"),
        ([10, 10, 0, 5], "zero or negative width/height"),
        ([10, 10, 5, -2], "zero or negative width/height"),
        ([10, 10, 5], r"must be \[x, y, width, height\]"),
    ],
)
def test_bad_boxes_name_the_annotation(small, bbox, match):
    folder, coco = small
    coco["annotations"][2]["bbox"] = bbox
    _write(folder, coco)
    with pytest.raises(ValueError, match=rf"annotation id 3 \(image 000002\.png\).*{match}"):
        load_coco(folder)


def test_image_size_mismatch(small):
    folder, coco = small
    coco["images"][0]["width"] = 80
    _write(folder, coco)
    with pytest.raises(ValueError, match=r"000000\.png is 64x64 px but .* says 80x64"):
        load_coco(folder)[0]


def test_missing_or_broken_annotation_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no COCO annotation file"):
        load_coco(tmp_path)
    (tmp_path / ANNOTATIONS_FILE).write_text("{not json")
    with pytest.raises(ValueError, match="not a readable JSON"):
        load_coco(tmp_path)
