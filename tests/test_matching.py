"""course_utils.matching: the matcher's labels read per object, and the best-IoU map."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import pytest
import torch
from torchvision.models.detection._utils import Matcher
from torchvision.ops import box_iou

from course_utils.anchors import grid_anchors
from course_utils.matching import (
    best_iou_map,
    draw_best_iou_map,
    foreground_per_object,
    objects_without_foreground,
)

# Two objects, three anchors (all 16 px high, on one row): anchor 0 is the best anchor of both objects,
# and goes to object 1, which it overlaps more, so low-quality matches leave object 0 without one.
OBJECTS = torch.tensor([[0.0, 0.0, 16.0, 16.0], [3.0, 0.0, 19.0, 16.0]])
ANCHORS = torch.tensor([[2.0, 0.0, 18.0, 16.0], [-8.0, 0.0, 8.0, 16.0], [10.0, 0.0, 26.0, 16.0]])


def test_low_quality_matches_can_leave_an_object_without_an_anchor():
    matches = Matcher(0.7, 0.3, allow_low_quality_matches=True)(box_iou(OBJECTS, ANCHORS))
    assert matches.tolist() == [1, -2, -2]
    assert foreground_per_object(matches, 2).tolist() == [0, 1]
    assert objects_without_foreground(matches, 2).tolist() == [0]


def test_counts_ignore_background_and_ignored_anchors():
    matches = torch.tensor([-1, 2, -2, 2, 0, -1])
    assert foreground_per_object(matches, 4).tolist() == [1, 0, 2, 0]
    assert objects_without_foreground(matches, 4).tolist() == [1, 3]
    assert foreground_per_object(torch.tensor([-1, -2]), 0).tolist() == []
    assert foreground_per_object(torch.zeros(0, dtype=torch.int64), 2).tolist() == [0, 0]


@pytest.mark.parametrize(
    "matches, n_objects",
    [
        (torch.tensor([0, 3]), 3),  # an object index out of range
        (torch.tensor([-3, 0]), 1),  # not a Matcher code
        (torch.tensor([0.0, 1.0]), 2),  # floats
        (torch.tensor([[0, 1]]), 2),  # not 1-D
        (torch.tensor([0]), -1),
    ],
)
def test_bad_matches_are_refused(matches, n_objects):
    with pytest.raises(ValueError):
        foreground_per_object(matches, n_objects)


def test_best_iou_map_takes_the_best_anchor_of_each_location():
    anchors = grid_anchors((32, 48), 16, (16, 32), (1.0,))  # 2 x 3 locations, 2 anchors each
    boxes = torch.tensor([[8.0, 8.0, 24.0, 24.0], [30.0, 0.0, 46.0, 16.0]])
    iou = box_iou(boxes, anchors)
    best = best_iou_map(iou, (2, 3))
    assert best.shape == (2, 3)
    expected = iou.max(dim=0).values.reshape(2, 3, 2).max(dim=2).values
    assert torch.equal(best, expected)
    assert best[1, 1] == pytest.approx(float(box_iou(boxes[:1], anchors[8:9])))  # location (1, 1), size 16
    assert torch.equal(best_iou_map(torch.zeros(0, 12), (2, 3)), torch.zeros(2, 3))
    with pytest.raises(ValueError):
        best_iou_map(iou, (4, 4))


def test_draw_best_iou_map_draws_the_image_and_the_map():
    image = torch.rand(3, 32, 48)
    anchors = grid_anchors((32, 48), 16, (16,), (1.0,))
    iou = box_iou(torch.tensor([[8.0, 8.0, 24.0, 24.0]]), anchors)
    fig, ax = plt.subplots()
    shown = draw_best_iou_map(ax, image, iou, 16, title="best IoU")
    assert len(ax.images) == 2 and ax.images[1] is shown
    assert shown.get_array().shape == (2, 3)
    assert ax.get_title() == "best IoU"
    with pytest.raises(ValueError):
        draw_best_iou_map(ax, torch.rand(32, 48), iou, 16)
    plt.close(fig)
