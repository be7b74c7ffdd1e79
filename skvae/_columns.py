"""The columns of X as an estimator reads them: the user's frame, covariates, modelled columns.

``ColumnLayout`` is what a fit learns of X's columns (their number and names, the frame
they came in, which of them are covariates and which are modelled), learned once in fit
and read by every call after it. ``ColumnsMixin`` gives ``BaseVAE`` the calls that use it:
reading X (an array, or a pandas or polars frame through ``_tables``), splitting it into
the modelled columns and the covariates' and back, and counting a likelihood dict's and
``categories_``'s positions in the columns of X as passed.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
from sklearn.utils import get_tags
from sklearn.utils.validation import check_array, validate_data

from ._arrays import dense
from ._covariates import decoding_values
from ._family_data import Codes
from ._likelihood_param import is_position, likelihood_parts, model_positions
from ._sparse_data import validate_sparse
from ._tables import LABEL, Table, container_of

__all__ = ["ColumnLayout", "ColumnsMixin", "unseen_as_missing"]


@dataclass(frozen=True)
class ColumnLayout:
    """The columns of X as fit learned them: the covariates' positions and the rest modelled.

    ``names``: the columns' names (None: X had none); ``table``: how a pandas or polars
    frame's columns are read and written (None: X was an array); ``covariates``: the
    positions of X that condition the model, by batch key. Only builtins, so that a saved
    model holds no pandas or polars object.
    """

    n_features: int
    names: list | None = None
    covariates: dict[str, list[int]] = field(default_factory=dict)
    table: Table | None = None

    @classmethod
    def from_state(cls, state: dict) -> ColumnLayout:
        """The layout of ``dataclasses.asdict(layout)`` (a saved model's)."""
        table = state.get("table")
        return cls(**{**state, "table": None if table is None else Table(**table)})

    @property
    def model_columns(self) -> np.ndarray:
        """The positions in X of the modelled columns, in order."""
        used = [c for columns in self.covariates.values() for c in columns]
        return np.setdiff1d(np.arange(self.n_features), used)

    @property
    def model_names(self) -> np.ndarray | None:
        """The modelled columns' names (None: X had none)."""
        if self.names is None:
            return None
        return np.asarray(self.names, dtype=object)[self.model_columns]

    @property
    def model_kinds(self) -> list[str] | None:
        """The modelled columns' kinds in the frame (None: X was an array)."""
        if self.table is None:
            return None
        return [self.table.kinds[j] for j in self.model_columns]

    def label(self, j: int):
        """Modelled column ``j`` as the user knows it: its name, or its position in X."""
        column = int(self.model_columns[j])
        return column if self.names is None else self.names[column]

    def split(self, X: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """The modelled columns of X, and the covariates' (which must be observed)."""
        if not self.covariates:
            return X, {}
        covariates = {key: dense(X[:, columns]) for key, columns in self.covariates.items()}
        if any(np.isnan(v).any() for v in covariates.values()):
            raise ValueError("Covariates must be observed: their columns of X hold NaN.")
        return X[:, self.model_columns], covariates

    def assemble(self, X_model: np.ndarray, covariates: dict[str, np.ndarray]) -> np.ndarray:
        """Rows in the layout of X: the modelled columns beside the covariates'."""
        if not self.covariates:
            return X_model
        out = np.empty((len(X_model), self.n_features))
        out[:, self.model_columns] = X_model
        for key, columns in self.covariates.items():
            out[:, columns] = covariates[key]
        return out


class ColumnsMixin:
    """The columns of X: read, split into modelled columns and covariates, and assembled."""

    def _read(self, X, reset: bool, unseen: bool = False) -> np.ndarray:
        """X as the model's float array, checked as scikit-learn checks its input.

        A pandas or polars frame is read column by column (``_tables``): labels become
        their positions, booleans 0 and 1. ``reset``: learn the columns (fit), as
        ``self._layout``. ``unseen``: a modelled column's label fit never saw is coded
        ``UNSEEN`` (for inference to treat as missing) instead of refused.
        """
        table = None
        if container_of(X) is not None and (reset or self._layout.table is not None):
            validate_data(self, X, reset=reset, skip_check_array=True)
            table = Table.learn(X) if reset else self._layout.table
            columns = self._layout.model_columns if unseen else ()
            X = check_array(
                table.encode(X, columns), ensure_all_finite="allow-nan", input_name="X"
            )
        else:
            X = validate_data(
                self,
                X,
                reset=reset,
                accept_sparse=self._accept_sparse(),
                dtype=[np.float64, np.float32],
                ensure_all_finite="allow-nan",
            )
        if reset:
            names = getattr(self, "feature_names_in_", None)
            self._layout = ColumnLayout(
                self.n_features_in_,
                None if names is None else [str(name) for name in names],
                self._covariate_columns(),
                table,
            )
        return X

    def _covariate_columns(self) -> dict[str, list[int]]:
        """Columns of X that condition the model instead of being modelled, by batch key.

        Read from the parameters once per fit, into ``self._layout``. None by default: a
        subclass that returns, e.g., ``{"batch": [5]}`` gets a VAE whose encoder and
        decoder both see column 5 and whose likelihood models the others.
        """
        return {}

    def _categories(self) -> dict:
        """``categories_``: each categorical column's categories, in the user's labels."""
        config = self.module_.likelihood.config
        parts = config["parts"] if config["name"] == "mixed" else [config]
        layout = self._layout
        columns = layout.model_columns
        found = {}
        for part in parts:
            if part["name"] != "categorical":
                continue
            values = part.get("values") or [list(range(k)) for k in part["n_categories"]]
            for c, known in zip(part.get("columns", range(len(values))), values, strict=True):
                table = layout.table
                labels = known if table is None else table.categories(columns[c], known)
                found[layout.label(c)] = np.asarray(
                    labels, dtype=object if any(isinstance(v, str) for v in labels) else None
                )
        return found

    def _likelihood_parts(self, likelihood, n_model: int):
        """``likelihood`` as a family, or as parts over the ``n_model`` modelled columns."""
        layout = self._layout
        likelihood = model_positions(likelihood, layout.model_columns, layout.n_features)
        return likelihood_parts(likelihood, n_model, layout.model_names)

    def _positions_of_x(self, likelihood: dict) -> dict:
        """A dict over the modelled columns by position, as positions of X (as passed)."""
        columns = self._layout.model_columns
        return {
            family: [int(columns[c]) if is_position(c) else c for c in selection]
            for family, selection in likelihood.items()
        }

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
        layout = self._layout
        if not layout.covariates:
            if values is not None:
                raise ValueError(f"This {type(self).__name__} has no covariates to set.")
            return {}
        if values is None:
            raise ValueError(
                f"{type(self).__name__} conditions on covariates; pass the values to decode "
                "at as covariates=..., e.g. a value per covariate column for every row."
            )
        names = None if layout.names is None else np.asarray(layout.names, dtype=object)
        return decoding_values(values, layout.covariates, n_rows, names)

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
        """X with values fit never saw (a new category) or outside the range of their
        column's family as NaN, and a warning naming them."""
        auto = isinstance(self.likelihood, str) and self.likelihood == "auto"
        kinds = self._layout.model_kinds
        return unseen_as_missing(
            self.module_.likelihood,
            X,
            chosen=auto,
            label=self._layout.label,
            stacklevel=5,
            labels=kinds is not None and [kind == LABEL for kind in kinds],
        )


def unseen_as_missing(likelihood, X, *, chosen: bool, label, stacklevel: int, labels=False):
    """X with the values ``likelihood`` cannot condition on as NaN, and a warning naming them.

    Those are a category fit never saw and, when the families were ``chosen`` from the
    training values (``likelihood="auto"``), a value outside its column's family's range.
    A range the user chose (``likelihood="bernoulli"`` for data in [0, 1]) is theirs to
    keep: a value outside it stays, for the family's check to refuse as at fit.
    ``label(j)``: modelled column ``j`` as the user knows it; ``labels``: a flag per
    modelled column, True where it holds a frame's labels (coded, so not shown).
    """
    unseen = None if sp.issparse(X) else likelihood.unseen(X)
    if unseen is not None and not chosen:
        for j in np.flatnonzero(unseen.any(axis=0)):
            unseen[:, j] &= likelihood.column_family(j).domain is Codes
    if unseen is None or not unseen.any():
        return X
    counts = unseen.sum(axis=0)
    j = int(np.flatnonzero(counts)[0])
    n, more = int(counts[j]), int((counts > 0).sum()) - 1
    others = f", and values of {more} more such column{'s' * (more > 1)}," if more else ""
    family = likelihood.column_family(j)
    noun, reason = "categorical column", family.domain.unseen_reason
    if family.domain is not Codes:
        noun, reason = "column", f"{reason}, where its family {family.name!r} is defined"
    example = "" if labels and labels[j] else f" (e.g. {X[unseen[:, j], j][0]:g})"
    warnings.warn(
        f"{n} value{'s' if n > 1 else ''} of {noun} {label(j)!r}{example}{others} "
        f"{'were' if n + more > 1 else 'was'} "
        f"{reason}: treated as missing.",
        UserWarning,
        stacklevel=stacklevel,
    )
    X = np.array(X, dtype=np.float64)
    X[unseen] = np.nan
    return X
