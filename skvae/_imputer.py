"""VAEImputer: fill missing values with their conditional mean, or draws, under a VAE."""

from __future__ import annotations

from functools import partial
from numbers import Integral

import numpy as np
from sklearn.base import _fit_context, clone
from sklearn.impute._base import _BaseImputer
from sklearn.utils import check_random_state, deprecated
from sklearn.utils._missing import is_scalar_nan
from sklearn.utils._param_validation import HasMethods, Interval, MissingValues
from sklearn.utils.validation import (
    _check_feature_names_in,
    check_array,
    check_is_fitted,
    validate_data,
)

from ._arrays import check_missing
from ._columns import unseen_as_missing
from ._ensemble import fit_together
from ._estimator import VAEEstimator
from ._likelihood_param import auto_likelihood, check_label_families, likelihood_parts
from ._tables import LABEL, NUMBER, Table, _decimals, container_of

__all__ = ["VAEImputer"]

_MAX_SEED = np.iinfo(np.int32).max
#: Latent size of the default VAEs: a fill conditions on what a row's observed entries say,
#: which two dimensions summarise poorly (benchmarks/bench_defaults.py, tuning group).
DEFAULT_COMPONENTS = 6
#: Hidden layers of the default candidates: neither fills every table best, so each fit
#: measures which fills its own hidden entries better (benchmarks/bench_impute.py).
DEFAULT_HIDDEN_LAYER_SIZES = ((128, 128), (64,))
#: Share of the observed entries hidden from the candidates, to score their fills on.
SELECTION_FRACTION = 0.1
#: Adam's step size of the default VAEs, three times the estimator's: fills as good in
#: fewer steps (benchmarks/bench_cost.py, target 2, on the imputer's tuning tables).
DEFAULT_LEARNING_RATE = 3e-3


