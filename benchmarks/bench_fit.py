"""Fit speed of VAEEstimator against a textbook PyTorch loop and against skorch.

    python benchmarks/bench_fit.py --repeats 9
    python benchmarks/bench_fit.py --quick --json /tmp/bench_fit.json   # smoke run

The protocol is bench_fit.py's section of _protocols.md, rendered into README.md.
"""

import argparse
import statistics
import sys

import numpy as np
import torch
from _harness import (
    SEED,
    TextbookVAE,
    add_options,
    add_threads,
    alternate,
    begin,
    columns,
    finish,
    fit_quietly,
    load_mnist,
    negative_elbo,
    num,
    parse,
    ratio,
    timed,
    verdict,
)
from torch import nn

from skvae import VAEEstimator

N_HIDDEN = 400
N_LATENT = 20
BATCH_SIZE = 128
LEARNING_RATE = 1e-3

TARGETS = {"VAEEstimator/textbook": 0.60, "VAEEstimator/skorch": 0.50}
#: One step of a small model (see the protocol's second part).
STEP_SHAPE = {"n_features": 13, "hidden": (128, 128), "n_latent": 2, "batch": 32}
STEP_TARGET = 1 / 3
METHODS = ("VAEEstimator", "textbook", "skorch", "VAE bfloat16")
BESIDE_TARGETS = ("VAE bfloat16/textbook", "VAE bfloat16/skorch")


def fit_vaeestimator(X: np.ndarray, epochs: int, compute_dtype: str = "float32") -> float:
    """Fit VAEEstimator; returns the last epoch's training loss per sample."""
    vae = VAEEstimator(compute_dtype=compute_dtype, n_components=N_LATENT,
                       likelihood="bernoulli", hidden_layer_sizes=(N_HIDDEN,),
                       batch_size=BATCH_SIZE, learning_rate_init=LEARNING_RATE,
                       max_iter=epochs, early_stopping=False, random_state=SEED)  # fmt: skip
    fit_quietly(vae, X)
    return float(vae.loss_curve_[-1])


def fit_textbook(X: np.ndarray, epochs: int) -> float:
    """The hand-written loop; returns the last epoch's training loss per sample."""
    X = torch.from_numpy(X)
    n = X.shape[0]
    model = TextbookVAE(X.shape[1], N_HIDDEN, N_LATENT)
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
            loss = negative_elbo(recon, data, mu, logvar)
            loss.backward()
            train_loss += loss.item()
            optimizer.step()
    return train_loss / n


class NegativeELBO(nn.Module):
    """skorch criterion: the negative ELBO per sample of a TextbookVAE output."""

    def forward(self, y_pred, x):
        recon, mu, logvar = y_pred
        return negative_elbo(recon, x, mu, logvar) / x.shape[0]


def _make_skorch_net_class():
    from skorch import NeuralNet

    class VAENet(NeuralNet):
        """Unsupervised NeuralNet: the loss compares the reconstruction with X, not y."""

        def get_loss(self, y_pred, y_true, X=None, training=False):
            return self.criterion_(y_pred, X)

    return VAENet


def fit_skorch(X: np.ndarray, epochs: int, net_class) -> float:
    """Fit the textbook module through skorch; returns the last epoch's train_loss."""
    net = net_class(TextbookVAE, module__n_features=X.shape[1], module__n_hidden=N_HIDDEN,
                    module__n_latent=N_LATENT, criterion=NegativeELBO,
                    optimizer=torch.optim.Adam, lr=LEARNING_RATE, batch_size=BATCH_SIZE,
                    max_epochs=epochs, train_split=None, iterator_train__shuffle=True,
                    verbose=0, device="cpu")  # fmt: skip
    net.fit(X, None)
    return float(net.history[-1, "train_loss"])


