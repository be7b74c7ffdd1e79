"""What the synthetic processes share: argument checks, and the latent-variable model base."""

from numbers import Integral, Real

import numpy as np
from sklearn.utils import check_random_state

_LOG_2PI = np.log(2.0 * np.pi)


# --------------------------------------------------------------------------
# Argument validation
# --------------------------------------------------------------------------


def _check_int(value, name, min_value):
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise ValueError(f"{name} must be an integer, got {value!r}.")
    if value < min_value:
        raise ValueError(f"{name} must be >= {min_value}, got {value}.")
    return int(value)


def _check_positive(value, name):
    if isinstance(value, bool) or not isinstance(value, Real):
        raise ValueError(f"{name} must be a real number, got {value!r}.")
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value}.")
    return float(value)


def _check_sizes(n_samples, n_features, *, min_features=1):
    """``n_samples`` and ``n_features`` of a ``make_*`` function, as checked ints."""
    n_samples = _check_int(n_samples, "n_samples", 1)
    return n_samples, _check_int(n_features, "n_features", min_features)


def _check_X(X, n_features):
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2:
        raise ValueError(
            f"X must be a 2D array of shape (n_samples, n_features), got {X.ndim} dimension(s)."
        )
    if X.shape[1] != n_features:
        raise ValueError(f"X has {X.shape[1]} features, but the model has {n_features}.")
    if not np.all(np.isfinite(X)):
        raise ValueError("X contains NaN or infinity.")
    return X


# --------------------------------------------------------------------------
# What every model shares: x = decode(z) + noise, with z ~ N(0, I)
# --------------------------------------------------------------------------


class _LatentVariableModel:
    """Base of the models: ``x = decode(z) + noise_scale * eps``, ``z`` and ``eps`` ~ N(0, I).

    Subclasses define ``n_features``, ``_n_latent`` (the latent dimension),
    ``_decode(z)`` for z of shape (n_points, _n_latent) and ``_noise_scale``
    (the noise standard deviation, a float or one per feature).
    """

    def sample(self, n_samples=1, *, random_state=None):
        """Draw new samples from the model.

        Parameters
        ----------
        n_samples : int, default=1
            Number of samples.
        random_state : int, RandomState instance or None, default=None
            Seed or generator for the latent values and the noise.

        Returns
        -------
        X : ndarray of shape (n_samples, n_features)
            Samples, one per row.
        """
        n_samples = _check_int(n_samples, "n_samples", 1)
        rng = check_random_state(random_state)
        z = rng.standard_normal(size=(n_samples, self._n_latent))
        noise = rng.standard_normal(size=(n_samples, self.n_features))
        return self._decode(z) + noise * self._noise_scale
