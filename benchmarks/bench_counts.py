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
    From the latent code of every cell, a 5-fold cross-validated logistic regression
    predicts the batch (near chance, 1/3, is good) and the type (high is good). skvae
    with ``covariates`` naming the batch column, on a dense and on a sparse (CSR) X,
    beside skvae without it and scVI with ``batch_key``. Seed 1.
(c) Topics. Documents drawn from an LDA model (10 topics, 500 words, 1,000 + 500 held-out
    documents of about 80 words), as strings through ``CountVectorizer``:
    ``VAEEstimator(likelihood="multinomial")`` in a Pipeline against scikit-learn's
    ``LatentDirichletAllocation`` with the same number of topics; held-out perplexity of
    the word sequences, exp(-log p(words) / words), both without the multinomial
    coefficient and the document length. The VAE's ``n_components`` is also chosen by
    ``GridSearchCV`` (5 or 10, 2 folds) on the training documents. Seed 1.
(d) scVI (scvi-tools' SCVI, matched architecture, latent library) in (a) and (b), run on
    the Python scvi-tools needs with ``--scvi-python`` (a venv with scvi-tools).

skvae has ``VAEEstimator``'s defaults apart from the likelihood, ``n_components`` (the
true latent size or number of topics), ``library_size`` and ``covariates``. About 40
minutes on 2 cores under a load of 4-7 (skvae on one, scVI on the other)::

    python benchmarks/bench_counts.py --make-scvi-venv /path/to/python3.12  # once
    python benchmarks/bench_counts.py --scvi-python benchmarks/.scvi-venv/bin/python
    python benchmarks/bench_counts.py --quick --json /tmp/bench_counts.json
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _harness import add_output_options, apply_quick, begin, finish, fit_quietly, set_threads
from scipy import sparse, stats
from scipy.special import gammaln, softmax
from sklearn.decomposition import LatentDirichletAllocation
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.model_selection import GridSearchCV, cross_val_score
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
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    return {
        "batch_accuracy": float(cross_val_score(clf, Z, batch, cv=5).mean()),
        "type_accuracy": float(cross_val_score(clf, Z, cell_type, cv=5).mean()),
    }


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
        {"model": f"GridSearchCV over n_components (chose {k})",
         "perplexity": float(np.exp(-log_pw.sum() / words)), "fit_seconds": seconds}
    )  # fmt: skip
    return out


# ---------------------------------------------------------------------- main


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--batch-seeds", type=int, nargs="+", default=[1])
    parser.add_argument("--cells", type=int, default=2000)
    parser.add_argument("--cells-batches", type=int, default=2000)
    parser.add_argument("--docs", type=int, default=1500)
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
        parser, args, seeds=[1], batch_seeds=[1], cells=300, cells_batches=300, docs=150,
        max_iter=3,
    )  # fmt: skip
    run = begin("bench_counts", __file__, args, argv)
    set_threads(args.threads)
    started = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        tasks, library_tasks, batch_tasks = [], {}, {}
        for seed in sorted(set(args.seeds) | set(args.batch_seeds)):
            X, _ = library_counts(seed, n=args.cells)
            cut = int(0.8 * len(X))
            path = os.path.join(tmp, f"library_{seed}.npz")
            np.savez(path, X_train=X[:cut], X_test=X[cut:])
            library_tasks[seed] = {"data": path, "out": path[:-4] + ".json", "seed": seed,
                                   "n_latent": 4, "batch": False, "dir": tmp,
                                   "max_epochs": 5 if args.quick else None}  # fmt: skip
            X, batch, _ = batch_counts(seed, n=args.cells_batches)
            path = os.path.join(tmp, f"batches_{seed}.npz")
            np.savez(path, X_train=X[:, :-1], X_test=X[:50, :-1], batch_train=batch,
                     batch_test=batch[:50])  # fmt: skip
            batch_tasks[seed] = {"data": path, "out": path[:-4] + ".json", "seed": seed,
                                 "n_latent": 4, "batch": True, "dir": tmp,
                                 "max_epochs": 5 if args.quick else None}  # fmt: skip
            tasks.append(library_tasks[seed])
            if seed in args.batch_seeds:
                tasks.append(batch_tasks[seed])
        scvi = start_scvi(args.scvi_python, tasks)
        topics = measure_topics(args.seeds[0], args)
        print(json.dumps(topics, indent=1), flush=True)
        skvae_library = {s: measure_library(s, args) for s in args.seeds}
        skvae_batches = {s: measure_batches(s, args) for s in args.batch_seeds}
        scvi_note = "not run: no --scvi-python given"
        if scvi is not None:
            scvi.wait()
            scvi_note = f"exit code {scvi.returncode}"
            with open(os.path.join(tmp, "scvi.log")) as f:
                log_tail = f.read()[-2000:]
        library, batches = [], []
        for seed in args.seeds:
            rows = skvae_library[seed]["rows"]
            if scvi is not None:
                rows += measure_library_scvi(seed, args, library_tasks[seed])
            library.append({"seed": seed, "rows": rows})
        for seed in args.batch_seeds:
            entry = skvae_batches[seed]
            if scvi is not None:
                entry["rows"] += measure_batches_scvi(seed, args, batch_tasks[seed])
            batches.append(entry)
    payload = {
        "settings": {
            "seeds": args.seeds, "batch_seeds": args.batch_seeds, "cells": args.cells,
            "cells_batches": args.cells_batches,
            "docs": args.docs, "max_iter": args.max_iter, "threads": args.threads,
            "n_importance_samples": N_IMPORTANCE, "scvi": scvi_note,
            "scvi_python": args.scvi_python,
        },
        "library": library,
        "batches": batches,
        "topics": topics,
        "seconds": time.time() - started,
    }  # fmt: skip
    if scvi is not None:
        payload["settings"]["scvi_log_tail"] = log_tail
    finish(run, payload, args)
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
