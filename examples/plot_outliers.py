"""Outlier detection on the digits with VAEOutlierDetector, and why a row was flagged
==================================================================================

The inliers are the zeros of scikit-learn's 8x8 digits; the outliers, the other digits.
``VAEOutlierDetector`` is fitted on training rows of which a tenth are outliers, with
``contamination=0.1``, as ``IsolationForest`` is; both then judge held-out rows made of
unseen zeros and a tenth of other digits. The detector flags the rows its VAE finds least
likely, and says which pixels made a row unlikely.

``benchmarks/bench_outliers.py`` measures the same on more tasks and seeds, and against
PyOD's detectors.

Run from the repository root with ``python examples/plot_outliers.py`` (options:
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
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits
from sklearn.ensemble import IsolationForest
from sklearn.metrics import roc_auc_score

from skvae import VAEOutlierDetector

parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
parser.add_argument("--out", default="output", help="directory of the figures")
parser.add_argument("--quick", action="store_true", help="small settings, for tests")
args = parser.parse_args()
out_dir = Path(args.out)
out_dir.mkdir(parents=True, exist_ok=True)

# %%
# Contaminated training rows, and held-out rows to judge
# ------------------------------------------------------
#
# The training rows are 120 zeros and 13 other digits: a tenth of them are outliers, which
# the detectors are not told apart. The held-out rows are the remaining 58 zeros, which
# neither detector has seen, and 7 other digits.

X, y = load_digits(return_X_y=True)
rng = np.random.default_rng(0)
zeros, others = X[y == 0], X[y != 0]
zeros, others = zeros[rng.permutation(len(zeros))], others[rng.permutation(len(others))]
X_train = np.vstack([zeros[:120], others[:13]])  # 10% outliers
X_new = np.vstack([zeros[120:], others[13:20]])  # 58 unseen zeros, 7 other digits
is_outlier = np.r_[np.zeros(len(zeros) - 120), np.ones(7)]
params = {"hidden_layer_sizes": (16,), "max_iter": 20} if args.quick else {}

# %%
# Both detectors on the held-out rows
# -----------------------------------
#
# ``contamination=0.1`` is the share of outliers a detector expects among its training
# rows: it places the threshold so that a tenth of them fall below it. ``predict`` labels a
# row -1 (outlier) or 1 (inlier); ``decision_function`` is the row's log-likelihood under
# the VAE minus that threshold (``offset_``), in nats (units of the natural logarithm), so
# negative means outlier. ``fit_and_explain`` also picks the three least likely rows and
# their per-feature terms, explained further down.
#
# Printed: each detector's ROC-AUC on the held-out rows (the chance that an outlier is
# ranked less likely than an inlier: 1 is a perfect ranking, 0.5 a coin toss) and the
# share of the rows it flagged, beside the true share of outliers.


def fit_and_explain(X_train, X_new, **params):
    """Fit the detector, label new rows, and explain the least likely of them.

    Parameters
    ----------
    X_train : ndarray of shape (n_train, n_features)
        Training rows, outliers among them.
    X_new : ndarray of shape (n_new, n_features)
        Rows to judge.
    **params
        Further parameters of ``VAEOutlierDetector``.

    Returns
    -------
    detector : VAEOutlierDetector
        The fitted detector.
    labels : ndarray of shape (n_new,)
        -1 for an outlier, 1 for an inlier.
    decision : ndarray of shape (n_new,)
        ``decision_function(X_new)``: negative for outliers.
    worst : ndarray of shape (3,)
        The indices of the three least likely new rows.
    terms : ndarray of shape (3, n_features)
        Their log-likelihood terms per feature, from ``score_features``.
    """
    detector = VAEOutlierDetector(contamination=0.1, random_state=0, **params)
    detector.fit(X_train)  # the training rows may hold outliers: a tenth here
    labels = detector.predict(X_new)  # -1 outlier, 1 inlier
    decision = detector.decision_function(X_new)  # negative for outliers
    worst = np.argsort(decision)[:3]  # the three least likely rows
    terms = detector.score_features(X_new[worst])  # log p(x_j | z) per feature
    return detector, labels, decision, worst, terms


detector, labels, decision, worst, terms = fit_and_explain(X_train, X_new, **params)
forest = IsolationForest(contamination=0.1, random_state=0).fit(X_train)
results = {
    "VAEOutlierDetector": {
        "roc_auc": roc_auc_score(is_outlier, -decision),
        "flagged": float(np.mean(labels == -1)),
    },
    "IsolationForest": {
        "roc_auc": roc_auc_score(is_outlier, -forest.score_samples(X_new)),
        "flagged": float(np.mean(forest.predict(X_new) == -1)),
    },
}
print(f"{len(X_train)} training rows (13 of them not zeros), {len(X_new)} held-out rows")
print(f"{'detector':>20} {'ROC-AUC':>8} {'flagged':>8}")
for name, r in results.items():
    print(f"{name:>20} {r['roc_auc']:>8.3f} {r['flagged']:>8.1%}")
print(f"(true share of outliers among the held-out rows: {is_outlier.mean():.1%})")

# %%
# Where the held-out rows fall against the threshold
# --------------------------------------------------
#
# The held-out rows' ``decision_function``, inliers and outliers apart: negative is an
# outlier, and the threshold is the dashed line at 0. The further apart the two
# histograms, the better the detector ranks the rows.

fig, ax = plt.subplots(figsize=(6.5, 3.5), layout="constrained")
bins = np.linspace(decision.min(), decision.max(), 40)
ax.hist(decision[is_outlier == 0], bins=bins, alpha=0.7, label="unseen zeros")
ax.hist(decision[is_outlier == 1], bins=bins, alpha=0.7, label="other digits")
ax.axvline(0, color="black", linestyle="--", label="threshold (offset_)")
ax.set_xlabel("decision_function (nats above the threshold)")
ax.set_ylabel("held-out rows")
ax.legend()
path = out_dir / "outliers_decision.png"
fig.savefig(path, dpi=100)
print(f"wrote {path}")

# %%
# Why a row was flagged
# ---------------------
#
# ``score_features`` splits a row's log-likelihood into one term per feature,
# log p(x_j | z): how likely pixel j is given the latent code z the encoder found for the
# image. Top row: the three held-out rows the detector found least likely, with their
# decision values. Bottom row: their per-pixel terms. The pixels in dark red are the ones
# the model found least likely given the rest of the image, which is where such a digit
# departs from a zero. ``fit_and_explain`` above computed both.

fig, axes = plt.subplots(2, 3, figsize=(7, 5), layout="constrained")
for column, (row, row_terms) in enumerate(zip(worst, terms, strict=True)):
    axes[0, column].imshow(X_new[row].reshape(8, 8), cmap="gray_r")
    axes[0, column].set_title(f"decision {decision[row]:.0f}")
    image = axes[1, column].imshow(row_terms.reshape(8, 8), cmap="Reds_r")
    fig.colorbar(image, ax=axes[1, column], shrink=0.8)
axes[1, 0].set_ylabel("log p(pixel | z)")
for ax in axes.ravel():
    ax.set_xticks([])
    ax.set_yticks([])
path = out_dir / "outliers_features.png"
fig.savefig(path, dpi=100)
print(f"wrote {path}")
