"""The IoU playground and the NMS explorer: their slider callbacks recompute and redraw."""

from __future__ import annotations

import pytest
import torch
from torchvision.ops import box_iou, nms

from course_utils.playgrounds import IoUPlayground, NMSExplorer, jittered_candidates, select_detections

PNG_MAGIC = b"\x89PNG"


# -- IoU playground ---------------------------------------------------------------------------


def test_iou_playground_starts_with_the_iou_of_its_boxes():
    playground = IoUPlayground(box_a=(0, 0, 10, 10), box_b=(5, 0, 15, 10), canvas_size=32)
    assert playground.iou == pytest.approx(50 / 150)
    assert "IoU = 0.333" in playground.label.value
    assert playground.picture.value[:4] == PNG_MAGIC


def test_iou_playground_update_moves_a_box_and_recomputes():
    playground = IoUPlayground(box_a=(0, 0, 10, 10), box_b=(5, 0, 15, 10), canvas_size=32)
    before = playground.picture.value
    assert playground.update(b_x=0) == pytest.approx(1.0)  # B now sits exactly on A
    assert playground.box_b == (0.0, 0.0, 10.0, 10.0)
    assert "IoU = 1.000" in playground.label.value
    assert bytes(playground.picture.value) != bytes(before)  # the picture was redrawn


def test_iou_playground_slider_change_triggers_the_callback():
    playground = IoUPlayground(box_a=(0, 0, 10, 10), box_b=(5, 0, 15, 10), canvas_size=32)
    playground.sliders["b_x"].value = 20  # what dragging the slider does
    assert playground.iou == 0.0
    assert playground.giou < 0  # apart: GIoU is negative while IoU is flat at 0
    assert "IoU = 0.000" in playground.label.value


def test_iou_playground_agrees_with_torchvision_for_resized_boxes():
    playground = IoUPlayground(box_a=(4, 4, 20, 20), box_b=(8, 8, 30, 24), canvas_size=40)
    playground.update(a_w=10, b_h=3, b_y=10)
    expected = box_iou(torch.tensor([playground.box_a]), torch.tensor([playground.box_b]))[0, 0]
    assert playground.box_a == (4.0, 4.0, 14.0, 20.0)
    assert playground.iou == pytest.approx(float(expected))
    inter, union = playground.intersection_and_union()
    assert playground.iou == pytest.approx(inter / union)


def test_iou_playground_set_boxes_by_corners():
    playground = IoUPlayground(canvas_size=64)
    iou = playground.set_boxes(box_a=(10, 10, 30, 30), box_b=(20, 10, 40, 30))
    assert iou == pytest.approx(200 / 600)


def test_iou_playground_rejects_bad_input():
    with pytest.raises(ValueError, match="box_a must have x2 > x1"):
        IoUPlayground(box_a=(10, 10, 5, 20))
    with pytest.raises(ValueError, match="4 numbers"):
        IoUPlayground(box_b=(1, 2, 3))
    with pytest.raises(ValueError, match="does not fit the sliders of a 64-px canvas"):
        IoUPlayground(box_a=(50, 50, 130, 60), canvas_size=64)
    with pytest.warns(UserWarning, match="rounded"):
        IoUPlayground(box_a=(1.5, 2, 10, 10), box_b=(0, 0, 8, 8), canvas_size=32)
    playground = IoUPlayground(box_a=(0, 0, 10, 10), box_b=(5, 5, 15, 15), canvas_size=32)
    with pytest.raises(KeyError, match="unknown slider"):
        playground.update(c_x=3)
    with pytest.raises(ValueError, match="outside the slider's range"):
        playground.update(b_x=500)


# -- select_detections and jittered_candidates ------------------------------------------------


def _two_objects():
    boxes = torch.tensor(
        [
            [10.0, 10.0, 50.0, 50.0],  # object 1, best
            [12.0, 10.0, 52.0, 50.0],  # near-duplicate of object 1 (same class)
            [11.0, 11.0, 51.0, 51.0],  # overlaps object 1, but another class
            [70.0, 70.0, 100.0, 100.0],  # object 2
        ]
    )
    scores = torch.tensor([0.9, 0.8, 0.7, 0.3])
    labels = torch.tensor([1, 1, 2, 3])
    return boxes, scores, labels


def test_select_detections_thresholds_then_suppresses():
    boxes, scores, labels = _two_objects()
    assert select_detections(boxes, scores, labels, score_threshold=0.0).tolist() == [0, 2, 3]
    assert select_detections(boxes, scores, labels, class_aware=False).tolist() == [0, 3]
    assert select_detections(boxes, scores, labels, score_threshold=0.5).tolist() == [0, 2]
    assert select_detections(boxes, scores, labels, iou_threshold=1.0).tolist() == [0, 1, 2, 3]
    assert select_detections(boxes, scores, labels, top_k=1).tolist() == [0]


def test_select_detections_checks_shapes():
    boxes, scores, labels = _two_objects()
    with pytest.raises(ValueError, match="scores must have shape"):
        select_detections(boxes, scores[:2])
    with pytest.raises(ValueError, match=r"boxes must be a float tensor of shape \[N, 4\]"):
        select_detections(boxes[:, :3], scores)
    with pytest.raises(ValueError, match="iou_threshold"):
        select_detections(boxes, scores, iou_threshold=1.5)


