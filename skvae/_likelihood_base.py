"""The base class of every family p(x | z), the helpers the families share, and their table.

A family subclasses ``Likelihood``: the families are in ``_likelihoods`` and
``_count_likelihoods``, which import this module, and this module imports none of them.
``LIKELIHOODS`` maps a registered family's name to its class (``register_likelihood``, in
``_likelihoods``, fills it); ``Likelihood.config`` reads it.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from ._family_data import Domain
from ._posteriors import derivative_applies


def _noise(shape: torch.Size, like: Tensor, generator: torch.Generator, kind: str) -> Tensor:
    # Noise is drawn on the CPU from a CPU generator so that draws do not depend on the
    # device, then moved to where the decoder output lives.
    draw = torch.randn if kind == "normal" else torch.rand
    return draw(shape, generator=generator, dtype=like.dtype).to(like.device)


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
        registered = LIKELIHOODS.get(self.name) is type(self) or self.name == "mixed"
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
        """Where X holds values fit never saw (new categories) or outside a range that
        ``likelihood="auto"`` may have inferred, to be read as missing."""
        return self.domain.unseen(X, **self.settings)

    def column_family(self, j: int) -> Likelihood:
        """The family that models column ``j`` (this one; ``Mixed`` has several)."""
        return self


#: name -> class; feeds the ``likelihood`` parameter's allowed values.
LIKELIHOODS: dict[str, type[Likelihood]] = {}
