"""Counts: library size, batch correction, sparse input and topics, beside scVI and LDA.

Four measurements on simulated counts, each with a known truth:

(a) Library size. Counts of 200 genes from a 4-D latent through a nonlinear map to
    proportions, times a log-normal library (sd 0.7 on the log scale), negative binomial
    noise; 2,000 cells, 1,600 for training, 400 held out. Per ``library_size`` (None,
    "observed", "latent") and scVI: the held-out log-likelihood per cell (importance
    sampling, 50 samples; "observed" conditions on each cell's total, so its number is
    not a likelihood of x and is shown apart) and the R^2 of the true latent from the
    code (a linear regression fitted on the training cells' codes, scored on the held-out
    ones). Seeds 1, 2, 3.
(b) Batch correction. 3 batches x 5 cell types, 2,000 cells of 200 genes: each batch
    multiplies every gene by its own log-normal factor (sd 0.5) and has its own depth.
    From the latent code of every cell, a 5-fold cross-validated logistic regression and
    a 15-nearest-neighbour vote predict the batch (near chance, 1/3, is good) and the type
    (high is good). skvae
    with ``covariates`` naming the batch column, on a dense and on a sparse (CSR) X, and
    with a dispersion per gene and batch, beside skvae without it and scVI with
    ``batch_key``. Seeds 1, 2, 3.
(c) Topics. Documents drawn from an LDA model (10 topics, 500 words, 1,000 + 500 held-out
    documents of about 80 words), as strings through ``CountVectorizer``:
    ``VAEEstimator(likelihood="multinomial")`` in a Pipeline against scikit-learn's
    ``LatentDirichletAllocation`` with the same number of topics; held-out perplexity of
    the word sequences, exp(-log p(words) / words), both without the multinomial
    coefficient and the document length. The VAE's ``n_components`` is also chosen by
    ``GridSearchCV`` (5 or 10, 2 folds) on the training documents. Seeds 1, 2, 3.
(d) scVI (scvi-tools' SCVI, matched architecture, latent library) in (a), (b) and (e), run
    on the Python scvi-tools needs with ``--scvi-python`` (a venv with scvi-tools).
(e) PBMC (``--parts pbmc``): scanpy's bundled ``pbmc68k_reduced`` (700 cells, 765 genes,
    no download), integer counts recovered from ``.raw.X`` (log1p of normalised counts
    stored to 3 decimals): expm1, divided by each cell's smallest non-zero value (its size
    factor, a count of 1), rounded; the largest deviation from an integer before rounding is
    recorded. A seeded 80/20 split of the cells; held-out log-likelihood per cell as in (a)
    for ``VAEEstimator(likelihood="negative_binomial", library_size="latent")`` with the
    defaults otherwise (``n_components=2``), the same with ``n_components=10`` (scVI's
    default latent size), without a library size, and scVI (2 x 128, latent library,
    scvi-tools' defaults otherwise: ``n_latent=10``). Needs scanpy. Seeds ``--pbmc-seeds``.
(f) Memory (``--parts memory``): a seeded 100,000 x 20,000 ``scipy.sparse`` CSR count
    matrix with 5% non-zeros (float32 values 1 + Poisson(2), int32 indices), generated and
    fitted in a fresh subprocess (``VAEEstimator(10, likelihood="negative_binomial",
    library_size="latent", max_iter=1)``: one epoch, a memory measurement, not a fit to
    convergence); its peak resident memory (VmHWM) against the matrix's own bytes.

``--parts`` picks the parts (library, batches, topics, pbmc, memory; all by default) and
``--merge`` keeps the other parts' results of the results file that is written over.

skvae has ``VAEEstimator``'s defaults apart from the likelihood, ``n_components`` (the
true latent size or number of topics), ``library_size``, ``covariates`` and
``dispersion``. About 75 minutes for all parts on 2 cores (skvae on one, scVI on the
other)::

    python benchmarks/bench_counts.py --make-scvi-venv /path/to/python3.12  # once
    python benchmarks/bench_counts.py --scvi-python benchmarks/.scvi-venv/bin/python
    python benchmarks/bench_counts.py --quick --json /tmp/bench_counts.json
    python benchmarks/bench_counts.py --parts pbmc memory --merge \
        --scvi-python benchmarks/.scvi-venv/bin/python
"""