def test_jittered_candidates_cluster_around_objects():
    gt = torch.tensor([[10.0, 10.0, 50.0, 50.0], [60.0, 60.0, 120.0, 110.0]])
    out = jittered_candidates(
        gt, torch.tensor([1, 2]), per_object=15, n_background=5, generator=torch.Generator().manual_seed(0)
    )
    assert out["boxes"].shape == (35, 4)
    assert out["object_index"].tolist().count(-1) == 5
    near = out["object_index"] >= 0
    overlap = box_iou(out["boxes"][near], gt)[torch.arange(30), out["object_index"][near]]
    assert overlap.min() > 0.4  # every candidate is a near-duplicate of its object
    assert ((out["scores"] > 0) & (out["scores"] < 1)).all()
    assert len(torch.unique(out["scores"])) == len(out["scores"])  # no ties: NMS order is well defined
    assert out["scores"][near].mean() > out["scores"][~near].mean()  # false alarms score lower
    kept = nms(out["boxes"][near], out["scores"][near], 0.5)
    assert len(kept) == 2  # NMS leaves one box per object


def test_jittered_candidates_are_repeatable():
    gt = torch.tensor([[10.0, 10.0, 50.0, 50.0]])
    first = jittered_candidates(gt, torch.tensor([1]), generator=torch.Generator().manual_seed(3))
    second = jittered_candidates(gt, torch.tensor([1]), generator=torch.Generator().manual_seed(3))
    assert torch.equal(first["boxes"], second["boxes"])
    assert torch.equal(first["scores"], second["scores"])


# -- NMS explorer -----------------------------------------------------------------------------


def test_nms_explorer_update_changes_the_kept_boxes():
    boxes, scores, labels = _two_objects()
    explorer = NMSExplorer(None, boxes, scores, labels, iou_threshold=0.5, score_threshold=0.0)
    assert explorer.kept.tolist() == [0, 2, 3]
    assert "kept 3 of 4 candidates" in explorer.label.value
    before = explorer.picture.value
    assert explorer.update(score_threshold=0.5).tolist() == [0, 2]
    assert explorer.n_below_score == 1 and explorer.n_suppressed == 1
    assert bytes(explorer.picture.value) != bytes(before)
    assert explorer.update(class_aware=False).tolist() == [0]
    assert "all classes together" in explorer.label.value


def test_nms_explorer_slider_change_triggers_the_callback():
    boxes, scores, labels = _two_objects()
    explorer = NMSExplorer(torch.rand(3, 128, 128), boxes, scores, labels, score_threshold=0.0)
    explorer.sliders["iou_threshold"].value = 1.0  # no box is suppressed any more
    assert explorer.kept.tolist() == [0, 1, 2, 3]
    explorer.sliders["score_threshold"].value = 0.85
    assert explorer.kept.tolist() == [0]
    assert "3 under the score threshold" in explorer.label.value
    assert explorer.picture.value[:4] == PNG_MAGIC


def test_nms_explorer_without_labels_runs_one_class():
    boxes, scores, _ = _two_objects()
    explorer = NMSExplorer(None, boxes, scores, score_threshold=0.0)
    assert explorer.class_aware.disabled and not explorer.class_aware.value
    assert explorer.kept.tolist() == [0, 3]
    with pytest.raises(ValueError, match="class_aware=True needs labels"):
        explorer.update(class_aware=True)


def test_nms_explorer_rejects_mismatched_inputs():
    boxes, scores, labels = _two_objects()
    with pytest.raises(ValueError, match="labels must have shape"):
        NMSExplorer(None, boxes, scores, labels[:3])
    with pytest.raises(ValueError, match=r"image must be a float tensor of shape \[3, H, W\]"):
        NMSExplorer(torch.rand(128, 128), boxes, scores)


def test_jittered_candidates_wrong_class_share():
    gt = torch.tensor([[10.0, 10.0, 50.0, 50.0], [60.0, 60.0, 120.0, 110.0]])
    out = jittered_candidates(
        gt,
        torch.tensor([1, 3]),
        per_object=10,
        n_background=0,
        wrong_class_fraction=0.2,
        generator=torch.Generator().manual_seed(0),
    )
    true_labels = torch.tensor([1, 3])[out["object_index"]]
    wrong = out["labels"] != true_labels
    assert wrong.sum() == 4  # 2 of the 10 candidates of each object
    assert ((out["labels"] >= 1) & (out["labels"] <= 3)).all()  # never the background
    with pytest.raises(ValueError, match="wrong_class_fraction"):
        jittered_candidates(gt, torch.tensor([1, 3]), wrong_class_fraction=1.5)


@pytest.mark.parametrize("make", [lambda: IoUPlayground(box_a=(10, 10, 50, 50), box_b=(20, 20, 60, 60))])
def test_playground_leaves_a_static_picture_beside_the_widget(monkeypatch, make):
    """Where widgets do not run (GitHub, nbviewer), the output still holds the current picture."""
    import base64

    import IPython.display

    shown = []
    monkeypatch.setattr(IPython.display, "display", lambda data, raw=False: shown.append((data, raw)))
    playground = make()
    playground._ipython_display_()
    (data, raw), = shown
    assert raw and "application/vnd.jupyter.widget-view+json" in data
    assert base64.b64decode(data["image/png"]) == playground.render()


def test_display_with_picture_rejects_an_unknown_mime():
    from course_utils.viz import display_with_picture

    with pytest.raises(ValueError, match="mime"):
        display_with_picture(object(), b"", "image/gif")
