"""CPU cost of skvae's default fits before and after a change, on one thread, with their quality.

    python benchmarks/bench_cost.py --baseline c50674c                # the full run
    python benchmarks/bench_cost.py --baseline REV --targets 1 --group reporting --json t1.json
    python benchmarks/bench_cost.py --baseline c50674c --targets 1 2 3 5   # the full run and 5
    python benchmarks/bench_cost.py --quick --baseline HEAD           # smoke run, both sides

The protocol (the two trees and their workers, the targets, the groups) is bench_cost.py's
section of _protocols.md, rendered into README.md.
"""

import argparse
import ctypes
import functools
import gc
import math
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from _harness import (
    MB,
    REPO,
    alternate,
    baseline_tree,
    begin,
    columns,
    current_rss,
    finish,
    fit_noting_convergence,
    load_frame,
    num,
    parse,
    run_in_fresh_process,
    set_threads,
    table,
    threadpools,
    timed,
    verdict,
)
from bench_defaults import (
    PROCESSES,
    _imputers,
    _score_with_k,
    _vae,
    config,
    imputation_data,
    load_table,
    process_data,
    rmse,
    table_split,
)
from bench_impute import remove
from bench_synth import SKVAE, TABLES, TOOLS, quiet_sdv, run_unit
from threadpoolctl import threadpool_limits

from skvae import VAEEstimator

NAME = "bench_cost"
GROUPS = ("tuning", "reporting")
THREADS = 1
SCORE_K = 200
QUICK_SCORE_K = 20
LIMITS = {
    "1": {"max_geomean_ratio": 0.25, "max_ratio": 0.5, "max_ll_drop": 0.05},
    "2": {"max_peer_ratio": 10.0, "max_rmse_excess": 0.01},
    "3": {"max_peer_ratio": 1.0, "max_quality_drop": 0.01},
    "5": {"max_memory_ratio": 1.5},
}
TARGETS = [1, 2, 3, 5]
DEFAULT_TARGETS = [1, 2, 3]
MEMORY_SEEDS = [0]
PEERS = {"2": "IterativeImputer", "3": "TVAE"}


def limit_threads() -> None:
    """One torch thread, and one in each BLAS and OpenMP pool (the peers' too)."""
    set_threads(THREADS)
    threadpool_limits(THREADS)


def save_unit(tmp: str, unit: dict, **arrays) -> dict:
    """``unit`` with the path of a new .npz file in ``tmp`` that holds ``arrays``."""
    fd, path = tempfile.mkstemp(suffix=".npz", dir=tmp)
    os.close(fd)
    np.savez(path, **arrays)
    return {**unit, "path": path}


def fit_units(group: str, quick: bool, tmp: str) -> list[dict]:
    """Target 1's data: bench_defaults measurement 4's splits and measurement 5's rows."""
    units, cfg = [], config(group, 4, quick)
    for name in cfg["tables"]:
        X, _ = load_table(name)
        for split in cfg["splits"]:
            X_train, X_test = table_split(X, cfg, split)
            unit = {"group": group, "dataset": name, "seed": split,
                    "n_components": cfg["n_components"], "n_train": len(X_train),
                    "n_test": len(X_test)}  # fmt: skip
            units.append(save_unit(tmp, unit, X_train=X_train, X_test=X_test))
    cfg = config(group, 5, quick)
    for nc, seed in cfg["runs"]:
        X, X_test, _ = process_data(cfg, seed)
        name = f"{PROCESSES[cfg['process']][1]}, n_components={nc}"
        unit = {"group": group, "dataset": name, "seed": seed, "n_components": nc,
                "n_train": len(X), "n_test": len(X_test)}  # fmt: skip
        units.append(save_unit(tmp, unit, X_train=X, X_test=X_test))
    return units


def imputation_units(group: str, quick: bool, seeds: list[int], tmp: str) -> list[dict]:
    """Target 2's data: bench_defaults measurement 3's MCAR entries, tables standardised."""
    units, cfg = [], config(group, 3, quick)
    for name, kind in cfg["datasets"].items():
        for seed in seeds:
            X_full, X_missing, X_true, missing = imputation_data(cfg, name, seed)
            unit = {"group": group, "dataset": name, "kind": kind, "seed": seed,
                    "shape": list(X_full.shape)}  # fmt: skip
            units.append(save_unit(tmp, unit, X_missing=X_missing, X_true=X_true, missing=missing))
    return units


