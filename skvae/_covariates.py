"""Covariates: columns of X that condition the encoder and the decoder instead of being modelled.

A batch label, a donor, a sequencing depth measured outside the counts: the model sees
them on both sides and does not spend its likelihood (or its latent code) on them, as
scvi-tools' ``batch_key`` and covariate keys work. ``VAEEstimator(covariates=...)``
names the columns, by index or DataFrame name, as categorical (one-hot inside; the levels
are learned in fit) or continuous (standardised with the training mean and deviation).
"""

from __future__ import annotations

from numbers import Integral

import numpy as np

__all__ = ["CovariateEncoder", "column_index", "covariate_columns", "decoding_values"]

KINDS = ("categorical", "continuous")


def column_index(column, names, n_features: int, what: str = "Covariate") -> int:
    """The index of a column of X named by index or name; ``what`` names it in errors."""
    if isinstance(column, str):
        if names is None or column not in names:
            where = "X has no column names" if names is None else "it is not a column of X"
            raise ValueError(f"{what} {column!r}: {where}.")
        return int(np.flatnonzero(np.asarray(names) == column)[0])
    if isinstance(column, Integral) and not isinstance(column, bool):
        if -n_features <= column < n_features:
            return int(column) % n_features
    raise ValueError(
        f"{what} {column!r} is not a column of X, which has {n_features} columns: use "
        f"indices 0 to {n_features - 1} or names."
    )


def covariate_columns(covariates, n_features: int, names=None) -> dict[str, list[int]]:
    """The ``covariates`` parameter as column indices by kind (the batch keys).

    A column, or a list of them, is categorical; a dict maps "categorical" and
    "continuous" to columns.
    """
    if covariates is None:
        return {}
    if not isinstance(covariates, dict):
        covariates = {"categorical": covariates}
    unknown = sorted(set(covariates) - set(KINDS))
    if unknown:
        raise ValueError(
            f"covariates has keys {unknown}; a dict maps 'categorical' and 'continuous' to "
            "columns of X."
        )
    seen: set[int] = set()
    spec = {}
    for kind in KINDS:
        selection = covariates.get(kind, [])
        if isinstance(selection, str | Integral):
            selection = [selection]
        columns = [column_index(c, names, n_features) for c in selection]
        if seen.intersection(columns) or len(set(columns)) < len(columns):
            raise ValueError("covariates names a column twice; each may appear once.")
        seen.update(columns)
        if columns:
            spec[kind] = columns
    if len(seen) >= n_features:
        raise ValueError(
            f"covariates names all {n_features} columns of X, which leaves nothing to model."
        )
    return spec


class CovariateEncoder:
    """What the model sees of the covariate columns, learned from the training rows.

    Categorical columns become one-hot indicators of the levels seen in fit (any numbers:
    codes, 0/1, years); continuous columns are standardised.
    """

    def __init__(self, names=None) -> None:
        self.names = names  # the covariate columns' names for messages, by kind

    def fit(self, covariates: dict[str, np.ndarray]) -> CovariateEncoder:
        categorical = covariates.get("categorical", np.empty((0, 0)))
        self.categories_ = [np.unique(c) for c in categorical.T]
        continuous = covariates.get("continuous")
        if continuous is not None:
            self.mean_ = continuous.mean(axis=0)
            std = continuous.std(axis=0)
            self.scale_ = np.where(std > 0, std, 1.0)
        return self

    def _name(self, kind: str, j: int) -> str:
        names = (self.names or {}).get(kind)
        return repr(names[j]) if names is not None else f"{j} of the {kind} ones"

    def transform(self, covariates: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        # Keys of other kinds (a subclass's own covariate columns) are taken as they are.
        out = {k: v for k, v in covariates.items() if k not in KINDS}
        if "categorical" in covariates:
            blocks = []
            for j, (values, levels) in enumerate(
                zip(covariates["categorical"].T, self.categories_, strict=True)
            ):
                codes = np.searchsorted(levels, values).clip(0, len(levels) - 1)
                unseen = levels[codes] != values
                if unseen.any():
                    raise ValueError(
                        f"Covariate {self._name('categorical', j)} has the level "
                        f"{values[unseen][0].item()!r}, not seen in fit, where its levels were "
                        f"{levels.tolist()}. The model has learned nothing about it."
                    )
                blocks.append(np.eye(len(levels))[codes])
            out["categorical"] = np.hstack(blocks)
        if "continuous" in covariates:
            out["continuous"] = (covariates["continuous"] - self.mean_) / self.scale_
        return out


def decoding_values(values, spec: dict[str, list[int]], n_rows: int, names=None):
    """The covariate values at which to decode ``n_rows`` rows, by kind (raw, as in X).

    ``values``: a dict mapping each covariate column (index or name) to a value or an
    array of ``n_rows`` values; or an array-like of one value per covariate column, or of
    shape (n_rows, n_covariates), with the columns in their order in X.
    """
    order = sorted(c for columns in spec.values() for c in columns)
    if isinstance(values, dict):
        n_features = max(order) + 1 if names is None else len(names)
        given = {column_index(column, names, n_features): v for column, v in values.items()}
        missing = [c for c in order if c not in given]
        extra = [c for c in given if c not in order]
        if missing or extra:
            shown = (lambda cs: [names[c] for c in cs]) if names is not None else list
            raise ValueError(
                f"covariates must give a value for each covariate column, {shown(order)}; "
                + (f"missing {shown(missing)}" if missing else f"{shown(extra)} are not ones")
                + "."
            )
        table = np.column_stack(
            [np.broadcast_to(np.asarray(given[c], dtype=np.float64), (n_rows,)) for c in order]
        )
    else:
        table = np.asarray(values, dtype=np.float64)
        if table.ndim <= 1:
            table = np.broadcast_to(table.reshape(1, -1), (n_rows, table.size))
        if table.shape != (n_rows, len(order)):
            raise ValueError(
                f"covariates has shape {np.shape(values)}; give one value per covariate "
                f"column ({len(order)}), or an array of shape ({n_rows}, {len(order)})."
            )
    position = {c: i for i, c in enumerate(order)}
    return {kind: table[:, [position[c] for c in columns]] for kind, columns in spec.items()}
