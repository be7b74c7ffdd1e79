"""The Student's t family: real values with heavy tails, for columns a Gaussian fits badly.

A row far outside the others costs a Gaussian the square of its distance, and a t only the
logarithm of it: a few extreme rows neither dominate training nor score thousands of nats
below the rest. The decoder gives each entry's location and scale; the degrees of freedom
are learned per column, and a column whose tails are light learns a large value, where
the t is a Gaussian.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ._count_likelihoods import _standard_gamma
from ._family_data import Real
from ._likelihood_base import Likelihood, _accumulate, _masked_sum, _weighted

__all__ = ["StudentT"]

#: Floor on every scale, in the standardised units of its column: a decoder that shrinks
#: a scale towards 0 around one training value would give new rows near-infinite densities.
SCALE_FLOOR = math.sqrt(1e-3)
#: Degrees of freedom at the start of training: tails clearly heavier than a Gaussian's,
#: with a finite variance, from which the data moves each column either way.
DF_INIT = 5.0

_LOG_PI = math.log(math.pi)


class StudentT(Likelihood):
    """Student's t noise: location and scale from the decoder, degrees of freedom per column.

    The decoder gives two outputs per feature: the location m and, through a softplus
    above ``SCALE_FLOOR``, the scale s; the degrees of freedom nu = exp(log_df) are one
    learned parameter per feature, starting at ``DF_INIT``. Training sees each column
    standardised. The density is that of ``scipy.stats.t(nu, m, s)``; ``mean`` gives the
    location, the mean where nu > 1 and the median always.
    """

    name = "student_t"
    domain = Real

    def __init__(self, n_features: int, **settings: Any) -> None:
        super().__init__(n_features, **settings)
        self.log_df = nn.Parameter(torch.full((n_features,), math.log(DF_INIT)))

    @property
    def n_outputs(self) -> int:
        return 2 * self.n_features

    def _parts(self, out: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """The location, the scale's softplus input, and the scale."""
        n = self.n_features
        raw = out[..., n : 2 * n]
        return out[..., :n], raw, F.softplus(raw) + SCALE_FLOOR

    def _log_norm(self, df: Tensor) -> Tensor:
        """log Gamma((nu + 1) / 2) - log Gamma(nu / 2) - log(nu pi) / 2, per feature."""
        return torch.lgamma((df + 1) / 2) - torch.lgamma(df / 2) - 0.5 * (df.log() + _LOG_PI)

    def log_prob(self, x: Tensor, out: Tensor, mask: Tensor | None = None) -> Tensor:
        loc, _, scale = self._parts(out)
        df = self.log_df.exp()
        r2 = ((x - loc) / scale) ** 2
        elements = self._log_norm(df) - scale.log() - (df + 1) / 2 * torch.log1p(r2 / df)
        return _masked_sum(elements, mask)

    def _log_prob_grad(self, x, out, mask, scale) -> tuple[Tensor, Tensor]:
        loc, raw, s = self._parts(out)
        df = self.log_df.exp()
        r = (x - loc) / s
        r2 = r * r
        log1p = torch.log1p(r2 / df)
        log_p = _masked_sum(self._log_norm(df) - s.log() - (df + 1) / 2 * log1p, mask)
        w = (df + 1) / (df + r2)  # the weight a t gives a residual, against a Gaussian's 1
        grad_loc = w * r / s
        grad_raw = (w * r2 - 1) / s * torch.sigmoid(raw)
        # d/d nu, times d nu / d log_df = nu.
        grad_df = 0.5 * (
            torch.digamma((df + 1) / 2) - torch.digamma(df / 2) - 1 / df - log1p + w * r2 / df
        )
        _accumulate(self.log_df, _weighted(grad_df * df, mask, scale).sum(-2))
        grads = torch.cat([grad_loc, grad_raw], dim=-1)
        if mask is not None:
            mask = torch.cat([mask, mask], dim=-1)
        return log_p, _weighted(grads, mask, scale)

    def mean(self, out: Tensor) -> Tensor:
        return out[..., : self.n_features]

    def sample(self, out: Tensor, generator: torch.Generator) -> Tensor:
        loc, _, scale = self._parts(out)
        df = self.log_df.exp().detach().cpu().to(out.dtype).expand(loc.shape).contiguous()
        # t = N(0, 1) / sqrt(chi2(nu) / nu), with chi2(nu) = 2 Gamma(nu / 2).
        normal = torch.randn(loc.shape, generator=generator, dtype=out.dtype)
        chi2 = 2 * _standard_gamma(df / 2, generator)
        t = normal / torch.sqrt(chi2 / df)
        return loc + scale * t.to(out.device)
