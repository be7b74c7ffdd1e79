"""library_size: count means as library x proportions, the library observed or latent."""

import pickle
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats
from scipy.special import logsumexp, softmax
from sklearn.exceptions import ConvergenceWarning

from skvae import VAEEstimator
from skvae._library_size import log_library


def _counts(n=400, n_features=30, seed=0):
    """Counts from 2 latent variables, with totals that vary tenfold between rows."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 2))
    rho = softmax(z @ rng.normal(size=(2, n_features)), axis=1)
    library = np.exp(rng.normal(np.log(300), 0.6, size=(n, 1)))
    return rng.poisson(rng.gamma(5.0, library * rho / 5.0)).astype(float)


def _fit(kind, X, likelihood="negative_binomial", **params):
    vae = VAEEstimator(
        likelihood=likelihood,
        library_size=kind,
        hidden_layer_sizes=(16,),
        max_iter=20,
        n_importance_samples=20,
        random_state=0,
        **params,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return vae.fit(X)


def _nb_logpmf(x, mu, theta):
    """scipy's negative binomial with mean mu and inverse dispersion theta."""
    return stats.nbinom.logpmf(x, theta, theta / (theta + mu))


@pytest.fixture(scope="module")
def X():
    return _counts()


def test_the_prior_is_the_normal_of_the_training_log_totals(X):
    library = _fit("latent", X).module_.library
    log_totals = np.log(X.sum(axis=1))
    assert library["loc"] == pytest.approx(log_totals.mean())
    assert library["scale"] == pytest.approx(log_totals.std())


