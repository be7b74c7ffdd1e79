"""Synthetic tables: VAEEstimator(likelihood="auto") against SDV's TVAE and CTGAN.

    python benchmarks/bench_synth.py                       # reporting group
    python benchmarks/bench_synth.py --group tuning
    python benchmarks/bench_synth.py --tools VAEEstimator --json skvae.json
    python benchmarks/bench_synth.py --tools --merge skvae.json peers.json  # rows of runs
    python benchmarks/bench_synth.py --quick               # seconds-long smoke run

The protocol (the tables of each group, the measurements, the targets) is bench_synth.py's
section of _protocols.md, rendered into README.md.
"""

import argparse
import sys
import warnings

import numpy as np
import pandas as pd
from _harness import (
    add_threads,
    begin,
    columns,
    earlier,
    finish,
    load_frame,
    merged_lines,
    parse,
    timed,
    verdict,
    yes,
)
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split

from skvae import VAEEstimator

HELD_OUT = 0.3
SKVAE = "VAEEstimator"
REAL = "real (held out)"
MIN_SHAPE = 0.9
# --quick: small fits whose numbers mean nothing.
QUICK_ROWS = 200
QUICK_SKVAE = {"max_iter": 3}
QUICK_SDV = {"epochs": 2}


#: name -> the categorical column the classifier predicts
TABLES = {
    "tuning": {"penguins": "species", "fair": "rate_marriage"},
    "reporting": {"anes96": "vote", "grunfeld": "firm", "modechoice": "mode"},
}
#: The zero-heavy continuous column of target 4.
ZERO_HEAVY = ("fair", "affairs")


def is_numeric(series):
    return pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)


def quiet_sdv() -> None:
    """Silence SDV's advice to save the metadata it detected: given at every fit, not news."""
    warnings.filterwarnings("ignore", message=".*save_to_json", category=UserWarning)


def sdv_metadata(name, frame):
    from sdv.metadata import Metadata

    return Metadata.detect_from_dataframes({name: frame})


def fit_skvae(name, train, seed, quick):
    vae = VAEEstimator(likelihood="auto", random_state=seed, **(QUICK_SKVAE if quick else {}))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        seconds, cpu, _ = timed(lambda: vae.fit(train))
    warned = any(issubclass(w.category, ConvergenceWarning) for w in caught)
    synthetic = vae.sample(len(train), random_state=seed)
    info = {"n_iter": vae.n_iter_, "convergence_warning": warned,
            "likelihood": getattr(vae, "likelihood_", None)}  # fmt: skip
    return synthetic, seconds, cpu, info


def _fit_sdv(kind):
    def fit(name, train, seed, quick):
        import torch
        from sdv.single_table import CTGANSynthesizer, TVAESynthesizer

        cls = {"TVAE": TVAESynthesizer, "CTGAN": CTGANSynthesizer}[kind]
        torch.manual_seed(seed)
        np.random.seed(seed)  # noqa: NPY002 (SDV and rdt draw from the global generator)
        synthesizer = cls(sdv_metadata(name, train), **(QUICK_SDV if quick else {}))
        seconds, cpu, _ = timed(lambda: synthesizer.fit({name: train}))
        synthetic = synthesizer.sample(len(train))[name]
        return synthetic, seconds, cpu, {}

    return fit


TOOLS = {SKVAE: fit_skvae, "TVAE": _fit_sdv("TVAE"), "CTGAN": _fit_sdv("CTGAN")}


def as_frame(synthetic, real):
    """The draws as a DataFrame; an array gets the real table's column names."""
    if isinstance(synthetic, pd.DataFrame):
        return synthetic
    return pd.DataFrame(np.asarray(synthetic), columns=real.columns)


def quality(real, synthetic, metadata):
    """SDMetrics' overall quality, its two properties and the shape score per column."""
    with warnings.catch_warnings():
        # The single-table report is deprecated for a unified one; its scores are the same.
        warnings.simplefilter("ignore", FutureWarning)
        from sdmetrics.reports.single_table import QualityReport

    report = QualityReport()
    report.generate(real, synthetic, metadata, verbose=False)
    properties = report.get_properties().set_index("Property")["Score"]
    shapes = report.get_details("Column Shapes").set_index("Column")["Score"]
    return {"quality": report.get_score(), "column_shapes": properties["Column Shapes"],
            "column_pair_trends": properties["Column Pair Trends"],
            "shape_per_column": shapes.to_dict()}  # fmt: skip


