"""Families normal after a transform: the log-normal (positive amounts) and logit-normal (shares).

An amount such as an income or a firm's capital is positive and skewed to the right, and a
share such as a budget fraction is often crowded near 0 or 1 with a tail the other way;
on the log and the logit scale they are close to normal. The decoder gives the mean and
log-variance of the transformed value y = g(x), in units of each column's standardised y
(the domain learns them); the density of x includes |dy/dx|, so that ``score_samples`` is
a likelihood of x.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ._family_data import OpenUnitInterval, Positive
from ._likelihood_base import Likelihood, _masked_sum, _noise, _weighted

__all__ = ["LogNormal", "LogitNormal", "TransformedNormal"]

_LOG_2PI = math.log(2 * math.pi)
#: Bounds of the decoder's log-variance output, in the column's standardised units of y:
#: a spread of 1e-3 to 1e3 of the column's (the Gaussian's floor is relative, too).
_LOG_VAR_BOUNDS = (math.log(1e-6), math.log(1e6))


def _probit_mixture(n_terms: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Slopes l_k and weights w_k with expit(y) ~ 1/2 + sum_k w_k (Phi(l_k y) - 1/2).

    Least squares on a grid: the largest error is about 1e-7. The mean of the logit-normal,
    E[expit(m + s e)], has no closed form, but each probit's has: Phi(l m / sqrt(1 + l^2
    s^2)) (Monahan and Stefanski's approach, 1992).
    """
    from scipy.special import expit, ndtr

    y = np.linspace(-30.0, 30.0, 6001)
    slopes = np.geomspace(0.25, 1.6, n_terms)
    weights, *_ = np.linalg.lstsq(ndtr(np.outer(y, slopes)) - 0.5, expit(y) - 0.5, rcond=None)
    return slopes, weights


_SLOPES, _PROBIT_WEIGHTS = _probit_mixture()


class TransformedNormal(Likelihood):
    """x = g^-1(y) with y ~ N(m, s^2): m and log s^2 from the decoder, per feature.

    Two decoder outputs per feature: the mean and the log-variance of y = g(x), in units of
    the column's standardised y (``transformed_loc`` and ``transformed_scale``, learned by
    the domain). The encoder sees the standardised y. A subclass gives the transform
    (``_transform``), its inverse and the mean of x.
    """

    def __init__(self, n_features: int, **settings: Any) -> None:
        super().__init__(n_features, **settings)
        loc = settings.get("transformed_loc", [0.0] * n_features)
        scale = settings.get("transformed_scale", [1.0] * n_features)
        self.register_buffer("_y_loc", torch.as_tensor(loc, dtype=torch.float64), False)
        self.register_buffer("_y_scale", torch.as_tensor(scale, dtype=torch.float64), False)

    @property
    def n_outputs(self) -> int:
        return 2 * self.n_features

    def _transform(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """y = g(x) and log |dy/dx|; a missing entry (x outside the domain) is any inside."""
        raise NotImplementedError

    def _inverse(self, y: Tensor) -> Tensor:
        raise NotImplementedError

    def _mean(self, m: Tensor, variance: Tensor) -> Tensor:
        """E[g^-1(y)] for y ~ N(m, variance)."""
        raise NotImplementedError

    def _parts(self, out: Tensor) -> tuple[Tensor, Tensor]:
        """Mean and log-variance of y in its own units."""
        p = self.n_features
        loc, scale = self._y_loc.to(out.dtype), self._y_scale.to(out.dtype)
        raw = out[..., p : 2 * p].clamp(*_LOG_VAR_BOUNDS)
        return loc + scale * out[..., :p], raw + 2 * scale.log()

    def encoder_input(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        y, _ = self._transform(x)
        standard = (y - self._y_loc.to(x.dtype)) / self._y_scale.to(x.dtype)
        return standard if mask is None else standard * mask

    def log_prob(self, x: Tensor, out: Tensor, mask: Tensor | None = None) -> Tensor:
        m, log_var = self._parts(out)
        y, log_jacobian = self._transform(x)
        elements = -0.5 * ((y - m) ** 2 * torch.exp(-log_var) + log_var + _LOG_2PI)
        return _masked_sum(elements + log_jacobian, mask)

    def _log_prob_grad(self, x, out, mask, scale) -> tuple[Tensor, Tensor]:
        m, log_var = self._parts(out)
        y, _ = self._transform(x)
        p = self.n_features
        scaled = (y - m) * torch.exp(-log_var)
        raw = out[..., p : 2 * p]
        # The clamp of the log-variance passes no gradient outside its bounds.
        inside = (raw >= _LOG_VAR_BOUNDS[0]) & (raw <= _LOG_VAR_BOUNDS[1])
        grad = torch.cat(
            [scaled * self._y_scale.to(out.dtype), inside * 0.5 * (scaled * (y - m) - 1.0)],
            dim=-1,
        )
        per_output = None if mask is None else torch.cat([mask, mask], dim=-1)
        return self.log_prob(x, out, mask), _weighted(grad, per_output, scale)

    def mean(self, out: Tensor) -> Tensor:
        m, log_var = self._parts(out)
        return self._mean(m, log_var.exp())

    def sample(self, out: Tensor, generator: torch.Generator) -> Tensor:
        m, log_var = self._parts(out)
        return self._inverse(m + (0.5 * log_var).exp() * _noise(m.shape, m, generator, "normal"))


class LogitNormal(TransformedNormal):
    """Shares strictly between 0 and 1: logit(x) ~ N(m, s^2).

    The mean E[expit(m + s e)] is that of a mixture of probits close to the logistic
    function (to about 1e-7).
    """

    name = "logit_normal"
    domain = OpenUnitInterval

    def _transform(self, x: Tensor) -> tuple[Tensor, Tensor]:
        x = torch.where((x > 0) & (x < 1), x, torch.full_like(x, 0.5))
        log_x, log_1mx = torch.log(x), torch.log1p(-x)
        return log_x - log_1mx, -(log_x + log_1mx)

    def _inverse(self, y: Tensor) -> Tensor:
        return torch.sigmoid(y)

    def _mean(self, m: Tensor, variance: Tensor) -> Tensor:
        slopes = torch.as_tensor(_SLOPES, dtype=m.dtype, device=m.device)
        weights = torch.as_tensor(_PROBIT_WEIGHTS, dtype=m.dtype, device=m.device)
        shrunk = slopes * m.unsqueeze(-1) * torch.rsqrt(1 + slopes**2 * variance.unsqueeze(-1))
        return 0.5 + (torch.special.ndtr(shrunk) - 0.5) @ weights


class LogNormal(TransformedNormal):
    """Positive amounts skewed to the right: log(x) ~ N(m, s^2); the mean exp(m + s^2 / 2)."""

    name = "lognormal"
    domain = Positive

    def _transform(self, x: Tensor) -> tuple[Tensor, Tensor]:
        log_x = torch.log(torch.where(x > 0, x, torch.ones_like(x)))
        return log_x, -log_x

    def _inverse(self, y: Tensor) -> Tensor:
        # Capped where exp would overflow float32: such a draw is beyond any data anyway.
        return torch.exp(y.clamp(max=80.0))

    def _mean(self, m: Tensor, variance: Tensor) -> Tensor:
        return torch.exp((m + 0.5 * variance).clamp(max=80.0))
