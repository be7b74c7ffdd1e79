"""BaseVAE: what every VAE estimator shares: parameters, the fit path, inference.

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
from sklearn.utils import check_random_state, get_tags
from sklearn.utils._param_validation import Hidden, Interval, StrOptions
from sklearn.utils.validation import check_array, check_is_fitted, validate_data

from ._covariates import column_index, decoding_values
from ._likelihood_param import (
    auto_likelihood,
    check_label_families,
    family_choice,
    is_position,
    likelihood_parts,
    model_positions,
    own_floors,
    takes_option,
)
from ._likelihoods import LIKELIHOODS, prepare_likelihood
from ._module import ACTIVATIONS, VAEModule, with_float32_networks
from ._optim import make_optimizer
from ._persistence import PicklingMixin
from ._posteriors import POSTERIORS, posterior_class, posterior_spec
from ._sparse_data import (
    SparseData,
    check_sparse_input,
    dense_rows,
    prepare_sparse_likelihood,
    validate_sparse,
)
from ._stacklevel import users_stacklevel
from ._tables import NUMBER, Ranges, Table, container_of
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

# Elements per temporary tensor in batched inference: bounds memory whatever n_samples is.
_INFERENCE_ELEMENTS = 2**21
# Fewer on the CPU where no noise is drawn per batch: activations then stay in its caches.
_CACHED_ELEMENTS = 2**19
# Calls on at least this many rows run the networks in float32 on the CPU (see ``_infer``).
_FLOAT32_ROWS = 1000
_MAX_SEED = np.iinfo(np.int32).max
_COMPUTE_DTYPES = {"float32": None, "bfloat16": torch.bfloat16}
# Prior draws per row of a conditional ``sample``, among which importance resampling picks.
_CONDITIONAL_CANDIDATES = 500
# Times an out-of-range draw is drawn again before it is clipped to the training range.
_REDRAWS = 10


class InferenceModules(NamedTuple):
    """The copies of a fitted module that inference runs, on ``device``."""

    device: torch.device
    dtype: torch.dtype  # of the tensors both modules take and return
    exact: VAEModule  # float64 on the CPU
    bulk: VAEModule  # on the CPU, ``exact`` with its encoder and decoder in float32


def resolve_device(device: str) -> torch.device:
    """The torch device a ``device`` parameter names, or a ValueError in the user's terms."""
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


def check_missing(X: np.ndarray, columns: bool) -> bool:
    """Whether X has missing values (NaN); raise when a row, or a column, has none observed.

    ``columns``: check columns too (when fit learns each column's location and scale).
    """
    if sp.issparse(X):
        return False  # a sparse X has no NaN (``check_sparse_input``)
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


def log_det(X: np.ndarray, scale: np.ndarray):
    """-sum log(scale) over each row's observed entries: the change of units of log p(x)."""
    if sp.issparse(X) or not np.isnan(X).any():
        return float(-np.log(scale).sum())
    return -(np.log(scale) * ~np.isnan(X)).sum(axis=1)


