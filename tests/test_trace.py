"""The Faster R-CNN tracer: hooks, the stage table, prediction steps and the diagram."""

from __future__ import annotations

import matplotlib
import pytest
import torch
from torchvision.models.detection import fasterrcnn_resnet50_fpn

from course_utils.faster_rcnn import small_faster_rcnn
from course_utils.trace import (
    HookRecorder,
    PipelineTrace,
    box_counts,
    level_strides,
    plot_trace,
    prediction_steps,
    shapes_of,
    trace_faster_rcnn,
)

matplotlib.use("Agg")


@pytest.fixture(scope="module")
def small_model():
    torch.manual_seed(0)
    return small_faster_rcnn(4, image_size=128, widths=(8, 16, 32), representation_size=64).eval()


@pytest.fixture(scope="module")
def resnet_fpn():
    torch.manual_seed(0)
    # torchvision's own model, randomly initialised, small input size to keep the test fast
    return fasterrcnn_resnet50_fpn(weights=None, weights_backbone=None, min_size=320, max_size=512).eval()


def _images(n: int = 1, size: tuple[int, int] = (128, 128)) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return [torch.rand(3, *size, generator=g) for _ in range(n)]


def test_shapes_of_keeps_the_structure():
    nested = {"boxes": torch.zeros(5, 4), "more": [torch.zeros(2), (torch.zeros(1, 2, 3), 7)]}
    assert shapes_of(nested) == {"boxes": (5, 4), "more": [(2,), ((1, 2, 3), 7)]}


def test_hook_recorder_records_and_removes_its_hooks(small_model):
    with HookRecorder(small_model, ["backbone", "rpn"]) as rec:
        small_model(_images())
    assert rec.outputs["backbone"].shape == (1, 32, 16, 16)
    assert rec.calls == {"backbone": 1, "rpn": 1}
    assert not small_model.backbone._forward_hooks and not small_model.rpn._forward_hooks


def test_hook_recorder_rejects_unknown_names(small_model):
    with pytest.raises(KeyError, match="not sub-modules"):
        HookRecorder(small_model, ["backbone", "no_such_module"])


def test_hook_recorder_removes_hooks_on_error(small_model):
    with pytest.raises(RuntimeError), HookRecorder(small_model, ["backbone"]):
        raise RuntimeError("boom")
    assert not small_model.backbone._forward_hooks


def test_trace_small_model_eval_shapes(small_model):
    images = _images(2)
    trace = trace_faster_rcnn(small_model, images)
    assert isinstance(trace, PipelineTrace) and trace.mode == "eval"
    assert trace.shape("input images") == "2 x [3, 128, 128]"
    assert trace.shape("resized + padded batch") == "[2, 3, 128, 128]"
    assert trace.shape("feature map '0'") == "[2, 32, 16, 16]"
    assert trace.shape("anchors") == f"2 x [{16 * 16 * 9}, 4]"  # 3 sizes x 3 ratios per cell
    assert trace.shape("RPN objectness") == "[2, 9, H, W]"
    n_props = sum(p.shape[0] for p in trace.outputs["rpn"][0])
    assert all(p.shape[0] <= 300 for p in trace.outputs["rpn"][0])  # rpn_top_n
    assert trace.shape("RoIAlign features") == f"[{n_props}, 32, 7, 7]"
    assert trace.shape("box head") == f"[{n_props}, 64]"
    assert trace.shape("class logits") == f"[{n_props}, 4]"
    assert trace.shape("box regression") == f"[{n_props}, 16]"
    # the traced call returns what an ordinary call returns
    plain = small_model(images)
    for got, want in zip(trace.outputs["model"], plain, strict=True):
        torch.testing.assert_close(got["boxes"], want["boxes"])
        torch.testing.assert_close(got["scores"], want["scores"])


