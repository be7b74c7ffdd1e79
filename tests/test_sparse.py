"""Sparse encoder inputs: the CSR of the training rows, the first layer that reads it, the fit."""

import warnings

import numpy as np
import pytest
import torch
from scipy.sparse import coo_array, csc_matrix, csr_array, csr_matrix
from sklearn.exceptions import ConvergenceWarning

from skvae import VAEEstimator, VAEModule
from skvae._likelihoods import build_likelihood
from skvae._sparse_layer import InputLinear, SparseInputs


def test_input_linear_is_an_affine_map_with_an_input_major_weight():
    torch.manual_seed(0)
    layer = InputLinear(5, 3)
    assert layer.weight.shape == (5, 3) and layer.weight.is_contiguous()
    x = torch.randn(4, 5)
    expected = x.numpy() @ layer.weight.detach().numpy() + layer.bias.detach().numpy()
    np.testing.assert_allclose(layer(x).detach().numpy(), expected, rtol=1e-5, atol=1e-6)
    # The initial values are nn.Linear's, transposed, from the same random numbers.
    torch.manual_seed(0)
    reference = torch.nn.Linear(5, 3)
    torch.testing.assert_close(layer.weight.detach(), reference.weight.detach().t())
    torch.testing.assert_close(layer.bias.detach(), reference.bias.detach())


def _sparse_case(name, rng):
    """A likelihood config and data of 80 mostly-zero encoder inputs."""
    if name == "bernoulli":
        return {"name": name}, (rng.random((50, 80)) < 0.1).astype(np.float64)
    if name == "poisson":
        return {"name": name}, rng.poisson(0.15, size=(50, 80)).astype(np.float64)
    # 8 columns of 10 categories: one-hot inputs, one in ten non-zero.
    return {"name": name, "n_categories": [10] * 8}, rng.integers(0, 10, (50, 8)).astype(float)


def _build(likelihood, X):
    """The SparseInputs of X's encoder inputs under ``likelihood``, as the trainer builds them."""
    return SparseInputs.build(likelihood.encoder_input, X, likelihood.n_inputs)


@pytest.mark.parametrize("name", ["bernoulli", "poisson", "categorical"])
def test_sparse_first_layer_gives_the_dense_loss_and_gradients(name):
    rng = np.random.default_rng(0)
    likelihood, X = _sparse_case(name, rng)
    torch.manual_seed(0)
    module = VAEModule.from_spec(
        {
            "n_features": X.shape[1],
            "n_components": 3,
            "hidden_layer_sizes": (16,),
            "activation": "relu",
            "likelihood": likelihood,
            "missing": False,
        }
    )
    X = torch.from_numpy(X).float()
    sparse = _build(module.likelihood, X)
    assert sparse is not None
    rows = torch.from_numpy(rng.permutation(50))
    epoch = sparse.epoch(rows)
    x, eps = X[rows[20:40]], torch.randn(20, 3)
    params = list(module.parameters())
    dense_loss = module.loss({"x": x, "mask": None}, eps).loss
    dense_grads = torch.autograd.grad(dense_loss, params)
    batch = {"x": x, "mask": None, "sparse": sparse.batch(epoch, 20, 40, "cpu")}
    sparse_loss = module.loss(batch, eps).loss
    sparse_grads = torch.autograd.grad(sparse_loss, params)
    torch.testing.assert_close(sparse_loss, dense_loss)
    for got, expected in zip(sparse_grads, dense_grads, strict=True):
        torch.testing.assert_close(got, expected)
        assert got.stride() == expected.stride()


def _bernoulli(n_features):
    return build_likelihood(n_features, {"name": "bernoulli"})


@pytest.mark.parametrize("kind", ["binary", "counts"])
def test_sparse_inputs_give_each_batch_its_non_zero_entries_by_row_and_by_input(kind):
    rng = np.random.default_rng(0)
    if kind == "binary":
        X = (rng.random((300, 100)) < 0.1).astype(np.float32)
    else:
        X = rng.poisson(0.15, size=(300, 100)).astype(np.float32)
    X = torch.from_numpy(X)
    sparse = _build(_bernoulli(100), X)
    assert sparse is not None
    assert (sparse.values is None) == (kind == "binary")  # binary: every value is 1
    rows = torch.from_numpy(rng.permutation(300)[:250])
    epoch = sparse.epoch(rows)
    for start in range(0, 250, 64):  # the last batch is short
        batch = sparse.batch(epoch, start, start + 64, "cpu")
        expected = X[rows[start : start + 64]].numpy()
        n_entries = len(batch.columns)
        ones = np.ones(n_entries)
        by_row = csr_matrix(
            (
                ones if batch.values is None else batch.values.numpy(),
                batch.columns.numpy(),
                np.append(batch.row_offsets, n_entries),
            ),
            shape=expected.shape,
        )
        by_input = csc_matrix(
            (
                ones if batch.column_values is None else batch.column_values.numpy(),
                batch.rows.numpy(),
                np.append(batch.column_offsets, n_entries),
            ),
            shape=expected.shape,
        )
        np.testing.assert_array_equal(by_row.toarray(), expected)
        np.testing.assert_array_equal(by_input.toarray(), expected)