def prepare(groups, targets, quick: bool, seeds: list[int], tmp: str) -> dict:
    """Every unit of work of the run, per target; the arrays in files under ``tmp``."""
    jobs = {"1": [], "2": [], "3": [], "5": []}
    for group in groups:
        if 1 in targets:
            jobs["1"] += fit_units(group, quick, tmp)
        if 2 in targets:
            jobs["2"] += imputation_units(group, quick, seeds, tmp)
        if 3 in targets:
            jobs["3"] += [{"group": group, "dataset": table, "seed": seed}
                          for seed in seeds for table in TABLES[group]]  # fmt: skip
        if 5 in targets:
            jobs["5"] += imputation_units(group, quick, MEMORY_SEEDS, tmp)
    return jobs


def warm_up(imputer: str | None = None) -> None:
    """An untimed tiny fit (or ``imputer``'s), so that one-time costs are not measured."""
    X = np.random.default_rng(0).standard_normal((64, 4))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if imputer is None:
            VAEEstimator(max_iter=2, random_state=0).fit(X).score(X)
        else:
            _imputers(0, True)[imputer].fit_transform(remove(X, "MCAR", 0)[0])


def reset_peak_rss() -> None:
    """Set this process's peak RSS (VmHWM) to its RSS now (Linux)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError as exc:
        raise RuntimeError(
            "target 5 resets the peak RSS by writing 5 to /proc/self/clear_refs, which this "
            f"system does not allow ({exc}); run without target 5"
        ) from exc


def peak_extra(fn) -> tuple[int, object]:
    """``fn()``'s peak RSS above the process's RSS before it, in bytes, and its value."""
    gc.collect()
    # The C heap's free pages handed back (glibc): else memory an earlier fit freed, still
    # resident, would hide this fit's growth.
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):
        pass
    reset_peak_rss()
    before = current_rss()
    value = fn()
    return current_rss("VmHWM") - before, value


def _record(unit: dict, **values) -> dict:
    return {**{key: unit[key] for key in ("group", "dataset", "seed")}, **values}


def fit_vae(unit: dict, quick: bool, k: int, label: str, offset: int = 0) -> dict:
    """Target 1: one default fit, its CPU seconds, and its held-out score with K=k.

    ``offset`` is added to the unit's seed: the baseline's fits with other seeds measure
    how far a seed alone moves a data set's mean held-out score.
    """
    data = np.load(unit["path"])
    vae = _vae(quick, n_components=unit["n_components"], random_state=unit["seed"] + offset)
    seconds, cpu, (_, warned, _) = timed(lambda: fit_noting_convergence(vae, data["X_train"]))
    record = _record(unit, cpu_seconds=cpu, seconds=seconds, n_iter=int(vae.n_iter_),
                     log_likelihood=_score_with_k(vae, data["X_test"], k),
                     convergence_warning=warned, offset=offset)  # fmt: skip
    print(f"  {label} {unit['dataset']} seed {unit['seed']}: {cpu:.2f} CPU s, "
          f"{record['n_iter']} epochs, held-out {record['log_likelihood']:.3f}",
          flush=True)  # fmt: skip
    return record


def impute(imputer, unit: dict, memory: bool = False) -> dict:
    """Targets 2 and 5: one ``fit_transform``, its CPU seconds, the RMSE on the removed entries
    and, with ``memory``, the fit's peak extra memory in MB (:func:`peak_extra`)."""
    data = np.load(unit["path"])
    X_missing, X_true, missing = data["X_missing"], data["X_true"], data["missing"]

    def fit():
        return timed(lambda: fit_noting_convergence(imputer, X_missing, "fit_transform"))

    peak, (seconds, cpu, (_, warned, filled)) = peak_extra(fit) if memory else (None, fit())
    record = _record(unit, cpu_seconds=cpu, seconds=seconds, convergence_warning=warned,
                     rmse=rmse(filled, X_true, missing))  # fmt: skip
    return {**record, "peak_mb": peak / MB} if memory else record


