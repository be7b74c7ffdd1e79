"""VAEOutlierDetector: the VAE as a scikit-learn outlier detector, scored by its likelihood."""

from __future__ import annotations

import math
import warnings
from numbers import Real

import numpy as np
import torch
from sklearn.base import OutlierMixin, _fit_context
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.utils._available_if import available_if
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted
from torch import Tensor

from ._analytic_step import Pass
from ._arrays import MAX_SEED
from ._base import BaseVAE
from ._likelihoods import Likelihood
from ._module import VAEModule
from ._trainer import ENCODE_BATCH_SIZE, Budget, Trainer, _rows, auto_budget

__all__ = ["VAEOutlierDetector"]

# The detector's "auto" budget and trimming, chosen on the tuning tasks of
# benchmarks/bench_outliers.py (the reporting tasks chose nothing).
#: Optimizer steps of a fit with max_iter="auto" (at least 2 epochs).
AUTO_MAX_STEPS = 300
#: Steps on every row before the least likely rows of each batch are left out.
TRIM_WARMUP_STEPS = 100
#: Importance samples of the bound that ranks the training rows for ``reweight``.
RANKING_SAMPLES = 10
#: contamination="auto": Tukey's fence, this many interquartile ranges below the first
#: quartile of the scores of the rows the threshold is set on.
TUKEY_FENCE = 1.5


class TrimmedTrainer(Trainer):
    """A trainer whose objective, after a warm-up, is the ELBO of each batch's likeliest rows.

    Rows the model finds least likely (the lowest ELBO in their minibatch) are left out of
    the gradient, so outliers among the training rows do not pull the model towards them;
    early stopping judges the validation rows the same way. ``support_fraction``: the share
    of rows kept; ``warmup_epochs``: epochs on every row first, so that the ranking comes
    from a model that has learned something.
    """

    def __init__(self, *args, support_fraction: float, warmup_epochs: int) -> None:
        super().__init__(*args)
        self.support_fraction = support_fraction
        self.warmup_epochs = warmup_epochs
        self._trimming = False

    def _n_kept(self, n_rows: int) -> int:
        return max(1, math.ceil(self.support_fraction * n_rows))

    def run_epoch(self, epoch: int) -> float:
        self._trimming = self.config.first_epoch + epoch >= self.warmup_epochs
        return super().run_epoch(epoch)

    def row_weights(self, forward: Pass, kl_weight: float) -> Tensor | None:
        """1 / n_kept for each batch's likeliest rows, 0 for the rest (after the warm-up)."""
        if not self._trimming:
            return None
        log_p = self.module.likelihood.log_prob(forward.x, forward.out, forward.mask)
        elbo = log_p - kl_weight * forward.kl
        n_kept = self._n_kept(len(elbo))
        weights = torch.zeros_like(elbo)
        weights[elbo.topk(n_kept).indices] = 1.0 / n_kept
        return weights

    def train_step(self, batch: dict, eps: Tensor, kl_weight: float) -> Tensor:
        if not self._trimming or self.analytic is not None:
            return super().train_step(batch, eps, kl_weight)
        n_kept = self._n_kept(len(eps))
        if eps.dim() == 3:
            # The IWAE loss is one number per batch: rank the rows first, then train on the
            # kept ones, through the dense encoder input (the sparse view is not subset).
            with torch.no_grad():
                ranked = self.module.loss(batch, eps, kl_weight)
            kept = (ranked.reconstruction - kl_weight * ranked.kl).topk(n_kept).indices
            subset = {k: None if v is None else v[kept] for k, v in batch.items() if k != "sparse"}
            loss = self.module.loss
            return self.step(lambda: loss(subset, eps[kept], kl_weight).loss, len(eps))

        def trimmed() -> Tensor:
            output = self.module.loss(batch, eps, kl_weight)
            elbo = output.reconstruction - kl_weight * output.kl
            return -elbo.topk(n_kept).values.mean()

        return self.step(trimmed, len(eps))

    @torch.no_grad()
    def validation_step(self) -> float:
        """Mean bound of the likeliest ``support_fraction`` of the validation rows, in nats."""
        scores = torch.cat(list(self.validation_scores()))
        kept = scores.topk(self._n_kept(len(scores))).values
        return kept.mean().item() + self.config.log_det


