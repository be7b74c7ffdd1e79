"""Prior families p(z): the standard normal, a learned Gaussian mixture, the VampPrior.

A prior gives ``log_prob`` of latent points and turns standard normal noise into its own
draws (``reparameterise``), which is how ``sample`` and the training step draw from it.
The standard normal has a KL to a Gaussian posterior in closed form; for the others the
KL is estimated from the sample of z the step already draws, log q(z | x) - log p(z).
Adding a family is one subclass and ``register_prior``.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import Tensor, nn

from ._posteriors import standard_normal_log_prob

if TYPE_CHECKING:
    from ._module import VAEModule

__all__ = [
    "PRIORS",
    "GaussianMixturePrior",
    "Prior",
    "StandardNormal",
    "VampPrior",
    "build_prior",
    "prior_class",
    "prior_config",
    "register_prior",
]

_LOG_2PI = math.log(2.0 * math.pi)


class Prior(nn.Module):
    """Base class of a prior p(z) over the ``n_components`` latent dimensions.

    Subclasses set ``name`` and implement ``log_prob`` and ``reparameterise``; their
    learned parameters are ``nn.Parameter`` attributes, trained with the networks.
    ``n_prior_components`` is the number of mixture components of a mixture prior.

    Parameters
    ----------
    n_components : int
        Width of z.
    n_inputs : int
        Width of what the encoder sees (the VampPrior's pseudo-inputs live there).
    n_prior_components : int, default=10
        Components of a mixture prior (ignored by a prior that has none).
    """

    name: ClassVar[str]
    #: True when KL(q(z | x) || p(z)) of a Gaussian posterior has a closed form, the
    #: posterior's own ``kl_to_prior`` (the standard normal's).
    closed_form_kl: ClassVar[bool] = False

    def __init__(self, n_components: int, n_inputs: int, n_prior_components: int = 10) -> None:
        super().__init__()
        self.n_components = n_components
        self.n_inputs = n_inputs
        self.n_prior_components = n_prior_components

    @property
    def config(self) -> dict:
        """Everything needed to rebuild this prior with ``build_prior``."""
        return prior_config(type(self), self.n_prior_components)

    def log_prob(self, z: Tensor, module: VAEModule) -> Tensor:
        """log p(z), summed over the last axis; ``module`` is the VAE the prior belongs to."""
        raise NotImplementedError

    def reparameterise(self, eps: Tensor, generator: torch.Generator, module: VAEModule) -> Tensor:
        """Draws of the prior from standard normal noise ``eps`` (rows, n_components).

        A mixture picks each row's component with ``generator`` (a CPU generator).
        """
        raise NotImplementedError

    def _pick(self, log_weights: Tensor, n_rows: int, generator: torch.Generator) -> Tensor:
        """Each row's mixture component, drawn with ``generator``."""
        probs = torch.softmax(log_weights.detach().cpu().double(), -1)
        return torch.multinomial(probs, n_rows, replacement=True, generator=generator)


class StandardNormal(Prior):
    """p(z) = N(0, I): the VAE of Kingma and Welling."""

    name = "normal"
    closed_form_kl = True

    def log_prob(self, z: Tensor, module: VAEModule) -> Tensor:
        return standard_normal_log_prob(z)

    def reparameterise(self, eps, generator, module) -> Tensor:
        return eps


class GaussianMixturePrior(Prior):
    """p(z) = sum_k pi_k N(z; m_k, diag s_k^2), every weight, mean and variance learned.

    The means start as draws of N(0, I) (seeded with the network weights), the variances
    at 1 and the weights equal; a mixture prior lets the codes form groups, which the
    standard normal pulls together (VaDE, Jiang et al. 2017).
    """

    name = "mixture"

    def __init__(self, n_components: int, n_inputs: int, n_prior_components: int = 10) -> None:
        super().__init__(n_components, n_inputs, n_prior_components)
        k = n_prior_components
        self.means = nn.Parameter(torch.randn(k, n_components))
        self.log_vars = nn.Parameter(torch.zeros(k, n_components))
        self.logits = nn.Parameter(torch.zeros(k))

    def component_log_probs(self, z: Tensor) -> Tensor:
        """log pi_k + log N(z; m_k, s_k^2) for each component k: (..., n_prior_components)."""
        z = z.unsqueeze(-2)
        inv_scale = (-0.5 * self.log_vars).exp()
        gauss = standard_normal_log_prob((z - self.means) * inv_scale)
        return torch.log_softmax(self.logits, -1) + gauss - 0.5 * self.log_vars.sum(-1)

    def log_prob(self, z: Tensor, module: VAEModule) -> Tensor:
        return torch.logsumexp(self.component_log_probs(z), -1)

    def reparameterise(self, eps, generator, module) -> Tensor:
        k = self._pick(self.logits, len(eps), generator).to(eps.device)
        return self.component_draws(eps, k)

    def component_draws(self, eps: Tensor, k: Tensor) -> Tensor:
        """Draws of components ``k`` (one per row of ``eps``) from standard normal noise."""
        scale = (0.5 * self.log_vars[k]).exp().to(eps.dtype)
        return self.means[k].to(eps.dtype) + scale * eps


class VampPrior(Prior):
    """p(z) = (1/K) sum_k q(z | u_k): the encoder's posteriors at K learned pseudo-inputs.

    Tomczak and Welling (2018). The pseudo-inputs live where the encoder's inputs do (the
    rescaled data, the mask of observed entries, the covariates) and start as draws of
    N(0, 1) there.
    """

    name = "vamp"

    def __init__(self, n_components: int, n_inputs: int, n_prior_components: int = 10) -> None:
        super().__init__(n_components, n_inputs, n_prior_components)
        self.pseudo_inputs = nn.Parameter(torch.randn(n_prior_components, n_inputs))

    def posteriors(self, module: VAEModule):
        """q(z | u_k) of the K pseudo-inputs, its parameters of shape (K, n_params)."""
        return module.posterior(module.encoder(self.pseudo_inputs))

    def log_prob(self, z: Tensor, module: VAEModule) -> Tensor:
        per_component = self.posteriors(module).log_prob(z.unsqueeze(-2))
        return torch.logsumexp(per_component, -1) - math.log(self.n_prior_components)

    def reparameterise(self, eps, generator, module) -> Tensor:
        uniform = torch.zeros(self.n_prior_components)
        k = self._pick(uniform, len(eps), generator).to(eps.device)
        posterior = self.posteriors(module)
        return type(posterior)(posterior.params[k].to(eps.dtype)).rsample(eps)


#: name -> class; feeds the ``prior`` parameter's allowed values.
PRIORS: dict[str, type[Prior]] = {}


def register_prior(cls: type[Prior]) -> type[Prior]:
    """Make ``cls`` available as ``prior=cls.name``; usable as a class decorator.

    Parameters
    ----------
    cls : Prior subclass
        The family of p(z): its ``name``, ``log_prob`` and ``reparameterise``.

    Returns
    -------
    cls : Prior subclass
        The same class, now in ``skvae.PRIORS``.

    Examples
    --------
    >>> import math
    >>> from skvae import PRIORS, Prior, VAEEstimator, register_prior
    >>> from skvae.datasets import make_linear_gaussian
    >>> @register_prior
    ... class Wide(Prior):
    ...     name = "wide"  # N(0, 4 I)
    ...
    ...     def log_prob(self, z, module):
    ...         d = z.shape[-1]
    ...         return -(z**2).sum(-1) / 8 - d * math.log(2 * math.sqrt(2 * math.pi))
    ...
    ...     def reparameterise(self, eps, generator, module):
    ...         return 2 * eps
    >>> X, _ = make_linear_gaussian(300, n_features=4, random_state=0)
    >>> vae = VAEEstimator(prior="wide", hidden_layer_sizes=(8,), tol=0.1).fit(X)
    >>> vae.sample(2, random_state=0).shape
    (2, 4)
    >>> del PRIORS["wide"]
    """
    if not (isinstance(cls, type) and issubclass(cls, Prior)):
        raise TypeError(f"register_prior takes a Prior subclass, got {cls!r}.")
    PRIORS[cls.name] = cls
    return cls


for _family in (StandardNormal, GaussianMixturePrior, VampPrior):
    register_prior(_family)


def prior_class(prior: str | type[Prior]) -> type[Prior]:
    """The class a ``prior`` parameter names (a registered name or a subclass)."""
    if isinstance(prior, type) and issubclass(prior, Prior):
        return prior
    try:
        return PRIORS[prior]
    except (KeyError, TypeError):
        raise ValueError(
            f"Unknown prior {prior!r}; choose from {sorted(PRIORS)} or pass a skvae.Prior "
            "subclass."
        ) from None


def prior_config(prior: str | type[Prior], n_prior_components: int) -> dict:
    """A module's spec of a ``prior`` parameter: its registered name, else the class."""
    cls = prior_class(prior)
    name = cls.name if PRIORS.get(cls.name) is cls else cls
    return {"name": name, "n_prior_components": int(n_prior_components)}


def build_prior(n_components: int, n_inputs: int, config: dict[str, Any] | None) -> Prior:
    """The prior described by ``config`` (a ``Prior.config``; None: the standard normal)."""
    config = dict(config or {"name": "normal"})
    return prior_class(config.pop("name"))(n_components, n_inputs, **config)
