"""torchvision's Faster R-CNN for the course: a small model to train on a CPU, and the COCO one.

* ``small_faster_rcnn(num_classes)`` builds a ``torchvision.models.detection.FasterRCNN`` around a
  tiny convolutional backbone with one feature map. It trains from scratch on the course's generated
  shapes in minutes on a CPU; every size is an argument, so a run profile can scale it.
* ``load_pretrained_faster_rcnn()`` returns torchvision's ``fasterrcnn_resnet50_fpn`` with its COCO
  weights when they are in the cache (``course_utils.paths.torch_home()``) or can be downloaded,
  and otherwise says clearly that they are unavailable and how to get them, without raising.
* ``COCO_CLASSES`` names the 91 outputs of the COCO model (index = label, 0 = background).

Labels follow torchvision: 0 is the background, so ``num_classes`` counts it (3 shapes -> 4).
"""

from __future__ import annotations

import http.client
import socket
import urllib.error
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlparse

import torch
from torch import nn
from torchvision.models.detection import FasterRCNN, FasterRCNN_ResNet50_FPN_Weights
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.backbone_utils import resnet_fpn_backbone
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.ops import MultiScaleRoIAlign
from torchvision.ops.misc import FrozenBatchNorm2d

from .paths import torch_home

COCO_WEIGHTS = FasterRCNN_ResNet50_FPN_Weights.COCO_V1
#: The COCO model's class names; the index is the label. 0 is '__background__'; the 'N/A' entries
#: are ids that COCO skips (the model has 91 outputs for 80 real classes).
COCO_CLASSES: tuple[str, ...] = tuple(COCO_WEIGHTS.meta["categories"])


# --------------------------------------------------------------------------------------------
# A small Faster R-CNN that trains from scratch on a CPU
# --------------------------------------------------------------------------------------------


class TinyBackbone(nn.Sequential):
    """A plain CNN that turns ``[B, 3, H, W]`` images into one ``[B, C, H/s, W/s]`` feature map.

    Each width in ``widths`` is a stage: a 3x3 convolution with stride 2 (halving the resolution),
    then ``blocks_per_stage - 1`` convolutions with stride 1, each followed by BatchNorm and ReLU.
    The stride ``s`` of the output is ``2 ** len(widths)`` and ``C = widths[-1]``.

    ``out_channels`` (required by torchvision's ``FasterRCNN``) and ``stride`` are attributes.
    """

    def __init__(self, widths: Sequence[int] = (32, 64, 128), blocks_per_stage: int = 2):
        widths = tuple(int(w) for w in widths)
        if not widths or any(w < 1 for w in widths):
            raise ValueError(f"widths must be a non-empty sequence of positive ints, got {widths!r}")
        if blocks_per_stage < 1:
            raise ValueError(f"blocks_per_stage must be >= 1, got {blocks_per_stage!r}")
        layers: list[nn.Module] = []
        in_channels = 3
        for width in widths:
            for block in range(blocks_per_stage):
                stride = 2 if block == 0 else 1
                layers += [
                    nn.Conv2d(in_channels, width, 3, stride=stride, padding=1, bias=False),
                    nn.BatchNorm2d(width),
                    nn.ReLU(inplace=True),
                ]
                in_channels = width
        super().__init__(*layers)
        self.out_channels = widths[-1]
        self.stride = 2 ** len(widths)


