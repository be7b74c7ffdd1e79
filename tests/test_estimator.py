"""VAEEstimator's behaviour as a user sees it: the API, the model it learns, persistence."""

import pickle
import warnings
from unittest import mock

import joblib
import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA, FactorAnalysis
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.pipeline import make_pipeline

from skvae import VAEEstimator
from skvae._trainer import Trainer
from skvae.datasets import make_linear_gaussian


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X / 16.0, y


# Late in training a linear model gains ~1e-4 nats an epoch, less than the epoch-to-epoch
# noise of the held-out ELBO: the default patience (10 epochs) stops it about 0.02-0.1 nats
# short of the optimum. These settings train it to the maximum likelihood.
LINEAR_TO_CONVERGENCE = dict(
    learning_rate_init=3e-3, n_iter_no_change=50, max_iter=3000, random_state=0
)


def _ppca_data(n_samples, n_features=8, n_components=2, sigma=0.5, seed=0):
    X, _ = make_linear_gaussian(
        n_samples,
        n_features=n_features,
        n_components=n_components,
        noise="spherical",
        noise_scale=sigma,
        random_state=seed,
    )
    return X


def _fa_data(n_samples, n_features=8, n_components=2, seed=0):
    X, _ = make_linear_gaussian(
        n_samples, n_features=n_features, n_components=n_components, random_state=seed
    )
    return X


def test_fitted_api_shapes_and_types(digits):
    X, _ = digits
    vae = VAEEstimator(n_components=3, max_iter=15, random_state=0)
    with pytest.warns(ConvergenceWarning):
        Z = vae.fit_transform(X)
    assert Z.shape == (len(X), 3) and Z.dtype == np.float64
    assert vae.n_features_in_ == 64 and vae.n_iter_ == 15 and len(vae.loss_curve_) == 15
    assert len(vae.validation_scores_) == 15
    assert vae.best_validation_score_ == max(vae.validation_scores_)
    assert isinstance(vae.module_, torch.nn.Module)
    assert vae.noise_variance_.shape == (64,) and np.all(vae.noise_variance_ > 0)
    assert vae.inverse_transform(Z).shape == X.shape
    assert vae.sample(5).shape == (5, 64)
    scores = vae.score_samples(X[:10])
    assert scores.shape == (10,) and np.all(np.isfinite(scores))
    assert vae.score(X[:10]) == pytest.approx(scores.mean())
    np.testing.assert_array_equal(vae.transform(X), vae.transform(X))  # deterministic
    assert list(vae.get_feature_names_out()) == ["vaeestimator0", "vaeestimator1", "vaeestimator2"]
    assert vae.kl_per_component_.shape == (3,) and vae.n_active_components_ <= 3


def test_set_output_pandas_and_feature_names(digits):
    pd = pytest.importorskip("pandas")
    X, _ = digits
    df = pd.DataFrame(X[:200], columns=[f"px{i}" for i in range(64)])
    vae = VAEEstimator(max_iter=3, random_state=0).set_output(transform="pandas")
    with pytest.warns(ConvergenceWarning):
        out = vae.fit_transform(df)
    assert list(out.columns) == ["vaeestimator0", "vaeestimator1"]
    assert list(vae.feature_names_in_) == list(df.columns)


def test_bernoulli_samples_are_binary_and_means_are_probabilities(digits):
    X, _ = digits
    Xb = (X > 0.5).astype(float)
    vae = VAEEstimator(likelihood="bernoulli", max_iter=5, random_state=0)
    with pytest.warns(ConvergenceWarning):
        vae.fit(Xb)
    draws = vae.sample(200, random_state=1)
    assert set(np.unique(draws)) == {0.0, 1.0}
    means = vae.inverse_transform(vae.transform(Xb[:50]))
    assert np.all((means > 0) & (means < 1))
    assert not hasattr(vae, "noise_variance_")
    # A true log-likelihood of binary data: log p(x) < 0.
    assert np.all(vae.score_samples(Xb[:50]) < 0)


