"""The small Faster R-CNN builder and the pretrained-or-offline COCO loader (no network needed)."""

from __future__ import annotations

import socket
import urllib.error

import pytest
import torch
from torchvision.models.detection import FasterRCNN
from torchvision.ops.misc import FrozenBatchNorm2d

from course_utils import faster_rcnn as frc
from course_utils.faster_rcnn import (
    COCO_CLASSES,
    TinyBackbone,
    coco_faster_rcnn_architecture,
    count_parameters,
    load_pretrained_faster_rcnn,
    pretrained_weights_path,
    replace_predictor,
    small_faster_rcnn,
)
from course_utils.offline import NetworkBlockedError, network_blocked
from course_utils.paths import repo_root

# --------------------------------------------------------------------------------------------
# small_faster_rcnn
# --------------------------------------------------------------------------------------------


def _batch():
    g = torch.Generator().manual_seed(0)
    images = [torch.rand(3, 128, 128, generator=g), torch.rand(3, 128, 128, generator=g)]
    targets = [
        {
            "boxes": torch.tensor([[10.0, 12.0, 50.0, 60.0], [70.0, 70.0, 120.0, 110.0]]),
            "labels": torch.tensor([1, 3]),
        },
        {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)},  # an empty image
    ]
    return images, targets


def test_tiny_backbone_stride_and_channels():
    backbone = TinyBackbone((8, 16, 24), blocks_per_stage=1)
    assert backbone.out_channels == 24 and backbone.stride == 8
    assert backbone(torch.rand(2, 3, 128, 96)).shape == (2, 24, 16, 12)
    with pytest.raises(ValueError, match="widths"):
        TinyBackbone(())


def test_small_faster_rcnn_structure():
    model = small_faster_rcnn(4, widths=(8, 16), representation_size=32, roi_output_size=5)
    assert isinstance(model, FasterRCNN)
    assert model.backbone.out_channels == 16
    assert model.roi_heads.box_head.fc6.in_features == 16 * 5 * 5
    assert model.roi_heads.box_predictor.cls_score.out_features == 4
    assert model.roi_heads.box_predictor.bbox_pred.out_features == 16
    assert model.rpn.anchor_generator.num_anchors_per_location() == [9]
    assert model.transform.min_size == (128,) and model.transform.max_size == 128
    assert model.rpn._pre_nms_top_n == {"training": 300, "testing": 300}
    assert model.rpn._post_nms_top_n == {"training": 300, "testing": 300}
    assert model.roi_heads.box_roi_pool.sampling_ratio == 1
    assert model.roi_heads.fg_bg_sampler.batch_size_per_image == 64
    custom = small_faster_rcnn(4, rpn_top_n=100, rpn_post_nms_top_n_test=50, roi_sampling_ratio=2)
    assert custom.rpn._post_nms_top_n == {"training": 100, "testing": 50}
    assert custom.roi_heads.box_roi_pool.sampling_ratio == 2


def test_small_faster_rcnn_trains_and_predicts():
    torch.manual_seed(0)
    model = small_faster_rcnn(4, widths=(8, 16, 32), representation_size=32)
    images, targets = _batch()
    model.train()
    losses = model(images, targets)
    assert set(losses) == {"loss_classifier", "loss_box_reg", "loss_objectness", "loss_rpn_box_reg"}
    total = sum(losses.values())
    assert torch.isfinite(total)
    total.backward()
    assert model.backbone[0].weight.grad is not None
    model.eval()
    with torch.no_grad():
        out = model(images)
    assert len(out) == 2
    for det in out:
        assert set(det) == {"boxes", "labels", "scores"}
        assert det["boxes"].shape[1:] == (4,) and det["boxes"].shape[0] == det["labels"].shape[0] <= 100
        assert bool(((det["labels"] >= 1) & (det["labels"] <= 3)).all())


@pytest.mark.parametrize("bad", [1, 0, 2.5, True])
def test_small_faster_rcnn_rejects_bad_num_classes(bad):
    with pytest.raises(ValueError, match="background"):
        small_faster_rcnn(bad)


