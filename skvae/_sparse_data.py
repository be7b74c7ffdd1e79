"""Sparse X (scipy.sparse matrices and arrays): kept sparse, densified a batch of rows at a time.

Counts from single-cell assays and bag-of-words matrices are mostly zeros and come as
``scipy.sparse`` matrices. The estimator keeps such an X in CSR form and never builds its
dense copy: the trainer densifies (and rescales) the rows of one minibatch at a time,
inference a chunk of rows at a time, and what fit learns from X (location and scale, the
totals' model, the domain check) is computed from the non-zero entries.

Missing values cannot be marked in a sparse X (an absent entry is a zero), and families
that learn something per category or per part of a mixed likelihood need a dense X.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
from sklearn.utils.sparsefuncs import mean_variance_axis
from torch import Tensor

from . import _sparse_layer
from ._likelihoods import Likelihood, likelihood_class
from ._sparse_layer import SparseInputs

__all__ = ["SPARSE_FAMILIES", "SparseData", "check_sparse_input", "prepare_sparse_likelihood"]

#: The families a sparse X may have: one value per column, no categories, no parts.
SPARSE_FAMILIES = (
    "gaussian",
    "bernoulli",
    "continuous_bernoulli",
    "poisson",
    "negative_binomial",
    "zero_inflated_negative_binomial",
    "multinomial",
)


def _family_name(likelihood) -> str | None:
    if isinstance(likelihood, dict | list) or likelihood in ("auto", "mixed"):
        return None
    return likelihood_class(likelihood).name


def check_sparse_input(X, likelihood) -> None:
    """Raise ValueError when a sparse X cannot be used as it is with ``likelihood``.

    ``likelihood``: the parameter, a family's name or class, or a fitted ``Likelihood``.
    """
    name = likelihood.name if isinstance(likelihood, Likelihood) else _family_name(likelihood)
    if name not in SPARSE_FAMILIES:
        shown = "a dict or 'auto'" if name is None else repr(name)
        raise ValueError(
            f"Sparse X is supported with one family among {list(SPARSE_FAMILIES)}, not "
            f"with likelihood={shown}: pass X.toarray() (a dense X) instead."
        )
    if any(np.isnan(chunk).any() for chunk in _chunks(X.data)):
        raise ValueError(
            "Sparse X holds NaN: in a sparse matrix an absent entry is a zero, not a "
            "missing value, so missing values need a dense X (X.toarray())."
        )


#: Values per chunk in passes over a sparse X's values: bounds the temporaries.
_CHUNK = 2**22


def _chunks(values: np.ndarray):
    for start in range(0, len(values), _CHUNK):
        yield values[start : start + _CHUNK]


def _check_values(check, X) -> None:
    """Run a domain check on the stored values of X, a chunk at a time."""
    for chunk in _chunks(X.data):
        check(chunk[None, :])


def _row_totals(X: sp.csr_matrix) -> np.ndarray:
    return np.asarray(X.sum(axis=1), dtype=np.float64).ravel()


def _real_scaling(X, covariance_type: str) -> tuple[np.ndarray, np.ndarray]:
    """The ``Real`` domain's location and scale, from the sparse X's column moments."""
    mean, var = mean_variance_axis(X if X.dtype == np.float64 else X.astype(np.float64), axis=0)
    std = np.sqrt(var)
    constant = std == 0
    biggest = std.max()
    if biggest == 0:
        return mean, np.ones(X.shape[1])
    if covariance_type == "spherical":
        return mean, np.full(X.shape[1], np.sqrt(np.mean((std / biggest) ** 2)) * biggest)
    return mean, np.where(constant, biggest, std)


def prepare_sparse_likelihood(X, likelihood, covariance_type="diag"):
    """``prepare_likelihood`` for a sparse X: the same config, loc and scale, kept sparse.

    Every supported family's domain check reads the values only (an absent entry, 0, is
    in every domain), and the multinomial's totals model reads the row totals only.
    """
    check_sparse_input(X, likelihood)
    cls = likelihood_class(likelihood)
    settings = {"covariance_type": covariance_type} if "covariance_type" in cls.options else {}
    if cls.name == "multinomial":
        _check_values(cls.check_domain, X)
        # A one-column matrix of the totals has the same totals as X.
        settings.update(cls.learn(_row_totals(X)[:, None], **settings))
    _check_values(lambda values: cls.check_domain(values, **settings), X)
    if cls.name == "gaussian":
        loc, scale = _real_scaling(X, covariance_type)
    else:
        loc, scale = np.zeros(X.shape[1]), np.ones(X.shape[1])
    return {"name": cls.name, **settings, "loc": loc.tolist(), "scale": scale.tolist()}, loc, scale


def validate_sparse(likelihood: Likelihood, X) -> None:
    """``likelihood.validate`` for a sparse X: its family's domain, checked on the values."""
    check_sparse_input(X, likelihood)
    _check_values(likelihood.validate, X)


