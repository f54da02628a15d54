"""Generated shapes datasets: images and boxes made on the fly, no download needed.

Two torchvision-style detection datasets, drawn with numpy from a seed:

* ``SingleShapeDataset`` - one labelled shape per image (a class and a box), for the
  single-stage detector of the localization lessons. Difficulty knobs (documented on the class)
  make the localization honestly non-trivial: textured backgrounds, pixel noise, distractor
  clutter that is not a labelled class, and a wide range of sizes and aspect ratios.
* ``MultiShapeDataset`` - several shapes of every class per image, varied size, aspect ratio
  and colour, textured backgrounds, partial occlusion and some images without any object,
  for torchvision's detection models (Faster R-CNN).

A sample is ``(image, target)``:

* ``image``: ``float32`` tensor ``[3, H, W]`` with values in ``[0, 1]``;
* ``target["boxes"]``: ``tv_tensors.BoundingBoxes`` ``[N, 4]``, format XYXY, in pixels
  (``N = 1`` for the single dataset, ``N >= 0`` for the multi dataset; ``[0, 4]`` when empty);
* ``target["labels"]``: ``int64`` ``[N]`` in ``1 .. len(CLASSES) - 1`` (``0`` is the background);
* ``target["image_id"]``: ``int`` (the index).

Boxes follow torchvision's pixel-edge convention: a box ``[x1, y1, x2, y2]`` covers the pixels
with ``x1 <= column < x2`` and ``y1 <= row < y2``, so ``x2 - x1`` is the width in pixels. Every
box is the *tight* box of the object's pixels that are visible in the image (computed from the
drawn mask, not from the parameters the shape was drawn with). Where a shape is partly hidden
behind another one (multi dataset only), its box covers its visible part, as in COCO, whose
boxes come from the visible segmentation.

Each sample is generated from a random generator seeded by ``(seed, index)``, so the same index
gives the same sample in every process: DataLoader workers agree, and a dataset can be rebuilt
anywhere from its arguments. Generation is fast (well under a millisecond for a 64-px image);
``cache=True`` keeps generated samples in memory (as ``uint8``) for repeated epochs.

Also here: the two collate functions and small checks on targets (``check_target``,
``clip_boxes``) shared by the COCO and real-dataset loaders.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from functools import cache, lru_cache
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset
from torchvision import tv_tensors

from .boxes import check_valid_boxes

CLASSES: tuple[str, ...] = ("background", "circle", "square", "triangle")
"""Class names; the index is the label. 0 is the background (never a label of a box)."""

NUM_CLASSES = len(CLASSES)
"""Number of classes including the background (the ``num_classes`` torchvision models take)."""

BACKGROUNDS = ("texture", "noise", "plain")
"""Background kinds: a tinted scikit-image texture (brick, grass, gravel), smooth random noise,
or one flat colour."""

DISTRACTOR_KINDS = ("line", "cross", "ring")
"""Clutter that is not a labelled class: thick line segments, plus/x crosses, ellipse outlines."""

_TEXTURE_NAMES = ("brick", "grass", "gravel")
_EDGE_TOLERANCE = 1e-3  # px: float rounding of x + w may land a hair beyond the image edge

Sample = tuple[torch.Tensor, dict[str, Any]]


# --------------------------------------------------------------------------------------------
# Drawing helpers (numpy; each works on a full-image grid of pixel centres)
# --------------------------------------------------------------------------------------------


@cache
def _texture(name: str) -> np.ndarray:
    """A scikit-image texture as float32 [512, 512] in [0, 1], contrast-stretched."""
    import skimage.data

    tex = getattr(skimage.data, name)().astype(np.float32)
    lo, hi = np.percentile(tex, [2, 98])
    return np.clip((tex - lo) / max(hi - lo, 1.0), 0.0, 1.0)


@lru_cache(maxsize=8)
def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates (ys [H, 1], xs [1, W]) for a square image."""
    c = np.arange(size, dtype=np.float32) + 0.5
    return c[:, None], c[None, :]


def _hsv_to_rgb(h: float, s: float, v: float) -> np.ndarray:
    i = int(h * 6.0) % 6
    f = h * 6.0 - math.floor(h * 6.0)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    rgb = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i]
    return np.array(rgb, dtype=np.float32)


def _random_colour(rng: np.random.Generator, saturation=(0.45, 1.0), value=(0.35, 1.0)) -> np.ndarray:
    return _hsv_to_rgb(rng.random(), rng.uniform(*saturation), rng.uniform(*value))