def test_the_torchvision_facts_that_08_faster_rcnn_teaches():
    """The defaults and formulas the lesson states, read from torchvision itself (a new version may change them)."""
    import inspect

    from torch.nn import functional as F
    from torchvision.models.detection import roi_heads
    from torchvision.ops import poolers, roi_align

    model = coco_faster_rcnn_architecture()
    assert model.rpn._pre_nms_top_n == {"training": 2000, "testing": 1000}  # per level
    assert model.rpn._post_nms_top_n == {"training": 2000, "testing": 1000}  # per image
    sampler = model.roi_heads.fg_bg_sampler
    assert (sampler.batch_size_per_image, sampler.positive_fraction) == (512, 0.25)
    # MultiScaleRoIAlign leaves roi_align's aligned at its default, False (no half-pixel offset)
    assert inspect.signature(roi_align).parameters["aligned"].default is False
    assert "aligned" not in inspect.getsource(poolers._multiscale_roi_align)
    # LevelMapper: k = floor(4 + log2(sqrt(wh) / 224)), clamped to 2..5, returned as k - 2
    mapper = poolers.initLevelMapper(2, 5)
    sides = [32.0, 112.0, 224.0, 448.0, 1000.0]
    boxes = torch.tensor([[0.0, 0.0, s, s] for s in sides])
    assert mapper([boxes]).tolist() == [0, 1, 2, 3, 3]
    # fastrcnn_loss: the Smooth L1 (beta 1/9) of the positives, summed, divided by ALL sampled RoIs
    labels, targets = [torch.tensor([2, 0, 0, 0])], [torch.rand(4, 4)]
    logits, regression = torch.randn(4, 3), torch.randn(4, 12)
    _, box_loss = roi_heads.fastrcnn_loss(logits, regression, labels, targets)
    positive = F.smooth_l1_loss(regression[0, 8:12], targets[0][0], beta=1 / 9, reduction="sum")
    torch.testing.assert_close(box_loss, positive / 4)


def test_replace_predictor_and_count_parameters():
    model = small_faster_rcnn(4, widths=(8, 16), representation_size=32)
    before = count_parameters(model)
    replace_predictor(model, 6)
    assert model.roi_heads.box_predictor.cls_score.out_features == 6
    assert model.roi_heads.box_predictor.bbox_pred.out_features == 24
    assert count_parameters(model) == before + 2 * (32 + 1) + 8 * (32 + 1)
    for p in model.backbone.parameters():
        p.requires_grad_(False)
    assert count_parameters(model, trainable_only=True) < count_parameters(model)
    with pytest.raises(ValueError, match="background"):
        replace_predictor(model, 1)


# --------------------------------------------------------------------------------------------
# COCO classes and the pretrained-or-offline loader
# --------------------------------------------------------------------------------------------


def test_coco_classes():
    assert len(COCO_CLASSES) == 91
    assert COCO_CLASSES[0] == "__background__" and COCO_CLASSES[1] == "person"
    assert COCO_CLASSES[17] == "cat" and COCO_CLASSES[18] == "dog"
    assert COCO_CLASSES.count("N/A") == 91 - 1 - 80  # ids COCO skips


def test_weights_path_follows_torch_home(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    assert (
        pretrained_weights_path()
        == tmp_path / "hub" / "checkpoints" / "fasterrcnn_resnet50_fpn_coco-258fb6c6.pth"
    )


@pytest.fixture(scope="module")
def fabricated_state():
    """A state dict of the right architecture with random weights (a stand-in for the real file)."""
    torch.manual_seed(0)
    return coco_faster_rcnn_architecture().state_dict()


def _assert_learner_message(message, tmp_path):
    """The unavailable-weights message: names the file and the folder, no machine path, no guard text."""
    assert message.startswith("The pretrained COCO weights are not on this machine")
    assert "fasterrcnn_resnet50_fpn_coco-258fb6c6.pth" in message and frc.COCO_WEIGHTS.url in message
    assert "hub/checkpoints" in message and "course_utils.paths.torch_home()" in message
    assert ".cache/torch/hub/checkpoints" in message  # the default folder, from the course folder
    for harness in ("offline test run", "network access is blocked", "COURSE_OFFLINE", str(tmp_path)):
        assert harness not in message


def test_offline_without_cache_says_how_to_get_the_weights(tmp_path, monkeypatch, capsys):
    assert network_blocked()  # the test run's guard (conftest) is on
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    result = load_pretrained_faster_rcnn(progress=False)
    assert result.model is None and not result.available
    assert result.source == "unavailable" and result.path == pretrained_weights_path()
    assert "could not reach download.pytorch.org (no internet connection" in result.message
    _assert_learner_message(result.message, tmp_path)
    assert capsys.readouterr().out == ""  # no "Downloading ... to <path>" line
    assert not pretrained_weights_path().exists()
    assert list(pretrained_weights_path().parent.iterdir()) == []  # no partial file left


def test_the_default_folder_in_the_message_is_the_real_default(monkeypatch, tmp_path):
    monkeypatch.delenv("TORCH_HOME", raising=False)
    monkeypatch.delenv("COURSE_CACHE", raising=False)
    monkeypatch.delenv("COURSE_ROOT", raising=False)
    folder = frc.weights_dir().relative_to(repo_root()).as_posix()
    assert folder == ".cache/torch/hub/checkpoints"
    assert folder in frc.unavailable_message("the download failed: a test")


@pytest.mark.parametrize(
    ("error", "said"),
    [
        (
            urllib.error.URLError(
                NetworkBlockedError("network access is blocked in the course's offline test run")
            ),
            "could not reach",
        ),
        (
            NetworkBlockedError("network access is blocked in the course's offline test run"),
            "could not reach",
        ),
        (
            urllib.error.URLError(socket.gaierror(-3, "Temporary failure in name resolution")),
            "could not reach",
        ),
        (TimeoutError("timed out"), "could not reach"),
        (ConnectionResetError(104, "Connection reset by peer"), "could not reach"),
        (urllib.error.HTTPError(frc.COCO_WEIGHTS.url, 403, "Forbidden", {}, None), "HTTP 403 (Forbidden)"),
        (RuntimeError('invalid hash value (expected "258fb6c6", got "0000")'), "checksum did not match"),
        (OSError(28, "No space left on device"), "No space left on device"),
    ],
    ids=["guard-in-urlerror", "guard", "no-dns", "timeout", "reset", "http-403", "bad-hash", "disk-full"],
)
def test_every_download_failure_gives_the_learner_message(tmp_path, monkeypatch, error, said):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))

    def failing_download(url, dst, hash_prefix=None, progress=True):
        raise error

    monkeypatch.setattr(frc.torch.hub, "download_url_to_file", failing_download)
    result = load_pretrained_faster_rcnn(progress=False)
    assert result.source == "unavailable" and result.model is None
    assert said in result.message.split("To use them")[0]  # the reason comes first
    _assert_learner_message(result.message, tmp_path)


