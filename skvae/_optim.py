"""The optimizer and the weight average over flat buffers: one update for all the weights.

``AdamW`` keeps each parameter group's weights, gradients and Adam moments in one flat
buffer each; the module's parameters and their gradients become views of those buffers.
A step is then one fused update per group (torch's ``_fused_adamw_`` kernel where it
runs, else the same arithmetic in public tensor ops), whatever the number of tensors, and
a gradient computed by hand can be written straight into its place. ``WeightAverage``
averages the same flat buffers. ``AdamW`` has the interface of ``torch.optim.AdamW`` that
skvae and its users touch (``param_groups``, ``state``, ``state_dict``, ``step``,
``zero_grad``) but is not a ``torch.optim.Optimizer``: building the first of those in a
process imports ``torch._dynamo``, which costs more than a small fit.
"""

from __future__ import annotations

import contextlib
import copy
import math
from collections.abc import Iterable, Sequence

import torch
from torch import Tensor, nn

__all__ = ["AdamW", "WeightAverage", "make_optimizer"]

#: False: use only torch's documented API (no ``_fused_adamw_``). The tests set it to
#: check the fused update against the public one.
USE_PRIVATE_API = True

_FUSED_RUNS: dict[tuple, bool] = {}
_BUFFERS = ("data", "grad", "exp_avg", "exp_avg_sq")


def _fused_runs(buffer: Tensor) -> bool:
    """Whether torch's fused AdamW kernel runs on tensors like ``buffer`` (cached)."""
    key = (buffer.device.type, buffer.dtype)
    if key not in _FUSED_RUNS:
        ok = hasattr(torch, "_fused_adamw_")
        if ok:
            probe = [torch.zeros(2, dtype=buffer.dtype, device=buffer.device) for _ in range(4)]
            step = torch.ones((), dtype=torch.float32, device=buffer.device)
            try:
                torch._fused_adamw_(*([t] for t in probe), [], [step], **_settings(1e-3, 0.0))
            except (RuntimeError, NotImplementedError, TypeError):
                ok = False
        _FUSED_RUNS[key] = ok
    return _FUSED_RUNS[key]


def _settings(lr, weight_decay, betas=(0.9, 0.999), eps=1e-8) -> dict:
    return dict(
        lr=lr, beta1=betas[0], beta2=betas[1], weight_decay=weight_decay, eps=eps,
        amsgrad=False, maximize=False,
    )  # fmt: skip


#: Each parameter starts this many elements into its buffer: 64 bytes in float32, so that
#: the matrix kernels see the alignment (and give the results) of a tensor of its own.
ALIGN = 16