def classifier_frame(frame, real):
    """Features a HistGradientBoostingClassifier takes: numbers, and categories of labels."""
    out = {}
    for column in frame.columns:
        if is_numeric(real[column]):
            out[column] = pd.to_numeric(frame[column], errors="coerce").astype(np.float64)
        else:
            labels = sorted(real[column].dropna().astype(str).unique())
            values = frame[column].astype(object).where(frame[column].notna())
            out[column] = pd.Categorical(values.map(str, na_action="ignore"), categories=labels)
    return pd.DataFrame(out, index=frame.index)


def labels(series, real):
    if is_numeric(real):
        return pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64)
    return series.astype(object).map(str, na_action="ignore").to_numpy()


def tstr_accuracy(training, test, real, target):
    """Accuracy on the real held-out rows of a classifier fitted on ``training``."""
    y = labels(training[target], real[target])
    keep = pd.notna(y)
    X = classifier_frame(training.drop(columns=target), real)[keep]
    y_test = labels(test[target], real[target])
    X_test = classifier_frame(test.drop(columns=target), real)
    if len(np.unique(y[keep])) < 2:  # one class drawn: the classifier can only say it
        return float(np.mean(y_test == y[keep][0]))
    clf = HistGradientBoostingClassifier(categorical_features="from_dtype", random_state=0)
    return float(clf.fit(X, y[keep]).score(X_test, y_test))


def draw_checks(train, synthetic):
    """Draws outside each numeric column's training range, and off the integer grid."""
    outside, off_grid, integer_columns = {}, {}, []
    for column in train.columns:
        if not is_numeric(train[column]):
            continue
        seen = train[column].dropna().to_numpy(dtype=np.float64)
        drawn = pd.to_numeric(synthetic[column], errors="coerce").dropna().to_numpy(np.float64)
        outside[column] = int(np.sum((drawn < seen.min()) | (drawn > seen.max())))
        if np.all(seen == np.round(seen)):
            integer_columns.append(column)
            off_grid[column] = int(np.sum(drawn != np.round(drawn)))
    return {"outside_range": outside, "off_grid": off_grid, "integer_columns": integer_columns,
            "n_outside_range": sum(outside.values()),
            "n_off_grid": sum(off_grid.values())}  # fmt: skip


def form_checks(train, synthetic, returned):
    """Whether the draws come in the training frame's form: columns, dtypes, labels."""
    same_columns = list(synthetic.columns) == list(train.columns)
    shared = [column for column in train.columns if column in synthetic]
    dtypes = {column: [str(train[column].dtype), str(synthetic[column].dtype)]
              for column in shared if synthetic[column].dtype != train[column].dtype}  # fmt: skip
    unknown = {}
    for column in train.columns:
        if column in synthetic and not is_numeric(train[column]):
            new = set(synthetic[column].dropna()) - set(train[column].dropna())
            if new:
                unknown[column] = sorted(map(str, new))[:5]
    return {"returned": type(returned).__name__, "same_columns": same_columns,
            "dtype_mismatches": dtypes, "unknown_labels": unknown,
            "missing_share_real": float(train.isna().to_numpy().mean()),
            "missing_share_drawn": float(synthetic.isna().to_numpy().mean())}  # fmt: skip


def run_unit(group, name, seed, tools, quick):
    """Every tool on one table and seed, in turn; one row per tool and the reference row."""
    target = TABLES[group][name]
    table = load_frame(name)
    if quick:
        table = table.sample(QUICK_ROWS, random_state=0) if len(table) > QUICK_ROWS else table
    train, test = train_test_split(table, test_size=HELD_OUT, stratify=table[target],
                                   random_state=seed)  # fmt: skip
    metadata = sdv_metadata(name, table).to_dict()["tables"][name]
    base = {"table": name, "seed": seed, "n_train": len(train), "n_test": len(test)}
    rows = [{**base, "tool": REAL, **quality(train, test, metadata),
             "accuracy": tstr_accuracy(train, test, table, target)}]  # fmt: skip
    for tool in tools:
        returned, seconds, cpu, info = TOOLS[tool](name, train, seed, quick)
        synthetic = as_frame(returned, train)
        row = {**base, "tool": tool, "fit_seconds": seconds, "fit_cpu_seconds": cpu, **info}
        row.update(quality(train, synthetic, metadata))
        row["accuracy"] = tstr_accuracy(synthetic, test, table, target)
        row.update(draw_checks(train, synthetic))
        row.update(form_checks(train, synthetic, returned))
        rows.append(row)
    print(f"  {name} seed {seed}: " + ", ".join(
        f"{r['tool']} quality {r['quality']:.3f} accuracy {r['accuracy']:.3f}"
        + (f" fit {r['fit_seconds']:.1f} s" if "fit_seconds" in r else "") for r in rows
    ), flush=True)  # fmt: skip
    return rows


