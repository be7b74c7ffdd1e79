"""Quality benchmark of skvae's VAEEstimator: four targets, each measured once and judged.

    python benchmarks/quality.py --threads 1                        # writes results/quality.json
    python benchmarks/quality.py --quick --json /tmp/quality.json   # smoke run

The protocol is quality.py's section of _protocols.md, rendered into README.md.
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from _harness import (
    RESULTS_DIR,
    add_threads,
    begin,
    finish,
    fit_noting_convergence,
    num,
    parse,
    table,
    verdict,
)
from bench_defaults import TITLES
from sklearn.decomposition import FactorAnalysis
from sklearn.model_selection import GridSearchCV

from skvae import VAEEstimator
from skvae.datasets import make_linear_gaussian, make_nonlinear_process, make_nonlinear_surface

# The settings of the test suite that train a linear VAE to its maximum likelihood.
LINEAR_TO_CONVERGENCE = {"learning_rate_init": 3e-3, "n_iter_no_change": 50, "max_iter": 3000}

STUDIES = [
    {"name": "surface, defaults", "process": "surface", "truth": 2, "params": {}},
    {"name": "linear, defaults", "process": "linear", "truth": 2,
     "params": {"hidden_layer_sizes": ()}},
    {"name": "linear, tests' settings", "process": "linear", "truth": 2,
     "params": {"hidden_layer_sizes": (), **LINEAR_TO_CONVERGENCE}},
    {"name": "nonlinear, defaults", "process": "nonlinear", "truth": 1, "params": {}},
]  # fmt: skip
FULL = {"seeds": [0, 1, 2, 3, 4], "n_samples": 1500, "grid": [1, 2, 3, 4], "cv": 3,
        "linear": {"n_features": 10, "n_components": 2, "noise": "diag"},
        "nonlinear": {"n_features": 5, "noise_std": 0.1}, "studies": STUDIES,
        "pass_study": "surface, defaults"}  # fmt: skip
QUICK_STUDIES = [{**s, "params": {**s["params"], "max_iter": 5}} for s in STUDIES]
QUICK = {**FULL, "seeds": [0], "n_samples": 450, "studies": QUICK_STUDIES}

# Target -> the bench_defaults measurement that measures it (and gives its title).
FROM_DEFAULTS = {"1": "2", "2": "5", "3": "1"}
TITLE_4 = "GridSearchCV over n_components picks the true latent dimension"


def selection_data(process: str, seed: int, cfg: dict) -> np.ndarray:
    if process == "linear":
        lin = cfg["linear"]
        return make_linear_gaussian(cfg["n_samples"], n_features=lin["n_features"],
                                    n_components=lin["n_components"], noise=lin["noise"],
                                    random_state=seed)[0]  # fmt: skip
    make = make_nonlinear_surface if process == "surface" else make_nonlinear_process
    return make(cfg["n_samples"], random_state=seed, **cfg["nonlinear"])[0]


def grid_search(estimator, X, cfg: dict) -> dict:
    search = GridSearchCV(estimator, {"n_components": cfg["grid"]}, cv=cfg["cv"])
    seconds, warned, _ = fit_noting_convergence(search, X)
    cv = search.cv_results_
    run = {"pick": int(search.best_params_["n_components"]),
           "mean_test_score": np.asarray(cv["mean_test_score"], dtype=float),
           "std_test_score": np.asarray(cv["std_test_score"], dtype=float),
           "seconds": seconds, "convergence_warnings": warned}  # fmt: skip
    if isinstance(estimator, VAEEstimator):
        best = search.best_estimator_
        run["refit_n_iter"] = int(best.n_iter_)
        run["refit_kl_per_component"] = best.kl_per_component_
        run["refit_n_active_components"] = best.n_active_components_
    return run


def target_selection(cfg: dict) -> dict:
    """Target 4: per study and seed, the grid search's pick; PASS when most picks are right."""
    studies, references = {}, {}
    for study in cfg["studies"]:
        runs = []
        for seed in cfg["seeds"]:
            X = selection_data(study["process"], seed, cfg)
            run = grid_search(VAEEstimator(random_state=0, **study["params"]), X, cfg)
            run["seed"] = seed
            if study["process"] == "linear":
                if seed not in references:
                    references[seed] = grid_search(FactorAnalysis(), X, cfg)
                run["factor_analysis_pick"] = references[seed]["pick"]
                run["factor_analysis_mean_test_score"] = references[seed]["mean_test_score"]
            runs.append(run)
            print(f"{study['name']}, seed {seed}: pick {run['pick']} ({run['seconds']:.0f} s)",
                  flush=True)  # fmt: skip
        picks = [r["pick"] for r in runs]
        fraction = float(np.mean([p == study["truth"] for p in picks]))
        studies[study["name"]] = {
            "process": study["process"], "params": study["params"],
            "true_n_components": study["truth"], "picks": picks, "fraction_correct": fraction,
            "passed": fraction > 0.5, "runs": runs,
        }  # fmt: skip
    return {"target": "fraction of seeds whose pick is the true n_components > 0.5",
            "studies": studies, "pass_refers_to": cfg["pass_study"],
            "passed": studies[cfg["pass_study"]]["passed"]}  # fmt: skip


