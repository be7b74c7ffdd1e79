"""The columns of X as an estimator reads them: the user's frame, covariates, modelled columns.

``ColumnsMixin`` gives ``BaseVAE`` the column side of a fit and of every call after it:
reading X (an array, or a pandas or polars frame through ``_tables``), splitting it into
the modelled columns and the covariates' and back, and counting a likelihood dict's and
``categories_``'s positions in the columns of X as passed.
"""

from __future__ import annotations

import warnings

import numpy as np
import scipy.sparse as sp
from sklearn.utils import get_tags
from sklearn.utils.validation import check_array, validate_data

from ._arrays import dense
from ._covariates import decoding_values
from ._likelihood_param import is_position, likelihood_parts, model_positions
from ._sparse_data import validate_sparse
from ._tables import Table, container_of

__all__ = ["ColumnsMixin"]


class ColumnsMixin:
    """The columns of X: read, split into modelled columns and covariates, and assembled."""

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
        covariates = {key: dense(X[:, columns]) for key, columns in spec.items()}
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