def _offsets(params: Sequence[Tensor]) -> list[int]:
    """Where each parameter starts in a flat buffer, and (last) the buffer's length."""
    offsets = [0]
    for p in params:
        offsets.append(offsets[-1] + -(-p.numel() // ALIGN) * ALIGN)
    return offsets


def flatten_(params: Sequence[nn.Parameter]) -> tuple[Tensor, Tensor]:
    """One buffer of ``params``' values and one of their gradients; ``params`` become views.

    Each parameter's data and ``.grad`` are views of the buffers from then on, so that an
    update of a buffer updates the parameters, and autograd adds gradients into place. The
    padding between parameters stays 0 (no gradient, no decay moves it).
    """
    reference = params[0]
    offsets = _offsets(params)
    data = torch.zeros(offsets[-1], dtype=reference.dtype, device=reference.device)
    grad = torch.zeros_like(data)
    with torch.no_grad():
        for p, start in zip(params, offsets, strict=False):
            view = data[start : start + p.numel()].view_as(p)
            view.copy_(p.detach())
            p.data = view
            p.grad = grad[start : start + p.numel()].view_as(p)
    return data, grad


class _Group:
    """A parameter group's flat buffers: weights, gradients and the two Adam moments."""

    def __init__(self, params: list[nn.Parameter]) -> None:
        self.params = params
        if params:
            self.data, self.grad = flatten_(params)
        else:
            self.data = self.grad = torch.zeros(0)
        self.exp_avg = torch.zeros_like(self.data)
        self.exp_avg_sq = torch.zeros_like(self.data)

    def rebind(self, data: Tensor, grad: Tensor, exp_avg: Tensor, exp_avg_sq: Tensor) -> None:
        """Move the group to other buffers of the same values (views of a stack, or copies)."""
        self.data, self.grad, self.exp_avg, self.exp_avg_sq = data, grad, exp_avg, exp_avg_sq
        for p, start in zip(self.params, _offsets(self.params), strict=False):
            p.data = data[start : start + p.numel()].view_as(p)
            p.grad = grad[start : start + p.numel()].view_as(p)

    def views(self, buffer: Tensor) -> list[Tensor]:
        """``buffer`` cut into tensors of the shapes of the group's parameters."""
        starts = _offsets(self.params)
        pairs = zip(self.params, starts, strict=False)
        return [buffer[s : s + p.numel()].view_as(p) for p, s in pairs]


class AdamW:
    """AdamW (decoupled weight decay, Loshchilov and Hutter 2019) over flat buffers.

    Parameters
    ----------
    groups : list of dict
        Each ``{"params": [...], "weight_decay": float}``; a parameter in one group only.
    lr : float
        The step size of every group (``param_groups[i]["lr"]`` may change it later).
    betas, eps : Adam's settings, torch's defaults.

    Every parameter is updated at every step: one without a gradient sees zeros.
    """

    def __init__(
        self,
        groups: Iterable[dict],
        lr: float,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ) -> None:
        self._groups: list[_Group] = []
        self.param_groups: list[dict] = []
        for group in groups:
            params = list(group["params"])
            self._groups.append(_Group(params))
            settings = {"lr": lr, "betas": betas, "eps": eps, "weight_decay": 0.0}
            settings.update({k: v for k, v in group.items() if k != "params"})
            self.param_groups.append({"params": params, **settings})
        self.n_steps = 0
        self._step = None  # the step count as the fused kernel reads it
        self._fused = None

    @property
    def buffers(self) -> list[Tensor]:
        """The flat weight buffers, one per group."""
        return [group.data for group in self._groups]

    @classmethod
    def stack(cls, optimizers: Sequence[AdamW]) -> AdamW:
        """One optimizer whose buffers stack the members', (n_members, length) per group.

        The members' parameters and buffers become rows of the stack, so that one update
        of the stack is the update each member would make (Adam is elementwise): several
        models of one architecture train in one computation. ``unstack`` gives each member
        buffers of its own again.
        """
        first = optimizers[0]
        stacked = cls([], lr=first.param_groups[0]["lr"])
        for index, settings in enumerate(first.param_groups):
            members = [opt._groups[index] for opt in optimizers]
            group = _Group([])
            buffers = [torch.stack([getattr(m, key) for m in members]) for key in _BUFFERS]
            group.data, group.grad, group.exp_avg, group.exp_avg_sq = buffers
            for row, member in enumerate(members):
                member.rebind(*(buffer[row] for buffer in buffers))
            stacked._groups.append(group)
            stacked.param_groups.append({**settings, "params": []})
        stacked.n_steps = first.n_steps
        return stacked

    def unstack(self) -> None:
        """Give each group buffers of its own (copies of the rows of a stack it was in)."""
        for group in self._groups:
            group.rebind(*(getattr(group, key).clone() for key in _BUFFERS))

    @property
    def state(self) -> dict:
        """Each parameter's step count and moments (views), as ``torch.optim``'s ``state``."""
        state = {}
        for group in self._groups:
            step = torch.tensor(float(self.n_steps))
            moments = zip(group.views(group.exp_avg), group.views(group.exp_avg_sq), strict=True)
            for p, (m, v) in zip(group.params, moments, strict=True):
                state[p] = {"step": step, "exp_avg": m, "exp_avg_sq": v}
        return state

    def zero_grad(self) -> None:
        for group in self._groups:
            group.grad.zero_()

    def step(self) -> None:
        # The flat buffers are plain tensors (the parameters are views): no autograd here.
        self.n_steps += 1
        live = [
            (group, settings)
            for group, settings in zip(self._groups, self.param_groups, strict=True)
            if group.data.numel()
        ]
        if not live:
            return
        if self._fused is None:
            self._fused = USE_PRIVATE_API and _fused_runs(live[0][0].data)
        if not self._fused:
            for group, settings in live:
                self._update(group, settings)
            return
        if self._step is None or self._step.device != live[0][0].data.device:
            self._step = torch.zeros((), dtype=torch.float32, device=live[0][0].data.device)
        self._step.fill_(self.n_steps)
        # Groups with the same settings share one call of the fused kernel.
        by_settings: dict[tuple, list[_Group]] = {}
        for group, settings in live:
            key = (settings["lr"], settings["weight_decay"], *settings["betas"], settings["eps"])
            by_settings.setdefault(key, []).append(group)
        for (lr, weight_decay, beta1, beta2, eps), groups in by_settings.items():
            buffers = [[getattr(g, k) for g in groups] for k in _BUFFERS]
            steps = [self._step] * len(groups)
            settings = _settings(lr, weight_decay, (beta1, beta2), eps)
            torch._fused_adamw_(*buffers, [], steps, **settings)

    def _update(self, group: _Group, settings: dict) -> None:
        """The AdamW update of one group in public tensor operations."""
        beta1, beta2 = settings["betas"]
        lr, t = settings["lr"], self.n_steps
        group.data.mul_(1.0 - lr * settings["weight_decay"])
        group.exp_avg.lerp_(group.grad, 1.0 - beta1)
        group.exp_avg_sq.mul_(beta2).addcmul_(group.grad, group.grad, value=1.0 - beta2)
        denom = (group.exp_avg_sq.sqrt() / math.sqrt(1.0 - beta2**t)).add_(settings["eps"])
        group.data.addcdiv_(group.exp_avg, denom, value=-lr / (1.0 - beta1**t))

    def state_dict(self) -> dict:
        """The step count, each group's settings and its moments (flat, not copies)."""
        groups = []
        for group, settings in zip(self._groups, self.param_groups, strict=True):
            kept = {k: v for k, v in settings.items() if k != "params"}
            groups.append({**kept, "exp_avg": group.exp_avg, "exp_avg_sq": group.exp_avg_sq})
        return {"n_steps": self.n_steps, "param_groups": groups}

    @torch.no_grad()
    def load_state_dict(self, state: dict) -> None:
        """Settings and moments from ``state_dict()`` (or a ``torch.optim.AdamW``'s)."""
        if "state" in state:  # torch.optim's form: per-parameter moments, by position
            state = _from_torch(state)
        if len(state["param_groups"]) != len(self._groups):
            raise ValueError("The saved optimizer has another number of parameter groups.")
        for group, settings, saved in zip(
            self._groups, self.param_groups, state["param_groups"], strict=True
        ):
            for key in ("exp_avg", "exp_avg_sq"):
                getattr(group, key).copy_(torch.as_tensor(saved[key]).reshape(-1))
            settings.update({k: v for k, v in saved.items() if k not in ("exp_avg", "exp_avg_sq")})
            settings["betas"] = tuple(settings["betas"])
        self.n_steps = int(state["n_steps"])


def _from_torch(state: dict) -> dict:
    """A ``torch.optim.AdamW`` state dict in ``AdamW.load_state_dict``'s form."""
    per_param = state["state"]
    groups, steps = [], [0]
    for group in state["param_groups"]:
        kept = {k: v for k, v in group.items() if k in ("lr", "betas", "eps", "weight_decay")}
        moments = {}
        for key in ("exp_avg", "exp_avg_sq"):
            pieces = [torch.as_tensor(per_param[i][key]) for i in group["params"]]
            flat = torch.zeros(_offsets(pieces)[-1])
            for piece, start in zip(pieces, _offsets(pieces), strict=False):
                flat[start : start + piece.numel()] = piece.reshape(-1)
            moments[key] = flat
        steps += [int(per_param[i]["step"]) for i in group["params"]]
        groups.append({**kept, **moments})
    return {"n_steps": max(steps), "param_groups": groups}


def make_optimizer(
    module: nn.Module, networks: tuple[nn.Module, ...], lr: float, weight_decay: float = 0.0
) -> AdamW:
    """AdamW over all of ``module``'s parameters, its weights in flat buffers.

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
    return AdamW(groups, lr=lr)


class WeightAverage:
    """Exponential moving average of the optimizer's flat weight buffers (Polyak averaging).

    The averaged weights are what validation judges and what training returns: they
    average out the noise of the last steps of Adam. The horizon is ``horizon`` updates,
    and shorter at first, as TensorFlow's ExponentialMovingAverage with ``num_updates``
    does, so that early averages do not drag the initial weights along. ``every``: the
    average takes every this-many-th step's weights, as SWA samples its iterates, since
    each update reads and writes every weight and successive Adam iterates differ little.
    """

    def __init__(self, buffers: Sequence[Tensor], horizon: float, every: int = 1) -> None:
        self.buffers = [b for b in buffers if b.numel()]
        self.average = [b.detach().clone() for b in self.buffers]
        self.decay = 1.0 - 1.0 / max(horizon / every, 1.0)
        self.every = every
        self.n_steps = 0
        self.n_updates = 0

    def row(self, index: int) -> WeightAverage:
        """The average of row ``index`` of stacked buffers: views that this one updates."""
        view = copy.copy(self)
        view.buffers = [b[index] for b in self.buffers]
        view.average = [a[index] for a in self.average]
        return view

    def step(self) -> None:
        """Count a training step; every ``every``-th one updates the average."""
        self.n_steps += 1
        if self.n_steps % self.every:
            return
        self.n_updates += 1
        decay = min(self.decay, (1 + self.n_updates) / (10 + self.n_updates))
        for average, buffer in zip(self.average, self.buffers, strict=True):
            average.lerp_(buffer, 1.0 - decay)

    @contextlib.contextmanager
    def applied(self):
        """Swap the averaged weights into the module for the duration of the block."""
        with torch.no_grad():
            current = [b.clone() for b in self.buffers]
            self.copy_to_module()
        try:
            yield
        finally:
            with torch.no_grad():
                for buffer, saved in zip(self.buffers, current, strict=True):
                    buffer.copy_(saved)

    @torch.no_grad()
    def copy_to_module(self) -> None:
        """Make the averaged weights the module's."""
        for buffer, average in zip(self.buffers, self.average, strict=True):
            buffer.copy_(average)