def small_faster_rcnn(
    num_classes: int,
    *,
    image_size: int = 128,
    widths: Sequence[int] = (32, 64, 128),
    blocks_per_stage: int = 2,
    anchor_sizes: Sequence[int] = (12, 24, 48),
    aspect_ratios: Sequence[float] = (0.5, 1.0, 2.0),
    representation_size: int = 256,
    roi_output_size: int = 7,
    roi_sampling_ratio: int = 1,
    rpn_top_n: int = 300,
    box_batch_size_per_image: int = 64,
    box_score_thresh: float = 0.05,
    box_detections_per_img: int = 100,
    **faster_rcnn_kwargs,
) -> FasterRCNN:
    """A Faster R-CNN small enough to train from scratch on a CPU.

    The pieces are torchvision's own, only smaller than in ``fasterrcnn_resnet50_fpn``:

    * transform: images are normalised and resized so that their short side is ``image_size``
      (the long side at most ``image_size`` too), so square ``image_size`` images keep their size;
    * backbone: ``TinyBackbone(widths, blocks_per_stage)``, one feature map ``'0'`` of
      ``widths[-1]`` channels at stride ``2 ** len(widths)`` (no FPN);
    * RPN: ``len(anchor_sizes) * len(aspect_ratios)`` anchors per feature-map cell (the default
      sizes suit the course's shapes, about 10 to 50 pixels across in 128-pixel images); the best
      ``rpn_top_n`` anchors by objectness go through NMS and at most ``rpn_top_n`` proposals are
      kept, in training and in eval (the paper's 300; torchvision's default model sends the best
      2000 / 1000 anchors (train / eval) of *each* of its five levels to NMS and keeps at most
      2000 / 1000 proposals per image in total, which a small image does not need);
    * RoI heads: ``MultiScaleRoIAlign`` to ``roi_output_size`` x ``roi_output_size`` with
      ``roi_sampling_ratio`` bilinear samples per bin and axis (1 here, 2 in torchvision's default:
      RoIAlign's backward pass is the most expensive step on a CPU), a ``TwoMLPHead`` of
      ``representation_size`` and a ``FastRCNNPredictor(representation_size, num_classes)``;
      ``box_batch_size_per_image`` proposals per image are sampled in training (torchvision: 512).

    Args:
        num_classes: number of classes *including the background* (label 0), e.g. 4 for circle,
            square and triangle.
        faster_rcnn_kwargs: passed on to ``torchvision.models.detection.FasterRCNN`` (e.g.
            ``box_nms_thresh``; ``rpn_post_nms_top_n_test`` and the like override ``rpn_top_n``).

    Returns:
        the model, in training mode, on the CPU.
    """
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 2:
        raise ValueError(
            f"num_classes must be an int >= 2 that counts the background (label 0), got {num_classes!r}"
        )
    if image_size < 16:
        raise ValueError(f"image_size must be at least 16 pixels, got {image_size!r}")
    if rpn_top_n < 1 or roi_sampling_ratio < 1:
        raise ValueError(
            f"rpn_top_n and roi_sampling_ratio must be >= 1, got {rpn_top_n!r}, {roi_sampling_ratio!r}"
        )
    if not anchor_sizes or not aspect_ratios:
        raise ValueError("anchor_sizes and aspect_ratios must both be non-empty")
    backbone = TinyBackbone(widths, blocks_per_stage)
    anchors = AnchorGenerator(
        sizes=(tuple(int(s) for s in anchor_sizes),),
        aspect_ratios=(tuple(float(r) for r in aspect_ratios),),
    )
    roi_pool = MultiScaleRoIAlign(
        featmap_names=["0"], output_size=roi_output_size, sampling_ratio=roi_sampling_ratio
    )
    for name in ("pre_nms_top_n_train", "post_nms_top_n_train", "pre_nms_top_n_test", "post_nms_top_n_test"):
        faster_rcnn_kwargs.setdefault(f"rpn_{name}", rpn_top_n)
    box_head = TwoMLPHead(backbone.out_channels * roi_output_size**2, representation_size)
    predictor = FastRCNNPredictor(representation_size, num_classes)
    return FasterRCNN(
        backbone,
        num_classes=None,
        min_size=image_size,
        max_size=image_size,
        rpn_anchor_generator=anchors,
        box_roi_pool=roi_pool,
        box_head=box_head,
        box_predictor=predictor,
        box_batch_size_per_image=box_batch_size_per_image,
        box_score_thresh=box_score_thresh,
        box_detections_per_img=box_detections_per_img,
        **faster_rcnn_kwargs,
    )