class VAEImputer(_BaseImputer):
    """Impute missing values with their conditional mean, or draws, under a VAE.

    ``fit`` trains a VAE (a clone of ``estimator``) on the incomplete data, leaving the
    missing entries out of the likelihood and showing the encoder which entries are
    observed (MIWAE, Mattei and Frellsen 2019). ``transform`` fills each missing entry with
    E[x_missing | x_observed] under that model (see :meth:`VAEEstimator.conditional_mean`):
    K draws z_k ~ q(z | x_observed) weighted by p(x_observed | z_k) p(z_k) /
    q(z_k | x_observed), and the weighted average of the decoder means E[x_missing | z_k]
    (for categorical columns, the most probable category of the weighted mixture), kept
    within the range of the column's observed training values. Observed entries pass
    through unchanged. With ``sample_posterior=True`` the missing entries are draws from
    p(x_missing | x_observed) instead, for multiple imputation.

    A pandas or polars frame with columns of labels (strings, categories) or booleans is
    filled in a frame like it: each column's family is its kind's (as
    ``likelihood="auto"`` chooses them: labels categorical, booleans Bernoulli, numbers
    by their values), a label column gets the most probable label, a boolean the more
    probable value, and a numeric column its conditional mean written with no more
    decimals than its observed values have (whole numbers in a column of whole numbers);
    the frame keeps the columns' names and dtypes. A frame of numbers alone gives an
    array, as scikit-learn's imputers do.

    Parameters
    ----------
    estimator : VAEEstimator, default=None
        The VAE to fit, with its settings (``n_components``, ``likelihood``,
        ``hidden_layer_sizes``, ...); it is cloned, and its ``random_state`` replaced by
        one drawn from this imputer's. On a frame with labels, its ``likelihood`` must be
        "auto" or a dict that gives label columns "categorical". None chooses between two
        VAEs, as a user's cross-validation would: ``VAEEstimator(n_components=min(6, n_features),
        hidden_layer_sizes=h, kl_warmup_iter=10, learning_rate_init=3e-3)`` with h =
        (128, 128) or (64,), each candidate's VAEs trained together, as one computation.
        Each is fitted (``n_estimators`` times) on X with a further 10% of its observed entries
        hidden, and the one whose fills of those entries have the smaller standardised
        squared error is kept, as fitted (``selection_scores_``): fit costs twice as much as
        with one VAE given. With missing entries, training without a KL warm-up more often
        loses latent dimensions, hence ``kl_warmup_iter=10``.
        Keep at least one hidden layer: a linear encoder cannot represent how the
        posterior depends on which entries are observed.

    missing_values : int, float or np.nan, default=np.nan
        The placeholder for the missing values of an array; every occurrence is imputed.
        A frame's missing entries are its own (NaN, None, pd.NA, polars' null).

    n_importance_samples : int, default=100
        Number K of importance samples per row in ``transform``; more is more accurate
        and slower (linear in K).

    n_estimators : int, default=3
        Number of VAEs, trained on the same data from different seeds. A missing entry
        gets the mean of their fills (categorical columns: the most frequent of their
        categories, the smallest on a tie, as VotingClassifier's hard vote). The fill of
        one VAE varies with its seed (early stopping on a noisy validation score sometimes
        ends a fit early); the mean of three varies less and is closer to the truth. Fit
        and transform cost ``n_estimators`` times as much: 1 is the fastest.

    sample_posterior : bool, default=False
        If True, each row's missing entries are a joint draw from p(x_missing |
        x_observed) under one of the VAEs, picked at random per row (see
        :meth:`VAEEstimator.conditional_sample`), instead of their conditional mean: a
        label is drawn with its probability rather than the most probable one taken.
        Each ``transform`` call draws anew (seeded by ``random_state``, as
        :class:`~sklearn.impute.IterativeImputer`'s), so m calls give m completed data sets
        for multiple imputation from one fit. Draws are noisier fills than the mean: use
        the mean for a single fill.

    add_indicator : bool, default=False
        If True, a :class:`~sklearn.impute.MissingIndicator` transform is stacked onto the
        output, as in :class:`~sklearn.impute.SimpleImputer`.

    random_state : int, RandomState instance or None, default=None
        Seeds the VAEs' training and the importance samples of ``transform``. Without
        ``sample_posterior``, ``transform`` always uses the same samples, for every row,
        so it is deterministic and a row's fill does not depend on the other rows.

    verbose : int, default=0
        1 or more: say which VAE is being fitted, and show each fit's progress bar (the
        VAEs' own ``verbose``, whatever ``estimator`` sets).

    Attributes
    ----------
    estimators_ : list of VAEEstimator
        The ``n_estimators`` VAEs fitted on the data, with NaN in place of the missing
        values (with ``estimator=None``, and in place of the entries hidden to choose).

    vae_ : VAEEstimator
        The first of ``estimators_``.

        .. deprecated:: 0.2
           ``vae_`` is removed in 0.3; use ``estimators_[0]``.

    selection_scores_ : dict or None
        With ``estimator=None``: for each candidate's ``hidden_layer_sizes``, the mean
        squared error of its fills of the hidden entries, in units of each column's
        variance (lower is better); empty when no entry could be hidden (the first
        candidate is then kept). None when ``estimator`` is given.

    n_iter_ : int
        Number of epochs the VAEs were trained for (the most of any).

    random_state_ : numpy.random.RandomState
        With ``sample_posterior``, draws the seed of each ``transform`` call's draws.

    indicator_ : sklearn.impute.MissingIndicator or None
        Indicator of missing values; None when ``add_indicator`` is False.

    n_features_in_ : int
        Number of features seen during fit.

    feature_names_in_ : ndarray of shape (`n_features_in_`,)
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
    >>> from skvae import VAEEstimator, VAEImputer
    >>> from skvae.datasets import make_linear_gaussian
    >>> X, _ = make_linear_gaussian(500, n_features=4, random_state=0)
    >>> X_missing = X.copy()
    >>> X_missing[::3, 1] = np.nan
    >>> vae = VAEEstimator(hidden_layer_sizes=(16,), kl_warmup_iter=10, tol=0.1)
    >>> imputer = VAEImputer(vae, random_state=0)
    >>> X_filled = imputer.fit_transform(X_missing)
    >>> bool(np.isnan(X_filled).any())
    False
    >>> bool(np.array_equal(X_filled[1], X[1]))  # observed entries are kept as they are
    True
    """

    _parameter_constraints: dict = {
        "estimator": [None, HasMethods(["fit", "conditional_mean"])],
        "missing_values": [MissingValues(numeric_only=True)],
        "n_importance_samples": [Interval(Integral, 1, None, closed="left")],
        "n_estimators": [Interval(Integral, 1, None, closed="left")],
        "sample_posterior": ["boolean"],
        "add_indicator": ["boolean"],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    def __init__(
        self,
        estimator=None,
        *,
        missing_values=np.nan,
        n_importance_samples=100,
        n_estimators=3,
        sample_posterior=False,
        add_indicator=False,
        random_state=None,
        verbose=0,
    ):
        # Not _BaseImputer.__init__: this imputer has no keep_empty_features (a column with
        # nothing observed is an error, as in VAEEstimator).
        self.estimator = estimator
        self.missing_values = missing_values
        self.n_importance_samples = n_importance_samples
        self.n_estimators = n_estimators
        self.sample_posterior = sample_posterior
        self.add_indicator = add_indicator
        self.random_state = random_state
        self.verbose = verbose

    def _validate_input(self, X, reset):
        if reset:
            # A frame with labels or booleans is filled in a frame like it; numbers alone
            # give an array, as scikit-learn's imputers do (set_output asks for a frame).
            table = Table.learn(X) if container_of(X) is not None else None
            labelled = table is not None and any(kind != NUMBER for kind in table.kinds)
            self._table = table if labelled else None
        if self._table is not None and container_of(X) is not None:
            return self._read_frame(X, reset)
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

    def _read_frame(self, X, reset):
        """A pandas or polars frame as floats: labels as positions, missing entries NaN."""
        if not is_scalar_nan(self.missing_values):
            raise ValueError(
                "A data frame marks its missing entries itself (NaN, None, pd.NA): "
                f"missing_values={self.missing_values!r} applies to arrays only."
            )
        validate_data(self, X, reset=reset, skip_check_array=True)
        # On new data a label fit never saw is coded UNSEEN: returned as given, not used.
        unseen = () if reset else range(len(self._table.names))
        codes = self._table.encode(X, unseen)
        return check_array(codes, ensure_all_finite="allow-nan", input_name="X")

    def _vae(self, X):
        """A clone of the estimator whose likelihood selects columns of X by index."""
        vae = clone(self.estimator)
        names = getattr(self, "feature_names_in_", None)
        if vae.likelihood == "auto" and self._table is not None:
            vae.set_params(likelihood=self._auto_likelihood(X))
        elif isinstance(vae.likelihood, dict):
            vae.set_params(likelihood=self._by_index(vae.likelihood, X))
        if self._table is not None:
            likelihood = vae.likelihood
            parts = (
                likelihood_parts(likelihood, X.shape[1])
                if isinstance(likelihood, dict)
                else likelihood
            )
            check_label_families(parts, self._table.kinds, names)
        return vae

    def _fit_models(self, vae, X, seeds):
        """Clones of ``vae`` with ``seeds`` fitted on X, together where they can be."""
        models = [clone(vae).set_params(random_state=seed) for seed in seeds]
        if self.verbose:
            for model in models:
                model.set_params(verbose=self.verbose)
            first, self._n_fitted = self._n_fitted + 1, self._n_fitted + len(models)
            which = f"VAE {first}" if len(models) == 1 else f"VAEs {first}-{self._n_fitted}"
            print(
                f"VAEImputer: fitting {which} of {self._n_fits} "
                f"(hidden_layer_sizes={vae.hidden_layer_sizes})",
                flush=True,
            )
        return fit_together(models, X)

    def _fit_default(self, X, seeds, rng):
        """The default candidates' fits on X with entries hidden; keep the best ones."""
        X_fit, hidden = hide_observed(X, SELECTION_FRACTION, rng)
        fits, self.selection_scores_ = {}, {}
        if not hidden.any():
            # Every row or column has one observed entry: nothing to judge fills on.
            vae = self._default_vae(X, DEFAULT_HIDDEN_LAYER_SIZES[0])
            return self._fit_models(vae, X, seeds)
        rows = np.flatnonzero(hidden.any(axis=1))
        scale = np.nanstd(X, axis=0)
        scale[scale == 0] = 1.0
        for hidden_layer_sizes in DEFAULT_HIDDEN_LAYER_SIZES:
            vae = self._default_vae(X, hidden_layer_sizes)
            fits[hidden_layer_sizes] = models = self._fit_models(vae, X_fit, seeds)
            fill = self._fill(models, X_fit[rows])
            error = (fill - X[rows]) / scale
            # A category is right or wrong: its code's distance to the true one means nothing.
            discrete = models[0].module_.likelihood.discrete_columns()
            error[:, discrete] = fill[:, discrete] != X[rows][:, discrete]
            self.selection_scores_[hidden_layer_sizes] = float(np.mean(error[hidden[rows]] ** 2))
        return fits[min(self.selection_scores_, key=self.selection_scores_.get)]

    def _default_vae(self, X, hidden_layer_sizes):
        """A default candidate: on a frame, each column with the family of its kind."""
        vae = _default_vae(X, hidden_layer_sizes)
        if self._table is not None:
            vae.set_params(likelihood=self._auto_likelihood(X))
        return vae

    def _auto_likelihood(self, X):
        """``likelihood="auto"`` on the frame's columns, by index."""
        names = getattr(self, "feature_names_in_", None)
        return self._by_index(auto_likelihood(X, names, self._table.kinds), X)

    def _by_index(self, likelihood, X):
        """A likelihood dict with columns by index: the VAE sees an array, not names."""
        parts = likelihood_parts(likelihood, X.shape[1], getattr(self, "feature_names_in_", None))
        return {p["name"]: p["columns"] for p in parts}

    def _conditioning(self, X):
        """X as the VAEs can condition on it: on a frame, a new category, or (families
        chosen by likelihood="auto") a value outside its family's range, is missing."""
        if self._table is None:  # the VAEs read the array themselves
            return X
        likelihood = self.estimator.likelihood if self.estimator is not None else "auto"
        chosen = isinstance(likelihood, str) and likelihood == "auto"
        names, kinds = self._table.names, self._table.kinds
        return unseen_as_missing(
            self.estimators_[0].module_.likelihood,
            X,
            chosen=chosen,
            label=lambda j: names[j],
            stacklevel=5,
            labels=[kind == LABEL for kind in kinds],
        )

    def _fill(self, models, X):
        """The models' combined fill of the missing entries of X (rows with some missing)."""
        fills = [
            vae.conditional_mean(
                X, n_importance_samples=self.n_importance_samples, random_state=self._crn_seed
            )
            for vae in models
        ]
        return self._within_range(_combine(fills, models[0].module_.likelihood.discrete_columns()))

    def _draw(self, X):
        """Draws of the missing entries of X, each row's under one model picked at random."""
        return self._by_member(
            len(X),
            lambda vae, rows, seed: vae.conditional_sample(
                X[rows], n_importance_samples=self.n_importance_samples, random_state=seed
            ),
        )

    def _draw_marginal(self, n_rows):
        """Rows drawn from the VAEs' model of the data, each under one picked at random."""
        return self._by_member(
            n_rows,
            lambda vae, rows, seed: vae.sample(int(rows.sum()), random_state=seed, missing=False),
        )

    def _by_member(self, n_rows, draw):
        """``draw(vae, rows, seed)`` for the rows of each VAE, one picked at random per row."""
        member = self.random_state_.randint(len(self.estimators_), size=n_rows)
        seeds = self.random_state_.randint(_MAX_SEED, size=len(self.estimators_))
        drawn = np.empty((n_rows, len(self._observed_range[0])))
        for k, vae in enumerate(self.estimators_):
            rows = member == k
            if rows.any():
                drawn[rows] = draw(vae, rows, seeds[k])
        return self._within_range(drawn)

    def _within_range(self, X):
        # A fill stays within the range of its column's observed values: a log-normal
        # mean of a posterior draw with a wide spread can be orders of magnitude beyond it.
        low, high = self._observed_range
        return np.clip(X, low, high)

    @_fit_context(
        # VAEImputer.estimator is not validated yet
        prefer_skip_nested_validation=False
    )
    def fit(self, X, y=None):
        """Fit the VAEs on X, leaving the missing entries out of their likelihood.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, n_features)
            Data with missing values. Every column needs at least one observed value;
            rows with none are left out of the VAEs' fit.

        y : Ignored
            Not used, present for API consistency.

        Returns
        -------
        self : VAEImputer
            The fitted imputer.
        """
        X_all = self._validate_input(X, reset=True)
        # Every column needs an observed value for its range; a row with none tells the
        # VAEs nothing, and is left out of their fit.
        check_missing(X_all, columns=True, rows=False)
        X = X_all[~np.isnan(X_all).all(axis=1)]
        self._observed_range = (np.nanmin(X, axis=0), np.nanmax(X, axis=0))
        rng = check_random_state(self.random_state)
        # One seed per VAE, then the seed of the importance samples.
        *seeds, self._crn_seed = (
            int(s) for s in rng.randint(_MAX_SEED, size=self.n_estimators + 1)
        )
        # Seeds sample_posterior's draws; from a seed already drawn, so that the other
        # fitted state is the same with and without it.
        self.random_state_ = np.random.RandomState(self._crn_seed)
        candidates = len(DEFAULT_HIDDEN_LAYER_SIZES) if self.estimator is None else 1
        self._n_fits, self._n_fitted = candidates * self.n_estimators, 0
        if self.estimator is None:
            self.estimators_ = self._fit_default(X, seeds, rng)
        else:
            self.estimators_ = self._fit_models(self._vae(X), X, seeds)
            self.selection_scores_ = None
        del self._n_fits, self._n_fitted
        self.n_iter_ = max(vae.n_iter_ for vae in self.estimators_)
        self._marginal_fill = _marginal_fill(X, self.estimators_[0].module_.likelihood)
        # On X with NaN for the placeholder: the same mask as on the user's X.
        self._fit_indicator(np.isnan(X_all))
        if self._table is not None:
            # A frame's fills are written as its observed values are: whole numbers in a
            # column of whole numbers, and no more decimals than the column shows.
            self._decimals = _decimals(np.where(np.isnan(X), 0.0, X))
        return self

    # TODO(0.3): remove.
    @deprecated("vae_ is deprecated in 0.2 and will be removed in 0.3; use estimators_[0].")
    @property
    def vae_(self) -> VAEEstimator:
        check_is_fitted(self, "estimators_")
        return self.estimators_[0]

    def transform(self, X):
        """Fill the missing entries of X with their conditional mean under the model.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, n_features)
            Data with missing values. A row with nothing observed gets each column's
            mean of its observed training values (the most frequent value in a column of
            categories), or with ``sample_posterior`` a row drawn from the model.

        Returns
        -------
        X_imputed : ndarray or DataFrame of shape (n_samples, n_features) or \
                (n_samples, n_features + n_features_missing)
            X with its missing entries filled (observed entries unchanged), followed by
            the missing indicator's columns when ``add_indicator`` is True; a frame like
            the fitted one when it had columns of labels or booleans.
        """
        check_is_fitted(self)
        as_passed, X = X, self._validate_input(X, reset=False)
        check_missing(X, columns=False, rows=False)
        isnan = np.isnan(X)
        X_imputed = np.array(X, dtype=np.float64)
        rows = np.flatnonzero(isnan.any(axis=1))
        if rows.size:
            given = self._conditioning(X_imputed[rows])
            # Rows with nothing to condition on (nothing observed, or only values fit
            # never saw) get the columns' own fill.
            empty = np.isnan(given).all(axis=1)
            if empty.any():
                X_imputed[rows[empty]] = (
                    self._draw_marginal(int(empty.sum()))
                    if self.sample_posterior
                    else self._marginal_fill
                )
            fill = self._draw if self.sample_posterior else partial(self._fill, self.estimators_)
            if not empty.all():
                X_imputed[rows[~empty]] = fill(given[~empty])
            # Observed entries as given, those the VAEs could not condition on included.
            X_imputed[~isnan] = np.asarray(X, dtype=np.float64)[~isnan]
        if self._table is None:
            return self._concatenate_indicator(X_imputed, self._transform_indicator(isnan))
        return self._frame_output(X_imputed, isnan, as_passed)

    def _frame_output(self, X_imputed, isnan, as_passed):
        """The filled frame, in the fitted frame's columns, dtypes and labels (and the
        labels of the frame ``as_passed`` that fit never saw)."""
        for j in np.flatnonzero((self._decimals >= 0) & isnan.any(axis=0)):
            filled = isnan[:, j]
            X_imputed[filled, j] = np.round(X_imputed[filled, j], self._decimals[j])
        frame = self._table.decode(X_imputed, self._table.container, as_passed)
        indicator = self._transform_indicator(isnan)
        if indicator is None:
            return frame
        names = self.get_feature_names_out()[X_imputed.shape[1] :]
        columns = {str(name): np.asarray(indicator[:, k]) for k, name in enumerate(names)}
        if self._table.container == "polars":
            import polars as pl

            return pl.concat([frame, pl.DataFrame(columns)], how="horizontal")
        import pandas as pd

        return pd.concat([frame, pd.DataFrame(columns, index=frame.index)], axis=1)

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
        return self._concatenate_indicator_feature_names_out(names, names)


def _default_vae(X, hidden_layer_sizes):
    n_components = min(X.shape[1], DEFAULT_COMPONENTS)
    return VAEEstimator(
        n_components,
        hidden_layer_sizes=hidden_layer_sizes,
        kl_warmup_iter=10,
        learning_rate_init=DEFAULT_LEARNING_RATE,
    )


def hide_observed(X, fraction, rng):
    """X with each observed entry hidden (NaN) with probability ``fraction``, and the mask.

    Every row and every column keeps at least one observed entry.
    """
    observed = ~np.isnan(X)
    hidden = observed & (rng.uniform(size=X.shape) < fraction)
    for axis in (1, 0):
        kept = (observed & ~hidden).any(axis=axis)
        for i in np.flatnonzero(~kept):
            line = hidden[i] if axis == 1 else hidden[:, i]
            line[rng.choice(np.flatnonzero(line))] = False
    X_hidden = X.copy()
    X_hidden[hidden] = np.nan
    return X_hidden, hidden


def _marginal_fill(X, likelihood) -> np.ndarray:
    """The fill of a row with nothing observed: each column's mean of its observed values,
    and the most frequent one (the smallest of a tie) where the fill is a category code."""
    fill = np.nanmean(X, axis=0)
    for j in likelihood.discrete_columns():
        values, counts = np.unique(X[~np.isnan(X[:, j]), j], return_counts=True)
        fill[j] = values[np.argmax(counts)]
    return fill


def _combine(fills, discrete):
    """Mean of several models' fills; the hard vote in discrete (category code) columns."""
    if len(fills) == 1:
        return fills[0]
    stacked = np.stack(fills)
    combined = stacked.mean(axis=0)
    if discrete.size:
        codes = stacked[:, :, discrete].astype(np.int64)  # (models, rows, columns)
        # For each model's code, how many models chose it: memory grows with the number of
        # models, not of categories.
        votes = np.stack([(codes == code).sum(axis=0) for code in codes])
        winners = np.where(votes == votes.max(axis=0), codes, np.iinfo(np.int64).max)
        combined[:, discrete] = winners.min(axis=0)  # the smallest code on a tie
    return combined
