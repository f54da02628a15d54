"""Unit tests of course_utils.loss_weighting: a head trained alone under Adam and SGD, gradient norms."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from course_utils.loss_weighting import HeadRun, curve_gap, gradient_norms, train_head_only


class TwoHeads(nn.Module):
    """inputs [N, 6] -> (class logits [N, 3], box outputs [N, 4]) from one shared layer."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(6, 16), nn.ReLU())
        self.classes = nn.Linear(16, 3)
        self.boxes = nn.Linear(16, 4)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.body(x)
        return self.classes(features), self.boxes(features)


def data(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(64, 6, generator=g), torch.randn(64, 4, generator=g) * 3


def model(seed: int = 0) -> TwoHeads:
    torch.manual_seed(seed)
    return TwoHeads()


def run(net: nn.Module, weight: float, optimizer: str, lr: float, steps: int = 30) -> HeadRun:
    x, target = data()

    def box_loss(m: nn.Module) -> torch.Tensor:
        return F.smooth_l1_loss(m(x)[1], target, beta=1 / 9)

    return train_head_only(net, "boxes", box_loss, weight=weight, optimizer=optimizer, lr=lr, steps=steps)


def test_adam_ignores_a_constant_weight_on_the_head_loss():
    net = model()
    heavy, light = run(net, 1.0, "Adam", 1e-2), run(net, 0.1, "Adam", 1e-2)
    assert heavy.drop > 0.1, "the head should learn"
    assert curve_gap(heavy, light) < 1e-3
    torch.testing.assert_close(heavy.params, light.params, atol=1e-3, rtol=0)  # up to eps


def test_sgd_steps_scale_with_the_weight():
    net = model()
    heavy, light = run(net, 1.0, "SGD", 0.5), run(net, 0.1, "SGD", 0.5)
    assert curve_gap(heavy, light) > 0.3
    # weight 0.1 at lr 0.5 is weight 1 at lr 0.05: only the product matters
    torch.testing.assert_close(light.params, run(net, 1.0, "SGD", 0.05).params)


def test_only_the_head_moves_and_the_model_is_left_alone():
    net = model()
    before = {name: p.detach().clone() for name, p in net.named_parameters()}
    result = run(net, 1.0, "Adam", 1e-2, steps=5)
    assert result.params.shape == (6, 16 * 4 + 4) and len(result.losses) == 5
    assert not torch.equal(result.params[0], result.params[-1])
    for name, p in net.named_parameters():
        assert torch.equal(p, before[name]) and p.requires_grad, f"{name} of the given model changed"


def test_gradient_norms_match_autograd_and_count_unreached_parameters_as_zero():
    net = model()
    x, target = data()
    logits, boxes = net(x)
    losses = {"box": F.l1_loss(boxes, target), "class": F.cross_entropy(logits, torch.zeros(64, dtype=torch.long))}
    norms = gradient_norms(losses, net.body.parameters())
    grads = torch.autograd.grad(losses["box"], list(net.body.parameters()), retain_graph=True)
    assert norms["box"] == pytest.approx(torch.cat([g.flatten() for g in grads]).norm().item(), rel=1e-5)
    assert gradient_norms({"class": losses["class"]}, net.boxes.parameters())["class"] == 0.0
    assert all(p.grad is None for p in net.parameters()), "no .grad should be written"


def test_bad_arguments():
    net = model()
    with pytest.raises(ValueError, match="optimizer"):
        run(net, 1.0, "RMSprop", 1e-2)
    with pytest.raises(ValueError, match="positive"):
        run(net, 0.0, "SGD", 1e-2)
    with pytest.raises(ValueError, match="different lengths"):
        curve_gap(run(net, 1.0, "SGD", 0.1, steps=2), run(net, 1.0, "SGD", 0.1, steps=3))
    with pytest.raises(ValueError, match="no parameter"):
        gradient_norms({}, [])