def test_trace_resnet_fpn_levels_and_proposals(resnet_fpn):
    image = _images(1, (300, 451))[0]  # the size of skimage's chelsea photo
    trace = trace_faster_rcnn(resnet_fpn, [image])
    # short side 300 -> 320, long side 451 * 320 / 300 = 481 -> padded to a multiple of 32
    assert trace.shape("resized + padded batch") == "[1, 3, 320, 512]"
    assert "320x481" in trace["resized + padded batch"].meaning
    fpn = [r for r in trace if r.stage.startswith("FPN level")]
    assert [r.stage for r in fpn] == [f"FPN level '{k}'" for k in ("0", "1", "2", "3", "pool")]
    assert [r.shape for r in fpn] == [
        "[1, 256, 80, 128]",
        "[1, 256, 40, 64]",
        "[1, 256, 20, 32]",
        "[1, 256, 10, 16]",
        "[1, 256, 5, 8]",
    ]
    assert "stride 64" in fpn[-1].meaning
    cells = 80 * 128 + 40 * 64 + 20 * 32 + 10 * 16 + 5 * 8
    assert trace.shape("anchors") == f"[{3 * cells}, 4]"
    # eval: at most post_nms_top_n (testing) = 1000 proposals; fewer when NMS removes more
    n_props = trace.outputs["rpn"][0][0].shape[0]
    assert 0 < n_props <= 1000
    assert trace.shape("RPN proposals") == f"[{n_props}, 4]"
    assert trace.shape("RoIAlign features") == f"[{n_props}, 256, 7, 7]"
    assert trace.shape("class logits") == f"[{n_props}, 91]"
    assert trace.shape("box regression") == f"[{n_props}, 364]"


def test_trace_training_mode_samples_proposals(small_model):
    small_model.train()
    try:
        images = _images(2)
        targets = [
            {"boxes": torch.tensor([[10.0, 10.0, 60.0, 50.0]]), "labels": torch.tensor([1])},
            {"boxes": torch.tensor([[30.0, 40.0, 90.0, 120.0]]), "labels": torch.tensor([3])},
        ]
        with pytest.raises(ValueError, match="needs targets"):
            trace_faster_rcnn(small_model, images)
        trace = trace_faster_rcnn(small_model, images, targets)
        assert small_model.training  # the mode is left as it was
    finally:
        small_model.eval()
    assert trace.mode == "train"
    assert set(trace.outputs["model"]) == {
        "loss_classifier",
        "loss_box_reg",
        "loss_objectness",
        "loss_rpn_box_reg",
    }
    sampled = trace.outputs["roi_heads.box_roi_pool"].shape[0]
    assert 2 <= sampled <= 2 * 64  # box_batch_size_per_image = 64 per image
    assert trace.shape("losses") == "dict of 4 scalars"
    assert "detections (output)" not in [r.stage for r in trace]
    with pytest.raises(ValueError, match="eval-mode trace"):
        box_counts(small_model, trace)


def test_trace_rejects_bad_input(small_model):
    with pytest.raises(TypeError, match="FasterRCNN"):
        trace_faster_rcnn(torch.nn.Linear(2, 2), _images())
    with pytest.raises(ValueError, match=r"list of \[3, H, W\]"):
        trace_faster_rcnn(small_model, torch.rand(2, 3, 64, 64))
    with pytest.raises(ValueError, match=r"images\[1\] must hold floats in \[0, 1\]"):
        trace_faster_rcnn(small_model.eval(), [torch.rand(3, 64, 64), torch.rand(3, 64, 64) * 255])


def test_table_lists_every_stage(small_model):
    trace = trace_faster_rcnn(small_model, _images())
    table = trace.table()
    for row in trace:
        assert row.stage in table and row.shape in table
    assert table.splitlines()[0].startswith("stage")