def replace_predictor(model: FasterRCNN, num_classes: int) -> FasterRCNN:
    """Give ``model`` a new ``FastRCNNPredictor`` for ``num_classes`` (background included), in place.

    This is the usual first step of fine-tuning a pretrained detector on new classes: the box head
    keeps its features, only the last layer (class scores ``[K, num_classes]`` and boxes
    ``[K, 4 * num_classes]``) starts afresh. Returns the model for chaining.
    """
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 2:
        raise ValueError(
            f"num_classes must be an int >= 2 that counts the background (label 0), got {num_classes!r}"
        )
    old = model.roi_heads.box_predictor
    if not isinstance(old, FastRCNNPredictor):
        raise TypeError(
            f"model.roi_heads.box_predictor is a {type(old).__name__}, expected FastRCNNPredictor"
        )
    model.roi_heads.box_predictor = FastRCNNPredictor(old.cls_score.in_features, num_classes)
    return model


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """The number of parameters (all, or only those with ``requires_grad``)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


# --------------------------------------------------------------------------------------------
# The pretrained COCO detector: from the cache, a download, or a clear "not available"
# --------------------------------------------------------------------------------------------


@dataclass
class PretrainedLoad:
    """The result of ``load_pretrained_faster_rcnn``.

    ``model`` is the COCO detector in eval mode, or None when the weights are unavailable;
    ``source`` says where the weights came from (``'cache'``, ``'download'`` or ``'unavailable'``);
    ``message`` is one paragraph for the learner (what happened, and how to get the weights).
    """

    model: FasterRCNN | None
    source: Literal["cache", "download", "unavailable"]
    message: str
    path: Path

    @property
    def available(self) -> bool:
        return self.model is not None


def weights_dir() -> Path:
    """Where torch keeps downloaded weights for the course: ``<torch_home>/hub/checkpoints``."""
    return torch_home() / "hub" / "checkpoints"


def pretrained_weights_path() -> Path:
    """The file the COCO weights are cached in (``fasterrcnn_resnet50_fpn_coco-258fb6c6.pth``)."""
    return weights_dir() / Path(COCO_WEIGHTS.url).name


def coco_faster_rcnn_architecture() -> FasterRCNN:
    """``fasterrcnn_resnet50_fpn``'s architecture exactly as torchvision builds it for the COCO
    weights (ResNet-50 with frozen BatchNorm, FPN, 91 classes), randomly initialised, nothing downloaded.

    ``fasterrcnn_resnet50_fpn(weights=None, weights_backbone=None)`` differs: it uses ordinary
    BatchNorm (with ``num_batches_tracked`` buffers), so the COCO state dict does not load into it.
    """
    backbone = resnet_fpn_backbone(
        backbone_name="resnet50", weights=None, norm_layer=FrozenBatchNorm2d, trainable_layers=3
    )
    return FasterRCNN(backbone, num_classes=len(COCO_CLASSES))


def load_pretrained_faster_rcnn(*, download: bool = True, progress: bool = True) -> PretrainedLoad:
    """torchvision's COCO-trained ``fasterrcnn_resnet50_fpn`` (box AP 37.0 on COCO val2017), if available.

    The weights file (about 160 MB) is looked up in ``pretrained_weights_path()``; when it is not
    there and ``download`` is true, it is downloaded into that folder (checked against the hash in
    its name; a progress bar shows on stderr when ``progress``). When the download fails for any
    reason (no internet, a network that blocks it, a server error, a damaged file), nothing is
    raised: the result has ``model=None``, ``source='unavailable'`` and a message, in a learner's
    words, that names the file and the folder to put it in (``unavailable_message``).

    Raises:
        RuntimeError: the cached file exists but cannot be read as the model's weights (e.g. an
            interrupted copy); the message names the file to delete.
    """
    path = pretrained_weights_path()
    if path.is_file():
        state_dict = _read_state_dict(path)
        source: Literal["cache", "download"] = "cache"
    elif not download:
        reason = "nothing was downloaded (download=False)"
        return PretrainedLoad(None, "unavailable", unavailable_message(reason), path)
    else:
        failure = _download(path, progress)
        if failure is not None:
            return PretrainedLoad(
                None, "unavailable", unavailable_message(f"downloading them failed:\n{failure}"), path
            )
        state_dict = _read_state_dict(path)
        source = "download"
    model = coco_faster_rcnn_architecture()
    try:
        model.load_state_dict(state_dict)
    except RuntimeError as err:
        raise RuntimeError(
            f"{path} does not hold the weights of fasterrcnn_resnet50_fpn ({err}); delete it and load again"
        ) from err
    for module in model.modules():  # the COCO weights were trained with eps=0 (as torchvision sets it)
        if isinstance(module, FrozenBatchNorm2d):
            module.eps = 0.0
    model.eval()
    where = "from the cache" if source == "cache" else "downloaded into the cache"
    message = f"Loaded torchvision's COCO-trained fasterrcnn_resnet50_fpn ({where}: {path.name})."
    return PretrainedLoad(model, source, message, path)


def unavailable_message(reason: str) -> str:
    """What a learner reads when the COCO weights are missing: ``reason``, then how to get the file.

    It names the file and the folder to put it in without printing this machine's paths (the folder
    is given as ``hub/checkpoints`` under ``course_utils.paths.torch_home()``, with its default).
    """
    name = Path(COCO_WEIGHTS.url).name
    return "\n".join(
        [
            f"The pretrained COCO weights are not on this machine, and {reason}.",
            "To use them, get the file once, then run this cell again:",
            f"  * with internet access, it downloads by itself (about {COCO_WEIGHTS.meta['_file_size']:.0f} MB,"
            " kept for next time);",
            "  * without it, download",
            f"      {COCO_WEIGHTS.url}",
            f"    on a computer with internet and copy the file {name}",
            "    into the folder hub/checkpoints of the course's torch cache, course_utils.paths.torch_home():",
            "    by default that is .cache/torch/hub/checkpoints in the course folder",
            "    (course_utils.faster_rcnn.weights_dir() gives its full path on your machine).",
        ]
    )


# Errors that mean "this computer could not reach the server" (the course's offline guard raises a
# ConnectionError; urllib wraps such errors in URLError, whose ``reason`` is the original error).
_NETWORK_ERRORS = (
    urllib.error.URLError,
    ConnectionError,
    TimeoutError,
    socket.gaierror,
    http.client.HTTPException,
)


def _download(path: Path, progress: bool) -> str | None:
    """Download the COCO weights to ``path`` (atomically: torch writes a partial file and renames it);
    None when it worked, otherwise why not, in a learner's words."""
    match = torch.hub.HASH_REGEX.search(path.name)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.hub.download_url_to_file(
            COCO_WEIGHTS.url, str(path), match.group(1) if match else None, progress=progress
        )
    except Exception as err:  # every failure becomes the learner's message; Ctrl-C still stops it
        return _download_failure(err)
    return None