def read_defaults(path: Path) -> dict:
    """Targets 1-3's verdicts from bench_defaults' reporting result, with its stamp."""
    if not path.exists():
        return {"path": str(path), "missing": True}
    doc = json.loads(path.read_text())
    measurements = doc["result"]["measurements"]
    targets = {}
    for target, number in FROM_DEFAULTS.items():
        m = measurements.get(number)
        if m is not None:
            targets[target] = {"measurement": number, "target": m["target"],
                               "passed": m["passed"]}  # fmt: skip
    stamp = {key: doc.get(key) for key in ("command", "commit", "date", "quick")}
    return {"path": str(path), "stamp": stamp, "targets": targets}


def tables(p: dict) -> list:
    """The tables of a payload, as blocks for the harness to print and store."""
    defaults = p["bench_defaults"]
    rows = []
    if defaults.get("missing"):
        note = f"No result of bench_defaults.py at `{defaults['path']}`: targets 1-3 not judged."
    else:
        s = defaults["stamp"]
        commit = (s["commit"] or "unknown")[:12]
        note = f"Targets 1-3: the verdicts of `{s['command']}` (commit `{commit}`, {s['date']})."
        for target, t in defaults["targets"].items():
            title = TITLES[int(t["measurement"])]
            rows.append([target, f"{title} (bench_defaults measurement {t['measurement']})",
                         t["target"], verdict(t["passed"])])  # fmt: skip
    t4 = p["target_4"]
    rows.append(["4", TITLE_4, t4["target"], verdict(t4["passed"])])
    studies = [
        [name, str(s["true_n_components"]), ", ".join(str(x) for x in s["picks"]),
         num(s["fraction_correct"], 2),
         verdict(s["passed"]) + (" (judged)" if name == t4["pass_refers_to"] else "")]
        for name, s in sorted(t4["studies"].items(), key=lambda kv: kv[0] != t4["pass_refers_to"])
    ]  # fmt: skip
    return [
        f"{note} Target 4 measured here; {p['torch_threads']} torch threads.",
        table(["", "target", "criterion", "verdict"], rows),
        f"**Target 4**: {TITLE_4}.",
        table(["study", "true n_components", "picks", "fraction correct", "verdict"], studies),
    ]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_threads(parser)
    parser.add_argument("--defaults", type=Path, help="the bench_defaults.py result that "
                        "holds targets 1-3",
                        default=RESULTS_DIR / "bench_defaults_reporting.json")  # fmt: skip
    args = parse(parser, argv)
    run = begin("quality", __file__, args, argv)
    cfg = QUICK if args.quick else FULL
    payload = {"torch_threads": torch.get_num_threads(), "config": cfg,
               "bench_defaults": read_defaults(args.defaults),
               "target_4": target_selection(cfg)}  # fmt: skip
    finish(run, payload, args, tables)
    return 0


if __name__ == "__main__":
    sys.exit(main())
