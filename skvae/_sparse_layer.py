"""Sparse encoder inputs: a first layer that adds up weight rows instead of multiplying zeros.

Binary images, counts and one-hot categories are mostly zeros. When at most a quarter of
the encoder's inputs are non-zero, the trainer keeps the training rows' non-zero entries
(CSR, built once per fit) and the first encoder layer computes its output, and its weight
gradient, with one ``F.embedding_bag`` each over those entries only: work in proportion
to the non-zeros instead of to the width. The result equals the dense product up to the
order of float32 sums (tests compare losses, gradients and whole fits). What it buys is
measured by ``benchmarks/bench_fit.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

__all__ = ["InputLinear", "SparseInputs", "SparseRows", "sparse_linear"]

#: The sparse path is taken when at most this fraction of the training rows' encoder
#: inputs is non-zero and there are at least ``MIN_SPARSE_INPUTS`` of them: below that
#: width the dense product is cheap already.
MAX_SPARSE_DENSITY = 0.25
MIN_SPARSE_INPUTS = 64


class SparseRows(NamedTuple):
    """The non-zero encoder inputs of a batch, by row and by column.

    Both halves are in the form ``F.embedding_bag`` reads: a flat index list and the
    offset where each bag starts. Values are None when every one is 1 (binary data). The
    by-column half is needed for the weight gradient only (None for inference).
    """

    columns: Tensor  # the input of each entry, row after row
    row_offsets: Tensor  # (n_rows,) where each row's entries start in ``columns``
    values: Tensor | None
    rows: Tensor | None  # the row of each entry, input after input
    column_offsets: Tensor | None  # (n_inputs,) where each input's entries start in ``rows``
    column_values: Tensor | None


class InputLinear(nn.Module):
    """The encoder's first affine layer, with its weight stored input-major.

    ``weight`` has shape (in_features, out_features), one contiguous row per input, so that
    the sparse path reads a row per non-zero input and the optimizer's fused step sees a
    contiguous tensor. The initial values are ``nn.Linear``'s, from the same random numbers.
    """

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        init = nn.Linear(in_features, out_features)
        self.weight = nn.Parameter(init.weight.detach().t().contiguous())
        self.bias = nn.Parameter(init.bias.detach().clone())

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight.t(), self.bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}"


class _SparseInputLinear(torch.autograd.Function):
    """An affine layer of inputs given only as their non-zero entries (``SparseRows``).

    The output sums the weight rows of each row's non-zero inputs; the gradient of each
    input's weight row sums the output gradients of the rows where it is non-zero. The
    inputs are data: no gradient flows to them.
    """

    @staticmethod
    def forward(ctx, sparse: SparseRows, weight: Tensor, bias: Tensor) -> Tensor:
        ctx.sparse = sparse
        values = None if sparse.values is None else sparse.values.to(weight.dtype)
        out = F.embedding_bag(
            sparse.columns, weight, sparse.row_offsets, mode="sum", per_sample_weights=values
        )
        return out + bias

    @staticmethod
    def backward(ctx, grad: Tensor):
        sparse = ctx.sparse
        grad_weight = None
        if ctx.needs_input_grad[1]:
            values = sparse.column_values
            grad_weight = F.embedding_bag(
                sparse.rows,
                grad,
                sparse.column_offsets,
                mode="sum",
                per_sample_weights=None if values is None else values.to(grad.dtype),
            )
        grad_bias = grad.sum(0) if ctx.needs_input_grad[2] else None
        return None, grad_weight, grad_bias


def sparse_linear(sparse: SparseRows, layer: InputLinear) -> Tensor:
    """``layer`` applied to the inputs whose non-zero entries ``sparse`` holds."""
    return _SparseInputLinear.apply(sparse, layer.weight, layer.bias)


class SparseInputs:
    """The non-zero encoder inputs of the training rows, row by row (CSR), for one fit.

    ``epoch`` fixes an order of rows for one epoch; ``batch`` gathers the entries of a run
    of rows of it, with the by-input order the weight gradient needs. Entries are gathered
    a batch at a time, so the temporaries are in proportion to a batch, not to the data.
    With ``transform``, ``values`` are the data's own values (a sparse X's, not copied) and
    the encoder's inputs are ``transform(values)``, computed for each batch.
    """

    def __init__(
        self,
        row_starts: np.ndarray,
        columns: np.ndarray,
        values: np.ndarray | None,
        n_inputs: int,
        transform: Callable[[np.ndarray], np.ndarray] | None = None,
    ) -> None:
        self.n_inputs = n_inputs
        # The first layer's width: wider than n_inputs when dense extras (covariates) follow.
        self.width = n_inputs
        self.row_starts = row_starts  # (n_rows + 1,) int64
        self.columns = columns  # (n_non_zero,) int32
        self.values = values  # (n_non_zero,), or None when every input is 1
        self.transform = transform

    @classmethod
    @torch.no_grad()
    def build(cls, encoder_input, X: Tensor, n_inputs: int, chunk: int = 4096):
        """The CSR of ``encoder_input(rows of X)``, or None when it is not sparse enough."""
        if n_inputs < MIN_SPARSE_INPUTS or X.shape[0] == 0:
            return None
        counts, columns, values = [], [], []
        for start in range(0, X.shape[0], chunk):
            inputs = encoder_input(X[start : start + chunk]).cpu()
            rows, cols = inputs.nonzero(as_tuple=True)
            if start == 0 and len(cols) > MAX_SPARSE_DENSITY * inputs.numel():
                return None  # dense already in the first rows: no full pass
            counts.append(torch.bincount(rows, minlength=inputs.shape[0]))
            columns.append(cols.to(torch.int32))
            values.append(inputs[rows, cols].float())
        columns, values = torch.cat(columns), torch.cat(values)
        if columns.numel() > MAX_SPARSE_DENSITY * X.shape[0] * n_inputs:
            return None
        row_starts = torch.zeros(X.shape[0] + 1, dtype=torch.int64)
        torch.cumsum(torch.cat(counts), 0, out=row_starts[1:])
        binary = bool((values == 1).all())
        return cls(
            row_starts.numpy(), columns.numpy(), None if binary else values.numpy(), n_inputs
        )

    def epoch(self, rows: Tensor) -> np.ndarray:
        """The order of rows of one epoch, in the form ``batch`` reads."""
        return np.asarray(rows, dtype=np.int64)

    def _gather(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
        """The entries of ``rows`` in that order: (columns, values, starts).

        ``starts`` (len(rows) + 1) gives where each row's entries begin.
        """
        first = self.row_starts[rows]
        lengths = self.row_starts[rows + 1] - first
        starts = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(lengths, out=starts[1:])
        positions = np.repeat(first - starts[:-1], lengths) + np.arange(starts[-1])
        values = None
        if self.values is not None:
            values = self.values[positions]
            if self.transform is not None:
                values = self.transform(values)
            values = values.astype(np.float32, copy=False)
        return self.columns[positions], values, starts

    def batch(self, epoch: np.ndarray, start: int, stop: int, device) -> SparseRows:
        """The ``SparseRows`` of rows ``start:stop`` of an ``epoch``, on ``device``.

        The by-input order comes from a stable sort of the entries' inputs; numpy's radix
        sort on int16, and numpy's calls on arrays this small, cost less than torch's.
        """
        columns, values, starts = self._gather(epoch[start:stop])
        rows = np.repeat(np.arange(len(starts) - 1, dtype=np.int32), np.diff(starts))
        narrow = np.int16 if self.n_inputs <= np.iinfo(np.int16).max else np.int32
        order = np.argsort(columns.astype(narrow), kind="stable")
        column_offsets = np.zeros(self.width, dtype=np.int32)
        np.cumsum(np.bincount(columns, minlength=self.width)[:-1], out=column_offsets[1:])
        parts = (
            columns,
            starts[:-1].astype(np.int32),
            values,
            rows[order],
            column_offsets,
            None if values is None else values[order],
        )
        return SparseRows(*(None if a is None else torch.from_numpy(a).to(device) for a in parts))

    def rows(self, rows: Tensor, device) -> SparseRows:
        """The entries of ``rows`` by row only: enough for a forward pass without grad."""
        columns, values, starts = self._gather(np.asarray(rows, dtype=np.int64))
        parts = (columns, starts[:-1].astype(np.int32), values)
        tensors = (None if a is None else torch.from_numpy(a).to(device) for a in parts)
        return SparseRows(*tensors, None, None, None)
