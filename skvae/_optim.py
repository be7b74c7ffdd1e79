"""The optimizer and the weight average: AdamW without per-step bookkeeping, Polyak averaging.

``FusedAdamWStep`` runs torch's functional AdamW (the function ``AdamW.step`` calls itself)
on the optimizer's own state, which skips the per-call Python of ``step()``: the same
arithmetic, bitwise. ``WeightAverage`` keeps an exponential moving average of the weights
with torch's ``_foreach`` kernels. Both use torch functions outside its documented API;
each has a public-API fallback (``USE_PRIVATE_API = False``), which the tests force and
compare against. What the shortcuts buy is measured by ``benchmarks/bench_fit.py``.
"""

from __future__ import annotations

import contextlib

import torch
from torch import nn

try:  # the function AdamW.step runs; None where torch does not have it
    from torch.optim.adamw import adamw as _adamw
except ImportError:  # pragma: no cover
    _adamw = None

__all__ = ["FusedAdamWStep", "WeightAverage", "make_optimizer"]

#: False: use only torch's documented API (``optimizer.step()``, per-tensor ``lerp_`` and
#: ``copy_``). The tests set it to check the shortcuts against the public path.
USE_PRIVATE_API = True


def make_optimizer(
    module: nn.Module, networks: tuple[nn.Module, ...], lr: float, weight_decay: float = 0.0
) -> torch.optim.Optimizer:
    """AdamW, fused where the device supports it.

    Weight decay (decoupled, Loshchilov and Hutter 2019) applies to the weight matrices of
    ``networks`` only: not to biases, nor to the likelihood's own parameters (noise
    variances, dispersions), whose scale is the data's.
    """
    decayed = [p for net in networks for p in net.parameters() if p.ndim >= 2]
    ids = {id(p) for p in decayed}
    others = [p for p in module.parameters() if id(p) not in ids]
    groups = [
        {"params": decayed, "weight_decay": weight_decay},
        {"params": others, "weight_decay": 0.0},
    ]
    try:
        return torch.optim.AdamW(groups, lr=lr, fused=True)
    except (RuntimeError, ValueError):
        return torch.optim.AdamW(groups, lr=lr, foreach=True)


class FusedAdamWStep:
    """``optimizer.step()`` of a fused AdamW without its per-call Python bookkeeping.

    After the optimizer's own first step has made Adam's state, each step hands the same
    state tensors, the current gradients and each group's settings to
    ``torch.optim.adamw.adamw``. Anything else (a non-fused optimizer, a missing gradient,
    ``USE_PRIVATE_API = False``) goes through ``optimizer.step()``.
    """

    def __init__(self, optimizer: torch.optim.Optimizer) -> None:
        self.optimizer = optimizer
        self._groups: list[tuple] | None = None
        self.fast = (
            USE_PRIVATE_API
            and _adamw is not None
            and type(optimizer) is torch.optim.AdamW
            and all(
                group.get("fused") and not group.get("amsgrad") and not group.get("maximize")
                for group in optimizer.param_groups
            )
        )

    def zero_grad(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)

    def step(self) -> None:
        if self._groups is not None and self._step_directly():
            return
        self.optimizer.step()
        if self.fast and self._groups is None:
            self._groups = self._state_groups()

    def _step_directly(self) -> bool:
        grads = [[p.grad for p in group[0]] for group in self._groups]
        if any(g is None for gs in grads for g in gs):
            return False
        for (params, exp_avgs, exp_avg_sqs, steps, settings), gs in zip(
            self._groups, grads, strict=True
        ):
            beta1, beta2 = settings["betas"]
            _adamw(
                params, gs, exp_avgs, exp_avg_sqs, [], steps,
                fused=True, amsgrad=False, beta1=beta1, beta2=beta2, lr=settings["lr"],
                weight_decay=settings["weight_decay"], eps=settings["eps"], maximize=False,
            )  # fmt: skip
        return True

    def _state_groups(self) -> list[tuple] | None:
        state = self.optimizer.state
        groups = self.optimizer.param_groups
        if not all(p in state for g in groups for p in g["params"]):
            return None
        return [
            (
                list(g["params"]),
                [state[p]["exp_avg"] for p in g["params"]],
                [state[p]["exp_avg_sq"] for p in g["params"]],
                [state[p]["step"] for p in g["params"]],
                g,
            )
            for g in groups
        ]


def _lerp_(targets: list, sources: list, weight: float) -> None:
    if USE_PRIVATE_API:
        torch._foreach_lerp_(targets, sources, weight)
    else:
        for target, source in zip(targets, sources, strict=True):
            target.lerp_(source, weight)


def _copy_(targets: list, sources: list) -> None:
    if USE_PRIVATE_API:
        torch._foreach_copy_(targets, sources)
    else:
        for target, source in zip(targets, sources, strict=True):
            target.copy_(source)


class WeightAverage:
    """Exponential moving average of a module's weights (Polyak averaging).

    The averaged weights are what validation judges and what training returns: they
    average out the noise of the last steps of Adam. The horizon is ``horizon`` updates,
    and shorter at first, as TensorFlow's ExponentialMovingAverage with ``num_updates``
    does, so that early averages do not drag the initial weights along. ``every``: the
    average takes every this-many-th step's weights, as SWA samples its iterates, since
    each update reads and writes every weight and successive Adam iterates differ little.
    """

    def __init__(self, module: nn.Module, horizon: float, every: int = 1) -> None:
        self.params = list(module.parameters())
        # Detached views share storage with the parameters: made once, not every step.
        self._live = [p.detach() for p in self.params]
        self.average = [p.detach().clone() for p in self.params]
        self.decay = 1.0 - 1.0 / max(horizon / every, 1.0)
        self.every = every
        self.n_steps = 0
        self.n_updates = 0

    @torch.no_grad()
    def step(self) -> None:
        """Count a training step; every ``every``-th one updates the average."""
        self.n_steps += 1
        if self.n_steps % self.every:
            return
        self.n_updates += 1
        decay = min(self.decay, (1 + self.n_updates) / (10 + self.n_updates))
        _lerp_(self.average, self._live, 1.0 - decay)

    @contextlib.contextmanager
    def applied(self):
        """Swap the averaged weights into the module for the duration of the block."""
        with torch.no_grad():
            current = [p.detach().clone() for p in self.params]
            _copy_(self.params, self.average)
        try:
            yield
        finally:
            with torch.no_grad():
                _copy_(self.params, current)

    @torch.no_grad()
    def copy_to_module(self) -> None:
        """Make the averaged weights the module's."""
        _copy_(self.params, self.average)
