"""Training curves and early stopping, and generated digits beside real ones
=========================================================================

Two VAEs with 8 latent dimensions and a Bernoulli likelihood are fitted to binarised 8x8
digits of scikit-learn: one on 1,347 images, one on 150. Early stopping holds out 10% of
each training set and keeps the weights of the epoch with the best held-out ELBO. More
images give a better model of new digits; with 150, early stopping ends the fit after a
few hundred epochs, with a model that is worse on its own training images too, not one
that memorised them.

Run from the repository root with ``python examples/plot_training_curves.py`` (options:
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
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from skvae import VAEEstimator
from skvae.plotting import LossCurveDisplay, SamplesDisplay

parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
parser.add_argument("--out", default="output", help="directory of the figures")
parser.add_argument("--quick", action="store_true", help="small settings, for tests")
args = parser.parse_args()
out_dir = Path(args.out)
out_dir.mkdir(parents=True, exist_ok=True)

# %%
# Binarised digits
# ----------------
#
# A pixel is 1 when its grey level is above half (8 of 16), 0 elsewhere, so a Bernoulli
# likelihood (a coin flip per pixel) fits the data. A quarter of the images, 450, are held
# out to score the models on digits they never saw.

X, _ = load_digits(return_X_y=True)
X = (X > 8).astype(np.float64)
X_train, X_test = train_test_split(X, test_size=0.25, random_state=0)
settings = {"n_components": 8, "likelihood": "bernoulli", "max_iter": 1000}
if args.quick:
    settings.update(hidden_layer_sizes=(16,), max_iter=5)
sizes = {"all": len(X_train), "few": 150}

# %%
# A fit on many images and a fit on few
# -------------------------------------
#
# Each fit sets aside 10% of its training images and, after each epoch (a pass over the
# rest), computes their ELBO (the evidence lower bound, the quantity a VAE maximises: a
# lower bound on the log-likelihood). The fit stops once that held-out ELBO stops
# improving and keeps the weights of its best epoch.
#
# Printed: for each fit, the epochs run and the epoch kept, then the log-likelihood per
# image in nats (units of the natural logarithm; the data are binary, so the log of a
# probability) on its training images and on the 450 held-out ones, and the gap between
# the two.

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

# %%
# The loss curves
# ---------------
#
# The loss curves of both fits (``LossCurveDisplay``), the kept epoch marked. The
# validation loss can lie below the training loss: it is computed at the end of each
# epoch with the averaged weights (a moving average of the weights over the last steps,
# which is also what the fit returns), while the training loss averages the minibatches
# of the epoch as the weights move.

fig, axes = plt.subplots(1, 2, figsize=(11, 4), layout="constrained")
for ax, (name, vae) in zip(axes, models.items(), strict=True):
    LossCurveDisplay.from_estimator(vae, ax=ax)
    ax.set_title(f"{sizes[name]} training images")
path = out_dir / "training_curves.png"
fig.savefig(path, dpi=100)
print(f"wrote {path}")

# %%
# Generated digits beside real ones
# ---------------------------------
#
# Real held-out digits beside images from the model fitted on all the training images
# (``SamplesDisplay``). Left, decoder means E[x | z] at z drawn from the prior: the
# probability of each pixel being on. Right, actual draws x ~ p(x | z), whose independent
# pixels look like salt and pepper, which is why the means are the display's default.

fig, axes = plt.subplots(1, 2, figsize=(11, 3.4), layout="constrained")
for ax, kind in zip(axes, ["mean", "sample"], strict=True):
    SamplesDisplay.from_estimator(
        models["all"], X_test, (8, 8), n_samples=25, kind=kind, random_state=0, ax=ax
    )
path = out_dir / "samples_vs_data.png"
fig.savefig(path, dpi=100)
print(f"wrote {path}")
