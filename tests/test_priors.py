"""The prior families against torch.distributions, scipy.stats and an exact likelihood."""

import math
import pickle
import warnings

import numpy as np
import pytest
import torch
from scipy import stats
from scipy.special import logsumexp
from sklearn.exceptions import ConvergenceWarning
from torch import distributions as D

from skvae import PRIORS, Prior, VAEEstimator, register_prior
from skvae._likelihoods import build_likelihood
from skvae._module import VAEModule


def _module(prior: str, n_components=2, k=3, seed=0) -> VAEModule:
    torch.manual_seed(seed)
    likelihood = build_likelihood(4, {"name": "gaussian"})
    config = {"name": prior, "n_prior_components": k}
    module = VAEModule(4, n_components, (8,), "tanh", likelihood, prior=config).double()
    with torch.no_grad():
        for p in module.prior.parameters():
            p.normal_(generator=torch.Generator().manual_seed(seed + 1))
    return module


def _fit(X, **params):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return VAEEstimator(**params).fit(X)


def test_mixture_log_prob_is_torch_distributions_mixture():
    module = _module("mixture")
    prior = module.prior
    reference = D.MixtureSameFamily(
        D.Categorical(logits=prior.logits.detach()),
        D.Independent(D.Normal(prior.means.detach(), (0.5 * prior.log_vars.detach()).exp()), 1),
    )
    z = torch.randn(7, 2, dtype=torch.float64) * 2
    torch.testing.assert_close(module.log_prior(z), reference.log_prob(z))


def test_vamp_log_prob_is_the_mean_of_the_posteriors_at_the_pseudo_inputs():
    module = _module("vamp", k=4)
    with torch.no_grad():
        params = module.encoder(module.prior.pseudo_inputs).numpy()
    loc, log_var = params[:, :2], params[:, 2:]
    z = np.random.default_rng(0).normal(size=(6, 2))
    per_component = stats.norm(loc, np.exp(0.5 * log_var)).logpdf(z[:, None, :]).sum(-1)
    expected = logsumexp(per_component, axis=1) - math.log(4)
    got = module.log_prior(torch.from_numpy(z)).detach().numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-12)


@pytest.mark.parametrize("prior", ["mixture", "vamp"])
def test_prior_draws_follow_its_density(prior):
    module = _module(prior, n_components=1, k=3)
    eps = torch.randn(4000, 1, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    with torch.no_grad():
        draws = module.prior.reparameterise(eps, torch.Generator().manual_seed(1), module)
        grid = torch.linspace(-12, 12, 20001, dtype=torch.float64)[:, None]
        density = module.log_prior(grid).exp().numpy()
    cdf = np.cumsum(density) * (grid[1, 0] - grid[0, 0]).item()
    assert cdf[-1] == pytest.approx(1.0, abs=1e-4)  # a normalised density
    result = stats.kstest(draws.numpy().ravel(), lambda v: np.interp(v, grid[:, 0], cdf))
    assert result.pvalue > 1e-3


def test_score_samples_of_a_linear_vae_with_a_mixture_prior_is_the_exact_likelihood(
    linear_mixture_log_joint,
):
    # Data from two clusters in a 1-D latent space, mapped linearly to 3 columns.
    rng = np.random.default_rng(0)
    z = np.where(rng.uniform(size=(600, 1)) < 0.4, -2.0, 2.0) + 0.3 * rng.normal(size=(600, 1))
    X = z @ np.array([[1.0, -0.5, 2.0]]) + 0.2 * rng.normal(size=(600, 3))
    vae = _fit(
        X,
        n_components=1,
        hidden_layer_sizes=(),
        prior="mixture",
        n_prior_components=2,
        n_importance_samples=2000,
        random_state=0,
    )
    X_test = X[:40]
    # p(x) = sum_k pi_k N(W m_k + b, W S_k W^T + diag(noise)), in the standardised units.
    scale = vae.module_.likelihood.scale
    log_p = logsumexp(linear_mixture_log_joint(vae.module_, X_test), axis=1) - np.log(scale).sum()
    score = vae.score_samples(X_test)
    assert score.mean() <= log_p.mean() + 0.01  # a lower bound, up to its Monte Carlo error
    assert log_p.mean() - score.mean() < 0.02  # the ELBO is 0.05 below here


def test_a_prior_registered_from_outside_shapes_training_and_sampling():
    @register_prior
    class Shifted(Prior):
        name = "shifted"  # N(5, I)

        def log_prob(self, z, module):
            return -0.5 * ((z - 5.0) ** 2).sum(-1) - 0.5 * z.shape[-1] * math.log(2 * math.pi)

        def reparameterise(self, eps, generator, module):
            return eps + 5.0

    try:
        X = np.random.default_rng(0).normal(size=(300, 4))
        vae = _fit(X, n_components=1, prior="shifted", hidden_layer_sizes=(8,), random_state=0)
        assert vae.module_.prior.config == {"name": "shifted", "n_prior_components": 10}
        assert abs(vae.transform(X).mean() - 5.0) < 1.0  # codes sit where the prior is
        again = pickle.loads(pickle.dumps(vae))
        np.testing.assert_array_equal(
            again.sample(5, random_state=0), vae.sample(5, random_state=0)
        )
    finally:
        del PRIORS["shifted"]


@pytest.mark.parametrize("prior", ["mixture", "vamp"])
def test_a_fitted_prior_survives_pickling_and_partial_fit(prior):
    X = np.random.default_rng(0).normal(size=(200, 4))
    vae = _fit(
        X, prior=prior, n_prior_components=3, hidden_layer_sizes=(8,), max_iter=5, random_state=0
    )
    again = pickle.loads(pickle.dumps(vae))
    np.testing.assert_array_equal(again.score_samples(X[:5]), vae.score_samples(X[:5]))
    before = [p.detach().clone() for p in vae.module_.prior.parameters()]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        vae.partial_fit(X)
    after = list(vae.module_.prior.parameters())
    assert any(not torch.equal(b, a) for b, a in zip(before, after, strict=True))


def test_a_mixture_prior_and_a_latent_library_size_is_a_clear_error():
    X = np.random.default_rng(0).poisson(3.0, size=(100, 5)).astype(float)
    vae = VAEEstimator(likelihood="poisson", library_size="latent", prior="mixture")
    with pytest.raises(ValueError, match="latent library size"):
        vae.fit(X)
