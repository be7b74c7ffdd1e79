"""Latency of VAEEstimator.transform and score_samples, on one row and in bulk.

    python benchmarks/bench_transform.py
    python benchmarks/bench_transform.py --quick --json /tmp/bench_transform.json  # smoke run

The protocol is bench_transform.py's section of _protocols.md, rendered into README.md.
"""

import argparse
import functools
import os
import pickle
import statistics
import sys
import tempfile
import time

import numpy as np
import torch
from _harness import (
    CHUNK_ROWS,
    MB,
    SEED,
    add_options,
    add_threads,
    alternate,
    begin,
    columns,
    current_rss,
    finish,
    fit_quietly,
    gaussian_rows,
    kwargs,
    megabytes,
    num,
    parse,
    peak_rss,
    ratio,
    run_in_fresh_process,
    set_threads,
    timed,
    verdict,
)
from sklearn.decomposition import PCA
from torch import nn

from skvae import VAEEstimator
from skvae._module import ACTIVATIONS

N_COMPONENTS = 5
TARGET = 3.0
# Issue 25's target 5: bulk inference within this factor of a bare float32 forward ...
BARE_TARGET = 1.5
# ... with at most this much memory beyond the input and the output.
MEMORY_SLACK_MB = 200
BARE_CHUNKS = (1024, 4096, 16384)


def calling(method, X):
    """``method(X)`` as a call without arguments whose output is dropped."""

    def call():
        method(X)

    return call


def quantiles(seconds: list[float]) -> dict:
    """Median, 10th and 90th percentile of per-call times, in microseconds."""
    us = 1e6 * np.asarray(seconds)
    return {"median_us": float(np.median(us)), "p10_us": float(np.percentile(us, 10)),
            "p90_us": float(np.percentile(us, 90))}  # fmt: skip


def single_row(vae, pca, x, method: str, calls: int, warmup: int) -> dict:
    """Per-call latency of ``method`` on one row, VAE and PCA alternating call by call."""
    fns = {"VAE": calling(getattr(vae, method), x), "PCA": calling(getattr(pca, method), x)}
    alternate(fns, warmup, collect=False)
    runs = alternate(fns, calls, collect=False)
    summary = ratio(runs["VAE"]["seconds"], runs["PCA"]["seconds"])
    del summary["per_round"]
    return {"method": method, "calls": calls, "vae": quantiles(runs["VAE"]["seconds"]),
            "pca": quantiles(runs["PCA"]["seconds"]), "ratio": summary}  # fmt: skip


def bulk(vae, pca, X, repeats: int) -> dict:
    """Seconds of ``transform`` on all rows of ``X``, VAE and PCA alternating."""
    fns = {"VAE": calling(vae.transform, X), "PCA": calling(pca.transform, X)}
    alternate(fns, 1)
    runs = alternate(fns, repeats)
    vae_seconds, pca_seconds = runs["VAE"]["seconds"], runs["PCA"]["seconds"]
    vae_median, pca_median = statistics.median(vae_seconds), statistics.median(pca_seconds)
    return {"rows": int(X.shape[0]), "vae_seconds": vae_seconds, "pca_seconds": pca_seconds,
            "vae_median_seconds": vae_median, "pca_median_seconds": pca_median,
            "vae_rows_per_second": X.shape[0] / vae_median,
            "pca_rows_per_second": X.shape[0] / pca_median,
            "ratio": ratio(vae_seconds, pca_seconds)}  # fmt: skip


def layer_shapes(network: nn.Module) -> list[tuple[int, int]]:
    """(inputs, outputs) of each affine layer of a fitted network, in order."""
    layers = [m for m in network.modules() if hasattr(m, "in_features")]
    return [(m.in_features, m.out_features) for m in layers]


def bare_network(shapes: list[tuple[int, int]], activation: str) -> nn.Sequential:
    """float32 ``nn.Linear`` layers of ``shapes`` with ``activation`` between them.

    The activation works in place where torch's module can (``nn.ReLU``), as skvae's
    inference does: the bare forward allocates no more than it must.
    """
    layers: list[nn.Module] = []
    for n_in, n_out in shapes:
        between = ACTIVATIONS[activation]()
        if hasattr(between, "inplace"):
            between.inplace = True
        layers += [nn.Linear(n_in, n_out), between]
    return nn.Sequential(*layers[:-1]).eval()


