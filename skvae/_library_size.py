"""Library size: a count row's mean as its total times the proportions the decoder gives.

Counts from the same profile come in very different totals (sequencing depth, document
length). With ``library_size`` set, the decoder gives proportions rho(z) = softmax(output)
and the mean of the counts is library x rho(z), as scVI (Lopez et al. 2018) models them,
so that the latent code need not spend a dimension on the total.

- ``"latent"``: log library ~ N(m, s^2), with m and s the mean and deviation of the
  training rows' log totals. The library is one more latent variable, written
  log library = m + s u with u ~ N(0, 1), which the encoder infers beside z: the ELBO and
  the importance-weighted bound integrate over it, and ``score_samples`` is a likelihood
  of x.
- ``"observed"``: the library is each row's own total. ``score_samples`` is then
  log p(x | z-integrated, library = total of x): a function of x is conditioned on, so it
  is not a likelihood of x and does not compare with other models' scores.
- A column of X: each row's library is given (size factors on the counts' scale, totals
  of genes left out), under batch key ``"library"``; the kind is "observed", and
  ``score_samples`` is log p(x | library), as with any covariate.

With categorical covariates (batches), m and s^2 are those of the row's levels: a least
squares fit of the log totals, and of their squared residuals, on the levels' indicators
(each batch's own mean and variance for one covariate; additive for several), as scVI
learns a library prior per batch.

Decoding without data (``inverse_transform``) uses the typical library exp(m); ``sample``
draws the library from its prior with "latent", and uses exp(m) with "observed".
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor
from torch.nn import functional as F

__all__ = [
    "LIBRARY_FAMILIES",
    "library_prior",
    "library_slope",
    "log_library",
    "row_totals",
    "scale_by_library",
    "scale_by_library_grad",
]

#: The families whose decoder output is a log mean per feature, which a library scales.
LIBRARY_FAMILIES = ("poisson", "negative_binomial", "zero_inflated_negative_binomial")


def row_totals(X) -> np.ndarray:
    """The total of each row of X (dense or sparse), in float64."""
    if sp.issparse(X):
        return np.asarray(X.sum(axis=1), dtype=np.float64).ravel()
    return X.sum(axis=1, dtype=np.float64)


def library_prior(totals: np.ndarray, kind: str, levels: np.ndarray | None = None) -> dict:
    """The library spec of a module: its kind and the mean and deviation of log totals.

    ``totals``: the training rows' libraries (their totals, or a column of given sizes).
    ``levels``: the one-hot indicators of the rows' categorical covariate levels, or None.
    With them, ``"levels"`` holds the coefficients of [1, indicators] that give each row's
    prior mean (``"loc"``) and variance (``"var"``).
    """
    log_totals = np.log(np.maximum(totals, 1.0))
    scale = float(log_totals.std())
    spec = {"kind": kind, "loc": float(log_totals.mean()), "scale": max(scale, 1e-3)}
    if levels is not None and levels.shape[1]:
        design = np.hstack([np.ones((len(levels), 1)), levels])
        loc = np.linalg.lstsq(design, log_totals, rcond=None)[0]
        var = np.linalg.lstsq(design, (log_totals - design @ loc) ** 2, rcond=None)[0]
        spec["levels"] = {"loc": loc.tolist(), "var": var.tolist()}
    return spec


#: The smallest prior variance of a log library (a deviation of 1e-3, as without levels).
_MIN_VAR = 1e-6


def _prior(library: dict, batch, like: Tensor) -> tuple[Tensor | float, Tensor | float]:
    """The prior mean and deviation of each row's log library, shaped to broadcast to ``like``."""
    levels = library.get("levels")
    if levels is None or batch is None or "categorical" not in batch:
        return library["loc"], library["scale"]
    indicators = batch["categorical"].to(like)
    design = torch.cat([torch.ones_like(indicators[:, :1]), indicators], -1)
    loc = design @ torch.tensor(levels["loc"]).to(like)
    scale = (design @ torch.tensor(levels["var"]).to(like)).clamp_min(_MIN_VAR).sqrt()
    shape = (-1,) + (1,) * (like.dim() - 1)
    return loc.reshape(shape), scale.reshape(shape)


def log_library(library: dict, z: Tensor, n_components: int, batch) -> Tensor:
    """Log library of each row (and sample of z): shape z's, with one last column."""
    like = z[..., :1]
    loc, scale = _prior(library, batch, like)
    if library["kind"] == "latent" and z.shape[-1] > n_components:
        return loc + scale * z[..., n_components : n_components + 1]
    x = batch.get("x") if batch is not None else None
    if library["kind"] == "observed" and batch is not None and "library" in batch:
        given = batch["library"].log().to(z.dtype)  # a column of X: each row's own size
        return given.unsqueeze(1).expand_as(like) if z.dim() == 3 else given
    if library["kind"] == "observed" and x is not None:
        # A row of zeros gets a library of 1: log 0 would make every mean 0.
        total = torch.nan_to_num(x).sum(-1, keepdim=True).clamp_min(1.0).log().to(z.dtype)
        return total.unsqueeze(1).expand_as(like) if z.dim() == 3 else total
    return torch.zeros_like(like) + loc


def scale_by_library(out: Tensor, log_lib: Tensor, n_features: int) -> Tensor:
    """Decoder output whose first ``n_features`` values become log(library x softmax)."""
    log_mu = F.log_softmax(out[..., :n_features], dim=-1) + log_lib
    return torch.cat([log_mu, out[..., n_features:]], dim=-1)


def scale_by_library_grad(out: Tensor, grad: Tensor, n_features: int) -> tuple[Tensor, Tensor]:
    """Gradients in ``out`` and in the log library, given ``grad`` in scale_by_library(out).

    The log-softmax's: grad - softmax(out) x sum(grad), and the sum for the log library.
    """
    grad_log_mu = grad[..., :n_features]
    total = grad_log_mu.sum(-1, keepdim=True)
    grad_out = grad.clone()
    grad_out[..., :n_features] -= torch.softmax(out[..., :n_features], dim=-1) * total
    return grad_out, total


def library_slope(library: dict, z: Tensor, n_components: int, batch) -> Tensor | float | None:
    """d log library / d z of the library's latent column; None where it is not latent."""
    if library["kind"] != "latent" or z.shape[-1] <= n_components:
        return None
    return _prior(library, batch, z[..., :1])[1]