def rescale(X: np.ndarray, loc: np.ndarray, scale: np.ndarray, dtype) -> np.ndarray:
    """(X - loc) / scale as a new array of ``dtype``, never a view of X."""
    if not (np.any(loc) or np.any(scale != 1)):
        # Families that see the data as it is: a copy, not a float64 pass over X. A copy
        # all the same: tensors must not alias the user's (possibly read-only) array.
        return np.array(X, dtype=dtype)
    out = np.empty(X.shape, dtype=dtype)
    step = max(1, _INFERENCE_ELEMENTS // max(1, X.shape[1]))
    for start in range(0, X.shape[0], step):
        out[start : start + step] = (X[start : start + step] - loc) / scale
    return out


class PendingFit(NamedTuple):
    """A fit between ``_start_fit`` and ``_end_fit``: its trainer, ready to run."""

    X: object  # the data as the user passed it
    trainer: Trainer
    incremental: bool
    train_seed: int
    crn_seed: int
    budget: Budget


class BaseVAE(PicklingMixin, BaseEstimator):
    """Base class of the VAE estimators: shared parameters, fit path and inference.

    Not for direct use: a subclass lists its parameters in ``__init__`` (those of
    ``_parameter_constraints``, and its own), as scikit-learn's estimators do.
    """

    _parameter_constraints: dict = {
        "n_components": [Interval(Integral, 1, None, closed="left")],
        # A live view: families registered later are accepted too.
        "likelihood": [StrOptions(ChainMap(LIKELIHOODS, {"auto": None}).keys()), dict, type],
        "covariance_type": [StrOptions({"diag", "spherical"})],
        "posterior": [StrOptions(POSTERIORS.keys()), type],
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
        "n_train_samples": [Interval(Integral, 1, None, closed="left")],
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
        try:
            fit.trainer.run(fit.trainer.config.max_iter)
        except NonFiniteLossError as exc:
            raise ValueError(str(exc)) from None
        return self._end_fit(fit)

    def _start_fit(self, X, incremental: bool) -> PendingFit:
        """Everything a fit does before training: the data read, the model, its trainer.

        ``_fit`` runs the trainer and ``_end_fit`` keeps what it learned; in between,
        several estimators' trainers can run together (``_ensemble``).
        """
        # partial_fit always continues the model there is; fit only with warm_start.
        resume = hasattr(self, "module_") and (incremental or self.warm_start)
        user_X = X
        X = self._read(X, reset=not resume)
        X, covariates = self._model_inputs(X)
        covariates = self._covariate_features(covariates, fit=not resume)
        if sp.issparse(X):
            check_sparse_input(X, self.module_.likelihood if resume else self.likelihood)
        missing = check_missing(X, columns=not resume)
        ranges = getattr(self, "_ranges", None)
        self._ranges = ranges.update(X) if resume and ranges else Ranges.learn(X)
        device = resolve_device(self.device)
        seeds = check_random_state(self.random_state).randint(_MAX_SEED, size=4)
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
        return PendingFit(user_X, trainer, incremental, train_seed, crn_seed, budget)

    def _end_fit(self, fit: PendingFit):
        """Keep the trained model and what the fit learned as fitted attributes."""
        self._train_seed, self._crn_seed = fit.train_seed, fit.crn_seed
        self.batch_size_, self.max_iter_, self.n_iter_no_change_ = fit.budget
        self._store_fit(fit.trainer, fit.incremental)
        self.categories_ = self._categories()
        return self

    def _read(self, X, reset: bool) -> np.ndarray:
        """X as the model's float array, checked as scikit-learn checks its input.

        A pandas or polars frame is read column by column (``_tables``): labels become
        their positions, booleans 0 and 1. ``reset``: learn the columns (fit).
        """
        if container_of(X) is None or (not reset and getattr(self, "_table", None) is None):
            if reset:
                self._table = None
            return validate_data(
                self,
                X,
                reset=reset,
                accept_sparse=self._accept_sparse(),
                dtype=[np.float64, np.float32],
                ensure_all_finite="allow-nan",
            )
        validate_data(self, X, reset=reset, skip_check_array=True)
        if reset:
            self._table = Table.learn(X)
        return check_array(self._table.encode(X), ensure_all_finite="allow-nan", input_name="X")

    def _model_kinds(self):
        table = getattr(self, "_table", None)
        if table is None:
            return None
        return [table.kinds[j] for j in self._model_columns(len(table.kinds))]

    def _categories(self) -> dict:
        """``categories_``: each categorical column's categories, in the user's labels."""
        config = self.module_.likelihood.config
        parts = config["parts"] if config["name"] == "mixed" else [config]
        columns = self._model_columns(self.n_features_in_)
        names = self._model_feature_names()
        table = getattr(self, "_table", None)
        found = {}
        for part in parts:
            if part["name"] != "categorical":
                continue
            values = part.get("values") or [list(range(k)) for k in part["n_categories"]]
            for c, known in zip(part.get("columns", range(len(values))), values, strict=True):
                labels = known if table is None else table.categories(columns[c], known)
                found[int(columns[c]) if names is None else str(names[c])] = np.asarray(
                    labels, dtype=object if any(isinstance(v, str) for v in labels) else None
                )
        return found

    def _budget(self, n_train: int) -> Budget:
        """Batch size, epoch limit and patience of a fit on ``n_train`` rows ("auto" resolved)."""
        return auto_budget(n_train, self.batch_size, self.max_iter, self.n_iter_no_change)

    def _trainer(self, *args) -> Trainer:
        """The trainer of a fit; a subclass with another objective returns its own."""
        return Trainer(*args)

    def _new_model(self, X, covariates, missing, init_seed, device):
        """A fresh module (seeded weights), its optimizer and an empty history."""
        self.likelihood_ = self.likelihood
        names, kinds = self._model_feature_names(), self._model_kinds()
        if isinstance(self.likelihood, str) and self.likelihood == "auto":
            self.likelihood_ = self._positions_of_x(auto_likelihood(X, names, kinds))
        likelihood = self._likelihood_parts(self.likelihood_, X.shape[1])
        if self.n_components > X.shape[1]:
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

    def _likelihood_parts(self, likelihood, n_model: int):
        """``likelihood`` as a family, or as parts over the ``n_model`` modelled columns."""
        columns = self._model_columns(self.n_features_in_)
        likelihood = model_positions(likelihood, columns, self.n_features_in_)
        return likelihood_parts(likelihood, n_model, self._model_feature_names())

    def _positions_of_x(self, likelihood: dict) -> dict:
        """A dict over the modelled columns by position, as positions of X (as passed)."""
        columns = self._model_columns(self.n_features_in_)
        return {
            family: [int(columns[c]) if is_position(c) else c for c in selection]
            for family, selection in likelihood.items()
        }

    def _architecture(self, X, covariates) -> dict:
        """The module's shape as the parameters and the data set it (``VAEModule.spec``)."""
        return {
            "n_features": X.shape[1],
            "n_components": self.n_components,
            "hidden_layer_sizes": self._hidden_layer_sizes(),
            "activation": self.activation,
            "posterior": posterior_spec(posterior_class(self.posterior)),
            "covariates": {k: v.shape[1] for k, v in covariates.items()},
        }

    def _optimizer(self, module):
        networks = (module.encoder, module.decoder)
        return make_optimizer(module, networks, self.learning_rate_init, self.weight_decay)

    def _resume(self, X, covariates, device, incremental):
        """Copies of the fitted module, optimizer and history to continue training."""
        old = self.module_.spec
        # "auto" keeps the families it chose on the first data: a block may look otherwise.
        param = self.likelihood_ if self.likelihood == "auto" else self.likelihood
        likelihood = self._likelihood_parts(param, X.shape[1])
        new = self._architecture(X, covariates)
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
            n_train_samples=self.n_train_samples,
            lr_decays=LR_DECAYS if self.learning_rate == "adaptive" else 0,
        )

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

    # ------------------------------------------------------------------ covariates

    def _covariate_columns(self) -> dict[str, list[int]]:
        """Columns of X that condition the model instead of being modelled, by batch key.

        None by default. A subclass that returns, e.g., ``{"batch": [5]}`` gets a VAE whose
        encoder and decoder both see column 5 and whose likelihood models the others.
        """
        return {}

    def _covariate_features(self, covariates: dict, fit: bool = False) -> dict:
        """What the module sees of the covariate columns (``covariates``: as in X).

        As they are by default; a subclass may encode them (one-hot categories), learning
        the encoding when ``fit``.
        """
        return {k: np.asarray(v, dtype=np.float64) for k, v in covariates.items()}

    def _decoding_covariates(self, n_rows: int, values=None) -> dict[str, np.ndarray]:
        """Covariate values at which ``sample`` and ``inverse_transform`` decode.

        ``values``: the ``covariates`` argument of those methods (see ``decoding_values``).
        """
        spec = self._covariate_columns()
        if not spec:
            if values is not None:
                raise ValueError(f"This {type(self).__name__} has no covariates to set.")
            return {}
        if values is None:
            raise ValueError(
                f"{type(self).__name__} conditions on covariates; pass the values to decode "
                "at as covariates=..., e.g. a value per covariate column for every row."
            )
        names = getattr(self, "feature_names_in_", None)
        return decoding_values(values, spec, n_rows, names)

    def _model_columns(self, n_features: int) -> np.ndarray:
        used = [c for columns in self._covariate_columns().values() for c in columns]
        return np.setdiff1d(np.arange(n_features), used)

    def _model_feature_names(self):
        names = getattr(self, "feature_names_in_", None)
        return None if names is None else names[self._model_columns(len(names))]

    def _model_inputs(self, X: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """The modelled columns of X, and the covariates' (which must be observed)."""
        spec = self._covariate_columns()
        if not spec:
            return X, {}
        covariates = {key: _dense(X[:, columns]) for key, columns in spec.items()}
        if any(np.isnan(v).any() for v in covariates.values()):
            raise ValueError("Covariates must be observed: their columns of X hold NaN.")
        return X[:, self._model_columns(X.shape[1])], covariates

    def _assemble(self, X_model: np.ndarray, covariates: dict[str, np.ndarray]) -> np.ndarray:
        """Rows in the layout of X: the modelled columns beside the covariates'."""
        spec = self._covariate_columns()
        if not spec:
            return X_model
        out = np.empty((len(X_model), self.n_features_in_))
        out[:, self._model_columns(self.n_features_in_)] = X_model
        for key, columns in spec.items():
            out[:, columns] = covariates[key]
        return out

    def _accept_sparse(self):
        """The sparse formats ``validate_data`` takes: CSR when the tags say sparse X is."""
        return ["csr"] if get_tags(self).input_tags.sparse else False

    def _check_domain(self, X) -> None:
        """Check the modelled columns of new data against the fitted likelihood."""
        if sp.issparse(X):
            validate_sparse(self.module_.likelihood, X)
        else:
            self.module_.likelihood.validate(X)

    def _unseen_as_missing(self, X):
        """X with values fit never saw (a new category) as NaN, and a warning naming them."""
        unseen = None if sp.issparse(X) else self.module_.likelihood.unseen(X)
        if unseen is None:
            return X
        counts = unseen.sum(axis=0)
        j = int(np.flatnonzero(counts)[0])
        names = self._model_feature_names()
        column = int(self._model_columns(self.n_features_in_)[j]) if names is None else names[j]
        n, more = int(counts[j]), int((counts > 0).sum()) - 1
        others = f", and values of {more} more such column{'s' * (more > 1)}," if more else ""
        warnings.warn(
            f"{n} value{'s' if n > 1 else ''} of categorical column {column!r} (e.g. "
            f"{X[unseen[:, j], j][0]:g}){others} {'were' if n + more > 1 else 'was'} not "
            "seen in fit: treated as missing.",
            UserWarning,
            stacklevel=4,
        )
        X = np.array(X, dtype=np.float64)
        X[unseen] = np.nan
        return X

    def _hidden_layer_sizes(self) -> tuple[int, ...]:
        sizes = self.hidden_layer_sizes
        sizes = (sizes,) if isinstance(sizes, Integral) else tuple(sizes)
        if not all(isinstance(h, Integral) and h >= 1 for h in sizes):
            raise ValueError(
                f"hidden_layer_sizes must be positive integers, got {self.hidden_layer_sizes}."
            )
        return tuple(int(h) for h in sizes)

    # ------------------------------------------------------------------ inference

    def _build_inference(self) -> InferenceModules:
        """The copies of the fitted module that inference runs (see ``_infer``).

        Built when the fitted state or the device changes (fit, partial_fit, set_params,
        unpickling), not per call.
        """
        device = resolve_device(self.device)
        if device.type != "cpu":
            module = copy.deepcopy(self.module_).to(device=device, dtype=torch.float32).eval()
            return InferenceModules(device, torch.float32, module, module)
        exact = copy.deepcopy(self.module_).to(dtype=torch.float64).eval()
        return InferenceModules(device, torch.float64, exact, with_float32_networks(exact))

    def _inference_module(self) -> InferenceModules:
        cached = getattr(self, "_inference", None)
        if cached is not None and cached[0] == resolve_device(self.device):
            return cached
        return self._build_inference()

    def set_params(self, **params):
        """Set the parameters of this estimator (see scikit-learn's ``BaseEstimator``).

        Parameters
        ----------
        **params : dict
            Estimator parameters.

        Returns
        -------
        self : estimator instance
            Estimator instance.
        """
        super().set_params(**params)
        if "device" in params and hasattr(self, "module_"):
            self._inference = self._build_inference()
        return self

    def _infer(self, X, fn, out_shape, rescaled=True, width=1, covariates=None, draws=False):
        """Apply ``fn(module, batch)`` to the rows of X in batches; returns float64 numpy.

        ``rescaled``: X is data (batch key "x"), to be put in the model's units first; else
        latent points (batch key "z"). ``width``: samples per row that ``fn`` draws, which
        bounds the batch's rows. ``covariates``: arrays aligned with X's rows, by key.

        On the CPU, a call on fewer than ``_FLOAT32_ROWS`` rows runs in float64, where a
        row's result does not depend on the other rows (to ~1e-15), as scikit-learn's
        subset- and order-invariance checks require. A larger call runs the encoder's and
        decoder's layers in float32 and the rest (rescaling, the posterior's draws and
        densities, the likelihood, sums over samples) in float64: its results are the
        float64 ones to within the float32 rounding of the networks' outputs. ``draws``:
        ``fn`` draws noise batch by batch (``sample``); such a call runs in float64, in
        batches bounded by ``_INFERENCE_ELEMENTS`` alone, which decide the noise each row
        gets: the cache-sized batches of the other calls do not move it. On a GPU, every
        call runs in float32, in batches of ``_INFERENCE_ELEMENTS``.
        """
        modules = self._inference_module()
        device, dtype = modules.device, modules.dtype
        module = modules.exact if draws or X.shape[0] < _FLOAT32_ROWS else modules.bulk
        covariates = self._covariate_features(covariates or {})
        likelihood = module.likelihood
        widths = [X.shape[1], likelihood.n_inputs, *module.hidden_layer_sizes]
        widths.append(2 * likelihood.n_outputs)
        cached = device.type == "cpu" and not draws
        elements = min(_INFERENCE_ELEMENTS, _CACHED_ELEMENTS) if cached else _INFERENCE_ELEMENTS
        rows = max(1, elements // (max(widths) * width))
        out = np.empty((X.shape[0], *out_shape), dtype=np.float64)
        # The batch's rows are copied here, never a view: X may be the caller's, read-only.
        buffer = np.empty((min(rows, X.shape[0]), X.shape[1]), dtype=np.float64)
        # Without NaN in X (one pass: NaN is the min), no batch is searched for missing values.
        complete = rescaled and (sp.issparse(X) or not np.isnan(np.min(X)))
        with torch.inference_mode():
            for start in range(0, X.shape[0], rows):
                chunk = dense_rows(X, start, start + rows)
                copied = buffer[: len(chunk)]
                if rescaled:
                    np.subtract(chunk, likelihood.loc, out=copied)
                    np.divide(copied, likelihood.scale, out=copied)
                else:
                    copied[...] = chunk
                batch = {"x" if rescaled else "z": torch.from_numpy(copied).to(device, dtype)}
                if complete:
                    batch["mask"] = None
                for key, values in (covariates or {}).items():
                    batch[key] = torch.tensor(
                        values[start : start + rows], dtype=dtype, device=device
                    )
                out[start : start + rows] = fn(module, batch).cpu().double().numpy()
        return out

    def _validate_for_inference(self, X, with_given=False):
        """The modelled columns of X, checked, and the covariates'.

        Values fit never saw are missing in what the model is given; ``with_given``: also
        return the modelled columns as given, those values included.
        """
        check_is_fitted(self)
        X = self._read(X, reset=False)
        given, covariates = self._model_inputs(X)
        X = self._unseen_as_missing(given)
        check_missing(X, columns=False)
        self._check_domain(X)
        return (X, covariates, given) if with_given else (X, covariates)

    def _noise(self, n_rows, seed):
        generator = torch.Generator().manual_seed(int(seed))
        shape = (n_rows, self.module_.n_latent)
        return torch.randn(shape, generator=generator, dtype=torch.float64), generator

    def conditional_mean(self, X, *, n_importance_samples=100, random_state=None):
        """E[x | x_observed] of each row: its missing entries (NaN) filled, the rest kept.

        Self-normalised importance sampling: K draws z_k ~ q(z | x_observed), weighted by
        p(x_observed | z_k) p(z_k) / q(z_k | x_observed), average the decoder means
        E[x | z_k] (for categorical columns: the most probable category of the weighted
        mixture). Every row gets the same K noise vectors, so rows do not depend on each
        other.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Data with missing values (NaN); each row needs an observed value.

        n_importance_samples : int, default=100
            Number K of importance samples per row.

        random_state : int, RandomState instance or None, default=None
            Seed of the importance samples; None uses the one fixed at fit.

        Returns
        -------
        X_filled : ndarray of shape (n_samples, n_features)
            X with each missing entry replaced by its conditional mean under the model.

        Examples
        --------
        >>> import numpy as np
        >>> from skvae import VAEEstimator
        >>> from skvae.datasets import make_linear_gaussian
        >>> X, _ = make_linear_gaussian(300, n_features=4, random_state=0)
        >>> vae = VAEEstimator(hidden_layer_sizes=(16,), tol=0.1, random_state=0).fit(X)
        >>> X_missing = X[:3].copy()
        >>> X_missing[0, 1] = np.nan
        >>> bool(np.isnan(vae.conditional_mean(X_missing)).any())
        False
        """
        X, covariates, given = self._validate_for_inference(X, with_given=True)
        X = _dense(X)  # the output is as large
        if random_state is None:
            seed = self._crn_seed
        elif isinstance(random_state, Integral):
            seed = int(random_state)
        else:
            seed = check_random_state(random_state).randint(_MAX_SEED)
        eps, _ = self._noise(n_importance_samples, seed)

        def fill(module, batch):
            return module.conditional_mean(batch, eps.to(batch["x"].device))

        shape = (X.shape[1],)
        out = self._infer(X, fill, shape, width=n_importance_samples, covariates=covariates)
        likelihood = self.module_.likelihood
        out = out * likelihood.scale + likelihood.loc
        given = _dense(given)
        observed = ~np.isnan(given)
        out[observed] = given[observed]  # exactly, not through the rescaling and back
        return self._assemble(out, covariates)

    def sample(
        self,
        n_samples=1,
        random_state=None,
        *,
        covariates=None,
        given=None,
        constrain=True,
        missing=False,
    ):
        """Draw x ~ p(x | z) with z ~ N(0, I): real draws from the model.

        Parameters
        ----------
        n_samples : int, default=1
            Number of rows to draw.

        random_state : int, RandomState instance or None, default=None
            Seed of the draws; None uses the estimator's ``random_state``.

        covariates : dict or array-like, default=None
            For a model with covariates, the values to draw at (required): a dict mapping
            each covariate column (index or name) to a value or to ``n_samples`` values,
            or an array-like of one value per covariate column (in their order in X), or
            of shape (n_samples, n_covariates). They are returned in their columns.

        given : dict, default=None
            Values to draw the other columns given, by column name or index, e.g.
            ``{"species": "Adelie"}``. Each row's z is picked by importance resampling
            among 500 draws from the prior, weighted by p(given values | z): the rows
            follow p(x | given) as the model has it, at 500 decoder passes per row. The
            given columns hold the given values.

        constrain : bool, default=True
            Keep each column's draws where its training data was: a draw outside the
            column's training range is drawn again (up to 10 times, then clipped to the
            range), and draws are rounded to the decimals of the column's training values
            (whole numbers for a column of whole numbers; none past 6 decimals). False:
            the model's draws as they are.

        missing : bool, default=False
            Leave entries missing (NaN, or the frame's missing value) at the rate each
            column was missing in the training data, independently.

        Returns
        -------
        X : ndarray or DataFrame of shape (n_samples, n_features)
            Draws in the units of the training data. A frame with the training frame's
            column names, dtypes and labels when the model was fitted on a pandas or
            polars frame, or when ``set_output`` asked for one.

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
        >>> bool(np.all(draws == np.round(draws)))  # whole numbers, as the pixels were
        True
        """
        check_is_fitted(self)
        if not isinstance(n_samples, Integral) or isinstance(n_samples, bool) or n_samples < 1:
            raise ValueError(f"n_samples must be a positive integer, got {n_samples!r}.")
        rng = check_random_state(self.random_state if random_state is None else random_state)
        Z, generator = self._noise(n_samples, rng.randint(_MAX_SEED))
        covariates = self._decoding_covariates(n_samples, covariates)
        likelihood = self.module_.likelihood
        fixed = None
        if given is not None:
            fixed = self._given_values(given)
            Z = self._conditional_latents(n_samples, *fixed, covariates, generator)
        ranges = getattr(self, "_ranges", None)
        bounds = None
        if constrain and ranges is not None:
            bounds = [
                torch.from_numpy((edge - likelihood.loc) / likelihood.scale)
                for edge in (ranges.low, ranges.high)
            ]

        def draw(module, batch):
            out = module.decode(batch["z"], batch)
            x = module.likelihood.sample(out, generator)
            if bounds is None:
                return x
            low, high = (edge.to(x.device, x.dtype) for edge in bounds)
            for _ in range(_REDRAWS):
                outside = (x < low) | (x > high)
                if not outside.any():
                    break
                x = torch.where(outside, module.likelihood.sample(out, generator), x)
            return x

        shape = (likelihood.n_features,)
        X = self._infer(Z.numpy(), draw, shape, rescaled=False, covariates=covariates, draws=True)
        X = X * likelihood.scale + likelihood.loc
        if bounds is not None:
            X = np.clip(X, ranges.low, ranges.high)
            ranges.round(X)
        if fixed is not None:
            values, mask = fixed
            X[:, mask] = (values * likelihood.scale + likelihood.loc)[mask]
        if missing and ranges is not None:
            X[rng.random_sample(X.shape) < ranges.missing_rate] = np.nan
        return self._to_user(self._assemble(X, covariates))

    def _given_values(self, given) -> tuple[np.ndarray, np.ndarray]:
        """``sample``'s ``given``: a row in the model's units, and which entries are given."""
        if not isinstance(given, dict) or not given:
            raise ValueError(f"given must be a non-empty dict of column -> value, got {given!r}.")
        names = getattr(self, "feature_names_in_", None)
        columns = self._model_columns(self.n_features_in_)
        table = getattr(self, "_table", None)
        row = np.full(len(columns), np.nan)
        for key, value in given.items():
            j = column_index(key, names, self.n_features_in_, "given column")
            if j not in columns:
                raise ValueError(f"Column {key!r} of given is a covariate, not a modelled column.")
            if table is not None and table.kinds[j] != NUMBER:
                known = table.known_labels(j)
                if value not in known:
                    raise ValueError(
                        f"given[{key!r}] = {value!r} is not a category of that column; its "
                        f"categories are {known}."
                    )
                value = known.index(value)
            try:
                row[int(np.flatnonzero(columns == j)[0])] = float(value)
            except (TypeError, ValueError):
                raise ValueError(f"given[{key!r}] = {value!r} is not a number.") from None
        self.module_.likelihood.validate(row[None, :])
        likelihood = self.module_.likelihood
        mask = ~np.isnan(row)
        return np.where(mask, (row - likelihood.loc) / likelihood.scale, 0.0), mask

    def _conditional_latents(self, n_rows, values, mask, covariates, generator) -> torch.Tensor:
        """z for each of ``n_rows`` rows, picked among prior draws by p(given values | z).

        ``covariates``: each row's covariate values, at which its candidates are decoded.
        """
        device, dtype, module, _ = self._inference_module()
        n_candidates, width = _CONDITIONAL_CANDIDATES, module.n_latent
        features = self._covariate_features(covariates)
        x = torch.tensor(values, dtype=dtype, device=device)
        m = torch.tensor(mask, dtype=dtype, device=device)
        widest = max(module.likelihood.n_outputs * 2, *module.hidden_layer_sizes)
        rows = max(1, _INFERENCE_ELEMENTS // (n_candidates * widest))
        Z = torch.empty((n_rows, width), dtype=torch.float64)
        with torch.inference_mode():
            for start in range(0, n_rows, rows):
                k = min(rows, n_rows - start)
                eps = torch.randn(
                    (k, n_candidates, width), generator=generator, dtype=torch.float64
                )
                flat = eps.reshape(-1, width).to(device, dtype)
                batch = {"z": flat}
                for key, value in features.items():
                    rows_of = np.repeat(value[start : start + k], n_candidates, axis=0)
                    batch[key] = torch.tensor(rows_of, dtype=dtype, device=device)
                out = module.decode(flat, batch)
                log_w = module.likelihood.log_prob(
                    x.expand(len(flat), -1), out, m.expand(len(flat), -1)
                ).reshape(k, n_candidates)
                u = torch.rand((k, n_candidates), generator=generator, dtype=torch.float64)
                gumbel = -torch.log(-torch.log(u.clamp_min(1e-300)))
                pick = (log_w.cpu().double() + gumbel).argmax(dim=1)
                Z[start : start + k] = eps[torch.arange(k), pick]
        return Z

    def _to_user(self, X: np.ndarray):
        """Rows in the model's layout as the user's: a frame when fitted on one or asked."""
        config = getattr(self, "_sklearn_output_config", {}).get("transform", "default")
        table = getattr(self, "_table", None)
        container = config if config in ("pandas", "polars") else None
        if table is not None:
            return table.decode(X, container or table.container)
        if container is None:
            return X
        names = getattr(self, "feature_names_in_", None)
        names = [f"x{j}" for j in range(X.shape[1])] if names is None else list(names)
        if container == "polars":
            import polars as pl

            return pl.DataFrame(dict(zip(names, X.T, strict=True)))
        import pandas as pd

        return pd.DataFrame(X, columns=names)

    def score_samples(self, X):
        """Estimate of log p(x) for each row, in nats in the units of X.

        The importance-weighted bound with ``n_importance_samples`` samples (the ELBO when
        1), a lower bound on log p(x) that tightens as the number of samples grows. Every
        row gets the same noise, so a row's value does not depend on the others.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
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
        X, covariates = self._validate_for_inference(X)
        eps, _ = self._noise(self.n_importance_samples, self._crn_seed)

        def bound(module, batch):
            return module.iw_bound(batch, eps.to(batch["x"].device))

        scores = self._infer(X, bound, (), width=len(eps), covariates=covariates)
        return scores + log_det(X, self.module_.likelihood.scale)

    def score(self, X, y=None):
        """Mean of ``score_samples`` over the rows of X: higher is a better model.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
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

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # NaN marks a missing value: it is left out of the likelihood.
        tags.input_tags.allow_nan = True
        return tags


def _dense(X) -> np.ndarray:
    return X.toarray() if sp.issparse(X) else X