def _mean(rows, key):
    values = [r[key] for r in rows if r.get(key) is not None]
    return float(np.mean(values)) if values else None


def summarise(rows, tables, methods):
    """Means per table and tool, the draws' counts, and the targets' verdicts."""
    cells = []
    for name in tables:
        for method in methods:
            mine = [r for r in rows if r["table"] == name and r["tool"] == method]
            if not mine:
                continue
            cell = {"table": name, "tool": method, "seeds": [r["seed"] for r in mine],
                    "shape": [mine[0]["n_train"], mine[0]["n_test"]]}  # fmt: skip
            for key in ("quality", "column_shapes", "column_pair_trends", "accuracy",
                        "fit_seconds", "fit_cpu_seconds", "n_iter"):  # fmt: skip
                cell[key] = _mean(mine, key)
            if method != REAL:
                cell["n_draws"] = sum(r["n_train"] for r in mine)
                for key in ("n_outside_range", "n_off_grid"):
                    cell[key] = sum(r[key] for r in mine)
                cell["integer_columns"] = mine[0]["integer_columns"]
                cell["frame_form"] = all(
                    r["returned"] == "DataFrame" and r["same_columns"]
                    and not r["dtype_mismatches"] and not r["unknown_labels"] for r in mine
                )  # fmt: skip
                cell["dtype_mismatches"] = mine[0]["dtype_mismatches"]
            if (name, method) != (ZERO_HEAVY[0], REAL) and name == ZERO_HEAVY[0]:
                shapes = [r["shape_per_column"][ZERO_HEAVY[1]] for r in mine]
                cell["zero_heavy_shape"] = float(np.mean(shapes))
            cells.append(cell)

    def get(name, method, key):
        return next((c[key] for c in cells if c["table"] == name and c["tool"] == method), None)

    targets = {}
    if SKVAE in methods and "TVAE" in methods:
        for key, label, better in [
            ("quality", "quality", np.greater_equal),
            ("accuracy", "train-on-synthetic accuracy", np.greater_equal),
            ("fit_seconds", "fit seconds", np.less_equal),
        ]:
            per_table = {t: bool(better(get(t, SKVAE, key), get(t, "TVAE", key)))
                         for t in tables}  # fmt: skip
            op = ">=" if better is np.greater_equal else "<="
            targets[f"1-{key}"] = {"criterion": f"every table: VAEEstimator's mean {label} {op} "
                                   "TVAE's", "passed": all(per_table.values()),
                                   "per_table": per_table}  # fmt: skip
    if SKVAE in methods:
        counts = {t: get(t, SKVAE, "n_outside_range") + get(t, SKVAE, "n_off_grid")
                  for t in tables}  # fmt: skip
        targets["2"] = {"criterion": "VAEEstimator: no draw outside the training range or off "
                        "the grid", "passed": all(n == 0 for n in counts.values()),
                        "per_table": counts}  # fmt: skip
        if ZERO_HEAVY[0] in tables:
            score = get(ZERO_HEAVY[0], SKVAE, "zero_heavy_shape")
            targets["4"] = {"criterion": f"{ZERO_HEAVY[0]}'s {ZERO_HEAVY[1]}: VAEEstimator's "
                            f"column shape score >= {MIN_SHAPE}", "passed": score >= MIN_SHAPE,
                            "score": score}  # fmt: skip
    return {"cells": cells, "targets": targets}


