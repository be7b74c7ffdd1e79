"""Inference and generation of a fitted VAE estimator: scores, conditional means, draws.

``InferenceMixin`` gives ``BaseVAE`` what a fitted model computes: ``score_samples``,
``score``, ``conditional_mean``, ``conditional_sample`` and ``sample``, run on copies of the
fitted module that are built once per fitted state (``InferenceModules``).
"""

from __future__ import annotations

import copy
import warnings
from numbers import Integral
from typing import NamedTuple

import numpy as np
import scipy.sparse as sp
import torch
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from ._arrays import (
    INFERENCE_ELEMENTS,
    MAX_SEED,
    check_missing,
    dense,
    log_det,
    resolve_device,
)
from ._covariates import column_index
from ._module import VAEModule, importance_pick, with_float32_networks
from ._sparse_data import dense_rows
from ._stacklevel import users_stacklevel
from ._tables import NUMBER

__all__ = ["InferenceMixin", "InferenceModules"]

# Fewer on the CPU where no noise is drawn per batch: activations then stay in its caches.
_CACHED_ELEMENTS = 2**19
# Calls on at least this many rows run the networks in float32 on the CPU (see ``_infer``).
_FLOAT32_ROWS = 1000
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


class InferenceMixin:
    """What a fitted VAE estimator computes from its module (``BaseVAE`` uses it)."""

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
        batches bounded by ``INFERENCE_ELEMENTS`` alone, which decide the noise each row
        gets: the cache-sized batches of the other calls do not move it. On a GPU, every
        call runs in float32, in batches of ``INFERENCE_ELEMENTS``.
        """
        modules = self._inference_module()
        device, dtype = modules.device, modules.dtype
        module = modules.exact if draws or X.shape[0] < _FLOAT32_ROWS else modules.bulk
        covariates = self._covariate_features(covariates or {})
        likelihood = module.likelihood
        widths = [X.shape[1], likelihood.n_inputs, *module.hidden_layer_sizes]
        widths.append(2 * likelihood.n_outputs)
        cached = device.type == "cpu" and not draws
        elements = min(INFERENCE_ELEMENTS, _CACHED_ELEMENTS) if cached else INFERENCE_ELEMENTS
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
        X = self._read(X, reset=False, unseen=True)
        given, covariates = self._layout.split(X)
        X = self._unseen_as_missing(given)
        if X is not given:  # rows the user left empty, before those left so by the model
            check_missing(given, columns=False)
        check_missing(X, columns=False, unseen=X is not given)
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
        X = dense(X)  # the output is as large
        if random_state is None:
            seed = self._crn_seed
        elif isinstance(random_state, Integral):
            seed = int(random_state)
        else:
            seed = check_random_state(random_state).randint(MAX_SEED)
        eps, _ = self._noise(n_importance_samples, seed)

        def fill(module, batch):
            return module.conditional_mean(batch, eps.to(batch["x"].device))

        shape = (X.shape[1],)
        out = self._infer(X, fill, shape, width=n_importance_samples, covariates=covariates)
        return self._filled(out, given, covariates)

    def conditional_sample(self, X, *, n_importance_samples=100, random_state=None):
        """A draw of each row's missing entries from p(x_missing | x_observed); the rest kept.

        Importance resampling: of K draws z_k ~ q(z | x_observed), weighted as in
        :meth:`conditional_mean`, one is picked with probability proportional to its
        weight, and the missing entries are drawn from p(x | z_k) jointly. Repeated with
        different seeds, the draws are multiple imputations: they spread as the model is
        unsure of the missing values, where :meth:`conditional_mean` gives their mean.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Data with missing values (NaN); each row needs an observed value.

        n_importance_samples : int, default=100
            Number K of importance samples per row, among which one is picked.

        random_state : int, RandomState instance or None, default=None
            Seed of the draws; None uses the estimator's ``random_state``.

        Returns
        -------
        X_drawn : ndarray of shape (n_samples, n_features)
            X with each missing entry replaced by a draw under the model.

        Examples
        --------
        >>> import numpy as np
        >>> from skvae import VAEEstimator
        >>> from skvae.datasets import make_linear_gaussian
        >>> X, _ = make_linear_gaussian(300, n_features=4, random_state=0)
        >>> vae = VAEEstimator(hidden_layer_sizes=(16,), tol=0.1, random_state=0).fit(X)
        >>> X_missing = X[:3].copy()
        >>> X_missing[0, 1] = np.nan
        >>> draws = [vae.conditional_sample(X_missing, random_state=s)[0, 1] for s in range(3)]
        >>> len(set(draws))  # three plausible values of the missing entry
        3
        """
        X, covariates, given = self._validate_for_inference(X, with_given=True)
        X = dense(X)  # the output is as large
        rng = check_random_state(self.random_state if random_state is None else random_state)
        eps, generator = self._noise(n_importance_samples, rng.randint(MAX_SEED))

        def draw(module, batch):
            return module.conditional_draw(batch, eps.to(batch["x"].device), generator)

        shape = (X.shape[1],)
        out = self._infer(
            X, draw, shape, width=n_importance_samples, covariates=covariates, draws=True
        )
        return self._filled(out, given, covariates)

    def _filled(self, out, given, covariates):
        """``out`` (the model's units) in the data's, with ``given``'s observed entries."""
        likelihood = self.module_.likelihood
        out = out * likelihood.scale + likelihood.loc
        given = dense(given)
        observed = ~np.isnan(given)
        out[observed] = given[observed]  # exactly, not through the rescaling and back
        return self._layout.assemble(out, covariates)

    def sample(
        self,
        n_samples=1,
        random_state=None,
        *,
        covariates=None,
        given=None,
        constrain=True,
        missing="warn",
    ):
        """Draw x ~ p(x | z) with z from the prior: real draws from the model.

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

        missing : bool or "auto", default=False
            Leave entries missing (NaN, or the frame's missing value) at the rate each
            column was missing in the training data, independently. "auto": do so when
            the model was fitted on a pandas or polars frame with missing entries, as a
            synthesizer of tables does; not on arrays.

            .. versionchanged:: 0.2
               The default will change from False to "auto" in 0.3: a model fitted on a
               frame with missing entries will draw them too. Until then it warns
               (FutureWarning) where the two differ; pass ``missing`` to silence it.

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
        return self._sample(n_samples, random_state, covariates, given, constrain, missing)

    def _sample(
        self, n_samples, random_state, covariates, given, constrain, missing, component=None
    ):
        """``sample``'s draws; ``component``: z from that component of a mixture prior."""
        check_is_fitted(self)
        if not isinstance(n_samples, Integral) or isinstance(n_samples, bool) or n_samples < 1:
            raise ValueError(f"n_samples must be a positive integer, got {n_samples!r}.")
        rng = check_random_state(self.random_state if random_state is None else random_state)
        eps, generator = self._noise(n_samples, rng.randint(MAX_SEED))
        Z = self._prior_draws(eps, generator, component)
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
        if self._draws_missing(missing) and ranges is not None:
            X[rng.random_sample(X.shape) < ranges.missing_rate] = np.nan
        return self._to_user(self._layout.assemble(X, covariates))

    def _draws_missing(self, missing) -> bool:
        """Whether ``sample(missing=...)`` leaves entries missing, warning of the new default."""
        rates = getattr(getattr(self, "_ranges", None), "missing_rate", None)
        auto = self._layout.table is not None and rates is not None and bool(np.any(rates > 0))
        if missing == "warn":
            if auto:
                warnings.warn(
                    "This model was fitted on a frame with missing entries. From skvae 0.3, "
                    "sample() will leave entries missing at each column's training rate by "
                    "default (missing='auto'), as synthesizers of tables do. Pass "
                    "missing=False to keep complete rows, or missing='auto' for the new "
                    "behaviour, to silence this warning.",
                    FutureWarning,
                    stacklevel=users_stacklevel(),
                )
            return False
        if missing == "auto":
            return auto
        if isinstance(missing, (bool, np.bool_)):
            return bool(missing)
        raise ValueError(f"missing must be True, False or 'auto', got {missing!r}.")

    def _given_values(self, given) -> tuple[np.ndarray, np.ndarray]:
        """``sample``'s ``given``: a row in the model's units, and which entries are given."""
        if not isinstance(given, dict) or not given:
            raise ValueError(f"given must be a non-empty dict of column -> value, got {given!r}.")
        names = getattr(self, "feature_names_in_", None)
        columns = self._layout.model_columns
        table = self._layout.table
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

    def _prior_draws(self, eps: torch.Tensor, generator, component=None) -> torch.Tensor:
        """Draws of the fitted prior from standard normal noise (rows, n_latent), float64.

        ``component``: draws of that component of a mixture prior alone.
        """
        device, dtype, module, _ = self._inference_module()
        if module.prior.closed_form_kl:
            return eps
        with torch.inference_mode():
            eps = eps.to(device, dtype)
            if component is None:
                z = module.prior.reparameterise(eps, generator, module)
            else:
                k = torch.full((len(eps),), component, dtype=torch.long, device=device)
                z = module.prior.component_draws(eps, k)
        return z.cpu().double()

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
        rows = max(1, INFERENCE_ELEMENTS // (n_candidates * widest))
        Z = torch.empty((n_rows, width), dtype=torch.float64)
        with torch.inference_mode():
            for start in range(0, n_rows, rows):
                k = min(rows, n_rows - start)
                eps = torch.randn(
                    (k, n_candidates, width), generator=generator, dtype=torch.float64
                )
                flat = self._prior_draws(eps.reshape(-1, width), generator)
                eps = flat.reshape(k, n_candidates, width)
                flat = flat.to(device, dtype)
                batch = {"z": flat}
                for key, value in features.items():
                    rows_of = np.repeat(value[start : start + k], n_candidates, axis=0)
                    batch[key] = torch.tensor(rows_of, dtype=dtype, device=device)
                out = module.decode(flat, batch)
                log_w = module.likelihood.log_prob(
                    x.expand(len(flat), -1), out, m.expand(len(flat), -1)
                ).reshape(k, n_candidates)
                pick = importance_pick(log_w, generator)
                Z[start : start + k] = eps[torch.arange(k), pick]
        return Z

    def _to_user(self, X: np.ndarray):
        """Rows in the model's layout as the user's: a frame when fitted on one or asked."""
        config = getattr(self, "_sklearn_output_config", {}).get("transform", "default")
        table = self._layout.table
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
