"""course_utils.anchors: anchors as torchvision makes them, target assignment, anchor design, the explorer."""

import math
import warnings

import numpy as np
import pytest
import torch
from torchvision.models.detection._utils import BoxCoder, Matcher
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.image_list import ImageList
from torchvision.ops import box_iou

from course_utils.anchors import (
    ROI_BOX_WEIGHTS,
    AnchorExplorer,
    anchor_shapes,
    anchors_at,
    assign_targets,
    best_anchor_iou,
    best_shape_iou,
    grid_anchors,
    kmeans_anchor_shapes,
    matched_share,
    place_anchor_shapes,
    shape_iou,
)

# ---- building anchors ------------------------------------------------------------------------


def test_anchor_shapes_follow_torchvision_rounding_and_order():
    shapes = anchor_shapes((32, 64), (0.5, 1.0, 2.0))
    assert shapes.shape == (6, 2)
    # ratio-major order; ratio = h / w; half-extents rounded: 32 / sqrt(0.5) = 45.25 -> 2 * 23 = 46
    assert shapes[0].tolist() == [46.0, 22.0]
    assert shapes[2].tolist() == [32.0, 32.0]
    assert shapes[5].tolist() == [46.0, 90.0]


def test_grid_anchors_equal_anchor_generator():
    image = ImageList(torch.zeros(1, 3, 64, 96), [(64, 96)])
    feature = torch.zeros(1, 8, 4, 6)  # stride 16
    expected = AnchorGenerator(((32, 64),), ((0.5, 1.0, 2.0),))(image, [feature])[0]
    ours = grid_anchors((64, 96), 16, (32, 64), (0.5, 1.0, 2.0))
    assert torch.equal(ours, expected)


def test_grid_anchors_rounds_the_grid_up_and_centres_on_multiples_of_the_stride():
    anchors = grid_anchors((65, 33), 16, (16,), (1.0,))
    assert anchors.shape == (math.ceil(65 / 16) * math.ceil(33 / 16), 4)
    centres = (anchors[:, :2] + anchors[:, 2:]) / 2
    assert set(centres[:, 0].tolist()) == {0.0, 16.0, 32.0}
    assert centres[:, 1].max().item() == 64.0


def test_place_anchor_shapes_matches_grid_anchors_for_the_same_shapes():
    shapes = anchor_shapes((16, 32), (0.5, 1.0, 2.0))
    assert torch.equal(
        place_anchor_shapes((64, 48), 8, shapes), grid_anchors((64, 48), 8, (16, 32), (0.5, 1.0, 2.0))
    )
    odd = place_anchor_shapes((16, 16), 8, torch.tensor([[5.0, 3.0]]))
    assert odd.tolist()[:2] == [[-2.5, -1.5, 2.5, 1.5], [5.5, -1.5, 10.5, 1.5]]
    with pytest.raises(ValueError, match="shapes must"):
        place_anchor_shapes((16, 16), 8, torch.tensor([[5.0, 0.0]]))


def test_anchors_at_is_centred_on_the_point():
    boxes = anchors_at((100, 50), (32,), (0.5, 1.0, 2.0))
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2
    assert torch.equal(centres, torch.tensor([[100.0, 50.0]] * 3))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"sizes": (), "ratios": (1.0,)}, "sizes"),
        ({"sizes": (32,), "ratios": (0.0,)}, "ratios"),
        ({"sizes": (-4,), "ratios": (1.0,)}, "sizes"),
        ({"sizes": (True,), "ratios": (1.0,)}, "sizes"),
        ({"sizes": (32,), "ratios": (float("nan"),)}, "ratios"),
    ],
)
def test_bad_sizes_or_ratios_name_the_argument(kwargs, message):
    with pytest.raises(ValueError, match=message):
        anchor_shapes(**kwargs)


def test_numpy_numbers_are_accepted():
    assert torch.equal(
        anchor_shapes(np.array([32, 64]), np.array([0.5, 1.0])), anchor_shapes((32, 64), (0.5, 1.0))
    )


