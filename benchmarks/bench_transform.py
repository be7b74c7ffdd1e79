"""Latency of VAEEstimator.transform and score_samples beside PCA's, on one row and in bulk.

What is measured: ``VAEEstimator(n_components=5, random_state=0)`` (the defaults otherwise)
and ``PCA(n_components=5)``, both fitted on the same ``--train-rows`` (10,000) rows x
``--features`` (20) of synthetic Gaussian data (x = W z + offset + noise with a 5-D latent
z, the distribution of bench_scale.py), called in one process on held-out rows of the
same distribution:

(a) one row: ``transform(x)`` with ``x`` of shape (1, 20), the VAE and PCA alternating
    call by call, ``--calls`` (2,000) timed calls of each after ``--warmup`` (100) untimed
    ones; the same for ``score_samples(x)`` (the VAE's importance-weighted bound with its
    default 50 samples; PCA's exact log-likelihood under probabilistic PCA);
(b) bulk: ``transform`` of ``--bulk-rows`` (10,000 and 100,000) rows, alternating, one
    untimed call each and then ``--repeats`` (9) timed rounds.

Each call is timed with ``time.perf_counter``. The result holds the median time of each,
and the ratios VAE / PCA: the median over rounds of the per-round ratios and the ratio
of the medians. Target: a single-row ``transform`` within 3x of PCA's latency (ratio
<= 3). PASS/FAIL is reported, never asserted. Throughput on 1,000,000 rows, with
``score_samples`` and memory, is bench_scale.py's.

Under a minute on 2 idle cores::

    python benchmarks/bench_transform.py
    python benchmarks/bench_transform.py --quick --json /tmp/bench_transform.json  # smoke run
"""

from __future__ import annotations

import argparse
import statistics
import sys

import numpy as np
import torch
from _harness import (
    SEED,
    add_output_options,
    alternate,
    apply_quick,
    begin,
    finish,
    fit_quietly,
    gaussian_rows,
    ratio,
    set_threads,
)
from sklearn.decomposition import PCA

from skvae import VAEEstimator

N_COMPONENTS = 5
TARGET = 3.0


def calling(method, X):
    """``method(X)`` as a call without arguments whose output is dropped."""

    def call():
        method(X)

    return call


def quantiles(seconds: list[float]) -> dict:
    """Median, 10th and 90th percentile of per-call times, in microseconds."""
    us = 1e6 * np.asarray(seconds)
    return {
        "median_us": float(np.median(us)),
        "p10_us": float(np.percentile(us, 10)),
        "p90_us": float(np.percentile(us, 90)),
    }


def single_row(vae, pca, x, method: str, calls: int, warmup: int) -> dict:
    """Per-call latency of ``method`` on one row, VAE and PCA alternating call by call."""
    fns = {"VAE": calling(getattr(vae, method), x), "PCA": calling(getattr(pca, method), x)}
    alternate(fns, warmup, collect=False)
    runs = alternate(fns, calls, collect=False)
    summary = ratio(runs["VAE"]["seconds"], runs["PCA"]["seconds"])
    del summary["per_round"]
    return {
        "method": method,
        "calls": calls,
        "vae": quantiles(runs["VAE"]["seconds"]),
        "pca": quantiles(runs["PCA"]["seconds"]),
        "ratio": summary,
    }


