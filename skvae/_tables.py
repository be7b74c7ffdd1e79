"""Tables as users have them: a data frame's columns to the model's numbers, and back.

A pandas or polars frame may hold strings, categories and booleans beside numbers. At fit,
``Table.learn`` records each column's name, kind and dtype, and the labels of its label
columns; ``encode`` turns a frame into a float array (labels into their positions, booleans
into 0 and 1, missing entries into NaN), and ``decode`` turns the model's output back into
a frame with the original names, dtypes and labels. ``Ranges`` records what a numeric
column's draws must respect: its training range, whether it holds whole numbers, and how
often it was missing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from ._family_data import FEW_VALUES

__all__ = ["UNSEEN", "Ranges", "Table", "container_of"]

NUMBER, BOOL, LABEL = "number", "bool", "label"
#: The code of a label fit never saw: a position no label has, which the categorical
#: family finds unseen (and inference treats as missing).
UNSEEN = -1.0


def container_of(X) -> str | None:
    """'pandas' or 'polars' for a data frame of that library, None for anything else."""
    module = type(X).__module__.split(".")[0]
    if module in ("pandas", "polars") and hasattr(X, "columns") and hasattr(X, "shape"):
        return module
    return None


def _is_missing(values: np.ndarray) -> np.ndarray:
    if values.dtype.kind == "f":
        return np.isnan(values)
    if values.dtype.kind in "iub":
        return np.zeros(len(values), dtype=bool)
    return np.array(
        [
            v is None
            or (isinstance(v, float) and math.isnan(v))
            or type(v).__name__ in ("NAType", "NaTType")
            for v in values
        ],
        dtype=bool,
    )


def _sorted_labels(labels) -> list:
    try:
        return sorted(labels)
    except TypeError:  # labels of several types: a stable order all the same
        return sorted(labels, key=lambda v: (type(v).__name__, str(v)))


def _kind_pandas(series) -> str:
    import pandas as pd

    dtype = series.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        return LABEL
    if pd.api.types.is_bool_dtype(dtype):
        return BOOL
    if pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_complex_dtype(dtype):
        return NUMBER
    return LABEL


def _kind_polars(series) -> str:
    import polars as pl

    if series.dtype == pl.Boolean:
        return BOOL
    if series.dtype.is_numeric():
        return NUMBER
    return LABEL


def _columns(X, container: str):
    """(name, kind, dtype, series) of each column of a frame."""
    kind_of = _kind_pandas if container == "pandas" else _kind_polars
    for name in X.columns:
        series = X[name]
        yield name, kind_of(series), series.dtype, series


def _as_objects(series, container: str) -> np.ndarray:
    if container == "polars":
        return series.to_numpy().astype(object)
    return series.astype(object).to_numpy()


def _as_floats(series, container: str) -> np.ndarray:
    if container == "polars":
        import polars as pl

        return series.cast(pl.Float64).to_numpy().astype(np.float64)
    return series.to_numpy(dtype=np.float64, na_value=np.nan)


@dataclass
class Table:
    """What fit learned of a data frame's columns: names, kinds, dtypes and labels.

    Only builtins, so that a saved model holds no pandas or polars object: dtypes by name.
    """

    container: str
    names: list
    kinds: list[str]
    dtypes: list[str]
    labels: dict[int, list] = field(default_factory=dict)

    @classmethod
    def learn(cls, X) -> Table:
        """The columns of frame X (the labels of label columns: in their order, or sorted)."""
        container = container_of(X)
        names, kinds, dtypes, labels = [], [], [], {}
        for j, (name, kind, dtype, series) in enumerate(_columns(X, container)):
            names.append(name)
            kinds.append(kind)
            dtypes.append(str(dtype))
            if kind != LABEL:
                continue
            values = _as_objects(series, container)
            present = list(dict.fromkeys(values[~_is_missing(values)].tolist()))
            declared = getattr(dtype, "categories", None)
            if declared is not None:  # pandas and polars enum categories keep their order
                declared = declared.tolist() if hasattr(declared, "tolist") else list(declared)
                present = [c for c in declared if c in set(present)]
            else:
                present = _sorted_labels(present)
            labels[j] = present
        return cls(container, names, kinds, dtypes, labels)

    def label_columns(self) -> list[int]:
        """Columns that hold labels: strings, categories, booleans."""
        return [j for j, kind in enumerate(self.kinds) if kind != NUMBER]

    def encode(self, X, unseen_columns=()) -> np.ndarray:
        """Frame X as floats: labels as positions, booleans as 0/1, missing entries NaN.

        A label fit never saw is an error, except in the label columns ``unseen_columns``,
        where it is coded ``UNSEEN``.
        """
        container = container_of(X)
        out = np.empty((X.shape[0], len(self.names)), dtype=np.float64)
        for j, name in enumerate(self.names):
            series = X[name]
            if self.kinds[j] == NUMBER:
                try:
                    out[:, j] = _as_floats(series, container)
                except (TypeError, ValueError) as exc:
                    raise ValueError(
                        f"Column {name!r} held numbers in fit but holds {series.dtype} values "
                        f"now ({exc})."
                    ) from None
                continue
            values = _as_objects(series, container)
            missing = _is_missing(values)
            known = self.known_labels(j)
            position = {label: k for k, label in enumerate(known)}
            codes = np.full(len(values), np.nan)
            for i in np.flatnonzero(~missing):
                code = position.get(values[i])
                if code is None and j in unseen_columns and self.kinds[j] == LABEL:
                    code = UNSEEN
                elif code is None:
                    raise ValueError(
                        f"Column {name!r} has the category {values[i]!r}, which was not seen "
                        f"in fit; its categories are {known}."
                    )
                codes[i] = code
            out[:, j] = codes
        return out

    def known_labels(self, j: int) -> list:
        """The labels of label column j in the order of their positions (False, True for bools)."""
        return self.labels.get(j, [False, True])

    def categories(self, j: int, values: list) -> list:
        """The user's labels of column j, given the model's category values (positions)."""
        if j not in self.labels:
            return [bool(v) for v in values] if self.kinds[j] == BOOL else values
        return [self.labels[j][int(v)] for v in values]

    def decode(self, X: np.ndarray, container: str, given=None):
        """The model's float output X as a frame of ``container`` in the user's columns.

        ``given``: the frame X was encoded from; its labels coded ``UNSEEN`` are kept.
        """
        columns = {}
        for j, name in enumerate(self.names):
            kept = None
            if given is not None and self.kinds[j] == LABEL and (X[:, j] == UNSEEN).any():
                kept = X[:, j] == UNSEEN, _as_objects(given[name], container)
            columns[name] = self._column(X[:, j], j, container, kept)
        if container == "polars":
            import polars as pl

            return pl.DataFrame(columns)
        import pandas as pd

        return pd.DataFrame(columns)

    def _column(self, values: np.ndarray, j: int, container: str, kept=None):
        missing = np.isnan(values)
        kind, dtype, known = self.kinds[j], self.dtypes[j], self.labels.get(j)
        if kind == NUMBER:
            data: Any = values
        elif kind == BOOL and j not in self.labels:
            data = (
                values.astype(bool)
                if not missing.any()
                else np.where(missing, None, values > 0.5).astype(object)
            )
        else:
            labels = np.array(self.labels[j] + [None], dtype=object)
            codes = np.where(missing, len(labels) - 1, np.nan_to_num(values)).astype(int)
            data = labels[codes]
            if kept is not None:  # labels fit never saw, as given (a dtype of labels takes them)
                rows, given = kept
                data[rows] = given[rows]
                known = known + [v for v in dict.fromkeys(given[rows]) if v not in known]
        fractions = kind == NUMBER and not np.all(values[~missing] == np.round(values[~missing]))
        if container == "polars":
            return _polars_series(data, dtype, known, self.names[j], fractions)
        return _pandas_series(data, dtype, known, missing, fractions)


def _polars_series(data, dtype: str, labels, name, fractions: bool):
    import polars as pl

    series = pl.Series(str(name), list(data) if data.dtype == object else data)
    kind = dtype.split("(")[0]
    target = pl.Enum(labels) if kind == "Enum" else getattr(pl, kind, None)
    if target is None or (fractions and target.is_integer()):
        return series  # fractions (unconstrained draws) do not fit an integer column
    try:
        return series.cast(target)
    except Exception:  # noqa: BLE001 (a dtype the values cannot take: keep them as read)
        return series


def _pandas_series(data, dtype: str, labels, missing: np.ndarray, fractions: bool):
    import pandas as pd

    series = pd.Series(data)
    if dtype == "category":
        return series.astype(pd.CategoricalDtype(labels))
    if dtype in ("bool",) or dtype.startswith(("int", "uint")):
        if missing.any() or fractions:
            return series  # NaN or fractions (unconstrained draws) do not fit a numpy int
    try:
        return series.astype(dtype)
    except (TypeError, ValueError):
        return series


#: Most decimals a column's grid may have; a column with more is drawn unrounded.
MAX_DECIMALS = 6


def _decimals(X: np.ndarray) -> np.ndarray:
    """Fewest decimals that hold each column's values (0: whole numbers), or -1: none do."""
    found = np.full(X.shape[1], -1)
    for d in range(MAX_DECIMALS, -1, -1):
        exact = np.all(np.abs(X - np.round(X, d)) <= 1e-9 * np.maximum(1.0, np.abs(X)), axis=0)
        found[exact] = d
    return found


