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
to about 1.5 GB of RAM; run it with::

    python benchmarks/bench_scale.py --json bench_scale.json

and a quick check with, e.g.::

    python benchmarks/bench_scale.py --sizes 2000,8000 --inference-rows 20000 --train-rows 5000

Options: ``--sizes``, ``--max-iter``/``--max-iter-large``/``--large`` and ``--repeats`` for
(a); ``--inference-rows``, ``--inference-features``, ``--n-components``, ``--train-rows`` and
``--train-iter`` for (b); ``--parts`` to run only one of them, ``--threads``, ``--json PATH``.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import platform
import shlex
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
CHUNK_ROWS = 2**14
MEMORY_SLACK_MB = 200
SEED = 0


# ---------------------------------------------------------------------- data


def make_data(n_rows: int, n_features: int, seed: int = SEED) -> np.ndarray:
    """Gaussian rows x = W z + mean + noise with z ~ N(0, I_5), as float64 (n_rows, d).

    Built chunk by chunk into one preallocated array, so the temporaries stay a few MB. The
    chunks have their own random streams: the first k rows do not depend on ``n_rows``.
    """
    rng = np.random.default_rng([seed, n_features])
    W = rng.standard_normal((LATENT_DIM, n_features))
    offset = 3.0 * rng.standard_normal(n_features)
    X = np.empty((n_rows, n_features), dtype=np.float64)
    for i, start in enumerate(range(0, n_rows, CHUNK_ROWS)):
        stop = min(start + CHUNK_ROWS, n_rows)
        rng_z = np.random.default_rng([seed, n_features, i, 0])
        rng_e = np.random.default_rng([seed, n_features, i, 1])
        block = X[start:stop]
        np.matmul(rng_z.standard_normal((stop - start, LATENT_DIM)), W, out=block)
        block += NOISE_SCALE * rng_e.standard_normal((stop - start, n_features))
        block += offset
    return X


# ---------------------------------------------------------------------- workers


def _set_threads(threads):
    if threads is not None:
        import torch

        torch.set_num_threads(threads)


def worker_fit(task: dict) -> dict:
    """Fit VAEEstimator on make_data(rows, features) ``repeats`` times; time each fit."""
    from sklearn.exceptions import ConvergenceWarning

    from skvae import VAEEstimator

    _set_threads(task["threads"])
    import torch

    rss_before_input = current_rss()
    X = make_data(task["rows"], task["features"])
    rss_after_input = current_rss()
    # Untimed warm-up fit on a slice: the first fit in a process pays one-off costs.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        VAEEstimator(max_iter=1, early_stopping=False, random_state=SEED).fit(X[:CHUNK_ROWS])
    peak_before_fit = peak_rss()
    seconds, n_iter, final_loss = [], [], []
    for _ in range(task["repeats"]):
        vae = VAEEstimator(max_iter=task["max_iter"], early_stopping=False, random_state=SEED)
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            vae.fit(X)
        seconds.append(time.perf_counter() - start)
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
    """Time one inference step on make_data(rows, features) and measure its peak memory."""
    # Everything the step imports is loaded before the baseline is taken.
    import sklearn.decomposition  # noqa: F401
    import torch

    import skvae  # noqa: F401

    _set_threads(task["threads"])
    with open(task["model_path"], "rb") as f:
        model = pickle.load(f)
    method = getattr(model, task["method"])

    rss_before_input = current_rss()
    X = make_data(task["rows"], task["features"])
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


def run_worker(task: dict, timeout: float | None = None) -> dict:
    """Run ``task`` in a fresh Python process (this script with the hidden --_worker flag)."""
    with tempfile.TemporaryDirectory() as tmp:
        out_path = os.path.join(tmp, "result.json")
        task = {**task, "out": out_path}
        cmd = [sys.executable, os.path.abspath(__file__), "--_worker", json.dumps(task)]
        # ru_maxrss survives execve: a child forked from this (large) process and exec'd
        # would start with this process's peak. A shell in between forks the worker from
        # its own small image, so the worker's ru_maxrss starts from its own memory.
        cmd = ["/bin/sh", "-c", '"$@"; exit $?', "sh", *cmd]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0 or not os.path.exists(out_path):
            raise RuntimeError(
                f"worker {task['kind']} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}"
            )
        with open(out_path) as f:
            return json.load(f)


def worker_main(task_json: str) -> int:
    task = json.loads(task_json)
    result = {"fit": worker_fit, "infer": worker_infer}[task["kind"]](task)
    with open(task["out"], "w") as f:
        json.dump(result, f)
    return 0


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
        results.append(res)
    ref = results[0]
    for res in results:
        res["per_row_ratio_to_smallest"] = (res["seconds_per_epoch"] / res["rows"]) / (
            ref["seconds_per_epoch"] / ref["rows"]
        )
    return results


