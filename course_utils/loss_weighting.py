"""How the weight of a loss reaches a model's parameters: train one head alone, measure a gradient.

A detector's loss is ``classification + lambda * localization``. Multiplying a loss by a constant
``c > 0`` multiplies the gradient of every parameter that only this loss reaches by ``c``. What the
optimizer does with that factor differs:

* SGD steps by ``lr * gradient``: the step is ``c`` times larger.
* Adam steps by ``lr * m / (sqrt(v) + eps)``, with ``m`` and ``v`` running means of the gradient and
  of its square (``torch.optim.Adam``). Both scale with the factor (``m`` by ``c``, ``sqrt(v)`` by
  ``c``), so the step does not change, except where the gradient is so small that ``eps``
  (1e-8 by default) is not negligible next to ``sqrt(v)``.

So under Adam a weight acts only through the parameters that receive the sum of several losses'
gradients (the shared layers), where it changes the mix. ``train_head_only`` shows it: it freezes
everything but one head (``requires_grad`` False) and trains that head on ``weight * loss``;
``curve_gap`` compares two such runs. ``gradient_norms`` measures how hard each of several losses
pulls on a group of parameters (the Euclidean norm of its gradient with respect to them).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import torch
from torch import Tensor, nn

__all__ = ["OPTIMIZERS", "HeadRun", "curve_gap", "gradient_norms", "train_head_only"]

OPTIMIZERS: tuple[str, ...] = ("Adam", "SGD")


@dataclass(frozen=True)
class HeadRun:
    """One head trained alone.

    ``losses``: the loss (without the weight) before each step, ``steps`` values;
    ``params``: the head's parameters flattened, ``[steps + 1, P]``, row 0 the starting point.
    """

    losses: list[float]
    params: Tensor

    @property
    def drop(self) -> float:
        """How far the loss fell over the run: first value minus the lowest."""
        return self.losses[0] - min(self.losses)


def _flat(parameters: Iterable[nn.Parameter]) -> Tensor:
    """All parameters as one detached vector ``[P]`` on the CPU."""
    return torch.cat([p.detach().flatten().cpu() for p in parameters])


def train_head_only(
    model: nn.Module,
    head: str,
    loss_fn: Callable[[nn.Module], Tensor],
    *,
    weight: float,
    optimizer: str,
    lr: float,
    steps: int,
) -> HeadRun:
    """Train only the submodule ``head`` of a copy of ``model`` on ``weight * loss_fn(copy)``.

    ``model`` itself is not changed, so several runs start from the same weights. Every parameter
    outside ``head`` is frozen (``requires_grad`` False); ``optimizer`` is ``"Adam"`` or ``"SGD"``
    (torch defaults otherwise, no momentum, no weight decay). ``loss_fn`` takes the copy and returns
    a scalar loss: the same data at every step makes the runs comparable step by step.
    Returns the unweighted losses and the head's parameters after each step (``HeadRun``).
    """
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {optimizer!r}")
    if weight <= 0 or lr <= 0 or steps < 1:
        raise ValueError(f"weight and lr must be positive and steps at least 1, got {weight}, {lr}, {steps}")
    trained = copy.deepcopy(model)
    head_module = trained.get_submodule(head)
    for parameter in trained.parameters():
        parameter.requires_grad_(False)
    head_parameters = list(head_module.parameters())
    for parameter in head_parameters:
        parameter.requires_grad_(True)
    optim_class = torch.optim.Adam if optimizer == "Adam" else torch.optim.SGD
    optim = optim_class(head_parameters, lr=lr)
    losses, params = [], [_flat(head_parameters)]
    for _ in range(steps):
        loss = loss_fn(trained)
        optim.zero_grad()
        (weight * loss).backward()
        optim.step()
        losses.append(loss.item())
        params.append(_flat(head_parameters))
    return HeadRun(losses=losses, params=torch.stack(params))


def curve_gap(a: HeadRun, b: HeadRun) -> float:
    """The largest difference between the two loss curves, as a share of how far ``a``'s loss fell.

    0 when the two runs follow the same curve; about 1 when they differ as much as ``a`` learned.
    """
    if len(a.losses) != len(b.losses):
        raise ValueError(f"runs of different lengths: {len(a.losses)} and {len(b.losses)} steps")
    gap = max(abs(x - y) for x, y in zip(a.losses, b.losses, strict=True))
    return gap / a.drop if a.drop > 0 else float("inf")


def gradient_norms(losses: Mapping[str, Tensor], parameters: Iterable[nn.Parameter]) -> dict[str, float]:
    """For each named scalar loss, the Euclidean norm of its gradient with respect to ``parameters``.

    Parameters that a loss does not reach count as zero. The graph is kept (``retain_graph``), so
    the losses can still be used afterwards; no ``.grad`` is written.
    """
    parameters = [p for p in parameters if p.requires_grad]
    if not parameters:
        raise ValueError("no parameter that requires a gradient")
    norms = {}
    for name, loss in losses.items():
        grads = torch.autograd.grad(loss, parameters, retain_graph=True, allow_unused=True)
        squares = [g.pow(2).sum() for g in grads if g is not None]
        norms[name] = torch.stack(squares).sum().sqrt().item() if squares else 0.0
    return norms
