"""Overdispersed counts: a Poisson VAE against a negative binomial VAE, and the truth
==================================================================================

Counts are often overdispersed: they spread far more than a Poisson distribution of the
same mean allows. This is the kind of data of gene expression counts, page views or
species abundances. Here the counts come from a known process with two latent variables,
so every fitted model can be checked against it.

Two VAEs with two latent dimensions are fitted to 75% of the rows: likelihood="poisson"
and likelihood="negative_binomial". Both scores are log-probabilities of the same counts,
so they can be compared, and with the true log-probability of the held-out rows too,
computed by integrating the two latent variables out on a fine grid.

Run from the repository root with ``python examples/plot_count_data.py`` (options:
``--out DIR`` for the figures, ``output/`` by default; ``--quick`` for a seconds-long run
on small settings, which is what the tests do).
"""

# %%
# Settings
# --------
#
# As a program, the script takes two options: ``--out DIR``, the directory its figures are
# written to, and ``--quick``, small settings that run in seconds (the tests use them). The
# gallery runs it with no option: the full settings, figures in ``output/``.

import argparse
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import NullFormatter, ScalarFormatter
from scipy.special import gammaln, logsumexp
from sklearn.linear_model import LinearRegression
from sklearn.model_selection import train_test_split

from skvae import VAEEstimator
from skvae.plotting import LatentSpaceDisplay

parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
parser.add_argument("--out", default="output", help="directory of the figures")
parser.add_argument("--quick", action="store_true", help="small settings, for tests")
args = parser.parse_args()
out_dir = Path(args.out)
out_dir.mkdir(parents=True, exist_ok=True)

# A fit stops after 10 epochs without a gain: both curves are flat by then.
n_samples, step, settings = 3000, 0.05, {"max_iter": 1000, "n_iter_no_change": 10}
if args.quick:
    n_samples, step = 400, 0.2
    settings = {"hidden_layer_sizes": (16,), "max_iter": 5}

# %%
# The process: two latent variables, 40 negative binomial counts
# --------------------------------------------------------------
#
# For each of 3,000 rows, z ~ N(0, I_2), and each of 40 counts is negative binomial with
# mean exp(b_j + 1.5 * w_j . tanh(z)) and inverse dispersion theta = 2: its variance is
# mu + mu^2 / theta, far more than a Poisson's variance mu. The rows are split into 75%
# for training and 25% held out.

THETA = 2.0


def make_counts(n_samples, n_features=40, random_state=0):
    """Counts from the two-latent-variable process.

    Parameters
    ----------
    n_samples : int
        Number of rows.
    n_features : int, default=40
        Number of counts per row.
    random_state : int, default=0
        Seed of the draws.

    Returns
    -------
    X : ndarray of shape (n_samples, n_features)
        The counts, as floats.
    z : ndarray of shape (n_samples, 2)
        The latent variables of each row.
    params : tuple of ndarray
        The weights, of shape (2, n_features), and the offsets, of shape (n_features,).
    """
    rng = np.random.RandomState(random_state)
    weights = rng.normal(scale=0.6, size=(2, n_features))
    offsets = rng.uniform(0.5, 2.5, size=n_features)
    z = rng.standard_normal((n_samples, 2))
    mean = np.exp(offsets + 1.5 * np.tanh(z) @ weights)
    # A negative binomial is a Poisson whose rate is gamma distributed.
    rate = rng.gamma(THETA, mean / THETA)
    return rng.poisson(rate).astype(np.float64), z, (weights, offsets)


X, z, params = make_counts(n_samples)
X_train, X_test, z_train, z_test = train_test_split(X, z, test_size=0.25, random_state=0)
print(
    f"{X.shape[1]} counts per row from 2 latent variables: {len(X_train)} training and "
    f"{len(X_test)} held-out rows, mean count {X.mean():.1f}"
)

