"""BaseVAE: what every VAE estimator shares: its parameters and the fit path.

A concrete estimator (``VAEEstimator``, and any other VAE with a scikit-learn face) adds its
``__init__`` listing the parameters, its mixins and the methods of its role (``transform``
for a transformer, ``predict`` for a detector). Everything here is scikit-learn glue: the
model is ``_module``, the training loop ``_trainer``.
"""

from __future__ import annotations

import copy
import warnings
from collections import ChainMap
from numbers import Integral, Real
from typing import NamedTuple

import numpy as np
import scipy.sparse as sp
import torch
from sklearn.base import BaseEstimator
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Hidden, Interval, StrOptions

from ._arrays import MAX_SEED, check_missing, log_det, rescale, resolve_device
from ._columns import ColumnsMixin
from ._inference import InferenceMixin
from ._likelihood_param import (
    auto_likelihood,
    check_label_families,
    family_choice,
    own_floors,
    takes_option,
)
from ._likelihoods import LIKELIHOODS, prepare_likelihood
from ._module import ACTIVATIONS, VAEModule
from ._optim import make_optimizer
from ._persistence import PicklingMixin
from ._posteriors import POSTERIORS, posterior_class, posterior_spec
from ._priors import PRIORS, prior_config
from ._sparse_data import (
    SparseData,
    check_sparse_input,
    prepare_sparse_likelihood,
)
from ._stacklevel import users_stacklevel
from ._tables import Ranges
from ._trainer import (
    LR_DECAYS,
    Budget,
    History,
    NonFiniteLossError,
    Trainer,
    TrainingConfig,
    auto_budget,
)

__all__ = ["BaseVAE"]

_COMPUTE_DTYPES = {"float32": None, "bfloat16": torch.bfloat16}


class PendingFit(NamedTuple):
    """A fit between ``_start_fit`` and ``_end_fit``: its trainer, ready to run."""

    X: object  # the data as the user passed it
    trainer: Trainer
    incremental: bool
    train_seed: int
    crn_seed: int
    budget: Budget
    held_out: np.ndarray | None  # the rows left out of training, in order; None: none


