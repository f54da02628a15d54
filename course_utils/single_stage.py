"""A small single-stage detector for one object per image, and the losses that train it.

The model is the one of lesson 06: a few convolution blocks, a flatten, and two linear
heads on the same features, one for the class and one for the box::

    images [B, 3, S, S] -> features [B, C * (S / 2**k)**2] -> logits [B, num_classes]
                                                           -> box_out [B, 4]

``box_out`` is raw: what its four numbers mean is decided by the loss that trains it. The
experiment compares *target encodings* (``coords``):

* ``"pixels"``     - box_out is the box ``(x1, y1, x2, y2)`` in pixels, about 0..S;
* ``"normalized"`` - box_out is the same box divided by the image size, about 0..1;
* ``"center_log"`` - box_out is ``(cx / S, cy / S, log(w / S), log(h / S))``: the centre,
  normalised, and the log of the normalised size. Decoding takes ``exp`` of the size, which is
  positive, so no decoded box is ever inverted: valid by construction, like the boxes a detector
  decodes from anchors (torchvision's ``BoxCoder.decode_single`` clamps its log-size too, there
  relative to an anchor);

and *localization losses* (``box_loss``): ``"mse"``, ``"l1"``, ``"smooth_l1"`` (from
``torch.nn.functional``) and ``"giou"`` (``torchvision.ops.generalized_box_iou_loss``),
weighted by ``weight`` (lambda) against the classification cross-entropy::

    total = cross_entropy(logits, labels) + weight * box_loss(encode(boxes), box_out)

``decode_boxes`` turns box_out back into pixel boxes for drawing and for IoU, whatever the
encoding. ``LossConfig`` names one arm of the experiment; ``make_loss_fn`` and
``make_predict_fn`` adapt it to ``course_utils.train.fit`` and ``course_utils.evaluate``.
``train_single_stage`` trains one arm; ``train_single_stage_cached`` does it through the model
cache; ``select_on_validation`` picks an arm by its validation metrics.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.ops import clip_boxes_to_image, generalized_box_iou_loss

from .boxes import as_box_tensor

COORDS: tuple[str, ...] = ("pixels", "normalized", "center_log")
# largest log-size decoded (log of the size divided by the image size): it keeps exp() finite on a wild
# output. The value is torchvision's BoxCoder clamp (bbox_xform_clip = log(1000 / 16)), though there it
# bounds the log of a size relative to an anchor, not to the image
MAX_LOG_SIZE: float = math.log(1000.0 / 16)
BOX_LOSSES: tuple[str, ...] = ("mse", "l1", "smooth_l1", "giou")
LOSS_NAMES: dict[str, str] = {
    "mse": "MSE",
    "l1": "L1",
    "smooth_l1": "Smooth L1",
    "giou": "GIoU",
}


class SingleStageDetector(nn.Module):
    """Conv blocks + flatten + a class head and a box head (one object per image).

    Each block is ``Conv2d(3x3, padding 1) -> ReLU -> MaxPool2d(2)``, followed by
    ``Dropout(dropout)`` when ``dropout > 0``. The flattened features feed two ``nn.Linear``
    heads.

    Args:
        num_classes: outputs of the class head. With ``course_utils.data.CLASSES`` pass
            ``len(CLASSES)``: index 0 (background) then never occurs as a target, which keeps
            the label numbers of torchvision's detection models.
        image_size: side S of the square input images; must be divisible by ``2 ** len(widths)``.
        widths: output channels of the conv blocks, e.g. ``(16, 32)``.
        dropout: drop probability after every conv block (0 = no dropout layers).

    ``forward(images [B, 3, S, S]) -> (logits [B, num_classes], box_out [B, 4])``; box_out is
    raw (see the module docstring for the encodings).
    """

    def __init__(
        self, num_classes: int, image_size: int, widths: Sequence[int] = (16, 32), dropout: float = 0.0
    ):
        super().__init__()
        if not isinstance(num_classes, int) or num_classes < 2:
            raise ValueError(f"num_classes must be an int >= 2, got {num_classes!r}")
        widths = tuple(widths)
        if not widths or any(not isinstance(w, int) or w < 1 for w in widths):
            raise ValueError(f"widths must be a non-empty sequence of positive ints, got {widths!r}")
        stride = 2 ** len(widths)
        if not isinstance(image_size, int) or image_size < stride or image_size % stride:
            raise ValueError(
                f"image_size must be a positive int divisible by 2**len(widths) = {stride}, got {image_size!r}"
            )
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        self.num_classes = num_classes
        self.image_size = image_size
        self.widths = widths
        self.dropout = float(dropout)
        layers: list[nn.Module] = []
        in_channels = 3
        for width in widths:
            layers += [nn.Conv2d(in_channels, width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            in_channels = width
        layers.append(nn.Flatten())
        self.features = nn.Sequential(*layers)
        self.feature_size = widths[-1] * (image_size // stride) ** 2
        self.class_head = nn.Linear(self.feature_size, num_classes)
        self.box_head = nn.Linear(self.feature_size, 4)

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor]:
        if images.dim() != 4 or images.shape[1] != 3 or tuple(images.shape[2:]) != (self.image_size,) * 2:
            raise ValueError(
                f"images must have shape [B, 3, {self.image_size}, {self.image_size}], "
                f"got {list(images.shape)}"
            )
        # channels-last memory makes the convolutions and poolings about a quarter faster on a CPU;
        # the values (and the flatten order) are those of the usual layout
        features = self.features(images.contiguous(memory_format=torch.channels_last))
        return self.class_head(features), self.box_head(features)


def _check_coords(coords: str) -> None:
    if coords not in COORDS:
        raise ValueError(f"coords must be one of {COORDS}, got {coords!r}")


def encode_boxes(boxes: Tensor, image_size: int, coords: str) -> Tensor:
    """Regression targets from pixel boxes.

    Args:
        boxes: [N, 4] XYXY in pixels (a ``tv_tensors.BoundingBoxes`` works too).
        image_size: side of the square image, in pixels.
        coords: ``"pixels"`` (unchanged), ``"normalized"`` (divided by ``image_size``) or
            ``"center_log"`` (centre / ``image_size``, log(size / ``image_size``); boxes must
            have a positive width and height).

    Returns:
        [N, 4] float tensor (a plain tensor).

    Raises:
        ValueError naming ``boxes`` when a box is not finite XYXY with x2 >= x1, y2 >= y1
        (x2 > x1, y2 > y1 for ``"center_log"``).
    """
    _check_coords(coords)
    # Targets must be boxes: NaN, swapped corners or (x, y, w, h) would train the head on garbage.
    as_box_tensor(boxes, "boxes", valid=True, allow_empty=coords != "center_log")
    boxes = boxes.as_subclass(Tensor).float()
    if coords == "pixels":
        return boxes
    if coords == "normalized":
        return boxes / image_size
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2
    size = boxes[:, 2:] - boxes[:, :2]
    return torch.cat([centre / image_size, torch.log(size / image_size)], dim=1)


def decode_boxes(box_out: Tensor, image_size: int, coords: str, clip: bool = True) -> Tensor:
    """Pixel boxes from the box head's raw output: the inverse of ``encode_boxes``.

    Args:
        box_out: [N, 4] raw output of the box head.
        image_size: side of the square image, in pixels.
        coords: the encoding the box head was trained with (``COORDS``).
        clip: clip the corners to the image (``torchvision.ops.clip_boxes_to_image``), as a
            detector's post-processing does. Corners are not reordered: a prediction with
            ``x2 < x1`` stays invalid and scores IoU 0 (``"center_log"`` never makes one: its
            sizes are ``exp`` of the log-sizes, clamped at ``MAX_LOG_SIZE``).

    Returns:
        [N, 4] XYXY in pixels.
    """
    _check_coords(coords)
    as_box_tensor(box_out, "box_out")
    box_out = box_out.float()
    if coords == "pixels":
        boxes = box_out
    elif coords == "normalized":
        boxes = box_out * image_size
    else:
        centre = box_out[:, :2] * image_size
        size = torch.exp(box_out[:, 2:].clamp(max=MAX_LOG_SIZE)) * image_size
        boxes = torch.cat([centre - size / 2, centre + size / 2], dim=1)
    return clip_boxes_to_image(boxes, (image_size, image_size)) if clip else boxes


def localization_loss(
    box_out: Tensor,
    boxes: Tensor,
    *,
    image_size: int,
    box_loss: str = "smooth_l1",
    coords: str = "normalized",
) -> Tensor:
    """Mean localization loss between the box head's output and the ground-truth boxes.

    Args:
        box_out: [N, 4] raw output of the box head.
        boxes: [N, 4] ground truth, XYXY in pixels.
        image_size: side of the square image, in pixels.
        box_loss: ``"mse"``, ``"l1"``, ``"smooth_l1"`` (``beta=1``, PyTorch's default) compare
            ``box_out`` with ``encode_boxes(boxes)`` coordinate by coordinate (mean over the
            N x 4 numbers); ``"giou"`` decodes ``box_out`` (without clipping) and takes the mean
            of ``generalized_box_iou_loss`` over the N boxes (scale-free, so ``coords`` only
            changes what box_out means). torchvision's GIoU expects valid boxes (x1 < x2,
            y1 < y2): with ``"pixels"`` or ``"normalized"`` nothing enforces them, and on an
            inverted box the formula can drop below 0, so from an untrained head it can reward
            inverting the box further; with ``"center_log"`` every box is valid.
        coords: the target encoding (``COORDS``).

    Returns:
        a scalar tensor.
    """
    if box_loss not in BOX_LOSSES:
        raise ValueError(f"box_loss must be one of {BOX_LOSSES}, got {box_loss!r}")
    as_box_tensor(box_out, "box_out")
    as_box_tensor(boxes, "boxes", valid=True, allow_empty=coords != "center_log")  # the GIoU path too
    if box_out.shape[0] != boxes.shape[0]:
        raise ValueError(f"box_out has {box_out.shape[0]} rows but boxes has {boxes.shape[0]}")
    if box_loss == "giou":
        pred = decode_boxes(box_out, image_size, coords, clip=False)
        return generalized_box_iou_loss(pred, boxes.as_subclass(Tensor).float(), reduction="mean")
    target = encode_boxes(boxes, image_size, coords).to(box_out.dtype)
    if box_loss == "mse":
        return F.mse_loss(box_out, target)
    if box_loss == "l1":
        return F.l1_loss(box_out, target)
    return F.smooth_l1_loss(box_out, target, beta=1.0)


@dataclass(frozen=True)
class LossConfig:
    """One arm of the experiment: which localization loss, on which encoding, with which weight.

    ``LossConfig("mse", "pixels", 1.0)`` is the unweighted MSE on pixel coordinates;
    ``LossConfig("smooth_l1", "normalized", 5.0)`` is 5 x Smooth L1 on normalised coordinates.
    """

    box_loss: str = "smooth_l1"
    coords: str = "normalized"
    weight: float = 1.0

    def __post_init__(self) -> None:
        if self.box_loss not in BOX_LOSSES:
            raise ValueError(f"box_loss must be one of {BOX_LOSSES}, got {self.box_loss!r}")
        _check_coords(self.coords)
        if not isinstance(self.weight, (int, float)) or not math.isfinite(self.weight) or self.weight < 0:
            raise ValueError(f"weight must be a finite number >= 0, got {self.weight!r}")

    @property
    def label(self) -> str:
        """A short readable name, e.g. ``'5 x Smooth L1, normalized'``."""
        weight = f"{self.weight:g} x " if self.weight != 1 else ""
        return f"{weight}{LOSS_NAMES[self.box_loss]}, {self.coords}"


def detection_losses(
    logits: Tensor, box_out: Tensor, labels: Tensor, boxes: Tensor, *, image_size: int, config: LossConfig
) -> dict[str, Tensor]:
    """The two named losses of the experiment.

    Args:
        logits: [N, num_classes]; box_out: [N, 4] raw; labels: [N] int64; boxes: [N, 4] XYXY px.

    Returns:
        ``{"loss_classification": cross_entropy, "loss_localization": weight * localization_loss}``;
        the total that training minimises is their sum.
    """
    if logits.dim() != 2 or labels.shape != logits.shape[:1]:
        raise ValueError(
            f"logits must be [N, C] and labels [N]; got {list(logits.shape)} and {list(labels.shape)}"
        )
    classification = F.cross_entropy(logits, labels)
    loc = localization_loss(
        box_out, boxes, image_size=image_size, box_loss=config.box_loss, coords=config.coords
    )
    return {"loss_classification": classification, "loss_localization": config.weight * loc}


LossFn = Callable[[nn.Module, Any, torch.device], dict[str, Tensor]]


def make_loss_fn(config: LossConfig, image_size: int) -> LossFn:
    """A ``loss_fn(model, batch, device)`` for ``course_utils.train.fit``.

    ``batch`` is ``(images [B, 3, S, S], labels [B], boxes [B, 4] XYXY px)``, as made by
    ``course_utils.data.single_object_collate``.
    """

    def loss_fn(model: nn.Module, batch: Any, device: torch.device) -> dict[str, Tensor]:
        images, labels, boxes = (t.to(device) for t in batch)
        logits, box_out = model(images)
        return detection_losses(logits, box_out, labels, boxes, image_size=image_size, config=config)

    return loss_fn


@torch.no_grad()
def predict(model: nn.Module, images: Tensor, coords: str) -> tuple[Tensor, Tensor, Tensor]:
    """Class, score and pixel box for each image (the model is put in eval mode).

    Args:
        model: a ``SingleStageDetector`` (anything returning ``(logits, box_out)``).
        images: [B, 3, S, S] on the model's device.
        coords: the encoding the box head was trained with.

    Returns:
        ``labels`` [B] int64 (argmax), ``scores`` [B] (softmax probability of that class) and
        ``boxes`` [B, 4] XYXY px, clipped to the image.
    """
    model.eval()
    logits, box_out = model(images)
    scores, labels = logits.softmax(dim=1).max(dim=1)
    return labels, scores, decode_boxes(box_out, images.shape[-1], coords)


def make_predict_fn(model: nn.Module, coords: str) -> Callable[[Tensor], tuple[Tensor, Tensor]]:
    """``predict_fn(images) -> (labels [B], boxes [B, 4] XYXY px)`` for ``localization_metrics``."""
    _check_coords(coords)

    def predict_fn(images: Tensor) -> tuple[Tensor, Tensor]:
        labels, _, boxes = predict(model, images, coords)
        return labels, boxes

    return predict_fn


# --------------------------------------------------------------------------------------------
# One arm of the experiment, trained with course_utils.train.fit
# --------------------------------------------------------------------------------------------

Tensors = tuple[Tensor, Tensor, Tensor]


@dataclass
class SingleStageRun:
    """What ``train_single_stage`` returns for one arm.

    Attributes:
        config, seed, dropout: what was trained.
        model: the trained ``SingleStageDetector`` (on the training device).
        history: ``course_utils.train.History``; with ``metrics_every_epoch`` each record also
            holds ``val_accuracy``, ``val_iou``, ``train_accuracy`` and ``train_iou``.
        val, train: final ``{"accuracy", "mean_iou"}`` on the validation images and on the
            training images used for evaluation (model in eval mode, so no dropout).
        snapshots: epoch -> ``(labels [K], scores [K], boxes [K, 4] XYXY px)`` predicted for the
            ``track`` images after that epoch (empty without ``track``).
    """

    config: LossConfig
    seed: int
    dropout: float
    model: SingleStageDetector
    history: Any
    val: dict[str, float]
    train: dict[str, float]
    snapshots: dict[int, tuple[Tensor, Tensor, Tensor]]

    @classmethod
    def from_history(
        cls, config: LossConfig, seed: int, dropout: float, model: SingleStageDetector, history: Any,
        snapshots: dict[int, tuple[Tensor, Tensor, Tensor]],
    ) -> SingleStageRun:  # fmt: skip
        """The run whose final ``val`` and ``train`` metrics are the last record of ``history``."""
        last = history.last
        return cls(
            config=config, seed=seed, dropout=dropout, model=model, history=history,
            val={"accuracy": last["val_accuracy"], "mean_iou": last["val_iou"]},
            train={"accuracy": last["train_accuracy"], "mean_iou": last["train_iou"]},
            snapshots=snapshots,
        )  # fmt: skip

    @property
    def gap(self) -> dict[str, float]:
        """Train minus validation, for accuracy and IoU (positive: better on the training images)."""
        return {k: self.train[k] - self.val[k] for k in ("accuracy", "mean_iou")}


def _check_tensors(data: Any, name: str) -> Tensors:
    if not (isinstance(data, (tuple, list)) and len(data) == 3 and all(isinstance(t, Tensor) for t in data)):
        raise TypeError(
            f"{name} must be (images [N, 3, S, S], labels [N], boxes [N, 4]) as made by "
            "course_utils.data.single_object_collate"
        )
    images, labels, boxes = data
    if images.dim() != 4 or labels.shape != images.shape[:1] or boxes.shape != (images.shape[0], 4):
        raise ValueError(
            f"{name}: expected images [N, 3, S, S], labels [N], boxes [N, 4]; got "
            f"{list(images.shape)}, {list(labels.shape)}, {list(boxes.shape)}"
        )
    return images, labels, boxes


def train_single_stage(
    config: LossConfig,
    train_data: Tensors,
    val_data: Tensors,
    *,
    epochs: int,
    device: torch.device | str,
    seed: int = 0,
    dropout: float = 0.0,
    widths: Sequence[int] = (16, 32),
    lr: float = 1e-3,
    cosine: bool = False,
    batch_size: int = 64,
    metrics_every_epoch: bool = True,
    train_eval_size: int = 500,
    track: Tensor | None = None,
    checkpoint_dir: Any = None,
    progress: bool = True,
) -> SingleStageRun:
    """Train one ``SingleStageDetector`` with Adam and ``make_loss_fn(config)``, and evaluate it.

    The same steps as lesson 06 writes out once: seed, model, Adam, a shuffled DataLoader with
    its own generator (so the data order depends only on ``seed``), ``course_utils.train.fit``
    and ``course_utils.evaluate.localization_metrics``. On the CPU the same arguments give the
    same run.

    Args:
        config: the loss of this arm.
        train_data, val_data: ``(images [N, 3, S, S], labels [N], boxes [N, 4] XYXY px)``.
        epochs: training epochs.
        device: where to train.
        seed: seeds the initial weights, the data order and dropout.
        dropout, widths: passed to ``SingleStageDetector``; lr: Adam's learning rate;
        cosine: decay the learning rate from ``lr`` to 0 over the epochs (``CosineAnnealingLR``,
            stepped once per epoch) instead of keeping it constant;
        batch_size: images per step.
        metrics_every_epoch: evaluate after every epoch (into the history) instead of only at the end.
        train_eval_size: how many training images (the first ones) measure the train metrics.
        track: optional images [K, 3, S, S] whose predictions are kept after every epoch.
        checkpoint_dir: passed to ``fit`` (checkpoint every epoch, resume from it).
        progress: one progress bar over the epochs.
    """
    from torch.utils.data import DataLoader, TensorDataset
    from tqdm.auto import tqdm

    from .data import CLASSES
    from .evaluate import localization_metrics
    from .train import fit

    train_data = _check_tensors(train_data, "train_data")
    val_data = _check_tensors(val_data, "val_data")
    device = torch.device(device)
    image_size = train_data[0].shape[-1]
    torch.manual_seed(seed)
    model = SingleStageDetector(len(CLASSES), image_size, widths, dropout)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs) if cosine else None
    generator = torch.Generator().manual_seed(seed)
    train_loader = DataLoader(
        TensorDataset(*train_data), batch_size=batch_size, shuffle=True, generator=generator
    )
    val_loader = DataLoader(TensorDataset(*val_data), batch_size=256)
    subset = tuple(t[:train_eval_size] for t in train_data)
    train_eval_loader = DataLoader(TensorDataset(*subset), batch_size=256)
    snapshots: dict[int, tuple[Tensor, Tensor, Tensor]] = {}
    bar = tqdm(total=epochs, desc=config.label, disable=not progress, leave=False)

    def evaluate(m: nn.Module) -> dict[str, float]:
        val = localization_metrics(m, val_loader, device, coords=config.coords)
        train = localization_metrics(m, train_eval_loader, device, coords=config.coords)
        return {
            "val_accuracy": val["accuracy"],
            "val_iou": val["mean_iou"],
            "train_accuracy": train["accuracy"],
            "train_iou": train["mean_iou"],
        }

    def val_fn(m: nn.Module, epoch: int) -> dict[str, float]:
        if track is not None:
            labels, scores, boxes = predict(m, track.to(device), config.coords)
            snapshots[epoch] = (labels.cpu(), scores.cpu(), boxes.cpu())
        bar.update(1)
        return evaluate(m) if metrics_every_epoch or epoch == epochs else {}

    try:
        history = fit(
            model,
            train_loader,
            epochs=epochs,
            optimizer=optimizer,
            device=device,
            loss_fn=make_loss_fn(config, image_size),
            val_fn=val_fn,
            scheduler=scheduler,
            checkpoint_dir=checkpoint_dir,
            progress=False,
        )
    finally:
        bar.close()
    return SingleStageRun.from_history(config, seed, dropout, model, history, snapshots)


def train_single_stage_cached(
    prefix: str,
    data_recipe: Mapping[str, Any],
    config: LossConfig,
    train_data: Tensors,
    val_data: Tensors,
    *,
    epochs: int,
    device: torch.device | str,
    seed: int = 0,
    dropout: float = 0.0,
    widths: Sequence[int] = (16, 32),
    lr: float = 1e-3,
    batch_size: int = 64,
    metrics_every_epoch: bool = True,
    train_eval_size: int = 500,
    track: Tensor | None = None,
    progress: bool = True,
) -> tuple[SingleStageRun, Any]:
    """``train_single_stage`` once per recipe, through ``course_utils.model_cache.cached_training``.

    The cache entry holds the detector's weights, the history and the predictions kept for
    ``track`` after every epoch (a buffer ``[epochs, K, 6]``: label, score, x1 y1 x2 y2), so
    a loaded run is the run that was trained. Its key is ``data_recipe`` (what ``train_data``
    and ``val_data`` are, e.g. the datasets' reprs; the caller's job) plus every argument here
    that decides the weights. The entry's file is named from ``prefix``, the loss and the seed.

    Returns:
        ``(SingleStageRun, TrainedModel)``: the run (model in eval mode on ``device``) and what
        the cache did (``.summary()`` says whether it trained, and how long training took).
    """
    from .data import CLASSES
    from .model_cache import cached_training

    image_size = train_data[0].shape[-1]
    n_tracked = 0 if track is None else track.shape[0]
    entry = nn.Module()
    entry.detector = SingleStageDetector(len(CLASSES), image_size, widths, dropout)
    entry.register_buffer("tracked", torch.zeros(epochs, n_tracked, 6))
    entry.to(device)

    def train() -> Any:
        result = train_single_stage(
            config, train_data, val_data, epochs=epochs, device=device, seed=seed, dropout=dropout,
            widths=widths, lr=lr, batch_size=batch_size, metrics_every_epoch=metrics_every_epoch,
            train_eval_size=train_eval_size, track=track, progress=progress,
        )  # fmt: skip
        entry.detector = result.model
        for epoch, (labels, scores, boxes) in result.snapshots.items():
            row = torch.cat([labels[:, None].float(), scores[:, None], boxes], dim=1)
            entry.tracked[epoch - 1] = row.to(entry.tracked)
        return result.history

    recipe = {
        **data_recipe, "model": "SingleStageDetector", "widths": list(widths), "dropout": float(dropout),
        "loss": [config.box_loss, config.coords, float(config.weight)], "seed": seed, "epochs": epochs,
        "optimizer": "Adam", "lr": lr, "batch_size": batch_size, "metrics_every_epoch": metrics_every_epoch,
        "train_eval_size": train_eval_size, "tracked_images": n_tracked,
    }  # fmt: skip
    name = f"{prefix}_{config.box_loss}_{config.coords}_w{config.weight:g}_s{seed}_d{dropout:g}"
    trained = cached_training(name.replace(".", "p"), recipe, entry, train)
    snapshots = {
        epoch + 1: (row[:, 0].long(), row[:, 1], row[:, 2:]) for epoch, row in enumerate(entry.tracked.cpu())
    }
    run = SingleStageRun.from_history(
        config, seed, dropout, entry.detector.eval(), trained.history, snapshots if n_tracked else {}
    )
    return run, trained


def select_on_validation(val_metrics: Mapping[Any, Mapping[str, float]], min_accuracy: float = 0.0) -> Any:
    """The key of the arm to report: the highest validation IoU among the arms whose validation
    accuracy is at least ``min_accuracy`` (the first such arm on a tie).

    Args:
        val_metrics: arm -> ``{"accuracy", "mean_iou"}`` measured on the validation split.
        min_accuracy: arms below this accuracy are not eligible.

    The test split plays no part: it measures the chosen arm once, afterwards. Raises
    ValueError when no arm is eligible.
    """
    eligible = [key for key, metrics in val_metrics.items() if metrics["accuracy"] >= min_accuracy]
    if not eligible:
        raise ValueError(f"no arm reaches the validation accuracy {min_accuracy}")
    best = eligible[0]
    for key in eligible[1:]:
        if val_metrics[key]["mean_iou"] > val_metrics[best]["mean_iou"]:
            best = key
    return best
