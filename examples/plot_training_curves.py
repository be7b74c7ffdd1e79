"""Training curves and early stopping, and generated digits beside real ones
=========================================================================

Two VAEs with 8 latent dimensions and a Bernoulli likelihood are fitted to binarised 8x8
digits of scikit-learn (a pixel is 1 when its grey level is above half): one on 1,347
images, one on 150. Early stopping holds out 10% of each training set and keeps the
weights of the epoch with the best held-out ELBO. The figures:

- the loss curves of both fits (LossCurveDisplay), the kept epoch marked. The validation
  loss can lie below the training loss: it is computed at the end of each epoch with the
  averaged weights, while the training loss averages the minibatches of the epoch as the
  weights move;
- real held-out digits beside images from the larger model (SamplesDisplay): decoder
  means E[x | z] at z drawn from the prior, and actual draws x ~ p(x | z), whose
  independent pixels look like salt and pepper, which is why the means are the
  display's default.

Printed: for each fit, the epochs run and the epoch kept, then the log-likelihood per
image (nats; the data are binary, so a log-probability) on the training images and on
450 held-out ones, and the gap between the two. More images give a better model of new
digits; with 150, early stopping ends the fit after a few hundred epochs, with a model
that is worse on its own training images too, not one that memorised them.

Run from the repository root with ``python examples/plot_training_curves.py`` (options:
``--out DIR`` for the figures, ``output/`` by default; ``--quick`` for a seconds-long run
on small settings, which is what the tests do).
"""

import argparse
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402

from skvae import VAEEstimator  # noqa: E402
from skvae.plotting import LossCurveDisplay, SamplesDisplay  # noqa: E402


def main(quick=False, out_dir="output"):
    """Fit on many and on few images, print the stopping epochs, write two figures."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    X, _ = load_digits(return_X_y=True)
    X = (X > 8).astype(np.float64)
    X_train, X_test = train_test_split(X, test_size=0.25, random_state=0)
    settings = {"n_components": 8, "likelihood": "bernoulli", "max_iter": 1000}
    if quick:
        settings.update(hidden_layer_sizes=(16,), max_iter=5)
    sizes = {"all": len(X_train), "few": 150}

    print(f"binarised digits: {len(X_test)} held-out images")
    print(
        f"{'training images':>15} {'epochs':>7} {'kept':>5} {'training':>9} {'held-out':>9}"
        f" {'gap':>6} {'fit':>6}"
    )
    models, results = {}, {}
    for name, size in sizes.items():
        vae = VAEEstimator(random_state=0, **settings)
        start = time.perf_counter()
        vae.fit(X_train[:size])
        seconds = time.perf_counter() - start
        kept = int(np.argmax(vae.validation_scores_)) + 1
        models[name] = vae
        train, held_out = vae.score(X_train[:size]), vae.score(X_test)
        results[name] = {"training": train, "held_out": held_out}
        print(
            f"{size:>15} {vae.n_iter_:>7} {kept:>5} {train:>9.2f} {held_out:>9.2f}"
            f" {train - held_out:>6.2f} {seconds:>5.0f}s"
        )
    print("(log-likelihood per image in nats; gap = training - held-out)")

    paths = [out_dir / "training_curves.png", out_dir / "samples_vs_data.png"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), layout="constrained")
    for ax, (name, vae) in zip(axes, models.items(), strict=True):
        LossCurveDisplay.from_estimator(vae, ax=ax)
        ax.set_title(f"{sizes[name]} training images")
    fig.savefig(paths[0], dpi=100)
    plt.close(fig)

    fig, axes = plt.subplots(1, 2, figsize=(11, 3.4), layout="constrained")
    for ax, kind in zip(axes, ["mean", "sample"], strict=True):
        SamplesDisplay.from_estimator(
            models["all"], X_test, (8, 8), n_samples=25, kind=kind, random_state=0, ax=ax
        )
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
