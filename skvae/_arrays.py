"""Arrays between the user and the model: devices, rescaling, dense rows, seeds."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

__all__ = ["MAX_SEED", "check_missing", "dense", "log_det", "rescale", "resolve_device"]

MAX_SEED = np.iinfo(np.int32).max
# Elements per temporary tensor in batched work: bounds memory whatever the number of rows.
INFERENCE_ELEMENTS = 2**21


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
    step = max(1, INFERENCE_ELEMENTS // max(1, X.shape[1]))
    for start in range(0, X.shape[0], step):
        out[start : start + step] = (X[start : start + step] - loc) / scale
    return out


def dense(X) -> np.ndarray:
    return X.toarray() if sp.issparse(X) else X


def check_missing(X: np.ndarray, columns: bool, rows: bool = True, unseen: bool = False) -> bool:
    """Whether X has missing values (NaN); raise when a row, or a column, has none observed.

    ``columns``: check columns too (when fit learns each column's location and scale);
    ``rows``: check rows (the imputer fills a row with nothing observed by itself);
    ``unseen``: X's NaN include values the model could not use (say so of an empty row).
    """
    if sp.issparse(X):
        return False  # a sparse X has no NaN (``check_sparse_input``)
    isnan = np.isnan(X)
    if not isnan.any():
        return False
    empty_rows = np.flatnonzero(isnan.all(axis=1)) if rows else np.zeros(0, dtype=int)
    if empty_rows.size:
        more = f", and {empty_rows.size - 1} more rows too" if empty_rows.size > 1 else ""
        if unseen:
            raise ValueError(
                f"Row {empty_rows[0]} of X has no value the model can use{more}: those it "
                "has were not seen in fit, or are outside their family's range (see the "
                "warning). Drop such rows: the model has nothing to condition on."
            )
        raise ValueError(
            f"Row {empty_rows[0]} of X has no observed value (all NaN){more}. Drop rows "
            "with nothing observed: the model has nothing to condition on."
        )
    empty_columns = np.flatnonzero(isnan.all(axis=0))
    if columns and empty_columns.size:
        raise ValueError(
            f"Column {empty_columns[0]} of X has no observed value (all NaN) in the training "
            "data; the model cannot learn anything about it. Drop that column."
        )
    return True
