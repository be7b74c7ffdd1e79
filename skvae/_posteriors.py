"""Posterior families q(z | x): what the encoder's outputs mean, and a name -> class registry.

A posterior is built from the encoder's output for a batch of rows and is reparameterised
through standard normal noise: ``rsample(eps)`` maps eps ~ N(0, I) to z ~ q(z | x), so that
the training noise and the common random numbers of ``score_samples`` stay the same
whatever the family. Adding a family is one subclass and ``register_posterior``.
"""

from __future__ import annotations

import functools
import math
from typing import ClassVar

import torch
from torch import Tensor

__all__ = [
    "POSTERIORS",
    "DiagonalGaussian",
    "Posterior",
    "derivative_applies",
    "register_posterior",
]

_LOG_2PI = math.log(2.0 * math.pi)


def _owner(cls: type, name: str) -> type | None:
    return next((c for c in cls.__mro__ if name in vars(c)), None)


@functools.cache
def derivative_applies(cls: type, derivative: str, uses: tuple[str, ...]) -> bool:
    """Whether ``cls.<derivative>``, a derivative by hand, is that of ``cls``'s own maths.

    True when the class that wrote the derivative sees the same definitions of ``uses``
    as ``cls`` does: a subclass that redefines one of them, and not the derivative, is
    differentiated by autograd instead.
    """
    author = _owner(cls, derivative)
    return all(_owner(cls, name) is _owner(author, name) for name in uses)


def standard_normal_log_prob(z: Tensor) -> Tensor:
    """log N(z; 0, I), summed over the last axis: the prior's density."""
    return -0.5 * (z**2).sum(-1) - 0.5 * z.shape[-1] * _LOG_2PI


class Posterior:
    """q(z | x) for a batch of rows, from the encoder output ``params`` (..., n_params).

    Subclasses set ``name``, ``n_params`` and implement ``mean``, ``rsample``,
    ``log_prob`` and ``kl_per_component``; ``kl_to_prior`` and the importance-weighted
    bound follow from them. ``rsample`` must broadcast ``params``' leading axes against
    those of the noise, which is how ``expand_samples`` draws K samples per row.
    """

    name: ClassVar[str]

    def __init__(self, params: Tensor) -> None:
        self.params = params

    @staticmethod
    def n_params(n_components: int) -> int:
        """Encoder outputs needed for a latent space of ``n_components`` dimensions."""
        raise NotImplementedError

    @property
    def mean(self) -> Tensor:
        """E_q[z], shape (..., n_components): what ``transform`` returns."""
        raise NotImplementedError

    def rsample(self, eps: Tensor) -> Tensor:
        """z ~ q(z | x) from standard normal noise of the shape of z, differentiably."""
        raise NotImplementedError

    def log_prob(self, z: Tensor) -> Tensor:
        """log q(z | x), summed over the latent axis."""
        raise NotImplementedError

    def kl_per_component(self) -> Tensor:
        """KL(q(z_u | x) || N(0, 1)) of each latent dimension's marginal, (..., n_components).

        For a posterior that factorises over dimensions these add up to ``kl_to_prior``.
        """
        raise NotImplementedError

    def kl_to_prior(self) -> Tensor:
        """KL(q(z | x) || N(0, I)) per row; override where the posterior does not factorise."""
        return self.kl_per_component().sum(-1)

    def params_grad(self, eps: Tensor, grad_z: Tensor, kl_scale: Tensor | float) -> Tensor:
        """Gradient in ``params`` of sum(grad_z * z) + sum(kl_scale * KL), z = rsample(eps).

        ``grad_z`` is a loss's gradient in z; ``kl_scale`` a number or a column (n, 1) of
        per-row weights of the KL. The training step that computes gradients by hand calls
        it; a family's derivative by hand (``_params_grad``) is used where it applies
        (``derivative_applies``), autograd otherwise.
        """
        uses = ("__init__", "rsample", "kl_per_component", "kl_to_prior")
        if derivative_applies(type(self), "_params_grad", uses):
            return self._params_grad(eps, grad_z, kl_scale)
        params = self.params.detach().requires_grad_()
        with torch.enable_grad():
            q = type(self)(params)
            kl = q.kl_to_prior().unsqueeze(-1) * kl_scale
            total = (q.rsample(eps) * grad_z).sum() + kl.sum()
            return torch.autograd.grad(total, params)[0]

    def _params_grad(self, eps: Tensor, grad_z: Tensor, kl_scale: Tensor | float) -> Tensor:
        return self.params_grad(eps, grad_z, kl_scale)  # pragma: no cover (never applies)

    def expand_samples(self) -> Posterior:
        """This posterior with a sample axis before the latent one: (n, 1, n_params).

        Its ``rsample`` of noise (K, n_components) then gives K draws per row, (n, K, d),
        the same K noise vectors for every row (common random numbers).
        """
        return type(self)(self.params.unsqueeze(-2))


