"""VAEClusterer: clustering with a VAE whose prior is a mixture of Gaussians (VaDE)."""

from __future__ import annotations

from numbers import Integral

import numpy as np
import torch
from sklearn.base import ClusterMixin, _fit_context
from sklearn.mixture import GaussianMixture
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted
from torch import Tensor

from ._arrays import MAX_SEED
from ._base import BaseVAE
from ._latent import LatentMixin
from ._module import VAEModule
from ._priors import prior_config
from ._trainer import Trainer

__all__ = ["VAEClusterer"]

# Starts of the GaussianMixture fitted to the pretrained codes; the likeliest is kept.
GMM_INITS = 10
# The smallest variance a component of the prior starts with, in latent units.
VARIANCE_FLOOR = 1e-6
# Shared draws per row that measure the spread of each row's posterior around its mean.
SPREAD_DRAWS = 16


class VAEClusterer(LatentMixin, ClusterMixin, BaseVAE):
    """Clustering with a variational autoencoder whose prior is a mixture of Gaussians.

    The model is :class:`VAEEstimator`'s with the prior p(z) = sum_c pi_c N(z; m_c,
    diag s_c^2) of ``n_clusters`` components, whose weights, means and variances are
    learned with the encoder and decoder (VaDE, Jiang et al. 2017): each cluster is a
    component of the prior, so the clusters and the representation are learned together.
    A row's cluster probabilities are p(c | x) = E_{p(z | x)}[p(c | z)], estimated by
    importance sampling with the encoder as proposal.

    ``fit`` trains in two stages, as VaDE does: a VAE with the standard normal prior,
    then a GaussianMixture fitted to its codes (full covariances, 10 starts) groups the
    rows, each group's moments set a component of the prior, and the whole model trains
    on; each stage has the same budget and stopping rule.

    Parameters
    ----------
    n_clusters : int, default=8
        Number of clusters: the components of the prior.

    n_components : int or "auto", default="auto"
        Number of latent variables. "auto" is ``n_clusters - 1`` (the dimensions that the
        means of ``n_clusters`` clusters span), at least 2 and at most the number of
        modelled columns. The value used is ``module_.n_components``.

    likelihood : str, dict or Likelihood subclass, default="gaussian"
        Observation model p(x | z), as :class:`VAEEstimator` takes it ("auto" for a frame
        of mixed columns).

    covariance_type : {"diag", "spherical"}, default="diag"
        Noise variances of Gaussian columns, as in :class:`VAEEstimator`.

    posterior : str or Posterior subclass, default="diagonal_gaussian"
        The family of q(z | x), as in :class:`VAEEstimator`.

    hidden_layer_sizes : array-like of int, default=(128, 128)
        Hidden layer widths of the encoder; the decoder uses them in reverse order.

    activation : {"identity", "logistic", "tanh", "relu"}, default="relu"
        Activation of the hidden layers.

    beta : float, default=1.0
        Weight of the KL term in the training objective.

    kl_warmup_iter : int, default=0
        Epochs over which the KL weight rises to ``beta``, in each stage.

    batch_size : int or "auto", default="auto"
        Rows per minibatch, as in :class:`VAEEstimator`.

    learning_rate : {"constant", "adaptive"}, default="constant"
        The step size schedule, as in :class:`VAEEstimator`.

    learning_rate_init : float, default=1e-3
        Adam's (initial) step size.

    weight_decay : float, default=0.0
        Decoupled weight decay of the networks' weight matrices.

    max_iter : int or "auto", default="auto"
        Maximum number of epochs of each stage, as in :class:`VAEEstimator`.

    early_stopping : bool, default=True
        Hold out ``validation_fraction`` of the rows and stop each stage when their ELBO
        stops improving, as in :class:`VAEEstimator`.

    validation_fraction : float, default=0.1
        Fraction of the rows held out for early stopping.

    n_iter_no_change : int or "auto", default="auto"
        Epochs without improvement before a stage stops.

    tol : float, default=1e-4
        Improvement, in nats per sample, that counts as progress.

    n_importance_samples : int, default=100
        Importance samples per row in ``score_samples`` and ``predict_proba``.

    n_train_importance_samples : int, default=1
        Samples of z per row in the training objective (IWAE when above 1).

    compute_dtype : {"float32", "bfloat16"}, default="float32"
        Arithmetic of the training steps.

    device : str, default="auto"
        Where torch computes: "auto", "cpu" or "cuda[:N]".

    random_state : int, RandomState instance or None, default=None
        Seeds the weights, the validation split, training, the GaussianMixture of the
        codes and the noise of inference. An int gives identical results from run to run.

    verbose : int, default=0
        1 or more shows a progress bar over the epochs of each stage.

    warm_start : bool, default=False
        When True, ``fit`` continues training the fitted model, with its mixture prior.

    Attributes
    ----------
    labels_ : ndarray of shape (n_samples,)
        The most probable cluster of each training row.

    cluster_centers_ : ndarray or DataFrame of shape (n_clusters, n_features)
        Each cluster's centre in the units of X: the decoder mean at the component's mean
        (a frame, with labels, when fitted on one).

    means_ : ndarray of shape (n_clusters, n_components)
        The mean of each component of the prior, in the latent space.

    covariances_ : ndarray of shape (n_clusters, n_components)
        The variances of each component of the prior (diagonal).

    weights_ : ndarray of shape (n_clusters,)
        The weight of each component of the prior.

    likelihood_, categories_, module_, optimizer_, n_iter_, batch_size_, max_iter_, \
n_iter_no_change_, loss_curve_, validation_scores_, best_validation_score_, best_loss_, \
noise_variance_, kl_per_component_, n_active_components_ : see VAEEstimator
        ``n_iter_`` and ``loss_curve_`` cover both stages; the validation scores and
        ``kl_per_component_`` (to the mixture prior) are the second stage's.

    n_features_in_ : int
        Number of features seen during fit.

    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during fit, when X has string column names.

    See Also
    --------
    VAEEstimator : The VAE with one prior for all rows; its ``transform`` feeds any
        clusterer.
    sklearn.mixture.GaussianMixture : The same mixture, on the data's own coordinates.

    Notes
    -----
    ``score_samples`` is the importance-weighted bound on log p(x) under the mixture prior,
    so ``GridSearchCV`` can choose ``n_clusters`` by held-out likelihood. ``sample(n,
    cluster=c)`` draws rows of cluster c. NaN marks a missing value, as in
    :class:`VAEEstimator`.

    References
    ----------
    Jiang, Z., Zheng, Y., Tan, H., Tang, B. and Zhou, H. (2017). Variational deep
    embedding: an unsupervised and generative approach to clustering. IJCAI.

    Examples
    --------
    >>> from sklearn.datasets import make_blobs
    >>> from sklearn.metrics import adjusted_rand_score
    >>> from skvae import VAEClusterer
    >>> X, y = make_blobs(300, n_features=4, centers=3, random_state=0)
    >>> clusterer = VAEClusterer(n_clusters=3, hidden_layer_sizes=(16,), random_state=0)
    >>> labels = clusterer.fit_predict(X)
    >>> round(adjusted_rand_score(y, labels), 2)
    1.0
    >>> clusterer.predict_proba(X[:2]).shape
    (2, 3)
    >>> clusterer.sample(4, cluster=0, random_state=0).shape
    (4, 4)
    """

    _parameter_constraints: dict = {
        **{
            k: v
            for k, v in BaseVAE._parameter_constraints.items()
            if k not in ("prior", "n_prior_components", "n_train_samples", "precision")
        },
        "n_clusters": [Interval(Integral, 1, None, closed="left")],
        "n_components": [Interval(Integral, 1, None, closed="left"), StrOptions({"auto"})],
    }

    def __init__(
        self,
        n_clusters=8,
        *,
        n_components="auto",
        likelihood="gaussian",
        covariance_type="diag",
        posterior="diagonal_gaussian",
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
        compute_dtype="float32",
        device="auto",
        random_state=None,
        verbose=0,
        warm_start=False,
    ):
        self.n_clusters = n_clusters
        self.n_components = n_components
        self.likelihood = likelihood
        self.covariance_type = covariance_type
        self.posterior = posterior
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
        self.compute_dtype = compute_dtype
        self.device = device
        self.random_state = random_state
        self.verbose = verbose
        self.warm_start = warm_start

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Fit the VAE and its mixture prior to X.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data; NaN marks a missing value.

        y : Ignored
            Not used, present for API consistency.

        Returns
        -------
        self : VAEClusterer
            The fitted clusterer.
        """
        return self._fit_or_restore(X, incremental=False)

    def _start_fit(self, X, incremental):
        fit = super()._start_fit(X, incremental)
        if fit.trainer.n_train < self.n_clusters:
            raise ValueError(
                f"n_clusters={self.n_clusters} is more than the {fit.trainer.n_train} rows "
                "that train the model (X's rows, less those early stopping holds out)."
            )
        return fit

    def _second_stage(self, pretrained: Trainer) -> Trainer | None:
        """After pretraining with the normal prior: the pretrained networks, a mixture prior
        set by a GaussianMixture of their codes, and a fresh optimizer (None when the fit
        continues a fitted mixture, with ``warm_start``)."""
        if not pretrained.module.prior.closed_form_kl:
            return None
        module, generator = pretrained.module, pretrained.generator
        d = module.n_components
        posterior = pretrained.encode(pretrained.train_rows)
        codes = posterior.mean[:, :d]
        # A full-covariance mixture finds the groups of the codes; the diagonal prior then
        # takes each group's moments.
        seed = int(torch.randint(MAX_SEED, (1,), generator=generator))
        gmm = GaussianMixture(self.n_clusters, n_init=GMM_INITS, random_state=seed)
        resp = gmm.fit(codes.numpy()).predict_proba(codes.numpy())
        counts = resp.sum(0)[:, None] + 10 * np.finfo(resp.dtype).eps  # as GaussianMixture's
        means = resp.T @ codes.numpy() / counts
        # The prior models z, not its means: each group also spreads as its rows'
        # posteriors do.
        eps = torch.randn(SPREAD_DRAWS, module.n_latent, generator=generator, dtype=codes.dtype)
        draws = posterior.expand_samples().rsample(eps.unsqueeze(0))[..., :d]
        spread = ((draws - codes.unsqueeze(1)) ** 2).mean(1).numpy()
        second = resp.T @ (codes.numpy() ** 2 + spread) / counts
        variances = np.maximum(second - means**2, VARIANCE_FLOOR)
        spec = {**module.spec, "prior": prior_config("mixture", self.n_clusters)}
        with torch.random.fork_rng(devices=[]):
            clustering = VAEModule.from_spec(spec)
        networks = {k: v for k, v in module.state_dict().items() if not k.startswith("prior.")}
        clustering.load_state_dict(networks, strict=False)
        prior = clustering.prior
        with torch.no_grad():
            prior.means.copy_(torch.as_tensor(means))
            prior.log_vars.copy_(torch.as_tensor(np.log(variances)))
            prior.logits.copy_(torch.as_tensor(np.log(counts.ravel() / len(codes))))
        return self._next_trainer(pretrained, clustering.to(pretrained.device))

    def _end_fit(self, fit):
        super()._end_fit(fit)
        prior = self.module_.prior
        self.means_ = prior.means.detach().cpu().double().numpy()
        self.covariances_ = prior.log_vars.detach().cpu().double().exp().numpy()
        self.weights_ = torch.softmax(prior.logits.detach().cpu().double(), -1).numpy()
        self.cluster_centers_ = self.inverse_transform(self.means_)
        self.labels_ = self.predict(fit.X)
        return self

    def _latent_width(self, n_columns: int) -> int:
        if self.n_components == "auto":
            # k cluster means span k - 1 dimensions, as LinearDiscriminantAnalysis's do.
            return max(1, min(max(2, self.n_clusters - 1), n_columns))
        return self.n_components

    def _prior_config(self, resumed: VAEModule | None) -> dict:
        if resumed is None:  # the first stage of a new fit
            return prior_config("normal", 1)
        return prior_config("mixture", self.n_clusters)

    def _n_train_importance_samples(self) -> int:
        return self.n_train_importance_samples

    def _compute_dtype(self) -> str:
        return self.compute_dtype

    def predict_proba(self, X):
        """Probability of each cluster given each row, p(c | x).

        E_{p(z | x)}[p(c | z)], estimated by self-normalised importance sampling with
        ``n_importance_samples`` draws of q(z | x); every row gets the same noise, so a
        row's value does not depend on the others.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Data; NaN marks a missing value.

        Returns
        -------
        proba : ndarray of shape (n_samples, n_clusters)
            Each row's cluster probabilities; they sum to 1.

        Examples
        --------
        >>> import numpy as np
        >>> from sklearn.datasets import make_blobs
        >>> from skvae import VAEClusterer
        >>> X, _ = make_blobs(300, n_features=4, centers=3, random_state=0)
        >>> clusterer = VAEClusterer(3, hidden_layer_sizes=(16,), random_state=0).fit(X)
        >>> proba = clusterer.predict_proba(X[:4])
        >>> proba.shape, bool(np.allclose(proba.sum(axis=1), 1))
        ((4, 3), True)
        >>> bool(np.array_equal(proba.argmax(axis=1), clusterer.predict(X[:4])))
        True
        """
        X, covariates = self._validate_for_inference(X)
        eps, _ = self._noise(self.n_importance_samples, self._crn_seed)

        def proba(module, batch):
            return cluster_probabilities(module, batch, eps.to(batch["x"].device))

        shape = (self.module_.prior.n_prior_components,)
        return self._infer(X, proba, shape, width=len(eps), covariates=covariates)

    def predict(self, X):
        """The most probable cluster of each row.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Data; NaN marks a missing value.

        Returns
        -------
        labels : ndarray of shape (n_samples,)
            The index of each row's most probable cluster.
        """
        return np.argmax(self.predict_proba(X), axis=1)

    def sample(
        self,
        n_samples=1,
        random_state=None,
        *,
        cluster=None,
        given=None,
        constrain=True,
        missing="warn",
    ):
        """Draw rows from the model, from one cluster or from all.

        Parameters
        ----------
        n_samples : int, default=1
            Number of rows to draw.

        random_state : int, RandomState instance or None, default=None
            Seed of the draws; None uses the estimator's ``random_state``.

        cluster : int, default=None
            Draw z from this component of the prior alone: rows of that cluster. None:
            from the whole mixture.

        given, constrain, missing
            As in :meth:`VAEEstimator.sample`; ``given`` does not go with ``cluster``.

        Returns
        -------
        X : ndarray or DataFrame of shape (n_samples, n_features)
            Draws in the units of the training data.

        Examples
        --------
        >>> from sklearn.datasets import make_blobs
        >>> from skvae import VAEClusterer
        >>> X, _ = make_blobs(300, n_features=4, centers=3, random_state=0)
        >>> clusterer = VAEClusterer(3, hidden_layer_sizes=(16,), random_state=0).fit(X)
        >>> draws = clusterer.sample(50, cluster=1, random_state=0)
        >>> draws.shape
        (50, 4)
        >>> float((clusterer.predict(draws) == 1).mean())  # rows of cluster 1
        1.0
        """
        check_is_fitted(self)
        if cluster is not None:
            n_clusters = self.module_.prior.n_prior_components
            if not isinstance(cluster, Integral) or not 0 <= cluster < n_clusters:
                raise ValueError(
                    f"cluster must be an integer in [0, {n_clusters}), got {cluster!r}."
                )
            if given is not None:
                raise ValueError("sample takes cluster or given, not both.")
        return self._sample(n_samples, random_state, None, given, constrain, missing, cluster)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        return tags


def cluster_probabilities(module: VAEModule, batch: dict, eps: Tensor) -> Tensor:
    """p(c | x) of the rows: p(c | z) averaged over K draws z_k ~ q(z | x), each weighted by
    its normalised importance weight p(x, z_k) / q(z_k | x). ``eps``: (K, n_latent)."""
    log_w, _, z = module.log_weights(batch, eps, with_z=True)
    weights = torch.softmax(log_w, dim=1).unsqueeze(-1)  # (n, K, 1)
    given_z = torch.softmax(module.prior.component_log_probs(z[..., : module.n_components]), -1)
    return (weights * given_z).sum(1)
