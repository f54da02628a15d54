"""Tests of course_utils.evaluate: paired IoU, the single-object metrics and COCO mAP through pycocotools."""

from __future__ import annotations

import contextlib
import io
import json
import math

import numpy as np
import pytest
import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from torch import nn
from torch.utils.data import DataLoader
from torchvision import tv_tensors
from torchvision.ops import box_convert as torchvision_box_convert
from torchvision.ops import box_iou

from course_utils.evaluate import (
    CocoResult,
    coco_evaluate,
    coco_evaluate_predictions,
    coco_ground_truth,
    localization_metrics,
    paired_iou,
)
from course_utils.failure_analysis import failure_records

CPU = torch.device("cpu")
CLASSES = ("background", "circle", "square", "triangle")


# ---- paired_iou ------------------------------------------------------------------------------


def test_paired_iou_of_known_pairs() -> None:
    pred = torch.tensor([[0.0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10], [5, 0, 15, 10]])
    target = torch.tensor([[0.0, 0, 10, 10], [20, 20, 30, 30], [0, 0, 20, 10], [0, 0, 10, 10]])
    assert paired_iou(pred, target).tolist() == pytest.approx([1.0, 0.0, 0.5, 1 / 3])


def test_paired_iou_is_the_diagonal_of_box_iou() -> None:
    g = torch.Generator().manual_seed(0)
    xy = torch.rand(2000, 2, generator=g) * 50
    wh = torch.rand(2000, 2, generator=g) * 30 + 1
    a = torch.cat([xy, xy + wh], dim=1)
    b = a + torch.randn(2000, 4, generator=g)
    b[:, 2:] = torch.maximum(b[:, 2:], b[:, :2] + 0.5)
    expected = torch.stack([box_iou(a[i : i + 1], b[i : i + 1])[0, 0] for i in range(0, 2000, 97)])
    assert torch.allclose(paired_iou(a, b)[::97], expected)
    assert paired_iou(a[:0], b[:0]).shape == (0,)


def test_invalid_predicted_boxes_score_zero_with_a_counting_warning() -> None:
    pred = torch.tensor([[10.0, 10, 0, 0], [0, 0, 10, 10]])  # the first has x2 < x1 and y2 < y1
    target = torch.tensor([[0.0, 0, 10, 10], [0, 0, 10, 10]])
    with pytest.warns(UserWarning, match="1 of 2 predicted boxes"):
        ious = paired_iou(pred, target)
    assert ious.tolist() == [0.0, 1.0]


@pytest.mark.parametrize(
    ("pred", "target", "match"),
    [
        (torch.zeros(2, 4), torch.zeros(3, 4), "pair up"),
        (torch.zeros(2, 3), torch.zeros(2, 3), r"shape \[N, 4\]"),
        (torch.tensor([[0.0, 0, float("nan"), 1]]), torch.tensor([[0.0, 0, 1, 1]]), "NaN"),
        (torch.tensor([[0.0, 0, 1, 1]]), torch.tensor([[0.0, 0, 0, 1]]), "zero or negative width"),
    ],
)
def test_paired_iou_refuses_bad_input(pred, target, match) -> None:
    with pytest.raises(ValueError, match=match):
        paired_iou(pred, target)


# ---- localization_metrics --------------------------------------------------------------------


def single_object_loader(n: int = 8, size: int = 32):
    g = torch.Generator().manual_seed(1)
    images = torch.rand(n, 3, size, size, generator=g)
    labels = torch.arange(n) % 3 + 1
    boxes = torch.tensor([[4.0, 4.0, 20.0, 24.0]]).repeat(n, 1) + torch.arange(n).float()[:, None]
    return list(zip(images.split(4), labels.split(4), boxes.split(4), strict=True)), labels, boxes


