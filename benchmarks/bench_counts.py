"""Counts: library size, batch correction, sparse input and topics, beside scVI and LDA.

    python benchmarks/bench_counts.py --make-scvi-venv /path/to/python3.12  # once
    python benchmarks/bench_counts.py --scvi-python benchmarks/.scvi-venv/bin/python
    python benchmarks/bench_counts.py --quick --json /tmp/bench_counts.json
    python benchmarks/bench_counts.py --parts pbmc memory --merge \
        --scvi-python benchmarks/.scvi-venv/bin/python

The protocol (the six parts, their data, settings and targets) is bench_counts.py's section
of _protocols.md, rendered into README.md.
"""

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
from _harness import (
    HERE,
    add_options,
    add_threads,
    begin,
    current_rss,
    earlier,
    finish,
    fit_quietly,
    num,
    output_path,
    parse,
    peak_rss,
    run_in_fresh_process,
    table,
    timed,
    verdict,
)
from scipy import sparse, stats
from scipy.special import gammaln, softmax
from sklearn.decomposition import LatentDirichletAllocation
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skvae import VAEEstimator

N_IMPORTANCE = 50
PARTS = ("library", "batches", "topics", "pbmc", "memory")


def _nb(rng, mu, theta):
    return rng.poisson(rng.gamma(theta, mu / theta)).astype(np.float64)


def library_counts(seed, n=2000, n_genes=200, d=4):
    """(a): counts, the true latent; the first 80% of rows train."""
    rng = np.random.default_rng([seed, 1])
    z = rng.normal(size=(n, d))
    hidden = np.tanh(z @ rng.normal(size=(d, 32)))
    logits = hidden @ rng.normal(scale=0.6, size=(32, n_genes)) + rng.normal(size=n_genes)
    library = np.exp(rng.normal(np.log(1000), 0.7, size=(n, 1)))
    theta = rng.gamma(4.0, 2.0, size=n_genes)
    return _nb(rng, library * softmax(logits, axis=1), theta), z


def batch_counts(seed, n=2000, n_genes=200, n_batches=3, n_types=5):
    """(b): counts with a batch column last, the batch and the cell type of each row."""
    rng = np.random.default_rng([seed, 2])
    cell_type = rng.integers(0, n_types, n)
    batch = rng.integers(0, n_batches, n)
    centres = rng.normal(scale=1.5, size=(n_types, 4))
    z = centres[cell_type] + 0.5 * rng.normal(size=(n, 4))
    logits = np.tanh(z @ rng.normal(size=(4, 32))) @ rng.normal(scale=0.6, size=(32, n_genes))
    logits += rng.normal(size=n_genes) + rng.normal(scale=0.5, size=(n_batches, n_genes))[batch]
    depth = np.log([800.0, 1200.0, 2000.0])[batch]
    library = np.exp(depth + 0.4 * rng.normal(size=n))[:, None]
    counts = _nb(rng, library * softmax(logits, axis=1), rng.gamma(4.0, 2.0, size=n_genes))
    return np.hstack([counts, batch[:, None].astype(float)]), batch, cell_type


def lda_corpus(seed, n_docs=1500, n_words=500, n_topics=10, length=80):
    """(c): documents as strings of word tokens, from LDA's generative process."""
    rng = np.random.default_rng([seed, 3])
    topics = rng.dirichlet(np.full(n_words, 0.05), size=n_topics)
    docs = []
    for _ in range(n_docs):
        mixture = rng.dirichlet(np.full(n_topics, 0.2))
        counts = rng.multinomial(max(rng.poisson(length), 1), mixture @ topics)
        docs.append(" ".join(f"w{j}" for j in np.repeat(np.arange(n_words), counts)))
    return docs


