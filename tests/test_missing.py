"""Missing values (NaN): masked likelihoods, fitting on incomplete data, log p(x_observed)."""

import warnings

import numpy as np
import pytest
import torch
from scipy import stats
from sklearn.exceptions import ConvergenceWarning

from skvae import VAEEstimator
from skvae._likelihoods import (
    VAR_SMOOTHING,
    Bernoulli,
    Categorical,
    ContinuousBernoulli,
    Gaussian,
    Mixed,
    NegativeBinomial,
    Poisson,
    prepare_likelihood,
)
from skvae._module import VAEModule
from skvae.datasets import make_linear_gaussian

RNG = np.random.default_rng(0)


def _t(a):
    return torch.as_tensor(np.asarray(a, dtype=np.float64))


def _mask(shape, rng):
    mask = rng.uniform(size=shape) > 0.4
    mask[:, 0] = True  # every row keeps an observed value
    return mask


def _masked(lik, x, out, mask):
    return lik.log_prob(_t(x), _t(out), _t(mask)).detach().numpy()


def test_masked_gaussian_is_the_density_of_the_observed_entries():
    lik = Gaussian(5).double()
    with torch.no_grad():
        lik.log_var.copy_(_t(RNG.normal(size=5)))
    x, mean = RNG.normal(size=(30, 5)), RNG.normal(size=(30, 5))
    mask = _mask(x.shape, RNG)
    sd = np.sqrt(VAR_SMOOTHING + np.exp(lik.log_var.detach().numpy()))
    expected = [
        stats.norm(m[o], sd[o]).logpdf(r[o]).sum() for r, m, o in zip(x, mean, mask, strict=True)
    ]
    np.testing.assert_allclose(_masked(lik, x, mean, mask), expected, rtol=1e-10)
    # An all-ones mask is the unmasked log-probability.
    np.testing.assert_allclose(
        _masked(lik, x, mean, np.ones_like(mask)),
        lik.log_prob(_t(x), _t(mean)).detach().numpy(),
        rtol=1e-12,
    )


def test_masked_spherical_gaussian_counts_only_observed_variances():
    lik = Gaussian(4, "spherical").double()
    with torch.no_grad():
        lik.log_var.fill_(0.7)
    x, mean = RNG.normal(size=(10, 4)), RNG.normal(size=(10, 4))
    mask = _mask(x.shape, RNG)
    sd = np.sqrt(VAR_SMOOTHING + np.exp(0.7))
    expected = [
        stats.norm(m[o], sd).logpdf(r[o]).sum() for r, m, o in zip(x, mean, mask, strict=True)
    ]
    np.testing.assert_allclose(_masked(lik, x, mean, mask), expected, rtol=1e-10)


def test_masked_bernoulli_poisson_and_negative_binomial():
    logits = RNG.normal(size=(25, 6))
    mask = _mask(logits.shape, RNG)
    binary = (RNG.uniform(size=logits.shape) < 0.5).astype(float)
    p = 1 / (1 + np.exp(-logits))
    expected = [
        stats.bernoulli(pp[o]).logpmf(b[o]).sum() for b, pp, o in zip(binary, p, mask, strict=True)
    ]
    np.testing.assert_allclose(_masked(Bernoulli(6), binary, logits, mask), expected, rtol=1e-9)

    counts = RNG.poisson(3.0, size=logits.shape).astype(float)
    rate = np.exp(logits)
    expected = [
        stats.poisson(r[o]).logpmf(c[o]).sum() for c, r, o in zip(counts, rate, mask, strict=True)
    ]
    np.testing.assert_allclose(_masked(Poisson(6), counts, logits, mask), expected, rtol=1e-9)

    nb = NegativeBinomial(6).double()
    with torch.no_grad():
        nb.log_theta.copy_(_t(RNG.normal(size=6)))
    theta = np.exp(nb.log_theta.detach().numpy())
    expected = [
        stats.nbinom(theta[o], theta[o] / (theta[o] + r[o])).logpmf(c[o]).sum()
        for c, r, o in zip(counts, rate, mask, strict=True)
    ]
    np.testing.assert_allclose(_masked(nb, counts, logits, mask), expected, rtol=1e-8)


def test_masked_continuous_bernoulli_matches_torch():
    logits = RNG.normal(size=(20, 4)) * 3
    x = RNG.uniform(size=logits.shape)
    mask = _mask(x.shape, RNG)
    dist = torch.distributions.ContinuousBernoulli(logits=_t(logits))
    per_element = dist.log_prob(_t(x)).numpy()
    expected = (per_element * mask).sum(axis=1)
    got = _masked(ContinuousBernoulli(4), x, logits, mask)
    np.testing.assert_allclose(got, expected, rtol=1e-6)