import argparse
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _harness import (
    add_output_options,
    apply_quick,
    begin,
    finish,
    fit_quietly,
    num,
    output_path,
    set_threads,
    table,
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

HERE = Path(__file__).resolve().parent
N_IMPORTANCE = 50


# ---------------------------------------------------------------------- data


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


# ---------------------------------------------------------------------- scVI

SCVI_VENV = HERE / ".scvi-venv"
SCVI_REQUIREMENT = "scvi-tools==1.5.1"


def make_scvi_venv(python: str) -> int:
    """Create benchmarks/.scvi-venv with ``python`` (>= 3.12) and install scvi-tools in it.

    pip brings torch from PyPI, a CUDA build of several GB, which also runs on a CPU.
    """
    subprocess.run([python, "-m", "venv", str(SCVI_VENV)], check=True)
    pip = [str(SCVI_VENV / "bin" / "python"), "-m", "pip", "install", SCVI_REQUIREMENT]
    return subprocess.run(pip).returncode


def start_scvi(python: str | None, tasks: list[dict]):
    """Run the scVI tasks in the background on scvi-tools' Python; None without one."""
    if not python:
        return None
    path = os.path.join(tasks[0]["dir"], "tasks.json") if tasks else None
    with open(path, "w") as f:
        json.dump(tasks, f)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    log = open(os.path.join(tasks[0]["dir"], "scvi.log"), "w")
    return subprocess.Popen(
        [python, str(HERE / "_scvi_counts.py"), path], stdout=log, stderr=log, env=env
    )


def scvi_result(task: dict) -> dict | None:
    if not os.path.exists(task["out"]):
        return None
    with open(task["out"]) as f:
        return json.load(f)


# ---------------------------------------------------------------------- measurements


def _r2(code_train, code_test, z_train, z_test):
    return LinearRegression().fit(code_train, z_train).score(code_test, z_test)


def _fit(vae, X):
    cpu = time.process_time()
    seconds, fitted = fit_quietly(vae, X)
    return fitted, seconds, time.process_time() - cpu


def measure_library(seed, args):
    X, z = library_counts(seed, n=args.cells)
    cut = int(0.8 * len(X))
    rows = []
    for kind in (None, "observed", "latent"):
        vae = VAEEstimator(
            4, likelihood="negative_binomial", library_size=kind, random_state=seed,
            max_iter=args.max_iter,
        )  # fmt: skip
        vae, seconds, cpu = _fit(vae, X[:cut])
        rows.append(
            {
                "model": f"skvae library_size={kind!r}",
                "log_likelihood": float(vae.score(X[cut:])),
                "is_likelihood_of_x": kind != "observed",
                "r2_true_latent": _r2(vae.transform(X[:cut]), vae.transform(X[cut:]), z[:cut],
                                      z[cut:]),
                "fit_seconds": seconds,
                "fit_cpu_seconds": cpu,
                "epochs": vae.n_iter_,
            }
        )  # fmt: skip
    return {"seed": seed, "rows": rows}


def _accuracies(Z, batch, cell_type):
    """5-fold accuracies from the code: a logistic regression's, and a 15-neighbour vote's,
    which also sees a batch that forms its own cluster within a type."""
    out = {}
    for suffix, model in (
        ("", LogisticRegression(max_iter=2000)),
        ("_knn", KNeighborsClassifier(15)),
    ):
        clf = make_pipeline(StandardScaler(), model)
        out["batch_accuracy" + suffix] = float(cross_val_score(clf, Z, batch, cv=5).mean())
        out["type_accuracy" + suffix] = float(cross_val_score(clf, Z, cell_type, cv=5).mean())
    return out


def measure_batches(seed, args):
    X, batch, cell_type = batch_counts(seed, n=args.cells_batches)
    n_genes = X.shape[1] - 1
    common = dict(likelihood="negative_binomial", library_size="latent", random_state=seed,
                  max_iter=args.max_iter)  # fmt: skip
    variants = [
        ("skvae, no covariates", VAEEstimator(4, **common), X[:, :n_genes]),
        ("skvae, covariates=batch", VAEEstimator(4, covariates=[n_genes], **common), X),
        (
            "skvae, covariates=batch, sparse X",
            VAEEstimator(4, covariates=[n_genes], **common),
            sparse.csr_matrix(X),
        ),
        (
            "skvae, covariates=batch, dispersion='feature-covariate'",
            VAEEstimator(4, covariates=[n_genes], dispersion="feature-covariate", **common),
            X,
        ),
    ]
    rows = []
    for name, vae, data in variants:
        vae, seconds, cpu = _fit(vae, data)
        rows.append(
            {"model": name, **_accuracies(vae.transform(data), batch, cell_type),
             "fit_seconds": seconds, "fit_cpu_seconds": cpu}
        )  # fmt: skip
    chance = float(np.bincount(batch).max() / len(batch))
    return {"seed": seed, "batch_chance": chance, "rows": rows}


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
    coefficient = gammaln(n + 1) - np.add.reduceat(
        np.append(gammaln(data.data + 1), 0.0), data.indptr[:-1]
    ) * (np.diff(data.indptr) > 0)
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
    out["rows"].append(
        {"model": "LatentDirichletAllocation(10)", "perplexity": float(lda.perplexity(X_test)),
         "fit_seconds": seconds, "fit_cpu_seconds": time.process_time() - cpu}
    )  # fmt: skip

    def pipeline(k):
        vae = VAEEstimator(k, likelihood="multinomial", random_state=seed, max_iter=args.max_iter)
        return make_pipeline(CountVectorizer(token_pattern=r"\S+"), vae)

    pipe, seconds, cpu = _fit(pipeline(10), train)
    log_pw, _ = _word_log_likelihood(pipe, test)
    out["rows"].append(
        {"model": "CountVectorizer -> VAEEstimator(10, multinomial)",
         "perplexity": float(np.exp(-log_pw.sum() / words)), "fit_seconds": seconds,
         "fit_cpu_seconds": cpu}
    )  # fmt: skip
    search = GridSearchCV(pipeline(10), {"vaeestimator__n_components": [5, 10]}, cv=2)
    seconds, search = fit_quietly(search, train)
    log_pw, _ = _word_log_likelihood(search.best_estimator_, test)
    k = search.best_params_["vaeestimator__n_components"]
    out["rows"].append(
        {"model": "GridSearchCV over n_components (5 or 10)", "chose": k,
         "perplexity": float(np.exp(-log_pw.sum() / words)), "fit_seconds": seconds}
    )  # fmt: skip
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
        vae = VAEEstimator(
            k, likelihood="negative_binomial", library_size=kind, random_state=seed,
            max_iter=args.max_iter,
        )  # fmt: skip
        vae, seconds, cpu = _fit(vae, counts[train])
        rows.append(
            {"model": name, "log_likelihood": float(vae.score(counts[test])),
             "fit_seconds": seconds, "fit_cpu_seconds": cpu, "epochs": vae.n_iter_}
        )  # fmt: skip
    return rows


def measure_pbmc_scvi(task):
    result = scvi_result(task)
    name = f"scVI (latent library, 2 x 128, n_latent={task['n_latent']})"
    if result is None or "error" in result:
        return [{"model": name, "error": (result or {}).get("error", "none")}]
    return [
        {"model": name, "log_likelihood": float(np.mean(result["test_log_likelihood"])),
         "fit_seconds": result["fit_seconds"], "fit_cpu_seconds": result["fit_cpu_seconds"],
         "epochs": result["epochs"], "version": result["scvi_version"]}
    ]  # fmt: skip


def _rss_bytes(field: str = "VmRSS") -> int:
    """This process's resident memory now (VmRSS) or at its peak (VmHWM), from /proc (Linux).

    VmHWM, not ``ru_maxrss``: Linux carries ``ru_maxrss`` over fork and exec, so a child's
    starts at its parent's resident memory.
    """
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return 0


def memory_child(n, n_genes, density, seed, max_iter):
    """(f), in its own process: generate the matrix, fit, print the memory figures as JSON."""
    import torch

    torch.set_num_threads(1)
    before = _rss_bytes()
    started = time.perf_counter()
    X = sparse_counts(n, n_genes, density, seed)
    generated = time.perf_counter() - started
    after_data = _rss_bytes()
    peak_before_fit = _rss_bytes("VmHWM")
    vae = VAEEstimator(10, likelihood="negative_binomial", library_size="latent",
                       max_iter=max_iter, random_state=seed)  # fmt: skip
    cpu = time.process_time()
    seconds, vae = fit_quietly(vae, X)
    out = {
        "rows": n, "genes": n_genes, "density": density, "nnz": int(X.nnz),
        "dtype": str(X.dtype), "index_dtype": str(X.indices.dtype),
        "sparse_bytes": int(X.data.nbytes + X.indices.nbytes + X.indptr.nbytes),
        "dense_bytes_float32": 4 * n * n_genes,
        "rss_before_data_bytes": before, "rss_after_data_bytes": after_data,
        "peak_before_fit_bytes": peak_before_fit,
        "peak_rss_bytes": _rss_bytes("VmHWM"),
        "ru_maxrss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "generate_seconds": generated, "fit_seconds": seconds,
        "fit_cpu_seconds": time.process_time() - cpu, "epochs": vae.n_iter_,
        "max_iter": max_iter, "batch_size": vae.batch_size,
    }  # fmt: skip
    print("MEMORY " + json.dumps(out), flush=True)


def measure_memory(args):
    """(f): run :func:`memory_child` in a fresh process and check its peak against the input."""
    command = [
        sys.executable, __file__, "--memory-child", str(args.memory_rows), str(args.memory_genes),
        str(args.memory_density), str(args.memory_seed), str(args.memory_max_iter),
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    lines = [x for x in done.stdout.splitlines() if x.startswith("MEMORY ")]
    if done.returncode or not lines:
        return {"error": f"exit code {done.returncode}: {done.stderr[-1500:]}"}
    out = json.loads(lines[-1][len("MEMORY ") :])
    out["budget_bytes"] = out["sparse_bytes"] + 2**30
    out["within_budget"] = out["peak_rss_bytes"] <= out["budget_bytes"]
    out["seed"] = args.memory_seed
    return out


# ---------------------------------------------------------------------- main


PARTS = ("library", "batches", "topics", "pbmc", "memory")


def merge_previous(path, payload, run, parts):
    """Keep the parts of the results file at ``path`` that this run did not measure.

    Each part kept carries the stamp (commit, date, command) of the run that measured it.
    """
    if path is None or not Path(path).exists():
        return payload
    old = json.loads(Path(path).read_text())
    previous = old.get("result", {})
    stamps = previous.get("part_stamps", {})
    old_stamp = {k: old.get(k) for k in ("commit", "date", "command", "dirty")}
    for part in PARTS:
        if part in parts or part not in previous:
            continue
        payload[part] = previous[part]
        payload["part_stamps"][part] = stamps.get(part, old_stamp)
        if part in ("library", "batches", "topics"):
            for key, value in previous.get("settings", {}).items():
                payload["settings"].setdefault(key, value)
    return payload





def tables(p: dict) -> list:
    """The tables of a payload, as blocks for the harness to print and store."""
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
    return parts


def main(argv=None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    if argv[:1] == ["--memory-child"]:
        n, genes, density, seed, max_iter = argv[1:6]
        memory_child(int(n), int(genes), float(density), int(seed),
                     max_iter if max_iter == "auto" else int(max_iter))  # fmt: skip
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS))
    parser.add_argument(
        "--merge",
        action="store_true",
        help="keep the results file's parts that this run does not measure",
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--batch-seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--pbmc-seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--topic-seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--cells", type=int, default=2000)
    parser.add_argument("--cells-batches", type=int, default=2000)
    parser.add_argument("--docs", type=int, default=1500)
    parser.add_argument("--memory-rows", type=int, default=100_000)
    parser.add_argument("--memory-genes", type=int, default=20_000)
    parser.add_argument("--memory-density", type=float, default=0.05)
    parser.add_argument("--memory-seed", type=int, default=1)
    parser.add_argument("--memory-max-iter", type=int, default=1)
    parser.add_argument("--max-iter", type=lambda s: s if s == "auto" else int(s), default="auto")
    parser.add_argument(
        "--scvi-python",
        default=None,
        help="Python of a venv with scvi-tools (>= 3.12); without it scVI is left out",
    )
    parser.add_argument(
        "--make-scvi-venv",
        metavar="PYTHON",
        default=None,
        help=f"create {SCVI_VENV.name} with this Python (>= 3.12), install scvi-tools, exit",
    )
    parser.add_argument("--threads", type=int, default=1)
    add_output_options(parser)
    args = parser.parse_args(argv)
    if args.make_scvi_venv:
        return make_scvi_venv(args.make_scvi_venv)
    apply_quick(
        parser, args, seeds=[1], batch_seeds=[1], pbmc_seeds=[1], topic_seeds=[1], cells=300,
        cells_batches=300, docs=150, max_iter=3, memory_rows=2000, memory_genes=2000,
    )  # fmt: skip
    parts = set(args.parts)
    run = begin("bench_counts", __file__, args, argv)
    set_threads(args.threads)
    started = time.time()
    max_epochs = 5 if args.quick else None
    payload = {"settings": {}, "part_stamps": {}}
    with tempfile.TemporaryDirectory() as tmp:
        tasks, library_tasks, batch_tasks, pbmc_tasks = [], {}, {}, {}
        for seed in sorted(set(args.seeds) | set(args.batch_seeds)):
            if "library" in parts and seed in args.seeds:
                X, _ = library_counts(seed, n=args.cells)
                cut = int(0.8 * len(X))
                path = os.path.join(tmp, f"library_{seed}.npz")
                np.savez(path, X_train=X[:cut], X_test=X[cut:])
                library_tasks[seed] = {"data": path, "out": path[:-4] + ".json", "seed": seed,
                                       "n_latent": 4, "batch": False, "dir": tmp,
                                       "max_epochs": max_epochs}  # fmt: skip
                tasks.append(library_tasks[seed])
            if "batches" in parts and seed in args.batch_seeds:
                X, batch, _ = batch_counts(seed, n=args.cells_batches)
                path = os.path.join(tmp, f"batches_{seed}.npz")
                np.savez(path, X_train=X[:, :-1], X_test=X[:50, :-1], batch_train=batch,
                         batch_test=batch[:50])  # fmt: skip
                batch_tasks[seed] = {"data": path, "out": path[:-4] + ".json", "seed": seed,
                                     "n_latent": 4, "batch": True, "dir": tmp,
                                     "max_epochs": max_epochs}  # fmt: skip
                tasks.append(batch_tasks[seed])
        if "pbmc" in parts:
            pbmc, pbmc_check = pbmc_counts()
            for seed in args.pbmc_seeds:
                train, test = pbmc_split(seed, len(pbmc))
                path = os.path.join(tmp, f"pbmc_{seed}.npz")
                np.savez(path, X_train=pbmc[train], X_test=pbmc[test])
                pbmc_tasks[seed] = {"data": path, "out": path[:-4] + ".json", "seed": seed,
                                    "n_latent": 10, "batch": False, "dir": tmp,
                                    "max_epochs": max_epochs}  # fmt: skip
                tasks.append(pbmc_tasks[seed])
        scvi = start_scvi(args.scvi_python, tasks) if tasks else None
        if "topics" in parts:
            payload["topics"] = [measure_topics(seed, args) for seed in args.topic_seeds]
            print(json.dumps(payload["topics"], indent=1), flush=True)
        skvae_library = {s: measure_library(s, args) for s in args.seeds if "library" in parts}
        skvae_batches = {
            s: measure_batches(s, args) for s in args.batch_seeds if "batches" in parts
        }
        skvae_pbmc = {s: measure_pbmc(s, pbmc, args) for s in args.pbmc_seeds if "pbmc" in parts}
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
        if "library" in parts:
            payload["library"] = []
            for seed in args.seeds:
                rows = skvae_library[seed]["rows"]
                if scvi is not None:
                    rows += measure_library_scvi(seed, args, library_tasks[seed])
                payload["library"].append({"seed": seed, "rows": rows})
        if "batches" in parts:
            payload["batches"] = []
            for seed in args.batch_seeds:
                entry = skvae_batches[seed]
                if scvi is not None:
                    entry["rows"] += measure_batches_scvi(seed, args, batch_tasks[seed])
                payload["batches"].append(entry)
        if "pbmc" in parts:
            entries = []
            for seed in args.pbmc_seeds:
                rows = skvae_pbmc[seed]
                if scvi is not None:
                    rows += measure_pbmc_scvi(pbmc_tasks[seed])
                entries.append({"seed": seed, "rows": rows})
            payload["pbmc"] = {"counts_check": pbmc_check, "seeds": args.pbmc_seeds,
                               "entries": entries, "scvi": scvi_note,
                               "n_importance_samples": N_IMPORTANCE}  # fmt: skip
    if parts & {"library", "batches", "topics"}:
        payload["settings"] = {
            "seeds": args.seeds, "batch_seeds": args.batch_seeds,
            "topic_seeds": args.topic_seeds, "cells": args.cells,
            "cells_batches": args.cells_batches,
            "docs": args.docs, "max_iter": args.max_iter, "threads": args.threads,
            "n_importance_samples": N_IMPORTANCE, "scvi": scvi_note,
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


def measure_library_scvi(seed, args, task):
    X, z = library_counts(seed, n=args.cells)
    cut = int(0.8 * len(X))
    result = scvi_result(task)
    if result is None or "error" in result:
        return [{"model": "scVI (latent library)", "error": (result or {}).get("error", "none")}]
    return [
        {
            "model": "scVI (latent library)",
            "log_likelihood": float(np.mean(result["test_log_likelihood"])),
            "is_likelihood_of_x": True,
            "r2_true_latent": _r2(
                np.array(result["latent_train"]), np.array(result["latent_test"]),
                z[:cut], z[cut:],
            ),
            "fit_seconds": result["fit_seconds"],
            "fit_cpu_seconds": result["fit_cpu_seconds"],
            "epochs": result["epochs"],
            "version": result["scvi_version"],
        }
    ]  # fmt: skip


def measure_batches_scvi(seed, args, task):
    _, batch, cell_type = batch_counts(seed, n=args.cells_batches)
    result = scvi_result(task)
    if result is None or "error" in result:
        return [{"model": "scVI, batch_key", "error": (result or {}).get("error", "none")}]
    Z = np.array(result["latent_train"])
    return [
        {"model": "scVI, batch_key", **_accuracies(Z, batch, cell_type),
         "fit_seconds": result["fit_seconds"], "fit_cpu_seconds": result["fit_cpu_seconds"]}
    ]  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