def pbmc_counts():
    """(e): integer counts of scanpy's pbmc68k_reduced and the check that they are integers.

    ``.raw.X`` is log1p(counts / size factor * scale), stored to 3 decimals: expm1 of a
    row divided by its smallest non-zero value (a count of 1) gives the counts up to the
    rounding of the stored logs (a relative error of about 1e-3), rounded to integers.
    """
    import scanpy

    adata = scanpy.datasets.pbmc68k_reduced()
    normalised = np.expm1(np.asarray(adata.raw.X.toarray(), dtype=np.float64))
    normalised[normalised < 0] = 0.0
    size_factor = np.where(normalised > 0, normalised, np.inf).min(axis=1, keepdims=True)
    unrounded = normalised / size_factor
    counts = np.round(unrounded)
    deviation = np.abs(unrounded - counts)
    nonzero = counts > 0
    check = {
        "cells": counts.shape[0], "genes": counts.shape[1],
        "max_abs_deviation_from_integer": float(deviation.max()),
        "max_relative_deviation": float((deviation[nonzero] / counts[nonzero]).max()),
        "share_of_nonzeros_deviating_over_0.05": float((deviation[nonzero] > 0.05).mean()),
        "largest_count": float(counts.max()),
        "median_total": float(np.median(counts.sum(axis=1))),
        "scanpy": scanpy.__version__,
    }  # fmt: skip
    return counts, check


def pbmc_split(seed, n):
    """A seeded 80/20 split of n cells: (train rows, test rows)."""
    order = np.random.default_rng([seed, 5]).permutation(n)
    cut = int(0.8 * n)
    return np.sort(order[:cut]), np.sort(order[cut:])


def sparse_counts(n, n_genes, density, seed, chunk=500):
    """(f): a CSR count matrix, float32 values 1 + Poisson(2), built a chunk of rows at a time.

    Each row has Binomial(n_genes, density) non-zeros at uniformly drawn columns; no dense
    n x n_genes array is ever made (a chunk x n_genes block of random keys is).
    """
    rng = np.random.default_rng([seed, 6])
    per_row = rng.binomial(n_genes, density, size=n)
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(per_row, out=indptr[1:])
    nnz = int(indptr[-1])
    index_type = np.int32 if nnz < 2**31 else np.int64
    indices = np.empty(nnz, dtype=index_type)
    data = np.empty(nnz, dtype=np.float32)
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        keys = rng.random((stop - start, n_genes), dtype=np.float32)
        for row in range(start, stop):
            k = per_row[row]
            columns = np.argpartition(keys[row - start], k)[:k]
            columns.sort()
            indices[indptr[row] : indptr[row + 1]] = columns
        size = indptr[stop] - indptr[start]
        data[indptr[start] : indptr[stop]] = 1 + rng.poisson(2.0, size=size)
    return sparse.csr_matrix((data, indices, indptr.astype(index_type)), shape=(n, n_genes))


SCVI_VENV = HERE / ".scvi-venv"
SCVI_REQUIREMENT = "scvi-tools==1.5.1"


def make_scvi_venv(python: str) -> int:
    """Create benchmarks/.scvi-venv with ``python`` (>= 3.12) and install scvi-tools in it
    (pip brings torch from PyPI, a CUDA build of several GB, which also runs on a CPU)."""
    subprocess.run([python, "-m", "venv", str(SCVI_VENV)], check=True)
    pip = [str(SCVI_VENV / "bin" / "python"), "-m", "pip", "install", SCVI_REQUIREMENT]
    return subprocess.run(pip).returncode


def scvi_task(tmp: str, part: str, seed: int, n_latent: int, batch: bool, max_epochs, **arrays):
    """A task of ``_scvi_counts.py``: its data in an .npz file, its result in a .json beside."""
    path = os.path.join(tmp, f"{part}_{seed}.npz")
    np.savez(path, **arrays)
    return {"data": path, "out": path[:-4] + ".json", "seed": seed, "n_latent": n_latent,
            "batch": batch, "dir": tmp, "max_epochs": max_epochs}  # fmt: skip


def start_scvi(python: str | None, tasks: list[dict]):
    """Run the scVI tasks in the background on scvi-tools' Python; None without one."""
    if not python or not tasks:
        return None
    path = os.path.join(tasks[0]["dir"], "tasks.json")
    with open(path, "w") as f:
        json.dump(tasks, f)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    log = open(os.path.join(tasks[0]["dir"], "scvi.log"), "w")
    command = [python, str(HERE / "_scvi_counts.py"), path]
    return subprocess.Popen(command, stdout=log, stderr=log, env=env)


