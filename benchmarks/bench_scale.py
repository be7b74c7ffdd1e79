"""How VAEEstimator scales with the number of rows: fit time, inference throughput, memory.

What is measured:

(a) Fit time per epoch of ``VAEEstimator(max_iter=M, early_stopping=False, random_state=0)``
    (all other parameters at their defaults: Gaussian likelihood, n_components=2, hidden
    layers (128, 128), batch 128) on synthetic Gaussian data of 10k, 100k and 1M rows x 50
    features (float64): a random linear map of a 5-D standard normal latent, plus noise and
    an offset. Seconds per epoch is the ``fit`` wall time divided by ``n_iter_``, so it
    includes the per-fit fixed costs (input validation, scaling, the closing pass over the
    data for ``kl_per_component_``) spread over the M epochs. The table also gives the time
    per row relative to the smallest size (10k): it stays near 1 when fit time grows
    linearly with the rows. M is 2 (``--max-iter``), and 1 from 1M rows on
    (``--max-iter-large``). Each size runs in a fresh process (launched as in (b)) that
    builds the data, makes one untimed warm-up fit on 16k rows and then times ``--repeats``
    fits (median reported); it also reports its peak resident memory above the memory with
    the input built.

(b) ``transform`` and ``score_samples`` of a VAEEstimator fitted on 100 features (defaults
    except n_components=5, early_stopping=False, max_iter=10, random_state=0, trained on a
    20k-row subset of the same synthetic distribution) on 1M x 100 float64 rows, beside
    ``sklearn.decomposition.PCA(n_components=5)`` (fitted on the same subset) ``transform``
    and ``score_samples``: throughput in rows per second and peak memory. Each step runs in
    a fresh process (this script with a hidden flag, launched through ``/bin/sh`` because
    ``ru_maxrss`` survives ``execve``: a direct child would start with this process's peak).
    The worker loads the pickled model, builds the input array in small chunks (so that
    building it leaves no higher peak behind), notes its resident memory (VmRSS), makes
    one untimed warm-up call on 16k rows (what it keeps counts against the step) and then
    times the call on the whole array. Its extra memory is ``ru_maxrss`` (the process's
    peak, KiB on Linux) minus that resident memory minus the size of the output; the bound
    checked is peak <= memory before the input + input + output + 200 MB, i.e. extra <=
    200 MB.

Nothing is asserted: the script reports. The full benchmark takes a few minutes on 2 idle
cores (most of it the 1M-row fit and ``score_samples`` with 50 importance samples) and up
to about 1.5 GB of RAM::

    python benchmarks/bench_scale.py
    python benchmarks/bench_scale.py --quick --json /tmp/bench_scale.json   # smoke run

Options: ``--sizes``, ``--max-iter``/``--max-iter-large``/``--large`` and ``--repeats`` for
(a); ``--inference-rows``, ``--inference-features``, ``--n-components``, ``--train-rows`` and
``--train-iter`` for (b); ``--parts`` to run only one of them, ``--threads``.
"""

from __future__ import annotations

import argparse
import os
import pickle
import statistics
import sys
import tempfile
import time

import numpy as np
from _harness import (
    CHUNK_ROWS,
    MB,
    SEED,
    add_output_options,
    apply_quick,
    begin,
    current_rss,
    finish,
    fit_quietly,
    gaussian_rows,
    peak_rss,
    run_in_fresh_process,
    set_threads,
    worker_main,
)

MEMORY_SLACK_MB = 200


# ---------------------------------------------------------------------- workers


def worker_fit(task: dict) -> dict:
    """Fit VAEEstimator on gaussian_rows(rows, features) ``repeats`` times; time each fit."""
    import torch

    from skvae import VAEEstimator

    set_threads(task["threads"])
    rss_before_input = current_rss()
    X = gaussian_rows(task["rows"], task["features"])
    rss_after_input = current_rss()
    # Untimed warm-up fit on a slice: the first fit in a process pays one-off costs.
    fit_quietly(VAEEstimator(max_iter=1, early_stopping=False, random_state=SEED), X[:CHUNK_ROWS])
    peak_before_fit = peak_rss()
    seconds, n_iter, final_loss = [], [], []
    for _ in range(task["repeats"]):
        vae = VAEEstimator(max_iter=task["max_iter"], early_stopping=False, random_state=SEED)
        seconds.append(fit_quietly(vae, X)[0])
        n_iter.append(int(vae.n_iter_))
        final_loss.append(float(vae.loss_curve_[-1]))
        del vae
    return {
        "rows": task["rows"],
        "features": task["features"],
        "max_iter": task["max_iter"],
        "seconds": seconds,
        "n_iter": n_iter,
        "final_loss": final_loss,
        "input_bytes": int(X.nbytes),
        "rss_before_input": rss_before_input,
        "rss_after_input": rss_after_input,
        "peak_before_fit": peak_before_fit,
        "peak": peak_rss(),
        "torch_num_threads": torch.get_num_threads(),
    }


