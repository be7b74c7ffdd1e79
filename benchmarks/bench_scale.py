"""How VAEEstimator's fit scales with the number of rows: time per epoch and memory.

What is measured:

Fit time per epoch of ``VAEEstimator(max_iter=M, early_stopping=False, random_state=0)``
    (all other parameters at their defaults: Gaussian likelihood, n_components=2, hidden
    layers (128, 128), batch 128) on synthetic Gaussian data of 10k, 100k and 1M rows x 50
    features (float64): a random linear map of a 5-D standard normal latent, plus noise and
    an offset. Seconds per epoch is the ``fit`` wall time divided by ``n_iter_``, so it
    includes the per-fit fixed costs (input validation, scaling, the closing pass over the
    data for ``kl_per_component_``) spread over the M epochs. The table also gives the time
    per row relative to the smallest size (10k): it stays near 1 when fit time grows
    linearly with the rows. M is 2 (``--max-iter``), and 1 from 1M rows on
    (``--max-iter-large``). Each size runs in a fresh process (``run_in_fresh_process``)
    that builds the data, makes one untimed warm-up fit on 16k rows and then times ``--repeats``
    fits (median reported); it also reports its peak resident memory above the memory with
    the input built.

Inference at scale (``transform`` and ``score_samples`` on 1M rows, their throughput and
memory) is measured by ``bench_transform.py`` (d).

Nothing is asserted: the script reports. The full benchmark takes a few minutes on 2 idle
cores (most of it the 1M-row fit) and up
to about 1.5 GB of RAM::

    python benchmarks/bench_scale.py
    python benchmarks/bench_scale.py --quick --json /tmp/bench_scale.json   # smoke run

Options: ``--sizes``, ``--max-iter``/``--max-iter-large``/``--large``, ``--repeats``,
``--threads``.
"""

from __future__ import annotations

import argparse
import statistics
import sys

from _harness import (
    CHUNK_ROWS,
    SEED,
    add_output_options,
    apply_quick,
    begin,
    current_rss,
    finish,
    fit_quietly,
    gaussian_rows,
    megabytes,
    num,
    peak_rss,
    run_in_fresh_process,
    set_threads,
    table,
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


def run_worker(task: dict) -> dict:
    return run_in_fresh_process(__file__, task)


# ---------------------------------------------------------------------- the fits


def part_fit(args) -> list[dict]:
    results = []
    for rows in args.sizes:
        max_iter = args.max_iter_large if rows >= args.large else args.max_iter
        print(f"  fitting {rows} x {args.fit_features} (max_iter={max_iter}) ...", flush=True)
        task = {
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
        "--sizes",
        type=_sizes,
        default=[10_000, 100_000, 1_000_000],
        help="comma-separated row counts, e.g. 10000,100000,1e6",
    )
    parser.add_argument("--fit-features", type=int, default=50, help="columns of the fit data")
    parser.add_argument("--max-iter", type=int, default=2, help="epochs per fit below --large")
    parser.add_argument(
        "--max-iter-large", type=int, default=1, help="epochs per fit from --large rows on"
    )
    parser.add_argument("--large", type=int, default=1_000_000, help="threshold of 'large'")
    parser.add_argument("--repeats", type=int, default=1, help="fits per size (median reported)")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch.set_num_threads (unset: torch's)"
    )
    add_output_options(parser)
    parser.add_argument("--_worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    apply_quick(parser, args, sizes=[1000, 4000])
    for name in ("max_iter", "max_iter_large", "repeats"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    return args





def tables(p: dict) -> list:
    """The tables of a payload, as blocks for the harness to print and store."""
    parts = []
    if "fit" in p:
        fits = p["fit"]
        rows = [
            [
                f"{r['rows']:,}",
                str(r["n_iter"][0]),
                num(r["seconds_per_epoch"]),
                num(1e6 * r["seconds_per_epoch"] / r["rows"], 2),
                num(r["per_row_ratio_to_smallest"], 2),
                megabytes(r["input_bytes"]),
                megabytes(r["peak_above_input_bytes"]),
                num(r["final_loss"][-1], 2),
            ]
            for r in fits
        ]
        parts += [
            f"(a) `VAEEstimator` fit, {fits[0]['features']} features, defaults with "
            "`early_stopping=False`; seconds per epoch are the fit's time over its epochs.",
            table(
                [
                    "rows",
                    "epochs",
                    "s/epoch",
                    "us/row/epoch",
                    f"per row vs {fits[0]['rows']:,}",
                    "input MB",
                    "peak above input MB",
                    "final loss",
                ],
                rows,
            ),
        ]
    return parts


def main(argv=None) -> int:
    args = parse_args(argv)
    if args._worker is not None:
        return worker_main(args._worker, worker_fit)
    set_threads(args.threads)
    run = begin("bench_scale", __file__, args, argv)
    print(
        f"VAEEstimator fit time per epoch, {args.fit_features} features, "
        f"defaults + early_stopping=False, random_state=0, repeats={args.repeats}"
    )
    payload = {"fit": part_fit(args)}
    finish(run, payload, args, tables)
    return 0


if __name__ == "__main__":
    sys.exit(main())