def scvi_rows(task: dict, model: str, fill) -> list[dict]:
    """The row of model ``model`` from ``task``'s result, ``fill(result)`` its measurements."""
    result = None
    if os.path.exists(task["out"]):
        with open(task["out"]) as f:
            result = json.load(f)
    if result is None or "error" in result:
        return [{"model": model, "error": (result or {}).get("error", "none")}]
    measured = {"fit_seconds": result["fit_seconds"], "fit_cpu_seconds": result["fit_cpu_seconds"]}
    return [{"model": model, **measured, **fill(result)}]


def _scvi_likelihood(result: dict) -> dict:
    return {"log_likelihood": float(np.mean(result["test_log_likelihood"])),
            "epochs": result["epochs"], "version": result["scvi_version"]}  # fmt: skip


def _r2(code_train, code_test, z_train, z_test):
    return LinearRegression().fit(code_train, z_train).score(code_test, z_test)


def _fit(vae, X):
    """``vae`` fitted on X (ConvergenceWarnings ignored): (vae, wall seconds, CPU seconds)."""
    _, cpu, (seconds, fitted) = timed(lambda: fit_quietly(vae, X), collect=False)
    return fitted, seconds, cpu


def measure_library(seed, args):
    X, z = library_counts(seed, n=args.cells)
    cut = int(0.8 * len(X))
    rows = []
    for kind in (None, "observed", "latent"):
        vae = VAEEstimator(4, likelihood="negative_binomial", library_size=kind,
                           random_state=seed, max_iter=args.max_iter)  # fmt: skip
        vae, seconds, cpu = _fit(vae, X[:cut])
        r2 = _r2(vae.transform(X[:cut]), vae.transform(X[cut:]), z[:cut], z[cut:])
        rows.append({"model": f"skvae library_size={kind!r}",
                     "log_likelihood": float(vae.score(X[cut:])),
                     "is_likelihood_of_x": kind != "observed", "r2_true_latent": r2,
                     "fit_seconds": seconds, "fit_cpu_seconds": cpu,
                     "epochs": vae.n_iter_})  # fmt: skip
    return rows


def measure_library_scvi(seed, args, task):
    X, z = library_counts(seed, n=args.cells)
    cut = int(0.8 * len(X))

    def fill(result):
        codes = np.array(result["latent_train"]), np.array(result["latent_test"])
        return {**_scvi_likelihood(result), "is_likelihood_of_x": True,
                "r2_true_latent": _r2(*codes, z[:cut], z[cut:])}  # fmt: skip

    return scvi_rows(task, "scVI (latent library)", fill)


def _accuracies(Z, batch, cell_type):
    """5-fold accuracies from the code: a logistic regression's, and a 15-neighbour vote's,
    which also sees a batch that forms its own cluster within a type."""
    out = {}
    for suffix, model in (("", LogisticRegression(max_iter=2000)),
                          ("_knn", KNeighborsClassifier(15))):  # fmt: skip
        clf = make_pipeline(StandardScaler(), model)
        out["batch_accuracy" + suffix] = float(cross_val_score(clf, Z, batch, cv=5).mean())
        out["type_accuracy" + suffix] = float(cross_val_score(clf, Z, cell_type, cv=5).mean())
    return out


def measure_batches(seed, args):
    X, batch, cell_type = batch_counts(seed, n=args.cells_batches)
    n_genes = X.shape[1] - 1
    common = dict(likelihood="negative_binomial", library_size="latent", random_state=seed,
                  max_iter=args.max_iter)  # fmt: skip
    covariate = dict(common, covariates=[n_genes])
    variants = [
        ("skvae, no covariates", VAEEstimator(4, **common), X[:, :n_genes]),
        ("skvae, covariates=batch", VAEEstimator(4, **covariate), X),
        ("skvae, covariates=batch, sparse X", VAEEstimator(4, **covariate),
         sparse.csr_matrix(X)),
        ("skvae, covariates=batch, dispersion='feature-covariate'",
         VAEEstimator(4, dispersion="feature-covariate", **covariate), X),
    ]  # fmt: skip
    rows = []
    for name, vae, data in variants:
        vae, seconds, cpu = _fit(vae, data)
        rows.append({"model": name, **_accuracies(vae.transform(data), batch, cell_type),
                     "fit_seconds": seconds, "fit_cpu_seconds": cpu})  # fmt: skip
    chance = float(np.bincount(batch).max() / len(batch))
    return {"seed": seed, "batch_chance": chance, "rows": rows}