def test_sample_draws_from_the_model_not_its_mean():
    X = _ppca_data(3000, sigma=0.5)
    vae = VAEEstimator(
        hidden_layer_sizes=(), covariance_type="spherical", **LINEAR_TO_CONVERGENCE
    ).fit(X)
    draws = vae.sample(20000, random_state=0)
    # The model's covariance is W W^T + sigma^2 I: draws carry the noise, so the smallest
    # eigenvalues of their covariance are the noise variance (decoder means alone, a rank-2
    # cloud, would give 0), and the total variance is the data's.
    eig = np.linalg.eigvalsh(np.cov(draws.T))
    np.testing.assert_allclose(eig[:-2], 0.25, rtol=0.1)
    np.testing.assert_allclose(eig.sum(), np.trace(np.cov(X.T)), rtol=0.1)
    np.testing.assert_allclose(draws.mean(axis=0), X.mean(axis=0), atol=0.1)
    assert not np.allclose(vae.sample(3, random_state=1), vae.sample(3, random_state=2))
    np.testing.assert_array_equal(vae.sample(3, random_state=1), vae.sample(3, random_state=1))


def test_linear_spherical_vae_matches_probabilistic_pca_likelihood():
    X = _ppca_data(3000, seed=1)
    X_train, X_test = train_test_split(X, random_state=0)
    pca = PCA(n_components=2).fit(X_train)
    vae = VAEEstimator(
        n_components=2,
        hidden_layer_sizes=(),
        covariance_type="spherical",
        **LINEAR_TO_CONVERGENCE,
    ).fit(X_train)
    assert abs(vae.score(X_test) - pca.score(X_test)) < 0.1
    # The learned noise is PCA's maximum-likelihood noise variance, in the units of X.
    np.testing.assert_allclose(vae.noise_variance_, pca.noise_variance_, rtol=0.05)


def test_linear_diag_vae_matches_factor_analysis_likelihood():
    X = _fa_data(3000, seed=2)
    X_train, X_test = train_test_split(X, random_state=0)
    fa = FactorAnalysis(n_components=2, random_state=0).fit(X_train)
    vae = VAEEstimator(n_components=2, hidden_layer_sizes=(), **LINEAR_TO_CONVERGENCE)
    vae.fit(X_train)
    assert abs(vae.score(X_test) - fa.score(X_test)) < 0.1