def _smooth_noise(rng: np.random.Generator, size: int) -> np.ndarray:
    """Smooth random noise [size, size] in [0, 1]: a coarse random grid, bilinearly upsampled."""
    cells = int(rng.integers(3, 9))
    coarse = torch.from_numpy(rng.random((1, 1, cells, cells), dtype=np.float32))
    fine = torch.nn.functional.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)
    fine = fine[0, 0].numpy()
    lo, hi = fine.min(), fine.max()
    return (fine - lo) / max(hi - lo, 1e-6)


def _background(rng: np.random.Generator, size: int, kind: str, contrast: float) -> np.ndarray:
    """A background image float32 [size, size, 3] in [0, 1]."""
    if kind == "random":
        kind = BACKGROUNDS[int(rng.integers(0, 2))]  # texture or noise
    base = _random_colour(rng, saturation=(0.0, 0.6), value=(0.2, 0.9))
    if kind == "plain" or contrast <= 0:
        return np.broadcast_to(base, (size, size, 3)).copy()
    if kind == "texture":
        tex = _texture(_TEXTURE_NAMES[int(rng.integers(0, len(_TEXTURE_NAMES)))])
        crop = int(rng.integers(min(size, 512), min(3 * size, 512) + 1))
        y0, x0 = rng.integers(0, 512 - crop + 1, size=2)
        idx = (np.arange(size) * crop // size).astype(np.intp)
        t = tex[y0 + idx[:, None], x0 + idx[None, :]]
        if rng.random() < 0.5:
            t = t.T
        if rng.random() < 0.5:
            t = t[:, ::-1]
    elif kind == "noise":
        t = _smooth_noise(rng, size)
    else:
        raise ValueError(f"background must be one of {BACKGROUNDS + ('random',)}, got {kind!r}")
    other = _random_colour(rng, saturation=(0.0, 0.8), value=(0.0, 1.0))
    second = base + contrast * (other - base)
    t = np.asarray(t, dtype=np.float32)[..., None]
    return np.clip(base + (second - base) * t, 0.0, 1.0)


def _shape_mask(kind: int, x0: float, y0: float, w: float, h: float, size: int, direction: int) -> np.ndarray:
    """Boolean mask [size, size] of a filled shape inside the box (x0, y0, w, h).

    kind: 1 circle (an axis-aligned ellipse when w != h), 2 square (a rectangle when w != h),
    3 triangle (isosceles, its apex pointing up/down/left/right by ``direction`` 0..3).
    Only the pixels of the box's window are computed (no shape reaches outside its box).
    """
    ys_all, xs_all = _grid(size)
    c0, c1 = max(int(math.floor(x0)) - 1, 0), min(int(math.ceil(x0 + w)) + 1, size)
    r0, r1 = max(int(math.floor(y0)) - 1, 0), min(int(math.ceil(y0 + h)) + 1, size)
    ys, xs = ys_all[r0:r1], xs_all[:, c0:c1]
    if kind == 1:
        cx, cy = x0 + w / 2, y0 + h / 2
        local = ((xs - cx) / (w / 2)) ** 2 + ((ys - cy) / (h / 2)) ** 2 <= 1.0
    elif kind in (2, 3):
        local = (xs >= x0) & (xs <= x0 + w) & (ys >= y0) & (ys <= y0 + h)
        if kind == 3 and direction in (0, 1):  # apex up / down: the half-width grows along y
            frac = (ys - y0) / h if direction == 0 else (y0 + h - ys) / h
            local = local & (np.abs(xs - (x0 + w / 2)) <= frac * w / 2)
        elif kind == 3:
            frac = (xs - x0) / w if direction == 2 else (x0 + w - xs) / w
            local = local & (np.abs(ys - (y0 + h / 2)) <= frac * h / 2)
    else:
        raise ValueError(f"shape kind must be 1..3, got {kind}")
    mask = np.zeros((size, size), dtype=bool)
    mask[r0:r1, c0:c1] = local
    return mask


def _distractor_mask(rng: np.random.Generator, kind: str, size: int, scale: float) -> np.ndarray:
    """Boolean mask [size, size] of one piece of clutter (not a labelled class)."""
    ys, xs = _grid(size)
    length = rng.uniform(0.3, 1.0) * scale * size
    thick = max(1.0, rng.uniform(0.04, 0.1) * size)
    cx, cy = rng.uniform(0.1, 0.9, size=2) * size
    if kind == "line" or kind == "cross":
        angles = [rng.uniform(0, math.pi)]
        if kind == "cross":
            angles.append(angles[0] + math.pi / 2)
        mask = np.zeros((size, size), dtype=bool)
        for a in angles:
            dx, dy = math.cos(a), math.sin(a)
            along = (xs - cx) * dx + (ys - cy) * dy
            across = -(xs - cx) * dy + (ys - cy) * dx
            mask |= (np.abs(along) <= length / 2) & (np.abs(across) <= thick / 2)
        return mask
    if kind == "ring":
        rx = length / 2
        ry = rx * math.exp(rng.uniform(-0.5, 0.5))
        r = np.sqrt(((xs - cx) / rx) ** 2 + ((ys - cy) / ry) ** 2)
        return np.abs(r - 1.0) * min(rx, ry) <= thick / 2
    raise ValueError(f"distractor kind must be one of {DISTRACTOR_KINDS}, got {kind!r}")


def _sample_box(
    rng: np.random.Generator, size: int, scale_range: Sequence[float], aspect_range: Sequence[float]
) -> tuple[float, float, float, float]:
    """A box (x0, y0, w, h) fully inside the image: sqrt(w*h)/size in scale_range, w/h in aspect_range."""
    s = rng.uniform(*scale_range) * size
    a = math.exp(rng.uniform(math.log(aspect_range[0]), math.log(aspect_range[1])))
    w = min(s * math.sqrt(a), size - 2.0)
    h = min(s / math.sqrt(a), size - 2.0)
    x0 = rng.uniform(1.0, size - 1.0 - w)
    y0 = rng.uniform(1.0, size - 1.0 - h)
    return x0, y0, w, h


def _tight_box(mask: np.ndarray) -> list[float] | None:
    """[x1, y1, x2, y2] in pixel edges of the True pixels of a mask, or None when it is empty."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return [float(cols[0]), float(rows[0]), float(cols[-1] + 1), float(rows[-1] + 1)]


CLASS_HUES: dict[int, tuple[float, float]] = {1: (-0.04, 0.06), 2: (0.25, 0.42), 3: (0.55, 0.7)}
"""Hue ranges (0..1, HSV) used with ``class_hues=True``: circles red/orange, squares green, triangles blue."""


def _contrasting_colour(
    rng: np.random.Generator,
    background: np.ndarray,
    min_distance: float,
    hue: tuple[float, float] | None = None,
) -> np.ndarray:
    """A random colour at least ``min_distance`` (RGB Euclidean) from the mean of ``background`` [..., 3].

    With ``hue`` = (low, high) the hue is drawn from that range (saturated, fairly bright colours).
    """
    mean = background.reshape(-1, 3).mean(axis=0)
    best, best_d = None, -1.0
    for _ in range(20):
        if hue is None:
            c = _random_colour(rng)
        else:
            c = _hsv_to_rgb(rng.uniform(*hue) % 1.0, rng.uniform(0.6, 1.0), rng.uniform(0.55, 1.0))
        d = float(np.linalg.norm(c - mean))
        if d >= min_distance:
            return c
        if d > best_d:
            best, best_d = c, d
    return best  # the most distinct of the tries


def _check_range(name: str, value: Sequence[float], lo: float, hi: float) -> tuple[float, float]:
    try:
        a, b = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a pair (low, high), got {value!r}") from None
    if not (lo <= a <= b <= hi):
        raise ValueError(f"{name} must satisfy {lo} <= low <= high <= {hi}, got {value!r}")
    return a, b


def _to_sample(img: np.ndarray, boxes: list[list[float]], labels: list[int], index: int, size: int) -> Sample:
    image = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1), dtype=np.float32))
    target = {
        "boxes": tv_tensors.BoundingBoxes(
            torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4), format="XYXY", canvas_size=(size, size)
        ),
        "labels": torch.tensor(labels, dtype=torch.int64).reshape(-1),
        "image_id": int(index),
    }
    return image, target


# --------------------------------------------------------------------------------------------
# Datasets
# --------------------------------------------------------------------------------------------


class _ShapesBase(Dataset):
    """Shared machinery: length, seeding per (seed, index), optional cache, transforms."""

    classes: tuple[str, ...] = CLASSES
    _salt = 0

    def __init__(self, n_images: int, image_size: int, seed: int, transforms: Callable | None, cache: bool):
        if isinstance(n_images, bool) or not isinstance(n_images, int) or n_images < 0:
            raise ValueError(f"n_images must be an int >= 0, got {n_images!r}")
        if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 16:
            raise ValueError(f"image_size must be an int >= 16 (pixels), got {image_size!r}")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seed must be an int >= 0, got {seed!r}")
        self.n_images = n_images
        self.image_size = image_size
        self.seed = seed
        self.transforms = transforms
        self.cache = cache
        self._cache: dict[int, tuple[np.ndarray, list, list]] = {}

    @property
    def num_classes(self) -> int:
        """Number of classes including the background (``len(CLASSES)``)."""
        return len(self.classes)

    def __len__(self) -> int:
        return self.n_images

    def rng(self, index: int) -> np.random.Generator:
        """The random generator of sample ``index``: seeded by (seed, dataset kind, index) only."""
        return np.random.default_rng([self.seed, self._salt, index])

    def _generate(self, rng: np.random.Generator) -> tuple[np.ndarray, list, list]:
        raise NotImplementedError

    def generate(self, index: int) -> Sample:
        """Sample ``index`` without transforms (image float32 [3, H, W], target dict)."""
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
            raise TypeError(f"index must be an int, got {type(index).__name__}")
        if not -self.n_images <= index < self.n_images:
            raise IndexError(f"index {index} is out of range for a dataset of {self.n_images} images")
        index = int(index) % self.n_images
        if index in self._cache:
            img8, boxes, labels = self._cache[index]
            img = img8.astype(np.float32) / 255.0
        else:
            img, boxes, labels = self._generate(self.rng(index))
            if self.cache:
                img = np.round(img * 255.0).astype(np.uint8)
                self._cache[index] = (img, boxes, labels)
                img = img.astype(np.float32) / 255.0
        return _to_sample(img, boxes, labels, index, self.image_size)

    def __getitem__(self, index: int) -> Sample:
        image, target = self.generate(index)
        if self.transforms is not None:
            image, target = self.transforms(image, target)
        return image, target


class SingleShapeDataset(_ShapesBase):
    """One labelled shape per image: a class (circle, square, triangle) and its box.

    Args:
        n_images: number of images (the dataset's length).
        image_size: side of the square images in pixels (default 64).
        seed: the seed; sample ``i`` depends only on ``(seed, i)`` and the knobs below.
        transforms: optional ``transforms(image, target) -> (image, target)``, e.g. a
            ``torchvision.transforms.v2`` pipeline (boxes follow the image).
        cache: keep generated samples in memory (as uint8, ``3 * image_size**2`` bytes each).

    Difficulty knobs (keyword-only). The defaults keep the class easy to tell (each class has its
    own hue range) and make the box honestly non-trivial: a textured background, pixel noise, a
    piece of clutter in half the images, sizes from 13 to 45 px and aspect ratios from 1:2 to 2:1
    at 64 px. Measured with a small detector (conv 16/32, flatten, linear class and box heads;
    Adam 1e-3, batch 64, 3,000 training and 500 validation images, 30 epochs): accuracy 0.99 and
    validation IoU 0.54 (cross-entropy + MSE on pixel boxes) or 0.50 (+ 5 x Smooth L1 on
    normalised boxes). Knobs, from easy to hard:

        background: ``"texture"`` (default; a scikit-image texture - brick, grass or gravel - at a
            random zoom, tinted with two random colours), ``"noise"`` (smooth random blobs),
            ``"plain"`` (one flat colour: the easy setting) or ``"random"`` (texture or noise).
        background_contrast: 0..1 (default 0.3), how far the background's second colour is from
            its first; 0 gives a flat background whatever ``background`` says.
        noise_std: standard deviation of Gaussian pixel noise added at the end (default 0.05;
            0 = none).
        distractors: the largest number of clutter items drawn behind the shape (default 1; each
            image gets 0..distractors, uniformly). Clutter is never a labelled class; it is drawn
            in random colours.
        distractor_kinds: which clutter (default ``("line", "cross")``; ``"ring"``, an ellipse
            outline, looks like a circle and makes the class much harder to tell).
        scale_range: the shape's size ``sqrt(w * h) / image_size`` is uniform in this range
            (default (0.2, 0.7)). Wider ranges make both tasks harder.
        aspect_range: the box's ``w / h`` is log-uniform in this range (default (0.5, 2.0)).
            Circles become ellipses and squares rectangles; the class is the shape family.
        min_contrast: the shape's colour is at least this far (RGB distance, 0..1.7) from the
            mean background colour under it (default 0.4).
        class_hues: True (default) draws each class in its own hue range (``CLASS_HUES``: circles
            red/orange, squares green, triangles blue), so the class is easy and the lesson can
            focus on the box; False draws every shape in a random colour, which makes the class
            much harder for a small detector (measured: about 45 % accuracy after 15 epochs on
            1,500 images, against 99 % with class hues).

    The shape is drawn last (on top of the clutter), always whole and inside the image, so its
    box is the tight box of all its pixels. ``target["boxes"]`` has shape [1, 4].

    Example:
        >>> ds = SingleShapeDataset(1000, seed=0)
        >>> image, target = ds[0]   # image [3, 64, 64], target["boxes"] [1, 4], target["labels"] [1]
        >>> easy = SingleShapeDataset(1000, background="plain", distractors=0, noise_std=0.0)
    """

    _salt = 1

    def __init__(
        self,
        n_images: int,
        image_size: int = 64,
        seed: int = 0,
        *,
        transforms: Callable | None = None,
        cache: bool = False,
        background: str = "texture",
        background_contrast: float = 0.3,
        noise_std: float = 0.05,
        distractors: int = 1,
        distractor_kinds: Sequence[str] = ("line", "cross"),
        scale_range: Sequence[float] = (0.2, 0.7),
        aspect_range: Sequence[float] = (0.5, 2.0),
        min_contrast: float = 0.4,
        class_hues: bool = True,
    ):
        super().__init__(n_images, image_size, seed, transforms, cache)
        if background not in BACKGROUNDS + ("random",):
            raise ValueError(f"background must be one of {BACKGROUNDS + ('random',)}, got {background!r}")
        if not 0.0 <= background_contrast <= 1.0:
            raise ValueError(f"background_contrast must be in [0, 1], got {background_contrast!r}")
        if not 0.0 <= noise_std <= 1.0:
            raise ValueError(f"noise_std must be in [0, 1], got {noise_std!r}")
        if isinstance(distractors, bool) or not isinstance(distractors, int) or distractors < 0:
            raise ValueError(f"distractors must be an int >= 0, got {distractors!r}")
        bad = [k for k in distractor_kinds if k not in DISTRACTOR_KINDS]
        if bad or (distractors and not distractor_kinds):
            raise ValueError(
                f"distractor_kinds must be a non-empty subset of {DISTRACTOR_KINDS}, got {distractor_kinds!r}"
            )
        self.background = background
        self.background_contrast = float(background_contrast)
        self.noise_std = float(noise_std)
        self.distractors = distractors
        self.distractor_kinds = tuple(distractor_kinds)
        self.scale_range = _check_range("scale_range", scale_range, 2.0 / image_size, 0.95)
        self.aspect_range = _check_range("aspect_range", aspect_range, 0.1, 10.0)
        self.min_contrast = float(min_contrast)
        self.class_hues = bool(class_hues)

    def knobs(self) -> dict[str, Any]:
        """The difficulty knobs and their values (pass them back as keywords to rebuild the dataset)."""
        names = ("background", "background_contrast", "noise_std", "distractors", "distractor_kinds")
        names += ("scale_range", "aspect_range", "min_contrast", "class_hues")
        return {k: getattr(self, k) for k in names}

    def __repr__(self) -> str:
        knobs = ", ".join(f"{k}={v!r}" for k, v in self.knobs().items())
        return f"SingleShapeDataset(n_images={self.n_images}, image_size={self.image_size}, seed={self.seed}, {knobs})"

    def _generate(self, rng: np.random.Generator) -> tuple[np.ndarray, list, list]:
        size = self.image_size
        img = _background(rng, size, self.background, self.background_contrast)
        for _ in range(int(rng.integers(0, self.distractors + 1))):
            kind = self.distractor_kinds[int(rng.integers(0, len(self.distractor_kinds)))]
            mask = _distractor_mask(rng, kind, size, self.scale_range[1])
            img[mask] = _random_colour(rng)
        label = int(rng.integers(1, len(CLASSES)))
        for _ in range(10):  # a shape that is too thin to draw a pixel is redrawn
            x0, y0, w, h = _sample_box(rng, size, self.scale_range, self.aspect_range)
            mask = _shape_mask(label, x0, y0, w, h, size, int(rng.integers(0, 4)))
            box = _tight_box(mask)
            if box is not None and box[2] - box[0] >= 2 and box[3] - box[1] >= 2:
                break
        else:  # pragma: no cover - needs absurd knobs
            raise RuntimeError(f"could not draw a shape with scale_range={self.scale_range}")
        hue = CLASS_HUES[label] if self.class_hues else None
        img[mask] = _contrasting_colour(rng, img[mask], self.min_contrast, hue)
        if self.noise_std > 0:
            img = img + self.noise_std * rng.standard_normal(img.shape, dtype=np.float32)
        return np.clip(img, 0.0, 1.0), [box], [label]


class MultiShapeDataset(_ShapesBase):
    """Several shapes per image (circles, squares, triangles), for torchvision detection models.

    Args:
        n_images: number of images (the dataset's length).
        image_size: side of the square images in pixels (default 128).
        seed: the seed; sample ``i`` depends only on ``(seed, i)`` and the arguments.
        max_objects: each non-empty image gets 1..max_objects shapes, uniformly (default 6).
        empty_fraction: probability that an image has no object at all (default 0.1); its
            ``boxes`` are a [0, 4] tensor and its ``labels`` a [0] tensor.
        transforms: optional ``transforms(image, target) -> (image, target)`` (torchvision v2).
        cache: keep generated samples in memory (as uint8).
        background: ``"random"`` (default: texture or noise), ``"texture"``, ``"noise"`` or ``"plain"``.
        background_contrast: 0..1 (default 0.5), see ``SingleShapeDataset``.
        noise_std: Gaussian pixel noise (default 0.03).
        scale_range: each shape's ``sqrt(w * h) / image_size`` (default (0.08, 0.4): about 10 to
            51 px at 128 px).
        aspect_range: each box's ``w / h``, log-uniform (default (0.6, 1.7)).
        min_visible: a shape drawn over earlier ones may hide part of them, but every shape keeps at
            least this fraction of its own pixels visible (default 0.5); a placement that would hide
            more is drawn again elsewhere (after 20 tries the image simply has fewer shapes).
        min_contrast: RGB distance of a shape's colour from the mean background under it (default 0.3).

    Occlusion and boxes: shapes are drawn one after another and later ones cover earlier ones.
    Each box is the tight box of the pixels of its shape that stay visible in the final image
    (the COCO convention), so a partly hidden shape's box can be smaller than the shape as drawn.
    Every box lies inside the image and is at least 1 px wide and high.
    """

    _salt = 2

    def __init__(
        self,
        n_images: int,
        image_size: int = 128,
        seed: int = 0,
        *,
        max_objects: int = 6,
        empty_fraction: float = 0.1,
        transforms: Callable | None = None,
        cache: bool = False,
        background: str = "random",
        background_contrast: float = 0.5,
        noise_std: float = 0.03,
        scale_range: Sequence[float] = (0.08, 0.4),
        aspect_range: Sequence[float] = (0.6, 1.7),
        min_visible: float = 0.5,
        min_contrast: float = 0.3,
    ):
        super().__init__(n_images, image_size, seed, transforms, cache)
        if isinstance(max_objects, bool) or not isinstance(max_objects, int) or max_objects < 1:
            raise ValueError(f"max_objects must be an int >= 1, got {max_objects!r}")
        if not 0.0 <= empty_fraction <= 1.0:
            raise ValueError(f"empty_fraction must be in [0, 1], got {empty_fraction!r}")
        if background not in BACKGROUNDS + ("random",):
            raise ValueError(f"background must be one of {BACKGROUNDS + ('random',)}, got {background!r}")
        if not 0.0 <= background_contrast <= 1.0:
            raise ValueError(f"background_contrast must be in [0, 1], got {background_contrast!r}")
        if not 0.0 <= noise_std <= 1.0:
            raise ValueError(f"noise_std must be in [0, 1], got {noise_std!r}")
        if not 0.0 < min_visible <= 1.0:
            raise ValueError(f"min_visible must be in (0, 1], got {min_visible!r}")
        self.max_objects = max_objects
        self.empty_fraction = float(empty_fraction)
        self.background = background
        self.background_contrast = float(background_contrast)
        self.noise_std = float(noise_std)
        self.scale_range = _check_range("scale_range", scale_range, 2.0 / image_size, 0.95)
        self.aspect_range = _check_range("aspect_range", aspect_range, 0.1, 10.0)
        self.min_visible = float(min_visible)
        self.min_contrast = float(min_contrast)

    def __repr__(self) -> str:
        return (
            f"MultiShapeDataset(n_images={self.n_images}, image_size={self.image_size}, seed={self.seed}, "
            f"max_objects={self.max_objects}, empty_fraction={self.empty_fraction}, "
            f"background={self.background!r}, scale_range={self.scale_range}, aspect_range={self.aspect_range})"
        )

    def _generate(self, rng: np.random.Generator) -> tuple[np.ndarray, list, list]:
        size = self.image_size
        img = _background(rng, size, self.background, self.background_contrast)
        owner = np.full((size, size), -1, dtype=np.int16)  # which shape each pixel shows
        areas: list[int] = []  # full drawn area of each placed shape
        visible: list[int] = []  # how many of its pixels are still visible
        labels: list[int] = []
        n_objects = 0 if rng.random() < self.empty_fraction else int(rng.integers(1, self.max_objects + 1))
        for _ in range(n_objects):
            label = int(rng.integers(1, len(CLASSES)))
            for _try in range(20):
                x0, y0, w, h = _sample_box(rng, size, self.scale_range, self.aspect_range)
                mask = _shape_mask(label, x0, y0, w, h, size, int(rng.integers(0, 4)))
                area = int(mask.sum())
                if area < 4:
                    continue
                if areas:
                    under = owner[mask]
                    covered = np.bincount(under[under >= 0], minlength=len(areas))
                    if np.any(np.asarray(visible) - covered < self.min_visible * np.asarray(areas)):
                        continue
                break
            else:
                continue
            colour = _contrasting_colour(rng, img[mask], self.min_contrast)
            img[mask] = colour
            if areas:
                under = owner[mask]
                visible = (
                    np.asarray(visible) - np.bincount(under[under >= 0], minlength=len(areas))
                ).tolist()
            owner[mask] = len(areas)
            areas.append(area)
            visible.append(area)
            labels.append(label)
        # Every shape keeps >= min_visible of its >= 4 pixels, so each visible part is non-empty.
        boxes = [_tight_box(owner == k) for k in range(len(labels))]
        if self.noise_std > 0:
            img = img + self.noise_std * rng.standard_normal(img.shape, dtype=np.float32)
        return np.clip(img, 0.0, 1.0), boxes, labels


# --------------------------------------------------------------------------------------------
# Collate functions
# --------------------------------------------------------------------------------------------


def detection_collate(batch: Sequence[Sample]) -> tuple[list[torch.Tensor], list[dict[str, Any]]]:
    """Collate for torchvision detection models: ``(images list, targets list)``.

    Images may differ in size and targets in their number of boxes, so nothing is stacked:
    ``model(images, targets)`` takes the two lists as they are.
    """
    if len(batch) == 0:
        raise ValueError("detection_collate got an empty batch")
    images, targets = [], []
    for i, sample in enumerate(batch):
        if not (isinstance(sample, (tuple, list)) and len(sample) == 2):
            raise TypeError(f"batch item {i} must be an (image, target) pair, got {type(sample).__name__}")
        images.append(sample[0])
        targets.append(sample[1])
    return images, targets


def single_object_collate(batch: Sequence[Sample]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Collate for the single-object task: ``(images [B, 3, H, W], labels int64 [B], boxes float32 [B, 4])``.

    Boxes are XYXY in pixels, as plain tensors. Every target must hold exactly one box.
    """
    if len(batch) == 0:
        raise ValueError("single_object_collate got an empty batch")
    images, labels, boxes = [], [], []
    for i, (image, target) in enumerate(batch):
        b, lab = target["boxes"], target["labels"]
        if b.shape != (1, 4) or lab.shape != (1,):
            raise ValueError(
                f"single_object_collate: sample {i} (image_id {target.get('image_id')}) must have exactly "
                f"one box [1, 4] and one label [1], got boxes {tuple(b.shape)} and labels {tuple(lab.shape)}"
            )
        images.append(torch.as_tensor(image))
        labels.append(lab.as_subclass(torch.Tensor)[0])
        boxes.append(b.as_subclass(torch.Tensor)[0])
    shapes = {tuple(im.shape) for im in images}
    if len(shapes) != 1:
        raise ValueError(
            f"single_object_collate: images must share one shape to be stacked, got {sorted(shapes)}"
        )
    return (
        torch.stack([im.as_subclass(torch.Tensor) for im in images]).float(),
        torch.stack(labels).long(),
        torch.stack(boxes).float(),
    )


# --------------------------------------------------------------------------------------------
# Checks shared by the loaders
# --------------------------------------------------------------------------------------------


def clip_boxes(boxes: torch.Tensor, canvas_size: tuple[int, int], *, where: str = "boxes") -> torch.Tensor:
    """Clip XYXY boxes [N, 4] to an image of ``canvas_size`` (H, W), warning with the count clipped.

    The one sanctioned way to fix boxes that stick out of their image: it never drops a box and
    always says how many it changed (``where`` names them in the warning). Boxes that are not boxes
    (NaN, or corners in the wrong order, e.g. ``(x, y, w, h)``) raise ``ValueError`` instead. Returns a new tensor of
    the same type (``BoundingBoxes`` stay ``BoundingBoxes``).
    """
    h, w = canvas_size
    plain = torch.as_tensor(boxes).as_subclass(torch.Tensor)
    if plain.ndim != 2 or plain.shape[-1] != 4:
        raise ValueError(f"{where}: expected boxes of shape [N, 4], got {tuple(plain.shape)}")
    check_valid_boxes(plain, where, allow_empty=True)  # clipping NaN or swapped corners would hide them
    upper = torch.tensor([w, h, w, h], dtype=plain.dtype)
    clipped = torch.minimum(torch.clamp(plain, min=0), upper)
    changed = int((clipped != plain).any(dim=1).sum())
    if changed:
        warnings.warn(
            f"{where}: clipped {changed} of {len(plain)} boxes to the image ({w}x{h} px)", stacklevel=2
        )
    if isinstance(boxes, tv_tensors.BoundingBoxes):
        return tv_tensors.wrap(clipped, like=boxes)
    return clipped


def check_target(
    target: dict[str, Any],
    canvas_size: tuple[int, int],
    *,
    num_classes: int = NUM_CLASSES,
    where: str = "target",
) -> None:
    """Raise ``ValueError`` (naming ``where``) unless a target's boxes and labels are valid.

    Valid: ``boxes`` [N, 4] XYXY, finite, inside the image of ``canvas_size`` (H, W), with
    positive width and height; ``labels`` int64 [N] in ``1 .. num_classes - 1``. Edges may exceed
    the image by 0.001 px (float rounding).
    """
    h, w = canvas_size
    if "boxes" not in target or "labels" not in target:
        raise ValueError(f"{where}: a target needs 'boxes' and 'labels', got keys {sorted(target)}")
    boxes = torch.as_tensor(target["boxes"]).as_subclass(torch.Tensor)
    labels = torch.as_tensor(target["labels"]).as_subclass(torch.Tensor)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"{where}: boxes must have shape [N, 4], got {tuple(boxes.shape)}")
    if labels.shape != (boxes.shape[0],):
        raise ValueError(f"{where}: labels must have shape [{boxes.shape[0]}], got {tuple(labels.shape)}")
    if labels.dtype != torch.int64:
        raise ValueError(f"{where}: labels must be int64, got {labels.dtype}")
    if not torch.isfinite(boxes).all():
        raise ValueError(f"{where}: boxes contain NaN or infinite values: {boxes.tolist()}")
    bad = (boxes[:, 2] <= boxes[:, 0]) | (boxes[:, 3] <= boxes[:, 1])
    if bad.any():
        i = int(bad.nonzero()[0])
        raise ValueError(
            f"{where}: box {i} {boxes[i].tolist()} has zero or negative width/height "
            "(expected XYXY with x2 > x1 and y2 > y1)"
        )
    tol = _EDGE_TOLERANCE
    outside = (boxes[:, 0] < -tol) | (boxes[:, 1] < -tol) | (boxes[:, 2] > w + tol) | (boxes[:, 3] > h + tol)
    if outside.any():
        i = int(outside.nonzero()[0])
        raise ValueError(
            f"{where}: box {i} {boxes[i].tolist()} lies outside the image ({w}x{h} px); "
            "use course_utils.data.clip_boxes to clip it with a warning"
        )
    out = (labels < 1) | (labels >= num_classes)
    if out.any():
        i = int(out.nonzero()[0])
        raise ValueError(
            f"{where}: label {int(labels[i])} of box {i} is out of range: expected 1..{num_classes - 1} "
            "(0 is the background)"
        )