def test_grid_anchors_rejects_a_bad_stride():
    with pytest.raises(ValueError, match="stride"):
        grid_anchors((64, 64), 0, (32,), (1.0,))


# ---- assigning targets -----------------------------------------------------------------------


def _scene():
    anchors = grid_anchors((64, 64), 8, (16, 32), (0.5, 1.0, 2.0))
    boxes = torch.tensor([[4.0, 6.0, 30.0, 28.0], [36.0, 30.0, 60.0, 62.0]])
    labels = torch.tensor([2, 3])
    return anchors, boxes, labels


@pytest.mark.parametrize("low_quality", [True, False])
def test_assign_targets_agrees_with_matcher_and_box_coder(low_quality):
    anchors, boxes, labels = _scene()
    t = assign_targets(anchors, boxes, labels, fg_iou=0.7, bg_iou=0.3, allow_low_quality_matches=low_quality)
    matched = Matcher(0.7, 0.3, low_quality)(box_iou(boxes, anchors))
    assert torch.equal(t.matched_idxs, matched)
    fg = matched >= 0
    assert torch.equal(t.labels[fg], labels[matched[fg]])
    assert (t.labels[matched == -1] == 0).all() and (t.labels[matched == -2] == -1).all()
    expected = BoxCoder(ROI_BOX_WEIGHTS).encode_single(boxes[matched[fg]], anchors[fg])
    assert torch.allclose(t.box_targets[fg], expected)
    assert (t.box_targets[~fg] == 0).all()
    counts = t.counts()
    assert sum(counts.values()) == len(anchors) and counts["foreground"] == int(fg.sum())


def test_low_quality_matches_give_every_object_an_anchor():
    anchors, boxes, labels = _scene()
    strict = assign_targets(anchors, boxes, labels, fg_iou=0.9, bg_iou=0.3, allow_low_quality_matches=False)
    lenient = assign_targets(anchors, boxes, labels, fg_iou=0.9, bg_iou=0.3, allow_low_quality_matches=True)
    assert set(lenient.matched_idxs[lenient.foreground].tolist()) == {0, 1}
    assert lenient.counts()["foreground"] > strict.counts()["foreground"]


def test_assign_targets_without_objects_makes_everything_background():
    anchors, _, _ = _scene()
    t = assign_targets(anchors, torch.zeros(0, 4), torch.zeros(0, dtype=torch.int64))
    assert t.counts() == {"foreground": 0, "background": len(anchors), "ignored": 0}
    assert (t.box_targets == 0).all()


def test_assign_targets_rejects_background_labels_and_bad_shapes():
    anchors, boxes, _ = _scene()
    with pytest.raises(ValueError, match="label 0 is the background"):
        assign_targets(anchors, boxes, torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="boxes must have shape"):
        assign_targets(anchors, boxes[:, :3])
    with pytest.raises(ValueError, match="bg_iou"):
        assign_targets(anchors, boxes, fg_iou=0.3, bg_iou=0.7)


@pytest.mark.parametrize(
    ("bad_box", "reason"),
    [([30.0, 30.0, 10.0, 50.0], "x2 < x1 or y2 < y1"), ([10.0, 10.0, float("nan"), 20.0], "NaN")],
)
def test_assign_targets_rejects_swapped_or_nan_boxes(bad_box, reason):
    # Such a box has IoU 0 (or NaN) with every anchor: the low-quality matches made all anchors foreground.
    anchors, boxes, _ = _scene()
    boxes = torch.cat([boxes, torch.tensor([bad_box])])
    with pytest.raises(
        ValueError, match=r"^boxes must hold \(x1, y1, x2, y2\) boxes with x2 > x1, y2 > y1"
    ) as err:
        assign_targets(anchors, boxes, torch.tensor([1, 2, 1]))
    assert f"box {len(boxes) - 1} = " in str(err.value) and reason in str(err.value)
    assert "finite" in str(err.value)


