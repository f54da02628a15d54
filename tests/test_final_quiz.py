"""The final quiz's computed questions: each grader computes its value live and explains it from that value."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torchvision.models.detection.transform import GeneralizedRCNNTransform
from torchvision.ops import box_iou, nms

from course_utils import final_quiz
from course_utils.graded_quiz import AnswerError

MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
BOX_A = torch.tensor([[20.0, 10.0, 70.0, 50.0]])
BOX_B = torch.tensor([[35.0, 20.0, 85.0, 60.0]])


def verdict(capsys) -> tuple[bool, str]:
    out = capsys.readouterr().out
    assert out.startswith(("Correct!", "Not quite.")), out
    return out.startswith("Correct!"), out


def test_iou_is_explained_with_areas_in_square_pixels(learner, capsys):
    iou = box_iou(BOX_A, BOX_B)[0, 0].item()
    final_quiz.grade_iou(round(iou, 2), BOX_A, BOX_B, name="answer_3")
    right, out = verdict(capsys)
    assert right and "area(box_a) = 2000 px²" in out and "intersection = 1050 px²" in out
    assert "union = 2000 + 2000 - 1050 = 2950 px²" in out
    final_quiz.grade_iou(round(iou, 2) + 0.05, BOX_A, BOX_B, name="answer_3")
    assert not verdict(capsys)[0]


def test_nms_steps_follow_the_result_of_torchvision():
    boxes = torch.tensor(
        [[10, 10, 60, 60], [14, 12, 62, 64], [30, 30, 80, 80], [70, 15, 110, 55], [33, 28, 84, 82]],
        dtype=torch.float32,
    )
    scores = torch.tensor([0.95, 0.90, 0.85, 0.60, 0.50])
    kept, steps = final_quiz.nms_steps(boxes, scores, 0.5)
    assert kept == sorted(nms(boxes, scores, 0.5).tolist())
    assert len(steps) == len(boxes)
    for k, step in zip(scores.argsort(descending=True).tolist(), steps, strict=True):
        assert step.startswith(f"box {k} ")
        assert ("stays" in step) == (k in kept) and ("goes" in step) == (k not in kept)
    assert "goes: it overlaps kept box 0 by" in steps[1]


def test_nms_story_changes_with_the_boxes(learner, capsys):
    """Greedy NMS is not monotone in its threshold (the bank's nms-threshold-up says so): these boxes keep
    three at 0.5 but two at 0.7, and the explanation follows each result."""
    boxes = torch.tensor([[0, 25, 100, 125], [0, 0, 100, 100], [-17, 0, 83, 100], [17, 0, 117, 100]]).float()
    scores = torch.tensor([0.9, 0.8, 0.7, 0.6])
    assert final_quiz.nms_steps(boxes, scores, 0.5)[0] == [0, 2, 3]
    assert final_quiz.nms_steps(boxes, scores, 0.7)[0] == [0, 1]
    final_quiz.grade_nms_count(2, boxes, scores, 0.7, name="answer_5")
    right, out = verdict(capsys)
    assert right and "keeps boxes [0, 1]" in out and "box 2 (0.70) goes: it overlaps kept box 1" in out


def test_anchor_count_comes_from_the_anchor_generator(learner, capsys):
    final_quiz.grade_anchor_count(16 * 16 * 6, 256, 16, (32, 64), (0.5, 1.0, 2.0), name="answer_7")
    right, out = verdict(capsys)
    assert right and "16 x 16 positions" in out and "2 sizes x 3 ratios = 6 anchors" in out


def test_width_target_is_the_log_of_the_width_ratio(learner, capsys):
    anchor, truth = torch.tensor([[16.0, 16.0, 48.0, 48.0]]), torch.tensor([[20.0, 12.0, 68.0, 52.0]])
    final_quiz.grade_width_target(round(math.log(48 / 32), 2), anchor, truth, name="answer_8")
    right, out = verdict(capsys)
    assert right and "dw = log(48 / 32)" in out


def test_smooth_l1_is_the_mean_of_the_terms(learner, capsys):
    predicted, target = torch.tensor([0.2, -0.5, 3.0, 0.1]), torch.zeros(4)
    loss = F.smooth_l1_loss(predicted, target).item()
    final_quiz.grade_smooth_l1(round(loss, 2), predicted, target, name="answer_10")
    right, out = verdict(capsys)
    assert right and "The largest error, 3, makes up" in out


@pytest.mark.parametrize(
    ("min_size", "max_size", "shape"), [(800, 1333, (480, 640)), (600, 1000, (300, 900))]
)
def test_batched_width_is_explained_from_the_transform(learner, capsys, min_size, max_size, shape):
    transform = GeneralizedRCNNTransform(min_size, max_size, MEAN, STD).eval()
    photo = torch.rand(3, *shape)
    width = transform([photo])[0].tensors.shape[-1]
    final_quiz.grade_batched_width(width, transform, photo, name="answer_13")
    right, out = verdict(capsys)
    short, long = min(shape), max(shape)
    assert right and f"min({min_size} / {short}, {max_size} / {long})" in out
    assert f"{shape[0]} x {shape[1]} photo" in out


def test_first_loss_with_equal_logits_is_log_of_the_class_count(learner, capsys):
    logits, labels = torch.zeros(8, 5), torch.arange(8) % 5
    final_quiz.grade_first_loss(round(math.log(5), 2), logits, labels, name="answer_15")
    right, out = verdict(capsys)
    assert right and "-log(1/5) = log 5" in out
    final_quiz.grade_first_loss(1.0, torch.randn(8, 5), labels, name="answer_15")
    assert "log 5" not in verdict(capsys)[1]


def test_a_missing_answer_is_reported_without_the_value(learner, capsys):
    final_quiz.grade_iou(None, BOX_A, BOX_B, name="answer_3")
    out = capsys.readouterr().out
    assert "answer_3 not answered yet" in out and "px²" not in out and "computed" not in out


def test_a_wrong_answer_fails_in_a_graded_run(graded, capsys):
    with pytest.raises(AnswerError, match="answer_15"):
        final_quiz.grade_first_loss(2.0, torch.zeros(4, 4), torch.arange(4), name="answer_15")
    assert "Not quite." in capsys.readouterr().out
    with pytest.raises(AnswerError, match="answer_3: expected one number"):
        final_quiz.grade_iou("0.36", BOX_A, BOX_B, name="answer_3")
