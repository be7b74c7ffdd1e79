"""The 2-D latent space of a VAE beside PCA's 2-D projection, on scikit-learn's digits
===================================================================================

Both models squeeze the 64 pixels of the 1,797 8x8 digits into two numbers per image,
fitted on 75% of the images without their labels. The figure shows the held-out 25% in
each 2-D space, coloured by digit, and two measurements say what the eye sees.

Run from the repository root with ``python examples/plot_latent_space_digits.py``
(options: ``--out DIR`` for the figure, ``output/`` by default; ``--quick`` for a
seconds-long run on small settings, which is what the tests do).
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
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.feature_selection import VarianceThreshold
from sklearn.model_selection import train_test_split
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline

from skvae import VAEEstimator
from skvae.plotting import LatentSpaceDisplay

parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
parser.add_argument("--out", default="output", help="directory of the figure")
parser.add_argument("--quick", action="store_true", help="small settings, for tests")
args = parser.parse_args()
out_dir = Path(args.out)
out_dir.mkdir(parents=True, exist_ok=True)

# %%
# The digits, and two models with two dimensions
# ----------------------------------------------
#
# PCA projects the images linearly onto the two directions of largest variance; the VAE
# learns a non-linear map to two latent dimensions and back. Pixels that never vary in
# the training split are dropped for both models first (see ``examples/demo_digits.py``).

X, y = load_digits(return_X_y=True)
# The split of examples/demo_digits.py, whose scores the README reports.
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=0)
vae = VAEEstimator(n_components=2, max_iter=500, random_state=0)
if args.quick:
    vae.set_params(hidden_layer_sizes=(32,), max_iter=10)
models = {
    "PCA": make_pipeline(VarianceThreshold(), PCA(n_components=2)),
    "VAE": make_pipeline(VarianceThreshold(), vae),
}

# %%
# Two measurements of each 2-D space
# ----------------------------------
#
# - the held-out log-likelihood per image of each model, in nats (units of the natural
#   logarithm): both are densities in the units of the pixels, so they can be compared,
#   and higher is better;
# - the accuracy of a 5-nearest-neighbour classifier trained on the 2-D codes of the
#   training images and tested on those of the held-out ones: how well the two numbers
#   keep the digits apart.
#
# The last line counts the VAE's epochs (passes over the training images) and its active
# latent dimensions: those whose code varies from image to image, so that they tell the
# images apart.

print(f"digits: {len(X_train)} training and {len(X_test)} held-out images, 2-D codes")
print(f"{'model':<6} {'log-likelihood':>15} {'5-NN accuracy':>14} {'fit':>7}")
results = {}
for name, model in models.items():
    start = time.perf_counter()
    model.fit(X_train)
    seconds = time.perf_counter() - start
    knn = KNeighborsClassifier(n_neighbors=5).fit(model.transform(X_train), y_train)
    accuracy = knn.score(model.transform(X_test), y_test)
    log_likelihood = model.score(X_test)
    results[name] = {"log_likelihood": log_likelihood, "knn_accuracy": accuracy}
    print(f"{name:<6} {log_likelihood:10.2f} nats {accuracy:14.3f} {seconds:6.1f}s")
print(f"(VAE: {vae.n_iter_} epochs, {vae.n_active_components_} active latent dimensions)")

# %%
# The held-out digits in each 2-D space
# -------------------------------------
#
# One point per held-out image, coloured by its label, which neither model saw. What to
# look at: how far each digit's cloud lies from the others, and how much they overlap.

fig, (ax_vae, ax_pca) = plt.subplots(1, 2, figsize=(11, 4.8), layout="constrained")
vae_display = LatentSpaceDisplay.from_estimator(models["VAE"], X_test, y_test, ax=ax_vae)
vae_display.legend_.remove()  # one legend, on the right, for both panels
# PCA's projection drawn by the same display, built from the arrays.
pca_display = LatentSpaceDisplay(latent=models["PCA"].transform(X_test), y=y_test)
pca_display.plot(ax=ax_pca)
ax_pca.set(xlabel="principal component 1", ylabel="principal component 2")
for ax, name in [(ax_vae, "VAE"), (ax_pca, "PCA")]:
    r = results[name]
    ax.set_title(
        f"{name}: {r['log_likelihood']:.1f} nats per image, 5-NN accuracy {r['knn_accuracy']:.2f}"
    )
fig.suptitle("Held-out digits in two dimensions, coloured by their label (not seen in fit)")
path = out_dir / "latent_space_digits.png"
fig.savefig(path, dpi=100)
print(f"wrote {path}")
