"""GridSearchCV over 4 VAE fits: n_jobs=2 against n_jobs=1 on this machine.

    python benchmarks/bench_grid.py [--repeats 3] [--max-iter 40]
    python benchmarks/bench_grid.py --quick --json /tmp/bench_grid.json   # smoke run

The protocol is bench_grid.py's section of _protocols.md, rendered into README.md.
"""

import argparse
import functools
import statistics
import sys

import torch
from _harness import add_options, alternate, begin, columns, finish, fit_quietly, num, parse
from sklearn.datasets import load_digits
from sklearn.model_selection import GridSearchCV, ShuffleSplit

from skvae import VAEEstimator

GRID = {"n_components": [2, 4], "likelihood": ["gaussian", "bernoulli"]}


def load_data():
    """The 1,797 digits of scikit-learn, grey levels / 16 (1797 x 64)."""
    return load_digits().data / 16.0


def fit_grid(X, n_jobs: int, max_iter: int) -> list[float]:
    """Fit the grid of 4 fits (no refit); returns the mean validation scores."""
    vae = VAEEstimator(max_iter=max_iter, early_stopping=False, tol=0, random_state=0)
    cv = ShuffleSplit(n_splits=1, test_size=0.25, random_state=0)
    grid = GridSearchCV(vae, GRID, cv=cv, n_jobs=n_jobs, refit=False)
    fit_quietly(grid, X)
    return [float(s) for s in grid.cv_results_["mean_test_score"]]


def tables(p: dict) -> list:
    """The tables of a payload, as blocks for the harness to print and store."""
    s = p["settings"]
    spec = [("", "n_jobs", "`n_jobs={}`"), ("median s", "median_seconds", 2),
            ("runs (s)", lambda r: ", ".join(num(t, 2) for t in r["seconds"]))]  # fmt: skip
    return [
        f"`GridSearchCV`, 4 fits of {s['max_iter']} epochs on digits ({s['n_samples']:,} x "
        f"{s['n_features']}); rounds of alternating runs: {s['repeats']}.",
        columns(spec, p["runs"]),
        f"Speed-up of `n_jobs=2` over `n_jobs=1`: {num(p['speedup'], 2)}x.",
    ]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_options(parser, ("--repeats", 3, "timed rounds"), ("--max-iter", 40, "epochs of each fit"))
    args = parse(parser, argv, repeats=1, max_iter=2)
    run = begin("bench_grid", __file__, args, argv)
    X = load_data()
    fit_grid(X, 2, 1)  # start the worker pool and import torch there, untimed
    fits = {n_jobs: functools.partial(fit_grid, X, n_jobs, args.max_iter) for n_jobs in (1, 2)}
    runs = alternate(fits, args.repeats)
    settings = {"n_samples": int(X.shape[0]), "n_features": int(X.shape[1]), "grid": GRID,
                "max_iter": args.max_iter, "repeats": args.repeats,
                "torch_threads": torch.get_num_threads()}  # fmt: skip
    payload = {"settings": settings, "runs": [
        {"n_jobs": n_jobs, "seconds": r["seconds"], "scores": r["values"][-1],
         "median_seconds": statistics.median(r["seconds"])} for n_jobs, r in runs.items()
    ]}  # fmt: skip
    one, two = payload["runs"]
    payload["speedup"] = one["median_seconds"] / two["median_seconds"]
    finish(run, payload, args, tables)
    return 0


if __name__ == "__main__":
    sys.exit(main())