def bulk(vae, pca, X, repeats: int) -> dict:
    """Seconds of ``transform`` on all rows of ``X``, VAE and PCA alternating."""
    fns = {"VAE": calling(vae.transform, X), "PCA": calling(pca.transform, X)}
    alternate(fns, 1)
    runs = alternate(fns, repeats)
    vae_seconds, pca_seconds = runs["VAE"]["seconds"], runs["PCA"]["seconds"]
    return {
        "rows": int(X.shape[0]),
        "vae_seconds": vae_seconds,
        "pca_seconds": pca_seconds,
        "vae_median_seconds": statistics.median(vae_seconds),
        "pca_median_seconds": statistics.median(pca_seconds),
        "vae_rows_per_second": X.shape[0] / statistics.median(vae_seconds),
        "pca_rows_per_second": X.shape[0] / statistics.median(pca_seconds),
        "ratio": ratio(vae_seconds, pca_seconds),
    }


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--train-rows", type=int, default=10_000, help="rows both are fit on")
    parser.add_argument("--features", type=int, default=20, help="columns of the data")
    parser.add_argument("--calls", type=int, default=2000, help="timed single-row calls")
    parser.add_argument("--warmup", type=int, default=100, help="untimed single-row calls")
    parser.add_argument(
        "--bulk-rows", type=int, nargs="+", default=[10_000, 100_000], help="bulk sizes"
    )
    parser.add_argument("--repeats", type=int, default=9, help="timed bulk rounds")
    parser.add_argument(
        "--max-iter", type=int, default=None, help="cap the VAE's epochs (smoke runs only)"
    )
    parser.add_argument(
        "--threads", type=int, default=None, help="torch.set_num_threads (unset: torch's)"
    )
    add_output_options(parser)
    args = parser.parse_args(argv)
    apply_quick(
        parser,
        args,
        train_rows=2000,
        calls=200,
        warmup=20,
        bulk_rows=[1000, 10_000],
        repeats=2,
        max_iter=5,
    )
    if min(args.calls, args.warmup, args.repeats, args.train_rows) < 1:
        parser.error("--calls, --warmup, --repeats and --train-rows must be >= 1")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    set_threads(args.threads)
    run = begin("bench_transform", __file__, args, argv)
    # One draw, split: the held-out rows come from the same distribution.
    X = gaussian_rows(args.train_rows + max(args.bulk_rows), args.features)
    X_train, X_test = X[: args.train_rows], X[args.train_rows :]
    params = {"n_components": N_COMPONENTS, "random_state": SEED}
    if args.max_iter is not None:
        params["max_iter"] = args.max_iter
    vae = VAEEstimator(**params)
    fit_seconds, _ = fit_quietly(vae, X_train)
    pca = PCA(n_components=N_COMPONENTS).fit(X_train)
    print(
        f"VAEEstimator({params}) fit on {args.train_rows} x {args.features} rows in "
        f"{fit_seconds:.1f} s ({vae.n_iter_} epochs)",
        flush=True,
    )

    x = np.ascontiguousarray(X_test[:1])
    single = []
    for method in ("transform", "score_samples"):
        print(f"  one row, {method}: {args.calls} calls each ...", flush=True)
        single.append(single_row(vae, pca, x, method, args.calls, args.warmup))
    single[0]["target"] = TARGET
    single[0]["passed"] = single[0]["ratio"]["median_of_rounds"] <= TARGET
    bulk_results = []
    for rows in args.bulk_rows:
        print(f"  transform of {rows} rows: {args.repeats} rounds ...", flush=True)
        bulk_results.append(bulk(vae, pca, np.ascontiguousarray(X_test[:rows]), args.repeats))

    X_score = X_test[: min(2000, len(X_test))]
    payload = {
        "settings": {
            "train_rows": args.train_rows,
            "features": args.features,
            "n_components": N_COMPONENTS,
            "vae_params": params,
            "vae_n_importance_samples": vae.n_importance_samples,
            "calls": args.calls,
            "warmup": args.warmup,
            "bulk_rows": args.bulk_rows,
            "repeats": args.repeats,
            "torch_threads": torch.get_num_threads(),
        },
        "model": {
            "vae_fit_seconds": fit_seconds,
            "vae_n_iter": int(vae.n_iter_),
            "vae_hit_max_iter": vae.n_iter_ >= vae.max_iter,
            "vae_heldout_score": float(vae.score(X_score)),
            "pca_heldout_score": float(pca.score(X_score)),
        },
        "single_row": single,
        "bulk": bulk_results,
    }
    finish(run, payload, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
