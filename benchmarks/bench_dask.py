"""Scaling out with dask: Incremental over blocks of a dask array, GridSearchCV on a cluster.

    python benchmarks/bench_dask.py [--rows 200000] [--features 50] [--blocks 20]
        [--passes 2] [--max-iter 40] [--repeats 3] [--parts incremental,grid] [--threads N]
    python benchmarks/bench_dask.py --quick --json /tmp/bench_dask.json   # smoke run

The protocol is bench_dask.py's section of _protocols.md, rendered into README.md; joblib's
own backend at n_jobs=1 and 2 is bench_grid.py's measurement.
"""

import argparse
import statistics
import sys
import time

import numpy as np
from _harness import (
    SEED,
    add_threads,
    alternate,
    begin,
    columns,
    current_rss,
    finish,
    fit_quietly,
    gaussian_block,
    megabytes,
    num,
    parse,
    peak_rss,
    run_in_fresh_process,
    set_threads,
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
    warm_up = VAEEstimator(max_iter=1, early_stopping=False, random_state=SEED)
    fit_quietly(warm_up, gaussian_block(0, sizes[0], features))
    baseline = current_rss()
    if task["mode"].startswith("incremental"):
        block = dask.delayed(gaussian_block)
        X = da.concatenate([da.from_delayed(block(i, n, features), (n, features), float)
                            for i, n in enumerate(sizes)])  # fmt: skip
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
    return {"mode": task["mode"], "seconds": seconds, "n_iter": int(est.n_iter_),
            "final_loss": float(est.loss_curve_[-1]), "baseline_rss": baseline,
            "peak": peak_rss(), "torch_num_threads": torch.get_num_threads()}  # fmt: skip


def part_incremental(args) -> dict:
    results = []
    for mode in MODES:
        print(f"  {mode} ...", flush=True)
        keys = ("rows", "features", "blocks", "passes", "threads")
        task = {"mode": mode, **{key: getattr(args, key) for key in keys}}
        res = run_in_fresh_process(__file__, task)
        res["name"] = MODES[mode]
        res["seconds_per_block"] = res["seconds"] / (args.blocks * args.passes)
        res["peak_above_baseline_bytes"] = res["peak"] - res["baseline_rss"]
        results.append(res)
    settings = {key: getattr(args, key) for key in ("rows", "features", "blocks", "passes")}
    settings.update(block_rows=block_sizes(args.rows, args.blocks)[0],
                    input_bytes=args.rows * args.features * 8)  # fmt: skip
    return {"settings": settings, "runs": results}


def time_grid(X, max_iter: int, repeats: int) -> dict:
    """On joblib's dask backend, one untimed fit of the grid (torch imported in the workers),
    then ``repeats`` timed."""
    import joblib

    def fit(epochs):
        with joblib.parallel_backend("dask"):
            return fit_grid(X, -1, epochs)

    fit(1)
    runs = alternate({"grid": lambda: fit(max_iter)}, repeats)["grid"]
    return {"times": runs["seconds"], "median": statistics.median(runs["seconds"]),
            "scores": runs["values"][-1]}  # fmt: skip


def part_grid(args) -> dict:
    from distributed import Client, LocalCluster

    X = load_data()
    results = []
    for workers in (1, 2):
        start = time.perf_counter()
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                               host="127.0.0.1", dashboard_address=None)  # fmt: skip
        with cluster, Client(cluster):
            startup = time.perf_counter() - start
            name = f"dask, LocalCluster {workers} worker(s)"
            timing = time_grid(X, args.max_iter, args.repeats)
            results.append({"name": name, "startup": startup, **timing})
            print(f"  {name}: median {results[-1]['median']:.2f} s", flush=True)
    reference = results[0]
    for r in results:
        r["speedup"] = reference["median"] / r["median"]
    same = all(np.allclose(r["scores"], reference["scores"], rtol=1e-9) for r in results)
    settings = {"n_samples": int(X.shape[0]), "n_features": int(X.shape[1]),
                "max_iter": args.max_iter, "repeats": args.repeats}  # fmt: skip
    return {"settings": settings, "runs": results, "same_scores": bool(same)}


def tables(p: dict) -> list:
    """The tables of a payload, as blocks for the harness to print and store."""
    parts = []
    if "incremental" in p:
        s = p["incremental"]["settings"]
        spec = [("", "name"), ("seconds", "seconds", 2), ("s/block", "seconds_per_block", 3),
                ("epochs", "n_iter"),
                ("peak above baseline MB", "peak_above_baseline_bytes", megabytes),
                ("loss", "final_loss", 2)]  # fmt: skip
        parts += [
            f"(a) {s['rows']:,} x {s['features']} float64 rows ({megabytes(s['input_bytes'])} "
            f"MB as one array) in {s['blocks']} blocks of {s['block_rows']:,} rows, "
            f"{s['passes']} passes, each way in a fresh process.",
            columns(spec, p["incremental"]["runs"]),
        ]
    if "grid" in p:
        grid, s = p["grid"], p["grid"]["settings"]
        spec = [
            ("backend", "name"),
            ("median s", "median", 2),
            ("speed-up", "speedup", lambda v: f"{num(v, 2)}x"),
            ("cluster start s", "startup", lambda v: "" if v is None else num(v, 1)),
        ]
        parts += [
            f"(b) `GridSearchCV`, 4 fits of {s['max_iter']} epochs on digits "
            f"({s['n_samples']:,} x {s['n_features']}); timed runs of each: {s['repeats']}.",
            columns(spec, grid["runs"]),
            "The same cross-validation scores from every backend: "
            f"{'yes' if grid['same_scores'] else 'NO'}.",
        ]
    return [*parts, ", ".join(f"{k} {v}" for k, v in p.get("versions", {}).items()) + "."]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--features", type=int, default=50)
    parser.add_argument("--blocks", type=int, default=20)
    parser.add_argument("--passes", type=int, default=2)
    parser.add_argument("--max-iter", type=int, default=40, help="epochs of each grid fit")
    parser.add_argument("--repeats", type=int, default=3, help="timed grid runs per backend")
    parser.add_argument("--parts", default="incremental,grid")
    add_threads(parser)  # here and in the (a) workers
    args = parse(parser, argv, worker_fit, rows=20_000, blocks=4, max_iter=2, repeats=1)
    run = begin("bench_dask", __file__, args, argv)
    import dask
    import dask_ml
    import distributed

    payload = {"versions": {m.__name__: m.__version__ for m in (dask, distributed, dask_ml)}}
    if "incremental" in args.parts:
        payload["incremental"] = part_incremental(args)
    if "grid" in args.parts:
        payload["grid"] = part_grid(args)
    finish(run, payload, args, tables)
    return 0


if __name__ == "__main__":
    sys.exit(main())
