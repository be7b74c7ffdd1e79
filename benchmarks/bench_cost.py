"""CPU cost of skvae's default fits before and after a change, on one thread, with their quality.

Two skvae trees side by side in one run: ``--baseline REV`` (a git revision, checked out
as a worktree at ``/tmp/skvae-baseline-<short hash>`` by ``_harness.baseline_tree``)
is "before", this checkout (with its uncommitted changes) is "after". Without
``--baseline`` only "after" runs and nothing about "before" is judged.

The protocol. The main process, on this checkout, prepares every data set (splits,
scaling, missing entries, generated rows) and hands them to the workers as files, so both
sides fit the very same arrays. Each side's fits run in a fresh Python interpreter whose
``sys.path`` puts that side's tree first (``PYTHONPATH=tree``) and which checks that every
``skvae`` module came from that tree; the benchmark code it runs is this checkout's. In a
worker: one torch thread (``torch.set_num_threads(1)``), threadpoolctl limits of 1 for the
BLAS and OpenMP pools, one untimed tiny warm-up fit (imports and one-time initialisation
are not counted), then every fit of the run, each timed alone with ``time.process_time()``
around the fit only: CPU seconds of the process. The sides alternate in ``--rounds``
rounds (default 1): odd rounds run the baseline, then the current tree; even rounds the
other way round; each side gets a fresh worker per round that does all data sets of the
run. Per fit, the median over the rounds; per data set, the mean over its splits or seeds.
The peers (IterativeImputer, SDV's TVAE) run once, in the main process, under the same
limits and after an untimed warm-up of their own. ConvergenceWarnings are recorded, not
shown.

The targets (issue 25):

1. ``VAEEstimator`` at its defaults on small and mid-size tables: CPU seconds per fit at
   most 1/4 of the baseline's (geometric mean over the data sets), at most 1/2 on every
   data set, and a held-out log-likelihood (mean over the splits, nats per row;
   ``vae.score(X_test)`` with ``n_importance_samples=200`` set after fitting, on both
   sides) no lower than the baseline's by more than 0.05 on any data set. Tables follow
   ``bench_defaults`` measurement 4 (numeric columns, rows with NaN dropped,
   ``train_test_split(test_size=0.3, random_state=split)``, splits 0, 1, 2, a
   StandardScaler fitted on the training part, ``VAEEstimator(n_components=2,
   random_state=split)``); processes measurement 5 (5,000 training rows with
   ``random_state=seed``, 2,000 held-out rows with ``random_state=seed + 1000``, 5
   features, noise std 0.1, ``VAEEstimator(n_components, random_state=seed)``). A data
   set is a table, or a process with one ``n_components``. Reported beside the
   difference, not judged: the spread of the baseline's own mean held-out score over seed
   sets (its worker of the first round refits every split with ``random_state`` = split
   + each of ``--noise-offsets``, default 100 and 200): what a change that only moves the
   training's rounding, and so its trajectory, moves a data set's mean by.
2. ``VAEImputer(random_state=seed)`` at its defaults: CPU seconds of ``fit_transform`` at
   most 10 x ``IterativeImputer(random_state=seed)``'s on every data set, and an RMSE on
   the removed entries (mean over the seeds) at most 1% above the baseline's. The data
   of ``bench_defaults`` measurement 3: 20% of the entries removed completely at random
   (``bench_impute.remove``, seeds 0, 1, 2); digits / 16 as they are, the tables standardised by
   a StandardScaler fitted on the observed entries.
3. ``VAEEstimator(likelihood="auto")`` on ``bench_synth``'s mixed tables (its loading,
   70/30 split, fit, draws and SDMetrics quality, by ``bench_synth.run_unit``; seeds 0,
   1, 2): fit CPU seconds at most TVAE's (SDV's ``TVAESynthesizer`` at its defaults, the
   metadata SDV detects) on every table, and a quality (mean over the seeds) no lower
   than the baseline's by more than 0.01. Train-on-synthetic accuracy is reported beside
   it. Needs sdv and sdmetrics (the ``benchmark`` extra).
5. The peak memory of a fit: target 2's ``VAEImputer(random_state=0).fit_transform`` on
   target 2's data sets, seed 0 only; after's extra peak at most 1.5 x before's on every
   data set. Each data set's fit is measured alone, first in the worker, after the warm-up
   fit and an unmeasured tiny imputer fit (one-off allocations are not counted):
   ``gc.collect()``, the C heap's free pages handed back (glibc's ``malloc_trim``), the
   peak RSS reset by writing 5 to ``/proc/self/clear_refs`` (Linux; the run stops where
   it cannot), then VmHWM after the fit minus VmRSS before it (``/proc/self/status``), in
   MB of 2^20 bytes. Not in the default ``--targets``: its fits would add about 10 minutes
   to the full run.

Groups, as the scripts they come from define them. TUNING, where skvae's defaults may be
chosen: iris, wine, diabetes and ``make_nonlinear_process`` (n_components 1 and 2, seeds
0 and 1) for target 1; wine and diabetes for targets 2 and 5; palmerpenguins and
statsmodels' ``fair`` for target 3. REPORTING, which chose nothing: palmerpenguins' 4
measurements, statsmodels' macrodata, star98, grunfeld and interest_inflation, and
``make_nonlinear_surface`` (n_components 2, seeds 0 and 1) for target 1; digits and
breast_cancer for targets 2 and 5; statsmodels' anes96, grunfeld and modechoice for
target 3. Overlaps: palmerpenguins is reporting data for target 1 (its numeric columns)
and tuning data for target 3 (the whole mixed table); grunfeld is reporting data in both.
This script chooses nothing itself: every estimator has its defaults apart from the
arguments that define the model compared and the seeds. Each target is judged on each
group and on both together (the issue's targets name data sets of both groups); the
tuning group's verdicts are informational.

Run from the repository root::

    python benchmarks/bench_cost.py --baseline c50674c                # the full run
    python benchmarks/bench_cost.py --baseline REV --targets 1 --group reporting --json t1.json
    python benchmarks/bench_cost.py --baseline c50674c --targets 1 2 3 5   # the full run and 5
    python benchmarks/bench_cost.py --quick --baseline HEAD           # smoke run, both sides

A full run (both groups, at least targets 1 to 3, a baseline) writes ``benchmarks/results/
bench_cost.json``; any other run writes only to ``--json PATH``. ``--quick`` shrinks every
fit (few rows, ``max_iter=2``, 3 on mixed tables, one split or seed, K=20, TVAE 2 epochs):
its numbers and verdicts mean nothing. Needs statsmodels and palmerpenguins (target 1),
sdv and sdmetrics (target 3).
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import math
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from _harness import (
    HERE,
    MB,
    REPO,
    add_output_options,
    apply_quick,
    baseline_tree,
    begin,
    finish,
    fit_noting_convergence,
    num,
    set_threads,
    table,
    timed,
    verdict,
)
from bench_defaults import (
    PROCESSES,
    _imputers,
    _score_with_k,
    _vae,
    config,
    load_table,
)
from bench_impute import load, remove
from bench_synth import SKVAE, TABLES, TOOLS, run_unit
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_info, threadpool_limits

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

# A fresh interpreter imports skvae first, from the tree PYTHONPATH puts first; the
# benchmark modules it imports next (this checkout's) then find that skvae in sys.modules.
_BOOT = """
import sys
import skvae
sys.path.insert(0, sys.argv[1])
import bench_cost
from _harness import worker_main
sys.exit(worker_main(sys.argv[2], bench_cost.work))
"""


def limit_threads() -> None:
    """One torch thread, and one in each BLAS and OpenMP pool (the peers' too)."""
    set_threads(THREADS)
    threadpool_limits(THREADS)


# ---------------------------------------------------------------------- data (main process)


def save_unit(tmp: str, unit: dict, **arrays) -> dict:
    """``unit`` with the path of a new .npz file in ``tmp`` that holds ``arrays``."""
    fd, path = tempfile.mkstemp(suffix=".npz", dir=tmp)
    os.close(fd)
    np.savez(path, **arrays)
    return {**unit, "path": path}


def table_units(group: str, quick: bool, tmp: str) -> list[dict]:
    """Target 1's tables: bench_defaults measurement 4's splits, scaled, one unit each."""
    cfg = config(group, 4, quick)
    units = []
    for name in cfg["tables"]:
        X, _ = load_table(name)
        for split in cfg["splits"]:
            X_train, X_test = train_test_split(X, test_size=cfg["test_size"], random_state=split)
            scaler = StandardScaler().fit(X_train)
            unit = {
                "group": group,
                "dataset": name,
                "seed": split,
                "n_components": cfg["n_components"],
                "n_train": len(X_train),
                "n_test": len(X_test),
            }
            arrays = {"X_train": scaler.transform(X_train), "X_test": scaler.transform(X_test)}
            units.append(save_unit(tmp, unit, **arrays))
    return units


def process_units(group: str, quick: bool, tmp: str) -> list[dict]:
    """Target 1's processes: bench_defaults measurement 5's rows, made by this checkout."""
    cfg = config(group, 5, quick)
    make, make_name, _ = PROCESSES[cfg["process"]]
    data_args = {"n_features": cfg["n_features"], "noise_std": cfg["noise_std"]}
    units = []
    for nc, seed in cfg["runs"]:
        X, _ = make(cfg["n_train"], random_state=seed, **data_args)
        X_test, _ = make(cfg["n_test"], random_state=seed + 1000, **data_args)
        unit = {
            "group": group,
            "dataset": f"{make_name}, n_components={nc}",
            "seed": seed,
            "n_components": nc,
            "n_train": len(X),
            "n_test": len(X_test),
        }
        units.append(save_unit(tmp, unit, X_train=X, X_test=X_test))
    return units


def imputation_units(group: str, quick: bool, seeds: list[int], tmp: str) -> list[dict]:
    """Target 2's data: bench_defaults measurement 3's MCAR entries, tables standardised."""
    cfg = config(group, 3, quick)
    units = []
    for name, kind in cfg["datasets"].items():
        X_full = load(name)[: cfg["max_rows"]]
        for seed in seeds:
            X_missing, missing = remove(X_full, "MCAR", seed, cfg["fraction"])
            X_true = X_full
            if kind == "table":
                scaler = StandardScaler().fit(X_missing)
                X_missing, X_true = scaler.transform(X_missing), scaler.transform(X_full)
            unit = {
                "group": group,
                "dataset": name,
                "kind": kind,
                "seed": seed,
                "shape": list(X_full.shape),
            }
            units.append(save_unit(tmp, unit, X_missing=X_missing, X_true=X_true, missing=missing))
    return units


def prepare(groups, targets, quick: bool, seeds: list[int], tmp: str) -> dict:
    """Every unit of work of the run, per target; the arrays in files under ``tmp``."""
    jobs = {"1": [], "2": [], "3": [], "5": []}
    for group in groups:
        if 1 in targets:
            jobs["1"] += table_units(group, quick, tmp) + process_units(group, quick, tmp)
        if 2 in targets:
            jobs["2"] += imputation_units(group, quick, seeds, tmp)
        if 3 in targets:
            jobs["3"] += [
                {"group": group, "dataset": table, "seed": seed}
                for seed in seeds
                for table in TABLES[group]
            ]
        if 5 in targets:
            jobs["5"] += imputation_units(group, quick, MEMORY_SEEDS, tmp)
    return jobs


# ---------------------------------------------------------------------- fits (workers)


def warm_up() -> None:
    """An untimed tiny fit, so that imports and one-time initialisation are not timed."""
    X = np.random.default_rng(0).standard_normal((64, 4))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        VAEEstimator(max_iter=2, random_state=0).fit(X).score(X)


def warm_up_imputer() -> None:
    """An unmeasured tiny imputer fit, so that its one-off allocations are not measured."""
    X, _ = remove(np.random.default_rng(0).standard_normal((64, 4)), "MCAR", 0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _imputers(0, True)["VAEImputer"].fit_transform(X)


def _proc_status(field: str) -> int:
    """``field`` (VmRSS, VmHWM) of /proc/self/status, in bytes."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


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


def _trim_heap() -> None:
    """Hand the C heap's free pages back to the system (glibc; elsewhere nothing)."""
    # Else memory an earlier fit freed, still resident, would hide this fit's growth.
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):
        pass


def peak_extra(fn) -> tuple[int, object]:
    """``fn()``'s peak RSS above the process's RSS before it, in bytes, and its value."""
    gc.collect()
    _trim_heap()
    reset_peak_rss()
    before = _proc_status("VmRSS")
    value = fn()
    return _proc_status("VmHWM") - before, value


def fit_vae(unit: dict, quick: bool, k: int, label: str, offset: int = 0) -> dict:
    """Target 1: one default fit, its CPU seconds, and its held-out score with K=k.

    ``offset`` is added to the unit's seed: the baseline's fits with other seeds measure
    how far a seed alone moves a data set's mean held-out score.
    """
    data = np.load(unit["path"])
    seed = unit["seed"] + offset
    vae = _vae(quick, n_components=unit["n_components"], random_state=seed)
    seconds, cpu, (_, warned, _) = timed(lambda: fit_noting_convergence(vae, data["X_train"]))
    record = {key: unit[key] for key in ("group", "dataset", "seed")}
    record.update(
        cpu_seconds=cpu,
        seconds=seconds,
        n_iter=int(vae.n_iter_),
        log_likelihood=_score_with_k(vae, data["X_test"], k),
        convergence_warning=warned,
        offset=offset,
    )
    print(
        f"  {label} {unit['dataset']} seed {unit['seed']}: {cpu:.2f} CPU s, "
        f"{record['n_iter']} epochs, held-out {record['log_likelihood']:.3f}",
        flush=True,
    )
    return record


def impute(imputer, unit: dict, memory: bool = False) -> dict:
    """Targets 2 and 5: one ``fit_transform``, its CPU seconds, the RMSE on the removed entries.

    With ``memory``, also the fit's peak extra memory in MB (:func:`peak_extra`).
    """
    data = np.load(unit["path"])
    X_missing, X_true, missing = data["X_missing"], data["X_true"], data["missing"]

    def fit():
        return timed(lambda: fit_noting_convergence(imputer, X_missing, "fit_transform"))

    peak, (seconds, cpu, (_, warned, filled)) = peak_extra(fit) if memory else (None, fit())
    rmse = float(np.sqrt(np.mean((filled[missing] - X_true[missing]) ** 2)))
    record = {key: unit[key] for key in ("group", "dataset", "seed")}
    record.update(cpu_seconds=cpu, seconds=seconds, rmse=rmse, convergence_warning=warned)
    if memory:
        record["peak_mb"] = peak / MB
    return record


def impute_vae(unit: dict, quick: bool, label: str, memory: bool = False) -> dict:
    imputer = _imputers(unit["seed"], quick)["VAEImputer"]
    record = {**impute(imputer, unit, memory), "n_iter": int(imputer.n_iter_)}
    peak = f", peak +{record['peak_mb']:.1f} MB" if memory else ""
    print(
        f"  {label} {unit['dataset']} seed {unit['seed']}: VAEImputer {record['cpu_seconds']:.2f}"
        f" CPU s, {record['n_iter']} epochs, RMSE {record['rmse']:.4f}{peak}",
        flush=True,
    )
    return record


def synth_record(row: dict, group: str) -> dict:
    """The part of a ``bench_synth.run_unit`` row that this benchmark reports."""
    return {
        "group": group,
        "dataset": row["table"],
        "seed": row["seed"],
        "n_train": row["n_train"],
        "n_test": row["n_test"],
        "cpu_seconds": row.get("fit_cpu_seconds"),
        "seconds": row.get("fit_seconds"),
        "n_iter": row.get("n_iter"),
        "quality": row["quality"],
        "accuracy": row["accuracy"],
        "convergence_warning": row.get("convergence_warning"),
    }


def synth_vae(unit: dict, quick: bool) -> dict:
    rows = run_unit(unit["group"], unit["dataset"], unit["seed"], [SKVAE], quick)
    return synth_record(rows[-1], unit["group"])


def work(task: dict) -> dict:
    """A worker's run: the warm-up, then every fit of the task, each measured alone."""
    import skvae

    limit_threads()
    tree = Path(task["tree"]).resolve()
    warm_up()
    label = f"[{task['side']}, round {task['round']}]"
    offsets = task["noise_offsets"] if task["side"] == "baseline" else []
    # Target 5 first: no fit of targets 1 to 3 has then left memory in the process.
    if task["5"]:
        warm_up_imputer()
    memory = [impute_vae(unit, task["quick"], f"{label} memory", True) for unit in task["5"]]
    records = {
        "1": [fit_vae(unit, task["quick"], task["k"], label) for unit in task["1"]],
        "1_noise": [
            fit_vae(unit, task["quick"], task["k"], f"{label} seed + {offset}", offset)
            for offset in offsets
            for unit in task["1"]
        ],
        "2": [impute_vae(unit, task["quick"], label) for unit in task["2"]],
        "3": [synth_vae(unit, task["quick"]) for unit in task["3"]],
        "5": memory,
    }
    foreign = [
        name
        for name, module in list(sys.modules.items())
        if name.split(".")[0] == "skvae"
        and getattr(module, "__file__", None)
        and not Path(module.__file__).resolve().is_relative_to(tree)
    ]
    if foreign:
        raise RuntimeError(f"skvae modules not from {tree}: {foreign}")
    return {
        "skvae_file": skvae.__file__,
        "skvae_version": skvae.__version__,
        "torch_threads": torch.get_num_threads(),
        "records": records,
    }


def run_side(side: str, tree: Path, task: dict, tmp: str) -> dict:
    """``task`` in a fresh interpreter that imports skvae from ``tree``; its result."""
    out = os.path.join(tmp, "side.json")
    task = {**task, "side": side, "tree": str(tree), "out": out}
    # The tree first; what PYTHONPATH held already (where the peers may live) after it.
    path = os.pathsep.join(filter(None, [str(tree), os.environ.get("PYTHONPATH")]))
    proc = subprocess.run(
        [sys.executable, "-c", _BOOT, str(HERE), json.dumps(task)],
        cwd=tmp,
        env={**os.environ, "PYTHONPATH": path},
    )
    if proc.returncode != 0 or not os.path.exists(out):
        raise RuntimeError(f"the {side} worker failed (exit {proc.returncode}); see above")
    result = json.loads(Path(out).read_text())
    os.remove(out)
    if not Path(result["skvae_file"]).resolve().is_relative_to(tree.resolve()):
        raise RuntimeError(f"the worker imported {result['skvae_file']}, not skvae from {tree}")
    return result


def run_rounds(
    trees: dict, jobs: dict, rounds: int, quick: bool, k: int, tmp: str, noise_offsets=()
) -> list:
    """Each side once per round in a fresh worker; the baseline first in odd rounds.

    The baseline's worker of the first round also fits target 1 with ``noise_offsets``.
    """
    runs = []
    for r in range(1, rounds + 1):
        order = ("baseline", "current") if r % 2 else ("current", "baseline")
        for side in (s for s in order if s in trees):
            print(f"round {r}, {side}: skvae from {trees[side]}", flush=True)
            offsets = list(noise_offsets) if r == 1 else []
            task = {"round": r, "quick": quick, "k": k, "noise_offsets": offsets, **jobs}
            start = time.perf_counter()
            result = run_side(side, trees[side], task, tmp)
            runs.append(
                {"side": side, "round": r, "seconds": time.perf_counter() - start, **result}
            )
    return runs


# ---------------------------------------------------------------------- peers (main process)


def warm_up_peers(jobs: dict) -> None:
    """Untimed small runs of the peers, as the workers' warm-up fit."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if jobs["2"]:
            X, _ = remove(np.random.default_rng(0).standard_normal((64, 4)), "MCAR", 0)
            _imputers(0, True)["IterativeImputer"].fit_transform(X)
        if jobs["3"]:
            unit = jobs["3"][0]
            load, _ = TABLES[unit["group"]][unit["dataset"]]
            TOOLS["TVAE"](unit["dataset"], load().head(50), 0, True)


def run_peers(jobs: dict, quick: bool) -> dict:
    """IterativeImputer on target 2's data and TVAE on target 3's, each once, timed alike.

    Target 3's records also hold the quality of the held-out real rows ("real").
    """
    warm_up_peers(jobs)
    peers = {"2": [], "3": [], "real": []}
    for unit in jobs["2"]:
        record = impute(_imputers(unit["seed"], quick)["IterativeImputer"], unit)
        peers["2"].append(record)
        print(
            f"  [peer] {unit['dataset']} seed {unit['seed']}: IterativeImputer "
            f"{record['cpu_seconds']:.2f} CPU s, RMSE {record['rmse']:.4f}",
            flush=True,
        )
    for unit in jobs["3"]:
        real, tvae = run_unit(unit["group"], unit["dataset"], unit["seed"], ["TVAE"], quick)
        peers["3"].append(synth_record(tvae, unit["group"]))
        peers["real"].append(synth_record(real, unit["group"]))
    return peers


# ---------------------------------------------------------------------- summary


def dataset_means(records: list[dict], keys) -> dict:
    """Per key: the mean over the seeds of each seed's median over the rounds."""
    by_seed = {}
    for record in records:
        by_seed.setdefault(record["seed"], []).append(record)
    means = {}
    for key in keys:
        medians = [np.median([r[key] for r in rs]) for rs in by_seed.values()]
        means[key] = None if any(v is None for v in medians) else float(np.mean(medians))
    return means


def side_summary(records: list[dict], keys) -> dict:
    return {
        **dataset_means(records, keys),
        "seeds": sorted({r["seed"] for r in records}),
        "convergence_warnings": sum(bool(r.get("convergence_warning")) for r in records),
    }


def compare(target: str, runs: list, peers: dict, keys) -> list[dict]:
    """One row per data set: per side ("baseline", "current", the peer), its means."""
    sources = {
        side: [r for run in runs if run["side"] == side for r in run["records"][target]]
        for side in ("baseline", "current")
    }
    if target in PEERS:
        sources[PEERS[target]] = peers[target]
    if target == "3":
        sources["real"] = peers["real"]
    datasets = dict.fromkeys((r["group"], r["dataset"]) for r in sources["current"])
    rows = []
    for group, dataset in datasets:
        row = {"group": group, "dataset": dataset, "sides": {}}
        for side, records in sources.items():
            mine = [r for r in records if (r["group"], r["dataset"]) == (group, dataset)]
            if mine:
                present = [key for key in keys if mine[0].get(key) is not None]
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
        scores = [r["log_likelihood"] for r in mine if r["offset"] == offset]
        means.append(float(np.mean(scores)))
    return float(max(means) - min(means))


def _first_unit(units: list[dict], row: dict) -> dict:
    return next(u for u in units if (u["group"], u["dataset"]) == (row["group"], row["dataset"]))


def summarise(runs: list, peers: dict, jobs: dict) -> dict:
    """Per target, one row per data set with its ratios and differences."""
    summary = {}
    if jobs["1"]:
        rows = compare("1", runs, peers, ("cpu_seconds", "seconds", "n_iter", "log_likelihood"))
        noise = [r for run in runs for r in run["records"].get("1_noise", [])]
        for row in rows:
            unit = _first_unit(jobs["1"], row)
            row.update(
                n_train=unit["n_train"],
                n_test=unit["n_test"],
                ratio=_ratio(row, "cpu_seconds", "baseline"),
                ll_difference=_difference(row, "log_likelihood"),
                ll_seed_spread=_seed_spread(row, noise),
            )
        summary["1"] = rows
    if jobs["2"]:
        rows = compare("2", runs, peers, ("cpu_seconds", "seconds", "n_iter", "rmse"))
        for row in rows:
            unit = _first_unit(jobs["2"], row)
            rmse = _ratio(row, "rmse", "baseline")
            row.update(
                shape=unit["shape"],
                kind=unit["kind"],
                ratio=_ratio(row, "cpu_seconds", "baseline"),
                peer_ratio=_ratio(row, "cpu_seconds", PEERS["2"]),
                rmse_excess=None if rmse is None else rmse - 1.0,
            )
        summary["2"] = rows
    if jobs["3"]:
        keys = ("cpu_seconds", "seconds", "n_iter", "quality", "accuracy", "n_train", "n_test")
        rows = compare("3", runs, peers, keys)
        for row in rows:
            row.update(
                ratio=_ratio(row, "cpu_seconds", "baseline"),
                peer_ratio=_ratio(row, "cpu_seconds", PEERS["3"]),
                quality_difference=_difference(row, "quality"),
            )
        summary["3"] = rows
    if jobs["5"]:
        rows = compare("5", runs, peers, ("peak_mb", "cpu_seconds", "seconds", "n_iter", "rmse"))
        for row in rows:
            unit = _first_unit(jobs["5"], row)
            row.update(
                shape=unit["shape"],
                kind=unit["kind"],
                memory_ratio=_ratio(row, "peak_mb", "baseline"),
            )
        summary["5"] = rows
    return summary


# ---------------------------------------------------------------------- verdicts


def _check(criterion: str, values: dict, limit: float, worst: str) -> dict:
    """The data sets' ``values``, their ``worst`` ("max" or "min") against ``limit``.

    Not judged where a value is missing (no baseline).
    """
    check = {"criterion": criterion, "values": values, "worst": None, "passed": None}
    if values and all(v is not None for v in values.values()):
        name = (max if worst == "max" else min)(values, key=values.get)
        value = values[name]
        check["worst"] = [name, value]
        check["passed"] = bool(value <= limit if worst == "max" else value >= limit)
    return check


def _geometric_mean(values) -> float | None:
    if not values or any(v is None or v <= 0 for v in values):
        return None
    return math.exp(float(np.mean(np.log(values))))


def checks_1(rows: list[dict]) -> list[dict]:
    lim = LIMITS["1"]
    ratios = {r["dataset"]: r["ratio"] for r in rows}
    geomean = {"geometric mean": _geometric_mean(list(ratios.values()))}
    return [
        _check(
            f"geometric mean over the data sets of after / before CPU s <= "
            f"{lim['max_geomean_ratio']}",
            geomean,
            lim["max_geomean_ratio"],
            "max",
        ),
        _check(
            f"after / before CPU s <= {lim['max_ratio']} on every data set",
            ratios,
            lim["max_ratio"],
            "max",
        ),
        _check(
            f"held-out log-likelihood after - before >= -{lim['max_ll_drop']} on every data set",
            {r["dataset"]: r["ll_difference"] for r in rows},
            -lim["max_ll_drop"],
            "min",
        ),
    ]


def checks_2(rows: list[dict]) -> list[dict]:
    lim = LIMITS["2"]
    return [
        _check(
            f"VAEImputer after / IterativeImputer CPU s <= {lim['max_peer_ratio']:g} on "
            "every data set",
            {r["dataset"]: r["peer_ratio"] for r in rows},
            lim["max_peer_ratio"],
            "max",
        ),
        _check(
            f"RMSE after / before - 1 <= {lim['max_rmse_excess']} on every data set",
            {r["dataset"]: r["rmse_excess"] for r in rows},
            lim["max_rmse_excess"],
            "max",
        ),
    ]


def checks_3(rows: list[dict]) -> list[dict]:
    lim = LIMITS["3"]
    return [
        _check(
            f"fit CPU s after / TVAE's <= {lim['max_peer_ratio']:g} on every table",
            {r["dataset"]: r["peer_ratio"] for r in rows},
            lim["max_peer_ratio"],
            "max",
        ),
        _check(
            f"quality after - before >= -{lim['max_quality_drop']} on every table",
            {r["dataset"]: r["quality_difference"] for r in rows},
            -lim["max_quality_drop"],
            "min",
        ),
    ]


def checks_5(rows: list[dict]) -> list[dict]:
    lim = LIMITS["5"]
    return [
        _check(
            f"peak extra memory of a fit after / before <= {lim['max_memory_ratio']:g} on "
            "every data set",
            {r["dataset"]: r["memory_ratio"] for r in rows},
            lim["max_memory_ratio"],
            "max",
        ),
    ]


CHECKS = {"1": checks_1, "2": checks_2, "3": checks_3, "5": checks_5}


def verdicts(summary: dict, groups) -> list[dict]:
    """Each target judged on each group and, when both ran, on both together."""
    scopes = [*groups, "both groups"] if len(groups) > 1 else list(groups)
    out = []
    for target, rows in summary.items():
        for scope in scopes:
            mine = [r for r in rows if scope == "both groups" or r["group"] == scope]
            if scope == "both groups":
                # Across groups, each data set says which group it belongs to.
                mine = [{**r, "dataset": f"{r['dataset']} ({r['group']})"} for r in mine]
            checks = CHECKS[target](mine)
            judged = [c["passed"] for c in checks if c["passed"] is not None]
            out.append(
                {
                    "target": target,
                    "scope": scope,
                    "checks": checks,
                    "passed": all(judged) if judged else None,
                }
            )
    return out


# ---------------------------------------------------------------------- main


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


def _cost_1(rows: list[dict]) -> dict:
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


def _cost_2(rows: list[dict]) -> dict:
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


def _cost_3(rows: list[dict]) -> dict:
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


def _cost_5(rows: list[dict]) -> dict:
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


def _cost_verdicts(results: list[dict]) -> dict:
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


def tables(p: dict) -> list:
    """The tables of a payload, as blocks for the harness to print and store."""
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
    return parts


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--group", choices=[*GROUPS, "both"], default="both")
    parser.add_argument(
        "--targets",
        type=int,
        nargs="+",
        choices=TARGETS,
        default=DEFAULT_TARGETS,
        help="the issue's targets to measure (default 1 2 3; 5 is the fits' peak memory)",
    )
    parser.add_argument("--baseline", metavar="REV", default=None, help="the skvae of 'before'")
    parser.add_argument("--rounds", type=int, default=1, help="alternating workers per side")
    parser.add_argument(
        "--seeds", type=int, nargs="+", default=[0, 1, 2], help="seeds of targets 2 and 3"
    )
    parser.add_argument(
        "--noise-offsets",
        type=int,
        nargs="*",
        default=[100, 200],
        help="the baseline also fits target 1 with random_state = seed + each offset",
    )
    add_output_options(parser)
    args = parser.parse_args(argv)
    apply_quick(parser, args, seeds=[0], noise_offsets=[100])
    if args.rounds < 1:
        parser.error("--rounds must be >= 1")
    if 5 in args.targets:
        try:
            reset_peak_rss()  # here, before any fit, as the workers will
        except RuntimeError as exc:
            parser.error(str(exc))
    limit_threads()
    run = begin(NAME, __file__, args, argv)
    # SDV's advice to save the metadata it detected, at every fit: what users see, not news.
    warnings.filterwarnings("ignore", message=".*save_to_json", category=UserWarning)
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
        runs = run_rounds(trees, jobs, args.rounds, args.quick, k, tmp, offsets)
    summary = summarise(runs, peers, jobs)
    results = verdicts(summary, groups)
    payload = {
        "groups": groups,
        "targets": [str(t) for t in targets],
        "settings": {"rounds": args.rounds, "seeds": args.seeds, "k": k, "threads": THREADS,
                     "quick": args.quick, "limits": LIMITS,
                     "noise_offsets": args.noise_offsets, "memory_seeds": MEMORY_SEEDS},
        "baseline": args.baseline,
        "baseline_commit": baseline_sha,
        "torch_threads": torch.get_num_threads(),
        "threadpools": [
            {key: pool[key] for key in ("user_api", "internal_api", "num_threads")}
            for pool in threadpool_info()
        ],
        "summary": summary,
        "verdicts": results,
        "workers": runs,
        "peers": {"seconds": peer_seconds, "records": peers},
    }  # fmt: skip
    # A full run has at least the default targets; target 5 may come with them.
    partial = args.baseline is None or len(groups) < 2 or not set(DEFAULT_TARGETS) <= set(targets)
    finish(run, payload, args, tables, partial=partial)
    return 0


if __name__ == "__main__":
    sys.exit(main())
