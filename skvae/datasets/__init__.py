"""Synthetic data-generating processes with a known exact log-likelihood.

The generators in this module return a data matrix together with the model
that produced it. Each model knows its exact per-sample log-density
``log p(x)``, so a fitted variational autoencoder can be compared with the
truth: its evidence lower bound should stay below the exact log-likelihood,
and a good fit should come close to it.

Three processes are available:

- :func:`make_linear_gaussian` draws from a linear-Gaussian latent variable
  model (factor analysis, or probabilistic PCA when the noise is spherical).
  Its marginal is Gaussian, and :func:`linear_gaussian_log_likelihood`
  evaluates it in closed form.
- :func:`make_nonlinear_process` maps a one-dimensional standard normal
  latent through a fixed smooth curve and adds isotropic Gaussian noise.
  :func:`nonlinear_process_log_likelihood` integrates the latent out
  numerically, on a grid fine enough for the quadrature error to be
  negligible.
- :func:`make_nonlinear_surface` does the same with a two-dimensional latent
  (a surface), and :func:`nonlinear_surface_log_likelihood` integrates it out
  on a two-dimensional grid.

All models also offer ``score_samples(X)``, the same as the matching
module-level function, and ``sample(n_samples, random_state=None)``.
"""

# Only numpy, scipy and sklearn.utils are used, so the package imports without torch.

from ._linear_gaussian import (
    LinearGaussianModel,
    linear_gaussian_log_likelihood,
    make_linear_gaussian,
)
from ._nonlinear import (
    NonlinearProcessModel,
    NonlinearSurfaceModel,
    make_nonlinear_process,
    make_nonlinear_surface,
    nonlinear_process_log_likelihood,
    nonlinear_surface_log_likelihood,
)

__all__ = [
    "LinearGaussianModel",
    "NonlinearProcessModel",
    "NonlinearSurfaceModel",
    "linear_gaussian_log_likelihood",
    "make_linear_gaussian",
    "make_nonlinear_process",
    "make_nonlinear_surface",
    "nonlinear_process_log_likelihood",
    "nonlinear_surface_log_likelihood",
]