def print_fit_table(results: list[dict]) -> None:
    ref_rows = results[0]["rows"]
    header = (
        f"{'rows':>9}{'epochs':>7}{'s/epoch':>10}{'us/row/ep':>11}"
        f"{'per row vs ' + format(ref_rows, ','):>19}{'input MB':>10}{'peak-in MB':>12}"
        f"{'loss':>10}"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        extra = (r["peak"] - r["rss_after_input"]) / MB
        print(
            f"{r['rows']:>9,}{r['n_iter'][0]:>7}{r['seconds_per_epoch']:>10.3f}"
            f"{1e6 * r['seconds_per_epoch'] / r['rows']:>11.2f}"
            f"{r['per_row_ratio_to_smallest']:>19.2f}{r['input_bytes'] / MB:>10.0f}"
            f"{extra:>12.0f}{r['final_loss'][-1]:>10.2f}"
        )
    print(
        "s/epoch: median over repeats of fit time / n_iter_; 'peak-in MB': the fit's peak "
        "RSS above the RSS with the input built; loss: last training loss per row (nats)."
    )


def part_inference(args, tmpdir: str) -> tuple[dict, list[dict]]:
    from sklearn.decomposition import PCA
    from sklearn.exceptions import ConvergenceWarning

    from skvae import VAEEstimator

    _set_threads(args.threads)
    X_train = make_data(args.train_rows, args.inference_features)
    vae = VAEEstimator(
        n_components=args.n_components,
        max_iter=args.train_iter,
        early_stopping=False,
        random_state=SEED,
    )
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        vae.fit(X_train)
    vae_fit_seconds = time.perf_counter() - start
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
        results.append(res)
    return model_info, results


def print_inference_table(results: list[dict]) -> None:
    header = (
        f"{'step':<19}{'seconds':>9}{'rows/s':>12}{'in MB':>8}{'out MB':>8}"
        f"{'peak-base MB':>14}{'bound MB':>10}{'extra MB':>10}{'bound':>7}"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        print(
            f"{r['step']:<19}{r['seconds']:>9.3f}{r['rows_per_second']:>12,.0f}"
            f"{r['input_bytes'] / MB:>8.0f}{r['output_bytes'] / MB:>8.1f}"
            f"{r['peak_over_baseline_bytes'] / MB:>14.0f}{r['bound_bytes'] / MB:>10.0f}"
            f"{r['extra_bytes'] / MB:>10.0f}{'holds' if r['bound_holds'] else 'BROKEN':>7}"
        )
    print(
        f"bound: peak RSS - RSS before the input (peak-base) <= input + output + "
        f"{MEMORY_SLACK_MB} MB, i.e. extra = peak - RSS with the input - output <= "
        f"{MEMORY_SLACK_MB} MB. The bound is the VAE's target; PCA rows are for comparison."
    )
    for r in results:
        if r["peak"] <= r["peak_before"]:
            print(
                f"note: {r['step']}: the step did not raise the process's peak RSS, so its extra "
                "is an upper bound"
            )
        if not r["output_finite"]:
            print(f"warning: {r['step']}: non-finite values in the output")


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
    parser.add_argument("--json", metavar="PATH", default=None, help="write results here")
    parser.add_argument("--_worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    for name in ("max_iter", "max_iter_large", "repeats", "inference_rows", "train_rows"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args._worker is not None:
        return worker_main(args._worker)

    import sklearn
    import torch

    _set_threads(args.threads)
    env = {
        "torch_version": torch.__version__,
        "sklearn_version": sklearn.__version__,
        "numpy_version": np.__version__,
        "torch_num_threads": torch.get_num_threads(),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "load_average_start": os.getloadavg(),
        "command": shlex.join(
            [sys.executable, *(sys.argv if argv is None else ["bench_scale", *argv])]
        ),
    }
    print(
        f"torch {env['torch_version']} ({env['torch_num_threads']} threads), sklearn "
        f"{env['sklearn_version']}, numpy {env['numpy_version']}; CPU: {env['cpu_model']}"
    )
    print(f"command: {env['command']}")
    warn_load(env["load_average_start"][0])
    results: dict = {"benchmark": "bench_scale", "environment": env}

    if args.parts in ("all", "fit"):
        print(
            f"\n(a) VAEEstimator fit time per epoch, {args.fit_features} features, "
            f"defaults + early_stopping=False, random_state=0, repeats={args.repeats}"
        )
        fit_results = part_fit(args)
        print()
        print_fit_table(fit_results)
        results["fit"] = fit_results

    if args.parts in ("all", "inference"):
        print(
            f"\n(b) inference on {args.inference_rows:,} x {args.inference_features} float64; "
            f"models fit on {args.train_rows:,} rows, n_components={args.n_components}"
        )
        with tempfile.TemporaryDirectory() as tmpdir:
            model_info, inf_results = part_inference(args, tmpdir)
        print(
            f"  VAE: {model_info['vae_max_iter']} epochs in {model_info['vae_fit_seconds']:.1f} "
            f"s, mean log-likelihood on 2000 training rows: VAE (IW bound, K="
            f"{model_info['vae_n_importance_samples']}) {model_info['vae_mean_score_train']:.2f}"
            f", PCA {model_info['pca_mean_score_train']:.2f}"
        )
        print()
        print_inference_table(inf_results)
        results["inference"] = {"model": model_info, "steps": inf_results}

    env["load_average_end"] = os.getloadavg()
    print(
        f"\nload average (1 min) at start {env['load_average_start'][0]:.2f}, at end "
        f"{env['load_average_end'][0]:.2f}, on {env['cpu_count']} CPUs"
    )
    warn_load(env["load_average_end"][0])
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
        print(f"\nresults written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
