"""Filling missing pixels of the digits with VAEImputer, beside scikit-learn's imputers
====================================================================================

A fifth of the pixels of scikit-learn's 8x8 digits (scaled to [0, 1]) are removed
completely at random. ``VAEImputer`` fills each gap from a VAE fitted on the incomplete
images; ``SimpleImputer``, ``KNNImputer`` and ``IterativeImputer`` fill the same gaps.

``benchmarks/bench_impute.py`` measures the same over several seeds, a
missing-not-at-random pattern and two tabular data sets; the VAE settings here are that
benchmark's for the digits.

Run from the repository root with ``python examples/plot_imputation.py`` (options:
``--out DIR`` for the figure, ``output/`` by default; ``--quick`` for a seconds-long run
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
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits
from sklearn.experimental import enable_iterative_imputer  # noqa: F401
from sklearn.impute import IterativeImputer, KNNImputer, SimpleImputer

from skvae import VAEEstimator, VAEImputer

parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
parser.add_argument("--out", default="output", help="directory of the figure")
parser.add_argument("--quick", action="store_true", help="small settings, for tests")
args = parser.parse_args()
out_dir = Path(args.out)
out_dir.mkdir(parents=True, exist_ok=True)

# %%
# Digits with a fifth of their pixels removed
# -------------------------------------------
#
# Each pixel is removed with probability 0.2, whatever its value or its neighbours':
# missing completely at random. The removed values are kept aside to score the fills.

X = load_digits().data / 16.0
if args.quick:
    X = X[:300]
rng = np.random.default_rng(0)
missing = rng.uniform(size=X.shape) < 0.2
X_missing = np.where(missing, np.nan, X)

# %%
# Four imputers on the same gaps
# ------------------------------
#
# - ``SimpleImputer`` fills a gap with its column's mean;
# - ``KNNImputer``, with the mean of that pixel in the 5 most similar images;
# - ``IterativeImputer`` predicts each column from the others with a regression, in turns;
# - ``VAEImputer`` fits a VAE on the incomplete images (the missing pixels are left out of
#   the likelihood) and fills each gap with its conditional mean under the model: the
#   pixel's expected value given the observed pixels, computed by self-normalised
#   importance sampling (a weighted average of the decoder's outputs at latent points
#   drawn for the image, each weighted by how well it explains the observed pixels).
#
# Printed: the RMSE (root mean squared error) of each on the removed pixels, in grey
# levels of [0, 1], and the time it took.

vae_settings = (
    {"n_components": 4, "hidden_layer_sizes": (32,), "max_iter": 20}
    if args.quick
    else {
        "n_components": 20,
        "hidden_layer_sizes": (256, 256),
        "covariance_type": "spherical",
        "max_iter": 500,
        "n_iter_no_change": 30,
    }
)
imputers = {
    "mean (SimpleImputer)": SimpleImputer(),
    "KNNImputer": KNNImputer(),
    "IterativeImputer": IterativeImputer(max_iter=3 if args.quick else 10, random_state=0),
    "VAEImputer": VAEImputer(
        VAEEstimator(kl_warmup_iter=10, **vae_settings), n_estimators=1, random_state=0
    ),
}
print(
    f"digits in [0, 1]: {X.shape[0]} images, {missing.mean():.1%} of the pixels removed at random"
)
print(f"{'imputer':<22} {'RMSE on the removed pixels':>27} {'time':>7}")
filled, results = {}, {}
for name, imputer in imputers.items():
    start = time.perf_counter()
    filled[name] = imputer.fit_transform(X_missing)
    seconds = time.perf_counter() - start
    results[name] = float(np.sqrt(np.mean((filled[name][missing] - X[missing]) ** 2)))
    print(f"{name:<22} {results[name]:27.4f} {seconds:6.1f}s")

# %%
# A few digits, as each imputer filled them
# -----------------------------------------
#
# One column per digit: complete, with its gaps in red, then as each imputer filled them,
# its RMSE beside its name. What to look at: whether the filled strokes join up as a digit
# would, or blur towards the average image.

rows = [("complete", X), ("with gaps (red)", X_missing), *filled.items()]
shown = np.arange(8)
fig, axes = plt.subplots(len(rows), len(shown), figsize=(9, 1.25 * len(rows)))
for r, (name, images) in enumerate(rows):
    for c, i in enumerate(shown):
        ax = axes[r, c]
        image = images[i].reshape(8, 8)
        # Fills may leave [0, 1] a little; grey levels are shown clipped to it.
        grey = 1.0 - np.clip(np.nan_to_num(image, nan=0.0), 0.0, 1.0)
        rgb = np.repeat(grey[..., None], 3, axis=-1)
        rgb[np.isnan(image)] = (0.85, 0.1, 0.1)
        ax.imshow(rgb, interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        if c == 0:
            label = name if name not in results else f"{name}\nRMSE {results[name]:.3f}"
            ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=9)
fig.suptitle("20% of the pixels removed at random, and filled by four imputers")
fig.tight_layout()
path = out_dir / "imputation_digits.png"
fig.savefig(path, dpi=100)
print(f"wrote {path}")
