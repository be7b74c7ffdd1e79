"""Observation models p(x | z): one class per family and a name -> class registry.

Each family owns everything that depends on it: the check of its input domain, what it
learns from the data before training (the number of categories), how its columns are fed
to the encoder, how many decoder outputs it needs, its log-probability, its mean and its
sampler. Adding a family means adding one class here and one line to ``LIKELIHOODS``.
``Mixed`` puts several families side by side, each on its own columns.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

__all__ = [
    "Likelihood",
    "Gaussian",
    "Bernoulli",
    "ContinuousBernoulli",
    "Poisson",
    "NegativeBinomial",
    "Categorical",
    "Mixed",
    "LIKELIHOODS",
    "VAR_SMOOTHING",
    "build_likelihood",
    "prepare_likelihood",
]

#: Floor on a Gaussian noise variance, relative to the variance of the feature (for
#: ``covariance_type="diag"``) or of the data (``"spherical"``). A constant feature would
#: otherwise drive its noise variance, and the likelihood, to infinity. The idea is
#: GaussianNB's ``var_smoothing``.
VAR_SMOOTHING = 1e-6

_LOG_2PI = math.log(2.0 * math.pi)


def _noise(shape: torch.Size, like: Tensor, generator: torch.Generator, kind: str) -> Tensor:
    # Noise is drawn on the CPU from a CPU generator so that draws do not depend on the
    # device, then moved to where the decoder output lives.
    draw = torch.randn if kind == "normal" else torch.rand
    return draw(shape, generator=generator, dtype=like.dtype).to(like.device)


def _observed(X: np.ndarray) -> np.ndarray:
    """The observed (non-NaN) entries of X, flattened: domain checks ignore missing ones."""
    X = np.asarray(X)
    return X[~np.isnan(X)] if X.dtype.kind == "f" else X.ravel()


def _column_max(X: np.ndarray) -> np.ndarray:
    """Largest observed value of each column (-inf for a column with none), without warnings."""
    # fmax ignores NaN without a masked copy of X (nanmax would warn on all-NaN columns).
    top = np.fmax.reduce(X, axis=0) if X.shape[0] else np.full(X.shape[1], np.nan)
    return np.where(np.isnan(top), -np.inf, top)


def _describe(X: np.ndarray) -> str:
    X = _observed(X)
    return f"values from {np.min(X):.4g} to {np.max(X):.4g}"


def _check_unit_interval(name: str, X: np.ndarray) -> None:
    X = _observed(X)
    if X.size and (X.min() < 0 or X.max() > 1):
        raise ValueError(
            f"likelihood='{name}' needs data in [0, 1]; got {_describe(X)}. Scale the data "
            "(e.g. MinMaxScaler) or use likelihood='gaussian'."
        )


def _check_counts(name: str, X: np.ndarray) -> None:
    X = _observed(X)
    if X.size and (X.min() < 0 or not np.all(X == np.round(X))):
        raise ValueError(
            f"likelihood='{name}' needs non-negative integer counts; got "
            f"{'negative values' if X.min() < 0 else 'non-integer values'} ({_describe(X)})."
        )


def _masked_sum(elements: Tensor, mask: Tensor | None) -> Tensor:
    """Sum over the last axis of the observed elements (all of them when mask is None)."""
    return elements.sum(-1) if mask is None else (elements * mask).sum(-1)


class Likelihood(nn.Module):
    """Base class of an observation model p(x | z) whose parameters the decoder outputs.

    Subclasses set ``name`` and implement ``log_prob``, ``mean`` and ``sample``; the
    defaults take one decoder output per feature, feed the encoder the (rescaled) data as it
    is, accept any finite data and learn nothing from it.

    Parameters
    ----------
    n_features : int
        Number of columns the family models.
    covariance_type : str
        Gaussian only: "diag" or "spherical".
    **learned
        What ``learn`` returned for the training data.
    """

    name: ClassVar[str]

    def __init__(self, n_features: int, covariance_type: str = "diag", **learned: Any) -> None:
        super().__init__()
        self.n_features = n_features
        self.covariance_type = covariance_type
        self.learned = learned

    @property
    def config(self) -> dict:
        """Everything needed to rebuild this likelihood with ``build_likelihood``."""
        return {"name": self.name, "covariance_type": self.covariance_type, **self.learned}

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

    def mean(self, out: Tensor) -> Tensor:
        """E[x | z] for decoder output ``out``."""
        raise NotImplementedError

    def sample(self, out: Tensor, generator: torch.Generator) -> Tensor:
        """Draws x ~ p(x | z), with noise from a CPU ``generator``."""
        raise NotImplementedError

    def weighted_mean(self, out: Tensor, weights: Tensor) -> Tensor:
        """Mean of the mixture sum_k weights[:, k] p(x | z_k); ``out`` is (n, K, n_outputs)."""
        return (weights.unsqueeze(-1) * self.mean(out)).sum(1)

    @classmethod
    def check_domain(cls, X: np.ndarray, **learned: Any) -> None:
        """Raise ValueError when X is outside the support of the family."""

    @classmethod
    def learn(cls, X: np.ndarray, **config: Any) -> dict:
        """What the family learns from the training data before training (e.g. categories)."""
        return {}

    @classmethod
    def data_scaling(
        cls, X: np.ndarray, covariance_type: str = "diag", **learned: Any
    ) -> tuple[np.ndarray, np.ndarray]:
        """Location and scale such that the model is trained on (X - loc) / scale."""
        n_features = X.shape[1]
        return np.zeros(n_features), np.ones(n_features)

    def validate(self, X: np.ndarray) -> None:
        """Check new data against the domain and what was learned in fit."""
        type(self).check_domain(X, **self.learned)

    def variances(self) -> Tensor | None:
        """Per-feature noise variances (standardised units) where the family has them."""
        return None


def _column_moments(X: np.ndarray, step: int = 2**16) -> tuple[np.ndarray, ...]:
    """Mean, standard deviation and constancy of each column, in chunks of rows.

    Chunks keep the temporaries small whatever n_samples is (three passes, one chunk in
    memory at a time); dividing by each column's largest magnitude first keeps squares of
    values like 1e+200 from overflowing. NaN (missing) entries are left out: each column's
    moments are over its observed values.
    """

    def chunks():
        for i in range(0, X.shape[0], step):
            chunk = X[i : i + step]
            yield chunk, np.isnan(chunk)

    n_columns = X.shape[1]
    count = np.zeros(n_columns)
    lo, hi = np.full(n_columns, np.inf), np.full(n_columns, -np.inf)
    for chunk, nan in chunks():
        count += (~nan).sum(axis=0)
        lo = np.minimum(lo, np.where(nan, np.inf, chunk).min(axis=0))
        hi = np.maximum(hi, np.where(nan, -np.inf, chunk).max(axis=0))
    constant = lo == hi
    amax = np.maximum(np.abs(lo), np.abs(hi))
    amax[(amax == 0) | ~np.isfinite(amax)] = 1.0
    count = np.maximum(count, 1)
    total = np.zeros(n_columns)
    for chunk, nan in chunks():
        total += np.where(nan, 0.0, chunk / amax).sum(axis=0)
    mean = total / count
    sq = np.zeros(n_columns)
    for chunk, nan in chunks():
        sq += np.where(nan, 0.0, (chunk / amax - mean) ** 2).sum(axis=0)
    return mean * amax, np.sqrt(sq / count) * amax, constant


class Gaussian(Likelihood):
    """Gaussian noise around the decoder mean with learned, z-independent variances.

    ``covariance_type="diag"`` learns one variance per feature (factor analysis when the
    decoder is linear); ``"spherical"`` one shared variance (probabilistic PCA). Training
    sees standardised data (per feature for "diag", one global scale for "spherical", so
    that the model family is unchanged); variances have the floor ``VAR_SMOOTHING``.
    """

    name = "gaussian"

    def __init__(self, n_features: int, covariance_type: str = "diag", **learned: Any) -> None:
        super().__init__(n_features, covariance_type, **learned)
        n_var = n_features if covariance_type == "diag" else 1
        self.log_var = nn.Parameter(torch.zeros(n_var))

    @property
    def variance(self) -> Tensor:
        """Noise variances in the units of the standardised data."""
        return VAR_SMOOTHING + self.log_var.exp()

    def log_prob(self, x: Tensor, out: Tensor, mask: Tensor | None = None) -> Tensor:
        var = self.variance
        if mask is not None:
            elements = (x - out) ** 2 / var + var.log() + _LOG_2PI
            return -0.5 * (elements * mask).sum(-1)
        # The sum of log-variances is a per-model constant: added once, not per element.
        log_norm = var.log().sum() if var.numel() > 1 else var.log() * self.n_features
        sq = ((x - out) ** 2 / var).sum(-1)
        return -0.5 * (sq + log_norm + self.n_features * _LOG_2PI)

    def mean(self, out: Tensor) -> Tensor:
        return out

    def sample(self, out: Tensor, generator: torch.Generator) -> Tensor:
        return out + self.variance.sqrt() * _noise(out.shape, out, generator, "normal")

    def variances(self) -> Tensor:
        return self.variance.expand(self.n_features)

    @classmethod
    def data_scaling(
        cls, X: np.ndarray, covariance_type: str = "diag", **learned: Any
    ) -> tuple[np.ndarray, np.ndarray]:
        loc, std, constant = _column_moments(X)
        # The mean of identical values can be off in the last bit: use the value itself.
        loc[constant] = _column_max(X)[constant]
        std[constant] = 0.0
        biggest = std.max()
        if biggest == 0:  # all features constant: nothing to scale by
            return loc, np.ones(X.shape[1])
        if covariance_type == "spherical":
            scale = np.full(X.shape[1], np.sqrt(np.mean((std / biggest) ** 2)) * biggest)
        else:
            # A constant feature is measured against the most variable one, as GaussianNB's
            # var_smoothing is relative to the largest variance.
            scale = np.where(constant, biggest, std)
        return loc, scale


class Bernoulli(Likelihood):
    """Independent Bernoulli outputs with probabilities sigmoid(decoder output).

    The log-probability is a true log-likelihood only for binary data; for other values in
    [0, 1] it is the cross-entropy, which is not a normalised density (see
    ``"continuous_bernoulli"``).
    """

    name = "bernoulli"

    def log_prob(self, x: Tensor, out: Tensor, mask: Tensor | None = None) -> Tensor:
        return -_masked_sum(F.binary_cross_entropy_with_logits(out, x, reduction="none"), mask)

    def mean(self, out: Tensor) -> Tensor:
        return torch.sigmoid(out)

    def sample(self, out: Tensor, generator: torch.Generator) -> Tensor:
        u = _noise(out.shape, out, generator, "uniform")
        return (u < torch.sigmoid(out)).to(out.dtype)

    @classmethod
    def check_domain(cls, X: np.ndarray, **learned: Any) -> None:
        _check_unit_interval(cls.name, X)


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

    @classmethod
    def check_domain(cls, X: np.ndarray, **learned: Any) -> None:
        _check_unit_interval(cls.name, X)


class Poisson(Likelihood):
    """Independent Poisson counts with rate exp(decoder output).

    The encoder sees log(1 + x), as scvi-tools feeds counts to its encoder.
    """

    name = "poisson"

    def encoder_input(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        return torch.log1p(x)

    def log_prob(self, x: Tensor, out: Tensor, mask: Tensor | None = None) -> Tensor:
        return _masked_sum(x * out - out.exp() - torch.lgamma(x + 1), mask)

    def mean(self, out: Tensor) -> Tensor:
        return out.exp()

    def sample(self, out: Tensor, generator: torch.Generator) -> Tensor:
        rate = out.exp().cpu()
        return torch.poisson(rate, generator=generator).to(out.device)

    @classmethod
    def check_domain(cls, X: np.ndarray, **learned: Any) -> None:
        _check_counts(cls.name, X)


class NegativeBinomial(Poisson):
    """Negative binomial counts with mean exp(decoder output) and a learned dispersion.

    Var = mu + mu^2 / theta, with one inverse dispersion theta per feature (as scvi-tools'
    gene-wise dispersion): a Poisson with overdispersion, a gamma-Poisson mixture.
    """

    name = "negative_binomial"

    def __init__(self, n_features: int, covariance_type: str = "diag", **learned: Any) -> None:
        super().__init__(n_features, covariance_type, **learned)
        self.log_theta = nn.Parameter(torch.zeros(n_features))

    def log_prob(self, x: Tensor, out: Tensor, mask: Tensor | None = None) -> Tensor:
        log_theta = self.log_theta
        theta = log_theta.exp()
        # log(theta + mu) from the logs, without overflow for large mu or theta.
        log_theta_mu = torch.logaddexp(log_theta, out)
        log_p = (
            torch.lgamma(x + theta)
            - torch.lgamma(theta)
            - torch.lgamma(x + 1)
            + theta * (log_theta - log_theta_mu)
            + x * (out - log_theta_mu)
        )
        return _masked_sum(log_p, mask)

    def sample(self, out: Tensor, generator: torch.Generator) -> Tensor:
        theta = self.log_theta.exp().detach().cpu().to(out.dtype).expand(out.shape)
        mu = out.exp().cpu()
        rate = torch._standard_gamma(theta.contiguous(), generator=generator) * mu / theta
        return torch.poisson(rate, generator=generator).to(out.device)


class Categorical(Likelihood):
    """One categorical variable per column, coded 0, 1, ..., n_categories - 1.

    The number of categories of each column is learned in fit (its largest code plus one);
    the decoder outputs one softmax per column, and the encoder sees the columns one-hot.
    ``mean`` is the most probable category (the mean of category codes has no meaning).
    """

    name = "categorical"

    def __init__(self, n_features: int, covariance_type: str = "diag", **learned: Any) -> None:
        super().__init__(n_features, covariance_type, **learned)
        self.n_categories = [int(k) for k in learned["n_categories"]]
        offsets = np.concatenate([[0], np.cumsum(self.n_categories)])
        self.register_buffer("_offsets", torch.as_tensor(offsets[:-1]), persistent=False)
        # Index of each output's column, to spread one-hot codes and softmaxes.
        self._slices = [slice(a, b) for a, b in zip(offsets[:-1], offsets[1:], strict=True)]

    @property
    def n_outputs(self) -> int:
        return sum(self.n_categories)

    @property
    def n_inputs(self) -> int:
        return sum(self.n_categories)

    def encoder_input(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        codes = x.long() + self._offsets
        one_hot = torch.zeros(*x.shape[:-1], self.n_outputs, dtype=x.dtype, device=x.device)
        if mask is None:
            return one_hot.scatter_(-1, codes, 1.0)
        # A missing column is all zeros: no category is switched on.
        return one_hot.scatter_(-1, codes, mask.to(x.dtype))

    def _log_softmax(self, out: Tensor) -> list[Tensor]:
        return [F.log_softmax(out[..., s], dim=-1) for s in self._slices]

    def log_prob(self, x: Tensor, out: Tensor, mask: Tensor | None = None) -> Tensor:
        codes = x.long()
        total = torch.zeros(out.shape[:-1], dtype=out.dtype, device=out.device)
        for j, log_p in enumerate(self._log_softmax(out)):
            term = log_p.gather(-1, codes[..., j : j + 1]).squeeze(-1)
            total = total + (term if mask is None else term * mask[..., j])
        return total

    def mean(self, out: Tensor) -> Tensor:
        modes = [out[..., s].argmax(-1) for s in self._slices]
        return torch.stack(modes, dim=-1).to(out.dtype)

    def weighted_mean(self, out: Tensor, weights: Tensor) -> Tensor:
        # The most probable category of the mixture, as ``mean`` is for one component.
        modes = [
            (weights.unsqueeze(-1) * log_p.exp()).sum(1).argmax(-1)
            for log_p in self._log_softmax(out)
        ]
        return torch.stack(modes, dim=-1).to(out.dtype)

    def sample(self, out: Tensor, generator: torch.Generator) -> Tensor:
        draws = []
        for log_p in self._log_softmax(out):
            # Gumbel-max: argmax(log p + Gumbel noise) is a draw from the softmax.
            u = _noise(log_p.shape, log_p, generator, "uniform").clamp_min(1e-30)
            draws.append((log_p - torch.log(-torch.log(u))).argmax(-1))
        return torch.stack(draws, dim=-1).to(out.dtype)

    @classmethod
    def learn(cls, X: np.ndarray, **config: Any) -> dict:
        cls.check_domain(X)
        return {"n_categories": [int(k) for k in _column_max(X) + 1]}

    @classmethod
    def check_domain(cls, X: np.ndarray, **learned: Any) -> None:
        seen = _observed(X)
        if seen.size and (seen.min() < 0 or not np.all(seen == np.round(seen))):
            raise ValueError(
                "likelihood='categorical' needs integer category codes 0, 1, 2, ...; got "
                f"{_describe(X)}. Encode categories with sklearn's OrdinalEncoder first."
            )
        if "n_categories" in learned and seen.size:
            too_big = _column_max(X) >= np.asarray(learned["n_categories"])
            if np.any(too_big):
                j = int(np.flatnonzero(too_big)[0])
                raise ValueError(
                    f"Category code {int(_column_max(X)[j])} in categorical column {j} was not "
                    f"seen in fit, where its codes were 0 to {learned['n_categories'][j] - 1} "
                    "(partial_fit learns the categories from its first block)."
                )


class Mixed(Likelihood):
    """Several families side by side, each modelling its own columns.

    ``parts`` is a list of ``{"name": family, "columns": [indices], **learned}``; every
    column belongs to exactly one part. The log-probability is the sum of the parts'.
    """

    name = "mixed"

    def __init__(self, n_features: int, covariance_type: str = "diag", **learned: Any) -> None:
        super().__init__(n_features, covariance_type, **learned)
        self.parts = nn.ModuleList()
        self.columns: list[list[int]] = []
        outputs, start = [], 0
        for part in learned["parts"]:
            part = dict(part)
            columns = [int(c) for c in part.pop("columns")]
            name = part.pop("name")
            family = LIKELIHOODS[name](len(columns), covariance_type, **part)
            self.parts.append(family)
            self.columns.append(columns)
            outputs.append(slice(start, start + family.n_outputs))
            start += family.n_outputs
        self._outputs = outputs

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

    @staticmethod
    def _split(X: np.ndarray, parts: Sequence[dict]):
        for part in parts:
            yield LIKELIHOODS[part["name"]], X[:, part["columns"]], part

    @classmethod
    def check_domain(cls, X: np.ndarray, **learned: Any) -> None:
        for family, columns, part in cls._split(X, learned["parts"]):
            extra = {k: v for k, v in part.items() if k not in ("name", "columns")}
            family.check_domain(columns, **extra)

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

    @classmethod
    def learn(cls, X: np.ndarray, parts: Sequence[dict] = (), **config: Any) -> dict:
        return {
            "parts": [
                {**part, **family.learn(columns)} for family, columns, part in cls._split(X, parts)
            ]
        }

    @classmethod
    def data_scaling(
        cls, X: np.ndarray, covariance_type: str = "diag", parts: Sequence[dict] = (), **_: Any
    ) -> tuple[np.ndarray, np.ndarray]:
        loc, scale = np.zeros(X.shape[1]), np.ones(X.shape[1])
        for family, columns, part in cls._split(X, parts):
            loc[part["columns"]], scale[part["columns"]] = family.data_scaling(
                columns, covariance_type
            )
        return loc, scale


#: name -> class; feeds the ``likelihood`` parameter's allowed values.
LIKELIHOODS: dict[str, type[Likelihood]] = {
    cls.name: cls
    for cls in (Gaussian, Bernoulli, ContinuousBernoulli, Poisson, NegativeBinomial, Categorical)
}


def _family(name: str) -> type[Likelihood]:
    return Mixed if name == Mixed.name else LIKELIHOODS[name]


def build_likelihood(n_features: int, config: dict) -> Likelihood:
    """The likelihood described by ``config`` (a ``Likelihood.config``)."""
    config = dict(config)
    return _family(config.pop("name"))(n_features, **config)


def prepare_likelihood(
    X: np.ndarray, likelihood: str | Sequence[dict], covariance_type: str
) -> tuple[dict, np.ndarray, np.ndarray]:
    """Check X against a family (a name, or parts for ``Mixed``) and learn what it needs.

    Returns the likelihood's config (for ``build_likelihood``) and the data's location and
    scale for training.
    """
    if isinstance(likelihood, str):
        cls, config = LIKELIHOODS[likelihood], {}
    else:
        cls, config = Mixed, {"parts": [dict(part) for part in likelihood]}
    learned = {**config, **cls.learn(X, **config)}
    cls.check_domain(X, **learned)
    loc, scale = cls.data_scaling(X, covariance_type, **learned)
    return {"name": cls.name, "covariance_type": covariance_type, **learned}, loc, scale