class BareForward:
    """The layer work of ``transform`` and ``score_samples`` as a bare float32 forward.

    The encoder's shapes on every row of X; for ``score_samples`` also the decoder's on K
    latent points per row: one chunk of random points decoded again and again, as the
    values do not change the work.
    """

    def __init__(self, vae: VAEEstimator, X: np.ndarray) -> None:
        module = vae.module_
        self.encoder = bare_network(layer_shapes(module.encoder), vae.activation)
        self.decoder = bare_network(layer_shapes(module.decoder), vae.activation)
        self.X = torch.from_numpy(np.asarray(X, dtype=np.float32))
        self.n_points = len(X) * vae.n_importance_samples
        self.Z = torch.randn(max(BARE_CHUNKS), module.n_components)
        self.chunk = {"transform": BARE_CHUNKS[0], "score_samples": BARE_CHUNKS[0]}

    def _encode(self, chunk: int) -> None:
        for start in range(0, len(self.X), chunk):
            self.encoder(self.X[start : start + chunk])

    @torch.inference_mode()
    def transform(self, chunk: int | None = None) -> None:
        self._encode(chunk or self.chunk["transform"])

    @torch.inference_mode()
    def score_samples(self, chunk: int | None = None) -> None:
        chunk = chunk or self.chunk["score_samples"]
        self._encode(chunk)
        for start in range(0, self.n_points, chunk):
            self.decoder(self.Z[: min(chunk, self.n_points - start)])

    def choose_chunks(self) -> dict:
        """Keep, for each method, the chunk whose one untimed run was the fastest."""
        for method in self.chunk:
            run = getattr(self, method)
            seconds = {chunk: timed(functools.partial(run, chunk))[0] for chunk in BARE_CHUNKS}
            self.chunk[method] = min(seconds, key=seconds.get)
        return dict(self.chunk)


def against_bare_forward(vae: VAEEstimator, X: np.ndarray, repeats: int) -> list[dict]:
    """``transform`` and ``score_samples`` of X beside the bare forward, alternating."""
    bare = BareForward(vae, X)
    bare.choose_chunks()
    fns = {}
    for method in ("transform", "score_samples"):
        fns[f"VAE {method}"] = calling(getattr(vae, method), X)
        fns[f"bare {method}"] = getattr(bare, method)
    alternate(fns, 1)
    runs = alternate(fns, repeats)
    results = []
    for method in ("transform", "score_samples"):
        vae_runs, bare_runs = runs[f"VAE {method}"], runs[f"bare {method}"]
        vae_seconds, bare_seconds = vae_runs["seconds"], bare_runs["seconds"]
        summary = ratio(vae_seconds, bare_seconds)
        results.append({"method": method, "rows": int(X.shape[0]),
                        "bare_chunk": bare.chunk[method], "vae_seconds": vae_seconds,
                        "bare_seconds": bare_seconds, "vae_cpu_seconds": vae_runs["cpu_seconds"],
                        "bare_cpu_seconds": bare_runs["cpu_seconds"],
                        "vae_median_seconds": statistics.median(vae_seconds),
                        "bare_median_seconds": statistics.median(bare_seconds), "ratio": summary,
                        "target": BARE_TARGET,
                        "passed": summary["median_of_rounds"] <= BARE_TARGET})  # fmt: skip
    return results


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
        "step": task["step"], "rows": task["rows"], "features": task["features"],
        "seconds": seconds, "rows_per_second": task["rows"] / seconds,
        "input_bytes": int(X.nbytes), "output_bytes": int(np.asarray(out).nbytes),
        "output_shape": list(np.shape(out)), "output_finite": bool(np.isfinite(out).all()),
        "rss_before_input": rss_before_input, "rss_after_input": rss_after_input,
        "rss_after_warmup": rss_after_warmup, "peak_before": peak_before, "peak": peak,
        "torch_num_threads": torch.get_num_threads(),
    }  # fmt: skip


