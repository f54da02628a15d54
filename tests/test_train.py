"""Tests of course_utils.train.fit: history, warmup and schedulers, clipping, errors, checkpoints, exact resume."""

from __future__ import annotations

import contextlib
import math
import random

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from course_utils import train as train_module
from course_utils.train import (
    CHECKPOINT_NAME,
    History,
    NonFiniteGradientError,
    NonFiniteLossError,
    fit,
    load_checkpoint,
    to_device,
)

CPU = torch.device("cpu")


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models run far faster on one thread, above all on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class TinyDetector(nn.Module):
    """Flatten -> dropout -> class head and box head (dropout makes training consume torch's RNG)."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 16), nn.ReLU(), nn.Dropout(0.2))
        self.cls = nn.Linear(16, 3)
        self.box = nn.Linear(16, 4)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.body(x)
        return self.cls(h), self.box(h)


def tiny_loss(model: nn.Module, batch, device) -> dict[str, torch.Tensor]:
    images, labels, boxes = to_device(batch, device)
    logits, box_out = model(images)
    # Python's and NumPy's generators also feed the loss, so resume must restore them too.
    jitter = 1.0 + 0.01 * random.random() + 0.01 * float(np.random.rand())
    return {
        "cls": nn.functional.cross_entropy(logits, labels),
        "box": jitter * nn.functional.smooth_l1_loss(box_out, boxes),
    }


def make_data(n: int = 32) -> TensorDataset:
    g = torch.Generator().manual_seed(123)
    images = torch.rand(n, 3, 8, 8, generator=g)
    labels = torch.randint(0, 3, (n,), generator=g)
    boxes = torch.rand(n, 4, generator=g)
    return TensorDataset(images, labels, boxes)


def make_run(seed: int = 0, loader_generator: bool = True, lr: float = 0.05):
    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed)
    model = TinyDetector()
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.7)
    generator = torch.Generator().manual_seed(seed) if loader_generator else None
    loader = DataLoader(make_data(), batch_size=8, shuffle=True, generator=generator)
    return model, optimizer, scheduler, loader


def val_metric(model: nn.Module, epoch: int) -> dict[str, float]:
    x = torch.rand(4, 3, 8, 8)  # consumes torch's RNG between epochs, as a random val subset would
    return {"val_score": float(model(x)[0].sum())}


def comparable(history: History) -> list[dict[str, float]]:
    return [{k: v for k, v in r.items() if k not in ("seconds", "val_seconds")} for r in history.records]


def run_fit(model, optimizer, scheduler, loader, epochs, **kwargs):
    kwargs.setdefault("loss_fn", tiny_loss)
    kwargs.setdefault("val_fn", val_metric)
    return fit(
        model,
        loader,
        epochs=epochs,
        optimizer=optimizer,
        device=CPU,
        scheduler=scheduler,
        warmup_iters=3,
        max_grad_norm=5.0,
        progress=False,
        **kwargs,
    )


def test_history_records_every_named_loss_and_their_total() -> None:
    model, optimizer, _, loader = make_run()
    history = fit(model, loader, epochs=3, optimizer=optimizer, device=CPU, loss_fn=tiny_loss, progress=False)
    assert len(history) == 3
    assert history.series("epoch") == [1, 2, 3]
    for record in history.records:
        assert {"epoch", "loss", "cls", "box", "lr", "seconds"} <= set(record)
        assert record["loss"] == pytest.approx(record["cls"] + record["box"])
    assert history.last == history.records[-1]
    assert history.series("loss")[-1] < history.series("loss")[0]
    assert "cls" in history.table()
    with pytest.raises(KeyError, match="keys are"):
        history.series("ap")


def test_empty_history_has_no_last_record() -> None:
    with pytest.raises(IndexError, match="empty"):
        _ = History().last


@pytest.mark.parametrize("loader_generator", [True, False], ids=["loader-generator", "global-generator"])
def test_interrupted_then_resumed_run_equals_uninterrupted_run(tmp_path, loader_generator) -> None:
    model, optimizer, scheduler, loader = make_run(loader_generator=loader_generator)
    full = run_fit(model, optimizer, scheduler, loader, 4)

    def interrupt_at_epoch_2(model, epoch):
        result = val_metric(model, epoch)
        if epoch == 2:
            raise KeyboardInterrupt
        return result

    model_a, optimizer_a, scheduler_a, loader_a = make_run(loader_generator=loader_generator)
    with pytest.raises(KeyboardInterrupt):
        run_fit(
            model_a,
            optimizer_a,
            scheduler_a,
            loader_a,
            4,
            checkpoint_dir=tmp_path,
            val_fn=interrupt_at_epoch_2,
        )
    assert load_checkpoint(tmp_path)["epoch"] == 1
    # A new session: new objects, other seeds; everything comes back from the checkpoint.
    model_b, optimizer_b, scheduler_b, loader_b = make_run(seed=99, loader_generator=loader_generator)
    resumed = run_fit(model_b, optimizer_b, scheduler_b, loader_b, 4, checkpoint_dir=tmp_path)

    assert comparable(resumed) == comparable(full)
    for (name, p), q in zip(model.state_dict().items(), model_b.state_dict().values(), strict=True):
        assert torch.equal(p, q), name


def test_two_epochs_then_four_equals_four_epochs(tmp_path) -> None:
    model, optimizer, scheduler, loader = make_run()
    full = run_fit(model, optimizer, scheduler, loader, 4)
    model_a, optimizer_a, scheduler_a, loader_a = make_run()
    first = run_fit(model_a, optimizer_a, scheduler_a, loader_a, 2, checkpoint_dir=tmp_path)
    assert len(first) == 2
    model_b, optimizer_b, scheduler_b, loader_b = make_run(seed=5)
    resumed = run_fit(model_b, optimizer_b, scheduler_b, loader_b, 4, checkpoint_dir=tmp_path)
    assert comparable(resumed) == comparable(full)
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), model_b.parameters(), strict=True))
    assert optimizer_b.param_groups[0]["lr"] == pytest.approx(optimizer.param_groups[0]["lr"])


def test_resume_without_the_random_states_would_differ(tmp_path, monkeypatch) -> None:
    """The exact-resume tests can fail: skipping the RNG restore changes the history."""
    model, optimizer, scheduler, loader = make_run()
    full = run_fit(model, optimizer, scheduler, loader, 3)
    model_a, optimizer_a, scheduler_a, loader_a = make_run()
    run_fit(model_a, optimizer_a, scheduler_a, loader_a, 1, checkpoint_dir=tmp_path)
    monkeypatch.setattr(train_module, "_set_rng_state", lambda state, generators: None)
    model_b, optimizer_b, scheduler_b, loader_b = make_run(seed=7)
    resumed = run_fit(model_b, optimizer_b, scheduler_b, loader_b, 3, checkpoint_dir=tmp_path)
    assert comparable(resumed)[0] == comparable(full)[0]
    assert comparable(resumed)[1:] != comparable(full)[1:]


def test_finished_checkpoint_returns_history_without_training(tmp_path) -> None:
    model, optimizer, scheduler, loader = make_run()
    history = run_fit(model, optimizer, scheduler, loader, 2, checkpoint_dir=tmp_path)
    calls = []

    def counting_loss(model, batch, device):
        calls.append(1)
        return tiny_loss(model, batch, device)

    model_b, optimizer_b, scheduler_b, loader_b = make_run(seed=3)
    again = run_fit(
        model_b, optimizer_b, scheduler_b, loader_b, 2, checkpoint_dir=tmp_path, loss_fn=counting_loss
    )
    assert not calls
    assert comparable(again) == comparable(history)
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), model_b.parameters(), strict=True))


def test_resume_false_starts_over(tmp_path) -> None:
    model, optimizer, scheduler, loader = make_run()
    run_fit(model, optimizer, scheduler, loader, 2, checkpoint_dir=tmp_path)
    model_b, optimizer_b, scheduler_b, loader_b = make_run()
    history = run_fit(model_b, optimizer_b, scheduler_b, loader_b, 1, checkpoint_dir=tmp_path, resume=False)
    assert len(history) == 1
    assert load_checkpoint(tmp_path / CHECKPOINT_NAME)["epoch"] == 1


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch) -> None:
    model, optimizer, scheduler, loader = make_run()
    run_fit(model, optimizer, scheduler, loader, 1, checkpoint_dir=tmp_path)
    before = (tmp_path / CHECKPOINT_NAME).read_bytes()
    real_save = torch.save

    def failing_save(obj, f, *args, **kwargs):
        real_save(obj, f, *args, **kwargs)
        raise OSError("disk full")  # dies after writing part of the new file

    monkeypatch.setattr(torch, "save", failing_save)
    model_b, optimizer_b, scheduler_b, loader_b = make_run()
    with pytest.raises(OSError, match="disk full"):
        run_fit(model_b, optimizer_b, scheduler_b, loader_b, 2, checkpoint_dir=tmp_path)
    assert (tmp_path / CHECKPOINT_NAME).read_bytes() == before
    assert load_checkpoint(tmp_path)["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == [CHECKPOINT_NAME]  # no temporary file left


def test_checkpoint_holds_everything_resume_needs(tmp_path) -> None:
    model, optimizer, scheduler, loader = make_run()
    run_fit(model, optimizer, scheduler, loader, 1, checkpoint_dir=tmp_path)
    state = load_checkpoint(tmp_path)
    assert {"model", "optimizer", "scheduler", "scaler", "history", "epoch", "step", "rng"} <= set(state)
    assert {"python", "numpy", "torch", "loader"} <= set(state["rng"])
    assert len(state["rng"]["loader"]) == 1
    assert state["step"] == 4


def test_resume_with_a_different_loader_setup_is_refused(tmp_path) -> None:
    model, optimizer, scheduler, loader = make_run(loader_generator=True)
    run_fit(model, optimizer, scheduler, loader, 1, checkpoint_dir=tmp_path)
    model_b, optimizer_b, scheduler_b, loader_b = make_run(loader_generator=False)
    with pytest.raises(RuntimeError, match="generator"):
        run_fit(model_b, optimizer_b, scheduler_b, loader_b, 2, checkpoint_dir=tmp_path)


def test_resume_with_another_model_is_refused(tmp_path) -> None:
    model, optimizer, scheduler, loader = make_run()
    run_fit(model, optimizer, scheduler, loader, 1, checkpoint_dir=tmp_path)
    other = nn.Linear(3, 3)
    with pytest.raises(RuntimeError, match="does not fit this model"):
        fit(
            other,
            loader,
            epochs=2,
            optimizer=torch.optim.SGD(other.parameters(), lr=0.1),
            device=CPU,
            loss_fn=tiny_loss,
            checkpoint_dir=tmp_path,
            progress=False,
        )


def test_warmup_ramps_then_composes_with_a_per_epoch_scheduler() -> None:
    torch.manual_seed(0)
    model = TinyDetector()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
    loader = DataLoader(make_data(16), batch_size=8)  # 2 steps per epoch
    history = fit(
        model,
        loader,
        epochs=3,
        optimizer=optimizer,
        device=CPU,
        loss_fn=tiny_loss,
        scheduler=scheduler,
        warmup_iters=4,
        progress=False,
    )
    # lr of each epoch's last step: warmup factor 2/4 under 0.1, then 4/4 under 0.05, then 0.025.
    assert history.series("lr") == pytest.approx([0.05, 0.05, 0.025])
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.0125)  # the scheduler's own value


def test_per_iteration_scheduler_steps_after_every_batch() -> None:
    torch.manual_seed(0)
    model = TinyDetector()
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 0.5**step)
    loader = DataLoader(make_data(16), batch_size=8)
    history = fit(
        model,
        loader,
        epochs=2,
        optimizer=optimizer,
        device=CPU,
        loss_fn=tiny_loss,
        scheduler=scheduler,
        scheduler_interval="iteration",
        progress=False,
    )
    assert history.series("lr") == pytest.approx([0.5, 0.125])
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.5**4)


def test_gradient_clipping_bounds_the_step() -> None:
    torch.manual_seed(0)
    model = TinyDetector()
    model.body[3].p = 0.0
    before = [p.detach().clone() for p in model.parameters()]
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    batch = next(iter(DataLoader(make_data(8), batch_size=8)))
    history = fit(
        model,
        [batch],
        epochs=1,
        optimizer=optimizer,
        device=CPU,
        loss_fn=tiny_loss,
        max_grad_norm=1e-3,
        progress=False,
    )
    step = torch.sqrt(
        sum(((p.detach() - b) ** 2).sum() for p, b in zip(model.parameters(), before, strict=True))
    )
    assert float(step) <= 1e-3 * 1.001
    assert history.last["grad_norm"] > 1e-3  # the norm before clipping is recorded


def test_validation_metrics_and_modes() -> None:
    model, optimizer, _, loader = make_run()
    modes = []

    def val_fn(model, epoch):
        modes.append((model.training, torch.is_grad_enabled()))
        return {"val_acc": 0.5 + epoch / 10}

    history = fit(
        model,
        loader,
        epochs=2,
        optimizer=optimizer,
        device=CPU,
        loss_fn=tiny_loss,
        val_fn=val_fn,
        progress=False,
    )
    assert history.series("val_acc") == pytest.approx([0.6, 0.7])
    assert modes == [(False, False), (False, False)]
    assert model.training


def test_validation_metric_clashing_with_a_loss_is_refused() -> None:
    model, optimizer, _, loader = make_run()
    with pytest.raises(ValueError, match="'cls'"):
        fit(
            model,
            loader,
            epochs=1,
            optimizer=optimizer,
            device=CPU,
            loss_fn=tiny_loss,
            val_fn=lambda m, e: {"cls": 1.0},
            progress=False,
        )


def fit_broken_at_epoch_2_iteration_3(tmp_path, spoil, error_type, **fit_args):
    """Train 3 epochs of 4 batches; ``spoil(model, losses)`` changes the losses of the 7th batch
    (epoch 2, iteration 3). Returns the model and the error ``fit`` raised."""
    model, optimizer, _, loader = make_run()
    seen = []

    def loss_fn(model, batch, device):
        losses = tiny_loss(model, batch, device)
        seen.append(1)
        return spoil(model, losses) if len(seen) == 7 else losses

    with pytest.raises(error_type) as info:
        fit(model, loader, epochs=3, optimizer=optimizer, device=CPU, loss_fn=loss_fn,
            checkpoint_dir=tmp_path, progress=False, **fit_args)
    return model, info.value


def test_non_finite_loss_stops_with_a_clear_error(tmp_path) -> None:
    def nan_box_loss(model, losses):
        return {**losses, "box": losses["box"] * float("nan")}

    model, error = fit_broken_at_epoch_2_iteration_3(tmp_path, nan_box_loss, NonFiniteLossError)
    assert isinstance(error, FloatingPointError)
    assert (error.loss_name, error.epoch, error.iteration) == ("box", 2, 3)
    assert "'box'" in str(error) and "epoch 2" in str(error) and "iteration 3" in str(error)
    assert math.isnan(error.losses["loss"])
    assert load_checkpoint(tmp_path)["epoch"] == 1
    assert all(torch.isfinite(p).all() for p in model.parameters())


@pytest.mark.parametrize("max_grad_norm", [None, 1.0])
def test_non_finite_gradient_with_finite_loss_stops_before_the_step(tmp_path, max_grad_norm) -> None:
    def sqrt_of_zero(model, losses):  # sqrt(0) = 0 is finite, its derivative is not
        return {**losses, "box": losses["box"] + torch.sqrt(model.box.bias[0] * 0.0)}

    model, error = fit_broken_at_epoch_2_iteration_3(
        tmp_path, sqrt_of_zero, NonFiniteGradientError, max_grad_norm=max_grad_norm
    )
    assert isinstance(error, NonFiniteLossError)  # one except catches both
    assert (error.parameter, error.epoch, error.iteration) == ("box.bias", 2, 3)
    assert all(math.isfinite(v) for v in error.losses.values())
    message = str(error)
    assert "'box.bias'" in message and "epoch 2" in message and "iteration 3" in message
    assert "every loss is finite" in message
    checkpoint = load_checkpoint(tmp_path)
    assert checkpoint["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in checkpoint["model"].values())
    assert all(torch.isfinite(p).all() for p in model.parameters())  # the step was not taken


def test_gradient_check_is_skipped_while_a_grad_scaler_handles_infs(monkeypatch) -> None:
    calls = []
    monkeypatch.setattr(train_module, "_check_finite_gradients", lambda *a: calls.append(1))
    model, optimizer, _, loader = make_run()
    fit(model, loader, epochs=1, optimizer=optimizer, device=CPU, loss_fn=tiny_loss, progress=False)
    assert len(calls) == len(loader)  # no scaler on the CPU: checked every step
    calls.clear()
    original = train_module._run_batches

    def with_amp(*args, **kwargs):
        return original(*args, **{**kwargs, "use_amp": True})

    monkeypatch.setattr(train_module, "_run_batches", with_amp)
    monkeypatch.setattr(torch, "autocast", lambda **kwargs: contextlib.nullcontext())  # CPU stand-in
    model, optimizer, _, loader = make_run()
    fit(model, loader, epochs=1, optimizer=optimizer, device=CPU, loss_fn=tiny_loss, progress=False)
    assert calls == []


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"epochs": 0}, ValueError, "epochs must be an int >= 1"),
        ({"epochs": 2.0}, ValueError, "epochs must be an int >= 1"),
        ({"warmup_iters": -1}, ValueError, "warmup_iters"),
        ({"max_grad_norm": 0.0}, ValueError, "max_grad_norm"),
        ({"scheduler_interval": "batch"}, ValueError, "scheduler_interval"),
        ({"loss_fn": "mse"}, TypeError, "loss_fn must be callable"),
        ({"val_fn": 3}, TypeError, "val_fn must be callable"),
        ({"optimizer": "sgd"}, TypeError, "optimizer must be"),
    ],
)
def test_bad_arguments_are_refused(kwargs, error, match) -> None:
    model, optimizer, _, loader = make_run()
    arguments = {"epochs": 1, "optimizer": optimizer, "device": CPU, "loss_fn": tiny_loss, "progress": False}
    arguments.update(kwargs)
    with pytest.raises(error, match=match):
        fit(model, loader, **arguments)


def test_empty_loader_is_refused() -> None:
    model, optimizer, _, _ = make_run()
    loader = DataLoader(make_data(4), batch_size=8, drop_last=True)
    with pytest.raises(ValueError, match="empty"):
        fit(model, loader, epochs=1, optimizer=optimizer, device=CPU, loss_fn=tiny_loss, progress=False)


def test_optimizer_of_another_model_is_refused() -> None:
    model, _, _, loader = make_run()
    stale = torch.optim.SGD(TinyDetector().parameters(), lr=0.1)
    with pytest.raises(ValueError, match="another model"):
        fit(model, loader, epochs=1, optimizer=stale, device=CPU, loss_fn=tiny_loss, progress=False)


def test_reduce_on_plateau_is_refused() -> None:
    model, optimizer, _, loader = make_run()
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer)
    with pytest.raises(TypeError, match="ReduceLROnPlateau"):
        fit(model, loader, epochs=1, optimizer=optimizer, device=CPU, loss_fn=tiny_loss, scheduler=plateau)


@pytest.mark.parametrize(
    ("returned", "error", "match"),
    [
        (lambda t: t, TypeError, "must return a dict of named loss tensors, got Tensor"),
        (lambda t: {}, ValueError, "empty dict"),
        (lambda t: {"a": t.reshape(1).repeat(3)}, TypeError, "scalar tensor"),
        (lambda t: {"a": 1.0}, TypeError, "scalar tensor"),
        (lambda t: {"a": t, "lr": t}, ValueError, "'lr'"),
        (lambda t: {"a": t.detach()}, RuntimeError, "does not require grad"),
    ],
)
def test_loss_fn_results_are_checked(returned, error, match) -> None:
    model, optimizer, _, loader = make_run()

    def loss_fn(model, batch, device):
        return returned(sum(tiny_loss(model, batch, device).values()))

    with pytest.raises(error, match=match):
        fit(model, loader, epochs=1, optimizer=optimizer, device=CPU, loss_fn=loss_fn, progress=False)


def test_amp_is_a_no_op_on_the_cpu() -> None:
    histories = []
    for amp in (True, False):
        model, optimizer, _, loader = make_run()
        history = fit(
            model,
            loader,
            epochs=2,
            optimizer=optimizer,
            device=CPU,
            loss_fn=tiny_loss,
            amp=amp,
            progress=False,
        )
        histories.append(comparable(history))
    assert histories[0] == histories[1]


def test_progress_bar_shows_the_epoch_and_running_loss(capsys) -> None:
    model, optimizer, _, loader = make_run()
    fit(model, loader, epochs=1, optimizer=optimizer, device=CPU, loss_fn=tiny_loss, progress=True)
    err = capsys.readouterr().err
    assert "epoch 1/1" in err and "loss=" in err


# ---- torchvision detection models: the default loss path ------------------------------------


def tiny_faster_rcnn() -> nn.Module:
    from torchvision.models.detection import FasterRCNN
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.ops import MultiScaleRoIAlign

    backbone = nn.Sequential(nn.Conv2d(3, 8, 3, stride=4, padding=1), nn.ReLU())
    backbone.out_channels = 8
    return FasterRCNN(
        backbone,
        num_classes=4,
        min_size=48,
        max_size=48,
        rpn_anchor_generator=AnchorGenerator(sizes=((16,),), aspect_ratios=((1.0,),)),
        box_roi_pool=MultiScaleRoIAlign(["0"], output_size=4, sampling_ratio=1),
        representation_size=16,
        rpn_batch_size_per_image=32,
        box_batch_size_per_image=16,
    )


def detection_samples(n: int = 4):
    from torchvision import tv_tensors

    g = torch.Generator().manual_seed(0)
    samples = []
    for i in range(n):
        boxes = tv_tensors.BoundingBoxes(
            torch.tensor([[4.0, 6.0, 24.0, 30.0], [20.0, 18.0, 44.0, 40.0]]),
            format="XYXY",
            canvas_size=(48, 48),
        )
        target = {"boxes": boxes, "labels": torch.tensor([1, 3]), "image_id": i}
        samples.append((torch.rand(3, 48, 48, generator=g), target))
    return samples


def pairs(batch):
    return [s[0] for s in batch], [s[1] for s in batch]


def test_torchvision_detector_trains_on_its_loss_dict(tmp_path) -> None:
    torch.manual_seed(0)
    model = tiny_faster_rcnn()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    loader = DataLoader(detection_samples(), batch_size=2, collate_fn=pairs)
    history = fit(
        model, loader, epochs=1, optimizer=optimizer, device=CPU, checkpoint_dir=tmp_path, progress=False
    )
    record = history.last
    names = {"loss_classifier", "loss_box_reg", "loss_objectness", "loss_rpn_box_reg"}
    assert names <= set(record)
    assert record["loss"] == pytest.approx(sum(record[n] for n in names))
    assert load_checkpoint(tmp_path)["epoch"] == 1


def test_detector_in_eval_mode_output_is_explained() -> None:
    torch.manual_seed(0)
    model = tiny_faster_rcnn()

    class EvalOnly(nn.Module):  # a wrapper whose forward always returns detections
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, images, targets=None):
            self.inner.eval()
            return self.inner(images)

    wrapped = EvalOnly(model)
    optimizer = torch.optim.SGD(wrapped.parameters(), lr=0.01)
    loader = DataLoader(detection_samples(2), batch_size=2, collate_fn=pairs)
    with pytest.raises(TypeError, match="only in train mode"):
        fit(wrapped, loader, epochs=1, optimizer=optimizer, device=CPU, progress=False)


def test_default_path_explains_the_batch_format() -> None:
    model, optimizer, _, loader = make_run()  # batches are (images, labels, boxes) triples
    with pytest.raises(TypeError, match="detection_collate"):
        fit(model, loader, epochs=1, optimizer=optimizer, device=CPU, progress=False)


def test_to_device_moves_nested_tensors_and_keeps_tv_tensors() -> None:
    from torchvision import tv_tensors

    boxes = tv_tensors.BoundingBoxes(torch.zeros(2, 4), format="XYXY", canvas_size=(8, 8))
    moved = to_device({"boxes": boxes, "pair": (torch.ones(1), [torch.zeros(1)]), "image_id": 3}, CPU)
    assert isinstance(moved["boxes"], tv_tensors.BoundingBoxes)
    assert isinstance(moved["pair"], tuple) and isinstance(moved["pair"][1], list)
    assert moved["image_id"] == 3