def impute_vae(unit: dict, quick: bool, label: str, memory: bool = False) -> dict:
    imputer = _imputers(unit["seed"], quick)["VAEImputer"]
    record = {**impute(imputer, unit, memory), "n_iter": int(imputer.n_iter_)}
    peak = f", peak +{record['peak_mb']:.1f} MB" if memory else ""
    print(f"  {label} {unit['dataset']} seed {unit['seed']}: VAEImputer "
          f"{record['cpu_seconds']:.2f} CPU s, {record['n_iter']} epochs, RMSE "
          f"{record['rmse']:.4f}{peak}", flush=True)  # fmt: skip
    return record


def synth_record(row: dict, group: str) -> dict:
    """The part of a ``bench_synth.run_unit`` row that this benchmark reports."""
    keys = {"n_train": "n_train", "n_test": "n_test", "cpu_seconds": "fit_cpu_seconds",
            "seconds": "fit_seconds", "n_iter": "n_iter", "quality": "quality",
            "accuracy": "accuracy", "convergence_warning": "convergence_warning"}  # fmt: skip
    record = {key: row.get(source) for key, source in keys.items()}
    return {"group": group, "dataset": row["table"], "seed": row["seed"], **record}


def work(task: dict) -> dict:
    """A worker's run: the warm-up, then every fit of the task, each measured alone."""
    import skvae

    limit_threads()
    tree = Path(task["tree"]).resolve()
    warm_up()
    label, quick, k = f"[{task['side']}, round {task['round']}]", task["quick"], task["k"]
    # Target 5 first: no fit of targets 1 to 3 has then left memory in the process.
    if task["5"]:
        warm_up("VAEImputer")
    memory = [impute_vae(unit, quick, f"{label} memory", True) for unit in task["5"]]
    records = {
        "1": [fit_vae(unit, quick, k, label) for unit in task["1"]],
        "1_noise": [fit_vae(unit, quick, k, f"{label} seed + {offset}", offset)
                    for offset in task["noise_offsets"] for unit in task["1"]],
        "2": [impute_vae(unit, quick, label) for unit in task["2"]],
        "3": [synth_record(run_unit(u["group"], u["dataset"], u["seed"], [SKVAE], quick)[-1],
                           u["group"]) for u in task["3"]],
        "5": memory,
    }  # fmt: skip
    foreign = [name for name, module in list(sys.modules.items())
               if name.split(".")[0] == "skvae" and getattr(module, "__file__", None)
               and not Path(module.__file__).resolve().is_relative_to(tree)]  # fmt: skip
    if foreign:
        raise RuntimeError(f"skvae modules not from {tree}: {foreign}")
    return {"skvae_file": skvae.__file__, "skvae_version": skvae.__version__,
            "torch_threads": torch.get_num_threads(), "records": records}  # fmt: skip


def run_rounds(trees: dict, jobs: dict, rounds: int, quick: bool, k: int, noise_offsets=()):
    """Each side once per round in a fresh worker, the baseline first in odd rounds; the
    baseline's worker of the first round also fits target 1 with ``noise_offsets``."""
    runs = []  # in the order they ran

    def run_side(side: str) -> None:
        r = 1 + sum(run["side"] == side for run in runs)
        print(f"round {r}, {side}: skvae from {trees[side]}", flush=True)
        offsets = list(noise_offsets) if r == 1 and side == "baseline" else []
        task = {"side": side, "tree": str(trees[side]), "round": r, "quick": quick, "k": k,
                "noise_offsets": offsets, **jobs}  # fmt: skip
        env = {"SKVAE_TREE": str(trees[side])}
        runs.append({"side": side, "round": r, **run_in_fresh_process(__file__, task, env)})

    sides = [side for side in ("baseline", "current") if side in trees]
    fns = {side: functools.partial(run_side, side) for side in sides}
    seconds = alternate(fns, rounds, collect=False, swap=True)
    for run in runs:
        run["seconds"] = seconds[run["side"]]["seconds"][run["round"] - 1]
    return runs


