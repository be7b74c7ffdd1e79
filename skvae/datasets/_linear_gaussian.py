"""The linear-Gaussian process: its model, its generator and its closed-form log-likelihood."""

from dataclasses import dataclass

import numpy as np
from scipy import linalg
from sklearn.utils import check_random_state

from ._common import (
    _LOG_2PI,
    _check_int,
    _check_positive,
    _check_sizes,
    _check_X,
    _LatentVariableModel,
)

# --------------------------------------------------------------------------
# Linear-Gaussian process
# --------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class LinearGaussianModel(_LatentVariableModel):
    """True parameters of a linear-Gaussian latent variable model.

    Samples are ``x = components.T @ z + mean + e`` with
    ``z ~ N(0, I_n_components)`` and ``e ~ N(0, diag(noise_variance))``, so
    ``x ~ N(mean, components.T @ components + diag(noise_variance))``.

    Instances are returned by :func:`make_linear_gaussian`.

    Attributes
    ----------
    components : ndarray of shape (n_components, n_features)
        Loading matrix ``W``, laid out as scikit-learn's ``components_``
        (one row per latent dimension).
    mean : ndarray of shape (n_features,)
        Mean ``mu`` of the data.
    noise_variance : ndarray of shape (n_features,)
        Per-feature variance of the additive Gaussian noise (the diagonal of
        ``Psi``). All entries are equal for spherical noise.
    """

    components: np.ndarray
    mean: np.ndarray
    noise_variance: np.ndarray

    @property
    def n_components(self):
        """Number of latent dimensions."""
        return self.components.shape[0]

    @property
    def n_features(self):
        """Number of observed features."""
        return self.components.shape[1]

    @property
    def covariance(self):
        """Marginal covariance ``W^T W + Psi``, shape (n_features, n_features)."""
        return self.components.T @ self.components + np.diag(self.noise_variance)

    @property
    def _n_latent(self):
        return self.n_components

    @property
    def _noise_scale(self):
        return np.sqrt(self.noise_variance)

    def _decode(self, z):
        return z @ self.components + self.mean

    def score_samples(self, X):
        """Exact log-likelihood of each sample.

        Same as ``linear_gaussian_log_likelihood(X, self)``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Data.

        Returns
        -------
        log_likelihood : ndarray of shape (n_samples,)
            ``log p(x)`` for each row of ``X``, in nats.
        """
        return linear_gaussian_log_likelihood(X, self)


def make_linear_gaussian(
    n_samples=1000,
    *,
    n_features=10,
    n_components=2,
    noise="diag",
    noise_scale=0.5,
    random_state=None,
):
    """Generate data from a random linear-Gaussian latent variable model.

    Samples are ``x = W^T z + mu + e`` with ``z ~ N(0, I_n_components)`` and
    ``e ~ N(0, Psi)``. This is factor analysis for ``noise="diag"`` and
    probabilistic PCA for ``noise="spherical"``. The marginal distribution is
    ``N(mu, W^T W + Psi)``, so the exact log-likelihood is known in closed
    form (see :func:`linear_gaussian_log_likelihood`).

    The parameters are drawn at random: ``W`` and ``mu`` have independent
    standard normal entries, and ``Psi`` is ``diag(noise_scale**2 * u)`` with
    ``u_j ~ Uniform(0.5, 2)`` for diagonal noise, or ``noise_scale**2 * I``
    for spherical noise.

    Parameters
    ----------
    n_samples : int, default=1000
        Number of samples.
    n_features : int, default=10
        Number of observed features, at least ``n_components``.
    n_components : int, default=2
        Number of latent dimensions. Must not exceed ``n_features``.
    noise : {"diag", "spherical"}, default="diag"
        Noise covariance: diagonal with random per-feature variances, or
        ``noise_scale**2`` times the identity.
    noise_scale : float, default=0.5
        Typical noise standard deviation (exact for spherical noise).
    random_state : int, RandomState instance or None, default=None
        Seed or generator for the parameters, the latent variables and the
        noise. Pass an int for reproducible output.

    Returns
    -------
    X : ndarray of shape (n_samples, n_features)
        Samples.
    model : LinearGaussianModel
        True parameters, with attributes ``components`` (``W``, shape
        ``(n_components, n_features)``), ``mean`` and ``noise_variance``
        (shape ``(n_features,)``). ``model.score_samples(X)`` returns the
        exact per-sample log-likelihood.

    See Also
    --------
    linear_gaussian_log_likelihood : Exact log p(x) under the model.
    make_nonlinear_process : Data from a nonlinear one-dimensional process.

    Examples
    --------
    >>> from skvae.datasets import make_linear_gaussian
    >>> X, model = make_linear_gaussian(500, n_features=4, n_components=2, random_state=0)
    >>> X.shape
    (500, 4)
    >>> model.components.shape, model.noise_variance.shape
    ((2, 4), (4,))
    >>> model.score_samples(X).shape
    (500,)
    """
    n_samples, n_features = _check_sizes(n_samples, n_features)
    n_components = _check_int(n_components, "n_components", 1)
    if n_components > n_features:
        raise ValueError(
            f"n_components must be <= n_features, got n_components={n_components} "
            f"and n_features={n_features}."
        )
    if noise not in ("diag", "spherical"):
        raise ValueError(f"noise must be 'diag' or 'spherical', got {noise!r}.")
    noise_scale = _check_positive(noise_scale, "noise_scale")

    rng = check_random_state(random_state)
    components = rng.standard_normal(size=(n_components, n_features))
    mean = rng.standard_normal(size=n_features)
    if noise == "diag":
        noise_variance = noise_scale**2 * rng.uniform(0.5, 2.0, size=n_features)
    else:
        noise_variance = np.full(n_features, noise_scale**2)
    model = LinearGaussianModel(components=components, mean=mean, noise_variance=noise_variance)
    X = model.sample(n_samples, random_state=rng)
    return X, model


def linear_gaussian_log_likelihood(X, model):
    """Exact per-sample log-likelihood under a linear-Gaussian model.

    Computes ``log N(x; mu, W^T W + Psi)`` through a Cholesky factorisation of
    the marginal covariance.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        Data.
    model : LinearGaussianModel
        The model, as returned by :func:`make_linear_gaussian`.

    Returns
    -------
    log_likelihood : ndarray of shape (n_samples,)
        ``log p(x)`` for each row of ``X``, in nats, in closed form.

    Examples
    --------
    >>> import numpy as np
    >>> from skvae.datasets import make_linear_gaussian, linear_gaussian_log_likelihood
    >>> X, model = make_linear_gaussian(100, n_features=3, n_components=1, random_state=0)
    >>> log_p = linear_gaussian_log_likelihood(X, model)
    >>> log_p.shape
    (100,)
    >>> from scipy.stats import multivariate_normal
    >>> reference = multivariate_normal(model.mean, model.covariance).logpdf(X)
    >>> bool(np.allclose(log_p, reference))
    True
    """
    X = _check_X(X, model.n_features)
    chol = linalg.cholesky(model.covariance, lower=True)
    whitened = linalg.solve_triangular(chol, (X - model.mean).T, lower=True)
    log_det = 2.0 * np.sum(np.log(np.diag(chol)))
    return -0.5 * (model.n_features * _LOG_2PI + log_det + np.sum(whitened**2, axis=0))
