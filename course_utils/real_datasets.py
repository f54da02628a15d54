"""Real photos for learners with internet: Penn-Fudan pedestrians and a COCO 2017 val subset.

Both download into the course's cache (``course_utils.paths.cache_dir``), check the archive's
checksum, and extract resume-safely: files are downloaded to ``<name>.part`` (an interrupted
download resumes from where it stopped when the server allows it, else restarts) and archives are
extracted into a temporary folder that is renamed into place only when complete, so an
interrupted run never leaves a half-extracted folder behind.

Without internet the loaders raise ``DownloadError``, whose message says which file to fetch and
where to put it by hand (the archive, or the extracted folder).

Layouts (the official ones):

* Penn-Fudan (the torchvision detection tutorial's data)::

      <cache>/pennfudan/PennFudanPed/PNGImages/FudanPed00001.png
      <cache>/pennfudan/PennFudanPed/PedMasks/FudanPed00001_mask.png     (0 = background, k = person k)

* COCO 2017 val::

      <cache>/coco2017/annotations/instances_val2017.json
      <cache>/coco2017/val2017/000000000139.jpg

Samples have the format of ``course_utils.data``: image float32 [3, H, W] in [0, 1]; target with
``boxes`` (``tv_tensors.BoundingBoxes`` XYXY pixels), ``labels`` int64 and ``image_id`` int.

Checksums: the COCO archives' MD5 sums are the published ones (``COCO_VAL2017_IMAGES``,
``COCO_ANNOTATIONS_2017``). The Penn-Fudan site publishes no checksum, so ``PENNFUDAN_ARCHIVE``
has ``md5=None`` and the download is checked only by opening the zip; pass ``md5=``/``sha256=`` to
``download_file`` to pin one you trust.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import warnings
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.error import HTTPError, URLError
from urllib.request import Request, urlopen

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset
from torchvision import tv_tensors
from torchvision.ops import masks_to_boxes
from torchvision.transforms.v2 import functional as TF

from course_utils.coco import CocoDataset, load_coco
from course_utils.data import check_target
from course_utils.paths import cache_dir


class DownloadError(RuntimeError):
    """A file could not be downloaded (no internet, server error); the message says what to do by hand."""


class ChecksumError(ValueError):
    """A downloaded or hand-placed file does not have the expected checksum."""


@dataclass(frozen=True)
class Archive:
    """An official archive: where it lives, its file name and its checksum (None when unpublished)."""

    url: str
    file_name: str
    md5: str | None = None
    sha256: str | None = None
    size: int | None = None  # bytes, when published


PENNFUDAN_ARCHIVE = Archive(
    url="https://www.cis.upenn.edu/~jshi/ped_html/PennFudanPed.zip",
    file_name="PennFudanPed.zip",
    md5=None,  # not published by the dataset's site; the zip's integrity is checked on extraction
)
COCO_VAL2017_IMAGES = Archive(
    url="http://images.cocodataset.org/zips/val2017.zip",
    file_name="val2017.zip",
    md5="442b8da7639aecaf257c1dceb8ba8c80",
    size=815585330,
)
COCO_ANNOTATIONS_2017 = Archive(
    url="http://images.cocodataset.org/annotations/annotations_trainval2017.zip",
    file_name="annotations_trainval2017.zip",
    md5="f4bbac642086de4f52a3fdda2de5fa2c",
    size=252907541,
)

PENNFUDAN_CLASSES: tuple[str, ...] = ("background", "person")

_TMP_PREFIX = ".extracting-"


# --------------------------------------------------------------------------------------------
# Download, checksum, extraction
# --------------------------------------------------------------------------------------------


def file_hash(path: str | os.PathLike, algorithm: str = "sha256", chunk_size: int = 1 << 20) -> str:
    """Hex digest of a file (``"md5"``, ``"sha256"``...), read in chunks."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(chunk_size), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_checksum(path: str | os.PathLike, *, md5: str | None = None, sha256: str | None = None) -> None:
    """Raise ``ChecksumError`` naming the file unless it matches the given checksums (None = not checked)."""
    for algorithm, expected in (("md5", md5), ("sha256", sha256)):
        if expected is None:
            continue
        actual = file_hash(path, algorithm)
        if actual.lower() != expected.lower():
            raise ChecksumError(
                f"{path}: {algorithm} is {actual}, expected {expected}. The file is incomplete or not the "
                "official one: delete it and download it again."
            )