def test_assign_targets_rejects_nan_anchors():
    anchors, boxes, _ = _scene()
    anchors = anchors.clone()
    anchors[3, 0] = float("nan")
    with pytest.raises(ValueError, match=r"^anchors must hold .* box 3 = .*NaN"):
        assign_targets(anchors, boxes)


def test_best_anchor_iou_rejects_swapped_boxes():
    anchors = torch.tensor([[0.0, 0.0, 10.0, 10.0]])
    with pytest.raises(ValueError, match=r"^boxes must hold .* box 0 = \[10.0, 10.0, 0.0, 0.0\]"):
        best_anchor_iou(torch.tensor([[10.0, 10.0, 0.0, 0.0]]), anchors)


# ---- anchor design ---------------------------------------------------------------------------


def test_shape_iou_ignores_position():
    iou = shape_iou(torch.tensor([[10.0, 20.0]]), torch.tensor([[10.0, 20.0], [20.0, 10.0], [20.0, 40.0]]))
    assert torch.allclose(iou, torch.tensor([[1.0, 100 / 300, 0.25]]))


def test_best_ious_and_matched_share():
    wh = torch.tensor([[10.0, 10.0], [40.0, 40.0], [10.0, 40.0]])
    best = best_shape_iou(wh, torch.tensor([[10.0, 10.0], [40.0, 40.0]]))
    assert torch.allclose(best, torch.tensor([1.0, 1.0, 0.25]))
    assert matched_share(best, (0.5, 0.2)) == {0.5: pytest.approx(2 / 3), 0.2: 1.0}
    placed = best_anchor_iou(torch.tensor([[0.0, 0.0, 10.0, 10.0]]), torch.tensor([[5.0, 0.0, 15.0, 10.0]]))
    assert placed.tolist() == [pytest.approx(1 / 3)]
    with pytest.raises(ValueError, match="best_iou"):
        matched_share(torch.zeros(0))


def test_kmeans_finds_well_separated_shapes_and_is_repeatable():
    gen = torch.Generator().manual_seed(0)
    centres = torch.tensor([[10.0, 10.0], [40.0, 20.0], [20.0, 60.0]])
    wh = torch.cat([c * (1 + 0.05 * torch.randn(50, 2, generator=gen)) for c in centres])
    result = kmeans_anchor_shapes(wh, 3, seed=1)
    again = kmeans_anchor_shapes(wh, 3, seed=1)
    assert torch.equal(result.shapes, again.shapes)
    areas = result.shapes.prod(dim=1)
    assert torch.all(areas[1:] >= areas[:-1]), "shapes are sorted by area"
    assert torch.allclose(result.shapes, centres[[0, 1, 2]][centres.prod(1).argsort()], rtol=0.1)
    assert result.mean_iou > 0.85
    # each object is assigned to the cluster whose shape it overlaps most
    assert torch.equal(result.assignment, shape_iou(wh, result.shapes).argmax(dim=1))


def test_kmeans_checks_its_input():
    with pytest.raises(ValueError, match="k must be"):
        kmeans_anchor_shapes(torch.ones(3, 2), 4)
    with pytest.raises(ValueError, match="wh must"):
        kmeans_anchor_shapes(torch.tensor([[1.0, -1.0]]), 1)


def test_kmeans_with_duplicate_shapes_warns_when_it_restarts_a_cluster():
    wh = torch.tensor([[10.0, 10.0]] * 5 + [[30.0, 30.0]])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = kmeans_anchor_shapes(wh, 3, seed=0)
    assert result.shapes.shape == (3, 2)
    if result.reseeded:
        assert any("restarted" in str(w.message) for w in caught)


# ---- the explorer ----------------------------------------------------------------------------


@pytest.fixture
def explorer():
    photo = np.linspace(0, 1, 96 * 128 * 3, dtype=np.float32).reshape(96, 128, 3)
    return AnchorExplorer(
        photo, target_box=(40, 20, 90, 70), sizes=(32, 64), ratios=(0.5, 1.0, 2.0), stride=16
    )


def _anchor_patches(explorer):
    patches = list(explorer.ax.patches)
    return patches[:-1] if explorer.target_box is not None else patches  # the object is drawn last