def measure_batches_scvi(seed, args, task):
    _, batch, cell_type = batch_counts(seed, n=args.cells_batches)

    def fill(result):
        return _accuracies(np.array(result["latent_train"]), batch, cell_type)

    return scvi_rows(task, "scVI, batch_key", fill)


def _word_log_likelihood(vae_pipeline, docs):
    """log p(words) of each document under the VAE: log p(x) less log p(n) and the coefficient."""
    vectorizer, vae = vae_pipeline[0], vae_pipeline[-1]
    X = vectorizer.transform(docs)
    n = np.asarray(X.sum(axis=1)).ravel()
    settings = vae.module_.likelihood.settings
    mean, theta = settings["total_mean"], settings["total_theta"]
    if np.isinf(theta):  # totals no more spread than a Poisson's: the family uses one
        log_pn = stats.poisson.logpmf(n, mean)
    else:
        log_pn = stats.nbinom.logpmf(n, theta, theta / (theta + mean))
    data = X.tocsr()
    per_row = np.add.reduceat(np.append(gammaln(data.data + 1), 0.0), data.indptr[:-1])
    coefficient = gammaln(n + 1) - per_row * (np.diff(data.indptr) > 0)
    return vae.score_samples(X) - log_pn - coefficient, n


def measure_topics(seed, args):
    docs = lda_corpus(seed, n_docs=args.docs)
    cut = int(2 / 3 * len(docs))
    train, test = docs[:cut], docs[cut:]
    out = {"seed": seed, "n_topics": 10, "rows": []}
    vectorizer = CountVectorizer(token_pattern=r"\S+")
    vectorizer.fit(train)
    X_test = vectorizer.transform(test)
    words = X_test.sum()
    lda = LatentDirichletAllocation(10, random_state=seed)
    cpu = time.process_time()
    seconds, lda = fit_quietly(lda, vectorizer.transform(train))
    cpu = time.process_time() - cpu
    out["rows"].append({"model": "LatentDirichletAllocation(10)",
                        "perplexity": float(lda.perplexity(X_test)), "fit_seconds": seconds,
                        "fit_cpu_seconds": cpu})  # fmt: skip

    def pipeline(k):
        vae = VAEEstimator(k, likelihood="multinomial", random_state=seed, max_iter=args.max_iter)
        return make_pipeline(CountVectorizer(token_pattern=r"\S+"), vae)

    pipe, seconds, cpu = _fit(pipeline(10), train)
    log_pw, _ = _word_log_likelihood(pipe, test)
    out["rows"].append({"model": "CountVectorizer -> VAEEstimator(10, multinomial)",
                        "perplexity": float(np.exp(-log_pw.sum() / words)),
                        "fit_seconds": seconds, "fit_cpu_seconds": cpu})  # fmt: skip
    search = GridSearchCV(pipeline(10), {"vaeestimator__n_components": [5, 10]}, cv=2)
    seconds, search = fit_quietly(search, train)
    log_pw, _ = _word_log_likelihood(search.best_estimator_, test)
    k = search.best_params_["vaeestimator__n_components"]
    out["rows"].append({"model": "GridSearchCV over n_components (5 or 10)", "chose": k,
                        "perplexity": float(np.exp(-log_pw.sum() / words)),
                        "fit_seconds": seconds})  # fmt: skip
    return out