def test_download_false_does_not_try(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))

    def must_not_download(*args, **kwargs):
        raise AssertionError("download attempted")

    monkeypatch.setattr(frc.torch.hub, "load_state_dict_from_url", must_not_download)
    result = load_pretrained_faster_rcnn(download=False)
    assert result.source == "unavailable" and "download=False" in result.message


def test_loads_from_the_cache_without_network(tmp_path, monkeypatch, fabricated_state):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    path = pretrained_weights_path()
    path.parent.mkdir(parents=True)
    torch.save(fabricated_state, path)
    result = load_pretrained_faster_rcnn()
    assert result.source == "cache" and result.available and result.path == path
    model = result.model
    assert not model.training
    assert model.roi_heads.box_predictor.cls_score.out_features == 91
    loaded_state = model.state_dict()
    assert loaded_state.keys() == fabricated_state.keys()
    assert all(torch.equal(loaded_state[k], fabricated_state[k]) for k in loaded_state)
    frozen = [m for m in model.modules() if isinstance(m, FrozenBatchNorm2d)]
    assert frozen and all(m.eps == 0.0 for m in frozen)


def test_download_path_stores_into_the_course_cache(tmp_path, monkeypatch, fabricated_state):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    calls = {}

    def fake_download(url, dst, hash_prefix=None, progress=True):
        calls.update(url=url, dst=dst, hash_prefix=hash_prefix)
        torch.save(fabricated_state, dst)

    monkeypatch.setattr(frc.torch.hub, "download_url_to_file", fake_download)
    result = load_pretrained_faster_rcnn(progress=False)
    assert result.source == "download" and result.available
    assert "downloaded into the cache" in result.message
    assert calls == {
        "url": frc.COCO_WEIGHTS.url,
        "dst": str(tmp_path / "hub" / "checkpoints" / "fasterrcnn_resnet50_fpn_coco-258fb6c6.pth"),
        "hash_prefix": "258fb6c6",  # checked against the hash in the file's name
    }
    monkeypatch.setattr(frc.torch.hub, "download_url_to_file", None)  # the next load reads the file
    assert load_pretrained_faster_rcnn().source == "cache"


def test_unreadable_cache_file_names_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    path = pretrained_weights_path()
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a checkpoint, an interrupted copy")
    with pytest.raises(RuntimeError, match="cannot be read") as err:
        load_pretrained_faster_rcnn()
    assert str(path) in str(err.value)


def test_wrong_weights_in_the_cache_name_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    path = pretrained_weights_path()
    path.parent.mkdir(parents=True)
    torch.save(small_faster_rcnn(4, widths=(8,), representation_size=8).state_dict(), path)
    with pytest.raises(RuntimeError, match="does not hold the weights") as err:
        load_pretrained_faster_rcnn()
    assert str(path) in str(err.value)
