"""No silent wrong answers: every public helper of ``course_utils`` that takes boxes, box sizes or
images refuses the standard bad inputs with an error that names the argument.

The helpers are found by their parameter names (``boxes``, ``box_a``, ``anchors``, ``wh``, ``image``,
...), so a helper added later is held to the same rule: it needs an example call in ``CALLS`` (valid
arguments; the test then spoils one argument at a time) or a reason in ``EXEMPT``.

A bad input must raise ``ValueError`` or ``TypeError`` naming the argument, or (where scoring it is the
documented policy, e.g. a predicted box with swapped corners scores IoU 0) warn naming it.
Standard bad inputs: a NaN coordinate, corners in the wrong order (a negative size for sizes and for
``(x, y, w, h)`` boxes), a wrong shape; and an empty set, which must either work or be refused clearly.
Images: floats in 0..255 where 0..1 is expected, a NaN pixel, a tensor with its channels last.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
import warnings
from collections.abc import Callable
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

import course_utils  # noqa: E402

BOX_PARAM = re.compile(r"^(boxes|box_[ab]|anchors?|ground_truth|pred|target|gt_boxes|pred_boxes|target_box)$")
WH_PARAM = re.compile(r"^(wh|wh_[ab]|anchor_wh)$")
IMAGE_PARAM = re.compile(r"^(image|images|photo)$")

BOXES = torch.tensor([[10.0, 12.0, 40.0, 50.0], [30.0, 30.0, 90.0, 70.0], [64.0, 8.0, 100.0, 30.0]])
LABELS = torch.tensor([1, 2, 3])
SCORES = torch.tensor([0.9, 0.8, 0.7])
WH = torch.tensor([[30.0, 38.0], [60.0, 40.0], [36.0, 22.0]])
IMAGE = torch.rand(3, 128, 128)


def _axes():
    return plt.subplots()[1]


def _small_detector():
    from course_utils.faster_rcnn import small_faster_rcnn

    torch.manual_seed(0)
    return small_faster_rcnn(num_classes=4, image_size=128).eval()


def _anchors():
    from course_utils.anchors import grid_anchors

    return grid_anchors((128, 128), 16, (32,), (0.5, 1.0, 2.0))


# name -> (valid keyword arguments, {argument: kind}); kinds: "xyxy", "xywh", "wh", "image".
# Arguments not listed in the kinds are found by name (xyxy boxes, wh sizes, images).
Call = tuple[Callable[[], dict[str, Any]], dict[str, str]]
CALLS: dict[str, Call] = {
    "anchors.assign_targets": (lambda: dict(anchors=_anchors(), boxes=BOXES, labels=LABELS), {}),
    "anchors.best_anchor_iou": (lambda: dict(boxes=BOXES, anchors=_anchors()), {}),
    "anchors.shape_iou": (lambda: dict(wh_a=WH, wh_b=WH[:2]), {}),
    "anchors.best_shape_iou": (lambda: dict(wh=WH, anchor_wh=WH[:2]), {}),
    "anchors.kmeans_anchor_shapes": (lambda: dict(wh=WH.repeat(4, 1), k=2), {}),
    "anchors.AnchorExplorer": (lambda: dict(image=IMAGE, target_box=BOXES[0].tolist()), {"target_box": "skip"}),
    "coco.xyxy_to_xywh": (lambda: dict(boxes=BOXES), {}),
    "coco.xywh_to_xyxy": (lambda: dict(boxes=BOXES), {"boxes": "xywh"}),
    "data.clip_boxes": (lambda: dict(boxes=BOXES, canvas_size=(128, 128)), {}),
    "evaluate.paired_iou": (lambda: dict(pred=BOXES, target=BOXES + 1), {}),
    "final_quiz.grade_iou": (lambda: dict(answer=0.5, box_a=BOXES[:1], box_b=BOXES[1:2]), {}),
    "final_quiz.grade_width_target": (lambda: dict(answer=0.5, anchor=BOXES[:1], ground_truth=BOXES[1:2]), {}),
    "final_quiz.nms_steps": (lambda: dict(boxes=BOXES, scores=SCORES, threshold=0.5), {}),
    "final_quiz.grade_nms_count": (lambda: dict(answer=2, boxes=BOXES, scores=SCORES, threshold=0.5), {}),
    "matching.draw_best_iou_map": (
        lambda: dict(ax=_axes(), image=IMAGE, iou=torch.rand(2, 8 * 8 * 3), stride=16), {}
    ),
    "playgrounds.select_detections": (lambda: dict(boxes=BOXES, scores=SCORES, labels=LABELS), {}),
    "playgrounds.jittered_candidates": (lambda: dict(boxes=BOXES, labels=LABELS), {}),
    "playgrounds.IoUPlayground": (lambda: dict(box_a=BOXES[0].tolist(), box_b=BOXES[1].tolist()), {}),
    "playgrounds.NMSExplorer": (lambda: dict(image=IMAGE, boxes=BOXES, scores=SCORES, labels=LABELS), {}),
    "single_stage.localization_loss": (
        lambda: dict(box_out=BOXES / 128, boxes=BOXES, image_size=128, box_loss="giou"), {"box_out": "skip"}
    ),
    "trace.prediction_steps": (lambda: dict(model=_small_detector(), image=IMAGE), {}),
    "single_stage.encode_boxes": (lambda: dict(boxes=BOXES, image_size=128, coords="normalized"), {}),
    "viz.draw_boxes": (lambda: dict(ax=_axes(), image=IMAGE, boxes=BOXES, labels=LABELS), {}),
}
EXEMPT = {
    "boxes.as_box_tensor": "the box check itself (tests/test_boxes.py)",
    "boxes.check_valid_boxes": "the box check itself (tests/test_boxes.py)",
    "images.check_pixel_range": "the image check itself (its own cases below)",
    "data.check_target": "its `target` is a sample's target dict, checked field by field in tests/test_data.py",
    "single_stage.detection_losses": "`boxes` go to localization_loss, tested here, which checks them first",
    "trace.trace_faster_rcnn": "`images` is a list; each image gets check_pixel_range (tests/test_trace.py)",
    "single_stage.predict": "`images` is a model batch; the model's own checks apply",
    "trace.box_counts": "`image` goes to torchvision's Faster R-CNN transform",
    "final_quiz.grade_batched_width": "`photo` is the notebook's fixed example, not a learner input",
    "final_quiz.grade_smooth_l1": "its `target` holds regression offsets, not boxes (any real numbers)",
    "real_datasets.coco_val2017_root": "its `images` says whether to download the images, a flag",
}


def checked_helpers() -> dict[str, Any]:
    """Every public function or class of course_utils with an argument named like boxes, sizes or an image."""
    found = {}
    for info in pkgutil.iter_modules(course_utils.__path__):
        module = importlib.import_module(f"course_utils.{info.name}")
        for name, obj in vars(module).items():
            if name.startswith("_") or getattr(obj, "__module__", None) != module.__name__:
                continue
            if not (inspect.isfunction(obj) or inspect.isclass(obj)):
                continue
            try:
                params = inspect.signature(obj).parameters
            except (TypeError, ValueError):
                continue
            if any(BOX_PARAM.match(p) or WH_PARAM.match(p) or IMAGE_PARAM.match(p) for p in params):
                found[f"{info.name}.{name}"] = obj
    return found


HELPERS = checked_helpers()


def kind_of(param: str, kinds: dict[str, str]) -> str | None:
    if param in kinds:
        return kinds[param]
    if BOX_PARAM.match(param):
        return "xyxy"
    if WH_PARAM.match(param):
        return "wh"
    return "image" if IMAGE_PARAM.match(param) else None


def spoiled(value: Any, kind: str, how: str) -> Any:
    """``value`` (a valid input of ``kind``) made bad in the way ``how``."""
    as_list = isinstance(value, (list, tuple))
    t = torch.tensor(value, dtype=torch.float32) if as_list else value.clone()
    flat = t.reshape(-1, t.shape[-1]) if kind != "image" else t
    if how == "nan":
        flat.view(-1)[0] = float("nan")
    elif how == "inverted" and kind == "xyxy":
        t = t.reshape(-1, 4)[:, [2, 1, 0, 3]].reshape(t.shape)
    elif how == "inverted":  # a negative width: xywh boxes and wh sizes
        flat[..., -2] = -flat[..., -2].abs() - 1
    elif how == "shape":  # one coordinate short; an image with its channels last
        t = t[..., :-1] if kind != "image" else t.permute(1, 2, 0)
    elif how == "empty":
        t = t.reshape(-1, t.shape[-1])[:0]
    elif how == "scale":
        t = t * 255
    return t.tolist() if as_list and how != "shape" else t


def cases() -> list[tuple[str, str, str]]:
    out = []
    for name in sorted(CALLS):
        factory, kinds = CALLS[name]
        for param in factory():
            kind = kind_of(param, kinds)
            if kind in (None, "skip"):
                continue
            hows = ("scale", "nan", "shape") if kind == "image" else ("nan", "inverted", "shape", "empty")
            out += [(name, param, how) for how in hows]
    return out


def test_every_helper_taking_boxes_or_images_has_an_example_or_a_reason():
    missing = sorted(set(HELPERS) - set(CALLS) - set(EXEMPT))
    assert not missing, f"add an example call to CALLS (or a reason to EXEMPT) for: {missing}"
    gone = sorted((set(CALLS) | set(EXEMPT)) - set(HELPERS))
    assert not gone, f"CALLS/EXEMPT name helpers that no longer exist or take no boxes: {gone}"


@pytest.mark.parametrize("name", sorted(CALLS))
def test_the_example_call_is_valid(name):
    factory, _ = CALLS[name]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a valid input gets no warning either
        HELPERS[name](**factory())
    plt.close("all")


@pytest.mark.parametrize(("name", "param", "how"), cases(), ids=lambda v: str(v))
def test_bad_input_is_refused_naming_the_argument(name, param, how):
    factory, kinds = CALLS[name]
    kwargs = factory()
    n = len(kwargs[param])
    kwargs[param] = spoiled(kwargs[param], kind_of(param, kinds), how)
    if how == "empty":  # the arguments that go with the boxes (scores, labels) are emptied with them
        for other in ("scores", "labels"):
            if isinstance(kwargs.get(other), torch.Tensor) and len(kwargs[other]) == n:
                kwargs[other] = kwargs[other][:0]
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            HELPERS[name](**kwargs)
    except (ValueError, TypeError) as err:
        assert param in str(err), f"{name}({param}={how}) raised without naming {param!r}: {err}"
    else:  # accepted: only an empty set may pass silently; anything else needs a warning naming it
        warned = [str(w.message) for w in caught if param in str(w.message)]
        assert how == "empty" or warned, f"{name} accepted {param} with {how} without a word"
    finally:
        plt.close("all")


@pytest.mark.parametrize(
    ("image", "message"),
    [
        (torch.rand(3, 8, 8) * 255, "values up to"),
        (torch.rand(3, 8, 8) - 0.5, "values down to"),
        (torch.full((3, 8, 8), float("nan")), "NaN"),
    ],
    ids=["0..255", "normalised", "nan"],
)
def test_pixel_range_check_names_the_argument_and_the_fix(image, message):
    from course_utils.images import check_pixel_range

    with pytest.raises(ValueError, match=message) as caught:
        check_pixel_range(image, "photo")
    assert "photo" in str(caught.value)


def test_pixel_range_check_accepts_unit_floats_and_uint8():
    from course_utils.images import check_pixel_range

    check_pixel_range(torch.rand(3, 8, 8), "image")
    check_pixel_range(torch.ones(3, 8, 8) + 1e-4, "image")  # rounding overshoot
    check_pixel_range(torch.randint(0, 256, (3, 8, 8), dtype=torch.uint8), "image")
