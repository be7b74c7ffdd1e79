"""Observation models p(x | z): one torch head per family, and a name -> class registry.

A family's torch side is here: the decoder outputs it needs, what the encoder sees of its
columns, its log-probability, mean and sampler. Its data side (the domain check, what it
learns from X before training, the scaling of X) is its ``domain`` (see ``_family_data``).
Adding a family is one subclass of ``Likelihood`` and ``register_likelihood``. ``Mixed``
puts several families side by side, each on its own columns.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ._family_data import Codes, Counts, Domain, NonNegative, Real, Totals, UnitInterval
from ._posteriors import derivative_applies

__all__ = [
    "LIKELIHOODS",
    "VAR_SMOOTHING",
    "Bernoulli",
    "Categorical",
    "ContinuousBernoulli",
    "Gaussian",
    "HurdleLogNormal",
    "Likelihood",
    "Mixed",
    "Multinomial",
    "NegativeBinomial",
    "ZeroInflatedNegativeBinomial",
    "Poisson",
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

#: False: draw gamma variates with numpy's public generator instead of
#: ``torch._standard_gamma`` (the tests set it to check the two against each other).
USE_PRIVATE_API = True


def _noise(shape: torch.Size, like: Tensor, generator: torch.Generator, kind: str) -> Tensor:
    # Noise is drawn on the CPU from a CPU generator so that draws do not depend on the
    # device, then moved to where the decoder output lives.
    draw = torch.randn if kind == "normal" else torch.rand
    return draw(shape, generator=generator, dtype=like.dtype).to(like.device)


def _standard_gamma(shape: Tensor, generator: torch.Generator) -> Tensor:
    """Gamma(shape, 1) draws on the CPU, from ``generator``."""
    if USE_PRIVATE_API:
        return torch._standard_gamma(shape, generator=generator)
    seed = int(torch.randint(2**62, (1,), generator=generator))
    draws = np.random.default_rng(seed).standard_gamma(shape.numpy())
    return torch.from_numpy(np.asarray(draws)).to(shape.dtype)


def _nb_log_pmf(x: Tensor, log_mu: Tensor, log_theta: Tensor) -> Tensor:
    """Elementwise log NB(x; mean mu, inverse dispersion theta), from log mu and log theta."""
    theta = log_theta.exp()
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


def _accumulate(param: Tensor, grad: Tensor | None) -> None:
    """Add ``grad`` to ``param.grad`` in place (the optimizer's flat buffer), or set it."""
    if grad is None:
        return
    if param.grad is None:
        param.grad = grad.detach().reshape(param.shape).clone()
    else:
        param.grad.add_(grad.reshape(param.grad.shape))


def _weighted(elements: Tensor, mask: Tensor | None, scale: Tensor | float) -> Tensor:
    """``elements`` times the mask and the per-row scale, in place: a gradient in ``out``."""
    if mask is not None:
        elements = elements.mul_(mask)
    return elements.mul_(scale)


def _masked_sum(elements: Tensor, mask: Tensor | None) -> Tensor:
    """Sum over the last axis of the observed elements (all of them when mask is None)."""
    return elements.sum(-1) if mask is None else (elements * mask).sum(-1)


class Likelihood(nn.Module):
    """Base class of an observation model p(x | z) whose parameters the decoder outputs.

    Subclasses set ``name`` and ``domain`` and implement ``log_prob``, ``mean`` and
    ``sample``; the defaults take one decoder output per feature and feed the encoder the
    (rescaled) data as it is. ``options`` names the estimator parameters the family reads
    (the Gaussian's ``covariance_type``); ``discrete`` says that ``mean`` is a category
    code (the mode), so that several models' fills are combined by vote, not averaged.

    Parameters
    ----------
    n_features : int
        Number of columns the family models.
    loc, scale : array-like of shape (n_features,), default=None
        The data's location and scale: the model sees (X - loc) / scale. Kept here, in
        float64, so that the module works on its own on data in the user's units.
    **settings
        The family's options and what its domain learned from the training data.
    """

    name: ClassVar[str]
    domain: ClassVar[type[Domain]] = Domain
    options: ClassVar[tuple[str, ...]] = ()
    discrete: ClassVar[bool] = False

    def __init__(self, n_features: int, loc=None, scale=None, **settings: Any) -> None:
        super().__init__()
        self.n_features = n_features
        self.settings = settings
        self.loc = np.zeros(n_features) if loc is None else np.asarray(loc, dtype=np.float64)
        self.scale = np.ones(n_features) if scale is None else np.asarray(scale, np.float64)

    @property
    def config(self) -> dict:
        """Everything needed to rebuild this likelihood with ``build_likelihood``."""
        # A family passed as a class without registering it is stored as the class.
        registered = LIKELIHOODS.get(self.name) is type(self) or self.name == Mixed.name
        return {
            "name": self.name if registered else type(self),
            **self.settings,
            "loc": self.loc.tolist(),
            "scale": self.scale.tolist(),
        }

    @property
    def n_outputs(self) -> int:
        """Decoder outputs this family needs."""
        return self.n_features

    @property
    def n_inputs(self) -> int:
        """Width of ``encoder_input``."""
        return self.n_features

    def encoder_input(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """What the encoder sees of these columns.

        ``x`` holds no NaN: missing entries were set to 0 in the rescaled units, and
        ``mask`` (1 observed, 0 missing, or None when all are observed) says which.
        """
        return x

    def log_prob(self, x: Tensor, out: Tensor, mask: Tensor | None = None) -> Tensor:
        """Log p(x | z) summed over the observed features; ``out`` is the decoder output.

        With ``mask`` (1 observed, 0 missing; the shape of x), missing entries are left
        out of the sum, which makes it log p(x_observed | z).
        """
        raise NotImplementedError

    def log_prob_grad(
        self, x: Tensor, out: Tensor, mask: Tensor | None, scale: Tensor | float
    ) -> tuple[Tensor, Tensor]:
        """``log_prob`` per row, and the gradient of sum(scale * log_prob) in ``out``.

        ``scale`` is a number or a column (n, 1) of per-row weights. The gradients of the
        family's own parameters (noise variances, dispersions) are added to their
        ``.grad``. A family's derivative by hand is used when the class that defines it
        also defines ``log_prob``; otherwise autograd differentiates ``log_prob``.
        """
        if derivative_applies(type(self), "_log_prob_grad", ("log_prob",)):
            return self._log_prob_grad(x, out, mask, scale)
        return self._autograd_log_prob_grad(x, out, mask, scale)

    def _log_prob_grad(self, x, out, mask, scale) -> tuple[Tensor, Tensor]:
        """The derivative by hand (see ``log_prob_grad``); the base class has none."""
        return self._autograd_log_prob_grad(x, out, mask, scale)

    def _autograd_log_prob_grad(self, x, out, mask, scale) -> tuple[Tensor, Tensor]:
        out = out.detach().requires_grad_()
        params = [p for p in self.parameters() if p.requires_grad]
        with torch.enable_grad():
            log_p = self.log_prob(x, out, mask)
            grads = torch.autograd.grad(
                (log_p.unsqueeze(-1) * scale).sum(), [out, *params], allow_unused=True
            )
        for param, grad in zip(params, grads[1:], strict=True):
            _accumulate(param, grad)
        return log_p.detach(), grads[0]

    def mean(self, out: Tensor) -> Tensor:
        """E[x | z] for decoder output ``out``."""
        raise NotImplementedError

    def sample(self, out: Tensor, generator: torch.Generator) -> Tensor:
        """Draws x ~ p(x | z), with noise from a CPU ``generator``."""
        raise NotImplementedError

    def weighted_mean(self, out: Tensor, weights: Tensor) -> Tensor:
        """Mean of the mixture sum_k weights[:, k] p(x | z_k); ``out`` is (n, K, n_outputs)."""
        return (weights.unsqueeze(-1) * self.mean(out)).sum(1)

    def variances(self) -> Tensor | None:
        """Per-feature noise variances (standardised units) where the family has them."""
        return None

    def discrete_columns(self) -> np.ndarray:
        """Indices of the columns whose ``mean`` is a category code."""
        return np.arange(self.n_features if self.discrete else 0)

    # ------------------------------------------------------------------ data side

    @classmethod
    def check_domain(cls, X: np.ndarray, **settings: Any) -> None:
        """Raise ValueError when X is outside the support of the family."""
        cls.domain.check(cls.name, X, **settings)

    @classmethod
    def learn(cls, X: np.ndarray, **options: Any) -> dict:
        """What the family learns from the training data before training (e.g. categories)."""
        return cls.domain.learn(cls.name, X, **options)

    @classmethod
    def data_scaling(cls, X: np.ndarray, **settings: Any) -> tuple[np.ndarray, np.ndarray]:
        """Location and scale such that the model is trained on (X - loc) / scale."""
        return cls.domain.scaling(X, **settings)

    def validate(self, X: np.ndarray) -> None:
        """Check new data against the domain and what was learned in fit."""
        type(self).check_domain(X, **self.settings)

    def unseen(self, X: np.ndarray) -> np.ndarray | None:
        """Where X holds values fit never saw (new categories), to be read as missing."""
        return self.domain.unseen(X, **self.settings)


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
    def _log_norm(logits: Tensor) -> Tensor:
        small = logits.abs() < _CB_TAYLOR
        safe = torch.where(small, torch.ones_like(logits), logits)
        exact = torch.log(safe / torch.tanh(safe / 2))
        l2 = logits**2
        taylor = math.log(2.0) + l2 / 12 - l2**2 / 1440
        return torch.where(small, taylor, exact)

    def log_prob(self, x: Tensor, out: Tensor, mask: Tensor | None = None) -> Tensor:
        log_p = x * F.logsigmoid(out) + (1 - x) * F.logsigmoid(-out) + self._log_norm(out)
        return _masked_sum(log_p, mask)

    def _log_prob_grad(self, x, out, mask, scale) -> tuple[Tensor, Tensor]:
        # d log C / dl = 1 / l - 1 / sinh(l), or its Taylor series l / 6 - l^3 / 360.
        small = out.abs() < _CB_TAYLOR
        safe = torch.where(small, torch.ones_like(out), out)
        d_log_norm = torch.where(small, out / 6 - out**3 / 360, 1 / safe - 1 / torch.sinh(safe))
        grad = x - torch.sigmoid(out) + d_log_norm
        return self.log_prob(x, out, mask), _weighted(grad, mask, scale)

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
        return self.log_prob(x, out, mask), _weighted(grad_mu, mask, scale)

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
        self.register_buffer("_widths", torch.as_tensor(self.n_categories), persistent=False)
        values = settings.get("values") or [list(range(k)) for k in self.n_categories]
        # Codes are the values themselves when the categories are 0, 1, ...: no lookup.
        self._identity = all(v == list(range(len(v))) for v in values)
        table = np.zeros((n_features, max(self.n_categories, default=1)))
        for j, column in enumerate(values):
            table[j, : len(column)] = column
            table[j, len(column) :] = np.inf  # sorted rows, for searchsorted
        self.register_buffer("_values", torch.as_tensor(table), persistent=False)

    @property
    def n_outputs(self) -> int:
        return sum(self.n_categories)

    @property
    def n_inputs(self) -> int:
        return sum(self.n_categories)

    def codes(self, x: Tensor) -> Tensor:
        """Each value's position among its column's categories (a missing entry's is 0)."""
        if self._identity:
            return x.long()
        flat = x.reshape(-1, self.n_features).T.contiguous()
        codes = torch.searchsorted(self._values.to(x.dtype), flat)
        top = torch.as_tensor(self.n_categories, device=x.device).unsqueeze(1) - 1
        return torch.minimum(codes, top).T.reshape(x.shape)

    def values(self, codes: Tensor, like: Tensor) -> Tensor:
        """The category values at ``codes`` (positions), in ``like``'s dtype."""
        if self._identity:
            return codes.to(like.dtype)
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

    def log_prob(self, x: Tensor, out: Tensor, mask: Tensor | None = None) -> Tensor:
        codes = self.codes(x)
        total = torch.zeros(out.shape[:-1], dtype=out.dtype, device=out.device)
        for j, log_p in enumerate(self._log_softmax(out)):
            term = log_p.gather(-1, codes[..., j : j + 1]).squeeze(-1)
            total = total + (term if mask is None else term * mask[..., j])
        return total

    def _log_prob_grad(self, x, out, mask, scale) -> tuple[Tensor, Tensor]:
        # One-hot codes minus the softmax, column by column.
        codes = self.codes(x) + self._offsets
        grad = torch.zeros_like(out).scatter_(-1, codes, 1.0)
        for s in self._slices:
            grad[..., s] -= torch.softmax(out[..., s], dim=-1)
        if mask is not None:
            grad = grad * mask.repeat_interleave(self._widths, dim=-1)
        return self.log_prob(x, out, mask), grad * scale

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

    def log_prob(self, x: Tensor, out: Tensor, mask: Tensor | None = None) -> Tensor:
        logit, m, log_var = self._parts(out)
        positive, log_x = self._standard_log(x)
        log_density = -0.5 * ((log_x - m) ** 2 * torch.exp(-log_var) + log_var + _LOG_2PI)
        log_positive = F.logsigmoid(logit) + log_density - log_x
        return _masked_sum(torch.where(positive, log_positive, F.logsigmoid(-logit)), mask)

    def _log_prob_grad(self, x, out, mask, scale) -> tuple[Tensor, Tensor]:
        logit, m, log_var = self._parts(out)
        positive, log_x = self._standard_log(x)
        flags = positive.to(out.dtype)
        p = self.n_features
        scaled = (log_x - m) * torch.exp(-log_var)
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
        return self.log_prob(x, out, mask), _weighted(grad, per_output, scale)

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

    @property
    def n_outputs(self) -> int:
        return sum(p.n_outputs for p in self.parts)

    @property
    def n_inputs(self) -> int:
        return sum(p.n_inputs for p in self.parts)

    def encoder_input(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        return torch.cat(
            [
                p.encoder_input(x[..., c], None if mask is None else mask[..., c])
                for p, c in zip(self.parts, self.columns, strict=True)
            ],
            dim=-1,
        )

    def _each(self):
        return zip(self.parts, self.columns, self._outputs, strict=True)

    def log_prob(self, x: Tensor, out: Tensor, mask: Tensor | None = None) -> Tensor:
        return sum(
            p.log_prob(x[..., c], out[..., o], None if mask is None else mask[..., c])
            for p, c, o in self._each()
        )

    def _log_prob_grad(self, x, out, mask, scale) -> tuple[Tensor, Tensor]:
        grad = torch.empty_like(out)
        log_p = 0.0
        for p, c, o in self._each():
            part_mask = None if mask is None else mask[..., c]
            part_log_p, grad[..., o] = p.log_prob_grad(x[..., c], out[..., o], part_mask, scale)
            log_p = log_p + part_log_p
        return log_p, grad

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


#: name -> class; feeds the ``likelihood`` parameter's allowed values.
LIKELIHOODS: dict[str, type[Likelihood]] = {}


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
