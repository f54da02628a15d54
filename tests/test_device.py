import random

import numpy as np
import pytest
import torch

from course_utils import device as device_mod
from course_utils.device import describe_device, get_device, seed_everything


def test_cpu_when_no_accelerator(monkeypatch, capsys):
    monkeypatch.delenv("COURSE_DEVICE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(device_mod, "_mps_available", lambda: False)
    monkeypatch.setattr(device_mod, "_announced", set())
    assert get_device() == torch.device("cpu")
    assert "Using device: cpu" in capsys.readouterr().out


def test_cuda_preferred_over_mps(monkeypatch):
    monkeypatch.delenv("COURSE_DEVICE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(device_mod, "_mps_available", lambda: True)
    assert get_device(verbose=False) == torch.device("cuda")


def test_mps_when_no_cuda(monkeypatch):
    monkeypatch.delenv("COURSE_DEVICE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(device_mod, "_mps_available", lambda: True)
    assert get_device(verbose=False) == torch.device("mps")


def test_device_printed_once(monkeypatch, capsys):
    monkeypatch.setattr(device_mod, "_announced", set())
    monkeypatch.setenv("COURSE_DEVICE", "cpu")
    get_device()
    get_device()
    assert capsys.readouterr().out.count("Using device") == 1


def test_cuda_description_names_the_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda d: "Test GPU 9000")
    assert describe_device(torch.device("cuda")) == "cuda (Test GPU 9000)"


def test_env_override_is_validated(monkeypatch):
    monkeypatch.setenv("COURSE_DEVICE", "tpu")
    with pytest.raises(ValueError, match="COURSE_DEVICE='tpu'.*'cuda', 'mps', 'cpu'"):
        get_device(verbose=False)


def test_env_override_cuda_without_gpu(monkeypatch):
    monkeypatch.setenv("COURSE_DEVICE", "cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(RuntimeError, match="cuda"):
        get_device(verbose=False)


def _draw():
    return random.random(), np.random.rand(), torch.rand(3), torch.nn.Linear(4, 2).weight.detach().clone()


def test_seed_everything_repeats_cpu_runs():
    seed_everything(123)
    first = _draw()
    seed_everything(123)
    second = _draw()
    assert first[0] == second[0] and first[1] == second[1]
    assert torch.equal(first[2], second[2]) and torch.equal(first[3], second[3])
    seed_everything(124)
    assert not torch.equal(_draw()[2], first[2])


@pytest.mark.parametrize("bad", [-1, 1.5, "0", True])
def test_seed_everything_rejects_bad_seeds(bad):
    with pytest.raises(ValueError, match="seed"):
        seed_everything(bad)