def test_explorer_starts_in_the_middle(explorer):
    assert explorer.grid_size == (6, 8)
    assert (explorer.state.row, explorer.state.col) == (3, 4)
    assert explorer.center == (64.0, 48.0)
    assert explorer.total_anchors == 6 * 8 * 6
    assert len(_anchor_patches(explorer)) == 6


def test_explorer_update_changes_the_drawn_anchors_and_numbers(explorer):
    before_png, before_iou = explorer.picture.value, explorer.best_iou()
    explorer.update(sizes=(32,), ratios=(1.0,))
    assert len(_anchor_patches(explorer)) == 1
    assert explorer.anchors.tolist() == [[48.0, 32.0, 80.0, 64.0]]
    assert explorer.best_iou() == pytest.approx(32 * 32 / (50 * 50)) != before_iou
    assert explorer.picture.value != before_png
    assert explorer.picture.value[:2] == b"\xff\xd8"  # a JPEG
    assert "1 anchors per location" in explorer.summary() and "32x32" in explorer.label.value


def test_explorer_location_moves_the_anchors(explorer):
    explorer.update(row=1, col=2)
    centres = (explorer.anchors[:, :2] + explorer.anchors[:, 2:]) / 2
    assert torch.equal(centres, torch.tensor([[32.0, 16.0]] * 6))
    assert "centre (32, 16)" in explorer.summary()


def test_explorer_stride_change_keeps_the_centre_and_resizes_the_grid(explorer):
    explorer.update(stride=32)
    assert explorer.grid_size == (3, 4)
    assert explorer.center[0] == 64.0 and explorer.center[1] in (32.0, 64.0)  # 48 px lies between two rows
    assert explorer.sliders["row"].max == 2 and explorer.sliders["col"].max == 3
    assert explorer.total_anchors == 3 * 4 * 6


def test_explorer_sliders_call_update(explorer):
    explorer.sliders["stride"].value = 8
    assert explorer.state.stride == 8 and explorer.grid_size == (12, 16)
    explorer.sliders["col"].value = 1
    assert explorer.center[0] == 8.0
    explorer.sliders["ratios"].index = (2, 2)  # ratio 1 only
    assert explorer.state.ratios == (1.0,)
    assert len(_anchor_patches(explorer)) == len(explorer.state.sizes)
    explorer.sliders["sizes"].index = (0, 3)  # 16 .. 128
    assert explorer.state.sizes == (16, 32, 64, 128)
    assert explorer.total_anchors == 12 * 16 * 4


def test_explorer_rejects_bad_settings_and_keeps_its_state(explorer):
    state = explorer.state
    with pytest.raises(ValueError, match="row must be"):
        explorer.update(row=99)
    with pytest.raises(ValueError, match="unknown setting"):
        explorer.update(scale=2)
    assert explorer.state == state


def test_explorer_takes_a_tensor_image():
    ex = AnchorExplorer(torch.rand(3, 40, 60), stride=8)
    assert ex.grid_size == (5, 8) and ex.best_iou() is None
    with pytest.raises(ValueError, match="image"):
        AnchorExplorer(torch.rand(2, 40, 60))


def test_explorer_best_iou_anywhere_looks_at_every_location(explorer):
    explorer.update(sizes=(32,), ratios=(1.0,), row=0, col=0)  # far from the object
    anywhere = explorer.best_iou_anywhere()
    every = grid_anchors((96, 128), 16, (32,), (1.0,))
    assert anywhere == pytest.approx(float(box_iou(explorer.target_box, every).max()))
    assert explorer.best_iou() < anywhere == pytest.approx(32 * 32 / (50 * 50))
    assert "any location: 0.41" in explorer.summary()
    best = int(box_iou(explorer.target_box, explorer.anchors)[0].argmax())
    assert _anchor_patches(explorer)[best].get_linewidth() == 4.0  # the best anchor drawn thick
    assert explorer.ax.patches[-1].get_zorder() > _anchor_patches(explorer)[best].get_zorder()
