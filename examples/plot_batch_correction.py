"""Batch correction of sparse counts with covariates and a latent library size
===========================================================================

Single-cell counts come from several batches (runs, donors, labs) that each shift every
gene a little and are sequenced to their own depth. A code learned from such counts
sorts cells by batch as much as by type. Here the counts are simulated with a known
truth: 5 cell types in 3 batches, each batch multiplying every gene by its own
log-normal factor and with its own depth, negative binomial noise. X is a
``scipy.sparse`` CSR matrix of the counts with the batch label as its last column.

Two ``VAEEstimator(likelihood="negative_binomial", library_size="latent")`` models are
fitted, both with two latent dimensions: one on the counts alone, one with
``covariates=[batch column]``, which tells the encoder and the decoder the batch instead
of modelling it. With categorical covariates, the latent library's prior is each batch's.

Printed, for each model: how well the batch (chance is about 1/3: lower is better) and
the cell type (higher is better) are predicted from the code by a cross-validated vote of
each cell's 15 nearest neighbours, which sees a batch that forms its own cluster within a
type; and for the covariate model, the same from the batch-corrected values, every cell
decoded as if from batch 0 with ``inverse_transform(Z, covariates=...)``. The figure
shows both codes, coloured by batch and by cell type. ``benchmarks/bench_counts.py``
measures the same against scVI on more seeds.

Run from the repository root with ``python examples/plot_batch_correction.py`` (options:
``--out DIR`` for the figures, ``output/`` by default; ``--quick`` for a seconds-long run
on small settings, which is what the tests do).
"""

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from scipy import sparse  # noqa: E402
from scipy.special import softmax  # noqa: E402
from sklearn.model_selection import cross_val_score  # noqa: E402
from sklearn.neighbors import KNeighborsClassifier  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from skvae import VAEEstimator  # noqa: E402


def make_batches(n_cells, n_genes, random_state=0):
    """Sparse counts with the batch last, the batch and the type of each cell."""
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


def accuracies(features, batch, cell_type):
    """5-fold accuracy of a 15-nearest-neighbour vote predicting the batch and the type."""
    clf = make_pipeline(StandardScaler(), KNeighborsClassifier(15))
    return {
        "batch": float(cross_val_score(clf, features, batch, cv=5).mean()),
        "type": float(cross_val_score(clf, features, cell_type, cv=5).mean()),
    }


def main(quick=False, out_dir="output"):
    """Fit without and with the batch covariate, compare their codes, write a figure."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    n_cells, n_genes = (300, 50) if quick else (2000, 300)
    X, batch, cell_type = make_batches(n_cells, n_genes)
    # A fit stops after 10 epochs without a gain: each keeps the epoch a longer wait keeps.
    settings = {"hidden_layer_sizes": (16,), "max_iter": 20} if quick else {"n_iter_no_change": 10}
    params = dict(likelihood="negative_binomial", library_size="latent", random_state=0)

    plain = VAEEstimator(2, **params, **settings).fit(X[:, :n_genes])
    corrected = VAEEstimator(2, covariates=[n_genes], **params, **settings).fit(X)
    codes = {
        "counts alone": plain.transform(X[:, :n_genes]),
        "covariates=[batch]": corrected.transform(X),
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

    path = out_dir / "batch_correction.png"
    fig, axes = plt.subplots(2, 2, figsize=(7, 6.5), layout="constrained")
    for row, (name, Z) in enumerate(codes.items()):
        for column, (labels, what) in enumerate([(batch, "batch"), (cell_type, "type")]):
            ax = axes[row, column]
            ax.scatter(*Z.T, c=labels, cmap="tab10", vmin=0, vmax=9, s=4, alpha=0.7)
            accuracy = results[name][what]
            ax.set_title(f"{name}: by {what} (accuracy {accuracy:.2f})", fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
    fig.savefig(path, dpi=100)
    plt.close(fig)
    print(f"wrote {path}")
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("--out", default="output", help="directory of the figures")
    parser.add_argument("--quick", action="store_true", help="small settings, for tests")
    args = parser.parse_args()
    main(quick=args.quick, out_dir=args.out)