def per_feature_log_prob(likelihood: Likelihood, x: Tensor, out: Tensor) -> Tensor:
    """log p(x_j | z) of each feature j, (n, n_features), NaN where x_j is missing.

    A family whose ``log_prob`` is a masked sum over features gives them: with the mask of
    feature j alone, the sum is feature j's term; another family raises ValueError. The
    rows are repeated once per feature, which costs ``n_features`` times the memory of one
    call (the caller batches rows to bound it).
    """
    n_rows, n_features = x.shape
    isnan = torch.isnan(x)
    x = x.masked_fill(isnan, 0.0)
    one_feature = torch.eye(n_features, dtype=x.dtype, device=x.device).expand(n_rows, -1, -1)
    repeated_x = x.unsqueeze(1).expand(-1, n_features, -1)
    repeated_out = out.unsqueeze(1).expand(-1, n_features, -1)
    terms = likelihood.log_prob(repeated_x, repeated_out, one_feature)
    # A family whose log-probability is not a sum over features (a multinomial's is not)
    # ignores the mask: its "terms" then do not add up to the row's log-probability.
    observed = (~isnan).to(x.dtype) if bool(isnan.any()) else None
    joint = likelihood.log_prob(x, out, observed)
    if not torch.allclose(terms.masked_fill(isnan, 0.0).sum(-1), joint, rtol=1e-6, atol=1e-6):
        raise ValueError(
            f"The {likelihood.name!r} likelihood is not a product over features, so its "
            "log-probability has no per-feature terms."
        )
    return terms.masked_fill(isnan, float("nan"))


def shifted_scores(scores: np.ndarray, held_out: np.ndarray) -> np.ndarray:
    """Scores of every fit row as new rows would get them: the threshold rows of novelty=True.

    The rows training saw are likelier to the model than new rows, by an amount that
    depends on the data; the held-out rows are too few for a quantile in the tail. So the
    scores of the seen rows are moved by the difference between the first quartiles of
    the held-out and the seen rows' scores (the quartile nearest the tail that a few
    dozen rows estimate well), and pooled with the held-out rows' own scores.
    """
    seen = np.delete(scores, held_out)
    held = scores[held_out]
    if len(seen) == 0:
        return held
    gap = np.percentile(held, 25) - np.percentile(seen, 25)
    return np.concatenate([seen + gap, held])


def _features_at_posterior_mean(module: VAEModule, batch: dict) -> Tensor:
    z = module.encode(batch).mean
    return per_feature_log_prob(module.likelihood, batch["x"], module.decode(z, batch))