def run_peers(jobs: dict, quick: bool) -> dict:
    """IterativeImputer on target 2's data and TVAE on target 3's, each once after an untimed
    small run, timed alike; with the quality of target 3's held-out real rows ("real")."""
    peers = {"2": [], "3": [], "real": []}
    if jobs["2"]:
        warm_up("IterativeImputer")
    if jobs["3"]:
        unit = jobs["3"][0]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            TOOLS["TVAE"](unit["dataset"], load_frame(unit["dataset"]).head(50), 0, True)
    for unit in jobs["2"]:
        peers["2"].append(impute(_imputers(unit["seed"], quick)["IterativeImputer"], unit))
        print(f"  [peer] {unit['dataset']} seed {unit['seed']}: IterativeImputer "
              f"{peers['2'][-1]['cpu_seconds']:.2f} CPU s, RMSE {peers['2'][-1]['rmse']:.4f}",
              flush=True)  # fmt: skip
    for unit in jobs["3"]:
        real, tvae = run_unit(unit["group"], unit["dataset"], unit["seed"], ["TVAE"], quick)
        peers["3"].append(synth_record(tvae, unit["group"]))
        peers["real"].append(synth_record(real, unit["group"]))
    return peers


KEYS = {
    "1": ("cpu_seconds", "seconds", "n_iter", "log_likelihood"),
    "2": ("cpu_seconds", "seconds", "n_iter", "rmse"),
    "3": ("cpu_seconds", "seconds", "n_iter", "quality", "accuracy", "n_train", "n_test"),
    "5": ("peak_mb", "cpu_seconds", "seconds", "n_iter", "rmse"),
}


def side_summary(records: list[dict], keys) -> dict:
    """Per key, the mean over the seeds of each seed's median over the rounds."""
    by_seed = {}
    for record in records:
        by_seed.setdefault(record["seed"], []).append(record)
    means = {}
    for key in keys:
        medians = [np.median([r[key] for r in rs]) for rs in by_seed.values()]
        means[key] = None if any(v is None for v in medians) else float(np.mean(medians))
    warned = sum(bool(r.get("convergence_warning")) for r in records)
    return {**means, "seeds": sorted(by_seed), "convergence_warnings": warned}


def compare(target: str, runs: list, peers: dict) -> list[dict]:
    """One row per data set: per side ("baseline", "current", the peer), its means."""
    sources = {side: [r for run in runs if run["side"] == side for r in run["records"][target]]
               for side in ("baseline", "current")}  # fmt: skip
    if target in PEERS:
        sources[PEERS[target]] = peers[target]
    if target == "3":
        sources["real"] = peers["real"]
    rows = []
    for group, dataset in dict.fromkeys((r["group"], r["dataset"]) for r in sources["current"]):
        row = {"group": group, "dataset": dataset, "sides": {}}
        for side, records in sources.items():
            mine = [r for r in records if (r["group"], r["dataset"]) == (group, dataset)]
            if mine:
                present = [key for key in KEYS[target] if mine[0].get(key) is not None]
                row["sides"][side] = side_summary(mine, present)
        rows.append(row)
    return rows


def _ratio(row: dict, key: str, over: str) -> float | None:
    """current / ``over`` of ``key``, or None where either side lacks it (or ``over``'s is 0)."""
    a = row["sides"].get("current", {}).get(key)
    b = row["sides"].get(over, {}).get(key)
    return None if a is None or not b else a / b


def _difference(row: dict, key: str) -> float | None:
    a = row["sides"].get("current", {}).get(key)
    b = row["sides"].get("baseline", {}).get(key)
    return None if a is None or b is None else a - b


def _seed_spread(row: dict, noise: list[dict]) -> float | None:
    """Largest minus smallest of the baseline's mean held-out scores over its seed sets.

    The sets: the baseline's own seeds, and those seeds plus each noise offset. A change
    that only moves the training's rounding moves a data set's mean about this much.
    """
    mine = [r for r in noise if (r["group"], r["dataset"]) == (row["group"], row["dataset"])]
    baseline = row["sides"].get("baseline", {}).get("log_likelihood")
    if not mine or baseline is None:
        return None
    means = [baseline]
    for offset in sorted({r["offset"] for r in mine}):
        means.append(float(np.mean([r["log_likelihood"] for r in mine if r["offset"] == offset])))
    return float(max(means) - min(means))


def derived(target: str, row: dict, noise: list[dict]) -> dict:
    """The ratios and differences a target's verdicts judge."""
    if target == "1":
        return {"ratio": _ratio(row, "cpu_seconds", "baseline"),
                "ll_difference": _difference(row, "log_likelihood"),
                "ll_seed_spread": _seed_spread(row, noise)}  # fmt: skip
    if target == "5":
        return {"memory_ratio": _ratio(row, "peak_mb", "baseline")}
    out = {"ratio": _ratio(row, "cpu_seconds", "baseline"),
           "peer_ratio": _ratio(row, "cpu_seconds", PEERS[target])}  # fmt: skip
    if target == "3":
        return {**out, "quality_difference": _difference(row, "quality")}
    rmse_ratio = _ratio(row, "rmse", "baseline")
    return {**out, "rmse_excess": None if rmse_ratio is None else rmse_ratio - 1.0}


