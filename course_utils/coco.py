"""COCO format on disk: export a dataset, load it back with torchvision.

The COCO detection format is a folder of images plus one JSON file::

    {"images":      [{"id": 0, "file_name": "000000.png", "height": 128, "width": 128}, ...],
     "annotations": [{"id": 1, "image_id": 0, "category_id": 2,
                      "bbox": [x, y, w, h], "area": w * h, "iscrowd": 0}, ...],
     "categories":  [{"id": 1, "name": "circle", "supercategory": "shape"}, ...]}

COCO writes boxes as ``[x, y, width, height]`` (XYWH); torchvision's models and
``tv_tensors.BoundingBoxes`` here use ``[x1, y1, x2, y2]`` (XYXY). This module is the one place
in the course that converts between the two: ``xyxy_to_xywh`` / ``xywh_to_xyxy`` (thin wrappers
around ``torchvision.ops.box_convert``). Everything else stays XYXY.

* ``export_coco(dataset, folder)`` writes ``folder/images/*.png`` and ``folder/annotations.json``
  from any dataset with the course's sample format (category ids are the labels; categories from
  ``dataset.classes`` or ``course_utils.data.CLASSES``, without the background).
* ``load_coco(folder)`` reads it back through ``torchvision.datasets.CocoDetection`` wrapped by
  ``torchvision.datasets.wrap_dataset_for_transforms_v2``, and returns samples in the same format as
  the generated datasets (image float32 [3, H, W] in [0, 1]; boxes XYXY ``BoundingBoxes``; labels
  int64; image_id int). Images without annotations get ``boxes`` [0, 4].

``load_coco`` checks the annotations when it opens them and fails with a message naming the file,
the annotation and what was expected: an image, annotation or category id used twice (pycocotools
would hand every image copies of one box), a missing image file, an annotation pointing at an image id
or category id that does not exist, a box outside its image, a zero/negative width or height.
An image that cannot be decoded raises when it is read, naming the file.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import shutil
import tempfile
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset
from torchvision import tv_tensors
from torchvision.datasets import CocoDetection, wrap_dataset_for_transforms_v2
from torchvision.ops import box_convert
from torchvision.transforms.v2 import functional as TF

from course_utils.boxes import as_box_tensor
from course_utils.data import CLASSES, check_target

ANNOTATIONS_FILE = "annotations.json"
IMAGES_DIR = "images"


def xyxy_to_xywh(boxes: torch.Tensor, *, check: bool = True) -> torch.Tensor:
    """[N, 4] ``(x1, y1, x2, y2)`` -> [N, 4] COCO ``(x, y, width, height)`` (plain float tensor).

    With ``check`` (the default) boxes that are not XYXY boxes raise ``ValueError`` naming ``boxes``:
    NaN or infinite coordinates, ``x2 < x1`` or ``y2 < y1`` (often ``(x, y, w, h)`` boxes already).
    ``check=False`` converts whatever it is given (to show what an unchecked mistake does).
    """
    boxes = as_box_tensor(torch.as_tensor(boxes), "boxes", valid=check, allow_empty=True)
    return box_convert(boxes, in_fmt="xyxy", out_fmt="xywh")


def xywh_to_xyxy(boxes: torch.Tensor) -> torch.Tensor:
    """[N, 4] COCO ``(x, y, width, height)`` -> [N, 4] ``(x1, y1, x2, y2)`` (plain float tensor).

    Raises ``ValueError`` naming ``boxes`` for NaN or infinite values and negative widths or heights.
    """
    boxes = as_box_tensor(torch.as_tensor(boxes), "boxes")
    bad = ~torch.isfinite(boxes).all(dim=1) | (boxes[:, 2:] < 0).any(dim=1)
    if bad.any():
        first = int(bad.nonzero()[0, 0])
        raise ValueError(
            f"boxes must hold COCO (x, y, width, height) boxes with finite values and width, height >= 0; "
            f"{int(bad.sum())} of {len(boxes)} do not, the first is box {first} = {boxes[first].tolist()}"
        )
    return box_convert(boxes, in_fmt="xywh", out_fmt="xyxy")


def _image_to_uint8(image: Any, where: str) -> np.ndarray:
    """A sample's image -> uint8 [H, W, 3] for PNG."""
    if isinstance(image, Image.Image):
        return np.asarray(image.convert("RGB"))
    t = torch.as_tensor(image).as_subclass(torch.Tensor)
    if t.ndim != 3 or t.shape[0] != 3:
        raise ValueError(f"{where}: expected an image tensor [3, H, W], got shape {tuple(t.shape)}")
    if t.dtype == torch.uint8:
        return t.permute(1, 2, 0).numpy()
    if not t.is_floating_point():
        raise ValueError(f"{where}: expected a float image in [0, 1] or uint8, got dtype {t.dtype}")
    if not torch.isfinite(t).all() or t.min() < 0 or t.max() > 1:
        raise ValueError(f"{where}: a float image must hold finite values in [0, 1]")
    return (t * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()


def export_coco(
    dataset: Sequence,
    folder: str | os.PathLike,
    *,
    class_names: Sequence[str] | None = None,
    overwrite: bool = False,
    progress: bool = False,
) -> Path:
    """Write a dataset to ``folder`` in COCO format: ``images/<image_id>.png`` and ``annotations.json``.

    Args:
        dataset: any sequence of ``(image, target)`` samples in the course's format (e.g. a
            ``MultiShapeDataset``): image float32 [3, H, W] in [0, 1] (or uint8, or a PIL image),
            target with ``boxes`` [N, 4] XYXY pixels, ``labels`` int64 [N], ``image_id`` int.
            Transforms of the dataset are applied (the export holds what ``dataset[i]`` returns).
        folder: where to write; created. It is written to a temporary folder next to it first and
            renamed at the end, so an interrupted export never leaves a half-written folder.
        class_names: names indexed by label, index 0 the background (default ``dataset.classes``,
            else ``course_utils.data.CLASSES``); the JSON's categories are ids 1.. with these names.
        overwrite: replace an existing ``folder`` (default: raise ``FileExistsError``).
        progress: show a tqdm progress bar.

    Returns:
        ``folder`` as a ``Path`` (pass it to ``load_coco``).

    Raises:
        ValueError: a sample with an invalid box or label (naming the sample), duplicate image ids.
    """
    folder = Path(folder)
    names = tuple(class_names or getattr(dataset, "classes", CLASSES))
    if folder.exists() and any(folder.iterdir()):
        if not overwrite:
            raise FileExistsError(
                f"{folder} already exists and is not empty; pass overwrite=True to replace it"
            )
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        (tmp / IMAGES_DIR).mkdir()
        images, annotations, seen = [], [], set()
        indices = range(len(dataset))
        if progress:
            from tqdm.auto import tqdm

            indices = tqdm(indices, desc="export COCO")
        for i in indices:
            image, target = dataset[i]
            where = f"sample {i}"
            pixels = _image_to_uint8(image, where)
            height, width = pixels.shape[:2]
            check_target(target, (height, width), num_classes=len(names), where=where)
            image_id = int(target.get("image_id", i))
            if image_id in seen:
                raise ValueError(f"{where}: image_id {image_id} is used twice; COCO needs unique image ids")
            seen.add(image_id)
            file_name = f"{image_id:06d}.png"
            Image.fromarray(pixels).save(tmp / IMAGES_DIR / file_name)
            images.append({"id": image_id, "file_name": file_name, "height": height, "width": width})
            xywh = xyxy_to_xywh(target["boxes"].float())
            for box, label in zip(xywh.tolist(), target["labels"].tolist(), strict=True):
                annotations.append(
                    {
                        "id": len(annotations) + 1,
                        "image_id": image_id,
                        "category_id": int(label),
                        "bbox": [round(v, 4) for v in box],
                        "area": round(box[2] * box[3], 4),
                        "iscrowd": 0,
                    }
                )
        categories = [{"id": k, "name": n, "supercategory": "shape"} for k, n in enumerate(names) if k > 0]
        coco = {"images": images, "annotations": annotations, "categories": categories}
        (tmp / ANNOTATIONS_FILE).write_text(json.dumps(coco))
        if folder.exists():
            shutil.rmtree(folder)
        tmp.rename(folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder


_ID_CONSEQUENCE = {
    "images": "pycocotools indexes images by id, so one of them would be lost or get another's boxes",
    "annotations": "pycocotools indexes annotations by id, so images would return copies of one box",
    "categories": "one category name would silently replace the other",
}


def _check_unique_ids(entries: list[Any], section: str, where: str) -> None:
    """Every entry of ``section`` is a dict with an ``id`` and no id occurs twice; raise naming the first."""
    noun = section[:-1].replace("categorie", "category")
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or not isinstance(entry.get("id"), (int, str)):
            got = entry.get("id") if isinstance(entry, dict) else entry
            raise ValueError(f"{where}: entry {i} of '{section}' has no int 'id' (got {got!r}); expected one")
    counts = Counter(entry["id"] for entry in entries)
    repeated = [(i, n) for i, n in counts.items() if n > 1]
    if repeated:
        ident, n = repeated[0]
        more = f" ({len(repeated)} ids are repeated)" if len(repeated) > 1 else ""
        raise ValueError(
            f"{where}: {noun} id {ident!r} occurs {n} times in '{section}'{more}; expected unique ids "
            f"({_ID_CONSEQUENCE[section]})"
        )


def _check_bbox(box: Any, img: dict[str, Any], tag: str) -> None:
    """A COCO ``bbox`` is 4 finite numbers, width and height > 0, inside its image; raise naming ``tag``."""
    tag = f"{tag} (image {img['file_name']})"
    if not (isinstance(box, list) and len(box) == 4 and all(isinstance(v, (int, float)) for v in box)):
        raise ValueError(f"{tag}: bbox must be [x, y, width, height], got {box!r}")
    x, y, w, h = box
    if not all(math.isfinite(v) for v in box):
        raise ValueError(f"{tag}: bbox {box} holds NaN or infinite values")
    if w <= 0 or h <= 0:
        raise ValueError(
            f"{tag}: bbox {box} has zero or negative width/height "
            "(COCO boxes are [x, y, width, height] with width > 0 and height > 0)"
        )
    tol = 1e-3  # px: float rounding of x + w
    if x < -tol or y < -tol or x + w > img["width"] + tol or y + h > img["height"] + tol:
        raise ValueError(f"{tag}: bbox {box} lies outside the image ({img['width']}x{img['height']} px)")


def validate_coco(annotations: dict[str, Any], image_dir: str | os.PathLike, *, where: str) -> None:
    """Check a COCO annotation dict against its image folder; raise naming the first problem.

    Checks: image, annotation and category ids are unique (a repeated annotation id makes pycocotools
    hand every image copies of one box); every image file exists; every annotation points at an
    existing image id and category id; every ``bbox`` is 4 finite numbers with positive width and
    height and lies inside its image.
    """
    image_dir = Path(image_dir)
    for key in ("images", "annotations", "categories"):
        if not isinstance(annotations.get(key), list):
            raise ValueError(f"{where}: expected a COCO detection file with a list '{key}'")
        _check_unique_ids(annotations[key], key, where)
    images = {}
    for img in annotations["images"]:
        path = image_dir / img["file_name"]
        if not path.is_file():
            raise FileNotFoundError(
                f"{where}: image id {img['id']} points at {path}, which does not exist "
                f"(expected every file of 'images' inside {image_dir})"
            )
        images[img["id"]] = img
    category_ids = {c["id"] for c in annotations["categories"]}
    for ann in annotations["annotations"]:
        tag = f"{where}: annotation id {ann['id']}"
        img = images.get(ann.get("image_id"))
        if img is None:
            raise ValueError(
                f"{tag} points at image id {ann.get('image_id')!r}, which is not in 'images' "
                f"(expected one of the {len(images)} image ids)"
            )
        if ann.get("category_id") not in category_ids:
            raise ValueError(
                f"{tag} (image {img['file_name']}) has category_id {ann.get('category_id')!r}; "
                f"expected one of the categories {sorted(category_ids)}"
            )
        _check_bbox(ann.get("bbox"), img, tag)


class CocoDataset(Dataset):
    """A COCO folder read by ``CocoDetection`` + ``wrap_dataset_for_transforms_v2``, in the course's format.

    Samples: image float32 [3, H, W] in [0, 1] (a ``tv_tensors.Image``), target with ``boxes``
    (``BoundingBoxes`` XYXY, [0, 4] for an image without annotations), ``labels`` int64 (the COCO
    category ids), ``image_id`` int. ``transforms(image, target)`` (torchvision v2) runs last.

    Attributes: ``coco`` (the ``pycocotools.coco.COCO`` index, for evaluation), ``ids`` (image ids in
    sample order), ``classes`` (names indexed by category id, ``"N/A"`` for unused ids, index 0
    ``"background"``), ``image_dir``, ``ann_file``.
    """

    def __init__(
        self,
        image_dir: str | os.PathLike,
        ann_file: str | os.PathLike,
        transforms: Callable | None = None,
    ):
        self.image_dir = Path(image_dir)
        self.ann_file = Path(ann_file)
        if not self.ann_file.is_file():
            raise FileNotFoundError(f"no COCO annotation file at {self.ann_file}")
        try:
            raw = json.loads(self.ann_file.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ValueError(f"{self.ann_file}: not a readable JSON file ({err})") from None
        validate_coco(raw, self.image_dir, where=str(self.ann_file))
        with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress lines
            base = CocoDetection(str(self.image_dir), str(self.ann_file))
        self._base = base
        self.wrapped = wrap_dataset_for_transforms_v2(base, target_keys={"image_id", "boxes", "labels"})
        self.coco = base.coco
        self.ids = base.ids
        self.transforms = transforms
        max_id = max((c["id"] for c in raw["categories"]), default=0)
        names = ["N/A"] * (max_id + 1)
        names[0] = "background"
        for c in raw["categories"]:
            names[c["id"]] = c["name"]
        self.classes = tuple(names)

    def __len__(self) -> int:
        return len(self.ids)

    def file_name(self, index: int) -> Path:
        """The image file of sample ``index``."""
        return self.image_dir / self.coco.imgs[self.ids[index]]["file_name"]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict[str, Any]]:
        try:
            image, target = self.wrapped[index]
        except (UnidentifiedImageError, OSError, SyntaxError) as err:
            raise ValueError(
                f"cannot read image {self.file_name(index)} (sample {index}): corrupt or not an image ({err})"
            ) from err
        info = self.coco.imgs[self.ids[index]]
        if (image.height, image.width) != (info["height"], info["width"]):
            raise ValueError(
                f"image {self.file_name(index)} is {image.width}x{image.height} px but {self.ann_file.name} "
                f"says {info['width']}x{info['height']}"
            )
        image = TF.to_dtype(TF.to_image(image), torch.float32, scale=True)
        size = (info["height"], info["width"])
        if "boxes" not in target:  # the wrapper returns only image_id for an image without annotations
            target["boxes"] = tv_tensors.BoundingBoxes(torch.zeros(0, 4), format="XYXY", canvas_size=size)
            target["labels"] = torch.zeros(0, dtype=torch.int64)
        target["labels"] = target["labels"].to(torch.int64)
        target["image_id"] = int(target["image_id"])
        check_target(target, size, num_classes=len(self.classes), where=f"image {self.file_name(index)}")
        if self.transforms is not None:
            image, target = self.transforms(image, target)
        return image, target


def load_coco(
    folder: str | os.PathLike,
    transforms: Callable | None = None,
    *,
    ann_file: str | os.PathLike | None = None,
    image_dir: str | os.PathLike | None = None,
) -> CocoDataset:
    """Open a COCO folder written by ``export_coco`` (or any COCO detection data) as a dataset.

    Args:
        folder: the folder; by default its ``annotations.json`` and ``images/``.
        transforms: optional ``transforms(image, target)`` (torchvision v2), applied last.
        ann_file: another annotation file (relative to ``folder`` or absolute), e.g.
            ``annotations/instances_val2017.json``.
        image_dir: another image folder (relative to ``folder`` or absolute), e.g. ``val2017``.

    Returns:
        a ``CocoDataset`` (samples in the format of ``course_utils.data``; ``.coco`` for pycocotools).
    """
    folder = Path(folder)
    ann = folder / (ann_file if ann_file is not None else ANNOTATIONS_FILE)
    images = folder / (image_dir if image_dir is not None else IMAGES_DIR)
    return CocoDataset(images, ann, transforms=transforms)