def measure_pbmc(seed, counts, args):
    """(e): skvae's held-out log-likelihood per cell on the PBMC counts, per variant."""
    train, test = pbmc_split(seed, len(counts))
    variants = [
        ("skvae library_size='latent' (defaults, n_components=2)", 2, "latent"),
        ("skvae library_size='latent', n_components=10", 10, "latent"),
        ("skvae library_size=None (defaults, n_components=2)", 2, None),
    ]
    rows = []
    for name, k, kind in variants:
        vae = VAEEstimator(k, likelihood="negative_binomial", library_size=kind,
                           random_state=seed, max_iter=args.max_iter)  # fmt: skip
        vae, seconds, cpu = _fit(vae, counts[train])
        rows.append({"model": name, "log_likelihood": float(vae.score(counts[test])),
                     "fit_seconds": seconds, "fit_cpu_seconds": cpu,
                     "epochs": vae.n_iter_})  # fmt: skip
    return rows


def memory_child(task: dict) -> dict:
    """(f), in its own process: generate the matrix, fit, and return the memory figures."""
    import torch

    torch.set_num_threads(1)
    n, n_genes, density, seed = task["rows"], task["genes"], task["density"], task["seed"]
    before = current_rss()
    started = time.perf_counter()
    X = sparse_counts(n, n_genes, density, seed)
    generated = time.perf_counter() - started
    after_data = current_rss()
    peak_before_fit = current_rss("VmHWM")
    vae = VAEEstimator(10, likelihood="negative_binomial", library_size="latent",
                       max_iter=task["max_iter"], random_state=seed)  # fmt: skip
    cpu = time.process_time()
    seconds, vae = fit_quietly(vae, X)
    return {
        "rows": n, "genes": n_genes, "density": density, "nnz": int(X.nnz),
        "dtype": str(X.dtype), "index_dtype": str(X.indices.dtype),
        "sparse_bytes": int(X.data.nbytes + X.indices.nbytes + X.indptr.nbytes),
        "dense_bytes_float32": 4 * n * n_genes,
        "rss_before_data_bytes": before, "rss_after_data_bytes": after_data,
        "peak_before_fit_bytes": peak_before_fit, "peak_rss_bytes": current_rss("VmHWM"),
        "ru_maxrss_bytes": peak_rss(), "generate_seconds": generated, "fit_seconds": seconds,
        "fit_cpu_seconds": time.process_time() - cpu, "epochs": vae.n_iter_,
        "max_iter": task["max_iter"], "batch_size": vae.batch_size,
    }  # fmt: skip


def measure_memory(args):
    """(f): :func:`memory_child` in a fresh process, its peak checked against the input."""
    task = {"rows": args.memory_rows, "genes": args.memory_genes, "seed": args.memory_seed,
            "density": args.memory_density, "max_iter": args.memory_max_iter}  # fmt: skip
    try:
        out = run_in_fresh_process(__file__, task, {"OMP_NUM_THREADS": "1"})
    except RuntimeError as exc:
        return {"error": str(exc)}
    out["budget_bytes"] = out["sparse_bytes"] + 2**30
    out["within_budget"] = out["peak_rss_bytes"] <= out["budget_bytes"]
    return {**out, "seed": args.memory_seed}


def merge_previous(path, payload, run, parts):
    """Keep the parts of the result file at ``path`` this run did not measure, each with the
    stamp (commit, date, command) of the run that measured it."""
    for old_stamp, previous in earlier([path]):
        stamps = previous.get("part_stamps", {})
        for part in [p for p in PARTS if p not in parts and p in previous]:
            payload[part] = previous[part]
            payload["part_stamps"][part] = stamps.get(part, old_stamp)
            if part in ("library", "batches", "topics"):
                for key, value in previous.get("settings", {}).items():
                    payload["settings"].setdefault(key, value)
    return payload


def mean_sd(values, digits):
    values = [v for v in values if v is not None]
    if not values:
        return "n/a"
    if not all(isinstance(v, int | float) and math.isfinite(v) for v in values):
        return "nan"  # a failed measurement: the result file has each value
    sd = f" +- {num(statistics.pstdev(values), digits)}"
    return num(sum(values) / len(values), digits) + (sd if len(values) > 1 else "")


