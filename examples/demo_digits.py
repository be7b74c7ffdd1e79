"""The main job: a VAE on scikit-learn's digits, scored beside PCA and factor analysis.

Fits each model with 2 latent dimensions on 75% of the 1,797 8x8 digits, prints the
held-out log-likelihood per image (nats, higher is better), and writes two figures: the
2-D latent space coloured by digit, and a grid of digits sampled from the VAE.

Pixels that never vary in the training split are dropped for all three models first:
factor analysis would otherwise give them a noise variance of 1e-12 and a likelihood
that says more about that floor than about the digits.

Run with ``make demo`` or ``python examples/demo_digits.py [--out DIR] [--max-iter N]``.
"""

import argparse
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.decomposition import PCA, FactorAnalysis  # noqa: E402
from sklearn.feature_selection import VarianceThreshold  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402

from skvae import VAEEstimator  # noqa: E402


def main(out="output", max_iter="auto", n_components=2):
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=0)

    models = {
        "PCA": PCA(n_components=n_components),
        "FactorAnalysis": FactorAnalysis(n_components=n_components, random_state=0),
        "VAEEstimator": VAEEstimator(n_components=n_components, max_iter=max_iter, random_state=0),
    }
    print(f"digits: {len(X_train)} training and {len(X_test)} held-out images, 64 pixels")
    print(f"held-out log-likelihood per image, {n_components} latent dimensions:")
    fitted = {}
    for name, model in models.items():
        pipe = make_pipeline(VarianceThreshold(), model)
        start = time.perf_counter()
        pipe.fit(X_train)
        seconds = time.perf_counter() - start
        fitted[name] = pipe
        print(f"  {name:<15} {pipe.score(X_test):9.2f} nats   (fit {seconds:.1f} s)")

    vae_pipe = fitted["VAEEstimator"]
    vae = vae_pipe[-1]
    print(f"  VAE: {vae.n_iter_} epochs, {vae.n_active_components_} active latent dimensions")

    Z = vae_pipe.transform(X_test)
    fig, ax = plt.subplots(figsize=(6, 5))
    points = ax.scatter(Z[:, 0], Z[:, 1], c=y_test, cmap="tab10", s=12)
    fig.colorbar(points, ax=ax, label="digit")
    ax.set(
        xlabel="z1 (posterior mean)", ylabel="z2", title="Held-out digits in the VAE latent space"
    )
    fig.tight_layout()
    fig.savefig(out / "digits_latent_space.png", dpi=100)
    plt.close(fig)

    # Draws from the model, mapped back to all 64 pixels (dropped pixels are constant 0).
    draws = vae.sample(64, random_state=0)
    images = np.zeros((64, 64))
    images[:, vae_pipe[0].get_support()] = draws
    fig, axes = plt.subplots(8, 8, figsize=(6, 6))
    for ax, image in zip(axes.ravel(), images, strict=True):
        ax.imshow(image.reshape(8, 8), cmap="gray_r", vmin=0, vmax=16)
        ax.axis("off")
    fig.suptitle("Digits sampled from the VAE: x ~ p(x | z), z ~ N(0, I)")
    fig.savefig(out / "digits_samples.png", dpi=100)
    plt.close(fig)
    print(f"wrote {out / 'digits_latent_space.png'} and {out / 'digits_samples.png'}")
    return {name: pipe.score(X_test) for name, pipe in fitted.items()}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="output")
    parser.add_argument("--max-iter", type=lambda v: v if v == "auto" else int(v), default="auto")
    args = parser.parse_args()
    main(out=args.out, max_iter=args.max_iter)
