"""Covariates: columns that condition the encoder and the decoder instead of being modelled."""

import pickle
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats
from scipy.sparse import csr_matrix
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline

from skvae import VAEEstimator
from skvae._covariates import CovariateEncoder, covariate_columns, decoding_values


def _batches(n=1500, seed=0):
    """Two cell types, three batches that shift every feature: a DataFrame and the truth."""
    rng = np.random.default_rng(seed)
    cell_type = rng.integers(0, 2, n)
    batch = rng.integers(0, 3, n)
    loadings = rng.normal(size=(2, 6))
    signal = np.where(cell_type[:, None] == 1, 2.0, -2.0) * loadings[0]
    X = signal + rng.normal(size=(n, 1)) * loadings[1] + 0.3 * rng.normal(size=(n, 6))
    X += np.array([0.0, 3.0, -3.0])[batch][:, None]
    frame = pd.DataFrame(X, columns=[f"gene{i}" for i in range(6)])
    frame["batch"] = batch + 1.0  # levels 1, 2, 3: not codes from 0
    return frame, cell_type, batch


def _fit(vae, X):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return vae.fit(X)


def _accuracy(Z, labels):
    return cross_val_score(LogisticRegression(max_iter=1000), Z, labels, cv=3).mean()


@pytest.fixture(scope="module")
def fitted():
    frame, cell_type, batch = _batches()
    params = dict(n_components=2, hidden_layer_sizes=(32,), max_iter=150, random_state=0)
    with_covariates = _fit(VAEEstimator(covariates="batch", **params), frame)
    without = _fit(VAEEstimator(**params), frame.drop(columns="batch"))
    return with_covariates, without, frame, cell_type, batch


def test_the_encoder_one_hot_encodes_levels_and_standardises_continuous_columns():
    train = {
        "categorical": np.array([[3.0, 0.0], [7.0, 1.0], [3.0, 1.0]]),
        "continuous": np.array([[1.0], [2.0], [3.0]]),
    }
    encoder = CovariateEncoder().fit(train)
    out = encoder.transform(train)
    np.testing.assert_array_equal(out["categorical"], [[1, 0, 1, 0], [0, 1, 0, 1], [1, 0, 0, 1]])
    np.testing.assert_allclose(out["continuous"].ravel(), [-1.2247449, 0, 1.2247449])
    with pytest.raises(ValueError, match=r"level 5\.0, not seen in fit.*\[3\.0, 7\.0\]"):
        encoder.transform({"categorical": np.array([[5.0, 0.0]])})


def test_covariates_select_columns_by_index_or_name_as_the_likelihood_dict_does():
    names = np.array(["a", "b", "batch", "depth"])
    assert covariate_columns("batch", 4, names) == {"categorical": [2]}
    assert covariate_columns([-1, "batch"], 4, names) == {"categorical": [3, 2]}
    spec = covariate_columns({"categorical": 2, "continuous": ["depth"]}, 4, names)
    assert spec == {"categorical": [2], "continuous": [3]}
    for bad, message in [
        ("nope", "not a column of X"),
        ([7], "4 columns"),
        ({"batches": [0]}, "keys"),
        ({"categorical": [2], "continuous": [2]}, "twice"),
        ([0, 1, 2, 3], "nothing to model"),
    ]:
        with pytest.raises(ValueError, match=message):
            covariate_columns(bad, 4, names)


def test_decoding_values_broadcast_one_value_per_covariate_or_take_a_table():
    spec = {"categorical": [3], "continuous": [1]}
    names = np.array(["a", "depth", "b", "batch"])
    by_name = decoding_values({"batch": 2, "depth": [0.5, 1.5]}, spec, 2, names)
    np.testing.assert_array_equal(by_name["categorical"], [[2], [2]])
    np.testing.assert_array_equal(by_name["continuous"], [[0.5], [1.5]])
    # An array: columns in their order in X (depth, then batch).
    table = decoding_values([0.5, 2], spec, 2, names)
    np.testing.assert_array_equal(table["categorical"], [[2], [2]])
    with pytest.raises(ValueError, match="shape"):
        decoding_values([[1, 2, 3]], spec, 1, names)
    with pytest.raises(ValueError, match="missing"):
        decoding_values({"batch": 1}, spec, 2, names)