def test_masked_categorical_counts_a_column_as_one_entry():
    lik = Categorical(3, n_categories=[2, 3, 4])
    codes = np.column_stack([RNG.integers(0, k, size=30) for k in (2, 3, 4)]).astype(float)
    out = RNG.normal(size=(30, 9))
    mask = _mask(codes.shape, RNG)
    expected = np.zeros(30)
    for j, (a, b) in enumerate([(0, 2), (2, 5), (5, 9)]):
        logp = torch.distributions.Categorical(logits=_t(out[:, a:b])).log_prob(
            torch.as_tensor(codes[:, j]).long()
        )
        expected += logp.numpy() * mask[:, j]
    np.testing.assert_allclose(_masked(lik, codes, out, mask), expected, rtol=1e-10)
    # A missing column switches no category on in the encoder's one-hot input.
    one_hot = lik.encoder_input(_t(codes), _t(mask)).numpy()
    for j, (a, b) in enumerate([(0, 2), (2, 5), (5, 9)]):
        np.testing.assert_array_equal(one_hot[:, a:b].sum(axis=1), mask[:, j])


def test_masked_mixed_table_is_the_sum_of_its_observed_parts():
    parts = [
        {"name": "gaussian", "columns": [0, 2]},
        {"name": "poisson", "columns": [1]},
        {"name": "categorical", "columns": [3], "n_categories": [3]},
    ]
    lik = Mixed(4, parts=parts).double()
    x = np.column_stack(
        [RNG.normal(size=20), RNG.poisson(2.0, 20), RNG.normal(size=20), RNG.integers(0, 3, 20)]
    ).astype(float)
    out = RNG.normal(size=(20, 6))  # gaussian 2, poisson 1, categorical 3
    mask = _mask(x.shape, RNG)
    sd = np.sqrt(VAR_SMOOTHING + 1.0)
    cat = torch.distributions.Categorical(logits=_t(out[:, 3:6])).log_prob(
        torch.as_tensor(x[:, 3]).long()
    )
    expected = (
        stats.norm(out[:, 0], sd).logpdf(x[:, 0]) * mask[:, 0]
        + stats.norm(out[:, 1], sd).logpdf(x[:, 2]) * mask[:, 2]
        + stats.poisson(np.exp(out[:, 2])).logpmf(x[:, 1]) * mask[:, 1]
        + cat.numpy() * mask[:, 3]
    )
    np.testing.assert_allclose(_masked(lik, x, out, mask), expected, rtol=1e-9)


def test_scaling_and_categories_ignore_missing_entries():
    X = RNG.normal(3.0, 2.0, size=(200, 3))
    X[RNG.uniform(size=X.shape) < 0.3] = np.nan
    _, loc, scale = prepare_likelihood(X, "gaussian", "diag")
    np.testing.assert_allclose(loc, np.nanmean(X, axis=0), rtol=1e-12)
    np.testing.assert_allclose(scale, np.nanstd(X, axis=0), rtol=1e-12)
    codes = np.array([[0.0, 1.0], [np.nan, 4.0], [2.0, np.nan]])
    config, _, _ = prepare_likelihood(codes, "categorical", "diag")
    assert config["values"] == [[0.0, 2.0], [1.0, 4.0]]


def _linear_marginal_log_density(vae, X):
    """Exact log p(x_observed) under the fitted linear-Gaussian VAE's own parameters."""
    linear = vae.module_.decoder[0]
    W = linear.weight.detach().double().numpy()  # (n_features, n_components), standardised
    b = linear.bias.detach().double().numpy()
    scale, loc = vae.module_.likelihood.scale, vae.module_.likelihood.loc
    mean = loc + scale * b
    cov = W @ W.T + np.diag(vae.module_.likelihood.variances().detach().double().numpy())
    cov = cov * np.outer(scale, scale)
    result = []
    for row in X:
        o = ~np.isnan(row)
        result.append(stats.multivariate_normal(mean[o], cov[np.ix_(o, o)]).logpdf(row[o]))
    return np.array(result)


@pytest.fixture(scope="module")
def linear_data():
    X, model = make_linear_gaussian(
        600, n_features=5, n_components=2, noise_scale=0.5, random_state=0
    )
    X_missing = X.copy()
    X_missing[np.random.default_rng(1).uniform(size=X.shape) < 0.3] = np.nan
    X_missing[np.isnan(X_missing).all(axis=1), 0] = X[np.isnan(X_missing).all(axis=1), 0]
    return X, X_missing, model


