"""Scaling out with dask: Incremental over blocks of a dask array, GridSearchCV on a cluster.

What is measured:

(a) Rows that need not fit in memory: ``dask_ml.wrappers.Incremental(VAEEstimator(...))``
    over a dask array of ``--rows`` x ``--features`` float64 (default 200,000 x 50) in
    ``--blocks`` blocks (default 20), for ``--passes`` passes (default 2: ``fit`` then
    ``partial_fit`` again), each block one ``VAEEstimator.partial_fit`` call (one epoch on
    the block). The array is lazy: every block is generated when dask needs it (Gaussian
    rows x = W z + offset + noise, z ~ N(0, I_5), the distribution of bench_scale.py).
    With dask's synchronous scheduler one block exists at a time; with its default
    threaded scheduler the idle thread generates blocks ahead of the (sequential)
    partial_fit calls, which hold them until their turn: both are measured. Beside them,
    the same ``partial_fit`` calls by hand on the blocks as numpy arrays, each generated
    when its turn comes (what dask adds), and ``VAEEstimator.fit`` on the same rows
    materialised as one numpy array, ``max_iter=--passes``, ``early_stopping=False``. All
    use the defaults otherwise (n_components=2, hidden layers (128, 128), batch 128) and
    random_state=0. Each runs in a fresh process (started through /bin/sh, because
    ``ru_maxrss`` survives ``execve``) that makes one untimed warm-up fit on one block,
    notes its resident memory (VmRSS), and then times the fit; "peak above baseline" is
    ``ru_maxrss`` (the process's peak) minus that resident memory, and covers the input
    for the in-memory fit.

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
        [--passes 2] [--max-iter 40] [--repeats 3] [--parts incremental,grid] [--threads N]
    python benchmarks/bench_dask.py --quick --json /tmp/bench_dask.json   # smoke run
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time

import numpy as np
from _harness import (
    SEED,
    add_output_options,
    alternate,
    apply_quick,
    begin,
    current_rss,
    finish,
    fit_quietly,
    gaussian_block,
    megabytes,
    num,
    peak_rss,
    run_in_fresh_process,
    set_threads,
    table,
    worker_main,
)
from bench_grid import fit_grid, load_data

MODES = {
    "incremental_synchronous": "Incremental, dask scheduler='synchronous'",
    "incremental_threads": "Incremental, dask scheduler='threads'",
    "partial_fit_by_hand": "partial_fit by hand on numpy blocks",
    "in_memory": "VAEEstimator.fit on one numpy array",
}


def block_sizes(n_rows: int, n_blocks: int) -> list[int]:
    return [len(part) for part in np.array_split(np.arange(n_rows), n_blocks)]


# ---------------------------------------------------------------------- (a) workers


def worker_fit(task: dict) -> dict:
    """Fit over blocks (Incremental on a lazy dask array) or in memory; time and memory."""
    import dask
    import dask.array as da
    import torch
    from dask_ml.wrappers import Incremental

    from skvae import VAEEstimator

    set_threads(task["threads"])
    sizes = block_sizes(task["rows"], task["blocks"])
    features = task["features"]
    # Untimed warm-up on one block: the first fit in a process pays one-off costs.
    fit_quietly(
        VAEEstimator(max_iter=1, early_stopping=False, random_state=SEED),
        gaussian_block(0, sizes[0], features),
    )
    baseline = current_rss()
    if task["mode"].startswith("incremental"):
        blocks = [
            da.from_delayed(dask.delayed(gaussian_block)(i, n, features), (n, features), float)
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
        # Each block generated when its turn comes, as the synchronous scheduler does, so
        # the difference to it is dask's own cost.
        est = VAEEstimator(random_state=SEED)
        start = time.perf_counter()
        for _ in range(task["passes"]):
            for i, n in enumerate(sizes):
                est.partial_fit(gaussian_block(i, n, features))
        seconds = time.perf_counter() - start
    else:
        start = time.perf_counter()
        X = np.concatenate([gaussian_block(i, n, features) for i, n in enumerate(sizes)])
        est = VAEEstimator(max_iter=task["passes"], early_stopping=False, random_state=SEED)
        fit_quietly(est, X)
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


def part_incremental(args) -> dict:
    results = []
    for mode in MODES:
        print(f"  {mode} ...", flush=True)
        task = {
            "mode": mode,
            "rows": args.rows,
            "features": args.features,
            "blocks": args.blocks,
            "passes": args.passes,
            "threads": args.threads,
        }
        res = run_in_fresh_process(__file__, task)
        res["name"] = MODES[mode]
        res["seconds_per_block"] = res["seconds"] / (args.blocks * args.passes)
        res["peak_above_baseline_bytes"] = res["peak"] - res["baseline_rss"]
        results.append(res)
    return {
        "settings": {
            "rows": args.rows,
            "features": args.features,
            "blocks": args.blocks,
            "block_rows": block_sizes(args.rows, args.blocks)[0],
            "passes": args.passes,
            "input_bytes": args.rows * args.features * 8,
        },
        "runs": results,
    }


# ---------------------------------------------------------------------- (b) grid


def time_grid(X, n_jobs: int, max_iter: int, repeats: int, backend=None) -> dict:
    """One untimed fit of the grid (pools start, torch imported there), then ``repeats``."""
    import joblib

    def fit(epochs):
        with joblib.parallel_backend(backend) if backend else contextlib.nullcontext():
            return fit_grid(X, n_jobs, epochs)

    fit(1)
    runs = alternate({"grid": lambda: fit(max_iter)}, repeats)["grid"]
    return {
        "times": runs["seconds"],
        "median": statistics.median(runs["seconds"]),
        "scores": runs["values"][-1],
    }


def part_grid(args) -> dict:
    from distributed import Client, LocalCluster

    X = load_data()
    results = []

    def run(name, n_jobs, backend=None, startup=None):
        timing = time_grid(X, n_jobs, args.max_iter, args.repeats, backend)
        results.append({"name": name, "startup": startup, **timing})
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
    reference = results[0]
    for r in results:
        r["speedup"] = reference["median"] / r["median"]
    same = all(np.allclose(r["scores"], reference["scores"], rtol=1e-9) for r in results)
    return {
        "settings": {
            "n_samples": int(X.shape[0]),
            "n_features": int(X.shape[1]),
            "max_iter": args.max_iter,
            "repeats": args.repeats,
        },
        "runs": results,
        "same_scores": bool(same),
    }


# ---------------------------------------------------------------------- main


def versions() -> dict:
    import dask
    import dask_ml
    import distributed

    return {
        "dask": dask.__version__,
        "distributed": distributed.__version__,
        "dask_ml": dask_ml.__version__,
    }





def tables(p: dict) -> list:
    """The tables of a payload, as blocks for the harness to print and store."""
    parts = []
    if "incremental" in p:
        inc = p["incremental"]
        s = inc["settings"]
        rows = [
            [
                r["name"],
                num(r["seconds"], 2),
                num(r["seconds_per_block"]),
                str(r["n_iter"]),
                megabytes(r["peak_above_baseline_bytes"]),
                num(r["final_loss"], 2),
            ]
            for r in inc["runs"]
        ]
        parts += [
            f"(a) {s['rows']:,} x {s['features']} float64 rows ({megabytes(s['input_bytes'])} "
            f"MB as one array) in {s['blocks']} blocks of {s['block_rows']:,} rows, "
            f"{s['passes']} passes, each way in a fresh process.",
            table(["", "seconds", "s/block", "epochs", "peak above baseline MB", "loss"], rows),
        ]
    if "grid" in p:
        grid = p["grid"]
        s = grid["settings"]
        rows = [
            [
                r["name"],
                num(r["median"], 2),
                f"{num(r['speedup'], 2)}x",
                "" if r["startup"] is None else num(r["startup"], 1),
            ]
            for r in grid["runs"]
        ]
        parts += [
            f"(b) `GridSearchCV`, 4 fits of {s['max_iter']} epochs on digits "
            f"({s['n_samples']:,} x {s['n_features']}); timed runs of each: {s['repeats']}.",
            table(["backend", "median s", "speed-up", "cluster start s"], rows),
            "The same cross-validation scores from every backend: "
            f"{'yes' if grid['same_scores'] else 'NO'}.",
        ]
    versions = p.get("versions", {})
    parts.append(", ".join(f"{k} {v}" for k, v in versions.items()) + ".")
    return parts


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--features", type=int, default=50)
    parser.add_argument("--blocks", type=int, default=20)
    parser.add_argument("--passes", type=int, default=2)
    parser.add_argument("--max-iter", type=int, default=40, help="epochs of each grid fit")
    parser.add_argument("--repeats", type=int, default=3, help="timed grid runs per backend")
    parser.add_argument("--parts", default="incremental,grid")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads (default: torch's own)"
    )
    add_output_options(parser)
    parser.add_argument("--_worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args._worker is not None:
        return worker_main(args._worker, worker_fit)
    apply_quick(parser, args, rows=20_000, blocks=4, max_iter=2, repeats=1)
    set_threads(args.threads)  # here (n_jobs=1) and in the (a) workers
    run = begin("bench_dask", __file__, args, argv)
    payload = {"versions": versions()}
    if "incremental" in args.parts:
        payload["incremental"] = part_incremental(args)
    if "grid" in args.parts:
        payload["grid"] = part_grid(args)
    finish(run, payload, args, tables)
    return 0


if __name__ == "__main__":
    sys.exit(main())
