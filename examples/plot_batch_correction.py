"""Batch correction of sparse counts with covariates and a latent library size
===========================================================================

Single-cell counts come from several batches (runs, donors, labs) that each shift every
gene a little and are sequenced to their own depth. A code learned from such counts
sorts cells by batch as much as by type. Here the counts are simulated with a known
truth, and two VAEs are compared: one that models the counts alone, and one that is told
each cell's batch as a covariate, so that its code is left to describe the cell type.

``benchmarks/bench_counts.py`` measures the same against scVI on more seeds.

Run from the repository root with ``python examples/plot_batch_correction.py`` (options:
``--out DIR`` for the figures, ``output/`` by default; ``--quick`` for a seconds-long run
on small settings, which is what the tests do).
"""

# %%
# Settings
# --------
#
# As a program, the script takes two options: ``--out DIR``, the directory its figure is
# written to, and ``--quick``, small settings that run in seconds (the tests use them). The
# gallery runs it with no option: the full settings, the figure in ``output/``.

import argparse
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from scipy import sparse
from scipy.special import softmax
from sklearn.model_selection import cross_val_score
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skvae import VAEEstimator

parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
parser.add_argument("--out", default="output", help="directory of the figures")
parser.add_argument("--quick", action="store_true", help="small settings, for tests")
args = parser.parse_args()
out_dir = Path(args.out)
out_dir.mkdir(parents=True, exist_ok=True)

# %%
# Simulated counts: 5 cell types in 3 batches
# -------------------------------------------
#
# Each cell has a type and a batch. Its expected counts follow from its type through a
# small random network; each batch then multiplies every gene by its own log-normal factor
# and has its own sequencing depth (the total count of a cell), and the counts are drawn
# with negative binomial noise (a Poisson whose rate is itself random, so more spread than
# a Poisson). ``X`` is a ``scipy.sparse`` CSR matrix (compressed sparse rows: only the
# non-zero counts are stored) with the batch label as its last column.


def make_batches(n_cells, n_genes, random_state=0):
    """Sparse counts with the batch last, the batch and the type of each cell.

    Parameters
    ----------
    n_cells : int
        Number of cells (rows).
    n_genes : int
        Number of genes (count columns, before the batch column).
    random_state : int, default=0
        Seed of the simulation.

    Returns
    -------
    X : scipy.sparse.csr_matrix of shape (n_cells, n_genes + 1)
        The counts, then the batch label.
    batch : ndarray of shape (n_cells,)
        The batch of each cell, 0, 1 or 2.
    cell_type : ndarray of shape (n_cells,)
        The type of each cell, 0 to 4.
    """
    rng = np.random.default_rng(random_state)
    cell_type = rng.integers(0, 5, n_cells)
    batch = rng.integers(0, 3, n_cells)
    centres = rng.normal(scale=1.5, size=(5, 3))
    z = centres[cell_type] + 0.4 * rng.normal(size=(n_cells, 3))
    logits = np.tanh(z @ rng.normal(size=(3, 16))) @ rng.normal(size=(16, n_genes))
    logits += rng.normal(size=n_genes) + rng.normal(scale=1.0, size=(3, n_genes))[batch]
    depth = np.array([500.0, 1000.0, 2000.0])[batch] * rng.lognormal(0, 0.3, n_cells)
    mean = depth[:, None] * softmax(logits, axis=1)
    counts = rng.poisson(rng.gamma(5.0, mean / 5.0))  # negative binomial, theta = 5
    X = sparse.hstack([sparse.csr_matrix(counts), batch[:, None]], format="csr")
    return X.astype(np.float64), batch, cell_type


n_cells, n_genes = (300, 50) if args.quick else (2000, 300)
X, batch, cell_type = make_batches(n_cells, n_genes)