class BaseVAE(ColumnsMixin, InferenceMixin, PicklingMixin, BaseEstimator):
    """Base class of the VAE estimators: shared parameters and the fit path; the columns,
    inference and pickling come from its mixins.

    Not for direct use: a subclass lists its parameters in ``__init__`` (those of
    ``_parameter_constraints``, and its own), as scikit-learn's estimators do.
    """

    _parameter_constraints: dict = {
        "n_components": [Interval(Integral, 1, None, closed="left")],
        # A live view: families registered later are accepted too.
        "likelihood": [StrOptions(ChainMap(LIKELIHOODS, {"auto": None}).keys()), dict, type],
        "covariance_type": [StrOptions({"diag", "spherical"})],
        "posterior": [StrOptions(POSTERIORS.keys()), type],
        # A live view: priors registered later are accepted too.
        "prior": [StrOptions(PRIORS.keys()), type],
        "n_prior_components": [Interval(Integral, 1, None, closed="left")],
        "hidden_layer_sizes": ["array-like", Interval(Integral, 1, None, closed="left")],
        "activation": [StrOptions(set(ACTIVATIONS))],
        "beta": [Interval(Real, 0, None, closed="left")],
        "kl_warmup_iter": [Interval(Integral, 0, None, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left"), StrOptions({"auto"})],
        "learning_rate": [StrOptions({"constant", "adaptive"})],
        "learning_rate_init": [Interval(Real, 0, None, closed="neither")],
        "weight_decay": [Interval(Real, 0, None, closed="left")],
        "max_iter": [Interval(Integral, 1, None, closed="left"), StrOptions({"auto"})],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left"), StrOptions({"auto"})],
        "tol": [Interval(Real, 0, None, closed="left")],
        "n_importance_samples": [Interval(Integral, 1, None, closed="left")],
        "n_train_importance_samples": [Interval(Integral, 1, None, closed="left")],
        "n_train_samples": [
            Interval(Integral, 1, None, closed="left"),
            Hidden(StrOptions({"deprecated"})),
        ],
        "compute_dtype": [StrOptions(set(_COMPUTE_DTYPES))],
        "precision": [StrOptions(set(_COMPUTE_DTYPES)), Hidden(StrOptions({"deprecated"}))],
        "device": [str],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
        "warm_start": ["boolean"],
    }

    # ------------------------------------------------------------------ fitting

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
        fit = self._start_fit(X, incremental)
        _run(fit.trainer)
        second = self._second_stage(fit.trainer)
        if second is not None:
            fit = fit._replace(trainer=second)
            _run(second)
        return self._end_fit(fit)

    def _second_stage(self, first: Trainer) -> Trainer | None:
        """The trainer of a second training after ``first`` (see ``_next_trainer``), or None."""
        return None

    def _start_fit(self, X, incremental: bool) -> PendingFit:
        """Everything a fit does before training: the data read, the model, its trainer.

        ``_fit`` runs the trainer and ``_end_fit`` keeps what it learned; in between,
        several estimators' trainers can run together (``_ensemble``).
        """
        # partial_fit always continues the model there is; fit only with warm_start.
        resume = hasattr(self, "module_") and (incremental or self.warm_start)
        user_X = X
        X = self._read(X, reset=not resume)
        if resume and self._covariate_columns() != self._layout.covariates:
            raise ValueError(
                "partial_fit and warm_start continue the previous model, but covariates "
                "changed since it was fitted. Call fit with warm_start=False to start anew."
            )
        X, covariates = self._layout.split(X)
        covariates = self._covariate_features(covariates, fit=not resume)
        if sp.issparse(X):
            check_sparse_input(X, self.module_.likelihood if resume else self.likelihood)
        missing = check_missing(X, columns=not resume)
        ranges = getattr(self, "_ranges", None)
        self._ranges = ranges.update(X) if resume and ranges else Ranges.learn(X)
        device = resolve_device(self.device)
        seeds = check_random_state(self.random_state).randint(MAX_SEED, size=4)
        init_seed, split_seed, train_seed, crn_seed = (int(s) for s in seeds)
        if resume:
            module, optimizer, history = self._resume(X, covariates, device, incremental)
        else:
            module, optimizer, history = self._new_model(X, covariates, missing, init_seed, device)
        if incremental and resume:
            # The first call's seeds stay: a sequence of calls is reproducible as a whole.
            train_seed, crn_seed = self._train_seed, self._crn_seed
        if incremental:
            # One stream of minibatch orders and noise per epoch: from that seed and the epoch.
            state = np.random.SeedSequence([train_seed, history.n_iter]).generate_state(1)
            generator = torch.Generator().manual_seed(int(state[0]))
        else:
            generator = torch.Generator().manual_seed(train_seed)
        likelihood = module.likelihood
        if sp.issparse(X):  # densified a batch at a time, never whole
            data = {"x": SparseData(X, likelihood.loc, likelihood.scale)}
        else:
            rescaled = rescale(X, likelihood.loc, likelihood.scale, np.float32)
            data = {"x": torch.from_numpy(rescaled)}
        data.update({k: torch.from_numpy(v.astype(np.float32)) for k, v in covariates.items()})
        train_rows, validation = self._split(data, incremental, split_seed)
        n_train = len(data["x"]) if train_rows is None else len(train_rows)
        budget = self._budget(n_train)
        config = self._training_config(X, likelihood.scale, missing, incremental, history, budget)
        trainer = self._trainer(
            module, optimizer, config, generator, device, data, train_rows, validation, history
        )
        held_out = None
        if train_rows is not None:
            held_out = np.setdiff1d(np.arange(len(data["x"])), train_rows.numpy())
        return PendingFit(user_X, trainer, incremental, train_seed, crn_seed, budget, held_out)

    def _end_fit(self, fit: PendingFit):
        """Keep the trained model and what the fit learned as fitted attributes."""
        self._train_seed, self._crn_seed = fit.train_seed, fit.crn_seed
        self.batch_size_, self.max_iter_, self.n_iter_no_change_ = fit.budget
        self._store_fit(fit.trainer, fit.incremental)
        self.categories_ = self._categories()
        return self

    def _budget(self, n_train: int) -> Budget:
        """Batch size, epoch limit and patience of a fit on ``n_train`` rows ("auto" resolved)."""
        return auto_budget(n_train, self.batch_size, self.max_iter, self.n_iter_no_change)

    def _trainer(self, *args) -> Trainer:
        """The trainer of a fit; a subclass with another objective returns its own."""
        return Trainer(*args)

    def _next_trainer(self, first: Trainer, module: VAEModule, train_rows=None) -> Trainer:
        """A trainer that goes on from ``first`` with a new ``module`` and optimizer: the same
        data, validation rows, history and stream of random numbers; ``train_rows``: the
        rows to train on, if not ``first``'s."""
        rows = first.train_rows if train_rows is None else train_rows
        # The new trainer derives its own encoder inputs ("h") for its module.
        data = {k: v for k, v in first.data.items() if k != "h"}
        optimizer = self._optimizer(module)
        return self._trainer(
            module, optimizer, first.config, first.generator, first.device, data, rows,
            first.validation, first.history,
        )  # fmt: skip

    def _new_model(self, X, covariates, missing, init_seed, device):
        """A fresh module (seeded weights), its optimizer and an empty history."""
        self.likelihood_ = self.likelihood
        names, kinds = self._layout.model_names, self._layout.model_kinds
        if isinstance(self.likelihood, str) and self.likelihood == "auto":
            self.likelihood_ = self._positions_of_x(auto_likelihood(X, names, kinds))
        likelihood = self._likelihood_parts(self.likelihood_, X.shape[1])
        if self._latent_width(X.shape[1]) > X.shape[1]:
            warnings.warn(
                f"n_components={self.n_components} is more than the {X.shape[1]} modelled "
                "columns of X: the extra latent dimensions usually stay unused "
                "(n_active_components_ says how many the fit uses).",
                UserWarning,
                stacklevel=users_stacklevel(),
            )
        if self.covariance_type != "diag" and not takes_option(likelihood, "covariance_type"):
            warnings.warn(
                f"covariance_type={self.covariance_type!r} applies to the gaussian family "
                f"only, which likelihood={self.likelihood_!r} does not use: it is ignored.",
                UserWarning,
                stacklevel=users_stacklevel(),
            )
        if kinds is not None:
            check_label_families(likelihood, kinds, names)
        prepare = prepare_sparse_likelihood if sp.issparse(X) else prepare_likelihood
        config, _, _ = prepare(X, likelihood, self.covariance_type)
        if kinds is not None:
            config = own_floors(config)
        # The mask channel is part of the architecture, fixed by the first training data.
        spec = {**self._architecture(X, covariates), "likelihood": config, "missing": missing}
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(init_seed)
            module = VAEModule.from_spec(spec)
        module.to(device)
        return module, self._optimizer(module), History()

    def _architecture(self, X, covariates, resumed: VAEModule | None = None) -> dict:
        """The module's shape as the parameters and the data set it (``VAEModule.spec``).

        ``resumed``: the fitted module that training continues (partial_fit, warm_start).
        """
        return {
            "n_features": X.shape[1],
            "n_components": self._latent_width(X.shape[1]),
            "hidden_layer_sizes": self._hidden_layer_sizes(),
            "activation": self.activation,
            "posterior": posterior_spec(posterior_class(self.posterior)),
            "prior": self._prior_config(resumed),
            "covariates": {k: v.shape[1] for k, v in covariates.items()},
        }

    def _latent_width(self, n_columns: int) -> int:
        """The width of z for data of ``n_columns`` modelled columns."""
        return self.n_components

    def _prior_config(self, resumed: VAEModule | None) -> dict:
        """The prior of a new module (``resumed``: the module that training continues)."""
        return prior_config(self.prior, self.n_prior_components)

    def _optimizer(self, module):
        networks = (module.encoder, module.decoder)
        return make_optimizer(module, networks, self.learning_rate_init, self.weight_decay)

    def _resume(self, X, covariates, device, incremental):
        """Copies of the fitted module, optimizer and history to continue training."""
        old = self.module_.spec
        # "auto" keeps the families it chose on the first data: a block may look otherwise.
        param = self.likelihood_ if self.likelihood == "auto" else self.likelihood
        likelihood = self._likelihood_parts(param, X.shape[1])
        new = self._architecture(X, covariates, resumed=self.module_)
        changed = sorted(k for k in new if new[k] != old[k])
        old_choice = family_choice(old["likelihood"])
        new_choice = family_choice(likelihood, {"covariance_type": self.covariance_type})
        families = [{k: p.get(k) for k in ("name", "columns")} for p in new_choice]
        if families != [{k: p.get(k) for k in ("name", "columns")} for p in old_choice]:
            changed.append("likelihood")
        elif new_choice != old_choice:
            changed.append("covariance_type")
        if changed:
            what = "partial_fit" if incremental else "warm_start=True"
            remedy = "Call fit to start a new model." if incremental else (
                "Set warm_start=False to fit a new model."
            )  # fmt: skip
            raise ValueError(
                f"{what} continues the previous model, but {', '.join(changed)} changed "
                f"since it was fitted. {remedy}"
            )
        self._check_domain(X)
        module = copy.deepcopy(self.module_).to(device)
        optimizer = self._optimizer(module)
        # A copy: load_state_dict keeps the tensors it is given, and Adam updates them in
        # place, which would change the fitted optimizer even when this call fails.
        optimizer.load_state_dict(copy.deepcopy(self.optimizer_.state_dict()))
        for group, decay in zip(optimizer.param_groups, (self.weight_decay, 0.0), strict=True):
            group["lr"] = self.learning_rate_init
            group["weight_decay"] = decay
        return module, optimizer, copy.deepcopy(self._history)

    def _split(self, data, incremental, split_seed):
        """Training rows and validation data for early stopping (None, None without it)."""
        if not self.early_stopping or incremental:
            return None, None
        n_samples = len(data["x"])
        try:
            idx_train, idx_val = train_test_split(
                np.arange(n_samples), test_size=self.validation_fraction, random_state=split_seed
            )
        except ValueError:
            raise ValueError(
                f"n_samples={n_samples} is too few to hold out validation_fraction="
                f"{self.validation_fraction} of them for early_stopping. Pass more rows or set "
                "early_stopping=False."
            ) from None
        idx_val = torch.from_numpy(idx_val)
        return torch.from_numpy(idx_train), {k: v[idx_val] for k, v in data.items()}

    def _training_config(self, X, scale, missing, incremental, history, budget) -> TrainingConfig:
        return TrainingConfig(
            batch_size=budget.batch_size,
            max_iter=1 if incremental else budget.max_iter,
            beta=self.beta,
            kl_warmup_iter=self.kl_warmup_iter,
            n_iter_no_change=budget.n_iter_no_change,
            tol=self.tol,
            verbose=0 if incremental else self.verbose,
            autocast_dtype=_COMPUTE_DTYPES[self._compute_dtype()],
            log_det=float(np.mean(log_det(X, scale))),
            first_epoch=history.n_iter if incremental else 0,
            average_weights=not incremental,
            missing=missing,
            n_train_samples=self._n_train_importance_samples(),
            lr_decays=LR_DECAYS if self.learning_rate == "adaptive" else 0,
        )

    def _n_train_importance_samples(self) -> int:
        if self.n_train_samples == "deprecated":
            return self.n_train_importance_samples
        warnings.warn(
            "The parameter 'n_train_samples' was renamed 'n_train_importance_samples' in 0.2 "
            "and will be removed in 0.3 (it counts samples of z per row, not training rows); "
            "set n_train_importance_samples instead.",
            FutureWarning,
            stacklevel=users_stacklevel(),
        )
        return self.n_train_samples

    def _compute_dtype(self) -> str:
        if self.precision == "deprecated":
            return self.compute_dtype
        warnings.warn(
            "The parameter 'precision' was renamed 'compute_dtype' in 0.2 and will be removed "
            "in 0.3; set compute_dtype instead.",
            FutureWarning,
            stacklevel=users_stacklevel(),
        )
        return self.precision

    def _store_fit(self, trainer: Trainer, incremental: bool) -> None:
        """Keep the trained model and what the fit learned as fitted attributes."""
        module, history = trainer.module, trainer.history
        self.module_, self.optimizer_, self._history = module, trainer.optimizer, history
        self.n_iter_ = history.n_iter
        self.loss_curve_ = list(history.loss_curve)
        validated = trainer.validation is not None
        self.validation_scores_ = list(history.validation_scores) if validated else None
        self.best_validation_score_ = history.best_validation_score
        self.best_loss_ = None if validated else history.best_loss
        if incremental:
            self.best_loss_ = min(self.loss_curve_)
        variances = module.likelihood.variances()
        if variances is not None:
            scale = module.likelihood.scale
            self.noise_variance_ = variances.detach().cpu().double().numpy() * scale**2
        elif hasattr(self, "noise_variance_"):
            del self.noise_variance_
        posterior = trainer.encode(trainer.train_rows)
        d = module.n_components  # of z: a latent library size is not a component
        self.kl_per_component_ = posterior.kl_per_component().mean(dim=0).numpy()[:d]
        spread = posterior.mean.var(dim=0, unbiased=False)[:d]
        self.n_active_components_ = int((spread > 0.01).sum())
        self._inference = self._build_inference()
        if not (incremental or history.converged or history.interrupted):
            warnings.warn(
                f"Maximum iterations ({self.max_iter_}) reached and the optimization hasn't "
                "converged yet. Raise max_iter or tol.",
                ConvergenceWarning,
                stacklevel=4,
            )

    def _hidden_layer_sizes(self) -> tuple[int, ...]:
        sizes = self.hidden_layer_sizes
        sizes = (sizes,) if isinstance(sizes, Integral) else tuple(sizes)
        if not all(isinstance(h, Integral) and h >= 1 for h in sizes):
            raise ValueError(
                f"hidden_layer_sizes must be positive integers, got {self.hidden_layer_sizes}."
            )
        return tuple(int(h) for h in sizes)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # NaN marks a missing value: it is left out of the likelihood.
        tags.input_tags.allow_nan = True
        return tags


def _run(trainer: Trainer) -> None:
    """Run ``trainer`` to its epoch limit; a loss that stops being finite is a ValueError."""
    try:
        trainer.run(trainer.config.max_iter)
    except NonFiniteLossError as exc:
        raise ValueError(str(exc)) from None