@dataclass
class Ranges:
    """Per column of the model's data: training range, decimals, share missing, and the
    values themselves where there are at most ``FEW_VALUES`` of them (else None)."""

    low: np.ndarray
    high: np.ndarray
    decimals: np.ndarray
    missing_rate: np.ndarray
    n_rows: int
    values: list = field(default_factory=list)

    @classmethod
    def learn(cls, X) -> Ranges:
        if sp.issparse(X):
            return cls._learn_sparse(X)
        missing = np.isnan(X)
        low = np.where(missing, np.inf, X).min(axis=0, initial=np.inf)
        high = np.where(missing, -np.inf, X).max(axis=0, initial=-np.inf)
        decimals = _decimals(np.where(missing, 0.0, X))
        values = [_few_values(X[~missing[:, j], j]) for j in range(X.shape[1])]
        return cls(low, high, decimals, missing.mean(axis=0), X.shape[0], values)

    @classmethod
    def _learn_sparse(cls, X) -> Ranges:
        """From the stored entries a chunk at a time: no copy of X (no NaN in sparse X)."""
        X = X.tocsr() if X.format != "csr" else X
        n_columns = X.shape[1]
        low, high = np.full(n_columns, np.inf), np.full(n_columns, -np.inf)
        stored, fractional = np.zeros(n_columns), np.zeros(n_columns)
        step = 2**22
        for start in range(0, X.nnz, step):
            values = X.data[start : start + step]
            columns = X.indices[start : start + step]
            np.minimum.at(low, columns, values)
            np.maximum.at(high, columns, values)
            stored += np.bincount(columns, minlength=n_columns)
            whole = values == np.round(values)
            fractional += np.bincount(columns[~whole], minlength=n_columns)
        implicit = stored < X.shape[0]  # columns with implicit zeros
        low[implicit] = np.minimum(low[implicit], 0.0)
        high[implicit] = np.maximum(high[implicit], 0.0)
        decimals = np.where(fractional == 0, 0, -1)
        return cls(low, high, decimals, np.zeros(n_columns), X.shape[0])

    def update(self, X: np.ndarray) -> Ranges:
        """The ranges over the rows seen so far and X (partial_fit's blocks)."""
        new = Ranges.learn(X)
        n = self.n_rows + new.n_rows
        rate = (self.missing_rate * self.n_rows + new.missing_rate * new.n_rows) / max(n, 1)
        gridless = (self.decimals < 0) | (new.decimals < 0)
        none = [None] * len(self.low)
        values = [
            None if a is None or b is None else _few_values(np.concatenate([a, b]))
            for a, b in zip(self.values or none, new.values or none, strict=True)
        ]
        return Ranges(
            np.minimum(self.low, new.low),
            np.maximum(self.high, new.high),
            np.where(gridless, -1, np.maximum(self.decimals, new.decimals)),
            rate,
            n,
            values,
        )

    def round(self, X: np.ndarray) -> np.ndarray:
        """X's columns rounded to the decimals of their training values, in place; a column
        of a few values (binned ages, grades given as fractions) to the nearest of them."""
        for d in np.unique(self.decimals[self.decimals >= 0]):
            columns = self.decimals == d
            X[:, columns] = np.round(X[:, columns], int(d))
        for j, values in enumerate(self.values):
            if values:
                # The last value twice: a grid of one value still has two ends.
                grid = np.asarray(values + values[-1:], dtype=np.float64)
                right = np.clip(np.searchsorted(grid, X[:, j]), 1, len(grid) - 1)
                nearer = np.abs(X[:, j] - grid[right - 1]) <= np.abs(grid[right] - X[:, j])
                snapped = np.where(nearer, grid[right - 1], grid[right])
                X[:, j] = np.where(np.isnan(X[:, j]), X[:, j], snapped)
        return X


def _few_values(column: np.ndarray) -> list | None:
    """The sorted distinct values of a column if there are at most ``FEW_VALUES``."""
    values = np.unique(column)
    return values.tolist() if values.size <= FEW_VALUES else None
