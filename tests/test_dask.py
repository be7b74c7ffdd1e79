"""Beyond one machine: dask-ml's Incremental over blocks, GridSearchCV on a dask cluster.

dask, distributed and dask-ml are the optional extra skvae[dask]; `make test` installs
them, so these tests run in CI and skip only where the extra is missing.
"""

import os

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import GridSearchCV

import skvae
from skvae import VAEEstimator

# Starting clusters and worker processes takes seconds: left out by `make test-quick`.
pytestmark = pytest.mark.slow

dask = pytest.importorskip("dask")
da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")
wrappers = pytest.importorskip("dask_ml.wrappers")
joblib = pytest.importorskip("joblib")

SMALL = dict(hidden_layer_sizes=(16,), batch_size=64, random_state=0)
N_BLOCKS = 8


@pytest.fixture(scope="module")
def digits():
    X = load_digits().data[:800] / 16.0
    return X[:, X.std(axis=0) > 0]  # pixels that vary: every family's score is finite


@pytest.fixture(scope="module")
def client():
    # Two worker processes on the loopback interface, started and stopped by the tests.
    with (
        distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        yield client


def _partial_fit_by_hand(X, n_blocks):
    est = VAEEstimator(**SMALL)
    for block in np.array_split(X, n_blocks):
        est.partial_fit(block)
    return est


def test_incremental_calls_partial_fit_once_per_block_in_order(digits):
    X = digits
    X_dask = da.from_array(X, chunks=(len(X) // N_BLOCKS, X.shape[1]))
    assert X_dask.numblocks == (N_BLOCKS, 1)
    # Incremental shuffles the blocks by default (shuffle_blocks=True, unseeded): keep
    # them in order to compare with partial_fit by hand on the same blocks.
    inc = wrappers.Incremental(VAEEstimator(**SMALL), shuffle_blocks=False)
    with dask.config.set(scheduler="threads"):
        inc.fit(X_dask)
        Z_dask = inc.transform(X_dask)
        assert isinstance(Z_dask, da.Array)
        Z = Z_dask.compute()
    by_hand = _partial_fit_by_hand(X, N_BLOCKS)
    assert inc.estimator_.n_iter_ == N_BLOCKS
    assert inc.estimator_.loss_curve_ == by_hand.loss_curve_
    expected = by_hand.transform(X)
    np.testing.assert_allclose(inc.estimator_.transform(X), expected, rtol=0, atol=1e-12)
    # Incremental.transform maps the estimator over the blocks of the dask array.
    assert Z.shape == (len(X), 2)
    np.testing.assert_allclose(Z, expected, rtol=0, atol=1e-12)


def test_incremental_on_a_cluster_moves_the_model_between_processes(digits, client):
    # On a distributed cluster each block's partial_fit runs on some worker process: the
    # model travels between them pickled, and must come back the model made by hand.
    X = digits
    X_dask = da.from_array(X, chunks=(len(X) // N_BLOCKS, X.shape[1]))
    inc = wrappers.Incremental(VAEEstimator(**SMALL), shuffle_blocks=False).fit(X_dask)
    by_hand = _partial_fit_by_hand(X, N_BLOCKS)
    assert inc.estimator_.n_iter_ == N_BLOCKS
    # Measured: identical loss curves, transforms within 3e-15 (workers use one thread).
    np.testing.assert_allclose(inc.estimator_.loss_curve_, by_hand.loss_curve_, rtol=1e-9)
    expected = by_hand.transform(X)
    np.testing.assert_allclose(inc.estimator_.transform(X), expected, rtol=0, atol=1e-9)
    np.testing.assert_allclose(inc.transform(X_dask).compute(), expected, rtol=0, atol=1e-9)


def _grid():
    return GridSearchCV(
        VAEEstimator(max_iter=5, early_stopping=False, **SMALL),
        {"n_components": [1, 2], "likelihood": ["gaussian", "continuous_bernoulli"]},
        cv=2,
    )


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_grid_search_on_a_dask_cluster_gives_the_default_backends_results(digits, client):
    X = digits[:300]
    # The workers run this checkout's skvae, not another copy installed elsewhere.
    assert set(client.run(lambda: __import__("skvae").__file__).values()) == {skvae.__file__}
    with joblib.parallel_backend("dask"):
        on_cluster = _grid().fit(X)
    here = _grid().fit(X)
    scores = on_cluster.cv_results_["mean_test_score"]
    assert len(scores) == 4 and np.all(np.isfinite(scores))
    # Seeded fits: the same scores wherever they ran (exactly equal when last measured).
    for key in ("split0_test_score", "split1_test_score", "mean_test_score"):
        np.testing.assert_allclose(on_cluster.cv_results_[key], here.cv_results_[key], rtol=1e-9)
    assert on_cluster.best_params_ == here.best_params_
    n_components = on_cluster.best_params_["n_components"]
    assert on_cluster.best_estimator_.transform(X[:5]).shape == (5, n_components)


def test_dask_workers_do_not_oversubscribe_the_cores(client):
    # distributed starts workers with OMP_NUM_THREADS=1: torch there uses one thread each.
    threads = client.run(torch.get_num_threads)
    assert len(threads) == 2 and set(threads.values()) == {1}
    assert sum(threads.values()) <= (os.cpu_count() or 1)


def test_incremental_reports_a_bad_block_in_the_users_terms(digits):
    X = digits.copy()
    X[-1, 0] = 2.0  # outside [0, 1], in the last block
    X_dask = da.from_array(X, chunks=(len(X) // N_BLOCKS, X.shape[1]))
    est = VAEEstimator(likelihood="continuous_bernoulli", **SMALL)
    inc = wrappers.Incremental(est, shuffle_blocks=False)
    with dask.config.set(scheduler="threads"), pytest.raises(ValueError, match=r"in \[0, 1\]"):
        inc.fit(X_dask)
