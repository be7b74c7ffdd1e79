"""GridSearchCV over 4 VAE fits: n_jobs=2 against n_jobs=1 on this machine.

Each joblib worker gets its share of the cores (torch in a worker uses the threads joblib
allows it), so two workers on two cores should finish a grid faster than one process
that runs the fits in turn. The grid: n_components in {2, 4} x likelihood in
{gaussian, bernoulli}, one train/validation split (4 fits) on the digits scaled to
[0, 1], with a fixed number of epochs so that every fit does the same work. One untimed
run starts the worker pool; then ``--repeats`` rounds alternate n_jobs=1 and n_jobs=2.

    python benchmarks/bench_grid.py [--repeats 3] [--max-iter 40]
    python benchmarks/bench_grid.py --quick --json /tmp/bench_grid.json   # smoke run
"""

from __future__ import annotations

import argparse
import statistics
import sys

import torch
from _harness import (
    add_output_options,
    alternate,
    apply_quick,
    begin,
    finish,
    fit_quietly,
    num,
    table,
)
from sklearn.datasets import load_digits
from sklearn.model_selection import GridSearchCV, ShuffleSplit

from skvae import VAEEstimator

GRID = {"n_components": [2, 4], "likelihood": ["gaussian", "bernoulli"]}


def load_data():
    """The 1,797 digits of scikit-learn, grey levels / 16 (1797 x 64)."""
    return load_digits().data / 16.0


def fit_grid(X, n_jobs: int, max_iter: int) -> list[float]:
    """Fit the grid of 4 fits (no refit); returns the mean validation scores."""
    grid = GridSearchCV(
        VAEEstimator(max_iter=max_iter, early_stopping=False, tol=0, random_state=0),
        GRID,
        cv=ShuffleSplit(n_splits=1, test_size=0.25, random_state=0),
        n_jobs=n_jobs,
        refit=False,
    )
    fit_quietly(grid, X)
    return [float(s) for s in grid.cv_results_["mean_test_score"]]





def tables(p: dict) -> list:
    """The tables of a payload, as blocks for the harness to print and store."""
    s = p["settings"]
    rows = [
        [
            f"`n_jobs={r['n_jobs']}`",
            num(r["median_seconds"], 2),
            ", ".join(num(t, 2) for t in r["seconds"]),
        ]
        for r in p["runs"]
    ]
    return [
            f"`GridSearchCV`, 4 fits of {s['max_iter']} epochs on digits ({s['n_samples']:,} x "
            f"{s['n_features']}); rounds of alternating runs: {s['repeats']}.",
            table(["", "median s", "runs (s)"], rows),
            f"Speed-up of `n_jobs=2` over `n_jobs=1`: {num(p['speedup'], 2)}x.",
        ]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds")
    parser.add_argument("--max-iter", type=int, default=40, help="epochs of each fit")
    add_output_options(parser)
    args = parser.parse_args(argv)
    apply_quick(parser, args, repeats=1, max_iter=2)
    run = begin("bench_grid", __file__, args, argv)
    X = load_data()
    fit_grid(X, 2, 1)  # start the worker pool and import torch there, untimed
    runs = alternate(
        {n_jobs: (lambda n_jobs=n_jobs: fit_grid(X, n_jobs, args.max_iter)) for n_jobs in (1, 2)},
        args.repeats,
    )
    payload = {
        "settings": {
            "n_samples": int(X.shape[0]),
            "n_features": int(X.shape[1]),
            "grid": GRID,
            "max_iter": args.max_iter,
            "repeats": args.repeats,
            "torch_threads": torch.get_num_threads(),
        },
        "runs": [
            {
                "n_jobs": n_jobs,
                "seconds": runs[n_jobs]["seconds"],
                "median_seconds": statistics.median(runs[n_jobs]["seconds"]),
                "scores": runs[n_jobs]["values"][-1],
            }
            for n_jobs in (1, 2)
        ],
    }
    one, two = payload["runs"]
    payload["speedup"] = one["median_seconds"] / two["median_seconds"]
    finish(run, payload, args, tables)
    return 0


if __name__ == "__main__":
    sys.exit(main())