def _hand_instructions(url: str, dest: Path, extracted: Path | None) -> str:
    lines = [
        "Without internet access, fetch the file on a machine that has it and place it by hand at",
        f"    {dest}",
    ]
    if extracted is not None:
        lines += ["or extract it yourself so that this exists:", f"    {extracted}"]
    lines.append("then run this again.")
    return f"  source: {url}\n" + "\n".join(lines)


def download_file(
    url: str,
    dest: str | os.PathLike,
    *,
    md5: str | None = None,
    sha256: str | None = None,
    progress: bool = True,
    timeout: float = 30.0,
    extracted: str | os.PathLike | None = None,
) -> Path:
    """Download ``url`` to ``dest`` (resume-safe) and check its checksum.

    An existing ``dest`` is only checked. Bytes arrive in ``dest + ".part"``; if a ``.part`` is
    already there (an earlier run was interrupted) the download resumes with an HTTP Range request,
    or restarts when the server ignores it. ``dest`` appears only once the checksum matches; a
    mismatching download is deleted.

    Args:
        url: the address (``http(s)://`` or ``file://``).
        dest: the file to create.
        md5, sha256: expected hex digests (None: not checked).
        progress: show a tqdm progress bar.
        timeout: seconds to wait for the server.
        extracted: for the error message only: the extracted folder a learner may place by hand.

    Raises:
        DownloadError: no connection / server error; the message says where to put the file by hand.
        ChecksumError: the file (downloaded, or placed by hand) has another checksum.
    """
    dest = Path(dest)
    if dest.is_file():
        verify_checksum(dest, md5=md5, sha256=sha256)
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    start = part.stat().st_size if part.is_file() else 0
    headers = {"User-Agent": "course-utils", **({"Range": f"bytes={start}-"} if start else {})}
    help_text = _hand_instructions(url, dest, Path(extracted) if extracted else None)
    try:
        response = urlopen(Request(url, headers=headers), timeout=timeout)
    except HTTPError as err:
        if err.code == 416 and start:  # nothing left to fetch: the .part is complete
            response = None
        else:
            raise DownloadError(
                f"could not download {url}: HTTP {err.code} {err.reason}\n{help_text}"
            ) from err
    except (URLError, OSError) as err:
        reason = getattr(err, "reason", err)
        raise DownloadError(f"could not download {url}: {reason}\n{help_text}") from err
    if response is not None:
        with response:
            status = response.getcode()
            if start and status != 206:
                start = 0  # the server sent the whole file: restart
            length = response.headers.get("Content-Length")
            total = int(length) + start if length is not None else None
            bar = None
            if progress:
                from tqdm.auto import tqdm

                bar = tqdm(total=total, initial=start, unit="B", unit_scale=True, desc=dest.name)
            try:
                with open(part, "ab" if start else "wb") as f:
                    for chunk in iter(lambda: response.read(1 << 20), b""):
                        f.write(chunk)
                        if bar is not None:
                            bar.update(len(chunk))
            except OSError as err:
                raise DownloadError(
                    f"download of {url} was interrupted ({err}); run again to resume from {part}\n{help_text}"
                ) from err
            finally:
                if bar is not None:
                    bar.close()
    try:
        verify_checksum(part, md5=md5, sha256=sha256)
    except ChecksumError:
        part.unlink()
        raise
    os.replace(part, dest)
    return dest


def extract_zip(archive: str | os.PathLike, moves: dict[str, str | os.PathLike]) -> None:
    """Extract members of a zip and move them into place atomically.

    ``moves`` maps a path inside the archive (a file or a folder, e.g. ``"PennFudanPed"``) to its
    destination. Everything is extracted into a temporary folder next to the first destination and
    renamed into place only after the whole extraction succeeded; leftovers of an interrupted run
    are removed first. Existing destinations are left alone.

    Raises:
        ValueError: the archive is not a valid zip or lacks a member (naming both).
    """
    archive = Path(archive)
    targets = {src: Path(dst) for src, dst in moves.items()}
    todo = {src: dst for src, dst in targets.items() if not dst.exists()}
    if not todo:
        return
    parent = next(iter(todo.values())).parent
    parent.mkdir(parents=True, exist_ok=True)
    for stale in parent.glob(_TMP_PREFIX + "*"):
        shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=_TMP_PREFIX, dir=parent))
    try:
        try:
            with zipfile.ZipFile(archive) as zf:
                names = zf.namelist()
                wanted = [n for n in names if any(n == s or n.startswith(s.rstrip("/") + "/") for s in todo)]
                missing = [
                    s for s in todo if not any(n == s or n.startswith(s.rstrip("/") + "/") for n in names)
                ]
                if missing:
                    raise ValueError(f"{archive}: the archive has no {missing}; is it the right file?")
                zf.extractall(tmp, members=wanted)
        except zipfile.BadZipFile as err:
            raise ValueError(
                f"{archive} is not a valid zip archive ({err}); delete it and download it again"
            ) from err
        for src, dst in todo.items():
            dst.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp / src.rstrip("/"), dst)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _read_image(path: Path) -> Image.Image:
    try:
        with Image.open(path) as img:
            return img.convert("RGB")
    except (UnidentifiedImageError, OSError, SyntaxError) as err:
        raise ValueError(f"cannot read image {path}: corrupt or not an image ({err})") from err


