"""Scaling out with dask: Incremental over blocks of a dask array, GridSearchCV on a cluster.

What is measured:

(a) Rows that need not fit in memory: ``dask_ml.wrappers.Incremental(VAEEstimator(...))``
    over a dask array of ``--rows`` x ``--features`` float64 (default 200,000 x 50) in
    ``--blocks`` blocks (default 20), for ``--passes`` passes (default 2: ``fit`` then
    ``partial_fit`` again), each block one ``VAEEstimator.partial_fit`` call (one epoch on
    the block). The array is lazy: every block is generated when dask needs it (Gaussian
    rows x = W z + offset + noise, z ~ N(0, I_5), as in bench_scale.py). With dask's
    synchronous scheduler one block exists at a time; with its default threaded scheduler
    the idle thread generates blocks ahead of the (sequential) partial_fit calls, which
    hold them until their turn: both are measured. Beside them, the same ``partial_fit``
    calls by hand on the blocks as numpy arrays, each generated when its turn comes (what
    dask adds), and ``VAEEstimator.fit`` on the
    same rows materialised as one numpy array, ``max_iter=--passes``,
    ``early_stopping=False``. Both use the defaults otherwise (n_components=2, hidden
    layers (128, 128), batch 128) and random_state=0. Each runs in a fresh process
    (started through /bin/sh, because ``ru_maxrss`` survives ``execve``) that makes one
    untimed warm-up fit on one block, notes its resident memory (VmRSS), and then times
    the fit; "peak above baseline" is ``ru_maxrss`` (the process's peak) minus that
    resident memory, and covers the input for the in-memory fit.

(b) More fits than cores: ``GridSearchCV`` over 4 fits (n_components in {2, 4} x
    likelihood in {gaussian, bernoulli}, one train/validation split of the digits scaled
    to [0, 1], ``--max-iter`` epochs each, early stopping off: the grid of
    bench_grid.py) with joblib's default (loky) backend at n_jobs=1 and 2, and with
    joblib's dask backend on a ``distributed.LocalCluster`` of 1 and 2 worker processes
    (one thread each, loopback). Each configuration runs once untimed (worker pools start
    and import torch), then ``--repeats`` times; the median is reported. The clusters'
    start-up time is reported separately.

Nothing is asserted: the script reports, with the machine and its load average (other
processes competing for the cores make the times unrepresentative). About 2-4 minutes on
2 idle cores::

    python benchmarks/bench_dask.py [--rows 200000] [--features 50] [--blocks 20]
        [--passes 2] [--max-iter 40] [--repeats 3] [--parts incremental,grid]
        [--threads N] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import warnings

import numpy as np
from _machine import cpu_model, current_rss, peak_rss, warn_load

MB = 2**20
LATENT_DIM = 5
NOISE_SCALE = 0.5
SEED = 0


# ---------------------------------------------------------------------- data


def make_block(index: int, rows: int, n_features: int, seed: int = SEED) -> np.ndarray:
    """Block ``index`` of the data: its own random stream, the same W and offset for all."""
    rng = np.random.default_rng([seed, n_features])
    W = rng.standard_normal((LATENT_DIM, n_features))
    offset = 3.0 * rng.standard_normal(n_features)
    rng_block = np.random.default_rng([seed, n_features, index])
    X = rng_block.standard_normal((rows, LATENT_DIM)) @ W
    X += NOISE_SCALE * rng_block.standard_normal((rows, n_features))
    X += offset
    return X


def block_sizes(n_rows: int, n_blocks: int) -> list[int]:
    return [len(part) for part in np.array_split(np.arange(n_rows), n_blocks)]


# ---------------------------------------------------------------------- (a) workers


def worker_fit(task: dict) -> dict:
    """Fit over blocks (Incremental on a lazy dask array) or in memory; time and memory."""
    import dask
    import dask.array as da
    import torch
    from dask_ml.wrappers import Incremental
    from sklearn.exceptions import ConvergenceWarning

    from skvae import VAEEstimator

    if task["threads"] is not None:
        torch.set_num_threads(task["threads"])
    sizes = block_sizes(task["rows"], task["blocks"])
    features = task["features"]
    # Untimed warm-up on one block: the first fit in a process pays one-off costs.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        VAEEstimator(max_iter=1, early_stopping=False, random_state=SEED).fit(
            make_block(0, sizes[0], features)
        )
    baseline = current_rss()
    if task["mode"].startswith("incremental"):
        blocks = [
            da.from_delayed(dask.delayed(make_block)(i, n, features), (n, features), float)
            for i, n in enumerate(sizes)
        ]
        X = da.concatenate(blocks)
        start = time.perf_counter()
        with dask.config.set(scheduler=task["mode"].split("_", 1)[1]):
            inc = Incremental(VAEEstimator(random_state=SEED), shuffle_blocks=False).fit(X)
            for _ in range(task["passes"] - 1):
                inc.partial_fit(X)
        seconds = time.perf_counter() - start
        est = inc.estimator_
    elif task["mode"] == "partial_fit_by_hand":
        # The same calls without dask: each block generated when its turn comes, as the
        # synchronous scheduler does, so the difference to it is dask's own cost.
        est = VAEEstimator(random_state=SEED)
        start = time.perf_counter()
        for _ in range(task["passes"]):
            for i, n in enumerate(sizes):
                est.partial_fit(make_block(i, n, features))
        seconds = time.perf_counter() - start
    else:
        start = time.perf_counter()
        X = np.concatenate([make_block(i, n, features) for i, n in enumerate(sizes)])
        est = VAEEstimator(max_iter=task["passes"], early_stopping=False, random_state=SEED)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            est.fit(X)
        seconds = time.perf_counter() - start
    return {
        "mode": task["mode"],
        "seconds": seconds,
        "n_iter": int(est.n_iter_),
        "final_loss": float(est.loss_curve_[-1]),
        "baseline_rss": baseline,
        "peak": peak_rss(),
        "torch_num_threads": torch.get_num_threads(),
    }


def run_worker(task: dict) -> dict:
    """Run ``task`` in a fresh Python process (this script with the hidden --_worker flag)."""
    with tempfile.TemporaryDirectory() as tmp:
        out_path = os.path.join(tmp, "result.json")
        task = {**task, "out": out_path}
        cmd = [sys.executable, os.path.abspath(__file__), "--_worker", json.dumps(task)]
        # A shell in between: the worker's ru_maxrss starts from its own small image.
        cmd = ["/bin/sh", "-c", '"$@"; exit $?', "sh", *cmd]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0 or not os.path.exists(out_path):
            raise RuntimeError(f"worker failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
        with open(out_path) as f:
            return json.load(f)


def part_incremental(args) -> list[dict]:
    results = []
    modes = ("incremental_synchronous", "incremental_threads", "partial_fit_by_hand", "in_memory")
    for mode in modes:
        print(f"  {mode} ...", flush=True)
        task = {
            "mode": mode,
            "rows": args.rows,
            "features": args.features,
            "blocks": args.blocks,
            "passes": args.passes,
            "threads": args.threads,
        }
        results.append(run_worker(task))
    return results


def print_incremental_table(args, results: list[dict]) -> None:
    sizes = block_sizes(args.rows, args.blocks)
    input_mb = args.rows * args.features * 8 / MB
    print(
        f"(a) {args.rows:,} x {args.features} float64 rows ({input_mb:.0f} MB as one array), "
        f"{args.blocks} blocks of {sizes[0]:,} rows, {args.passes} passes"
    )
    header = f"{'':<44}{'seconds':>9}{'s/block':>9}{'epochs':>8}{'peak-base MB':>14}{'loss':>8}"
    print(header)
    print("-" * len(header))
    names = {
        "incremental_synchronous": "Incremental, dask scheduler='synchronous'",
        "incremental_threads": "Incremental, dask scheduler='threads'",
        "partial_fit_by_hand": "partial_fit by hand on numpy blocks",
        "in_memory": "VAEEstimator.fit on one numpy array",
    }
    for r in results:
        per_block = r["seconds"] / (args.blocks * args.passes)
        print(
            f"{names[r['mode']]:<44}{r['seconds']:>9.2f}{per_block:>9.3f}{r['n_iter']:>8}"
            f"{(r['peak'] - r['baseline_rss']) / MB:>14.0f}{r['final_loss']:>8.2f}"
        )
    print(
        "s/block: seconds / (blocks x passes); peak-base: peak RSS above the RSS before the "
        "fit (the in-memory fit's includes building its input); loss: last training loss "
        "per row (nats; Incremental's is on the last block)."
    )


# ---------------------------------------------------------------------- (b) grid


def make_grid(n_jobs, max_iter):
    from sklearn.model_selection import GridSearchCV, ShuffleSplit

    from skvae import VAEEstimator

    return GridSearchCV(
        VAEEstimator(max_iter=max_iter, early_stopping=False, tol=0, random_state=0),
        {"n_components": [2, 4], "likelihood": ["gaussian", "bernoulli"]},
        cv=ShuffleSplit(n_splits=1, test_size=0.25, random_state=0),
        n_jobs=n_jobs,
        refit=False,
    )


def time_grid(X, n_jobs, max_iter, backend=None):
    import joblib
    from sklearn.exceptions import ConvergenceWarning

    grid = make_grid(n_jobs, max_iter)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        if backend is None:
            grid.fit(X)
        else:
            with joblib.parallel_backend(backend):
                grid.fit(X)
    return time.perf_counter() - start, grid.cv_results_["mean_test_score"]


def part_grid(args) -> list[dict]:
    from distributed import Client, LocalCluster
    from sklearn.datasets import load_digits

    X = load_digits().data / 16.0
    results = []

    def run(name, n_jobs, backend=None, startup=None):
        time_grid(X, n_jobs, 1, backend)  # untimed: start the pool, import torch there
        times, scores = [], None
        for _ in range(args.repeats):
            seconds, scores = time_grid(X, n_jobs, args.max_iter, backend)
            times.append(seconds)
        results.append(
            {
                "name": name,
                "times": times,
                "median": statistics.median(times),
                "startup": startup,
                "scores": [float(s) for s in scores],
            }
        )
        print(f"  {name}: median {results[-1]['median']:.2f} s", flush=True)

    for n_jobs in (1, 2):
        run(f"loky, n_jobs={n_jobs}", n_jobs)
    for workers in (1, 2):
        start = time.perf_counter()
        with (
            LocalCluster(
                n_workers=workers,
                threads_per_worker=1,
                processes=True,
                host="127.0.0.1",
                dashboard_address=None,
            ) as cluster,
            Client(cluster),
        ):
            startup = time.perf_counter() - start
            run(f"dask, LocalCluster {workers} worker(s)", -1, "dask", startup)
    return results


def print_grid_table(args, results: list[dict]) -> None:
    print(
        f"(b) GridSearchCV, 4 fits of {args.max_iter} epochs on digits (1797 x 64), "
        f"{args.repeats} timed runs each"
    )
    header = f"{'backend':<34}{'median s':>10}{'vs n_jobs=1':>13}{'cluster start s':>17}"
    print(header)
    print("-" * len(header))
    ref = results[0]["median"]
    for r in results:
        startup = "" if r["startup"] is None else f"{r['startup']:.1f}"
        print(f"{r['name']:<34}{r['median']:>10.2f}{ref / r['median']:>12.2f}x{startup:>17}")
    same = all(np.allclose(r["scores"], results[0]["scores"], rtol=1e-9) for r in results)
    print(f"the same cv scores from every backend: {'yes' if same else 'NO'}")


# ---------------------------------------------------------------------- main


def machine_info() -> dict:
    import dask
    import dask_ml
    import distributed
    import sklearn
    import torch

    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "sklearn": sklearn.__version__,
        "dask": dask.__version__,
        "distributed": distributed.__version__,
        "dask_ml": dask_ml.__version__,
    }


def main(args) -> dict:
    if args.threads is not None:
        import torch

        torch.set_num_threads(args.threads)  # here (n_jobs=1) and in the (a) workers
    info = machine_info()
    load_before = os.getloadavg()[0]
    print(
        f"machine: {info['cpu']}, {info['cores']} cores; Python {info['python']}, torch "
        f"{info['torch']} ({info['torch_threads']} threads), scikit-learn {info['sklearn']}, "
        f"dask {info['dask']}, distributed {info['distributed']}, dask-ml {info['dask_ml']}"
    )
    print(f"load average (1 min) at the start: {load_before:.2f}")
    warn_load(load_before)
    out = {"machine": info, "load_before": load_before}
    if "incremental" in args.parts:
        out["incremental"] = part_incremental(args)
    if "grid" in args.parts:
        out["grid"] = part_grid(args)
    print()
    if "incremental" in out:
        print_incremental_table(args, out["incremental"])
        print()
    if "grid" in out:
        print_grid_table(args, out["grid"])
        print()
    out["load_after"] = os.getloadavg()[0]
    print(f"load average (1 min) at the end: {out['load_after']:.2f}")
    warn_load(out["load_after"])
    if args.json_path:
        with open(args.json_path, "w") as f:
            json.dump(out, f, indent=2)
    return out


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--_worker":
        task = json.loads(sys.argv[2])
        with open(task["out"], "w") as f:
            json.dump(worker_fit(task), f)
        sys.exit(0)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--features", type=int, default=50)
    parser.add_argument("--blocks", type=int, default=20)
    parser.add_argument("--passes", type=int, default=2)
    parser.add_argument("--max-iter", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--parts", default="incremental,grid")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads (default: torch's own)"
    )
    parser.add_argument("--json", dest="json_path")
    main(parser.parse_args())
