"""The torch model: inference q(z|x), generative p(x|z), the ELBO and the weighted bound.

Nothing here knows about scikit-learn. A batch is a dict of tensors: ``"x"`` the data,
already rescaled by the likelihood's scaling, with NaN for missing entries; optionally
``"mask"`` (1 observed, 0 missing, or None when the caller knows nothing is missing; with
it, x holds 0 in place of NaN and no search for NaN is made),
``"sparse"`` (the non-zero encoder inputs, see ``_sparse_layer``) and one tensor per covariate,
which conditions the encoder and the decoder without being modelled.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from ._library_size import log_library, scale_by_library
from ._likelihoods import Likelihood, build_likelihood
from ._posteriors import Posterior, posterior_class, posterior_spec, standard_normal_log_prob
from ._priors import Prior, build_prior
from ._sparse_layer import InputLinear, sparse_linear

__all__ = [
    "ACTIVATIONS",
    "Float32Network",
    "LossOutput",
    "VAEModule",
    "importance_pick",
    "with_float32_networks",
]

#: The encoder sees values at most this far from 0 in the rescaled units (standard
#: deviations for real columns): standardised training values of up to a million rows
#: are within it, and a value of 1e12 would make its variances overflow.
ENCODER_INPUT_LIMIT = 1e3

Batch = Mapping[str, Any]

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "identity": nn.Identity,
    "logistic": nn.Sigmoid,
    "tanh": nn.Tanh,
    "relu": nn.ReLU,
}


def _mlp(
    n_in: int,
    hidden: Sequence[int],
    n_out: int,
    activation: str,
    first: Callable[[int, int], nn.Module] = nn.Linear,
) -> nn.Sequential:
    """Affine layers with ``activation`` between them; ``first`` builds the first one."""
    widths = (n_in, *hidden, n_out)
    layers: list[nn.Module] = [first(widths[0], widths[1])]
    for width_in, width_out in zip(widths[1:-1], widths[2:], strict=True):
        layers += [ACTIVATIONS[activation](), nn.Linear(width_in, width_out)]
    return nn.Sequential(*layers)


def as_batch(batch: Batch | Tensor) -> Batch:
    """A bare tensor is the batch ``{"x": tensor}``."""
    return {"x": batch} if isinstance(batch, Tensor) else batch


class LossOutput(NamedTuple):
    """The training objective of a batch and its two parts."""

    loss: Tensor  # mean over rows of -(reconstruction - kl_weight * kl)
    reconstruction: Tensor  # log p(x | z) per row, one sample of z
    kl: Tensor  # KL(q(z | x) || p(z)) per row


class VAEModule(nn.Module):
    """Encoder, decoder, observation model and prior of a VAE.

    Parameters
    ----------
    n_features : int
        Width of x.
    n_components : int
        Width of z.
    hidden_layer_sizes : sequence of int
        Hidden widths of the encoder; the decoder mirrors them. Empty means both maps are
        affine (probabilistic PCA or factor analysis with a Gaussian likelihood).
    activation : str
        One of ``ACTIVATIONS``.
    likelihood : Likelihood
        The observation model: it says what the encoder sees of x
        (``likelihood.encoder_input``) and how many values the decoder outputs.
    missing : bool, default=False
        Give the encoder the observed-value mask as ``n_features`` extra inputs (MIWAE,
        Mattei and Frellsen 2019). Set when the training data has missing values.
    posterior : str or Posterior subclass, default="diagonal_gaussian"
        The family of q(z | x) (see ``skvae.POSTERIORS``).
    covariates : dict of str to int, default=None
        Batch keys of covariates and their widths: each is given to the encoder and the
        decoder as extra inputs.
    library : dict, default=None
        A library size for count families (see ``_library_size``): ``{"kind": "latent" or
        "observed", "loc": m, "scale": s}``, and ``"levels"`` for a prior per categorical
        covariate level. The decoder then gives proportions, and the mean is library x
        proportions; "latent" adds one latent variable, the standardised log library,
        after the ``n_components`` of z (``n_latent``). A batch's ``"library"`` tensor,
        when there is one, gives each row's observed library.
    dispersion : {"feature", "feature-covariate"}, default="feature"
        For the negative binomial families: one inverse dispersion per feature, or one per
        feature and level of the categorical covariates (log theta of a row is the
        feature's plus a learned shift for each of its levels, as scVI's "gene-batch").
    prior : dict, default=None
        The prior p(z), as a ``Prior.config`` (see ``skvae.PRIORS``); None: N(0, I). A
        latent library size takes the normal prior only.

    Notes
    -----
    Missing values are NaN in x. Whatever ``missing`` is, every method accepts them: the
    encoder sees them as 0 (the feature mean for standardised Gaussian columns; no
    category for categorical ones) and the likelihood leaves them out, so that the ELBO
    and the importance-weighted bound are bounds on log p(x_observed).
    """

    def __init__(
        self,
        n_features: int,
        n_components: int,
        hidden_layer_sizes: Sequence[int],
        activation: str,
        likelihood: Likelihood,
        missing: bool = False,
        posterior: str | type[Posterior] = "diagonal_gaussian",
        covariates: Mapping[str, int] | None = None,
        library: Mapping[str, Any] | None = None,
        dispersion: str = "feature",
        prior: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.n_features = n_features
        self.missing = bool(missing)
        self.n_components = n_components
        self.hidden_layer_sizes = tuple(hidden_layer_sizes)
        self.activation = activation
        self.posterior = posterior_class(posterior)
        self.covariates = {str(k): int(v) for k, v in (covariates or {}).items()}
        self.library = None if library is None else dict(library)
        # The latent variables the posterior covers: z, then the log library if latent.
        self.n_latent = n_components + int(bool(library) and library["kind"] == "latent")
        n_covariates = sum(self.covariates.values())
        n_inputs = likelihood.n_inputs + (n_features if self.missing else 0) + n_covariates
        n_params = self.posterior.n_params(self.n_latent)
        self.encoder = _mlp(n_inputs, hidden_layer_sizes, n_params, activation, InputLinear)
        self.decoder = _mlp(
            n_components + n_covariates,
            tuple(reversed(hidden_layer_sizes)),
            likelihood.n_outputs,
            activation,
        )
        self.likelihood = likelihood
        self.prior: Prior = build_prior(n_components, n_inputs, prior)
        if not self.prior.closed_form_kl and self.n_latent > n_components:
            raise ValueError(
                f"prior={self.prior.name!r} does not take a latent library size; use "
                'library_size="observed", or the normal prior.'
            )
        self.dispersion = dispersion
        self.dispersion_shift = None
        if dispersion == "feature-covariate":
            levels = self.covariates.get("categorical", 0)
            if not levels or not hasattr(likelihood, "row_log_theta"):
                raise ValueError(
                    'dispersion="feature-covariate" needs a negative binomial family and '
                    "categorical covariates."
                )
            self.dispersion_shift = nn.Parameter(torch.zeros(levels, likelihood.n_features))

    @property
    def spec(self) -> dict:
        """Constructor arguments, enough to rebuild the module with ``from_spec``."""
        return {
            "n_features": self.n_features,
            "n_components": self.n_components,
            "hidden_layer_sizes": self.hidden_layer_sizes,
            "activation": self.activation,
            "likelihood": self.likelihood.config,
            "missing": self.missing,
            "posterior": posterior_spec(self.posterior),
            "covariates": dict(self.covariates),
            "library": None if self.library is None else dict(self.library),
            "dispersion": self.dispersion,
            "prior": self.prior.config,
        }

    @classmethod
    def from_spec(cls, spec: dict) -> VAEModule:
        """Build a module (with fresh weights) from ``spec``."""
        spec = dict(spec)
        likelihood = build_likelihood(spec["n_features"], spec.pop("likelihood"))
        return cls(likelihood=likelihood, **spec)

    @property
    def sparse_inputs_possible(self) -> bool:
        """Whether the encoder sees ``likelihood.encoder_input(x)`` and covariates only.

        The sparse first layer takes the former's non-zero entries and adds the
        covariates' (dense, few) product; the mask channel has no sparse form.
        """
        return not self.missing

    # ------------------------------------------------------------------ the two maps

    def observed(self, batch: Batch) -> tuple[Tensor, Tensor | None]:
        """x with NaN set to 0, and the mask of observed entries (None when all are)."""
        x = batch["x"]
        if "mask" in batch:
            return x, batch["mask"]
        isnan = torch.isnan(x)
        if not self.missing and not bool(isnan.any()):
            return x, None
        return x.masked_fill(isnan, 0.0), (~isnan).to(x.dtype)

    def encoder_input(self, x: Tensor, mask: Tensor | None, batch: Batch) -> Tensor:
        """What the encoder sees: the likelihood's view of x, the mask, the covariates.

        Outside training, a value beyond ``ENCODER_INPUT_LIMIT`` (in the rescaled units) is
        seen at that limit: only the encoder's view, so that its variances stay finite; x
        itself is scored as it is. Standardised training rows lie within the limit.
        """
        inputs = [self.likelihood.encoder_input(x, mask)]
        if not self.training:
            inputs[0] = inputs[0].clamp(-ENCODER_INPUT_LIMIT, ENCODER_INPUT_LIMIT)
        if self.missing:
            inputs.append(torch.ones_like(x) if mask is None else mask)
        inputs += [batch[key].to(x.dtype) for key in self.covariates]
        return inputs[0] if len(inputs) == 1 else torch.cat(inputs, -1)

    def decoder_input(self, z: Tensor, batch: Batch) -> Tensor:
        """What the decoder sees: z and the covariates (repeated over samples of z)."""
        if not self.covariates:
            return z
        covariates = [batch[key].to(z.dtype) for key in self.covariates]
        if z.dim() == 3:  # (rows, samples, components)
            covariates = [c.unsqueeze(1).expand(-1, z.shape[1], -1) for c in covariates]
        return torch.cat([z, *covariates], -1)

    def inference(self, batch: Batch | Tensor, eps: Tensor | None = None) -> dict[str, Any]:
        """q(z | x) of the rows: ``{"posterior", "x", "mask"}``, and ``"z"`` given noise eps.

        ``x`` has its missing entries set to 0 and ``mask`` marks the observed ones.
        """
        batch = as_batch(batch)
        x, mask = self.observed(batch)
        sparse = batch.get("sparse")
        if sparse is None:
            out = self.encoder(self.encoder_input(x, mask, batch))
        else:
            first, *rest = self.encoder
            out = sparse_linear(sparse, first)
            if self.covariates:  # their weight rows follow the likelihood's inputs
                extra = torch.cat([batch[key].to(out.dtype) for key in self.covariates], -1)
                out = out + extra @ first.weight[self.likelihood.n_inputs :]
            for layer in rest:
                out = layer(out)
        posterior = self.posterior(out)
        result = {"posterior": posterior, "x": x, "mask": mask}
        if eps is not None:
            result["z"] = posterior.rsample(eps)
        return result

    def generative(self, z: Tensor, batch: Batch | None = None) -> dict[str, Tensor]:
        """p(x | z): ``{"out"}``, the decoder output the likelihood reads as its parameters.

        With a library, z may carry the standardised log library after its
        ``n_components`` values; the decoder sees z only.
        """
        out = self.decoder(self.decoder_input(z[..., : self.n_components], batch or {}))
        if self.library is not None:
            log_lib = log_library(self.library, z, self.n_components, batch)
            out = scale_by_library(out, log_lib, self.likelihood.n_features)
        if self.dispersion_shift is not None:
            shift = batch["categorical"].to(out.dtype) @ self.dispersion_shift
            if out.dim() == 3:  # (rows, samples, outputs)
                shift = shift.unsqueeze(1)
            log_theta = (self.likelihood.log_theta + shift).expand(*out.shape[:-1], -1)
            out = torch.cat([out, log_theta], -1)
        return {"out": out}

    def encode(self, batch: Batch | Tensor) -> Posterior:
        """q(z | x) of the rows; NaN entries of x are missing values."""
        return self.inference(batch)["posterior"]

    def decode(self, z: Tensor, batch: Batch | None = None) -> Tensor:
        """Decoder output: the parameters of p(x | z), as the likelihood reads them."""
        return self.generative(z, batch)["out"]

    # ------------------------------------------------------------------ objectives

    def loss(self, batch: Batch | Tensor, eps: Tensor, kl_weight: float = 1.0) -> LossOutput:
        """-(E_q log p(x|z) - kl_weight * KL) averaged over rows, one sample of z per row.

        ``eps`` is standard normal noise of shape (n_rows, n_components), reparameterised
        by the posterior. With noise of shape (n_rows, K, n_components) the objective is
        the importance-weighted bound instead (``iwae_loss``).
        """
        if eps.dim() == 3:
            return self.iwae_loss(batch, eps, kl_weight)
        batch = as_batch(batch)
        inferred = self.inference(batch, eps)
        x, mask = inferred["x"], inferred["mask"]
        rec = self.likelihood.log_prob(x, self.decode(inferred["z"], batch), mask)
        kl = self.kl(inferred["posterior"], inferred["z"])
        loss = -(rec.sum() - kl_weight * kl.sum()) / x.shape[0]
        return LossOutput(loss, rec, kl)

    def iwae_loss(self, batch: Batch | Tensor, eps: Tensor, kl_weight: float = 1.0) -> LossOutput:
        """-(importance-weighted bound) averaged over rows, K samples of z per row.

        ``eps`` has shape (n_rows, K, n_components). The value is the bound of Burda et al.
        (2015), with ``kl_weight`` on log p(z) - log q(z | x) in each weight. The gradients
        are IWAE's for the decoder and the doubly-reparameterised ones (DReG, Tucker et al.
        2019) for the encoder: its gradient flows only through z, with log q evaluated at
        fixed parameters and each sample's path weighted by its squared normalised weight,
        so that its signal does not vanish as K grows.
        """
        batch = as_batch(batch)
        inferred = self.inference(batch)
        x, mask = inferred["x"], inferred["mask"]
        posterior = inferred["posterior"].expand_samples()
        z = posterior.rsample(eps)  # (n, K, d)
        out = self.decode(z, batch)
        shape = (*out.shape[:2], -1)
        if mask is not None:
            mask = mask.unsqueeze(1).expand(shape)
        rec = self.likelihood.log_prob(x.unsqueeze(1).expand(shape), out, mask)
        frozen = type(posterior)(posterior.params.detach())
        log_ratio = self.log_prior(z) - frozen.log_prob(z)
        log_w = rec + kl_weight * log_ratio
        weights = torch.softmax(log_w.detach(), dim=1)
        if z.requires_grad:
            # The surrogate sends w_k dlog_w_k/dz_k back to z_k; DReG's encoder gradient
            # is w_k^2 dlog_w_k/dz_k dz_k/dphi.
            z.register_hook(lambda grad: grad * weights.unsqueeze(-1))
        surrogate = -(weights * log_w).sum(1)
        bound = torch.logsumexp(log_w.detach(), dim=1) - math.log(eps.shape[1])
        # The value is the bound, the gradient the surrogate's.
        loss = (surrogate - surrogate.detach() - bound).sum() / x.shape[0]
        return LossOutput(loss, rec.detach().mean(1), -log_ratio.detach().mean(1))

    def log_prior(self, z: Tensor) -> Tensor:
        """log p(z) of latent points (..., n_latent): the prior's, and a library's N(0, 1)."""
        if self.prior.closed_form_kl:
            return standard_normal_log_prob(z)
        return self.prior.log_prob(z, self)

    def kl(self, posterior: Posterior, z: Tensor) -> Tensor:
        """KL(q(z | x) || p(z)) per row: in closed form, or log q(z | x) - log p(z) at z."""
        if self.prior.closed_form_kl:
            return posterior.kl_to_prior()
        return posterior.log_prob(z) - self.log_prior(z)

    def elbo(self, batch: Batch | Tensor, eps: Tensor) -> Tensor:
        """Per-row single-sample ELBO estimate with the given noise (n_rows, n_components)."""
        output = self.loss(batch, eps)
        return output.reconstruction - output.kl

    def log_weights(
        self, batch: Batch | Tensor, eps: Tensor, with_z: bool = False
    ) -> tuple[Tensor, ...]:
        """Log importance weights (n, K) and decoder outputs (n, K, n_outputs).

        ``eps`` (K, n_components) is shared by every row: the K samples of each row are
        z_k = the posterior's reparameterisation of eps_k. ``with_z``: the samples z
        (n, K, n_latent) too, third.
        """
        batch = as_batch(batch)
        inferred = self.inference(batch)
        x, mask = inferred["x"], inferred["mask"]
        posterior = inferred["posterior"].expand_samples()
        z = posterior.rsample(eps.to(x.dtype).unsqueeze(0))  # (n, K, d)
        out = self.decode(z, batch)
        shape = (*out.shape[:2], -1)
        if mask is not None:
            mask = mask.unsqueeze(1).expand(shape)
        rec = self.likelihood.log_prob(x.unsqueeze(1).expand(shape), out, mask)
        log_w = rec + self.log_prior(z) - posterior.log_prob(z)
        return (log_w, out, z) if with_z else (log_w, out)

    def iw_bound(self, batch: Batch | Tensor, eps: Tensor) -> Tensor:
        """Per-row importance-weighted bound (Burda et al. 2015) with K = len(eps) samples.

        ``eps`` has shape (K, n_components) and is shared by every row (common random
        numbers), so a row's value does not depend on the other rows. K = 1 is the ELBO.
        With NaN in x, it is a bound on log p(x_observed).
        """
        log_w, _ = self.log_weights(batch, eps)
        return torch.logsumexp(log_w, dim=1) - math.log(eps.shape[0])

    def conditional_mean(self, batch: Batch | Tensor, eps: Tensor) -> Tensor:
        """E[x | x_observed] by self-normalised importance sampling, K = len(eps) samples.

        The samples z_k ~ q(z | x_observed) are weighted by p(x_observed | z_k) p(z_k) /
        q(z_k | x_observed), normalised to sum to 1, and the decoder means E[x | z_k]
        averaged with those weights (for categorical columns: the most probable category
        of the weighted mixture). Observed entries are returned as they are.
        """
        batch = as_batch(batch)
        log_w, out = self.log_weights(batch, eps)
        mean = self.likelihood.weighted_mean(out, torch.softmax(log_w, dim=1))
        x = batch["x"]
        return torch.where(torch.isnan(x), mean, x)

    def conditional_draw(self, batch: Batch | Tensor, eps: Tensor, generator) -> Tensor:
        """A draw of x_missing ~ p(x_missing | x_observed) per row, by importance resampling.

        Of the K samples z_k ~ q(z | x_observed) (``eps`` as in :meth:`log_weights`), one is
        picked with probability proportional to its importance weight, and x is drawn from
        p(x | z_k) with noise from the CPU ``generator``. Observed entries are returned as
        they are.
        """
        batch = as_batch(batch)
        log_w, out = self.log_weights(batch, eps)
        pick = importance_pick(log_w, generator).to(out.device)
        chosen = out[torch.arange(len(out), device=out.device), pick]
        x = batch["x"]
        return torch.where(torch.isnan(x), self.likelihood.sample(chosen, generator), x)


def importance_pick(log_w: Tensor, generator) -> Tensor:
    """Per row of ``log_w`` (n, K), an index k drawn with probability softmax(log_w)[k].

    The Gumbel-max draw, with uniform noise from the CPU ``generator``.
    """
    u = torch.rand(log_w.shape, generator=generator, dtype=torch.float64)
    gumbel = -torch.log(-torch.log(u.clamp_min(1e-300)))
    return (log_w.cpu().double() + gumbel).argmax(dim=1)


# The in-place form of each activation: in inference, its input is a layer's fresh output.
_IN_PLACE = {nn.ReLU: torch.relu_, nn.Tanh: torch.tanh_, nn.Sigmoid: torch.sigmoid_}


class Float32Network(nn.Module):
    """A network of a float64 module run in float32: its input is cast, its output cast back.

    Its matrix products, most of inference's work, then run at float32's speed, while the
    module computes what follows from the outputs (densities, sums) in float64. For
    inference only: activations overwrite the layers' outputs.
    """

    def __init__(self, network: nn.Sequential) -> None:
        super().__init__()
        self.network = network.float()
        self._steps = [
            _IN_PLACE.get(type(layer), layer)
            for layer in self.network
            if not isinstance(layer, nn.Identity)
        ]

    def forward(self, x: Tensor) -> Tensor:
        x = x.float()
        for step in self._steps:
            x = step(x)
        return x.double()


def with_float32_networks(module: VAEModule) -> VAEModule:
    """A copy of a float64 ``module`` whose encoder and decoder run in float32."""
    copied = copy.deepcopy(module)
    copied.encoder = Float32Network(copied.encoder)
    copied.decoder = Float32Network(copied.decoder)
    return copied