def test_localization_metrics_with_a_predict_fn() -> None:
    loader, labels, boxes = single_object_loader()
    truth = {
        float(img[0, 0, 0]): (lab, box) for batch in loader for img, lab, box in zip(*batch, strict=True)
    }

    def perfect(images):
        found = [truth[float(img[0, 0, 0])] for img in images]
        return torch.stack([f[0] for f in found]), torch.stack([f[1] for f in found])

    assert localization_metrics(perfect, loader, CPU) == {"accuracy": 1.0, "mean_iou": pytest.approx(1.0)}

    def half_wrong(images):
        pred_labels, pred_boxes = perfect(images)
        pred_labels[::2] = 0
        return pred_labels, pred_boxes + torch.tensor([8.0, 0, 8, 0])  # shifted right by half the width

    metrics = localization_metrics(half_wrong, loader, CPU)
    assert metrics["accuracy"] == 0.5
    assert metrics["mean_iou"] == pytest.approx(8 / 24)


class FixedSingleStage(nn.Module):
    """Returns class 2 and the normalised box (4, 4, 20, 24) / 32 for every image."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, images):
        n = images.shape[0]
        logits = torch.tensor([0.0, 0.0, 5.0, 0.0]).repeat(n, 1) * self.scale
        return logits, torch.tensor([4.0, 4.0, 20.0, 24.0]).repeat(n, 1) / 32


def test_localization_metrics_decodes_a_models_raw_output() -> None:
    loader, labels, boxes = single_object_loader()
    model = FixedSingleStage().train()
    metrics = localization_metrics(model, loader, CPU, coords="normalized")
    assert model.training  # given back in the mode it came in
    assert metrics["accuracy"] == pytest.approx(float((labels == 2).float().mean()))
    expected = paired_iou(torch.tensor([[4.0, 4, 20, 24]]).repeat(len(boxes), 1), boxes).mean()
    assert metrics["mean_iou"] == pytest.approx(float(expected))


def test_localization_metrics_refuses_an_empty_loader() -> None:
    with pytest.raises(ValueError, match="no images"):
        localization_metrics(lambda x: (None, None), [], CPU)


# ---- COCO mAP ----------------------------------------------------------------------------------


class ListDataset:
    """A minimal dataset of the course's samples (image, target) with class names."""

    classes = CLASSES

    def __init__(self, annotations, size=(64, 80)):
        self.samples = []
        for image_id, (boxes, labels) in annotations.items():
            target = {
                "boxes": tv_tensors.BoundingBoxes(
                    torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4), format="XYXY", canvas_size=size
                ),
                "labels": torch.tensor(labels, dtype=torch.int64),
                "image_id": image_id,
            }
            self.samples.append((torch.zeros(3, *size), target))

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, i):
        return self.samples[i]


GT = {
    10: ([[2, 2, 30, 30], [40, 10, 70, 50]], [1, 2]),
    11: ([[5, 5, 25, 45]], [1]),
    12: ([], []),  # an image without objects
    13: ([[10, 20, 50, 60], [0, 0, 12, 12]], [3, 2]),
}


def perfect_predictions(gt=GT, shift=0.0):
    return {
        image_id: {
            "boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4)
            + torch.tensor([shift, 0, shift, 0]),
            "scores": torch.linspace(0.9, 0.8, len(labels)),
            "labels": torch.tensor(labels, dtype=torch.int64),
        }
        for image_id, (boxes, labels) in gt.items()
    }


def test_perfect_predictions_score_one() -> None:
    result = coco_evaluate_predictions(ListDataset(GT), perfect_predictions())
    assert isinstance(result, CocoResult)
    assert (result.ap, result.ap50, result.ap75) == (pytest.approx(1.0),) * 3
    assert result.per_class == {
        "circle": pytest.approx(1.0),
        "square": pytest.approx(1.0),
        "triangle": pytest.approx(1.0),
    }
    assert result.class_names == ("circle", "square", "triangle")
    assert (result.n_images, result.n_ground_truth, result.n_detections) == (4, 5, 5)
    recall, precision = result.pr_curve(0.5)
    assert recall.shape == precision.shape == (101,)
    assert np.allclose(precision, 1.0)
    assert result.as_dict()["ap"] == result.ap


def test_ap_falls_as_boxes_shift() -> None:
    dataset = ListDataset(GT)
    aps = [coco_evaluate_predictions(dataset, perfect_predictions(shift=s)).ap for s in (0, 1, 2, 4, 8, 16)]
    assert aps[0] == pytest.approx(1.0)
    assert all(a > b for a, b in zip(aps, aps[1:], strict=False)), aps
    assert aps[-1] < 0.2


