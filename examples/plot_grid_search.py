"""Choosing n_components and the likelihood with GridSearchCV, by held-out log-likelihood
======================================================================================

The 1,797 digits of scikit-learn, with grey levels scaled to [0, 1], are modelled by a VAE
in a Pipeline (pixels that never vary in a training fold are dropped first, since a
density on a constant pixel says more about the variance floor than about the digits).
GridSearchCV tries every n_components in a list with two likelihoods and scores each by
``score``: the mean held-out log-likelihood per image, estimated with the
importance-weighted bound, on 3 folds.

Which likelihoods can be compared this way? Only densities with densities on the same
support and in the same units (see the user guide's page "Likelihoods, and which scores
compare"). Here both are densities on [0, 1]: "gaussian" (a normal density around
the decoder mean) and "continuous_bernoulli" (a density made for values in [0, 1]).
"bernoulli" would not be comparable: on grey levels its score is a cross-entropy, not a
normalised density. To compare families of different kinds, score what the model is for
instead, e.g. a classifier on its codes (the user guide shows how).

Printed: the ``cv_results_`` table (mean and standard deviation over the folds of the
held-out log-likelihood, its rank, and the fit time); the figure plots the mean held-out
score against n_components for each likelihood, with the fold-to-fold standard deviation.

Run from the repository root with ``python examples/plot_grid_search.py`` (about a minute
on 2 idle cores: 24 fits on 2 processes; options: ``--out DIR`` for the figure,
``output/`` by default; ``--quick`` for a seconds-long run on small settings, which is
what the tests do).
"""

import argparse
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.feature_selection import VarianceThreshold  # noqa: E402
from sklearn.model_selection import GridSearchCV  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402

from skvae import VAEEstimator  # noqa: E402

LIKELIHOODS = ["gaussian", "continuous_bernoulli"]


def print_table(cv_results):
    """The columns of cv_results_ that matter here, best first (pandas not needed)."""
    order = np.argsort(cv_results["rank_test_score"], kind="stable")
    print(
        f"{'likelihood':<22}{'n_components':>12}{'mean score':>12}{'std':>7}{'rank':>6}"
        f"{'fit (s)':>9}"
    )
    for i in order:
        params = cv_results["params"][i]
        print(
            f"{params['vaeestimator__likelihood']:<22}"
            f"{params['vaeestimator__n_components']:>12}"
            f"{cv_results['mean_test_score'][i]:>12.2f}"
            f"{cv_results['std_test_score'][i]:>7.2f}"
            f"{cv_results['rank_test_score'][i]:>6}"
            f"{cv_results['mean_fit_time'][i]:>9.1f}"
        )


def main(quick=False, out_dir="output"):
    """Run the search, print the table, write the figure; return the scores."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    X, _ = load_digits(return_X_y=True)
    X = X / 16.0  # grey levels 0..16 to [0, 1], the support of continuous_bernoulli
    # Stop when the held-out ELBO gains less than 0.05 nats per image in 10 epochs.
    vae = VAEEstimator(max_iter=1000, tol=0.05, n_iter_no_change=10, random_state=0)
    n_components, n_jobs = [2, 4, 8, 16], 2
    if quick:
        X = X[:300]
        vae.set_params(hidden_layer_sizes=(16,), max_iter=5)
        # One process: starting workers would take longer than these tiny fits.
        n_components, n_jobs = [2, 4], 1
    grid = GridSearchCV(
        make_pipeline(VarianceThreshold(), vae),
        {"vaeestimator__n_components": n_components, "vaeestimator__likelihood": LIKELIHOODS},
        cv=3,
        n_jobs=n_jobs,
        refit=False,  # the scores are what is compared: no model of the best setting is needed
    )
    start = time.perf_counter()
    grid.fit(X)
    seconds = time.perf_counter() - start
    print(
        f"digits scaled to [0, 1]: {X.shape[0]} images, {len(grid.cv_results_['params'])} "
        f"settings x 3 folds in {seconds:.0f} s"
    )
    print("held-out log-likelihood per image (nats, higher is better), over the 3 folds:")
    print_table(grid.cv_results_)
    best = grid.best_params_
    print(
        f"best: likelihood={best['vaeestimator__likelihood']!r}, "
        f"n_components={best['vaeestimator__n_components']}, "
        f"{grid.best_score_:.2f} nats per image"
    )

    results = grid.cv_results_
    fig, ax = plt.subplots(figsize=(6, 4.2), layout="constrained")
    for likelihood in LIKELIHOODS:
        rows = [
            i
            for i, params in enumerate(results["params"])
            if params["vaeestimator__likelihood"] == likelihood
        ]
        ax.errorbar(
            [results["params"][i]["vaeestimator__n_components"] for i in rows],
            results["mean_test_score"][rows],
            yerr=results["std_test_score"][rows],
            marker="o",
            capsize=3,
            label=likelihood,
        )
    ax.set_xscale("log", base=2)
    ax.set_xticks(n_components, [str(n) for n in n_components])
    ax.set(
        xlabel="n_components",
        ylabel="held-out log-likelihood per image (nats)",
        title="GridSearchCV on digits in [0, 1], 3 folds",
    )
    ax.legend(title="likelihood")
    path = out_dir / "grid_search_digits.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    print(f"wrote {path}")
    return {"best_score": grid.best_score_, "mean_test_score": results["mean_test_score"]}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("--out", default="output", help="directory of the figure")
    parser.add_argument("--quick", action="store_true", help="small settings, for tests")
    args = parser.parse_args()
    main(quick=args.quick, out_dir=args.out)