def dense_rows(X, start: int, stop: int) -> np.ndarray:
    """Rows ``start:stop`` of X as a dense float64 array, whether X is sparse or not."""
    chunk = X[start:stop]
    return chunk.toarray().astype(np.float64, copy=False) if sp.issparse(chunk) else chunk


class SparseData:
    """The training rows of a sparse X for the trainer, which reads them as a tensor.

    It answers the calls the trainer makes on its data: ``len``, ``shape``,
    ``index_select(0, rows)`` and slices, which give dense float32 tensors of the rows
    rescaled by ``(x - loc) / scale``; an index array gives the ``SparseData`` of those
    rows (the validation split); ``to(device)`` says where sliced batches go.
    """

    def __init__(self, X, loc, scale, device=None) -> None:
        # Kept as given (CSR from validate_data): no copy, batches are made float32.
        self.matrix = X if X.format == "csr" else X.tocsr()
        self.loc = np.asarray(loc, dtype=np.float32)
        self.scale = np.asarray(scale, dtype=np.float32)
        self.centred = bool(np.any(self.loc) or np.any(self.scale != 1))
        self.device = device

    def __len__(self) -> int:
        return self.matrix.shape[0]

    @property
    def shape(self) -> tuple[int, int]:
        return self.matrix.shape

    def _dense(self, rows) -> Tensor:
        dense = self.matrix[rows].toarray().astype(np.float32, copy=False)
        if self.centred:
            dense = (dense - self.loc) / self.scale
        out = torch.from_numpy(np.ascontiguousarray(dense, dtype=np.float32))
        return out if self.device is None else out.to(self.device)

    def index_select(self, dim: int, rows: Tensor) -> Tensor:
        if dim != 0:
            raise ValueError("SparseData selects rows only.")
        return self._dense(np.asarray(rows))

    def __getitem__(self, rows):
        if isinstance(rows, slice):
            return self._dense(rows)
        subset = SparseData(self.matrix[np.asarray(rows)], self.loc, self.scale, self.device)
        return subset

    def to(self, device, non_blocking: bool = False) -> SparseData:
        return SparseData(self.matrix, self.loc, self.scale, device)

    def encoder_inputs(self, likelihood: Likelihood) -> SparseInputs | None:
        """The ``SparseInputs`` of the rows, read off the CSR without densifying it.

        The supported families' encoder inputs are elementwise maps that keep 0 at 0
        (the identity, log(1 + x)); centred data is dense, and gets None.
        """
        X, n_inputs = self.matrix, likelihood.n_inputs
        if self.centred or n_inputs < _sparse_layer.MIN_SPARSE_INPUTS or X.shape[0] == 0:
            return None
        if not X.has_canonical_format or any((c == 0).any() for c in _chunks(X.data)):
            X = X.copy()  # sorted, without duplicates or stored zeros, as the layer reads
            X.sum_duplicates()
            X.eliminate_zeros()
        if X.nnz > _sparse_layer.MAX_SPARSE_DENSITY * X.shape[0] * n_inputs:
            return None

        @torch.no_grad()
        def transform(values: np.ndarray) -> np.ndarray:
            return likelihood.encoder_input(torch.from_numpy(values)[None, :])[0].numpy()

        # X's own values are kept, not a transformed copy: batches transform theirs.
        binary = all((transform(c) == 1).all() for c in _chunks(X.data))
        return SparseInputs(
            X.indptr.astype(np.int64),
            X.indices.astype(np.int32, copy=False),
            None if binary else X.data,
            n_inputs,
            transform,
        )