def test_the_latent_code_keeps_the_cell_type_and_drops_the_batch(fitted):
    with_covariates, without, frame, cell_type, batch = fitted
    Z = with_covariates.transform(frame)
    Z_plain = without.transform(frame.drop(columns="batch"))
    assert with_covariates.covariate_categories_[0].tolist() == [1.0, 2.0, 3.0]
    assert _accuracy(Z, cell_type) > 0.95
    # Without covariates the code carries the batch; with them, little more than chance.
    assert _accuracy(Z_plain, batch) > 0.9
    assert _accuracy(Z, batch) < 1 / 3 + 0.15


def test_decoding_at_batch_one_removes_the_batch_shift(fitted):
    vae, _, frame, cell_type, batch = fitted
    corrected = vae.inverse_transform(vae.transform(frame), covariates={"batch": 1.0})
    assert list(corrected.columns) == list(frame.columns)  # fitted on a frame: a frame back
    corrected = corrected.to_numpy()
    assert np.all(corrected[:, -1] == 1.0)
    genes = corrected[:, :6]
    # Rows of the same type from batches 2 and 3 (shifted by +3 and -3) now agree with
    # batch 1's to a fraction of the shift.
    for kind in (0, 1):
        reference = genes[(cell_type == kind) & (batch == 0)].mean(axis=0)
        for other in (1, 2):
            shift = genes[(cell_type == kind) & (batch == other)].mean(axis=0) - reference
            assert np.abs(shift).max() < 0.5
    raw_shift = frame.iloc[:, :6][batch == 1].mean() - frame.iloc[:, :6][batch == 0].mean()
    assert np.abs(raw_shift).min() > 2.5  # what there was to remove


def test_sample_draws_at_the_given_covariates_and_needs_them(fitted):
    vae, _, frame, _, batch = fitted
    draws = vae.sample(2000, random_state=0, covariates=[3.0]).to_numpy()  # a frame: fit on one
    assert np.all(draws[:, -1] == 3.0)
    # Batch 3 shifts every feature by -3 from batch 1.
    np.testing.assert_allclose(
        draws[:, :6].mean(axis=0), frame.iloc[:, :6][batch == 2].mean(), atol=0.3
    )
    with pytest.raises(ValueError, match="covariates="):
        vae.sample(2)
    with pytest.raises(ValueError, match="covariates="):
        vae.inverse_transform(np.zeros((2, 2)))
    with pytest.raises(ValueError, match="not seen in fit"):
        vae.sample(2, covariates=[4.0])


def test_an_unseen_level_is_an_error_in_the_users_terms(fitted):
    vae, _, frame, _, _ = fitted
    with pytest.raises(ValueError, match=r"Covariate 'batch' has the level 9\.0"):
        vae.transform(frame.assign(batch=9.0))


def test_score_is_the_likelihood_of_the_modelled_columns_and_pickles(fitted):
    vae, _, frame, _, _ = fitted
    loaded = pickle.loads(pickle.dumps(vae))
    np.testing.assert_array_equal(loaded.transform(frame), vae.transform(frame))
    np.testing.assert_array_equal(loaded.score_samples(frame), vae.score_samples(frame))
    assert vae.module_.likelihood.n_features == 6