def _download_failure(err: BaseException) -> str:
    """Why a download failed, in a learner's words (never the text of a network guard)."""
    host = urlparse(COCO_WEIGHTS.url).hostname
    if isinstance(err, urllib.error.HTTPError):
        return f"{host} answered with the error HTTP {err.code} ({err.reason})"
    causes, seen = [err], set()
    while causes:  # the error, its wrapped reason and its causes
        cause = causes.pop()
        if cause is None or id(cause) in seen:
            continue
        seen.add(id(cause))
        if isinstance(cause, _NETWORK_ERRORS):
            return (
                f"this computer could not reach {host} (no internet connection, or a network that blocks it)"
            )
        reason = getattr(cause, "reason", None)
        causes += [reason if isinstance(reason, BaseException) else None, cause.__cause__, cause.__context__]
    if isinstance(err, RuntimeError) and "hash" in str(err):
        return "the file arrived damaged (its checksum did not match) and was not kept"
    return f"{type(err).__name__}: {err}"


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # a truncated or foreign file: pickle, zip and torch errors vary
        raise RuntimeError(
            f"the cached weights file {path} cannot be read ({type(err).__name__}: {err}); "
            "delete it and load again"
        ) from err
    if not isinstance(state, dict):
        raise RuntimeError(
            f"{path} holds a {type(state).__name__}, not a state dict; delete it and load again"
        )
    return state