# --------------------------------------------------------------------------------------------
# Penn-Fudan pedestrians
# --------------------------------------------------------------------------------------------


def pennfudan_root(*, download: bool = True, progress: bool = True) -> Path:
    """The Penn-Fudan folder (``<cache>/pennfudan/PennFudanPed``), downloaded and extracted if needed."""
    base = cache_dir("pennfudan")
    root = base / "PennFudanPed"
    if (root / "PNGImages").is_dir() and (root / "PedMasks").is_dir():
        return root
    archive = base / PENNFUDAN_ARCHIVE.file_name
    if not archive.is_file():
        if not download:
            raise FileNotFoundError(
                f"Penn-Fudan is not in the cache: expected {root} (with PNGImages/ and PedMasks/) or the "
                f"archive {archive}; pass download=True or fetch {PENNFUDAN_ARCHIVE.url} by hand"
            )
        download_file(
            PENNFUDAN_ARCHIVE.url,
            archive,
            md5=PENNFUDAN_ARCHIVE.md5,
            sha256=PENNFUDAN_ARCHIVE.sha256,
            progress=progress,
            extracted=root,
        )
    extract_zip(archive, {"PennFudanPed": root})
    return root


class PennFudanDataset(Dataset):
    """Penn-Fudan pedestrians (170 photos, 345 people) with boxes computed from the instance masks.

    Args:
        root: the folder holding ``PNGImages/`` and ``PedMasks/``; default: the cache, downloading
            and extracting the official zip when needed (``download=True``).
        transforms: optional ``transforms(image, target)`` (torchvision v2), applied last.
        download: allow the download when ``root`` is None and the data is not cached.
        with_masks: also return ``target["masks"]`` (``tv_tensors.Mask`` [N, H, W] bool).

    Each mask image holds 0 for the background and k for person k. A person's box is the tight
    box of its mask pixels in the course's pixel-edge convention: ``torchvision.ops.masks_to_boxes``
    gives the last pixel's index as x2/y2, and 1 is added so that ``x2 - x1`` is the width in
    pixels (as in ``course_utils.data``). Labels are all 1 (``PENNFUDAN_CLASSES``).

    Raises (naming the file): an image without its mask or a mask without its image, a mask whose
    size differs from its image, an image that cannot be decoded.
    """

    classes = PENNFUDAN_CLASSES

    def __init__(
        self,
        root: str | os.PathLike | None = None,
        transforms: Callable | None = None,
        *,
        download: bool = True,
        with_masks: bool = False,
    ):
        self.root = Path(root) if root is not None else pennfudan_root(download=download)
        image_dir, mask_dir = self.root / "PNGImages", self.root / "PedMasks"
        for folder in (image_dir, mask_dir):
            if not folder.is_dir():
                raise FileNotFoundError(
                    f"Penn-Fudan layout expected {folder} (PNGImages/ and PedMasks/ in {self.root})"
                )
        images = sorted(p.name for p in image_dir.glob("*.png"))
        masks = sorted(p.name for p in mask_dir.glob("*.png"))
        expected = {name[:-4] + "_mask.png" for name in images}
        for name in images:
            if name[:-4] + "_mask.png" not in masks:
                raise FileNotFoundError(
                    f"{image_dir / name} has no mask: expected {mask_dir / (name[:-4] + '_mask.png')}"
                )
        for name in masks:
            if name not in expected:
                raise FileNotFoundError(
                    f"{mask_dir / name} has no image: expected {image_dir / name.replace('_mask', '')}"
                )
        self.images = images
        self.transforms = transforms
        self.with_masks = with_masks

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict[str, Any]]:
        name = self.images[index]
        image_path = self.root / "PNGImages" / name
        mask_path = self.root / "PedMasks" / (name[:-4] + "_mask.png")
        pil = _read_image(image_path)
        try:
            with Image.open(mask_path) as m:
                mask = np.array(m)
        except (UnidentifiedImageError, OSError, SyntaxError) as err:
            raise ValueError(f"cannot read mask {mask_path}: corrupt or not an image ({err})") from err
        if mask.ndim != 2 or mask.shape != (pil.height, pil.width):
            raise ValueError(
                f"mask {mask_path} has shape {mask.shape}, expected a single-channel "
                f"{pil.height}x{pil.width} image like {image_path}"
            )
        ids = np.unique(mask)
        ids = ids[ids != 0]
        masks = torch.from_numpy(mask[None] == ids[:, None, None])  # [N, H, W]
        boxes = masks_to_boxes(masks) if len(ids) else torch.zeros(0, 4)
        boxes[:, 2:] += 1  # last pixel index -> pixel edge
        size = (pil.height, pil.width)
        target: dict[str, Any] = {
            "boxes": tv_tensors.BoundingBoxes(boxes, format="XYXY", canvas_size=size),
            "labels": torch.ones(len(ids), dtype=torch.int64),
            "image_id": int(index),
        }
        if self.with_masks:
            target["masks"] = tv_tensors.Mask(masks)
        check_target(target, size, num_classes=len(self.classes), where=f"mask {mask_path}")
        image = TF.to_dtype(TF.to_image(pil), torch.float32, scale=True)
        if self.transforms is not None:
            image, target = self.transforms(image, target)
        return image, target