#: Per part, the columns of its table: (header, key of a row, digits).
SPECS = {
    "library": [("held-out log p(x), nats", "log_likelihood", 1),
                ("R^2 true latent", "r2_true_latent", 3), ("fit CPU s", "fit_cpu_seconds", 0)],
    "batches": [("batch accuracy", "batch_accuracy", 3), ("type accuracy", "type_accuracy", 3),
                ("batch, kNN", "batch_accuracy_knn", 3), ("type, kNN", "type_accuracy_knn", 3),
                ("fit CPU s", "fit_cpu_seconds", 0)],
    "topics": [("perplexity", "perplexity", 1), ("fit s", "fit_seconds", 0)],
    "pbmc": [("held-out log p(x), nats", "log_likelihood", 1),
             ("fit CPU s", "fit_cpu_seconds", 0), ("epochs", "epochs", 0)],
}  # fmt: skip


def by_model(entries: list[dict], spec: list[tuple]) -> dict:
    """One row per model of ``entries``: per (header, key, digits), the mean +- sd over seeds."""
    models = dict.fromkeys(r["model"] for e in entries for r in e["rows"])
    rows = [[m, *[mean_sd([r.get(key) for e in entries for r in e["rows"] if r["model"] == m], d)
                  for _, key, d in spec]] for m in models]  # fmt: skip
    return table(["model", *[header for header, _, _ in spec]], rows)


