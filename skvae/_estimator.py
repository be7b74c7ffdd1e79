"""VAEEstimator: the VAE as a scikit-learn transformer and density model."""

from __future__ import annotations

import warnings
from numbers import Integral

import numpy as np
import scipy.sparse as sp
from sklearn.base import _fit_context
from sklearn.utils._param_validation import StrOptions

from ._base import BaseVAE
from ._covariates import CovariateEncoder, column_index, covariate_columns
from ._latent import LatentMixin
from ._library_size import LIBRARY_FAMILIES, library_prior, row_totals
from ._likelihoods import NegativeBinomial, likelihood_class
from ._stacklevel import users_stacklevel

__all__ = ["VAEEstimator"]


class VAEEstimator(LatentMixin, BaseVAE):
    """Variational autoencoder as a scikit-learn transformer and density model.

    The model: latent variables z of size ``n_components`` with a prior p(z) (N(0, I) by
    default, see ``prior``), a decoder p(x | z) of the chosen ``likelihood``, and an
    encoder q(z | x) = N(mu(x), diag sigma(x)^2), both multilayer perceptrons, trained by
    maximising the evidence lower bound (ELBO) E_q[log p(x|z)] - beta * KL(q(z|x) || p(z))
    with the reparameterisation trick and Adam on minibatches.

    Parameters
    ----------
    n_components : int, default=2
        Number of latent variables.

    likelihood : str, dict or Likelihood subclass, default="gaussian"
        Observation model p(x | z), one of :data:`skvae.LIKELIHOODS` (families registered
        with :func:`skvae.register_likelihood` included):

        - "gaussian": Gaussian noise around the decoder mean, with learned variances (see
          ``covariance_type``) that have a floor of 1e-3 times the largest feature
          variance (as GaussianNB's ``var_smoothing``), so that a near-constant column
          cannot make the likelihood infinite.
        - "student_t": Student's t noise for real columns with heavy tails, its location
          and scale from the decoder and its degrees of freedom learned per column: a row
          far out costs the logarithm of its distance, not its square.
        - "bernoulli": independent Bernoulli variables for data in [0, 1];
          ``score_samples`` is a true log-likelihood only for binary data (for other
          values it is a cross-entropy, not a normalised density).
        - "continuous_bernoulli": the normalised density on [0, 1] of Loaiza-Ganem and
          Cunningham (2019), for intensities such as grey levels.
        - "logit_normal": values strictly between 0 and 1 (shares, rates), with logit(x)
          normal around a decoder mean, its variance from the decoder too.
        - "lognormal": positive amounts skewed to the right, with log(x) normal around a
          decoder mean, its variance from the decoder too.
        - "poisson": non-negative integer counts, rate exp(decoder output).
        - "negative_binomial": counts with a learned per-feature dispersion (variance
          mu + mu^2 / theta), for overdispersed counts.
        - "zero_inflated_negative_binomial": a negative binomial whose zeros are
          inflated by a probability pi the decoder gives per feature (scvi-tools' ZINB),
          for counts with dropouts.
        - "multinomial": counts given their row total (documents, profiles), with the
          proportions from the decoder and a negative binomial for the totals learned in
          fit; no missing entries.
        - "categorical": integer codes 0, 1, ... per column, one softmax each; the number
          of categories of each column is learned in fit. ``inverse_transform`` gives the
          most probable category.
        - "auto": a family per column from its training values: only 0 and 1 ->
          bernoulli; whole numbers with at most 10 distinct values -> categorical;
          non-negative integers with a mean of at most 100 -> negative_binomial if their
          variance exceeds their mean, else poisson; values strictly between 0 and 1 ->
          logit_normal; other values in [0, 1] -> continuous_bernoulli; non-negative
          values with at least 10% zeros -> hurdle_lognormal; positive values skewed to
          the right (skewness above 1, and above their log's in size) -> lognormal; values
          with an excess kurtosis above 3 (heavy tails) -> student_t; anything else ->
          gaussian. Labels and booleans of a data frame are categorical and bernoulli.
          The choice is ``likelihood_``, a dict that can be passed back.
        - a dict mapping family names to the columns they model, e.g. ``{"gaussian": [0, 1],
          "poisson": [2, 3]}``, with column indices or, for a DataFrame, names, as
          ColumnTransformer selects them; every column needs exactly one family, and
          ``score_samples`` is then the joint log-likelihood.

        Scores are comparable only between models of the same kind of data: densities
        (gaussian, continuous_bernoulli) with densities on the same support and units,
        probabilities (bernoulli on binary data, the count families, categorical)
        with probabilities.

    covariates : int, str, list or dict, default=None
        Columns of X that condition the encoder and the decoder instead of being
        modelled, selected by index or, for a DataFrame, by name (as the likelihood dict
        selects): a column or a list of columns are categorical covariates (batches,
        donors: one-hot inside, with the levels seen in fit; a level not seen in fit is
        an error); a dict ``{"categorical": [...], "continuous": [...]}`` adds continuous
        ones (standardised with their training mean and deviation). ``transform`` gives
        the latent code of the rest, and the model need not spend it on what the
        covariates explain; ``inverse_transform`` and ``sample`` decode at covariate
        values given as their ``covariates`` argument, e.g. every row as if from batch 0
        (batch-corrected values). The likelihood models the other columns: a likelihood
        dict selects them by name or by position in X as passed, as ColumnTransformer
        does (positions among the modelled columns alone are deprecated).
        ``score_samples`` is log p(x | covariates) of the modelled columns.

    library_size : {"latent", "observed"} or None, default=None
        For the count families "poisson", "negative_binomial" and
        "zero_inflated_negative_binomial": the mean of a row's counts as its library size
        times the proportions the decoder gives (softmax), as scVI models them, so that
        the latent code need not carry each row's total (sequencing depth, document
        length). None: the decoder gives the means. "latent": the log library is one more
        latent variable, with a normal prior of the mean and deviation of the training
        rows' log totals, inferred by the encoder beside z; training, ``score_samples``
        (importance sampling over z and the library) and ``sample`` integrate over it, so
        the score is a likelihood of x. "observed": the library is each row's own total;
        ``score_samples`` is then a likelihood of x given its total, which is not a
        likelihood of x (the total is read off x) and does not compare with other
        models' scores. ``inverse_transform`` decodes at the typical library, exp(mean
        log total). With categorical covariates, the library's prior is learned per level
        (each batch its own depth), as scVI's is per batch. No missing values. A column
        of X here is deprecated: use ``library_column``.

    library_column : int, str or None, default=None
        For the same count families: a column of X, by index or name, that gives each
        row's library (size factors on the scale of the counts, or totals counted
        elsewhere), with ``library_size=None``. The column is not modelled, and
        ``score_samples`` is a likelihood of x given it; ``inverse_transform`` and
        ``sample`` decode at the libraries given as their ``covariates`` argument, or at
        the typical one.

    dispersion : {"feature", "feature-covariate"}, default="feature"
        For "negative_binomial" and "zero_inflated_negative_binomial": one inverse
        dispersion theta per feature, or one per feature and level of the categorical
        ``covariates`` ("feature-covariate", as scVI's ``dispersion="gene-batch"``), for
        batches whose counts are noisier than others'.

    covariance_type : {"diag", "spherical"}, default="diag"
        Gaussian columns only (without one, a warning says it is ignored): one noise
        variance per feature ("diag", as factor analysis) or one shared by all features
        ("spherical", as probabilistic PCA).

    posterior : str or Posterior subclass, default="diagonal_gaussian"
        The family of q(z | x): "diagonal_gaussian", N(mu(x), diag sigma(x)^2), or any
        family registered with :func:`skvae.register_posterior` (or its class).

    prior : str or Prior subclass, default="normal"
        The prior p(z): "normal", N(0, I); "mixture", a mixture of
        ``n_prior_components`` diagonal Gaussians whose weights, means and variances are
        learned (codes can form groups); "vamp", the VampPrior of Tomczak and Welling
        (2018), the mixture of the encoder's posteriors at ``n_prior_components`` learned
        pseudo-inputs; or any family registered with :func:`skvae.register_prior` (or its
        class). Beside the normal prior, the KL term of training is estimated from the
        drawn z, through autograd (slower per step), and a latent library size is not
        available.

    n_prior_components : int, default=10
        Components of a mixture prior ("mixture", "vamp").

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

    batch_size : int or "auto", default="auto"
        Rows per minibatch (the whole training set when it has fewer rows). "auto" is a
        tenth of the training rows, at least 32 and at most 128: a small table gets
        several steps per epoch. The value used is ``batch_size_``.

    learning_rate : {"constant", "adaptive"}, default="constant"
        The step size schedule, as MLPClassifier names them. "constant" keeps
        ``learning_rate_init`` and stops at the first plateau (``n_iter_no_change``
        epochs without improvement). "adaptive" divides the step size by 10 at each of the
        first two plateaus and stops at the third; it costs two more plateaus, and the
        weight average already gives much of what the smaller steps would.

    learning_rate_init : float, default=1e-3
        Adam's (initial) step size.

    weight_decay : float, default=0.0
        Decoupled weight decay (AdamW) of the encoder's and decoder's weight matrices:
        each step shrinks them by ``learning_rate_init * weight_decay`` of their value.
        Biases and the likelihood's own parameters (noise variances, dispersions) are not
        decayed. It regularises networks that are large for the data, at a price: it can
        cost likelihood where the network is not too large, and it shrinks a linear
        model's loadings.

    max_iter : int or "auto", default="auto"
        Maximum number of epochs (passes over the training data). "auto" gives the fit
        20,000 optimizer steps (at least 2 epochs): thousands of epochs for a table of a
        hundred rows, a few for a million. The value used is ``max_iter_``.

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

    n_iter_no_change : int or "auto", default="auto"
        Epochs without improvement before stopping. "auto" is 500 optimizer steps' worth
        of epochs, at least 10: the patience of a fit is counted in steps, so that a small
        table, with one or a few steps per epoch, is not stopped before its model has
        moved. The value used is ``n_iter_no_change_``.

    tol : float, default=1e-4
        Improvement, in nats per sample, that counts as progress.

    n_importance_samples : int, default=100
        Number K of importance samples in ``score_samples``. The estimate is the
        importance-weighted bound of Burda et al. (2015): ELBO <= bound_K <= log p(x), and it
        tightens as K grows. K=1 is the ELBO.

    n_train_importance_samples : int, default=1
        Number K of samples of z per row in the training objective. 1 trains on the ELBO;
        K > 1 on the importance-weighted bound with K samples (IWAE, Burda et al. 2015),
        a tighter objective, with doubly-reparameterised encoder gradients (DReG, Tucker
        et al. 2019) so that the encoder keeps learning as K grows. Each step then costs
        about K times the decoder's work; early stopping judges the same bound.

    n_train_samples : int, default="deprecated"
        The former name of ``n_train_importance_samples``.

        .. deprecated:: 0.2
           ``n_train_samples`` is removed in 0.3; use ``n_train_importance_samples``,
           whose name cannot be read as a number of training rows.

    compute_dtype : {"float32", "bfloat16"}, default="float32"
        Arithmetic of the training steps. "bfloat16" runs them under torch's automatic
        mixed precision (weights and optimiser state stay float32): faster on CPUs with
        native bfloat16 (AVX512-BF16 or AMX) and on recent GPUs, at a small cost in the
        likelihood reached (``benchmarks/bench_fit.py`` measures both). Inference does
        not depend on it (see the developer guide's performance page).

    precision : {"float32", "bfloat16"}, default="deprecated"
        Former name of ``compute_dtype``.

        .. deprecated:: 0.2
           ``precision`` is deprecated in 0.2 and will be removed in 0.3; use
           ``compute_dtype``, whose name cannot be read as a precision matrix.

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
    likelihood_ : str, dict or Likelihood subclass
        The likelihood of the model: ``likelihood``, with "auto" resolved to a dict of
        families and the columns they model (names for a DataFrame, else indices).

    categories_ : dict of ndarray
        The categories of each categorical column, in the order of their codes and in the
        user's labels, keyed by the column's name for a DataFrame, else by its position
        in X (empty when no column is categorical).

    covariate_categories_ : list of ndarray
        The levels of each categorical covariate seen in fit, in the order of their
        columns in ``covariates`` (an empty list without categorical covariates).

    module_ : VAEModule
        The trained encoder, decoder and likelihood (:class:`skvae.VAEModule`). It works
        on data rescaled by ``(X - module_.likelihood.loc) / module_.likelihood.scale``,
        which it keeps, so it can be used on its own.

    optimizer_ : AdamW
        The AdamW optimiser (skvae's, over flat buffers, with ``torch.optim.AdamW``'s
        ``param_groups``, ``state`` and ``state_dict``), kept so that ``warm_start`` and
        ``partial_fit`` resume its state.

    n_iter_ : int
        Number of epochs run (summed over warm starts; one per ``partial_fit`` call).

    batch_size_, max_iter_, n_iter_no_change_ : int
        The batch size, epoch limit and patience the last fit used: the parameters of
        the same names, with each "auto" resolved for the number of training rows.

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

    feature_names_in_ : ndarray of shape (`n_features_in_`,)
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

    A ``scipy.sparse`` X (matrix or array, any format) is kept sparse: training densifies
    the rows of one minibatch at a time, inference a chunk of rows at a time, and what fit
    learns from X (a Gaussian's location and scale, the multinomial's totals) comes from
    its non-zero entries. Gaussian columns are centred batch by batch, so they take a
    sparse X too, but only the count families, bernoulli and continuous_bernoulli keep
    the encoder's first layer sparse. In a sparse X an absent entry is a zero, so NaN in
    one is an error; categorical, mixed (dict) and "auto" likelihoods need a dense X.

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
    >>> vae = VAEEstimator(n_components=2, random_state=0).fit(X)
    >>> vae.transform(X[:3]).shape
    (3, 2)
    >>> vae.sample(4, random_state=0).shape
    (4, 64)
    >>> bool(vae.score(X) < 0)
    True
    """

    _parameter_constraints: dict = {
        **BaseVAE._parameter_constraints,
        "covariates": [None, Integral, str, list, tuple, dict],
        # A column is the deprecated form of library_column.
        "library_size": [None, Integral, str],
        "library_column": [None, Integral, str],
        "dispersion": [StrOptions({"feature", "feature-covariate"})],
    }

    def __init__(
        self,
        n_components=2,
        *,
        likelihood="gaussian",
        covariates=None,
        library_size=None,
        library_column=None,
        dispersion="feature",
        covariance_type="diag",
        posterior="diagonal_gaussian",
        prior="normal",
        n_prior_components=10,
        hidden_layer_sizes=(128, 128),
        activation="relu",
        beta=1.0,
        kl_warmup_iter=0,
        batch_size="auto",
        learning_rate="constant",
        learning_rate_init=1e-3,
        weight_decay=0.0,
        max_iter="auto",
        early_stopping=True,
        validation_fraction=0.1,
        n_iter_no_change="auto",
        tol=1e-4,
        n_importance_samples=100,
        n_train_importance_samples=1,
        n_train_samples="deprecated",
        compute_dtype="float32",
        precision="deprecated",
        device="auto",
        random_state=None,
        verbose=0,
        warm_start=False,
    ):
        self.n_components = n_components
        self.likelihood = likelihood
        self.covariates = covariates
        self.library_size = library_size
        self.library_column = library_column
        self.dispersion = dispersion
        self.covariance_type = covariance_type
        self.posterior = posterior
        self.prior = prior
        self.n_prior_components = n_prior_components
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.beta = beta
        self.kl_warmup_iter = kl_warmup_iter
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.weight_decay = weight_decay
        self.max_iter = max_iter
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.n_importance_samples = n_importance_samples
        self.n_train_importance_samples = n_train_importance_samples
        self.n_train_samples = n_train_samples
        self.compute_dtype = compute_dtype
        self.precision = precision
        self.device = device
        self.random_state = random_state
        self.verbose = verbose
        self.warm_start = warm_start

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Fit the VAE to X by maximising the ELBO.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
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
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
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

    def _start_fit(self, X, incremental):
        if self.library_size not in (None, "latent", "observed"):
            # TODO(0.3): remove with the column form of library_size.
            warnings.warn(
                f"library_size={self.library_size!r} (a column of X) is deprecated in 0.2 "
                f"and stops working in 0.3; write library_column={self.library_size!r}, "
                "which a column named 'latent' or 'observed' cannot be mistaken for.",
                FutureWarning,
                stacklevel=users_stacklevel(),
            )
        return super()._start_fit(X, incremental)

    def _architecture(self, X, covariates, resumed=None) -> dict:
        spec = super()._architecture(X, covariates, resumed)
        spec["library"] = None
        spec["dispersion"] = self.dispersion
        if self.dispersion != "feature":
            one = isinstance(self.likelihood, str | type) and self.likelihood != "auto"
            family = likelihood_class(self.likelihood) if one else None
            negative_binomial = family is not None and issubclass(family, NegativeBinomial)
            if not negative_binomial or "categorical" not in covariates:
                raise ValueError(
                    f"dispersion={self.dispersion!r} learns a dispersion per level of the "
                    "categorical covariates of a negative binomial family; here "
                    f"likelihood={self.likelihood!r} and covariates={self.covariates!r}."
                )
        spec["covariates"].pop("library", None)  # a column of sizes: not a network input
        kind, column = self._library()
        if kind is None:
            return spec
        setting = f"library_size={kind!r}" if column is None else f"library_column={column!r}"
        family = self.likelihood if isinstance(self.likelihood, str) else None
        if family not in LIBRARY_FAMILIES:
            raise ValueError(
                f"{setting} scales the means of a count family, one of "
                f"{list(LIBRARY_FAMILIES)}; likelihood={self.likelihood!r} is not."
            )
        if not sp.issparse(X) and np.isnan(X).any():
            raise ValueError(
                f"{setting} needs each row's total, which missing values leave unknown: "
                "X has NaN. Fill them, or leave library_size and library_column None."
            )
        old = None if resumed is None else resumed.library
        if old is not None and old["kind"] == kind:
            spec["library"] = old  # the prior learned on the first data stays
        else:
            given = covariates.get("library")
            totals = row_totals(X) if given is None else given.ravel()
            spec["library"] = library_prior(totals, kind, covariates.get("categorical"))
        return spec

    def _library(self) -> tuple[str | None, object]:
        """The library's kind (None, "latent" or "observed") and the column of X giving it."""
        kind, column = self.library_size, self.library_column
        if kind not in (None, "latent", "observed"):
            kind, column = None, kind if column is None else column
        if column is None:
            return kind, None
        if kind is not None:
            raise ValueError(
                f"library_size={kind!r} and library_column={column!r} both say where each "
                "row's library comes from: set one of them."
            )
        return "observed", column

    def _library_column(self):
        """The column of X holding each row's library, or None."""
        return self._library()[1]

    def _covariate_columns(self) -> dict[str, list[int]]:
        names, n_features = getattr(self, "feature_names_in_", None), self.n_features_in_
        spec = covariate_columns(self.covariates, n_features, names)
        column = self._library_column()
        if column is not None:
            what = "library_column"
            index = column_index(column, names, n_features, what)
            used = [c for columns in spec.values() for c in columns]
            if index in used:
                raise ValueError(f"library_column={column!r} is also a covariate; name it once.")
            if len(used) + 1 >= n_features:
                raise ValueError("covariates and library_column leave no column of X to model.")
            spec["library"] = [index]
        return spec

    def _decoding_covariates(self, n_rows, values=None):
        if values is None and set(self._layout.covariates) == {"library"}:
            # Only a column of library sizes: decode at the typical one unless told.
            typical = np.exp(self.module_.library["loc"])
            return {"library": np.full((n_rows, 1), typical)}
        return super()._decoding_covariates(n_rows, values)

    def _covariate_features(self, covariates, fit=False):
        if fit and not covariates:
            self.covariate_categories_ = []
        if not covariates:
            return {}
        sizes = covariates.get("library")
        if sizes is not None and not (np.isfinite(sizes).all() and (sizes > 0).all()):
            raise ValueError(
                f"library_column={self._library_column()!r} names the column of each row's "
                "library size, which must be positive; it holds values <= 0."
            )
        if fit:
            names = getattr(self, "feature_names_in_", None)
            spec = self._layout.covariates
            shown = {k: (c if names is None else names[c]) for k, c in spec.items()}
            self._covariate_encoder = CovariateEncoder(shown).fit(covariates)
            self.covariate_categories_ = list(self._covariate_encoder.categories_)
        return self._covariate_encoder.transform(covariates)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # scipy.sparse X is kept sparse and densified a batch of rows at a time.
        tags.input_tags.sparse = True
        return tags
