"""VAEClusterer: cluster probabilities against an exact reference, draws of one cluster,
frames, n_clusters chosen by held-out likelihood, and clear errors."""

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy.special import softmax
from sklearn.datasets import make_blobs
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV

from skvae import VAEClusterer


def _fit(X, **params):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return VAEClusterer(**params).fit(X)


@pytest.fixture(scope="module")
def blobs():
    X, y = make_blobs(300, n_features=4, centers=3, cluster_std=0.5, random_state=0)
    return X, y, _fit(X, n_clusters=3, hidden_layer_sizes=(16,), random_state=0)


def test_predict_proba_of_a_linear_model_is_the_exact_posterior_of_the_clusters(
    linear_mixture_log_joint,
):
    # Two clusters in a 1-D latent space, mapped linearly to 3 columns: a linear VAE with a
    # mixture prior has p(x | c) = N(W m_c + b, W S_c W^T + diag(noise)) exactly.
    rng = np.random.default_rng(0)
    z = np.where(rng.uniform(size=(600, 1)) < 0.4, -1.0, 1.0) + 0.4 * rng.normal(size=(600, 1))
    X = z @ np.array([[1.0, -0.5, 2.0]]) + 0.3 * rng.normal(size=(600, 3))
    clusterer = _fit(
        X,
        n_clusters=2,
        n_components=1,
        hidden_layer_sizes=(),
        n_importance_samples=2000,
        random_state=0,
    )
    exact = softmax(linear_mixture_log_joint(clusterer.module_, X[:60]), axis=1)
    proba = clusterer.predict_proba(X[:60])
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-12)
    assert np.abs(proba - exact).max() < 0.02
    # Between the clusters the answer is uncertain: the test sees probabilities, not labels.
    assert ((exact > 0.1) & (exact < 0.9)).any()


def test_labels_centres_and_draws_of_one_cluster_match_the_data(blobs):
    X, y, clusterer = blobs
    labels = clusterer.labels_
    assert pd.crosstab(labels, y).max(axis=0).sum() == len(y)  # one cluster per blob
    np.testing.assert_array_equal(clusterer.predict(X), labels)
    for c in range(3):
        rows = X[labels == c]
        assert np.abs(clusterer.cluster_centers_[c] - rows.mean(axis=0)).max() < 0.3
        draws = clusterer.sample(400, cluster=c, random_state=c)
        assert np.mean(clusterer.predict(draws) == c) > 0.95
        assert np.abs(draws.mean(axis=0) - rows.mean(axis=0)).max() < 0.3


def test_the_same_random_state_gives_the_same_clusters():
    X, _ = make_blobs(150, n_features=3, centers=2, random_state=1)
    first = _fit(X, n_clusters=2, hidden_layer_sizes=(8,), max_iter=50, random_state=3)
    second = _fit(X, n_clusters=2, hidden_layer_sizes=(8,), max_iter=50, random_state=3)
    np.testing.assert_array_equal(first.labels_, second.labels_)
    np.testing.assert_array_equal(first.means_, second.means_)


@pytest.mark.parametrize(
    ("n_clusters", "n_features", "expected"),
    [(3, 4, 2), (2, 4, 2), (6, 4, 4), (10, 64, 9), (6, 1, 1)],
)
def test_auto_latent_width_is_what_the_cluster_means_span(n_clusters, n_features, expected):
    X = np.random.default_rng(0).normal(size=(60, n_features))
    clusterer = _fit(X, n_clusters=n_clusters, hidden_layer_sizes=(4,), max_iter=2)
    assert clusterer.module_.n_components == clusterer.means_.shape[1] == expected
    assert clusterer.transform(X[:5]).shape == (5, expected)


def test_a_mixed_frame_with_missing_values_is_clustered_and_its_centres_are_a_frame():
    rng = np.random.default_rng(0)
    group = rng.integers(0, 2, 240)
    frame = pd.DataFrame(
        {
            "size": rng.normal(4.0 * group, 1.0),
            "kind": np.where(group == 1, "large", "small"),
            "count": rng.poisson(2 + 6 * group),
        }
    )
    frame.loc[rng.choice(240, 20, replace=False), "size"] = np.nan
    clusterer = _fit(frame, n_clusters=2, likelihood="auto", random_state=0)
    assert pd.crosstab(clusterer.labels_, group).max(axis=0).sum() >= 235
    centres = clusterer.cluster_centers_
    assert isinstance(centres, pd.DataFrame)
    assert list(centres.columns) == list(frame.columns)
    assert set(centres["kind"]) == {"large", "small"}
    draws = clusterer.sample(
        50, cluster=int(clusterer.labels_[group == 1][0]), random_state=0, missing=False
    )
    assert (draws["kind"] == "large").mean() > 0.9


@pytest.mark.slow
def test_grid_search_by_held_out_likelihood_finds_the_number_of_clusters():
    X, _ = make_blobs(300, n_features=6, centers=3, cluster_std=0.5, random_state=2)
    # A larger step and an epoch limit keep the nine fits short.
    clusterer = VAEClusterer(
        hidden_layer_sizes=(16,), learning_rate_init=1e-2, max_iter=100, random_state=0
    )
    search = GridSearchCV(clusterer, {"n_clusters": [2, 3, 5]}, cv=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        search.fit(X)
    assert search.best_params_ == {"n_clusters": 3}


def test_warm_start_trains_the_mixture_on(blobs):
    X, y, clusterer = blobs
    clusterer = _fit(X, n_clusters=3, hidden_layer_sizes=(16,), max_iter=30, random_state=0)
    before = clusterer.n_iter_
    clusterer.set_params(warm_start=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clusterer.fit(X)
    assert clusterer.n_iter_ > before
    assert clusterer.module_.prior.name == "mixture"


def test_more_clusters_than_rows_is_a_clear_error_before_training():
    X = np.random.default_rng(0).normal(size=(6, 2))
    with pytest.raises(ValueError, match="n_clusters=8 is more than the 5 rows"):
        VAEClusterer(8).fit(X)


def test_bad_cluster_arguments_are_clear_errors(blobs):
    _, _, clusterer = blobs
    with pytest.raises(ValueError, match=r"cluster must be an integer in \[0, 3\)"):
        clusterer.sample(2, cluster=3)
    with pytest.raises(ValueError, match="cluster or given, not both"):
        clusterer.sample(2, cluster=0, given={0: 1.0})
