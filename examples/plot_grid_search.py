"""Choosing n_components and the likelihood with GridSearchCV, by held-out log-likelihood
======================================================================================

The 1,797 digits of scikit-learn, with grey levels scaled to [0, 1], are modelled by a VAE
in a Pipeline. GridSearchCV tries every n_components (the number of latent dimensions) in
a list with two likelihoods and scores each by ``score``: the mean held-out
log-likelihood per image, on 3 folds.

Which likelihoods can be compared this way? Only densities with densities on the same
support and in the same units (see the user guide's page "Likelihoods, and which scores
compare"). Here both are densities on [0, 1]: "gaussian" (a normal density around
the decoder mean) and "continuous_bernoulli" (a density made for values in [0, 1]).
"bernoulli" would not be comparable: on grey levels its score is a cross-entropy, not a
normalised density. To compare families of different kinds, score what the model is for
instead, e.g. a classifier on its codes (the user guide shows how).

Run from the repository root with ``python examples/plot_grid_search.py`` (about a minute
on 2 idle cores: 24 fits on 2 processes; options: ``--out DIR`` for the figure,
``output/`` by default; ``--quick`` for a seconds-long run on small settings, which is
what the tests do).
"""

# %%
# Settings
# --------
#
# As a program, the script takes two options: ``--out DIR``, the directory its figure is
# written to, and ``--quick``, small settings that run in seconds (the tests use them). The
# gallery runs it with no option: the full settings, the figure in ``output/``.

import argparse
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits
from sklearn.feature_selection import VarianceThreshold
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline

from skvae import VAEEstimator

parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
parser.add_argument("--out", default="output", help="directory of the figure")
parser.add_argument("--quick", action="store_true", help="small settings, for tests")
args = parser.parse_args()
out_dir = Path(args.out)
out_dir.mkdir(parents=True, exist_ok=True)

# %%
# The digits, and the VAE to tune
# -------------------------------
#
# The grey levels run from 0 to 16; divided by 16 they lie in [0, 1]. Each fit stops early
# when the held-out ELBO (the evidence lower bound, the quantity a VAE maximises: a lower
# bound on the log-likelihood) stops improving. The search runs 2 fits at a time on the
# full settings.

X, _ = load_digits(return_X_y=True)
X = X / 16.0  # grey levels 0..16 to [0, 1], the support of continuous_bernoulli
# Stop when the held-out ELBO gains less than 0.05 nats per image in 10 epochs.
vae = VAEEstimator(max_iter=1000, tol=0.05, n_iter_no_change=10, random_state=0)
n_components, n_jobs = [2, 4, 8, 16], 2
if args.quick:
    X = X[:300]
    vae.set_params(hidden_layer_sizes=(16,), max_iter=5)
    # One process: starting workers would take longer than these tiny fits.
    n_components, n_jobs = [2, 4], 1

# %%
# The search
# ----------
#
# In the Pipeline, ``VarianceThreshold`` first drops the pixels that never vary in a
# training fold, since a density on a constant pixel says more about the variance floor
# than about the digits. The score of a fitted pipeline on a held-out fold is its mean
# log-likelihood per image in nats (units of the natural logarithm), estimated with the
# importance-weighted bound, a tighter estimate than the ELBO.
#
# Printed: the ``cv_results_`` table, best first: for each setting, the mean and standard
# deviation over the folds of the held-out log-likelihood, its rank, and the fit time.

LIKELIHOODS = ["gaussian", "continuous_bernoulli"]


def print_table(cv_results):
    """Print the columns of cv_results_ that matter here, best first (pandas not needed).

    Parameters
    ----------
    cv_results : dict
        The ``cv_results_`` of a fitted GridSearchCV over the pipeline.
    """
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

# %%
# The held-out score against n_components
# ---------------------------------------
#
# One line per likelihood: the mean held-out score of each n_components, with error bars
# of one standard deviation from fold to fold. Where the line flattens, more latent
# dimensions no longer model the digits better.

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
print(f"wrote {path}")
