"""How VAEEstimator's fit scales with the number of rows: time per epoch and memory.

    python benchmarks/bench_scale.py [--sizes 10000,100000,1e6] [--repeats 1] [--threads N]
    python benchmarks/bench_scale.py --quick --json /tmp/bench_scale.json   # smoke run

The protocol is bench_scale.py's section of _protocols.md, rendered into README.md.
"""

import argparse
import statistics
import sys

from _harness import (
    CHUNK_ROWS,
    SEED,
    add_options,
    add_threads,
    begin,
    columns,
    current_rss,
    finish,
    fit_quietly,
    gaussian_rows,
    megabytes,
    parse,
    peak_rss,
    run_in_fresh_process,
    set_threads,
)


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
    return {"rows": task["rows"], "features": task["features"], "max_iter": task["max_iter"],
            "seconds": seconds, "n_iter": n_iter, "final_loss": final_loss,
            "input_bytes": int(X.nbytes), "rss_before_input": rss_before_input,
            "rss_after_input": rss_after_input, "peak_before_fit": peak_before_fit,
            "peak": peak_rss(), "torch_num_threads": torch.get_num_threads()}  # fmt: skip


def part_fit(args) -> list[dict]:
    results = []
    for rows in args.sizes:
        max_iter = args.max_iter_large if rows >= args.large else args.max_iter
        print(f"  fitting {rows} x {args.fit_features} (max_iter={max_iter}) ...", flush=True)
        task = {"rows": rows, "features": args.fit_features, "max_iter": max_iter,
                "repeats": args.repeats, "threads": args.threads}  # fmt: skip
        res = run_in_fresh_process(__file__, task)
        per_epoch = [s / n for s, n in zip(res["seconds"], res["n_iter"], strict=True)]
        res["seconds_per_epoch"] = statistics.median(per_epoch)
        res["seconds_per_epoch_runs"] = per_epoch
        res["peak_above_input_bytes"] = res["peak"] - res["rss_after_input"]
        results.append(res)
    per_row = [res["seconds_per_epoch"] / res["rows"] for res in results]
    for res, cost in zip(results, per_row, strict=True):
        res["per_row_ratio_to_smallest"] = cost / per_row[0]
    return results


def _sizes(text: str) -> list[int]:
    try:
        sizes = [int(float(s)) for s in text.split(",") if s.strip()]
    except ValueError:
        msg = f"not a comma-separated list of sizes: {text!r}"
        raise argparse.ArgumentTypeError(msg) from None
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError("sizes must be positive")
    return sorted(set(sizes))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=_sizes, default=[10_000, 100_000, 1_000_000],
                        help="comma-separated row counts, e.g. 10000,100000,1e6")  # fmt: skip
    add_options(
        parser, ("--fit-features", 50, "columns of the fit data"),
        ("--max-iter", 2, "epochs per fit below --large"),
        ("--max-iter-large", 1, "epochs per fit from --large rows on"),
        ("--large", 1_000_000, "threshold of 'large'"),
        ("--repeats", 1, "fits per size (median reported)"),
    )  # fmt: skip
    add_threads(parser)
    args = parse(parser, argv, worker_fit, sizes=[1000, 4000])
    for name in ("max_iter", "max_iter_large", "repeats"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    run = begin("bench_scale", __file__, args, argv)
    print(f"VAEEstimator fit time per epoch, {args.fit_features} features, "
          f"defaults + early_stopping=False, random_state=0, repeats={args.repeats}")  # fmt: skip
    finish(run, {"fit": part_fit(args)}, args, tables)
    return 0


def tables(p: dict) -> list:
    """The tables of a payload, as blocks for the harness to print and store."""
    if "fit" not in p:
        return []
    fits = p["fit"]
    spec = [("rows", "rows", "{:,}"), ("epochs", ("n_iter", 0)),
            ("s/epoch", "seconds_per_epoch", 3),
            ("us/row/epoch", lambda r: 1e6 * r["seconds_per_epoch"] / r["rows"], 2),
            (f"per row vs {fits[0]['rows']:,}", "per_row_ratio_to_smallest", 2),
            ("input MB", "input_bytes", megabytes),
            ("peak above input MB", "peak_above_input_bytes", megabytes),
            ("final loss", ("final_loss", -1), 2)]  # fmt: skip
    return [
        f"(a) `VAEEstimator` fit, {fits[0]['features']} features, defaults with "
        "`early_stopping=False`; seconds per epoch are the fit's time over its epochs.",
        columns(spec, p["fit"]),
    ]


if __name__ == "__main__":
    sys.exit(main())
