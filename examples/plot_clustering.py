"""Clustering the digits with VAEClusterer: probabilities, centres and draws of one cluster
========================================================================================

``VAEClusterer`` is a VAE whose prior is a mixture of ``n_clusters`` Gaussians: each
cluster is a component of the prior, learned with the encoder and the decoder. Beside a
label, it gives each row the probability of each cluster, decodes each cluster's centre,
draws new rows of a chosen cluster, and scores held-out rows by their likelihood, so that
``GridSearchCV`` can choose ``n_clusters``.

Here it clusters scikit-learn's 8x8 digits into 10 groups, beside what a user would
otherwise run: ``KMeans`` on the pixels, and a ``GaussianMixture`` on the codes of a
``VAEEstimator``, a model that never knew there were clusters. ``benchmarks/bench_cluster.py``
measures the same on more data sets and seeds, against PCA and UMAP pipelines too.

Run from the repository root with ``python examples/plot_clustering.py`` (options:
``--out DIR`` for the figures, ``output/`` by default; ``--quick`` for a seconds-long run
on small settings, which is what the tests do).
"""

# %%
# Settings
# --------
#
# As a program, the script takes two options: ``--out DIR``, the directory its figures are
# written to, and ``--quick``, small settings that run in seconds (the tests use them). The
# gallery runs it with no option: the full settings, figures in ``output/``.

import argparse
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from sklearn.cluster import KMeans
from sklearn.datasets import load_digits
from sklearn.metrics import adjusted_rand_score
from sklearn.mixture import GaussianMixture
from sklearn.pipeline import make_pipeline

from skvae import VAEClusterer, VAEEstimator
from skvae.plotting import ClustersDisplay, SamplesDisplay

parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
parser.add_argument("--out", default="output", help="directory of the figures")
parser.add_argument("--quick", action="store_true", help="small settings, for tests")
args = parser.parse_args()
out_dir = Path(args.out)
out_dir.mkdir(parents=True, exist_ok=True)
params = {"hidden_layer_sizes": (16,), "max_iter": 20} if args.quick else {}

# %%
# Three ways to cluster the digits
# --------------------------------
#
# The pixels are scaled to [0, 1]. Each method gets the number of digits, 10, and none
# sees the labels; the adjusted Rand index (ARI) compares its clusters with the digits (1
# is a perfect match, 0 what random labels score). CPU seconds are the process's time for
# the fit, summed over its threads.
#
# Printed: each method's ARI and CPU seconds.

X, y = load_digits(return_X_y=True)
X = X / 16.0
methods = {
    "VAEClusterer": VAEClusterer(10, random_state=0, **params),
    "KMeans on the pixels": KMeans(10, random_state=0),
    "GaussianMixture on VAEEstimator codes": make_pipeline(
        VAEEstimator(9, random_state=0, **params), GaussianMixture(10, random_state=0)
    ),
}
results = {}
for name, method in methods.items():
    start = time.process_time()
    labels = method.fit_predict(X)
    seconds = time.process_time() - start
    results[name] = {"ari": adjusted_rand_score(y, labels), "cpu_seconds": seconds}
    print(f"{name:>40}: ARI {results[name]['ari']:.3f}, {seconds:.2f} CPU s")
clusterer = methods["VAEClusterer"]

# %%
# What each cluster looks like
# ----------------------------
#
# ``cluster_centers_`` decodes the mean of each component of the prior: the image the
# model has in mind for the cluster. Its weight (the share of rows the model expects in
# it) is above each image. A cluster that holds two digits shows a blend of them.

display = ClustersDisplay.from_estimator(clusterer, X, image_shape=(8, 8), n_cols=5)
display.figure_.savefig(out_dir / "clustering_centres.png", dpi=100)
print(f"wrote {out_dir / 'clustering_centres.png'}")

# %%
# New rows of one cluster
# -----------------------
#
# ``sample(n, cluster=c)`` draws z from component c of the prior and x from the decoder:
# new rows of that cluster. Left, rows of the data the model put in the cluster; right,
# rows it draws for it. The draws are Gaussian, so each pixel has its own noise.

largest = int(np.argmax(clusterer.weights_))
members = X[clusterer.labels_ == largest][:16]
drawn = clusterer.sample(16, cluster=largest, random_state=0)
samples = SamplesDisplay(data=members, generated=drawn, image_shape=(8, 8), kind="sample")
samples.plot()
samples.ax_.set_title(f"cluster {largest}", pad=18)
samples.figure_.savefig(out_dir / "clustering_draws.png", dpi=100)
print(f"wrote {out_dir / 'clustering_draws.png'}")

# %%
# How sure the model is
# ---------------------
#
# ``predict_proba`` gives p(cluster | x) for each row. Rows whose most probable cluster
# has a low probability lie between clusters; a user can set them aside, or look at them.
#
# Printed: the share of rows whose most probable cluster has a probability above 0.9,
# and the ARI on those rows alone.

proba = clusterer.predict_proba(X)
sure = proba.max(axis=1) > 0.9
results["sure"] = {"share": sure.mean()}
print(f"rows with a cluster probability above 0.9: {sure.mean():.1%}")
if sure.sum() > 1:
    results["sure"]["ari"] = adjusted_rand_score(y[sure], clusterer.labels_[sure])
    print(f"ARI on them: {results['sure']['ari']:.3f}")
fig, ax = plt.subplots(figsize=(5, 3), layout="constrained")
ax.hist(proba.max(axis=1), bins=20)
ax.set_xlabel("probability of the most probable cluster")
ax.set_ylabel("rows")
fig.savefig(out_dir / "clustering_certainty.png", dpi=100)
print(f"wrote {out_dir / 'clustering_certainty.png'}")
