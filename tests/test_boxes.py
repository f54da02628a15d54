"""course_utils.boxes: the shared check of [N, 4] box tensors."""

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