# %%
# The true log-likelihood of the held-out rows
# --------------------------------------------
#
# The probability of a row under the process, p(x), is the average of p(x | z) over the
# prior of z. With two latent variables, that integral is a sum over a fine grid of z;
# its log, in nats (units of the natural logarithm), is the best score any model of these
# counts can reach on average.


def true_log_likelihood(X, params, step=0.05, limit=5.0):
    """log p(x) of the process, integrating z over [-limit, limit]^2 on a grid.

    The prior puts a mass of about 1e-6 outside the square, and the grid is several
    points per posterior standard deviation: halving the step changes the mean by less
    than 1e-6 nats.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Counts.
    params : tuple of ndarray
        The weights and offsets that ``make_counts`` returns.
    step : float, default=0.05
        Spacing of the grid along each latent variable.
    limit : float, default=5.0
        Half the width of the square the grid covers.

    Returns
    -------
    ndarray of shape (n_samples,)
        The log-probability of each row, in nats.
    """
    weights, offsets = params
    axis = np.arange(-limit, limit + step / 2, step)
    Z = np.stack(np.meshgrid(axis, axis, indexing="ij"), axis=-1).reshape(-1, 2)
    log_prior = -0.5 * (Z**2).sum(axis=1) - np.log(2 * np.pi) + 2 * np.log(step)
    log_mean = offsets + 1.5 * np.tanh(Z) @ weights  # (grid points, features)
    log_theta_mean = np.logaddexp(np.log(THETA), log_mean)
    # log NB(x | mean, theta), split into what depends on x alone and a matrix product.
    per_point = (THETA * (np.log(THETA) - log_theta_mean)).sum(axis=1) + log_prior
    slope = log_mean - log_theta_mean
    per_row = (gammaln(X + THETA) - gammaln(THETA) - gammaln(X + 1)).sum(axis=1)
    out = np.empty(len(X))
    for start in range(0, len(X), 250):
        rows = slice(start, start + 250)
        out[rows] = logsumexp(X[rows] @ slope.T + per_point, axis=1) + per_row[rows]
    return out


truth = true_log_likelihood(X_test, params, step=step)
print(f"held-out log-likelihood per row (nats):\n  true process        {truth.mean():9.2f}")

# %%
# A Poisson VAE and a negative binomial VAE
# -----------------------------------------
#
# Both have two latent dimensions, as the process has. ``score_samples`` estimates each
# held-out row's log-likelihood under the model; printed is its mean, below the truth's:
# the closer, the better the model of the counts.

models, scores, results = {}, {}, {"true": truth.mean()}
for likelihood in ["poisson", "negative_binomial"]:
    vae = VAEEstimator(n_components=2, likelihood=likelihood, random_state=0, **settings)
    start = time.perf_counter()
    vae.fit(X_train)
    seconds = time.perf_counter() - start
    models[likelihood] = vae
    scores[likelihood] = vae.score_samples(X_test)
    results[likelihood] = scores[likelihood].mean()
    print(
        f"  {likelihood:<18} {results[likelihood]:9.2f}   ({vae.n_iter_} epochs, {seconds:.0f} s)"
    )

# %%
# The learned dispersion
# ----------------------
#
# The negative binomial model learns one inverse dispersion theta per count column. The
# process used theta = 2 for all of them. Printed: the median of the learned ones and
# their range, beside the true 2.

theta = np.exp(models["negative_binomial"].module_.likelihood.log_theta.detach().numpy())
print(
    f"learned inverse dispersion theta: median {np.median(theta):.2f} "
    f"(from {theta.min():.2f} to {theta.max():.2f}; true {THETA:g})"
)

# %%
# How well the codes recover the true latent variables
# ----------------------------------------------------
#
# A VAE's code of a row is the mean of its posterior, the distribution of z given the
# row. The code may be any rotation or bending of the true z, so a linear regression maps
# the training codes to the true tanh(z); its R^2 on the held-out rows (the share of the
# variance of tanh(z) it explains: 1 is perfect) says how much of the truth the codes hold.