def worker_infer(task: dict) -> dict:
    """Time one inference step on gaussian_rows(rows, features) and measure its peak memory."""
    # Everything the step imports is loaded before the baseline is taken.
    import sklearn.decomposition  # noqa: F401
    import torch

    import skvae  # noqa: F401

    set_threads(task["threads"])
    with open(task["model_path"], "rb") as f:
        model = pickle.load(f)
    method = getattr(model, task["method"])

    rss_before_input = current_rss()
    X = gaussian_rows(task["rows"], task["features"])
    rss_after_input = current_rss()
    # Untimed warm-up on one chunk (lazy initialisation, thread pools, buffers). It comes
    # after the baseline, so whatever it keeps counts against the step.
    method(X[:CHUNK_ROWS])
    rss_after_warmup = current_rss()
    peak_before = peak_rss()
    start = time.perf_counter()
    out = method(X)
    seconds = time.perf_counter() - start
    peak = peak_rss()
    return {
        "step": task["step"],
        "rows": task["rows"],
        "features": task["features"],
        "seconds": seconds,
        "rows_per_second": task["rows"] / seconds,
        "input_bytes": int(X.nbytes),
        "output_bytes": int(np.asarray(out).nbytes),
        "output_shape": list(np.shape(out)),
        "output_finite": bool(np.isfinite(out).all()),
        "rss_before_input": rss_before_input,
        "rss_after_input": rss_after_input,
        "rss_after_warmup": rss_after_warmup,
        "peak_before": peak_before,
        "peak": peak,
        "torch_num_threads": torch.get_num_threads(),
    }


WORKERS = {"fit": worker_fit, "infer": worker_infer}


def run_worker(task: dict) -> dict:
    return run_in_fresh_process(__file__, task)


# ---------------------------------------------------------------------- parts (a) and (b)


def part_fit(args) -> list[dict]:
    results = []
    for rows in args.sizes:
        max_iter = args.max_iter_large if rows >= args.large else args.max_iter
        print(f"  fitting {rows} x {args.fit_features} (max_iter={max_iter}) ...", flush=True)
        task = {
            "kind": "fit",
            "rows": rows,
            "features": args.fit_features,
            "max_iter": max_iter,
            "repeats": args.repeats,
            "threads": args.threads,
        }
        res = run_worker(task)
        per_epoch = [s / n for s, n in zip(res["seconds"], res["n_iter"], strict=True)]
        res["seconds_per_epoch"] = statistics.median(per_epoch)
        res["seconds_per_epoch_runs"] = per_epoch
        res["peak_above_input_bytes"] = res["peak"] - res["rss_after_input"]
        results.append(res)
    ref = results[0]
    for res in results:
        res["per_row_ratio_to_smallest"] = (res["seconds_per_epoch"] / res["rows"]) / (
            ref["seconds_per_epoch"] / ref["rows"]
        )
    return results