def test_prediction_steps_match_the_model(small_model):
    image = _images(1, (100, 150))[0]  # resized to 85x128 (long side capped at 128)
    steps = prediction_steps(small_model, image)
    want = small_model([image])[0]
    for key in ("boxes", "labels", "scores"):
        torch.testing.assert_close(steps.detections[key], want[key])
    n = steps.proposals.shape[0]
    assert steps.proposals.shape == (n, 4) and steps.objectness.shape == (n,)
    assert steps.refined_boxes.shape == (n, 4) and steps.refined_labels.shape == (n,)
    assert bool((steps.objectness[:-1] >= steps.objectness[1:]).all())  # best first
    assert bool(((steps.refined_labels >= 1) & (steps.refined_labels <= 3)).all())
    assert torch.equal(steps.above_threshold, steps.refined_scores > steps.score_thresh)
    assert steps.candidates_above_threshold >= int(steps.above_threshold.sum())
    assert len(steps.detections["boxes"]) <= steps.candidates_above_threshold
    # boxes are in original-image pixels (150 wide, 100 high)
    for boxes in (steps.proposals, steps.refined_boxes):
        assert float(boxes[:, 2].max()) <= 150.01 and float(boxes[:, 3].max()) <= 100.01
    assert "filter_proposals" not in vars(small_model.rpn)  # the temporary wrapper is gone


def test_prediction_steps_needs_eval_mode(small_model):
    small_model.train()
    try:
        with pytest.raises(ValueError, match="eval mode"):
            prediction_steps(small_model, _images()[0])
    finally:
        small_model.eval()


def test_plot_trace_draws_one_box_per_stage(small_model):
    import matplotlib.pyplot as plt

    trace = trace_faster_rcnn(small_model, _images())
    ax = plot_trace(trace)
    assert len(ax.patches) == len(trace)
    texts = [t.get_text() for t in ax.texts]
    assert "RoIAlign features" in texts and trace.shape("box head") in texts
    plt.close(ax.figure)


def test_level_strides_of_one_map_and_of_a_pyramid(small_model, resnet_fpn):
    assert level_strides(trace_faster_rcnn(small_model, _images())) == {"0": 8}
    # a tall photo: resized to 352 x 320, so level '3' has 11 rows and 'pool' 6
    trace = trace_faster_rcnn(resnet_fpn, _images(1, (330, 300)))
    assert level_strides(trace) == {"0": 4, "1": 8, "2": 16, "3": 32, "pool": 64}
    features = trace.outputs["backbone"]
    height = trace.outputs["transform"][0].tensors.shape[-2]
    assert height == 352 and features["pool"].shape[-2] == 6
    # 'pool' keeps every other cell of level '3' (features 64 px apart), while torchvision's
    # AnchorGenerator spaces the anchors height // rows = 58 px apart
    assert torch.equal(features["pool"], features["3"][..., ::2, ::2])
    assert height // features["pool"].shape[-2] == 58


def test_box_counts_follow_the_pipeline(small_model):
    trace = trace_faster_rcnn(small_model, _images(2))
    rpn = small_model.rpn
    top_n, cap = rpn._pre_nms_top_n["testing"], rpn._post_nms_top_n["testing"]
    for i in range(2):
        counts = box_counts(small_model, trace, image=i)
        anchors, best, after_nms, proposals, class_boxes, scored, detections = counts.values()
        assert list(counts)[1] == f"RPN: best {top_n} per level (pre_nms_top_n)"
        assert list(counts)[3] == f"proposals: at most {cap} (post_nms_top_n)"
        assert anchors == len(trace.outputs["rpn.anchor_generator"][i]) == 16 * 16 * 9
        assert best == min(top_n, anchors)
        assert proposals == len(trace.outputs["rpn"][0][i]) == min(cap, after_nms) and after_nms <= best
        assert class_boxes == proposals * 3  # 4 classes, background excluded
        assert detections == len(trace.outputs["model"][i]["boxes"]) <= scored <= class_boxes
    assert rpn._post_nms_top_n["testing"] == cap  # the cap lifted for counting is restored
    with pytest.raises(ValueError, match="image must be"):
        box_counts(small_model, trace, image=2)


def test_box_counts_see_the_post_nms_cap(resnet_fpn):
    trace = trace_faster_rcnn(resnet_fpn, _images(1, (320, 320)))
    counts = list(box_counts(resnet_fpn, trace).values())
    assert counts[3] == min(1000, counts[2]) and counts[4] == 90 * counts[3]