def tables(p: dict) -> list:
    """The tables of a payload, as blocks for the harness to print and store."""
    s, summary, methods = p["settings"], p["summary"], p["methods"]
    cells = {(c["table"], c["tool"]): c for c in summary["cells"]}
    order = [cells[t, m] for t in s["tables"] for m in methods if (t, m) in cells]
    targets = ", ".join(f"{t} `{v['target']}`" for t, v in s["tables"].items())
    parts = [
        f"The {p['group']} group; seeds 0-{s['seeds'] - 1}; {s['threads']} torch thread(s). "
        f"Classifier targets: {targets}.",
        *merged_lines(p.get("merged", [])),
    ]
    if p.get("merged"):
        parts.append("Each run's fit times were taken under its own load (its stamp says which).")
    spec = [("table", lambda c: f"{c['table']} ({c['shape'][0]} + {c['shape'][1]} rows)"),
            ("tool", "tool", lambda m: f"`{m}`" if m == SKVAE else m),
            ("seeds", "seeds", len), ("quality", "quality", 3),
            ("column shapes", "column_shapes", 3), ("pair trends", "column_pair_trends", 3),
            ("train-on-synthetic accuracy", "accuracy", 3), ("fit s", "fit_seconds", 1),
            ("fit CPU s", "fit_cpu_seconds", 1), ("epochs", "n_iter", 0)]  # fmt: skip
    draws = [("table", "table"), ("tool", "tool"), ("draws", "n_draws", "{:,}"),
             ("outside range", "n_outside_range", "{:,}"),
             ("off the integer grid", "n_off_grid", "{:,}"),
             ("whole-valued columns", "integer_columns", lambda v: ", ".join(v) or "none"),
             ("frame as fitted", "frame_form", yes),
             ("dtypes that differ", "dtype_mismatches",
              lambda v: ", ".join(f"{k}: {a} -> {b}" for k, (a, b) in v.items()))]  # fmt: skip
    parts += [
        "Means over the seeds. Quality: SDMetrics' QualityReport against the training rows; "
        "accuracy: a HistGradientBoostingClassifier fitted on the draws (on the training "
        'rows for "real (held out)"), scored on the held-out real rows. Fit CPU s: the '
        "process's CPU seconds over all threads, which other processes' load does not "
        "inflate as it does the wall-clock seconds.",
        columns(spec, order),
        "The draws, summed over the seeds: outside a numeric column's training range; off "
        "the integer grid of the columns whose training values are whole; whether every "
        "draw came as a DataFrame with the training frame's columns, dtypes and labels "
        "(the dtypes that differ, at seed 0).",
        columns(draws, [c for c in order if c["tool"] != REAL]),
    ]
    zero = [c for c in summary["cells"] if "zero_heavy_shape" in c]
    if zero:
        parts += [
            "Column shape score of fair's `affairs` (68% zeros), mean over the seeds:",
            columns(
                [("table", "table"), ("tool", "tool"), ("shape score", "zero_heavy_shape", 3)],
                zero,
            ),
        ]
    informational = " (informational: tuning group)" if p["group"] == "tuning" else ""

    def per_table(values):
        pairs = (values or {}).items()
        return ", ".join(f"{k}: {verdict(x) if isinstance(x, bool) else x}" for k, x in pairs)

    spec = [("target", 0), ("criterion", (1, "criterion")),
            ("verdict", (1, "passed"), lambda v: verdict(v) + informational),
            ("per table", (1, "per_table"), per_table)]  # fmt: skip
    if summary["targets"]:
        parts.append(columns(spec, summary["targets"].items()))
    return parts


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("--group", choices=["reporting", "tuning"], default="reporting")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--tables", nargs="*", default=None, help="a subset of the group")
    parser.add_argument("--tools", nargs="*", default=list(TOOLS), choices=list(TOOLS),
                        help="none: merge only")  # fmt: skip
    add_threads(parser, 1)
    parser.add_argument("--merge", nargs="*", default=(),
                        help="add the rows of earlier result files")  # fmt: skip
    args = parse(parser, argv, seeds=1)
    name = "bench_synth" if args.group == "reporting" else "bench_synth_tuning"
    run = begin(name, __file__, args, argv)
    quiet_sdv()
    names = args.tables or list(TABLES[args.group])
    rows = [row for seed in range(args.seeds) for table in names
            for row in run_unit(args.group, table, seed, args.tools, args.quick)]  # fmt: skip
    methods = [*args.tools]
    merged = []
    for stamp, earlier_run in earlier(args.merge):
        merged.append(stamp)
        # Rows of the tools this run measured itself would count twice.
        old = [r for r in earlier_run["rows"] if r["tool"] not in (*methods, REAL)]
        rows += old
        methods += [m for m in dict.fromkeys(r["tool"] for r in old) if m not in methods]
    methods = [REAL, *[m for m in TOOLS if m in methods]]
    targets = {t: {"target": TABLES[args.group][t]} for t in names}
    settings = {"seeds": args.seeds, "tables": targets, "held_out": HELD_OUT,
                "threads": args.threads, "quick": args.quick}  # fmt: skip
    payload = {"group": args.group, "settings": settings, "methods": methods, "merged": merged,
               "summary": summarise(rows, names, methods), "rows": rows}  # fmt: skip
    finish(run, payload, args, tables)
    return 0


if __name__ == "__main__":
    sys.exit(main())