def test_observed_library_gives_scipys_negative_binomial_of_total_times_proportions(X):
    module = _fit("observed", X).module_.double()
    x = torch.from_numpy(X[:5])
    z = torch.randn(5, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        log_p = module.likelihood.log_prob(x, module.decode(z, {"x": x})).numpy()
        proportions = torch.softmax(module.decoder(z), -1).numpy()
        theta = module.likelihood.log_theta.exp().numpy()
    mu = X[:5].sum(axis=1, keepdims=True) * proportions
    np.testing.assert_allclose(log_p, _nb_logpmf(X[:5], mu, theta).sum(axis=1), rtol=1e-10)


def test_latent_library_score_is_importance_sampling_over_z_and_the_library(X):
    vae = _fit("latent", X)
    module, library = vae.module_.double(), vae.module_.library
    eps, _ = vae._noise(vae.n_importance_samples, vae._crn_seed)  # (K, 3): z, then u
    rows = X[:4]
    with torch.no_grad():
        params = module.encode({"x": torch.from_numpy(rows)}).params.numpy()
        theta = module.likelihood.log_theta.exp().numpy()
        # The diagonal Gaussian's parameters: means, then log variances.
        mean, std = params[:, :3], np.exp(0.5 * params[:, 3:])
        latent = mean[:, None, :] + std[:, None, :] * eps.numpy()[None]  # (4, K, 3)
        proportions = torch.softmax(module.decoder(torch.from_numpy(latent[..., :2])), -1)
    log_library = library["loc"] + library["scale"] * latent[..., 2:]
    mu = np.exp(log_library) * proportions.numpy()
    log_px_given = _nb_logpmf(rows[:, None, :], mu, theta).sum(-1)
    # The library's prior is N(loc, scale^2) on the log library; in u it is N(0, 1).
    log_prior = stats.norm.logpdf(latent).sum(-1)
    log_q = stats.norm.logpdf(latent, mean[:, None], std[:, None]).sum(-1)
    expected = logsumexp(log_px_given + log_prior - log_q, axis=1) - np.log(len(eps))
    np.testing.assert_allclose(vae.score_samples(rows), expected, rtol=1e-9)


def test_the_latent_library_is_not_a_component(X):
    vae = _fit("latent", X)
    assert vae.transform(X[:7]).shape == (7, 2)
    assert vae.kl_per_component_.shape == (2,)
    assert vae.module_.n_latent == 3
    assert vae.inverse_transform(np.zeros((3, 2))).shape == (3, X.shape[1])


def test_decoding_uses_the_typical_library_and_sampling_draws_it(X):
    vae = _fit("latent", X)
    loc = vae.module_.library["loc"]
    totals = vae.inverse_transform(np.zeros((3, 2))).sum(axis=1)
    np.testing.assert_allclose(totals, np.exp(loc), rtol=1e-9)
    draws = vae.sample(2000, random_state=0).sum(axis=1)
    # Log totals of draws spread as the training rows' (plus the counts' own noise).
    assert np.log(np.maximum(draws, 1)).std() > 0.8 * np.log(X.sum(axis=1)).std()


@pytest.mark.parametrize("likelihood", ["poisson", "zero_inflated_negative_binomial"])
def test_every_count_family_with_a_log_mean_takes_a_library(X, likelihood):
    vae = _fit("observed", X, likelihood=likelihood)
    assert np.isfinite(vae.score_samples(X[:10])).all()


def test_a_library_needs_a_count_family_and_complete_rows(X):
    with pytest.raises(ValueError, match="count family"):
        _fit("latent", X, likelihood="gaussian")
    with pytest.raises(ValueError, match="count family"):
        _fit("latent", X, likelihood="multinomial")
    holes = X.copy()
    holes[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        _fit("observed", holes)


def test_partial_fit_keeps_the_first_blocks_prior_and_pickles(X):
    vae = VAEEstimator(likelihood="poisson", library_size="latent", random_state=0)
    vae.partial_fit(X[:200])
    first = dict(vae.module_.library)
    vae.partial_fit(X[200:] * 3)
    assert vae.module_.library == first
    loaded = pickle.loads(pickle.dumps(vae))
    np.testing.assert_array_equal(loaded.score_samples(X[:5]), vae.score_samples(X[:5]))


def test_with_batches_the_prior_is_each_batchs_normal_of_log_totals(X):
    batch = np.arange(len(X)) % 3
    depth = np.array([0.5, 1.0, 4.0])[batch][:, None]  # batch 2 sequenced 8x deeper
    counts = np.round(X * depth)
    vae = _fit("latent", np.hstack([counts, batch[:, None]]), covariates=[-1])
    module = vae.module_
    log_totals = np.log(np.maximum(counts.sum(axis=1), 1.0))
    # The prior each row's library gets, read through the module, against numpy's groups.
    indicators = torch.from_numpy(np.eye(3)[batch])
    u = torch.tensor([0.0, 1.0], dtype=torch.float64)[None, :, None].expand(len(X), 2, 1)
    z = torch.cat([torch.zeros(len(X), 2, 2, dtype=torch.float64), u], -1)
    with torch.no_grad():
        lib = log_library(module.library, z, 2, {"categorical": indicators}).numpy()
    for level in range(3):
        rows = batch == level
        assert lib[rows, 0, 0] == pytest.approx(log_totals[rows].mean())
        assert lib[rows, 1, 0] - lib[rows, 0, 0] == pytest.approx(log_totals[rows].std())
    # Decoding at a batch uses that batch's typical library.
    Z = np.zeros((1, 2))
    totals = [vae.inverse_transform(Z, covariates=[b]).sum() for b in range(3)]
    assert totals[0] < totals[1] < totals[2]


def test_a_column_of_library_sizes_gives_scipys_nb_of_size_times_proportions(X):
    sizes = X.sum(axis=1) * np.random.default_rng(1).uniform(0.5, 2.0, len(X))
    vae = _fit(None, np.hstack([X, sizes[:, None]]), library_column=-1)
    module = vae.module_.double()
    assert module.covariates == {} and module.library["kind"] == "observed"
    assert module.library["loc"] == pytest.approx(np.log(sizes).mean())
    x = torch.from_numpy(X[:5])
    z = torch.randn(5, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    batch = {"x": x, "library": torch.from_numpy(sizes[:5, None])}
    with torch.no_grad():
        log_p = module.likelihood.log_prob(x, module.decode(z, batch)).numpy()
        proportions = torch.softmax(module.decoder(z), -1).numpy()
        theta = module.likelihood.log_theta.exp().numpy()
    mu = sizes[:5, None] * proportions
    np.testing.assert_allclose(log_p, _nb_logpmf(X[:5], mu, theta).sum(axis=1), rtol=1e-10)
    # Decoding: at the sizes given, or at the typical one; the column holds them.
    Z = np.zeros((2, 2))
    given = vae.inverse_transform(Z, covariates=[[100.0], [1000.0]])
    np.testing.assert_allclose(given[:, :-1].sum(axis=1), [100.0, 1000.0], rtol=1e-6)
    np.testing.assert_allclose(given[:, -1], [100.0, 1000.0])
    typical = vae.inverse_transform(Z)
    np.testing.assert_allclose(typical[:, -1], np.exp(np.log(sizes).mean()))


def test_a_column_of_library_sizes_must_be_positive_and_not_a_covariate(X):
    sizes = X.sum(axis=1, keepdims=True)
    with pytest.raises(ValueError, match="must be positive"):
        sized = np.hstack([X, np.where(np.arange(len(X))[:, None] == 3, 0.0, sizes)])
        _fit(None, sized, library_column=-1)
    with pytest.raises(ValueError, match="also a covariate"):
        _fit(None, np.hstack([X, sizes]), library_column=-1, covariates=[-1])
    with pytest.raises(ValueError, match="library_column 'depth': X has no column names"):
        _fit(None, X, library_column="depth")
    with pytest.raises(ValueError, match="library_size='latent' and library_column=-1"):
        _fit("latent", np.hstack([X, sizes]), library_column=-1)


def test_a_column_named_like_a_mode_is_read_as_a_column(X):
    frame = pd.DataFrame(X, columns=[f"gene{j}" for j in range(X.shape[1])])
    frame["latent"] = X.sum(axis=1)
    vae = _fit(None, frame, library_column="latent")
    assert vae.module_.library["kind"] == "observed" and vae.module_.covariates == {}


def test_a_column_as_library_size_is_deprecated_for_library_column(X):
    sized = np.hstack([X, X.sum(axis=1, keepdims=True)])
    with pytest.warns(FutureWarning, match="library_column=-1"):
        old = _fit(-1, sized)
    new = _fit(None, sized, library_column=-1)
    np.testing.assert_allclose(old.transform(sized), new.transform(sized))
