"""course_utils.boxes: the shared check of [N, 4] box tensors."""

import re

import pytest
import torch
from torchvision import tv_tensors

from course_utils.boxes import as_box_tensor


def test_returns_a_plain_float_tensor():
    boxes = tv_tensors.BoundingBoxes([[1, 2, 3, 4]], format="XYXY", canvas_size=(8, 8))
    out = as_box_tensor(boxes)
    assert type(out) is torch.Tensor and out.dtype == torch.float32
    assert out.tolist() == [[1.0, 2.0, 3.0, 4.0]]
    assert as_box_tensor(torch.zeros(0, 4)).shape == (0, 4)


@pytest.mark.parametrize(
    ("bad", "got"),
    [(torch.zeros(3), r"\[3\]"), (torch.zeros(2, 5), r"\[2, 5\]"), ([[0, 0, 1, 1]], "list")],
)
def test_bad_input_names_the_argument(bad, got):
    with pytest.raises(ValueError, match=rf"pred must be a float tensor of shape \[N, 4\].*got {got}"):
        as_box_tensor(bad, "pred")


def test_valid_accepts_boxes_and_optionally_zero_size_ones():
    boxes = torch.tensor([[0.0, 0, 10, 10], [5, 5, 6, 9]])
    assert torch.equal(as_box_tensor(boxes, valid=True), boxes)
    assert as_box_tensor(torch.zeros(0, 4), valid=True).shape == (0, 4)
    assert as_box_tensor(torch.tensor([[1.0, 1, 1, 3]]), valid=True, allow_empty=True).shape == (1, 4)
    assert as_box_tensor(torch.tensor([[10.0, 10, 5, 5]])).shape == (1, 4)  # unchecked without valid


@pytest.mark.parametrize(
    ("bad", "allow_empty", "expected"),
    [
        (
            [[0, 0, 10, 10], [10, 10, 5, 20]],
            False,
            r"box 1 = \[10.0, 10.0, 5.0, 20.0\] \(x2 < x1 or y2 < y1\)",
        ),
        (
            [[0, 0, 10, 10], [0, 0, float("nan"), 1]],
            True,
            r"box 1 = \[0.0, 0.0, nan, 1.0\] \(NaN or infinite",
        ),
        ([[0, 0, 10, 10], [1, 1, 1, 3]], False, r"box 1 = \[1.0, 1.0, 1.0, 3.0\] \(zero width or height\)"),
        ([[3, 3, 2, 3]], True, r"box 0 = \[3.0, 3.0, 2.0, 3.0\]"),
    ],
)
def test_valid_names_the_argument_and_the_first_bad_box(bad, allow_empty, expected):
    relation = ">=" if allow_empty else ">"
    with pytest.raises(
        ValueError, match=rf"^gt_boxes must hold \(x1, y1, x2, y2\) boxes with x2 {relation} x1"
    ) as err:
        as_box_tensor(torch.tensor(bad), "gt_boxes", valid=True, allow_empty=allow_empty)
    assert "finite" in str(err.value)
    assert re.search(expected, str(err.value))


def test_inverted_boxes_that_read_as_xywh_get_a_hint():
    xywh = torch.tensor([[40.0, 10, 30, 40], [2, 2, 28, 28]])  # (x, y, w, h): the first has w < x
    with pytest.raises(
        ValueError, match=r"look like \(x, y, w, h\) boxes; convert with torchvision.ops.box_convert"
    ):
        as_box_tensor(xywh, "boxes", valid=True)
    with pytest.raises(ValueError) as err:  # negative coordinates cannot be a width: no hint
        as_box_tensor(torch.tensor([[10.0, 10, -5, 5]]), "boxes", valid=True)
    assert "box_convert" not in str(err.value)
