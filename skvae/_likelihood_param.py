"""The ``likelihood`` parameter: a family, "auto", or a dict of families over X's columns.

Read here into what the module takes: a family, or parts with the columns each family
models, counted among the modelled columns (X's columns without the covariates).
"""

from __future__ import annotations

import warnings
from numbers import Integral

import numpy as np

from ._covariates import column_index
from ._family_data import infer_family, looks_like_identifier
from ._likelihoods import LIKELIHOODS, likelihood_class
from ._stacklevel import users_stacklevel
from ._tables import LABEL, NUMBER

__all__ = [
    "auto_likelihood",
    "check_label_families",
    "family_choice",
    "is_position",
    "likelihood_parts",
    "model_positions",
    "own_floors",
    "takes_option",
]


def likelihood_parts(likelihood, n_features: int, names=None):
    """A ``likelihood`` parameter as a family (name or class), or as parts with column indices.

    ``names``: the column names of X (``feature_names_in_``), for dicts that select by name.
    """
    if not isinstance(likelihood, dict):
        likelihood_class(likelihood)  # an unknown name raises here
        return likelihood
    owner, parts = {}, []
    for family, selection in likelihood.items():
        if family not in LIKELIHOODS:
            raise ValueError(
                f"Unknown family {family!r} in the likelihood dict; choose from "
                f"{sorted(LIKELIHOODS)}."
            )
        if isinstance(selection, str | Integral):
            selection = [selection]
        columns = []
        for column in selection:
            index = column_index(column, names, n_features, f"likelihood[{family!r}] column")
            if index in owner:
                raise ValueError(
                    f"Column {column!r} is given to both {owner[index]!r} and {family!r} in "
                    "the likelihood dict; each column needs exactly one family."
                )
            owner[index] = family
            columns.append(index)
        parts.append({"name": family, "columns": columns})
    left = sorted(set(range(n_features)) - set(owner))
    if left:
        shown = list(names[left]) if names is not None else left
        raise ValueError(
            f"The likelihood dict leaves columns {shown} without a family; every column "
            "needs exactly one."
        )
    return parts


def is_position(column) -> bool:
    return isinstance(column, Integral) and not isinstance(column, bool)


def model_positions(likelihood, model_columns: np.ndarray, n_features_in: int):
    """A likelihood dict's positions of X (as passed) as positions among the modelled columns.

    ``model_columns``: the positions in X of the columns the model sees (all but the
    covariates). Names and non-dict likelihoods are returned as they are.
    """
    model = [int(c) for c in model_columns]
    if not isinstance(likelihood, dict) or len(model) == n_features_in:
        return likelihood
    selections = {
        family: [columns] if isinstance(columns, str | Integral) else list(columns)
        for family, columns in likelihood.items()
    }
    given = [c for columns in selections.values() for c in columns]
    if all(map(is_position, given)) and sorted(given) == list(range(len(model))) != model:
        in_x = {family: [model[c] for c in columns] for family, columns in selections.items()}
        warnings.warn(
            "With covariates, positions in a likelihood dict count the columns of X as "
            "passed, as ColumnTransformer's do; positions among the modelled columns alone "
            f"are deprecated in 0.2 and stop working in 0.3. Write {in_x} instead.",
            FutureWarning,
            stacklevel=users_stacklevel(),
        )
        return likelihood
    where = {x: m for m, x in enumerate(model)}

    def moved(column):
        if not is_position(column):
            return column
        x = column_index(column, None, n_features_in, "likelihood column")
        if x not in where:
            raise ValueError(
                f"Column {column} of the likelihood dict is a covariate (covariates=...): a "
                "column is either modelled by a family or a covariate, not both."
            )
        return where[x]

    return {family: [moved(c) for c in columns] for family, columns in selections.items()}


def takes_option(likelihood, option: str) -> bool:
    """Whether a family of ``likelihood`` (a family, or parts) reads the estimator's ``option``."""
    parts = likelihood if isinstance(likelihood, list) else [{"name": likelihood}]
    return any(option in likelihood_class(part["name"]).options for part in parts)


def auto_likelihood(X: np.ndarray, names=None, kinds=None) -> dict:
    """``likelihood="auto"`` on X: each column's family, as a dict.

    ``kinds``: the columns' kinds in the user's frame (``_tables``): label columns are
    categorical and boolean ones Bernoulli; numbers get ``infer_family``'s choice.
    """
    families: dict = {}
    identifiers = []
    for j in range(X.shape[1]):
        column = j if names is None else str(names[j])
        kind = NUMBER if kinds is None else kinds[j]
        if kind in (NUMBER, LABEL) and looks_like_identifier(X[:, j], labels=kind == LABEL):
            identifiers.append(column)
        family = {NUMBER: None, LABEL: "categorical"}.get(kind, "bernoulli")
        families.setdefault(family or infer_family(X[:, j]), []).append(column)
    if identifiers:
        warnings.warn(
            f"Columns {identifiers} of X look like row identifiers: every row has its own "
            "value (labels, or consecutive whole numbers). A model learns nothing from "
            "them, and draws would repeat training rows' identifiers. Drop them before "
            "fitting, or give them a family in a likelihood dict; from skvae 0.3, "
            "likelihood='auto' refuses them.",
            FutureWarning,
            stacklevel=users_stacklevel(),
        )
    return families


def check_label_families(likelihood, kinds, names) -> None:
    """Raise when a column of labels (strings, categories) is given a numeric family."""
    labels = [j for j, kind in enumerate(kinds) if kind == LABEL]
    if not labels:
        return
    if isinstance(likelihood, list):
        wrong = [j for part in likelihood if part["name"] != "categorical" for j in part["columns"]
                 if j in labels]  # fmt: skip
        family = "a numeric family"
    else:
        wrong = [] if likelihood == "categorical" else labels
        family = f"likelihood={likelihood!r}"
    if wrong:
        shown = [names[j] for j in wrong] if names is not None else wrong
        raise ValueError(
            f"Columns {shown} of X hold labels (strings, categories), which {family} cannot "
            "model. Use likelihood='auto', or a likelihood dict that gives them "
            "'categorical'."
        )


def family_choice(parts, options: dict | None = None) -> list:
    """Families, columns and options of a likelihood: a config's, or parts' with ``options``."""
    if isinstance(parts, dict):
        parts = parts["parts"] if parts["name"] == "mixed" else [parts]
    elif not isinstance(parts, list):
        parts = [{"name": likelihood_class(parts).name}]
    chosen = []
    for part in parts:
        family = likelihood_class(part["name"])
        part = {**part, **{k: v for k, v in (options or {}).items() if k in family.options}}
        part["name"] = family.name
        chosen.append({k: part[k] for k in ("name", "columns", *family.options) if k in part})
    return chosen


def own_floors(config: dict) -> dict:
    """A likelihood config whose Gaussian columns each get a noise floor of their own.

    For a data frame: its columns are in units of their own (millimetres beside grams),
    so a floor relative to the largest variance would drown the smaller ones.
    """
    if config["name"] == "mixed":
        return {**config, "parts": [own_floors(part) for part in config["parts"]]}
    return {**config, "floor": "own"} if config["name"] == "gaussian" else config