def _fit_linear(X, **params):
    params = {
        "hidden_layer_sizes": (),
        "n_components": 2,
        "max_iter": 300,
        # The budget these tolerances were set with: the test is of the bound, not of it.
        "batch_size": 128,
        "n_iter_no_change": 10,
        "n_importance_samples": 2000,
        "random_state": 0,
        **params,
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return VAEEstimator(**params).fit(X)


@pytest.mark.parametrize("fit_on", ["complete", "incomplete"])
def test_score_samples_is_the_marginal_density_of_the_observed_entries(linear_data, fit_on):
    X, X_missing, _ = linear_data
    vae = _fit_linear(X if fit_on == "complete" else X_missing)
    assert vae.module_.missing == (fit_on == "incomplete")
    rows = X_missing[:40]
    exact = _linear_marginal_log_density(vae, rows)
    got = vae.score_samples(rows)
    # The bound with 2000 samples is within a small fraction of a nat of log p(x_observed).
    np.testing.assert_allclose(got, exact, atol=0.1)
    # Complete rows still give the full density.
    np.testing.assert_allclose(
        vae.score_samples(X[:10]), _linear_marginal_log_density(vae, X[:10]), atol=0.1
    )


def test_fit_on_incomplete_data_learns_the_process():
    # Trained with 30% of the entries missing, the model's likelihood of held-out complete
    # rows comes within 0.1 nats per row of the true process's. (A linear encoder cannot
    # represent how the posterior depends on which entries are observed, hence the hidden
    # layers; without the KL warm-up some seeds lose a latent dimension, 0.45 nats.)
    X, model = make_linear_gaussian(
        3500, n_features=5, n_components=2, noise_scale=0.5, random_state=0
    )
    X_train, X_test = X[:3000].copy(), X[3000:]
    X_train[np.random.default_rng(1).uniform(size=X_train.shape) < 0.3] = np.nan
    X_train = X_train[~np.isnan(X_train).all(axis=1)]
    vae = _fit_linear(
        X_train,
        hidden_layer_sizes=(64, 64),
        kl_warmup_iter=30,
        max_iter=150,
        early_stopping=False,
        n_iter_no_change=1000,
        learning_rate_init=3e-3,
        n_importance_samples=100,
    )
    assert vae.module_.missing
    truth = model.score_samples(X_test).mean()
    assert truth - 0.1 < vae.score(X_test) < truth + 0.05


def test_mask_channel_only_when_the_training_data_has_nan(linear_data):
    X, X_missing, _ = linear_data
    complete = VAEEstimator(hidden_layer_sizes=(), max_iter=2, random_state=0)
    incomplete = VAEEstimator(hidden_layer_sizes=(), max_iter=2, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        complete.fit(X)
        incomplete.fit(X_missing)
    assert complete.module_.encoder[0].in_features == 5
    assert incomplete.module_.encoder[0].in_features == 10
    # Both accept NaN afterwards, deterministically and row by row.
    for vae in (complete, incomplete):
        Z = vae.transform(X_missing[:20])
        np.testing.assert_allclose(vae.transform(X_missing[10:20]), Z[10:], atol=1e-12)
        assert np.all(np.isfinite(vae.score_samples(X_missing[:20])))


def test_module_ignores_values_behind_the_mask():
    # Whatever number sits in a missing entry, the module's outputs cannot depend on it.
    spec = {
        "n_features": 4,
        "n_components": 2,
        "hidden_layer_sizes": (8,),
        "activation": "tanh",
        "likelihood": {"name": "gaussian", "covariance_type": "diag"},
        "missing": True,
    }
    torch.manual_seed(0)
    module = VAEModule.from_spec(spec).double()
    x = _t(RNG.normal(size=(6, 4)))
    x_nan = x.clone()
    x_nan[:, 1] = float("nan")
    eps = _t(RNG.normal(size=(7, 2)))
    bound = module.iw_bound(x_nan, eps)
    elbo = module.elbo(x_nan, eps[:1].expand(6, 2))
    for value in (0.0, 5.0):
        x_other = x.clone()
        x_other[:, 1] = value
        # The mask says missing; the filled value must not matter.
        mu_a = module.encode(x_nan).mean
        mask = torch.ones_like(x)
        mask[:, 1] = 0
        mu_b = module.encode({"x": x_other.masked_fill(mask == 0, 0.0), "mask": mask}).mean
        torch.testing.assert_close(mu_a, mu_b)
    assert torch.isfinite(bound).all() and torch.isfinite(elbo).all()
    # One fewer observed entry: a different (here larger: one fewer density factor) value.
    assert not torch.allclose(bound, module.iw_bound(x, eps))


def test_partial_fit_and_pickle_with_missing_values(linear_data):
    import pickle

    _, X_missing, _ = linear_data
    vae = VAEEstimator(hidden_layer_sizes=(8,), random_state=0)
    for block in np.array_split(X_missing, 3):
        vae.partial_fit(block)
    assert vae.module_.missing and vae.n_iter_ == 3
    restored = pickle.loads(pickle.dumps(vae))
    assert restored.module_.missing
    np.testing.assert_array_equal(
        restored.score_samples(X_missing[:20]), vae.score_samples(X_missing[:20])
    )
    # The mask channel is fixed by the first training data: warm starts keep it.
    complete = VAEEstimator(hidden_layer_sizes=(8,), max_iter=2, warm_start=True, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        complete.fit(np.nan_to_num(X_missing))
        complete.fit(X_missing)
    assert not complete.module_.missing and complete.n_iter_ == 4
