"""The count families of p(x | z): Poisson, negative binomial, zero-inflated NB, multinomial.

Their shared pieces are here too: the negative binomial's log-pmf, and its draws as a
gamma-Poisson mixture. ``_likelihoods`` imports these classes, registers them and
re-exports them.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ._family_data import Counts, Totals
from ._likelihood_base import Likelihood, _accumulate, _masked_sum, _noise, _weighted

#: False: draw gamma variates with numpy's public generator instead of
#: ``torch._standard_gamma`` (the tests set it to check the two against each other).
USE_PRIVATE_API = True


def _standard_gamma(shape: Tensor, generator: torch.Generator) -> Tensor:
    """Gamma(shape, 1) draws on the CPU, from ``generator``."""
    if USE_PRIVATE_API:
        return torch._standard_gamma(shape, generator=generator)
    seed = int(torch.randint(2**62, (1,), generator=generator))
    draws = np.random.default_rng(seed).standard_gamma(shape.numpy())
    return torch.from_numpy(np.asarray(draws)).to(shape.dtype)


def _nb_log_pmf(
    x: Tensor,
    log_mu: Tensor,
    log_theta: Tensor,
    theta: Tensor | None = None,
    log_theta_mu: Tensor | None = None,
) -> Tensor:
    """Elementwise log NB(x; mean mu, inverse dispersion theta), from log mu and log theta
    (and theta and log(theta + mu), where the caller has them)."""
    theta = log_theta.exp() if theta is None else theta
    if log_theta_mu is None:
        # log(theta + mu) from the logs, without overflow for large mu or theta.
        log_theta_mu = torch.logaddexp(log_theta, log_mu)
    return (
        torch.lgamma(x + theta)
        - torch.lgamma(theta)
        - torch.lgamma(x + 1)
        + theta * (log_theta - log_theta_mu)
        + x * (log_mu - log_theta_mu)
    )


def _nb_draw(mu: Tensor, theta: Tensor, generator: torch.Generator) -> Tensor:
    """NB(mu, theta) draws on the CPU as a gamma-Poisson mixture; theta = inf is Poisson."""
    poisson = torch.isinf(theta)
    shape = torch.where(poisson, torch.ones_like(theta), theta).contiguous()
    rate = torch.where(poisson, mu, _standard_gamma(shape, generator) * mu / shape)
    return torch.poisson(rate, generator=generator)


class Poisson(Likelihood):
    """Independent Poisson counts with rate exp(decoder output).

    The encoder sees log(1 + x), as scvi-tools feeds counts to its encoder.
    """

    name = "poisson"
    domain = Counts

    def encoder_input(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        return torch.log1p(x)

    def log_prob(self, x: Tensor, out: Tensor, mask: Tensor | None = None) -> Tensor:
        return _masked_sum(x * out - out.exp() - torch.lgamma(x + 1), mask)

    def _log_prob_grad(self, x, out, mask, scale) -> tuple[Tensor, Tensor]:
        return self.log_prob(x, out, mask), _weighted(x - out.exp(), mask, scale)

    def mean(self, out: Tensor) -> Tensor:
        return out.exp()

    def sample(self, out: Tensor, generator: torch.Generator) -> Tensor:
        rate = out.exp().cpu()
        return torch.poisson(rate, generator=generator).to(out.device)


class NegativeBinomial(Poisson):
    """Negative binomial counts with mean exp(decoder output) and a learned dispersion.

    Var = mu + mu^2 / theta, with one inverse dispersion theta per feature (as scvi-tools'
    gene-wise dispersion): a Poisson with overdispersion, a gamma-Poisson mixture. With a
    dispersion per covariate level, the module appends each row's log theta to the decoder
    output (``row_log_theta``).
    """

    name = "negative_binomial"

    def __init__(self, n_features: int, **settings: Any) -> None:
        super().__init__(n_features, **settings)
        self.log_theta = nn.Parameter(torch.zeros(n_features))

    def row_log_theta(self, out: Tensor) -> Tensor:
        """Log theta: a row's own, where the module put it after the family's outputs (a
        dispersion per covariate level), else the one per feature."""
        if out.shape[-1] > self.n_outputs:
            return out[..., self.n_outputs :]
        return self.log_theta

    def log_prob(self, x: Tensor, out: Tensor, mask: Tensor | None = None) -> Tensor:
        log_mu = out[..., : self.n_features]
        return _masked_sum(_nb_log_pmf(x, log_mu, self.row_log_theta(out)), mask)

    def _log_prob_grad(self, x, out, mask, scale) -> tuple[Tensor, Tensor]:
        if out.shape[-1] > self.n_outputs:  # a log theta per row: autograd
            return self._autograd_log_prob_grad(x, out, mask, scale)
        log_theta = self.log_theta
        theta = log_theta.exp()
        log_theta_mu = torch.logaddexp(log_theta, out)
        share_mu = torch.exp(out - log_theta_mu)  # mu / (theta + mu)
        grad_mu = x - (x + theta) * share_mu
        # d/d log theta: theta (digamma(x + theta) - digamma(theta) + log theta
        # - log(theta + mu) + mu / (theta + mu)) - x theta / (theta + mu).
        grad_theta = theta * (
            torch.digamma(x + theta) - torch.digamma(theta) + log_theta - log_theta_mu + share_mu
        ) - x * (1 - share_mu)
        _accumulate(log_theta, _weighted(grad_theta, mask, scale).sum(-2))
        log_p = _masked_sum(_nb_log_pmf(x, out, log_theta, theta, log_theta_mu), mask)
        return log_p, _weighted(grad_mu, mask, scale)

    def mean(self, out: Tensor) -> Tensor:
        return out[..., : self.n_features].exp()

    def _draw(self, log_mu: Tensor, log_theta: Tensor, generator: torch.Generator) -> Tensor:
        theta = log_theta.exp().detach().cpu().to(log_mu.dtype).expand(log_mu.shape)
        return _nb_draw(log_mu.exp().cpu(), theta, generator).to(log_mu.device)

    def sample(self, out: Tensor, generator: torch.Generator) -> Tensor:
        return self._draw(out[..., : self.n_features], self.row_log_theta(out), generator)


class ZeroInflatedNegativeBinomial(NegativeBinomial):
    """Negative binomial counts with extra zeros, as scvi-tools' ZINB.

    x = 0 with probability pi, else x ~ NB(mu, theta): the decoder gives log mu and the
    logit of pi per feature (2 outputs per feature), theta is learned per feature. The mean
    is (1 - pi) mu. For counts with more zeros than a negative binomial of their mean and
    variance allows (dropouts in single-cell data).
    """

    name = "zero_inflated_negative_binomial"

    @property
    def n_outputs(self) -> int:
        return 2 * self.n_features

    def _parts(self, out: Tensor) -> tuple[Tensor, Tensor]:
        """log mu and the zero-inflation logit."""
        n = self.n_features
        return out[..., :n], out[..., n : 2 * n]

    def log_prob(self, x: Tensor, out: Tensor, mask: Tensor | None = None) -> Tensor:
        log_mu, logit = self._parts(out)
        log_not_zero = F.logsigmoid(-logit) + _nb_log_pmf(x, log_mu, self.row_log_theta(out))
        log_zero = torch.logaddexp(F.logsigmoid(logit), log_not_zero)
        return _masked_sum(torch.where(x == 0, log_zero, log_not_zero), mask)

    def mean(self, out: Tensor) -> Tensor:
        log_mu, logit = self._parts(out)
        return torch.sigmoid(-logit) * log_mu.exp()

    def sample(self, out: Tensor, generator: torch.Generator) -> Tensor:
        log_mu, logit = self._parts(out)
        counts = self._draw(log_mu, self.row_log_theta(out), generator)
        u = _noise(logit.shape, logit, generator, "uniform")
        return torch.where(u < torch.sigmoid(logit), torch.zeros_like(counts), counts)


class Multinomial(Poisson):
    """Counts given their row total: x | n, z ~ Multinomial(n, softmax(decoder output)).

    For documents (word counts) and profiles, as ProdLDA models them: the decoder says
    which columns a row's counts fall in, not how many there are. The total n = sum(x) has
    its own model, a negative binomial fitted to the training rows' totals, so that
    ``score_samples`` is log p(x) = log p(n) + log p(x | n, z), a likelihood of x, and
    ``sample`` draws totals too. The mean is E[n] softmax(output). No entry may be missing.
    """

    name = "multinomial"
    domain = Totals

    def _log_total(self, n: Tensor) -> Tensor:
        """Log-probability of the row totals under the negative binomial learned in fit."""
        mean, theta = self.settings["total_mean"], self.settings["total_theta"]
        if math.isinf(theta):
            return n * math.log(mean) - mean - torch.lgamma(n + 1)
        log_mu = torch.full_like(n, math.log(mean))
        return _nb_log_pmf(n, log_mu, torch.full_like(n, math.log(theta)))

    def log_prob(self, x: Tensor, out: Tensor, mask: Tensor | None = None) -> Tensor:
        n = x.sum(-1)
        log_p = F.log_softmax(out, dim=-1)
        # x * log p with 0 * log 0 = 0, for a probability that underflows.
        terms = torch.where(x > 0, x * log_p, torch.zeros_like(log_p))
        log_coefficient = torch.lgamma(n + 1) - torch.lgamma(x + 1).sum(-1)
        return log_coefficient + terms.sum(-1) + self._log_total(n)

    def _log_prob_grad(self, x, out, mask, scale) -> tuple[Tensor, Tensor]:
        grad = x - x.sum(-1, keepdim=True) * torch.softmax(out, dim=-1)
        return self.log_prob(x, out, mask), grad * scale

    def mean(self, out: Tensor) -> Tensor:
        return self.settings["total_mean"] * torch.softmax(out, dim=-1)

    def sample(self, out: Tensor, generator: torch.Generator) -> Tensor:
        p = torch.softmax(out.detach().cpu(), dim=-1)
        mean, theta = self.settings["total_mean"], self.settings["total_theta"]
        left = _nb_draw(
            torch.full(p.shape[:-1], mean, dtype=p.dtype),
            torch.full(p.shape[:-1], theta, dtype=p.dtype),
            generator,
        )
        # A multinomial with a total per row, as a chain of binomials over the columns.
        draws = torch.zeros_like(p)
        rest = torch.ones_like(left)
        for j in range(p.shape[-1] - 1):
            share = (p[..., j] / rest.clamp_min(1e-30)).clamp(0, 1)
            draws[..., j] = torch.binomial(left, share, generator=generator)
            left = left - draws[..., j]
            rest = rest - p[..., j]
        draws[..., -1] = left
        return draws.to(out.device)