def summarise(runs: list, peers: dict, jobs: dict) -> dict:
    """Per target, one row per data set with its ratios and differences."""
    noise = [r for run in runs for r in run["records"].get("1_noise", [])]
    summary = {}
    for target, units in jobs.items():
        if not units:
            continue
        summary[target] = compare(target, runs, peers)
        for row in summary[target]:
            key = (row["group"], row["dataset"])
            unit = next(u for u in units if (u["group"], u["dataset"]) == key)
            row.update({k: unit[k] for k in ("n_train", "n_test", "shape", "kind") if k in unit})
            row.update(derived(target, row, noise))
    return summary


def _check(criterion: str, values: dict, limit: float, worst: str) -> dict:
    """The data sets' ``values``, their ``worst`` ("max" or "min") against ``limit``; not
    judged where a value is missing (no baseline)."""
    check = {"criterion": criterion, "values": values, "worst": None, "passed": None}
    if values and all(v is not None for v in values.values()):
        name = (max if worst == "max" else min)(values, key=values.get)
        check["worst"] = [name, values[name]]
        check["passed"] = bool(values[name] <= limit if worst == "max" else values[name] >= limit)
    return check


#: Per target, its criteria: (text, the rows' key, the limit in LIMITS, "max" or "min" of the
#: rows' values against the limit, negated for "min").
CHECKS = {
    "1": [("geometric mean over the data sets of after / before CPU s <= {max_geomean_ratio}",
           "geometric mean", "max_geomean_ratio", "max"),
          ("after / before CPU s <= {max_ratio} on every data set", "ratio", "max_ratio", "max"),
          ("held-out log-likelihood after - before >= -{max_ll_drop} on every data set",
           "ll_difference", "max_ll_drop", "min")],
    "2": [("VAEImputer after / IterativeImputer CPU s <= {max_peer_ratio:g} on every data set",
           "peer_ratio", "max_peer_ratio", "max"),
          ("RMSE after / before - 1 <= {max_rmse_excess} on every data set", "rmse_excess",
           "max_rmse_excess", "max")],
    "3": [("fit CPU s after / TVAE's <= {max_peer_ratio:g} on every table", "peer_ratio",
           "max_peer_ratio", "max"),
          ("quality after - before >= -{max_quality_drop} on every table",
           "quality_difference", "max_quality_drop", "min")],
    "5": [("peak extra memory of a fit after / before <= {max_memory_ratio:g} on every data set",
           "memory_ratio", "max_memory_ratio", "max")],
}  # fmt: skip


def checks(target: str, rows: list[dict]) -> list[dict]:
    """The criteria of ``target`` on ``rows``, each a :func:`_check`."""
    lim, found = LIMITS[target], []
    for text, key, limit, worst in CHECKS[target]:
        values = {r["dataset"]: r.get(key) for r in rows}
        if key == "geometric mean":
            ratios = [r["ratio"] for r in rows]
            ok = ratios and all(v is not None and v > 0 for v in ratios)
            values = {key: math.exp(float(np.mean(np.log(ratios)))) if ok else None}
        bound = lim[limit] if worst == "max" else -lim[limit]
        found.append(_check(text.format(**lim), values, bound, worst))
    return found


def verdicts(summary: dict, groups) -> list[dict]:
    """Each target judged on each group and, when both ran, on both together."""
    out = []
    for target, rows in summary.items():
        for scope in [*groups, "both groups"] if len(groups) > 1 else list(groups):
            mine = [r for r in rows if scope == "both groups" or r["group"] == scope]
            if scope == "both groups":
                # Across groups, each data set says which group it belongs to.
                mine = [{**r, "dataset": f"{r['dataset']} ({r['group']})"} for r in mine]
            found = checks(target, mine)
            judged = [c["passed"] for c in found if c["passed"] is not None]
            out.append({"target": target, "scope": scope, "checks": found,
                        "passed": all(judged) if judged else None})  # fmt: skip
    return out


