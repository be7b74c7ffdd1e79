"""partial_fit: one epoch per call over a block, continuing the same model and Adam state."""

import math
import warnings
from unittest import mock

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split

from skvae import VAEEstimator
from skvae._trainer import Trainer
from skvae.datasets import make_linear_gaussian

# Small enough that a training step runs on one thread: fast even on a loaded machine.
SMALL = dict(hidden_layer_sizes=(16,), batch_size=64, random_state=0)


@pytest.fixture(scope="module")
def blocks():
    X = load_digits().data[:600] / 16.0
    return np.array_split(X, 4)


def _adam_steps(estimator):
    # Adam counts its own steps, one per minibatch, in every parameter's state.
    steps = {float(s["step"]) for s in estimator.optimizer_.state.values()}
    assert len(steps) == 1
    return int(steps.pop())


def test_each_call_is_one_epoch_that_continues_the_same_adam_state(blocks):
    vae = VAEEstimator(**SMALL)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no ConvergenceWarning, nor anything else
        for i, block in enumerate(blocks * 2, start=1):
            vae.partial_fit(block)
            assert vae.n_iter_ == i and len(vae.loss_curve_) == i
    # One minibatch step per batch_size rows of every block, counted across calls.
    expected_steps = 2 * sum(math.ceil(len(b) / 64) for b in blocks)
    assert _adam_steps(vae) == expected_steps
    assert vae.validation_scores_ is None and vae.best_validation_score_ is None
    assert vae.best_loss_ == min(vae.loss_curve_)
    assert vae.kl_per_component_.shape == (2,) and np.all(np.isfinite(vae.kl_per_component_))
    assert vae.noise_variance_.shape == (64,)
    # The second pass over the same blocks fits them better than the first.
    assert np.mean(vae.loss_curve_[4:]) < np.mean(vae.loss_curve_[:4])


def test_partial_fit_learns_the_data_scaling_from_the_first_block_only(blocks):
    vae = VAEEstimator(**SMALL)
    for block in blocks:
        vae.partial_fit(block)
    first = blocks[0]
    std = first.std(axis=0)
    # Constant columns are measured against the most variable one (see Gaussian).
    expected_scale = np.where(std > 0, std, std.max())
    np.testing.assert_allclose(
        vae.module_.likelihood.loc, first.mean(axis=0), rtol=1e-12, atol=1e-12
    )
    np.testing.assert_allclose(vae.module_.likelihood.scale, expected_scale, rtol=1e-10)


def test_partial_fit_reaches_the_probabilistic_pca_likelihood():
    # A linear spherical VAE is probabilistic PCA: streaming the training set through
    # partial_fit block by block must reach PCA's exact maximum likelihood.
    X, _ = make_linear_gaussian(
        3000, n_features=8, n_components=2, noise="spherical", noise_scale=0.5, random_state=1
    )
    X_train, X_test = train_test_split(X, random_state=0)
    pca = PCA(n_components=2).fit(X_train)
    vae = VAEEstimator(
        hidden_layer_sizes=(), covariance_type="spherical", learning_rate_init=1e-2,
        random_state=0,
    )  # fmt: skip
    for _ in range(30):
        for block in np.array_split(X_train, 5):
            vae.partial_fit(block)
    assert abs(vae.score(X_test) - pca.score(X_test)) < 0.1
    np.testing.assert_allclose(vae.noise_variance_, pca.noise_variance_, rtol=0.1)


def test_partial_fit_after_fit_continues_the_fitted_model(blocks):
    X = np.concatenate(blocks)
    vae = VAEEstimator(max_iter=3, early_stopping=False, **SMALL)
    with pytest.warns(ConvergenceWarning):
        vae.fit(X)
    curve, steps, before = list(vae.loss_curve_), _adam_steps(vae), vae.transform(X[:5])
    vae.partial_fit(blocks[1])
    assert vae.n_iter_ == 4 and vae.loss_curve_[:3] == curve
    assert _adam_steps(vae) == steps + math.ceil(len(blocks[1]) / 64)
    assert not np.allclose(vae.transform(X[:5]), before)


def test_same_random_state_and_blocks_give_the_same_model(blocks):
    def run(seed):
        vae = VAEEstimator(**{**SMALL, "random_state": seed})
        for block in blocks:
            vae.partial_fit(block)
        return vae.transform(blocks[0])

    np.testing.assert_array_equal(run(0), run(0))
    assert not np.allclose(run(0), run(1))


def test_kl_warmup_counts_calls_as_epochs(blocks):
    vae = VAEEstimator(kl_warmup_iter=4, beta=2.0, **SMALL)
    weights = []
    real_step = Trainer.train_step

    def recording_step(self, batch, eps, kl_weight):
        weights.append(kl_weight)
        return real_step(self, batch, eps, kl_weight)

    with mock.patch.object(Trainer, "train_step", recording_step):
        for block in blocks[:3] + blocks[:3]:
            vae.partial_fit(block)
    # Every minibatch of a call has its epoch's weight: beta * min(1, epoch / kl_warmup_iter).
    steps = [math.ceil(len(b) / 64) for b in blocks[:3] * 2]
    expected = [2.0 * min(1.0, epoch / 4) for epoch in range(1, 7)]
    assert weights == [w for w, n in zip(expected, steps, strict=True) for _ in range(n)]


def test_a_bad_block_raises_in_the_users_terms_and_keeps_the_model():
    rng = np.random.RandomState(0)
    X = np.column_stack([rng.normal(size=200), rng.randint(0, 3, size=200)])
    vae = VAEEstimator(likelihood={"gaussian": [0], "categorical": [1]}, **SMALL)
    vae.partial_fit(X[:100])
    state = (vae.n_iter_, list(vae.loss_curve_), _adam_steps(vae), vae.transform(X))

    def unchanged():
        assert (vae.n_iter_, vae.loss_curve_, _adam_steps(vae)) == state[:3]
        np.testing.assert_array_equal(vae.transform(X), state[3])

    unseen = X[100:].copy()
    unseen[0, 1] = 3
    with pytest.raises(ValueError, match="not seen in fit.*partial_fit learns the categories"):
        vae.partial_fit(unseen)
    unchanged()
    with pytest.raises(ValueError, match="X has 1 features, but VAEEstimator is expecting 2"):
        vae.partial_fit(X[100:, :1])
    unchanged()
    vae.set_params(n_components=3)
    with pytest.raises(ValueError, match="partial_fit continues .* n_components changed"):
        vae.partial_fit(X[100:])
    unchanged()
    vae.set_params(n_components=2, learning_rate_init=1e12)
    with pytest.raises(ValueError, match="training loss became"):
        vae.partial_fit(X[100:])
    unchanged()


def test_a_failed_first_call_leaves_the_estimator_unfitted():
    vae = VAEEstimator(likelihood="poisson", **SMALL)
    with pytest.raises(ValueError, match="non-negative integer counts"):
        vae.partial_fit(-np.ones((10, 3)))
    assert not hasattr(vae, "n_features_in_") and not hasattr(vae, "module_")
    vae.partial_fit(np.ones((10, 2)))  # and a later first call starts afresh
    assert vae.n_features_in_ == 2 and vae.n_iter_ == 1
