"""Outlier detection on the digits with VAEOutlierDetector, and why a row was flagged
==================================================================================

The inliers are the zeros of scikit-learn's 8x8 digits; the outliers, the other digits.
``VAEOutlierDetector`` is fitted on training rows of which a tenth are outliers, with
``contamination=0.1``, as ``IsolationForest`` is; both then judge held-out rows made of
unseen zeros and a tenth of other digits. The script prints each detector's ROC-AUC on
the held-out rows and the share of them it flagged, and draws two figures:

- the held-out rows' ``decision_function``, inliers and outliers apart: negative is an
  outlier, and the threshold is at 0;
- the three held-out rows the detector found least likely, each beside its per-pixel
  log-likelihood terms (``score_features``): the pixels in dark red are the ones the
  model found least likely given the rest of the image, which is where such a digit
  departs from a zero.

``benchmarks/bench_outliers.py`` measures the same on more tasks and seeds, and against
PyOD's detectors.

Run from the repository root with ``python examples/plot_outliers.py`` (options:
``--out DIR`` for the figures, ``output/`` by default; ``--quick`` for a seconds-long run
on small settings, which is what the tests do).
"""

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.ensemble import IsolationForest  # noqa: E402
from sklearn.metrics import roc_auc_score  # noqa: E402

from skvae import VAEOutlierDetector  # noqa: E402


def fit_and_explain(X_train, X_new, **params):
    """Fit the detector, label new rows, and explain the least likely of them."""
    detector = VAEOutlierDetector(contamination=0.1, random_state=0, **params)
    detector.fit(X_train)  # the training rows may hold outliers: a tenth here
    labels = detector.predict(X_new)  # -1 outlier, 1 inlier
    decision = detector.decision_function(X_new)  # negative for outliers
    worst = np.argsort(decision)[:3]  # the three least likely rows
    terms = detector.score_features(X_new[worst])  # log p(x_j | z) per feature
    return detector, labels, decision, worst, terms


def main(quick=False, out_dir="output"):
    """Fit on contaminated zeros, judge held-out rows, write two figures."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    X, y = load_digits(return_X_y=True)
    rng = np.random.default_rng(0)
    zeros, others = X[y == 0], X[y != 0]
    zeros, others = zeros[rng.permutation(len(zeros))], others[rng.permutation(len(others))]
    X_train = np.vstack([zeros[:120], others[:13]])  # 10% outliers
    X_new = np.vstack([zeros[120:], others[13:20]])  # 58 unseen zeros, 7 other digits
    is_outlier = np.r_[np.zeros(len(zeros) - 120), np.ones(7)]
    params = {"hidden_layer_sizes": (16,), "max_iter": 20} if quick else {}

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

    paths = [out_dir / "outliers_decision.png", out_dir / "outliers_features.png"]
    fig, ax = plt.subplots(figsize=(6.5, 3.5), layout="constrained")
    bins = np.linspace(decision.min(), decision.max(), 40)
    ax.hist(decision[is_outlier == 0], bins=bins, alpha=0.7, label="unseen zeros")
    ax.hist(decision[is_outlier == 1], bins=bins, alpha=0.7, label="other digits")
    ax.axvline(0, color="black", linestyle="--", label="threshold (offset_)")
    ax.set_xlabel("decision_function (nats above the threshold)")
    ax.set_ylabel("held-out rows")
    ax.legend()
    fig.savefig(paths[0], dpi=100)
    plt.close(fig)

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
    fig.savefig(paths[1], dpi=100)
    plt.close(fig)
    for path in paths:
        print(f"wrote {path}")
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("--out", default="output", help="directory of the figures")
    parser.add_argument("--quick", action="store_true", help="small settings, for tests")
    args = parser.parse_args()
    main(quick=args.quick, out_dir=args.out)