class VAEOutlierDetector(OutlierMixin, BaseVAE):
    """Outlier detection with a variational autoencoder: rows the model finds unlikely.

    A VAE (see :class:`VAEEstimator` for the model) is fitted to the data; a row's
    ``score_samples`` is its estimated log-likelihood, the importance-weighted bound on
    log p(x). Low means abnormal. ``decision_function`` is that score minus ``offset_``,
    negative for outliers, and ``predict`` labels rows -1 (outlier) or 1 (inlier), as
    :class:`~sklearn.ensemble.IsolationForest` and
    :class:`~sklearn.neighbors.LocalOutlierFactor` with ``novelty=True`` do. The
    threshold is set on rows training did not see, so that it holds for new rows.

    Two things differ from a VAEEstimator fitted to the same rows. Training is robust to
    outliers among them: after a warm-up, the rows of each minibatch with the lowest ELBO
    (a share ``1 - support_fraction``) are left out of the gradient, as a trimmed
    estimator leaves out the rows it finds least likely, so the model does not learn to
    explain the outliers it is meant to find. And "auto" budgets are smaller (300
    optimizer steps): a model fitted longer makes the outliers among its training rows
    more likely.

    Parameters
    ----------
    n_components : int, default=2
        Number of latent variables.

    contamination : "auto" or float, default="auto"
        The share of outliers in the data. A float in (0, 0.5] puts ``offset_`` at that
        quantile of the threshold's scores (see ``novelty``): that share of
        rows like them is flagged (with ``novelty=True``, the quantile whose expected share
        of new rows below it is ``contamination``: the k-th lowest of n scores for k =
        contamination * (n + 1)). "auto" is Tukey's fence on those scores: an outlier is
        a row whose log-likelihood lies more than 1.5 interquartile ranges below their
        first quartile. A log-likelihood has no natural threshold (its units depend on
        the data's); the quartiles of the scores give the scale, and, being quartiles,
        they hardly move when up to a quarter of the rows are outliers.

    novelty : bool, default=True
        Where the threshold is set, as in LocalOutlierFactor. True, for judging new rows:
        on the scores of all the rows given to ``fit`` as new rows would get them. The
        model finds the rows it was trained on likelier than new rows, which would put a
        threshold set on them too high for new rows; the ``validation_fraction`` of the
        rows that training does not see (the early-stopping rows, or rows held out for
        the threshold alone when ``early_stopping=False``) score as new rows do, but are
        too few for a quantile in the tail. So the scores of the rows training saw are
        moved down by the difference between their first quartile and the held-out
        rows' first quartile, and pooled with the held-out rows' scores.
        ``fit_predict`` is then not available. False, for labelling the rows given to
        ``fit``: on their own scores, as IsolationForest sets it; ``fit_predict`` then
        flags exactly ``contamination`` of them.

    support_fraction : float, default=0.8
        Share of each minibatch's rows whose ELBO trains the model once the first 100
        optimizer steps (in whole epochs) have passed: the rest, the rows of lowest ELBO,
        are left out. Early stopping judges the same share of the validation rows, the
        likeliest. 1.0 trains on every row, as VAEEstimator does.

    reweight : bool, default=False
        Fit a second, new model on the ``support_fraction`` of the training rows that the
        first model finds likeliest, as MinCovDet reweights its raw estimate: the second
        fit never sees the rows most likely to be outliers. For training rows known to
        hold outliers; it doubles the cost of ``fit``. ``n_iter_`` and ``loss_curve_``
        cover both fits; with ``warm_start``, the first continues the previous model and
        the second is new.

    likelihood : str, dict or Likelihood subclass, default="gaussian"
        Observation model p(x | z), as in :class:`VAEEstimator`: a name of
        :data:`skvae.LIKELIHOODS`, "auto" (a family per column from its values), a dict
        mapping families to columns, or a class.

    covariance_type : {"diag", "spherical"}, default="diag"
        Gaussian columns only: one noise variance per feature ("diag") or one shared by
        all features ("spherical").

    posterior : str or Posterior subclass, default="diagonal_gaussian"
        The family of q(z | x), as in :class:`VAEEstimator`.

    prior : str or Prior subclass, default="normal"
        The prior p(z), as in :class:`VAEEstimator`.

    n_prior_components : int, default=10
        Components of a mixture prior ("mixture", "vamp").

    hidden_layer_sizes : array-like of int, default=(128, 128)
        Hidden layer widths of the encoder; the decoder uses them in reverse order.

    activation : {"identity", "logistic", "tanh", "relu"}, default="relu"
        Activation of the hidden layers.

    beta : float, default=1.0
        Weight of the KL term in the training objective; ``score_samples`` always uses
        the true bound.

    kl_warmup_iter : int, default=0
        Number of epochs over which the KL weight rises linearly to ``beta``.

    batch_size : int or "auto", default="auto"
        Rows per minibatch. "auto" is a tenth of the training rows, at least 32 and at
        most 128. The value used is ``batch_size_``.

    learning_rate : {"constant", "adaptive"}, default="constant"
        The step size schedule, as in :class:`VAEEstimator`.

    learning_rate_init : float, default=1e-3
        Adam's (initial) step size.

    weight_decay : float, default=0.0
        Decoupled weight decay of the encoder's and decoder's weight matrices.

    max_iter : int or "auto", default="auto"
        Maximum number of epochs. "auto" gives the fit 300 optimizer steps (at least 2
        epochs), a budget chosen for detection: reaching it raises no ConvergenceWarning,
        as reaching an int ``max_iter`` does. The value used is ``max_iter_``.

    early_stopping : bool, default=True
        Hold out ``validation_fraction`` of the rows and stop when the bound of their
        likeliest ``support_fraction`` has not improved by ``tol`` for
        ``n_iter_no_change`` epochs; the weights of the best epoch are restored. When
        False, stop on the training objective.

    validation_fraction : float, default=0.1
        Fraction of the rows held out for early stopping.

    n_iter_no_change : int or "auto", default="auto"
        Epochs without improvement before stopping; "auto" is 500 optimizer steps' worth
        of epochs, at least 10. The value used is ``n_iter_no_change_``.

    tol : float, default=1e-4
        Improvement, in nats per sample, that counts as progress.

    n_importance_samples : int, default=100
        Number K of importance samples in ``score_samples`` (K=1 is the ELBO).

    n_train_importance_samples : int, default=1
        Number K of samples of z per row in the training objective (K > 1: IWAE).

    n_train_samples : int, default="deprecated"
        The former name of ``n_train_importance_samples``.

        .. deprecated:: 0.2
           ``n_train_samples`` is removed in 0.3; use ``n_train_importance_samples``.

    compute_dtype : {"float32", "bfloat16"}, default="float32"
        Arithmetic of the training steps, as in :class:`VAEEstimator`; inference does not
        depend on it.

    device : str, default="auto"
        Where torch computes: "auto", "cpu" or "cuda[:N]".

    random_state : int, RandomState instance or None, default=None
        Seeds weight initialisation, the validation split, minibatch order, the training
        noise and the common random numbers of ``score_samples``.

    verbose : int, default=0
        0 prints nothing; 1 or more shows a progress bar over epochs.

    warm_start : bool, default=False
        When True, ``fit`` continues from the previous fit's weights and optimiser state.

    Attributes
    ----------
    offset_ : float
        The threshold on ``score_samples``: ``decision_function`` is ``score_samples(X)
        - offset_``, and rows below it are outliers. Set in ``fit`` (see
        ``contamination`` and ``novelty``).

    likelihood_ : str, dict or Likelihood subclass
        The likelihood of the model: ``likelihood``, with "auto" resolved to a dict.

    categories_ : dict of ndarray
        The categories of each categorical column, in the order of their codes and in the
        user's labels, keyed by the column's name for a DataFrame, else by its position
        in X (empty when no column is categorical).

    module_ : VAEModule
        The trained encoder, decoder and likelihood.

    optimizer_ : AdamW
        The AdamW optimiser (skvae's, over flat buffers, with ``torch.optim.AdamW``'s
        ``param_groups``, ``state`` and ``state_dict``), kept for ``warm_start``.

    n_iter_ : int
        Number of epochs run.

    batch_size_, max_iter_, n_iter_no_change_ : int
        The batch size, epoch limit and patience the last fit used.

    loss_curve_ : list of float
        Training objective per epoch: the negative ELBO per sample (of the rows kept,
        once trimming has begun), in nats in the units of X.

    validation_scores_ : list of float or None
        Held-out ELBO per sample of the likeliest ``support_fraction`` of the validation
        rows, per epoch (None without early stopping).

    best_validation_score_ : float or None
        The best of ``validation_scores_``; its weights are the ones kept.

    best_loss_ : float or None
        The lowest training loss, when ``early_stopping=False``.

    noise_variance_ : ndarray of shape (n_features,)
        Gaussian columns only: the learned noise variance of each feature in the units
        of X.

    kl_per_component_ : ndarray of shape (n_components,)
        Average KL(q(z_u | x) || N(0, 1)) over the training rows, per latent dimension.

    n_active_components_ : int
        Number of latent dimensions whose posterior mean varies across the training rows.

    n_features_in_ : int
        Number of features seen during fit.

    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during fit, when X has string column names.

    See Also
    --------
    VAEEstimator : The same model as a transformer and density model.
    sklearn.ensemble.IsolationForest : Outliers isolated by random splits.
    sklearn.neighbors.LocalOutlierFactor : Outliers by local density of neighbours.
    sklearn.covariance.EllipticEnvelope : A robust Gaussian fit, trimmed as this one is.

    Notes
    -----
    PyOD's detectors score the other way round: their ``decision_function`` is higher
    for more abnormal rows. Here, as in scikit-learn, lower ``score_samples`` and
    negative ``decision_function`` mean abnormal; ``-score_samples(X)`` is PyOD's
    orientation.

    With ``novelty=True`` the held-out rows set one number, the shift of the seen rows'
    scores (a quartile, which a few dozen rows estimate well), and every row given to
    ``fit`` counts in the quantile. ``benchmarks/bench_outliers.py`` measures the share
    of new rows flagged.

    NaN in X marks a missing value: the score is then the log-likelihood of the observed
    entries, which is comparable only between rows with the same observed entries.

    References
    ----------
    An, J. and Cho, S. (2015). Variational autoencoder based anomaly detection using
    reconstruction probability. Special Lecture on IE 2(1).
    Rousseeuw, P. J. (1984). Least median of squares regression. JASA 79(388): trimmed
    estimation.
    Tukey, J. W. (1977). Exploratory Data Analysis. Addison-Wesley.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.datasets import load_digits
    >>> from skvae import VAEOutlierDetector
    >>> X, y = load_digits(return_X_y=True)
    >>> zeros, ones = X[y == 0], X[y == 1]
    >>> detector = VAEOutlierDetector(  # a small, quickly stopped model for the example
    ...     hidden_layer_sizes=(32,), n_iter_no_change=10, tol=0.5, contamination=0.1,
    ...     random_state=0,
    ... ).fit(zeros[:150])
    >>> labels = detector.predict(np.vstack([zeros[150:], ones[:20]]))  # -1: outlier
    >>> bool(np.mean(labels[28:] == -1) > np.mean(labels[:28] == -1))  # ones more often
    True
    >>> terms = detector.score_features(ones[:1])  # which pixels made it unlikely
    >>> terms.shape
    (1, 64)
    """

    _parameter_constraints: dict = {
        **{k: v for k, v in BaseVAE._parameter_constraints.items() if k != "precision"},
        "contamination": [StrOptions({"auto"}), Interval(Real, 0, 0.5, closed="right")],
        "support_fraction": [Interval(Real, 0, 1, closed="right")],
        "reweight": ["boolean"],
        "novelty": ["boolean"],
    }

    def __init__(
        self,
        n_components=2,
        *,
        contamination="auto",
        novelty=True,
        support_fraction=0.8,
        reweight=False,
        likelihood="gaussian",
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
        device="auto",
        random_state=None,
        verbose=0,
        warm_start=False,
    ):
        self.n_components = n_components
        self.contamination = contamination
        self.novelty = novelty
        self.support_fraction = support_fraction
        self.reweight = reweight
        self.likelihood = likelihood
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
        self.device = device
        self.random_state = random_state
        self.verbose = verbose
        self.warm_start = warm_start

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Fit the VAE to X, trimming its least likely rows, and set ``offset_``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data, which may hold outliers; NaN marks a missing value.

        y : Ignored
            Not used, present for API consistency.

        Returns
        -------
        self : VAEOutlierDetector
            The fitted detector.
        """
        return self._fit_or_restore(X, incremental=False)

    def _second_stage(self, first: Trainer) -> Trainer | None:
        """With ``reweight``: a new model's trainer on the ``support_fraction`` of the first
        one's training rows that it finds likeliest (the same validation rows, optimizer
        settings and stream of random numbers)."""
        if not self.reweight:
            return None
        rows = first.train_rows
        rows = torch.arange(len(first.data["x"])) if rows is None else rows
        module = first.module
        eps = torch.randn(RANKING_SAMPLES, module.n_latent, generator=first.generator)
        with torch.no_grad():
            scores = torch.cat(
                [
                    module.iw_bound(_rows(first.data, chunk, first.device), eps.to(first.device))
                    for chunk in rows.split(ENCODE_BATCH_SIZE)
                ]
            )
        n_kept = max(1, math.ceil(self.support_fraction * len(rows)))
        kept = rows[scores.topk(n_kept).indices.cpu()].sort().values
        seed = int(torch.randint(MAX_SEED, (1,), generator=first.generator))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            fresh = VAEModule.from_spec(module.spec)
        return self._next_trainer(first, fresh.to(first.device), kept)

    def _end_fit(self, fit):
        super()._end_fit(fit)
        scores = self.score_samples(fit.X)
        if self.novelty:
            scores = shifted_scores(scores, fit.held_out)
        if self.contamination == "auto":
            q1, q3 = np.percentile(scores, [25, 75])
            self.offset_ = float(q1 - TUKEY_FENCE * (q3 - q1))
        else:
            # For new rows, the k-th lowest of n held-out scores is exceeded from below with
            # probability k / (n + 1) ("weibull"); the fit rows' own share is "linear"'s.
            method = "weibull" if self.novelty else "linear"
            self.offset_ = float(np.percentile(scores, 100 * self.contamination, method=method))
        return self

    def _split(self, data, incremental, split_seed):
        train_rows, validation = super()._split(data, incremental, split_seed)
        n_samples = len(data["x"])
        if train_rows is None and self.novelty:
            # No early stopping: the rows are held out for the threshold alone.
            try:
                train, _ = train_test_split(
                    np.arange(n_samples),
                    test_size=self.validation_fraction,
                    random_state=split_seed,
                )
            except ValueError:
                raise ValueError(
                    f"n_samples={n_samples} is too few to hold out validation_fraction="
                    f"{self.validation_fraction} of them for the threshold of novelty=True. "
                    "Pass more rows or set novelty=False."
                ) from None
            train_rows = torch.from_numpy(train)
        return train_rows, validation

    def _store_fit(self, trainer: Trainer, incremental: bool) -> None:
        if self.max_iter != "auto":
            return super()._store_fit(trainer, incremental)
        # The "auto" budget is a stopping rule chosen for detection, not a limit to raise.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            return super()._store_fit(trainer, incremental)

    def _compute_dtype(self) -> str:
        return self.compute_dtype

    def _budget(self, n_train: int) -> Budget:
        max_iter = self.max_iter
        if max_iter == "auto":
            batch_size = auto_budget(n_train, self.batch_size, 1, 1).batch_size
            steps_per_epoch = math.ceil(n_train / min(batch_size, n_train))
            max_iter = max(math.ceil(AUTO_MAX_STEPS / steps_per_epoch), 2)
        return auto_budget(n_train, self.batch_size, max_iter, self.n_iter_no_change)

    def _trainer(self, *args) -> Trainer:
        if self.support_fraction >= 1:
            return Trainer(*args)
        trainer = TrimmedTrainer(*args, support_fraction=self.support_fraction, warmup_epochs=0)
        steps_per_epoch = math.ceil(trainer.n_train / trainer.batch_size)
        trainer.warmup_epochs = math.ceil(TRIM_WARMUP_STEPS / steps_per_epoch)
        return trainer

    def _fit_predict_available(self):
        if self.novelty:
            raise AttributeError(
                "fit_predict is not available when novelty=True, whose threshold is for new "
                "rows. Use novelty=False to label the rows the detector is fitted on."
            )
        return True

    @available_if(_fit_predict_available)
    def fit_predict(self, X, y=None, **kwargs):
        """Fit the detector to X and label its rows: -1 for an outlier, 1 for an inlier.

        Only with ``novelty=False``, whose threshold is set on these rows: with a float
        ``contamination``, that share of them is labelled -1.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data; NaN marks a missing value.

        y : Ignored
            Not used, present for API consistency.

        **kwargs : dict
            Not used, present for API consistency (OutlierMixin's signature).

        Returns
        -------
        labels : ndarray of shape (n_samples,)
            -1 for the rows below ``offset_``, 1 for the others.

        Examples
        --------
        >>> import numpy as np
        >>> from sklearn.datasets import load_digits
        >>> from skvae import VAEOutlierDetector
        >>> X, _ = load_digits(return_X_y=True)
        >>> detector = VAEOutlierDetector(
        ...     novelty=False, contamination=0.05, hidden_layer_sizes=(32,),
        ...     n_iter_no_change=10, tol=0.5, random_state=0,
        ... )
        >>> labels = detector.fit_predict(X)
        >>> round(float(np.mean(labels == -1)), 2)  # the share asked for, of the fit rows
        0.05
        """
        return self.fit(X).predict(X)

    def decision_function(self, X):
        """``score_samples(X) - offset_``: negative for outliers, positive for inliers.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Rows to judge; NaN marks a missing value.

        Returns
        -------
        decision : ndarray of shape (n_samples,)
            Log-likelihood above the threshold, in nats.

        Examples
        --------
        >>> import numpy as np
        >>> from sklearn.datasets import load_digits
        >>> from skvae import VAEOutlierDetector
        >>> X, _ = load_digits(return_X_y=True)
        >>> detector = VAEOutlierDetector(
        ...     hidden_layer_sizes=(32,), n_iter_no_change=10, tol=0.5, random_state=0
        ... ).fit(X)
        >>> decision = detector.decision_function(X[:5])
        >>> bool(np.allclose(decision, detector.score_samples(X[:5]) - detector.offset_))
        True
        """
        check_is_fitted(self)
        return self.score_samples(X) - self.offset_

    def predict(self, X):
        """Label each row: -1 for an outlier, 1 for an inlier.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Rows to judge; NaN marks a missing value.

        Returns
        -------
        labels : ndarray of shape (n_samples,)
            -1 where ``decision_function`` is negative, 1 elsewhere.

        Examples
        --------
        >>> import numpy as np
        >>> from sklearn.datasets import load_digits
        >>> from skvae import VAEOutlierDetector
        >>> X, _ = load_digits(return_X_y=True)
        >>> detector = VAEOutlierDetector(
        ...     hidden_layer_sizes=(32,), n_iter_no_change=10, tol=0.5, random_state=0
        ... ).fit(X[:1500])
        >>> labels = detector.predict(X[1500:])
        >>> sorted(np.unique(labels).tolist())
        [-1, 1]
        """
        return np.where(self.decision_function(X) < 0, -1, 1)

    def score_features(self, X):
        """Each feature's log-likelihood term of each row: which features are unlikely.

        The model encodes a row to its posterior mean z = E_q[z | x] and decodes it; the
        term of feature j is log p(x_j | z), in nats in the units of X (a log-density for
        continuous families, a log-probability for discrete ones). The lowest terms of a
        flagged row are the features the model found least likely given the rest of the
        row. A row's terms sum to log p(x | z) at that z: the reconstruction part of its
        ELBO, without the KL term and importance sampling of ``score_samples``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Rows to explain; NaN marks a missing value.

        Returns
        -------
        log_prob : ndarray of shape (n_samples, n_features)
            log p(x_j | z) per row and feature; NaN where x_j is missing (sum with
            ``np.nansum``). For a categorical column, the log-probability of its category.
            A likelihood that is not a product over features (multinomial) has no such
            terms: ValueError.

        Examples
        --------
        >>> import numpy as np
        >>> from sklearn.datasets import load_digits
        >>> from skvae import VAEOutlierDetector
        >>> X, y = load_digits(return_X_y=True)
        >>> detector = VAEOutlierDetector(
        ...     hidden_layer_sizes=(32,), n_iter_no_change=10, tol=0.5, random_state=0
        ... ).fit(X[y == 0])
        >>> terms = detector.score_features(X[y == 1][:1])
        >>> pixels = np.argsort(terms[0])[:3]  # the three least likely pixels of a one
        >>> terms.shape, pixels.shape
        ((1, 64), (3,))
        """
        X, covariates = self._validate_for_inference(X)
        likelihood = self.module_.likelihood
        shape = (likelihood.n_features,)
        terms = self._infer(
            X, _features_at_posterior_mean, shape, width=X.shape[1], covariates=covariates
        )
        # Gaussian terms in the units of X: the change of units of each density.
        return terms - np.log(likelihood.scale)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        return tags
