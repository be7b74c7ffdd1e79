"""VAEEstimator: the scikit-learn face of the VAE. Only sklearn glue lives here."""

from __future__ import annotations

import copy
import dataclasses
import warnings
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import (
    BaseEstimator,
    ClassNamePrefixFeaturesOutMixin,
    TransformerMixin,
    _fit_context,
)
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_array, check_is_fitted, validate_data

from ._likelihoods import LIKELIHOODS, prepare_likelihood
from ._module import ACTIVATIONS, VAEModule, gaussian_kl
from ._training import (
    History,
    NonFiniteLossError,
    TrainingConfig,
    encode_all,
    make_optimizer,
    sparse_inputs,
    train,
)

__all__ = ["VAEEstimator"]

# Elements per temporary tensor in batched inference: bounds memory whatever n_samples is.
_INFERENCE_ELEMENTS = 2**21
_MAX_SEED = np.iinfo(np.int32).max


def _resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError):
        resolved = None
    if resolved is None or resolved.type not in ("cpu", "cuda"):
        raise ValueError(f"device={device!r} is not supported; use 'auto', 'cpu' or 'cuda'.")
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device={device!r} was requested but torch sees no CUDA device here; use "
            "device='auto' or 'cpu'."
        )
    return resolved


def _tree_to_numpy(obj):
    """Tensors (on any device) to numpy arrays, through dicts, lists and tuples."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu().numpy()
    if isinstance(obj, dict):
        return {k: _tree_to_numpy(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(_tree_to_numpy(v) for v in obj)
    return obj


def _tree_to_torch(obj):
    if isinstance(obj, np.ndarray):
        return torch.from_numpy(np.array(obj))
    if isinstance(obj, dict):
        return {k: _tree_to_torch(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(_tree_to_torch(v) for v in obj)
    return obj


def _check_missing(X, columns):
    """Whether X has missing values (NaN); raise when a row, or a column, has none observed.

    ``columns``: check columns too (when fit learns each column's location and scale).
    """
    isnan = np.isnan(X)
    if not isnan.any():
        return False
    empty_rows = np.flatnonzero(isnan.all(axis=1))
    if empty_rows.size:
        raise ValueError(
            f"Row {empty_rows[0]} of X has no observed value (all NaN)"
            + (f", and {empty_rows.size - 1} more rows too" if empty_rows.size > 1 else "")
            + ". Drop rows with nothing observed: the model has nothing to condition on."
        )
    empty_columns = np.flatnonzero(isnan.all(axis=0))
    if columns and empty_columns.size:
        raise ValueError(
            f"Column {empty_columns[0]} of X has no observed value (all NaN) in the training "
            "data; the model cannot learn anything about it. Drop that column."
        )
    return True


def _mean_log_det(X, scale):
    """Average over rows of -sum log(scale) over each row's observed entries."""
    return float(-(np.log(scale) * (~np.isnan(X)).mean(axis=0)).sum())


def _column_index(family, column, names, n_features):
    """Index of a column that ``likelihood[family]`` selects by name or (negative) index."""
    if isinstance(column, str):
        if names is None or column not in names:
            where = "X has no column names" if names is None else "not in X"
            raise ValueError(f"Column {column!r} of likelihood[{family!r}]: {where}.")
        return int(np.flatnonzero(names == column)[0])
    if isinstance(column, Integral) and -n_features <= column < n_features:
        return int(column) % n_features
    raise ValueError(
        f"likelihood[{family!r}] selects column {column!r}, but X has "
        f"{n_features} columns: use indices 0 to {n_features - 1} or names."
    )


class VAEEstimator(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """Variational autoencoder as a scikit-learn transformer and density model.

    The model: latent variables z ~ N(0, I) of size ``n_components``, a decoder
    p(x | z) of the chosen ``likelihood``, and an encoder q(z | x) = N(mu(x), diag
    sigma(x)^2), both multilayer perceptrons, trained by maximising the evidence lower
    bound (ELBO) E_q[log p(x|z)] - beta * KL(q(z|x) || N(0, I)) with the
    reparameterisation trick and Adam on minibatches.

    Parameters
    ----------
    n_components : int, default=2
        Number of latent variables.

    likelihood : str or dict, default="gaussian"
        Observation model p(x | z):

        - "gaussian": Gaussian noise around the decoder mean, with learned variances (see
          ``covariance_type``) that have a floor of 1e-6 times the feature's variance (the
          variance of the most variable feature for a constant one), so that the
          likelihood stays finite.
        - "bernoulli": independent Bernoulli variables for data in [0, 1];
          ``score_samples`` is a true log-likelihood only for binary data (for other
          values it is a cross-entropy, not a normalised density).
        - "continuous_bernoulli": the normalised density on [0, 1] of Loaiza-Ganem and
          Cunningham (2019), for intensities such as grey levels.
        - "poisson": non-negative integer counts, rate exp(decoder output).
        - "negative_binomial": counts with a learned per-feature dispersion (variance
          mu + mu^2 / theta), for overdispersed counts.
        - "categorical": integer codes 0, 1, ... per column, one softmax each; the number
          of categories of each column is learned in fit. ``inverse_transform`` gives the
          most probable category.
        - a dict mapping family names to the columns they model, e.g. ``{"gaussian": [0, 1],
          "poisson": [2, 3]}``, with column indices or, for a DataFrame, names, as
          ColumnTransformer selects them; every column needs exactly one family, and
          ``score_samples`` is then the joint log-likelihood.

        Scores are comparable only between models of the same kind of data: densities
        (gaussian, continuous_bernoulli) with densities on the same support and units,
        probabilities (bernoulli on binary data, poisson, negative_binomial, categorical)
        with probabilities.

    covariance_type : {"diag", "spherical"}, default="diag"
        Gaussian likelihood only: one noise variance per feature ("diag", as factor
        analysis) or one shared by all features ("spherical", as probabilistic PCA).

    hidden_layer_sizes : array-like of int, default=(128, 128)
        Hidden layer widths of the encoder; the decoder uses them in reverse order. ``()``
        makes both maps affine: the model is then probabilistic PCA (spherical) or factor
        analysis (diag).

    activation : {"identity", "logistic", "tanh", "relu"}, default="relu"
        Activation of the hidden layers.

    beta : float, default=1.0
        Weight of the KL term in the training objective (beta-VAE). ``score_samples``
        always uses the true bound, with weight 1.

    kl_warmup_iter : int, default=0
        Number of epochs over which the KL weight rises linearly from ``beta /
        kl_warmup_iter`` to ``beta``. Early stopping does not stop, nor keep weights, during
        the warm-up.

    batch_size : int, default=128
        Rows per minibatch (the whole training set when it has fewer rows).

    learning_rate_init : float, default=1e-3
        Adam's step size.

    weight_decay : float, default=0.0
        Decoupled weight decay (AdamW) of the encoder's and decoder's weight matrices:
        each step shrinks them by ``learning_rate_init * weight_decay`` of their value.
        Biases and the likelihood's own parameters (noise variances, dispersions) are not
        decayed. It regularises networks that are large for the data, at a price: on
        4,000 MNIST digits (784-400-20, bernoulli) ``weight_decay=0.1`` with
        ``batch_size=32`` scored 1.9-2.3 nats per digit better on held-out data than the
        defaults, but on 5,000 rows of a 5-feature Gaussian process it cost about 1 nat per
        row, and it shrinks a linear model's loadings.

    max_iter : int, default=200
        Maximum number of epochs (passes over the training data).

    early_stopping : bool, default=True
        Hold out ``validation_fraction`` of the rows and stop when their ELBO has not
        improved by ``tol`` for ``n_iter_no_change`` epochs; the weights of the best epoch
        are restored. When False, stop when the training loss has not improved by ``tol``
        for ``n_iter_no_change`` epochs. Either way the weights are a moving average of
        the last steps' (Polyak averaging, over about 30 epochs or 1,000 steps, whichever
        is fewer), which averages out the noise of the optimiser: validation judges, and
        fit returns, averaged weights.

    validation_fraction : float, default=0.1
        Fraction of the rows held out for early stopping.

    n_iter_no_change : int, default=10
        Epochs without improvement before stopping.

    tol : float, default=1e-4
        Improvement, in nats per sample, that counts as progress.

    n_importance_samples : int, default=50
        Number K of importance samples in ``score_samples``. The estimate is the
        importance-weighted bound of Burda et al. (2015): ELBO <= bound_K <= log p(x), and it
        tightens as K grows. K=1 is the ELBO.

    precision : {"float32", "bfloat16"}, default="float32"
        Arithmetic of the training steps. "bfloat16" runs them under torch's automatic
        mixed precision (weights and optimiser state stay float32): about 2x faster on CPUs
        with native bfloat16 (AVX512-BF16 or AMX) and on recent GPUs, at a small cost in
        the likelihood reached (measured: 0.15 nats per MNIST digit after 40 epochs).
        Inference is float64 on the CPU either way.

    device : str, default="auto"
        Where torch computes: "auto" (CUDA when available, else CPU), "cpu" or "cuda[:N]".
        Pickles and skops files hold no device-bound state: a model saved with "cuda" loads
        with "cpu" (and a warning) where torch sees no CUDA device.

    random_state : int, RandomState instance or None, default=None
        Seeds weight initialisation, the validation split, minibatch order, the training
        noise, the common random numbers of ``score_samples`` and, unless given its own,
        ``sample``. An int gives identical results from run to run on the same machine.

    verbose : int, default=0
        0 prints nothing; 1 or more shows a progress bar over epochs with the training
        loss and the validation ELBO.

    warm_start : bool, default=False
        When True, ``fit`` continues from the weights and optimiser state of the previous
        fit instead of starting anew.

    Attributes
    ----------
    module_ : torch.nn.Module
        The trained encoder, decoder and likelihood (:class:`skvae.VAEModule`). It works
        on data rescaled by ``(X - mean) / scale`` as the likelihood defines them.

    optimizer_ : torch.optim.Optimizer
        The AdamW optimiser, kept so that ``warm_start`` and ``partial_fit`` resume its
        state.

    n_iter_ : int
        Number of epochs run (summed over warm starts; one per ``partial_fit`` call).

    loss_curve_ : list of float
        Training loss per epoch: the negative (beta-weighted) ELBO per sample, in nats in
        the units of X (for ``partial_fit``, on the block of the call).

    validation_scores_ : list of float or None
        Held-out ELBO per sample for every epoch (None without early stopping, and after
        ``partial_fit``).

    best_validation_score_ : float or None
        The best of ``validation_scores_`` after the warm-up; its weights are the ones kept
        (None when ``validation_scores_`` is).

    best_loss_ : float or None
        The lowest training loss, when ``early_stopping=False``; after ``partial_fit``, the
        lowest value in ``loss_curve_``.

    noise_variance_ : ndarray of shape (n_features,)
        Gaussian columns only: the learned noise variance of each feature in the units of
        X (the same value for all features when ``covariance_type="spherical"``); NaN for
        the columns of other families in a mixed likelihood.

    kl_per_component_ : ndarray of shape (n_components,)
        Average KL(q(z_u | x) || N(0, 1)) over the training rows (after ``partial_fit``,
        the rows of its block) for each latent dimension, in nats. A value near 0 means the
        dimension is unused (posterior collapse).

    n_active_components_ : int
        Number of latent dimensions whose posterior mean varies across the training rows
        (after ``partial_fit``, the rows of its block), Var_x(E_q[z_u]) > 0.01 (Burda et al.
        2015).

    n_features_in_ : int
        Number of features seen during fit.

    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of features seen during fit, when X has string column names.

    See Also
    --------
    sklearn.decomposition.PCA : Probabilistic PCA, the linear spherical case.
    sklearn.decomposition.FactorAnalysis : Factor analysis, the linear diag case.
    VAEImputer : Missing values filled with their conditional mean under this model.

    Notes
    -----
    NaN in X marks a missing value, in every method that takes data. Missing entries are
    left out of the likelihood, so the ELBO and ``score_samples`` concern the observed
    entries of each row (MIWAE, Mattei and Frellsen 2019). When the training data has
    NaN, the encoder also sees the mask of observed entries; a model fitted on complete
    data sees a missing entry as the feature's mean (Gaussian columns; 0 for other
    families, no category for categorical ones). Scaling and categories are learned from
    the observed entries. A row with no observed value, a training column with no
    observed value, and infinity raise ValueError.

    References
    ----------
    Kingma, D. P. and Welling, M. (2014). Auto-encoding variational Bayes. ICLR.
    Burda, Y., Grosse, R. and Salakhutdinov, R. (2016). Importance weighted autoencoders.
    ICLR.
    Mattei, P.-A. and Frellsen, J. (2019). MIWAE: Deep generative modelling and
    imputation of incomplete data sets. ICML.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from skvae import VAEEstimator
    >>> X, _ = load_digits(return_X_y=True)
    >>> vae = VAEEstimator(n_components=2, max_iter=300, random_state=0).fit(X)
    >>> vae.transform(X[:3]).shape
    (3, 2)
    >>> vae.sample(4, random_state=0).shape
    (4, 64)
    >>> bool(vae.score(X) < 0)
    True
    """

    _parameter_constraints: dict = {
        "n_components": [Interval(Integral, 1, None, closed="left")],
        "likelihood": [StrOptions(set(LIKELIHOODS)), dict],
        "covariance_type": [StrOptions({"diag", "spherical"})],
        "hidden_layer_sizes": ["array-like", Interval(Integral, 1, None, closed="left")],
        "activation": [StrOptions(set(ACTIVATIONS))],
        "beta": [Interval(Real, 0, None, closed="left")],
        "kl_warmup_iter": [Interval(Integral, 0, None, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "learning_rate_init": [Interval(Real, 0, None, closed="neither")],
        "weight_decay": [Interval(Real, 0, None, closed="left")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "n_importance_samples": [Interval(Integral, 1, None, closed="left")],
        "precision": [StrOptions({"float32", "bfloat16"})],
        "device": [str],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
        "warm_start": ["boolean"],
    }

    def __init__(
        self,
        n_components=2,
        *,
        likelihood="gaussian",
        covariance_type="diag",
        hidden_layer_sizes=(128, 128),
        activation="relu",
        beta=1.0,
        kl_warmup_iter=0,
        batch_size=128,
        learning_rate_init=1e-3,
        weight_decay=0.0,
        max_iter=200,
        early_stopping=True,
        validation_fraction=0.1,
        n_iter_no_change=10,
        tol=1e-4,
        n_importance_samples=50,
        precision="float32",
        device="auto",
        random_state=None,
        verbose=0,
        warm_start=False,
    ):
        self.n_components = n_components
        self.likelihood = likelihood
        self.covariance_type = covariance_type
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.beta = beta
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
        self.precision = precision
        self.device = device
        self.random_state = random_state
        self.verbose = verbose
        self.warm_start = warm_start

    # ------------------------------------------------------------------ fitting

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Fit the VAE to X by maximising the ELBO.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data; NaN marks a missing value.

        y : Ignored
            Not used, present for API consistency.

        Returns
        -------
        self : VAEEstimator
            The fitted estimator.

        Examples
        --------
        >>> from sklearn.datasets import load_digits
        >>> from skvae import VAEEstimator
        >>> X, _ = load_digits(return_X_y=True)
        >>> vae = VAEEstimator(hidden_layer_sizes=(32,), tol=0.1, random_state=0).fit(X)
        >>> vae.n_iter_ == len(vae.loss_curve_) == len(vae.validation_scores_)
        True
        >>> vae.kl_per_component_.shape  # nats per latent dimension; near 0 means unused
        (2,)
        """
        return self._fit_or_restore(X, incremental=False)

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y=None):
        """Train for one epoch on the block X, continuing the model fitted so far.

        For data that does not fit in memory, or that arrives in blocks: each call makes
        one pass over X in shuffled minibatches of ``batch_size`` rows, with the same
        module and the same Adam state as the previous call. dask-ml's ``Incremental``
        calls it once per block of a dask array.

        The first call (on an estimator that ``fit`` and ``partial_fit`` have not seen)
        learns from its block what the likelihood needs (the location and scale of
        Gaussian columns, the number of categories of categorical ones), builds the model
        and the optimiser; later calls check each block against what was learned, so the
        first block must be representative: it must contain every category, and it sets
        the scale that Gaussian columns are standardised by. After ``fit``,
        ``partial_fit`` continues the fitted model. ``n_components``, ``likelihood``,
        ``covariance_type``, ``hidden_layer_sizes`` and ``activation`` must not change
        between calls.

        There is no validation split, early stopping or ``ConvergenceWarning``:
        ``max_iter``, ``early_stopping``, ``validation_fraction``, ``n_iter_no_change``,
        ``tol``, ``warm_start`` and ``verbose`` have no effect, and the weights are Adam's
        last iterate (``fit`` averages the weights of its last steps). The KL warm-up
        counts calls as epochs. ``n_iter_`` counts epochs (``fit``'s and one per call),
        ``loss_curve_`` gains one value per call, and ``noise_variance_`` is refreshed;
        ``kl_per_component_`` and ``n_active_components_`` describe the last block. With
        an int ``random_state`` a sequence of calls on the same blocks gives the same
        model every time. A call that fails (a block of the wrong width, outside the
        likelihood's domain, a diverging loss) raises and leaves the model as it was.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            A block of training data; NaN marks a missing value.

        y : Ignored
            Not used, present for API consistency.

        Returns
        -------
        self : VAEEstimator
            The estimator, trained one more epoch.

        Examples
        --------
        >>> import numpy as np
        >>> from sklearn.datasets import load_digits
        >>> from skvae import VAEEstimator
        >>> X = load_digits().data / 16
        >>> vae = VAEEstimator(
        ...     likelihood="continuous_bernoulli", hidden_layer_sizes=(32,), random_state=0
        ... )
        >>> for epoch in range(3):
        ...     for block in np.array_split(X, 4):
        ...         vae = vae.partial_fit(block)
        >>> vae.n_iter_, len(vae.loss_curve_)
        (12, 12)
        >>> vae.transform(X[:3]).shape
        (3, 2)
        """
        return self._fit_or_restore(X, incremental=True)

    def _fit_or_restore(self, X, incremental):
        # Whatever goes wrong, a model fitted earlier survives intact.
        params = self.get_params(deep=False)
        saved = {k: v for k, v in vars(self).items() if k not in params}
        try:
            return self._fit(X, incremental=incremental)
        except BaseException:
            for key in [k for k in vars(self) if k not in params]:
                delattr(self, key)
            vars(self).update(saved)
            raise

    def _fit(self, X, incremental=False):
        # partial_fit always continues the model there is; fit only with warm_start.
        resume = hasattr(self, "module_") and (incremental or self.warm_start)
        X = validate_data(
            self,
            X,
            reset=not resume,
            dtype=[np.float64, np.float32],
            ensure_all_finite="allow-nan",
        )
        missing = _check_missing(X, columns=not resume)
        likelihood = self._likelihood_parts(X.shape[1])
        device = _resolve_device(self.device)
        rng = check_random_state(self.random_state)
        init_seed, split_seed, train_seed, crn_seed = rng.randint(_MAX_SEED, size=4)
        spec = {
            "n_features": X.shape[1],
            "n_components": self.n_components,
            "hidden_layer_sizes": self._hidden_layer_sizes(),
            "activation": self.activation,
        }
        if resume:
            module, optimizer, history = self._resume(X, spec, likelihood, device, incremental)
            loc, scale = self._loc, self._scale
        else:
            spec["likelihood"], loc, scale = prepare_likelihood(
                X, likelihood, self.covariance_type
            )
            # The mask channel is part of the architecture, fixed by the first training data.
            spec["missing"] = missing
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(int(init_seed))
                module = VAEModule.from_spec(spec)
            module.to(device)
            optimizer = make_optimizer(module, self.learning_rate_init, self.weight_decay)
            history = History()
        if incremental:
            # The first call's seeds stay: a sequence of calls is reproducible as a whole.
            train_seed = getattr(self, "_train_seed", train_seed) if resume else train_seed
            crn_seed = getattr(self, "_crn_seed", crn_seed) if resume else crn_seed
            # One stream of minibatch orders and noise per epoch: from that seed and the epoch.
            seed = np.random.SeedSequence([int(train_seed), history.n_iter]).generate_state(1)
            generator = torch.Generator().manual_seed(int(seed[0]))
        else:
            generator = torch.Generator().manual_seed(int(train_seed))

        X_scaled = torch.from_numpy(self._rescale(X, loc, scale, np.float32))
        X_val = train_rows = None
        if self.early_stopping and not incremental:
            n_samples = X.shape[0]
            try:
                idx_train, idx_val = train_test_split(
                    np.arange(n_samples),
                    test_size=self.validation_fraction,
                    random_state=split_seed,
                )
            except ValueError:
                raise ValueError(
                    f"n_samples={n_samples} is too few to hold out validation_fraction="
                    f"{self.validation_fraction} of them for early_stopping. Pass more rows "
                    "or set early_stopping=False."
                ) from None
            X_val = X_scaled[torch.from_numpy(idx_val)]
            train_rows = torch.from_numpy(idx_train)

        config = TrainingConfig(
            batch_size=self.batch_size,
            max_iter=1 if incremental else self.max_iter,
            beta=self.beta,
            kl_warmup_iter=self.kl_warmup_iter,
            early_stopping=X_val is not None,
            n_iter_no_change=self.n_iter_no_change,
            tol=self.tol,
            learning_rate_init=self.learning_rate_init,
            verbose=0 if incremental else self.verbose,
            autocast_dtype=torch.bfloat16 if self.precision == "bfloat16" else None,
            log_det=_mean_log_det(X, scale) if missing else float(-np.log(scale).sum()),
            first_epoch=history.n_iter if incremental else 0,
            average_weights=not incremental,
            has_missing=missing,
        )
        sparse = sparse_inputs(module, X_scaled, config)
        try:
            history = train(
                module,
                optimizer,
                X_scaled,
                X_val,
                config,
                generator,
                device,
                history,
                train_rows,
                sparse,
            )
        except NonFiniteLossError as exc:
            raise ValueError(str(exc)) from None

        self.module_ = module
        self.optimizer_ = optimizer
        self._loc, self._scale = loc, scale
        self._log_det = config.log_det
        self._train_seed = int(train_seed)
        self._crn_seed = int(crn_seed)
        self._history = history
        self.n_iter_ = history.n_iter
        self.loss_curve_ = list(history.loss_curve)
        self.validation_scores_ = list(history.validation_scores) if X_val is not None else None
        self.best_validation_score_ = history.best_validation_score
        self.best_loss_ = None if X_val is not None else history.best_loss
        if incremental:
            self.best_loss_ = min(self.loss_curve_)
        variances = module.likelihood.variances()
        if variances is not None:
            self.noise_variance_ = variances.detach().cpu().double().numpy() * scale**2
        elif hasattr(self, "noise_variance_"):
            del self.noise_variance_
        self._set_latent_diagnostics(X_scaled, train_rows, device, sparse)
        if not (incremental or history.converged or history.interrupted):
            warnings.warn(
                f"Maximum iterations ({self.max_iter}) reached and the optimization hasn't "
                "converged yet. Raise max_iter or tol.",
                ConvergenceWarning,
                stacklevel=3,
            )
        return self

    def _resume(self, X, spec, likelihood, device, incremental):
        """Copies of the fitted module, optimiser and history to continue training."""
        old = self.module_.spec
        config = old["likelihood"]
        # What was learned from the data (categories) stays; the choice must not change.
        choice = (
            likelihood
            if isinstance(likelihood, str)
            else [{"name": p["name"], "columns": p["columns"]} for p in likelihood]
        )
        old_choice = (
            config["name"]
            if config["name"] != "mixed"
            else [{"name": p["name"], "columns": p["columns"]} for p in config["parts"]]
        )
        spec["likelihood"] = config
        changed = sorted(k for k in spec if spec[k] != old[k])
        if choice != old_choice:
            changed.append("likelihood")
        if config["covariance_type"] != self.covariance_type:
            changed.append("covariance_type")
        if changed:
            what = "partial_fit" if incremental else "warm_start=True"
            remedy = (
                "Call fit to start a new model."
                if incremental
                else "Set warm_start=False to fit a new model."
            )
            raise ValueError(
                f"{what} continues the previous model, but {', '.join(changed)} changed "
                f"since it was fitted. {remedy}"
            )
        self.module_.likelihood.validate(X)
        module = copy.deepcopy(self.module_).to(device)
        optimizer = make_optimizer(module, self.learning_rate_init, self.weight_decay)
        # A copy: load_state_dict keeps the tensors it is given, and Adam updates them in
        # place, which would change the fitted optimiser even when this call fails.
        optimizer.load_state_dict(copy.deepcopy(self.optimizer_.state_dict()))
        for group, decay in zip(optimizer.param_groups, (self.weight_decay, 0.0), strict=True):
            group["lr"] = self.learning_rate_init
            group["weight_decay"] = decay
        return module, optimizer, copy.deepcopy(self._history)

    def _likelihood_parts(self, n_features):
        """The likelihood parameter as a family name, or as parts with column indices."""
        if isinstance(self.likelihood, str):
            return self.likelihood
        names = getattr(self, "feature_names_in_", None)
        owner = {}
        parts = []
        for family, selection in self.likelihood.items():
            if family not in LIKELIHOODS:
                raise ValueError(
                    f"Unknown family {family!r} in the likelihood dict; choose from "
                    f"{sorted(LIKELIHOODS)}."
                )
            if isinstance(selection, str | Integral):
                selection = [selection]
            columns = []
            for column in selection:
                index = _column_index(family, column, names, n_features)
                if index in owner:
                    raise ValueError(
                        f"Column {column!r} is given to both {owner[index]!r} and {family!r} "
                        "in the likelihood dict; each column needs exactly one family."
                    )
                owner[index] = family
                columns.append(index)
            parts.append({"name": family, "columns": columns})
        missing = sorted(set(range(n_features)) - set(owner))
        if missing:
            shown = list(names[missing]) if names is not None else missing
            raise ValueError(
                f"The likelihood dict leaves columns {shown} without a family; every column "
                "needs exactly one."
            )
        return parts

    def _hidden_layer_sizes(self) -> tuple[int, ...]:
        sizes = self.hidden_layer_sizes
        sizes = (sizes,) if isinstance(sizes, Integral) else tuple(sizes)
        if not all(isinstance(h, Integral) and h >= 1 for h in sizes):
            raise ValueError(
                f"hidden_layer_sizes must be positive integers, got {self.hidden_layer_sizes}."
            )
        return tuple(int(h) for h in sizes)

    def _set_latent_diagnostics(self, X, rows, device, sparse=None):
        mu, log_var = encode_all(self.module_, X, device, rows, sparse=sparse)
        self.kl_per_component_ = gaussian_kl(mu, log_var).mean(dim=0).numpy()
        self.n_active_components_ = int((mu.var(dim=0, unbiased=False) > 0.01).sum())

    # ------------------------------------------------------------------ inference

    @staticmethod
    def _rescale(X, loc, scale, dtype):
        if not (np.any(loc) or np.any(scale != 1)):
            # Families that see the data as it is (Bernoulli, Poisson, ...): a copy, not a
            # float64 pass over every entry (20 ms of a 1.2 s fit on 5,000 digits). A copy
            # all the same: the tensor must not alias the user's array, which may be
            # read-only (torch warns on those).
            return np.array(X, dtype=dtype)
        out = np.empty(X.shape, dtype=dtype)
        step = max(1, _INFERENCE_ELEMENTS // max(1, X.shape[1]))
        for start in range(0, X.shape[0], step):
            out[start : start + step] = (X[start : start + step] - loc) / scale
        return out

    def _inference_module(self):
        # float64 on the CPU makes every row's result independent of the batch it is in
        # (to ~1e-15), which sklearn's subset- and order-invariance checks require.
        device = _resolve_device(self.device)
        dtype = torch.float64 if device.type == "cpu" else torch.float32
        module = copy.deepcopy(self.module_).to(device=device, dtype=dtype)
        return module.eval(), device, dtype

    def _infer(self, X, fn, out_shape, rescale=True, width=None):
        """Apply ``fn(module, batch)`` to X in row batches; returns float64 numpy."""
        module, device, dtype = self._inference_module()
        lik = module.likelihood
        widths = [X.shape[1], lik.n_inputs, *module.hidden_layer_sizes, 2 * lik.n_outputs]
        rows = max(1, _INFERENCE_ELEMENTS // (max(widths) * (width or 1)))
        out = np.empty((X.shape[0], *out_shape), dtype=np.float64)
        with torch.no_grad():
            for start in range(0, X.shape[0], rows):
                chunk = X[start : start + rows]
                if rescale:
                    chunk = (chunk - self._loc) / self._scale
                # A copy: the chunk may be a view of the caller's (possibly read-only) array.
                batch = torch.tensor(np.asarray(chunk), dtype=dtype, device=device)
                out[start : start + rows] = fn(module, batch).cpu().double().numpy()
        return out

    def _validate_X(self, X):
        check_is_fitted(self)
        X = validate_data(
            self, X, reset=False, dtype=[np.float64, np.float32], ensure_all_finite="allow-nan"
        )
        _check_missing(X, columns=False)
        self.module_.likelihood.validate(X)
        return X

    def _row_log_det(self, X):
        # The change of units applies to the observed entries of each row only.
        if not np.isnan(X).any():
            return float(-np.log(self._scale).sum())
        return -(np.log(self._scale) * ~np.isnan(X)).sum(axis=1)

    def _conditional_mean(self, X, n_samples, seed):
        """E[x | x_observed] per row, by self-normalised importance sampling (n_samples).

        X is validated; observed entries come back unchanged, missing ones (NaN) filled.
        Every row gets the same noise (from ``seed``), so rows do not depend on each other.
        """
        generator = torch.Generator().manual_seed(int(seed))
        shape = (n_samples, self.module_.n_components)
        eps = torch.randn(shape, generator=generator, dtype=torch.float64)

        def fill(module, x):
            return module.conditional_mean(x, eps.to(x.device))

        out = self._infer(X, fill, (self.n_features_in_,), width=n_samples)
        out = out * self._scale + self._loc
        observed = ~np.isnan(X)
        out[observed] = X[observed]  # exactly, not through the rescaling and back
        return out

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # NaN marks a missing value: it is left out of the likelihood (see the User Guide
        # section "Missing values" in the README).
        tags.input_tags.allow_nan = True
        return tags

    def transform(self, X):
        """Posterior means E_q[z | x] of the rows of X.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
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
        X = self._validate_X(X)
        return self._infer(X, lambda m, x: m.encode(x)[0], (self.module_.n_components,))

    def inverse_transform(self, X):
        """Decoder mean E[x | z] in the units of the training data.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_components)
            Latent points, e.g. the output of ``transform``.

        Returns
        -------
        X_original : ndarray of shape (n_samples, n_features)
            E[x | z] (probabilities for the bernoulli likelihood).

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

        def decode_mean(module, z):
            return module.likelihood.mean(module.decode(z))

        mean = self._infer(Z, decode_mean, (self.n_features_in_,), rescale=False)
        return mean * self._scale + self._loc

    def sample(self, n_samples=1, random_state=None):
        """Draw x ~ p(x | z) with z ~ N(0, I): real draws from the model.

        Parameters
        ----------
        n_samples : int, default=1
            Number of rows to draw.

        random_state : int, RandomState instance or None, default=None
            Seed of the draws; None uses the estimator's ``random_state``.

        Returns
        -------
        X : ndarray of shape (n_samples, n_features)
            Draws in the units of the training data (0/1 values for bernoulli).

        Examples
        --------
        >>> import numpy as np
        >>> from sklearn.datasets import load_digits
        >>> from skvae import VAEEstimator
        >>> X, _ = load_digits(return_X_y=True)
        >>> vae = VAEEstimator(hidden_layer_sizes=(32,), tol=0.1, random_state=0).fit(X)
        >>> draws = vae.sample(3, random_state=0)
        >>> draws.shape
        (3, 64)
        >>> bool(np.array_equal(draws, vae.sample(3, random_state=0)))  # seeded
        True
        """
        check_is_fitted(self)
        if not isinstance(n_samples, Integral) or isinstance(n_samples, bool) or n_samples < 1:
            raise ValueError(f"n_samples must be a positive integer, got {n_samples!r}.")
        rng = check_random_state(self.random_state if random_state is None else random_state)
        generator = torch.Generator().manual_seed(int(rng.randint(_MAX_SEED)))
        shape = (n_samples, self.module_.n_components)
        Z = torch.randn(shape, generator=generator, dtype=torch.float64)

        def draw(module, z):
            return module.likelihood.sample(module.decode(z), generator)

        X = self._infer(Z.numpy(), draw, (self.n_features_in_,), rescale=False)
        return X * self._scale + self._loc

    def score_samples(self, X):
        """Estimate of log p(x) for each row, in nats in the units of X.

        The importance-weighted bound with ``n_importance_samples`` samples (the ELBO when
        1), a lower bound on log p(x) that tightens as the number of samples grows. Every
        row gets the same noise, so a row's value does not depend on the others.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Data to score; NaN marks a missing value.

        Returns
        -------
        log_prob : ndarray of shape (n_samples,)
            Per-row log-likelihood estimate: of the observed entries, for rows with NaN.

        Examples
        --------
        >>> import numpy as np
        >>> from sklearn.datasets import load_digits
        >>> from skvae import VAEEstimator
        >>> X, _ = load_digits(return_X_y=True)
        >>> vae = VAEEstimator(hidden_layer_sizes=(32,), tol=0.1, random_state=0).fit(X)
        >>> log_px = vae.score_samples(X[:4])
        >>> log_px.shape
        (4,)
        >>> bool(np.allclose(vae.score_samples(X[2:4]), log_px[2:]))  # rows are independent
        True
        """
        X = self._validate_X(X)
        generator = torch.Generator().manual_seed(self._crn_seed)
        shape = (self.n_importance_samples, self.module_.n_components)
        eps = torch.randn(shape, generator=generator, dtype=torch.float64)

        def bound(module, x):
            return module.iw_bound(x, eps.to(x.device))

        return self._infer(X, bound, (), width=len(eps)) + self._row_log_det(X)

    def score(self, X, y=None):
        """Mean of ``score_samples`` over the rows of X: higher is a better model.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Data to score.

        y : Ignored
            Not used, present for API consistency.

        Returns
        -------
        score : float
            Average estimated log-likelihood per row, in nats.

        Examples
        --------
        >>> import numpy as np
        >>> from sklearn.datasets import load_digits
        >>> from skvae import VAEEstimator
        >>> X, _ = load_digits(return_X_y=True)
        >>> vae = VAEEstimator(hidden_layer_sizes=(32,), tol=0.1, random_state=0).fit(X)
        >>> bool(np.isclose(vae.score(X[:10]), vae.score_samples(X[:10]).mean()))
        True
        """
        return float(np.mean(self.score_samples(X)))

    @property
    def _n_features_out(self):
        # After fit, the fitted model's width (set_params may have changed the parameter).
        return self.module_.n_components if hasattr(self, "module_") else self.n_components

    # ------------------------------------------------------------------ pickling

    def __getstate__(self):
        # Only numpy arrays, Python builtins and this class in the state: no torch object
        # ties the model to a device, and skops.io can store it without trusting torch.
        state = dict(super().__getstate__())
        if "module_" in state:
            module = state["module_"]
            state["module_"] = {
                "spec": module.spec,
                "state_dict": _tree_to_numpy(module.state_dict()),
            }
            state["optimizer_"] = _tree_to_numpy(state["optimizer_"].state_dict())
        if isinstance(state.get("_history"), History):
            state["_history"] = dataclasses.asdict(state["_history"])
        return state

    def __setstate__(self, state):
        state = dict(state)
        if isinstance(state.get("module_"), dict):
            stored = state["module_"]
            module = VAEModule.from_spec(stored["spec"])
            module.load_state_dict(_tree_to_torch(stored["state_dict"]))
            optimizer = make_optimizer(
                module, state.get("learning_rate_init", 1e-3), state.get("weight_decay", 0.0)
            )
            optimizer.load_state_dict(_tree_to_torch(state["optimizer_"]))
            state["module_"] = module.eval()
            state["optimizer_"] = optimizer
        if isinstance(state.get("_history"), dict):
            state["_history"] = History(**state["_history"])
        device = state.get("device")
        if isinstance(device, str) and device.startswith("cuda") and not torch.cuda.is_available():
            # As skorch does: a model fitted on a GPU still works on a CPU-only machine.
            warnings.warn(
                f"This model was saved with device={device!r}, but torch sees no CUDA device "
                "here; it is loaded with device='cpu' instead.",
                stacklevel=2,
            )
            state["device"] = "cpu"
        super().__setstate__(state)