COST_TITLES = {
    "1": "VAEEstimator's defaults on small and mid-size tables",
    "2": "VAEImputer's defaults beside IterativeImputer",
    "3": 'VAEEstimator(likelihood="auto") on mixed tables beside TVAE',
    "5": "the peak memory of VAEImputer's default fit",
}


def _side(header: str, side: str, key: str, digits: int) -> tuple:
    return (header, ("sides", side, key), digits)


def _before_after(header: str, key: str, digits: int) -> list[tuple]:
    return [_side(f"{header} before", "baseline", key, digits),
            _side(f"{header} after", "current", key, digits)]  # fmt: skip


def _shape(r: dict) -> str:
    return f"{r['dataset']} ({r['shape'][0]} x {r['shape'][1]}, {r['kind']})"


def _synth_rows(r: dict) -> str:
    n = r["sides"]["current"]
    return f"{r['dataset']} ({num(n['n_train'], 0)} + {num(n['n_test'], 0)} rows)"


SPECS = {
    "1": [("group", "group"), ("data set", "dataset"),
          ("rows (train + held out)", lambda r: f"{r['n_train']:,} + {r['n_test']:,}"),
          ("fits", ("sides", "current", "seeds"), len),
          *_before_after("CPU s", "cpu_seconds", 2), ("after / before", "ratio", 3),
          *_before_after("epochs", "n_iter", 0), *_before_after("LL", "log_likelihood", 3),
          ("LL after - before", "ll_difference", 3),
          ("LL spread of the baseline over seeds", "ll_seed_spread", 3),
          ("ConvergenceWarnings before, after", "sides", lambda s: ", ".join(
              str(s[x]["convergence_warnings"]) for x in ("baseline", "current") if x in s))],
    "2": [("group", "group"), ("data set", _shape), *_before_after("CPU s", "cpu_seconds", 2),
          _side("IterativeImputer CPU s", "IterativeImputer", "cpu_seconds", 2),
          ("after / IterativeImputer", "peer_ratio", 2), *_before_after("epochs", "n_iter", 0),
          *_before_after("RMSE", "rmse", 4),
          ("RMSE after / before - 1", "rmse_excess",
           lambda v: "n/a" if v is None else f"{v:+.2%}"),
          _side("IterativeImputer RMSE", "IterativeImputer", "rmse", 4)],
    "3": [("group", "group"), ("table", _synth_rows),
          *_before_after("fit CPU s", "cpu_seconds", 1),
          _side("TVAE fit CPU s", "TVAE", "cpu_seconds", 1), ("after / TVAE", "peer_ratio", 2),
          *_before_after("epochs", "n_iter", 0), *_before_after("quality", "quality", 3),
          ("quality after - before", "quality_difference", 3),
          _side("TVAE quality", "TVAE", "quality", 3),
          _side("real (held out) quality", "real", "quality", 3),
          ("accuracy before / after / TVAE", "sides", lambda s: " / ".join(
              num(s.get(x, {}).get("accuracy"), 3) for x in ("baseline", "current", "TVAE")))],
    "5": [("group", "group"), ("data set", _shape), *_before_after("peak extra MB", "peak_mb", 1),
          ("after / before", "memory_ratio", 2), *_before_after("epochs", "n_iter", 0)],
}  # fmt: skip


def _verdict_rows(results: list[dict]) -> list[list]:
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
    return rows


