"""GridSearchCV over 4 VAE fits: n_jobs=2 against n_jobs=1 on this machine.

Each joblib worker gets its share of the cores (torch in a worker uses the threads joblib
allows it), so two workers on two cores should finish a grid faster than one process
that runs the fits in turn. The grid: n_components in {2, 4} x likelihood in
{gaussian, bernoulli}, one train/validation split (4 fits) on the scaled digits, with
a fixed number of epochs so that every fit does the same work.

    python benchmarks/bench_grid.py [--repeats 3] [--max-iter 40] [--json PATH]
"""

import argparse
import json
import os
import statistics
import time
import warnings

import torch
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV, ShuffleSplit

from skvae import VAEEstimator


def run_grid(X, n_jobs, max_iter):
    grid = GridSearchCV(
        VAEEstimator(max_iter=max_iter, early_stopping=False, tol=0, random_state=0),
        {"n_components": [2, 4], "likelihood": ["gaussian", "bernoulli"]},
        cv=ShuffleSplit(n_splits=1, test_size=0.25, random_state=0),
        n_jobs=n_jobs,
        refit=False,
    )
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        grid.fit(X)
    return time.perf_counter() - start


def main(repeats=3, max_iter=40, json_path=None):
    X = load_digits().data / 16.0
    run_grid(X, 2, 1)  # start the worker pool and import torch there, untimed
    times = {1: [], 2: []}
    for _ in range(repeats):
        for n_jobs in (1, 2):  # alternate so drift in the machine hits both alike
            times[n_jobs].append(run_grid(X, n_jobs, max_iter))
    medians = {k: statistics.median(v) for k, v in times.items()}
    print(f"GridSearchCV, 4 fits of {max_iter} epochs on digits ({X.shape[0]} x 64 rows)")
    print(f"cores: {os.cpu_count()}, torch threads in this process: {torch.get_num_threads()}")
    for n_jobs, t in medians.items():
        runs = ", ".join(f"{x:.2f}" for x in times[n_jobs])
        print(f"  n_jobs={n_jobs}: median {t:6.2f} s  (runs: {runs})")
    speedup = medians[1] / medians[2]
    print(f"  speed-up n_jobs=2 over n_jobs=1: {speedup:.2f}x")
    if json_path:
        with open(json_path, "w") as f:
            json.dump({"times": times, "medians": medians, "speedup": speedup}, f, indent=2)
    return speedup


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--max-iter", type=int, default=40)
    parser.add_argument("--json", dest="json_path")
    args = parser.parse_args()
    main(args.repeats, args.max_iter, args.json_path)
