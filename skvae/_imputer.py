"""VAEImputer: fill missing values with their conditional mean under a VAE."""

from __future__ import annotations

from numbers import Integral

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin, _fit_context
from sklearn.impute import MissingIndicator
from sklearn.utils import check_random_state
from sklearn.utils._missing import is_scalar_nan
from sklearn.utils._param_validation import Interval, MissingValues
from sklearn.utils.validation import _check_feature_names_in, check_is_fitted, validate_data

from ._estimator import VAEEstimator, _check_missing, _column_index

__all__ = ["VAEImputer"]

_MAX_SEED = np.iinfo(np.int32).max

# The parameters passed on to the VAEEstimator as they are.
_VAE_PARAMS = (
    "n_components",
    "likelihood",
    "covariance_type",
    "hidden_layer_sizes",
    "activation",
    "kl_warmup_iter",
    "batch_size",
    "learning_rate_init",
    "weight_decay",
    "max_iter",
    "early_stopping",
    "validation_fraction",
    "n_iter_no_change",
    "tol",
    "device",
    "verbose",
)


class VAEImputer(TransformerMixin, BaseEstimator):
    """Impute missing values with their conditional mean under a variational autoencoder.

    ``fit`` trains a :class:`VAEEstimator` on the incomplete data, leaving the missing
    entries out of the likelihood and showing the encoder which entries are observed
    (MIWAE, Mattei and Frellsen 2019). ``transform`` fills each missing entry with
    E[x_missing | x_observed] under that model, estimated by self-normalised importance
    sampling: K draws z_k ~ q(z | x_observed) weighted by p(x_observed | z_k) p(z_k) /
    q(z_k | x_observed), and the weighted average of the decoder means E[x_missing | z_k]
    (for categorical columns, the most probable category of the weighted mixture).
    Observed entries pass through unchanged.

    Parameters
    ----------
    missing_values : int, float or np.nan, default=np.nan
        The placeholder for the missing values; every occurrence is imputed.

    n_components : int, default=2
        Number of latent variables of the VAE.

    likelihood : str or dict, default="gaussian"
        Observation model, as in :class:`VAEEstimator`; for categorical columns the fill
        is a category code.

    covariance_type : {"diag", "spherical"}, default="diag"
        Gaussian likelihood only, as in :class:`VAEEstimator`.

    hidden_layer_sizes : array-like of int, default=(128, 128)
        Hidden layer widths of the encoder (the decoder mirrors them). Keep at least one:
        a linear encoder cannot represent how the posterior depends on which entries are
        observed.

    activation : {"identity", "logistic", "tanh", "relu"}, default="relu"
        Activation of the hidden layers.

    kl_warmup_iter : int, default=10
        Epochs of KL warm-up. Unlike :class:`VAEEstimator`, on by default: with missing
        entries, training without it more often loses latent dimensions.

    batch_size : int, default=128
        Rows per minibatch.

    learning_rate_init : float, default=1e-3
        Adam's step size.

    weight_decay : float, default=0.0
        Decoupled weight decay of the networks' weight matrices.

    max_iter : int, default=200
        Maximum number of epochs.

    early_stopping : bool, default=True
        Stop on the ELBO of a held-out ``validation_fraction`` of the rows.

    validation_fraction : float, default=0.1
        Fraction of the rows held out for early stopping.

    n_iter_no_change : int, default=10
        Epochs without improvement before stopping.

    tol : float, default=1e-4
        Improvement, in nats per sample, that counts as progress.

    n_importance_samples : int, default=100
        Number K of importance samples per row in ``transform``; more is more accurate
        and slower (linear in K).

    n_estimators : int, default=1
        Number of VAEs, trained on the same data from different seeds. A missing entry
        gets the mean of their fills (categorical columns: the most frequent of their
        categories, the smallest on a tie, as VotingClassifier's hard vote). On small
        tables the fill of one VAE varies with its seed; the mean varies less (on
        breast_cancer, 569 rows, three masks of 20% of the entries: one VAE 0.402-0.477
        RMSE, the mean of 5 0.388-0.435; see ``benchmarks/bench_impute.py``). Fit and
        transform cost ``n_estimators`` times as much.

    add_indicator : bool, default=False
        If True, a :class:`~sklearn.impute.MissingIndicator` transform is stacked onto the
        output, as in :class:`~sklearn.impute.SimpleImputer`.

    device : str, default="auto"
        Where torch computes, as in :class:`VAEEstimator`.

    random_state : int, RandomState instance or None, default=None
        Seeds training and the importance samples of ``transform``. ``transform`` always
        uses the same samples, for every row, so it is deterministic and a row's fill
        does not depend on the other rows.

    verbose : int, default=0
        1 or more shows a progress bar while training.

    Attributes
    ----------
    estimators_ : list of VAEEstimator
        The ``n_estimators`` VAEs fitted on the data, with NaN in place of the missing
        values.

    vae_ : VAEEstimator
        The first of ``estimators_`` (the only one with the default ``n_estimators=1``).

    n_iter_ : int
        Number of epochs the VAE was trained for (the most of any, with several).

    indicator_ : sklearn.impute.MissingIndicator or None
        Indicator of missing values; None when ``add_indicator`` is False.

    n_features_in_ : int
        Number of features seen during fit.

    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of features seen during fit, when X has string column names.

    See Also
    --------
    sklearn.impute.SimpleImputer : Column means, medians or most frequent values.
    sklearn.impute.KNNImputer : Averages of the nearest complete neighbours.
    sklearn.impute.IterativeImputer : Chained regressions of each feature on the others.
    VAEEstimator : The model underneath.

    References
    ----------
    Mattei, P.-A. and Frellsen, J. (2019). MIWAE: Deep generative modelling and
    imputation of incomplete data sets. ICML.
    Nazabal, A., Olmos, P. M., Ghahramani, Z. and Valera, I. (2020). Handling incomplete
    heterogeneous data using VAEs. Pattern Recognition 107.

    Examples
    --------
    >>> import numpy as np
    >>> from skvae import VAEImputer
    >>> from skvae.datasets import make_linear_gaussian
    >>> X, _ = make_linear_gaussian(500, n_features=4, random_state=0)
    >>> X_missing = X.copy()
    >>> X_missing[::3, 1] = np.nan
    >>> imputer = VAEImputer(hidden_layer_sizes=(16,), tol=0.1, random_state=0)
    >>> X_filled = imputer.fit_transform(X_missing)
    >>> bool(np.isnan(X_filled).any())
    False
    >>> bool(np.array_equal(X_filled[1], X[1]))  # observed entries are kept as they are
    True
    """

    # The VAE's parameters are validated as VAEEstimator validates them.
    _parameter_constraints: dict = {
        "missing_values": [MissingValues(numeric_only=True)],
        **{name: VAEEstimator._parameter_constraints[name] for name in _VAE_PARAMS},
        "n_importance_samples": [Interval(Integral, 1, None, closed="left")],
        "n_estimators": [Interval(Integral, 1, None, closed="left")],
        "add_indicator": ["boolean"],
        "random_state": ["random_state"],
    }

    def __init__(
        self,
        missing_values=np.nan,
        *,
        n_components=2,
        likelihood="gaussian",
        covariance_type="diag",
        hidden_layer_sizes=(128, 128),
        activation="relu",
        kl_warmup_iter=10,
        batch_size=128,
        learning_rate_init=1e-3,
        weight_decay=0.0,
        max_iter=200,
        early_stopping=True,
        validation_fraction=0.1,
        n_iter_no_change=10,
        tol=1e-4,
        n_importance_samples=100,
        n_estimators=1,
        add_indicator=False,
        device="auto",
        random_state=None,
        verbose=0,
    ):
        self.missing_values = missing_values
        self.n_components = n_components
        self.likelihood = likelihood
        self.covariance_type = covariance_type
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.kl_warmup_iter = kl_warmup_iter
        self.batch_size = batch_size
        self.learning_rate_init = learning_rate_init
        self.weight_decay = weight_decay
        self.max_iter = max_iter
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.n_importance_samples = n_importance_samples
        self.n_estimators = n_estimators
        self.add_indicator = add_indicator
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    def _validate_input(self, X, reset):
        nan_marks_missing = is_scalar_nan(self.missing_values)
        X = validate_data(
            self,
            X,
            reset=reset,
            dtype=[np.float64, np.float32],
            ensure_all_finite="allow-nan" if nan_marks_missing else True,
            copy=not nan_marks_missing,
        )
        if not nan_marks_missing:
            X[X == self.missing_values] = np.nan
        return X

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Fit the VAE on X, leaving the missing entries out of its likelihood.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Data with missing values. Every row, and every column, needs at least one
            observed value.

        y : Ignored
            Not used, present for API consistency.

        Returns
        -------
        self : VAEImputer
            The fitted imputer.
        """
        X = self._validate_input(X, reset=True)
        rng = check_random_state(self.random_state)
        # One seed per VAE, then the importance samples' seed (with one VAE, the same two
        # seeds as before there could be several).
        *vae_seeds, self._crn_seed = (
            int(s) for s in rng.randint(_MAX_SEED, size=self.n_estimators + 1)
        )
        params = {name: getattr(self, name) for name in _VAE_PARAMS}
        if isinstance(params["likelihood"], dict):
            names = getattr(self, "feature_names_in_", None)
            params["likelihood"] = _columns_as_indices(params["likelihood"], names, X.shape[1])
        self._categorical = _categorical_columns(params["likelihood"], X.shape[1])
        self.estimators_ = [VAEEstimator(**params, random_state=seed).fit(X) for seed in vae_seeds]
        self.vae_ = self.estimators_[0]
        self.n_iter_ = max(vae.n_iter_ for vae in self.estimators_)
        if self.add_indicator:
            # On X with NaN for the placeholder: the same mask as on the user's X.
            self.indicator_ = MissingIndicator(missing_values=np.nan, error_on_new=False).fit(X)
        else:
            self.indicator_ = None
        return self

    def transform(self, X):
        """Fill the missing entries of X with their conditional mean under the model.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Data with missing values; each row needs at least one observed value.

        Returns
        -------
        X_imputed : ndarray of shape (n_samples, n_features) or \
                (n_samples, n_features + n_features_missing)
            X with its missing entries filled (observed entries unchanged), followed by
            the missing indicator's columns when ``add_indicator`` is True.
        """
        check_is_fitted(self)
        X = self._validate_input(X, reset=False)
        _check_missing(X, columns=False)  # on all rows, for the user's row numbers
        isnan = np.isnan(X)
        X_imputed = np.array(X, dtype=np.float64)
        rows = np.flatnonzero(isnan.any(axis=1))
        if rows.size:
            incomplete = self.vae_._validate_X(X_imputed[rows])
            fills = [
                vae._conditional_mean(incomplete, self.n_importance_samples, self._crn_seed)
                for vae in self.estimators_
            ]
            X_imputed[rows] = _combine(fills, self._categorical)
        if self.add_indicator:
            indicator = self.indicator_.transform(X)
            X_imputed = np.hstack([X_imputed, indicator])
        return X_imputed

    def get_feature_names_out(self, input_features=None):
        """Get output feature names for transformation.

        Parameters
        ----------
        input_features : array-like of str or None, default=None
            Input features: ``feature_names_in_`` when None (or ``x0``, ``x1``, ... when
            fit saw no names); when given, must match ``feature_names_in_`` if defined.

        Returns
        -------
        feature_names_out : ndarray of str objects
            The input names, followed by the missing indicator's when ``add_indicator``.
        """
        check_is_fitted(self, "n_features_in_")
        names = _check_feature_names_in(self, input_features)
        if not self.add_indicator:
            return names
        return np.concatenate([names, self.indicator_.get_feature_names_out(names)])

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = is_scalar_nan(self.missing_values)
        return tags


def _categorical_columns(likelihood, n_features):
    """Indices of the columns a (validated, index-based) likelihood models as categories."""
    if likelihood == "categorical":
        return np.arange(n_features)
    if isinstance(likelihood, dict) and "categorical" in likelihood:
        return np.asarray(likelihood["categorical"], dtype=int)
    return np.array([], dtype=int)


def _combine(fills, categorical):
    """Mean of several models' fills; the hard vote in categorical columns."""
    if len(fills) == 1:
        return fills[0]
    stacked = np.stack(fills)
    combined = stacked.mean(axis=0)
    if categorical.size:
        codes = stacked[:, :, categorical].astype(np.int64)  # (models, rows, columns)
        # For each model's code, how many models chose it: memory grows with the number of
        # models, not of categories.
        votes = np.stack([(codes == code).sum(axis=0) for code in codes])
        winners = np.where(votes == votes.max(axis=0), codes, np.iinfo(np.int64).max)
        combined[:, categorical] = winners.min(axis=0)  # the smallest code on a tie
    return combined


def _columns_as_indices(likelihood, names, n_features):
    """The likelihood dict with column names replaced by indices (the VAE sees an array)."""
    result = {}
    for family, selection in likelihood.items():
        if isinstance(selection, str | Integral):
            selection = [selection]
        result[family] = [_column_index(family, c, names, n_features) for c in selection]
    return result