def memory_at_scale(vae: VAEEstimator, rows: int, features: int) -> list[dict]:
    """Peak memory of ``transform`` and ``score_samples`` on ``rows`` rows, fresh processes."""
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        model_path = os.path.join(tmp, "vae.pkl")
        with open(model_path, "wb") as f:
            pickle.dump(vae, f)
        for method in ("transform", "score_samples"):
            print(f"  {method} of {rows:,} rows in a fresh process ...", flush=True)
            task = {"step": f"VAE {method}", "model_path": model_path, "method": method,
                    "rows": rows, "features": features, "threads": 1}  # fmt: skip
            res = run_in_fresh_process(__file__, task)
            res["method"] = method
            res["extra_bytes"] = res["peak"] - res["rss_after_input"] - res["output_bytes"]
            # Without a new peak, the step's extra memory is an upper bound.
            res["raised_peak"] = res["peak"] > res["peak_before"]
            res["slack_bytes"] = MEMORY_SLACK_MB * MB
            res["passed"] = res["extra_bytes"] <= MEMORY_SLACK_MB * MB
            results.append(res)
    return results


def tables(p: dict) -> list:
    """The tables of a payload, as blocks for the harness to print and store."""
    s, m = p["settings"], p["model"]
    method = ("method", "`{}`")
    of_rounds, of_medians = ("ratio", "median_of_rounds"), ("ratio", "of_medians")
    spread = lambda v: f"{num(v['p10_us'], 0)}-{num(v['p90_us'], 0)}"  # noqa: E731
    single = [("one row", *method), ("VAE us", ("vae", "median_us"), 0),
              ("PCA us", ("pca", "median_us"), 0), ("VAE us, 10th-90th pct.", "vae", spread),
              ("VAE / PCA", of_rounds, 2), ("ratio of medians", of_medians, 2),
              ("target", lambda r: f"<= {r['target']:.0f}: {verdict(r['passed'])}"
               if "target" in r else "")]  # fmt: skip
    bulk = [("rows", "rows", "{:,}"), ("VAE s", "vae_median_seconds", 4),
            ("PCA s", "pca_median_seconds", 4), ("VAE rows/s", "vae_rows_per_second", 0),
            ("PCA rows/s", "pca_rows_per_second", 0), ("VAE / PCA", of_rounds, 2)]  # fmt: skip
    parts = [
        f"`VAEEstimator({kwargs(s['vae_params'])})` (fit in {num(m['vae_fit_seconds'], 1)} s, "
        f"{m['vae_n_iter']} epochs) and `PCA(n_components={s['n_components']})`, both fit "
        f"on {s['train_rows']:,} x {s['features']}; held-out mean log-likelihood: VAE "
        f"{num(m['vae_heldout_score'], 2)} (K={s['vae_n_importance_samples']}), PCA "
        f"{num(m['pca_heldout_score'], 2)}. {s['torch_threads']} torch threads.",
        f"One row, {s['calls']:,} calls of each after {s['warmup']} untimed, alternating:",
        columns(single, p["single_row"]),
        f"`transform` in bulk; rounds of alternating runs: {s['repeats']}.",
        columns(bulk, p["bulk"]),
    ]
    if "bare_forward" not in p:
        return parts
    bare = [("bulk", *method), ("rows", "rows", "{:,}"), ("VAE s", "vae_median_seconds", 3),
            ("bare float32 s", "bare_median_seconds", 3), ("bare chunk", "bare_chunk", "{:,}"),
            ("VAE / bare", of_rounds, 2), ("ratio of medians", of_medians, 2),
            ("target", lambda r: f"<= {r['target']}: {verdict(r['passed'])}")]  # fmt: skip
    memory = [("memory", *method), ("rows", "rows", "{:,}"), ("seconds", "seconds", 2),
              ("rows/s", "rows_per_second", 0), ("input MB", "input_bytes", megabytes),
              ("output MB", lambda r: r["output_bytes"] / MB, 1),
              ("extra MB", lambda r: megabytes(r["extra_bytes"])
               + ("" if r["raised_peak"] else " (at most)")),
              ("target", lambda r: f"<= {megabytes(r['slack_bytes'])}: {verdict(r['passed'])}"),
              ]  # fmt: skip
    chunks = ", ".join(f"{c:,}" for c in s["bare_chunks"])
    return [
        *parts,
        "Bulk inference on one torch thread beside a bare float32 forward of the same work: "
        "`nn.Linear` layers of the fitted encoder's and decoder's shapes with their "
        "activation, on float32 rows, the encoder on every row and, for `score_samples`, the "
        f"decoder on its K={s['vae_n_importance_samples']} latent points per row, in chunks of "
        f"rows (the fastest of {chunks}); rounds of alternating runs: "
        f"{s['target_repeats']}.",
        columns(bare, p["bare_forward"]),
        "Memory, each call in a fresh process on one thread: the peak above the memory with "
        "the input built, minus the output.",
        columns(memory, p["memory"]),
    ]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--bulk-rows", type=int, nargs="+", default=[10_000, 100_000], help="bulk sizes"
    )
    add_options(
        parser, ("--train-rows", 10_000, "rows both are fit on"),
        ("--features", 20, "columns of the data"), ("--calls", 2000, "timed single-row calls"),
        ("--warmup", 100, "untimed single-row calls"), ("--repeats", 9, "timed bulk rounds"),
        ("--target-rows", 100_000, "rows of (c), against the bare forward"),
        ("--target-repeats", 5, "timed rounds of (c)"),
        ("--memory-rows", 1_000_000, "rows of (d), in fresh processes"),
        ("--max-iter", None, "cap the VAE's epochs (smoke runs only)"),
    )  # fmt: skip
    add_threads(parser)
    args = parse(
        parser, argv, worker_infer, train_rows=2000, calls=200, warmup=20,
        bulk_rows=[1000, 10_000], repeats=2, max_iter=5, target_rows=5000, target_repeats=2,
        memory_rows=20_000,
    )  # fmt: skip
    counts = (args.calls, args.warmup, args.repeats, args.train_rows, args.target_repeats)
    if min(*counts, args.target_rows, args.memory_rows) < 1:
        parser.error("--calls, --warmup, --repeats, --train-rows, --target-rows, --target-repeats "
                     "and --memory-rows must be >= 1")  # fmt: skip
    run = begin("bench_transform", __file__, args, argv)
    # One draw, split: the held-out rows come from the same distribution.
    X = gaussian_rows(args.train_rows + max(*args.bulk_rows, args.target_rows), args.features)
    X_train, X_test = X[: args.train_rows], X[args.train_rows :]
    params = {"n_components": N_COMPONENTS, "random_state": SEED}
    if args.max_iter is not None:
        params["max_iter"] = args.max_iter
    vae = VAEEstimator(**params)
    fit_seconds, _ = fit_quietly(vae, X_train)
    pca = PCA(n_components=N_COMPONENTS).fit(X_train)
    print(f"VAEEstimator({params}) fit on {args.train_rows} x {args.features} rows in "
          f"{fit_seconds:.1f} s ({vae.n_iter_} epochs)", flush=True)  # fmt: skip

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

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the target's condition
    print(f"  transform and score_samples of {args.target_rows} rows beside the bare float32 "
          f"forward, one thread: {args.target_repeats} rounds ...", flush=True)  # fmt: skip
    X_target = np.ascontiguousarray(X_test[: args.target_rows])
    target = against_bare_forward(vae, X_target, args.target_repeats)
    torch.set_num_threads(threads)
    memory = memory_at_scale(vae, args.memory_rows, args.features)

    X_score = X_test[: min(2000, len(X_test))]
    keys = ("train_rows", "features", "calls", "warmup", "bulk_rows", "repeats", "target_rows",
            "target_repeats", "memory_rows")  # fmt: skip
    settings = {key: getattr(args, key) for key in keys}
    settings.update(n_components=N_COMPONENTS, vae_params=params, bare_chunks=list(BARE_CHUNKS),
                    vae_n_importance_samples=vae.n_importance_samples,
                    torch_threads=torch.get_num_threads())  # fmt: skip
    model = {"vae_fit_seconds": fit_seconds, "vae_n_iter": int(vae.n_iter_),
             "vae_hit_max_iter": vae.n_iter_ >= vae.max_iter_,
             "vae_heldout_score": float(vae.score(X_score)),
             "pca_heldout_score": float(pca.score(X_score))}  # fmt: skip
    payload = {"settings": settings, "model": model, "single_row": single, "bulk": bulk_results,
               "bare_forward": target, "memory": memory}  # fmt: skip
    finish(run, payload, args, tables)
    return 0


if __name__ == "__main__":
    sys.exit(main())
