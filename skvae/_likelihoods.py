"""Observation models p(x | z): one class per family and a name -> class registry.

Each family owns everything that depends on it: how many decoder outputs it needs per
feature, its log-probability, its mean, its sampler, the check of its input domain and the
affine rescaling of the data that training uses. Adding a family means adding one class
here and one line to ``LIKELIHOODS``.
"""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

__all__ = ["Likelihood", "Gaussian", "Bernoulli", "LIKELIHOODS", "VAR_SMOOTHING"]

#: Floor on a Gaussian noise variance, relative to the variance of the feature (for
#: ``covariance_type="diag"``) or of the data (``"spherical"``). A constant feature would
#: otherwise drive its noise variance, and the likelihood, to infinity. The idea is
#: GaussianNB's ``var_smoothing``.
VAR_SMOOTHING = 1e-6

_LOG_2PI = math.log(2.0 * math.pi)


class Likelihood(nn.Module):
    """Base class of an observation model p(x | z) whose parameters the decoder outputs.

    Subclasses set ``name`` and ``n_params`` (decoder outputs per feature) and implement
    ``log_prob``, ``mean`` and ``sample``; ``check_domain`` and ``data_scaling`` have
    defaults that accept any finite data and leave it in its own units.
    """

    name: ClassVar[str]
    n_params: ClassVar[int] = 1

    def __init__(self, n_features: int, covariance_type: str = "diag") -> None:
        super().__init__()
        self.n_features = n_features
        self.covariance_type = covariance_type

    def log_prob(self, x: Tensor, out: Tensor) -> Tensor:
        """Log p(x | z) summed over features; ``out`` is the decoder output."""
        raise NotImplementedError

    def mean(self, out: Tensor) -> Tensor:
        """E[x | z] for decoder output ``out``."""
        raise NotImplementedError

    def sample(self, out: Tensor, generator: torch.Generator) -> Tensor:
        """Draws x ~ p(x | z), with noise from a CPU ``generator``."""
        raise NotImplementedError

    @classmethod
    def check_domain(cls, X: np.ndarray) -> None:
        """Raise ValueError when X is outside the support of the family."""

    @classmethod
    def data_scaling(
        cls, X: np.ndarray, covariance_type: str = "diag"
    ) -> tuple[np.ndarray, np.ndarray]:
        """Location and scale such that the model is trained on (X - loc) / scale."""
        n_features = X.shape[1]
        return np.zeros(n_features), np.ones(n_features)


def _noise_like(out: Tensor, generator: torch.Generator, kind: str = "normal") -> Tensor:
    # Noise is drawn on the CPU from a CPU generator so that draws do not depend on the
    # device, then moved to where the decoder output lives.
    draw = torch.randn if kind == "normal" else torch.rand
    return draw(out.shape, generator=generator, dtype=out.dtype).to(out.device)


class Gaussian(Likelihood):
    """Gaussian noise around the decoder mean with learned, z-independent variances.

    ``covariance_type="diag"`` learns one variance per feature (factor analysis when the
    decoder is linear); ``"spherical"`` one shared variance (probabilistic PCA). Training
    sees standardised data (per feature for "diag", one global scale for "spherical", so
    that the model family is unchanged); variances have the floor ``VAR_SMOOTHING``.
    """

    name = "gaussian"
    n_params = 1

    def __init__(self, n_features: int, covariance_type: str = "diag") -> None:
        super().__init__(n_features, covariance_type)
        n_var = n_features if covariance_type == "diag" else 1
        self.log_var = nn.Parameter(torch.zeros(n_var))

    @property
    def variance(self) -> Tensor:
        """Noise variances in the units of the standardised data."""
        return VAR_SMOOTHING + self.log_var.exp()

    def log_prob(self, x: Tensor, out: Tensor) -> Tensor:
        var = self.variance
        # The sum of log-variances is a per-model constant: added once, not per element.
        log_norm = var.log().sum() if var.numel() > 1 else var.log() * self.n_features
        sq = ((x - out) ** 2 / var).sum(-1)
        return -0.5 * (sq + log_norm + self.n_features * _LOG_2PI)

    def mean(self, out: Tensor) -> Tensor:
        return out

    def sample(self, out: Tensor, generator: torch.Generator) -> Tensor:
        return out + self.variance.sqrt() * _noise_like(out, generator)

    @classmethod
    def data_scaling(
        cls, X: np.ndarray, covariance_type: str = "diag"
    ) -> tuple[np.ndarray, np.ndarray]:
        loc = X.mean(axis=0)
        constant = np.ptp(X, axis=0) == 0
        # The mean of identical values can be off in the last bit: use the value itself.
        loc[constant] = X[0, constant]
        # Scale by the largest magnitude first so that squares of 1e+200 do not overflow.
        amax = np.max(np.abs(X), axis=0)
        amax[amax == 0] = 1.0
        std = np.std(X / amax, axis=0) * amax
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
    [0, 1] it is the cross-entropy, which is not a normalised density.
    """

    name = "bernoulli"
    n_params = 1

    def log_prob(self, x: Tensor, out: Tensor) -> Tensor:
        return -F.binary_cross_entropy_with_logits(out, x, reduction="none").sum(-1)

    def mean(self, out: Tensor) -> Tensor:
        return torch.sigmoid(out)

    def sample(self, out: Tensor, generator: torch.Generator) -> Tensor:
        u = _noise_like(out, generator, kind="uniform")
        return (u < torch.sigmoid(out)).to(out.dtype)

    @classmethod
    def check_domain(cls, X: np.ndarray) -> None:
        if X.size and (X.min() < 0 or X.max() > 1):
            raise ValueError(
                "likelihood='bernoulli' needs data in [0, 1]; got values from "
                f"{X.min():.4g} to {X.max():.4g}. Scale the data (e.g. MinMaxScaler) or "
                "use likelihood='gaussian'."
            )


#: name -> class; feeds the ``likelihood`` parameter's allowed values.
LIKELIHOODS: dict[str, type[Likelihood]] = {cls.name: cls for cls in (Gaussian, Bernoulli)}