def test_covariates_work_in_a_pipeline_under_grid_search():
    frame, cell_type, _ = _batches(n=600, seed=1)
    pipe = make_pipeline(
        VAEEstimator(covariates=["batch"], hidden_layer_sizes=(16,), max_iter=20, random_state=0),
        LogisticRegression(max_iter=500),
    )
    search = GridSearchCV(pipe, {"vaeestimator__n_components": [1, 2]}, cv=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        search.fit(frame, cell_type)
    assert search.best_score_ > 0.8  # two balanced types: chance is 0.5


def test_continuous_covariates_and_a_sparse_x():
    rng = np.random.default_rng(2)
    depth = rng.uniform(0.5, 2.0, size=(400, 1))
    counts = rng.poisson(depth * rng.gamma(0.5, 1.0, size=(1, 70)))
    X = np.hstack([counts, depth, rng.integers(0, 2, size=(400, 1))]).astype(float)
    covariates = {"categorical": [71], "continuous": [70]}
    params = dict(likelihood="poisson", covariates=covariates, hidden_layer_sizes=(16,))
    dense = _fit(VAEEstimator(max_iter=5, random_state=0, **params), X)
    sparse = _fit(VAEEstimator(max_iter=5, random_state=0, **params), csr_matrix(X))
    np.testing.assert_allclose(sparse.loss_curve_, dense.loss_curve_, rtol=1e-4)
    np.testing.assert_allclose(sparse.score_samples(X), dense.score_samples(X), rtol=1e-4)


def test_partial_fit_keeps_the_covariates_and_refuses_a_change():
    frame, _, _ = _batches(n=300, seed=3)
    vae = VAEEstimator(covariates="batch", hidden_layer_sizes=(8,), random_state=0)
    vae.partial_fit(frame).partial_fit(frame)
    assert vae.n_iter_ == 2
    vae.set_params(covariates=None)
    with pytest.raises(ValueError, match="covariates changed"):
        vae.partial_fit(frame)
    # fit starts anew with the parameter as it is now.
    _fit(vae.set_params(max_iter=2), frame.drop(columns="batch"))
    assert vae.covariate_categories_ == []


def test_conditional_draws_decode_their_candidates_at_the_given_covariates(fitted):
    vae, _, frame, _, batch = fitted
    # gene0 fixed at its batch-3 typical value: the other genes follow batch 3's shift of -3.
    level = float(frame.loc[batch == 2, "gene0"].median())
    draws = vae.sample(300, random_state=0, covariates=[3.0], given={"gene0": level})
    assert (draws["gene0"] == level).all() and (draws["batch"] == 3.0).all()
    same_batch = frame.loc[batch == 2, "gene1"].mean()
    assert abs(draws["gene1"].mean() - same_batch) < abs(frame["gene1"].mean() - same_batch)


def _noisy_batches(n=1200, n_genes=20, seed=0):
    """Counts of one profile in two batches, the second far less overdispersed (theta 50 vs 2)."""
    rng = np.random.default_rng(seed)
    batch = rng.integers(0, 2, n)
    mu = np.exp(rng.normal(2.0, 0.5, size=n_genes))
    theta = np.array([2.0, 50.0])[batch][:, None]
    counts = rng.poisson(rng.gamma(theta, mu / theta, size=(n, n_genes)))
    return np.hstack([counts, batch[:, None]]).astype(float), batch


def test_a_dispersion_per_batch_level_is_learned_and_scores_as_scipys_nb():
    X, batch = _noisy_batches()
    train, test = X[:900], X[900:]
    params = dict(likelihood="negative_binomial", covariates=[-1], hidden_layer_sizes=(16,),
                  learning_rate_init=1e-2, max_iter=60, random_state=0)  # fmt: skip
    by_level = _fit(VAEEstimator(dispersion="feature-covariate", **params), train)
    shared = _fit(VAEEstimator(**params), train)
    module = by_level.module_.double()
    log_theta = (module.likelihood.log_theta + module.dispersion_shift).detach().numpy()
    theta_0, theta_1 = np.median(np.exp(log_theta), axis=1)
    assert 1.0 < theta_0 < 4.0 and theta_1 > 15.0
    assert by_level.score(test) > shared.score(test) + 1.0
    # log p(x | z) of a row is scipy's NB with its batch's theta.
    x = torch.from_numpy(X[:4, :-1])
    z = torch.zeros(4, 2, dtype=torch.float64)
    batch_in = {"categorical": torch.from_numpy(np.eye(2)[batch[:4]])}
    with torch.no_grad():
        out = module.decode(z, batch_in)
        log_p = module.likelihood.log_prob(x, out).numpy()
    mu = np.exp(out[:, :20].numpy())
    theta = np.exp(log_theta[batch[:4]])
    expected = stats.nbinom.logpmf(X[:4, :-1], theta, theta / (theta + mu)).sum(axis=1)
    np.testing.assert_allclose(log_p, expected, rtol=1e-10)


def test_a_dispersion_per_level_needs_a_negative_binomial_and_categorical_covariates():
    X, _ = _noisy_batches(n=60)
    with pytest.raises(ValueError, match="negative binomial family"):
        VAEEstimator(likelihood="poisson", covariates=[-1], dispersion="feature-covariate").fit(X)
    with pytest.raises(ValueError, match="categorical covariates"):
        VAEEstimator(likelihood="negative_binomial", dispersion="feature-covariate").fit(X)


def _counts_and_batch(n=200, seed=0):
    """Column 0 a batch label, columns 1-3 counts, column 4 a measurement."""
    rng = np.random.default_rng(seed)
    batch = rng.integers(0, 2, n).astype(float)
    counts = rng.poisson(3.0 + 2.0 * batch[:, None], size=(n, 3)).astype(float)
    return np.column_stack([batch, counts, rng.normal(size=n) + batch])


def test_likelihood_positions_count_the_columns_of_x_as_passed():
    # The same model with the covariate last, where both ways of counting agree.
    X = _counts_and_batch()
    params = dict(max_iter=3, random_state=0)
    vae = _fit(
        VAEEstimator(likelihood={"poisson": [1, 2, 3], "gaussian": [4]}, covariates=[0], **params),
        X,
    )
    last = _fit(
        VAEEstimator(likelihood={"poisson": [0, 1, 2], "gaussian": [3]}, covariates=[4], **params),
        X[:, [1, 2, 3, 4, 0]],
    )
    np.testing.assert_allclose(vae.transform(X), last.transform(X[:, [1, 2, 3, 4, 0]]))
    assert vae.likelihood_ == {"poisson": [1, 2, 3], "gaussian": [4]}


def test_positions_among_the_modelled_columns_warn_and_keep_their_meaning():
    X = _counts_and_batch()
    params = dict(covariates=[0], max_iter=3, random_state=0)
    new = _fit(VAEEstimator(likelihood={"poisson": [1, 2, 3], "gaussian": [4]}, **params), X)
    with pytest.warns(FutureWarning, match=r"\{'poisson': \[1, 2, 3\], 'gaussian': \[4\]\}"):
        old = _fit(VAEEstimator(likelihood={"poisson": [0, 1, 2], "gaussian": [3]}, **params), X)
    np.testing.assert_allclose(old.transform(X), new.transform(X))


def test_a_likelihood_position_on_a_covariate_is_an_error_in_the_users_terms():
    vae = VAEEstimator(likelihood={"poisson": [0, 1, 2], "gaussian": [4]}, covariates=[0])
    with pytest.raises(ValueError, match="Column 0 .*is a covariate"):
        vae.fit(_counts_and_batch())


def test_auto_reports_positions_of_x_that_can_be_passed_back():
    X = _counts_and_batch()
    X[:, 2] %= 3  # levels 0, 1, 2: a categorical column
    params = dict(covariates=[0], max_iter=3, random_state=0)
    auto = _fit(VAEEstimator(likelihood="auto", **params), X)
    assert sorted(c for columns in auto.likelihood_.values() for c in columns) == [1, 2, 3, 4]
    assert auto.likelihood_["categorical"] == [2] and list(auto.categories_) == [2]
    again = _fit(VAEEstimator(likelihood=auto.likelihood_, **params), X)
    np.testing.assert_allclose(again.transform(X), auto.transform(X))
