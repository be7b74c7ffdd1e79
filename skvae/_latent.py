"""LatentMixin: the maps between data and latent points, transform and inverse_transform."""

from __future__ import annotations

import numpy as np
from sklearn.base import ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.utils.validation import check_array, check_is_fitted

__all__ = ["LatentMixin"]


class LatentMixin(ClassNamePrefixFeaturesOutMixin, TransformerMixin):
    """``transform`` (posterior means) and ``inverse_transform`` (decoder means) of a fitted
    VAE estimator, with scikit-learn's transformer API (``fit_transform``, ``set_output``,
    ``get_feature_names_out``), which wraps the ``transform`` defined here."""

    def transform(self, X):
        """Posterior means E_q[z | x] of the rows of X.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Data to encode; NaN marks a missing value.

        Returns
        -------
        Z : ndarray of shape (n_samples, n_components)
            The mean of q(z | x) for each row; deterministic.

        Examples
        --------
        >>> import numpy as np
        >>> from sklearn.datasets import load_digits
        >>> from skvae import VAEEstimator
        >>> X, _ = load_digits(return_X_y=True)
        >>> vae = VAEEstimator(hidden_layer_sizes=(32,), tol=0.1, random_state=0).fit(X)
        >>> Z = vae.transform(X[:5])
        >>> Z.shape
        (5, 2)
        >>> bool(np.array_equal(vae.transform(X[:5]), Z))  # no sampling: the same every time
        True
        """
        X, covariates = self._validate_for_inference(X)
        shape = (self.module_.n_components,)
        return self._infer(X, _posterior_mean, shape, covariates=covariates)

    def inverse_transform(self, X, *, covariates=None):
        """Decoder mean E[x | z] in the units of the training data.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_components)
            Latent points, e.g. the output of ``transform``.

        covariates : dict or array-like, default=None
            For a model with covariates, the values to decode at (required): a dict
            mapping each covariate column (index or name) to a value or to one value per
            row, or an array-like of one value per covariate column (in their order in
            X), or of shape (n_samples, n_covariates). ``covariates={"batch": 0}`` decodes
            every row as if it came from batch 0: batch-corrected values.

        Returns
        -------
        X_original : ndarray of shape (n_samples, n_features)
            E[x | z] (probabilities for the bernoulli likelihood); the covariate columns,
            if any, hold the values decoded at.

        Examples
        --------
        >>> from sklearn.datasets import load_digits
        >>> from skvae import VAEEstimator
        >>> X, _ = load_digits(return_X_y=True)
        >>> vae = VAEEstimator(hidden_layer_sizes=(32,), tol=0.1, random_state=0).fit(X)
        >>> X_mean = vae.inverse_transform(vae.transform(X[:100]))  # reconstructions
        >>> X_mean.shape
        (100, 64)
        >>> # Closer to the images than the average image is, from two numbers per image.
        >>> bool(((X_mean - X[:100]) ** 2).mean() < ((X.mean(axis=0) - X[:100]) ** 2).mean())
        True
        """
        check_is_fitted(self)
        Z = check_array(X, dtype=[np.float64, np.float32], input_name="X")
        if Z.shape[1] != self.module_.n_components:
            raise ValueError(
                f"X has {Z.shape[1]} columns, but inverse_transform expects latent points "
                f"with n_components={self.module_.n_components} columns."
            )

        covariates = self._decoding_covariates(len(Z), covariates)
        likelihood = self.module_.likelihood
        shape = (likelihood.n_features,)
        mean = self._infer(Z, _decoder_mean, shape, rescaled=False, covariates=covariates)
        X = self._layout.assemble(mean * likelihood.scale + likelihood.loc, covariates)
        return self._to_user(X)

    @property
    def _n_features_out(self):
        # After fit, the fitted model's width (set_params may have changed the parameter).
        return self.module_.n_components if hasattr(self, "module_") else self.n_components


def _posterior_mean(module, batch):
    return module.encode(batch).mean[..., : module.n_components]


def _decoder_mean(module, batch):
    return module.likelihood.mean(module.decode(batch["z"], batch))