# --------------------------------------------------------------------------------------------
# COCO 2017 val subset
# --------------------------------------------------------------------------------------------


def coco_val2017_root(*, download: bool = True, images: bool = True, progress: bool = True) -> Path:
    """The COCO 2017 val folder (``<cache>/coco2017``) with ``annotations/instances_val2017.json``
    and, when ``images`` is True, all of ``val2017/`` (the 778 MB zip). Downloads what is missing."""
    root = cache_dir("coco2017")
    needed = [
        (
            COCO_ANNOTATIONS_2017,
            "annotations/instances_val2017.json",
            root / "annotations" / "instances_val2017.json",
        )
    ]
    if images:
        needed.append((COCO_VAL2017_IMAGES, "val2017", root / "val2017"))
    for archive_info, member, target in needed:
        if target.exists():
            continue
        archive = root / archive_info.file_name
        if not archive.is_file():
            if not download:
                raise FileNotFoundError(
                    f"COCO 2017 val is not in the cache: expected {target} or the archive {archive}; "
                    f"pass download=True or fetch {archive_info.url} by hand"
                )
            download_file(
                archive_info.url, archive, md5=archive_info.md5, progress=progress, extracted=target
            )
        extract_zip(archive, {member: target})
    return root


def _fetch_subset_images(images: list[dict], image_dir: Path, progress: bool) -> None:
    """Download the missing subset images one by one from their ``coco_url`` (no archive needed)."""
    missing = [img for img in images if not (image_dir / img["file_name"]).is_file()]
    if progress and missing:
        from tqdm.auto import tqdm

        missing = tqdm(missing, desc="COCO images")
    for img in missing:
        dest = image_dir / img["file_name"]
        url = img.get("coco_url") or f"http://images.cocodataset.org/val2017/{img['file_name']}"
        download_file(url, dest, progress=False, extracted=None)
        _read_image(dest)  # a broken download fails here, naming the file