print("recovery of the true latent variables, held-out R^2 of tanh(z) on the codes:")
for likelihood, vae in models.items():
    codes_train, codes_test = vae.transform(X_train), vae.transform(X_test)
    regression = LinearRegression().fit(codes_train, np.tanh(z_train))
    results[f"{likelihood}_r2"] = regression.score(codes_test, np.tanh(z_test))
    print(f"  {likelihood:<18} {results[f'{likelihood}_r2']:.3f}")

# %%
# How spread out the counts drawn from each model are
# ---------------------------------------------------
#
# The variance-to-mean ratio of a count column is 1 for Poisson counts and larger for
# overdispersed ones. Printed: its median over the columns, in the held-out data and in
# as many rows drawn from each model with ``sample``.


def dispersion(X):
    """Median over the features of variance / mean: 1 for Poisson counts.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Counts.

    Returns
    -------
    float
        The median ratio.
    """
    return float(np.median(X.var(axis=0) / X.mean(axis=0)))


draws = {name: vae.sample(len(X_test), random_state=0) for name, vae in models.items()}
print("variance / mean of the counts (median over the features):")
print(f"  held-out data      {dispersion(X_test):6.2f}")
for likelihood, sample in draws.items():
    print(f"  {likelihood:<18} {dispersion(sample):6.2f}   (draws from the model)")

# %%
# The latent spaces, coloured by the true latent variables
# --------------------------------------------------------
#
# One row per model: the held-out rows at their codes, coloured by the true z1 (left) and
# z2 (right). A code that holds the truth shows smooth colour gradients.

fig, axes = plt.subplots(2, 2, figsize=(10, 8), layout="constrained")
for row, (likelihood, vae) in zip(axes, models.items(), strict=True):
    for ax, k in zip(row, range(2), strict=True):
        display = LatentSpaceDisplay.from_estimator(vae, X_test, z_test[:, k], ax=ax, s=6)
        display.colorbar_.set_label(f"true z{k + 1}")
        ax.set_title(f"{likelihood}: coloured by the true z{k + 1}")
fig.suptitle("Held-out rows in the learned 2-D latent spaces")
path = out_dir / "count_latent_spaces.png"
fig.savefig(path, dpi=100)
print(f"wrote {path}")

# %%
# The mean-variance relation, and each row's score against the truth
# ------------------------------------------------------------------
#
# Left: one point per count column, its variance against its mean, in the held-out data
# and in the draws of each model; Poisson counts lie on the dotted line. Right: one point
# per held-out row, each model's ``score_samples`` against the true log-probability; a
# perfect model lies on the dotted line.

fig, (ax_var, ax_score) = plt.subplots(1, 2, figsize=(11, 4.6), layout="constrained")
sets = {"held-out data": X_test, **{f"{k} draws": v for k, v in draws.items()}}
for (label, counts), marker in zip(sets.items(), "os^", strict=True):
    ax_var.scatter(counts.mean(axis=0), counts.var(axis=0), marker=marker, label=label)
means = np.concatenate([counts.mean(axis=0) for counts in sets.values()])
limits = np.array([means.min(), means.max()])
ax_var.plot(limits, limits, "k:", label="variance = mean (Poisson)")
ax_var.set(xscale="log", yscale="log", xlabel="mean count", ylabel="variance")
ax_var.xaxis.set_major_formatter(ScalarFormatter())
ax_var.xaxis.set_minor_formatter(NullFormatter())  # 2x10^0, 3x10^0, ... overlap
ax_var.set_title("One point per feature")
ax_var.legend()
for likelihood in models:
    ax_score.scatter(truth, scores[likelihood], s=6, label=likelihood)
ends = np.array([truth.min(), truth.max()])
ax_score.plot(ends, ends, "k:", label="estimate = truth")
ax_score.set(
    xlabel="true log p(x) (nats)",
    ylabel="model's estimate: score_samples (nats)",
    title="One point per held-out row",
)
ax_score.legend()
path = out_dir / "count_fit.png"
fig.savefig(path, dpi=100)
print(f"wrote {path}")