def step_runners(n_batches: int) -> dict:
    """Calls running ``n_batches`` training steps of skvae's trainer and of a textbook loop."""
    from skvae._likelihoods import build_likelihood
    from skvae._module import VAEModule
    from skvae._optim import make_optimizer
    from skvae._trainer import Trainer, TrainingConfig

    d, hidden, k, batch = STEP_SHAPE.values()  # n_features, hidden, n_latent, batch
    X = torch.randn(n_batches * batch, d, generator=torch.Generator().manual_seed(SEED))
    torch.manual_seed(SEED)
    module = VAEModule(d, k, hidden, "relu", build_likelihood(d, {"name": "gaussian"}))
    optimizer = make_optimizer(module, (module.encoder, module.decoder), LEARNING_RATE)
    config = TrainingConfig(batch_size=batch, missing=False)
    generator = torch.Generator().manual_seed(SEED)
    trainer = Trainer(module, optimizer, config, generator, torch.device("cpu"), {"x": X})
    trainer.begin_run()

    def ours():
        return trainer.run_epoch(0)

    def layers(widths):
        pairs = zip(widths[:-1], widths[1:], strict=True)
        blocks = [m for a, b in pairs for m in (nn.Linear(a, b), nn.ReLU())]
        return nn.Sequential(*blocks[:-1])

    encoder, decoder = layers((d, *hidden, 2 * k)), layers((k, *reversed(hidden), d))
    log_var = nn.Parameter(torch.zeros(d))
    params = [*encoder.parameters(), *decoder.parameters(), log_var]
    adam = torch.optim.Adam(params, lr=LEARNING_RATE)

    def textbook():
        total = 0.0
        perm = torch.randperm(len(X))
        for i in range(0, len(X), batch):
            x = X[perm[i : i + batch]]
            adam.zero_grad()
            mu, lv = encoder(x).chunk(2, dim=-1)
            z = mu + torch.randn_like(mu) * (0.5 * lv).exp()
            rec = -0.5 * ((x - decoder(z)) ** 2 / log_var.exp() + log_var + 1.8379).sum(-1)
            kl = 0.5 * (mu**2 + lv.exp() - 1 - lv).sum(-1)
            loss = (kl - rec).mean()
            loss.backward()
            adam.step()
            total += loss.item()
        return total

    return {"skvae": ours, "textbook": textbook}