def coco_val2017_subset(
    categories: Sequence[str] = ("person",),
    max_images: int = 200,
    *,
    root: str | os.PathLike | None = None,
    transforms: Callable | None = None,
    download: bool = True,
    image_source: str = "files",
    contiguous_labels: bool = False,
    progress: bool = True,
) -> CocoDataset:
    """A small COCO 2017 val subset: the first ``max_images`` images (by id) holding the categories.

    Args:
        categories: COCO category names to keep (e.g. ``("person", "dog")``); other objects are not
            annotated in the subset.
        max_images: at most this many images (those with at least one kept object, in id order).
        root: a folder with ``annotations/instances_val2017.json`` and ``val2017/``; default the cache.
        transforms: optional ``transforms(image, target)`` (torchvision v2).
        download: fetch what is missing (annotations zip with its MD5 check, and images).
        image_source: ``"files"`` (default: only the subset's images, one by one from their
            ``coco_url``) or ``"archive"`` (all of val2017.zip, 778 MB, MD5-checked).
        contiguous_labels: number the kept categories 1..K (in the order given) instead of keeping
            the COCO ids (the default, which matches torchvision's COCO-pretrained models).

    The subset's annotation file is written to ``<root>/subsets/`` and read back with ``load_coco``.
    Crowd annotations (``iscrowd=1``) are left out, boxes with zero width or height are left out and
    boxes that stick out of their image are clipped; each of these is counted in a warning.

    Returns:
        a ``CocoDataset`` (``.coco`` is the pycocotools index of the subset, for evaluation).
    """
    if image_source not in ("files", "archive"):
        raise ValueError(f"image_source must be 'files' or 'archive', got {image_source!r}")
    if not isinstance(max_images, int) or max_images < 1:
        raise ValueError(f"max_images must be an int >= 1, got {max_images!r}")
    if isinstance(categories, str):
        categories = (categories,)
    if root is None:
        root = coco_val2017_root(download=download, images=image_source == "archive", progress=progress)
    root = Path(root)
    ann_path = root / "annotations" / "instances_val2017.json"
    if not ann_path.is_file():
        raise FileNotFoundError(f"COCO layout expected {ann_path}")
    full = json.loads(ann_path.read_text())
    by_name = {c["name"]: c for c in full["categories"]}
    unknown = [c for c in categories if c not in by_name]
    if unknown:
        raise ValueError(f"unknown COCO categories {unknown}; {ann_path.name} has {sorted(by_name)}")
    keep = [by_name[c] for c in categories]
    new_id = {c["id"]: (k + 1 if contiguous_labels else c["id"]) for k, c in enumerate(keep)}
    images_by_id = {img["id"]: img for img in full["images"]}
    counts = {"crowd": 0, "degenerate": 0, "clipped": 0}
    anns_by_image: dict[int, list[dict]] = {}
    for ann in full["annotations"]:
        if ann["category_id"] not in new_id:
            continue
        if ann.get("iscrowd", 0):
            counts["crowd"] += 1
            continue
        img = images_by_id.get(ann["image_id"])
        if img is None:
            raise ValueError(
                f"{ann_path}: annotation id {ann['id']} points at image id {ann['image_id']}, which is not in 'images'"
            )
        x, y, w, h = ann["bbox"]
        x1, y1 = max(x, 0.0), max(y, 0.0)
        x2, y2 = min(x + w, img["width"]), min(y + h, img["height"])
        if x2 <= x1 or y2 <= y1:
            counts["degenerate"] += 1
            continue
        if (x1, y1, x2, y2) != (x, y, x + w, y + h):
            counts["clipped"] += 1
        new = dict(ann, category_id=new_id[ann["category_id"]], bbox=[x1, y1, x2 - x1, y2 - y1])
        new.pop("segmentation", None)
        anns_by_image.setdefault(ann["image_id"], []).append(new)
    chosen = sorted(anns_by_image)[:max_images]
    subset_images = [images_by_id[i] for i in chosen]
    n_kept = sum(len(anns_by_image[i]) for i in chosen)
    in_subset = {i for i in chosen}
    dropped = {k: v for k, v in counts.items() if v}
    if dropped:
        warnings.warn(
            f"COCO subset of {categories}: across all of val2017 left out {counts['crowd']} crowd and "
            f"{counts['degenerate']} zero-size annotations, clipped {counts['clipped']} boxes to their image "
            f"(kept {n_kept} annotations in {len(chosen)} images)",
            stacklevel=2,
        )
    image_dir = root / "val2017"
    image_dir.mkdir(parents=True, exist_ok=True)
    if any(not (image_dir / img["file_name"]).is_file() for img in subset_images):
        if not download:
            raise FileNotFoundError(
                f"{image_dir} lacks images of the subset (e.g. {subset_images[0]['file_name']}); "
                "pass download=True or put val2017/ there by hand"
            )
        _fetch_subset_images(subset_images, image_dir, progress)
    categories_out = [
        {
            "id": new_id[c["id"]],
            "name": c["name"],
            "supercategory": c.get("supercategory", ""),
            "coco_id": c["id"],
        }
        for c in keep
    ]
    subset = {
        "info": {"description": f"COCO 2017 val subset: {list(categories)}, up to {max_images} images"},
        "images": subset_images,
        "annotations": [a for i in chosen for a in anns_by_image[i] if a["image_id"] in in_subset],
        "categories": categories_out,
    }
    tag = (
        "-".join(c.replace(" ", "_") for c in categories)
        + f"_{max_images}"
        + ("_contiguous" if contiguous_labels else "")
    )
    out = root / "subsets" / f"instances_val2017_{tag}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps(subset))
    os.replace(tmp, out)
    return load_coco(root, transforms, ann_file=out, image_dir="val2017")
