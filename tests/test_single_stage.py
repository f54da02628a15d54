"""Unit tests of course_utils.single_stage: the detector, the encodings and the losses."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torchvision import tv_tensors
from torchvision.ops import generalized_box_iou_loss

from course_utils.single_stage import (
    BOX_LOSSES,
    COORDS,
    MAX_LOG_SIZE,
    LossConfig,
    SingleStageDetector,
    decode_boxes,
    detection_losses,
    encode_boxes,
    localization_loss,
    make_loss_fn,
    make_predict_fn,
    predict,
    select_on_validation,
    train_single_stage,
    train_single_stage_cached,
)

S = 32


def boxes_px(n: int = 5, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g) * (S / 2)
    wh = 4 + torch.rand(n, 2, generator=g) * (S / 2 - 4)
    return torch.cat([xy, xy + wh], dim=1)


def test_forward_shapes_and_feature_size():
    model = SingleStageDetector(num_classes=4, image_size=S, widths=(8, 16))
    logits, box_out = model(torch.rand(3, 3, S, S))
    assert logits.shape == (3, 4)
    assert box_out.shape == (3, 4)
    assert model.feature_size == 16 * (S // 4) ** 2
    assert model.class_head.in_features == model.box_head.in_features == model.feature_size


def test_seed_style_model_has_32x16x16_features_on_64px_images():
    model = SingleStageDetector(num_classes=4, image_size=64)
    assert model.feature_size == 32 * 16 * 16


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"num_classes": 1, "image_size": S}, "num_classes"),
        ({"num_classes": 4, "image_size": 30}, "image_size"),
        ({"num_classes": 4, "image_size": S, "widths": ()}, "widths"),
        ({"num_classes": 4, "image_size": S, "dropout": 1.0}, "dropout"),
    ],
)
def test_bad_constructor_arguments_name_the_argument(kwargs, fragment):
    with pytest.raises(ValueError, match=fragment):
        SingleStageDetector(**kwargs)


def test_forward_rejects_wrong_image_size():
    model = SingleStageDetector(num_classes=4, image_size=S)
    with pytest.raises(ValueError, match=r"\[B, 3, 32, 32\]"):
        model(torch.rand(2, 3, 64, 64))


def test_dropout_layers_only_when_asked_and_inactive_in_eval():
    plain = SingleStageDetector(num_classes=4, image_size=S)
    dropped = SingleStageDetector(num_classes=4, image_size=S, dropout=0.3)
    assert not any(isinstance(m, nn.Dropout) for m in plain.modules())
    assert sum(isinstance(m, nn.Dropout) for m in dropped.modules()) == 2
    x = torch.rand(2, 3, S, S)
    dropped.eval()
    assert torch.equal(dropped(x)[1], dropped(x)[1])
    dropped.train()
    torch.manual_seed(0)
    assert not torch.equal(dropped(x)[1], dropped(x)[1])


@pytest.mark.parametrize("coords", COORDS)
def test_encode_decode_round_trip(coords):
    boxes = boxes_px()
    encoded = encode_boxes(boxes, S, coords)
    assert torch.allclose(decode_boxes(encoded, S, coords), boxes)


def test_normalized_encoding_divides_by_image_size_and_accepts_tv_tensors():
    boxes = tv_tensors.BoundingBoxes(boxes_px(), format="XYXY", canvas_size=(S, S))
    encoded = encode_boxes(boxes, S, "normalized")
    assert type(encoded) is torch.Tensor
    assert torch.allclose(encoded * S, boxes.as_subclass(torch.Tensor))
    assert encoded.max() <= 1.0


def test_decode_clips_to_the_image_but_keeps_flipped_boxes():
    out = torch.tensor([[-0.2, 0.1, 1.3, 0.5], [0.6, 0.6, 0.2, 0.9]])
    boxes = decode_boxes(out, S, "normalized")
    assert boxes[0].tolist() == pytest.approx([0.0, 0.1 * S, S, 0.5 * S])
    assert boxes[1, 2] < boxes[1, 0]  # x2 < x1 stays invalid; it scores IoU 0
    assert torch.allclose(decode_boxes(out, S, "normalized", clip=False), out * S)


def test_bad_coords_and_shapes_raise():
    with pytest.raises(ValueError, match="coords"):
        encode_boxes(boxes_px(), S, "cxcywh")
    with pytest.raises(ValueError, match="box_out"):
        decode_boxes(torch.zeros(4), S, "pixels")
    with pytest.raises(ValueError, match="box_loss"):
        localization_loss(torch.zeros(2, 4), boxes_px(2), image_size=S, box_loss="iou")
    with pytest.raises(ValueError, match="rows"):
        localization_loss(torch.zeros(3, 4), boxes_px(2), image_size=S)


@pytest.mark.parametrize("coords", COORDS)
def test_coordinate_losses_match_torch_functional(coords):
    boxes = boxes_px()
    out = encode_boxes(boxes_px(seed=1), S, coords)
    target = encode_boxes(boxes, S, coords)
    for name, reference in (("mse", F.mse_loss), ("l1", F.l1_loss), ("smooth_l1", F.smooth_l1_loss)):
        got = localization_loss(out, boxes, image_size=S, box_loss=name, coords=coords)
        assert torch.allclose(got, reference(out, target)), name


@pytest.mark.parametrize("coords", COORDS)
def test_giou_loss_matches_torchvision_and_ignores_the_scale(coords):
    boxes, other = boxes_px(), boxes_px(seed=1)
    out = encode_boxes(other, S, coords)
    got = localization_loss(out, boxes, image_size=S, box_loss="giou", coords=coords)
    assert torch.allclose(got, generalized_box_iou_loss(other, boxes, reduction="mean"), atol=1e-6)


def test_smooth_l1_on_normalized_coordinates_is_half_the_mse():
    # every normalised error is below 1 = beta, where Smooth L1 is 0.5 * x**2
    boxes = boxes_px()
    out = encode_boxes(boxes_px(seed=1), S, "normalized")
    smooth = localization_loss(out, boxes, image_size=S, box_loss="smooth_l1", coords="normalized")
    mse = localization_loss(out, boxes, image_size=S, box_loss="mse", coords="normalized")
    assert torch.allclose(smooth, 0.5 * mse)
    # on pixels the errors are large and Smooth L1 behaves like L1 - 0.5 instead
    out_px = encode_boxes(boxes_px(seed=1), S, "pixels")
    errors = (out_px - boxes).abs()
    assert errors.min() > 1
    smooth_px = localization_loss(out_px, boxes, image_size=S, box_loss="smooth_l1", coords="pixels")
    assert torch.allclose(smooth_px, errors.mean() - 0.5)


def test_loss_config_validates_and_labels():
    assert LossConfig("smooth_l1", "normalized", 5.0).label == "5 x Smooth L1, normalized"
    assert LossConfig("mse", "pixels", 1.0).label == "MSE, pixels"
    with pytest.raises(ValueError, match="weight"):
        LossConfig(weight=-1.0)
    with pytest.raises(ValueError, match="weight"):
        LossConfig(weight=float("nan"))
    with pytest.raises(ValueError, match="box_loss"):
        LossConfig(box_loss="huber")
    with pytest.raises(ValueError, match="coords"):
        LossConfig(coords="relative")


@pytest.mark.parametrize("box_loss", BOX_LOSSES)
def test_detection_losses_weight_the_localization_term(box_loss):
    torch.manual_seed(0)
    logits, labels = torch.randn(5, 4), torch.tensor([1, 2, 3, 1, 2])
    boxes, out = boxes_px(), encode_boxes(boxes_px(seed=1), S, "normalized")
    one = detection_losses(logits, out, labels, boxes, image_size=S, config=LossConfig(box_loss, weight=1.0))
    three = detection_losses(
        logits, out, labels, boxes, image_size=S, config=LossConfig(box_loss, weight=3.0)
    )
    assert set(one) == {"loss_classification", "loss_localization"}
    assert torch.allclose(one["loss_classification"], F.cross_entropy(logits, labels))
    assert torch.allclose(three["loss_localization"], 3 * one["loss_localization"])
    assert one["loss_localization"] > 0


def test_make_loss_fn_trains_both_heads_and_weight_zero_leaves_the_box_head_alone():
    torch.manual_seed(0)
    batch = (torch.rand(4, 3, S, S), torch.tensor([1, 2, 3, 1]), boxes_px(4))
    for weight, box_grad_expected in ((1.0, True), (0.0, False)):
        model = SingleStageDetector(num_classes=4, image_size=S, widths=(4, 8))
        losses = make_loss_fn(LossConfig(weight=weight), S)(model, batch, torch.device("cpu"))
        sum(losses.values()).backward()
        assert model.class_head.weight.grad.abs().sum() > 0
        assert (model.box_head.weight.grad.abs().sum() > 0) == box_grad_expected


def test_a_few_steps_fit_one_batch():
    torch.manual_seed(0)
    images, labels, boxes = torch.rand(8, 3, S, S), torch.tensor([1, 2, 3, 1, 2, 3, 1, 2]), boxes_px(8)
    model = SingleStageDetector(num_classes=4, image_size=S, widths=(4, 8))
    loss_fn = make_loss_fn(LossConfig("smooth_l1", "normalized", 5.0), S)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    first = None
    for _ in range(60):
        optimizer.zero_grad()
        loss = sum(loss_fn(model, (images, labels, boxes), torch.device("cpu")).values())
        loss.backward()
        optimizer.step()
        first = loss.item() if first is None else first
    assert loss.item() < 0.2 * first


def test_predict_and_predict_fn():
    torch.manual_seed(0)
    model = SingleStageDetector(num_classes=4, image_size=S, widths=(4, 8), dropout=0.5)
    images = torch.rand(3, 3, S, S)
    labels, scores, boxes = predict(model, images, "normalized")
    assert not model.training
    assert labels.dtype == torch.int64 and labels.shape == (3,)
    assert ((scores > 0) & (scores <= 1)).all()
    assert boxes.shape == (3, 4) and boxes.min() >= 0 and boxes.max() <= S
    fn_labels, fn_boxes = make_predict_fn(model, "normalized")(images)
    assert torch.equal(fn_labels, labels) and torch.equal(fn_boxes, boxes)
    with pytest.raises(ValueError, match="coords"):
        make_predict_fn(model, "px")


def tiny_data(n: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, S, S, generator=g), torch.randint(1, 4, (n,), generator=g), boxes_px(n, seed)


def test_train_single_stage_is_repeatable_and_records_metrics():
    train, val = tiny_data(48, 0), tiny_data(16, 1)
    kwargs = dict(
        epochs=2, device="cpu", seed=3, widths=(4, 8), batch_size=16, track=val[0][:2], progress=False
    )
    first = train_single_stage(LossConfig("smooth_l1", "normalized", 5.0), train, val, **kwargs)
    second = train_single_stage(LossConfig("smooth_l1", "normalized", 5.0), train, val, cosine=True, **kwargs)
    again = train_single_stage(LossConfig("smooth_l1", "normalized", 5.0), train, val, **kwargs)
    timing = {"seconds", "val_seconds"}

    def strip(run):
        return [{k: v for k, v in r.items() if k not in timing} for r in run.history.records]

    assert strip(first) == strip(again)
    assert all(
        torch.equal(a, b) for a, b in zip(first.model.parameters(), again.model.parameters(), strict=True)
    )
    assert second.history.records[1]["lr"] < first.history.records[1]["lr"]  # the cosine schedule decays
    record = first.history.last
    for key in ("loss_classification", "loss_localization", "val_accuracy", "val_iou", "train_iou"):
        assert key in record
    assert first.val == {"accuracy": record["val_accuracy"], "mean_iou": record["val_iou"]}
    assert set(first.snapshots) == {1, 2}
    labels, scores, boxes = first.snapshots[2]
    assert labels.shape == (2,) and scores.shape == (2,) and boxes.shape == (2, 4)
    assert first.gap["mean_iou"] == pytest.approx(first.train["mean_iou"] - first.val["mean_iou"])


def test_train_single_stage_metrics_only_at_the_end_when_asked():
    train, val = tiny_data(32, 0), tiny_data(8, 1)
    run = train_single_stage(
        LossConfig(),
        train,
        val,
        epochs=2,
        device="cpu",
        widths=(4, 8),
        metrics_every_epoch=False,
        progress=False,
    )
    assert "val_iou" not in run.history.records[0]
    assert "val_iou" in run.history.records[1]


def test_train_single_stage_rejects_bad_data():
    with pytest.raises(TypeError, match="train_data"):
        train_single_stage(LossConfig(), [torch.zeros(2, 3, S, S)], tiny_data(4, 1), epochs=1, device="cpu")
    images, labels, boxes = tiny_data(4, 0)
    with pytest.raises(ValueError, match="val_data"):
        train_single_stage(
            LossConfig(), (images, labels, boxes), (images, labels[:2], boxes), epochs=1, device="cpu"
        )


def test_giou_goes_below_zero_on_an_inverted_box():
    target = torch.tensor([[10.0, 10.0, 40.0, 40.0]])
    valid = localization_loss(target + 2, target, image_size=64, box_loss="giou", coords="pixels")
    inverted = localization_loss(
        torch.tensor([[50.0, 50.0, 0.0, 0.0]]), target, image_size=64, box_loss="giou", coords="pixels"
    )
    assert 0 <= valid < 1
    assert inverted < 0  # the formula assumes x1 < x2 and y1 < y2


def test_center_log_encoding_is_centre_and_log_size():
    boxes = torch.tensor([[8.0, 4.0, 24.0, 12.0]])
    encoded = encode_boxes(boxes, S, "center_log")
    expected = torch.tensor([[16 / S, 8 / S, math.log(16 / S), math.log(8 / S)]])
    assert torch.allclose(encoded, expected)


def test_center_log_decodes_valid_boxes_from_any_output():
    out = torch.randn(1000, 4, generator=torch.Generator().manual_seed(0)) * 3
    out[0, 2:] = torch.tensor([100.0, -8.0])  # a huge and a tiny log-size
    boxes = decode_boxes(out, S, "center_log", clip=False)
    assert (boxes[:, 2:] > boxes[:, :2]).all()
    assert boxes[0, 2] - boxes[0, 0] == pytest.approx(
        math.exp(MAX_LOG_SIZE) * S
    )  # clamped, as torchvision does
    clipped = decode_boxes(out, S, "center_log")
    assert clipped.min() >= 0 and clipped.max() <= S


def test_giou_on_center_log_trains_without_inverting():
    torch.manual_seed(0)
    images, labels, boxes = torch.rand(8, 3, S, S), torch.tensor([1, 2, 3, 1, 2, 3, 1, 2]), boxes_px(8)
    model = SingleStageDetector(num_classes=4, image_size=S, widths=(4, 8))
    loss_fn = make_loss_fn(LossConfig("giou", "center_log", 1.0), S)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(100):
        optimizer.zero_grad()
        losses = loss_fn(model, (images, labels, boxes), torch.device("cpu"))
        assert losses["loss_localization"] >= 0  # GIoU of valid boxes lies in [0, 2]
        sum(losses.values()).backward()
        optimizer.step()
    assert losses["loss_localization"] < 0.5


def test_select_on_validation_takes_the_best_eligible_arm_and_the_first_on_a_tie():
    metrics = {
        "a": {"accuracy": 0.99, "mean_iou": 0.50},
        "b": {"accuracy": 0.70, "mean_iou": 0.90},  # best IoU, but not accurate enough
        "c": {"accuracy": 0.90, "mean_iou": 0.60},
        "d": {"accuracy": 0.95, "mean_iou": 0.60},
    }
    assert select_on_validation(metrics, min_accuracy=0.85) == "c"
    assert select_on_validation(metrics) == "b"
    with pytest.raises(ValueError, match="accuracy"):
        select_on_validation(metrics, min_accuracy=1.0)


def test_train_single_stage_cached_trains_once_and_loads_the_same_run(monkeypatch, tmp_path):
    monkeypatch.setenv("COURSE_CACHE", str(tmp_path))
    train, val = tiny_data(32, 0), tiny_data(8, 1)
    kwargs = dict(epochs=2, device="cpu", widths=(4, 8), batch_size=16, track=val[0][:2], progress=False)
    args = ("test", {"data": "tiny"}, LossConfig("smooth_l1", "normalized", 5.0), train, val)
    first, trained = train_single_stage_cached(*args, **kwargs)
    again, loaded = train_single_stage_cached(*args, **kwargs)
    assert not trained.cached and loaded.cached
    assert all(
        torch.equal(a, b) for a, b in zip(first.model.parameters(), again.model.parameters(), strict=True)
    )
    assert first.val == again.val and first.train == again.train
    for epoch in (1, 2):
        assert all(
            torch.allclose(a.float(), b.float())
            for a, b in zip(first.snapshots[epoch], again.snapshots[epoch], strict=True)
        )
    assert not again.model.training
    other, retrained = train_single_stage_cached(*args, **{**kwargs, "seed": 1})
    assert not retrained.cached  # another seed is another recipe