def test_sparse_inputs_are_left_to_dense_data_and_small_inputs():
    rng = np.random.default_rng(0)
    binary = torch.from_numpy((rng.random((300, 100)) < 0.1).astype(np.float32))
    assert _build(_bernoulli(100), binary) is not None
    dense = torch.from_numpy((rng.random((300, 100)) < 0.5).astype(np.float32))
    assert _build(_bernoulli(100), dense) is None
    assert _build(_bernoulli(20), binary[:, :20]) is None
    # Dense beyond the first rows that the quick look sees: the full count decides.
    late = torch.cat([binary.repeat(14, 1), dense.repeat(20, 1)])
    assert _build(_bernoulli(100), late) is None


def _fit(X, **params):
    vae = VAEEstimator(likelihood="bernoulli", hidden_layer_sizes=(8,), max_iter=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return vae.set_params(random_state=0, **params).fit(X)


def test_the_trainer_keeps_the_sparse_path_to_complete_data_without_extra_inputs(
    sparse_builds,
):
    rng = np.random.default_rng(0)
    X = (rng.random((300, 100)) < 0.1).astype(np.float64)
    built = sparse_builds
    _fit(X)
    assert len(built) == 1 and built[0] is not None
    # Data with NaN: the mask is a dense input; the trainer does not even look.
    X_nan = X.copy()
    X_nan[0, 0] = np.nan
    mask_model = _fit(X_nan)
    assert len(built) == 1
    # A model with the mask channel stays one, also when it goes on with complete data.
    assert mask_model.module_.missing
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        mask_model.set_params(warm_start=True).fit(X)
    assert len(built) == 1
    # Under autocast the products are cheap already.
    _fit(X, compute_dtype="bfloat16")
    assert len(built) == 1

    class WithCovariate(VAEEstimator):
        def _covariate_columns(self):
            return {"batch": [100]}  # a dense input to both networks, beside the data

    # A covariate is a dense input beside the data's: its product is added to the sparse one.
    group = (np.arange(300) % 2)[:, None]
    vae = WithCovariate(likelihood="bernoulli", hidden_layer_sizes=(8,), max_iter=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        vae.set_params(random_state=0).fit(np.hstack([X, group]))
    assert vae.module_.covariates == {"batch": 1}
    assert len(built) == 2 and built[-1].width == 101


def _bernoulli_spec(**spec):
    return {
        "n_features": 100,
        "n_components": 2,
        "hidden_layer_sizes": (8,),
        "activation": "relu",
        "likelihood": {"name": "bernoulli"},
        **spec,
    }


def test_only_a_module_without_the_mask_channel_may_skip_zeros():
    assert VAEModule.from_spec(_bernoulli_spec()).sparse_inputs_possible
    assert not VAEModule.from_spec(_bernoulli_spec(missing=True)).sparse_inputs_possible
    covariates = _bernoulli_spec(covariates={"batch": 2})
    assert VAEModule.from_spec(covariates).sparse_inputs_possible


def test_with_covariates_the_sparse_first_layer_gives_the_dense_loss_and_gradients():
    rng = np.random.default_rng(0)
    X = torch.from_numpy((rng.random((50, 100)) < 0.1).astype(np.float32))
    groups = torch.from_numpy(np.eye(2, dtype=np.float32)[rng.integers(0, 2, 50)])
    level = torch.from_numpy(rng.normal(size=(50, 1)).astype(np.float32))
    torch.manual_seed(0)
    module = VAEModule.from_spec(_bernoulli_spec(covariates={"groups": 2, "level": 1}))
    sparse = _build(module.likelihood, X)
    sparse.width = module.encoder[0].in_features  # as the trainer sets it
    rows = torch.arange(10, 30)
    batch = {"x": X[rows], "mask": None, "groups": groups[rows], "level": level[rows]}
    eps = torch.randn(20, 2)
    params = list(module.parameters())
    dense_loss = module.loss(batch, eps).loss
    dense_grads = torch.autograd.grad(dense_loss, params)
    batch["sparse"] = sparse.batch(sparse.epoch(rows), 0, 20, "cpu")
    sparse_loss = module.loss(batch, eps).loss
    sparse_grads = torch.autograd.grad(sparse_loss, params)
    torch.testing.assert_close(sparse_loss, dense_loss)
    for got, expected in zip(sparse_grads, dense_grads, strict=True):
        torch.testing.assert_close(got, expected)


@pytest.mark.parametrize("covariates", [None, [100]])
def test_fit_with_sparse_inputs_matches_the_dense_fit(monkeypatch, sparse_builds, covariates):
    import skvae._sparse_layer as sparse_module

    rng = np.random.default_rng(0)
    X = (rng.random((400, 100)) < 0.1).astype(np.float64)
    if covariates:
        X = np.hstack([X, rng.integers(0, 3, (400, 1))])
    built = sparse_builds

    def fit():
        vae = VAEEstimator(
            likelihood="bernoulli", covariates=covariates, hidden_layer_sizes=(32,), max_iter=3
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            return vae.set_params(random_state=0).fit(X)

    sparse_fit = fit()
    assert built[-1] is not None
    monkeypatch.setattr(sparse_module, "MAX_SPARSE_DENSITY", -1.0)
    dense_fit = fit()
    assert built[-1] is None
    # The same arithmetic up to the order of the float32 sums.
    np.testing.assert_allclose(sparse_fit.loss_curve_, dense_fit.loss_curve_, rtol=1e-5)
    np.testing.assert_allclose(sparse_fit.transform(X), dense_fit.transform(X), atol=1e-4)
    # The diagnostics encode the training rows through the sparse path too.
    np.testing.assert_allclose(
        sparse_fit.kl_per_component_, dense_fit.kl_per_component_, rtol=1e-4
    )


# ---------------------------------------------------------------- a sparse X from the user


def _counts(n=300, n_features=100, seed=0):
    """Counts with about 75% zeros, as single-cell and bag-of-words matrices have."""
    rng = np.random.default_rng(seed)
    rates = rng.gamma(0.5, 0.6, size=(n, 1)) * rng.gamma(0.5, 1.0, size=(1, n_features))
    return rng.poisson(rates).astype(np.float64)


def _fit_quietly(vae, X):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return vae.fit(X)


@pytest.mark.parametrize(
    "likelihood, container",
    [
        ("gaussian", csr_matrix),
        ("gaussian", csc_matrix),
        ("poisson", csr_array),
        ("negative_binomial", coo_array),
        ("zero_inflated_negative_binomial", csr_matrix),
        ("multinomial", csr_matrix),
        ("bernoulli", csc_matrix),
    ],
)
def test_a_sparse_x_gives_the_fit_and_scores_of_its_dense_copy(likelihood, container):
    X = _counts()
    if likelihood == "bernoulli":
        X = np.minimum(X, 1)
    params = dict(likelihood=likelihood, hidden_layer_sizes=(16,), max_iter=5, random_state=0)
    dense = _fit_quietly(VAEEstimator(**params), X)
    sparse = _fit_quietly(VAEEstimator(**params), container(X))
    # Float32 training: the same steps up to the order of sums (the first layer may add
    # up the non-zero inputs' weights in either case).
    np.testing.assert_allclose(sparse.loss_curve_, dense.loss_curve_, rtol=1e-4)
    np.testing.assert_allclose(sparse.transform(X), dense.transform(X), atol=1e-3)
    # Inference on a sparse X is inference on its dense copy, to float64 precision.
    for method in ("transform", "score_samples"):
        np.testing.assert_allclose(
            getattr(dense, method)(container(X)), getattr(dense, method)(X), rtol=1e-12
        )
    assert dense.score(container(X)) == pytest.approx(dense.score(X), rel=1e-12)


def test_gaussian_scaling_from_a_sparse_x_is_the_dense_one():
    X = _counts(seed=1)
    X[:, 3] = 2.0  # a constant column
    for covariance_type in ("diag", "spherical"):
        params = dict(covariance_type=covariance_type, hidden_layer_sizes=(8,), max_iter=1)
        dense = _fit_quietly(VAEEstimator(**params, random_state=0), X).module_.likelihood
        sparse = _fit_quietly(VAEEstimator(**params, random_state=0), csr_matrix(X))
        np.testing.assert_allclose(sparse.module_.likelihood.loc, dense.loc, rtol=1e-12)
        np.testing.assert_allclose(sparse.module_.likelihood.scale, dense.scale, rtol=1e-12)


def test_the_multinomial_totals_model_from_a_sparse_x_is_the_dense_one():
    X = _counts(seed=2)
    params = dict(likelihood="multinomial", hidden_layer_sizes=(8,), max_iter=1)
    dense = _fit_quietly(VAEEstimator(**params, random_state=0), X).module_.likelihood
    sparse = _fit_quietly(VAEEstimator(**params, random_state=0), csr_matrix(X))
    for key in ("total_mean", "total_theta"):
        assert sparse.module_.likelihood.settings[key] == pytest.approx(dense.settings[key])


def test_partial_fit_on_sparse_blocks_matches_dense_blocks():
    X = _counts(seed=3)
    params = dict(likelihood="negative_binomial", hidden_layer_sizes=(16,), random_state=0)
    dense, sparse = VAEEstimator(**params), VAEEstimator(**params)
    for block in np.array_split(X, 3):
        dense.partial_fit(block)
        sparse.partial_fit(csr_matrix(block))
    np.testing.assert_allclose(sparse.loss_curve_, dense.loss_curve_, rtol=1e-4)
    np.testing.assert_allclose(sparse.score_samples(X), dense.score_samples(X), rtol=1e-4)


def test_the_encoder_inputs_read_off_a_csr_equal_those_of_the_dense_rows():
    from skvae._sparse_data import SparseData

    X = _counts(seed=4)
    likelihood = build_likelihood(X.shape[1], {"name": "poisson"})
    dense = _build(likelihood, torch.from_numpy(X).float())
    sparse = SparseData(csr_matrix(X), np.zeros(100), np.ones(100)).encoder_inputs(likelihood)
    order = sparse.epoch(torch.randperm(len(X), generator=torch.Generator().manual_seed(0)))
    for start in (0, 37):  # a first and a middle batch, by row and by input
        got = sparse.batch(order, start, start + 50, "cpu")
        for a, b in zip(got, dense.batch(order, start, start + 50, "cpu"), strict=True):
            torch.testing.assert_close(a, b)
    got = sparse.rows(torch.from_numpy(order[:9]), "cpu")
    rows = X[order[:9]]
    np.testing.assert_array_equal(got.columns, np.nonzero(rows)[1])
    np.testing.assert_allclose(got.values, np.log1p(rows[rows > 0]), rtol=1e-6)


def test_a_sparse_x_is_densified_a_batch_at_a_time_never_whole(monkeypatch):
    import skvae._inference as inference
    import skvae._trainer as trainer

    X = _counts(n=400, seed=5)
    X[:, 0] = 1.0  # no all-zero row
    densified = []
    toarray = csr_matrix.toarray

    def spy(self, *args, **kwargs):
        densified.append(self.shape[0])
        return toarray(self, *args, **kwargs)

    monkeypatch.setattr(csr_matrix, "toarray", spy)
    # Chunks of 100 rows in inference and in the trainer's diagnostics, for this small X.
    monkeypatch.setattr(inference, "INFERENCE_ELEMENTS", 100 * X.shape[1])
    monkeypatch.setattr(trainer, "ENCODE_BATCH_SIZE", 100)
    for likelihood in ("gaussian", "negative_binomial"):
        vae = VAEEstimator(likelihood=likelihood, hidden_layer_sizes=(8,), max_iter=3)
        _fit_quietly(vae.set_params(random_state=0), csr_matrix(X))
        vae.score_samples(csr_matrix(X))
        vae.transform(csr_matrix(X))
    # Batches (36 rows), validation chunks (4 batches) and the chunks above.
    assert densified and max(densified) <= 144


@pytest.mark.parametrize(
    "likelihood", ["categorical", "auto", {"poisson": [0, 1], "gaussian": list(range(2, 100))}]
)
def test_families_that_need_a_dense_x_refuse_a_sparse_one_naming_the_fix(likelihood):
    vae = VAEEstimator(likelihood=likelihood, max_iter=1)
    with pytest.raises(ValueError, match=r"Sparse X .*X\.toarray\(\)"):
        vae.fit(csr_matrix(_counts(seed=6)))


def test_a_model_fitted_dense_refuses_a_sparse_x_its_family_cannot_take():
    rng = np.random.default_rng(0)
    X = rng.integers(0, 3, size=(100, 4)).astype(float)
    vae = _fit_quietly(VAEEstimator(likelihood="categorical", max_iter=2, random_state=0), X)
    with pytest.raises(ValueError, match="X.toarray"):
        vae.transform(csr_matrix(X))


def test_training_ranges_of_sparse_x_equal_the_dense_ones():
    from skvae._tables import Ranges

    rng = np.random.default_rng(0)
    dense = rng.poisson(0.3, (500, 12)).astype(float)
    dense[:, 3] -= 2  # negative values, no implicit zero below them
    dense[:, 5] += 0.5  # not whole
    dense[:, 7] = 0  # nothing stored
    dense[:, 9] = rng.normal(size=500)
    expected, got = Ranges.learn(dense), Ranges.learn(csr_matrix(dense))
    np.testing.assert_array_equal(got.low, dense.min(axis=0))
    np.testing.assert_array_equal(got.high, dense.max(axis=0))
    # Sparse X only tells whole columns (0) from the others (-1).
    np.testing.assert_array_equal(got.decimals, np.where(expected.decimals == 0, 0, -1))