def tables(p: dict) -> list:
    """The tables of a payload, as blocks for the harness to print and store."""
    s, summary = p["settings"], p["summary"]
    before = "No baseline: only this checkout ran, and nothing about before is judged."
    if p["baseline"] is not None:
        before = (f"Before: `{p['baseline']}` (commit `{(p['baseline_commit'] or '')[:12]}`); "
                  "after: the stamp's commit.")  # fmt: skip
    workers = [f"round {w['round']} {w['side']} {num(w['seconds'], 0)} s" for w in p["workers"]]
    parts = [
        f"Groups: {', '.join(p['groups'])}. {before} {s['threads']} torch thread and "
        "threadpoolctl limits of 1; CPU s: `time.process_time()` around the fit alone, in a "
        "fresh worker per side and round after an untimed warm-up fit; per fit the median "
        f"over {s['rounds']} round(s), per data set the mean over its splits or seeds; "
        f"seeds {', '.join(str(x) for x in s['seeds'])} in targets 2 and 3. Held-out "
        f"log-likelihood (LL): `score` with `n_importance_samples={s['k']}`, nats per row. "
        f"Workers' wall seconds: {', '.join(workers)}; the peers, in the main process: "
        f"{num(p['peers']['seconds'], 0)} s.",
    ]
    if "5" in summary:
        seeds = ", ".join(str(x) for x in s["memory_seeds"])
        parts[0] += (
            f" Peak extra MB (target 5): one `fit_transform` per data set (seed {seeds}), "
            "first in the worker after the warm-ups; VmHWM after the fit (reset through "
            "`/proc/self/clear_refs`) minus VmRSS before it, in MB of 2^20 bytes."
        )
    for target, rows in summary.items():
        parts += [f"**Target {target}**: {COST_TITLES[target]}.", columns(SPECS[target], rows)]
        if target == "1":
            means = [f"{v['scope']} {num(v['checks'][0]['values']['geometric mean'])}"
                     for v in p["verdicts"] if v["target"] == "1"]  # fmt: skip
            parts.append(f"Geometric mean of after / before: {', '.join(means)}.")
    header = ["target", "scope", "criterion", "worst data set", "check", "target verdict"]
    return [*parts, table(header, _verdict_rows(p["verdicts"]))]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--group", choices=[*GROUPS, "both"], default="both")
    parser.add_argument("--targets", type=int, nargs="+", choices=TARGETS,
                        default=DEFAULT_TARGETS, help="the issue's targets to measure (default "
                        "1 2 3; 5 is the fits' peak memory)")  # fmt: skip
    parser.add_argument("--baseline", metavar="REV", default=None, help="the skvae of 'before'")
    parser.add_argument("--rounds", type=int, default=1, help="alternating workers per side")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2],
                        help="seeds of targets 2 and 3")  # fmt: skip
    parser.add_argument("--noise-offsets", type=int, nargs="*", default=[100, 200],
                        help="the baseline also fits target 1 with random_state = seed + each "
                        "offset")  # fmt: skip
    args = parse(parser, argv, work, seeds=[0], noise_offsets=[100])
    if args.rounds < 1:
        parser.error("--rounds must be >= 1")
    if 5 in args.targets:
        try:
            reset_peak_rss()  # here, before any fit, as the workers will
        except RuntimeError as exc:
            parser.error(str(exc))
    limit_threads()
    run = begin(NAME, __file__, args, argv)
    quiet_sdv()
    groups = list(GROUPS) if args.group == "both" else [args.group]
    targets = sorted(set(args.targets))
    k = QUICK_SCORE_K if args.quick else SCORE_K
    trees, baseline_sha = {"current": REPO}, None
    if args.baseline is not None:
        trees["baseline"], baseline_sha = baseline_tree(args.baseline)
    print(f"before: {args.baseline} = {baseline_sha} at {trees.get('baseline')}; after: {REPO}")
    with tempfile.TemporaryDirectory(prefix=f"{NAME}_") as tmp:
        jobs = prepare(groups, targets, args.quick, args.seeds, tmp)
        start = time.perf_counter()
        peers = run_peers(jobs, args.quick)
        peer_seconds = time.perf_counter() - start
        offsets = args.noise_offsets if "baseline" in trees else []
        runs = run_rounds(trees, jobs, args.rounds, args.quick, k, offsets)
    summary = summarise(runs, peers, jobs)
    payload = {
        "groups": groups, "targets": [str(t) for t in targets],
        "settings": {"rounds": args.rounds, "seeds": args.seeds, "k": k, "threads": THREADS,
                     "quick": args.quick, "limits": LIMITS,
                     "noise_offsets": args.noise_offsets, "memory_seeds": MEMORY_SEEDS},
        "baseline": args.baseline, "baseline_commit": baseline_sha,
        "torch_threads": torch.get_num_threads(), "threadpools": threadpools(),
        "summary": summary, "verdicts": verdicts(summary, groups), "workers": runs,
        "peers": {"seconds": peer_seconds, "records": peers},
    }  # fmt: skip
    # A full run has at least the default targets; target 5 may come with them.
    partial = args.baseline is None or len(groups) < 2 or not set(DEFAULT_TARGETS) <= set(targets)
    finish(run, payload, args, tables, partial=partial)
    return 0


if __name__ == "__main__":
    sys.exit(main())
