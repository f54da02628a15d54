"""Tests of course_utils.model_cache: keys, hits and misses, atomic writes, corrupt entries."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from torch import nn

from course_utils import model_cache
from course_utils.model_cache import TrainedModel, cached_training, clear_model_cache, recipe_key
from course_utils.train import History

RECIPE = {"builder": "linear", "args": {"in": 3, "out": 2}, "sizes": (4, 8), "epochs": 2, "seed": 0}


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    """Every test gets an empty cache of its own."""
    monkeypatch.setenv("COURSE_CACHE", str(tmp_path))
    return tmp_path / "models"


def make_model(seed: int = 0) -> nn.Linear:
    torch.manual_seed(seed)
    return nn.Linear(3, 2)


class Trainer:
    """A train function (two SGD steps, History built as fit builds it) that counts its calls."""

    def __init__(self, model: nn.Module, result: str = "history") -> None:
        self.model, self.result, self.calls = model, result, 0

    def __call__(self) -> History | None:
        self.calls += 1
        optimizer = torch.optim.SGD(self.model.parameters(), lr=0.1)
        x, y = torch.ones(4, 3), torch.zeros(4, 2)
        history = History()
        for epoch in (1, 2):
            start = time.perf_counter()
            loss = nn.functional.mse_loss(self.model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            record = {"epoch": epoch, "loss": float(loss.detach()), "mse": float(loss.detach())}
            record.update(lr=float(optimizer.param_groups[0]["lr"]), seconds=time.perf_counter() - start)
            history.records.append(record)
        return history if self.result == "history" else None


def fill(recipe=RECIPE, name: str = "tiny") -> tuple[nn.Linear, TrainedModel]:
    model = make_model()
    return model, cached_training(name, recipe, model, Trainer(model))


def test_miss_trains_and_writes(cache):
    model = make_model()
    before = model.weight.detach().clone()
    trainer = Trainer(model)
    result = cached_training("tiny", RECIPE, model, trainer)
    assert trainer.calls == 1 and not result.cached
    assert not torch.equal(model.weight, before), "train() must have changed the model in place"
    assert result.path == cache / f"tiny-{recipe_key(RECIPE)[:16]}.pt" and result.path.is_file()
    assert len(result.history) == 2 and result.seconds > 0
    assert result.summary().startswith("trained in ") and "cache" not in result.summary()
    entry = torch.load(result.path, weights_only=True)
    assert entry["key"] == recipe_key(RECIPE) and entry["recipe"]["sizes"] == [4, 8]
    assert all(t.device.type == "cpu" and not t.requires_grad for t in entry["state_dict"].values())


def test_hit_restores_weights_history_and_seconds():
    trained, first = fill()
    model = make_model(seed=1)  # other initial weights: the hit must overwrite them all
    trainer = Trainer(model)
    second = cached_training("tiny", dict(RECIPE), model, trainer)
    assert trainer.calls == 0 and second.cached and second.path == first.path
    for key, tensor in trained.state_dict().items():
        assert torch.equal(model.state_dict()[key], tensor), key
    assert second.history == first.history and second.history.keys() == first.history.keys()
    assert second.history.records[0]["epoch"] == 1 and isinstance(second.history.records[0]["epoch"], int)
    assert second.seconds == first.seconds
    assert "loaded from the model cache" in second.summary() and "clear_model_cache()" in second.summary()


def test_none_history_round_trips():
    model = make_model()
    first = cached_training("tiny", RECIPE, model, Trainer(model, result="none"))
    second = cached_training("tiny", RECIPE, make_model(), Trainer(model))
    assert first.history is None and second.cached and second.history is None


def test_summary_formats_seconds(tmp_path):
    assert TrainedModel(None, 174.4, False, tmp_path).summary() == "trained in 174 s"
    assert TrainedModel(None, 2.34, True, tmp_path).summary().startswith("trained in 2.3 s (loaded from")


def test_key_depends_on_recipe_and_versions(monkeypatch):
    base = recipe_key(RECIPE)
    assert len(base) == 64 and int(base, 16) >= 0
    assert recipe_key(dict(reversed(list(RECIPE.items())))) == base, "key order must not matter"
    assert recipe_key({**RECIPE, "sizes": [4, 8]}) == base, "tuples count as lists"
    assert recipe_key({**RECIPE, "seed": 1}) != base
    assert recipe_key({**RECIPE, "args": {"in": 3, "out": 3}}) != base
    monkeypatch.setattr(model_cache, "MODEL_CODE_VERSION", model_cache.MODEL_CODE_VERSION + 1)
    bumped = recipe_key(RECIPE)
    assert bumped != base
    monkeypatch.setattr(model_cache.torch, "__version__", "0.0.1")
    assert recipe_key(RECIPE) not in (base, bumped)
    monkeypatch.setattr(model_cache.torchvision, "__version__", "0.0.1")
    assert len({recipe_key(RECIPE), base, bumped}) == 3


def test_other_recipe_misses():
    fill()
    model = make_model()
    trainer = Trainer(model)
    result = cached_training("tiny", {**RECIPE, "epochs": 3}, model, trainer)
    assert trainer.calls == 1 and not result.cached


def test_failed_write_leaves_nothing_and_raises(cache, monkeypatch):
    def broken_save(obj, file, *args, **kwargs):
        file.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(model_cache.torch, "save", broken_save)
    model = make_model()
    with pytest.raises(OSError, match="disk full"):
        cached_training("tiny", RECIPE, model, Trainer(model))
    assert list(cache.iterdir()) == []


def test_failed_overwrite_keeps_the_old_file(cache, monkeypatch):
    _, first = fill()
    first.path.write_bytes(b"old bytes")
    monkeypatch.setattr(model_cache.torch, "save", lambda *a, **k: (_ for _ in ()).throw(OSError("boom")))
    with pytest.warns(UserWarning), pytest.raises(OSError, match="boom"):
        fill()
    assert first.path.read_bytes() == b"old bytes" and [p.name for p in cache.iterdir()] == [first.path.name]


def test_no_temporary_file_is_left(cache):
    fill()
    fill(name="other")
    assert sorted(p.suffix for p in cache.iterdir()) == [".pt", ".pt"]
    assert not list(cache.glob("*.tmp")) and not list(cache.glob(".*"))


@pytest.mark.parametrize(
    ("damage", "cause"),
    [
        (lambda p: p.write_bytes(p.read_bytes()[:100]), "Error"),
        (lambda p: p.write_bytes(b""), "Error"),
        (lambda p: torch.save({"weights": torch.ones(2)}, p), "not a model-cache entry"),
        (lambda p: torch.save({**torch.load(p, weights_only=True), "key": "0" * 64}, p), "another recipe"),
        (
            lambda p: torch.save(
                {**torch.load(p, weights_only=True), "state_dict": {"weight": torch.ones(2, 3)}}, p
            ),
            "missing",
        ),
    ],
    ids=["truncated", "empty", "foreign", "other-key", "missing-weight"],
)
def test_corrupt_entry_warns_and_retrains(damage, cause):
    _, first = fill()
    damage(first.path)
    model = make_model()
    trainer = Trainer(model)
    with pytest.warns(UserWarning, match=f"{first.path.name}.*{cause}.*retraining"):
        result = cached_training("tiny", RECIPE, model, trainer)
    assert trainer.calls == 1 and not result.cached
    again = cached_training("tiny", RECIPE, make_model(), Trainer(model))
    assert again.cached, "the retrained entry must have overwritten the broken one"


def test_wrong_shape_warns_and_retrains():
    _, first = fill()
    entry = torch.load(first.path, weights_only=True)
    entry["state_dict"]["weight"] = torch.zeros(5, 3)
    torch.save(entry, first.path)
    model = make_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    loads = []
    model.register_load_state_dict_post_hook(lambda *_: loads.append(1))
    trainer = Trainer(model)
    with pytest.warns(UserWarning, match=r"'weight' has the wrong shape \(\[5, 3\] stored, \[2, 3\]"):
        result = cached_training("tiny", RECIPE, model, trainer)
    assert trainer.calls == 1 and not result.cached and loads == [], "nothing may be half loaded"
    assert not torch.equal(model.weight, before["weight"])
    assert torch.load(result.path, weights_only=True)["state_dict"]["weight"].shape == (2, 3)


@pytest.mark.parametrize("name", ["", "a b", "../up", "x.pt", "é", None, "x" * 65])
def test_bad_name_is_a_clear_error(name, cache):
    model = make_model()
    trainer = Trainer(model)
    with pytest.raises(ValueError, match="name must be"):
        cached_training(name, RECIPE, model, trainer)
    assert trainer.calls == 0 and not list(cache.glob("*"))


def test_non_json_recipe_names_the_key():
    model = make_model()
    trainer = Trainer(model)
    with pytest.raises(TypeError, match=r"recipe\['optimizer'\]\['momentum'\] = .*object"):
        cached_training("tiny", {"optimizer": {"lr": 0.1, "momentum": object()}}, model, trainer)
    with pytest.raises(TypeError, match=r"recipe\['sizes'\]\[1\] = .*Tensor"):
        recipe_key({"sizes": (1, torch.tensor(2))})
    with pytest.raises(TypeError, match=r"recipe\['args'\] has the key 1"):
        recipe_key({"args": {1: "a"}})
    with pytest.raises(TypeError, match="recipe must be a mapping"):
        recipe_key(["builder"])
    assert trainer.calls == 0


def test_train_must_return_a_history(cache):
    model = make_model()
    with pytest.raises(TypeError, match="History or None, got dict"):
        cached_training("tiny", RECIPE, model, lambda: {"loss": 1.0})
    with pytest.raises(TypeError, match="history record 1 has 'note' = 'slow'; records hold numbers only"):
        cached_training("tiny", RECIPE, model, lambda: History([{"epoch": 1}, {"epoch": 2, "note": "slow"}]))
    assert not list(cache.glob("*"))


def test_numpy_numbers_in_history_are_stored_as_plain_numbers():
    history = History([{"epoch": np.int64(1), "loss": np.float32(0.5), "mAP": np.float64(0.25)}])
    cached_training("tiny", RECIPE, make_model(), lambda: history)
    loaded = cached_training("tiny", RECIPE, make_model(), lambda: None)
    assert loaded.cached and loaded.history.records == [{"epoch": 1, "loss": 0.5, "mAP": 0.25}]
    assert [type(v) for v in loaded.history.records[0].values()] == [int, float, float]


def test_clear_model_cache_removes_entries(cache):
    assert clear_model_cache() == 0
    fill()
    fill({**RECIPE, "seed": 1})
    (cache / ".tiny-0123.pt.abc.tmp").write_bytes(b"left over")
    assert clear_model_cache() == 2
    assert list(cache.iterdir()) == []
    model = make_model()
    trainer = Trainer(model)
    assert not cached_training("tiny", RECIPE, model, trainer).cached and trainer.calls == 1


def test_cache_false_always_trains_and_writes_nothing(cache):
    model = make_model()
    trainer = Trainer(model)
    first = cached_training("tiny", RECIPE, model, trainer, cache=False)
    assert not first.cached and trainer.calls == 1 and not first.path.exists()
    fill()
    second = cached_training("tiny", RECIPE, model, trainer, cache=False)
    assert not second.cached and trainer.calls == 2


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_entry_filled_on_gpu_loads_on_cpu():
    model = make_model().cuda()
    first = cached_training("tiny", RECIPE, model, Trainer(model))
    cpu_model = make_model(seed=1)
    second = cached_training("tiny", RECIPE, cpu_model, Trainer(cpu_model))
    assert second.cached and cpu_model.weight.device.type == "cpu" and first.path == second.path
    stored = torch.load(first.path, weights_only=True)["state_dict"]  # no map_location: as saved
    assert all(t.device.type == "cpu" for t in stored.values()), "weights must be saved from the CPU"
    assert torch.equal(cpu_model.weight, model.weight.cpu())
    gpu_model = make_model(seed=2).cuda()
    assert cached_training("tiny", RECIPE, gpu_model, Trainer(gpu_model)).cached
    assert gpu_model.weight.device.type == "cuda" and torch.equal(gpu_model.weight, model.weight)