# %%
# Two VAEs: without and with the batch as a covariate
# ---------------------------------------------------
#
# Both are ``VAEEstimator(likelihood="negative_binomial", library_size="latent")`` with two
# latent dimensions. ``library_size="latent"`` models each cell's depth as a latent
# variable of its own, so that the code describes the shares of the genes rather than the
# total. The first model sees the counts alone; the second gets ``covariates=[batch
# column]``, which tells the encoder and the decoder the batch instead of modelling it. With
# categorical covariates, the latent library's prior is each batch's.

# A fit stops after 10 epochs without a gain: each keeps the epoch a longer wait keeps.
settings = (
    {"hidden_layer_sizes": (16,), "max_iter": 20} if args.quick else {"n_iter_no_change": 10}
)
params = dict(likelihood="negative_binomial", library_size="latent", random_state=0)

plain = VAEEstimator(2, **params, **settings).fit(X[:, :n_genes])
corrected = VAEEstimator(2, covariates=[n_genes], **params, **settings).fit(X)
codes = {
    "counts alone": plain.transform(X[:, :n_genes]),
    "covariates=[batch]": corrected.transform(X),
}

# %%
# How much of the batch and of the type each code keeps
# -----------------------------------------------------
#
# A cross-validated vote of each cell's 15 nearest neighbours predicts the batch and the
# cell type from a code; it notices a batch that forms its own cluster within a type. For
# the batch, lower is better (chance is about 1/3); for the type, higher is better. The
# covariate model is also judged on its batch-corrected values: every cell decoded as if
# from batch 0 with ``inverse_transform(Z, covariates=...)``, as the log of each gene's
# share of the cell's counts.


def accuracies(features, batch, cell_type):
    """5-fold accuracy of a 15-nearest-neighbour vote predicting the batch and the type.

    Parameters
    ----------
    features : array-like of shape (n_cells, n_features)
        What the vote sees of each cell.
    batch, cell_type : ndarray of shape (n_cells,)
        The two labels to predict.

    Returns
    -------
    dict
        The mean accuracy over the folds, under ``"batch"`` and ``"type"``.
    """
    clf = make_pipeline(StandardScaler(), KNeighborsClassifier(15))
    return {
        "batch": float(cross_val_score(clf, features, batch, cv=5).mean()),
        "type": float(cross_val_score(clf, features, cell_type, cv=5).mean()),
    }


results = {name: accuracies(Z, batch, cell_type) for name, Z in codes.items()}
# Every cell decoded as if sequenced in batch 0: its expected counts there.
as_batch_0 = corrected.inverse_transform(codes["covariates=[batch]"], covariates=[0])
shares = as_batch_0[:, :n_genes] / as_batch_0[:, :n_genes].sum(axis=1, keepdims=True)
results["decoded as batch 0"] = accuracies(np.log(shares), batch, cell_type)

print(f"{n_cells} cells x {n_genes} genes, 3 batches x 5 types; CSR X, batch last")
print(f"{'features':>22} {'batch accuracy':>15} {'type accuracy':>14}")
for name, r in results.items():
    print(f"{name:>22} {r['batch']:>15.3f} {r['type']:>14.3f}")
print(f"(chance for the batch: {np.bincount(batch).max() / n_cells:.3f})")

# %%
# Both codes, coloured by batch and by cell type
# ----------------------------------------------
#
# One row per model, one point per cell, with the accuracies above in the titles. What to
# look at: whether the batches (left column) form clusters of their own or mix within
# each type's cluster, and whether the types (right column) stay apart.

fig, axes = plt.subplots(2, 2, figsize=(7, 6.5), layout="constrained")
for row, (name, Z) in enumerate(codes.items()):
    for column, (labels, what) in enumerate([(batch, "batch"), (cell_type, "type")]):
        ax = axes[row, column]
        ax.scatter(*Z.T, c=labels, cmap="tab10", vmin=0, vmax=9, s=4, alpha=0.7)
        accuracy = results[name][what]
        ax.set_title(f"{name}: by {what} (accuracy {accuracy:.2f})", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
path = out_dir / "batch_correction.png"
fig.savefig(path, dpi=100)
print(f"wrote {path}")
