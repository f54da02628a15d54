"""Tests of the plotting helpers on the Agg backend: they run and draw the expected artists."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402
from torchvision import tv_tensors  # noqa: E402

from course_utils.data import CLASSES, MultiShapeDataset, SingleShapeDataset  # noqa: E402
from course_utils.viz import class_colour, draw_boxes, plot_history, plot_pr_curve, show_samples  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _rectangles(ax):
    return [p for p in ax.patches if isinstance(p, Rectangle)]


def test_draw_boxes_one_rectangle_and_label_per_box():
    image = torch.rand(3, 40, 50)
    boxes = torch.tensor([[1.0, 2.0, 20.0, 30.0], [10.0, 5.0, 45.0, 35.0], [0.0, 0.0, 5.0, 5.0]])
    labels = torch.tensor([1, 2, 1])
    _, ax = plt.subplots()
    draw_boxes(ax, image, boxes, labels, scores=torch.tensor([0.9, 0.5, 0.25]))
    rects = _rectangles(ax)
    assert len(rects) == 3 and len(ax.images) == 1
    assert (rects[0].get_x(), rects[0].get_y(), rects[0].get_width(), rects[0].get_height()) == (1, 2, 19, 28)
    assert [t.get_text() for t in ax.texts] == ["circle 0.90", "square 0.50", "circle 0.25"]
    # one colour per class: same label -> same edge colour, different label -> different colour
    assert rects[0].get_edgecolor() == rects[2].get_edgecolor() != rects[1].get_edgecolor()
    assert ax.images[0].get_extent() == [0, 50, 40, 0]  # pixel edges on integer coordinates


def test_label_text_readable_on_any_image():
    names = [f"c{k}" for k in range(11)]
    for background in (torch.zeros(3, 20, 20), torch.ones(3, 20, 20)):  # dark and light images
        for label in range(1, 11):
            _, ax = plt.subplots()
            draw_boxes(ax, background, [[1, 1, 10, 10]], [label], class_names=names)
            text, rect = ax.texts[0], _rectangles(ax)[0]
            face = text.get_bbox_patch().get_facecolor()
            assert face[:3] == pytest.approx(class_colour(label)) and face[3] >= 0.8  # opaque label box
            luminance = 0.299 * face[0] + 0.587 * face[1] + 0.114 * face[2]
            assert text.get_color() == ("black" if luminance > 0.5 else "white")
            assert rect.get_path_effects()  # the edge is outlined in black
            plt.close(ax.figure)


def test_draw_boxes_threshold_empty_and_formats():
    _, ax = plt.subplots()
    draw_boxes(ax, np.zeros((20, 20, 3)), torch.zeros(0, 4), torch.zeros(0, dtype=torch.int64))
    assert len(_rectangles(ax)) == 0
    _, ax = plt.subplots()
    draw_boxes(
        ax, torch.rand(3, 20, 20), [[0, 0, 5, 5], [2, 2, 9, 9]], [1, 3], [0.9, 0.1], score_threshold=0.5
    )
    assert len(_rectangles(ax)) == 1 and "1 below score 0.5 hidden" in ax.get_title()
    xywh = tv_tensors.BoundingBoxes([[2, 3, 4, 5]], format="XYWH", canvas_size=(20, 20))
    _, ax = plt.subplots()
    draw_boxes(ax, torch.rand(3, 20, 20), xywh, [1])
    rect = _rectangles(ax)[0]
    assert (rect.get_x(), rect.get_width()) == (2, 4)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"boxes": [[0, 0, float("nan"), 4]], "labels": [1]}, r"box 0 is .*nan.*NaN in predictions"),
        ({"boxes": [[0, 0, 4, 4]], "labels": [1], "scores": [float("nan")]}, "score 0 is nan"),
        ({"boxes": [[0, 0, 4, 4]], "labels": [len(CLASSES)]}, "label 4 of box 0 is out of range"),
        ({"boxes": [[0, 0, 4, 4]], "labels": [1, 2]}, "labels: expected 1 values"),
        ({"boxes": [[0, 0, 4]]}, r"expected shape \[N, 4\]"),
    ],
)
def test_draw_boxes_bad_input(kwargs, match):
    _, ax = plt.subplots()
    with pytest.raises(ValueError, match=match):
        draw_boxes(ax, torch.rand(3, 8, 8), **kwargs)


def test_draw_boxes_bad_image():
    _, ax = plt.subplots()
    with pytest.raises(ValueError, match="image: expected"):
        draw_boxes(ax, torch.rand(5, 8, 8), [[0, 0, 1, 1]])
    with pytest.raises(ValueError, match="image holds NaN"):
        draw_boxes(ax, torch.full((3, 8, 8), float("nan")), [[0, 0, 1, 1]])
    with pytest.raises(ValueError, match="image must hold floats in \\[0, 1\\], got values up to"):
        draw_boxes(ax, torch.rand(3, 8, 8) * 255, [[0, 0, 1, 1]])  # a 0..255 image would be drawn white


def test_draw_boxes_warns_about_inverted_boxes_and_draws_them_as_given():
    _, ax = plt.subplots()
    with pytest.warns(UserWarning, match="1 of 2 boxes have x2 < x1 or y2 < y1"):
        draw_boxes(ax, None, [[0, 0, 4, 4], [6, 6, 2, 2]])
    assert len(ax.patches) == 2


def test_show_samples_grid():
    ds = MultiShapeDataset(6, image_size=48, seed=2)
    fig = show_samples(ds, n=5, ncols=3, title="shapes")
    axes = fig.axes
    assert len(axes) == 6  # a 2 x 3 grid, the last one blank
    drawn = [ax for ax in axes if ax.images]
    assert len(drawn) == 5
    for i, ax in enumerate(drawn):
        assert len(_rectangles(ax)) == len(ds[i][1]["boxes"])
        assert ax.get_title().startswith(f"#{i}:")
    fig = show_samples(SingleShapeDataset(10), indices=[7])
    assert len(fig.axes) == 1 and len(_rectangles(fig.axes[0])) == 1
    with pytest.raises(IndexError, match="index 10"):
        show_samples(SingleShapeDataset(10), indices=[10])


class _History:
    def __init__(self, records):
        self.records = records


def test_plot_history_from_history_and_list():
    records = [
        {"epoch": e, "loss": 1.0 / e, "loss_box": 0.5 / e, "mean_iou": 0.1 * e, "lr": 0.01, "seconds": 2.0}
        for e in range(1, 6)
    ]
    fig = plot_history(_History(records))
    loss_ax, metric_ax = fig.axes
    assert [line.get_label() for line in loss_ax.lines] == ["loss", "loss_box"]
    assert [line.get_label() for line in metric_ax.lines] == ["mean_iou"]
    assert list(loss_ax.lines[0].get_xdata()) == [1, 2, 3, 4, 5]
    assert loss_ax.get_xlabel() == "epoch"
    fig = plot_history(records, keys=["mean_iou"])
    assert len(fig.axes) == 1 and len(fig.axes[0].lines) == 1
    with pytest.raises(KeyError, match="no \\['ap'\\] in the history"):
        plot_history(records, keys=["ap"])
    with pytest.raises(ValueError, match="no records"):
        plot_history([])


def _precision_array():
    rng = np.random.default_rng(0)
    precision = np.sort(rng.random((10, 101, 3, 4, 3)), axis=1)[:, ::-1].copy()  # non-increasing in recall
    precision[:, :, 2] = -1  # class 3 has no ground truth
    return precision


def test_plot_pr_curve_from_raw_array():
    precision = _precision_array()
    ax = plot_pr_curve(precision, class_names=["circle", "square", "triangle"])
    labels = [line.get_label() for line in ax.lines]
    assert labels[0].startswith("circle (AP") and labels[2] == "triangle: no ground truth"
    assert labels[-1].startswith("mean (AP")
    mean_line = ax.lines[-1]
    expected = precision[0, :, :2, 0, 2].mean(axis=1)
    assert np.allclose(mean_line.get_ydata(), expected)
    ax = plot_pr_curve(precision, iou_threshold=0.75, area="small", max_detections=10)
    assert np.allclose(ax.lines[0].get_ydata(), precision[5, :, 0, 1, 1])


def test_plot_pr_curve_from_result_object():
    class Result:
        precision = _precision_array()
        recall_thresholds = np.linspace(0, 1, 101)
        iou_thresholds = np.linspace(0.5, 0.95, 10)
        class_names = ("circle", "square", "triangle")

    ax = plot_pr_curve(Result())
    assert ax.lines[0].get_label().startswith("circle") and np.allclose(
        ax.lines[0].get_xdata(), Result.recall_thresholds
    )


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"iou_threshold": 0.52}, "iou_threshold 0.52 is not one of"),
        ({"area": "huge"}, "area must be one of"),
        ({"max_detections": 5}, "max_detections must be one of"),
        ({"class_names": ["a"]}, "expected 3 names"),
    ],
)
def test_plot_pr_curve_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        plot_pr_curve(_precision_array(), **kwargs)
    with pytest.raises(ValueError, match=r"\[T, R, K, A, M\]"):
        plot_pr_curve(np.zeros((3, 3)))