def test_score_is_in_the_units_of_X():
    # Rescaling the data by c changes log p(x) by -n_features * log(c), exactly as for a
    # density; the fitted model is otherwise the same.
    X = _fa_data(500)
    kw = dict(hidden_layer_sizes=(16,), max_iter=20, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        a = VAEEstimator(**kw).fit(X)
        b = VAEEstimator(**kw).fit(1000.0 * X)
    np.testing.assert_allclose(
        b.score_samples(1000.0 * X), a.score_samples(X) - 8 * np.log(1000.0), rtol=1e-4
    )
    np.testing.assert_allclose(b.noise_variance_, 1e6 * a.noise_variance_, rtol=1e-4)
    np.testing.assert_allclose(
        b.inverse_transform(b.transform(1000 * X)),
        1000 * a.inverse_transform(a.transform(X)),
        rtol=1e-4,
        atol=1e-3,
    )


def test_iw_bound_increases_with_importance_samples(digits):
    X, _ = digits
    vae = VAEEstimator(max_iter=60, random_state=0)
    with pytest.warns(ConvergenceWarning):
        vae.fit(X[:1000])

    # In expectation ELBO <= IW_10 <= IW_1000. Every row shares the same K draws, so one
    # draw's luck moves the whole K=1 score: average it over 20 sets of common noise.
    def score(k, seed):
        vae._crn_seed = seed
        return vae.set_params(n_importance_samples=k).score(X[1000:])

    elbo = np.mean([score(1, seed) for seed in range(20)])
    assert elbo + 0.2 < score(10, 0) < score(1000, 0)


def test_score_samples_does_not_depend_on_row_order_or_batch(digits):
    X, _ = digits
    vae = VAEEstimator(max_iter=3, random_state=0)
    with pytest.warns(ConvergenceWarning):
        vae.fit(X[:300])
    full = vae.score_samples(X[:300])
    perm = np.random.default_rng(0).permutation(300)
    np.testing.assert_allclose(vae.score_samples(X[:300][perm]), full[perm], rtol=0, atol=1e-9)
    np.testing.assert_allclose(vae.score_samples(X[7:8]), full[7:8], rtol=0, atol=1e-9)


def test_same_random_state_gives_identical_results(digits):
    X, _ = digits
    kw = dict(max_iter=5, random_state=42)
    with pytest.warns(ConvergenceWarning):
        a = VAEEstimator(**kw).fit(X[:400])
    with pytest.warns(ConvergenceWarning):
        b = VAEEstimator(**kw).fit(X[:400])
    np.testing.assert_array_equal(a.transform(X), b.transform(X))
    np.testing.assert_array_equal(a.score_samples(X[:50]), b.score_samples(X[:50]))
    np.testing.assert_array_equal(a.sample(10), b.sample(10))
    assert a.loss_curve_ == b.loss_curve_
    with pytest.warns(ConvergenceWarning):
        c = VAEEstimator(max_iter=5, random_state=43).fit(X[:400])
    assert not np.allclose(a.transform(X), c.transform(X))


def test_fitting_does_not_touch_torch_global_rng(digits):
    X, _ = digits
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    with pytest.warns(ConvergenceWarning):
        VAEEstimator(max_iter=2, random_state=0).fit(X[:100])
    np.testing.assert_array_equal(torch.rand(3).numpy(), expected.numpy())


@pytest.mark.parametrize("dump", ["pickle", "joblib"])
def test_pickle_and_joblib_round_trips_give_identical_results(digits, tmp_path, dump):
    X, _ = digits
    vae = VAEEstimator(max_iter=3, random_state=0)
    with pytest.warns(ConvergenceWarning):
        vae.fit(X[:300])
    if dump == "pickle":
        loaded = pickle.loads(pickle.dumps(vae))
    else:
        joblib.dump(vae, tmp_path / "vae.joblib")
        loaded = joblib.load(tmp_path / "vae.joblib")
    np.testing.assert_array_equal(loaded.transform(X), vae.transform(X))
    np.testing.assert_array_equal(loaded.score_samples(X[:20]), vae.score_samples(X[:20]))
    np.testing.assert_array_equal(loaded.sample(5), vae.sample(5))
    # The stored state holds numpy arrays, not torch objects tied to a device.
    state = vae.__getstate__()
    assert isinstance(state["module_"]["state_dict"]["decoder.0.weight"], np.ndarray)
    # The loaded model can keep training from its optimiser state.
    loaded.set_params(warm_start=True, max_iter=2)
    with pytest.warns(ConvergenceWarning):
        loaded.fit(X[:300])
    assert loaded.n_iter_ == 5


def test_pickle_maps_cuda_tensors_to_cpu_numpy():
    # A model trained on a GPU stores its tensors as numpy: simulate by checking the
    # conversion moves every tensor through .cpu() before .numpy().
    from skvae._persistence import to_numpy, tree_map

    tensor = mock.MagicMock(spec=torch.Tensor)
    tensor.detach.return_value.cpu.return_value.numpy.return_value = np.zeros(2)
    out = tree_map({"a": [tensor, 1], "b": (tensor,)}, torch.Tensor, to_numpy)
    assert tensor.detach.return_value.cpu.call_count == 2
    assert out["a"][1] == 1 and isinstance(out["b"], tuple)


def test_warm_start_continues_and_refuses_a_changed_architecture(digits):
    X, _ = digits
    vae = VAEEstimator(max_iter=4, warm_start=True, early_stopping=False, random_state=0)
    with pytest.warns(ConvergenceWarning):
        vae.fit(X[:300])
    first = list(vae.loss_curve_)
    with pytest.warns(ConvergenceWarning):
        vae.fit(X[:300])
    assert vae.n_iter_ == 8 and vae.loss_curve_[:4] == first
    assert vae.loss_curve_[-1] < first[0]
    before = vae.transform(X[:20])
    vae.set_params(n_components=3)
    with pytest.raises(ValueError, match="n_components changed"):
        vae.fit(X[:300])
    np.testing.assert_array_equal(vae.transform(X[:20]), before)  # the old model survives


def test_early_stopping_restores_the_best_weights(digits):
    X, _ = digits
    vae = VAEEstimator(
        hidden_layer_sizes=(256, 256),
        learning_rate_init=3e-3,
        n_iter_no_change=3,
        max_iter=200,
        random_state=0,
    ).fit(X[:300])
    assert vae.n_iter_ < 200  # stopped early: a big model overfits 270 rows fast
    best_epoch = int(np.argmax(vae.validation_scores_))
    assert best_epoch < vae.n_iter_ - 1
    idx_train, idx_val = train_test_split(
        np.arange(300),
        test_size=0.1,
        random_state=np.random.RandomState(0).randint(np.iinfo(np.int32).max, size=4)[1],
    )
    assert len(idx_val) == 30
    assert vae.best_validation_score_ == pytest.approx(vae.validation_scores_[best_epoch])


def test_keyboard_interrupt_warns_and_keeps_the_best_weights(digits):
    X, _ = digits
    calls = {"n": 0}
    real_step = Trainer.train_step

    def interrupting_step(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 25:
            raise KeyboardInterrupt
        return real_step(*args, **kwargs)

    with mock.patch.object(Trainer, "train_step", interrupting_step):
        with pytest.warns(UserWarning, match="interrupted"):
            vae = VAEEstimator(batch_size=100, random_state=0).fit(X[:500])
    assert vae.n_iter_ == 4  # 450 training rows, 5 batches an epoch: step 25 ends epoch 5
    assert np.all(np.isfinite(vae.transform(X[:10])))


def test_convergence_warning_only_when_max_iter_ends_training(digits):
    X, _ = digits
    with pytest.warns(ConvergenceWarning, match="Maximum iterations"):
        VAEEstimator(max_iter=2, random_state=0).fit(X[:200])
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        vae = VAEEstimator(tol=1e9, n_iter_no_change=1, random_state=0).fit(X[:200])
    assert vae.n_iter_ == 3  # as MLPClassifier: stop once no_improvement > n_iter_no_change


def test_pipeline_and_grid_search_over_n_components_and_likelihood(digits):
    X, y = digits
    X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0)
    pipe = make_pipeline(
        VAEEstimator(max_iter=30, random_state=0), LogisticRegression(max_iter=2000)
    )
    grid = GridSearchCV(
        pipe,
        {
            "vaeestimator__n_components": [2, 8],
            "vaeestimator__likelihood": ["gaussian", "bernoulli"],
        },
        cv=2,
        n_jobs=2,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        grid.fit(X_train, y_train)
    assert grid.best_params_["vaeestimator__n_components"] == 8
    # A working classifier after 30 epochs (chance is 0.1); quality is bench_defaults' job.
    assert grid.score(X_test, y_test) > 0.8


def _torch_threads(estimator, X, y=None):
    return float(torch.get_num_threads())


def test_grid_search_workers_use_one_thread_each(digits):
    # Under GridSearchCV(n_jobs=2) on 2 cores, torch in each worker must not start 2 threads.
    X, _ = digits
    grid = GridSearchCV(
        VAEEstimator(max_iter=1, random_state=0),
        {"n_components": [1, 2]},
        cv=2,
        n_jobs=2,
        scoring=_torch_threads,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        grid.fit(X[:200])
    import os

    expected = max(1, (os.cpu_count() or 1) // 2)
    assert np.all(grid.cv_results_["mean_test_score"] == expected)


def test_grid_search_default_score_picks_the_higher_likelihood():
    X = _ppca_data(1200, n_features=6, n_components=2, sigma=0.3, seed=3)
    grid = GridSearchCV(
        VAEEstimator(
            hidden_layer_sizes=(), covariance_type="spherical", max_iter=200, random_state=0
        ),
        {"n_components": [1, 2]},
        cv=3,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        grid.fit(X)
    assert grid.best_params_["n_components"] == 2


def test_device_auto_picks_cuda_only_when_present():
    from skvae._arrays import resolve_device as _resolve_device

    with mock.patch.object(torch.cuda, "is_available", return_value=False):
        assert _resolve_device("auto") == torch.device("cpu")
    with mock.patch.object(torch.cuda, "is_available", return_value=True):
        assert _resolve_device("auto") == torch.device("cuda")
        assert _resolve_device("cuda:1") == torch.device("cuda:1")
    assert _resolve_device("cpu") == torch.device("cpu")


def test_a_failed_warm_start_fit_keeps_the_optimizer_state(digits):
    X, _ = digits
    vae = VAEEstimator(max_iter=2, warm_start=True, early_stopping=False, random_state=0)
    with pytest.warns(ConvergenceWarning):
        vae.fit(X[:200])
    first = vae.optimizer_.param_groups[0]["params"][0]
    moments = {k: v.clone() for k, v in vae.optimizer_.state[first].items()}
    vae.set_params(learning_rate_init=1e12)
    with pytest.raises(ValueError, match="training loss became"):
        vae.fit(X[:200])
    # Adam's step count and moments are those of the fit that succeeded.
    after = vae.optimizer_.state[vae.optimizer_.param_groups[0]["params"][0]]
    assert set(after) == set(moments) == {"step", "exp_avg", "exp_avg_sq"}
    for key, value in moments.items():
        np.testing.assert_array_equal(after[key].numpy(), value.numpy())


# torch warns once per process about tensors made from read-only arrays, so a test that
# waits for that warning can pass because an earlier test used it up: these tests check
# the cause instead, that the tensors torch gets do not share memory with the caller's.


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_training_data_of_unscaled_families_is_a_copy(dtype):
    X = (np.random.default_rng(0).random((50, 4)) > 0.5).astype(dtype)
    from skvae._arrays import rescale

    out = rescale(X, np.zeros(4), np.ones(4), np.float32)
    assert out.dtype == np.float32 and out.flags.writeable
    assert not np.shares_memory(out, X)
    np.testing.assert_array_equal(out, X)


def test_inference_batches_are_copies_of_the_callers_array():
    rng = np.random.default_rng(0)
    X = (rng.random((60, 6)) > 0.5).astype(np.float64)
    vae = VAEEstimator(likelihood="bernoulli", hidden_layer_sizes=(8,), n_components=2)
    vae.set_params(max_iter=3, early_stopping=False, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        vae.fit(X)
    Z = vae.transform(X)
    before = Z.copy()

    def scribble(module, batch):
        batch["z"].add_(1.0)  # would write through to Z if the batch were a view of it
        return module.decode(batch["z"])

    vae._infer(Z, scribble, (6,), rescaled=False)
    np.testing.assert_array_equal(Z, before)


def test_inference_uses_one_copy_of_the_module_per_fitted_state(digits):
    X, _ = digits
    vae = VAEEstimator(hidden_layer_sizes=(8,), max_iter=3, early_stopping=False, random_state=0)
    with pytest.warns(ConvergenceWarning):
        vae.fit(X[:200])
    inference = vae._inference[2]
    with mock.patch("copy.deepcopy", side_effect=AssertionError("copied per call")):
        Z = vae.transform(X[:5])
        vae.score_samples(X[:5]), vae.inverse_transform(Z), vae.sample(2)
    assert vae._inference[2] is inference
    assert inference.state_dict()["encoder.0.weight"].dtype == torch.float64
    # A new fitted state, a new device setting or unpickling builds it anew.
    with pytest.warns(ConvergenceWarning):
        vae.fit(X[:200])
    assert vae._inference[2] is not inference
    refitted = vae._inference[2]
    assert vae.set_params(device="cpu")._inference[2] is not refitted
    loaded = pickle.loads(pickle.dumps(vae))
    np.testing.assert_array_equal(loaded.transform(X[:5]), vae.transform(X[:5]))


def test_precision_is_a_deprecated_name_of_compute_dtype(digits):
    X, _ = digits
    params = dict(hidden_layer_sizes=(8,), max_iter=2, early_stopping=False, random_state=0)
    with pytest.warns(ConvergenceWarning):
        new = VAEEstimator(compute_dtype="bfloat16", **params).fit(X[:100])
    with pytest.warns(FutureWarning, match="renamed 'compute_dtype'"):
        with pytest.warns(ConvergenceWarning):
            old = VAEEstimator(precision="bfloat16", **params).fit(X[:100])
    np.testing.assert_array_equal(old.transform(X[:10]), new.transform(X[:10]))
