"""Observation models p(x | z): one torch head per family, and a name -> class registry.

A family's torch side is here: the decoder outputs it needs, what the encoder sees of its
columns, its log-probability, mean and sampler. Its data side (the domain check, what it
learns from X before training, the scaling of X) is its ``domain`` (see ``_family_data``).
Adding a family is one subclass of ``Likelihood`` and ``register_likelihood``. ``Mixed``
puts several families side by side, each on its own columns.

The base class and the helpers the families share are in ``_likelihood_base``, the count
families in ``_count_likelihoods``, Student's t in ``_student_t`` and the log- and
logit-normal in ``_transformed_normal``; every name of ``__all__`` is importable from here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ._count_likelihoods import (
    Multinomial,
    NegativeBinomial,
    Poisson,
    ZeroInflatedNegativeBinomial,
)
from ._family_data import Codes, NonNegative, Real, UnitInterval
from ._likelihood_base import LIKELIHOODS, Likelihood, _accumulate, _masked_sum, _noise, _weighted
from ._student_t import StudentT
from ._transformed_normal import LogitNormal, LogNormal

__all__ = [
    "LIKELIHOODS",
    "VAR_SMOOTHING",
    "Bernoulli",
    "Categorical",
    "ContinuousBernoulli",
    "Gaussian",
    "HurdleLogNormal",
    "Likelihood",
    "LogNormal",
    "LogitNormal",
    "Mixed",
    "Multinomial",
    "NegativeBinomial",
    "ZeroInflatedNegativeBinomial",
    "Poisson",
    "StudentT",
    "build_likelihood",
    "likelihood_class",
    "prepare_likelihood",
    "register_likelihood",
]

#: Floor on a Gaussian noise variance, relative to the largest variance of a feature, as
#: GaussianNB's ``var_smoothing`` is. A near-constant feature would otherwise get a tiny
#: noise variance, which one new row outside its training values turns into a score of
#: thousands of nats below the others (the pixels of examples/demo_digits.py).
VAR_SMOOTHING = 1e-3
MAX_RELATIVE_FLOOR = 1e6

_LOG_2PI = math.log(2.0 * math.pi)


class Gaussian(Likelihood):
    """Gaussian noise around the decoder mean with learned, z-independent variances.

    ``covariance_type="diag"`` learns one variance per feature (factor analysis when the
    decoder is linear); ``"spherical"`` one shared variance (probabilistic PCA). Training
    sees standardised data (per feature for "diag", one global scale for "spherical", so
    that the model family is unchanged); variances have the floor ``VAR_SMOOTHING`` times
    the largest feature variance, the same floor in the units of X for every feature, as
    for pixels or expression levels. With the setting ``floor="own"`` (the columns of a
    data frame, each in units of its own) the floor is ``VAR_SMOOTHING`` times each
    feature's own variance.
    """

    name = "gaussian"
    domain = Real
    options = ("covariance_type",)

    def __init__(self, n_features: int, covariance_type: str = "diag", **settings: Any) -> None:
        super().__init__(n_features, covariance_type=covariance_type, **settings)
        self.covariance_type = covariance_type
        n_var = n_features if covariance_type == "diag" else 1
        self.log_var = nn.Parameter(torch.zeros(n_var))
        # In the standardised units of each feature; rebuilt from the scale, not saved.
        # Columns in units of their own (a data frame's): each floor relative to its own.
        shared = n_var > 1 and settings.get("floor", "shared") == "shared"
        relative = (self.scale.max() / self.scale) ** 2 if shared else np.ones(n_var)
        # Bounded so that features 1e30 apart in scale keep finite float32 variances.
        relative = np.minimum(relative, MAX_RELATIVE_FLOOR)
        relative = torch.as_tensor(relative, dtype=self.log_var.dtype)
        self.register_buffer("relative_floor", relative, persistent=False)

    @property
    def variance(self) -> Tensor:
        """Noise variances in the units of the standardised data."""
        return VAR_SMOOTHING * self.relative_floor + self.log_var.exp()

    def log_prob(self, x: Tensor, out: Tensor, mask: Tensor | None = None) -> Tensor:
        var = self.variance
        if mask is not None:
            elements = (x - out) ** 2 / var + var.log() + _LOG_2PI
            return -0.5 * (elements * mask).sum(-1)
        sq = ((x - out) ** 2 / var).sum(-1)
        return -0.5 * (sq + self._log_norm(var) + self.n_features * _LOG_2PI)

    def _log_norm(self, var: Tensor) -> Tensor:
        """Sum of the log-variances over the features: a constant per model, added once.

        Variances of several models stacked as (models, 1, n_var) give one per model.
        """
        log_var = var.log()
        if self.covariance_type == "diag":
            return log_var.sum(-1)
        return log_var[..., 0] * self.n_features

    def _log_prob_grad(self, x, out, mask, scale) -> tuple[Tensor, Tensor]:
        exp_log_var = self.log_var.exp()
        var = VAR_SMOOTHING * self.relative_floor + exp_log_var
        inv = var.reciprocal()
        grad_out = (x - out).mul_(inv)  # d log p / d out = (x - out) / var
        sq = grad_out * grad_out * var  # (x - out)^2 / var
        if mask is None:
            constant = self._log_norm(var) + self.n_features * _LOG_2PI
            log_p = sq.sum(-1).add_(constant).mul_(-0.5)
            excess = sq.sub_(1.0)
        else:
            sq = sq.mul_(mask)
            log_p = (sq + (var.log() + _LOG_2PI) * mask).sum(-1).mul_(-0.5)
            excess = sq.sub_(mask)
        # d log p / d var = (sq - 1) / (2 var), and d var / d log_var = exp(log_var); the
        # rows are the second-to-last axis (the last but one of stacked models' too).
        if isinstance(scale, Tensor):
            per_var = (excess * scale).sum(-2, keepdim=True)
        else:
            per_var = excess.sum(-2, keepdim=True).mul_(scale)
        if self.covariance_type != "diag":
            per_var = per_var.sum(-1, keepdim=True)
        _accumulate(self.log_var, per_var.mul_(inv).mul_(0.5 * exp_log_var))
        return log_p, _weighted(grad_out, mask, scale)

    def mean(self, out: Tensor) -> Tensor:
        return out

    def sample(self, out: Tensor, generator: torch.Generator) -> Tensor:
        return out + self.variance.sqrt() * _noise(out.shape, out, generator, "normal")

    def variances(self) -> Tensor:
        return self.variance.expand(self.n_features)


class Bernoulli(Likelihood):
    """Independent Bernoulli outputs with probabilities sigmoid(decoder output).

    The log-probability is a true log-likelihood only for binary data; for other values in
    [0, 1] it is the cross-entropy, which is not a normalised density (see
    ``"continuous_bernoulli"``).
    """

    name = "bernoulli"
    domain = UnitInterval

    def log_prob(self, x: Tensor, out: Tensor, mask: Tensor | None = None) -> Tensor:
        return -_masked_sum(F.binary_cross_entropy_with_logits(out, x, reduction="none"), mask)

    def _log_prob_grad(self, x, out, mask, scale) -> tuple[Tensor, Tensor]:
        return self.log_prob(x, out, mask), _weighted(x - torch.sigmoid(out), mask, scale)

    def mean(self, out: Tensor) -> Tensor:
        return torch.sigmoid(out)

    def sample(self, out: Tensor, generator: torch.Generator) -> Tensor:
        u = _noise(out.shape, out, generator, "uniform")
        return (u < torch.sigmoid(out)).to(out.dtype)


# Below this |logit| the closed forms of the continuous Bernoulli lose precision (they
# divide by tanh(l/2) ~ l/2): use their Taylor series in l instead.
_CB_TAYLOR = 1e-2


class ContinuousBernoulli(Likelihood):
    """The continuous Bernoulli density on [0, 1] (Loaiza-Ganem and Cunningham, 2019).

    p(x | lambda) = C(lambda) lambda^x (1 - lambda)^(1 - x), a normalised density, with
    lambda = sigmoid(l) for decoder output l. In terms of l the normaliser is
    C = l / tanh(l / 2), which is stable everywhere; near l = 0 (lambda = 0.5) a Taylor
    series replaces the 0/0.
    """

    name = "continuous_bernoulli"
    domain = UnitInterval

    @staticmethod
    def _log_norm(logits: Tensor, with_derivative: bool = False):
        """log C(l), and with ``with_derivative`` also d log C / dl = 1 / l - 1 / sinh(l)
        (1 / sinh(l) = (1 - t^2) / (2 t) for t = tanh(l / 2)), or their Taylor series."""
        small = logits.abs() < _CB_TAYLOR
        safe = torch.where(small, torch.ones_like(logits), logits)
        t = torch.tanh(safe / 2)
        l2 = logits * logits
        log_norm = torch.where(small, math.log(2.0) + l2 / 12 - l2 * l2 / 1440, (safe / t).log())
        if not with_derivative:
            return log_norm
        exact = safe.reciprocal() - (1 - t * t) / (2 * t)
        return log_norm, torch.where(small, logits / 6 - logits * l2 / 360, exact)

    def log_prob(self, x: Tensor, out: Tensor, mask: Tensor | None = None) -> Tensor:
        # x log sigmoid(l) + (1 - x) log sigmoid(-l) = x l + log sigmoid(-l).
        return _masked_sum(x * out + F.logsigmoid(-out) + self._log_norm(out), mask)

    def _log_prob_grad(self, x, out, mask, scale) -> tuple[Tensor, Tensor]:
        log_norm, d_log_norm = self._log_norm(out, with_derivative=True)
        log_p = _masked_sum(x * out + F.logsigmoid(-out) + log_norm, mask)
        grad = x - torch.sigmoid(out) + d_log_norm
        return log_p, _weighted(grad, mask, scale)

    def mean(self, out: Tensor) -> Tensor:
        small = out.abs() < _CB_TAYLOR
        safe = torch.where(small, torch.ones_like(out), out)
        exact = torch.sigmoid(safe) / torch.tanh(safe / 2) - 1 / safe
        taylor = 0.5 + out / 12 - out**3 / 720
        return torch.where(small, taylor, exact)

    def sample(self, out: Tensor, generator: torch.Generator) -> Tensor:
        # Inverse CDF: x = log1p(u * expm1(l)) / l, written so that large |l| cannot overflow.
        u = _noise(out.shape, out, generator, "uniform")
        small = out.abs() < _CB_TAYLOR
        safe = torch.where(small, torch.ones_like(out), out)
        pos = 1 + torch.log(u + (1 - u) * torch.exp(-safe.clamp(min=0))) / safe
        neg = torch.log1p(u * torch.expm1(safe.clamp(max=0))) / safe
        x = torch.where(safe > 0, pos, neg)
        return torch.where(small, u, x).clamp(0, 1)


class Categorical(Likelihood):
    """One categorical variable per column, its categories any numbers.

    The categories of each column are learned in fit (its distinct values, ``values``);
    the model works with their positions, the codes 0, 1, ..., n_categories - 1. The
    decoder outputs one softmax per column, and the encoder sees the columns one-hot.
    ``mean`` and ``sample`` give category values; ``mean`` is the most probable category
    (the mean of categories has no meaning).
    """

    name = "categorical"
    domain = Codes
    discrete = True

    def __init__(self, n_features: int, **settings: Any) -> None:
        super().__init__(n_features, **settings)
        self.n_categories = [int(k) for k in settings["n_categories"]]
        offsets = np.concatenate([[0], np.cumsum(self.n_categories)])
        self.register_buffer("_offsets", torch.as_tensor(offsets[:-1]), persistent=False)
        # Index of each output's column, to spread one-hot codes and softmaxes.
        self._slices = [slice(a, b) for a, b in zip(offsets[:-1], offsets[1:], strict=True)]
        values = settings.get("values") or [list(range(k)) for k in self.n_categories]
        # Codes are the values minus the first when the categories are consecutive whole
        # numbers (0, 1, ... or a scale 1 to 7): no lookup.
        self._consecutive = all(
            list(v) == [v[0] + k for k in range(len(v))] and float(v[0]).is_integer()
            for v in values
        )
        firsts = [float(v[0]) if len(v) else 0.0 for v in values]
        self.register_buffer("_firsts", torch.as_tensor(firsts, dtype=torch.float64), False)
        tops = torch.as_tensor(self.n_categories, dtype=torch.long) - 1
        self.register_buffer("_tops", tops, persistent=False)
        table = np.zeros((n_features, max(self.n_categories, default=1)))
        for j, column in enumerate(values):
            table[j, : len(column)] = column
            table[j, len(column) :] = np.inf  # sorted rows, for searchsorted
        self.register_buffer("_values", torch.as_tensor(table), persistent=False)
        # The outputs as a (column, category) grid padded with an extra -inf output, so
        # that every column's softmax is one operation; and the grid's real cells, flat.
        width = table.shape[1]
        grid = np.full((n_features, width), sum(self.n_categories))
        for j, (start, k) in enumerate(zip(offsets[:-1], self.n_categories, strict=True)):
            grid[j, :k] = np.arange(start, start + k)
        self.register_buffer("_grid", torch.as_tensor(grid), persistent=False)
        cells = np.flatnonzero(np.arange(width) < np.array(self.n_categories)[:, None])
        self.register_buffer("_cells", torch.as_tensor(cells), persistent=False)

    @property
    def n_outputs(self) -> int:
        return sum(self.n_categories)

    @property
    def n_inputs(self) -> int:
        return sum(self.n_categories)

    def codes(self, x: Tensor) -> Tensor:
        """Each value's position among its column's categories (a missing entry's is 0)."""
        if self._consecutive:
            return (x - self._firsts.to(x.dtype)).long().clamp_(min=0).minimum(self._tops)
        flat = x.reshape(-1, self.n_features).T.contiguous()
        codes = torch.searchsorted(self._values.to(x.dtype), flat)
        return torch.minimum(codes, self._tops.unsqueeze(1)).T.reshape(x.shape)

    def values(self, codes: Tensor, like: Tensor) -> Tensor:
        """The category values at ``codes`` (positions), in ``like``'s dtype."""
        if self._consecutive:
            return codes.to(like.dtype) + self._firsts.to(like.dtype)
        table = self._values.to(like.dtype).expand(*codes.shape[:-1], *self._values.shape)
        return table.gather(-1, codes.unsqueeze(-1)).squeeze(-1)

    def encoder_input(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        codes = self.codes(x) + self._offsets
        one_hot = torch.zeros(*x.shape[:-1], self.n_outputs, dtype=x.dtype, device=x.device)
        if mask is None:
            return one_hot.scatter_(-1, codes, 1.0)
        # A missing column is all zeros: no category is switched on.
        return one_hot.scatter_(-1, codes, mask.to(x.dtype))

    def _log_softmax(self, out: Tensor) -> list[Tensor]:
        return [F.log_softmax(out[..., s], dim=-1) for s in self._slices]

    def _grid_softmax(self, out: Tensor) -> tuple[Tensor, Tensor]:
        """Each column's log-softmax and softmax on the (column, category) grid, -inf and 0
        off its categories (written out: log_softmax is slow on a short last axis)."""
        pad = out.new_full((*out.shape[:-1], 1), -math.inf)
        grid = torch.cat([out, pad], dim=-1)[..., self._grid]
        shifted = grid - grid.amax(-1, keepdim=True)
        e = shifted.exp()
        total = e.sum(-1, keepdim=True)
        return shifted - total.log(), e / total

    def _log_prob_codes(self, codes: Tensor, log_p: Tensor, mask: Tensor | None) -> Tensor:
        return _masked_sum(log_p.gather(-1, codes.unsqueeze(-1)).squeeze(-1), mask)

    def log_prob(self, x: Tensor, out: Tensor, mask: Tensor | None = None) -> Tensor:
        return self._log_prob_codes(self.codes(x), self._grid_softmax(out)[0], mask)

    def _log_prob_grad(self, x, out, mask, scale) -> tuple[Tensor, Tensor]:
        # One-hot codes minus the softmax, on the grid, then back to the outputs.
        codes, (log_p, p) = self.codes(x), self._grid_softmax(out)
        index = codes.unsqueeze(-1)
        grad = p.neg_().scatter_add_(-1, index, p.new_ones(index.shape))
        if mask is not None:
            grad = grad.mul_(mask.unsqueeze(-1))
        grad = grad.flatten(-2)[..., self._cells].mul_(scale)
        return self._log_prob_codes(codes, log_p, mask), grad

    def mean(self, out: Tensor) -> Tensor:
        modes = [out[..., s].argmax(-1) for s in self._slices]
        return self.values(torch.stack(modes, dim=-1), out)

    def weighted_mean(self, out: Tensor, weights: Tensor) -> Tensor:
        # The most probable category of the mixture, as ``mean`` is for one component.
        modes = [
            (weights.unsqueeze(-1) * log_p.exp()).sum(1).argmax(-1)
            for log_p in self._log_softmax(out)
        ]
        return self.values(torch.stack(modes, dim=-1), out)

    def sample(self, out: Tensor, generator: torch.Generator) -> Tensor:
        draws = []
        for log_p in self._log_softmax(out):
            # Gumbel-max: argmax(log p + Gumbel noise) is a draw from the softmax.
            u = _noise(log_p.shape, log_p, generator, "uniform").clamp_min(1e-30)
            draws.append((log_p - torch.log(-torch.log(u))).argmax(-1))
        return self.values(torch.stack(draws, dim=-1), out)


class HurdleLogNormal(Likelihood):
    """Non-negative values with a share of exact zeros: a hurdle on a log-normal.

    x = 0 with probability 1 - pi, else log x ~ N(m, s^2): the decoder gives the logit of
    pi, m and log s^2 per feature (3 outputs per feature), in units of each column's
    standardised log (``NonNegative`` learns them). The density of a positive x includes
    the 1 / x of the change from log x to x, so that ``score_samples`` is a likelihood of
    x: a probability for zeros, a density for the rest. The encoder sees, per column,
    whether x is positive and its standardised log. The mean is pi exp(m + s^2 / 2).
    """

    name = "hurdle_lognormal"
    domain = NonNegative

    def __init__(self, n_features: int, **settings: Any) -> None:
        super().__init__(n_features, **settings)
        loc = settings.get("log_loc", [0.0] * n_features)
        scale = settings.get("log_scale", [1.0] * n_features)
        self.register_buffer("_log_loc", torch.as_tensor(loc, dtype=torch.float64), False)
        self.register_buffer("_log_scale", torch.as_tensor(scale, dtype=torch.float64), False)

    @property
    def n_outputs(self) -> int:
        return 3 * self.n_features

    @property
    def n_inputs(self) -> int:
        return 2 * self.n_features

    def _parts(self, out: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Logit of pi, and the mean and log-variance of log x, in the column's log units."""
        p = self.n_features
        loc, scale = self._log_loc.to(out.dtype), self._log_scale.to(out.dtype)
        # Floor of the spread: 1e-3 of the column's, as the Gaussian's noise floor is relative.
        log_var = out[..., 2 * p :].clamp(min=math.log(1e-6), max=math.log(1e6))
        return out[..., :p], loc + scale * out[..., p : 2 * p], log_var + 2 * scale.log()

    def _standard_log(self, x: Tensor) -> tuple[Tensor, Tensor]:
        positive = x > 0
        log_x = torch.log(torch.where(positive, x, torch.ones_like(x)))
        return positive, log_x

    def encoder_input(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        positive, log_x = self._standard_log(x)
        loc, scale = self._log_loc.to(x.dtype), self._log_scale.to(x.dtype)
        standard = torch.where(positive, (log_x - loc) / scale, torch.zeros_like(x))
        flags = positive.to(x.dtype)
        if mask is not None:
            flags, standard = flags * mask, standard * mask
        return torch.cat([flags, standard], dim=-1)

    def _terms(self, x: Tensor, out: Tensor, mask: Tensor | None):
        """log_prob per row, and what its gradient reuses: the parts, the positive entries,
        log x and (log x - m) / s^2."""
        logit, m, log_var = self._parts(out)
        positive, log_x = self._standard_log(x)
        scaled = (log_x - m) * torch.exp(-log_var)
        log_density = -0.5 * ((log_x - m) * scaled + log_var + _LOG_2PI)
        log_positive = F.logsigmoid(logit) + log_density - log_x
        log_p = _masked_sum(torch.where(positive, log_positive, F.logsigmoid(-logit)), mask)
        return log_p, logit, m, positive, log_x, scaled

    def log_prob(self, x: Tensor, out: Tensor, mask: Tensor | None = None) -> Tensor:
        return self._terms(x, out, mask)[0]

    def _log_prob_grad(self, x, out, mask, scale) -> tuple[Tensor, Tensor]:
        log_p, logit, m, positive, log_x, scaled = self._terms(x, out, mask)
        flags = positive.to(out.dtype)
        p = self.n_features
        # The clamp of the log-variance passes no gradient outside its bounds.
        inside = (out[..., 2 * p :] >= math.log(1e-6)) & (out[..., 2 * p :] <= math.log(1e6))
        grad = torch.cat(
            [
                flags - torch.sigmoid(logit),
                flags * scaled * self._log_scale.to(out.dtype),
                flags * inside * 0.5 * (scaled * (log_x - m) - 1.0),
            ],
            dim=-1,
        )
        per_output = None if mask is None else torch.cat([mask] * 3, dim=-1)
        return log_p, _weighted(grad, per_output, scale)

    def mean(self, out: Tensor) -> Tensor:
        logit, m, log_var = self._parts(out)
        # Capped where exp would overflow float32: such a mean is beyond any data anyway.
        return torch.sigmoid(logit) * torch.exp((m + 0.5 * log_var.exp()).clamp(max=80.0))

    def sample(self, out: Tensor, generator: torch.Generator) -> Tensor:
        logit, m, log_var = self._parts(out)
        eps = _noise(m.shape, m, generator, "normal")
        u = _noise(logit.shape, logit, generator, "uniform")
        positive = torch.exp((m + (0.5 * log_var).exp() * eps).clamp(max=80.0))
        return torch.where(u < torch.sigmoid(logit), positive, torch.zeros_like(positive))


class Mixed(Likelihood):
    """Several families side by side, each modelling its own columns.

    ``parts`` is a list of ``{"name": family, "columns": [indices], **settings}``; every
    column belongs to exactly one part. The log-probability is the sum of the parts'.
    """

    name = "mixed"

    def __init__(self, n_features: int, parts: Sequence[dict] = (), **settings: Any) -> None:
        super().__init__(n_features, parts=[dict(p) for p in parts], **settings)
        self.parts = nn.ModuleList()
        self.columns: list[list[int]] = []
        self._outputs: list[slice] = []
        start = 0
        for family, columns, part in self._split(None, parts):
            # Each part knows its columns' scale (the Gaussian noise floor is relative to it).
            family = family(len(columns), **part, scale=self.scale[columns])
            self.parts.append(family)
            self.columns.append(columns)
            self._outputs.append(slice(start, start + family.n_outputs))
            start += family.n_outputs
        # The columns in the parts' order, so that a part's columns are a slice of them.
        order = [j for columns in self.columns for j in columns]
        self._identity_order = order == list(range(len(order)))
        self.register_buffer("_order", torch.as_tensor(order, dtype=torch.long), False)
        bounds = np.cumsum([0, *(len(c) for c in self.columns)])
        self._inputs = [slice(a, b) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]

    @property
    def n_outputs(self) -> int:
        return sum(p.n_outputs for p in self.parts)

    def _by_part(self, x: Tensor, mask: Tensor | None):
        """(part, its columns of x, of mask, its outputs' slice), reading x's columns once."""
        if not self._identity_order:
            x = x[..., self._order]
            mask = None if mask is None else mask[..., self._order]
        for p, i, o in zip(self.parts, self._inputs, self._outputs, strict=True):
            yield p, x[..., i], None if mask is None else mask[..., i], o

    @property
    def n_inputs(self) -> int:
        return sum(p.n_inputs for p in self.parts)

    def encoder_input(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        return torch.cat([p.encoder_input(xp, mp) for p, xp, mp, _ in self._by_part(x, mask)], -1)

    def _each(self):
        return zip(self.parts, self.columns, self._outputs, strict=True)

    def log_prob(self, x: Tensor, out: Tensor, mask: Tensor | None = None) -> Tensor:
        return sum(p.log_prob(xp, out[..., o], mp) for p, xp, mp, o in self._by_part(x, mask))

    def _log_prob_grad(self, x, out, mask, scale) -> tuple[Tensor, Tensor]:
        log_ps, grads = [], []
        for p, xp, mp, o in self._by_part(x, mask):
            part_log_p, part_grad = p.log_prob_grad(xp, out[..., o], mp, scale)
            log_ps.append(part_log_p)
            grads.append(part_grad)
        return sum(log_ps), torch.cat(grads, dim=-1)

    def _assemble(self, pieces: Sequence[Tensor], like: Tensor) -> Tensor:
        result = torch.empty(
            *like.shape[:-1], self.n_features, dtype=like.dtype, device=like.device
        )
        for piece, columns in zip(pieces, self.columns, strict=True):
            result[..., columns] = piece.to(like.dtype)
        return result

    def mean(self, out: Tensor) -> Tensor:
        return self._assemble([p.mean(out[..., o]) for p, _, o in self._each()], out)

    def sample(self, out: Tensor, generator: torch.Generator) -> Tensor:
        return self._assemble([p.sample(out[..., o], generator) for p, _, o in self._each()], out)

    def weighted_mean(self, out: Tensor, weights: Tensor) -> Tensor:
        pieces = [p.weighted_mean(out[..., o], weights) for p, _, o in self._each()]
        return self._assemble(pieces, out[:, 0])

    def variances(self) -> Tensor | None:
        pieces = [p.variances() for p in self.parts]
        if all(v is None for v in pieces):
            return None
        like = next(v for v in pieces if v is not None)
        result = torch.full((self.n_features,), float("nan"), dtype=like.dtype)
        for piece, columns in zip(pieces, self.columns, strict=True):
            if piece is not None:
                result[columns] = piece.detach().cpu()
        return result

    def discrete_columns(self) -> np.ndarray:
        found = [
            np.asarray(c)[p.discrete_columns()]
            for p, c in zip(self.parts, self.columns, strict=True)
        ]
        return np.sort(np.concatenate([np.zeros(0, dtype=int), *found]))

    @staticmethod
    def _split(X: np.ndarray | None, parts: Sequence[dict]):
        """(family, columns of X or their indices when X is None, the part's settings)."""
        for part in parts:
            part = dict(part)
            family = likelihood_class(part.pop("name"))
            columns = [int(c) for c in part.pop("columns")]
            yield family, columns if X is None else X[:, columns], part

    @classmethod
    def check_domain(cls, X: np.ndarray, parts: Sequence[dict] = (), **_: Any) -> None:
        for family, columns, part in cls._split(X, parts):
            family.check_domain(columns, **part)

    def column_family(self, j: int) -> Likelihood:
        return next(p for p, c, _ in self._each() if j in c)

    def unseen(self, X: np.ndarray) -> np.ndarray | None:
        masks = [(p.unseen(X[:, c]), c) for p, c, _ in self._each()]
        if all(m is None for m, _ in masks):
            return None
        mask = np.zeros(X.shape, dtype=bool)
        for m, columns in masks:
            if m is not None:
                mask[:, columns] = m
        return mask

    @classmethod
    def learn(cls, X: np.ndarray, parts: Sequence[dict] = (), **_: Any) -> dict:
        learned = [{**part, **family.learn(columns, **part)} for family, columns, part in
                   cls._split(X, parts)]  # fmt: skip
        return {"parts": [{**old, **new} for old, new in zip(parts, learned, strict=True)]}

    @classmethod
    def data_scaling(
        cls, X: np.ndarray, parts: Sequence[dict] = (), **_: Any
    ) -> tuple[np.ndarray, np.ndarray]:
        loc, scale = np.zeros(X.shape[1]), np.ones(X.shape[1])
        for (family, columns, part), spec in zip(cls._split(X, parts), parts, strict=True):
            loc[spec["columns"]], scale[spec["columns"]] = family.data_scaling(columns, **part)
        return loc, scale


def register_likelihood(cls: type[Likelihood]) -> type[Likelihood]:
    """Make ``cls`` available as ``likelihood=cls.name``; usable as a class decorator.

    Parameters
    ----------
    cls : Likelihood subclass
        The family: its ``name``, its ``domain`` (the data side: checks, what is learned
        from X, scaling) and its torch head (``log_prob``, ``mean``, ``sample``).

    Returns
    -------
    cls : Likelihood subclass
        The same class, now in ``skvae.LIKELIHOODS``.

    Examples
    --------
    >>> import numpy as np
    >>> import torch
    >>> from skvae import LIKELIHOODS, Likelihood, VAEEstimator, register_likelihood
    >>> @register_likelihood
    ... class Exponential(Likelihood):
    ...     name = "exponential"  # rate exp(decoder output)
    ...
    ...     def log_prob(self, x, out, mask=None):
    ...         terms = out - x * out.exp()
    ...         return terms.sum(-1) if mask is None else (terms * mask).sum(-1)
    ...
    ...     def mean(self, out):
    ...         return (-out).exp()
    ...
    ...     def sample(self, out, generator):
    ...         u = torch.rand(out.shape, generator=generator, dtype=out.dtype)
    ...         return -torch.log1p(-u) * (-out).exp()
    >>> X = np.random.default_rng(0).exponential(size=(300, 3))
    >>> vae = VAEEstimator(likelihood="exponential", hidden_layer_sizes=(8,), tol=0.1)
    >>> vae.fit(X).sample(2, random_state=0).shape
    (2, 3)
    >>> del LIKELIHOODS["exponential"]
    """
    if not (isinstance(cls, type) and issubclass(cls, Likelihood)) or cls is Mixed:
        raise TypeError(f"register_likelihood takes a Likelihood subclass, got {cls!r}.")
    LIKELIHOODS[cls.name] = cls
    return cls


for _family in (
    Gaussian,
    Bernoulli,
    ContinuousBernoulli,
    Poisson,
    NegativeBinomial,
    ZeroInflatedNegativeBinomial,
    Multinomial,
    Categorical,
    HurdleLogNormal,
    StudentT,
    LogitNormal,
    LogNormal,
):
    register_likelihood(_family)


def likelihood_class(likelihood: str | type[Likelihood]) -> type[Likelihood]:
    """The family a name or class stands for (``"mixed"`` included)."""
    if isinstance(likelihood, type) and issubclass(likelihood, Likelihood):
        return likelihood
    if likelihood == Mixed.name:
        return Mixed
    try:
        return LIKELIHOODS[likelihood]
    except (KeyError, TypeError):
        raise ValueError(
            f"Unknown likelihood {likelihood!r}; choose from {sorted(LIKELIHOODS)}, a dict "
            "of them, or a skvae.Likelihood subclass."
        ) from None


def build_likelihood(n_features: int, config: dict) -> Likelihood:
    """The likelihood described by ``config`` (a ``Likelihood.config``)."""
    config = dict(config)
    return likelihood_class(config.pop("name"))(n_features, **config)


def _family_options(cls: type[Likelihood], options: dict) -> dict:
    return {k: v for k, v in options.items() if k in cls.options}


def prepare_likelihood(
    X: np.ndarray, likelihood: str | type[Likelihood] | Sequence[dict], covariance_type="diag"
) -> tuple[dict, np.ndarray, np.ndarray]:
    """Check X against a family (a name, a class, or parts for ``Mixed``) and learn from it.

    Returns the likelihood's config (for ``build_likelihood``, with the data's location and
    scale in it) and that location and scale.
    """
    options = {"covariance_type": covariance_type}
    if isinstance(likelihood, str | type):
        cls = likelihood_class(likelihood)
        settings = _family_options(cls, options)
    else:
        cls = Mixed
        settings = {
            "parts": [
                {**part, **_family_options(likelihood_class(part["name"]), options)}
                for part in likelihood
            ]
        }
    settings.update(cls.learn(X, **settings))
    cls.check_domain(X, **settings)
    loc, scale = cls.data_scaling(X, **settings)
    return {"name": cls.name, **settings, "loc": loc.tolist(), "scale": scale.tolist()}, loc, scale