def measure_step(rounds: int, n_batches: int) -> dict:
    """CPU milliseconds per step of skvae's trainer and of the textbook loop, one thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        runners = step_runners(n_batches)
        for run in runners.values():  # untimed: allocations, first calls
            run()
        runs = alternate(runners, rounds)
    finally:
        torch.set_num_threads(threads)
    per_step = {name: [1e3 * c / n_batches for c in r["cpu_seconds"]] for name, r in runs.items()}
    result = ratio(per_step["skvae"], per_step["textbook"])
    return {
        "shape": {k: list(v) if isinstance(v, tuple) else v for k, v in STEP_SHAPE.items()},
        "rounds": rounds, "steps_per_round": n_batches, "ms_per_step": per_step,
        "median_ms": {name: statistics.median(v) for name, v in per_step.items()},
        "ratio": {**result, "target": STEP_TARGET,
                  "passed": result["median_of_rounds"] <= STEP_TARGET},
    }  # fmt: skip


def seeded(fit, X: np.ndarray, epochs: int):
    """``fit(X, epochs)`` after seeding torch, as a call without arguments for alternate()."""

    def run():
        torch.manual_seed(SEED)
        return fit(X, epochs)

    return run


def tables(p: dict) -> list:
    """The tables of a payload, as blocks for the harness to print and store."""
    s, check = p["settings"], p["loss_check"]
    names = {"VAEEstimator": "`VAEEstimator` (float32, the default)",
             "textbook": "textbook PyTorch loop", "skorch": "skorch `NeuralNet`",
             "VAE bfloat16": "`VAEEstimator(compute_dtype='bfloat16')`"}  # fmt: skip
    runs = [{"name": names.get(name, name), **p["runs"][name]} for name in p["methods"]]
    trainers = [("trainer", "name"), ("median s", "median_seconds", 3),
                ("min s", "seconds", lambda v: num(min(v))),
                ("max s", "seconds", lambda v: num(max(v))),
                ("CPU s", "median_cpu_seconds", 2)]  # fmt: skip
    ratios = [
        ("ratio", lambda r: r["name"].replace("/", " / ")),
        ("median of rounds", "median_of_rounds", 3),
        ("ratio of medians", "of_medians", 3),
        ("target", lambda r: f"<= {r['target']:.2f}" if "target" in r else "(opt-in, not judged)"),
        ("verdict", lambda r: verdict(r["passed"]) if "passed" in r else ""),
    ]
    parts = [
        f"{s['n_samples']:,} x {s['n_features']} digits, {s['epochs']} epochs, batch "
        f"{s['batch_size']}, Adam at {s['learning_rate']}; {s['torch_threads']} torch "
        f"threads; rounds of alternating runs: {s['repeats']}. The untimed first runs' final "
        f"training losses agree within {check['spread']:.1%} (tolerance "
        f"{check['tolerance']:.0%}).",
        columns(trainers, runs),
        columns(ratios, p["ratios"]),
    ]
    if "step" in p:
        step, shape = p["step"], p["step"]["shape"]
        widths = [shape["n_features"], *shape["hidden"], shape["n_latent"]]
        widths = "-".join(str(w) for w in widths)
        step_ratio = {**step["ratio"], "name": "skvae/textbook"}
        parts += [
            f"One step of a {widths} Gaussian VAE at batch {shape['batch']}, one torch thread; "
            f"{step['rounds']} rounds of {step['steps_per_round']} steps, alternating.",
            columns([("step", 0), ("median CPU ms per step", 1, 4)], step["median_ms"].items()),
            columns([*ratios[:3], ("target", "target", "<= {:.3f}"), ratios[4]], [step_ratio]),
        ]
    return parts


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_options(
        parser, ("--repeats", 5, "timed runs per method"),
        ("--epochs", 10, "epochs per fit (debug only)"),
        ("--n-samples", None, "use the first N digits (debug only)"),
        ("--step-rounds", 9, "rounds of the step part"),
        ("--step-batches", 500, "steps per round of the step part"),
        ("--loss-tolerance", 0.10, "maximum relative spread of the final losses before timing"),
    )  # fmt: skip
    add_threads(parser)
    args = parse(parser, argv, repeats=1, epochs=2, n_samples=500, step_rounds=2, step_batches=20)
    if args.repeats < 1 or args.epochs < 1:
        parser.error("--repeats and --epochs must be >= 1")
    run = begin("bench_fit", __file__, args, argv)
    X = load_mnist(np.float32)[: args.n_samples]
    net_class = _make_skorch_net_class()
    fits = {
        "VAEEstimator": seeded(fit_vaeestimator, X, args.epochs),
        "textbook": seeded(fit_textbook, X, args.epochs),
        "skorch": seeded(lambda X, epochs: fit_skorch(X, epochs, net_class), X, args.epochs),
        "VAE bfloat16": seeded(lambda X, epochs: fit_vaeestimator(X, epochs, "bfloat16"), X,
                               args.epochs),
    }  # fmt: skip
    print(f"data: {X.shape[0]} x {X.shape[1]} binarised MNIST digits, float32; epochs="
          f"{args.epochs} batch_size={BATCH_SIZE} lr={LEARNING_RATE} repeats={args.repeats}",
          flush=True)  # fmt: skip

    # One untimed run each, which also checks that all reach comparable losses.
    warmup = {}
    for name in METHODS:
        seconds, cpu, loss = timed(fits[name])
        warmup[name] = {"seconds": seconds, "cpu_seconds": cpu, "final_loss": loss}
    losses = [warmup[name]["final_loss"] for name in METHODS]
    spread = (max(losses) - min(losses)) / min(losses) if min(losses) > 0 else float("inf")
    check_ok = bool(np.all(np.isfinite(losses))) and spread <= args.loss_tolerance
    for name in METHODS:
        print(f"  warm-up {name:<13} final loss {warmup[name]['final_loss']:10.3f} nats")
    print(f"  relative spread {spread:.3%} (tolerance {args.loss_tolerance:.0%})", flush=True)
    if not check_ok:
        print("error: the methods do not reach comparable losses, so their times are not "
              "comparable; not timing.", file=sys.stderr)  # fmt: skip
        return 2

    runs = alternate({name: fits[name] for name in METHODS}, args.repeats)
    times = {name: runs[name]["seconds"] for name in METHODS}
    ratios = []
    for key in (*TARGETS, *BESIDE_TARGETS):
        a, b = key.split("/")
        ratios.append({"name": key, **ratio(times[a], times[b])})
        if key in TARGETS:
            ratios[-1]["target"] = TARGETS[key]
            ratios[-1]["passed"] = ratios[-1]["median_of_rounds"] <= TARGETS[key]
    settings = {"n_samples": int(X.shape[0]), "n_features": int(X.shape[1]),
                "n_hidden": N_HIDDEN, "n_latent": N_LATENT, "epochs": args.epochs,
                "batch_size": BATCH_SIZE, "learning_rate": LEARNING_RATE,
                "repeats": args.repeats, "torch_threads": torch.get_num_threads()}  # fmt: skip
    summary = {
        name: {"seconds": r["seconds"], "cpu_seconds": r["cpu_seconds"],
               "final_loss": r["values"], "median_seconds": statistics.median(r["seconds"]),
               "median_cpu_seconds": statistics.median(r["cpu_seconds"])}
        for name, r in runs.items()
    }  # fmt: skip
    payload = {
        "settings": settings, "methods": list(METHODS), "warmup": warmup,
        "loss_check": {"spread": spread, "tolerance": args.loss_tolerance, "ok": check_ok},
        "runs": summary, "ratios": ratios,
        "step": measure_step(args.step_rounds, args.step_batches),
    }  # fmt: skip
    finish(run, payload, args, tables)
    return 0


if __name__ == "__main__":
    sys.exit(main())