class DiagonalGaussian(Posterior):
    """N(mu(x), diag sigma(x)^2), the encoder giving mu and log sigma^2 (Kingma and Welling)."""

    name = "diagonal_gaussian"

    def __init__(self, params: Tensor) -> None:
        super().__init__(params)
        self.loc, self.log_var = params.chunk(2, dim=-1)

    @staticmethod
    def n_params(n_components: int) -> int:
        return 2 * n_components

    @property
    def mean(self) -> Tensor:
        return self.loc

    @functools.cached_property
    def scale(self) -> Tensor:
        """sigma(x): computed once, for the draws and the derivatives."""
        return (0.5 * self.log_var).exp()

    def rsample(self, eps: Tensor) -> Tensor:
        return self.loc + self.scale * eps

    def log_prob(self, z: Tensor) -> Tensor:
        scaled = (z - self.loc) * (-0.5 * self.log_var).exp()
        return standard_normal_log_prob(scaled) - 0.5 * self.log_var.sum(-1)

    def kl_per_component(self) -> Tensor:
        # 0.5 (sigma^2 + mu^2 - 1 - log sigma^2), from the sigma the draws computed.
        return (
            torch.addcmul(self.scale * self.scale - self.log_var, self.loc, self.loc)
            .sub_(1.0)
            .mul_(0.5)
        )

    def _params_grad(self, eps: Tensor, grad_z: Tensor, kl_scale: Tensor | float) -> Tensor:
        # z = mu + sigma eps; d KL / d mu = mu, d KL / d log_var = (sigma^2 - 1) / 2, and
        # d z / d log_var = sigma eps / 2.
        grad = torch.empty_like(self.params)
        d = self.loc.shape[-1]
        if isinstance(kl_scale, Tensor):
            torch.addcmul(grad_z, self.loc, kl_scale, out=grad[..., :d])
        else:
            torch.add(grad_z, self.loc, alpha=kl_scale, out=grad[..., :d])
        variance_term = (self.scale * self.scale - 1.0).mul_(0.5 * kl_scale)
        torch.addcmul(variance_term, grad_z * eps, self.scale, value=0.5, out=grad[..., d:])
        return grad


#: name -> class; feeds the ``posterior`` parameter's allowed values.
POSTERIORS: dict[str, type[Posterior]] = {DiagonalGaussian.name: DiagonalGaussian}


def register_posterior(cls: type[Posterior]) -> type[Posterior]:
    """Make ``cls`` available as ``posterior=cls.name``; usable as a class decorator.

    Parameters
    ----------
    cls : Posterior subclass
        The family of q(z | x): its ``name``, ``n_params``, ``mean``, ``rsample``,
        ``log_prob`` and ``kl_per_component`` (and ``kl_to_prior`` where it does not
        factorise over the latent dimensions).

    Returns
    -------
    cls : Posterior subclass
        The same class, now in ``skvae.POSTERIORS``.

    Examples
    --------
    >>> from skvae import POSTERIORS, VAEEstimator, register_posterior
    >>> from skvae.datasets import make_linear_gaussian
    >>> @register_posterior
    ... class SharedScale(POSTERIORS["diagonal_gaussian"]):
    ...     name = "shared_scale"  # one posterior variance for every latent dimension
    ...
    ...     def __init__(self, params):
    ...         super().__init__(params)
    ...         self.log_var = self.log_var.mean(-1, keepdim=True).expand_as(self.loc)
    >>> X, _ = make_linear_gaussian(300, n_features=4, random_state=0)
    >>> vae = VAEEstimator(posterior="shared_scale", hidden_layer_sizes=(8,), tol=0.1)
    >>> vae.fit(X).transform(X[:2]).shape
    (2, 2)
    >>> del POSTERIORS["shared_scale"]
    """
    if not (isinstance(cls, type) and issubclass(cls, Posterior)):
        raise TypeError(f"register_posterior takes a Posterior subclass, got {cls!r}.")
    POSTERIORS[cls.name] = cls
    return cls


def posterior_class(posterior: str | type[Posterior]) -> type[Posterior]:
    """The class a ``posterior`` parameter names (a registered name or a subclass)."""
    if isinstance(posterior, type) and issubclass(posterior, Posterior):
        return posterior
    try:
        return POSTERIORS[posterior]
    except (KeyError, TypeError):
        raise ValueError(
            f"Unknown posterior {posterior!r}; choose from {sorted(POSTERIORS)} or pass a "
            "skvae.Posterior subclass."
        ) from None


def posterior_spec(cls: type[Posterior]) -> str | type[Posterior]:
    """How a module's spec names ``cls``: its registered name, else the class itself."""
    return cls.name if POSTERIORS.get(cls.name) is cls else cls