def part_inference(args, tmpdir: str) -> tuple[dict, list[dict]]:
    from sklearn.decomposition import PCA

    from skvae import VAEEstimator

    X_train = gaussian_rows(args.train_rows, args.inference_features)
    vae = VAEEstimator(
        n_components=args.n_components,
        max_iter=args.train_iter,
        early_stopping=False,
        random_state=SEED,
    )
    vae_fit_seconds = fit_quietly(vae, X_train)[0]
    pca = PCA(n_components=args.n_components, random_state=SEED).fit(X_train)
    model_info = {
        "train_rows": args.train_rows,
        "features": args.inference_features,
        "n_components": args.n_components,
        "vae_max_iter": args.train_iter,
        "vae_fit_seconds": vae_fit_seconds,
        "vae_final_loss": float(vae.loss_curve_[-1]),
        "vae_n_importance_samples": vae.n_importance_samples,
        "vae_mean_score_train": float(vae.score(X_train[:2000])),
        "pca_mean_score_train": float(pca.score(X_train[:2000])),
    }
    paths = {}
    for name, model in (("vae", vae), ("pca", pca)):
        paths[name] = os.path.join(tmpdir, f"{name}.pkl")
        with open(paths[name], "wb") as f:
            pickle.dump(model, f)
    del X_train, vae, pca

    steps = [
        ("VAE transform", "vae", "transform"),
        ("VAE score_samples", "vae", "score_samples"),
        ("PCA transform", "pca", "transform"),
        ("PCA score_samples", "pca", "score_samples"),
    ]
    results = []
    for step, model, method in steps:
        print(f"  {step} on {args.inference_rows} x {args.inference_features} ...", flush=True)
        task = {
            "kind": "infer",
            "step": step,
            "model_path": paths[model],
            "method": method,
            "rows": args.inference_rows,
            "features": args.inference_features,
            "threads": args.threads,
        }
        res = run_worker(task)
        res["extra_bytes"] = res["peak"] - res["rss_after_input"] - res["output_bytes"]
        res["bound_bytes"] = res["input_bytes"] + res["output_bytes"] + MEMORY_SLACK_MB * MB
        res["peak_over_baseline_bytes"] = res["peak"] - res["rss_before_input"]
        res["bound_holds"] = res["extra_bytes"] <= MEMORY_SLACK_MB * MB
        # Without a new peak, the step's extra memory is an upper bound.
        res["raised_peak"] = res["peak"] > res["peak_before"]
        results.append(res)
    return model_info, results


# ---------------------------------------------------------------------- main


def _sizes(text: str) -> list[int]:
    try:
        sizes = [int(float(s)) for s in text.split(",") if s.strip()]
    except ValueError:
        msg = f"not a comma-separated list of sizes: {text!r}"
        raise argparse.ArgumentTypeError(msg) from None
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError("sizes must be positive")
    return sorted(set(sizes))


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--parts", choices=["all", "fit", "inference"], default="all", help="what to run"
    )
    fit = parser.add_argument_group("(a) fit time per epoch")
    fit.add_argument(
        "--sizes",
        type=_sizes,
        default=[10_000, 100_000, 1_000_000],
        help="comma-separated row counts, e.g. 10000,100000,1e6",
    )
    fit.add_argument("--fit-features", type=int, default=50, help="columns of the fit data")
    fit.add_argument("--max-iter", type=int, default=2, help="epochs per fit below --large")
    fit.add_argument(
        "--max-iter-large", type=int, default=1, help="epochs per fit from --large rows on"
    )
    fit.add_argument("--large", type=int, default=1_000_000, help="threshold of 'large'")
    fit.add_argument("--repeats", type=int, default=1, help="fits per size (median reported)")
    inf = parser.add_argument_group("(b) inference throughput and memory")
    inf.add_argument("--inference-rows", type=int, default=1_000_000, help="rows to transform")
    inf.add_argument("--inference-features", type=int, default=100, help="columns")
    inf.add_argument("--n-components", type=int, default=5, help="VAE and PCA n_components")
    inf.add_argument("--train-rows", type=int, default=20_000, help="rows the models are fit on")
    inf.add_argument("--train-iter", type=int, default=10, help="VAE max_iter on that subset")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch.set_num_threads (unset: torch's)"
    )
    add_output_options(parser)
    parser.add_argument("--_worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    apply_quick(
        parser,
        args,
        sizes=[1000, 4000],
        inference_rows=4000,
        train_rows=2000,
        train_iter=2,
    )
    for name in ("max_iter", "max_iter_large", "repeats", "inference_rows", "train_rows"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args._worker is not None:
        return worker_main(args._worker, lambda task: WORKERS[task["kind"]](task))
    set_threads(args.threads)
    run = begin("bench_scale", __file__, args, argv)
    payload: dict = {}
    if args.parts in ("all", "fit"):
        print(
            f"(a) VAEEstimator fit time per epoch, {args.fit_features} features, "
            f"defaults + early_stopping=False, random_state=0, repeats={args.repeats}"
        )
        payload["fit"] = part_fit(args)
    if args.parts in ("all", "inference"):
        print(
            f"(b) inference on {args.inference_rows:,} x {args.inference_features} float64; "
            f"models fit on {args.train_rows:,} rows, n_components={args.n_components}"
        )
        with tempfile.TemporaryDirectory() as tmpdir:
            model_info, steps = part_inference(args, tmpdir)
        payload["inference"] = {
            "model": model_info,
            "steps": steps,
            "memory_slack_bytes": MEMORY_SLACK_MB * MB,
        }
    finish(run, payload, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