def random_detections(seed: int):
    rng = np.random.default_rng(seed)
    predictions = {}
    for image_id, (boxes, labels) in GT.items():
        boxes = np.asarray(boxes, dtype=float).reshape(-1, 4)
        noisy = boxes + rng.normal(0, 3, boxes.shape)
        extra = np.sort(rng.uniform(0, 60, (2, 4)).reshape(2, 2, 2), axis=1).transpose(0, 2, 1).reshape(2, 4)
        extra = extra[:, [0, 2, 1, 3]]  # x1, y1, x2, y2 with x1 < x2, y1 < y2
        all_boxes = np.concatenate([noisy, extra])
        predictions[image_id] = {
            "boxes": torch.tensor(all_boxes, dtype=torch.float32),
            "scores": torch.tensor(rng.uniform(0.05, 1, len(all_boxes)), dtype=torch.float32),
            "labels": torch.tensor(list(labels) + list(rng.integers(1, 4, 2)), dtype=torch.int64),
        }
    return predictions


def test_result_equals_pycocotools_on_the_same_json(tmp_path) -> None:
    predictions = random_detections(0)
    result = coco_evaluate_predictions(ListDataset(GT), predictions)

    # The same evaluation written out by hand as COCO JSON files, then pycocotools alone.
    images, annotations = [], []
    for image_id, (boxes, labels) in GT.items():
        images.append({"id": image_id, "height": 64, "width": 80})
        for (x1, y1, x2, y2), label in zip(boxes, labels, strict=True):
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": label,
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "area": (x2 - x1) * (y2 - y1),
                    "iscrowd": 0,
                }
            )
    categories = [{"id": i, "name": n} for i, n in enumerate(CLASSES) if i]
    (tmp_path / "gt.json").write_text(
        json.dumps({"images": images, "annotations": annotations, "categories": categories})
    )
    detections = []
    for image_id, p in predictions.items():
        for (x1, y1, x2, y2), s, lab in zip(
            p["boxes"].tolist(), p["scores"].tolist(), p["labels"].tolist(), strict=True
        ):
            detections.append(
                {"image_id": image_id, "category_id": lab, "bbox": [x1, y1, x2 - x1, y2 - y1], "score": s}
            )
    (tmp_path / "dt.json").write_text(json.dumps(detections))
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO(str(tmp_path / "gt.json"))
        coco_dt = coco_gt.loadRes(str(tmp_path / "dt.json"))
        evaluator = COCOeval(coco_gt, coco_dt, "bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()

    assert 0.05 < result.ap < 0.95  # a case where the numbers mean something
    np.testing.assert_allclose(result.stats, evaluator.stats, atol=1e-6)
    np.testing.assert_allclose(result.precision, evaluator.eval["precision"], atol=1e-6)
    assert result.ap == pytest.approx(evaluator.stats[0])
    assert result.ap50 == pytest.approx(evaluator.stats[1])
    # The same JSON ground truth passed as a COCO object gives the same result.
    again = coco_evaluate_predictions(coco_gt, predictions)
    np.testing.assert_allclose(again.stats, evaluator.stats, atol=1e-6)


def test_per_class_ap_on_a_crafted_case() -> None:
    gt = {1: ([[0, 0, 20, 20], [30, 30, 60, 60]], [1, 2]), 2: ([[10, 10, 40, 30]], [1])}
    predictions = {
        1: {  # circle found exactly; the square detection is in the wrong place
            "boxes": torch.tensor([[0.0, 0, 20, 20], [0, 40, 10, 60]]),
            "scores": torch.tensor([0.9, 0.8]),
            "labels": torch.tensor([1, 2]),
        },
        2: {
            "boxes": torch.tensor([[10.0, 10, 40, 30]]),
            "scores": torch.tensor([0.7]),
            "labels": torch.tensor([1]),
        },
    }
    result = coco_evaluate_predictions(ListDataset(gt), predictions)
    assert result.per_class["circle"] == pytest.approx(1.0)
    assert result.per_class["square"] == pytest.approx(0.0)
    assert math.isnan(result.per_class["triangle"])  # no ground truth: undefined, not 0
    assert result.per_class_ap50["circle"] == pytest.approx(1.0)
    assert result.per_class_ap50["square"] == pytest.approx(0.0)
    assert math.isnan(result.per_class_ap50["triangle"])
    assert result.ap == pytest.approx(0.5)  # mean over the classes that have ground truth
    recall, precision = result.pr_curve(0.5, "square")
    assert np.allclose(precision, 0.0)


def test_false_positives_on_an_empty_image_lower_ap() -> None:
    predictions = perfect_predictions()
    predictions[12] = {
        "boxes": torch.tensor([[0.0, 0, 30, 30]]),
        "scores": torch.tensor([0.99]),
        "labels": torch.tensor([1]),
    }
    result = coco_evaluate_predictions(ListDataset(GT), predictions)
    assert result.per_class["circle"] < 1.0
    assert result.per_class["square"] == pytest.approx(1.0)


def test_no_detections_and_no_ground_truth() -> None:
    result = coco_evaluate_predictions(ListDataset(GT), {})
    assert result.ap == 0.0 and result.n_detections == 0
    empty = ListDataset({1: ([], []), 2: ([], [])})
    result = coco_evaluate_predictions(
        empty,
        [{"boxes": torch.zeros(0, 4), "scores": torch.zeros(0), "labels": torch.zeros(0, dtype=torch.int64)}]
        * 2,
    )
    assert math.isnan(result.ap) and result.stats[0] == -1


def test_predictions_as_a_list_in_dataset_order() -> None:
    dataset = ListDataset(GT)
    as_list = list(perfect_predictions().values())
    assert coco_evaluate_predictions(dataset, as_list).ap == pytest.approx(1.0)
    with pytest.raises(ValueError, match="one entry per image"):
        coco_evaluate_predictions(dataset, as_list[:2])


def test_nan_in_predictions_names_the_image() -> None:
    predictions = perfect_predictions()
    predictions[13]["boxes"][1, 2] = float("nan")
    with pytest.raises(ValueError, match="image_id 13.*NaN"):
        coco_evaluate_predictions(ListDataset(GT), predictions)


def test_inverted_predicted_boxes_name_the_argument_and_the_image() -> None:
    predictions = perfect_predictions()
    predictions[13]["boxes"][1] = torch.tensor([12.0, 12, 0, 0])  # corners swapped
    with pytest.raises(ValueError, match=r"^the boxes of image_id 13 in predictions must hold") as err:
        coco_evaluate_predictions(ListDataset(GT), predictions)
    assert "box 1 = [12.0, 12.0, 0.0, 0.0] (x2 < x1 or y2 < y1)" in str(err.value)
    assert "x2 >= x1, y2 >= y1" in str(err.value)


def test_xywh_predictions_given_as_xyxy_raise_with_a_hint() -> None:
    predictions = perfect_predictions()
    predictions[10]["boxes"] = torchvision_box_convert(predictions[10]["boxes"], "xyxy", "xywh")
    with pytest.raises(ValueError, match=r"image_id 10 in predictions.*box 1 = .*look like \(x, y, w, h\)"):
        coco_evaluate_predictions(ListDataset(GT), predictions)
    # check_boxes=False scores them as given (a lesson shows what the slip does to the score).
    result = coco_evaluate_predictions(ListDataset(GT), predictions, check_boxes=False)
    assert result.ap < coco_evaluate_predictions(ListDataset(GT), perfect_predictions()).ap


def test_inverted_ground_truth_boxes_name_the_argument_and_the_image() -> None:
    gt = {**GT, 11: ([[25, 5, 5, 45]], [1])}
    with pytest.raises(
        ValueError, match=r"^the ground-truth boxes of image_id 11 in dataset must hold.*box 0"
    ):
        coco_ground_truth(ListDataset(gt))
    with pytest.raises(ValueError, match=r"^the ground-truth boxes of image_id 11 in gt must hold"):
        coco_evaluate_predictions(ListDataset(gt), perfect_predictions())
    gt = {**GT, 11: ([[5, 5, float("nan"), 45]], [1])}
    with pytest.raises(ValueError, match=r"image_id 11 in dataset.*NaN or infinite"):
        coco_ground_truth(ListDataset(gt))


def test_unknown_labels_and_images_are_refused() -> None:
    predictions = perfect_predictions()
    predictions[10]["labels"][0] = 0
    with pytest.raises(ValueError, match=r"labels \[0\].*background"):
        coco_evaluate_predictions(ListDataset(GT), predictions)
    with pytest.raises(ValueError, match="no such image"):
        coco_evaluate_predictions(ListDataset(GT), {99: perfect_predictions()[10]})


def test_pycocotools_output_is_silent_unless_asked(capsys) -> None:
    coco_evaluate_predictions(ListDataset(GT), perfect_predictions())
    assert capsys.readouterr().out == ""
    result = coco_evaluate_predictions(ListDataset(GT), perfect_predictions(), verbose=True)
    out = capsys.readouterr().out
    assert "Average Precision" in out
    assert "Average Precision" in str(result)


def test_ground_truth_conversion_to_coco_xywh() -> None:
    coco = coco_ground_truth(ListDataset(GT))
    anns = coco.loadAnns(coco.getAnnIds(imgIds=[10]))
    assert [a["bbox"] for a in anns] == [[2, 2, 28, 28], [40, 10, 30, 40]]
    assert [a["area"] for a in anns] == [28 * 28, 30 * 40]
    assert min(coco.getAnnIds()) == 1  # COCOeval treats id 0 as unmatched
    assert coco.imgs[10]["width"] == 80 and coco.imgs[10]["height"] == 64
    assert [c["name"] for c in coco.loadCats(coco.getCatIds())] == list(CLASSES[1:])


class OracleDetector(nn.Module):
    """Returns the ground truth of each image (found through a pixel that encodes its id)."""

    def __init__(self, gt) -> None:
        super().__init__()
        self.gt = gt
        self.weight = nn.Parameter(torch.zeros(()))

    def forward(self, images):
        assert not self.training
        out = []
        for image in images:
            boxes, labels = self.gt[int(image[0, 0, 0])]
            out.append(
                {
                    "boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
                    "scores": torch.ones(len(labels)),
                    "labels": torch.tensor(labels, dtype=torch.int64),
                }
            )
        return out


def test_coco_evaluate_runs_the_model_on_a_dataset_or_loader() -> None:
    dataset = ListDataset(GT)
    for image, target in dataset.samples:
        image[0, 0, 0] = target["image_id"]
    model = OracleDetector(GT).train()
    result = coco_evaluate(model, dataset, CPU, batch_size=3, progress=False)
    assert result.ap == pytest.approx(1.0) and result.n_images == 4
    assert model.training
    loader = DataLoader(dataset, batch_size=2, shuffle=True, collate_fn=lambda b: tuple(zip(*b, strict=True)))
    assert coco_evaluate(model, loader, CPU, progress=False).ap == pytest.approx(1.0)


def test_coco_evaluate_with_a_real_torchvision_detector() -> None:
    from torchvision.models.detection import FasterRCNN
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.ops import MultiScaleRoIAlign

    torch.manual_seed(0)
    backbone = nn.Sequential(nn.Conv2d(3, 8, 3, stride=4, padding=1), nn.ReLU())
    backbone.out_channels = 8
    model = FasterRCNN(
        backbone,
        num_classes=4,
        min_size=64,
        max_size=80,
        rpn_anchor_generator=AnchorGenerator(sizes=((16,),), aspect_ratios=((1.0,),)),
        box_roi_pool=MultiScaleRoIAlign(["0"], output_size=4, sampling_ratio=1),
        representation_size=16,
        box_score_thresh=0.0,
    )
    result = coco_evaluate(model, ListDataset(GT), CPU, progress=False)
    assert 0.0 <= result.ap < 0.5  # untrained: low, but a real number
    assert set(result.per_class) == {"circle", "square", "triangle"}


def test_repeated_class_names_stay_distinct() -> None:
    names = ("__background__", "person", "N/A", "car", "N/A")
    gt = {1: ([[0, 0, 20, 20], [30, 30, 60, 60]], [1, 3])}
    result = coco_evaluate_predictions(ListDataset(gt), perfect_predictions(gt), class_names=names)
    assert result.class_names == ("person", "N/A (id 2)", "car", "N/A (id 4)")
    assert result.per_class["car"] == pytest.approx(1.0)
    assert math.isnan(result.per_class["N/A (id 4)"])


# ---- failure analysis (course_utils.failure_analysis, on the datasets above) ---------------------


def _prediction(boxes, labels, scores):
    return {
        "boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
        "labels": torch.tensor(labels, dtype=torch.int64),
        "scores": torch.tensor(scores, dtype=torch.float32),
    }


def test_failure_records_match_one_detection_per_object_best_score_first() -> None:
    dataset = ListDataset(
        {
            0: (
                [[0, 0, 20, 20], [10, 10, 30, 30], [50, 50, 54, 54]],
                [1, 1, 2],
            ),  # two overlapping circles, a tiny square
            1: ([], []),
        }
    )
    predictions = [
        _prediction(
            [[0, 0, 20, 20], [0, 0, 20, 21], [10, 10, 30, 30], [50, 50, 54, 54], [60, 0, 70, 10]],
            [1, 1, 3, 2, 1],
            [0.9, 0.95, 0.8, 0.3, 0.7],  # the square's detection is below the score threshold
        ),
        _prediction([[5, 5, 15, 15]], [2], [0.6]),
    ]
    records = failure_records(dataset, predictions)
    assert [o["found"] for o in records.objects] == [True, False, False]
    assert [o["overlapped"] for o in records.objects] == [2, 2, 1]
    assert [o["size"] for o in records.objects] == pytest.approx([20.0, 20.0, 4.0])
    assert records.objects[1]["best_iou"] < 0.2, "the box right on it names another class"
    # best score first: 0.95 claims the first circle, 0.9 (a duplicate) is a false positive
    assert [(d["score"], d["correct"]) for d in records.detections] == [
        (pytest.approx(0.95), True),
        (pytest.approx(0.9), False),
        (pytest.approx(0.8), False),
        (pytest.approx(0.7), False),
        (pytest.approx(0.6), False),
    ]
    assert [d["overlapped"] for d in records.detections] == [2, 2, 2, 0, 0]
    assert len(records.missed) == 2 and len(records.false_positives) == 4


def test_failure_summary_and_table() -> None:
    dataset = ListDataset({0: ([[0, 0, 20, 20], [10, 10, 30, 30], [50, 50, 54, 54]], [1, 1, 2])})
    records = failure_records(dataset, [_prediction([[0, 0, 20, 20]], [1], [0.9])])
    summary = records.summary()
    assert list(summary) == ["all objects", "missed objects", "false positives"]
    everyone, missed, wrong = summary.values()
    assert everyone["count"] == 3 and everyone["median_size"] == pytest.approx(20.0)
    assert everyone["circle"] == pytest.approx(2 / 3) and everyone["crowded"] == pytest.approx(2 / 3)
    assert missed["count"] == 2 and missed["small"] == pytest.approx(0.5) and missed["overlapped"] == 1.5
    assert wrong["count"] == 0 and math.isnan(wrong["median_size"]) and math.isnan(wrong["circle"])
    table = records.table()
    assert table.splitlines()[0].split()[:2] == ["count", "median"]
    assert "missed objects" in table and "false positives" in table and "triangle" in table


def test_failure_records_check_their_inputs() -> None:
    dataset = ListDataset(GT)
    with pytest.raises(ValueError, match="4 images"):
        failure_records(dataset, [_prediction([], [], [])])
    plain = [dataset[i] for i in range(len(dataset))]
    with pytest.raises(ValueError, match="class_names"):
        failure_records(plain, [_prediction([], [], [])] * len(plain))
    assert (
        len(failure_records(plain, [_prediction([], [], [])] * len(plain), class_names=CLASSES).missed) == 5
    )