def tables(p: dict) -> list:
    """The tables of a payload, as blocks for the harness to print and store."""
    s, parts = p["settings"], []

    def measured(part):
        stamp = p.get("part_stamps", {}).get(part)
        if not stamp:
            return ""
        return f" (measured at commit {str(stamp.get('commit'))[:7]}, {stamp.get('date')})"

    if "library" in p:
        library = by_model(p["library"], SPECS["library"])
        for row in library["rows"]:
            mine = [r for e in p["library"] for r in e["rows"] if r["model"] == row[0]]
            row[1] += "" if all(r.get("is_likelihood_of_x") for r in mine) else " (given totals)"
        parts += [
            f"Seeds {', '.join(str(x) for x in s['seeds'])} in (a); mean +- sd over seeds. "
            f"{s['threads']} torch thread(s) each; scVI: {s['scvi']}.",
            f"(a) Library size: {s['cells']:,} cells (80% train), 200 genes, a 4-D latent; "
            f"held-out log-likelihood per cell ({s['n_importance_samples']} importance "
            f"samples) and R^2 of the true latent from the code{measured('library')}.",
            library,
        ]
    if "batches" in p:
        chance = mean_sd([e["batch_chance"] for e in p["batches"]], 3)
        parts += [
            f"(b) Batches: {s['cells_batches']:,} cells, 3 batches x 5 types, seeds "
            f"{', '.join(str(x) for x in s.get('batch_seeds', s['seeds']))}; 5-fold "
            f"accuracies from the latent code of a logistic regression and of a "
            f"15-nearest-neighbour vote (kNN); chance for the batch {chance}"
            f"{measured('batches')}.",
            by_model(p["batches"], SPECS["batches"]),
        ]
    if "topics" in p:
        runs = p["topics"] if isinstance(p["topics"], list) else [p["topics"]]
        chosen = [r["chose"] for e in runs for r in e["rows"] if "chose" in r]
        parts += [
            f"(c) Topics: LDA corpus, {s['docs']:,} documents (a third held out), 10 "
            f"topics, seeds {', '.join(str(e['seed']) for e in runs)}; held-out perplexity "
            f"of the word sequences (lower is better); the grid search chose "
            f"{', '.join(str(k) for k in chosen) or 'n/a'}{measured('topics')}.",
            by_model(runs, SPECS["topics"]),
        ]
    entries = p.get("library", []) + p.get("batches", [])
    if "pbmc" in p:
        pb, lead = p["pbmc"], ""
        entries, check = entries + pb["entries"], pb["counts_check"]
        lls = [{r["model"]: r.get("log_likelihood") for r in e["rows"]} for e in pb["entries"]]
        default = pb["entries"][0]["rows"][0]["model"]
        scvi = next((m for ll in lls for m in ll if m.startswith("scVI")), None)
        gaps = [ll[default] - ll[scvi] for ll in lls
                if scvi and ll.get(default) is not None and ll.get(scvi) is not None]  # fmt: skip
        if gaps:
            lead = (f" skvae's default (latent library) minus scVI, per seed: "
                    f"{', '.join(num(g, 1) for g in gaps)} nats per cell; target 2 (at least "
                    f"20 ahead on every seed): {verdict(min(gaps) >= 20)}.")  # fmt: skip
        parts += [
            f"(e) PBMC: scanpy's pbmc68k_reduced, {check['cells']} cells x {check['genes']} "
            f"genes, counts recovered from .raw (largest deviation from an integer before "
            f"rounding {num(check['max_abs_deviation_from_integer'], 3)}, relative "
            f"{num(check['max_relative_deviation'], 4)}; median total "
            f"{num(check['median_total'], 0)}); seeded 80/20 splits, seeds "
            f"{', '.join(str(x) for x in pb['seeds'])}; held-out log-likelihood per cell "
            f"({pb['n_importance_samples']} importance samples); mean +- sd over seeds; "
            f"scVI: {pb['scvi']}{measured('pbmc')}.{lead}",
            by_model(pb["entries"], SPECS["pbmc"]),
        ]
    if "memory" in p:
        m, gb = p["memory"], 2**30
        if "error" in m:
            parts.append(f"(f) Memory: failed: {m['error']}")
        else:
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
    errors = [f"- {r['model']}, seed {e['seed']}: {r['error']}"
              for e in entries for r in e["rows"] if "error" in r]  # fmt: skip
    return parts + (["Failed runs:\n\n" + "\n".join(errors)] if errors else [])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS))
    parser.add_argument("--merge", action="store_true",
                        help="keep the result file's parts this run does not measure")  # fmt: skip
    for option in ("--seeds", "--batch-seeds", "--pbmc-seeds", "--topic-seeds"):
        parser.add_argument(option, type=int, nargs="+", default=[1, 2, 3])
    add_options(
        parser, ("--cells", 2000, "cells of (a)"), ("--cells-batches", 2000, "cells of (b)"),
        ("--docs", 1500, "documents of (c)"), ("--memory-rows", 100_000, "rows of (f)"),
        ("--memory-genes", 20_000, "columns of (f)"),
        ("--memory-density", 0.05, "share of non-zeros of (f)"),
        ("--memory-seed", 1, "seed of (f)"), ("--memory-max-iter", 1, "epochs of (f)"),
    )  # fmt: skip
    parser.add_argument("--max-iter", type=lambda s: s if s == "auto" else int(s), default="auto")
    parser.add_argument("--scvi-python", default=None, help="Python of a venv with scvi-tools "
                        "(>= 3.12); without it scVI is left out")  # fmt: skip
    parser.add_argument("--make-scvi-venv", metavar="PYTHON", default=None,
                        help=f"create {SCVI_VENV.name} with this Python (>= 3.12), install "
                        "scvi-tools, exit")  # fmt: skip
    add_threads(parser, 1)
    args = parse(
        parser, argv, memory_child, seeds=[1], batch_seeds=[1], pbmc_seeds=[1], topic_seeds=[1],
        cells=300, cells_batches=300, docs=150, max_iter=3, memory_rows=2000, memory_genes=2000,
    )  # fmt: skip
    if args.make_scvi_venv:
        return make_scvi_venv(args.make_scvi_venv)
    parts = set(args.parts)
    run = begin("bench_counts", __file__, args, argv)
    started = time.time()
    epochs = 5 if args.quick else None
    payload = {"settings": {}, "part_stamps": {}}
    with tempfile.TemporaryDirectory() as tmp:
        tasks, order = {"library": {}, "batches": {}, "pbmc": {}}, []  # order: as made
        for seed in sorted(set(args.seeds) | set(args.batch_seeds)):
            if "library" in parts and seed in args.seeds:
                X, _ = library_counts(seed, n=args.cells)
                cut = int(0.8 * len(X))
                tasks["library"][seed] = scvi_task(tmp, "library", seed, 4, False, epochs,
                                                   X_train=X[:cut], X_test=X[cut:])  # fmt: skip
                order.append(tasks["library"][seed])
            if "batches" in parts and seed in args.batch_seeds:
                X, batch, _ = batch_counts(seed, n=args.cells_batches)
                tasks["batches"][seed] = scvi_task(
                    tmp, "batches", seed, 4, True, epochs, X_train=X[:, :-1],
                    X_test=X[:50, :-1], batch_train=batch, batch_test=batch[:50],
                )  # fmt: skip
                order.append(tasks["batches"][seed])
        if "pbmc" in parts:
            pbmc, pbmc_check = pbmc_counts()
            for seed in args.pbmc_seeds:
                train, test = pbmc_split(seed, len(pbmc))
                task = scvi_task(tmp, "pbmc", seed, 10, False, epochs, X_train=pbmc[train],
                                 X_test=pbmc[test])  # fmt: skip
                tasks["pbmc"][seed] = task
                order.append(task)
        scvi = start_scvi(args.scvi_python, order)
        if "topics" in parts:
            payload["topics"] = [measure_topics(seed, args) for seed in args.topic_seeds]
            print(json.dumps(payload["topics"], indent=1), flush=True)
        library = {s: measure_library(s, args) for s in args.seeds if "library" in parts}
        batches = {s: measure_batches(s, args) for s in args.batch_seeds if "batches" in parts}
        pbmc_rows = {s: measure_pbmc(s, pbmc, args) for s in args.pbmc_seeds if "pbmc" in parts}
        if "memory" in parts:
            # After the other skvae fits, while scVI (if any) runs on the other core.
            payload["memory"] = measure_memory(args)
            print(json.dumps(payload["memory"], indent=1), flush=True)
        scvi_note = "not run: no --scvi-python given"
        if scvi is not None:
            scvi.wait()
            scvi_note = f"exit code {scvi.returncode}"
            with open(os.path.join(tmp, "scvi.log")) as f:
                log_tail = f.read()[-2000:]
            for seed, rows in library.items():
                rows += measure_library_scvi(seed, args, tasks["library"][seed])
            for seed, entry in batches.items():
                entry["rows"] += measure_batches_scvi(seed, args, tasks["batches"][seed])
            for seed, rows in pbmc_rows.items():
                task = tasks["pbmc"][seed]
                name = f"scVI (latent library, 2 x 128, n_latent={task['n_latent']})"
                rows += scvi_rows(task, name, _scvi_likelihood)
    if "library" in parts:
        payload["library"] = [{"seed": seed, "rows": rows} for seed, rows in library.items()]
    if "batches" in parts:
        payload["batches"] = list(batches.values())
    if "pbmc" in parts:
        entries = [{"seed": seed, "rows": rows} for seed, rows in pbmc_rows.items()]
        payload["pbmc"] = {"counts_check": pbmc_check, "seeds": args.pbmc_seeds,
                           "entries": entries, "scvi": scvi_note,
                           "n_importance_samples": N_IMPORTANCE}  # fmt: skip
    if parts & {"library", "batches", "topics"}:
        payload["settings"] = {
            "seeds": args.seeds, "batch_seeds": args.batch_seeds,
            "topic_seeds": args.topic_seeds, "cells": args.cells,
            "cells_batches": args.cells_batches, "docs": args.docs, "max_iter": args.max_iter,
            "threads": args.threads, "n_importance_samples": N_IMPORTANCE, "scvi": scvi_note,
            "scvi_python": args.scvi_python,
        }  # fmt: skip
    if scvi is not None:
        payload["settings"]["scvi_log_tail"] = log_tail
    stamp = {k: run.get(k) for k in ("commit", "date", "command", "dirty")}
    payload["part_stamps"] = {part: stamp for part in PARTS if part in parts}
    payload["seconds"] = time.time() - started
    if args.merge:
        payload = merge_previous(output_path("bench_counts", args), payload, run, parts)
    finish(run, payload, args, tables)
    return 0


if __name__ == "__main__":
    sys.exit(main())
